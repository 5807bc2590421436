package kbapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/knowledge"
	"github.com/tandem-chat/tandem/knowledge/memstore"
)

type bagEmbedder struct{}

func (bagEmbedder) Dim() int        { return 32 }
func (bagEmbedder) Version() string { return "bag-test" }
func (bagEmbedder) Embed(_ context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	for i, t := range texts {
		v := make([]float32, 32)
		for _, w := range knowledge.Tokens(t) {
			h := fnv.New32a()
			h.Write([]byte(w))
			v[h.Sum32()%32]++
		}
		v[0] += 0.01
		out[i] = v
	}
	return out, nil
}

type env struct {
	srv        *httptest.Server
	svc        *knowledge.Service
	store      *memstore.Store
	admin      string // JWT with role admin
	agent      string // JWT with role agent
	adminToken string // static token
}

const secret = "0123456789abcdef0123456789abcdef-test"

func setup(t *testing.T) *env {
	t.Helper()
	return setupStore(t, "mem", bagEmbedder{}, nil).env
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
}

func (r resp) errCode(t *testing.T) (string, string) {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	r.json(t, &e)
	if e.Error.Code == "" {
		t.Fatalf("no error code in %s", r.body)
	}
	return e.Error.Code, e.Error.Message
}

func (e *env) do(t *testing.T, method, path, token string, body []byte, hdr ...string) resp {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+"/api/v1/knowledge"+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

func TestAuth(t *testing.T) {
	e := setup(t)
	r := e.do(t, "GET", "/faqs", "", nil)
	if code, _ := r.errCode(t); r.status != 401 || code != tandem.EUNAUTHORIZED {
		t.Fatalf("no token: %d %s", r.status, r.body)
	}
	r = e.do(t, "GET", "/faqs", "forged.jwt.token", nil)
	if r.status != 401 {
		t.Fatalf("bad token: %d", r.status)
	}
	r = e.do(t, "GET", "/faqs", e.agent, nil)
	if code, _ := r.errCode(t); r.status != 403 || code != tandem.EFORBIDDEN {
		t.Fatalf("agent: %d %s", r.status, r.body)
	}
	for _, tok := range []string{e.admin, e.adminToken} {
		if r := e.do(t, "GET", "/faqs", tok, nil); r.status != 200 {
			t.Fatalf("admin: %d %s", r.status, r.body)
		}
	}
}

// TestPutKeepsWhatItLeavesOut: a PUT without status or external_id keeps
// them (editing a published answer left it a draft, and its import key
// gone, so a re-import created a duplicate); external_id sent empty or null
// clears the key.
func TestPutKeepsWhatItLeavesOut(t *testing.T) {
	e := setup(t)
	var f tandem.FAQ
	e.do(t, "POST", "/faqs", e.admin, []byte(`{"external_id":"put-1","question":"Where is my parcel?","answer":"Track it.","status":"published"}`)).json(t, &f)
	path := "/faqs/" + f.ID
	r := e.do(t, "PUT", path, e.admin, []byte(`{"question":"Where is my parcel?","answer":"Track it under Orders."}`), "If-Match", `"1"`)
	var g tandem.FAQ
	r.json(t, &g)
	if r.status != 200 || g.Status != tandem.FAQPublished || g.ExternalID != "put-1" || g.Answer != "Track it under Orders." {
		t.Fatalf("put leaving out status and external_id: %d %+v", r.status, g)
	}
	var rep knowledge.ImportReport
	e.do(t, "POST", "/import?format=json", e.admin, []byte(`[{"external_id":"put-1","question":"Where is my parcel?","answer":"Track it under Orders.","status":"published"}]`)).json(t, &rep)
	if rep.Created != 0 || rep.Unchanged != 1 {
		t.Fatalf("re-import after the put: %+v", rep)
	}
	for i, body := range []string{`{"external_id":"","question":"Where is my parcel?","answer":"A."}`, `{"external_id":null,"question":"Where is my parcel?","answer":"B."}`} {
		if i == 1 {
			e.do(t, "PUT", path, e.admin, []byte(`{"external_id":"put-2","question":"Where is my parcel?","answer":"A."}`), "If-Match", `"3"`)
		}
		r = e.do(t, "PUT", path, e.admin, []byte(body), "If-Match", fmt.Sprintf(`"%d"`, 2+2*i))
		g = tandem.FAQ{}
		r.json(t, &g)
		if r.status != 200 || g.ExternalID != "" || g.Status != tandem.FAQPublished {
			t.Fatalf("put %s: %d %+v %s", body, r.status, g, r.body)
		}
	}
}

// TestFieldNamesAreExact: a field name in another case is an unknown field
// on create, update and import alike; a PUT with "External_Id" used to
// answer 200 and keep the old key (its presence check saw no external_id,
// while encoding/json had matched it). A byte order mark before a POST body
// is skipped, as imports skip it; a null import row is not an FAQ.
func TestFieldNamesAreExact(t *testing.T) {
	e := setup(t)
	var f tandem.FAQ
	e.do(t, "POST", "/faqs", e.admin, []byte("\xef\xbb\xbf"+`{"external_id":"case-1","question":"Where is my parcel?","answer":"Track it."}`)).json(t, &f)
	if f.ID == "" || f.ExternalID != "case-1" {
		t.Fatalf("create with a byte order mark: %+v", f)
	}
	for _, c := range []struct{ method, path, body string }{
		{"PUT", "/faqs/" + f.ID, `{"question":"Where is my parcel?","answer":"B.","External_Id":"case-2"}`},
		{"POST", "/faqs", `{"QUESTION":"Where is my parcel?","answer":"B."}`},
	} {
		r := e.do(t, c.method, c.path, e.admin, []byte(c.body), "If-Match", `"1"`)
		if code, msg := r.errCode(t); r.status != 400 || code != "invalid" || !strings.Contains(msg, "unknown field") {
			t.Fatalf("%s %s: %d %s %s", c.method, c.body, r.status, code, msg)
		}
	}
	var g tandem.FAQ
	e.do(t, "GET", "/faqs/"+f.ID, e.admin, nil).json(t, &g)
	if g.Version != 1 || g.ExternalID != "case-1" {
		t.Fatalf("after the refused edit: %+v", g)
	}
	// A PUT with a byte order mark changes external_id too (its presence
	// check read the raw body, failed on the mark and kept the old key).
	r0 := e.do(t, "PUT", "/faqs/"+f.ID, e.admin, []byte("\xef\xbb\xbf"+`{"question":"Where is my parcel?","answer":"C.","external_id":"case-3"}`), "If-Match", `"1"`)
	g = tandem.FAQ{}
	r0.json(t, &g)
	if r0.status != 200 || g.ExternalID != "case-3" {
		t.Fatalf("PUT with a byte order mark: %d %s", r0.status, r0.body)
	}
	var rep knowledge.ImportReport
	r := e.do(t, "POST", "/import?format=jsonl&mode=partial", e.admin, []byte("{\"External_Id\":\"x\",\"question\":\"Q?\",\"answer\":\"A.\"}\nnull\n"))
	r.json(t, &rep)
	if rep.Created != 0 || rep.Failed != 2 || len(rep.Rows) != 2 || rep.Rows[0].Error == nil || !strings.Contains(rep.Rows[0].Error.Message, "unknown field") ||
		rep.Rows[1].Error == nil || !strings.Contains(rep.Rows[1].Error.Message, "got null") {
		t.Fatalf("import: %d %s", r.status, r.body)
	}
}

func TestCRUDWithETags(t *testing.T) {
	e := setup(t)
	r := e.do(t, "POST", "/faqs", e.admin, []byte(`{"external_id":"ship","question":"How long does shipping take?","phrasings":["delivery time"],"answer":"3-5 days.","tags":["Shipping"],"status":"published"}`))
	if r.status != 201 || r.header.Get("ETag") != `"1"` || !strings.HasPrefix(r.header.Get("Location"), "/api/v1/knowledge/faqs/faq_") {
		t.Fatalf("create: %d %v %s", r.status, r.header, r.body)
	}
	var f tandem.FAQ
	r.json(t, &f)
	if f.UpdatedBy != "Ada <u-1>" || f.Tags[0] != "shipping" {
		t.Fatalf("created %+v", f)
	}
	path := "/faqs/" + f.ID
	if r := e.do(t, "GET", path, e.admin, nil); r.status != 200 || r.header.Get("ETag") != `"1"` {
		t.Fatalf("get: %d %v", r.status, r.header)
	}
	if r := e.do(t, "GET", path, e.admin, nil, "If-None-Match", `"1"`); r.status != 304 {
		t.Fatalf("conditional get: %d", r.status)
	}
	upd := []byte(`{"external_id":"ship","question":"How long does shipping take?","answer":"2-4 days.","status":"published"}`)
	if r := e.do(t, "PUT", path, e.admin, upd); r.status != 400 {
		t.Fatalf("update without If-Match: %d %s", r.status, r.body)
	}
	r = e.do(t, "PUT", path, e.admin, upd, "If-Match", `"1"`)
	if r.status != 200 || r.header.Get("ETag") != `"2"` {
		t.Fatalf("update: %d %s", r.status, r.body)
	}
	r = e.do(t, "PUT", path, e.admin, []byte(`{"question":"Stale?","answer":"stale"}`), "If-Match", `"1"`)
	if code, msg := r.errCode(t); r.status != 409 || code != tandem.ECONFLICT || !strings.Contains(msg, "version 2") {
		t.Fatalf("stale update: %d %s", r.status, r.body)
	}
	if r := e.do(t, "PUT", path, e.admin, []byte(`{"version":-1,"question":"Q?","answer":"a"}`)); r.status != 400 || !strings.Contains(string(r.body), "versions start at 1") {
		t.Fatalf("negative body version: %d %s", r.status, r.body)
	}
	// Body version works in place of If-Match.
	if r := e.do(t, "PUT", path, e.admin, []byte(`{"version":2,"question":"How long does shipping take?","answer":"1-3 days.","status":"published"}`)); r.status != 200 {
		t.Fatalf("update with body version: %d %s", r.status, r.body)
	}
	if r := e.do(t, "POST", path+"/unpublish", e.admin, nil, "If-Match", `"3"`); r.status != 200 || r.header.Get("ETag") != `"4"` {
		t.Fatalf("unpublish: %d %s", r.status, r.body)
	}
	if r := e.do(t, "POST", path+"/publish", e.admin, nil); r.status != 200 {
		t.Fatalf("publish: %d %s", r.status, r.body)
	}
	var revs struct{ Items []knowledge.Revision }
	e.do(t, "GET", path+"/versions", e.admin, nil).json(t, &revs)
	if len(revs.Items) != 5 || revs.Items[1].FAQ.Answer != "2-4 days." {
		t.Fatalf("versions: %+v", revs)
	}
	var rev knowledge.Revision
	e.do(t, "GET", path+"/versions/2", e.admin, nil).json(t, &rev)
	if rev.FAQ.Answer != "2-4 days." || rev.Op != knowledge.OpUpdate {
		t.Fatalf("version 2: %+v", rev)
	}
	if r := e.do(t, "GET", path+"/versions/99", e.admin, nil); r.status != 404 {
		t.Fatalf("missing version: %d", r.status)
	}
	if r := e.do(t, "DELETE", path, e.admin, nil, "If-Match", `"1"`); r.status != 409 {
		t.Fatalf("stale delete: %d", r.status)
	}
	if r := e.do(t, "DELETE", path, e.admin, nil, "If-Match", `"5"`); r.status != 204 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if r := e.do(t, "GET", path, e.admin, nil); r.status != 404 {
		t.Fatalf("get deleted: %d", r.status)
	}
	e.do(t, "GET", path+"/versions", e.admin, nil).json(t, &revs)
	if len(revs.Items) != 6 || revs.Items[5].Op != knowledge.OpDelete {
		t.Fatalf("audit after delete: %+v", revs.Items)
	}
	// The trail in pages: next names the last version of a page that has
	// more after it.
	var got []int64
	after := ""
	for pages := 0; ; pages++ {
		var page struct {
			Items []knowledge.Revision
			Next  *int64
		}
		e.do(t, "GET", path+"/versions?limit=4"+after, e.admin, nil).json(t, &page)
		for _, r := range page.Items {
			got = append(got, r.FAQ.Version)
		}
		if page.Next == nil {
			break
		}
		if pages > 3 {
			t.Fatalf("paging does not end: %v", got)
		}
		after = fmt.Sprintf("&after=%d", *page.Next)
	}
	if !slices.Equal(got, []int64{1, 2, 3, 4, 5, 6}) {
		t.Fatalf("versions read in pages of 4 = %v, want 1-6", got)
	}
	var whole struct{ Items []knowledge.Revision }
	if r := e.do(t, "GET", path+"/versions?limit=1000", e.admin, nil); r.status != 200 {
		t.Fatalf("versions?limit=1000 (the largest page): %d %s", r.status, r.body)
	} else if r.json(t, &whole); len(whole.Items) != 6 {
		t.Fatalf("versions?limit=1000: %d items, want 6", len(whole.Items))
	}
	for _, q := range []string{"limit=0", "limit=1001", "limit=x", "after=-1", "after=1.5"} {
		if code, msg := e.do(t, "GET", path+"/versions?"+q, e.admin, nil).errCode(t); code != tandem.EINVALID || msg == "" {
			t.Errorf("versions?%s: %s %q, want invalid", q, code, msg)
		}
	}
}

func TestConcurrentEdits(t *testing.T) {
	e := setup(t)
	var f tandem.FAQ
	e.do(t, "POST", "/faqs", e.admin, []byte(`{"question":"Q?","answer":"A"}`)).json(t, &f)
	var wg sync.WaitGroup
	statuses := make([]int, 10)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = e.do(t, "PUT", "/faqs/"+f.ID, e.admin, []byte(fmt.Sprintf(`{"question":"Q?","answer":"writer %d"}`, i)), "If-Match", `"1"`).status
		}()
	}
	wg.Wait()
	ok, conflict := 0, 0
	for _, s := range statuses {
		switch s {
		case 200:
			ok++
		case 409:
			conflict++
		}
	}
	if ok != 1 || conflict != 9 {
		t.Fatalf("statuses %v: want one 200 and nine 409", statuses)
	}
	var revs struct{ Items []knowledge.Revision }
	e.do(t, "GET", "/faqs/"+f.ID+"/versions", e.admin, nil).json(t, &revs)
	if len(revs.Items) != 2 {
		t.Fatalf("%d revisions, want 2 (nothing lost, nothing doubled)", len(revs.Items))
	}
}

