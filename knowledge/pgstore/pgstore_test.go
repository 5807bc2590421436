package pgstore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/pgvector/pgvector-go"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/internal/pgtest"
	"github.com/tandem-chat/tandem/knowledge"
	"github.com/tandem-chat/tandem/knowledge/pgstore"
	"github.com/tandem-chat/tandem/knowledge/storetest"
)

func open(t *testing.T) *pgstore.Store {
	t.Helper()
	db := pgtest.New(t)
	s, err := pgstore.Open(context.Background(), db.URL, pgstore.Options{MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) knowledge.Store { return open(t) })
}

func TestMigrationsIdempotent(t *testing.T) {
	db := pgtest.New(t)
	for range 2 {
		s, err := pgstore.Open(context.Background(), db.URL, pgstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
}

// TestVectorSearchUsesHNSW shows with EXPLAIN that the nearest-phrasing
// query (with and without filters) is an index scan on the encoder's HNSW
// index, not a sequential scan.
func TestVectorSearchUsesHNSW(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	const dim = 16
	if err := s.RegisterModel(ctx, "enc-test-v1", dim); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	vec := func() []float32 {
		v := make([]float32, dim)
		for i := range v {
			v[i] = rng.Float32()*2 - 1
		}
		return v
	}
	var ws []knowledge.Write
	for i := range 2500 {
		f, err := knowledge.Normalize(tandem.FAQ{ExternalID: fmt.Sprintf("x%d", i), Question: fmt.Sprintf("Question %d?", i), Phrasings: []string{fmt.Sprintf("alt %d", i)},
			Answer: "a", Status: tandem.FAQPublished, Locale: []string{"en", "de"}[i%2], Tags: []string{"t"}})
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, knowledge.Write{FAQ: f, Actor: "t", Embeddings: []knowledge.Embedding{{Model: "enc-test-v1", Vectors: [][]float32{vec(), vec()}}}})
	}
	if _, err := s.Import(ctx, ws, false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pool().Exec(ctx, "ANALYZE kb_embeddings"); err != nil {
		t.Fatal(err)
	}
	for _, fl := range []knowledge.Filter{{}, {Locale: "de", PublishedOnly: true, Tags: []string{"t"}}} {
		sql, params := pgstore.VectorSQL("enc-test-v1", dim, fl)
		args := []any{pgvector.NewVector(vec()), 20}
		for _, p := range params {
			if p == "locale" {
				args = append(args, fl.Locales())
			} else {
				args = append(args, fl.Tags)
			}
		}
		conn, err := s.Pool().Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := conn.Query(ctx, "EXPLAIN "+sql, args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, line)
		}
		rows.Close()
		conn.Release()
		text := strings.Join(plan, "\n")
		t.Logf("filter %+v:\n%s", fl, text)
		if !strings.Contains(text, "Index Scan using kb_emb_hnsw_") {
			t.Fatalf("vector search does not use the HNSW index:\n%s", text)
		}
		hits, err := s.VectorSearch(ctx, "enc-test-v1", vec(), fl, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(hits) != 10 {
			t.Fatalf("filtered HNSW search returned %d hits, want 10 (iterative scan)", len(hits))
		}
	}
}

type wordEmbedder struct {
	version string
	dim     int
}

func (w wordEmbedder) Dim() int        { return w.dim }
func (w wordEmbedder) Version() string { return w.version }
func (w wordEmbedder) Embed(_ context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	for i, t := range texts {
		v := make([]float32, w.dim)
		for _, tok := range knowledge.Tokens(t) {
			h := 0
			for _, c := range w.version + tok {
				h = h*31 + int(c)
			}
			v[(h%w.dim+w.dim)%w.dim]++
		}
		v[0] += 0.01
		out[i] = v
	}
	return out, nil
}

// TestServiceReembedsOnPostgres runs the service's encoder switch against
// the real database: the new encoder's HNSW index is built, the old
// vectors and index are dropped once the new index is complete.
func TestServiceReembedsOnPostgres(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	a := wordEmbedder{"enc-a", 16}
	svc, err := knowledge.NewService(knowledge.Config{Store: s, Embedder: a})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"How long does shipping take?", "When do I get my refund?", "How do I reset my password?"} {
		if _, err := svc.Create(ctx, "alice", tandem.FAQ{Question: q, Answer: "A.", Status: tandem.FAQPublished}); err != nil {
			t.Fatal(err)
		}
	}
	if err := svc.WaitReindex(ctx); err != nil {
		t.Fatal(err)
	}
	svc.Close()
	b := wordEmbedder{"enc-b", 24}
	svc2, err := knowledge.NewService(knowledge.Config{Store: s, Embedder: b, Previous: []knowledge.Embedder{a}})
	if err != nil {
		t.Fatal(err)
	}
	defer svc2.Close()
	if err := svc2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := svc2.WaitReindex(ctx); err != nil {
		t.Fatal(err)
	}
	models, _ := s.Models(ctx)
	if len(models) != 1 || models[0].Version != "enc-b" || !models[0].Active {
		t.Fatalf("models %+v", models)
	}
	var indexes []string
	rows, _ := s.Pool().Query(ctx, "SELECT indexname FROM pg_indexes WHERE indexname LIKE 'kb_emb_hnsw_%'")
	for rows.Next() {
		var n string
		_ = rows.Scan(&n)
		indexes = append(indexes, n)
	}
	rows.Close()
	if len(indexes) != 1 {
		t.Fatalf("HNSW indexes after the switch: %v, want only enc-b's", indexes)
	}
	res, err := svc2.Search(ctx, knowledge.SearchRequest{Query: "refund", Mode: knowledge.ModeVector})
	if err != nil || res.Model != "enc-b" || len(res.Hits) == 0 || !strings.Contains(res.Hits[0].FAQ.Question, "refund") {
		t.Fatalf("search after switch: %+v, %v", res, err)
	}
	// A dimension change for the same encoder name is refused clearly.
	svc3, _ := knowledge.NewService(knowledge.Config{Store: s, Embedder: wordEmbedder{"enc-b", 32}})
	defer svc3.Close()
	if err := svc3.Start(ctx); err == nil || !strings.Contains(err.Error(), "24-dimensional") {
		t.Fatalf("dimension mismatch: %v", err)
	}
}

// TestConcurrentRegisterModel: nodes starting at once against one database
// register the same new encoder concurrently; all succeed (CREATE INDEX IF
// NOT EXISTS racing itself failed one with a duplicate pg_class key, and
// that node's Start failed).
func TestConcurrentRegisterModel(t *testing.T) {
	s := open(t)
	for round := range 3 {
		version := fmt.Sprintf("enc-race-%d", round)
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := s.RegisterModel(context.Background(), version, 8); err != nil {
					t.Errorf("register %s: %v", version, err)
				}
			}()
		}
		wg.Wait()
	}
}
