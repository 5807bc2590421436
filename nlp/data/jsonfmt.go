package data

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tandem-chat/tandem"
)

// jsonErr converts a decoding error into a FileError with its line.
func jsonErr(path string, b []byte, dec *json.Decoder, err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fileErr(path, lineAt(b, se.Offset), "invalid JSON: %v", se)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fileErr(path, lineAt(b, te.Offset), "unexpected JSON value: %v", te)
	}
	return fileErr(path, lineAt(b, dec.InputOffset()), "invalid JSON: %v", err)
}

// decodeValue decodes the next value of dec into v. On a type error the
// line is that of the offending value: encoding/json's Decoder reports
// UnmarshalTypeError.Offset relative to the value being decoded, which
// starts after the separating comma.
func decodeValue(path string, b []byte, dec *json.Decoder, v any) error {
	base := dec.InputOffset()
	for base < int64(len(b)) && (b[base] == ' ' || b[base] == '\t' || b[base] == '\n' || b[base] == '\r') {
		base++
	}
	if base < int64(len(b)) && b[base] == ',' {
		base++
	}
	err := dec.Decode(v)
	if err == nil {
		return nil
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fileErr(path, lineAt(b, base+te.Offset), "unexpected JSON value: %v", te)
	}
	return jsonErr(path, b, dec, err)
}

// expectEnd reads the closing delimiter want of the top-level value and
// checks nothing but white space follows it (a second value, or garbage,
// would otherwise be dropped without a word).
func expectEnd(path string, b []byte, dec *json.Decoder, want json.Delim) error {
	if err := expectDelim(path, b, dec, want); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fileErr(path, lineAt(b, dec.InputOffset()), "unexpected data after the JSON value")
	}
	return nil
}

// expectDelim reads one JSON token and checks it is the delimiter want.
func expectDelim(path string, b []byte, dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return jsonErr(path, b, dec, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fileErr(path, lineAt(b, dec.InputOffset()), "expected %q, found %v", string(want), tok)
	}
	return nil
}

// --- CLINC150 ---------------------------------------------------------------

var clincSplits = []string{"train", "val", "test", "oos_train", "oos_val", "oos_test"}

// loadCLINC reads CLINC150's data_full.json ({split: [[text, intent], ...]}).
// The default splits are the training ones: train,val,oos_train,oos_val.
func loadCLINC(s Spec) (*Dataset, error) {
	splits := s.Splits
	if splits == nil {
		splits = []string{"train", "val", "oos_train", "oos_val"}
	}
	want := map[string]int{}
	for i, sp := range splits {
		ok := false
		for _, k := range clincSplits {
			ok = ok || k == sp
		}
		if !ok {
			return nil, fmt.Errorf("data: clinc150: unknown split %q (want some of %s)", sp, strings.Join(clincSplits, ","))
		}
		want[sp] = i
	}
	b, err := readFile(s.Path)
	if err != nil {
		return nil, err
	}
	perSplit := make([][]Example, len(splits))
	found := map[string]bool{}
	dec := json.NewDecoder(bytes.NewReader(b))
	lc := lineCounter{b: b}
	if err := expectDelim(s.Path, b, dec, '{'); err != nil {
		return nil, err
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, jsonErr(s.Path, b, dec, err)
		}
		key, _ := tok.(string)
		idx, use := want[key]
		if !use {
			var skip json.RawMessage
			if err := decodeValue(s.Path, b, dec, &skip); err != nil {
				return nil, err
			}
			continue
		}
		found[key] = true
		if err := expectDelim(s.Path, b, dec, '['); err != nil {
			return nil, err
		}
		for dec.More() {
			line := lc.at(dec.InputOffset())
			var pair []string
			if err := decodeValue(s.Path, b, dec, &pair); err != nil {
				return nil, err
			}
			if len(pair) != 2 {
				return nil, fileErr(s.Path, line, "split %s: want [text, intent], got %d fields", key, len(pair))
			}
			ex := Example{Text: pair[0], Intent: strings.TrimSpace(pair[1])}
			if strings.HasPrefix(key, "oos_") {
				ex.Intent = tandem.OutOfScope
			}
			if ex.Intent == "" {
				return nil, fileErr(s.Path, line, "empty intent")
			}
			if err := checkExample(&ex); err != nil {
				return nil, fileErr(s.Path, line, "%v", err)
			}
			perSplit[idx] = append(perSplit[idx], ex)
		}
		if err := expectDelim(s.Path, b, dec, ']'); err != nil {
			return nil, err
		}
	}
	if err := expectEnd(s.Path, b, dec, '}'); err != nil {
		return nil, err
	}
	for _, sp := range splits {
		if !found[sp] {
			return nil, fileErr(s.Path, 0, "split %q not present", sp)
		}
	}
	ds := &Dataset{}
	for _, ex := range perSplit {
		ds.Examples = append(ds.Examples, ex...)
	}
	return ds, nil
}

// --- SNIPS ------------------------------------------------------------------

