package data

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/internal/testenv"
	"github.com/tandem-chat/tandem/nlp/text"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// spanTexts renders spans as "type=text" for comparisons.
func spanTexts(ex Example) []string {
	var out []string
	for _, sp := range ex.Entities {
		out = append(out, sp.Type+"="+text.Slice(ex.Text, sp.Start, sp.End))
	}
	return out
}

func TestParseSpec(t *testing.T) {
	s, err := ParseSpec("clinc150:../x/data_full.json#test,oos_test")
	if err != nil || s.Format != "clinc150" || s.Path != "../x/data_full.json" || !reflect.DeepEqual(s.Splits, []string{"test", "oos_test"}) {
		t.Fatalf("ParseSpec = %+v, %v", s, err)
	}
	s, err = ParseSpec("csv:/a/b.csv?oos=other")
	if err != nil || s.Path != "/a/b.csv" || s.Options["oos"] != "other" {
		t.Fatalf("ParseSpec = %+v, %v", s, err)
	}
	for _, bad := range []string{"", "nope", "xml:/a", "csv:", "csv:/a#", "csv:/a?x=1", "csv:/a?oos"} {
		if _, err := ParseSpec(bad); err == nil {
			t.Errorf("ParseSpec(%q) succeeded", bad)
		}
	}
}

func TestParseAnnotated(t *testing.T) {
	tests := []struct {
		in    string
		plain string
		spans []Span
	}{
		{"ship it to [Berlin](city)", "ship it to Berlin", []Span{{"city", "Berlin", 11, 17}}},
		{"fly [NYC](city:New York) to [Zürich](city) now", "fly NYC to Zürich now", []Span{{"city", "New York", 4, 7}, {"city", "Zürich", 11, 17}}},
		{`book [two]{"entity": "count", "value": 2, "role": "x"} rooms`, "book two rooms", []Span{{"count", "2", 5, 8}}},
		{`price \[approx\] [5 €](money)`, "price [approx] 5 €", []Span{{"money", "5 €", 15, 18}}},
		{"去[北京](city)", "去北京", []Span{{"city", "北京", 1, 3}}},
		{"[ Berlin ](city)!", " Berlin !", []Span{{"city", "Berlin", 1, 7}}},
		{"no annotation", "no annotation", nil},
		// A backslash in entity text that is not an escape stays (it was dropped).
		{`open [C:\Users\me](path) now`, `open C:\Users\me now`, []Span{{"path", `C:\Users\me`, 5, 16}}},
		// Escaped parentheses in a value (the value used to end at the first ')').
		{`[x](city:New York \(NY\)) ok`, "x ok", []Span{{"city", "New York (NY)", 0, 1}}},
	}
	for _, tc := range tests {
		plain, spans, err := ParseAnnotated(tc.in)
		if err != nil {
			t.Errorf("ParseAnnotated(%q): %v", tc.in, err)
			continue
		}
		if plain != tc.plain || !reflect.DeepEqual(spans, tc.spans) {
			t.Errorf("ParseAnnotated(%q) = %q %+v, want %q %+v", tc.in, plain, spans, tc.plain, tc.spans)
		}
	}
	for _, bad := range []string{"[Berlin", "[Berlin]", "Berlin]", "[Berlin](city", "[](city)", "[a [b]](c)", "[x]()", `[x]{"entity": }`, "[x](two words)",
		"[x](city:New York (NY)) ok"} { // unescaped '(' in a value: refused, not cut short
		if _, _, err := ParseAnnotated(bad); err == nil || !strings.Contains(err.Error(), "malformed annotation") {
			t.Errorf("ParseAnnotated(%q) err = %v, want malformed annotation", bad, err)
		}
	}
}

