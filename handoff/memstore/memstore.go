// Package memstore is the in-memory handoff.Store: one process, no
// persistence, for the embedded default (`make run`) and tests.
//
// Contract: a Store may be used concurrently; one mutex makes every method
// atomic, so Apply and Route have exactly the semantics handoff.Store
// documents. Returned values are copies. Close is a no-op.
package memstore

import (
	"bytes"
	"cmp"
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/handoff"
)

var _ handoff.Store = (*Store)(nil)

type agent struct {
	a         tandem.Agent
	presence  tandem.Presence
	load      int
	idleSince time.Time
	lastSeen  time.Time // set on disconnect
}

type session struct {
	agentID  string
	lastSeen time.Time
}

// Store is the in-memory store.
type Store struct {
	mu          sync.Mutex // guards everything below
	agents      map[string]*agent
	emails      map[string]string // lower(email) -> agent ID
	sessions    map[string]*session
	tickets     map[string]*tandem.Ticket
	open        map[string]string   // conversation ID -> open ticket ID
	byCustomer  map[string][]string // customer ID -> ticket IDs
	skips       map[string]map[string]time.Time
	transitions []handoff.Transition
	lastSeq     int64 // of the last transition recorded (erasures leave gaps)
}

// New returns an empty store.
func New() *Store {
	return &Store{
		agents:     map[string]*agent{},
		emails:     map[string]string{},
		sessions:   map[string]*session{},
		tickets:    map[string]*tandem.Ticket{},
		open:       map[string]string{},
		byCustomer: map[string][]string{},
		skips:      map[string]map[string]time.Time{},
	}
}

// Close is a no-op.
func (s *Store) Close() error { return nil }

func cloneAgent(a tandem.Agent) tandem.Agent {
	a.Skills = slices.Clone(a.Skills)
	a.Languages = slices.Clone(a.Languages)
	a.PasswordHash = slices.Clone(a.PasswordHash)
	return a
}

func cloneTicket(t tandem.Ticket) tandem.Ticket {
	t.Skills = slices.Clone(t.Skills)
	t.Summary.Ranking = slices.Clone(t.Summary.Ranking)
	t.Summary.Entities = slices.Clone(t.Summary.Entities)
	return t
}

func normAgent(a tandem.Agent) tandem.Agent {
	a = cloneAgent(a)
	a.CreatedAt = handoff.UTC(a.CreatedAt)
	if len(a.Skills) == 0 {
		a.Skills = nil
	}
	if len(a.Languages) == 0 {
		a.Languages = nil
	}
	return a
}

// CreateAgent implements handoff.Store.
func (s *Store) CreateAgent(_ context.Context, a tandem.Agent) error {
	if a.ID == "" {
		return tandem.Errorf(tandem.EINVALID, "agent without an ID")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	key := strings.ToLower(a.Email)
	if _, ok := s.agents[a.ID]; ok {
		return handoff.ErrAgentConflict
	}
	if _, ok := s.emails[key]; ok {
		return handoff.ErrAgentConflict
	}
	a = normAgent(a)
	s.agents[a.ID] = &agent{a: a, presence: tandem.PresenceOnline, idleSince: a.CreatedAt}
	s.emails[key] = a.ID
	return nil
}

// UpdateAgent implements handoff.Store.
func (s *Store) UpdateAgent(_ context.Context, a tandem.Agent) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.agents[a.ID]
	if !ok {
		return handoff.ErrAgentNotFound
	}
	return s.updateLocked(r, a)
}

// updateLocked replaces r's profile with a's; s.mu is held.
func (s *Store) updateLocked(r *agent, a tandem.Agent) error {
	key := strings.ToLower(a.Email)
	if id, ok := s.emails[key]; ok && id != a.ID {
		return handoff.ErrAgentConflict
	}
	delete(s.emails, strings.ToLower(r.a.Email))
	s.emails[key] = a.ID
	a = normAgent(a)
	a.PasswordHash, a.CreatedAt = r.a.PasswordHash, r.a.CreatedAt
	r.a = a
	return nil
}