// loadSNIPS reads the SNIPS benchmark directory: one folder per intent with
// train_<Intent>_full.json (split "train") and validate_<Intent>.json (split
// "validate"). Utterances are the concatenation of their pieces; pieces with
// an "entity" become spans. Default split: train.
func loadSNIPS(s Spec) (*Dataset, error) {
	splits := s.Splits
	if splits == nil {
		splits = []string{"train"}
	}
	entries, err := os.ReadDir(s.Path)
	if err != nil {
		return nil, fmt.Errorf("data: snips: %w", err)
	}
	var intents []string
	for _, e := range entries {
		if e.IsDir() {
			intents = append(intents, e.Name())
		}
	}
	sort.Strings(intents)
	if len(intents) == 0 {
		return nil, fmt.Errorf("data: snips: no intent folders in %s", s.Path)
	}
	ds := &Dataset{}
	for _, sp := range splits {
		for _, intent := range intents {
			var candidates []string
			switch sp {
			case "train":
				candidates = []string{"train_" + intent + "_full.json", "train_" + intent + ".json"}
			case "validate", "valid", "test":
				candidates = []string{"validate_" + intent + ".json"}
			default:
				return nil, fmt.Errorf("data: snips: unknown split %q (want train or validate)", sp)
			}
			path := ""
			for _, c := range candidates {
				p := filepath.Join(s.Path, intent, c)
				if _, err := os.Stat(p); err == nil {
					path = p
					break
				}
			}
			if path == "" {
				return nil, fmt.Errorf("data: snips: %s: no %s file for split %s", filepath.Join(s.Path, intent), candidates[0], sp)
			}
			exs, err := loadSNIPSFile(path)
			if err != nil {
				return nil, err
			}
			ds.Examples = append(ds.Examples, exs...)
		}
	}
	return ds, nil
}

func loadSNIPSFile(path string) ([]Example, error) {
	b, err := readFile(path)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	lc := lineCounter{b: b}
	if err := expectDelim(path, b, dec, '{'); err != nil {
		return nil, err
	}
	var out []Example
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, jsonErr(path, b, dec, err)
		}
		intent := strings.TrimSpace(fmt.Sprint(tok))
		if intent == "" {
			return nil, fileErr(path, lc.at(dec.InputOffset()), "empty intent")
		}
		if err := expectDelim(path, b, dec, '['); err != nil {
			return nil, err
		}
		for dec.More() {
			line := lc.at(dec.InputOffset())
			var utt struct {
				Data []struct {
					Text   *string `json:"text"`
					Entity string  `json:"entity"`
				} `json:"data"`
			}
			if err := decodeValue(path, b, dec, &utt); err != nil {
				return nil, err
			}
			var sb strings.Builder
			ex := Example{Intent: intent}
			pos := 0
			for _, piece := range utt.Data {
				if piece.Text == nil {
					return nil, fileErr(path, line, "utterance piece without \"text\"")
				}
				n := utf8.RuneCountInString(*piece.Text)
				if piece.Entity != "" {
					ex.Entities = append(ex.Entities, Span{Type: piece.Entity, Value: strings.TrimSpace(*piece.Text), Start: pos, End: pos + n})
				}
				sb.WriteString(*piece.Text)
				pos += n
			}
			ex.Text = sb.String()
			ex.Entities = trimSpans(ex.Text, ex.Entities)
			if err := checkExample(&ex); err != nil {
				return nil, fileErr(path, line, "%v", err)
			}
			out = append(out, ex)
		}
		if err := expectDelim(path, b, dec, ']'); err != nil {
			return nil, err
		}
	}
	if err := expectEnd(path, b, dec, '}'); err != nil {
		return nil, err
	}
	return out, nil
}

// --- NLU++ ------------------------------------------------------------------

// loadNLUPP reads NLU++ folds (fold<N>.json in the directory; splits are
// fold numbers and ranges, default all folds present) or a single JSON file.
// Multi-label intents: Intents is the sorted label set, Intent its first
// element (empty when the utterance has no intent). Slots become spans; the
// slot names are checked against ontology.json when it is present.
func loadNLUPP(s Spec) (*Dataset, error) {
	st, err := os.Stat(s.Path)
	if err != nil {
		return nil, fmt.Errorf("data: nlupp: %w", err)
	}
	var files []string
	dir := s.Path
	if !st.IsDir() {
		if err := s.noSplits(); err != nil {
			return nil, err
		}
		files = []string{s.Path}
		dir = filepath.Dir(s.Path)
	} else {
		folds, err := parseFolds(s.Splits)
		if err != nil {
			return nil, err
		}
		if folds == nil {
			for i := 0; ; i++ {
				p := filepath.Join(dir, fmt.Sprintf("fold%d.json", i))
				if _, err := os.Stat(p); err != nil {
					break
				}
				files = append(files, p)
			}
			if len(files) == 0 {
				return nil, fmt.Errorf("data: nlupp: no fold0.json in %s", dir)
			}
		}
		for _, f := range folds {
			p := filepath.Join(dir, fmt.Sprintf("fold%d.json", f))
			if _, err := os.Stat(p); err != nil {
				return nil, fmt.Errorf("data: nlupp: fold %d: %w", f, err)
			}
			files = append(files, p)
		}
	}
	var slotTypes map[string]bool
	if b, err := os.ReadFile(filepath.Join(dir, "ontology.json")); err == nil {
		var onto struct {
			Slots map[string]json.RawMessage `json:"slots"`
		}
		if err := json.Unmarshal(b, &onto); err != nil {
			return nil, fileErr(filepath.Join(dir, "ontology.json"), 0, "invalid JSON: %v", err)
		}
		if len(onto.Slots) > 0 {
			slotTypes = map[string]bool{}
			for k := range onto.Slots {
				slotTypes[k] = true
			}
		}
	}
	ds := &Dataset{}
	if slotTypes != nil {
		ds.EntityTypes = sortedKeys(slotTypes)
	}
	for _, f := range files {
		exs, err := loadNLUPPFile(f, slotTypes)
		if err != nil {
			return nil, err
		}
		ds.Examples = append(ds.Examples, exs...)
	}
	return ds, nil
}