func TestTandemYAML(t *testing.T) {
	p := writeFile(t, "nlu.yml", `version: 1
language: en
intents:
  track_order:
    - where is my order [ORD-123456](order_id)
    - ship it to [Berlin](city) please
  greet:
    examples:
      - hi
      - hello there
  oos:
    - what is the meaning of life
entities:
  order_id:
    regex: '\bORD-\d{6}\b'
  city:
    lookup: [Berlin, Paris]
    synonyms:
      New York: [NYC, big apple]
  product:
`)
	ds, err := Load("tandem:" + p)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Examples) != 5 {
		t.Fatalf("examples = %d, want 5", len(ds.Examples))
	}
	if got := spanTexts(ds.Examples[1]); !reflect.DeepEqual(got, []string{"city=Berlin"}) {
		t.Fatalf("spans = %v", got)
	}
	if ds.Examples[4].Intent != tandem.OutOfScope {
		t.Fatalf("oos intent = %q", ds.Examples[4].Intent)
	}
	if ds.Synonyms["nyc"] != "New York" || ds.Synonyms["big apple"] != "New York" || ds.Synonyms["new york"] != "New York" {
		t.Fatalf("synonyms = %v", ds.Synonyms)
	}
	if !reflect.DeepEqual(ds.Lookups["city"], []string{"Berlin", "Paris"}) || ds.Regexes["order_id"] == "" {
		t.Fatalf("lookups/regexes = %v %v", ds.Lookups, ds.Regexes)
	}
	if !reflect.DeepEqual(ds.EntityTypes, []string{"city", "order_id", "product"}) {
		t.Fatalf("entity types = %v", ds.EntityTypes)
	}
	if !reflect.DeepEqual(ds.Labels(), []string{"greet", "oos", "track_order"}) {
		t.Fatalf("labels = %v", ds.Labels())
	}
}

