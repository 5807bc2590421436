package pgstore_test

import (
	"context"
	"sync"
	"time"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/handoff"
)

// timedStore measures a few store methods (benchmark diagnostics).
type timedStore struct {
	handoff.Store
	mu sync.Mutex
	d  map[string][]time.Duration
}

func (s *timedStore) rec(name string, start time.Time) {
	s.mu.Lock()
	if s.d == nil {
		s.d = map[string][]time.Duration{}
	}
	s.d[name] = append(s.d[name], time.Since(start))
	s.mu.Unlock()
}

func (s *timedStore) Route(ctx context.Context, r handoff.RouteRequest) ([]tandem.Ticket, error) {
	defer s.rec("Route", time.Now())
	return s.Store.Route(ctx, r)
}
func (s *timedStore) Apply(ctx context.Context, c handoff.Change) (tandem.Ticket, error) {
	defer s.rec("Apply", time.Now())
	return s.Store.Apply(ctx, c)
}
func (s *timedStore) CreateTicket(ctx context.Context, t tandem.Ticket, n string) (tandem.Ticket, error) {
	defer s.rec("CreateTicket", time.Now())
	return s.Store.CreateTicket(ctx, t, n)
}
func (s *timedStore) AgentStates(ctx context.Context, l time.Time) ([]handoff.AgentState, error) {
	defer s.rec("AgentStates", time.Now())
	return s.Store.AgentStates(ctx, l)
}
func (s *timedStore) Tickets(ctx context.Context, f handoff.TicketFilter) ([]tandem.Ticket, error) {
	defer s.rec("Tickets", time.Now())
	return s.Store.Tickets(ctx, f)
}
func (s *timedStore) QueueAhead(ctx context.Context, t tandem.Ticket) (int, error) {
	defer s.rec("QueueAhead", time.Now())
	return s.Store.QueueAhead(ctx, t)
}
