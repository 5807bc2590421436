package pgmigrate_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandem-chat/tandem/internal/pgmigrate"
	"github.com/tandem-chat/tandem/internal/pgtest"
)

func TestApply(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, db.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	fsys := fstest.MapFS{
		"m/001_items.sql":   {Data: []byte("CREATE TABLE items (id int PRIMARY KEY)")},
		"m/002_counter.sql": {Data: []byte("INSERT INTO items VALUES (1)")},
	}
	set := pgmigrate.Set{FS: fsys, Dir: "m", Table: "test_migrations", Lock: 42}

	// Eight nodes start at once: each migration runs exactly once.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- pgmigrate.Apply(ctx, pool, set) }()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM items").Scan(&n); err != nil || n != 1 {
		t.Fatalf("items = %d, %v; want 1 (002 applied once)", n, err)
	}

	// A failing migration rolls back the whole run, including the ones
	// before it in the same run.
	fsys["m/003_more.sql"] = &fstest.MapFile{Data: []byte("INSERT INTO items VALUES (2)")}
	fsys["m/004_broken.sql"] = &fstest.MapFile{Data: []byte("INSERT INTO nowhere VALUES (1)")}
	if err := pgmigrate.Apply(ctx, pool, set); err == nil || !strings.Contains(err.Error(), "004_broken.sql") {
		t.Fatalf("broken migration: %v", err)
	}
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM items").Scan(&n); err != nil || n != 1 {
		t.Fatalf("items = %d after a failed run, want 1 (003 rolled back)", n)
	}

	// Bad sets are refused before touching the database.
	delete(fsys, "m/004_broken.sql")
	fsys["m/003_again.sql"] = &fstest.MapFile{Data: []byte("SELECT 1")}
	if err := pgmigrate.Apply(ctx, pool, set); err == nil || !strings.Contains(err.Error(), "share version 3") {
		t.Fatalf("duplicate version: %v", err)
	}
	delete(fsys, "m/003_again.sql")
	fsys["m/x_nonumber.sql"] = &fstest.MapFile{Data: []byte("SELECT 1")}
	if err := pgmigrate.Apply(ctx, pool, set); err == nil || !strings.Contains(err.Error(), "version number") {
		t.Fatalf("unnumbered migration: %v", err)
	}
	delete(fsys, "m/x_nonumber.sql")
	if err := pgmigrate.Apply(ctx, pool, pgmigrate.Set{FS: fsys, Dir: "m", Table: "x; DROP TABLE items", Lock: 1}); err == nil {
		t.Fatal("a table name with SQL in it was accepted")
	}
	if err := pgmigrate.Apply(ctx, pool, set); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM items").Scan(&n); err != nil || n != 2 {
		t.Fatalf("items = %d, want 2", n)
	}
}

// TestOpen: the migrations are applied before the pool exists, the pool
// has the asked size and runs afterConnect on its connections, and each
// failing step is named.
func TestOpen(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	fsys := fstest.MapFS{"m/001_items.sql": {Data: []byte("CREATE TABLE items (id int PRIMARY KEY); INSERT INTO items VALUES (7)")}}
	set := pgmigrate.Set{FS: fsys, Dir: "m", Table: "open_migrations", Lock: 43}
	var hooked atomic.Int32
	pool, err := pgmigrate.Open(ctx, db.URL, set, 3, func(ctx context.Context, c *pgx.Conn) error {
		hooked.Add(1)
		_, err := c.Exec(ctx, "SET application_name = 'pgmigrate-open'")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if got := pool.Config().MaxConns; got != 3 {
		t.Fatalf("MaxConns = %d, want 3", got)
	}
	var id int
	var app string
	if err := pool.QueryRow(ctx, "SELECT (SELECT id FROM items), current_setting('application_name')").Scan(&id, &app); err != nil || id != 7 || app != "pgmigrate-open" {
		t.Fatalf("items id %d, application_name %q, %v; want 7 and the hook's name", id, app, err)
	}
	if hooked.Load() == 0 {
		t.Fatal("afterConnect never ran")
	}

	// Opening again applies nothing twice; nil afterConnect is allowed.
	again, err := pgmigrate.Open(ctx, db.URL, set, 0, nil)
	if err != nil {
		t.Fatalf("second open: %v", err)
	}
	again.Close()

	hookErr := errors.New("hook refused")
	if _, err := pgmigrate.Open(ctx, db.URL, set, 1, func(context.Context, *pgx.Conn) error { return hookErr }); !errors.Is(err, hookErr) || !strings.HasPrefix(err.Error(), "ping: ") {
		t.Fatalf("failing afterConnect: %v", err)
	}
	broken := pgmigrate.Set{FS: fstest.MapFS{"m/001_x.sql": {Data: []byte("SELECT nonsense FROM nowhere")}}, Dir: "m", Table: "broken_migrations", Lock: 44}
	if _, err := pgmigrate.Open(ctx, db.URL, broken, 1, nil); err == nil || !strings.HasPrefix(err.Error(), "pgmigrate: 001_x.sql") {
		t.Fatalf("failing migration: %v", err)
	}
	if _, err := pgmigrate.Open(ctx, "postgres://127.0.0.1:1/none?connect_timeout=1", set, 1, nil); err == nil || !strings.HasPrefix(err.Error(), "connect: ") {
		t.Fatalf("unreachable server: %v", err)
	}
}