// TestBadFiles checks that broken data files fail with file:line and a clear
// reason.
func TestBadFiles(t *testing.T) {
	tests := []struct {
		name, format, file, content string
		line                        int
		reason                      string
	}{
		{"malformed annotation", "tandem", "a.yml", "intents:\n  x:\n    - ok\n    - ship to [Berlin(city)\n", 4, "malformed annotation"},
		{"unknown entity", "tandem", "a.yml", "entities:\n  city:\nintents:\n  x:\n    - ship to [Berlin](town)\n", 5, `unknown entity type "town"`},
		{"empty intent", "tandem", "a.yml", "intents:\n  \"\":\n    - hi\n", 2, "empty intent"},
		{"invalid utf8 yaml", "tandem", "a.yml", "intents:\n  x:\n    - h\xffi\n", 3, "invalid UTF-8"},
		{"bad regex", "tandem", "a.yml", "entities:\n  id:\n    regex: 'a(b'\n", 3, "invalid regex"},
		{"unknown key", "tandem", "a.yml", "intens:\n  x: [a]\n", 1, "unknown key"},
		{"duplicate intent", "tandem", "a.yml", "intents:\n  greet: [hi]\n  bye: [ciao]\n  greet: [hello]\n", 4, `duplicate key "greet" (first at line 2)`},
		{"duplicate section", "tandem", "a.yml", "entities:\n  city:\nintents:\n  x: [a]\nentities:\n  town:\n", 5, `duplicate key "entities"`},
		{"yaml syntax", "tandem", "a.yml", "intents:\n  x:\n\t- a\n", 3, "invalid YAML"},
		{"rasa malformed", "rasa", "nlu.yml", "version: \"3.1\"\nnlu:\n- intent: greet\n  examples: |\n    - hey\n    - hi [there\n", 6, "malformed annotation"},
		{"rasa empty intent", "rasa", "nlu.yml", "nlu:\n- intent: \"\"\n  examples: |\n    - hey\n", 2, "empty intent"},
		// Examples in a quoted string: the string's line (was a line past the file's end).
		{"rasa quoted examples", "rasa", "nlu.yml", "nlu:\n- intent: greet\n  examples: \"- hi\\n- hello\\n- hey [there(x)\"\n", 3, "malformed annotation"},
		{"csv empty intent", "csv", "a.csv", "text,intent\nhello,greet\nbye,\n", 3, "empty intent"},
		{"csv invalid utf8", "csv", "a.csv", "hello,greet\nb\xc3ye,bye\n", 2, "invalid UTF-8"},
		{"csv columns", "csv", "a.csv", "hello,greet\nbye\n", 2, "want 2 columns"},
		{"csv NUL", "csv", "a.csv", "hello,greet\nb\x00ye,bye\n", 2, "NUL character"},
		{"yaml NUL", "tandem", "a.yml", "intents:\n  x:\n    - ok\n    - \"b\\0ye\"\n", 4, "NUL character"},
		{"csv unquoted comma", "csv", "a.csv", "text,intent\nhello,greet\nwhere is my order, please,track_order\n", 3, "got 3 (quote a text"},
		{"csv other header", "csv", "a.csv", "utterance,label\nhello,greet\n", 1, "name the columns text and intent"},
		{"clinc empty intent", "clinc150", "c.json", "{\"train\": [\n  [\"hi\", \"greet\"],\n  [\"yo\", \"\"]\n]}", 3, "empty intent"},
		{"clinc wrong type", "clinc150", "c.json", "{\"train\": [\n  [\"hi\", \"greet\"],\n  [\"hello\", \"greet\"],\n  [\"yo\",\n   5]\n]}", 5, "unexpected JSON value"},
		{"clinc wrong type, first", "clinc150", "c.json", "{\"train\": [\n\n  [\"hi\", 5]\n]}", 3, "unexpected JSON value"},
		{"clinc syntax", "clinc150", "c.json", "{\"train\": [\n  [\"hi\", \"greet\"],\n  [\"yo\" \"x\"]\n]}", 3, "invalid JSON"},
		// Found by a black-box review: data dropped or merged without a word.
		{"second document", "tandem", "a.yml", "intents:\n  a: [hi]\n---\nintents:\n  b: [yo]\n", 4, "second YAML document"},
		{"rasa second document", "rasa", "nlu.yml", "nlu:\n- intent: a\n  examples: |\n    - hi\n---\nnlu:\n- intent: b\n  examples: |\n    - yo\n", 6, "second YAML document"},
		{"rasa duplicate nlu", "rasa", "nlu.yml", "nlu:\n- intent: a\n  examples: |\n    - hi\nnlu:\n- intent: b\n  examples: |\n    - yo\n", 5, `duplicate key "nlu"`},
		{"rasa duplicate examples", "rasa", "nlu.yml", "nlu:\n- intent: a\n  examples: |\n    - hi\n  examples: |\n    - yo\n", 5, `duplicate key "examples"`},
		{"duplicate examples", "tandem", "a.yml", "intents:\n  a:\n    examples: [hi]\n    examples: [yo]\n", 4, `duplicate key "examples"`},
		{"folded examples", "tandem", "a.yml", "intents:\n  a:\n    examples: >\n      - hi\n      - hello\n", 3, "folded block"},
		{"rasa folded examples", "rasa", "nlu.yml", "nlu:\n- intent: a\n  examples: >\n    - hi\n    - hello\n", 3, "folded block"},
		{"rasa empty examples", "rasa", "nlu.yml", "nlu:\n- intent: a\n  examples: |\n    - hi\n- intent: b\n  examples: \"\"\n", 6, `"b" has no examples`},
		{"rasa empty nlu", "rasa", "nlu.yml", "nlu: []\n", 1, "no examples"},
		{"synonym conflict", "tandem", "a.yml", "entities:\n  city:\n    synonyms:\n      New York City: [NY]\n  state:\n    synonyms:\n      New York State: [NY]\n", 7, `synonym "NY" maps to both "New York City" and "New York State"`},
		{"rasa synonym conflict", "rasa", "nlu.yml", "nlu:\n- synonym: New York\n  examples: |\n    - NYC\n- synonym: Newark\n  examples: |\n    - NYC\n", 7, "maps to both"},
		{"csv header only", "csv", "a.csv", "text,intent\n", 0, "no examples"},
		{"csv empty", "csv", "a.csv", "", 0, "no examples"},
		{"bitext header only", "bitext", "b.csv", "utterance,intent\n", 0, "no examples"},
		{"csv unterminated quote", "csv", "a.csv", "text,intent\n\"hello,greet\nbye,bye\nyo,yo\n", 2, "starts here"},
		{"clinc trailing data", "clinc150", "c.json", "{\"train\": [\n  [\"hi\", \"greet\"]\n]}\ngarbage", 4, "unexpected data after"},
		{"clinc second value", "clinc150", "c.json", "{\"train\": [[\"hi\", \"greet\"]]}\n{\"train\": [[\"yo\", \"greet\"]]}", 2, "unexpected data after"},
		{"nlupp trailing data", "nlupp", "n.json", "[{\"text\": \"hi\", \"intents\": [\"greet\"]}]\n[{\"text\": \"bye\"}]", 2, "unexpected data after"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, tc.file, tc.content)
			spec := tc.format + ":" + p
			if tc.format == "clinc150" {
				spec += "#train"
			}
			_, err := Load(spec)
			var fe *FileError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want a *FileError", err)
			}
			if fe.File != p || fe.Line != tc.line || !strings.Contains(fe.Reason, tc.reason) {
				t.Fatalf("err = %v, want %s:%d: ...%s...", err, p, tc.line, tc.reason)
			}
			if !strings.HasPrefix(err.Error(), p+":") {
				t.Fatalf("message %q does not start with file:line", err)
			}
		})
	}
}

