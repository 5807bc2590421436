// Package pgtest gives each test an isolated PostgreSQL database on the real
// test server, with the pgvector extension enabled, and drops it when the
// test ends.
//
// Contract: New may be called from parallel tests; each call creates its own
// database named tandem_test_<random>. When the server cannot be reached the
// test fails under TANDEM_REQUIRE_REAL=1 (make test, CI) and is skipped
// otherwise.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandem-chat/tandem/internal/testenv"
)

// DB is an isolated test database.
type DB struct {
	URL  string        // connection URL of the test database
	Pool *pgxpool.Pool // a pool connected to it, closed at cleanup
}

// New creates a fresh database with `CREATE EXTENSION vector` applied.
func New(tb testing.TB) *DB {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adminURL := testenv.DatabaseURL(tb)
	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		testenv.Missing(tb, "PostgreSQL not reachable at %s: %v", adminURL, err)
		return nil
	}
	defer admin.Close(context.Background())

	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "tandem_test_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("pgtest: create database: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, adminURL)
		if err != nil {
			tb.Logf("pgtest: drop %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			tb.Logf("pgtest: drop %s: %v", name, err)
		}
	})

	u, err := url.Parse(adminURL)
	if err != nil {
		tb.Fatalf("pgtest: parse %s: %v", adminURL, err)
	}
	u.Path = "/" + name
	dbURL := u.String()
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		tb.Fatalf("pgtest: connect %s: %v", name, err)
	}
	tb.Cleanup(pool.Close)
	if _, err := pool.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS vector"); err != nil {
		testenv.Missing(tb, "pgvector extension unavailable: %v", err)
	}
	return &DB{URL: dbURL, Pool: pool}
}
