package pgstate_test

import (
	"context"
	"testing"
	"time"

	"github.com/tandem-chat/tandem/internal/pgtest"
	"github.com/tandem-chat/tandem/pipeline"
	"github.com/tandem-chat/tandem/pipeline/pgstate"
	"github.com/tandem-chat/tandem/pipeline/statetest"
)

func TestPostgresStateStoreContract(t *testing.T) {
	db := pgtest.New(t)
	s, err := pgstate.New(context.Background(), db.Pool)
	if err != nil {
		t.Fatal(err)
	}
	// Idempotent migration.
	if _, err := pgstate.New(context.Background(), db.Pool); err != nil {
		t.Fatal(err)
	}
	statetest.Run(t, s)
	if n, err := s.Prune(context.Background(), 3600); err != nil || n != 0 {
		t.Fatalf("prune = %d, %v", n, err)
	}
}

// TestIdleStatesExpireAndArePruned: a state idle beyond IdleTTL is gone
// for Load (as in the memory store: no weeks-old pending clarification),
// and Save prunes idle rows, so the table does not grow forever.
func TestIdleStatesExpireAndArePruned(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	s, err := pgstate.New(ctx, db.Pool)
	if err != nil {
		t.Fatal(err)
	}
	s.PruneEvery = time.Nanosecond
	st := pipeline.State{Turns: 3, Fallbacks: 2, PendingClarify: []pipeline.Choice{{Label: "Check bill"}}}
	for _, id := range []string{"old-1", "old-2", "fresh"} {
		if err := s.Save(ctx, id, st); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Pool.Exec(ctx, `UPDATE dialogue_state SET updated_at = now() - interval '30 days' WHERE conversation_id LIKE 'old-%'`); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Load(ctx, "old-1"); err != nil || got.Turns != 0 || len(got.PendingClarify) != 0 {
		t.Fatalf("a 30-day-old state was loaded: %+v, %v", got, err)
	}
	if got, err := s.Load(ctx, "fresh"); err != nil || got.Turns != 3 {
		t.Fatalf("fresh state = %+v, %v", got, err)
	}
	if err := s.Save(ctx, "fresh", st); err != nil { // prunes, in the background
		t.Fatal(err)
	}
	s.Wait()
	var n int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM dialogue_state`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d rows after pruning, want 1 (%v)", n, err)
	}
	// More idle rows than one batch: all of them go in one round.
	if _, err := db.Pool.Exec(ctx, `INSERT INTO dialogue_state (conversation_id, state, updated_at)
		SELECT 'idle-' || i, '{}', now() - interval '30 days' FROM generate_series(1, 2500) AS i`); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(ctx, "fresh", st); err != nil {
		t.Fatal(err)
	}
	s.Wait()
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM dialogue_state`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d rows after pruning 2,500 idle ones, want 1 (%v)", n, err)
	}
}

// TestNULCharactersAreStored: PostgreSQL's jsonb refuses "\u0000", so a
// customer's NUL character in a slot value (an entity span across a
// control character) failed every Save of the turn; it is stored as U+FFFD,
// as the pipeline already stores invalid UTF-8.
func TestNULCharactersAreStored(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	s, err := pgstate.New(ctx, db.Pool)
	if err != nil {
		t.Fatal(err)
	}
	st := pipeline.State{
		Turns:          1,
		Slots:          map[string]string{"person": "Jane\x00Doe", "k\x00": "v"},
		RecentIntents:  []string{"greet\x00"},
		PendingClarify: []pipeline.Choice{{Label: "a\x00b", Intent: "x", FAQID: "f\x00"}},
	}
	if err := s.Save(ctx, "nul", st); err != nil {
		t.Fatalf("save: %v", err)
	}
	got, err := s.Load(ctx, "nul")
	if err != nil {
		t.Fatal(err)
	}
	if got.Slots["person"] != "Jane\uFFFDDoe" || got.Slots["k\uFFFD"] != "v" || got.RecentIntents[0] != "greet\uFFFD" ||
		got.PendingClarify[0].Label != "a\uFFFDb" || got.PendingClarify[0].FAQID != "f\uFFFD" {
		t.Fatalf("loaded %+v", got)
	}
	if st.Slots["person"] != "Jane\x00Doe" {
		t.Fatal("Save modified the caller's state")
	}
}
