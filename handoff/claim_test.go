package handoff_test

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/handoff/memstore"
)

// readHookStore runs hook once, right after the next Ticket read.
type readHookStore struct {
	handoff.Store
	onceHook
}

func (s *readHookStore) Ticket(ctx context.Context, id string) (tandem.Ticket, error) {
	t, err := s.Store.Ticket(ctx, id)
	s.fire()
	return t, err
}

// TestClaimRaceLoserIsToldItWasTaken: of two agents claiming one ticket at
// once, the loser gets a conflict saying the ticket was taken, not
// "changed concurrently; reload and retry" (a retry can only fail).
func TestClaimRaceLoserIsToldItWasTaken(t *testing.T) {
	st := &readHookStore{Store: memstore.New()}
	e, err := handoff.New(st, handoff.Config{BcryptCost: 4, Registerer: prometheus.NewRegistry(), Clock: handoff.NewManualClock(t0)})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, email := range []string{"ann@example.com", "bob@example.com"} {
		a, err := e.CreateAgent(ctx, tandem.Agent{Email: email}, "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.SetPresence(ctx, a.ID, tandem.PresenceAway); err != nil {
			t.Fatal(err)
		}
		if _, _, err := e.Connect(ctx, a.ID); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, a.ID)
	}
	tk, _, err := e.Escalate(ctx, tandem.Conversation{ID: "race"}, tandem.Escalation{Reason: tandem.EscalateButton})
	if err != nil {
		t.Fatal(err)
	}
	st.set(func() { // Bob's claim lands between Ann's read and her change
		if _, err := e.Claim(ctx, handoff.Actor{AgentID: ids[1]}, tk.ID); err != nil {
			t.Error(err)
		}
	})
	_, err = e.Claim(ctx, handoff.Actor{AgentID: ids[0]}, tk.ID)
	if tandem.ErrorCode(err) != tandem.ECONFLICT || !strings.Contains(tandem.ErrorMessage(err), "taken") {
		t.Fatalf("losing claim: %v", err)
	}
}
