// Package handoff moves conversations from the bot to human agents:
// escalation tickets, a priority queue, agent accounts, presence and
// capacity, routing with offers that time out, claims, transfers, return to
// the bot and closing, with every transition recorded and measured.
//
// # Pieces
//
//   - Store (this file) is the system of record. Adapters: handoff/memstore
//     (one process) and handoff/pgstore (PostgreSQL, several server nodes).
//     Stores are dumb but atomic: every ticket transition is one
//     Store.Apply call whose conditions (current state, holder, version,
//     offer expiry) and capacity accounting are checked and applied in one
//     step; Store.Route offers a batch of queued tickets to agents in one
//     step. handoff/storetest is the contract suite both adapters pass.
//   - Match (match.go) is the routing policy, a pure function the stores call
//     inside Route so the policy is written once.
//   - Engine (engine.go) is what the gateway calls: Escalate, agent actions
//     (Accept, Decline, Claim, Transfer, Resolve, ReturnToBot), customer
//     actions (Cancel, LeaveContact), presence (Connect, Heartbeat,
//     Disconnect, SetPresence), accounts (CreateAgent, Authenticate, ...) and
//     queries. It emits Events to a Notifier without ever blocking on it.
//
// # Concurrency contract
//
// Every Store method and every exported Engine method may be called
// concurrently from any goroutine, and several Engines (one per server node)
// may share one Store: a ticket is held by at most one agent at a time and an
// agent never receives work beyond MaxChats, whatever the interleaving.
// Engine.Run must be called at most once per Engine; Engine.Close once.
//
// The Store holds all shared state; an Engine keeps only caches that are
// safe to lose (last emitted queue positions) and its event buffer.
package handoff

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/tandem-chat/tandem"
)

