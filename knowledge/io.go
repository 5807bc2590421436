package knowledge

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/internal/jsonx"
)

// Format is a bulk import/export format.
type Format string

// Formats.
const (
	FormatJSON  Format = "json"  // an array of FAQ objects (or {"items": [...]})
	FormatJSONL Format = "jsonl" // one FAQ object per line
	FormatCSV   Format = "csv"   // header row; see CSVColumns
)

// ParseFormat maps a name or media type to a Format.
func ParseFormat(s string) (Format, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if i := strings.IndexByte(s, ';'); i >= 0 {
		s = strings.TrimSpace(s[:i])
	}
	switch s {
	case "json", "application/json":
		return FormatJSON, nil
	case "jsonl", "ndjson", "application/jsonl", "application/x-ndjson", "application/x-jsonlines", "application/jsonlines":
		return FormatJSONL, nil
	case "csv", "text/csv":
		return FormatCSV, nil
	}
	return "", tandem.Errorf(tandem.EINVALID, "unknown format %q (want json, jsonl or csv)", s)
}

// ContentType returns the media type of a format.
func (f Format) ContentType() string {
	switch f {
	case FormatJSONL:
		return "application/jsonl; charset=utf-8"
	case FormatCSV:
		return "text/csv; charset=utf-8"
	}
	return "application/json; charset=utf-8"
}

// CSVColumns are the CSV header names. Import needs at least question,
// answer and one of external_id and id (see ParseImport); other columns are
// optional, in any order. Phrasings are one per line inside the cell; a
// cell without a newline is split on "|" (hand-written files), so exports
// write a lone phrasing that contains "|" with a trailing newline. Tags are
// separated by "|" or ",". Unknown columns are an error. Exports write a
// cell that starts with =, +, -, @ or an apostrophe with a leading
// apostrophe (so spreadsheets show it as text, not a formula), and imports
// drop an apostrophe followed by one of those.
var CSVColumns = []string{"id", "external_id", "question", "phrasings", "answer", "category", "tags", "locale", "status", "intent", "threshold", "version", "updated_at", "updated_by"}

// Record is one parsed import row: the FAQ it describes or why it is bad.
type Record struct {
	Row  int        // 1-based data row (JSON array element, JSONL line, CSV record after the header)
	Line int        // 1-based line in the input where the row starts
	FAQ  tandem.FAQ // valid only when Err is nil
	Err  error      // a *tandem.Error with code EINVALID
}

// wireFAQ is the accepted shape of one imported object. Exported objects
// (with id, version and audit stamps) import unchanged: version and the
// stamps are accepted and ignored, id identifies a row that has no
// external_id. Any other field is an error.
type wireFAQ struct {
	ID         string          `json:"id"`
	ExternalID string          `json:"external_id"`
	Question   string          `json:"question"`
	Phrasings  []string        `json:"phrasings"`
	Answer     string          `json:"answer"`
	Category   string          `json:"category"`
	Tags       []string        `json:"tags"`
	Locale     string          `json:"locale"`
	Status     string          `json:"status"`
	Intent     string          `json:"intent"`
	Threshold  float64         `json:"threshold"`
	Version    int64           `json:"version"`
	CreatedAt  json.RawMessage `json:"created_at"` // checked by stamps, then ignored
	UpdatedAt  json.RawMessage `json:"updated_at"`
	UpdatedBy  string          `json:"updated_by"`
}

// stamps checks the ignored audit stamps: null or an RFC 3339 date-time
// (an error names the field, which time's own error did not).
func (w wireFAQ) stamps() error {
	for _, st := range []struct {
		name string
		raw  json.RawMessage
	}{{"created_at", w.CreatedAt}, {"updated_at", w.UpdatedAt}} {
		var t *time.Time
		if len(st.raw) > 0 && json.Unmarshal(st.raw, &t) != nil {
			return tandem.Errorf(tandem.EINVALID, "field %q: expected a date-time such as 2024-05-01T12:00:00Z", st.name)
		}
	}
	return nil
}

func (w wireFAQ) faq() tandem.FAQ {
	return tandem.FAQ{ID: w.ID, ExternalID: w.ExternalID, Question: w.Question, Phrasings: w.Phrasings, Answer: w.Answer,
		Category: w.Category, Tags: w.Tags, Locale: w.Locale, Status: tandem.FAQStatus(w.Status), Intent: w.Intent, Threshold: w.Threshold}
}