func TestBadInput(t *testing.T) {
	e := setup(t)
	cases := []struct {
		name, body, want string
	}{
		{"unknown field", `{"question":"Q?","answer":"A","colour":"red"}`, `unknown field "colour"`},
		{"invalid utf8", "{\"question\":\"Q\xff?\",\"answer\":\"A\"}", "UTF-8"},
		{"oversized question", `{"question":"` + strings.Repeat("q", 501) + `","answer":"A"}`, "question"},
		{"oversized answer", `{"question":"Q?","answer":"` + strings.Repeat("a", 20001) + `"}`, "answer"},
		{"empty answer", `{"question":"Q?","answer":"  "}`, "answer"},
		{"bad status", `{"question":"Q?","answer":"A","status":"live"}`, "status"},
		{"bad locale", `{"question":"Q?","answer":"A","locale":"English!"}`, "locale"},
		{"bad threshold", `{"question":"Q?","answer":"A","threshold":3}`, "threshold"},
		{"not json", `question=Q`, "invalid"},
		{"two objects", `{"question":"Q?","answer":"A"}{}`, "trailing"},
	}
	for _, tc := range cases {
		r := e.do(t, "POST", "/faqs", e.admin, []byte(tc.body))
		code, msg := r.errCode(t)
		if r.status != 400 || code != tandem.EINVALID || !strings.Contains(msg, tc.want) {
			t.Errorf("%s: %d %s", tc.name, r.status, r.body)
		}
	}
	huge := []byte(`{"question":"Q?","answer":"` + strings.Repeat("a", 2<<20) + `"}`)
	if r := e.do(t, "POST", "/faqs", e.admin, huge); r.status != 413 {
		t.Errorf("2 MiB FAQ: %d", r.status)
	}
	if r := e.do(t, "GET", "/search", e.admin, nil); r.status != 400 {
		t.Errorf("search without q: %d", r.status)
	}
	if p, _ := e.store.List(context.Background(), knowledge.ListFilter{}); len(p.Items) != 0 {
		t.Fatalf("bad input stored %d items", len(p.Items))
	}
}