// SwapAgent implements handoff.Store.
func (s *Store) SwapAgent(_ context.Context, old, a tandem.Agent) (bool, error) {
	if old.ID != a.ID {
		return false, tandem.Errorf(tandem.EINTERNAL, "memstore: swap agent: ids %q and %q differ", old.ID, a.ID)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.agents[a.ID]
	if !ok {
		return false, handoff.ErrAgentNotFound
	}
	old, cur := normAgent(old), r.a
	if cur.Email != old.Email || cur.DisplayName != old.DisplayName || cur.Role != old.Role || !slices.Equal(cur.Skills, old.Skills) ||
		!slices.Equal(cur.Languages, old.Languages) || cur.MaxChats != old.MaxChats || cur.Disabled != old.Disabled {
		return false, nil
	}
	return true, s.updateLocked(r, a)
}

// SetPasswordHash implements handoff.Store.
func (s *Store) SetPasswordHash(_ context.Context, agentID string, hash []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.agents[agentID]
	if !ok {
		return handoff.ErrAgentNotFound
	}
	r.a.PasswordHash = slices.Clone(hash)
	return nil
}

// SwapPasswordHash implements handoff.Store.
func (s *Store) SwapPasswordHash(_ context.Context, agentID string, old, hash []byte) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.agents[agentID]
	if !ok {
		return false, handoff.ErrAgentNotFound
	}
	if !bytes.Equal(r.a.PasswordHash, old) {
		return false, nil
	}
	r.a.PasswordHash = slices.Clone(hash)
	return true, nil
}

// Agent implements handoff.Store.
func (s *Store) Agent(_ context.Context, id string) (tandem.Agent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.agents[id]
	if !ok {
		return tandem.Agent{}, handoff.ErrAgentNotFound
	}
	return cloneAgent(r.a), nil
}

// AgentByEmail implements handoff.Store.
func (s *Store) AgentByEmail(_ context.Context, email string) (tandem.Agent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.emails[strings.ToLower(email)]
	if !ok {
		return tandem.Agent{}, handoff.ErrAgentNotFound
	}
	return cloneAgent(s.agents[id].a), nil
}

