// Package storetest is the contract suite every handoff.Store adapter
// must pass. Adapters call Run from their tests with a factory returning a
// fresh, empty store. The suite has two halves: store-level tests of the
// atomic primitives (Apply, Route, sessions, queries), and engine-level
// tests of every routing and lifecycle rule run on top of the store under
// test, with a ManualClock so no test depends on wall-clock timing.
//
// After every test the suite checks the store's invariants: each agent's
// load equals the number of tickets offered or assigned to it and never
// exceeds its capacity.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/handoff"
)

// Factory returns a new empty store for one subtest. The suite closes it.
type Factory func(t *testing.T) handoff.Store

// Run runs the contract suite.
func Run(t *testing.T, newStore Factory) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s handoff.Store)
	}{
		// Store primitives.
		{"Agents", testAgents},
		{"Sessions", testSessions},
		{"Tickets", testTickets},
		{"ApplyConditions", testApplyConditions},
		{"ApplyCapacity", testApplyCapacity},
		{"RouteRespectsRules", testRouteRules},
		{"ConcurrentRouteAndClaims", testConcurrentRoute},
		{"SweepQueries", testSweepQueries},
		// Engine rules on top of the store.
		{"RouteSkillsLanguage", testRouteSkillsLanguage},
		{"RouteLeastLoadedThenLongestIdle", testLeastLoadedLongestIdle},
		{"RouteQueueOrder", testQueueOrder},
		{"RouteNoHeadOfLineBlocking", testHeadOfLine},
		{"RouteSticky", testSticky},
		{"OfferTimeout", testOfferTimeout},
		{"Decline", testDecline},
		{"AcceptErrors", testAcceptErrors},
		{"Claim", testClaim},
		{"TransferToAgent", testTransfer},
		{"TransferToGroup", testTransferGroup},
		{"ReturnToBotAndResolve", testReturnAndResolve},
		{"CustomerCancel", testCancel},
		{"DisconnectGrace", testDisconnectGrace},
		{"ReconnectWithinGrace", testReconnectWithinGrace},
		{"HeartbeatTimeout", testHeartbeatTimeout},
		{"PresenceAway", testPresenceAway},
		{"NobodyOnline", testNobodyOnline},
		{"QueuePositions", testQueuePositions},
		{"EscalateIdempotent", testEscalateIdempotent},
		{"Authorize", testAuthorize},
		{"Authenticate", testAuthenticate},
		{"DisableAgent", testDisableAgent},
		{"AcceptWhileDisabling", testAcceptWhileDisabling},
		{"EraseConversation", testEraseConversation},
		{"Metrics", testMetrics},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() { _ = s.Close() })
			tc.fn(t, s)
			CheckInvariants(t, s)
		})
	}
}

var ctx = context.Background()

// T0 is the start time of every test clock.
var T0 = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)

// CheckInvariants fails t unless every agent's load equals the number of
// tickets it holds and does not exceed its capacity, and no conversation
// has two open tickets.
func CheckInvariants(t testing.TB, s handoff.Store) {
	t.Helper()
	sts, err := s.AgentStates(ctx, time.Time{})
	if err != nil {
		t.Fatalf("invariants: agent states: %v", err)
	}
	held, err := s.Tickets(ctx, handoff.TicketFilter{States: []tandem.TicketState{tandem.TicketOffered, tandem.TicketAssigned}})
	if err != nil {
		t.Fatalf("invariants: tickets: %v", err)
	}
	count := map[string]int{}
	for _, tk := range held {
		count[tk.AgentID]++
	}
	for _, st := range sts {
		if st.Load != count[st.Agent.ID] {
			t.Errorf("invariant: agent %s load %d but holds %d tickets", st.Agent.ID, st.Load, count[st.Agent.ID])
		}
		if st.Load > st.Agent.MaxChats {
			t.Errorf("invariant: agent %s load %d above capacity %d", st.Agent.ID, st.Load, st.Agent.MaxChats)
		}
	}
	open, err := s.Tickets(ctx, handoff.TicketFilter{States: []tandem.TicketState{tandem.TicketQueued, tandem.TicketOffered, tandem.TicketAssigned}})
	if err != nil {
		t.Fatalf("invariants: tickets: %v", err)
	}
	convs := map[string]bool{}
	for _, tk := range open {
		if convs[tk.ConversationID] {
			t.Errorf("invariant: conversation %s has two open tickets", tk.ConversationID)
		}
		convs[tk.ConversationID] = true
	}
}

// ---- helpers ----

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := tandem.ErrorCode(err); got != code {
		t.Fatalf("error = %v (code %q), want code %q", err, got, code)
	}
}

func must[T any](t *testing.T) func(v T, err error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func check(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Recorder is a Notifier that keeps every event.
type Recorder struct {
	mu     sync.Mutex // guards events
	events []handoff.Event
}

// Notify implements handoff.Notifier.
func (r *Recorder) Notify(_ context.Context, e handoff.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

// Events returns the events of the given type (all if typ is "") about the
// given ticket (any if ticketID is "").
func (r *Recorder) Events(typ handoff.EventType, ticketID string) []handoff.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []handoff.Event
	for _, e := range r.events {
		if (typ == "" || e.Type == typ) && (ticketID == "" || (e.Ticket != nil && e.Ticket.ID == ticketID)) {
			out = append(out, e)
		}
	}
	return out
}

type harness struct {
	t     *testing.T
	s     handoff.Store
	e     *handoff.Engine
	clock *handoff.ManualClock
	rec   *Recorder
	reg   *prometheus.Registry
	n     int

	// live sessions the harness keeps alive: advance heartbeats them, as
	// a connected console would.
	sessions map[string]string // agent ID -> session ID
}

func newHarness(t *testing.T, s handoff.Store, mod ...func(*handoff.Config)) *harness {
	t.Helper()
	h := &harness{t: t, s: s, clock: handoff.NewManualClock(T0), rec: &Recorder{}, reg: prometheus.NewRegistry(), sessions: map[string]string{}}
	cfg := handoff.Config{
		Node: "test", OfferTimeout: 30 * time.Second, SkipFor: 2 * time.Minute, HeartbeatTimeout: 45 * time.Second,
		DisconnectGrace: 60 * time.Second, PositionInterval: 5 * time.Second, BcryptCost: 4,
		Clock: h.clock, Notifier: h.rec, Registerer: h.reg,
	}
	for _, m := range mod {
		m(&cfg)
	}
	e, err := handoff.New(s, cfg)
	check(t, err)
	h.e = e
	t.Cleanup(func() { _ = e.Close(ctx) })
	return h
}

// agent creates an agent; spec is "name skills=a,b langs=en,de max=2 role=admin".
func (h *harness) agent(spec string) tandem.Agent {
	h.t.Helper()
	f := strings.Fields(spec)
	a := tandem.Agent{Email: f[0] + "@example.com", DisplayName: strings.ToUpper(f[0][:1]) + f[0][1:], Languages: []string{"en"}, MaxChats: 2}
	for _, kv := range f[1:] {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "skills":
			a.Skills = strings.Split(v, ",")
		case "langs":
			a.Languages = strings.Split(v, ",")
		case "max":
			fmt.Sscan(v, &a.MaxChats)
		case "role":
			a.Role = v
		default:
			h.t.Fatalf("bad agent spec %q", kv)
		}
	}
	return must[tandem.Agent](h.t)(h.e.CreateAgent(ctx, a, "password-"+f[0]))
}

// online creates the agent and connects it; it returns the agent and its session.
func (h *harness) online(spec string) (tandem.Agent, string) {
	h.t.Helper()
	a := h.agent(spec)
	return a, h.connect(a.ID)
}

func (h *harness) connect(agentID string) string {
	h.t.Helper()
	sid, _, err := h.e.Connect(ctx, agentID)
	check(h.t, err)
	h.sessions[agentID] = sid
	return sid
}

// disconnect closes the agent's console session.
func (h *harness) disconnect(agentID string) {
	h.t.Helper()
	check(h.t, h.e.Disconnect(ctx, agentID, h.sessions[agentID]))
	delete(h.sessions, agentID)
}

// crash stops heartbeating the agent's session without closing it, as when
// the node holding the agent's WebSocket dies.
func (h *harness) crash(agentID string) { delete(h.sessions, agentID) }

// escalate opens a ticket; spec is "reason=button skills=a lang=en vip customer=c1 prio=3".
func (h *harness) escalate(spec string) tandem.Ticket {
	h.t.Helper()
	h.n++
	conv := tandem.Conversation{ID: fmt.Sprintf("conv-%d", h.n), Customer: tandem.Customer{ID: fmt.Sprintf("cust-%d", h.n)}}
	esc := tandem.Escalation{Reason: tandem.EscalateButton, Language: "en", Summary: tandem.NLU{Intent: tandem.IntentScore{Name: "refund", Confidence: 0.4}}}
	for _, kv := range strings.Fields(spec) {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "reason":
			esc.Reason = tandem.EscalationReason(v)
		case "skills":
			esc.Skills = strings.Split(v, ",")
		case "lang":
			esc.Language = v
		case "vip":
			conv.Customer.Tier = "vip"
		case "customer":
			conv.Customer.ID = v
		case "conv":
			conv.ID = v
		case "prio":
			fmt.Sscan(v, &esc.Priority)
		default:
			h.t.Fatalf("bad escalation spec %q", kv)
		}
	}
	tk, _, err := h.e.Escalate(ctx, conv, esc)
	check(h.t, err)
	return tk
}

func (h *harness) tick() {
	h.t.Helper()
	check(h.t, h.e.Tick(ctx))
}

// advance moves the clock in steps of at most 15 s, heartbeating the live
// sessions after each step (no routing happens: only Tick routes).
func (h *harness) advance(d time.Duration) {
	h.t.Helper()
	for d > 0 {
		step := min(d, 15*time.Second)
		h.clock.Advance(step)
		d -= step
		for a, sid := range h.sessions {
			check(h.t, h.e.Heartbeat(ctx, a, sid))
		}
	}
}

func (h *harness) ticket(id string) tandem.Ticket {
	h.t.Helper()
	return must[tandem.Ticket](h.t)(h.s.Ticket(ctx, id))
}

// want asserts a ticket's state and holder.
func (h *harness) want(id string, state tandem.TicketState, agentID string) tandem.Ticket {
	h.t.Helper()
	tk := h.ticket(id)
	if tk.State != state || tk.AgentID != agentID {
		h.t.Fatalf("ticket %s: state %s agent %q, want %s agent %q", id, tk.State, tk.AgentID, state, agentID)
	}
	return tk
}

func (h *harness) flush() {
	h.t.Helper()
	check(h.t, h.e.Flush(ctx))
}

func (h *harness) accept(agentID, ticketID string) tandem.Ticket {
	h.t.Helper()
	return must[tandem.Ticket](h.t)(h.e.Accept(ctx, handoff.Actor{AgentID: agentID}, ticketID))
}

func (h *harness) claim(agentID, ticketID string) tandem.Ticket {
	h.t.Helper()
	return must[tandem.Ticket](h.t)(h.e.Claim(ctx, handoff.Actor{AgentID: agentID}, ticketID))
}

func (h *harness) load(agentID string) int {
	h.t.Helper()
	return must[handoff.AgentStatus](h.t)(h.e.AgentStatus(ctx, agentID)).Load
}

func reasons(trs []handoff.Transition) string {
	var out []string
	for _, tr := range trs {
		out = append(out, fmt.Sprintf("%s>%s:%s", tr.From, tr.To, tr.Reason))
	}
	return strings.Join(out, " ")
}

// ---- store primitives ----

func mkAgent(id, email string, max int, skills ...string) tandem.Agent {
	return tandem.Agent{ID: id, Email: email, DisplayName: id, Role: "agent", Skills: skills, Languages: []string{"en"}, MaxChats: max, CreatedAt: T0}
}