func count(t *testing.T, e *env) int {
	p, err := e.store.List(context.Background(), knowledge.ListFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return len(p.Items)
}

func TestImport(t *testing.T) {
	e := setup(t)
	csv := "external_id,question,answer,phrasings,status\n" +
		"pay,How can I pay?,Card or PayPal.,payment options|pay by card,published\n" +
		"bad,\"unterminated,x\n"
	r := e.do(t, "POST", "/import?format=csv", e.admin, []byte(csv))
	if code, msg := r.errCode(t); r.status != 400 || code != tandem.EINVALID || !strings.Contains(msg, "malformed CSV") {
		t.Fatalf("broken CSV: %d %s", r.status, r.body)
	}
	csv = "external_id,question,answer,phrasings,status\n" +
		"pay,How can I pay?,Card or PayPal.,payment options|pay by card,published\n" +
		"short,Only two\n" +
		"ret,How do I return an item?,Within 30 days.,,published\n" +
		"pay,Duplicate,Dup.,,\n" +
		"long," + strings.Repeat("x", 600) + ",A,,\n"
	r = e.do(t, "POST", "/import", e.admin, []byte(csv), "Content-Type", "text/csv")
	if r.status != 422 {
		t.Fatalf("atomic import with bad rows: %d %s", r.status, r.body)
	}
	var ie struct {
		Error  struct{ Code, Message string }
		Report knowledge.ImportReport
	}
	r.json(t, &ie)
	if ie.Error.Code != tandem.EINVALID || ie.Report.Applied || ie.Report.Failed != 3 || count(t, e) != 0 {
		t.Fatalf("atomic report: %+v, %d stored", ie, count(t, e))
	}
	for _, row := range []int{1, 3, 4} {
		if ie.Report.Rows[row].Error == nil {
			t.Errorf("row %d has no error: %+v", row+1, ie.Report.Rows[row])
		}
	}
	if ie.Report.Rows[2].Line != 4 {
		t.Errorf("row 3 line %d, want 4", ie.Report.Rows[2].Line)
	}
	r = e.do(t, "POST", "/import?format=csv&mode=partial&dry_run=true", e.admin, []byte(csv))
	var rep knowledge.ImportReport
	r.json(t, &rep)
	if r.status != 200 || rep.Applied || rep.Created != 2 || count(t, e) != 0 {
		t.Fatalf("dry run: %d %+v", r.status, rep)
	}
	r = e.do(t, "POST", "/import?format=csv&mode=partial", e.admin, []byte(csv))
	r.json(t, &rep)
	if r.status != 200 || !rep.Applied || rep.Created != 2 || rep.Failed != 3 || count(t, e) != 2 {
		t.Fatalf("partial: %d %+v", r.status, rep)
	}
	applied := 0
	for _, row := range rep.Rows {
		if row.Action != "" {
			applied++
			if row.ID == "" || row.Error != nil {
				t.Errorf("applied row without id: %+v", row)
			}
		}
	}
	if applied != 2 {
		t.Fatalf("%d rows reported applied, want 2", applied)
	}
	// JSONL upsert by external id: one unchanged, one updated, one new.
	jsonl := `{"external_id":"pay","question":"How can I pay?","answer":"Card or PayPal.","phrasings":["payment options","pay by card"],"status":"published"}
{"external_id":"ret","question":"How do I return an item?","answer":"Within 60 days.","status":"published"}
{"external_id":"new","question":"Do you have gift cards?","answer":"Yes."}
`
	r = e.do(t, "POST", "/import?format=jsonl", e.admin, []byte(jsonl))
	r.json(t, &rep)
	if r.status != 200 || rep.Unchanged != 1 || rep.Updated != 1 || rep.Created != 1 {
		t.Fatalf("jsonl upsert: %d %+v", r.status, rep)
	}
	r = e.do(t, "POST", "/import?format=jsonl", e.admin, []byte(jsonl))
	r.json(t, &rep)
	if rep.Unchanged != 3 {
		t.Fatalf("re-import not idempotent: %+v", rep)
	}
	// Unknown JSON fields are per-row errors.
	r = e.do(t, "POST", "/import?format=json", e.admin, []byte(`[{"external_id":"z","question":"Q?","answer":"A","extra":1}]`))
	if r.status != 422 || !strings.Contains(string(r.body), `unknown field \"extra\"`) {
		t.Fatalf("unknown field: %d %s", r.status, r.body)
	}
	// More than 10 MiB is refused before anything is parsed or stored.
	var big bytes.Buffer
	big.WriteString("[")
	for i := 0; big.Len() < 10<<20+10; i++ {
		if i > 0 {
			big.WriteString(",")
		}
		fmt.Fprintf(&big, `{"external_id":"big-%d","question":"Question number %d?","answer":"%s"}`, i, i, strings.Repeat("a", 1000))
	}
	big.WriteString("]")
	before := count(t, e)
	r = e.do(t, "POST", "/import?format=json", e.admin, big.Bytes())
	if code, _ := r.errCode(t); r.status != 413 || code != tandem.EINVALID || count(t, e) != before {
		t.Fatalf("11 MB import: %d %s, %d items", r.status, r.body, count(t, e))
	}
	if r := e.do(t, "POST", "/import", e.admin, []byte("[]")); r.status != 400 {
		t.Fatalf("import without format: %d", r.status)
	}
}

func TestExportSearchReindex(t *testing.T) {
	e := setup(t)
	for _, b := range []string{
		`{"external_id":"ship","question":"How long does shipping take?","phrasings":["when will my parcel arrive"],"answer":"3-5 days.","status":"published","tags":["shipping"]}`,
		`{"external_id":"refund","question":"When do I get my refund?","phrasings":["money back"],"answer":"5 days.","status":"published"}`,
		`{"external_id":"draft","question":"Parcel lockers?","answer":"Soon.","status":"draft"}`,
	} {
		if r := e.do(t, "POST", "/faqs", e.admin, []byte(b)); r.status != 201 {
			t.Fatalf("create: %s", r.body)
		}
	}
	_ = e.svc.WaitReindex(context.Background())
	r := e.do(t, "GET", "/search?q=when+will+my+parcel+arrive&published=true&k=2", e.admin, nil)
	var res knowledge.SearchResult
	r.json(t, &res)
	if r.status != 200 || len(res.Hits) == 0 || res.Hits[0].FAQ.ExternalID != "ship" || res.Hits[0].Score <= 0 || len(res.Hits) > 2 {
		t.Fatalf("search: %d %s", r.status, r.body)
	}
	if _, ok := res.Hits[0].Retrievers["vector"]; !ok {
		t.Fatalf("retrievers: %v", res.Hits[0].Retrievers)
	}
	for _, h := range res.Hits {
		if h.FAQ.ExternalID == "draft" {
			t.Fatal("published=true returned a draft")
		}
	}
	if r := e.do(t, "GET", "/search?q=parcel&mode=bogus", e.admin, nil); r.status != 400 {
		t.Fatalf("bad mode: %d", r.status)
	}
	for _, f := range []string{"json", "jsonl", "csv"} {
		r := e.do(t, "GET", "/export?format="+f, e.admin, nil)
		if r.status != 200 || !strings.Contains(r.header.Get("Content-Disposition"), "."+f) {
			t.Fatalf("export %s: %d %v", f, r.status, r.header)
		}
		recs, err := knowledge.ParseImport(bytes.NewReader(r.body), knowledge.Format(f))
		if err != nil || len(recs) != 3 {
			t.Fatalf("export %s re-parsed: %d rows, %v", f, len(recs), err)
		}
		// Re-importing an export changes nothing.
		imp := e.do(t, "POST", "/import?format="+f, e.admin, r.body)
		var rep knowledge.ImportReport
		imp.json(t, &rep)
		if imp.status != 200 || rep.Unchanged != 3 {
			t.Fatalf("re-import of %s export: %d %s", f, imp.status, imp.body)
		}
	}
	if r := e.do(t, "GET", "/export?format=xml", e.admin, nil); r.status != 400 {
		t.Fatalf("bad export format: %d", r.status)
	}
	r = e.do(t, "POST", "/reindex?force=true", e.admin, nil)
	var st knowledge.ReindexStatus
	r.json(t, &st)
	if r.status != 202 || st.Model != "bag-test" {
		t.Fatalf("reindex: %d %s", r.status, r.body)
	}
	_ = e.svc.WaitReindex(context.Background())
	r = e.do(t, "GET", "/reindex", e.admin, nil)
	r.json(t, &st)
	if r.status != 200 || st.Serving != "bag-test" {
		t.Fatalf("reindex status: %d %s", r.status, r.body)
	}
}

// TestOpenAPIDocumentsRoutes checks that every path of
// docs/openapi-knowledge.yaml is served (an unauthenticated call is 401,
// not 404) and that an undocumented path is 404.
func TestOpenAPIDocumentsRoutes(t *testing.T) {
	e := setup(t)
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "openapi-knowledge.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OpenAPI string                    `yaml:"openapi"`
		Paths   map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") || len(doc.Paths) < 10 {
		t.Fatalf("openapi %q with %d paths", doc.OpenAPI, len(doc.Paths))
	}
	for p, ops := range doc.Paths {
		path := strings.NewReplacer("{id}", "faq_x", "{version}", "1").Replace(p)
		for method := range ops {
			if method == "parameters" {
				continue
			}
			r := e.do(t, strings.ToUpper(method), path, "", nil)
			if r.status != 401 {
				t.Errorf("%s %s: %d, want 401 (route exists, needs auth)", method, p, r.status)
			}
		}
	}
	if r := e.do(t, "GET", "/nope", e.admin, nil); r.status != 404 {
		t.Errorf("undocumented route: %d", r.status)
	}
}

