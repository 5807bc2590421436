package gateway

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tandem-chat/tandem"
)

// ConvLog is the conversation log: conversations and their messages, each
// message with a per-conversation sequence number (1, 2, 3, ... without
// gaps) and an optional client idempotency key.
//
// Contract (checked for every implementation by gateway/convlogtest):
//   - Append assigns the next seq and stores the message durably before it
//     returns; only then may the caller acknowledge it.
//   - Append with a ClientID already stored in that conversation stores
//     nothing and returns the stored message with duplicate = true.
//   - Appends to one conversation are serialised: seqs have no gaps and no
//     repeats even when several nodes append at once.
//   - Messages returns messages with seq > after in ascending seq order.
//   - Errors are *tandem.Error with ENOTFOUND for unknown conversations and
//     ECONFLICT for an existing id in CreateConversation.
//
// All methods may be called concurrently.
type ConvLog interface {
	// CreateConversation stores a new conversation; c.ID must be set.
	CreateConversation(ctx context.Context, c tandem.Conversation) (tandem.Conversation, error)
	// Conversation returns one conversation.
	Conversation(ctx context.Context, id string) (tandem.Conversation, error)
	// LatestConversation returns the customer's most recently updated
	// conversation on the site that is not closed.
	LatestConversation(ctx context.Context, siteKey, customerID string) (tandem.Conversation, error)
	// Append stores m with the next seq (m.Seq is ignored) and returns it.
	Append(ctx context.Context, m tandem.Message) (stored tandem.Message, duplicate bool, err error)
	// Messages returns up to limit messages with seq > after, ascending.
	Messages(ctx context.Context, conversationID string, after int64, limit int) ([]tandem.Message, error)
	// SetMode sets the conversation's mode and assigned agent ("" for none).
	SetMode(ctx context.Context, id string, mode tandem.Mode, agentID string) (tandem.Conversation, error)
	// SwapMode sets the mode and agent only if the conversation's mode is
	// still from (compare-and-swap); it reports whether it did, with the
	// conversation as it stands after the call.
	SwapMode(ctx context.Context, id string, from, to tandem.Mode, agentID string) (tandem.Conversation, bool, error)
	// Erase deletes the conversation and all its messages for good (the
	// customer's right to erasure); an unknown id is not_found.
	Erase(ctx context.Context, id string) error
	// CustomerConversations returns up to limit of the customer's
	// conversations on the site, in every mode (closed ones too), most
	// recently updated first (ties by id, descending).
	CustomerConversations(ctx context.Context, siteKey, customerID string, limit int) ([]tandem.Conversation, error)
	// IdleConversations returns up to limit conversations last updated
	// before the given time, least recently updated first (ties by id),
	// starting after the cursor (the zero cursor starts at the oldest).
	IdleConversations(ctx context.Context, before time.Time, after IdleCursor, limit int) ([]tandem.Conversation, error)
	// EraseIdle erases the conversation as Erase does, but only if it was
	// last updated before the given time (in the same step, so a message
	// appended meanwhile keeps it); it reports whether it did. An unknown
	// id is not an error: false.
	EraseIdle(ctx context.Context, id string, before time.Time) (bool, error)
}

// IdleCursor is a position in the order of IdleConversations: the
// UpdatedAt and ID of the last conversation of the previous page.
type IdleCursor struct {
	UpdatedAt time.Time
	ID        string
}

// precedes reports whether c comes after the cursor in IdleConversations' order.
func (cur IdleCursor) precedes(c tandem.Conversation) bool {
	if !c.UpdatedAt.Equal(cur.UpdatedAt) {
		return c.UpdatedAt.After(cur.UpdatedAt)
	}
	return c.ID > cur.ID
}

// MemLog is the in-memory ConvLog (the embedded default). It keeps
// everything until the process exits; use the Postgres log in production.
type MemLog struct {
	now func() time.Time

	mu    sync.RWMutex // guards convs
	convs map[string]*memConv
}

type memConv struct {
	conv     tandem.Conversation
	msgs     []tandem.Message // msgs[i].Seq == i+1
	byClient map[string]int64 // client id -> seq
}

var _ ConvLog = (*MemLog)(nil)

// NewMemLog returns an empty in-memory log.
func NewMemLog() *MemLog {
	return &MemLog{now: time.Now, convs: map[string]*memConv{}}
}

