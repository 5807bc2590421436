// Package pgstate keeps the pipeline's dialogue state in PostgreSQL: one
// JSONB row per conversation. It is an adapter: only cmd wires it.
//
// Contract: Store is safe for concurrent use; Migrate is idempotent and is
// run by New. A state idle for longer than IdleTTL (24 h, as the memory
// store) is treated as absent by Load, and Save starts a background prune
// of such rows (batches of 1,000 until none is left) at most once per
// PruneEvery (1 h) per Store, so the table does not grow with every
// conversation ever held.
package pgstate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandem-chat/tandem/pipeline"
)

// Store is a pipeline.StateStore on PostgreSQL.
type Store struct {
	pool *pgxpool.Pool
	// IdleTTL and PruneEvery: see the package doc; zero means the default.
	// Set them before first use.
	IdleTTL    time.Duration
	PruneEvery time.Duration

	lastPrune atomic.Int64   // unix nanoseconds of the last prune
	pruning   sync.WaitGroup // a background prune
}

const (
	defaultIdleTTL    = 24 * time.Hour
	defaultPruneEvery = time.Hour
	pruneBatch        = 1000
)

func (s *Store) ttl() time.Duration {
	if s.IdleTTL > 0 {
		return s.IdleTTL
	}
	return defaultIdleTTL
}

var _ pipeline.StateStore = (*Store)(nil)

const schema = `
CREATE TABLE IF NOT EXISTS dialogue_state (
	conversation_id text PRIMARY KEY,
	state           jsonb NOT NULL,
	updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS dialogue_state_updated_at ON dialogue_state (updated_at);
`

// New applies the schema and returns the store.
func New(ctx context.Context, pool *pgxpool.Pool) (*Store, error) {
	if _, err := pool.Exec(ctx, schema); err != nil {
		return nil, fmt.Errorf("pgstate: migrate: %w", err)
	}
	return &Store{pool: pool}, nil
}

// Load returns the state, or a zero State for an unknown conversation.
func (s *Store) Load(ctx context.Context, id string) (pipeline.State, error) {
	var b []byte
	err := s.pool.QueryRow(ctx, `SELECT state FROM dialogue_state WHERE conversation_id = $1 AND updated_at >= now() - make_interval(secs => $2)`,
		id, s.ttl().Seconds()).Scan(&b)
	if errors.Is(err, pgx.ErrNoRows) {
		return pipeline.State{}, nil
	}
	if err != nil {
		return pipeline.State{}, fmt.Errorf("pgstate: load %s: %w", id, err)
	}
	var st pipeline.State
	if err := json.Unmarshal(b, &st); err != nil {
		return pipeline.State{}, fmt.Errorf("pgstate: decode %s: %w", id, err)
	}
	return st, nil
}

// Save upserts the state. NUL characters, which jsonb refuses, are stored
// as U+FFFD (as the pipeline stores invalid UTF-8).
func (s *Store) Save(ctx context.Context, id string, st pipeline.State) error {
	b, err := json.Marshal(withoutNUL(st))
	if err != nil {
		return fmt.Errorf("pgstate: encode: %w", err)
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO dialogue_state (conversation_id, state, updated_at) VALUES ($1, $2, now())
		ON CONFLICT (conversation_id) DO UPDATE SET state = EXCLUDED.state, updated_at = now()`, id, b)
	if err != nil {
		return fmt.Errorf("pgstate: save %s: %w", id, err)
	}
	s.maybePrune(ctx)
	return nil
}

// Delete forgets the conversation's state.
func (s *Store) Delete(ctx context.Context, id string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM dialogue_state WHERE conversation_id = $1`, id); err != nil {
		return fmt.Errorf("pgstate: delete %s: %w", id, err)
	}
	return nil
}

// withoutNUL returns st with every NUL character replaced by U+FFFD,
// copying what it changes (the caller's state is left alone).
func withoutNUL(st pipeline.State) pipeline.State {
	fix := func(v string) string { return strings.ReplaceAll(v, "\x00", "\uFFFD") }
	has := func(v string) bool { return strings.IndexByte(v, 0) >= 0 }
	dirty := false
	for k, v := range st.Slots {
		dirty = dirty || has(k) || has(v)
	}
	for _, v := range st.RecentIntents {
		dirty = dirty || has(v)
	}
	for _, c := range st.PendingClarify {
		dirty = dirty || has(c.Label) || has(c.Intent) || has(c.FAQID)
	}
	if !dirty {
		return st
	}
	if st.Slots != nil {
		slots := make(map[string]string, len(st.Slots))
		for k, v := range st.Slots {
			slots[fix(k)] = fix(v)
		}
		st.Slots = slots
	}
	intents := make([]string, len(st.RecentIntents))
	for i, v := range st.RecentIntents {
		intents[i] = fix(v)
	}
	st.RecentIntents = intents
	choices := make([]pipeline.Choice, len(st.PendingClarify))
	for i, c := range st.PendingClarify {
		c.Label, c.Intent, c.FAQID = fix(c.Label), fix(c.Intent), fix(c.FAQID)
		choices[i] = c
	}
	st.PendingClarify = choices
	return st
}

// maybePrune starts, at most once per PruneEvery and one at a time, a
// background prune of the states idle beyond IdleTTL: batches of
// pruneBatch rows until none is left (or 30 s pass), on its own context so
// that neither the turn that triggered it waits nor its deadline cuts it.
func (s *Store) maybePrune(ctx context.Context) {
	every := s.PruneEvery
	if every <= 0 {
		every = defaultPruneEvery
	}
	now := time.Now().UnixNano()
	last := s.lastPrune.Load()
	if now-last < int64(every) || !s.lastPrune.CompareAndSwap(last, now) {
		return
	}
	s.pruning.Add(1)
	go func() {
		defer s.pruning.Done()
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		for pctx.Err() == nil {
			tag, err := s.pool.Exec(pctx, `DELETE FROM dialogue_state WHERE conversation_id IN (
				SELECT conversation_id FROM dialogue_state WHERE updated_at < now() - make_interval(secs => $1) LIMIT $2)`,
				s.ttl().Seconds(), pruneBatch)
			if err != nil || tag.RowsAffected() < pruneBatch {
				return // done, or retried next round
			}
		}
	}()
}

// Wait waits for a background prune started by Save to finish (tests, and
// before closing the pool).
func (s *Store) Wait() { s.pruning.Wait() }

// Prune deletes states idle since before the given age in seconds; it
// returns how many were removed.
func (s *Store) Prune(ctx context.Context, olderThanSeconds int) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM dialogue_state WHERE updated_at < now() - make_interval(secs => $1)`, olderThanSeconds)
	if err != nil {
		return 0, fmt.Errorf("pgstate: prune: %w", err)
	}
	return tag.RowsAffected(), nil
}