// Agents implements handoff.Store.
func (s *Store) Agents(_ context.Context) ([]tandem.Agent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]tandem.Agent, 0, len(s.agents))
	for _, r := range s.agents {
		out = append(out, cloneAgent(r.a))
	}
	slices.SortFunc(out, func(a, b tandem.Agent) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// OpenSession implements handoff.Store.
func (s *Store) OpenSession(_ context.Context, agentID, sessionID, _ string, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.agents[agentID]
	if !ok {
		return handoff.ErrAgentNotFound
	}
	now = handoff.UTC(now)
	if sess, ok := s.sessions[sessionID]; ok && sess.agentID != agentID {
		return tandem.Errorf(tandem.ECONFLICT, "session belongs to another agent")
	}
	if !s.hasSession(agentID) {
		r.idleSince = now // back from being disconnected: idle from now
	}
	s.sessions[sessionID] = &session{agentID: agentID, lastSeen: now}
	r.lastSeen = maxTime(r.lastSeen, now)
	return nil
}

// hasSession reports whether the agent has any session. s.mu must be held.
func (s *Store) hasSession(agentID string) bool {
	for _, sess := range s.sessions {
		if sess.agentID == agentID {
			return true
		}
	}
	return false
}

// TouchSession implements handoff.Store.
func (s *Store) TouchSession(_ context.Context, agentID, sessionID string, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.sessions[sessionID]
	if !ok || sess.agentID != agentID {
		return handoff.ErrNoSession
	}
	sess.lastSeen = maxTime(sess.lastSeen, handoff.UTC(now))
	return nil
}

// CloseSession implements handoff.Store.
func (s *Store) CloseSession(_ context.Context, agentID, sessionID string, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.agents[agentID]
	if !ok {
		return handoff.ErrAgentNotFound
	}
	if sess, ok := s.sessions[sessionID]; ok && sess.agentID == agentID {
		delete(s.sessions, sessionID)
	}
	r.lastSeen = maxTime(r.lastSeen, handoff.UTC(now))
	return nil
}

// SetPresence implements handoff.Store.
func (s *Store) SetPresence(_ context.Context, agentID string, p tandem.Presence, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.agents[agentID]
	if !ok {
		return handoff.ErrAgentNotFound
	}
	if p == tandem.PresenceOnline && r.presence != tandem.PresenceOnline {
		r.idleSince = handoff.UTC(now)
	}
	r.presence = p
	return nil
}

// PruneSessions implements handoff.Store.
func (s *Store) PruneSessions(_ context.Context, cutoff time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, sess := range s.sessions {
		if sess.lastSeen.Before(cutoff) {
			delete(s.sessions, id)
		}
	}
	return nil
}

// liveSessions counts an agent's live sessions and its last sign of life.
// s.mu must be held.
func (s *Store) liveSessions(r *agent, liveAfter time.Time) (live int, lastSeen time.Time) {
	lastSeen = r.lastSeen
	for _, sess := range s.sessions {
		if sess.agentID != r.a.ID {
			continue
		}
		lastSeen = maxTime(lastSeen, sess.lastSeen)
		if !sess.lastSeen.Before(liveAfter) {
			live++
		}
	}
	return live, lastSeen
}

func (s *Store) state(r *agent, liveAfter time.Time) handoff.AgentState {
	live, last := s.liveSessions(r, liveAfter)
	a := cloneAgent(r.a)
	a.PasswordHash = nil
	return handoff.AgentState{Agent: a, Presence: r.presence, Sessions: live, Load: r.load, IdleSince: r.idleSince, LastSeen: last}
}

// AgentStates implements handoff.Store.
func (s *Store) AgentStates(_ context.Context, liveAfter time.Time) ([]handoff.AgentState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]handoff.AgentState, 0, len(s.agents))
	for _, r := range s.agents {
		out = append(out, s.state(r, liveAfter))
	}
	slices.SortFunc(out, func(a, b handoff.AgentState) int { return cmp.Compare(a.Agent.ID, b.Agent.ID) })
	return out, nil
}

// AgentState implements handoff.Store.
func (s *Store) AgentState(_ context.Context, agentID string, liveAfter time.Time) (handoff.AgentState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.agents[agentID]
	if !ok {
		return handoff.AgentState{}, handoff.ErrAgentNotFound
	}
	return s.state(r, liveAfter), nil
}

func normTicket(t tandem.Ticket) tandem.Ticket {
	t = cloneTicket(t)
	for _, p := range []*time.Time{&t.CreatedAt, &t.QueuedAt, &t.OfferedAt, &t.OfferExpiresAt, &t.AssignedAt, &t.ClosedAt} {
		*p = handoff.UTC(*p)
	}
	if len(t.Skills) == 0 {
		t.Skills = nil
	}
	return t
}

