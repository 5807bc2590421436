package kbapi_test

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/knowledge"
)

// Malformed ids and filter values (invalid UTF-8, control characters,
// absurd lengths) are 400 invalid on both stores, never a PostgreSQL error
// (500), and change nothing.
func TestMalformedParams(t *testing.T) {
	eachStore(t, bagEmbedder{}, func(t *testing.T, e *storeEnv) {
		r := e.do(t, "POST", "/faqs", e.admin, []byte(`{"external_id":"ship","question":"How long is shipping?","answer":"3 days","tags":["post"]}`))
		if r.status != 201 {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
		long := strings.Repeat("x", 201)
		cases := []struct{ method, path, field string }{
			{"GET", "/faqs/%FF", "id"},
			{"GET", "/faqs/%00", "id"},
			{"GET", "/faqs/a%0Ab", "id"},
			{"GET", "/faqs/" + long, "id"},
			{"GET", "/faqs/%FF/versions", "id"},
			{"GET", "/faqs/%00/versions/1", "id"},
			{"PUT", "/faqs/%FF", "id"},
			{"DELETE", "/faqs/%FF", "id"},
			{"DELETE", "/faqs/%00", "id"},
			{"POST", "/faqs/%00/publish", "id"},
			{"POST", "/faqs/%FF/unpublish", "id"},
			{"GET", "/faqs?after=%FF", "after"},
			{"GET", "/faqs?after=%00", "after"},
			{"GET", "/faqs?category=%00", "category"},
			{"GET", "/faqs?category=%FF", "category"},
			{"GET", "/faqs?tag=%FF", "tag"},
			{"GET", "/faqs?tag=post&tag=%00", "tag"},
			{"GET", "/faqs?locale=%FF", "locale"},
			{"GET", "/faqs?locale=" + strings.Repeat("e", 201), "locale"},
			{"GET", "/export?locale=%00", "locale"},
			{"GET", "/export?format=csv&category=%FF", "category"},
			{"GET", "/export?tag=%FF", "tag"},
			{"GET", "/search?q=hello&tag=%FF", "tag"},
			{"GET", "/search?q=hello&tag=%00", "tag"},
			{"GET", "/search?q=hello&locale=%FF", "locale"},
			{"GET", "/search?q=hello&locale=%00", "locale"},
			{"GET", "/search?q=%FF", "q"},
		}
		for _, tc := range cases {
			var body []byte
			if tc.method == "PUT" {
				body = []byte(`{"question":"q","answer":"a","version":1}`)
			}
			r := e.do(t, tc.method, tc.path, e.admin, body)
			if r.status != 400 {
				t.Errorf("%s %s: %d %s, want 400", tc.method, tc.path, r.status, r.body)
				continue
			}
			if code, msg := r.errCode(t); code != tandem.EINVALID || !strings.HasPrefix(msg, tc.field+":") {
				t.Errorf("%s %s: %s %q, want invalid naming %q", tc.method, tc.path, code, msg, tc.field)
			}
		}
		// Well-formed values behave as before.
		if r := e.do(t, "GET", "/faqs/faq_nosuchitem", e.admin, nil); r.status != 404 {
			t.Errorf("unknown id: %d %s", r.status, r.body)
		}
		if r := e.do(t, "GET", "/faqs?tag=post&category=&after=faq_0", e.admin, nil); r.status != 200 || !strings.Contains(string(r.body), `"ship"`) {
			t.Errorf("list: %d %s", r.status, r.body)
		}
		if r := e.do(t, "GET", "/search?q=shipping&tag=post&locale=en-US", e.admin, nil); r.status != 200 || !strings.Contains(string(r.body), `"ship"`) {
			t.Errorf("search: %d %s", r.status, r.body)
		}
		// An empty tag filters nothing, as an empty category does (it
		// required the tag "": an export of nothing answered 200).
		for _, path := range []string{"/faqs?tag=", "/search?q=shipping&tag=", "/export?format=jsonl&tag=&tag=post"} {
			if r := e.do(t, "GET", path, e.admin, nil); r.status != 200 || !strings.Contains(string(r.body), `"ship"`) {
				t.Errorf("%s: %d %s", path, r.status, r.body)
			}
		}
		r = e.do(t, "GET", "/faqs", e.admin, nil)
		if r.status != 200 || strings.Count(string(r.body), `"external_id"`) != 1 {
			t.Errorf("after the bad requests: %d %s", r.status, r.body)
		}
	})
}

// Answers with words longer than PostgreSQL's lexeme limit (an unspaced
// script, a long key) are stored on both stores, one by one and by import.
func TestLongWords(t *testing.T) {
	eachStore(t, bagEmbedder{}, func(t *testing.T, e *storeEnv) {
		khmer := strings.Repeat("សួស្តី", 130)
		for _, answer := range []string{khmer, "key: " + strings.Repeat("ab12", 520)} {
			body, _ := json.Marshal(map[string]any{"question": "Greeting?", "answer": answer})
			if r := e.do(t, "POST", "/faqs", e.admin, body); r.status != 201 {
				t.Fatalf("create with a %d-byte word: %d %s", len(answer), r.status, r.body)
			}
		}
		rows, _ := json.Marshal([]map[string]any{
			{"external_id": "km", "question": "Hello?", "answer": khmer},
			{"external_id": "bad", "question": "", "answer": "no question"},
		})
		r := e.do(t, "POST", "/import?format=json&mode=partial", e.admin, rows)
		var rep knowledge.ImportReport
		r.json(t, &rep)
		if r.status != 200 || rep.Created != 1 || rep.Failed != 1 {
			t.Fatalf("partial import: %d %s", r.status, r.body)
		}
		r = e.do(t, "GET", "/search?mode=lexical&q="+url.QueryEscape(khmer), e.admin, nil)
		var res knowledge.SearchResult
		r.json(t, &res)
		if r.status != 200 || len(res.Hits) != 2 {
			t.Fatalf("search for the long word: %d %s", r.status, r.body)
		}
	})
}
