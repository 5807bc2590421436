package handoff

import (
	"context"
	"sync"
	"time"

	"github.com/tandem-chat/tandem"
)

// EventType names an event.
type EventType string

// Event types. Unless marked node-local, an event is emitted once, by the
// engine (node) that made the transition, and the gateway must fan it out
// to the other nodes (its cross-node bus) so it reaches the customer's and
// the agents' sockets wherever they are connected.
const (
	// EventQueued: a ticket entered the queue (new escalation). Queue is set.
	EventQueued EventType = "ticket.queued"
	// EventNobodyOnline: a ticket was queued while no agent is online; the
	// customer may leave a contact address (Engine.LeaveContact). Queue is set.
	EventNobodyOnline EventType = "ticket.nobody_online"
	// EventPosition (node-local): a queued ticket's position, estimated wait
	// or the number of agents online changed. Every node computes these
	// for every queued ticket: deliver them to local sockets only.
	EventPosition EventType = "ticket.position"
	// EventOffered: the ticket is offered to AgentID until
	// Ticket.OfferExpiresAt.
	EventOffered EventType = "ticket.offered"
	// EventOfferDeclined: AgentID declined; the ticket is queued again.
	EventOfferDeclined EventType = "ticket.offer_declined"
	// EventOfferExpired: AgentID did not answer in time; the ticket is
	// queued again.
	EventOfferExpired EventType = "ticket.offer_expired"
	// EventAssigned: AgentID (AgentName) now handles the conversation.
	EventAssigned EventType = "ticket.assigned"
	// EventTransferred: PrevAgentID handed the ticket to AgentID (then an
	// EventOffered follows) or to a skill group (Ticket.Skills; the ticket
	// is queued).
	EventTransferred EventType = "ticket.transferred"
	// EventRequeued: the ticket went back to the queue for another reason
	// (Reason: disconnect of PrevAgentID, presence change).
	EventRequeued EventType = "ticket.requeued"
	// EventReturned: the conversation is back with the bot.
	EventReturned EventType = "ticket.returned"
	// EventClosed: the ticket is resolved or abandoned (Ticket.State).
	EventClosed EventType = "ticket.closed"
	// EventContact: the customer left a contact address.
	EventContact EventType = "ticket.contact"
	// EventPresence: an agent's effective presence or connection changed.
	// Agent is set.
	EventPresence EventType = "agent.presence"
)

// QueueInfo is where a queued ticket stands.
type QueueInfo struct {
	Position      int           `json:"position"`       // 1 = next in line
	EstimatedWait time.Duration `json:"estimated_wait"` // 0 when unknown (nobody online) or imminent
	AgentsOnline  int           `json:"agents_online"`  // agents online and connected
	NobodyOnline  bool          `json:"nobody_online"`
}

// AgentStatus is an agent as the console and the admin see it.
type AgentStatus struct {
	Agent     tandem.Agent    `json:"agent"`
	Presence  tandem.Presence `json:"presence"`        // effective: offline when not connected
	Chosen    tandem.Presence `json:"chosen_presence"` // what the agent set
	Connected bool            `json:"connected"`
	Load      int             `json:"load"`
	IdleSince time.Time       `json:"idle_since"`
	LastSeen  time.Time       `json:"last_seen,omitzero"`
}

// Event is something the gateway may tell customers and agents. Ticket is a
// snapshot taken right after the change. Events are hints for live
// updates: after a reconnect, clients reload state from the Engine's
// queries (the Store is the source of truth).
type Event struct {
	Type        EventType      `json:"type"`
	At          time.Time      `json:"at"`
	Node        string         `json:"node,omitempty"`
	Ticket      *tandem.Ticket `json:"ticket,omitempty"`
	AgentID     string         `json:"agent_id,omitempty"`      // agent concerned (offered to, assigned, declining...)
	AgentName   string         `json:"agent_name,omitempty"`    // display name, on EventAssigned
	PrevAgentID string         `json:"prev_agent_id,omitempty"` // agent who held the ticket before
	Reason      string         `json:"reason,omitempty"`        // transition reason
	Queue       *QueueInfo     `json:"queue,omitempty"`
	Agent       *AgentStatus   `json:"agent,omitempty"` // on EventPresence

	barrier chan struct{} // Flush marker, never delivered
}

// Local reports whether the event is node-local (see EventPosition).
func (e Event) Local() bool { return e.Type == EventPosition }

// Notifier receives events.
//
// Contract: an Engine calls Notify from a single goroutine, in emission
// order, never concurrently. Notify should return quickly (hand the event to
// a socket's bounded queue or a bus); while it runs, new events wait in the
// Engine's bounded buffer (Config.EventBuffer) and are dropped when it is
// full (counted in tandem_handoff_events_dropped_total). The engine itself
// never blocks on a Notifier. ctx is cancelled when the engine closes.
type Notifier interface {
	Notify(ctx context.Context, e Event)
}

// NotifierFunc adapts a function to Notifier.
type NotifierFunc func(ctx context.Context, e Event)

// Notify implements Notifier.
func (f NotifierFunc) Notify(ctx context.Context, e Event) { f(ctx, e) }

// dispatcher moves events from a bounded buffer to a Notifier.
type dispatcher struct {
	ch      chan Event
	n       Notifier
	dropped func()
	ctx     context.Context
	cancel  context.CancelFunc
	done    chan struct{}

	mu     sync.RWMutex // guards closed against sends racing with close
	closed bool
}

func newDispatcher(n Notifier, size int, dropped func()) *dispatcher {
	ctx, cancel := context.WithCancel(context.Background())
	d := &dispatcher{ch: make(chan Event, size), n: n, dropped: dropped, ctx: ctx, cancel: cancel, done: make(chan struct{})}
	go d.loop()
	return d
}

func (d *dispatcher) loop() {
	defer close(d.done)
	for e := range d.ch {
		if e.barrier != nil {
			close(e.barrier)
			continue
		}
		if d.n != nil {
			d.n.Notify(d.ctx, e)
		}
	}
}

// emit queues e without blocking; it reports false if e was dropped.
func (d *dispatcher) emit(e Event) bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		d.dropped()
		return false
	}
	select {
	case d.ch <- e:
		return true
	default:
		d.dropped()
		return false
	}
}

// flush waits until every event queued before the call has been handed
// to the Notifier (or ctx ends).
func (d *dispatcher) flush(ctx context.Context) error {
	b := make(chan struct{})
	d.mu.RLock()
	if d.closed {
		d.mu.RUnlock()
		return nil
	}
	select {
	case d.ch <- Event{barrier: b}:
		d.mu.RUnlock()
	case <-ctx.Done():
		d.mu.RUnlock()
		return ctx.Err()
	}
	select {
	case <-b:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close stops accepting events and waits (up to ctx) for the buffered ones
// to be delivered; then it cancels the Notifier's context.
func (d *dispatcher) close(ctx context.Context) error {
	d.mu.Lock()
	if !d.closed {
		d.closed = true
		close(d.ch)
	}
	d.mu.Unlock()
	defer d.cancel()
	select {
	case <-d.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
