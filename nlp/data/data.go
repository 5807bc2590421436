// Package data loads labelled NLU training and test data into one in-memory
// form, Dataset, from the formats Tandem supports: the native Tandem YAML
// (docs/nlu.md), Rasa NLU YAML, plain CSV (text,intent), and the public
// datasets CLINC150, SNIPS, NLU++ and Bitext.
//
// A dataset is named by a SPEC string, FORMAT:PATH[?OPTIONS][#SPLITS]:
//
//	clinc150:../shared/datasets/clinc150/data_full.json#train,val,oos_train,oos_val
//	snips:../shared/datasets/snips#validate
//	nlupp:../shared/datasets/nlupp-banking#0-9
//	bitext:PATH   csv:PATH?oos=other   rasa:PATH   tandem:PATH
//
// Contract:
//   - Entity spans are rune (code point) offsets into Example.Text, End
//     exclusive, the convention of tandem.Entity; Span.Value is the
//     canonical value when the data gives one, else the span text.
//   - Out-of-scope examples carry the intent tandem.OutOfScope ("oos"); the
//     option oos=LABEL (or Options.OOSLabel) renames a dataset's own
//     out-of-scope label to "oos".
//   - Errors in data files are *FileError values, reported as
//     "file:line: reason" (malformed annotation, unknown entity type where the
//     format declares types, empty intent, invalid UTF-8, ...).
//   - Loading never reads outside PATH and holds no global state; functions
//     are safe for concurrent use.
package data

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/tandem-chat/tandem"
)

// Span is a typed entity span. Start and End are rune offsets, End exclusive.
type Span struct {
	Type  string `json:"type"`
	Value string `json:"value"`
	Start int    `json:"start"`
	End   int    `json:"end"`
}

// Example is one labelled utterance.
type Example struct {
	Text string `json:"text"`
	// Intent is the single intent label. For multi-label data it is the
	// first of the sorted Intents; it is empty for utterances that carry no
	// intent at all (some NLU++ examples only fill slots).
	Intent string `json:"intent"`
	// Intents is the full label set of multi-label data (sorted), else nil.
	Intents  []string `json:"intents,omitempty"`
	Entities []Span   `json:"entities,omitempty"`
}

// Dataset is a loaded collection of examples with the entity resources the
// format declares.
type Dataset struct {
	Examples []Example
	// Synonyms maps a normalised surface form (text.Normalize) to its
	// canonical entity value.
	Synonyms map[string]string
	// Lookups maps an entity type to its known values (gazetteer).
	Lookups map[string][]string
	// Regexes maps an entity type to a Go regular expression (RE2 syntax).
	Regexes map[string]string
	// EntityTypes lists the declared entity types when the format declares
	// them (Tandem YAML, NLU++ ontology); nil otherwise.
	EntityTypes []string
	// Source is the spec the dataset was loaded from (joined with " + " for
	// merged datasets).
	Source string
}

// FileError is an error in a data file, located by line (1-based; 0 when
// the error concerns the whole file).
type FileError struct {
	File   string
	Line   int
	Reason string
}

func (e *FileError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Reason)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Reason)
}

func fileErr(file string, line int, format string, args ...any) error {
	return &FileError{File: file, Line: line, Reason: fmt.Sprintf(format, args...)}
}

// Options adjust loading. The zero value is the default.
type Options struct {
	// OOSLabel is the label the data uses for out-of-scope examples; those
	// examples are relabelled tandem.OutOfScope. Empty means "oos". The spec
	// option oos=LABEL overrides it.
	OOSLabel string
}

// Spec is a parsed dataset spec.
type Spec struct {
	Format  string
	Path    string
	Options map[string]string
	Splits  []string // nil when the spec names none (the format's default)
}

// Formats lists the supported formats.
var Formats = []string{"tandem", "rasa", "csv", "bitext", "clinc150", "snips", "nlupp"}

