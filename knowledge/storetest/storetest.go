// Package storetest is the contract test suite every knowledge.Store
// adapter must pass. Adapters call Run from their own tests with a factory
// that returns a fresh, empty store.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/knowledge"
)

// Factory returns a new empty store for one subtest.
type Factory func(t *testing.T) knowledge.Store

// Run runs the contract suite.
func Run(t *testing.T, newStore Factory) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s knowledge.Store)
	}{
		{"CreateGetList", testCreateGetList},
		{"UpdateOptimistic", testUpdateOptimistic},
		{"ScanSnapshot", testScanSnapshot},
		{"DeleteAndAudit", testDeleteAndAudit},
		{"ExternalIDUnique", testExternalIDUnique},
		{"Upsert", testUpsert},
		{"ImportAtomic", testImportAtomic},
		{"ImportDryRun", testImportDryRun},
		{"ImportByID", testImportByID},
		{"RestoreDeletedByID", testRestoreDeletedByID},
		{"LexicalSearch", testLexicalSearch},
		{"LexicalFilters", testLexicalFilters},
		{"LexicalBM25", testLexicalBM25},
		{"VectorSearch", testVectorSearch},
		{"VectorDegenerate", testVectorDegenerate},
		{"VectorLifecycle", testVectorLifecycle},
		{"Models", testModels},
		{"ConcurrentUpdates", testConcurrentUpdates},
		{"ConcurrentImports", testConcurrentImports},
		{"Unicode", testUnicode},
		{"LongWords", testLongWords},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() { _ = s.Close() })
			tc.fn(t, s)
		})
	}
}

var ctx = context.Background()

func faq(ext, q string, phr ...string) tandem.FAQ {
	return tandem.FAQ{ExternalID: ext, Question: q, Phrasings: phr, Answer: "Answer to: " + q, Locale: "en", Status: tandem.FAQPublished}
}

func mustCreate(t *testing.T, s knowledge.Store, f tandem.FAQ, embs ...knowledge.Embedding) tandem.FAQ {
	t.Helper()
	n, err := knowledge.Normalize(f)
	if err != nil {
		t.Fatalf("normalize: %v", err)
	}
	out, err := s.Create(ctx, knowledge.Write{FAQ: n, Actor: "alice", Embeddings: embs})
	if err != nil {
		t.Fatalf("create %q: %v", f.Question, err)
	}
	return out
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := tandem.ErrorCode(err); got != code {
		t.Fatalf("error code = %q (%v), want %q", got, err, code)
	}
}

func testCreateGetList(t *testing.T, s knowledge.Store) {
	f := faq("ext-1", "How do I reset my password?", "forgot password", "password reset link")
	f.Tags = []string{"account", "security"}
	f.Category = "account"
	f.Intent = "reset_password"
	f.Threshold = 0.7
	got := mustCreate(t, s, f)
	if got.ID == "" || got.Version != 1 || got.UpdatedBy != "alice" || got.CreatedAt.IsZero() || !got.UpdatedAt.Equal(got.CreatedAt) {
		t.Fatalf("created = %+v", got)
	}
	back, err := s.Get(ctx, got.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !knowledge.SameContent(back, got) || back.Version != 1 || !back.CreatedAt.Equal(got.CreatedAt) {
		t.Fatalf("get = %+v, want %+v", back, got)
	}
	byExt, err := s.GetByExternalID(ctx, "ext-1")
	if err != nil || byExt.ID != got.ID {
		t.Fatalf("by external id = %+v, %v", byExt, err)
	}
	_, err = s.Get(ctx, "faq_missing")
	wantCode(t, err, tandem.ENOTFOUND)
	_, err = s.GetByExternalID(ctx, "nope")
	wantCode(t, err, tandem.ENOTFOUND)

	for i := range 7 {
		mustCreate(t, s, faq(fmt.Sprintf("p-%d", i), fmt.Sprintf("Question number %d?", i)))
	}
	var all []tandem.FAQ
	f2 := knowledge.ListFilter{Limit: 3}
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		p, err := s.List(ctx, f2)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Items) > 3 {
			t.Fatalf("page of %d items, limit 3", len(p.Items))
		}
		all = append(all, p.Items...)
		if p.Next == "" {
			break
		}
		f2.After = p.Next
	}
	if len(all) != 8 {
		t.Fatalf("listed %d items, want 8", len(all))
	}
	for i := 1; i < len(all); i++ {
		if all[i-1].ID >= all[i].ID {
			t.Fatalf("list not ordered by id: %s then %s", all[i-1].ID, all[i].ID)
		}
	}
	p, err := s.List(ctx, knowledge.ListFilter{Category: "account"})
	if err != nil || len(p.Items) != 1 || p.Items[0].ID != got.ID {
		t.Fatalf("category filter = %+v, %v", p, err)
	}
	p, err = s.List(ctx, knowledge.ListFilter{Filter: knowledge.Filter{Tags: []string{"security"}}})
	if err != nil || len(p.Items) != 1 {
		t.Fatalf("tag filter = %+v, %v", p, err)
	}
}