func mkTicket(id, conv string, prio int, at time.Time, skills ...string) tandem.Ticket {
	return tandem.Ticket{ID: id, ConversationID: conv, CustomerID: "c-" + conv, Reason: tandem.EscalateButton, Priority: prio,
		Skills: skills, Language: "en", State: tandem.TicketQueued, CreatedAt: at, QueuedAt: at,
		Summary: tandem.NLU{Intent: tandem.IntentScore{Name: "refund", Confidence: 0.5}, Entities: []tandem.Entity{{Type: "order_id", Text: "A-1", Value: "A-1", Start: 3, End: 6, Source: "rule"}}}}
}

func testAgents(t *testing.T, s handoff.Store) {
	a := mkAgent("a1", "Ann@Example.com", 2, "billing")
	a.PasswordHash = []byte("hash")
	check(t, s.CreateAgent(ctx, a))
	wantCode(t, s.CreateAgent(ctx, mkAgent("a2", "ann@example.COM", 1)), tandem.ECONFLICT)
	wantCode(t, s.CreateAgent(ctx, mkAgent("a1", "other@example.com", 1)), tandem.ECONFLICT)
	check(t, s.CreateAgent(ctx, mkAgent("a0", "zed@example.com", 1)))

	got := must[tandem.Agent](t)(s.Agent(ctx, "a1"))
	if got.Email != "Ann@Example.com" || string(got.PasswordHash) != "hash" || !slices.Equal(got.Skills, []string{"billing"}) || !got.CreatedAt.Equal(T0) || got.MaxChats != 2 {
		t.Fatalf("agent = %+v", got)
	}
	byMail := must[tandem.Agent](t)(s.AgentByEmail(ctx, "ANN@example.com"))
	if byMail.ID != "a1" {
		t.Fatalf("by email = %s", byMail.ID)
	}
	_, err := s.Agent(ctx, "nope")
	wantCode(t, err, tandem.ENOTFOUND)
	_, err = s.AgentByEmail(ctx, "nope@example.com")
	wantCode(t, err, tandem.ENOTFOUND)

	list := must[[]tandem.Agent](t)(s.Agents(ctx))
	if len(list) != 2 || list[0].ID != "a0" || list[1].ID != "a1" {
		t.Fatalf("agents = %v", list)
	}

	upd := got
	upd.DisplayName, upd.Skills, upd.MaxChats, upd.Role, upd.PasswordHash, upd.Disabled = "Ann B", []string{"tech"}, 5, "admin", nil, true
	check(t, s.UpdateAgent(ctx, upd))
	got = must[tandem.Agent](t)(s.Agent(ctx, "a1"))
	if got.DisplayName != "Ann B" || got.MaxChats != 5 || got.Role != "admin" || !slices.Equal(got.Skills, []string{"tech"}) || string(got.PasswordHash) != "hash" || !got.Disabled {
		t.Fatalf("updated agent = %+v", got)
	}
	upd.Email = "ZED@example.com"
	wantCode(t, s.UpdateAgent(ctx, upd), tandem.ECONFLICT)
	wantCode(t, s.UpdateAgent(ctx, mkAgent("nope", "n@example.com", 1)), tandem.ENOTFOUND)

	// SwapAgent: only from the stored profile; the hash is not part of it.
	cur := must[tandem.Agent](t)(s.Agent(ctx, "a1"))
	next := cur
	next.Skills, next.Role, next.Disabled = []string{"billing", "tech"}, "agent", false
	stale := cur
	stale.Disabled = false
	if ok := must[bool](t)(s.SwapAgent(ctx, stale, next)); ok {
		t.Fatal("SwapAgent from a stale profile (disabled differs) swapped")
	}
	stale = cur
	stale.Skills = []string{"other"}
	if ok := must[bool](t)(s.SwapAgent(ctx, stale, next)); ok {
		t.Fatal("SwapAgent from a stale profile (skills differ) swapped")
	}
	stale = cur
	stale.PasswordHash = []byte("other hash")
	if ok := must[bool](t)(s.SwapAgent(ctx, stale, next)); !ok {
		t.Fatal("SwapAgent from the stored profile did not swap")
	}
	got = must[tandem.Agent](t)(s.Agent(ctx, "a1"))
	if got.Role != "agent" || got.Disabled || !slices.Equal(got.Skills, []string{"billing", "tech"}) || string(got.PasswordHash) != "hash" {
		t.Fatalf("swapped agent = %+v", got)
	}
	if ok := must[bool](t)(s.SwapAgent(ctx, cur, next)); ok {
		t.Fatal("a second SwapAgent from the replaced profile swapped")
	}
	clash := got
	clash.Email = "ZED@example.com"
	if _, err := s.SwapAgent(ctx, got, clash); tandem.ErrorCode(err) != tandem.ECONFLICT {
		t.Fatalf("SwapAgent to another agent's email: %v, want conflict", err)
	}
	if _, err := s.SwapAgent(ctx, mkAgent("nope", "n@example.com", 1), mkAgent("nope", "n@example.com", 2)); tandem.ErrorCode(err) != tandem.ENOTFOUND {
		t.Fatalf("SwapAgent of a missing agent: %v, want not_found", err)
	}

	check(t, s.SetPasswordHash(ctx, "a1", []byte("new")))
	if got := must[tandem.Agent](t)(s.Agent(ctx, "a1")); string(got.PasswordHash) != "new" {
		t.Fatalf("hash = %q", got.PasswordHash)
	}
	wantCode(t, s.SetPasswordHash(ctx, "nope", []byte("x")), tandem.ENOTFOUND)
	// Compare-and-swap: only from the current hash.
	if ok, err := s.SwapPasswordHash(ctx, "a1", []byte("stale"), []byte("x")); ok || err != nil {
		t.Fatalf("swap from a stale hash = %v, %v", ok, err)
	}
	if ok, err := s.SwapPasswordHash(ctx, "a1", []byte("new"), []byte("newer")); !ok || err != nil {
		t.Fatalf("swap from the current hash = %v, %v", ok, err)
	}
	if got := must[tandem.Agent](t)(s.Agent(ctx, "a1")); string(got.PasswordHash) != "newer" {
		t.Fatalf("hash after swap = %q", got.PasswordHash)
	}
	_, err = s.SwapPasswordHash(ctx, "nope", nil, []byte("x"))
	wantCode(t, err, tandem.ENOTFOUND)
}

func testSessions(t *testing.T, s handoff.Store) {
	check(t, s.CreateAgent(ctx, mkAgent("a1", "a1@example.com", 2)))
	st := must[handoff.AgentState](t)(s.AgentState(ctx, "a1", T0))
	if st.Presence != tandem.PresenceOnline || st.Sessions != 0 || st.Load != 0 || !st.IdleSince.Equal(T0) || !st.LastSeen.IsZero() {
		t.Fatalf("new agent state = %+v", st)
	}
	wantCode(t, s.OpenSession(ctx, "nope", "s0", "n", T0), tandem.ENOTFOUND)
	check(t, s.OpenSession(ctx, "a1", "s1", "n1", T0.Add(time.Second)))
	check(t, s.OpenSession(ctx, "a1", "s2", "n2", T0.Add(2*time.Second)))
	check(t, s.TouchSession(ctx, "a1", "s1", T0.Add(10*time.Second)))
	wantCode(t, s.TouchSession(ctx, "a1", "s9", T0), tandem.ENOTFOUND)

	// Live = heartbeat at or after liveAfter.
	for _, c := range []struct {
		after time.Duration
		live  int
	}{{0, 2}, {2 * time.Second, 2}, {3 * time.Second, 1}, {10 * time.Second, 1}, {11 * time.Second, 0}} {
		st := must[handoff.AgentState](t)(s.AgentState(ctx, "a1", T0.Add(c.after)))
		if st.Sessions != c.live {
			t.Errorf("liveAfter +%v: sessions %d, want %d", c.after, st.Sessions, c.live)
		}
		if !st.LastSeen.Equal(T0.Add(10 * time.Second)) {
			t.Errorf("last seen = %v", st.LastSeen)
		}
	}
	check(t, s.CloseSession(ctx, "a1", "s1", T0.Add(20*time.Second)))
	check(t, s.CloseSession(ctx, "a1", "s1", T0.Add(21*time.Second))) // twice: no error
	st = must[handoff.AgentState](t)(s.AgentState(ctx, "a1", T0))
	if st.Sessions != 1 || !st.LastSeen.Equal(T0.Add(21*time.Second)) {
		t.Fatalf("after close: %+v", st)
	}

	check(t, s.SetPresence(ctx, "a1", tandem.PresenceAway, T0.Add(30*time.Second)))
	check(t, s.SetPresence(ctx, "a1", tandem.PresenceOnline, T0.Add(40*time.Second)))
	check(t, s.SetPresence(ctx, "a1", tandem.PresenceOnline, T0.Add(50*time.Second)))
	st = must[handoff.AgentState](t)(s.AgentState(ctx, "a1", T0))
	if st.Presence != tandem.PresenceOnline || !st.IdleSince.Equal(T0.Add(40*time.Second)) {
		t.Fatalf("presence: %+v (idle since must be when the agent came back online)", st)
	}
	wantCode(t, s.SetPresence(ctx, "nope", tandem.PresenceAway, T0), tandem.ENOTFOUND)

	check(t, s.PruneSessions(ctx, T0.Add(5*time.Second))) // s2 (last seen +2s) goes
	// Connecting with no other session resets the idle time; a second
	// session does not.
	check(t, s.OpenSession(ctx, "a1", "s3", "n", T0.Add(time.Minute)))
	check(t, s.OpenSession(ctx, "a1", "s4", "n", T0.Add(2*time.Minute)))
	if st := must[handoff.AgentState](t)(s.AgentState(ctx, "a1", T0)); !st.IdleSince.Equal(T0.Add(time.Minute)) || st.Sessions != 2 {
		t.Fatalf("after reconnect: %+v", st)
	}
	check(t, s.CloseSession(ctx, "a1", "s3", T0.Add(3*time.Minute)))
	check(t, s.CloseSession(ctx, "a1", "s4", T0.Add(3*time.Minute)))
	st = must[handoff.AgentState](t)(s.AgentState(ctx, "a1", time.Time{}))
	if st.Sessions != 0 {
		t.Fatalf("after prune: %d sessions", st.Sessions)
	}
	all := must[[]handoff.AgentState](t)(s.AgentStates(ctx, T0))
	if len(all) != 1 || all[0].Agent.ID != "a1" || all[0].Agent.PasswordHash != nil {
		t.Fatalf("states = %+v", all)
	}
}