// Store is the system of record for agents, presence sessions, tickets and
// their transitions. All times are supplied by the caller (the Engine's
// clock), so stores never read the wall clock; stores keep them with
// microsecond precision in UTC.
//
// Errors are *tandem.Error with ENOTFOUND, ECONFLICT or EINVALID for
// conditions a caller can act on; anything else is an internal failure.
type Store interface {
	// CreateAgent inserts an agent. a.ID must be set. A duplicate ID or
	// email (case-insensitive) is ECONFLICT. New agents have presence
	// online, no sessions and no load; IdleSince is a.CreatedAt.
	CreateAgent(ctx context.Context, a tandem.Agent) error
	// UpdateAgent replaces the profile of an existing agent (email,
	// display name, role, skills, languages, max chats, disabled); the
	// password hash and creation time are kept. Disabled agents are never
	// candidates and cannot acquire tickets. Lowering MaxChats below the current load
	// is allowed: no new work arrives until the load falls.
	UpdateAgent(ctx context.Context, a tandem.Agent) error
	// SwapAgent replaces the profile as UpdateAgent does, but only if the
	// stored profile (email, display name, role, skills, languages, max
	// chats, disabled) is still old's (compare-and-swap); it reports
	// whether it did.
	SwapAgent(ctx context.Context, old, a tandem.Agent) (bool, error)
	// SetPasswordHash replaces an agent's bcrypt hash.
	SetPasswordHash(ctx context.Context, agentID string, hash []byte) error
	// SwapPasswordHash replaces an agent's hash only if it is still old
	// (compare-and-swap); it reports whether it did.
	SwapPasswordHash(ctx context.Context, agentID string, old, hash []byte) (bool, error)
	// Agent returns an agent with its password hash.
	Agent(ctx context.Context, id string) (tandem.Agent, error)
	// AgentByEmail finds an agent by email, case-insensitively.
	AgentByEmail(ctx context.Context, email string) (tandem.Agent, error)
	// Agents lists all agents ordered by ID.
	Agents(ctx context.Context) ([]tandem.Agent, error)

	// OpenSession records a console connection of an agent. If the agent
	// had no session at all, IdleSince becomes now.
	OpenSession(ctx context.Context, agentID, sessionID, node string, now time.Time) error
	// TouchSession records a heartbeat; ENOTFOUND if the session is unknown.
	TouchSession(ctx context.Context, agentID, sessionID string, now time.Time) error
	// CloseSession removes a session and records now as the agent's last
	// sign of life. Closing an unknown session is not an error.
	CloseSession(ctx context.Context, agentID, sessionID string, now time.Time) error
	// SetPresence stores the presence the agent chose.
	SetPresence(ctx context.Context, agentID string, p tandem.Presence, now time.Time) error
	// AgentStates returns every agent's raw status; a session is live when
	// its last heartbeat is at or after liveAfter.
	AgentStates(ctx context.Context, liveAfter time.Time) ([]AgentState, error)
	// AgentState returns one agent's raw status.
	AgentState(ctx context.Context, agentID string, liveAfter time.Time) (AgentState, error)
	// PruneSessions deletes sessions whose last heartbeat is before cutoff.
	PruneSessions(ctx context.Context, cutoff time.Time) error

	// CreateTicket inserts a queued ticket (t.ID, ConversationID, CreatedAt
	// and QueuedAt set by the caller; State must be queued) and records the
	// "escalated" transition. LastAgentID, when empty, is filled with the
	// agent of this customer's most recently assigned ticket. A conversation
	// with an open (queued, offered or assigned) ticket is ECONFLICT.
	CreateTicket(ctx context.Context, t tandem.Ticket, node string) (tandem.Ticket, error)
	// Ticket returns a ticket by ID.
	Ticket(ctx context.Context, id string) (tandem.Ticket, error)
	// OpenTicket returns the open ticket of a conversation, or ENOTFOUND.
	OpenTicket(ctx context.Context, conversationID string) (tandem.Ticket, error)
	// Tickets lists tickets matching f: in queue order (priority
	// descending, then CreatedAt, then ID) when f.States is exactly
	// [queued], else by CreatedAt then ID.
	Tickets(ctx context.Context, f TicketFilter) ([]tandem.Ticket, error)
	// QueueAhead counts the queued tickets before t in queue order.
	QueueAhead(ctx context.Context, t tandem.Ticket) (int, error)
	// Apply performs one conditional transition atomically (see Change).
	Apply(ctx context.Context, c Change) (tandem.Ticket, error)
	// Route offers queued tickets to available agents atomically (see
	// RouteRequest) and returns the tickets it offered. Concurrent Route
	// calls (several nodes) work on disjoint tickets.
	Route(ctx context.Context, r RouteRequest) ([]tandem.Ticket, error)
	// ExpiredOffers lists offered tickets whose offer expired at or before now.
	ExpiredOffers(ctx context.Context, now time.Time, limit int) ([]tandem.Ticket, error)
	// Orphans lists offered or assigned tickets whose agent has no live
	// session (heartbeat at or after liveAfter) and whose last sign of life
	// is before cutoff.
	Orphans(ctx context.Context, liveAfter, cutoff time.Time, limit int) ([]tandem.Ticket, error)
	// SetContact stores a contact address on an open ticket.
	SetContact(ctx context.Context, ticketID, address string) (tandem.Ticket, error)
	// HandleTimes returns the handle times (ClosedAt - AssignedAt) of the
	// last n tickets resolved or returned after an assignment, newest first.
	HandleTimes(ctx context.Context, n int) ([]time.Duration, error)
	// Transitions lists recorded transitions matching f in Seq order.
	Transitions(ctx context.Context, f TransitionFilter) ([]Transition, error)
	// EraseConversation deletes every ticket of a conversation, with their
	// transitions and skips (the customer's right to erasure), and returns
	// how many; a conversation with an open ticket is ErrOpenTicket and
	// nothing is deleted.
	EraseConversation(ctx context.Context, conversationID string) (int, error)

	// Close releases the store's resources.
	Close() error
}

