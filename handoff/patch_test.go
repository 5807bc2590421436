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

func ptrTo[T any](v T) *T { return &v }

func patchEngine(t *testing.T, st handoff.Store) *handoff.Engine {
	t.Helper()
	e, err := handoff.New(st, handoff.Config{BcryptCost: 4, Registerer: prometheus.NewRegistry(), Clock: handoff.NewManualClock(t0)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close(context.Background()) })
	return e
}

// TestPatchAgent: a patch changes only its fields, validates the result,
// and a role change (only that) ends the agent's tokens.
func TestPatchAgent(t *testing.T) {
	e := patchEngine(t, memstore.New())
	a, err := e.CreateAgent(ctx, tandem.Agent{Email: "pat@example.com", DisplayName: "Pat", Skills: []string{"billing"}, Languages: []string{"en"}, MaxChats: 2}, "a long password")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateAgent(ctx, tandem.Agent{Email: "other@example.com"}, ""); err != nil {
		t.Fatal(err)
	}
	_, stamp0, _ := e.AgentWithStamp(ctx, a.ID)

	got, err := e.PatchAgent(ctx, a.ID, handoff.AgentPatch{Skills: ptrTo([]string{"Returns", "billing"}), MaxChats: ptrTo(5)})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Skills, []string{"billing", "returns"}) || got.MaxChats != 5 || got.DisplayName != "Pat" || got.Email != "pat@example.com" ||
		got.Role != handoff.RoleAgent || !slices.Equal(got.Languages, []string{"en"}) || !got.CreatedAt.Equal(a.CreatedAt) {
		t.Fatalf("patched agent = %+v", got)
	}
	if _, stamp, _ := e.AgentWithStamp(ctx, a.ID); stamp != stamp0 {
		t.Fatal("a skills change ended the agent's tokens")
	}

	got, err = e.PatchAgent(ctx, a.ID, handoff.AgentPatch{Role: ptrTo(handoff.RoleAdmin)})
	if err != nil || got.Role != handoff.RoleAdmin {
		t.Fatalf("role patch = %+v, %v", got, err)
	}
	_, stamp1, _ := e.AgentWithStamp(ctx, a.ID)
	if stamp1 == stamp0 {
		t.Fatal("a role change kept the agent's tokens (a console would keep the old role's powers)")
	}
	if _, err := e.Authenticate(ctx, "pat@example.com", "a long password"); err != nil {
		t.Fatalf("the password no longer works after a role change: %v", err)
	}

	for name, tc := range map[string]struct {
		p    handoff.AgentPatch
		code string
	}{
		"empty":         {handoff.AgentPatch{}, tandem.EINVALID},
		"bad role":      {handoff.AgentPatch{Role: ptrTo("boss")}, tandem.EINVALID},
		"blank role":    {handoff.AgentPatch{Role: ptrTo("")}, tandem.EINVALID},
		"max chats 0":   {handoff.AgentPatch{MaxChats: ptrTo(0)}, tandem.EINVALID},
		"max chats 101": {handoff.AgentPatch{MaxChats: ptrTo(101)}, tandem.EINVALID},
		"bad email":     {handoff.AgentPatch{Email: ptrTo("not an address")}, tandem.EINVALID},
		"taken email":   {handoff.AgentPatch{Email: ptrTo("OTHER@example.com")}, tandem.ECONFLICT},
	} {
		if _, err := e.PatchAgent(ctx, a.ID, tc.p); tandem.ErrorCode(err) != tc.code {
			t.Errorf("%s: %v, want %s", name, err, tc.code)
		}
	}
	if _, err := e.PatchAgent(ctx, "agt_missing", handoff.AgentPatch{MaxChats: ptrTo(1)}); tandem.ErrorCode(err) != tandem.ENOTFOUND {
		t.Errorf("missing agent: %v, want not_found", err)
	}
	if cur, _ := e.Agent(ctx, a.ID); cur.MaxChats != 5 || cur.Email != "pat@example.com" || cur.Role != handoff.RoleAdmin {
		t.Fatalf("a refused patch changed the agent: %+v", cur)
	}
}

// disableRaceStore disables the agent (as another admin would) just before
// the first profile write.
type disableRaceStore struct {
	handoff.Store
	done bool
}

func (s *disableRaceStore) race(ctx context.Context, id string) error {
	if s.done {
		return nil
	}
	s.done = true
	cur, err := s.Store.Agent(ctx, id)
	if err != nil {
		return err
	}
	cur.Disabled = true
	return s.Store.UpdateAgent(ctx, cur)
}

func (s *disableRaceStore) SwapAgent(ctx context.Context, old, a tandem.Agent) (bool, error) {
	if err := s.race(ctx, a.ID); err != nil {
		return false, err
	}
	return s.Store.SwapAgent(ctx, old, a)
}

func (s *disableRaceStore) UpdateAgent(ctx context.Context, a tandem.Agent) error {
	if err := s.race(ctx, a.ID); err != nil {
		return err
	}
	return s.Store.UpdateAgent(ctx, a)
}

// TestPatchAgentKeepsConcurrentDisable: an account disabled while a patch
// is being applied stays disabled (a read-modify-write of the whole
// profile put the old flag back: the disabled agent was enabled again).
func TestPatchAgentKeepsConcurrentDisable(t *testing.T) {
	st := &disableRaceStore{Store: memstore.New(), done: true}
	e := patchEngine(t, st)
	a, err := e.CreateAgent(ctx, tandem.Agent{Email: "race@example.com"}, "")
	if err != nil {
		t.Fatal(err)
	}
	st.done = false
	got, err := e.PatchAgent(ctx, a.ID, handoff.AgentPatch{DisplayName: ptrTo("Racer")})
	if err != nil {
		t.Fatal(err)
	}
	if !got.Disabled || got.DisplayName != "Racer" {
		t.Fatalf("after a patch racing a disable: %+v, want disabled and renamed", got)
	}
}

// disableBeforeRevokeStore disables the agent (as another admin would)
// just before the first token revocation's hash swap.
type disableBeforeRevokeStore struct {
	handoff.Store
	e    *handoff.Engine
	done bool
}

func (s *disableBeforeRevokeStore) SwapPasswordHash(ctx context.Context, id string, old, h []byte) (bool, error) {
	if !s.done {
		s.done = true
		if _, err := s.e.SetDisabled(ctx, id, true); err != nil {
			return false, err
		}
	}
	return s.Store.SwapPasswordHash(ctx, id, old, h)
}

// TestRoleChangeKeepsConcurrentDisable: an account disabled while its role
// is being changed stays disabled (the role change's revocation read the
// agent again and its swap compared against that fresh copy, enabling and
// promoting the disabled account).
func TestRoleChangeKeepsConcurrentDisable(t *testing.T) {
	st := &disableBeforeRevokeStore{Store: memstore.New(), done: true}
	e := patchEngine(t, st)
	st.e = e
	a, err := e.CreateAgent(ctx, tandem.Agent{Email: "promo@example.com"}, "a long password")
	if err != nil {
		t.Fatal(err)
	}
	st.done = false
	got, err := e.PatchAgent(ctx, a.ID, handoff.AgentPatch{Role: ptrTo(handoff.RoleAdmin)})
	if err != nil {
		t.Fatal(err)
	}
	if !got.Disabled || got.Role != handoff.RoleAdmin {
		t.Fatalf("after a role change racing a disable: %+v, want disabled (and the role changed)", got)
	}
}