func testTickets(t *testing.T, s handoff.Store) {
	check(t, s.CreateAgent(ctx, mkAgent("a1", "a1@example.com", 2)))
	t1 := must[tandem.Ticket](t)(s.CreateTicket(ctx, mkTicket("t1", "c1", 0, T0, "Billing"), "n1"))
	if t1.Version != 1 || t1.State != tandem.TicketQueued || t1.Summary.Entities[0].Value != "A-1" || !t1.QueuedAt.Equal(T0) {
		t.Fatalf("created = %+v", t1)
	}
	_, err := s.CreateTicket(ctx, mkTicket("t1b", "c1", 0, T0), "n1")
	wantCode(t, err, tandem.ECONFLICT) // one open ticket per conversation
	_, err = s.CreateTicket(ctx, mkTicket("t1", "c9", 0, T0), "n1")
	wantCode(t, err, tandem.ECONFLICT) // duplicate ID
	bad := mkTicket("", "c8", 0, T0)
	_, err = s.CreateTicket(ctx, bad, "n1")
	wantCode(t, err, tandem.EINVALID)

	must[tandem.Ticket](t)(s.CreateTicket(ctx, mkTicket("t2", "c2", 5, T0.Add(time.Second)), "n1"))
	must[tandem.Ticket](t)(s.CreateTicket(ctx, mkTicket("t3", "c3", 0, T0.Add(2*time.Second)), "n1"))
	must[tandem.Ticket](t)(s.CreateTicket(ctx, mkTicket("t0", "c0", 0, T0.Add(2*time.Second)), "n1"))

	q := must[[]tandem.Ticket](t)(s.Tickets(ctx, handoff.TicketFilter{States: []tandem.TicketState{tandem.TicketQueued}}))
	var ids []string
	for _, tk := range q {
		ids = append(ids, tk.ID)
	}
	if strings.Join(ids, ",") != "t2,t1,t0,t3" {
		t.Fatalf("queue order = %v, want t2,t1,t0,t3 (priority, then created, then ID)", ids)
	}
	for i, id := range ids {
		tk := must[tandem.Ticket](t)(s.Ticket(ctx, id))
		if n := must[int](t)(s.QueueAhead(ctx, tk)); n != i {
			t.Errorf("QueueAhead(%s) = %d, want %d", id, n, i)
		}
	}
	all := must[[]tandem.Ticket](t)(s.Tickets(ctx, handoff.TicketFilter{Limit: 2}))
	if len(all) != 2 || all[0].ID != "t1" || all[1].ID != "t2" {
		t.Fatalf("tickets by creation, limit 2 = %v", all)
	}
	open := must[tandem.Ticket](t)(s.OpenTicket(ctx, "c2"))
	if open.ID != "t2" {
		t.Fatalf("open = %s", open.ID)
	}
	_, err = s.OpenTicket(ctx, "c-none")
	wantCode(t, err, tandem.ENOTFOUND)
	_, err = s.Ticket(ctx, "nope")
	wantCode(t, err, tandem.ENOTFOUND)

	// Contact address.
	got := must[tandem.Ticket](t)(s.SetContact(ctx, "t1", "ann@example.com"))
	if got.ContactAddress != "ann@example.com" || got.Version != 2 {
		t.Fatalf("contact = %+v", got)
	}
	_, err = s.SetContact(ctx, "nope", "x@example.com")
	wantCode(t, err, tandem.ENOTFOUND)

	// Sticky: a later ticket of the same customer remembers the agent
	// who was last assigned.
	check(t, s.OpenSession(ctx, "a1", "s1", "n", T0))
	must[tandem.Ticket](t)(s.Apply(ctx, handoff.Change{TicketID: "t3", Now: T0.Add(time.Minute), Reason: handoff.ReasonClaim,
		From: []tandem.TicketState{tandem.TicketQueued}, To: tandem.TicketAssigned, Agent: "a1"}))
	must[tandem.Ticket](t)(s.Apply(ctx, handoff.Change{TicketID: "t3", Now: T0.Add(2 * time.Minute), Reason: handoff.ReasonResolve,
		From: []tandem.TicketState{tandem.TicketAssigned}, Holder: "a1", To: tandem.TicketResolved}))
	_, err = s.SetContact(ctx, "t3", "x@example.com")
	wantCode(t, err, tandem.ECONFLICT)
	again := mkTicket("t4", "c4", 0, T0.Add(3*time.Minute))
	again.CustomerID = "c-c3"
	t4 := must[tandem.Ticket](t)(s.CreateTicket(ctx, again, "n1"))
	if t4.LastAgentID != "a1" {
		t.Fatalf("sticky agent = %q, want a1", t4.LastAgentID)
	}
	// The closed ticket keeps its agent; the conversation may escalate again.
	if tk := must[tandem.Ticket](t)(s.Ticket(ctx, "t3")); tk.AgentID != "a1" || tk.State != tandem.TicketResolved {
		t.Fatalf("closed ticket = %+v", tk)
	}
	must[tandem.Ticket](t)(s.CreateTicket(ctx, mkTicket("t3b", "c3", 0, T0.Add(4*time.Minute)), "n1"))

	trs := must[[]handoff.Transition](t)(s.Transitions(ctx, handoff.TransitionFilter{TicketID: "t3"}))
	if got := reasons(trs); got != ">queued:escalated queued>assigned:claim assigned>resolved:resolve" {
		t.Fatalf("transitions = %s", got)
	}
	if trs[1].AgentID != "a1" || trs[2].PrevAgent != "a1" || !trs[2].At.Equal(T0.Add(2*time.Minute)) || trs[0].Node != "n1" {
		t.Fatalf("transitions = %+v", trs)
	}
	page := must[[]handoff.Transition](t)(s.Transitions(ctx, handoff.TransitionFilter{AfterSeq: trs[0].Seq, Limit: 1}))
	if len(page) != 1 || page[0].Seq <= trs[0].Seq {
		t.Fatalf("page = %+v", page)
	}
}

func testApplyConditions(t *testing.T, s handoff.Store) {
	check(t, s.CreateAgent(ctx, mkAgent("a1", "a1@example.com", 2)))
	check(t, s.CreateAgent(ctx, mkAgent("a2", "a2@example.com", 2)))
	check(t, s.OpenSession(ctx, "a1", "s1", "n", T0))
	must[tandem.Ticket](t)(s.CreateTicket(ctx, mkTicket("t1", "c1", 0, T0), "n"))
	queued := []tandem.TicketState{tandem.TicketQueued}
	offered := []tandem.TicketState{tandem.TicketOffered}

	_, err := s.Apply(ctx, handoff.Change{TicketID: "nope", Now: T0, From: queued, To: tandem.TicketOffered, Agent: "a1"})
	wantCode(t, err, tandem.ENOTFOUND)
	_, err = s.Apply(ctx, handoff.Change{TicketID: "t1", Now: T0, From: offered, To: tandem.TicketAssigned, Agent: "a1"})
	wantCode(t, err, tandem.ECONFLICT) // wrong state
	_, err = s.Apply(ctx, handoff.Change{TicketID: "t1", Now: T0, Version: 7, From: queued, To: tandem.TicketOffered, Agent: "a1"})
	wantCode(t, err, tandem.ECONFLICT) // stale version
	_, err = s.Apply(ctx, handoff.Change{TicketID: "t1", Now: T0, From: queued, To: tandem.TicketOffered, Agent: "nope", OfferExpires: T0.Add(time.Minute)})
	wantCode(t, err, tandem.ENOTFOUND) // unknown agent
	_, err = s.Apply(ctx, handoff.Change{TicketID: "t1", Now: T0, From: queued, To: tandem.TicketOffered, Agent: "a2", LiveAfter: T0, OfferExpires: T0.Add(time.Minute)})
	wantCode(t, err, tandem.ECONFLICT) // a2 has no live session

	tk := must[tandem.Ticket](t)(s.Apply(ctx, handoff.Change{TicketID: "t1", Now: T0, Version: 1, From: queued, To: tandem.TicketOffered,
		Agent: "a1", RequireOnline: true, LiveAfter: T0, OfferExpires: T0.Add(30 * time.Second), Reason: handoff.ReasonRoute}))
	if tk.State != tandem.TicketOffered || tk.AgentID != "a1" || tk.Version != 2 || !tk.OfferExpiresAt.Equal(T0.Add(30*time.Second)) || !tk.OfferedAt.Equal(T0) {
		t.Fatalf("offered = %+v", tk)
	}
	if st := must[handoff.AgentState](t)(s.AgentState(ctx, "a1", T0)); st.Load != 1 {
		t.Fatalf("load = %d", st.Load)
	}
	accept := handoff.Change{TicketID: "t1", From: offered, Holder: "a1", OfferLive: true, To: tandem.TicketAssigned, Agent: "a1"}
	c := accept
	c.Holder, c.Now = "a2", T0.Add(time.Second)
	_, err = s.Apply(ctx, c)
	wantCode(t, err, tandem.ECONFLICT) // not the holder
	c = accept
	c.Now = T0.Add(30 * time.Second)
	_, err = s.Apply(ctx, c)
	wantCode(t, err, tandem.ECONFLICT) // offer expired (expiry is exclusive)
	due := handoff.Change{TicketID: "t1", Now: T0.Add(29 * time.Second), From: offered, Holder: "a1", OfferDue: true, To: tandem.TicketQueued}
	_, err = s.Apply(ctx, due)
	wantCode(t, err, tandem.ECONFLICT) // not yet due
	c = accept
	c.Now = T0.Add(29 * time.Second)
	tk = must[tandem.Ticket](t)(s.Apply(ctx, c))
	if tk.State != tandem.TicketAssigned || !tk.AssignedAt.Equal(T0.Add(29*time.Second)) || !tk.OfferExpiresAt.IsZero() || tk.Version != 3 {
		t.Fatalf("assigned = %+v", tk)
	}
	if st := must[handoff.AgentState](t)(s.AgentState(ctx, "a1", T0)); st.Load != 1 {
		t.Fatalf("accepting must not change the load: %d", st.Load)
	}

	// HolderGone: refused while a1 is connected or seen recently.
	gone := handoff.Change{TicketID: "t1", Now: T0.Add(10 * time.Minute), From: []tandem.TicketState{tandem.TicketAssigned}, Holder: "a1",
		HolderGone: &handoff.Gone{LiveAfter: T0.Add(-time.Hour), Cutoff: T0.Add(9 * time.Minute)}, To: tandem.TicketQueued, SetLastAgent: true, Reason: handoff.ReasonDisconnect}
	_, err = s.Apply(ctx, gone)
	wantCode(t, err, tandem.ECONFLICT) // live session
	check(t, s.CloseSession(ctx, "a1", "s1", T0.Add(9*time.Minute+time.Second)))
	_, err = s.Apply(ctx, gone)
	wantCode(t, err, tandem.ECONFLICT) // seen after the cutoff
	gone.HolderGone.Cutoff = T0.Add(9*time.Minute + 2*time.Second)
	tk = must[tandem.Ticket](t)(s.Apply(ctx, gone))
	if tk.State != tandem.TicketQueued || tk.AgentID != "" || tk.LastAgentID != "a1" || !tk.QueuedAt.Equal(T0.Add(10*time.Minute)) || !tk.AssignedAt.IsZero() {
		t.Fatalf("requeued = %+v", tk)
	}
	if st := must[handoff.AgentState](t)(s.AgentState(ctx, "a1", T0)); st.Load != 0 || !st.IdleSince.Equal(T0.Add(10*time.Minute)) {
		t.Fatalf("after release: %+v", st)
	}

	// SetSkills and closing from the queue.
	tk = must[tandem.Ticket](t)(s.Apply(ctx, handoff.Change{TicketID: "t1", Now: T0.Add(11 * time.Minute), From: queued, To: tandem.TicketQueued,
		SetSkills: true, Skills: []string{"Tech", "billing"}, Reason: handoff.ReasonTransferGroup}))
	if !slices.Equal(tk.Skills, []string{"billing", "tech"}) {
		t.Fatalf("skills = %v", tk.Skills)
	}
	tk = must[tandem.Ticket](t)(s.Apply(ctx, handoff.Change{TicketID: "t1", Now: T0.Add(12 * time.Minute), From: queued, AnyHolder: true,
		To: tandem.TicketAbandoned, Reason: handoff.ReasonCustomer}))
	if tk.State != tandem.TicketAbandoned || !tk.ClosedAt.Equal(T0.Add(12*time.Minute)) {
		t.Fatalf("abandoned = %+v", tk)
	}
	_, err = s.OpenTicket(ctx, "c1")
	wantCode(t, err, tandem.ENOTFOUND)
}

