package gateway

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
)

// Event is one conversation event as it travels between nodes: an encoded
// server frame, plus the seq when the frame is a logged message (Seq > 0)
// and the id of the connection that caused it (Origin; ephemeral frames
// such as typing are not echoed back to their origin).
type Event struct {
	ConversationID string
	Seq            int64
	Origin         string
	Frame          []byte // one JSON server frame
}

// encodeEvent renders "seq conversation origin\n" followed by the frame:
// cheaper than a JSON envelope around a JSON frame.
func encodeEvent(ev *Event) []byte {
	b := make([]byte, 0, len(ev.Frame)+len(ev.ConversationID)+len(ev.Origin)+24)
	b = strconv.AppendInt(b, ev.Seq, 10)
	b = append(b, ' ')
	b = append(b, ev.ConversationID...)
	b = append(b, ' ')
	b = append(b, ev.Origin...)
	b = append(b, '\n')
	return append(b, ev.Frame...)
}

func decodeEvent(data []byte) (*Event, error) {
	head, frame, ok := bytes.Cut(data, []byte{'\n'})
	if !ok {
		return nil, fmt.Errorf("event without header")
	}
	parts := bytes.SplitN(head, []byte{' '}, 3)
	if len(parts) != 3 {
		return nil, fmt.Errorf("malformed event header")
	}
	seq, err := strconv.ParseInt(string(parts[0]), 10, 64)
	if err != nil || seq < 0 {
		return nil, fmt.Errorf("malformed event seq")
	}
	return &Event{Seq: seq, ConversationID: string(parts[1]), Origin: string(parts[2]), Frame: frame}, nil
}

// Subscriber receives the events of the conversations it subscribed to.
// Deliver must not block: it queues the event or drops the subscriber.
type Subscriber interface {
	Deliver(ev *Event)
}

// Hub fans conversation events out to subscribers (customer widgets and
// agent consoles) on this node, and carries them between nodes over the
// Bus: a node subscribes to a conversation's bus subject while it has at
// least one local subscriber to it.
//
// Contract: Subscribe returns once events published afterwards (on any
// node) will be delivered; delivery is at most once and in publish order
// per publishing node; subscribers detect message gaps by seq. All methods
// may be called concurrently.
type Hub struct {
	bus    Bus
	logger *slog.Logger

	mu    sync.Mutex // guards convs
	convs map[string]*hubConv
}

type hubConv struct {
	ready chan struct{} // closed when the bus subscription is set up
	err   error         // set before ready is closed
	sub   Subscription

	mu   sync.RWMutex // guards subs
	subs map[Subscriber]struct{}
}

// NewHub returns a hub on the bus.
func NewHub(bus Bus, logger *slog.Logger) *Hub {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Hub{bus: bus, logger: logger, convs: map[string]*hubConv{}}
}

// Subscribe adds s to the conversation's subscribers; the returned function
// removes it (call it exactly once).
func (h *Hub) Subscribe(conversationID string, s Subscriber) (unsubscribe func(), err error) {
	for {
		h.mu.Lock()
		hc := h.convs[conversationID]
		if hc == nil {
			hc = &hubConv{ready: make(chan struct{}), subs: map[Subscriber]struct{}{s: {}}}
			h.convs[conversationID] = hc
			h.mu.Unlock()
			hc.sub, hc.err = h.bus.Subscribe(ConversationSubject(conversationID), func(data []byte) { h.onBus(hc, data) })
			close(hc.ready)
			if hc.err != nil {
				h.mu.Lock()
				if h.convs[conversationID] == hc {
					delete(h.convs, conversationID)
				}
				h.mu.Unlock()
				return nil, fmt.Errorf("gateway: hub subscribe %s: %w", conversationID, hc.err)
			}
			return h.unsubscriber(conversationID, hc, s), nil
		}
		hc.mu.Lock()
		hc.subs[s] = struct{}{}
		hc.mu.Unlock()
		h.mu.Unlock()
		<-hc.ready
		if hc.err != nil {
			hc.mu.Lock()
			delete(hc.subs, s)
			hc.mu.Unlock()
			continue // the first subscriber failed and removed hc; try afresh
		}
		return h.unsubscriber(conversationID, hc, s), nil
	}
}

func (h *Hub) unsubscriber(conversationID string, hc *hubConv, s Subscriber) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			h.mu.Lock()
			hc.mu.Lock()
			delete(hc.subs, s)
			empty := len(hc.subs) == 0
			hc.mu.Unlock()
			if empty && h.convs[conversationID] == hc {
				delete(h.convs, conversationID)
			} else {
				empty = false
			}
			h.mu.Unlock()
			if empty && hc.sub != nil {
				if err := hc.sub.Unsubscribe(); err != nil {
					h.logger.Warn("hub: bus unsubscribe", "conversation", conversationID, "err", err)
				}
			}
		})
	}
}

func (h *Hub) onBus(hc *hubConv, data []byte) {
	ev, err := decodeEvent(data)
	if err != nil {
		h.logger.Warn("hub: bad event on bus", "err", err)
		return
	}
	hc.mu.RLock()
	defer hc.mu.RUnlock()
	for s := range hc.subs {
		s.Deliver(ev)
	}
}

// Publish sends an event to every subscriber of its conversation on every node.
func (h *Hub) Publish(ctx context.Context, ev *Event) error {
	if err := h.bus.Publish(ctx, ConversationSubject(ev.ConversationID), encodeEvent(ev)); err != nil {
		return fmt.Errorf("gateway: publish to %s: %w", ev.ConversationID, err)
	}
	return nil
}

// Subscribers returns how many local subscribers the conversation has.
func (h *Hub) Subscribers(conversationID string) int {
	h.mu.Lock()
	hc := h.convs[conversationID]
	h.mu.Unlock()
	if hc == nil {
		return 0
	}
	hc.mu.RLock()
	defer hc.mu.RUnlock()
	return len(hc.subs)
}
