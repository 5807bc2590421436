package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/tandem-chat/tandem"
)

// hookBus runs hook once, right after a subscription becomes active.
type hookBus struct {
	*LocalBus
	hook func()
}

func (b *hookBus) Subscribe(subject string, h func([]byte)) (Subscription, error) {
	s, err := b.LocalBus.Subscribe(subject, h)
	if err == nil && b.hook != nil {
		hk := b.hook
		b.hook = nil
		hk()
	}
	return s, err
}

// followHandler follows or unfollows one conversation on "follow" and
// "unfollow" frames (as the console does when access comes and goes).
type followHandler struct{ conv string }

func (h *followHandler) HandleFrame(_ context.Context, c *Conn, data []byte) {
	switch string(data) {
	case "follow":
		_ = c.Follow(h.conv, 0)
	case "unfollow":
		c.Unfollow(h.conv)
	}
}
func (h *followHandler) Closed(*Conn) {}

// TestRefollowReplaysInOrder: after Unfollow, a new Follow delivers its
// replay in order. A message logged while the new follow subscribes used
// to be checked against the old follow's position and written (with a gap
// fill) before the replay: 1, 2, 3, 1, 2, 3 instead of 1, then 1, 2, 3.
func TestRefollowReplaysInOrder(t *testing.T) {
	bus := &hookBus{LocalBus: NewLocalBus()}
	auth, err := NewAuth([]byte(strings.Repeat("x", 32)), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	log := NewMemLog()
	chat, err := NewChat(ChatConfig{}, ChatDeps{Log: log, Bus: bus, Auth: auth, Sites: StaticSites{}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const conv = "c1"
	if _, err := log.CreateConversation(ctx, tandem.Conversation{ID: conv, SiteKey: "s"}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { chat.Accept(w, r, &followHandler{conv: conv}) }))
	defer srv.Close()
	ws, _, err := websocket.DefaultDialer.Dial(strings.Replace(srv.URL, "http", "ws", 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	var seqs []int64
	read := func(n int) {
		for range n {
			_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, b, err := ws.ReadMessage()
			if err != nil {
				t.Fatalf("read: %v (got %v)", err, seqs)
			}
			var f struct {
				Message tandem.Message `json:"message"`
			}
			_ = json.Unmarshal(b, &f)
			seqs = append(seqs, f.Message.Seq)
		}
	}
	post := func(text string) {
		if _, _, err := chat.PostMessage(ctx, tandem.Message{ConversationID: conv, Author: tandem.AuthorAgent, Text: text}); err != nil {
			t.Error(err)
		}
	}
	post("one")
	_ = ws.WriteMessage(websocket.TextMessage, []byte("follow"))
	read(1) // the replay of seq 1
	_ = ws.WriteMessage(websocket.TextMessage, []byte("unfollow"))
	for chat.hub.Subscribers(conv) > 0 { // the unfollow took effect
		time.Sleep(time.Millisecond)
	}
	post("two")
	bus.hook = func() { post("three") } // logged while the new follow subscribes
	_ = ws.WriteMessage(websocket.TextMessage, []byte("follow"))
	read(3)
	if want := []int64{1, 1, 2, 3}; !slices.Equal(seqs, want) {
		t.Fatalf("seqs written = %v, want %v", seqs, want)
	}
}

// hookSub runs onUnsub (once) when unsubscribed.
type hookSub struct {
	Subscription
	onUnsub func()
}

func (s *hookSub) Unsubscribe() error {
	err := s.Subscription.Unsubscribe()
	if f := s.onUnsub; f != nil {
		s.onUnsub = nil
		f()
	}
	return err
}

// unsubHookBus hands out subscriptions whose Unsubscribe runs hook once.
type unsubHookBus struct {
	*LocalBus
	hook func()
}

func (b *unsubHookBus) Subscribe(subject string, h func([]byte)) (Subscription, error) {
	s, err := b.LocalBus.Subscribe(subject, h)
	if err != nil {
		return s, err
	}
	hs := &hookSub{Subscription: s, onUnsub: b.hook}
	b.hook = nil
	return hs, nil
}

// grabHandler follows on "follow" and unfollows on "unfollow", and keeps
// the connection for the test.
type grabHandler struct {
	conv string
	conn atomic.Pointer[Conn]
}

func (h *grabHandler) HandleFrame(_ context.Context, c *Conn, data []byte) {
	h.conn.Store(c)
	switch string(data) {
	case "follow":
		_ = c.Follow(h.conv, 0)
	case "unfollow":
		c.Unfollow(h.conv)
	}
}
func (h *grabHandler) Closed(*Conn) {}

// TestFollowRacingUnfollowKeepsDelivering: a Follow of a conversation that
// lands while an Unfollow of it is finishing (the console's reader and
// worker both follow) must leave the conversation delivered: the
// unfollow's "forget the position" must not overtake the new follow.
func TestFollowRacingUnfollowKeepsDelivering(t *testing.T) {
	const conv = "c1"
	h := &grabHandler{conv: conv}
	// The first subscription's Unsubscribe re-follows, from inside the
	// Unfollow that triggers it.
	bus := &unsubHookBus{LocalBus: NewLocalBus()}
	raced := make(chan struct{})
	bus.hook = func() {
		defer close(raced)
		if err := h.conn.Load().Follow(conv, 0); err != nil {
			t.Error(err)
		}
	}
	auth, err := NewAuth([]byte(strings.Repeat("x", 32)), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	log := NewMemLog()
	chat, err := NewChat(ChatConfig{}, ChatDeps{Log: log, Bus: bus, Auth: auth, Sites: StaticSites{}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := log.CreateConversation(ctx, tandem.Conversation{ID: conv, SiteKey: "s"}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { chat.Accept(w, r, h) }))
	defer srv.Close()
	ws, _, err := websocket.DefaultDialer.Dial(strings.Replace(srv.URL, "http", "ws", 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	_ = ws.WriteMessage(websocket.TextMessage, []byte("follow"))
	for chat.hub.Subscribers(conv) == 0 {
		time.Sleep(time.Millisecond)
	}
	_ = ws.WriteMessage(websocket.TextMessage, []byte("unfollow")) // re-follows inside
	select {
	case <-raced:
	case <-time.After(10 * time.Second): // a hang guard
		t.Fatal("the racing follow did not happen")
	}
	for chat.hub.Subscribers(conv) == 0 {
		time.Sleep(time.Millisecond)
	}
	if _, _, err := chat.PostMessage(ctx, tandem.Message{ConversationID: conv, Author: tandem.AuthorAgent, Text: "live"}); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, b, err := ws.ReadMessage()
	if err != nil || !strings.Contains(string(b), `"live"`) {
		t.Fatalf("the followed conversation's message did not arrive: %s, %v", b, err)
	}
}