func testApplyCapacity(t *testing.T, s handoff.Store) {
	check(t, s.CreateAgent(ctx, mkAgent("a1", "a1@example.com", 2)))
	check(t, s.CreateAgent(ctx, mkAgent("a2", "a2@example.com", 1)))
	check(t, s.OpenSession(ctx, "a1", "s1", "n", T0))
	check(t, s.OpenSession(ctx, "a2", "s2", "n", T0))
	for i := range 4 {
		must[tandem.Ticket](t)(s.CreateTicket(ctx, mkTicket(fmt.Sprintf("t%d", i), fmt.Sprintf("c%d", i), 0, T0), "n"))
	}
	claim := func(ticket, agent string) error {
		_, err := s.Apply(ctx, handoff.Change{TicketID: ticket, Now: T0, From: []tandem.TicketState{tandem.TicketQueued}, To: tandem.TicketAssigned, Agent: agent, LiveAfter: T0})
		return err
	}
	check(t, claim("t0", "a1"))
	check(t, claim("t1", "a1"))
	wantCode(t, claim("t2", "a1"), tandem.ECONFLICT) // at capacity
	if tk := must[tandem.Ticket](t)(s.Ticket(ctx, "t2")); tk.State != tandem.TicketQueued || tk.Version != 1 {
		t.Fatalf("a refused change must leave the ticket alone: %+v", tk)
	}
	// Transfer t0 from a1 to a2 moves the load.
	check(t, s.SetPresence(ctx, "a2", tandem.PresenceAway, T0))
	xfer := handoff.Change{TicketID: "t0", Now: T0, From: []tandem.TicketState{tandem.TicketAssigned}, Holder: "a1", To: tandem.TicketOffered,
		Agent: "a2", RequireOnline: true, LiveAfter: T0, OfferExpires: T0.Add(time.Minute), Skip: "a1", SkipUntil: T0.Add(time.Hour)}
	_, err := s.Apply(ctx, xfer)
	wantCode(t, err, tandem.ECONFLICT) // a2 is away
	check(t, s.SetPresence(ctx, "a2", tandem.PresenceOnline, T0))
	must[tandem.Ticket](t)(s.Apply(ctx, xfer))
	if l1, l2 := must[handoff.AgentState](t)(s.AgentState(ctx, "a1", T0)).Load, must[handoff.AgentState](t)(s.AgentState(ctx, "a2", T0)).Load; l1 != 1 || l2 != 1 {
		t.Fatalf("loads after transfer = %d, %d; want 1, 1", l1, l2)
	}
	check(t, claim("t2", "a1")) // a1 has room again
	wantCode(t, claim("t3", "a2"), tandem.ECONFLICT)
	// Lowering capacity below the load is allowed; no new work arrives.
	a := must[tandem.Agent](t)(s.Agent(ctx, "a1"))
	a.MaxChats = 1
	check(t, s.UpdateAgent(ctx, a))
	wantCode(t, claim("t3", "a1"), tandem.ECONFLICT)
	a.MaxChats = 2
	check(t, s.UpdateAgent(ctx, a))
}

func testRouteRules(t *testing.T, s handoff.Store) {
	for _, a := range []tandem.Agent{mkAgent("a1", "a1@example.com", 1, "billing"), mkAgent("a2", "a2@example.com", 2), mkAgent("a3", "a3@example.com", 5)} {
		check(t, s.CreateAgent(ctx, a))
	}
	check(t, s.OpenSession(ctx, "a1", "s1", "n", T0))
	check(t, s.OpenSession(ctx, "a2", "s2", "n", T0.Add(-time.Hour))) // stale session: not live
	// a3 has no session at all.
	must[tandem.Ticket](t)(s.CreateTicket(ctx, mkTicket("t1", "c1", 0, T0), "n"))
	must[tandem.Ticket](t)(s.CreateTicket(ctx, mkTicket("t2", "c2", 9, T0.Add(time.Second), "billing"), "n"))
	must[tandem.Ticket](t)(s.CreateTicket(ctx, mkTicket("t3", "c3", 0, T0.Add(2*time.Second), "tech"), "n"))
	req := handoff.RouteRequest{Now: T0.Add(time.Minute), LiveAfter: T0.Add(-time.Minute), OfferExpires: T0.Add(90 * time.Second), Limit: 10, Node: "n"}
	out := must[[]tandem.Ticket](t)(s.Route(ctx, req))
	if len(out) != 1 || out[0].ID != "t2" || out[0].AgentID != "a1" || out[0].State != tandem.TicketOffered || !out[0].OfferExpiresAt.Equal(req.OfferExpires) {
		t.Fatalf("route = %+v; want t2 (highest priority) to a1 (only live agent)", out)
	}
	// a1 is full; nothing else is routable.
	if out := must[[]tandem.Ticket](t)(s.Route(ctx, req)); len(out) != 0 {
		t.Fatalf("second pass offered %v", out)
	}
	// a2 comes back; t1 goes to a2 but never t3 (needs tech).
	check(t, s.TouchSession(ctx, "a2", "s2", T0.Add(time.Minute)))
	out = must[[]tandem.Ticket](t)(s.Route(ctx, req))
	if len(out) != 1 || out[0].ID != "t1" || out[0].AgentID != "a2" {
		t.Fatalf("route = %+v; want t1 to a2", out)
	}
	// A skip keeps a ticket from an agent until it expires.
	must[tandem.Ticket](t)(s.Apply(ctx, handoff.Change{TicketID: "t1", Now: req.Now, From: []tandem.TicketState{tandem.TicketOffered}, Holder: "a2",
		To: tandem.TicketQueued, Skip: "a2", SkipUntil: req.Now.Add(time.Minute), Reason: handoff.ReasonDecline}))
	if out := must[[]tandem.Ticket](t)(s.Route(ctx, req)); len(out) != 0 {
		t.Fatalf("skipped agent was offered %v", out)
	}
	req.Now = req.Now.Add(time.Minute)
	out = must[[]tandem.Ticket](t)(s.Route(ctx, req))
	if len(out) != 1 || out[0].ID != "t1" || out[0].AgentID != "a2" {
		t.Fatalf("after the skip expired: %+v", out)
	}
	// Limit.
	for i := range 5 {
		must[tandem.Ticket](t)(s.CreateTicket(ctx, mkTicket(fmt.Sprintf("u%d", i), fmt.Sprintf("cu%d", i), 0, T0.Add(time.Hour)), "n"))
	}
	check(t, s.OpenSession(ctx, "a3", "s3", "n", req.Now))
	req.Limit = 2
	if out := must[[]tandem.Ticket](t)(s.Route(ctx, req)); len(out) != 2 {
		t.Fatalf("limit 2 offered %d", len(out))
	}
	trs := must[[]handoff.Transition](t)(s.Transitions(ctx, handoff.TransitionFilter{TicketID: "t2"}))
	if reasons(trs) != ">queued:escalated queued>offered:route" || trs[1].AgentID != "a1" || trs[1].Node != "n" {
		t.Fatalf("route transitions = %+v", trs)
	}
}