// TestIfMatchStar: If-Match: * (any current version, RFC 9110) is accepted
// where the version check is optional (delete, publish, unpublish) and
// means "it must exist"; on PUT, which needs the version edited, it is 400
// saying so. It used to be 400 "If-Match must be the ETag" everywhere.
func TestIfMatchStar(t *testing.T) {
	e := setup(t)
	r := e.do(t, "POST", "/faqs", e.admin, []byte(`{"question":"Q?","answer":"A."}`))
	var f tandem.FAQ
	r.json(t, &f)
	path := "/faqs/" + f.ID
	if r := e.do(t, "POST", path+"/publish", e.admin, nil, "If-Match", "*"); r.status != 200 || r.header.Get("ETag") != `"2"` {
		t.Fatalf("publish with If-Match *: %d %s", r.status, r.body)
	}
	r = e.do(t, "PUT", path, e.admin, []byte(`{"question":"Q?","answer":"B."}`), "If-Match", "*")
	if code, msg := r.errCode(t); r.status != 400 || code != tandem.EINVALID || !strings.Contains(msg, "*") {
		t.Fatalf("PUT with If-Match * and no version: %d %s", r.status, r.body)
	}
	if r := e.do(t, "PUT", path, e.admin, []byte(`{"version":2,"question":"Q?","answer":"B."}`), "If-Match", "*"); r.status != 200 {
		t.Fatalf("PUT with If-Match * and a body version: %d %s", r.status, r.body)
	}
	if r := e.do(t, "DELETE", path, e.admin, nil, "If-Match", "*"); r.status != 204 {
		t.Fatalf("delete with If-Match *: %d %s", r.status, r.body)
	}
	if r := e.do(t, "DELETE", path, e.admin, nil, "If-Match", "*"); r.status != 404 {
		t.Fatalf("delete of a deleted FAQ with If-Match *: %d %s", r.status, r.body)
	}
}