// CreateTicket implements handoff.Store.
func (s *Store) CreateTicket(_ context.Context, t tandem.Ticket, node string) (tandem.Ticket, error) {
	if t.ID == "" || t.ConversationID == "" || t.State != tandem.TicketQueued {
		return tandem.Ticket{}, tandem.Errorf(tandem.EINVALID, "a new ticket needs an ID, a conversation and the queued state")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.tickets[t.ID]; ok {
		return tandem.Ticket{}, tandem.Errorf(tandem.ECONFLICT, "ticket %s exists", t.ID)
	}
	if _, ok := s.open[t.ConversationID]; ok {
		return tandem.Ticket{}, handoff.ErrOpenTicket
	}
	t = normTicket(t)
	t.Version = 1
	t.AgentID = ""
	if t.LastAgentID == "" {
		var last time.Time
		for _, id := range s.byCustomer[t.CustomerID] {
			o := s.tickets[id]
			if o.AgentID != "" && !o.AssignedAt.IsZero() && o.AssignedAt.After(last) {
				last, t.LastAgentID = o.AssignedAt, o.AgentID
			}
		}
	}
	s.tickets[t.ID] = &t
	s.open[t.ConversationID] = t.ID
	s.byCustomer[t.CustomerID] = append(s.byCustomer[t.CustomerID], t.ID)
	s.record(handoff.Transition{TicketID: t.ID, To: tandem.TicketQueued, Reason: handoff.ReasonEscalated, Node: node, At: t.CreatedAt})
	return cloneTicket(t), nil
}

// record appends a transition. s.mu must be held.
func (s *Store) record(tr handoff.Transition) {
	s.lastSeq++
	tr.Seq = s.lastSeq
	s.transitions = append(s.transitions, tr)
}

// Ticket implements handoff.Store.
func (s *Store) Ticket(_ context.Context, id string) (tandem.Ticket, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tickets[id]
	if !ok {
		return tandem.Ticket{}, handoff.ErrTicketNotFound
	}
	return cloneTicket(*t), nil
}

// OpenTicket implements handoff.Store.
func (s *Store) OpenTicket(_ context.Context, conversationID string) (tandem.Ticket, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.open[conversationID]
	if !ok {
		return tandem.Ticket{}, handoff.ErrTicketNotFound
	}
	return cloneTicket(*s.tickets[id]), nil
}

// EraseConversation implements handoff.Store.
func (s *Store) EraseConversation(_ context.Context, conversationID string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.open[conversationID]; ok {
		return 0, handoff.ErrOpenTicket
	}
	gone := map[string]bool{}
	for id, t := range s.tickets {
		if t.ConversationID != conversationID {
			continue
		}
		gone[id] = true
		delete(s.tickets, id)
		delete(s.skips, id)
		ids := slices.DeleteFunc(s.byCustomer[t.CustomerID], func(x string) bool { return x == id })
		if len(ids) == 0 {
			delete(s.byCustomer, t.CustomerID)
		} else {
			s.byCustomer[t.CustomerID] = ids
		}
	}
	if len(gone) > 0 {
		s.transitions = slices.DeleteFunc(s.transitions, func(tr handoff.Transition) bool { return gone[tr.TicketID] })
	}
	return len(gone), nil
}

// Tickets implements handoff.Store.
func (s *Store) Tickets(_ context.Context, f handoff.TicketFilter) ([]tandem.Ticket, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []tandem.Ticket
	for _, t := range s.tickets {
		if len(f.States) > 0 && !slices.Contains(f.States, t.State) {
			continue
		}
		if f.AgentID != "" && t.AgentID != f.AgentID {
			continue
		}
		out = append(out, cloneTicket(*t))
	}
	if len(f.States) == 1 && f.States[0] == tandem.TicketQueued {
		slices.SortFunc(out, queueCmp)
	} else {
		slices.SortFunc(out, func(a, b tandem.Ticket) int {
			if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
				return c
			}
			return cmp.Compare(a.ID, b.ID)
		})
	}
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, nil
}

func queueCmp(a, b tandem.Ticket) int {
	switch {
	case handoff.QueueLess(a, b):
		return -1
	case handoff.QueueLess(b, a):
		return 1
	}
	return 0
}

// QueueAhead implements handoff.Store.
func (s *Store) QueueAhead(_ context.Context, t tandem.Ticket) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, o := range s.tickets {
		if o.State == tandem.TicketQueued && o.ID != t.ID && handoff.QueueLess(*o, t) {
			n++
		}
	}
	return n, nil
}