// testConcurrentRoute hammers Route and claims from many goroutines; the
// invariants (checked by Run) must hold and every ticket must end held once.
func testConcurrentRoute(t *testing.T, s handoff.Store) {
	const agents, tickets = 6, 60
	for i := range agents {
		id := fmt.Sprintf("a%d", i)
		check(t, s.CreateAgent(ctx, mkAgent(id, id+"@example.com", 1+i%3)))
		check(t, s.OpenSession(ctx, id, "s"+id, "n", T0))
	}
	for i := range tickets {
		must[tandem.Ticket](t)(s.CreateTicket(ctx, mkTicket(fmt.Sprintf("t%02d", i), fmt.Sprintf("c%d", i), i%4, T0.Add(time.Duration(i)*time.Millisecond)), "n"))
	}
	req := handoff.RouteRequest{Now: T0, LiveAfter: T0, OfferExpires: T0.Add(time.Minute), Limit: 7, Node: "n"}
	var wg sync.WaitGroup
	var mu sync.Mutex
	offered := map[string]int{}
	errs := make(chan error, 100)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				if g%2 == 0 {
					out, err := s.Route(ctx, req)
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					for _, tk := range out {
						offered[tk.ID]++
					}
					mu.Unlock()
					continue
				}
				// Claims race with routing for the same tickets and capacity.
				tk := fmt.Sprintf("t%02d", (g*7)%tickets)
				_, err := s.Apply(ctx, handoff.Change{TicketID: tk, Now: T0, From: []tandem.TicketState{tandem.TicketQueued}, To: tandem.TicketAssigned,
					Agent: fmt.Sprintf("a%d", g%agents), LiveAfter: T0, Reason: handoff.ReasonClaim})
				if err != nil && tandem.ErrorCode(err) != tandem.ECONFLICT {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for id, n := range offered {
		if n != 1 {
			t.Errorf("ticket %s offered %d times", id, n)
		}
	}
	capacity := 0
	for i := range agents {
		capacity += 1 + i%3
	}
	held := must[[]tandem.Ticket](t)(s.Tickets(ctx, handoff.TicketFilter{States: []tandem.TicketState{tandem.TicketOffered, tandem.TicketAssigned}}))
	if len(held) != capacity {
		t.Errorf("%d tickets held, want every slot (%d) filled", len(held), capacity)
	}
}

func testSweepQueries(t *testing.T, s handoff.Store) {
	check(t, s.CreateAgent(ctx, mkAgent("a1", "a1@example.com", 3)))
	check(t, s.CreateAgent(ctx, mkAgent("a2", "a2@example.com", 3)))
	check(t, s.OpenSession(ctx, "a1", "s1", "n", T0))
	check(t, s.OpenSession(ctx, "a2", "s2", "n", T0))
	for i := range 3 {
		must[tandem.Ticket](t)(s.CreateTicket(ctx, mkTicket(fmt.Sprintf("t%d", i), fmt.Sprintf("c%d", i), 0, T0), "n"))
	}
	offer := func(id, agent string, exp time.Duration) {
		must[tandem.Ticket](t)(s.Apply(ctx, handoff.Change{TicketID: id, Now: T0, From: []tandem.TicketState{tandem.TicketQueued},
			To: tandem.TicketOffered, Agent: agent, OfferExpires: T0.Add(exp)}))
	}
	offer("t0", "a1", 30*time.Second)
	offer("t1", "a1", 20*time.Second)
	offer("t2", "a2", 40*time.Second)
	exp := must[[]tandem.Ticket](t)(s.ExpiredOffers(ctx, T0.Add(30*time.Second), 10))
	if len(exp) != 2 || exp[0].ID != "t1" || exp[1].ID != "t0" {
		t.Fatalf("expired = %v", exp)
	}
	if n := len(must[[]tandem.Ticket](t)(s.ExpiredOffers(ctx, T0.Add(time.Hour), 1))); n != 1 {
		t.Fatalf("limit: %d", n)
	}
	// a1 disconnects at +10s; orphans once its last sign of life is before the cutoff.
	check(t, s.CloseSession(ctx, "a1", "s1", T0.Add(10*time.Second)))
	if o := must[[]tandem.Ticket](t)(s.Orphans(ctx, T0, T0.Add(10*time.Second), 10)); len(o) != 0 {
		t.Fatalf("orphans before the cutoff: %v", o)
	}
	o := must[[]tandem.Ticket](t)(s.Orphans(ctx, T0, T0.Add(11*time.Second), 10))
	if len(o) != 2 || o[0].ID != "t0" || o[1].ID != "t1" {
		t.Fatalf("orphans = %v", o)
	}
	// a2's session is stale (no heartbeat since T0): orphaned too once
	// liveAfter passes T0 and the cutoff passes its last heartbeat.
	o = must[[]tandem.Ticket](t)(s.Orphans(ctx, T0.Add(time.Second), T0.Add(11*time.Second), 10))
	if len(o) != 3 {
		t.Fatalf("orphans with a stale session = %v", o)
	}

	// Handle times, newest first.
	for i, d := range []time.Duration{2 * time.Minute, 5 * time.Minute} {
		id := fmt.Sprintf("t%d", i)
		must[tandem.Ticket](t)(s.Apply(ctx, handoff.Change{TicketID: id, Now: T0.Add(time.Second), From: []tandem.TicketState{tandem.TicketOffered},
			Holder: "a1", To: tandem.TicketAssigned, Agent: "a1"}))
		must[tandem.Ticket](t)(s.Apply(ctx, handoff.Change{TicketID: id, Now: T0.Add(time.Second + d + time.Duration(i)*time.Hour),
			From: []tandem.TicketState{tandem.TicketAssigned}, Holder: "a1", To: tandem.TicketResolved}))
	}
	hts := must[[]time.Duration](t)(s.HandleTimes(ctx, 10))
	if len(hts) != 2 || hts[0] != 5*time.Minute+time.Hour || hts[1] != 2*time.Minute {
		t.Fatalf("handle times = %v", hts)
	}
	if hts := must[[]time.Duration](t)(s.HandleTimes(ctx, 1)); len(hts) != 1 {
		t.Fatalf("handle times limit = %v", hts)
	}
}

// ---- engine rules ----

func testRouteSkillsLanguage(t *testing.T, s handoff.Store) {
	h := newHarness(t, s)
	a1, _ := h.online("ann skills=billing langs=en")
	a2, _ := h.online("bob skills=billing,tech langs=de")
	a3, _ := h.online("cat skills=tech langs=en,de")
	t1 := h.escalate("skills=billing,tech lang=de-AT")
	t2 := h.escalate("skills=TECH lang=en")
	t3 := h.escalate("skills=billing lang=fr")
	t4 := h.escalate("skills=billing lang=en_GB")
	h.tick()
	h.want(t1.ID, tandem.TicketOffered, a2.ID) // only bob has both skills and German
	h.want(t2.ID, tandem.TicketOffered, a3.ID) // only cat has tech and English
	h.want(t3.ID, tandem.TicketQueued, "")     // nobody speaks French
	h.want(t4.ID, tandem.TicketOffered, a1.ID) // "en" serves "en-gb"
}

func testLeastLoadedLongestIdle(t *testing.T, s handoff.Store) {
	h := newHarness(t, s)
	ann, _ := h.online("ann max=3") // created first: idle longest
	h.advance(time.Second)
	bob, _ := h.online("bob max=3")
	h.advance(time.Second)

	// Equal load: the agent idle longest (ann) gets the first ticket.
	t1 := h.escalate("")
	h.tick()
	h.want(t1.ID, tandem.TicketOffered, ann.ID)
	h.accept(ann.ID, t1.ID)

	// Least loaded wins over idle time: bob (0) before ann (1).
	h.advance(time.Second)
	t2 := h.escalate("")
	h.tick()
	h.want(t2.ID, tandem.TicketOffered, bob.ID)
	h.accept(bob.ID, t2.ID)

	// Both at 1; bob received work later, so ann has been idle longer.
	h.advance(time.Second)
	t3 := h.escalate("")
	h.tick()
	h.want(t3.ID, tandem.TicketOffered, ann.ID)
	h.accept(ann.ID, t3.ID)

	// Ann 2, bob 1: bob. Then bob finishes a chat: bob 1 (idle since now),
	// ann 2: least loaded still beats idle time.
	h.advance(time.Second)
	must[tandem.Ticket](t)(h.e.Resolve(ctx, handoff.Actor{AgentID: bob.ID}, t2.ID))
	h.advance(time.Second)
	t4 := h.escalate("")
	t5 := h.escalate("")
	h.tick()
	h.want(t4.ID, tandem.TicketOffered, bob.ID) // bob 0 -> 1
	h.want(t5.ID, tandem.TicketOffered, bob.ID) // bob 1 < ann 2
	if h.load(ann.ID) != 2 || h.load(bob.ID) != 2 {
		t.Fatalf("loads = %d, %d", h.load(ann.ID), h.load(bob.ID))
	}
}

func testQueueOrder(t *testing.T, s handoff.Store) {
	h := newHarness(t, s)
	ann, _ := h.online("ann max=1")
	busy := h.escalate("")
	h.tick()
	h.accept(ann.ID, busy.ID)

	low := h.escalate("reason=low_confidence")
	h.advance(time.Second)
	asked := h.escalate("reason=customer_requested")
	h.advance(time.Second)
	vip := h.escalate("reason=low_confidence vip")
	h.advance(time.Second)
	asked2 := h.escalate("reason=customer_requested")
	h.advance(time.Second)
	upset := h.escalate("reason=negative_sentiment")
	if vip.Priority <= upset.Priority || upset.Priority <= asked.Priority || asked.Priority <= low.Priority {
		t.Fatalf("priorities: vip %d, sentiment %d, requested %d, low confidence %d", vip.Priority, upset.Priority, asked.Priority, low.Priority)
	}
	want := []string{vip.ID, upset.ID, asked.ID, asked2.ID, low.ID}
	q := must[[]handoff.QueuedTicket](t)(h.e.Queue(ctx, 0))
	for i, qt := range q {
		if qt.Ticket.ID != want[i] || qt.Queue.Position != i+1 {
			t.Fatalf("queue[%d] = %s at %d, want %s at %d", i, qt.Ticket.ID, qt.Queue.Position, want[i], i+1)
		}
	}
	// Served in that order as ann frees up.
	cur := busy.ID
	for _, id := range want {
		must[tandem.Ticket](t)(h.e.Resolve(ctx, handoff.Actor{AgentID: ann.ID}, cur))
		h.advance(time.Second)
		h.tick()
		h.want(id, tandem.TicketOffered, ann.ID)
		h.accept(ann.ID, id)
		cur = id
	}
}

func testHeadOfLine(t *testing.T, s handoff.Store) {
	h := newHarness(t, s)
	cat, _ := h.online("cat skills=tech")
	urgent := h.escalate("skills=billing vip")
	normal := h.escalate("skills=tech")
	h.tick()
	h.want(urgent.ID, tandem.TicketQueued, "")
	h.want(normal.ID, tandem.TicketOffered, cat.ID)
}

func testSticky(t *testing.T, s handoff.Store) {
	h := newHarness(t, s)
	ann, _ := h.online("ann max=3")
	h.advance(time.Second)
	bob, _ := h.online("bob max=3")
	first := h.escalate("customer=alice conv=c-first")
	h.tick()
	h.want(first.ID, tandem.TicketOffered, ann.ID)
	h.accept(ann.ID, first.ID)
	must[tandem.Ticket](t)(h.e.Resolve(ctx, handoff.Actor{AgentID: ann.ID}, first.ID))
	// Give ann more load than bob, so least-loaded alone would pick bob.
	other := h.escalate("customer=zoe")
	must[tandem.Ticket](t)(h.e.Claim(ctx, handoff.Actor{AgentID: ann.ID}, other.ID))

	h.advance(time.Minute)
	again := h.escalate("customer=alice conv=c-again")
	if again.LastAgentID != ann.ID {
		t.Fatalf("LastAgentID = %q, want ann", again.LastAgentID)
	}
	h.tick()
	h.want(again.ID, tandem.TicketOffered, ann.ID) // sticky beats least loaded
	h.accept(ann.ID, again.ID)
	must[tandem.Ticket](t)(h.e.Resolve(ctx, handoff.Actor{AgentID: ann.ID}, again.ID))

	// Ann away: alice's next ticket goes to bob.
	must[handoff.AgentStatus](t)(h.e.SetPresence(ctx, ann.ID, tandem.PresenceAway))
	third := h.escalate("customer=alice conv=c-third")
	h.tick()
	h.want(third.ID, tandem.TicketOffered, bob.ID)
}

func testOfferTimeout(t *testing.T, s handoff.Store) {
	h := newHarness(t, s)
	ann, _ := h.online("ann")
	h.advance(time.Second)
	bob, _ := h.online("bob")
	tk := h.escalate("")
	h.tick()
	h.want(tk.ID, tandem.TicketOffered, ann.ID)

	h.advance(29 * time.Second)
	h.tick()
	h.want(tk.ID, tandem.TicketOffered, ann.ID) // not yet

	h.advance(time.Second) // exactly OfferTimeout
	h.tick()
	h.want(tk.ID, tandem.TicketOffered, bob.ID) // expired, next agent in the same tick
	h.flush()
	if ev := h.rec.Events(handoff.EventOfferExpired, tk.ID); len(ev) != 1 || ev[0].AgentID != ann.ID {
		t.Fatalf("offer expired events = %+v", ev)
	}
	_, err := h.e.Accept(ctx, handoff.Actor{AgentID: ann.ID}, tk.ID)
	wantCode(t, err, tandem.ECONFLICT) // accept after the timeout

	// Bob times out too; both are skipped, so the ticket waits.
	h.advance(30 * time.Second)
	h.tick()
	h.want(tk.ID, tandem.TicketQueued, "")
	if h.load(ann.ID) != 0 || h.load(bob.ID) != 0 {
		t.Fatal("expired offers must release capacity")
	}
	// An agent who timed out may still claim it... but first, once ann's skip
	// expires (SkipFor after her timeout) routing offers it to her again.
	h.advance(time.Minute + 29*time.Second) // ann skipped until +30s+2m = now+1s
	h.tick()
	h.want(tk.ID, tandem.TicketQueued, "")
	h.advance(time.Second)
	h.tick()
	h.want(tk.ID, tandem.TicketOffered, ann.ID)
	h.accept(ann.ID, tk.ID)

	trs := must[[]handoff.Transition](t)(h.e.Transitions(ctx, tk.ID))
	want := ">queued:escalated queued>offered:route offered>queued:offer_timeout queued>offered:route offered>queued:offer_timeout queued>offered:route offered>assigned:accept"
	if got := reasons(trs); got != want {
		t.Fatalf("transitions:\n got %s\nwant %s", got, want)
	}
	for i := 1; i < len(trs); i++ {
		if trs[i].At.Before(trs[i-1].At) || trs[i].Seq <= trs[i-1].Seq {
			t.Fatalf("transitions out of order: %+v", trs)
		}
	}
}

func testDecline(t *testing.T, s handoff.Store) {
	h := newHarness(t, s)
	ann, _ := h.online("ann")
	h.advance(time.Second)
	bob, _ := h.online("bob")
	tk := h.escalate("")
	h.tick()
	h.want(tk.ID, tandem.TicketOffered, ann.ID)
	_, err := h.e.Decline(ctx, handoff.Actor{AgentID: bob.ID}, tk.ID)
	wantCode(t, err, tandem.ECONFLICT) // not bob's offer
	must[tandem.Ticket](t)(h.e.Decline(ctx, handoff.Actor{AgentID: ann.ID}, tk.ID))
	h.want(tk.ID, tandem.TicketQueued, "")
	h.tick()
	h.want(tk.ID, tandem.TicketOffered, bob.ID)
	_, err = h.e.Accept(ctx, handoff.Actor{AgentID: ann.ID}, tk.ID)
	wantCode(t, err, tandem.ECONFLICT)
	must[tandem.Ticket](t)(h.e.Decline(ctx, handoff.Actor{AgentID: bob.ID}, tk.ID))
	h.tick()
	h.want(tk.ID, tandem.TicketQueued, "") // both declined: it waits (or is claimed)
	h.claim(ann.ID, tk.ID)                 // claims ignore skips
	h.want(tk.ID, tandem.TicketAssigned, ann.ID)
	h.flush()
	if n := len(h.rec.Events(handoff.EventOfferDeclined, tk.ID)); n != 2 {
		t.Fatalf("%d decline events", n)
	}
}

func testAcceptErrors(t *testing.T, s handoff.Store) {
	h := newHarness(t, s)
	ann, _ := h.online("ann")
	bob, _ := h.online("bob")
	tk := h.escalate("")
	h.tick()
	holder := h.ticket(tk.ID).AgentID
	other := bob.ID
	if holder == bob.ID {
		other = ann.ID
	}
	_, err := h.e.Accept(ctx, handoff.Actor{AgentID: other}, tk.ID)
	wantCode(t, err, tandem.ECONFLICT)
	_, err = h.e.Accept(ctx, handoff.Actor{AgentID: holder}, "nope")
	wantCode(t, err, tandem.ENOTFOUND)
	// Past the expiry but before a sweep: refused, state unchanged.
	h.advance(31 * time.Second)
	_, err = h.e.Accept(ctx, handoff.Actor{AgentID: holder}, tk.ID)
	wantCode(t, err, tandem.ECONFLICT)
	if !strings.Contains(tandem.ErrorMessage(err), "expired") {
		t.Fatalf("message %q should say the offer expired", tandem.ErrorMessage(err))
	}
	h.want(tk.ID, tandem.TicketOffered, holder)
	h.tick()
	next := h.ticket(tk.ID).AgentID
	if next != other {
		t.Fatalf("after timeout offered to %q, want %q", next, other)
	}
	h.accept(next, tk.ID)
	_, err = h.e.Accept(ctx, handoff.Actor{AgentID: next}, tk.ID)
	wantCode(t, err, tandem.ECONFLICT) // double accept
	if !strings.Contains(tandem.ErrorMessage(err), "already accepted") {
		t.Fatalf("message %q", tandem.ErrorMessage(err))
	}
	h.want(tk.ID, tandem.TicketAssigned, next)
	if h.load(next) != 1 || h.load(holder) != 0 {
		t.Fatalf("loads after double accept: %d %d", h.load(next), h.load(holder))
	}
}

func testClaim(t *testing.T, s handoff.Store) {
	h := newHarness(t, s)
	ann, _ := h.online("ann max=1")
	must[handoff.AgentStatus](t)(h.e.SetPresence(ctx, ann.ID, tandem.PresenceAway)) // no offers, but may claim
	t1 := h.escalate("skills=legal lang=ja")
	t2 := h.escalate("")
	h.tick()
	h.want(t1.ID, tandem.TicketQueued, "")
	got := h.claim(ann.ID, t1.ID) // skills and language do not limit claims
	if got.State != tandem.TicketAssigned || got.AgentID != ann.ID || !got.OfferedAt.IsZero() {
		t.Fatalf("claimed = %+v", got)
	}
	_, err := h.e.Claim(ctx, handoff.Actor{AgentID: ann.ID}, t2.ID)
	wantCode(t, err, tandem.ECONFLICT) // at capacity
	if !strings.Contains(tandem.ErrorMessage(err), "capacity") {
		t.Fatalf("message %q", tandem.ErrorMessage(err))
	}
	_, err = h.e.Claim(ctx, handoff.Actor{AgentID: ann.ID}, t1.ID)
	wantCode(t, err, tandem.ECONFLICT) // already hers
	bob := h.agent("bob")              // never connected
	_, err = h.e.Claim(ctx, handoff.Actor{AgentID: bob.ID}, t2.ID)
	wantCode(t, err, tandem.ECONFLICT)
	if !strings.Contains(tandem.ErrorMessage(err), "offline") {
		t.Fatalf("message %q", tandem.ErrorMessage(err))
	}
	h.want(t2.ID, tandem.TicketQueued, "")
	h.disconnect(ann.ID)
	h.flush()
	if ev := h.rec.Events(handoff.EventAssigned, t1.ID); len(ev) != 1 || ev[0].AgentName != "Ann" || ev[0].Reason != handoff.ReasonClaim {
		t.Fatalf("assigned events = %+v", ev)
	}
}

func testTransfer(t *testing.T, s handoff.Store) {
	h := newHarness(t, s)
	ann, _ := h.online("ann")
	bob, _ := h.online("bob")
	cat := h.agent("cat") // offline
	dan, _ := h.online("dan max=1")
	admin, _ := h.online("root role=admin")
	busy := h.escalate("")
	tk := h.escalate("")
	h.claim(dan.ID, busy.ID)
	h.claim(ann.ID, tk.ID)

	for _, c := range []struct {
		actor handoff.Actor
		to    string
		code  string
	}{
		{handoff.Actor{AgentID: bob.ID}, bob.ID, tandem.EFORBIDDEN}, // not bob's ticket
		{handoff.Actor{AgentID: ann.ID}, cat.ID, tandem.ECONFLICT},  // cat is offline
		{handoff.Actor{AgentID: ann.ID}, dan.ID, tandem.ECONFLICT},  // dan is at capacity
		{handoff.Actor{AgentID: ann.ID}, "nope", tandem.ENOTFOUND},  // unknown agent
		{handoff.Actor{AgentID: ann.ID}, ann.ID, tandem.EINVALID},   // to herself
	} {
		_, err := h.e.Transfer(ctx, c.actor, tk.ID, c.to)
		wantCode(t, err, c.code)
		h.want(tk.ID, tandem.TicketAssigned, ann.ID) // nothing changed
		if h.load(ann.ID) != 1 {
			t.Fatalf("ann load %d after failed transfer", h.load(ann.ID))
		}
	}
	_, err := h.e.Transfer(ctx, handoff.Actor{AgentID: ann.ID}, tk.ID, cat.ID)
	if !strings.Contains(tandem.ErrorMessage(err), "offline") {
		t.Fatalf("message %q", tandem.ErrorMessage(err))
	}

	got := must[tandem.Ticket](t)(h.e.Transfer(ctx, handoff.Actor{AgentID: ann.ID}, tk.ID, bob.ID))
	if got.State != tandem.TicketOffered || got.AgentID != bob.ID {
		t.Fatalf("transferred = %+v", got)
	}
	if h.load(ann.ID) != 0 || h.load(bob.ID) != 1 {
		t.Fatalf("loads = %d, %d", h.load(ann.ID), h.load(bob.ID))
	}
	h.accept(bob.ID, tk.ID)
	// An admin may transfer a ticket held by someone else.
	must[tandem.Ticket](t)(h.e.Transfer(ctx, handoff.Actor{AgentID: admin.ID, Admin: true}, tk.ID, ann.ID))
	h.want(tk.ID, tandem.TicketOffered, ann.ID)
	// Ann declines: queued; bob (who handed it away) is skipped; routing
	// picks the admin (who is an agent too) rather than bob.
	must[tandem.Ticket](t)(h.e.Decline(ctx, handoff.Actor{AgentID: ann.ID}, tk.ID))
	h.tick()
	h.want(tk.ID, tandem.TicketOffered, admin.ID)
	h.flush()
	ev := h.rec.Events(handoff.EventTransferred, tk.ID)
	if len(ev) != 2 || ev[0].PrevAgentID != ann.ID || ev[0].AgentID != bob.ID {
		t.Fatalf("transfer events = %+v", ev)
	}
}

func testTransferGroup(t *testing.T, s handoff.Store) {
	h := newHarness(t, s)
	ann, _ := h.online("ann skills=billing,tech")
	h.advance(time.Second)
	bob, _ := h.online("bob skills=tech")
	tk := h.escalate("")
	h.tick()
	h.want(tk.ID, tandem.TicketOffered, ann.ID)
	h.accept(ann.ID, tk.ID)
	_, err := h.e.TransferToGroup(ctx, handoff.Actor{AgentID: ann.ID}, tk.ID, nil)
	wantCode(t, err, tandem.EINVALID)
	_, err = h.e.TransferToGroup(ctx, handoff.Actor{AgentID: bob.ID}, tk.ID, []string{"tech"})
	wantCode(t, err, tandem.EFORBIDDEN)
	got := must[tandem.Ticket](t)(h.e.TransferToGroup(ctx, handoff.Actor{AgentID: ann.ID}, tk.ID, []string{"Tech"}))
	if got.State != tandem.TicketQueued || !slices.Equal(got.Skills, []string{"tech"}) {
		t.Fatalf("transferred = %+v", got)
	}
	h.tick()
	h.want(tk.ID, tandem.TicketOffered, bob.ID) // ann has tech too but handed it away
}

func testReturnAndResolve(t *testing.T, s handoff.Store) {
	h := newHarness(t, s)
	ann, _ := h.online("ann")
	bob, _ := h.online("bob")
	admin := h.agent("root role=admin")
	t1 := h.escalate("conv=c1")
	t2 := h.escalate("conv=c2")
	h.claim(ann.ID, t1.ID)
	h.claim(ann.ID, t2.ID)

	_, err := h.e.ReturnToBot(ctx, handoff.Actor{AgentID: bob.ID}, t1.ID)
	wantCode(t, err, tandem.EFORBIDDEN)
	h.advance(3 * time.Minute)
	got := must[tandem.Ticket](t)(h.e.ReturnToBot(ctx, handoff.Actor{AgentID: ann.ID}, t1.ID))
	if got.State != tandem.TicketReturned || !got.ClosedAt.Equal(T0.Add(3*time.Minute)) || got.AgentID != ann.ID {
		t.Fatalf("returned = %+v", got)
	}
	_, err = h.e.ReturnToBot(ctx, handoff.Actor{AgentID: ann.ID}, t1.ID)
	wantCode(t, err, tandem.ECONFLICT) // already returned
	_, err = h.e.OpenTicket(ctx, "c1")
	wantCode(t, err, tandem.ENOTFOUND) // the bot has the conversation
	if h.load(ann.ID) != 1 {
		t.Fatalf("load after return = %d", h.load(ann.ID))
	}
	// An admin closes another agent's ticket.
	must[tandem.Ticket](t)(h.e.Resolve(ctx, handoff.Actor{AgentID: admin.ID, Admin: true}, t2.ID))
	h.want(t2.ID, tandem.TicketResolved, ann.ID)
	_, err = h.e.Resolve(ctx, handoff.Actor{AgentID: ann.ID}, t2.ID)
	wantCode(t, err, tandem.ECONFLICT)
	// The customer asks for a person again: a new ticket, sticky to ann.
	again := h.escalate("conv=c1 customer=cust-1")
	if again.ID == t1.ID || again.LastAgentID != ann.ID {
		t.Fatalf("re-escalation = %+v", again)
	}
	h.flush()
	if ev := h.rec.Events(handoff.EventReturned, t1.ID); len(ev) != 1 || ev[0].PrevAgentID != ann.ID {
		t.Fatalf("returned events = %+v", ev)
	}
	if ev := h.rec.Events(handoff.EventClosed, t2.ID); len(ev) != 1 || ev[0].Ticket.State != tandem.TicketResolved {
		t.Fatalf("closed events = %+v", ev)
	}
}

func testCancel(t *testing.T, s handoff.Store) {
	h := newHarness(t, s)
	ann, _ := h.online("ann")
	t1 := h.escalate("conv=c1")
	h.tick()
	h.want(t1.ID, tandem.TicketOffered, ann.ID)
	_, err := h.e.Cancel(ctx, "c1", tandem.TicketResolved)
	wantCode(t, err, tandem.EINVALID)
	got := must[tandem.Ticket](t)(h.e.Cancel(ctx, "c1", tandem.TicketReturned)) // the customer goes back to the bot
	if got.State != tandem.TicketReturned || h.load(ann.ID) != 0 {
		t.Fatalf("cancelled = %+v, load %d", got, h.load(ann.ID))
	}
	_, err = h.e.Cancel(ctx, "c1", tandem.TicketAbandoned)
	wantCode(t, err, tandem.ENOTFOUND)
	t2 := h.escalate("conv=c2")
	h.tick()
	h.accept(ann.ID, t2.ID)
	must[tandem.Ticket](t)(h.e.Cancel(ctx, "c2", tandem.TicketAbandoned))
	h.want(t2.ID, tandem.TicketAbandoned, ann.ID)
	_, err = h.e.Resolve(ctx, handoff.Actor{AgentID: ann.ID}, t2.ID)
	wantCode(t, err, tandem.ECONFLICT)
}

func testDisconnectGrace(t *testing.T, s handoff.Store) {
	h := newHarness(t, s)
	ann, _ := h.online("ann max=3")
	t1 := h.escalate("conv=c1")
	t2 := h.escalate("conv=c2")
	h.tick()
	h.accept(ann.ID, t1.ID)
	h.accept(ann.ID, t2.ID)
	check(t, h.e.SetPassword(ctx, ann.ID, "another-password")) // unrelated write
	bob, _ := h.online("bob max=3")

	h.disconnect(ann.ID)
	st := must[handoff.AgentStatus](t)(h.e.AgentStatus(ctx, ann.ID))
	if st.Connected || st.Presence != tandem.PresenceOffline || st.Load != 2 {
		t.Fatalf("after disconnect: %+v", st)
	}
	// Within the grace period nothing moves (bob keeps heartbeating).
	for range 2 {
		h.advance(30 * time.Second)
		h.tick()
		h.want(t1.ID, tandem.TicketAssigned, ann.ID)
	}
	// Grace over: both go back to the queue and on to bob, nothing lost.
	h.advance(time.Second)
	h.tick()
	for _, id := range []string{t1.ID, t2.ID} {
		tk := h.want(id, tandem.TicketOffered, bob.ID)
		if tk.LastAgentID != ann.ID || tk.ConversationID == "" {
			t.Fatalf("requeued ticket = %+v", tk)
		}
		trs := must[[]handoff.Transition](t)(h.e.Transitions(ctx, id))
		if got := reasons(trs); got != ">queued:escalated queued>offered:route offered>assigned:accept assigned>queued:disconnect queued>offered:route" {
			t.Fatalf("transitions = %s", got)
		}
	}
	if h.load(ann.ID) != 0 {
		t.Fatalf("ann load = %d", h.load(ann.ID))
	}
	h.flush()
	if ev := h.rec.Events(handoff.EventRequeued, t1.ID); len(ev) != 1 || ev[0].PrevAgentID != ann.ID || ev[0].Reason != handoff.ReasonDisconnect {
		t.Fatalf("requeued events = %+v", ev)
	}
	// When ann reconnects, she has nothing; her former customers may stick
	// to her on their next escalation.
	h.connect(ann.ID)
	if ts := must[[]tandem.Ticket](t)(h.e.AgentTickets(ctx, ann.ID)); len(ts) != 0 {
		t.Fatalf("ann still holds %v", ts)
	}
}

func testReconnectWithinGrace(t *testing.T, s handoff.Store) {
	h := newHarness(t, s)
	ann, _ := h.online("ann")
	tk := h.escalate("")
	h.tick()
	h.accept(ann.ID, tk.ID)
	h.disconnect(ann.ID)
	h.advance(50 * time.Second)
	h.tick()
	h.connect(ann.ID) // page reload
	for range 10 {
		h.advance(20 * time.Second)
		h.tick()
	}
	h.want(tk.ID, tandem.TicketAssigned, ann.ID)
	// A heartbeat for a session the store forgot (pruned) recreates it.
	check(t, h.e.Heartbeat(ctx, ann.ID, "ses_unknown"))
	_, _, err := h.e.Connect(ctx, "nope")
	wantCode(t, err, tandem.ENOTFOUND)
	wantCode(t, h.e.Heartbeat(ctx, "nope", "x"), tandem.ENOTFOUND)
}

func testHeartbeatTimeout(t *testing.T, s handoff.Store) {
	h := newHarness(t, s)
	ann, _ := h.online("ann")
	tk := h.escalate("")
	h.tick()
	h.accept(ann.ID, tk.ID)
	h.crash(ann.ID) // her node dies: no Disconnect, no heartbeats
	bob, _ := h.online("bob")
	h.advance(46 * time.Second) // ann's session is dead, grace runs from her last heartbeat (T0)
	if st := must[handoff.AgentStatus](t)(h.e.AgentStatus(ctx, ann.ID)); st.Connected {
		t.Fatal("ann should count as disconnected without heartbeats")
	}
	t2 := h.escalate("")
	h.tick()
	h.want(t2.ID, tandem.TicketOffered, bob.ID) // ann gets no new work
	h.want(tk.ID, tandem.TicketAssigned, ann.ID)
	h.advance(15 * time.Second) // T0+61s
	h.tick()
	h.want(tk.ID, tandem.TicketOffered, bob.ID)
}

func testPresenceAway(t *testing.T, s handoff.Store) {
	h := newHarness(t, s)
	ann, _ := h.online("ann")
	h.advance(time.Second)
	bob, _ := h.online("bob")
	tk := h.escalate("")
	h.tick()
	h.want(tk.ID, tandem.TicketOffered, ann.ID)
	st := must[handoff.AgentStatus](t)(h.e.SetPresence(ctx, ann.ID, tandem.PresenceAway))
	if st.Presence != tandem.PresenceAway || !st.Connected || st.Load != 0 {
		t.Fatalf("away status = %+v", st)
	}
	h.want(tk.ID, tandem.TicketQueued, "") // pending offer withdrawn at once
	h.tick()
	h.want(tk.ID, tandem.TicketOffered, bob.ID)
	_, err := h.e.SetPresence(ctx, ann.ID, "busy")
	wantCode(t, err, tandem.EINVALID)
	must[handoff.AgentStatus](t)(h.e.SetPresence(ctx, ann.ID, tandem.PresenceOnline))
	t2 := h.escalate("")
	h.tick()
	h.want(t2.ID, tandem.TicketOffered, ann.ID) // not skipped: going away is not declining
	h.flush()
	var seen []string
	for _, ev := range h.rec.Events(handoff.EventPresence, "") {
		if ev.AgentID == ann.ID {
			seen = append(seen, string(ev.Agent.Presence))
		}
	}
	if strings.Join(seen, ",") != "online,away,online" {
		t.Fatalf("ann presence events = %v", seen)
	}
}

func testNobodyOnline(t *testing.T, s handoff.Store) {
	h := newHarness(t, s)
	ann := h.agent("ann")
	tk, q, err := h.e.Escalate(ctx, tandem.Conversation{ID: "c1", Customer: tandem.Customer{ID: "alice"}}, tandem.Escalation{Reason: tandem.EscalateButton})
	check(t, err)
	if !q.NobodyOnline || q.Position != 1 || q.AgentsOnline != 0 {
		t.Fatalf("queue info = %+v", q)
	}
	h.flush()
	if ev := h.rec.Events(handoff.EventNobodyOnline, tk.ID); len(ev) != 1 || !ev[0].Queue.NobodyOnline {
		t.Fatalf("nobody-online events = %+v", ev)
	}
	for _, bad := range []string{"", "not an address", "a@b", "12345", "x@y.com\nBcc: z", strings.Repeat("9", 20)} {
		_, err := h.e.LeaveContact(ctx, "c1", bad)
		wantCode(t, err, tandem.EINVALID)
	}
	_, err = h.e.LeaveContact(ctx, "c-none", "alice@example.com")
	wantCode(t, err, tandem.ENOTFOUND)
	got := must[tandem.Ticket](t)(h.e.LeaveContact(ctx, "c1", " alice@example.com "))
	if got.ContactAddress != "alice@example.com" || got.State != tandem.TicketQueued {
		t.Fatalf("after contact: %+v", got)
	}
	must[tandem.Ticket](t)(h.e.LeaveContact(ctx, "c1", "+44 (20) 7946-0958"))
	h.advance(10 * time.Minute)
	h.tick()
	h.want(tk.ID, tandem.TicketQueued, "") // stays queued
	h.connect(ann.ID)
	h.tick()
	got = h.want(tk.ID, tandem.TicketOffered, ann.ID)
	if got.ContactAddress != "+44 (20) 7946-0958" {
		t.Fatalf("contact lost: %+v", got)
	}
}

func testQueuePositions(t *testing.T, s handoff.Store) {
	h := newHarness(t, s, func(c *handoff.Config) { c.DefaultHandleTime = 4 * time.Minute })
	ann, _ := h.online("ann max=2")
	var ts []tandem.Ticket
	for i := range 5 {
		ts = append(ts, h.escalate(fmt.Sprintf("conv=c%d", i)))
		h.advance(time.Second)
	}
	// Before routing: 2 free slots, capacity 2, 4 min per chat.
	q := must[[]handoff.QueuedTicket](t)(h.e.Queue(ctx, 0))
	wantWait := []time.Duration{0, 0, 2 * time.Minute, 4 * time.Minute, 6 * time.Minute}
	for i, qt := range q {
		if qt.Queue.Position != i+1 || qt.Queue.EstimatedWait != wantWait[i] || qt.Queue.AgentsOnline != 1 || qt.Queue.NobodyOnline {
			t.Fatalf("queue[%d] = %+v, want position %d wait %v", i, qt.Queue, i+1, wantWait[i])
		}
	}
	h.tick()
	h.accept(ann.ID, ts[0].ID)
	h.accept(ann.ID, ts[1].ID)
	h.flush()
	// Positions after routing: c2 is now first, and was told so.
	pos := must[handoff.QueueInfo](t)(h.e.Position(ctx, ts[2].ID))
	if pos.Position != 1 || pos.EstimatedWait != 2*time.Minute {
		t.Fatalf("position of c2 = %+v", pos)
	}
	h.advance(5 * time.Second)
	h.tick()
	h.flush()
	ev := h.rec.Events(handoff.EventPosition, ts[2].ID)
	if len(ev) == 0 || ev[len(ev)-1].Queue.Position != 1 {
		t.Fatalf("position events for c2 = %+v", ev)
	}
	n := len(h.rec.Events(handoff.EventPosition, ""))
	h.advance(5 * time.Second)
	h.tick()
	h.flush()
	if m := len(h.rec.Events(handoff.EventPosition, "")); m != n {
		t.Fatalf("unchanged positions emitted %d new events", m-n)
	}
	// Handle times feed the estimate: ann resolves c0 after 10 minutes.
	h.advance(10 * time.Minute)
	must[tandem.Ticket](t)(h.e.Resolve(ctx, handoff.Actor{AgentID: ann.ID}, ts[0].ID))
	h.tick() // c2 is offered
	h.advance(5 * time.Second)
	pos = must[handoff.QueueInfo](t)(h.e.Position(ctx, ts[4].ID))
	if pos.Position != 2 || pos.EstimatedWait <= 4*time.Minute {
		t.Fatalf("position of c4 = %+v; the 10-minute chat should lengthen the estimate", pos)
	}
	if p := must[handoff.QueueInfo](t)(h.e.Position(ctx, ts[0].ID)); p.Position != 0 {
		t.Fatalf("position of a closed ticket = %+v", p)
	}
}

func testEscalateIdempotent(t *testing.T, s handoff.Store) {
	h := newHarness(t, s)
	a := h.escalate("conv=c1 reason=negative_sentiment skills=billing lang=DE vip prio=2")
	b := h.escalate("conv=c1")
	if a.ID != b.ID || b.Reason != tandem.EscalateSentiment {
		t.Fatalf("second escalation = %+v, want the open ticket %s", b, a.ID)
	}
	if a.Language != "de" || a.Tier != "vip" || !slices.Equal(a.Skills, []string{"billing"}) || a.Summary.Intent.Name != "refund" ||
		a.Priority != 2+handoff.DefaultReasonPriority[tandem.EscalateSentiment]+100 {
		t.Fatalf("ticket = %+v", a)
	}
	_, _, err := h.e.Escalate(ctx, tandem.Conversation{}, tandem.Escalation{Reason: tandem.EscalateButton})
	wantCode(t, err, tandem.EINVALID)
	_, _, err = h.e.Escalate(ctx, tandem.Conversation{ID: "c2"}, tandem.Escalation{})
	wantCode(t, err, tandem.EINVALID)
	// Concurrent escalations of one conversation yield one ticket.
	var wg sync.WaitGroup
	ids := make([]string, 8)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tk, _, err := h.e.Escalate(ctx, tandem.Conversation{ID: "c-race"}, tandem.Escalation{Reason: tandem.EscalateButton})
			if err != nil {
				t.Error(err)
			}
			ids[i] = tk.ID
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("concurrent escalations gave %v", ids)
		}
	}
}

