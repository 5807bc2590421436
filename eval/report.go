package eval

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// Flatten turns a report (any JSON-serialisable value) into dotted metric
// names -> numbers, e.g. "intent.accuracy". Gates and Markdown use it.
func Flatten(v any) (map[string]float64, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("eval: flatten: %w", err)
	}
	var m any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("eval: flatten: %w", err)
	}
	out := map[string]float64{}
	var walk func(prefix string, x any)
	walk = func(prefix string, x any) {
		switch t := x.(type) {
		case map[string]any:
			for k, v := range t {
				key := k
				if prefix != "" {
					key = prefix + "." + k
				}
				walk(key, v)
			}
		case float64:
			out[prefix] = t
		}
	}
	walk("", m)
	return out, nil
}

// WriteMarkdown renders a flat metric table for humans.
func WriteMarkdown(w io.Writer, title string, v any) error {
	flat, err := Flatten(v)
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(flat))
	for k := range flat {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n| metric | value |\n|---|---:|\n", title)
	for _, k := range keys {
		x := flat[k]
		if x == math.Trunc(x) && math.Abs(x) < 1e12 {
			fmt.Fprintf(&b, "| %s | %d |\n", k, int64(x))
		} else {
			fmt.Fprintf(&b, "| %s | %.4f |\n", k, x)
		}
	}
	_, err = io.WriteString(w, b.String())
	return err
}

// Gate is a bound on one flattened metric: Min <= value <= Max (a nil
// bound is open).
type Gate struct {
	Metric string   `json:"metric"`
	Min    *float64 `json:"min,omitempty"`
	Max    *float64 `json:"max,omitempty"`
}

// ParseGate reads "metric>=0.9" or "metric<=0.2".
func ParseGate(s string) (Gate, error) {
	for _, op := range []string{">=", "<="} {
		if i := strings.Index(s, op); i > 0 {
			v, err := strconv.ParseFloat(strings.TrimSpace(s[i+2:]), 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				return Gate{}, fmt.Errorf("eval: gate %q: want a finite number after %s", s, op)
			}
			g := Gate{Metric: strings.TrimSpace(s[:i])}
			if op == ">=" {
				g.Min = &v
			} else {
				g.Max = &v
			}
			return g, nil
		}
	}
	return Gate{}, fmt.Errorf("eval: gate %q: want METRIC>=N or METRIC<=N", s)
}

// Check returns one message per failed gate (a missing metric fails).
func Check(report any, gates []Gate) ([]string, error) {
	if reflect.ValueOf(report).Kind() == reflect.Invalid {
		return nil, fmt.Errorf("eval: nil report")
	}
	flat, err := Flatten(report)
	if err != nil {
		return nil, err
	}
	var fails []string
	for _, g := range gates {
		v, ok := flat[g.Metric]
		switch {
		case !ok:
			fails = append(fails, fmt.Sprintf("%s: no such metric", g.Metric))
		case g.Min != nil && v < *g.Min:
			fails = append(fails, fmt.Sprintf("%s = %.4f < %.4f", g.Metric, v, *g.Min))
		case g.Max != nil && v > *g.Max:
			fails = append(fails, fmt.Sprintf("%s = %.4f > %.4f", g.Metric, v, *g.Max))
		}
	}
	return fails, nil
}