func TestRasa(t *testing.T) {
	p := writeFile(t, "nlu.yml", `version: "3.1"
nlu:
- intent: check_balance
  examples: |
    - what's my [savings](account) balance
    - how much is in my [pink pig]{"entity": "account", "value": "savings"}
- intent: greet
  examples:
    - hello
    - text: hi there
- synonym: savings
  examples: |
    - pink pig
- regex: account_number
  examples: |
    - \d{10,12}
- lookup: banks
  examples: |
    - JPMC
    - Comerica
`)
	ds, err := Load("rasa:" + p)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Examples) != 4 {
		t.Fatalf("examples = %d", len(ds.Examples))
	}
	ex := ds.Examples[1]
	if ex.Text != "how much is in my pink pig" || len(ex.Entities) != 1 || ex.Entities[0].Value != "savings" || ex.Entities[0].Type != "account" {
		t.Fatalf("example = %+v", ex)
	}
	if ds.Synonyms["pink pig"] != "savings" || ds.Regexes["account_number"] != `(?:\d{10,12})` || len(ds.Lookups["banks"]) != 2 {
		t.Fatalf("resources = %v %v %v", ds.Synonyms, ds.Regexes, ds.Lookups)
	}
	if ds.Examples[3].Text != "hi there" {
		t.Fatalf("mapping example = %+v", ds.Examples[3])
	}
}

func TestCSVAndOOSLabel(t *testing.T) {
	p := writeFile(t, "a.csv", "\xef\xbb\xbftext,intent\nhello,greet\n\"what, is this\",other\n")
	ds, err := Load("csv:" + p + "?oos=other")
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Examples) != 2 || ds.Examples[1].Text != "what, is this" || ds.Examples[1].Intent != tandem.OutOfScope {
		t.Fatalf("examples = %+v", ds.Examples)
	}
	ds, err = LoadWith("csv:"+p, Options{OOSLabel: "other"})
	if err != nil || ds.Examples[1].Intent != tandem.OutOfScope {
		t.Fatalf("LoadWith: %+v %v", ds, err)
	}
	ds, err = Load("csv:" + p)
	if err != nil || ds.Examples[1].Intent != "other" {
		t.Fatalf("no rename: %+v %v", ds, err)
	}
	// No header row.
	p2 := writeFile(t, "b.csv", "hello,greet\nbye,goodbye\n")
	ds, err = Load("csv:" + p2)
	if err != nil || len(ds.Examples) != 2 {
		t.Fatalf("headerless: %+v %v", ds, err)
	}
	// The header names the columns in the other order.
	p3 := writeFile(t, "c.csv", "Intent,Text\ngreet,hello\n")
	ds, err = Load("csv:" + p3)
	if err != nil || len(ds.Examples) != 1 || ds.Examples[0].Text != "hello" || ds.Examples[0].Intent != "greet" {
		t.Fatalf("swapped header: %+v %v", ds, err)
	}
}

func TestDigestAndMerge(t *testing.T) {
	a := &Dataset{Examples: []Example{{Text: "hi", Intent: "greet"}}, Source: "a"}
	b := &Dataset{Examples: []Example{{Text: "bye", Intent: "goodbye", Entities: []Span{{"x", "bye", 0, 3}}}}, Regexes: map[string]string{"x": "b"}, Source: "b"}
	m := Merge(a, b)
	if len(m.Examples) != 2 || m.Source != "a + b" || !m.HasEntities() || m.Regexes["x"] != "b" {
		t.Fatalf("merge = %+v", m)
	}
	d1 := m.Digest()
	if d1 != Merge(a, b).Digest() {
		t.Fatal("digest not deterministic")
	}
	if d1 == Merge(b, a).Digest() {
		t.Fatal("digest ignores order")
	}
	m.Examples[0].Intent = "hello"
	if d1 == m.Digest() {
		t.Fatal("digest ignores labels")
	}
}

func TestCLINC150(t *testing.T) {
	p := testenv.Dataset(t, "clinc150/data_full.json")
	ds, err := Load("clinc150:" + p + "#train,val,oos_train,oos_val")
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Examples) != 18200 {
		t.Fatalf("train examples = %d, want 18200", len(ds.Examples))
	}
	if got := len(ds.Labels()); got != 151 {
		t.Fatalf("labels = %d, want 151", got)
	}
	test, err := Load("clinc150:" + p + "#test,oos_test")
	if err != nil {
		t.Fatal(err)
	}
	oos := 0
	for _, ex := range test.Examples {
		if ex.Intent == tandem.OutOfScope {
			oos++
		}
	}
	if len(test.Examples) != 5500 || oos != 1000 {
		t.Fatalf("test = %d examples, %d oos", len(test.Examples), oos)
	}
	// Order follows the split list.
	if test.Examples[0].Intent == tandem.OutOfScope || test.Examples[5499].Intent != tandem.OutOfScope {
		t.Fatal("split order not kept")
	}
	if _, err := Load("clinc150:" + p + "#bogus"); err == nil {
		t.Fatal("unknown split accepted")
	}
}