func testAuthorize(t *testing.T, s handoff.Store) {
	h := newHarness(t, s)
	ann, _ := h.online("ann")
	bob := h.agent("bob")
	admin := h.agent("root role=admin")
	tk := h.escalate("conv=c1")
	h.tick()
	ann1 := handoff.Actor{AgentID: ann.ID}
	must[tandem.Ticket](t)(h.e.Authorize(ctx, ann1, "c1", false)) // offered: may read the transcript
	_, err := h.e.Authorize(ctx, ann1, "c1", true)
	wantCode(t, err, tandem.EFORBIDDEN) // but not write before accepting
	h.accept(ann.ID, tk.ID)
	must[tandem.Ticket](t)(h.e.Authorize(ctx, ann1, "c1", true))
	_, err = h.e.Authorize(ctx, handoff.Actor{AgentID: bob.ID}, "c1", false)
	wantCode(t, err, tandem.EFORBIDDEN)
	must[tandem.Ticket](t)(h.e.Authorize(ctx, handoff.Actor{AgentID: admin.ID, Admin: true}, "c1", true))
	_, err = h.e.Authorize(ctx, ann1, "c-none", false)
	wantCode(t, err, tandem.EFORBIDDEN)
	_, err = h.e.Authorize(ctx, handoff.Actor{AgentID: admin.ID, Admin: true}, "c-none", false)
	wantCode(t, err, tandem.ENOTFOUND)
	must[tandem.Ticket](t)(h.e.Resolve(ctx, ann1, tk.ID))
	_, err = h.e.Authorize(ctx, ann1, "c1", false)
	wantCode(t, err, tandem.EFORBIDDEN) // closed: no longer hers
}

