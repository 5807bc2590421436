package handoff_test

import (
	"context"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/handoff/memstore"
)

// queueHookStore runs hook once, right after the next read of the queue.
type queueHookStore struct {
	handoff.Store
	onceHook
}

func (s *queueHookStore) Tickets(ctx context.Context, f handoff.TicketFilter) ([]tandem.Ticket, error) {
	ts, err := s.Store.Tickets(ctx, f)
	if slices.Equal(f.States, []tandem.TicketState{tandem.TicketQueued}) {
		s.fire()
	}
	return ts, err
}

// TestNoStalePositionAfterStateChange: a ticket that leaves the queue
// while a position sweep is computing (the customer went back to the bot,
// an agent claimed it) must not get that sweep's position update after
// the event of its change: the customer, back with the bot or chatting
// with an agent, was shown a place in the queue again.
func TestNoStalePositionAfterStateChange(t *testing.T) {
	rec := make(chanNotifier, 100)
	st := &queueHookStore{Store: memstore.New()}
	e, err := handoff.New(st, handoff.Config{Notifier: rec, BcryptCost: 4, Registerer: prometheus.NewRegistry(),
		Clock: handoff.NewManualClock(t0)})
	if err != nil {
		t.Fatal(err)
	}
	a, _, err := e.Escalate(ctx, tandem.Conversation{ID: "sa"}, tandem.Escalation{Reason: tandem.EscalateButton})
	if err != nil {
		t.Fatal(err)
	}
	// A more urgent ticket moves the first one to position 2.
	if _, _, err := e.Escalate(ctx, tandem.Conversation{ID: "sb"}, tandem.Escalation{Reason: tandem.EscalateButton, Priority: 50}); err != nil {
		t.Fatal(err)
	}
	st.set(func() {
		if _, err := e.Cancel(ctx, "sa", tandem.TicketReturned); err != nil {
			t.Error(err)
		}
	})
	if err := e.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(ctx); err != nil {
		t.Fatal(err)
	}
	close(rec)
	returned := false
	for ev := range rec {
		if ev.Ticket == nil || ev.Ticket.ID != a.ID {
			continue
		}
		switch ev.Type {
		case handoff.EventReturned:
			returned = true
		case handoff.EventPosition:
			if returned {
				t.Fatalf("position %d of ticket %s delivered after its return to the bot", ev.Queue.Position, a.ID)
			}
		}
	}
	if !returned {
		t.Fatal("the return was never delivered")
	}
}

// TestQueueDepthBeyondMaxPositions: the queue-depth gauge counts every
// queued ticket, not only the MaxPositions that get position updates (it
// stayed flat at that bound during a surge, when it matters most).
func TestQueueDepthBeyondMaxPositions(t *testing.T) {
	reg := prometheus.NewRegistry()
	e, err := handoff.New(memstore.New(), handoff.Config{BcryptCost: 4, Registerer: reg, MaxPositions: 2,
		Clock: handoff.NewManualClock(t0)})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"q1", "q2", "q3", "q4", "q5"} {
		if _, _, err := e.Escalate(ctx, tandem.Conversation{ID: id}, tandem.Escalation{Reason: tandem.EscalateButton}); err != nil {
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
			if got := mf.GetMetric()[0].GetGauge().GetValue(); got != 5 {
				t.Fatalf("queue depth %v, want 5", got)
			}
			return
		}
	}
	t.Fatal("no queue depth gauge")
}
