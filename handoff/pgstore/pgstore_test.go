package pgstore_test

import (
	"context"
	"testing"

	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/handoff/pgstore"
	"github.com/tandem-chat/tandem/handoff/storetest"
	"github.com/tandem-chat/tandem/internal/pgtest"
)

func open(t testing.TB, url string) *pgstore.Store {
	t.Helper()
	s, err := pgstore.Open(context.Background(), url, pgstore.Options{MaxConns: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) handoff.Store { return open(t, pgtest.New(t).URL) })
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
