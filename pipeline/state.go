package pipeline

import (
	"container/list"
	"context"
	"sync"
	"time"

	"github.com/tandem-chat/tandem/internal/convlock"
)

// State is the dialogue state of one conversation, bounded in size.
type State struct {
	RecentIntents  []string          `json:"recent_intents,omitempty"` // newest last, at most maxRecent
	Slots          map[string]string `json:"slots,omitempty"`          // entity type -> latest value, at most maxSlots
	Fallbacks      int               `json:"fallbacks"`                // consecutive low-confidence turns
	PendingClarify []Choice          `json:"pending_clarify,omitempty"`
	// PendingSlotIntent is the intent whose response the bot asked a
	// missing value for ("Could you tell me your order id?"): the next turn
	// that gives the value gets that response.
	PendingSlotIntent string    `json:"pending_slot_intent,omitempty"`
	Turns             int       `json:"turns"`
	UpdatedAt         time.Time `json:"updated_at"`
	// VIPEscalatedAt is when the customer's VIP tier last escalated the
	// conversation: a VIP handed back to the bot (or who withdrew the
	// request) is answered by it, not escalated again, for vipRepeat.
	VIPEscalatedAt time.Time `json:"vip_escalated_at,omitzero"`
}

// Choice is one option of a pending clarification.
type Choice struct {
	Label  string `json:"label"`
	Intent string `json:"intent,omitempty"`
	FAQID  string `json:"faq_id,omitempty"`
}

const (
	maxRecent = 5
	maxSlots  = 32
)

func (s *State) pushIntent(intent string) {
	s.RecentIntents = append(s.RecentIntents, intent)
	if len(s.RecentIntents) > maxRecent {
		s.RecentIntents = append(s.RecentIntents[:0], s.RecentIntents[len(s.RecentIntents)-maxRecent:]...)
	}
}

func (s *State) setSlot(k, v string) {
	if s.Slots == nil {
		s.Slots = map[string]string{}
	}
	if _, ok := s.Slots[k]; !ok && len(s.Slots) >= maxSlots {
		return
	}
	s.Slots[k] = v
}

// StateStore keeps dialogue state per conversation. Implementations must
// be safe for concurrent use; the pipeline serialises Load/Save per
// conversation itself.
type StateStore interface {
	Load(ctx context.Context, conversationID string) (State, error)
	Save(ctx context.Context, conversationID string, s State) error
	// Delete forgets a conversation's state (its slots hold what the
	// customer said: emails, order ids); an unknown one is no error.
	Delete(ctx context.Context, conversationID string) error
}

// MemoryStateStore is a bounded in-memory StateStore: least recently used
// conversations are evicted beyond Max, and idle ones after TTL.
type MemoryStateStore struct {
	max int
	ttl time.Duration

	mu    sync.Mutex // guards items, order
	items map[string]*list.Element
	order *list.List // front = most recent; values are *stateEntry
}

type stateEntry struct {
	id    string
	s     State
	saved time.Time // store clock at the last Save: idle time counts from here
}

// NewMemoryStateStore returns a store holding at most max conversations
// (default 100,000) idle for at most ttl (default 24h).
func NewMemoryStateStore(max int, ttl time.Duration) *MemoryStateStore {
	if max <= 0 {
		max = 100_000
	}
	if ttl <= 0 {
		ttl = 24 * time.Hour
	}
	return &MemoryStateStore{max: max, ttl: ttl, items: map[string]*list.Element{}, order: list.New()}
}

// Load returns the state, or a zero State for an unknown conversation.
func (m *MemoryStateStore) Load(_ context.Context, id string) (State, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	el, ok := m.items[id]
	if !ok {
		return State{}, nil
	}
	e := el.Value.(*stateEntry)
	if time.Since(e.saved) > m.ttl {
		m.order.Remove(el)
		delete(m.items, id)
		return State{}, nil
	}
	m.order.MoveToFront(el)
	return cloneState(e.s), nil
}

// Save stores a copy of s.
func (m *MemoryStateStore) Save(_ context.Context, id string, s State) error {
	s = cloneState(s)
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	if el, ok := m.items[id]; ok {
		e := el.Value.(*stateEntry)
		e.s, e.saved = s, now
		m.order.MoveToFront(el)
		return nil
	}
	m.items[id] = m.order.PushFront(&stateEntry{id: id, s: s, saved: now})
	for m.order.Len() > m.max {
		last := m.order.Back()
		m.order.Remove(last)
		delete(m.items, last.Value.(*stateEntry).id)
	}
	return nil
}

// Delete forgets the conversation's state.
func (m *MemoryStateStore) Delete(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if el, ok := m.items[id]; ok {
		m.order.Remove(el)
		delete(m.items, id)
	}
	return nil
}

// Len returns the number of conversations held.
func (m *MemoryStateStore) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.items)
}

func cloneState(s State) State {
	s.RecentIntents = append([]string(nil), s.RecentIntents...)
	s.PendingClarify = append([]Choice(nil), s.PendingClarify...)
	if s.Slots != nil {
		m := make(map[string]string, len(s.Slots))
		for k, v := range s.Slots {
			m[k] = v
		}
		s.Slots = m
	}
	return s
}

// convLocks serialises the state read-modify-write of one conversation
// (convlock.Locks): a stripe is held across the store's Load and Save, and
// a turn whose caller left stops waiting (unavailable, wrapping the
// context's error).
type convLocks struct{ l convlock.Locks }

func (c *convLocks) lock(ctx context.Context, id string) (func(), error) {
	unlock, err := c.l.Lock(ctx, id)
	if err != nil {
		return nil, turnEnded(ctx)
	}
	return unlock, nil
}