// maxFolds bounds the folds one spec may name (NLU++ has 20).
const maxFolds = 1000

func parseFolds(splits []string) ([]int, error) {
	if splits == nil {
		return nil, nil
	}
	var out []int
	seen := map[int]bool{}
	add := func(n int) {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	for _, sp := range splits {
		lo, hi, isRange := strings.Cut(sp, "-")
		a, err := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(lo), "fold"))
		if err != nil || a < 0 {
			return nil, fmt.Errorf("data: nlupp: bad fold %q (want numbers or ranges like 0-9)", sp)
		}
		if !isRange {
			add(a)
			continue
		}
		b, err := strconv.Atoi(strings.TrimSpace(hi))
		if err != nil || b < a {
			return nil, fmt.Errorf("data: nlupp: bad fold range %q", sp)
		}
		if b-a >= maxFolds || len(out)+b-a >= maxFolds {
			return nil, fmt.Errorf("data: nlupp: fold range %q: more than %d folds", sp, maxFolds)
		}
		for n := a; n <= b; n++ {
			add(n)
		}
	}
	return out, nil
}

func loadNLUPPFile(path string, slotTypes map[string]bool) ([]Example, error) {
	b, err := readFile(path)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	lc := lineCounter{b: b}
	if err := expectDelim(path, b, dec, '['); err != nil {
		return nil, err
	}
	var out []Example
	for dec.More() {
		line := lc.at(dec.InputOffset())
		var raw struct {
			Text    *string  `json:"text"`
			Intents []string `json:"intents"`
			Slots   map[string]struct {
				Text   string          `json:"text"`
				Span   []int           `json:"span"`
				Value  json.RawMessage `json:"value"`
				Values json.RawMessage `json:"values"`
			} `json:"slots"`
		}
		if err := decodeValue(path, b, dec, &raw); err != nil {
			return nil, err
		}
		if raw.Text == nil {
			return nil, fileErr(path, line, "example without \"text\"")
		}
		ex := Example{Text: *raw.Text}
		for _, l := range raw.Intents {
			if strings.TrimSpace(l) == "" {
				return nil, fileErr(path, line, "empty intent")
			}
		}
		if len(raw.Intents) > 0 {
			ex.Intents = append([]string(nil), raw.Intents...)
			sort.Strings(ex.Intents)
			ex.Intent = ex.Intents[0]
		}
		rs := []rune(ex.Text)
		for _, name := range sortedKeys(raw.Slots) {
			sl := raw.Slots[name]
			if slotTypes != nil && !slotTypes[name] {
				return nil, fileErr(path, line, "unknown entity type %q (not in ontology.json)", name)
			}
			if len(sl.Span) != 2 || sl.Span[0] < 0 || sl.Span[1] > len(rs) || sl.Span[0] >= sl.Span[1] {
				return nil, fileErr(path, line, "slot %s: bad span %v for a text of %d characters", name, sl.Span, len(rs))
			}
			if got := string(rs[sl.Span[0]:sl.Span[1]]); sl.Text != "" && got != sl.Text {
				return nil, fileErr(path, line, "slot %s: span %v is %q but the slot text is %q", name, sl.Span, got, sl.Text)
			}
			val := string(rs[sl.Span[0]:sl.Span[1]])
			for _, v := range []json.RawMessage{sl.Value, sl.Values} {
				if len(v) == 0 {
					continue
				}
				var str string
				if json.Unmarshal(v, &str) == nil {
					val = str
				} else {
					var c bytes.Buffer
					if json.Compact(&c, v) == nil {
						val = c.String()
					}
				}
				break
			}
			ex.Entities = append(ex.Entities, Span{Type: name, Value: val, Start: sl.Span[0], End: sl.Span[1]})
		}
		sort.SliceStable(ex.Entities, func(i, j int) bool { return ex.Entities[i].Start < ex.Entities[j].Start })
		ex.Entities = trimSpans(ex.Text, ex.Entities)
		if err := checkExample(&ex); err != nil {
			return nil, fileErr(path, line, "%v", err)
		}
		out = append(out, ex)
	}
	if err := expectEnd(path, b, dec, ']'); err != nil {
		return nil, err
	}
	return out, nil
}