func TestSNIPS(t *testing.T) {
	p := testenv.Dataset(t, "snips")
	train, err := Load("snips:" + p + "#train")
	if err != nil {
		t.Fatal(err)
	}
	val, err := Load("snips:" + p + "#validate")
	if err != nil {
		t.Fatal(err)
	}
	if len(val.Examples) != 700 || len(train.Examples) < 13000 {
		t.Fatalf("sizes train=%d validate=%d", len(train.Examples), len(val.Examples))
	}
	if got := len(train.Labels()); got != 7 {
		t.Fatalf("labels = %d", got)
	}
	if n := len(train.SpanTypes()); n != 39 {
		t.Fatalf("slot types = %d, want 39", n)
	}
	// Every span's Value is the text it covers (SNIPS has no canonical values).
	for _, ex := range append(train.Examples, val.Examples...) {
		for _, sp := range ex.Entities {
			if got := text.Slice(ex.Text, sp.Start, sp.End); got != sp.Value {
				t.Fatalf("%q: span %+v covers %q", ex.Text, sp, got)
			}
		}
	}
	ex := val.Examples[0]
	if len(ex.Entities) == 0 {
		t.Fatalf("first validate example has no slots: %+v", ex)
	}
}

func TestNLUPP(t *testing.T) {
	p := testenv.Dataset(t, "nlupp-banking")
	train, err := Load("nlupp:" + p + "#0-9")
	if err != nil {
		t.Fatal(err)
	}
	test, err := Load("nlupp:" + p + "#10-19")
	if err != nil {
		t.Fatal(err)
	}
	all, err := Load("nlupp:" + p)
	if err != nil {
		t.Fatal(err)
	}
	if len(train.Examples)+len(test.Examples) != 2071 || len(all.Examples) != 2071 {
		t.Fatalf("sizes %d + %d, all %d", len(train.Examples), len(test.Examples), len(all.Examples))
	}
	multi, spans := 0, 0
	for _, ex := range all.Examples {
		if len(ex.Intents) > 1 {
			multi++
			if ex.Intent != ex.Intents[0] {
				t.Fatalf("Intent %q is not the first of %v", ex.Intent, ex.Intents)
			}
		}
		spans += len(ex.Entities)
	}
	if multi == 0 || spans == 0 {
		t.Fatalf("multi-label %d, spans %d", multi, spans)
	}
	if len(all.EntityTypes) != 17 {
		t.Fatalf("declared slot types = %v", all.EntityTypes)
	}
	// The second example of fold 0 has known spans.
	ex := all.Examples[1]
	if got := spanTexts(ex); !reflect.DeepEqual(got, []string{"time_from=9 05 in the morning", "time_to=25 to 7 p.m.", "date_period=next week"}) {
		t.Fatalf("spans = %v", got)
	}
	if _, err := Load("nlupp:" + p + "#40"); err == nil {
		t.Fatal("missing fold accepted")
	}
}