// MaxImportRows bounds the rows of one import.
const MaxImportRows = 50000

// ParseImport reads a whole import body. Row-level problems (unknown
// fields, wrong types, invalid UTF-8, malformed CSV records, invalid
// values, missing or duplicate keys) become Records with Err set; a body
// that cannot be read as the format at all is an EINVALID error.
//
// A row's key is its external_id; a row without one is keyed by its id (an
// exported FAQ that never had an external id), so an export always
// re-imports unchanged. A row with an external_id keeps only that key (its
// id is dropped); a row with neither is an error.
func ParseImport(r io.Reader, format Format) ([]Record, error) {
	// A UTF-8 byte order mark (Windows editors write one) is not content.
	br := bufio.NewReader(r)
	if bom, _ := br.Peek(3); bytes.Equal(bom, []byte("\ufeff")) {
		_, _ = br.Discard(3)
	}
	r = br
	var recs []Record
	var err error
	switch format {
	case FormatJSON:
		recs, err = parseJSON(r)
	case FormatJSONL:
		recs, err = parseJSONL(r)
	case FormatCSV:
		recs, err = parseCSV(r)
	default:
		return nil, tandem.Errorf(tandem.EINVALID, "unknown format %q", format)
	}
	if err != nil {
		return nil, err
	}
	if len(recs) > MaxImportRows {
		return nil, tandem.Errorf(tandem.EINVALID, "%d rows, more than %d per import", len(recs), MaxImportRows)
	}
	firstRow := map[string]int{}
	firstID := map[string]int{}
	for i := range recs {
		rec := &recs[i]
		if rec.Err != nil {
			continue
		}
		rec.FAQ.ID = strings.TrimSpace(rec.FAQ.ID)
		f, err := Normalize(rec.FAQ)
		if err != nil {
			rec.Err = err
			continue
		}
		switch {
		case f.ExternalID != "":
			f.ID = "" // the external id is the key
			if prev, dup := firstRow[f.ExternalID]; dup {
				rec.Err = tandem.Errorf(tandem.EINVALID, "external_id: %q duplicates row %d", f.ExternalID, prev)
				continue
			}
			firstRow[f.ExternalID] = rec.Row
		case f.ID != "":
			if prev, dup := firstID[f.ID]; dup {
				rec.Err = tandem.Errorf(tandem.EINVALID, "id: %q duplicates row %d", f.ID, prev)
				continue
			}
			firstID[f.ID] = rec.Row
		default:
			rec.Err = tandem.Errorf(tandem.EINVALID, "external_id: required for imports (it makes them idempotent), or the id of an exported FAQ without one")
			continue
		}
		rec.FAQ = f
	}
	return recs, nil
}

func rowError(err error) error {
	var te *tandem.Error
	if errors.As(err, &te) {
		return te
	}
	switch {
	case errors.Is(err, io.EOF):
		return tandem.Errorf(tandem.EINVALID, "empty: an FAQ object is required")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return tandem.Errorf(tandem.EINVALID, "malformed JSON: the input ends before the JSON object does")
	}
	var ute *json.UnmarshalTypeError
	if errors.As(err, &ute) {
		if ute.Field == "" {
			return tandem.Errorf(tandem.EINVALID, "expected an FAQ object, got %s", ute.Value)
		}
		return tandem.Errorf(tandem.EINVALID, "field %q: expected %s, got %s", ute.Field, jsonType(ute.Type), ute.Value)
	}
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "json: ")
	return tandem.Errorf(tandem.EINVALID, "%s", msg)
}

// jsonType names a Go type in JSON terms for error messages.
func jsonType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.String {
			return "an array of strings"
		}
		return "an array"
	}
	return "an object"
}

// decodeObject decodes one JSON object strictly.
func decodeObject(raw []byte) (tandem.FAQ, error) {
	if !utf8.Valid(raw) {
		return tandem.FAQ{}, tandem.Errorf(tandem.EINVALID, "not valid UTF-8")
	}
	w, _, err := decodeWire(raw)
	if err != nil {
		return tandem.FAQ{}, err
	}
	return w.faq(), nil
}