// AgentState is an agent's raw status as stored.
type AgentState struct {
	Agent     tandem.Agent    // profile, without the password hash
	Presence  tandem.Presence // presence the agent chose (online, away, offline)
	Sessions  int             // live console sessions
	Load      int             // tickets offered to or assigned to the agent
	IdleSince time.Time       // last time the agent received or finished work, connected or switched to online
	LastSeen  time.Time       // last sign of life: heartbeat or disconnect (zero if never)
}

// Connected reports whether the agent has a live console session.
func (s AgentState) Connected() bool { return s.Sessions > 0 }

// Effective returns the presence others see: the chosen presence while the
// agent is connected, offline otherwise.
func (s AgentState) Effective() tandem.Presence {
	if !s.Connected() {
		return tandem.PresenceOffline
	}
	return s.Presence
}

// Available reports whether routing may offer the agent new work.
func (s AgentState) Available() bool {
	return !s.Agent.Disabled && s.Connected() && s.Presence == tandem.PresenceOnline && s.Load < s.Agent.MaxChats
}

// TicketFilter selects tickets. Zero fields match everything.
type TicketFilter struct {
	States  []tandem.TicketState
	AgentID string // current holder (or last agent for closed tickets)
	Limit   int    // 0 = no limit
}

// Change is one conditional ticket transition. The store locks the ticket,
// checks every condition, moves capacity between agents and updates the
// ticket, records a Transition and (optionally) a skip, all atomically.
//
// Capacity: an agent "holds" a ticket while it is offered or assigned to
// them, and Load counts held tickets. If the holder before (State offered
// or assigned) differs from the holder after (To offered or assigned), the
// old holder's load drops and the new holder's load rises, which succeeds
// only if the new holder's load is below MaxChats (and, with RequireOnline
// and LiveAfter, the agent is online and connected); otherwise nothing
// changes and Apply returns ECONFLICT.
type Change struct {
	TicketID string
	Now      time.Time
	Node     string // recorded in the transition
	Reason   string // recorded in the transition, e.g. ReasonAccept

	// Conditions.
	From       []tandem.TicketState // the current state must be one of these
	Holder     string               // the current AgentID must equal Holder...
	AnyHolder  bool                 // ...unless AnyHolder
	Version    int64                // if > 0, the current Version must equal it
	OfferLive  bool                 // the offer must not have expired (OfferExpiresAt > Now)
	OfferDue   bool                 // the offer must have expired (OfferExpiresAt <= Now)
	HolderGone *Gone                // the current holder must still be gone (see Gone)
	// HolderEnabled: the holder after the change must not be disabled,
	// checked against a disabling in flight (the agent's row is locked)
	// also when the holder does not change (an accepted offer). A new
	// holder is always checked (AcquireError).
	HolderEnabled bool

	// Effects.
	To            tandem.TicketState
	Agent         string    // holder after the change for offered/assigned; ignored otherwise
	RequireOnline bool      // the new holder's chosen presence must be online
	LiveAfter     time.Time // if non-zero, the new holder needs a session live at or after it
	OfferExpires  time.Time // for To == offered
	SetSkills     bool      // replace the ticket's skills with Skills
	Skills        []string
	SetLastAgent  bool      // remember the previous holder as the sticky agent
	Skip          string    // agent routing must skip for this ticket...
	SkipUntil     time.Time // ...until this time
}

// Gone is the condition that an agent is still disconnected: no session
// live at or after LiveAfter and last sign of life before Cutoff.
type Gone struct {
	LiveAfter time.Time
	Cutoff    time.Time
}

// RouteRequest asks a store for one routing pass. The store selects, in
// queue order, up to Limit queued tickets for which at least one candidate
// is Eligible, locking them so that concurrent passes skip them (Postgres:
// FOR UPDATE SKIP LOCKED); loads the candidates (agents online with a
// session live at or after LiveAfter and load below MaxChats) and the
// active skips; calls Match; then, for each pair in agent order, raises the
// agent's load only if it is still below MaxChats and marks the ticket
// offered to that agent until OfferExpires. Pairs whose agent filled up
// meanwhile are dropped: the ticket stays queued for the next pass.
type RouteRequest struct {
	Now          time.Time
	LiveAfter    time.Time
	OfferExpires time.Time
	Limit        int
	Node         string
	Match        MatchFunc // nil means Match
}