// testScanSnapshot: Scan yields every matching FAQ in id order from one
// snapshot, even when yield itself changes the store.
func testScanSnapshot(t *testing.T, s knowledge.Store) {
	var made []tandem.FAQ
	for i := range 5 {
		f := faq(fmt.Sprintf("s-%d", i), fmt.Sprintf("Snapshot question %d?", i))
		f.Category = "snap"
		made = append(made, mustCreate(t, s, f))
	}
	other := faq("s-other", "Another category?")
	other.Category = "other"
	mustCreate(t, s, other)
	scan := func() []tandem.FAQ {
		t.Helper()
		var got []tandem.FAQ
		err := s.Scan(ctx, knowledge.ListFilter{Category: "snap", Limit: 1, After: "zzz"}, func(f tandem.FAQ) error {
			if len(got) == 0 && len(made) == 5 {
				// Change the store in the middle of the scan.
				ids := make([]string, 0, 5)
				for _, m := range made {
					ids = append(ids, m.ID)
				}
				slices.Sort(ids)
				last, err := s.Get(ctx, ids[4])
				if err != nil {
					return err
				}
				last.Answer = "changed during the scan"
				if _, err := s.Update(ctx, knowledge.Write{FAQ: last, Actor: "bob", ExpectedVersion: last.Version}); err != nil {
					return err
				}
				if err := s.Delete(ctx, ids[3], 0, "bob"); err != nil {
					return err
				}
				added := faq("s-new", "Added during the scan?")
				added.Category = "snap"
				made = append(made, mustCreate(t, s, added))
			}
			got = append(got, f)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	first := scan()
	if len(first) != 5 {
		t.Fatalf("scan during changes yielded %d FAQs, want the 5 of its snapshot", len(first))
	}
	for i, f := range first {
		if i > 0 && first[i-1].ID >= f.ID {
			t.Fatalf("scan not in id order: %s then %s", first[i-1].ID, f.ID)
		}
		if f.Answer == "changed during the scan" || f.ExternalID == "s-new" || f.Category != "snap" {
			t.Fatalf("scan saw a write made after it started, or another category: %+v", f)
		}
	}
	second := scan()
	if len(second) != 5 || second[len(second)-2].Answer != "changed during the scan" && second[len(second)-1].Answer != "changed during the scan" {
		t.Fatalf("a later scan does not see the changes: %+v", second)
	}
	stop := errors.New("stop")
	calls := 0
	err := s.Scan(ctx, knowledge.ListFilter{}, func(tandem.FAQ) error {
		calls++
		if calls == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 2 {
		t.Fatalf("yield's error: Scan returned %v after %d calls, want stop after 2", err, calls)
	}
}

func testUpdateOptimistic(t *testing.T, s knowledge.Store) {
	f := mustCreate(t, s, faq("u-1", "Where is my order?"))
	next := f
	next.Answer = "Track it under Orders."
	out, err := s.Update(ctx, knowledge.Write{FAQ: next, Actor: "bob", ExpectedVersion: 1})
	if err != nil {
		t.Fatal(err)
	}
	if out.Version != 2 || out.Answer != "Track it under Orders." || out.UpdatedBy != "bob" || !out.CreatedAt.Equal(f.CreatedAt) || out.UpdatedAt.Before(f.UpdatedAt) {
		t.Fatalf("updated = %+v", out)
	}
	stale := f
	stale.Answer = "stale write"
	_, err = s.Update(ctx, knowledge.Write{FAQ: stale, Actor: "carol", ExpectedVersion: 1})
	wantCode(t, err, tandem.ECONFLICT)
	cur, _ := s.Get(ctx, f.ID)
	if cur.Answer != "Track it under Orders." || cur.Version != 2 {
		t.Fatalf("conflicting update changed the item: %+v", cur)
	}
	missing := f
	missing.ID = "faq_nope"
	_, err = s.Update(ctx, knowledge.Write{FAQ: missing, Actor: "x", ExpectedVersion: 1})
	wantCode(t, err, tandem.ENOTFOUND)
}

func testDeleteAndAudit(t *testing.T, s knowledge.Store) {
	f := mustCreate(t, s, faq("d-1", "Can I cancel my order?"))
	next := f
	next.Question = "Can I cancel an order?"
	if _, err := s.Update(ctx, knowledge.Write{FAQ: next, Actor: "bob", ExpectedVersion: 1}); err != nil {
		t.Fatal(err)
	}
	wantCode(t, s.Delete(ctx, f.ID, 1, "carol"), tandem.ECONFLICT)
	if _, err := s.Get(ctx, f.ID); err != nil {
		t.Fatalf("conflicting delete removed the item: %v", err)
	}
	if err := s.Delete(ctx, f.ID, 2, "carol"); err != nil {
		t.Fatal(err)
	}
	_, err := s.Get(ctx, f.ID)
	wantCode(t, err, tandem.ENOTFOUND)
	wantCode(t, s.Delete(ctx, f.ID, 0, "carol"), tandem.ENOTFOUND)
	revs, err := s.Versions(ctx, f.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(revs) != 3 {
		t.Fatalf("%d revisions, want 3: %+v", len(revs), revs)
	}
	want := []struct {
		op       knowledge.Op
		actor, q string
		version  int64
	}{{knowledge.OpCreate, "alice", "Can I cancel my order?", 1}, {knowledge.OpUpdate, "bob", "Can I cancel an order?", 2}, {knowledge.OpDelete, "carol", "Can I cancel an order?", 3}}
	for i, w := range want {
		r := revs[i]
		if r.Op != w.op || r.Actor != w.actor || r.FAQ.Question != w.q || r.FAQ.Version != w.version || r.At.IsZero() {
			t.Errorf("revision %d = %+v, want %+v", i, r, w)
		}
	}
	// Pages: after a version, at most limit; past the end, empty.
	for _, pg := range []struct {
		after int64
		limit int
		want  []int64
	}{{0, 2, []int64{1, 2}}, {1, 1, []int64{2}}, {2, 5, []int64{3}}, {3, 5, nil}, {9, 0, nil}} {
		revs, err := s.Versions(ctx, f.ID, pg.after, pg.limit)
		if err != nil {
			t.Fatalf("Versions(after %d, limit %d): %v", pg.after, pg.limit, err)
		}
		var got []int64
		for _, r := range revs {
			got = append(got, r.FAQ.Version)
		}
		if !slices.Equal(got, pg.want) {
			t.Errorf("Versions(after %d, limit %d) = versions %v, want %v", pg.after, pg.limit, got, pg.want)
		}
	}
	// The external id is free again.
	mustCreate(t, s, faq("d-1", "Can I cancel my order?"))
	_, err = s.Versions(ctx, "faq_never", 0, 0)
	wantCode(t, err, tandem.ENOTFOUND)
	_, err = s.Versions(ctx, "faq_never", 4, 10)
	wantCode(t, err, tandem.ENOTFOUND)
}

func testExternalIDUnique(t *testing.T, s knowledge.Store) {
	a := mustCreate(t, s, faq("same", "First?"))
	n, _ := knowledge.Normalize(faq("same", "Second?"))
	n.ID = knowledge.NewID()
	_, err := s.Create(ctx, knowledge.Write{FAQ: n, Actor: "x"})
	wantCode(t, err, tandem.ECONFLICT)
	// The message names the clash, not the rejected create's own new id.
	if msg := err.Error(); !strings.Contains(msg, `"same"`) || strings.Contains(msg, n.ID) {
		t.Fatalf("conflict message %q", msg)
	}
	b := mustCreate(t, s, faq("other", "Third?"))
	b.ExternalID = "same"
	_, err = s.Update(ctx, knowledge.Write{FAQ: b, Actor: "x", ExpectedVersion: 1})
	wantCode(t, err, tandem.ECONFLICT)
	if got, _ := s.GetByExternalID(ctx, "same"); got.ID != a.ID {
		t.Fatalf("external id now points at %s, want %s", got.ID, a.ID)
	}
}

func testUpsert(t *testing.T, s knowledge.Store) {
	n, _ := knowledge.Normalize(faq("up-1", "Do you ship abroad?"))
	o, err := s.UpsertByExternalID(ctx, knowledge.Write{FAQ: n, Actor: "importer"})
	if err != nil || o.Action != knowledge.ActionCreated || o.FAQ.Version != 1 {
		t.Fatalf("first upsert = %+v, %v", o, err)
	}
	o2, err := s.UpsertByExternalID(ctx, knowledge.Write{FAQ: n, Actor: "importer"})
	if err != nil || o2.Action != knowledge.ActionUnchanged || o2.FAQ.Version != 1 || o2.FAQ.ID != o.FAQ.ID {
		t.Fatalf("identical upsert = %+v, %v", o2, err)
	}
	n.Answer = "Yes, to 40 countries."
	o3, err := s.UpsertByExternalID(ctx, knowledge.Write{FAQ: n, Actor: "importer"})
	if err != nil || o3.Action != knowledge.ActionUpdated || o3.FAQ.Version != 2 || o3.FAQ.ID != o.FAQ.ID {
		t.Fatalf("changed upsert = %+v, %v", o3, err)
	}
	revs, _ := s.Versions(ctx, o.FAQ.ID, 0, 0)
	if len(revs) != 2 {
		t.Fatalf("%d revisions after create+unchanged+update, want 2", len(revs))
	}
}

func batch(t *testing.T, n int, prefix string) []knowledge.Write {
	var ws []knowledge.Write
	for i := range n {
		f, err := knowledge.Normalize(faq(fmt.Sprintf("%s-%d", prefix, i), fmt.Sprintf("Imported question %d?", i)))
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, knowledge.Write{FAQ: f, Actor: "importer"})
	}
	return ws
}

func count(t *testing.T, s knowledge.Store) int {
	t.Helper()
	p, err := s.List(ctx, knowledge.ListFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return len(p.Items)
}

func testImportAtomic(t *testing.T, s knowledge.Store) {
	if err := s.RegisterModel(ctx, "m4", 4); err != nil {
		t.Fatal(err)
	}
	existing := mustCreate(t, s, faq("imp-1", "Imported question 1?"))
	ws := batch(t, 5, "imp")
	ws[3].Embeddings = []knowledge.Embedding{{Model: "m4", Vectors: [][]float32{{1, 2, 3}}}} // wrong dimension
	if _, err := s.Import(ctx, ws, false); err == nil {
		t.Fatal("import with a bad row succeeded")
	}
	if n := count(t, s); n != 1 {
		t.Fatalf("failed import left %d items, want 1 (nothing applied)", n)
	}
	ws[3].Embeddings = nil
	outs, err := s.Import(ctx, ws, false)
	if err != nil {
		t.Fatal(err)
	}
	var created, unchanged int
	for i, o := range outs {
		if o.Row != i {
			t.Fatalf("outcome %d has row %d", i, o.Row)
		}
		switch o.Action {
		case knowledge.ActionCreated:
			created++
		case knowledge.ActionUnchanged:
			unchanged++
			if o.FAQ.ID != existing.ID {
				t.Fatalf("unchanged row is %s, want %s", o.FAQ.ID, existing.ID)
			}
		}
	}
	if created != 4 || unchanged != 1 || count(t, s) != 5 {
		t.Fatalf("created %d unchanged %d total %d", created, unchanged, count(t, s))
	}
	// Re-running the same import is idempotent.
	outs, err = s.Import(ctx, ws, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range outs {
		if o.Action != knowledge.ActionUnchanged || o.FAQ.Version != 1 {
			t.Fatalf("re-import outcome %+v", o)
		}
	}
	// Duplicate external ids in one batch are refused as a whole.
	dup := batch(t, 2, "dup")
	dup = append(dup, dup[0])
	if _, err := s.Import(ctx, dup, false); err == nil {
		t.Fatal("import with duplicate external ids succeeded")
	}
	if n := count(t, s); n != 5 {
		t.Fatalf("duplicate import left %d items, want 5", n)
	}
}

func testImportDryRun(t *testing.T, s knowledge.Store) {
	mustCreate(t, s, faq("dry-0", "Imported question 0?"))
	ws := batch(t, 3, "dry")
	ws[0].FAQ.Answer = "changed"
	outs, err := s.Import(ctx, ws, true)
	if err != nil {
		t.Fatal(err)
	}
	if outs[0].Action != knowledge.ActionUpdated || outs[1].Action != knowledge.ActionCreated || outs[2].Action != knowledge.ActionCreated {
		t.Fatalf("dry-run outcomes %+v", outs)
	}
	// The versions the rows would get, the same in every store.
	if outs[0].FAQ.Version != 2 || outs[1].FAQ.Version != 1 || outs[2].FAQ.Version != 1 {
		t.Fatalf("dry-run versions %d %d %d, want 2 1 1", outs[0].FAQ.Version, outs[1].FAQ.Version, outs[2].FAQ.Version)
	}
	if n := count(t, s); n != 1 {
		t.Fatalf("dry run stored items: %d", n)
	}
	got, _ := s.GetByExternalID(ctx, "dry-0")
	if got.Answer == "changed" || got.Version != 1 {
		t.Fatalf("dry run changed an item: %+v", got)
	}
}

func seedSearch(t *testing.T, s knowledge.Store) map[string]tandem.FAQ {
	items := []tandem.FAQ{
		{ExternalID: "ship", Question: "How long does shipping take?", Phrasings: []string{"delivery time", "when will my parcel arrive"}, Answer: "3-5 business days.", Tags: []string{"shipping"}},
		{ExternalID: "return", Question: "How do I return an item?", Phrasings: []string{"send something back", "return policy"}, Answer: "Within 30 days.", Tags: []string{"returns"}},
		{ExternalID: "refund", Question: "When will I get my refund?", Phrasings: []string{"money back", "refund status"}, Answer: "Within 5 days of receiving the return.", Tags: []string{"returns", "payments"}},
		{ExternalID: "pay", Question: "Which payment methods do you accept?", Phrasings: []string{"can I pay with paypal", "credit card"}, Answer: "Cards and PayPal.", Tags: []string{"payments"}},
		{ExternalID: "pw", Question: "How do I reset my password?", Phrasings: []string{"forgot my password"}, Answer: "Use the reset link.", Tags: []string{"account"}},
		{ExternalID: "ship-de", Question: "Wie lange dauert der Versand?", Phrasings: []string{"Lieferzeit"}, Answer: "3-5 Werktage.", Locale: "de", Tags: []string{"shipping"}},
		{ExternalID: "draft", Question: "How long does express shipping take?", Answer: "Next day.", Tags: []string{"shipping"}, Status: tandem.FAQDraft},
	}
	out := map[string]tandem.FAQ{}
	for _, f := range items {
		if f.Status == "" {
			f.Status = tandem.FAQPublished
		}
		out[f.ExternalID] = mustCreate(t, s, f)
	}
	return out
}

func ids(hits []knowledge.Scored) []string {
	var out []string
	for _, h := range hits {
		out = append(out, h.FAQ.ExternalID)
	}
	return out
}

func testLexicalSearch(t *testing.T, s knowledge.Store) {
	seedSearch(t, s)
	for _, tc := range []struct{ q, want string }{
		{"how long is delivery", "ship"},
		{"I forgot my password", "pw"},
		{"Refunds: money back?", "refund"},
		{"can i pay with PayPal", "pay"},
		{"returning items", "return"},
	} {
		hits, err := s.LexicalSearch(ctx, tc.q, knowledge.Filter{PublishedOnly: true}, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(hits) == 0 || hits[0].FAQ.ExternalID != tc.want {
			t.Errorf("lexical %q = %v, want %s first", tc.q, ids(hits), tc.want)
			continue
		}
		for i := 1; i < len(hits); i++ {
			if hits[i].Score > hits[i-1].Score {
				t.Errorf("lexical %q not sorted: %v", tc.q, hits)
			}
		}
		if hits[0].Score <= 0 {
			t.Errorf("lexical %q top score %v", tc.q, hits[0].Score)
		}
	}
	hits, err := s.LexicalSearch(ctx, "zebra quantum", knowledge.Filter{}, 5)
	if err != nil || len(hits) != 0 {
		t.Errorf("unrelated query = %v, %v", ids(hits), err)
	}
	hits, err = s.LexicalSearch(ctx, "shipping", knowledge.Filter{}, 1)
	if err != nil || len(hits) != 1 {
		t.Errorf("k=1 returned %d hits, %v", len(hits), err)
	}
	// In a small knowledge base every FAQ that shares a query term is
	// ranked (PostgreSQL took every term as "common" below 10 FAQs and
	// kept only the documents with the rarest one: "password" alone).
	hits, err = s.LexicalSearch(ctx, "password payment", knowledge.Filter{}, 10)
	if got := ids(hits); err != nil || len(got) != 3 || !contains(got, "pw") || !contains(got, "pay") || !contains(got, "refund") {
		t.Errorf("two-term query = %v, %v; want pw, pay and refund (tagged payments)", got, err)
	}
}

// testLexicalBM25: lexical scores are BM25 with k1 = 1.2 and b = 0.75 in
// every store: a term found twice scores more than once, and the same
// term in a shorter FAQ more than in a longer one (PostgreSQL bound k1
// and b as integers, 1 and 0, so length did not count and rankings
// differed from the memory store's).
func testLexicalBM25(t *testing.T, s knowledge.Store) {
	short := mustCreate(t, s, faq("short", "zqxword?"))
	long := mustCreate(t, s, faq("long", "zqxword alpha beta gamma delta epsilon?"))
	twice := mustCreate(t, s, faq("twice", "zqxword zqxword?"))
	hits, err := s.LexicalSearch(ctx, "zqxword", knowledge.Filter{}, 10)
	if err != nil || len(hits) != 3 {
		t.Fatalf("hits %v, %v", ids(hits), err)
	}
	score := map[string]float64{}
	for _, h := range hits {
		score[h.FAQ.ID] = float64(h.Score)
	}
	if !(score[twice.ID] > score[short.ID] && score[short.ID] > score[long.ID]) {
		t.Fatalf("scores twice %v, short %v, long %v: want twice > short > long", score[twice.ID], score[short.ID], score[long.ID])
	}
}

func testLexicalFilters(t *testing.T, s knowledge.Store) {
	seedSearch(t, s)
	hits, _ := s.LexicalSearch(ctx, "express shipping", knowledge.Filter{}, 10)
	if !contains(ids(hits), "draft") {
		t.Errorf("drafts must be found without PublishedOnly: %v", ids(hits))
	}
	hits, _ = s.LexicalSearch(ctx, "express shipping", knowledge.Filter{PublishedOnly: true}, 10)
	if contains(ids(hits), "draft") {
		t.Errorf("PublishedOnly returned a draft: %v", ids(hits))
	}
	hits, _ = s.LexicalSearch(ctx, "Versand Lieferzeit shipping", knowledge.Filter{Locale: "de"}, 10)
	if len(hits) != 1 || hits[0].FAQ.ExternalID != "ship-de" {
		t.Errorf("locale de = %v", ids(hits))
	}
	// A regional locale also finds FAQs of its primary language.
	for _, loc := range []string{"de-AT", "de_at", "DE-at", " de_AT "} {
		hits, _ = s.LexicalSearch(ctx, "Versand Lieferzeit shipping", knowledge.Filter{Locale: loc}, 10)
		if len(hits) != 1 || hits[0].FAQ.ExternalID != "ship-de" {
			t.Errorf("locale %s = %v", loc, ids(hits))
		}
	}
	hits, _ = s.LexicalSearch(ctx, "money back refund return", knowledge.Filter{Tags: []string{"returns", "payments"}}, 10)
	if len(hits) != 1 || hits[0].FAQ.ExternalID != "refund" {
		t.Errorf("tags returns+payments = %v", ids(hits))
	}
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// unit returns a 4-d unit vector pointing mostly along axis a.
func unit(a int, noise float32) []float32 {
	v := []float32{noise, noise, noise, noise}
	v[a] = 1
	var n float32
	for _, x := range v {
		n += x * x
	}
	n = float32(math.Sqrt(float64(n)))
	for i := range v {
		v[i] /= n
	}
	return v
}

func testVectorSearch(t *testing.T, s knowledge.Store) {
	if err := s.RegisterModel(ctx, "m4", 4); err != nil {
		t.Fatal(err)
	}
	emb := func(vs ...[]float32) knowledge.Embedding { return knowledge.Embedding{Model: "m4", Vectors: vs} }
	a := mustCreate(t, s, faq("a", "Alpha?", "alpha two"), emb(unit(0, 0), unit(1, 0.1)))
	b := mustCreate(t, s, faq("b", "Beta?"), emb(unit(1, 0)))
	c := tandem.FAQ{ExternalID: "c", Question: "Gamma?", Answer: "g", Locale: "fr", Status: tandem.FAQDraft, Tags: []string{"x"}}
	mustCreate(t, s, c, emb(unit(2, 0)))
	_ = b

	hits, err := s.VectorSearch(ctx, "m4", unit(1, 0.01), knowledge.Filter{}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) != 2 || hits[0].FAQ.ExternalID != "b" || hits[1].FAQ.ExternalID != "a" {
		t.Fatalf("vector hits = %v", ids(hits))
	}
	if hits[1].Matched != 1 {
		t.Errorf("a matched phrasing %d, want 1 (the alternative)", hits[1].Matched)
	}
	if hits[0].Score < 0.99 || hits[0].Score > 1.0001 || hits[1].Score >= hits[0].Score {
		t.Errorf("scores %v %v: want cosine similarity", hits[0].Score, hits[1].Score)
	}
	// One hit per FAQ even when several phrasings match.
	hits, _ = s.VectorSearch(ctx, "m4", unit(0, 0.5), knowledge.Filter{}, 10)
	if len(hits) != 3 || hits[0].FAQ.ID != a.ID {
		t.Fatalf("dedup per FAQ: %v", ids(hits))
	}
	hits, _ = s.VectorSearch(ctx, "m4", unit(2, 0), knowledge.Filter{PublishedOnly: true}, 10)
	if contains(ids(hits), "c") || len(hits) != 2 {
		t.Errorf("PublishedOnly = %v", ids(hits))
	}
	hits, _ = s.VectorSearch(ctx, "m4", unit(0, 0), knowledge.Filter{Locale: "fr", Tags: []string{"x"}}, 10)
	if len(hits) != 1 || hits[0].FAQ.ExternalID != "c" {
		t.Errorf("locale+tag filter = %v", ids(hits))
	}
	hits, _ = s.VectorSearch(ctx, "m4", unit(0, 0), knowledge.Filter{Locale: "fr-CA", Tags: []string{"x"}}, 10)
	if len(hits) != 1 || hits[0].FAQ.ExternalID != "c" {
		t.Errorf("regional locale+tag filter = %v", ids(hits))
	}
	// A blank locale filter is no locale filter (as in lexical search).
	hits, _ = s.VectorSearch(ctx, "m4", unit(0, 0), knowledge.Filter{Locale: "  "}, 10)
	if len(hits) != 3 {
		t.Errorf("blank locale filter = %v, want all 3", ids(hits))
	}
	_, err = s.VectorSearch(ctx, "m4", []float32{1, 0}, knowledge.Filter{}, 1)
	wantCode(t, err, tandem.EINVALID)
	_, err = s.VectorSearch(ctx, "unknown", unit(0, 0), knowledge.Filter{}, 1)
	if err == nil {
		t.Error("search of an unknown model succeeded")
	}
	// Vectors with the wrong count or dimension are refused.
	bad := faq("bad", "Bad?", "two")
	n, _ := knowledge.Normalize(bad)
	_, err = s.Create(ctx, knowledge.Write{FAQ: n, Actor: "x", Embeddings: []knowledge.Embedding{emb(unit(0, 0))}})
	wantCode(t, err, tandem.EINVALID)
	_, err = s.Create(ctx, knowledge.Write{FAQ: n, Actor: "x", Embeddings: []knowledge.Embedding{emb([]float32{1, 0, 0}, []float32{1, 0, 0})}})
	wantCode(t, err, tandem.EINVALID)
	if _, err := s.GetByExternalID(ctx, "bad"); tandem.ErrorCode(err) != tandem.ENOTFOUND {
		t.Errorf("a refused create stored the item: %v", err)
	}
}

func testVectorLifecycle(t *testing.T, s knowledge.Store) {
	if err := s.RegisterModel(ctx, "m4", 4); err != nil {
		t.Fatal(err)
	}
	emb := func(vs ...[]float32) knowledge.Embedding { return knowledge.Embedding{Model: "m4", Vectors: vs} }
	a := mustCreate(t, s, faq("a", "Alpha?"), emb(unit(0, 0)))
	b := mustCreate(t, s, faq("b", "Beta?"))
	miss, err := s.MissingEmbeddings(ctx, "m4", 10)
	if err != nil || len(miss) != 1 || miss[0].ID != b.ID {
		t.Fatalf("missing = %v, %v", miss, err)
	}
	wantCode(t, s.ActivateModel(ctx, "m4"), tandem.ECONFLICT)
	wantCode(t, s.SetEmbedding(ctx, b.ID, 7, emb(unit(1, 0))), tandem.ECONFLICT)
	if err := s.SetEmbedding(ctx, b.ID, 1, emb(unit(1, 0))); err != nil {
		t.Fatal(err)
	}
	if miss, _ := s.MissingEmbeddings(ctx, "m4", 10); len(miss) != 0 {
		t.Fatalf("still missing %v", miss)
	}
	if err := s.ActivateModel(ctx, "m4"); err != nil {
		t.Fatal(err)
	}
	// A status-only change keeps the vectors...
	a2 := a
	a2.Status = tandem.FAQDraft
	a2, err = s.Update(ctx, knowledge.Write{FAQ: a2, Actor: "x", ExpectedVersion: 1})
	if err != nil {
		t.Fatal(err)
	}
	if miss, _ := s.MissingEmbeddings(ctx, "m4", 10); len(miss) != 0 {
		t.Fatalf("status change dropped vectors: %v", miss)
	}
	hits, _ := s.VectorSearch(ctx, "m4", unit(0, 0), knowledge.Filter{PublishedOnly: true}, 5)
	if contains(ids(hits), "a") {
		t.Fatalf("unpublished item still found by published-only vector search")
	}
	// ...a text change without vectors drops them (never stale vectors).
	a3 := a2
	a3.Question = "Alpha changed?"
	if _, err := s.Update(ctx, knowledge.Write{FAQ: a3, Actor: "x", ExpectedVersion: 2}); err != nil {
		t.Fatal(err)
	}
	miss, _ = s.MissingEmbeddings(ctx, "m4", 10)
	if len(miss) != 1 || miss[0].ID != a.ID || miss[0].Version != 3 {
		t.Fatalf("after text change missing = %+v", miss)
	}
	hits, _ = s.VectorSearch(ctx, "m4", unit(0, 0), knowledge.Filter{}, 5)
	if contains(ids(hits), "a") {
		t.Fatalf("stale vectors still searched")
	}
	// Deleting removes its vectors from search.
	if err := s.Delete(ctx, b.ID, 0, "x"); err != nil {
		t.Fatal(err)
	}
	hits, _ = s.VectorSearch(ctx, "m4", unit(1, 0), knowledge.Filter{}, 5)
	if len(hits) != 0 {
		t.Fatalf("deleted item found: %v", ids(hits))
	}
}

func testModels(t *testing.T, s knowledge.Store) {
	if err := s.RegisterModel(ctx, "enc-v1", 8); err != nil {
		t.Fatal(err)
	}
	if err := s.RegisterModel(ctx, "enc-v1", 8); err != nil {
		t.Fatalf("re-registering is idempotent: %v", err)
	}
	wantCode(t, s.RegisterModel(ctx, "enc-v1", 16), tandem.EINVALID)
	if err := s.RegisterModel(ctx, "enc-v2", 16); err != nil {
		t.Fatal(err)
	}
	if err := s.ActivateModel(ctx, "enc-v1"); err != nil { // empty store: nothing missing
		t.Fatal(err)
	}
	ms, err := s.Models(ctx)
	if err != nil || len(ms) != 2 {
		t.Fatalf("models = %+v, %v", ms, err)
	}
	for _, m := range ms {
		if (m.Version == "enc-v1") != m.Active {
			t.Fatalf("models = %+v", ms)
		}
	}
	wantCode(t, s.DropModel(ctx, "enc-v1"), tandem.ECONFLICT)
	if err := s.ActivateModel(ctx, "enc-v2"); err != nil {
		t.Fatal(err)
	}
	if err := s.DropModel(ctx, "enc-v1"); err != nil {
		t.Fatal(err)
	}
	ms, _ = s.Models(ctx)
	if len(ms) != 1 || ms[0].Version != "enc-v2" || !ms[0].Active {
		t.Fatalf("after drop: %+v", ms)
	}
}

func testConcurrentUpdates(t *testing.T, s knowledge.Store) {
	f := mustCreate(t, s, faq("c-1", "Concurrent?"))
	var ok, conflict atomic.Int32
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := f
			next.Answer = fmt.Sprintf("writer %d", i)
			_, err := s.Update(ctx, knowledge.Write{FAQ: next, Actor: fmt.Sprintf("w%d", i), ExpectedVersion: 1})
			switch tandem.ErrorCode(err) {
			case "":
				ok.Add(1)
			case tandem.ECONFLICT:
				conflict.Add(1)
			default:
				t.Errorf("update: %v", err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 1 || conflict.Load() != 7 {
		t.Fatalf("%d updates succeeded and %d conflicted, want 1 and 7", ok.Load(), conflict.Load())
	}
	revs, _ := s.Versions(ctx, f.ID, 0, 0)
	if len(revs) != 2 {
		t.Fatalf("%d revisions, want 2", len(revs))
	}
	cur, _ := s.Get(ctx, f.ID)
	if cur.Version != 2 || cur.Answer != revs[1].FAQ.Answer {
		t.Fatalf("current %+v does not match the last revision %+v", cur, revs[1].FAQ)
	}
}

func testUnicode(t *testing.T, s knowledge.Store) {
	mustCreate(t, s, tandem.FAQ{ExternalID: "zh", Question: "如何申请退款？", Phrasings: []string{"退款多久到账"}, Answer: "七天内。", Locale: "zh", Status: tandem.FAQPublished})
	mustCreate(t, s, tandem.FAQ{ExternalID: "fr", Question: "Où est ma commande ?", Answer: "Voir « Commandes ».", Locale: "fr", Status: tandem.FAQPublished})
	got, err := s.GetByExternalID(ctx, "zh")
	if err != nil || got.Question != "如何申请退款？" || got.Phrasings[0] != "退款多久到账" {
		t.Fatalf("round trip = %+v, %v", got, err)
	}
	hits, err := s.LexicalSearch(ctx, "退款", knowledge.Filter{}, 5)
	if err != nil || len(hits) == 0 || hits[0].FAQ.ExternalID != "zh" {
		t.Fatalf("CJK lexical = %v, %v", ids(hits), err)
	}
	hits, err = s.LexicalSearch(ctx, "commande", knowledge.Filter{Locale: "fr"}, 5)
	if err != nil || len(hits) != 1 {
		t.Fatalf("French lexical = %v, %v", ids(hits), err)
	}
	// A non-Latin letter whose UTF-8 ends in two equal bytes (Devanagari
	// त is E0 A4 A4) before an English suffix: the stemmer's un-doubling
	// cut the letter in half, an invalid UTF-8 term PostgreSQL refused, so
	// such an FAQ could not be stored and such a query failed the search.
	mixed := mustCreate(t, s, tandem.FAQ{ExternalID: "hi", Question: "तing तed?", Answer: "हाँ", Locale: "hi", Status: tandem.FAQPublished})
	hits, err = s.LexicalSearch(ctx, "तing", knowledge.Filter{}, 5)
	if err != nil || len(hits) != 1 || hits[0].FAQ.ID != mixed.ID {
		t.Fatalf("mixed-script lexical = %v, %v", ids(hits), err)
	}
}

// testVectorDegenerate: a zero query vector (no direction) finds nothing; a
// stored zero vector never matches; NaN or infinite components are refused;
// scores are similarities in [0, 1] (an opposite vector scores 0) and rank
// by the raw cosine.
func testVectorDegenerate(t *testing.T, s knowledge.Store) {
	if err := s.RegisterModel(ctx, "m4", 4); err != nil {
		t.Fatal(err)
	}
	emb := func(vs ...[]float32) knowledge.Embedding { return knowledge.Embedding{Model: "m4", Vectors: vs} }
	neg := func(v []float32) []float32 {
		out := make([]float32, len(v))
		for i, x := range v {
			out[i] = -x
		}
		return out
	}
	zero := []float32{0, 0, 0, 0}
	mustCreate(t, s, faq("a", "Alpha?"), emb(unit(0, 0)))
	mustCreate(t, s, faq("z", "Zero?", "zero two"), emb(zero, zero))
	mustCreate(t, s, faq("m", "Mixed?", "mixed two"), emb(zero, unit(1, 0)))
	mustCreate(t, s, faq("o", "Opposite?"), emb(neg(unit(0, 0.2))))
	mustCreate(t, s, faq("p", "Far opposite?"), emb(neg(unit(0, 0))))

	hits, err := s.VectorSearch(ctx, "m4", zero, knowledge.Filter{}, 10)
	if err != nil || len(hits) != 0 {
		t.Fatalf("zero query vector: %v, %v", ids(hits), err)
	}
	hits, err = s.VectorSearch(ctx, "m4", unit(0, 0), knowledge.Filter{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(hits); len(got) != 4 || got[0] != "a" || got[1] != "m" || got[2] != "o" || got[3] != "p" {
		t.Fatalf("hits = %v, want [a m o p] (z has only zero vectors)", got)
	}
	for _, h := range hits {
		if !(h.Score >= 0 && h.Score <= 1) {
			t.Errorf("%s: score %v outside [0, 1]", h.FAQ.ExternalID, h.Score)
		}
	}
	if hits[0].Score < 0.99 || hits[2].Score != 0 || hits[3].Score != 0 {
		t.Errorf("scores = %v %v %v %v, want ~1, cosine, 0, 0", hits[0].Score, hits[1].Score, hits[2].Score, hits[3].Score)
	}
	if hits[1].Matched != 1 {
		t.Errorf("m matched phrasing %d, want 1 (its question vector is zero)", hits[1].Matched)
	}
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1))} {
		n, _ := knowledge.Normalize(faq("bad", "Bad?"))
		_, err := s.Create(ctx, knowledge.Write{FAQ: n, Actor: "x", Embeddings: []knowledge.Embedding{emb([]float32{bad, 0, 0, 1})}})
		wantCode(t, err, tandem.EINVALID)
	}
	if _, err := s.GetByExternalID(ctx, "bad"); tandem.ErrorCode(err) != tandem.ENOTFOUND {
		t.Errorf("a refused create stored the item: %v", err)
	}
}

// testLongWords: words longer than PostgreSQL's 2047-byte lexeme limit (an
// unspaced script, a long key) are stored and searchable, with the same
// terms in both stores.
func testLongWords(t *testing.T, s knowledge.Store) {
	khmer := strings.Repeat("សួស្តី", 130)  // 2340 bytes, no spaces
	key := strings.Repeat("ab12", 520)      // 2080 bytes
	edge := "x" + strings.Repeat("é", 1100) // 2201 bytes: the cut falls inside a 2-byte character
	a := mustCreate(t, s, tandem.FAQ{ExternalID: "km", Question: "Greeting?", Phrasings: []string{khmer[:len("សួស្តី")*80]}, Answer: khmer, Locale: "km", Status: tandem.FAQPublished})
	b := mustCreate(t, s, tandem.FAQ{ExternalID: "key", Question: "Key?", Answer: "key: " + key, Tags: []string{"k"}, Status: tandem.FAQPublished})
	c := mustCreate(t, s, tandem.FAQ{ExternalID: "edge", Question: "Edge?", Answer: edge, Status: tandem.FAQPublished})
	for _, tc := range []struct {
		q  string
		id string
	}{{khmer, a.ID}, {key, b.ID}, {edge, c.ID}} {
		hits, err := s.LexicalSearch(ctx, tc.q, knowledge.Filter{}, 5)
		if err != nil || len(hits) == 0 || hits[0].FAQ.ID != tc.id {
			t.Errorf("search for a %d-byte word: %v, %v", len(tc.q), ids(hits), err)
		}
	}
	// Updates and imports with long words work too (and keep the
	// statistics consistent: the old terms are removed).
	up := b
	up.Answer = "key: " + strings.Repeat("cd34", 600)
	n, _ := knowledge.Normalize(up)
	if _, err := s.Update(ctx, knowledge.Write{FAQ: n, Actor: "bob", ExpectedVersion: b.Version}); err != nil {
		t.Fatalf("update: %v", err)
	}
	if hits, _ := s.LexicalSearch(ctx, key, knowledge.Filter{}, 5); len(hits) != 0 {
		t.Errorf("old long word still found: %v", ids(hits))
	}
	imp, _ := knowledge.Normalize(tandem.FAQ{ExternalID: "imp", Question: "Imported?", Answer: strings.Repeat("ꦲ", 800), Status: tandem.FAQPublished})
	if _, err := s.Import(ctx, []knowledge.Write{{FAQ: imp, Actor: "bob"}}, false); err != nil {
		t.Fatalf("import: %v", err)
	}
	if err := s.Delete(ctx, c.ID, 0, "bob"); err != nil {
		t.Fatalf("delete: %v", err)
	}
}

// testImportByID: a write without external id is matched by id (an export
// of FAQs that never had one re-imports unchanged); a new id is created
// with that id; a stored external id is kept.
func testImportByID(t *testing.T, s knowledge.Store) {
	a := mustCreate(t, s, tandem.FAQ{Question: "No external id?", Answer: "A", Status: tandem.FAQPublished})
	b := mustCreate(t, s, faq("ext-b", "With external id?"))
	row := func(f tandem.FAQ) knowledge.Write {
		n, err := knowledge.Normalize(f)
		if err != nil {
			t.Fatal(err)
		}
		return knowledge.Write{FAQ: n, Actor: "bob"}
	}
	bNoExt := b
	bNoExt.ExternalID = ""
	newF := tandem.FAQ{ID: "faq_restored", Question: "Restored?", Answer: "R"}
	for _, dry := range []bool{true, false} {
		outs, err := s.Import(ctx, []knowledge.Write{row(a), row(bNoExt), row(newF)}, dry)
		if err != nil {
			t.Fatal(err)
		}
		if outs[0].Action != knowledge.ActionUnchanged || outs[1].Action != knowledge.ActionUnchanged || outs[2].Action != knowledge.ActionCreated || outs[2].FAQ.ID != "faq_restored" {
			t.Fatalf("dry run %v: %+v", dry, outs)
		}
	}
	if got, err := s.Get(ctx, "faq_restored"); err != nil || got.Question != "Restored?" {
		t.Fatalf("created by id: %+v, %v", got, err)
	}
	bNoExt.Answer = "Changed"
	outs, err := s.Import(ctx, []knowledge.Write{row(bNoExt)}, false)
	if err != nil || outs[0].Action != knowledge.ActionUpdated {
		t.Fatalf("update by id: %+v, %v", outs, err)
	}
	if got, _ := s.Get(ctx, b.ID); got.ExternalID != "ext-b" || got.Answer != "Changed" || got.Version != 2 {
		t.Errorf("after the update by id: %+v", got)
	}
	_, err = s.Import(ctx, []knowledge.Write{row(a), row(a)}, false)
	wantCode(t, err, tandem.EINVALID)
	// Two rows for one FAQ, by its id and by its external id: refused, and
	// the error names the second row (memstore planned both against the
	// stored content and kept the first, PostgreSQL applied both in turn).
	bByID, bByExt := bNoExt, b
	bByID.Answer, bByExt.Answer = "By id", "By external id"
	for _, dry := range []bool{true, false} {
		_, err = s.Import(ctx, []knowledge.Write{row(newF), row(bByID), row(bByExt)}, dry)
		wantCode(t, err, tandem.EINVALID)
		var re *knowledge.RowError
		if !errors.As(err, &re) || re.Index != 2 || !strings.HasPrefix(tandem.ErrorMessage(err), "row 3: ") {
			t.Fatalf("dry run %v: same FAQ twice: %v, want a RowError for row 3", dry, err)
		}
	}
	if got, _ := s.Get(ctx, b.ID); got.Answer != "Changed" || got.Version != 2 {
		t.Errorf("a refused import changed the FAQ: %+v", got)
	}
	_, err = s.Import(ctx, []knowledge.Write{{FAQ: tandem.FAQ{Question: "Q?", Answer: "A", Locale: "en", Status: tandem.FAQDraft}, Actor: "bob"}}, false)
	wantCode(t, err, tandem.EINVALID)
}

// testRestoreDeletedByID: re-importing the export of a deleted FAQ that had
// no external id recreates it under its id; its audit trail survives the
// deletion, so the restored FAQ continues the trail's version numbers
// instead of starting again at 1 (PostgreSQL refused the duplicate
// (id, version) revision: a 500; memory kept two "version 1" revisions).
func testRestoreDeletedByID(t *testing.T, s knowledge.Store) {
	n, err := knowledge.Normalize(tandem.FAQ{ID: "faq_gone", Question: "Deleted then restored?", Answer: "A"})
	if err != nil {
		t.Fatal(err)
	}
	w := []knowledge.Write{{FAQ: n, Actor: "bob"}}
	if _, err := s.Import(ctx, w, false); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "faq_gone", 1, "bob"); err != nil {
		t.Fatal(err)
	}
	for _, dry := range []bool{true, false} {
		outs, err := s.Import(ctx, w, dry)
		if err != nil {
			t.Fatalf("dry run %v: restore: %v", dry, err)
		}
		if outs[0].Action != knowledge.ActionCreated || outs[0].FAQ.ID != "faq_gone" {
			t.Fatalf("dry run %v: %+v", dry, outs)
		}
	}
	got, err := s.Get(ctx, "faq_gone")
	if err != nil || got.Version != 3 {
		t.Fatalf("restored: %+v, %v; want version 3 (after create 1, delete 2)", got, err)
	}
	revs, err := s.Versions(ctx, "faq_gone", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var ops []string
	for i, r := range revs {
		ops = append(ops, fmt.Sprintf("%s@%d", r.Op, r.FAQ.Version))
		if r.FAQ.Version != int64(i+1) {
			t.Errorf("revision %d has version %d", i, r.FAQ.Version)
		}
	}
	if strings.Join(ops, " ") != "create@1 delete@2 create@3" {
		t.Errorf("trail: %v", ops)
	}
	// The restored FAQ is edited as usual.
	got.Answer = "B"
	if _, err := s.Update(ctx, knowledge.Write{FAQ: got, Actor: "bob", ExpectedVersion: 3}); err != nil {
		t.Fatal(err)
	}
}

// testConcurrentImports: imports (upserts by external id) of the same new
// items running at once — two nodes loading the demo pack into an empty
// shared database at start — all succeed: each item is created once, and
// the others find it unchanged. (PostgreSQL refused the losers with
// "already exists", a 409 that made a node fail to start.)
func testConcurrentImports(t *testing.T, s knowledge.Store) {
	var ws []knowledge.Write
	for i := range 5 {
		n, err := knowledge.Normalize(faq(fmt.Sprintf("ci-%d", i), fmt.Sprintf("Concurrent import %d?", i)))
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, knowledge.Write{FAQ: n, Actor: "node"})
	}
	var created atomic.Int32
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs, err := s.Import(ctx, ws, false)
			if err != nil {
				t.Errorf("import: %v", err)
				return
			}
			for _, o := range outs {
				switch o.Action {
				case knowledge.ActionCreated:
					created.Add(1)
				case knowledge.ActionUnchanged:
				default:
					t.Errorf("row %d: %s", o.Row, o.Action)
				}
			}
		}()
	}
	wg.Wait()
	if created.Load() != int32(len(ws)) || count(t, s) != len(ws) {
		t.Fatalf("%d created, %d stored, want %d", created.Load(), count(t, s), len(ws))
	}
	// Single upserts race the same way.
	n, _ := knowledge.Normalize(faq("ci-up", "Concurrent upsert?"))
	var ups sync.WaitGroup
	for range 6 {
		ups.Add(1)
		go func() {
			defer ups.Done()
			if _, err := s.UpsertByExternalID(ctx, knowledge.Write{FAQ: n, Actor: "node"}); err != nil {
				t.Errorf("upsert: %v", err)
			}
		}()
	}
	ups.Wait()
}