func TestNLUPPUnknownSlot(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "ontology.json"), []byte(`{"intents": {}, "slots": {"date": {}}}`), 0o644)
	os.WriteFile(filepath.Join(dir, "fold0.json"), []byte("[\n {\"text\": \"on monday\", \"intents\": [\"x\"],\n  \"slots\": {\"date\": {\"text\": \"monday\", \"span\": [3, 9]}}},\n {\"text\": \"at 5\", \"intents\": [],\n  \"slots\": {\"hour\": {\"text\": \"5\", \"span\": [3, 4]}}}\n]"), 0o644)
	_, err := Load("nlupp:" + dir)
	var fe *FileError
	if !errors.As(err, &fe) || fe.Line != 4 || !strings.Contains(fe.Reason, `unknown entity type "hour"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestBitext(t *testing.T) {
	p := testenv.Dataset(t, "bitext-customer-support/bitext_customer_support_20k.csv")
	ds, err := Load("bitext:" + p)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Examples) != 21534 {
		t.Fatalf("examples = %d, want 21534", len(ds.Examples))
	}
	if n := len(ds.Labels()); n != 27 {
		t.Fatalf("labels = %d, want 27", n)
	}
	if ds.Examples[0].Intent != "create_account" || !strings.HasPrefix(ds.Examples[0].Text, "I don't have an online account") {
		t.Fatalf("first = %+v", ds.Examples[0])
	}
	// The inline fixture covers the header and BOM handling.
	q := writeFile(t, "b.csv", "\xef\xbb\xbfflags,utterance,category,intent\nB,\"cancel, my order\",ORDER,cancel_order\n")
	ds, err = Load("bitext:" + q)
	if err != nil || len(ds.Examples) != 1 || ds.Examples[0].Text != "cancel, my order" {
		t.Fatalf("fixture: %+v %v", ds, err)
	}
}

func FuzzParseAnnotated(f *testing.F) {
	for _, s := range []string{"ship to [Berlin](city)", `[a]{"entity":"b"}`, `\[x\]`, "[", "]", "[a](b:c)", "中[文](x)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		plain, spans, err := ParseAnnotated(s)
		if err != nil {
			return
		}
		n := len([]rune(plain))
		for _, sp := range spans {
			if sp.Start < 0 || sp.End > n || sp.Start >= sp.End || sp.Type == "" {
				t.Fatalf("bad span %+v for %q", sp, plain)
			}
		}
	})
}

// TestAnnotatedValueEscapes: the documented escapes work in values as in
// the text: "\[", "\]", "\{", "\}" used to stay in the value with their
// backslash.
func TestAnnotatedValueEscapes(t *testing.T) {
	for in, want := range map[string]string{
		`[x](city:a \[b\])`:         "a [b]",
		`[x](city:a \{b\})`:         "a {b}",
		`[x](city:New York \(NY\))`: "New York (NY)",
		`[x](city:a \\ b)`:          `a \ b`,
		`[x](city:C:\path)`:         `C:\path`,
	} {
		_, spans, err := ParseAnnotated(in)
		if err != nil || len(spans) != 1 || spans[0].Value != want {
			t.Errorf("ParseAnnotated(%q) = %+v, %v; want value %q", in, spans, err, want)
		}
	}
}

// TestJSONByteOrderMark: a JSON file saved with a UTF-8 byte order mark
// loads like one without (CSV and YAML already did).
func TestJSONByteOrderMark(t *testing.T) {
	p := writeFile(t, "c.json", "\xef\xbb\xbf{\"train\": [[\"hi\", \"greet\"]]}\n")
	ds, err := Load("clinc150:" + p + "#train")
	if err != nil || len(ds.Examples) != 1 {
		t.Fatalf("%v %v", ds, err)
	}
}

// TestFoldRangeBounded: a huge fold range is refused before it is expanded
// (it took seconds and gigabytes, then crashed).
func TestFoldRangeBounded(t *testing.T) {
	if _, err := Load("nlupp:" + t.TempDir() + "#0-300000000"); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("err = %v", err)
	}
}

// TestCheckSynonyms: two files mapping one variant to different canonical
// values are reported (Merge keeps the later one); agreeing files are not.
func TestCheckSynonyms(t *testing.T) {
	a := &Dataset{Source: "a.yml", Synonyms: map[string]string{"ny": "New York"}}
	b := &Dataset{Source: "b.yml", Synonyms: map[string]string{"ny": "Newark"}}
	c := &Dataset{Source: "c.yml", Synonyms: map[string]string{"ny": "New York", "la": "Los Angeles"}}
	if err := CheckSynonyms(a, b); err == nil || !strings.Contains(err.Error(), "a.yml") || !strings.Contains(err.Error(), "b.yml") {
		t.Fatalf("conflict: %v", err)
	}
	if err := CheckSynonyms(a, nil, c); err != nil {
		t.Fatalf("agreeing sets: %v", err)
	}
}

// TestYAMLTrailingEmptyDocument: a file ending with an empty document (a
// trailing "---", with a comment, or "--- ~") loads: there is nothing to
// drop; a second document with data is still refused.
func TestYAMLTrailingEmptyDocument(t *testing.T) {
	for _, tail := range []string{"---\n", "---\n# nothing more\n", "--- ~\n"} {
		p := writeFile(t, "a.yml", "intents:\n  a: [hi]\n"+tail)
		if ds, err := Load("tandem:" + p); err != nil || len(ds.Examples) != 1 {
			t.Errorf("%q: %v", tail, err)
		}
	}
}
