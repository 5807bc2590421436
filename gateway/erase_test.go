package gateway_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/gateway"
	"github.com/tandem-chat/tandem/internal/browsertest"
)

// erasingHandoff keeps "tickets" per conversation and erases them, or
// refuses while one is open.
type erasingHandoff struct {
	fakeHandoff
	mu      sync.Mutex
	open    map[string]bool
	tickets map[string]int // closed tickets per conversation
	erased  []string
	forgets []string
}

func (h *erasingHandoff) EraseConversation(_ context.Context, id string) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.open[id] {
		return 0, tandem.Errorf(tandem.ECONFLICT, "the conversation has an open ticket")
	}
	h.erased = append(h.erased, id)
	n := h.tickets[id]
	delete(h.tickets, id)
	return n, nil
}

// HandoffState implements gateway.HandoffStater: a conversation marked open
// has an open ticket (and the bot keeps answering it: not held).
func (h *erasingHandoff) HandoffState(_ context.Context, id string) (gateway.HandoffState, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return gateway.HandoffState{Open: h.open[id]}, nil
}

// forgettingBot echoes and records the conversations it was told to forget.
type forgettingBot struct {
	echoBot
	h *erasingHandoff
}

func (b forgettingBot) Forget(_ context.Context, id string) error {
	b.h.mu.Lock()
	defer b.h.mu.Unlock()
	b.h.forgets = append(b.h.forgets, id)
	return nil
}

func (ts *testServer) erase(t *testing.T, id, bearer string) int {
	t.Helper()
	code, _ := ts.request(t, "DELETE", "/v1/conversations/"+id, bearer)
	return code
}

// TestEraseConversation: an admin erases a conversation for good — the
// handoff's tickets, the bot's state, the log — and its customer's token
// then names none (the widget starts a new one). Only admins may; a
// conversation with an open ticket is refused with nothing deleted; an
// unknown one is 404.
func TestEraseConversation(t *testing.T) {
	ctx := context.Background()
	h := &erasingHandoff{open: map[string]bool{}, tickets: map[string]int{}}
	ts := startServer(t, serverOpts{handoffImpl: h, bot: forgettingBot{h: h}})
	s := ts.session(t, nil)
	ws := ts.connect(t, s.Token, 0)
	ws.send(map[string]any{"type": "message", "client_id": "m1", "text": "my email is ada@example.com"})
	ws.until(messageFrom(tandem.AuthorBot))
	id := s.ConversationID

	agent, _ := ts.Auth.IssueStaff("agent-7", "Sam", gateway.RoleAgent, "", time.Hour)
	for _, who := range []struct{ name, bearer string }{{"nobody", ""}, {"the customer", s.Token}, {"an agent", agent}} {
		if code := ts.erase(t, id, who.bearer); code != 401 && code != 403 {
			t.Fatalf("erase by %s: %d, want 401 or 403", who.name, code)
		}
	}
	h.mu.Lock()
	h.open[id] = true
	h.mu.Unlock()
	if code := ts.erase(t, id, testAdmin); code != 409 {
		t.Fatalf("erase with an open ticket: %d, want 409", code)
	}
	if msgs, err := ts.Log.Messages(ctx, id, 0, 10); err != nil || len(msgs) != 2 {
		t.Fatalf("after a refused erase the log has %d messages, %v; want both", len(msgs), err)
	}
	h.mu.Lock()
	h.open[id] = false
	h.mu.Unlock()
	if code := ts.erase(t, id, testAdmin); code != 204 {
		t.Fatalf("erase: %d, want 204", code)
	}
	if _, err := ts.Log.Conversation(ctx, id); tandem.ErrorCode(err) != tandem.ENOTFOUND {
		t.Fatalf("erased conversation read: %v, want not_found", err)
	}
	h.mu.Lock()
	if len(h.erased) != 1 || h.erased[0] != id || len(h.forgets) != 1 || h.forgets[0] != id {
		t.Fatalf("handoff erased %v, bot forgot %v; want %s once each", h.erased, h.forgets, id)
	}
	// A ticket left after the log went (an escalation racing the erasure,
	// closed since) is erased by a second call; with nothing left, 404.
	h.tickets[id] = 1
	h.mu.Unlock()
	if code := ts.erase(t, id, testAdmin); code != 204 {
		t.Fatalf("erase of the ticket left behind: %d, want 204", code)
	}
	if code := ts.erase(t, id, testAdmin); code != 404 {
		t.Fatalf("erase with nothing left: %d, want 404", code)
	}
	// The customer's token names no conversation any more.
	if code, _ := ts.get(t, "/v1/conversations/"+id+"/messages", s.Token); code != 403 && code != 404 {
		t.Fatalf("history with the old token: %d, want 403 or 404", code)
	}
	if code := ts.helloClose(t, s.Token); code != 4401 {
		t.Fatalf("hello with the old token: close %d, want 4401 (start a new session)", code)
	}
}