// Apply implements handoff.Store.
func (s *Store) Apply(_ context.Context, c handoff.Change) (tandem.Ticket, error) {
	c.Now = handoff.UTC(c.Now)
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.tickets[c.TicketID]
	if !ok {
		return tandem.Ticket{}, handoff.ErrTicketNotFound
	}
	if err := handoff.CheckChange(*cur, c); err != nil {
		return tandem.Ticket{}, err
	}
	if c.HolderGone != nil {
		r, ok := s.agents[cur.AgentID]
		if ok {
			live, last := s.liveSessions(r, c.HolderGone.LiveAfter)
			if live > 0 || !last.Before(c.HolderGone.Cutoff) {
				return tandem.Ticket{}, handoff.ErrAgentReturned
			}
		}
	}
	c.OfferExpires, c.SkipUntil = handoff.UTC(c.OfferExpires), handoff.UTC(c.SkipUntil)
	out, prev, next := handoff.ApplyToTicket(cloneTicket(*cur), c)
	if c.HolderEnabled && next != "" {
		if r, ok := s.agents[next]; ok && r.a.Disabled {
			return tandem.Ticket{}, handoff.ErrAgentDisabled
		}
	}
	if prev != next {
		var nr *agent
		if next != "" {
			if nr, ok = s.agents[next]; !ok {
				return tandem.Ticket{}, handoff.ErrAgentNotFound
			}
			live, _ := s.liveSessions(nr, c.LiveAfter)
			st := handoff.AgentState{Agent: nr.a, Presence: nr.presence, Load: nr.load}
			if err := handoff.AcquireError(st, c, live > 0); err != nil {
				return tandem.Ticket{}, err
			}
		}
		if pr, ok := s.agents[prev]; ok && prev != "" {
			pr.load--
			pr.idleSince = c.Now
		}
		if nr != nil {
			nr.load++
			nr.idleSince = c.Now
		}
	}
	if c.Skip != "" {
		m := s.skips[out.ID]
		if m == nil {
			m = map[string]time.Time{}
			s.skips[out.ID] = m
		}
		m[c.Skip] = c.SkipUntil
	}
	from, prevAgent := cur.State, cur.AgentID
	*cur = out
	if !handoff.Open(out.State) {
		delete(s.open, out.ConversationID)
		delete(s.skips, out.ID)
	}
	s.record(handoff.Transition{TicketID: out.ID, From: from, To: out.State,
		AgentID: out.AgentID, PrevAgent: prevAgent, Reason: c.Reason, Node: c.Node, At: c.Now})
	return cloneTicket(out), nil
}

// activeSkips returns the skips in force at now for the given tickets.
// s.mu must be held.
func (s *Store) activeSkips(ids []string, now time.Time) handoff.Skips {
	out := handoff.Skips{}
	for _, id := range ids {
		for a, until := range s.skips[id] {
			if until.After(now) {
				out[id] = append(out[id], a)
			}
		}
	}
	return out
}

