package handoff_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/handoff/memstore"
)

// stateFailStore fails the first AgentState read after a session opens
// while armed (the database went away in the middle of Connect).
type stateFailStore struct {
	handoff.Store
	armed, failNext atomic.Bool
}

func (s *stateFailStore) OpenSession(ctx context.Context, agentID, sessionID, node string, now time.Time) error {
	err := s.Store.OpenSession(ctx, agentID, sessionID, node, now)
	if err == nil && s.armed.Load() {
		s.failNext.Store(true)
	}
	return err
}

func (s *stateFailStore) AgentState(ctx context.Context, agentID string, liveAfter time.Time) (handoff.AgentState, error) {
	if s.failNext.CompareAndSwap(true, false) {
		return handoff.AgentState{}, errors.New("pq: connection reset by peer")
	}
	return s.Store.AgentState(ctx, agentID, liveAfter)
}

// TestFailedConnectLeavesNoSession: a Connect that reports an error must
// not leave a console session behind: the caller has no session id to
// close, so the agent looked connected (and was offered chats nobody saw)
// until the heartbeat timeout.
func TestFailedConnectLeavesNoSession(t *testing.T) {
	st := &stateFailStore{Store: memstore.New()}
	e, err := handoff.New(st, handoff.Config{BcryptCost: 4, Registerer: prometheus.NewRegistry(), Clock: handoff.NewManualClock(t0)})
	if err != nil {
		t.Fatal(err)
	}
	a, err := e.CreateAgent(ctx, tandem.Agent{Email: "gus@example.com"}, "")
	if err != nil {
		t.Fatal(err)
	}
	st.armed.Store(true)
	if _, _, err := e.Connect(ctx, a.ID); err == nil {
		t.Fatal("Connect succeeded; the store was meant to fail")
	}
	st.armed.Store(false)
	s, err := e.AgentStatus(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if s.Connected {
		t.Fatal("a failed Connect left the agent connected")
	}
}