func testAuthenticate(t *testing.T, s handoff.Store) {
	h := newHarness(t, s)
	ann := h.agent("ann")
	got := must[tandem.Agent](t)(h.e.Authenticate(ctx, "ANN@example.com", "password-ann"))
	if got.ID != ann.ID || got.PasswordHash != nil {
		t.Fatalf("authenticated = %+v", got)
	}
	for _, c := range []struct{ email, pw string }{{"ann@example.com", "wrong-password"}, {"nobody@example.com", "password-ann"}, {"", ""}} {
		_, err := h.e.Authenticate(ctx, c.email, c.pw)
		wantCode(t, err, tandem.EUNAUTHORIZED)
	}
	// No password yet: cannot log in until one is set.
	nopw := must[tandem.Agent](t)(h.e.CreateAgent(ctx, tandem.Agent{Email: "nopw@example.com"}, ""))
	if nopw.Role != handoff.RoleAgent || nopw.MaxChats != 3 || nopw.DisplayName != "nopw" {
		t.Fatalf("defaults = %+v", nopw)
	}
	_, err := h.e.Authenticate(ctx, "nopw@example.com", "")
	wantCode(t, err, tandem.EUNAUTHORIZED)
	wantCode(t, h.e.SetPassword(ctx, nopw.ID, "short"), tandem.EINVALID)
	wantCode(t, h.e.SetPassword(ctx, nopw.ID, strings.Repeat("x", 73)), tandem.EINVALID)
	check(t, h.e.SetPassword(ctx, nopw.ID, "long-enough"))
	must[tandem.Agent](t)(h.e.Authenticate(ctx, "nopw@example.com", "long-enough"))
	wantCode(t, h.e.SetPassword(ctx, "nope", "long-enough"), tandem.ENOTFOUND)

	// Validation.
	for _, a := range []tandem.Agent{
		{Email: "not-an-email"}, {Email: "x@example.com", Role: "root"}, {Email: "x@example.com", MaxChats: -1},
		{Email: "x@example.com", MaxChats: handoff.MaxChatsLimit + 1}, {Email: "x@example.com", Skills: []string{"two words"}},
		{Email: "Ann <ann2@example.com>"},
	} {
		_, err := h.e.CreateAgent(ctx, a, "")
		wantCode(t, err, tandem.EINVALID)
	}
	_, err = h.e.CreateAgent(ctx, tandem.Agent{Email: "Ann@Example.com"}, "")
	wantCode(t, err, tandem.ECONFLICT)
	upd := ann
	upd.Skills, upd.MaxChats, upd.DisplayName = []string{"VIP", "billing"}, 7, "Ann Smith"
	got = must[tandem.Agent](t)(h.e.UpdateAgent(ctx, upd))
	if !slices.Equal(got.Skills, []string{"billing", "vip"}) || got.MaxChats != 7 || got.DisplayName != "Ann Smith" || !got.CreatedAt.Equal(ann.CreatedAt) {
		t.Fatalf("updated = %+v", got)
	}
	must[tandem.Agent](t)(h.e.Authenticate(ctx, "ann@example.com", "password-ann")) // password kept
	if as := must[[]tandem.Agent](t)(h.e.Agents(ctx)); len(as) != 2 || as[0].PasswordHash != nil {
		t.Fatalf("agents = %+v", as)
	}
}

