// Package natsbus is the NATS gateway.Bus: it connects gateway nodes so any
// node delivers to any connection and cache invalidations reach all nodes.
//
// Contract: Subscribe returns after the server has registered the
// subscription (a flush round trip, at most 2 s), so events published
// afterwards by any node are received; while NATS is away it returns at
// once (this node's events reach the handler; the client registers the
// subscription on reconnect, and OnLoss reports the gap). All subscriptions share one bounded channel drained
// by one dispatcher goroutine; handlers must not block. When the channel
// overflows, NATS drops messages for that subscription (counted in
// Dropped); conversation consumers recover them from the log by seq, at
// their next message or when Config.OnLoss (Chat.Resync) runs.
// Publish delivers to the node's own subscriptions at once, in the
// publisher's goroutine (as gateway.LocalBus does), then hands the event
// to NATS for the other nodes (the connection is NoEcho: NATS does not
// bring it back), so a NATS outage stalls only delivery across nodes; the
// NATS side is asynchronous (buffered by the client, also while
// reconnecting). A subscription's handler is never called concurrently
// (local publishes and the dispatcher take turns). Close flushes and
// drains. All methods may be called concurrently.
package natsbus

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/gateway"
)

// Config configures the bus.
type Config struct {
	URL  string // e.g. nats://127.0.0.1:4222
	Name string // connection name shown by the NATS server (default "tandem")
	// Buffer is the capacity of the shared delivery channel (default 65536).
	Buffer int
	Logger *slog.Logger
	// OnLoss, when set, is called (on its own goroutine, at most once a
	// second) when messages may have been lost: after a reconnect, and
	// when NATS dropped deliveries to a slow consumer. The gateway wires
	// it to Chat.Resync, which recovers conversation messages from the log.
	OnLoss func()
}

// Bus is a NATS-backed gateway.Bus.
type Bus struct {
	nc     *nats.Conn
	ch     chan *nats.Msg
	logger *slog.Logger
	stop   chan struct{} // closed by Close
	done   chan struct{} // closed when the dispatcher exits

	mu       sync.RWMutex // guards handlers, local, closed
	handlers map[*nats.Subscription]*sub
	local    map[string][]*sub // subject -> this node's subscriptions (copy on write)
	closed   bool

	dropped       atomic.Int64
	publishFailed atomic.Int64
	closeOnce     sync.Once

	onLoss   func()
	lossMu   sync.Mutex // guards lossLast, lossSoon
	lossLast time.Time
	lossSoon bool // a call is scheduled
}

// lost calls OnLoss now, or once when the second since the last call has
// passed; calls in between are coalesced into that one.
func (b *Bus) lost() {
	if b.onLoss == nil {
		return
	}
	b.lossMu.Lock()
	defer b.lossMu.Unlock()
	if b.lossSoon {
		return
	}
	wait := time.Until(b.lossLast.Add(time.Second))
	b.lossSoon = true
	time.AfterFunc(max(wait, 0), func() {
		b.lossMu.Lock()
		b.lossSoon, b.lossLast = false, time.Now()
		b.lossMu.Unlock()
		b.onLoss()
	})
}

var _ gateway.Bus = (*Bus)(nil)