// CreateConversation implements ConvLog.
func (l *MemLog) CreateConversation(_ context.Context, c tandem.Conversation) (tandem.Conversation, error) {
	if c.ID == "" {
		return c, tandem.Errorf(tandem.EINVALID, "conversation id is empty")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.convs[c.ID]; ok {
		return c, tandem.Errorf(tandem.ECONFLICT, "conversation %s exists", c.ID)
	}
	now := l.now().UTC()
	if c.CreatedAt.IsZero() {
		c.CreatedAt = now
	}
	c.UpdatedAt = c.CreatedAt
	c.LastSeq = 0
	if c.Mode == "" {
		c.Mode = tandem.ModeBot
	}
	l.convs[c.ID] = &memConv{conv: c, byClient: map[string]int64{}}
	return c, nil
}

// Conversation implements ConvLog.
func (l *MemLog) Conversation(_ context.Context, id string) (tandem.Conversation, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	mc, ok := l.convs[id]
	if !ok {
		return tandem.Conversation{}, tandem.Errorf(tandem.ENOTFOUND, "conversation not found")
	}
	return mc.conv, nil
}

// LatestConversation implements ConvLog.
func (l *MemLog) LatestConversation(_ context.Context, siteKey, customerID string) (tandem.Conversation, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var best *tandem.Conversation
	for _, mc := range l.convs {
		c := &mc.conv
		if c.SiteKey != siteKey || c.Customer.ID != customerID || c.Mode == tandem.ModeClosed {
			continue
		}
		if best == nil || c.UpdatedAt.After(best.UpdatedAt) || c.UpdatedAt.Equal(best.UpdatedAt) && c.ID > best.ID {
			best = c
		}
	}
	if best == nil {
		return tandem.Conversation{}, tandem.Errorf(tandem.ENOTFOUND, "conversation not found")
	}
	return *best, nil
}

// Append implements ConvLog.
func (l *MemLog) Append(_ context.Context, m tandem.Message) (tandem.Message, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	mc, ok := l.convs[m.ConversationID]
	if !ok {
		return m, false, tandem.Errorf(tandem.ENOTFOUND, "conversation not found")
	}
	if m.ClientID != "" {
		if seq, ok := mc.byClient[m.ClientID]; ok {
			return mc.msgs[seq-1], true, nil
		}
	}
	m.Seq = int64(len(mc.msgs)) + 1
	if m.CreatedAt.IsZero() {
		m.CreatedAt = l.now().UTC()
	}
	if m.Kind == "" {
		m.Kind = "text"
	}
	mc.msgs = append(mc.msgs, m)
	if m.ClientID != "" {
		mc.byClient[m.ClientID] = m.Seq
	}
	mc.conv.LastSeq = m.Seq
	mc.conv.UpdatedAt = m.CreatedAt
	return m, false, nil
}

// Messages implements ConvLog.
func (l *MemLog) Messages(_ context.Context, id string, after int64, limit int) ([]tandem.Message, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	mc, ok := l.convs[id]
	if !ok {
		return nil, tandem.Errorf(tandem.ENOTFOUND, "conversation not found")
	}
	if after < 0 {
		after = 0
	}
	if after >= int64(len(mc.msgs)) || limit <= 0 {
		return []tandem.Message{}, nil
	}
	end := min(int64(len(mc.msgs)), after+int64(limit))
	return slices.Clone(mc.msgs[after:end]), nil
}

// SetMode implements ConvLog.
func (l *MemLog) SetMode(_ context.Context, id string, mode tandem.Mode, agentID string) (tandem.Conversation, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	mc, ok := l.convs[id]
	if !ok {
		return tandem.Conversation{}, tandem.Errorf(tandem.ENOTFOUND, "conversation not found")
	}
	mc.conv.Mode = mode
	mc.conv.AgentID = agentID
	mc.conv.UpdatedAt = l.now().UTC()
	return mc.conv, nil
}

// Erase implements ConvLog.
func (l *MemLog) Erase(_ context.Context, id string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.convs[id]; !ok {
		return tandem.Errorf(tandem.ENOTFOUND, "conversation not found")
	}
	delete(l.convs, id)
	return nil
}

// CustomerConversations implements ConvLog.
func (l *MemLog) CustomerConversations(_ context.Context, siteKey, customerID string, limit int) ([]tandem.Conversation, error) {
	return l.scan(limit, func(c tandem.Conversation) bool { return c.SiteKey == siteKey && c.Customer.ID == customerID }, true)
}

// IdleConversations implements ConvLog.
func (l *MemLog) IdleConversations(_ context.Context, before time.Time, after IdleCursor, limit int) ([]tandem.Conversation, error) {
	return l.scan(limit, func(c tandem.Conversation) bool { return c.UpdatedAt.Before(before) && after.precedes(c) }, false)
}

// scan returns up to limit conversations that match, ordered by UpdatedAt
// then ID, ascending or (newest) descending. It reads every conversation:
// the in-memory log is for one node and modest volumes.
func (l *MemLog) scan(limit int, match func(tandem.Conversation) bool, newest bool) ([]tandem.Conversation, error) {
	if limit <= 0 {
		return nil, tandem.Errorf(tandem.EINVALID, "limit must be positive")
	}
	l.mu.RLock()
	var out []tandem.Conversation
	for _, mc := range l.convs {
		if match(mc.conv) {
			out = append(out, mc.conv)
		}
	}
	l.mu.RUnlock()
	slices.SortFunc(out, func(a, b tandem.Conversation) int {
		if newest {
			a, b = b, a
		}
		if c := a.UpdatedAt.Compare(b.UpdatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// EraseIdle implements ConvLog.
func (l *MemLog) EraseIdle(_ context.Context, id string, before time.Time) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	mc, ok := l.convs[id]
	if !ok || !mc.conv.UpdatedAt.Before(before) {
		return false, nil
	}
	delete(l.convs, id)
	return true, nil
}

// SwapMode implements ConvLog.
func (l *MemLog) SwapMode(_ context.Context, id string, from, to tandem.Mode, agentID string) (tandem.Conversation, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	mc, ok := l.convs[id]
	if !ok {
		return tandem.Conversation{}, false, tandem.Errorf(tandem.ENOTFOUND, "conversation not found")
	}
	if mc.conv.Mode != from {
		return mc.conv, false, nil
	}
	mc.conv.Mode = to
	mc.conv.AgentID = agentID
	mc.conv.UpdatedAt = l.now().UTC()
	return mc.conv, true, nil
}
