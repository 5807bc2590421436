package handoff_test

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/handoff/memstore"
)

// createHookStore runs hook once, right after CreateTicket reports that
// the conversation has an open ticket.
type createHookStore struct {
	handoff.Store
	onceHook
}

func (s *createHookStore) CreateTicket(ctx context.Context, t tandem.Ticket, node string) (tandem.Ticket, error) {
	out, err := s.Store.CreateTicket(ctx, t, node)
	if tandem.ErrorCode(err) == tandem.ECONFLICT {
		s.fire()
	}
	return out, err
}

// TestEscalateWhileOpenTicketCloses: a customer asks for a person at the
// moment their previous ticket closes (the agent returned them to the
// bot): the escalation found the old ticket open, then gone. It must open
// a new ticket, not fail with "already has an open ticket" while none is.
func TestEscalateWhileOpenTicketCloses(t *testing.T) {
	st := &createHookStore{Store: memstore.New()}
	e, err := handoff.New(st, handoff.Config{BcryptCost: 4, Registerer: prometheus.NewRegistry(), Clock: handoff.NewManualClock(t0)})
	if err != nil {
		t.Fatal(err)
	}
	conv := tandem.Conversation{ID: "again"}
	old, _, err := e.Escalate(ctx, conv, tandem.Escalation{Reason: tandem.EscalateButton})
	if err != nil {
		t.Fatal(err)
	}
	st.set(func() {
		if _, err := e.Cancel(ctx, conv.ID, tandem.TicketReturned); err != nil {
			t.Error(err)
		}
	})
	tk, _, err := e.Escalate(ctx, conv, tandem.Escalation{Reason: tandem.EscalateRequested})
	if err != nil {
		t.Fatalf("escalate while the old ticket closed: %v", err)
	}
	if tk.ID == old.ID || tk.State != tandem.TicketQueued {
		t.Fatalf("escalation returned %s (%s); the old ticket was %s", tk.ID, tk.State, old.ID)
	}
	if open, err := e.OpenTicket(ctx, conv.ID); err != nil || open.ID != tk.ID {
		t.Fatalf("open ticket %+v, %v", open, err)
	}
}

// TestEscalateAgainSucceedsWhenPositionFails: asking again for a person
// while the ticket is open returns that ticket; a failing position query
// must not report the escalation as failed (the ticket exists: the gateway
// would keep the conversation with the bot while an agent gets it).
func TestEscalateAgainSucceedsWhenPositionFails(t *testing.T) {
	e, err := handoff.New(failingQueueStore{memstore.New()}, handoff.Config{BcryptCost: 4,
		Registerer: prometheus.NewRegistry(), Clock: handoff.NewManualClock(t0)})
	if err != nil {
		t.Fatal(err)
	}
	conv := tandem.Conversation{ID: "twice"}
	first, _, err := e.Escalate(ctx, conv, tandem.Escalation{Reason: tandem.EscalateButton})
	if err != nil {
		t.Fatal(err)
	}
	again, _, err := e.Escalate(ctx, conv, tandem.Escalation{Reason: tandem.EscalateButton})
	if err != nil || again.ID != first.ID {
		t.Fatalf("second escalation: %+v, %v", again, err)
	}
}
