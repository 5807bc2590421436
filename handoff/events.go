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
	// EventPresence: an agent's effective presence, connection or profile changed.
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
// Contract: an Engine calls Notify from a single goroutine, never
// concurrently, and never blocks on it. Notify should return quickly (hand
// the event to a socket's bounded queue or a bus); while it runs, new
// events wait in two bounded lanes:
//
//   - State changes (every type but EventPosition) wait in emission order
//     in a buffer of Config.EventBuffer and are dropped only when it is
//     full (counted in tandem_handoff_events_dropped_total). A flood of
//     position updates can never crowd them out.
//   - Position updates (EventPosition) are coalesced per ticket, only the
//     newest being kept, for at most Config.MaxPositions tickets; they are
//     delivered when no state change is waiting, so one may arrive after a
//     later state change of another ticket. A state change of a ticket
//     discards that ticket's pending position update, and the updates of
//     it that a position sweep computed before the change.
//
// Events are hints: a receiver that must not act on a stale picture (the
// gateway's conversation mode) checks the Store, which is the source of
// truth. ctx is cancelled when the engine closes.
type Notifier interface {
	Notify(ctx context.Context, e Event)
}

// NotifierFunc adapts a function to Notifier.
type NotifierFunc func(ctx context.Context, e Event)

// Notify implements Notifier.
func (f NotifierFunc) Notify(ctx context.Context, e Event) { f(ctx, e) }

// dispatcher moves events from its two bounded lanes (see Notifier) to a
// Notifier, state changes first.
type dispatcher struct {
	ch      chan Event    // state changes and Flush barriers
	posWake chan struct{} // a position update is pending (capacity 1)
	closing chan struct{} // closed when close starts: unblocks flush
	n       Notifier
	dropped func()
	ctx     context.Context
	cancel  context.CancelFunc
	done    chan struct{}

	mu      sync.RWMutex // guards closed (and close(ch)) against sends racing with close
	closed  bool
	closeMu sync.Once

	posMu   sync.Mutex
	pos     map[string]Event // newest pending position update per ticket
	posQ    []string         // tickets in pos, first pending first
	posCap  int
	watches map[*posWatch]struct{} // position computations in progress
}

// posWatch collects the tickets that had a state change emitted since a
// position computation started: that computation's updates of them are
// stale (read before the change) and are not emitted.
type posWatch struct {
	changed map[string]bool // guarded by dispatcher.posMu
}

func newDispatcher(n Notifier, size, posCap int, dropped func()) *dispatcher {
	ctx, cancel := context.WithCancel(context.Background())
	d := &dispatcher{ch: make(chan Event, size), posWake: make(chan struct{}, 1), closing: make(chan struct{}),
		n: n, dropped: dropped, ctx: ctx, cancel: cancel, done: make(chan struct{}),
		pos: map[string]Event{}, posCap: max(posCap, 1), watches: map[*posWatch]struct{}{}}
	go d.loop()
	return d
}

func (d *dispatcher) loop() {
	defer close(d.done)
	for {
		// State changes first, without waiting.
		select {
		case e, ok := <-d.ch:
			if !ok {
				d.drainPositions()
				return
			}
			d.deliver(e)
			continue
		default:
		}
		if e, ok := d.popPosition(); ok {
			d.deliver(e)
			continue
		}
		select {
		case e, ok := <-d.ch:
			if !ok {
				d.drainPositions()
				return
			}
			d.deliver(e)
		case <-d.posWake:
		}
	}
}

func (d *dispatcher) deliver(e Event) {
	if e.barrier != nil {
		// Everything emitted before the barrier is out, positions included.
		d.drainPositions()
		close(e.barrier)
		return
	}
	if d.n != nil {
		d.n.Notify(d.ctx, e)
	}
}

func (d *dispatcher) drainPositions() {
	for {
		e, ok := d.popPosition()
		if !ok {
			return
		}
		d.deliver(e)
	}
}

func (d *dispatcher) popPosition() (Event, bool) {
	d.posMu.Lock()
	defer d.posMu.Unlock()
	if len(d.posQ) == 0 {
		return Event{}, false
	}
	id := d.posQ[0]
	d.posQ[0] = ""
	d.posQ = d.posQ[1:]
	if len(d.posQ) == 0 {
		d.posQ = nil // let the backing array go
	}
	e := d.pos[id]
	delete(d.pos, id)
	return e, true
}

// emit queues e without blocking; it reports false if e was dropped.
func (d *dispatcher) emit(e Event) bool { return d.emitWatched(e, nil) }

// watch starts a position computation: position updates emitted with the
// returned watch (emitWatched) are discarded for tickets that had a state
// change emitted meanwhile. Call unwatch when done.
func (d *dispatcher) watch() *posWatch {
	w := &posWatch{changed: map[string]bool{}}
	d.posMu.Lock()
	d.watches[w] = struct{}{}
	d.posMu.Unlock()
	return w
}

func (d *dispatcher) unwatch(w *posWatch) {
	d.posMu.Lock()
	delete(d.watches, w)
	d.posMu.Unlock()
}

// emitWatched is emit for a position update computed under watch w (nil:
// none).
func (d *dispatcher) emitWatched(e Event, w *posWatch) bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		d.dropped()
		return false
	}
	if e.Ticket != nil {
		if e.Local() {
			return d.emitPosition(e, w)
		}
		d.dropPosition(e.Ticket.ID) // superseded by this change
	}
	select {
	case d.ch <- e:
		return true
	default:
		d.dropped()
		return false
	}
}

// emitPosition replaces the ticket's pending position update, or queues
// it when there is room; it discards an update computed under w before a
// state change of the ticket.
func (d *dispatcher) emitPosition(e Event, w *posWatch) bool {
	id := e.Ticket.ID
	d.posMu.Lock()
	if w != nil && w.changed[id] {
		d.posMu.Unlock()
		return true // stale, superseded by the change already emitted
	}
	if _, ok := d.pos[id]; ok {
		d.pos[id] = e
		d.posMu.Unlock()
		return true
	}
	if len(d.pos) >= d.posCap {
		d.posMu.Unlock()
		d.dropped()
		return false
	}
	d.pos[id] = e
	d.posQ = append(d.posQ, id)
	d.posMu.Unlock()
	select {
	case d.posWake <- struct{}{}:
	default:
	}
	return true
}

// dropPosition forgets the ticket's pending position update, if any, and
// marks the ones being computed stale.
func (d *dispatcher) dropPosition(id string) {
	d.posMu.Lock()
	defer d.posMu.Unlock()
	for w := range d.watches {
		w.changed[id] = true
	}
	if _, ok := d.pos[id]; !ok {
		return
	}
	delete(d.pos, id)
	for i, q := range d.posQ {
		if q == id {
			d.posQ = append(d.posQ[:i], d.posQ[i+1:]...)
			break
		}
	}
}

// flush waits until every event queued before the call has been handed
// to the Notifier (or ctx ends, or the dispatcher closes).
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
	case <-d.closing:
		// close is waiting for the lock: let it run; it delivers what is
		// buffered (bounded by its own ctx).
		d.mu.RUnlock()
		select {
		case <-d.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
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
	d.closeMu.Do(func() { close(d.closing) })
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
