package knowledge_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/knowledge"
	"github.com/tandem-chat/tandem/knowledge/memstore"
)

// hashEmbedder is a deterministic bag-of-words embedder. gate, when set,
// blocks Embed calls with more than one text (index builds) until closed.
type hashEmbedder struct {
	version string
	dim     int
	mu      sync.Mutex
	fail    bool
	gate    chan struct{}
	calls   int
}

func (h *hashEmbedder) Dim() int        { return h.dim }
func (h *hashEmbedder) Version() string { return h.version }
func (h *hashEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	h.mu.Lock()
	h.calls++
	fail, gate := h.fail, h.gate
	h.mu.Unlock()
	if fail {
		return nil, errors.New("embedder down")
	}
	if gate != nil && len(texts) > 1 {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	out := make([][]float32, len(texts))
	for i, t := range texts {
		v := make([]float32, h.dim)
		for _, w := range knowledge.Tokens(t) {
			f := fnv.New32a()
			f.Write([]byte(h.version + w))
			v[f.Sum32()%uint32(h.dim)]++
		}
		v[0] += 0.001
		out[i] = v
	}
	return out, nil
}

var ctx = context.Background()

func newService(t *testing.T, cfg knowledge.Config) *knowledge.Service {
	t.Helper()
	if cfg.Store == nil {
		cfg.Store = memstore.New()
	}
	s, err := knowledge.NewService(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

func demo() []tandem.FAQ {
	return []tandem.FAQ{
		{ExternalID: "ship", Question: "How long does shipping take?", Phrasings: []string{"delivery time", "when will my parcel arrive"}, Answer: "3-5 days.", Status: tandem.FAQPublished},
		{ExternalID: "refund", Question: "When do I get my refund?", Phrasings: []string{"money back"}, Answer: "5 days.", Status: tandem.FAQPublished},
		{ExternalID: "pw", Question: "How do I reset my password?", Answer: "Use the link.", Status: tandem.FAQPublished},
	}
}

func TestServiceSearchCacheAndInvalidation(t *testing.T) {
	reg := prometheus.NewRegistry()
	enc := &hashEmbedder{version: "h1", dim: 32}
	s := newService(t, knowledge.Config{Embedder: enc, Registerer: reg})
	var ids []tandem.FAQ
	for _, f := range demo() {
		out, err := s.Create(ctx, "alice", f)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, out)
	}
	if err := s.WaitReindex(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := s.Search(ctx, knowledge.SearchRequest{Query: "When will my parcel arrive?", Filter: knowledge.Filter{PublishedOnly: true}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Hits) == 0 || res.Hits[0].FAQ.ExternalID != "ship" || res.Cached || res.Model != "h1" {
		t.Fatalf("search = %+v", res)
	}
	h := res.Hits[0]
	if _, ok := h.Retrievers[knowledge.RetrieverLexical]; !ok {
		t.Errorf("lexical retriever missing: %v", h.Retrievers)
	}
	if v, ok := h.Retrievers[knowledge.RetrieverVector]; !ok || v < 0.99 {
		t.Errorf("vector retriever missing or low: %v", h.Retrievers)
	}
	if h.Matched != "when will my parcel arrive" {
		t.Errorf("matched %q", h.Matched)
	}
	// Same query, different spelling: cache hit.
	res2, err := s.Search(ctx, knowledge.SearchRequest{Query: "  when will my PARCEL arrive ", Filter: knowledge.Filter{PublishedOnly: true}})
	if err != nil || !res2.Cached || res2.Hits[0].FAQ.ID != h.FAQ.ID {
		t.Fatalf("second search cached=%v err=%v", res2.Cached, err)
	}
	if got := testutil.ToFloat64(mustCounter(t, reg, "tandem_knowledge_cache_hits_total")); got != 1 {
		t.Errorf("cache hits = %v, want 1", got)
	}
	// Unpublishing invalidates: the next search misses and no longer finds it.
	gen := s.CacheGeneration()
	if _, err := s.SetStatus(ctx, "bob", ids[0].ID, tandem.FAQDraft, ids[0].Version); err != nil {
		t.Fatal(err)
	}
	if s.CacheGeneration() == gen {
		t.Fatal("a change did not bump the cache generation")
	}
	res3, err := s.Search(ctx, knowledge.SearchRequest{Query: "when will my parcel arrive", Filter: knowledge.Filter{PublishedOnly: true}})
	if err != nil || res3.Cached {
		t.Fatalf("after change cached=%v err=%v", res3.Cached, err)
	}
	for _, hit := range res3.Hits {
		if hit.FAQ.ExternalID == "ship" {
			t.Fatal("unpublished FAQ served after invalidation")
		}
	}
	// Bad queries.
	for _, q := range []string{"", "   ?!", strings.Repeat("a", knowledge.MaxQueryLen+1), "bad \xff utf8"} {
		if _, err := s.Search(ctx, knowledge.SearchRequest{Query: q}); tandem.ErrorCode(err) != tandem.EINVALID {
			t.Errorf("query %.20q: err %v, want invalid", q, err)
		}
	}
	if _, err := s.Search(ctx, knowledge.SearchRequest{Query: "x", Mode: "magic"}); tandem.ErrorCode(err) != tandem.EINVALID {
		t.Errorf("bad mode accepted")
	}
	// Lexical and vector modes each report only their retriever.
	lex, _ := s.Search(ctx, knowledge.SearchRequest{Query: "money back", Mode: knowledge.ModeLexical})
	vec, _ := s.Search(ctx, knowledge.SearchRequest{Query: "money back", Mode: knowledge.ModeVector})
	if len(lex.Hits) == 0 || len(vec.Hits) == 0 || lex.Hits[0].Retrievers[knowledge.RetrieverVector] != 0 || vec.Hits[0].Retrievers[knowledge.RetrieverLexical] != 0 {
		t.Errorf("mode hits: %+v / %+v", lex.Hits, vec.Hits)
	}
}

func mustCounter(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			c := prometheus.NewCounter(prometheus.CounterOpts{Name: "x"})
			c.Add(mf.GetMetric()[0].GetCounter().GetValue())
			return c
		}
	}
	t.Fatalf("metric %s not registered", name)
	return nil
}

func TestServiceReindexOnEncoderChange(t *testing.T) {
	store := memstore.New()
	a := &hashEmbedder{version: "enc-a", dim: 16}
	s1 := newService(t, knowledge.Config{Store: store, Embedder: a})
	for _, f := range demo() {
		if _, err := s1.Create(ctx, "alice", f); err != nil {
			t.Fatal(err)
		}
	}
	if err := s1.WaitReindex(ctx); err != nil {
		t.Fatal(err)
	}
	_ = s1.Close()
	models, _ := store.Models(ctx)
	if len(models) != 1 || !models[0].Active || models[0].Version != "enc-a" {
		t.Fatalf("models after first start: %+v", models)
	}

	// Restart with a new encoder: the old index keeps serving (with the
	// old encoder kept as Previous) until the new one is complete.
	b := &hashEmbedder{version: "enc-b", dim: 24, gate: make(chan struct{})}
	s2 := newService(t, knowledge.Config{Store: store, Embedder: b, Previous: []knowledge.Embedder{a}, ReindexBatch: 1})
	st := s2.ReindexStatus()
	if !st.Running || st.Model != "enc-b" || st.Serving != "enc-a" {
		t.Fatalf("status during reindex: %+v", st)
	}
	res, err := s2.Search(ctx, knowledge.SearchRequest{Query: "money back"})
	if err != nil || res.Model != "enc-a" || len(res.Hits) == 0 || res.Hits[0].FAQ.ExternalID != "refund" {
		t.Fatalf("search during reindex: %+v, %v", res, err)
	}
	// A write during the rebuild carries vectors for both encoders.
	if _, err := s2.Create(ctx, "bob", tandem.FAQ{ExternalID: "new", Question: "Do you sell gift cards?", Answer: "Yes.", Status: tandem.FAQPublished}); err != nil {
		t.Fatal(err)
	}
	close(b.gate)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s2.WaitReindex(wctx); err != nil {
		t.Fatal(err)
	}
	st = s2.ReindexStatus()
	if st.Running || st.Serving != "enc-b" || st.Error != "" {
		t.Fatalf("status after reindex: %+v", st)
	}
	models, _ = store.Models(ctx)
	if len(models) != 1 || models[0].Version != "enc-b" || !models[0].Active {
		t.Fatalf("models after switch: %+v (old vectors should be dropped)", models)
	}
	res, err = s2.Search(ctx, knowledge.SearchRequest{Query: "gift cards", Mode: knowledge.ModeVector})
	if err != nil || res.Model != "enc-b" || len(res.Hits) == 0 || res.Hits[0].FAQ.ExternalID != "new" {
		t.Fatalf("search after reindex: %+v, %v", res, err)
	}
}

func TestServiceEmbeddingFailureIsRepaired(t *testing.T) {
	enc := &hashEmbedder{version: "h", dim: 16}
	store := memstore.New()
	s := newService(t, knowledge.Config{Store: store, Embedder: enc})
	enc.mu.Lock()
	enc.fail = true
	enc.mu.Unlock()
	f, err := s.Create(ctx, "alice", demo()[0])
	if err != nil {
		t.Fatalf("create must succeed without vectors: %v", err)
	}
	// Hybrid search degrades to lexical while the embedder is down.
	res, err := s.Search(ctx, knowledge.SearchRequest{Query: "shipping"})
	if err != nil || len(res.Hits) != 1 || res.Model != "" {
		t.Fatalf("degraded search = %+v, %v", res, err)
	}
	if _, err := s.Search(ctx, knowledge.SearchRequest{Query: "shipping", Mode: knowledge.ModeVector}); tandem.ErrorCode(err) != tandem.EUNAVAILABLE {
		t.Fatalf("vector-only search with a failing embedder: %v", err)
	}
	enc.mu.Lock()
	enc.fail = false
	enc.mu.Unlock()
	deadline := time.Now().Add(15 * time.Second)
	for {
		miss, _ := store.MissingEmbeddings(ctx, "h", 10)
		if len(miss) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("vectors of %s never filled in", f.ID)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestServiceImportModes(t *testing.T) {
	s := newService(t, knowledge.Config{Embedder: &hashEmbedder{version: "h", dim: 16}})
	body := `external_id,question,answer,phrasings,tags,status
a,How do I pay?,Card or PayPal.,payment methods|can I pay by card,payments,published
b,,Missing question.,,,
c,Where is my order?,See Orders.,,orders,published
a,Duplicate?,Dup.,,,
`
	recs, err := knowledge.ParseImport(strings.NewReader(body), knowledge.FormatCSV)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := s.Import(ctx, "importer", recs, knowledge.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Applied || rep.Failed != 2 || rep.Rows[1].Error == nil || rep.Rows[3].Error == nil || !strings.Contains(rep.Rows[3].Error.Message, "duplicates row 1") {
		t.Fatalf("atomic import report: %+v", rep)
	}
	if p, _ := s.List(ctx, knowledge.ListFilter{}); len(p.Items) != 0 {
		t.Fatalf("atomic import with errors stored %d items", len(p.Items))
	}
	rep, err = s.Import(ctx, "importer", recs, knowledge.ImportOptions{Partial: true, DryRun: true})
	if err != nil || rep.Applied || rep.Created != 2 {
		t.Fatalf("dry run: %+v, %v", rep, err)
	}
	if p, _ := s.List(ctx, knowledge.ListFilter{}); len(p.Items) != 0 {
		t.Fatal("dry run stored items")
	}
	rep, err = s.Import(ctx, "importer", recs, knowledge.ImportOptions{Partial: true})
	if err != nil || !rep.Applied || rep.Created != 2 || rep.Failed != 2 {
		t.Fatalf("partial import: %+v, %v", rep, err)
	}
	if rep.Rows[0].Action != knowledge.ActionCreated || rep.Rows[2].Action != knowledge.ActionCreated || rep.Rows[1].Action != "" || rep.Rows[0].ID == "" {
		t.Fatalf("rows: %+v", rep.Rows)
	}
	// Idempotent: the same import again changes nothing.
	rep, err = s.Import(ctx, "importer", recs, knowledge.ImportOptions{Partial: true})
	if err != nil || rep.Unchanged != 2 || rep.Created != 0 || rep.Updated != 0 {
		t.Fatalf("re-import: %+v, %v", rep, err)
	}
	res, err := s.Search(ctx, knowledge.SearchRequest{Query: "can I pay by card"})
	if err != nil || len(res.Hits) == 0 || res.Hits[0].FAQ.ExternalID != "a" {
		t.Fatalf("search imported: %+v, %v", res, err)
	}
}

func TestServiceUpdateConflict(t *testing.T) {
	s := newService(t, knowledge.Config{})
	f, err := s.Create(ctx, "alice", demo()[0])
	if err != nil {
		t.Fatal(err)
	}
	f.Answer = "Two days."
	if _, err := s.Update(ctx, "bob", f, 1, knowledge.Keep{}); err != nil {
		t.Fatal(err)
	}
	f.Answer = "Stale."
	if _, err := s.Update(ctx, "carol", f, 1, knowledge.Keep{}); tandem.ErrorCode(err) != tandem.ECONFLICT {
		t.Fatalf("stale update: %v", err)
	}
	if _, err := s.Update(ctx, "carol", f, 0, knowledge.Keep{}); tandem.ErrorCode(err) != tandem.EINVALID {
		t.Fatalf("update without version: %v", err)
	}
	revs, _ := s.Versions(ctx, f.ID, 0, 0)
	if len(revs) != 2 || revs[0].FAQ.Answer != "3-5 days." || revs[1].FAQ.Answer != "Two days." {
		t.Fatalf("versions: %+v", revs)
	}
	// Keep leaves the status and the external id as they are: a published
	// answer stays on the bot, imports still find it.
	in := demo()[1]
	in.ExternalID, in.Status = "ext-keep", tandem.FAQPublished
	g, err := s.Create(ctx, "alice", in)
	if err != nil {
		t.Fatal(err)
	}
	edit := tandem.FAQ{ID: g.ID, Question: g.Question, Answer: "A new answer."}
	g2, err := s.Update(ctx, "bob", edit, g.Version, knowledge.Keep{Status: true, ExternalID: true})
	if err != nil || g2.Status != tandem.FAQPublished || g2.ExternalID != "ext-keep" || g2.Answer != "A new answer." {
		t.Fatalf("edit keeping status/external_id: %+v, %v", g2, err)
	}
	edit.Status, edit.ExternalID = tandem.FAQDraft, "ext-new"
	if g2, err = s.Update(ctx, "bob", edit, g2.Version, knowledge.Keep{}); err != nil || g2.Status != tandem.FAQDraft || g2.ExternalID != "ext-new" {
		t.Fatalf("edit naming status/external_id: %+v, %v", g2, err)
	}
	// The same content again: no new version.
	if g3, err := s.Update(ctx, "carol", edit, g2.Version, knowledge.Keep{}); err != nil || g3.Version != g2.Version || g3.UpdatedBy != g2.UpdatedBy {
		t.Fatalf("no-op edit: %+v (was version %d), %v", g3, g2.Version, err)
	}
	// Without Keep an empty external id clears it.
	edit.ExternalID = ""
	if g2, err = s.Update(ctx, "bob", edit, g2.Version, knowledge.Keep{Status: true}); err != nil || g2.ExternalID != "" || g2.Status != tandem.FAQDraft {
		t.Fatalf("edit clearing external_id: %+v, %v", g2, err)
	}
	// Without an encoder, vector mode is unavailable but hybrid works.
	if _, err := s.Search(ctx, knowledge.SearchRequest{Query: "shipping", Mode: knowledge.ModeVector}); tandem.ErrorCode(err) != tandem.EUNAVAILABLE {
		t.Fatalf("vector without encoder: %v", err)
	}
	if res, err := s.Search(ctx, knowledge.SearchRequest{Query: "shipping"}); err != nil || len(res.Hits) != 1 {
		t.Fatalf("lexical-only hybrid: %+v, %v", res, err)
	}
}

// TestForcedReindexIsOneJob: many forced reindex calls while a job runs
// make it run once more, not once per call; the status says it is running
// until the recomputation is done; and after Close nothing more starts.
func TestForcedReindexIsOneJob(t *testing.T) {
	enc := &hashEmbedder{version: "h1", dim: 32}
	s := newService(t, knowledge.Config{Embedder: enc})
	for _, f := range demo() {
		if _, err := s.Create(ctx, "alice", f); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.WaitReindex(ctx); err != nil {
		t.Fatal(err)
	}
	gate := make(chan struct{})
	enc.mu.Lock()
	enc.gate, enc.calls = gate, 0
	enc.mu.Unlock()
	for range 20 {
		st, err := s.Reindex(ctx, true)
		if err != nil {
			t.Fatal(err)
		}
		if !st.Running {
			t.Fatalf("a forced reindex is not reported as running: %+v", st)
		}
	}
	close(gate)
	if err := s.WaitReindex(ctx); err != nil {
		t.Fatal(err)
	}
	enc.mu.Lock()
	calls := enc.calls
	enc.mu.Unlock()
	// One page of 3 FAQs is one Embed call per recomputation: one run,
	// perhaps run once more for calls that came after it started.
	if calls > 2 {
		t.Fatalf("20 forced reindex calls made %d embedding calls, want at most 2 (one job, run once more)", calls)
	}
	if st := s.ReindexStatus(); st.Running || st.Embedded < 3 || st.Error != "" {
		t.Fatalf("status after the rerun: %+v", st)
	}
	_ = s.Close()
	if _, err := s.Reindex(ctx, true); tandem.ErrorCode(err) != tandem.EUNAVAILABLE {
		t.Fatalf("reindex after Close: %v, want unavailable", err)
	}
}

// TestTagFiltersNormalisedEverywhere: tags are stored case-folded, and a
// tag filter finds them however it is spelled, in list and export as in
// search (list and export compared the raw filter).
func TestTagFiltersNormalisedEverywhere(t *testing.T) {
	s := newService(t, knowledge.Config{Embedder: &hashEmbedder{version: "h1", dim: 32}})
	f := demo()[0]
	f.Tags = []string{"Shipping"}
	if _, err := s.Create(ctx, "alice", f); err != nil {
		t.Fatal(err)
	}
	filter := knowledge.Filter{Tags: []string{" SHIPPING "}}
	page, err := s.List(ctx, knowledge.ListFilter{Filter: filter})
	if err != nil || len(page.Items) != 1 {
		t.Fatalf("list by tag: %d items, %v", len(page.Items), err)
	}
	var buf bytes.Buffer
	ex, err := knowledge.NewExporter(&buf, knowledge.FormatJSONL)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Export(ctx, knowledge.ListFilter{Filter: filter}, ex); err != nil {
		t.Fatal(err)
	}
	if err := ex.Close(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), f.Question) {
		t.Fatalf("export by tag: %q", buf.String())
	}
}

// TestDegradedSearchNotCached: a hybrid search that lost its vector side
// (encoder down) answers from lexical alone, but that degraded answer is
// not cached: once the encoder is back, the same query gets vector hits
// again instead of the lexical-only result for the cache's whole TTL.
func TestDegradedSearchNotCached(t *testing.T) {
	enc := &hashEmbedder{version: "h1", dim: 32}
	s := newService(t, knowledge.Config{Embedder: enc})
	for _, f := range demo() {
		if _, err := s.Create(ctx, "alice", f); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.WaitReindex(ctx); err != nil {
		t.Fatal(err)
	}
	req := knowledge.SearchRequest{Query: "when will my parcel arrive", Filter: knowledge.Filter{PublishedOnly: true}}
	enc.mu.Lock()
	enc.fail = true
	enc.mu.Unlock()
	res, err := s.Search(ctx, req)
	if err != nil || len(res.Hits) == 0 || res.Model != "" {
		t.Fatalf("degraded search: %+v, %v", res, err)
	}
	enc.mu.Lock()
	enc.fail = false
	enc.mu.Unlock()
	res, err = s.Search(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if res.Cached || res.Model != "h1" || len(res.Hits) == 0 {
		t.Fatalf("after the encoder recovered: cached=%v model=%q hits=%d", res.Cached, res.Model, len(res.Hits))
	}
	if _, ok := res.Hits[0].Retrievers[knowledge.RetrieverVector]; !ok {
		t.Fatalf("no vector score after the encoder recovered: %v", res.Hits[0].Retrievers)
	}
	// The complete answer is cached as usual.
	if res, err = s.Search(ctx, req); err != nil || !res.Cached {
		t.Fatalf("complete answer not cached: cached=%v err=%v", res.Cached, err)
	}
}

// raceStore makes another editor's update land between the service's read
// and its write, once.
type raceStore struct {
	knowledge.Store
	once sync.Once
}

func (r *raceStore) Update(ctx context.Context, w knowledge.Write) (tandem.FAQ, error) {
	r.once.Do(func() {
		cur, err := r.Store.Get(ctx, w.FAQ.ID)
		if err != nil {
			panic(err)
		}
		cur.Answer = "Edited meanwhile."
		if _, err := r.Store.Update(ctx, knowledge.Write{FAQ: cur, Actor: "carol", ExpectedVersion: cur.Version}); err != nil {
			panic(err)
		}
	})
	return r.Store.Update(ctx, w)
}

// TestSetStatusWithoutVersionRetries: publishing without a version check
// (no If-Match) is not refused with 409 because someone else saved the FAQ
// between the service's read and its write; the status is applied on top
// of their change, which is kept.
func TestSetStatusWithoutVersionRetries(t *testing.T) {
	st := &raceStore{Store: memstore.New()}
	s := newService(t, knowledge.Config{Store: st})
	f, err := s.Create(ctx, "alice", tandem.FAQ{Question: "Q?", Answer: "A."})
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.SetStatus(ctx, "bob", f.ID, tandem.FAQPublished, 0)
	if err != nil {
		t.Fatalf("publish without If-Match: %v", err)
	}
	if out.Status != tandem.FAQPublished || out.Answer != "Edited meanwhile." || out.Version != 3 {
		t.Fatalf("published: %+v", out)
	}
	// With a version check, the concurrent edit is a conflict as before.
	st.once = sync.Once{}
	if _, err := s.SetStatus(ctx, "bob", f.ID, tandem.FAQDraft, 3); tandem.ErrorCode(err) != tandem.ECONFLICT {
		t.Fatalf("unpublish at a stale version: %v, want conflict", err)
	}
}

// TestServiceImportStoreRowError: a row the store refuses (here: a second
// row for the same FAQ, by its external id after its id) is reported as
// that row's error, like the rows the parser refuses: atomic mode applies
// nothing and says which row; partial mode applies the other rows. It used
// to fail the whole import with an error numbered by the position among
// the valid rows only.
func TestServiceImportStoreRowError(t *testing.T) {
	s := newService(t, knowledge.Config{Embedder: &hashEmbedder{version: "h", dim: 16}})
	b, err := s.Create(ctx, "alice", tandem.FAQ{ExternalID: "b-ext", Question: "Where is my order?", Answer: "See Orders."})
	if err != nil {
		t.Fatal(err)
	}
	body := `[{"external_id":"bad","question":"","answer":"No question."},
{"id":"` + b.ID + `","question":"Where is my order?","answer":"By id."},
{"external_id":"new","question":"How do I pay?","answer":"By card."},
{"external_id":"b-ext","question":"Where is my order?","answer":"By external id."}]`
	recs, err := knowledge.ParseImport(strings.NewReader(body), knowledge.FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := s.Import(ctx, "importer", recs, knowledge.ImportOptions{Partial: true})
	if err != nil {
		t.Fatalf("partial import: %v", err)
	}
	if !rep.Applied || rep.Failed != 2 || rep.Created != 1 || rep.Updated != 1 || rep.Rows[3].Error == nil || rep.Rows[3].Error.Code != tandem.EINVALID ||
		!strings.Contains(rep.Rows[3].Error.Message, `the row with id "`+b.ID+`"`) || rep.Rows[3].Action != "" || rep.Rows[1].Action != knowledge.ActionUpdated {
		t.Fatalf("partial report: %+v", rep)
	}
	if got, _ := s.Get(ctx, b.ID); got.Answer != "By id." {
		t.Errorf("after the partial import: %+v", got)
	}
	// Atomic: nothing applied, the refused row named.
	recs[1].FAQ.Answer, recs[3].FAQ.Answer = "Again by id.", "Again by external id."
	recs = recs[1:]
	rep, err = s.Import(ctx, "importer", recs, knowledge.ImportOptions{})
	if err != nil {
		t.Fatalf("atomic import: %v", err)
	}
	if rep.Applied || rep.Failed != 1 || rep.Rows[2].Error == nil || rep.Rows[2].Row != 4 {
		t.Fatalf("atomic report: %+v", rep)
	}
	if got, _ := s.Get(ctx, b.ID); got.Answer != "By id." {
		t.Errorf("a refused atomic import changed the FAQ: %+v", got)
	}
	// Atomic with a row that fails to parse too: the report names both
	// rows to fix (it named only the parse error, and the other showed up
	// after the fix).
	recs, err = knowledge.ParseImport(strings.NewReader(body), knowledge.FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	rep, err = s.Import(ctx, "importer", recs, knowledge.ImportOptions{})
	if err != nil {
		t.Fatalf("atomic import: %v", err)
	}
	if rep.Applied || rep.Failed != 2 || rep.Rows[0].Error == nil || rep.Rows[3].Error == nil {
		t.Fatalf("atomic report with a parse error: %+v", rep)
	}
}

// countingStore counts Import calls.
type countingStore struct {
	knowledge.Store
	imports int
}

func (c *countingStore) Import(ctx context.Context, ws []knowledge.Write, dryRun bool) ([]knowledge.Outcome, error) {
	c.imports++
	return c.Store.Import(ctx, ws, dryRun)
}

// TestServiceImportManySameFAQRows: many rows naming an FAQ that another
// row names by its other key are all reported in one pass — not found one
// store transaction at a time (a file of such pairs made a partial import
// quadratic).
func TestServiceImportManySameFAQRows(t *testing.T) {
	st := &countingStore{Store: memstore.New()}
	s := newService(t, knowledge.Config{Store: st})
	var rows []string
	for i := range 30 {
		f, err := s.Create(ctx, "alice", tandem.FAQ{ExternalID: fmt.Sprintf("e%d", i), Question: fmt.Sprintf("Question %d?", i), Answer: "A."})
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, fmt.Sprintf(`{"id":%q,"question":"Question %d?","answer":"By id."}`, f.ID, i),
			fmt.Sprintf(`{"external_id":"e%d","question":"Question %d?","answer":"By external id."}`, i, i))
	}
	rows = append(rows, `{"external_id":"new","question":"New?","answer":"New."}`)
	recs, err := knowledge.ParseImport(strings.NewReader("["+strings.Join(rows, ",")+"]"), knowledge.FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	st.imports = 0
	rep, err := s.Import(ctx, "importer", recs, knowledge.ImportOptions{Partial: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Failed != 30 || rep.Updated != 30 || rep.Created != 1 || !rep.Applied {
		t.Fatalf("report: failed %d updated %d created %d applied %v", rep.Failed, rep.Updated, rep.Created, rep.Applied)
	}
	for i := 1; i < 60; i += 2 {
		if rep.Rows[i].Error == nil || rep.Rows[i-1].Action != knowledge.ActionUpdated {
			t.Fatalf("rows %d, %d: %+v %+v", i, i+1, rep.Rows[i-1], rep.Rows[i])
		}
	}
	if st.imports > 2 {
		t.Errorf("%d store imports for one import, want 2 (classify, apply)", st.imports)
	}
}

// refusingStore refuses write 1 of the first import batch it sees, as a
// store does for a row that lost a race.
type refusingStore struct {
	knowledge.Store
	refused bool
}

func (r *refusingStore) Import(ctx context.Context, ws []knowledge.Write, dryRun bool) ([]knowledge.Outcome, error) {
	if !r.refused && len(ws) > 1 {
		r.refused = true
		return nil, knowledge.ImportRowError(1, tandem.Errorf(tandem.ECONFLICT, "changed meanwhile"))
	}
	return r.Store.Import(ctx, ws, dryRun)
}

// TestServiceImportStoreRefusesRow: a row the store refuses becomes that
// row's error; partial mode applies the rest.
func TestServiceImportStoreRefusesRow(t *testing.T) {
	for _, partial := range []bool{false, true} {
		st := &refusingStore{Store: memstore.New()}
		s := newService(t, knowledge.Config{Store: st})
		body := `[{"external_id":"a","question":"A?","answer":"A."},{"external_id":"b","question":"B?","answer":"B."},{"external_id":"c","question":"C?","answer":"C."}]`
		recs, err := knowledge.ParseImport(strings.NewReader(body), knowledge.FormatJSON)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := s.Import(ctx, "importer", recs, knowledge.ImportOptions{Partial: partial})
		if err != nil {
			t.Fatalf("partial %v: %v", partial, err)
		}
		if rep.Failed != 1 || rep.Rows[1].Error == nil || rep.Rows[1].Error.Code != tandem.ECONFLICT || rep.Rows[1].Error.Message != "changed meanwhile" {
			t.Fatalf("partial %v: %+v", partial, rep)
		}
		if want := map[bool]int{false: 0, true: 2}[partial]; rep.Created != want || rep.Applied != partial {
			t.Fatalf("partial %v: created %d applied %v", partial, rep.Created, rep.Applied)
		}
	}
}

// TestWritesSurviveDroppedModel: in a rolling deploy of a new encoder,
// another node finishes re-embedding, activates its encoder and drops the
// old one's vectors while this node still embeds with the old encoder.
// This node's writes are stored without those vectors (as when its encoder
// fails) instead of being refused with "encoder ... is not registered".
func TestWritesSurviveDroppedModel(t *testing.T) {
	st := memstore.New()
	old := &hashEmbedder{version: "old", dim: 16}
	s := newService(t, knowledge.Config{Store: st, Embedder: old})
	f, err := s.Create(ctx, "alice", tandem.FAQ{ExternalID: "a", Question: "Where is my order?", Answer: "See Orders."})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WaitReindex(ctx); err != nil {
		t.Fatal(err)
	}
	// The other node.
	newer := &hashEmbedder{version: "new", dim: 16}
	if err := st.RegisterModel(ctx, "new", 16); err != nil {
		t.Fatal(err)
	}
	vecs, _ := newer.Embed(ctx, knowledge.Texts(f))
	if err := st.SetEmbedding(ctx, f.ID, f.Version, knowledge.Embedding{Model: "new", Vectors: vecs}); err != nil {
		t.Fatal(err)
	}
	if err := st.ActivateModel(ctx, "new"); err != nil {
		t.Fatal(err)
	}
	if err := st.DropModel(ctx, "old"); err != nil {
		t.Fatal(err)
	}
	// This node keeps taking writes.
	if _, err := s.Create(ctx, "alice", tandem.FAQ{ExternalID: "b", Question: "How do I pay?", Answer: "By card."}); err != nil {
		t.Fatalf("create: %v", err)
	}
	f.Question = "Where is my parcel?"
	if _, err := s.Update(ctx, "alice", f, f.Version, knowledge.Keep{}); err != nil {
		t.Fatalf("update: %v", err)
	}
	if _, err := s.Upsert(ctx, "alice", tandem.FAQ{ExternalID: "c", Question: "Refunds?", Answer: "5 days."}); err != nil {
		t.Fatalf("upsert: %v", err)
	}
	recs, _ := knowledge.ParseImport(strings.NewReader(`[{"external_id":"d","question":"Returns?","answer":"30 days."}]`), knowledge.FormatJSON)
	if rep, err := s.Import(ctx, "alice", recs, knowledge.ImportOptions{}); err != nil || rep.Created != 1 {
		t.Fatalf("import: %+v, %v", rep, err)
	}
}

// lexFailStore fails lexical searches.
type lexFailStore struct{ knowledge.Store }

func (lexFailStore) LexicalSearch(context.Context, string, knowledge.Filter, int) ([]knowledge.Scored, error) {
	return nil, errors.New("statement timeout")
}

// TestHybridSurvivesLexicalFailure: a hybrid search whose lexical side
// fails answers from the vector side (logged, not cached), as it answers
// from the lexical side when the encoder fails; it used to fail the whole
// search, so the bot could not answer at all.
func TestHybridSurvivesLexicalFailure(t *testing.T) {
	st := lexFailStore{memstore.New()}
	s := newService(t, knowledge.Config{Store: st, Embedder: &hashEmbedder{version: "h1", dim: 32}})
	for _, f := range demo() {
		if _, err := s.Create(ctx, "alice", f); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.WaitReindex(ctx); err != nil {
		t.Fatal(err)
	}
	req := knowledge.SearchRequest{Query: "when will my parcel arrive"}
	res, err := s.Search(ctx, req)
	if err != nil || len(res.Hits) == 0 || res.Hits[0].FAQ.ExternalID != "ship" {
		t.Fatalf("hybrid with lexical down: %+v, %v", res, err)
	}
	if res, _ := s.Search(ctx, req); res.Cached {
		t.Error("a degraded answer was cached")
	}
	if _, err := s.Search(ctx, knowledge.SearchRequest{Query: "parcel", Mode: knowledge.ModeLexical}); err == nil {
		t.Error("lexical-only search with lexical down succeeded")
	}
}
