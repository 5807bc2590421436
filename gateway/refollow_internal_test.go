package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/tandem-chat/tandem"
)

// hookBus runs onSubscribe once, right after a subscription becomes
// active, and onUnsubscribe once, when the next subscription it hands out
// is unsubscribed. Set them before the frame that triggers them.
type hookBus struct {
	*LocalBus
	onSubscribe, onUnsubscribe func()
}

func (b *hookBus) Subscribe(subject string, h func([]byte)) (Subscription, error) {
	s, err := b.LocalBus.Subscribe(subject, h)
	if err != nil {
		return s, err
	}
	if hk := b.onSubscribe; hk != nil {
		b.onSubscribe = nil
		hk()
	}
	hs := &hookSub{Subscription: s, onUnsub: b.onUnsubscribe}
	b.onUnsubscribe = nil
	return hs, nil
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

// followHandler follows or unfollows one conversation on "follow" and
// "unfollow" frames (as the console does when access comes and goes), and
// keeps the connection for the test.
type followHandler struct {
	conv string
	conn atomic.Pointer[Conn]
}

func (h *followHandler) HandleFrame(_ context.Context, c *Conn, data []byte) {
	h.conn.Store(c)
	switch string(data) {
	case "follow":
		_ = c.Follow(h.conv, 0)
	case "unfollow":
		c.Unfollow(h.conv)
	}
}
func (h *followHandler) Closed(*Conn) {}

// followRig is a chat on bus (memory log holding conversation h.conv)
// served over HTTP with h as every connection's handler, and one client
// connection to it.
func followRig(t *testing.T, bus Bus, h *followHandler) (*Chat, *websocket.Conn) {
	t.Helper()
	auth, err := NewAuth([]byte(strings.Repeat("x", 32)), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	log := NewMemLog()
	chat, err := NewChat(ChatConfig{}, ChatDeps{Log: log, Bus: bus, Auth: auth, Sites: StaticSites{}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := log.CreateConversation(context.Background(), tandem.Conversation{ID: h.conv, SiteKey: "s"}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { chat.Accept(w, r, h) }))
	t.Cleanup(srv.Close)
	ws, _, err := websocket.DefaultDialer.Dial(strings.Replace(srv.URL, "http", "ws", 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ws.Close() })
	return chat, ws
}

// TestRefollowReplaysInOrder: after Unfollow, a new Follow delivers its
// replay in order. A message logged while the new follow subscribes used
// to be checked against the old follow's position and written (with a gap
// fill) before the replay: 1, 2, 3, 1, 2, 3 instead of 1, then 1, 2, 3.
func TestRefollowReplaysInOrder(t *testing.T) {
	const conv = "c1"
	bus := &hookBus{LocalBus: NewLocalBus()}
	chat, ws := followRig(t, bus, &followHandler{conv: conv})
	ctx := context.Background()
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
	bus.onSubscribe = func() { post("three") } // logged while the new follow subscribes
	_ = ws.WriteMessage(websocket.TextMessage, []byte("follow"))
	read(3)
	if want := []int64{1, 1, 2, 3}; !slices.Equal(seqs, want) {
		t.Fatalf("seqs written = %v, want %v", seqs, want)
	}
}

// TestFollowRacingUnfollowKeepsDelivering: a Follow of a conversation that
// lands while an Unfollow of it is finishing (the console's reader and
// worker both follow) must leave the conversation delivered: the
// unfollow's "forget the position" must not overtake the new follow.
func TestFollowRacingUnfollowKeepsDelivering(t *testing.T) {
	const conv = "c1"
	h := &followHandler{conv: conv}
	// The first subscription's Unsubscribe re-follows, from inside the
	// Unfollow that triggers it.
	bus := &hookBus{LocalBus: NewLocalBus()}
	raced := make(chan struct{})
	bus.onUnsubscribe = func() {
		defer close(raced)
		if err := h.conn.Load().Follow(conv, 0); err != nil {
			t.Error(err)
		}
	}
	chat, ws := followRig(t, bus, h)
	ctx := context.Background()
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

// TestFollowAfterEndLeaksNothing: a Follow that lands after the connection
// ended (the console's worker follows on handoff events, on its own
// goroutine) must fail and leave no subscription behind; it used to
// subscribe for good, keeping the connection and the conversation's bus
// subscription for the life of the process.
func TestFollowAfterEndLeaksNothing(t *testing.T) {
	const conv = "c1"
	h := &followHandler{conv: conv}
	chat, ws := followRig(t, &hookBus{LocalBus: NewLocalBus()}, h)
	_ = ws.WriteMessage(websocket.TextMessage, []byte("hi"))
	deadline := time.Now().Add(10 * time.Second) // a hang guard
	for h.conn.Load() == nil {
		if time.Now().After(deadline) {
			t.Fatal("no frame handled")
		}
		time.Sleep(time.Millisecond)
	}
	_ = ws.Close()
	for chat.Connections() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the connection did not end")
		}
		time.Sleep(time.Millisecond)
	}
	c := h.conn.Load()
	if err := c.Follow(conv, 0); err == nil {
		t.Error("Follow on an ended connection succeeded")
	}
	if n := chat.hub.Subscribers(conv); n != 0 {
		t.Fatalf("%d subscribers left after the connection ended", n)
	}
}

// panicHandler panics on every frame.
type panicHandler struct{}

func (panicHandler) HandleFrame(context.Context, *Conn, []byte) { panic("nil map in a handler") }
func (panicHandler) Closed(*Conn)                               {}

// TestFrameHandlerPanicClosesOnlyItsConnection: a panic while handling a
// frame closes that connection with 1011 (internal error) and the node
// keeps serving; it used to end the process.
func TestFrameHandlerPanicClosesOnlyItsConnection(t *testing.T) {
	auth, err := NewAuth([]byte(strings.Repeat("x", 32)), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	chat, err := NewChat(ChatConfig{}, ChatDeps{Log: NewMemLog(), Bus: NewLocalBus(), Auth: auth, Sites: StaticSites{}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { chat.Accept(w, r, panicHandler{}) }))
	defer srv.Close()
	for range 2 {
		ws, _, err := websocket.DefaultDialer.Dial(strings.Replace(srv.URL, "http", "ws", 1), nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = ws.WriteMessage(websocket.TextMessage, []byte("boom"))
		_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, _, err = ws.ReadMessage()
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.CloseInternalServerErr {
			t.Fatalf("after a handler panic: %v, want close 1011", err)
		}
		_ = ws.Close()
	}
}

// TestAcceptDuringShutdown: connections accepted while Shutdown starts
// are either waited for or told to reconnect; registering them raced
// Shutdown's wait (a WaitGroup Add concurrent with its Wait, reported by
// -race, which can panic).
func TestAcceptDuringShutdown(t *testing.T) {
	auth, err := NewAuth([]byte(strings.Repeat("x", 32)), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	for range 30 {
		chat, err := NewChat(ChatConfig{IPRate: 1e9, IPBurst: 1 << 30}, ChatDeps{Log: NewMemLog(), Bus: NewLocalBus(), Auth: auth, Sites: StaticSites{}})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { chat.Accept(w, r, &followHandler{conv: "c"}) }))
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 5 {
					if ws, _, err := websocket.DefaultDialer.Dial(strings.Replace(srv.URL, "http", "ws", 1), nil); err == nil {
						_ = ws.Close()
					}
				}
			}()
		}
		_ = chat.Shutdown(context.Background())
		wg.Wait()
		srv.Close()
	}
}
