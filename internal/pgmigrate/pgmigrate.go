// Package pgmigrate applies a package's embedded SQL migrations to
// PostgreSQL, the one way every Tandem store does it.
//
// Contract: Apply runs in one transaction holding a transaction-scoped
// advisory lock, so any number of nodes may start at once and exactly one
// applies each migration; a migration that fails rolls everything back.
// Migrations are the files "<version>_<name>.sql" of fsys's dir, applied in
// version order and recorded in table, so each runs once per database.
// Open is how a store that owns its connection pool starts: the migrations
// on one connection of their own, then the pool.
package pgmigrate

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Beginner starts a transaction (*pgx.Conn and *pgxpool.Pool are ones).
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Set describes one package's migrations.
type Set struct {
	FS    fs.FS  // holds the .sql files
	Dir   string // their directory in FS, e.g. "migrations"
	Table string // records applied versions, e.g. "kb_schema_migrations"
	Lock  int64  // advisory lock key, unique per Set
}

var tableName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Apply applies the migrations of s that db has not applied yet.
func Apply(ctx context.Context, db Beginner, s Set) error {
	if !tableName.MatchString(s.Table) {
		return fmt.Errorf("pgmigrate: bad table name %q", s.Table)
	}
	type migration struct {
		version int
		name    string
	}
	names, err := fs.Glob(s.FS, path.Join(s.Dir, "*.sql"))
	if err != nil {
		return fmt.Errorf("pgmigrate: list %s: %w", s.Dir, err)
	}
	ms := make([]migration, 0, len(names))
	seen := map[int]string{}
	for _, name := range names {
		base := path.Base(name)
		v, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil || v <= 0 {
			return fmt.Errorf("pgmigrate: migration %s: the name must start with a positive version number", base)
		}
		if prev, dup := seen[v]; dup {
			return fmt.Errorf("pgmigrate: migrations %s and %s share version %d", prev, base, v)
		}
		seen[v] = base
		ms = append(ms, migration{v, name})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })

	tx, err := db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("pgmigrate: %s: begin: %w", s.Table, err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", s.Lock); err != nil {
		return fmt.Errorf("pgmigrate: %s: lock: %w", s.Table, err)
	}
	if _, err := tx.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+s.Table+" (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"); err != nil {
		return fmt.Errorf("pgmigrate: %s: %w", s.Table, err)
	}
	for _, m := range ms {
		base := path.Base(m.name)
		var done bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+s.Table+" WHERE version = $1)", m.version).Scan(&done); err != nil {
			return fmt.Errorf("pgmigrate: %s: %w", base, err)
		}
		if done {
			continue
		}
		sql, err := fs.ReadFile(s.FS, m.name)
		if err != nil {
			return fmt.Errorf("pgmigrate: %s: %w", base, err)
		}
		if _, err := tx.Exec(ctx, string(sql)); err != nil {
			return fmt.Errorf("pgmigrate: %s: %w", base, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO "+s.Table+" (version) VALUES ($1)", m.version); err != nil {
			return fmt.Errorf("pgmigrate: %s: %w", base, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("pgmigrate: %s: commit: %w", s.Table, err)
	}
	return nil
}

// Open connects to the database at url on a single connection, applies s
// there (Apply), closes that connection, then creates a pool over url of at
// most maxConns connections (pgxpool's default when maxConns < 1), each set
// up by afterConnect when it is not nil, and pings it, so a pool is only
// returned once one of its connections works. Errors, except Apply's, are
// not prefixed with the package: they name the step ("connect: ", "parse
// url: ", "pool: ", "ping: ") and the caller adds its own prefix.
func Open(ctx context.Context, url string, s Set, maxConns int32, afterConnect func(context.Context, *pgx.Conn) error) (*pgxpool.Pool, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	err = Apply(ctx, conn, s)
	conn.Close(context.Background())
	if err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse url: %w", err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	if afterConnect != nil {
		cfg.AfterConnect = afterConnect
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pool: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("ping: %w", err)
	}
	return pool, nil
}