// ParseSpec parses FORMAT:PATH[?OPTIONS][#SPLITS]. OPTIONS are key=value
// pairs separated by '&'; SPLITS are comma-separated names or, for NLU++,
// fold numbers and ranges (0-9).
func ParseSpec(spec string) (Spec, error) {
	format, rest, ok := strings.Cut(spec, ":")
	if !ok || format == "" || rest == "" {
		return Spec{}, fmt.Errorf("data: spec %q: want FORMAT:PATH[#SPLITS] with FORMAT one of %s", spec, strings.Join(Formats, ", "))
	}
	format = strings.ToLower(format)
	known := false
	for _, f := range Formats {
		known = known || f == format
	}
	if !known {
		return Spec{}, fmt.Errorf("data: spec %q: unknown format %q (want one of %s)", spec, format, strings.Join(Formats, ", "))
	}
	s := Spec{Format: format}
	if i := strings.LastIndexByte(rest, '#'); i >= 0 {
		for _, part := range strings.Split(rest[i+1:], ",") {
			if part = strings.TrimSpace(part); part != "" {
				s.Splits = append(s.Splits, part)
			}
		}
		if len(s.Splits) == 0 {
			return Spec{}, fmt.Errorf("data: spec %q: empty split list after '#'", spec)
		}
		rest = rest[:i]
	}
	if i := strings.LastIndexByte(rest, '?'); i >= 0 {
		s.Options = map[string]string{}
		for _, kv := range strings.Split(rest[i+1:], "&") {
			if kv == "" {
				continue
			}
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return Spec{}, fmt.Errorf("data: spec %q: option %q is not key=value", spec, kv)
			}
			if k != "oos" {
				return Spec{}, fmt.Errorf("data: spec %q: unknown option %q (known: oos)", spec, k)
			}
			s.Options[k] = v
		}
		rest = rest[:i]
	}
	if rest == "" {
		return Spec{}, fmt.Errorf("data: spec %q: empty path", spec)
	}
	s.Path = rest
	return s, nil
}

// Load loads the dataset named by spec with default options.
func Load(spec string) (*Dataset, error) { return LoadWith(spec, Options{}) }

// LoadWith loads the dataset named by spec.
func LoadWith(spec string, opt Options) (*Dataset, error) {
	s, err := ParseSpec(spec)
	if err != nil {
		return nil, err
	}
	var ds *Dataset
	switch s.Format {
	case "tandem":
		ds, err = loadTandem(s)
	case "rasa":
		ds, err = loadRasa(s)
	case "csv":
		ds, err = loadCSV(s)
	case "bitext":
		ds, err = loadBitext(s)
	case "clinc150":
		ds, err = loadCLINC(s)
	case "snips":
		ds, err = loadSNIPS(s)
	case "nlupp":
		ds, err = loadNLUPP(s)
	}
	if err != nil {
		return nil, err
	}
	oos := opt.OOSLabel
	if v, ok := s.Options["oos"]; ok {
		oos = v
	}
	if oos != "" && oos != tandem.OutOfScope {
		for i := range ds.Examples {
			ex := &ds.Examples[i]
			if ex.Intent == oos {
				ex.Intent = tandem.OutOfScope
			}
			for j, l := range ex.Intents {
				if l == oos {
					ex.Intents[j] = tandem.OutOfScope
				}
			}
			if ex.Intents != nil {
				sort.Strings(ex.Intents)
			}
		}
	}
	ds.Source = spec
	return ds, nil
}

func (s Spec) noSplits() error {
	if len(s.Splits) > 0 {
		return fmt.Errorf("data: format %s has no splits (got #%s)", s.Format, strings.Join(s.Splits, ","))
	}
	return nil
}

// readFile reads a data file and rejects invalid UTF-8 with its line.
func readFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	if err := checkUTF8(path, b); err != nil {
		return nil, err
	}
	// A UTF-8 byte order mark (Windows editors write one) is not data.
	return bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")), nil
}

func checkUTF8(path string, b []byte) error {
	if utf8.Valid(b) {
		return nil
	}
	line, col := 1, 1
	for i := 0; i < len(b); {
		r, w := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && w == 1 {
			return fileErr(path, line, "invalid UTF-8 (byte 0x%02x at column %d)", b[i], col)
		}
		if r == '\n' {
			line, col = line+1, 0
		}
		col++
		i += w
	}
	return nil
}

// lineAt returns the 1-based line of byte offset off in b.
func lineAt(b []byte, off int64) int {
	if off > int64(len(b)) {
		off = int64(len(b))
	}
	n := 1
	for _, c := range b[:off] {
		if c == '\n' {
			n++
		}
	}
	return n
}

// lineCounter answers lineAt for increasing offsets in O(total).
type lineCounter struct {
	b    []byte
	off  int64
	line int
}

func (lc *lineCounter) at(off int64) int {
	if lc.line == 0 {
		lc.line = 1
	}
	if off < lc.off {
		lc.off, lc.line = 0, 1
	}
	n := int64(len(lc.b))
	for ; lc.off < off && lc.off < n; lc.off++ {
		if lc.b[lc.off] == '\n' {
			lc.line++
		}
	}
	// The decoder's offset is just after the previous value: skip the
	// separator so the line is that of the next value.
	line := lc.line
	for i := off; i < n; i++ {
		switch lc.b[i] {
		case '\n':
			line++
		case ' ', '\t', '\r', ',', ':':
		default:
			return line
		}
	}
	return line
}