// Transition is one recorded state change of a ticket.
type Transition struct {
	Seq       int64              `json:"seq"` // increasing; per ticket and per agent in commit order
	TicketID  string             `json:"ticket_id"`
	From      tandem.TicketState `json:"from,omitempty"` // empty for the creation
	To        tandem.TicketState `json:"to"`
	AgentID   string             `json:"agent_id,omitempty"`      // holder after (or last agent when closed)
	PrevAgent string             `json:"prev_agent_id,omitempty"` // holder before
	Reason    string             `json:"reason"`
	Node      string             `json:"node,omitempty"`
	At        time.Time          `json:"at"`
}

// TransitionFilter selects transitions. Zero fields match everything.
type TransitionFilter struct {
	TicketID string
	AfterSeq int64
	Limit    int
}

// Transition reasons.
const (
	ReasonEscalated     = "escalated"
	ReasonRoute         = "route"
	ReasonAccept        = "accept"
	ReasonDecline       = "decline"
	ReasonOfferTimeout  = "offer_timeout"
	ReasonClaim         = "claim"
	ReasonTransfer      = "transfer"
	ReasonTransferGroup = "transfer_group"
	ReasonDisconnect    = "disconnect"
	ReasonSignOut       = "sign_out"
	ReasonPresence      = "presence"
	ReasonResolve       = "resolve"
	ReasonReturn        = "return_to_bot"
	ReasonCustomer      = "customer"
)

// Holds reports whether an agent holds (has capacity used by) a ticket in
// state s.
func Holds(s tandem.TicketState) bool {
	return s == tandem.TicketOffered || s == tandem.TicketAssigned
}

// Open reports whether a ticket in state s is still open.
func Open(s tandem.TicketState) bool {
	return s == tandem.TicketQueued || Holds(s)
}

// Closed reports whether s is a final state.
func Closed(s tandem.TicketState) bool {
	return s == tandem.TicketResolved || s == tandem.TicketReturned || s == tandem.TicketAbandoned
}

// CheckChange validates the conditions of c against the current ticket t,
// returning the ECONFLICT error a store must report (nil if they hold).
// The capacity and HolderGone conditions are checked by the store.
// Stores call it so that both report identical errors.
func CheckChange(t tandem.Ticket, c Change) error {
	if c.Version > 0 && t.Version != c.Version {
		return tandem.Errorf(tandem.ECONFLICT, "ticket %s was changed concurrently; reload and retry", t.ID)
	}
	if !slices.Contains(c.From, t.State) {
		return tandem.Errorf(tandem.ECONFLICT, "ticket %s is %s", t.ID, t.State)
	}
	if !c.AnyHolder && t.AgentID != c.Holder {
		return tandem.Errorf(tandem.ECONFLICT, "ticket %s is not held by this agent", t.ID)
	}
	if c.OfferLive && !c.Now.Before(t.OfferExpiresAt) {
		return tandem.Errorf(tandem.ECONFLICT, "the offer of ticket %s has expired", t.ID)
	}
	if c.OfferDue && c.Now.Before(t.OfferExpiresAt) {
		return tandem.Errorf(tandem.ECONFLICT, "the offer of ticket %s has not expired", t.ID)
	}
	return nil
}

