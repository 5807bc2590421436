package handoff

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/tandem-chat/tandem"
)

// Config configures an Engine. Zero values take the documented defaults.
type Config struct {
	// Node names this server node in transitions and events. Default "node".
	Node string
	// OfferTimeout is how long an agent has to accept an offer before it
	// goes to the next agent. Default 30s.
	OfferTimeout time.Duration
	// SkipFor is how long routing avoids offering a ticket again to an agent
	// who declined it, let its offer time out, or transferred it away.
	// Agents may still claim it. Default 2m.
	SkipFor time.Duration
	// HeartbeatTimeout: a console session without a heartbeat for this long
	// is dead (its node crashed or the network is gone). The gateway should
	// call Heartbeat at least every HeartbeatTimeout/3. Default 45s.
	HeartbeatTimeout time.Duration
	// DisconnectGrace is how long an agent may stay disconnected (no live
	// session), counted from their last sign of life, before their offered
	// and assigned tickets are queued again. Default 60s.
	DisconnectGrace time.Duration
	// SweepInterval is how often Run expires offers, re-queues the tickets
	// of disconnected agents and routes. Default 1s.
	SweepInterval time.Duration
	// PositionInterval is the minimum interval between two computations of
	// queue positions (EventPosition). Default 5s.
	PositionInterval time.Duration
	// RouteBatch is the most queued tickets one routing pass locks. Default 100.
	RouteBatch int
	// MaxPositions bounds how many queued tickets get position updates
	// (the first MaxPositions in queue order). Default 5000.
	MaxPositions int
	// VIPBoost is added to the priority of tickets of VIP customers.
	// Default 100; negative disables.
	VIPBoost int
	// ReasonPriority is added to the escalation's own priority, by reason.
	// Nil means DefaultReasonPriority.
	ReasonPriority map[tandem.EscalationReason]int
	// DefaultHandleTime is assumed for wait estimates until
	// HandleTimeSamples closed tickets exist. Default 5m.
	DefaultHandleTime time.Duration
	// HandleTimeSamples is how many recent handle times the estimate
	// averages. Default 50.
	HandleTimeSamples int
	// DefaultMaxChats is an agent's capacity when created without one. Default 3.
	DefaultMaxChats int
	// EventBuffer bounds the state-change events waiting for the Notifier
	// (position updates wait apart, see Notifier). Default 4096.
	EventBuffer int
	// BcryptCost for agent passwords. Default bcrypt.DefaultCost.
	BcryptCost int

	Clock      Clock                 // default: the wall clock
	Notifier   Notifier              // default: events are discarded
	Registerer prometheus.Registerer // default: metrics are not registered
	Logger     *slog.Logger          // default: slog.Default()
}