// slowForgettingBot answers once released and records what it forgot.
type slowForgettingBot struct {
	entered, release chan struct{}
	mu               sync.Mutex
	forgets          []string
}

func (b *slowForgettingBot) Respond(_ context.Context, turn tandem.Turn) (tandem.Reply, error) {
	b.entered <- struct{}{}
	<-b.release
	return tandem.Reply{Kind: tandem.ReplyAnswer, Text: "echo: " + turn.Text}, nil
}

func (b *slowForgettingBot) Forget(_ context.Context, id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.forgets = append(b.forgets, id)
	return nil
}

// TestEraseDuringTurn: a conversation erased while the bot answers it —
// the turn saved state the erasure did not see — is forgotten again when
// the turn finds the conversation gone, and its answer goes nowhere.
func TestEraseDuringTurn(t *testing.T) {
	bot := &slowForgettingBot{entered: make(chan struct{}, 1), release: make(chan struct{})}
	ts := startServer(t, serverOpts{bot: bot})
	s := ts.session(t, nil)
	ws := ts.connect(t, s.Token, 0)
	ws.send(map[string]any{"type": "message", "client_id": "m1", "text": "my order is 48213"})
	<-bot.entered
	if code := ts.erase(t, s.ConversationID, testAdmin); code != 204 {
		t.Fatalf("erase: %d", code)
	}
	close(bot.release)
	deadline := time.Now().Add(10 * time.Second)
	for ts.Chat.PendingTurns() > 0 {
		if time.Now().After(deadline) { // a hang guard
			t.Fatal("the turn did not end")
		}
		time.Sleep(5 * time.Millisecond)
	}
	bot.mu.Lock()
	defer bot.mu.Unlock()
	if len(bot.forgets) != 2 {
		t.Fatalf("forgot %v, want the conversation twice (by the erasure, then by the turn that outlived it)", bot.forgets)
	}
}

// A customer whose conversation was erased while their widget is open
// writes again: the widget starts a new conversation and the message is
// answered there, instead of staying "not sent".
func TestBrowserWidgetAfterErasure(t *testing.T) {
	ts, ctx := onlineWidget(t, serverOpts{})
	conv := helloFromWidget(t, ctx)
	if code := ts.erase(t, conv, testAdmin); code != 204 {
		t.Fatalf("erase: %d", code)
	}
	sendFromWidget(t, ctx, "are you there")
	waitFor(t, ctx, "the answer in a new conversation",
		`document.getElementById("tandem-log").textContent.includes("echo: are you there") && `+noPendingLeft+
			` && window.__tandemWidget.state().conversationId !== `+strconv.Quote(conv))
	if n := browsertest.Eval[int](t, ctx, `document.querySelectorAll("#tandem-log .tandem-failed").length`); n != 0 {
		t.Fatalf("%d messages shown as not sent", n)
	}
}
