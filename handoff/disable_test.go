package handoff_test

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/handoff/memstore"
)

// ctxStore honours context cancellation on every ticket read, as the
// PostgreSQL store does, and cancels the caller's context once an agent
// update is stored (the admin's HTTP client went away at that moment).
type ctxStore struct {
	handoff.Store
	cancel context.CancelFunc
}

func (s *ctxStore) UpdateAgent(ctx context.Context, a tandem.Agent) error {
	err := s.Store.UpdateAgent(ctx, a)
	if s.cancel != nil {
		s.cancel()
	}
	return err
}

func (s *ctxStore) SwapAgent(ctx context.Context, old, a tandem.Agent) (bool, error) {
	ok, err := s.Store.SwapAgent(ctx, old, a)
	if s.cancel != nil {
		s.cancel()
	}
	return ok, err
}

func (s *ctxStore) Tickets(ctx context.Context, f handoff.TicketFilter) ([]tandem.Ticket, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.Store.Tickets(ctx, f)
}

func (s *ctxStore) Apply(ctx context.Context, c handoff.Change) (tandem.Ticket, error) {
	if err := ctx.Err(); err != nil {
		return tandem.Ticket{}, err
	}
	return s.Store.Apply(ctx, c)
}

// TestDisableCompletesWhenCallerGoesAway: once an account is stored as
// disabled, its pending offers are withdrawn even if the caller's context
// ends at that moment (the admin closed the page): the disabled agent was
// left holding an offer they could still accept.
func TestDisableCompletesWhenCallerGoesAway(t *testing.T) {
	st := &ctxStore{Store: memstore.New()}
	e, err := handoff.New(st, handoff.Config{BcryptCost: 4, Registerer: prometheus.NewRegistry(), Clock: handoff.NewManualClock(t0)})
	if err != nil {
		t.Fatal(err)
	}
	a, err := e.CreateAgent(ctx, tandem.Agent{Email: "dan@example.com"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.Connect(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	tk, _, err := e.Escalate(ctx, tandem.Conversation{ID: "dis"}, tandem.Escalation{Reason: tandem.EscalateButton})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.Ticket(ctx, tk.ID); got.State != tandem.TicketOffered {
		t.Fatalf("ticket %s, want offered", got.State)
	}
	reqCtx, cancel := context.WithCancel(ctx)
	st.cancel = cancel
	_, _ = e.SetDisabled(reqCtx, a.ID, true)
	st.cancel = nil
	if got, _ := e.Ticket(ctx, tk.ID); got.State != tandem.TicketQueued {
		t.Fatalf("after disabling its agent the ticket is %s to %s, want queued", got.State, got.AgentID)
	}
}

// TestDisableEndsTokensForGood: the credential stamp (which staff tokens
// carry) changes when an account is disabled and stays changed once it is
// enabled again, so a token issued before cannot come back; the password
// still works, and a new login carries the new stamp.
func TestDisableEndsTokensForGood(t *testing.T) {
	e, err := handoff.New(memstore.New(), handoff.Config{BcryptCost: 4, Registerer: prometheus.NewRegistry(), Clock: handoff.NewManualClock(t0)})
	if err != nil {
		t.Fatal(err)
	}
	a, err := e.CreateAgent(ctx, tandem.Agent{Email: "eve@example.com"}, "correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	_, before, err := e.Login(ctx, "eve@example.com", "correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	for _, disabled := range []bool{true, false} {
		if _, err := e.SetDisabled(ctx, a.ID, disabled); err != nil {
			t.Fatal(err)
		}
	}
	_, now, err := e.AgentWithStamp(ctx, a.ID)
	if err != nil || now == before {
		t.Fatalf("stamp after disable and enable = %q (before %q), %v: the old tokens would be accepted again", now, before, err)
	}
	_, again, err := e.Login(ctx, "eve@example.com", "correct horse battery")
	if err != nil || again != now {
		t.Fatalf("login after re-enabling: stamp %q (want %q), %v", again, now, err)
	}
	if _, _, err := e.Login(ctx, "eve@example.com", "wrong horse battery"); err == nil {
		t.Fatal("a wrong password was accepted")
	}
	// Disabled twice: each time a new stamp.
	for _, disabled := range []bool{true, false} {
		if _, err := e.SetDisabled(ctx, a.ID, disabled); err != nil {
			t.Fatal(err)
		}
	}
	if _, third, _ := e.AgentWithStamp(ctx, a.ID); third == now {
		t.Fatal("a second disable kept the stamp")
	}
}

// resetRaceStore changes the password (as `tandem agent password` in
// another process would) just before the engine's first swap.
type resetRaceStore struct {
	handoff.Store
	newHash []byte
	done    bool
}

func (s *resetRaceStore) SwapPasswordHash(ctx context.Context, id string, old, h []byte) (bool, error) {
	if !s.done {
		s.done = true
		if err := s.Store.SetPasswordHash(ctx, id, s.newHash); err != nil {
			return false, err
		}
	}
	return s.Store.SwapPasswordHash(ctx, id, old, h)
}

// TestDisableKeepsConcurrentPasswordChange: a password changed while the
// account is being disabled stays changed (the revocation nonce was
// written over it, bringing the old password back).
func TestDisableKeepsConcurrentPasswordChange(t *testing.T) {
	newHash, err := bcrypt.GenerateFromPassword([]byte("the new password"), 4)
	if err != nil {
		t.Fatal(err)
	}
	st := &resetRaceStore{Store: memstore.New(), newHash: newHash}
	e, err := handoff.New(st, handoff.Config{BcryptCost: 4, Registerer: prometheus.NewRegistry(), Clock: handoff.NewManualClock(t0)})
	if err != nil {
		t.Fatal(err)
	}
	a, err := e.CreateAgent(ctx, tandem.Agent{Email: "fay@example.com"}, "the old password")
	if err != nil {
		t.Fatal(err)
	}
	for _, disabled := range []bool{true, false} {
		if _, err := e.SetDisabled(ctx, a.ID, disabled); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := e.Login(ctx, "fay@example.com", "the new password"); err != nil {
		t.Fatalf("the new password: %v", err)
	}
	if _, _, err := e.Login(ctx, "fay@example.com", "the old password"); err == nil {
		t.Fatal("the old password came back")
	}
}
