package pgstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/handoff/memstore"
	"github.com/tandem-chat/tandem/internal/pgtest"
)

// TestControlCharactersAreInvalidNotInternal: NUL and other control
// characters in an agent's skills, a login email, a transfer's skills or
// a contact address are the caller's mistake: invalid (or, for the login,
// the same unauthorized as any wrong email), never an internal error from
// PostgreSQL (which cannot store NUL), and the same on both stores.
func TestControlCharactersAreInvalidNotInternal(t *testing.T) {
	for name, st := range map[string]handoff.Store{"pg": open(t, pgtest.New(t).URL), "mem": memstore.New()} {
		t.Run(name, func(t *testing.T) {
			e, err := handoff.New(st, handoff.Config{Clock: handoff.NewManualClock(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)), BcryptCost: 4})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if _, err := e.CreateAgent(ctx, tandem.Agent{Email: "a@x.io", Skills: []string{"bil\x00ling"}}, "password1"); tandem.ErrorCode(err) != tandem.EINVALID {
				t.Errorf("skill with NUL: %v", err)
			}
			if _, err := e.Authenticate(ctx, "a\x00@x.io", "password1"); tandem.ErrorCode(err) != tandem.EUNAUTHORIZED {
				t.Errorf("login email with NUL: %v", err)
			}
			ag, err := e.CreateAgent(ctx, tandem.Agent{Email: "b@x.io"}, "password1")
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := e.Connect(ctx, ag.ID); err != nil {
				t.Fatal(err)
			}
			tk, _, err := e.Escalate(ctx, tandem.Conversation{ID: "c1"}, tandem.Escalation{Reason: tandem.EscalateRequested})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.Claim(ctx, handoff.Actor{AgentID: ag.ID}, tk.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := e.TransferToGroup(ctx, handoff.Actor{AgentID: ag.ID}, tk.ID, []string{"x\x00y"}); tandem.ErrorCode(err) != tandem.EINVALID {
				t.Errorf("transfer skill with NUL: %v", err)
			}
			if _, err := e.LeaveContact(ctx, "c1", "a\x00b@x.io"); tandem.ErrorCode(err) != tandem.EINVALID {
				t.Errorf("contact with NUL: %v", err)
			}
		})
	}
}