// Connect connects to NATS (retrying in the background after a lost
// connection) and starts the dispatcher.
func Connect(ctx context.Context, cfg Config) (*Bus, error) {
	if cfg.Name == "" {
		cfg.Name = "tandem"
	}
	if cfg.Buffer <= 0 {
		cfg.Buffer = 1 << 16
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	b := &Bus{ch: make(chan *nats.Msg, cfg.Buffer), logger: cfg.Logger, stop: make(chan struct{}), done: make(chan struct{}),
		handlers: map[*nats.Subscription]*sub{}, local: map[string][]*sub{}, onLoss: cfg.OnLoss}
	timeout := 5 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	nc, err := nats.Connect(cfg.URL,
		nats.Name(cfg.Name),
		nats.NoEcho(), // this node's subscriptions get its events from Publish
		nats.Timeout(timeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.ReconnectJitter(250*time.Millisecond, time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			cfg.Logger.Warn("nats disconnected", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			cfg.Logger.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
			b.lost() // what was published while we were away is gone
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if err == nats.ErrSlowConsumer {
				b.dropped.Add(1)
				b.lost()
			}
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			cfg.Logger.Warn("nats async error", "subject", subj, "err", err)
		}),
	)
	if err != nil {
		return nil, tandem.WrapError(tandem.EUNAVAILABLE, err, "cannot connect to NATS")
	}
	b.nc = nc
	go b.dispatch()
	return b, nil
}

func (b *Bus) dispatch() {
	defer close(b.done)
	for {
		var m *nats.Msg
		select {
		case m = <-b.ch:
		case <-b.stop:
			return
		}
		b.mu.RLock()
		s := b.handlers[m.Sub]
		b.mu.RUnlock()
		if s != nil {
			s.deliver(m.Data)
		}
	}
}

// sub is one subscription: its handler, called by local publishes and by
// the dispatcher, one call at a time.
type sub struct {
	b       *Bus
	subject string
	ns      *nats.Subscription
	mu      sync.Mutex // serialises handler calls
	handler func([]byte)
}

func (s *sub) deliver(data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handler(data)
}

// Publish implements gateway.Bus: this node's subscriptions first, then
// the other nodes through NATS. Once delivered here it reports success:
// a NATS failure (the reconnect buffer full in a long outage, a payload
// over the server's limit) is logged and counted, and the other nodes'
// connections fill the gap from the log (at their next event, on resume,
// or at the resync after the reconnect). A closed bus delivers nothing.
func (b *Bus) Publish(_ context.Context, subject string, data []byte) error {
	b.mu.RLock()
	subs, closed := b.local[subject], b.closed
	b.mu.RUnlock()
	if closed {
		return tandem.Errorf(tandem.EUNAVAILABLE, "bus closed")
	}
	for _, s := range subs {
		s.deliver(data)
	}
	if err := b.nc.Publish(subject, data); err != nil {
		b.publishFailed.Add(1)
		b.logger.Warn("nats publish failed: other nodes catch up from the log", "subject", subject, "err", err)
	}
	return nil
}

// PublishFailed returns how many events reached only this node (NATS
// refused them).
func (b *Bus) PublishFailed() int64 { return b.publishFailed.Load() }

// subscribeFlush bounds how long Subscribe waits for the server to
// confirm a subscription.
const subscribeFlush = 2 * time.Second

// Subscribe implements gateway.Bus.
func (b *Bus) Subscribe(subject string, handler func([]byte)) (gateway.Subscription, error) {
	if subject == "" || strings.ContainsAny(subject, " \t\r\n*>") {
		return nil, tandem.Errorf(tandem.EINVALID, "bad subject %q", subject)
	}
	// Register the handler before messages can arrive.
	s := &sub{b: b, subject: subject, handler: handler}
	b.mu.Lock()
	ns, err := b.nc.ChanSubscribe(subject, b.ch)
	if err != nil {
		b.mu.Unlock()
		return nil, tandem.WrapError(tandem.EUNAVAILABLE, err, "bus subscribe failed")
	}
	s.ns = ns
	b.handlers[ns] = s
	b.local[subject] = append(append([]*sub(nil), b.local[subject]...), s)
	b.mu.Unlock()
	if !b.nc.IsConnected() {
		// NATS is away: the client sends the subscription when it
		// reconnects, and the resync after the reconnect (OnLoss) fills
		// what the other nodes published meanwhile. This node's events
		// reach it at once.
		return s, nil
	}
	if err := b.nc.FlushTimeout(subscribeFlush); err != nil {
		if b.nc.IsClosed() {
			_ = s.Unsubscribe()
			return nil, tandem.WrapError(tandem.EUNAVAILABLE, err, "bus subscribe failed")
		}
		// NATS went away just now (or is slow): the subscription stands,
		// as above.
		b.logger.Warn("nats subscribe not confirmed; it is sent again on reconnect", "subject", subject, "err", err)
	}
	return s, nil
}

// Unsubscribe implements gateway.Subscription.
func (s *sub) Unsubscribe() error {
	b := s.b
	b.mu.Lock()
	delete(b.handlers, s.ns)
	cur := b.local[s.subject]
	// A new slice: deliveries in flight range over the old one.
	next := slices.DeleteFunc(slices.Clone(cur), func(x *sub) bool { return x == s })
	if len(next) == 0 {
		delete(b.local, s.subject)
	} else {
		b.local[s.subject] = next
	}
	b.mu.Unlock()
	if err := s.ns.Unsubscribe(); err != nil && err != nats.ErrConnectionClosed && err != nats.ErrBadSubscription {
		return fmt.Errorf("natsbus: unsubscribe %s: %w", s.subject, err)
	}
	return nil
}

// Dropped returns how many times NATS reported a slow consumer (dropped messages).
func (b *Bus) Dropped() int64 { return b.dropped.Load() }

// Ping checks the connection (for readiness checks).
func (b *Bus) Ping(context.Context) error {
	if !b.nc.IsConnected() {
		return tandem.Errorf(tandem.EUNAVAILABLE, "NATS not connected (%s)", b.nc.Status())
	}
	return nil
}

// Close flushes pending publishes, closes the connection and stops the dispatcher.
func (b *Bus) Close() error {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closed = true
		b.local = map[string][]*sub{}
		b.mu.Unlock()
		_ = b.nc.FlushTimeout(2 * time.Second)
		b.nc.Close()
		close(b.stop)
		<-b.done
	})
	return nil
}
