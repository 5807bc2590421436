package pgstate_test

import (
	"context"
	"testing"

	"github.com/tandem-chat/tandem/internal/pgtest"
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