// DefaultReasonPriority ranks escalation reasons: an upset or insistent
// customer before a bot that was merely unsure.
var DefaultReasonPriority = map[tandem.EscalationReason]int{
	tandem.EscalateVIP:           50,
	tandem.EscalateSentiment:     30,
	tandem.EscalateRequested:     20,
	tandem.EscalateButton:        20,
	tandem.EscalateBreakerOpen:   15,
	tandem.EscalateIntent:        10,
	tandem.EscalateLowConfidence: 0,
	tandem.EscalateAbuse:         0,
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.Node == "" {
		c.Node = "node"
	}
	def(&c.OfferTimeout, 30*time.Second)
	def(&c.SkipFor, 2*time.Minute)
	def(&c.HeartbeatTimeout, 45*time.Second)
	def(&c.DisconnectGrace, 60*time.Second)
	def(&c.SweepInterval, time.Second)
	def(&c.PositionInterval, 5*time.Second)
	def(&c.DefaultHandleTime, 5*time.Minute)
	if c.RouteBatch == 0 {
		c.RouteBatch = 100
	}
	if c.MaxPositions == 0 {
		c.MaxPositions = 5000
	}
	if c.VIPBoost == 0 {
		c.VIPBoost = 100
	}
	if c.VIPBoost < 0 {
		c.VIPBoost = 0
	}
	if c.ReasonPriority == nil {
		c.ReasonPriority = DefaultReasonPriority
	}
	if c.HandleTimeSamples == 0 {
		c.HandleTimeSamples = 50
	}
	if c.DefaultMaxChats == 0 {
		c.DefaultMaxChats = 3
	}
	if c.EventBuffer == 0 {
		c.EventBuffer = 4096
	}
	if c.BcryptCost == 0 {
		c.BcryptCost = bcrypt.DefaultCost
	}
	if c.Clock == nil {
		c.Clock = wallClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports the first invalid setting (after defaults).
func (c Config) Validate() error {
	c = c.withDefaults()
	for name, d := range map[string]time.Duration{
		"OfferTimeout": c.OfferTimeout, "SkipFor": c.SkipFor, "HeartbeatTimeout": c.HeartbeatTimeout,
		"DisconnectGrace": c.DisconnectGrace, "SweepInterval": c.SweepInterval,
		"PositionInterval": c.PositionInterval, "DefaultHandleTime": c.DefaultHandleTime,
	} {
		if d < 0 {
			return fmt.Errorf("handoff: %s must not be negative", name)
		}
	}
	switch {
	case c.RouteBatch < 1 || c.RouteBatch > 10000:
		return fmt.Errorf("handoff: RouteBatch %d out of range [1, 10000]", c.RouteBatch)
	case c.MaxPositions < 0:
		return fmt.Errorf("handoff: MaxPositions must not be negative")
	case c.HandleTimeSamples < 1:
		return fmt.Errorf("handoff: HandleTimeSamples must be positive")
	case c.DefaultMaxChats < 1 || c.DefaultMaxChats > MaxChatsLimit:
		return fmt.Errorf("handoff: DefaultMaxChats %d out of range [1, %d]", c.DefaultMaxChats, MaxChatsLimit)
	case c.EventBuffer < 1:
		return fmt.Errorf("handoff: EventBuffer must be positive")
	case c.BcryptCost < bcrypt.MinCost || c.BcryptCost > bcrypt.MaxCost:
		return fmt.Errorf("handoff: BcryptCost %d out of range [%d, %d]", c.BcryptCost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	return nil
}

// Engine runs handoff on one server node over a shared Store.
// See the package documentation for the concurrency contract.
type Engine struct {
	store Store
	cfg   Config
	log   *slog.Logger
	m     *metrics
	d     *dispatcher
	kick  chan struct{} // capacity 1: coalesced requests to route
	dummy []byte        // bcrypt hash compared when an email is unknown

	running atomic.Bool
	closed  atomic.Bool

	// order: Escalate holds it shared from creating a ticket until its
	// EventQueued is emitted; a routing pass holds it exclusively, so this
	// node never emits an offer before the ticket's queued event.
	order sync.RWMutex

	mu        sync.Mutex           // guards the fields below
	positions map[string]QueueInfo // last QueueInfo emitted per queued ticket
	lastPos   time.Time            // clock time of the last position computation
	handle    time.Duration        // average recent handle time
	handleAt  time.Time            // when handle was computed
	lastPrune time.Time
	names     map[string]cachedName // agent display names
	capCache  capacityInfo          // for Escalate's queue info
	capAt     time.Time             // when capCache was computed (zero: invalid)
}

type cachedName struct {
	name string
	at   time.Time
}

// New returns an Engine over store. It starts the event dispatcher; call
// Run to start routing and sweeping, and Close when done.
func New(store Store, cfg Config) (*Engine, error) {
	if store == nil {
		return nil, errors.New("handoff: nil store")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte("tandem-dummy-password"), cfg.BcryptCost)
	if err != nil {
		return nil, fmt.Errorf("handoff: bcrypt: %w", err)
	}
	e := &Engine{
		store:     store,
		cfg:       cfg,
		log:       cfg.Logger.With("component", "handoff", "node", cfg.Node),
		m:         m,
		kick:      make(chan struct{}, 1),
		dummy:     dummy,
		positions: map[string]QueueInfo{},
		names:     map[string]cachedName{},
	}
	e.d = newDispatcher(cfg.Notifier, cfg.EventBuffer, cfg.MaxPositions, m.dropped.Inc)
	return e, nil
}

// Config returns the engine's configuration with defaults applied.
func (e *Engine) Config() Config { return e.cfg }

// Close stops event delivery after flushing buffered events (bounded by
// ctx). It does not close the Store. Run should be stopped first.
func (e *Engine) Close(ctx context.Context) error {
	if !e.closed.CompareAndSwap(false, true) {
		return nil
	}
	return e.d.close(ctx)
}

// Flush waits until every event emitted before the call has been handed to
// the Notifier, or ctx ends. Unlike emitting, it blocks while the buffer
// is full. For tests and orderly shutdown.
func (e *Engine) Flush(ctx context.Context) error { return e.d.flush(ctx) }

func (e *Engine) now() time.Time { return UTC(e.cfg.Clock.Now()) }

func (e *Engine) liveAfter(now time.Time) time.Time { return now.Add(-e.cfg.HeartbeatTimeout) }

func (e *Engine) emit(ev Event) {
	ev.Node = e.cfg.Node
	if ev.At.IsZero() {
		ev.At = e.now()
	}
	e.d.emit(ev)
}

// requestRoute asks Run for a routing pass without blocking.
func (e *Engine) requestRoute() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// Run routes and sweeps until ctx is cancelled: a routing pass whenever a
// call of this engine may have made routing possible (new ticket, freed
// capacity, agent online), and a full Tick every SweepInterval. It returns
// nil when ctx is cancelled. Call it at most once.
func (e *Engine) Run(ctx context.Context) error {
	if !e.running.CompareAndSwap(false, true) {
		return errors.New("handoff: Run called twice")
	}
	t := time.NewTicker(e.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-e.kick:
			if _, err := e.Route(ctx); err != nil && ctx.Err() == nil {
				e.log.Error("route", "err", err)
			}
		case <-t.C:
			if err := e.Tick(ctx); err != nil && ctx.Err() == nil {
				e.log.Error("sweep", "err", err)
			}
		}
	}
}

// Tick does one round of background work at the clock's current time:
// expires offers, re-queues the tickets of agents disconnected beyond the
// grace period, routes, and (at most every PositionInterval) emits queue
// positions. Run calls it; tests call it directly after moving a
// ManualClock. It may be called concurrently with everything.
func (e *Engine) Tick(ctx context.Context) error {
	errExpire := e.expireOffers(ctx)
	errOrphans := e.requeueOrphans(ctx)
	errPrune := e.prune(ctx)
	_, errRoute := e.Route(ctx)
	errPos := e.updatePositions(ctx, false)
	return errors.Join(errExpire, errOrphans, errPrune, errRoute, errPos)
}

// Route runs routing passes until one offers nothing (at most 64 passes)
// and returns how many tickets it offered.
func (e *Engine) Route(ctx context.Context) (int, error) {
	total := 0
	for range 64 {
		e.order.Lock()
		now := e.now()
		offered, err := e.store.Route(ctx, RouteRequest{
			Now:          now,
			LiveAfter:    e.liveAfter(now),
			OfferExpires: now.Add(e.cfg.OfferTimeout),
			Limit:        e.cfg.RouteBatch,
			Node:         e.cfg.Node,
			Match:        Match,
		})
		if err != nil {
			e.order.Unlock()
			return total, fmt.Errorf("handoff: route: %w", err)
		}
		for _, t := range offered {
			e.m.transitions.WithLabelValues(ReasonRoute).Inc()
			e.m.offerLatency.Observe(t.OfferedAt.Sub(t.QueuedAt).Seconds())
			e.emit(Event{Type: EventOffered, At: t.OfferedAt, Ticket: ptr(t), AgentID: t.AgentID, Reason: ReasonRoute})
		}
		e.order.Unlock()
		total += len(offered)
		if len(offered) == 0 {
			break
		}
	}
	if total > 0 {
		e.mu.Lock()
		e.lastPos = time.Time{} // positions moved: recompute at the next Tick
		e.mu.Unlock()
	}
	return total, nil
}

const sweepBatch = 500

func (e *Engine) expireOffers(ctx context.Context) error {
	now := e.now()
	ts, err := e.store.ExpiredOffers(ctx, now, sweepBatch)
	if err != nil {
		return fmt.Errorf("handoff: expired offers: %w", err)
	}
	var errs []error
	for _, t := range ts {
		out, err := e.store.Apply(ctx, Change{
			TicketID: t.ID, Now: now, Node: e.cfg.Node, Reason: ReasonOfferTimeout,
			From: []tandem.TicketState{tandem.TicketOffered}, Holder: t.AgentID, Version: t.Version, OfferDue: true,
			To: tandem.TicketQueued, Skip: t.AgentID, SkipUntil: now.Add(e.cfg.SkipFor),
		})
		if tandem.ErrorCode(err) == tandem.ECONFLICT || tandem.ErrorCode(err) == tandem.ENOTFOUND {
			continue // another node (or the agent) got there first
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("handoff: expire offer %s: %w", t.ID, err))
			continue
		}
		e.m.transitions.WithLabelValues(ReasonOfferTimeout).Inc()
		e.emit(Event{Type: EventOfferExpired, At: now, Ticket: ptr(out), AgentID: t.AgentID, PrevAgentID: t.AgentID, Reason: ReasonOfferTimeout})
	}
	if len(ts) > 0 {
		e.requestRoute()
	}
	return errors.Join(errs...)
}

func (e *Engine) requeueOrphans(ctx context.Context) error {
	now := e.now()
	gone := &Gone{LiveAfter: e.liveAfter(now), Cutoff: now.Add(-e.cfg.DisconnectGrace)}
	ts, err := e.store.Orphans(ctx, gone.LiveAfter, gone.Cutoff, sweepBatch)
	if err != nil {
		return fmt.Errorf("handoff: orphans: %w", err)
	}
	_, err = e.requeueHeld(ctx, ts, gone, now, ReasonDisconnect)
	return err
}

// requeueHeld puts tickets back in the queue from their holder while the
// holder is still gone (gone), with reason: skipping those that changed
// meanwhile (conflict, not found) and stopping at the first the store
// refuses because the holder is back. It returns how many it re-queued.
func (e *Engine) requeueHeld(ctx context.Context, ts []tandem.Ticket, gone *Gone, now time.Time, reason string) (int, error) {
	n := 0
	var errs []error
	for _, t := range ts {
		out, err := e.store.Apply(ctx, Change{
			TicketID: t.ID, Now: now, Node: e.cfg.Node, Reason: reason,
			From: []tandem.TicketState{tandem.TicketOffered, tandem.TicketAssigned}, Holder: t.AgentID, Version: t.Version,
			HolderGone: gone, To: tandem.TicketQueued, SetLastAgent: true,
		})
		if errors.Is(err, ErrAgentReturned) && reason == ReasonSignOut {
			break // another console of theirs is open: they keep their chats
		}
		if tandem.ErrorCode(err) == tandem.ECONFLICT || tandem.ErrorCode(err) == tandem.ENOTFOUND {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("handoff: requeue %s: %w", t.ID, err))
			continue
		}
		n++
		e.m.transitions.WithLabelValues(reason).Inc()
		e.emit(Event{Type: EventRequeued, At: now, Ticket: ptr(out), PrevAgentID: t.AgentID, Reason: reason})
	}
	if n > 0 {
		e.requestRoute()
	}
	return n, errors.Join(errs...)
}

// prune drops sessions dead for a day (crashed nodes), every 10 minutes.
func (e *Engine) prune(ctx context.Context) error {
	now := e.now()
	e.mu.Lock()
	due := now.Sub(e.lastPrune) >= 10*time.Minute
	if due {
		e.lastPrune = now
	}
	e.mu.Unlock()
	if !due {
		return nil
	}
	if err := e.store.PruneSessions(ctx, now.Add(-24*time.Hour-e.cfg.DisconnectGrace-e.cfg.HeartbeatTimeout)); err != nil {
		return fmt.Errorf("handoff: prune sessions: %w", err)
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

func newID(prefix string) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}