// decodeWire decodes one JSON object (valid UTF-8) into a wireFAQ
// strictly: no unknown field, field names in their exact case
// (encoding/json alone matches "External_Id" to external_id, which the
// API's checks for a field's presence would not see), nothing after it.
// It also returns the names of the fields the object has (null ones too).
func decodeWire(raw []byte) (wireFAQ, map[string]bool, error) {
	raw = bytes.TrimSpace(raw)
	if string(raw) == "null" { // the decoder takes it for an empty object
		return wireFAQ{}, nil, tandem.Errorf(tandem.EINVALID, "expected an FAQ object, got null")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var w wireFAQ
	if err := dec.Decode(&w); err != nil {
		return wireFAQ{}, nil, rowError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return wireFAQ{}, nil, tandem.Errorf(tandem.EINVALID, "trailing data after the JSON object")
	}
	sent, err := jsonx.ExactKeys(raw, &w)
	if err != nil {
		return wireFAQ{}, nil, tandem.Errorf(tandem.EINVALID, "%v", err)
	}
	if err := w.stamps(); err != nil {
		return wireFAQ{}, nil, err
	}
	return w, sent, nil
}

// jsonSyntax describes a JSON syntax error for messages.
func jsonSyntax(err error) string {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "the input ends before the JSON document does"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

func parseJSON(r io.Reader) ([]Record, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("knowledge: read import: %w", err)
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, tandem.Errorf(tandem.EINVALID, `empty: a JSON import is an array of FAQ objects or {"items": [...]}`)
	}
	if len(trimmed) > 0 && trimmed[0] == '{' {
		// {"items": [...]}
		var env map[string]json.RawMessage
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		if err := dec.Decode(&env); err != nil {
			return nil, tandem.Errorf(tandem.EINVALID, "malformed JSON: %v", jsonSyntax(err))
		}
		if _, err := dec.Token(); err != io.EOF {
			return nil, tandem.Errorf(tandem.EINVALID, "malformed JSON: trailing data after the object")
		}
		items, ok := env["items"]
		if !ok || len(env) != 1 {
			return nil, tandem.Errorf(tandem.EINVALID, `a JSON import is an array of FAQ objects or {"items": [...]}`)
		}
		off := bytes.Index(data, items)
		return parseJSONArray(items, lineOf(data, off)-1)
	}
	return parseJSONArray(data, 0)
}

func parseJSONArray(data []byte, lineBase int) ([]Record, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, tandem.Errorf(tandem.EINVALID, "malformed JSON: %v", jsonSyntax(err))
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, tandem.Errorf(tandem.EINVALID, `a JSON import is an array of FAQ objects or {"items": [...]}`)
	}
	var recs []Record
	for dec.More() {
		off := dec.InputOffset()
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, tandem.Errorf(tandem.EINVALID, "malformed JSON at line %d: %v", lineBase+lineOf(data, int(dec.InputOffset())), jsonSyntax(err))
		}
		start := int(off) + leadingSkip(data[off:])
		rec := Record{Row: len(recs) + 1, Line: lineBase + lineOf(data, start)}
		rec.FAQ, rec.Err = decodeObject(raw)
		recs = append(recs, rec)
		if len(recs) > MaxImportRows {
			return recs, nil
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, tandem.Errorf(tandem.EINVALID, "malformed JSON: %v", jsonSyntax(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, tandem.Errorf(tandem.EINVALID, "malformed JSON: trailing data after the array")
	}
	return recs, nil
}

// leadingSkip counts separators (white space and commas) before a value.
func leadingSkip(b []byte) int {
	n := 0
	for n < len(b) && (b[n] == ' ' || b[n] == '\n' || b[n] == '\r' || b[n] == '\t' || b[n] == ',') {
		n++
	}
	return n
}

func lineOf(data []byte, off int) int {
	if off > len(data) {
		off = len(data)
	}
	if off < 0 {
		off = 0
	}
	return bytes.Count(data[:off], []byte{'\n'}) + 1
}

func parseJSONL(r io.Reader) ([]Record, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var recs []Record
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		rec := Record{Row: len(recs) + 1, Line: line}
		rec.FAQ, rec.Err = decodeObject(b)
		recs = append(recs, rec)
		if len(recs) > MaxImportRows {
			return recs, nil
		}
	}
	if err := sc.Err(); err != nil {
		return nil, tandem.Errorf(tandem.EINVALID, "reading JSONL at line %d: %v", line+1, err)
	}
	return recs, nil
}

func parseCSV(r io.Reader) ([]Record, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1 // checked per row, so one bad row does not stop the file
	cr.ReuseRecord = false
	header, err := cr.Read()
	if err == io.EOF {
		return nil, tandem.Errorf(tandem.EINVALID, "empty CSV: a header row is required")
	}
	if err != nil {
		return nil, tandem.Errorf(tandem.EINVALID, "malformed CSV header: %v", err)
	}
	cols := map[string]int{}
	known := map[string]bool{}
	for _, c := range CSVColumns {
		known[c] = true
	}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		if !known[h] {
			if len(header) == 1 && strings.Contains(h, ";") {
				return nil, tandem.Errorf(tandem.EINVALID, "CSV header: columns are separated by commas, and this header uses semicolons (%q)", h)
			}
			return nil, tandem.Errorf(tandem.EINVALID, "CSV header: unknown column %q (known: %s)", h, strings.Join(CSVColumns, ", "))
		}
		if _, dup := cols[h]; dup {
			return nil, tandem.Errorf(tandem.EINVALID, "CSV header: column %q appears twice", h)
		}
		cols[h] = i
	}
	for _, need := range []string{"question", "answer"} {
		if _, ok := cols[need]; !ok {
			return nil, tandem.Errorf(tandem.EINVALID, "CSV header: column %q is required", need)
		}
	}
	_, hasExt := cols["external_id"]
	if _, hasID := cols["id"]; !hasExt && !hasID {
		return nil, tandem.Errorf(tandem.EINVALID, "CSV header: column \"external_id\" (or \"id\") is required")
	}
	var recs []Record
	for {
		line, _ := cr.FieldPos(0)
		fields, err := cr.Read()
		if err == io.EOF {
			break
		}
		rec := Record{Row: len(recs) + 1}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				rec.Line = pe.StartLine
				if pe.Err == csv.ErrQuote || pe.Err == csv.ErrBareQuote {
					// The reader cannot resynchronise after a quoting error:
					// the rest of the file is ambiguous.
					return nil, tandem.Errorf(tandem.EINVALID, "malformed CSV at line %d: %v", pe.Line, pe.Err)
				}
				rec.Err = tandem.Errorf(tandem.EINVALID, "malformed CSV record: %v", pe.Err)
				recs = append(recs, rec)
				continue
			}
			return nil, fmt.Errorf("knowledge: read CSV: %w", err)
		}
		rec.Line, _ = cr.FieldPos(0)
		_ = line
		if len(fields) != len(header) {
			rec.Err = tandem.Errorf(tandem.EINVALID, "malformed CSV record: %d fields, the header has %d", len(fields), len(header))
			recs = append(recs, rec)
			continue
		}
		get := func(c string) string {
			if i, ok := cols[c]; ok {
				return csvUnescape(fields[i])
			}
			return ""
		}
		var f tandem.FAQ
		rec.Err = func() error {
			for _, s := range fields {
				if !utf8.ValidString(s) {
					return tandem.Errorf(tandem.EINVALID, "not valid UTF-8")
				}
			}
			f = tandem.FAQ{ID: get("id"), ExternalID: get("external_id"), Question: get("question"), Answer: get("answer"),
				Category: get("category"), Locale: get("locale"), Status: tandem.FAQStatus(strings.TrimSpace(get("status"))), Intent: get("intent")}
			f.Phrasings = splitPhrasings(get("phrasings"))
			f.Tags = splitTags(get("tags"))
			if t := strings.TrimSpace(get("threshold")); t != "" {
				v, err := strconv.ParseFloat(t, 64)
				if err != nil {
					return tandem.Errorf(tandem.EINVALID, "threshold: %q is not a number", t)
				}
				f.Threshold = v
			}
			return nil
		}()
		rec.FAQ = f
		recs = append(recs, rec)
		if len(recs) > MaxImportRows {
			return recs, nil
		}
	}
	return recs, nil
}