func testMetrics(t *testing.T, s handoff.Store) {
	h := newHarness(t, s)
	ann, _ := h.online("ann")
	tk := h.escalate("")
	h.advance(2 * time.Second)
	h.tick()
	h.advance(3 * time.Second)
	h.accept(ann.ID, tk.ID)
	h.advance(7 * time.Minute)
	must[tandem.Ticket](t)(h.e.Resolve(ctx, handoff.Actor{AgentID: ann.ID}, tk.ID))
	mfs, err := h.reg.Gather()
	check(t, err)
	got := map[string]string{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if hg := m.GetHistogram(); hg != nil {
				got[mf.GetName()] = fmt.Sprintf("n=%d sum=%g", hg.GetSampleCount(), hg.GetSampleSum())
			}
		}
	}
	want := map[string]string{
		"tandem_handoff_offer_latency_seconds": "n=1 sum=2",
		"tandem_handoff_wait_seconds":          "n=1 sum=5",
		"tandem_handoff_handle_seconds":        "n=1 sum=420",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	// One registry per engine: registering twice is an error, not a panic.
	_, err = handoff.New(s, handoff.Config{Registerer: h.reg, BcryptCost: 4})
	if err == nil {
		t.Fatal("second engine on the same registry must fail")
	}
	if !errors.Is(err, err) || !strings.Contains(err.Error(), "registered") {
		t.Fatalf("error = %v", err)
	}
}

// testEraseConversation: a conversation's tickets go with their history
// once none is open; an open one refuses the erasure and nothing goes;
// other conversations keep theirs.
func testEraseConversation(t *testing.T, s handoff.Store) {
	h := newHarness(t, s)
	ann, _ := h.online("ann max=3")
	first := h.escalate("conv=erase-me customer=c-erase")
	h.tick()
	h.accept(ann.ID, first.ID)
	must[tandem.Ticket](t)(h.e.Resolve(ctx, handoff.Actor{AgentID: ann.ID}, first.ID))
	second := h.escalate("conv=erase-me customer=c-erase")
	other := h.escalate("conv=keep-me")

	_, err := h.e.EraseConversation(ctx, "erase-me")
	wantCode(t, err, tandem.ECONFLICT)
	h.ticket(first.ID) // still there
	must[tandem.Ticket](t)(h.e.Cancel(ctx, "erase-me", tandem.TicketReturned))
	if n := must[int](t)(h.e.EraseConversation(ctx, "erase-me")); n != 2 {
		t.Fatalf("erased %d tickets, want 2", n)
	}
	for _, id := range []string{first.ID, second.ID} {
		_, err := s.Ticket(ctx, id)
		wantCode(t, err, tandem.ENOTFOUND)
		trs := must[[]handoff.Transition](t)(s.Transitions(ctx, handoff.TransitionFilter{TicketID: id}))
		if len(trs) != 0 {
			t.Fatalf("ticket %s erased but %d transitions left", id, len(trs))
		}
	}
	h.want(other.ID, tandem.TicketQueued, "")
	if trs := must[[]handoff.Transition](t)(s.Transitions(ctx, handoff.TransitionFilter{TicketID: other.ID})); len(trs) != 1 {
		t.Fatalf("the other conversation's ticket has %d transitions, want its escalation", len(trs))
	}
	if n := must[int](t)(h.e.EraseConversation(ctx, "never-escalated")); n != 0 {
		t.Fatalf("erased %d tickets of a conversation without any", n)
	}
	// Transitions recorded after an erasure keep unique, rising seqs.
	h.escalate("conv=after-erase")
	var last int64
	for _, tr := range must[[]handoff.Transition](t)(s.Transitions(ctx, handoff.TransitionFilter{})) {
		if tr.Seq <= last {
			t.Fatalf("transition seq %d after %d", tr.Seq, last)
		}
		last = tr.Seq
	}
}

// acceptOnDisable runs accept once, right after an agent is stored as
// disabled and before the engine withdraws their offers: an accept that
// comes in at that moment.
type acceptOnDisable struct {
	handoff.Store
	accept func() error
	err    error
}

func (s *acceptOnDisable) UpdateAgent(ctx context.Context, a tandem.Agent) error {
	err := s.Store.UpdateAgent(ctx, a)
	if err == nil && a.Disabled && s.accept != nil {
		s.err, s.accept = s.accept(), nil
	}
	return err
}

func (s *acceptOnDisable) SwapAgent(ctx context.Context, old, a tandem.Agent) (bool, error) {
	ok, err := s.Store.SwapAgent(ctx, old, a)
	if ok && a.Disabled && s.accept != nil {
		s.err, s.accept = s.accept(), nil
	}
	return ok, err
}

// testAcceptWhileDisabling: an offer accepted in the moment between the
// agent being stored as disabled and their offers being withdrawn is
// refused (the disabled agent used to get the chat), and the ticket goes
// back to the queue.
func testAcceptWhileDisabling(t *testing.T, s handoff.Store) {
	w := &acceptOnDisable{Store: s}
	h := newHarness(t, w)
	ann, _ := h.online("ann max=3")
	tk := h.escalate("")
	h.tick()
	h.want(tk.ID, tandem.TicketOffered, ann.ID)
	w.accept = func() error {
		_, err := h.e.Accept(ctx, handoff.Actor{AgentID: ann.ID}, tk.ID)
		return err
	}
	must[tandem.Agent](t)(h.e.SetDisabled(ctx, ann.ID, true))
	wantCode(t, w.err, tandem.EFORBIDDEN)
	h.want(tk.ID, tandem.TicketQueued, "")
}

func testDisableAgent(t *testing.T, s handoff.Store) {
	h := newHarness(t, s)
	ann, _ := h.online("ann max=3")
	h.advance(time.Second)
	bob, _ := h.online("bob max=3")
	t0 := h.escalate("")
	h.tick()
	h.want(t0.ID, tandem.TicketOffered, ann.ID)
	h.accept(ann.ID, t0.ID)
	t1 := h.escalate("")
	h.tick()
	h.want(t1.ID, tandem.TicketOffered, bob.ID)
	must[tandem.Ticket](t)(h.e.Decline(ctx, handoff.Actor{AgentID: bob.ID}, t1.ID))
	h.tick()
	h.want(t1.ID, tandem.TicketOffered, ann.ID)

	// An admin disables ann: her offer goes back to the queue at once (it
	// waits: bob declined it and is skipped); she cannot log in, connect,
	// heartbeat, claim or be transferred to.
	off := ann
	off.Disabled = true
	got := must[tandem.Agent](t)(h.e.UpdateAgent(ctx, off))
	if !got.Disabled {
		t.Fatal("not disabled")
	}
	h.want(t1.ID, tandem.TicketQueued, "")
	_, err := h.e.Authenticate(ctx, "ann@example.com", "password-ann")
	wantCode(t, err, tandem.EUNAUTHORIZED)
	_, _, err = h.e.Connect(ctx, ann.ID)
	wantCode(t, err, tandem.EFORBIDDEN)
	wantCode(t, h.e.Heartbeat(ctx, ann.ID, h.sessions[ann.ID]), tandem.EFORBIDDEN)
	h.crash(ann.ID) // the gateway closes her socket
	_, err = h.e.Claim(ctx, handoff.Actor{AgentID: ann.ID}, t1.ID)
	wantCode(t, err, tandem.ECONFLICT)
	t2 := h.escalate("")
	h.claim(bob.ID, t2.ID)
	_, err = h.e.Transfer(ctx, handoff.Actor{AgentID: bob.ID}, t2.ID, ann.ID)
	wantCode(t, err, tandem.ECONFLICT)
	if !strings.Contains(tandem.ErrorMessage(err), "disabled") {
		t.Fatalf("message %q", tandem.ErrorMessage(err))
	}
	// Her assigned chat is re-queued after the grace period and goes to bob.
	h.advance(61 * time.Second)
	h.tick()
	h.want(t0.ID, tandem.TicketOffered, bob.ID)
	// Re-enabled, she can work again.
	off.Disabled = false
	must[tandem.Agent](t)(h.e.UpdateAgent(ctx, off))
	must[tandem.Agent](t)(h.e.Authenticate(ctx, "ann@example.com", "password-ann"))
	h.connect(ann.ID)
	h.tick()
	h.want(t1.ID, tandem.TicketOffered, ann.ID)
}
