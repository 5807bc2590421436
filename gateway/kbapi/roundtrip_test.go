package kbapi_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tandem-chat/tandem/knowledge"
)

func importReport(t *testing.T, e *storeEnv, query string, body []byte) knowledge.ImportReport {
	t.Helper()
	r := e.do(t, "POST", "/import?"+query, e.admin, body)
	var rep knowledge.ImportReport
	r.json(t, &rep)
	if r.status != 200 {
		t.Fatalf("import %s: %d %s", query, r.status, r.body)
	}
	return rep
}

// An export re-imports unchanged, also when FAQs have no external id (they
// are matched by id), and restores them into an empty store (those keyed
// by id with their ids).
func TestExportWithoutExternalIDReimports(t *testing.T) {
	eachStore(t, bagEmbedder{}, func(t *testing.T, e *storeEnv) {
		for _, b := range []string{
			`{"question":"How long is shipping?","answer":"3 days","status":"published"}`,
			`{"question":"Do you ship abroad?","phrasings":["international delivery"],"answer":"Yes","tags":["shipping"]}`,
			`{"external_id":"x2","question":"Pay by card?","answer":"Yes","status":"published"}`,
		} {
			if r := e.do(t, "POST", "/faqs", e.admin, []byte(b)); r.status != 201 {
				t.Fatalf("create: %d %s", r.status, r.body)
			}
		}
		for _, f := range []string{"json", "jsonl", "csv"} {
			ex := e.do(t, "GET", "/export?format="+f, e.admin, nil)
			if ex.status != 200 {
				t.Fatalf("export %s: %d %s", f, ex.status, ex.body)
			}
			for _, q := range []string{"dry_run=true&format=" + f, "format=" + f} {
				rep := importReport(t, e, q, ex.body)
				if rep.Unchanged != 3 || rep.Created+rep.Updated+rep.Failed != 0 {
					t.Fatalf("re-import %s: %+v", q, rep)
				}
			}
		}
		// Restore into an empty store: same ids; a second import changes nothing.
		ex := e.do(t, "GET", "/export?format=json", e.admin, nil)
		fresh := setupStore(t, "mem", bagEmbedder{}, nil)
		if rep := importReport(t, fresh, "format=json", ex.body); rep.Created != 3 {
			t.Fatalf("restore: %+v", rep)
		}
		if rep := importReport(t, fresh, "format=json", ex.body); rep.Unchanged != 3 {
			t.Fatalf("restore again: %+v", rep)
		}
		var orig, restored []map[string]any
		if err := json.Unmarshal(ex.body, &orig); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(fresh.do(t, "GET", "/export?format=json", fresh.admin, nil).body, &restored); err != nil {
			t.Fatal(err)
		}
		ids := map[any]any{}
		for _, f := range restored {
			ids[f["id"]] = f["question"]
		}
		for _, f := range orig {
			// Rows keyed by id keep it; the others get new ids.
			if _, hasExt := f["external_id"]; !hasExt && ids[f["id"]] != f["question"] {
				t.Errorf("exported %v, not restored with its id: %v", f, restored)
			}
		}
		// A row keyed by id that names no external id keeps the FAQ's.
		var x2 map[string]any
		for _, f := range orig {
			if f["external_id"] == "x2" {
				x2 = f
			}
		}
		delete(x2, "external_id")
		x2["answer"] = "Yes, all cards."
		body, _ := json.Marshal([]any{x2})
		if rep := importReport(t, e, "format=json", body); rep.Updated != 1 {
			t.Fatalf("update by id: %+v", rep)
		}
		r := e.do(t, "GET", "/faqs/"+x2["id"].(string), e.admin, nil)
		if !strings.Contains(string(r.body), `"external_id":"x2"`) || !strings.Contains(string(r.body), "all cards") {
			t.Errorf("after the update by id: %s", r.body)
		}
		// Neither key: a row error.
		r = e.do(t, "POST", "/import?format=json", e.admin, []byte(`[{"question":"Q?","answer":"A"}]`))
		if r.status != 422 || !strings.Contains(string(r.body), "external_id: required") {
			t.Errorf("row without keys: %d %s", r.status, r.body)
		}
	})
}

// CSV and JSON exports re-import with nothing updated: a lone phrasing
// containing "|" is not split, and answers keep their line breaks (stored
// as "\n": CSV cannot carry "\r\n").
func TestExportReimportKeepsContent(t *testing.T) {
	eachStore(t, bagEmbedder{}, func(t *testing.T, e *storeEnv) {
		for _, b := range []string{
			`{"external_id":"x1","question":"Pay by card?","phrasings":["visa|mastercard ok?"],"answer":"Yes","status":"published"}`,
			`{"external_id":"x2","question":"Returns?","phrasings":["a|b","c"],"answer":"Line one\r\nLine two\rthree","status":"published"}`,
			`{"question":"No key?","phrasings":["|"],"answer":"Line\r\n\r\nbreak"}`,
		} {
			r := e.do(t, "POST", "/faqs", e.admin, []byte(b))
			if r.status != 201 {
				t.Fatalf("create: %d %s", r.status, r.body)
			}
			if strings.Contains(string(r.body), `\r`) {
				t.Errorf("stored a carriage return: %s", r.body)
			}
		}
		before := e.do(t, "GET", "/export?format=json", e.admin, nil).body
		for _, f := range []string{"csv", "json", "jsonl"} {
			ex := e.do(t, "GET", "/export?format="+f, e.admin, nil)
			rep := importReport(t, e, "format="+f, ex.body)
			if rep.Unchanged != 3 || rep.Updated != 0 || rep.Created != 0 {
				t.Fatalf("re-import of the %s export: %+v", f, rep)
			}
		}
		if after := e.do(t, "GET", "/export?format=json", e.admin, nil).body; string(after) != string(before) {
			t.Errorf("content changed:\n%s\n%s", before, after)
		}
	})
}