// ApplyToTicket returns t after the effects of c (state, holder, times,
// skills, version), without capacity accounting. prevHolder and newHolder
// are the agents whose load must fall and rise ("" for none).
func ApplyToTicket(t tandem.Ticket, c Change) (out tandem.Ticket, prevHolder, newHolder string) {
	if Holds(t.State) {
		prevHolder = t.AgentID
	}
	if Holds(c.To) {
		newHolder = c.Agent
	}
	if c.SetLastAgent && t.AgentID != "" {
		t.LastAgentID = t.AgentID
	}
	switch {
	case Holds(c.To):
		t.AgentID = c.Agent
	case c.To == tandem.TicketQueued:
		t.AgentID = ""
	}
	from := t.State
	t.State = c.To
	switch c.To {
	case tandem.TicketQueued:
		t.QueuedAt = c.Now
		t.OfferedAt, t.OfferExpiresAt, t.AssignedAt = time.Time{}, time.Time{}, time.Time{}
	case tandem.TicketOffered:
		t.OfferedAt = c.Now
		t.OfferExpiresAt = c.OfferExpires
		t.AssignedAt = time.Time{}
	case tandem.TicketAssigned:
		t.AssignedAt = c.Now
		t.OfferExpiresAt = time.Time{}
		if from == tandem.TicketQueued { // claimed: never offered
			t.OfferedAt = time.Time{}
		}
	default: // closed
		t.ClosedAt = c.Now
		t.OfferExpiresAt = time.Time{}
		if from != tandem.TicketAssigned {
			t.AssignedAt = time.Time{}
		}
	}
	if c.SetSkills {
		t.Skills = NormalizeTags(c.Skills)
	}
	t.Version++
	return t, prevHolder, newHolder
}

// NormalizeTags lower-cases, trims, de-duplicates and sorts skills or
// languages, dropping empty ones. It returns nil for an empty result.
func NormalizeTags(in []string) []string {
	var out []string
	for _, s := range in {
		s = strings.ToLower(strings.TrimSpace(s))
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

// UTC truncates t to microseconds in UTC, the precision stores keep.
func UTC(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC().Truncate(time.Microsecond)
}

// QueueLess reports whether queued ticket a comes before b in queue order:
// higher priority first, then earlier CreatedAt, then smaller ID.
func QueueLess(a, b tandem.Ticket) bool {
	if a.Priority != b.Priority {
		return a.Priority > b.Priority
	}
	if !a.CreatedAt.Equal(b.CreatedAt) {
		return a.CreatedAt.Before(b.CreatedAt)
	}
	return a.ID < b.ID
}

// AcquireError is the error a store reports when the new holder of a
// Change cannot take the ticket: st is the agent's state and live whether
// it has a session live at or after c.LiveAfter.
func AcquireError(st AgentState, c Change, live bool) error {
	switch {
	case st.Agent.Disabled:
		return tandem.Errorf(tandem.ECONFLICT, "agent %s is disabled", st.Agent.ID)
	case !c.LiveAfter.IsZero() && !live:
		return tandem.Errorf(tandem.ECONFLICT, "agent %s is offline", st.Agent.ID)
	case c.RequireOnline && st.Presence != tandem.PresenceOnline:
		return tandem.Errorf(tandem.ECONFLICT, "agent %s is %s", st.Agent.ID, st.Presence)
	case st.Load >= st.Agent.MaxChats:
		return tandem.Errorf(tandem.ECONFLICT, "agent %s is at capacity (%d of %d chats)", st.Agent.ID, st.Load, st.Agent.MaxChats)
	}
	return nil
}

// Common store errors, identical across adapters.
var (
	ErrTicketNotFound = tandem.Errorf(tandem.ENOTFOUND, "ticket not found")
	ErrAgentNotFound  = tandem.Errorf(tandem.ENOTFOUND, "agent not found")
	ErrAgentConflict  = tandem.Errorf(tandem.ECONFLICT, "an agent with this email already exists")
	ErrOpenTicket     = tandem.Errorf(tandem.ECONFLICT, "the conversation already has an open ticket")
	ErrNoSession      = tandem.Errorf(tandem.ENOTFOUND, "session not found")
	ErrAgentReturned  = tandem.Errorf(tandem.ECONFLICT, "the agent is connected again")
	ErrAgentDisabled  = tandem.Errorf(tandem.EFORBIDDEN, "this account is disabled")
)