// checkExample validates an example's invariants.
func checkExample(ex *Example) error {
	if strings.TrimSpace(ex.Text) == "" {
		return errors.New("empty example text")
	}
	if strings.IndexByte(ex.Text, 0) >= 0 {
		return errors.New("example text contains a NUL character (a binary or corrupt file?)")
	}
	n := utf8.RuneCountInString(ex.Text)
	for _, sp := range ex.Entities {
		if sp.Type == "" {
			return fmt.Errorf("entity span [%d,%d) has an empty type", sp.Start, sp.End)
		}
		if sp.Start < 0 || sp.End > n || sp.Start >= sp.End {
			return fmt.Errorf("entity span %s [%d,%d) out of range for a text of %d characters", sp.Type, sp.Start, sp.End, n)
		}
	}
	return nil
}

// CheckSynonyms reports a variant that two datasets map to different
// canonical values (Merge would keep the later one without a word).
func CheckSynonyms(sets ...*Dataset) error {
	type from struct{ canon, src string }
	seen := map[string]from{}
	for _, d := range sets {
		if d == nil {
			continue
		}
		for _, k := range sortedKeys(d.Synonyms) {
			v := d.Synonyms[k]
			if p, ok := seen[k]; ok && p.canon != v {
				return fmt.Errorf("data: synonym %q maps to %q in %s and to %q in %s", k, p.canon, p.src, v, d.Source)
			}
			seen[k] = from{v, d.Source}
		}
	}
	return nil
}

// Merge concatenates datasets (examples in order; resources merged, later
// datasets winning on conflicting keys).
func Merge(sets ...*Dataset) *Dataset {
	out := &Dataset{}
	var srcs []string
	types := map[string]bool{}
	declared := false
	for _, d := range sets {
		if d == nil {
			continue
		}
		out.Examples = append(out.Examples, d.Examples...)
		for k, v := range d.Synonyms {
			if out.Synonyms == nil {
				out.Synonyms = map[string]string{}
			}
			out.Synonyms[k] = v
		}
		for k, v := range d.Lookups {
			if out.Lookups == nil {
				out.Lookups = map[string][]string{}
			}
			out.Lookups[k] = append(out.Lookups[k], v...)
		}
		for k, v := range d.Regexes {
			if out.Regexes == nil {
				out.Regexes = map[string]string{}
			}
			if old, ok := out.Regexes[k]; ok && old != v {
				v = "(?:" + old + ")|(?:" + v + ")"
			}
			out.Regexes[k] = v
		}
		if d.EntityTypes != nil {
			declared = true
			for _, t := range d.EntityTypes {
				types[t] = true
			}
		}
		srcs = append(srcs, d.Source)
	}
	if declared {
		for _, ex := range out.Examples {
			for _, sp := range ex.Entities {
				types[sp.Type] = true
			}
		}
		out.EntityTypes = sortedKeys(types)
	}
	out.Source = strings.Join(srcs, " + ")
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Labels returns the sorted set of intent labels (Intent of each example,
// plus every label of multi-label Intents), without the empty label.
func (d *Dataset) Labels() []string {
	set := map[string]bool{}
	for _, ex := range d.Examples {
		if ex.Intent != "" {
			set[ex.Intent] = true
		}
		for _, l := range ex.Intents {
			set[l] = true
		}
	}
	return sortedKeys(set)
}

// SpanTypes returns the sorted entity types used by spans in the examples.
func (d *Dataset) SpanTypes() []string {
	set := map[string]bool{}
	for _, ex := range d.Examples {
		for _, sp := range ex.Entities {
			set[sp.Type] = true
		}
	}
	return sortedKeys(set)
}

// HasEntities reports whether any example carries an entity span.
func (d *Dataset) HasEntities() bool {
	for _, ex := range d.Examples {
		if len(ex.Entities) > 0 {
			return true
		}
	}
	return false
}

// Digest returns a hex SHA-256 of the dataset's content (examples in order,
// labels, spans and entity resources), independent of where it was loaded
// from. It identifies training data in model manifests.
func (d *Dataset) Digest() string {
	h := sha256.New()
	var buf [8]byte
	str := func(s string) {
		binary.LittleEndian.PutUint64(buf[:], uint64(len(s)))
		h.Write(buf[:])
		h.Write([]byte(s))
	}
	num := func(n int) {
		binary.LittleEndian.PutUint64(buf[:], uint64(n))
		h.Write(buf[:])
	}
	num(len(d.Examples))
	for _, ex := range d.Examples {
		str(ex.Text)
		str(ex.Intent)
		num(len(ex.Intents))
		for _, l := range ex.Intents {
			str(l)
		}
		num(len(ex.Entities))
		for _, sp := range ex.Entities {
			str(sp.Type)
			str(sp.Value)
			num(sp.Start)
			num(sp.End)
		}
	}
	for _, k := range sortedKeys(d.Synonyms) {
		str("syn:" + k)
		str(d.Synonyms[k])
	}
	for _, k := range sortedKeys(d.Lookups) {
		str("lookup:" + k)
		for _, v := range d.Lookups[k] {
			str(v)
		}
	}
	for _, k := range sortedKeys(d.Regexes) {
		str("regex:" + k)
		str(d.Regexes[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}