// Route implements handoff.Store.
func (s *Store) Route(_ context.Context, r handoff.RouteRequest) ([]tandem.Ticket, error) {
	now := handoff.UTC(r.Now)
	match := r.Match
	if match == nil {
		match = handoff.Match
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var cands []handoff.Candidate
	for _, a := range s.agents {
		if a.presence != tandem.PresenceOnline || a.load >= a.a.MaxChats || a.a.Disabled {
			continue
		}
		if live, _ := s.liveSessions(a, r.LiveAfter); live == 0 {
			continue
		}
		cands = append(cands, handoff.Candidate{AgentID: a.a.ID, Skills: a.a.Skills, Languages: a.a.Languages, Load: a.load, MaxChats: a.a.MaxChats, IdleSince: a.idleSince})
	}
	if len(cands) == 0 {
		return nil, nil
	}
	slices.SortFunc(cands, func(a, b handoff.Candidate) int { return cmp.Compare(a.AgentID, b.AgentID) })
	var queued []tandem.Ticket
	for _, t := range s.tickets {
		if t.State == tandem.TicketQueued {
			queued = append(queued, *t)
		}
	}
	slices.SortFunc(queued, queueCmp)
	ids := make([]string, len(queued))
	for i, t := range queued {
		ids[i] = t.ID
	}
	skips := s.activeSkips(ids, now)
	var batch []tandem.Ticket
	for _, t := range queued {
		if len(batch) >= r.Limit {
			break
		}
		if slices.ContainsFunc(cands, func(c handoff.Candidate) bool { return handoff.Eligible(t, c, skips[t.ID]) }) {
			batch = append(batch, t)
		}
	}
	pairs := match(batch, cands, skips)
	slices.SortStableFunc(pairs, func(a, b handoff.Pair) int { return cmp.Compare(a.AgentID, b.AgentID) })
	var out []tandem.Ticket
	for _, p := range pairs {
		a, t := s.agents[p.AgentID], s.tickets[p.TicketID]
		if a == nil || t == nil || t.State != tandem.TicketQueued || !slices.ContainsFunc(batch, func(b tandem.Ticket) bool { return b.ID == t.ID }) {
			continue
		}
		if a.presence != tandem.PresenceOnline || a.load >= a.a.MaxChats || a.a.Disabled {
			continue
		}
		a.load++
		a.idleSince = now
		nt, _, _ := handoff.ApplyToTicket(*t, handoff.Change{Now: now, To: tandem.TicketOffered, Agent: a.a.ID, OfferExpires: handoff.UTC(r.OfferExpires)})
		*t = nt
		s.record(handoff.Transition{TicketID: t.ID, From: tandem.TicketQueued, To: tandem.TicketOffered, AgentID: a.a.ID, Reason: handoff.ReasonRoute, Node: r.Node, At: now})
		out = append(out, cloneTicket(nt))
	}
	return out, nil
}

// ExpiredOffers implements handoff.Store.
func (s *Store) ExpiredOffers(_ context.Context, now time.Time, limit int) ([]tandem.Ticket, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []tandem.Ticket
	for _, t := range s.tickets {
		if t.State == tandem.TicketOffered && !t.OfferExpiresAt.After(now) {
			out = append(out, cloneTicket(*t))
		}
	}
	slices.SortFunc(out, func(a, b tandem.Ticket) int {
		if c := a.OfferExpiresAt.Compare(b.OfferExpiresAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return limitTickets(out, limit), nil
}

func limitTickets(ts []tandem.Ticket, limit int) []tandem.Ticket {
	if limit > 0 && len(ts) > limit {
		return ts[:limit]
	}
	return ts
}

// Orphans implements handoff.Store.
func (s *Store) Orphans(_ context.Context, liveAfter, cutoff time.Time, limit int) ([]tandem.Ticket, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []tandem.Ticket
	for _, t := range s.tickets {
		if !handoff.Holds(t.State) {
			continue
		}
		r, ok := s.agents[t.AgentID]
		if !ok {
			continue
		}
		live, last := s.liveSessions(r, liveAfter)
		if live == 0 && last.Before(cutoff) {
			out = append(out, cloneTicket(*t))
		}
	}
	slices.SortFunc(out, func(a, b tandem.Ticket) int { return cmp.Compare(a.ID, b.ID) })
	return limitTickets(out, limit), nil
}

// SetContact implements handoff.Store.
func (s *Store) SetContact(_ context.Context, ticketID, address string) (tandem.Ticket, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tickets[ticketID]
	if !ok {
		return tandem.Ticket{}, handoff.ErrTicketNotFound
	}
	if !handoff.Open(t.State) {
		return tandem.Ticket{}, tandem.Errorf(tandem.ECONFLICT, "ticket %s is %s", t.ID, t.State)
	}
	t.ContactAddress = address
	t.Version++
	return cloneTicket(*t), nil
}

// HandleTimes implements handoff.Store.
func (s *Store) HandleTimes(_ context.Context, n int) ([]time.Duration, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var done []*tandem.Ticket
	for _, t := range s.tickets {
		if (t.State == tandem.TicketResolved || t.State == tandem.TicketReturned) && !t.AssignedAt.IsZero() {
			done = append(done, t)
		}
	}
	slices.SortFunc(done, func(a, b *tandem.Ticket) int {
		if c := b.ClosedAt.Compare(a.ClosedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	if len(done) > n {
		done = done[:n]
	}
	out := make([]time.Duration, len(done))
	for i, t := range done {
		out[i] = t.ClosedAt.Sub(t.AssignedAt)
	}
	return out, nil
}

// Transitions implements handoff.Store.
func (s *Store) Transitions(_ context.Context, f handoff.TransitionFilter) ([]handoff.Transition, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []handoff.Transition
	for _, tr := range s.transitions {
		if tr.Seq <= f.AfterSeq || (f.TicketID != "" && tr.TicketID != f.TicketID) {
			continue
		}
		out = append(out, tr)
		if f.Limit > 0 && len(out) >= f.Limit {
			break
		}
	}
	return out, nil
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