// TestMethodNotAllowedAllow: a 405 names the methods the route has in
// Allow, as HTTP requires (the custom JSON 405 handler dropped chi's).
func TestMethodNotAllowedAllow(t *testing.T) {
	e := setup(t)
	for path, want := range map[string]string{
		"/faqs/faq_x":         "DELETE, GET, PUT",
		"/faqs":               "GET, POST",
		"/faqs/faq_x/publish": "POST",
		"/reindex":            "GET, POST",
	} {
		r := e.do(t, "PATCH", path, e.admin, nil)
		if code, _ := r.errCode(t); r.status != 405 || code != tandem.EINVALID {
			t.Errorf("PATCH %s: %d %s", path, r.status, r.body)
		}
		if got := strings.Join(r.header.Values("Allow"), ", "); got != want {
			t.Errorf("PATCH %s: Allow %q, want %q", path, got, want)
		}
	}
}

// TestIfNoneMatchForms: If-None-Match may list several ETags or be "*"
// (RFC 9110); a match is 304 (a list was compared as one string: 200).
func TestIfNoneMatchForms(t *testing.T) {
	e := setup(t)
	r := e.do(t, "POST", "/faqs", e.admin, []byte(`{"question":"Q?","answer":"A."}`))
	var f tandem.FAQ
	r.json(t, &f)
	path := "/faqs/" + f.ID
	for h, want := range map[string]int{`"7", "1"`: 304, `W/"1"`: 304, `*`: 304, `"2", "3"`: 200} {
		if r := e.do(t, "GET", path, e.admin, nil, "If-None-Match", h); r.status != want {
			t.Errorf("If-None-Match %s: %d, want %d", h, r.status, want)
		}
	}
}
