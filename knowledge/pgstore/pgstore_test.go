package pgstore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
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
				args = append(args, fl.Locale)
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
