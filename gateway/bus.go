package gateway

import (
	"context"
	"slices"
	"strings"
	"sync"

	"github.com/tandem-chat/tandem"
)

// Bus carries events between gateway nodes: conversation events (messages,
// typing, handoff status) and cache invalidations. The in-process LocalBus
// is the default; gateway/natsbus connects nodes through NATS.
//
// Contract: Subscribe returns once the subscription is active, so an event
// published (by any node) after Subscribe returns reaches the handler.
// Handlers of one subject are called sequentially, in publish order per
// publishing node; they must not block (hand work to a bounded queue), and
// must not publish on their own subject (a node's own events are delivered
// inside Publish: the handler would wait for itself).
// Delivery is at most once: a consumer that must not miss events (the
// connection writer) detects gaps by seq and reads them from the ConvLog.
// All methods may be called concurrently.
type Bus interface {
	Publish(ctx context.Context, subject string, data []byte) error
	Subscribe(subject string, handler func(data []byte)) (Subscription, error)
	Close() error
}

// Subscription is an active Bus subscription.
type Subscription interface {
	Unsubscribe() error
}

// Subjects on the bus.
const (
	// SubjectKBInvalidate carries knowledge-cache invalidations (payload
	// defined by the knowledge package); every node subscribes.
	SubjectKBInvalidate = "tandem.kb.invalidate"
	// conversationSubjectPrefix + conversation id carries that conversation's events.
	conversationSubjectPrefix = "tandem.conv."
)

// ConversationSubject is the bus subject of a conversation's events.
func ConversationSubject(conversationID string) string {
	return conversationSubjectPrefix + conversationID
}

// LocalBus is the in-process Bus: Publish calls the subject's handlers
// synchronously, so one process behaves as one node.
type LocalBus struct {
	mu     sync.RWMutex // guards subs, closed
	subs   map[string][]*localSub
	closed bool
}

type localSub struct {
	bus     *LocalBus
	subject string
	mu      sync.Mutex // serialises handler calls
	handler func([]byte)
}

var _ Bus = (*LocalBus)(nil)

// NewLocalBus returns an in-process bus.
func NewLocalBus() *LocalBus { return &LocalBus{subs: map[string][]*localSub{}} }

// Publish implements Bus.
func (b *LocalBus) Publish(_ context.Context, subject string, data []byte) error {
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		return tandem.Errorf(tandem.EUNAVAILABLE, "bus closed")
	}
	subs := b.subs[subject]
	b.mu.RUnlock()
	for _, s := range subs {
		s.mu.Lock()
		s.handler(data)
		s.mu.Unlock()
	}
	return nil
}

// Subscribe implements Bus.
func (b *LocalBus) Subscribe(subject string, handler func([]byte)) (Subscription, error) {
	if subject == "" || strings.ContainsAny(subject, " \t\r\n") {
		return nil, tandem.Errorf(tandem.EINVALID, "bad subject %q", subject)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, tandem.Errorf(tandem.EUNAVAILABLE, "bus closed")
	}
	s := &localSub{bus: b, subject: subject, handler: handler}
	// Copy on write: Publish iterates a snapshot without the lock.
	b.subs[subject] = append(append([]*localSub(nil), b.subs[subject]...), s)
	return s, nil
}

// Unsubscribe implements Subscription.
func (s *localSub) Unsubscribe() error {
	b := s.bus
	b.mu.Lock()
	defer b.mu.Unlock()
	cur := b.subs[s.subject]
	// A new slice: deliveries in flight range over the old one.
	next := slices.DeleteFunc(slices.Clone(cur), func(x *localSub) bool { return x == s })
	if len(next) == 0 {
		delete(b.subs, s.subject)
	} else {
		b.subs[s.subject] = next
	}
	return nil
}

// Close implements Bus.
func (b *LocalBus) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	b.subs = map[string][]*localSub{}
	return nil
}
