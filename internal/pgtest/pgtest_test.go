package pgtest_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pgvector/pgvector-go"
	pgxvec "github.com/pgvector/pgvector-go/pgx"

	"github.com/tandem-chat/tandem/internal/pgtest"
)

// TestPgvectorHNSW proves the test database has a working pgvector: a table
// with a vector column and an HNSW index returns the right nearest
// neighbours in order, and EXPLAIN shows the index is used.
func TestPgvectorHNSW(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error { return pgxvec.RegisterTypes(ctx, c) }
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()

	mustExec := func(sql string, args ...any) {
		t.Helper()
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	mustExec(`CREATE TABLE items (id int PRIMARY KEY, embedding vector(3))`)
	mustExec(`CREATE INDEX items_hnsw ON items USING hnsw (embedding vector_l2_ops)`)
	// Points on a line: the nearest neighbours of (0,0,0) are in id order.
	for i := 1; i <= 200; i++ {
		mustExec(`INSERT INTO items VALUES ($1, $2)`, i, pgvector.NewVector([]float32{float32(i), float32(i) * 0.5, 0}))
	}
	mustExec(`ANALYZE items`)

	q := pgvector.NewVector([]float32{0, 0, 0})
	rows, err := pool.Query(ctx, `SELECT id FROM items ORDER BY embedding <-> $1 LIMIT 5`, q)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(ids) != "[1 2 3 4 5]" {
		t.Fatalf("nearest neighbours = %v, want [1 2 3 4 5]", ids)
	}

	// Force the planner away from a sequential scan on this small table; the
	// point is that the HNSW index can serve the query.
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SET LOCAL enable_seqscan = off`); err != nil {
		t.Fatal(err)
	}
	var plan strings.Builder
	prow, err := tx.Query(ctx, `EXPLAIN SELECT id FROM items ORDER BY embedding <-> $1 LIMIT 5`, q)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(prow, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lines {
		plan.WriteString(l + "\n")
	}
	if !strings.Contains(plan.String(), "items_hnsw") {
		t.Fatalf("plan does not use the HNSW index:\n%s", plan.String())
	}
}
