package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
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