func splitPhrasings(s string) []string {
	sep := "\n"
	if !strings.Contains(s, "\n") {
		sep = "|"
	}
	var out []string
	for _, p := range strings.Split(s, sep) {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// joinPhrasings writes phrasings so that splitPhrasings reads them back:
// one per line, and a lone phrasing containing "|" with a trailing newline
// (without one, the cell would be split on "|").
func joinPhrasings(ps []string) string {
	s := strings.Join(ps, "\n")
	if len(ps) == 1 && strings.Contains(s, "|") {
		s += "\n"
	}
	return s
}

// formulaStart holds the first characters that make spreadsheet programs
// evaluate a CSV cell as a formula (=, +, -, @, tab, carriage return), and
// the apostrophe that escapes them.
const formulaStart = "=+-@\t\r'"

// csvEscape writes a text cell so that a spreadsheet shows it as text (CSV
// injection): a cell starting like a formula, or with an apostrophe, gets
// a leading apostrophe, which csvUnescape removes on import.
func csvEscape(s string) string {
	if s != "" && strings.IndexByte(formulaStart, s[0]) >= 0 {
		return "'" + s
	}
	return s
}

// csvUnescape undoes csvEscape: an apostrophe followed by a formula start
// (or another apostrophe) is dropped; any other leading apostrophe is text.
func csvUnescape(s string) string {
	if len(s) >= 2 && s[0] == '\'' && strings.IndexByte(formulaStart, s[1]) >= 0 {
		return s[1:]
	}
	return s
}

func splitTags(s string) []string {
	var out []string
	for _, t := range strings.FieldsFunc(s, func(r rune) bool { return r == '|' || r == ',' }) {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}

// Exporter writes FAQs in a format; call Write for each item, then Close.
type Exporter struct {
	format Format
	w      io.Writer
	csv    *csv.Writer
	n      int
	err    error
}

// NewExporter starts an export to w.
func NewExporter(w io.Writer, format Format) (*Exporter, error) {
	e := &Exporter{format: format, w: w}
	switch format {
	case FormatJSON:
		_, e.err = io.WriteString(w, "[")
	case FormatJSONL:
	case FormatCSV:
		e.csv = csv.NewWriter(w)
		e.err = e.csv.Write(CSVColumns)
	default:
		return nil, tandem.Errorf(tandem.EINVALID, "unknown format %q", format)
	}
	return e, e.err
}

// Write appends one FAQ.
func (e *Exporter) Write(f tandem.FAQ) error {
	if e.err != nil {
		return e.err
	}
	switch e.format {
	case FormatJSON, FormatJSONL:
		b, err := json.Marshal(f)
		if err != nil {
			e.err = err
			return err
		}
		switch {
		case e.format == FormatJSONL:
			b = append(b, '\n')
		case e.n > 0:
			b = append([]byte(",\n"), b...)
		default:
			b = append([]byte("\n"), b...)
		}
		_, e.err = e.w.Write(b)
	case FormatCSV:
		x := csvEscape
		e.err = e.csv.Write([]string{x(f.ID), x(f.ExternalID), x(f.Question), x(joinPhrasings(f.Phrasings)), x(f.Answer), x(f.Category),
			x(strings.Join(f.Tags, "|")), x(f.Locale), x(string(f.Status)), x(f.Intent), strconv.FormatFloat(f.Threshold, 'g', -1, 64),
			strconv.FormatInt(f.Version, 10), f.UpdatedAt.UTC().Format(time.RFC3339Nano), x(f.UpdatedBy)})
	}
	e.n++
	return e.err
}

// Close finishes the document.
func (e *Exporter) Close() error {
	if e.err != nil {
		return e.err
	}
	switch e.format {
	case FormatJSON:
		_, e.err = io.WriteString(e.w, "\n]\n")
	case FormatCSV:
		e.csv.Flush()
		e.err = e.csv.Error()
	}
	return e.err
}

// FAQBody is what an API body said besides the FAQ: the "version" field
// (0 when absent) and the names of the fields it sent (null ones too).
type FAQBody struct {
	Version int64
	Sent    map[string]bool
}

// DecodeFAQ strictly decodes one FAQ object as the admin API accepts it
// (the import row shape: unknown fields and invalid UTF-8 are EINVALID; a
// leading byte order mark is skipped).
func DecodeFAQ(raw []byte) (tandem.FAQ, FAQBody, error) {
	if !utf8.Valid(raw) {
		return tandem.FAQ{}, FAQBody{}, tandem.Errorf(tandem.EINVALID, "body is not valid UTF-8")
	}
	w, sent, err := decodeWire(bytes.TrimPrefix(raw, []byte("\xef\xbb\xbf")))
	if err != nil {
		return tandem.FAQ{}, FAQBody{}, err
	}
	return w.faq(), FAQBody{Version: w.Version, Sent: sent}, nil
}
