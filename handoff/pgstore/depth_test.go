package pgstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/internal/pgtest"
)

// TestQueueDepthBeyondMaxPositions: on PostgreSQL too, the queue-depth
// gauge counts the queued tickets beyond MaxPositions.
func TestQueueDepthBeyondMaxPositions(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	e, err := handoff.New(open(t, pgtest.New(t).URL), handoff.Config{BcryptCost: 4, Registerer: reg, MaxPositions: 2,
		Clock: handoff.NewManualClock(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"d1", "d2", "d3"} {
		if _, _, err := e.Escalate(ctx, tandem.Conversation{ID: id}, tandem.Escalation{Reason: tandem.EscalateButton, Priority: -5}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "tandem_handoff_queue_depth" {
			if got := mf.GetMetric()[0].GetGauge().GetValue(); got != 3 {
				t.Fatalf("queue depth %v, want 3", got)
			}
			return
		}
	}
	t.Fatal("no queue depth gauge")
}
