package pgconvlog_test

import (
	"context"
	"testing"

	"github.com/tandem-chat/tandem/gateway"
	"github.com/tandem-chat/tandem/gateway/convlogtest"
	"github.com/tandem-chat/tandem/gateway/pgconvlog"
	"github.com/tandem-chat/tandem/internal/pgtest"
)

func TestContract(t *testing.T) {
	convlogtest.Run(t, func(t *testing.T) gateway.ConvLog {
		db := pgtest.New(t)
		l, err := pgconvlog.New(context.Background(), db.Pool)
		if err != nil {
			t.Fatal(err)
		}
		return l
	})
}

// TestMigrateTwice shows a second node starting on a migrated database is fine.
func TestMigrateTwice(t *testing.T) {
	db := pgtest.New(t)
	for i := 0; i < 2; i++ {
		if _, err := pgconvlog.New(context.Background(), db.Pool); err != nil {
			t.Fatalf("start %d: %v", i, err)
		}
	}
}
