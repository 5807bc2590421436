package gateway_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/gateway"
)

// stallOnceLog stalls the first Conversation call, or the first Append,
// made after it is armed (the store is slow for one request), holding up
// the frame that made it.
type stallOnceLog struct {
	gateway.ConvLog
	conv, appends atomic.Bool
	stalled       chan struct{} // closed when the stall begins
}

func newStallOnceLog() *stallOnceLog {
	return &stallOnceLog{ConvLog: gateway.NewMemLog(), stalled: make(chan struct{})}
}

func (l *stallOnceLog) stall() {
	close(l.stalled)
	time.Sleep(300 * time.Millisecond)
}

// waitStalled waits until the armed call stalls.
func (l *stallOnceLog) waitStalled(t *testing.T) {
	t.Helper()
	select {
	case <-l.stalled:
	case <-time.After(10 * time.Second): // a hang guard
		t.Fatal("the armed store call never came")
	}
}

func (l *stallOnceLog) Conversation(ctx context.Context, id string) (tandem.Conversation, error) {
	if l.conv.CompareAndSwap(true, false) {
		l.stall()
	}
	return l.ConvLog.Conversation(ctx, id)
}

func (l *stallOnceLog) Append(ctx context.Context, m tandem.Message) (tandem.Message, bool, error) {
	if l.appends.CompareAndSwap(true, false) {
		l.stall()
	}
	return l.ConvLog.Append(ctx, m)
}

// TestTwoTabsRepliesFollowTheLog: a customer writes from two tabs at once
// and the first message's frame is held up after the store took it; the
// bot still answers in the log's order (the second message's turn was
// queued and started first: replies swapped, and the bot saw the
// customer's messages out of order).
func TestTwoTabsRepliesFollowTheLog(t *testing.T) {
	log := newStallOnceLog()
	ts := startServer(t, serverOpts{log: log})
	s := ts.session(t, nil)
	a := ts.connect(t, s.Token, 0)
	b := ts.connect(t, s.Token, 0)
	log.conv.Store(true)
	a.send(map[string]any{"type": "message", "client_id": "a1", "text": "first"})
	log.waitStalled(t) // a's message is stored and its frame stalls
	b.send(map[string]any{"type": "message", "client_id": "b1", "text": "second"})
	var replies []tandem.Message
	a.until(func(f frame) bool {
		if f.Type == "message" {
			if m := f.msg(t); m.Author == tandem.AuthorBot {
				replies = append(replies, m)
			}
		}
		return len(replies) == 2
	})
	msgs, err := log.Messages(context.Background(), s.ConversationID, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	// The customer's messages in the order stored, the bot's answers in
	// the same order (b's message may be stored before or after the
	// answer to a's).
	var customer, bot []string
	for _, m := range msgs {
		switch m.Author {
		case tandem.AuthorCustomer:
			customer = append(customer, m.Text)
		case tandem.AuthorBot:
			bot = append(bot, strings.TrimPrefix(m.Text, "echo: "))
		}
	}
	if strings.Join(customer, ",") != "first,second" || strings.Join(bot, ",") != "first,second" {
		t.Fatalf("customer messages %q, bot answers to %q; want both first,second", customer, bot)
	}
}

// TestTwoTabsRateOnce: two tabs rate the closed conversation at once; one
// rating is logged and the other tab hears conflict (both were logged).
func TestTwoTabsRateOnce(t *testing.T) {
	ctx := context.Background()
	log := newStallOnceLog()
	ts := startServer(t, serverOpts{log: log})
	s := ts.session(t, nil)
	a := ts.connect(t, s.Token, 0)
	b := ts.connect(t, s.Token, 0)
	if err := ts.Chat.HandoffStatus(ctx, s.ConversationID, gateway.HandoffStatus{Status: gateway.HandoffClosed}); err != nil {
		t.Fatal(err)
	}
	log.appends.Store(true)
	a.send(map[string]any{"type": "rating", "client_id": "ra", "score": "good"})
	log.waitStalled(t) // a's rating found the conversation unrated and stalls in the append
	b.send(map[string]any{"type": "rating", "client_id": "rb", "score": "bad"})
	answer := func(c *wsClient) frame {
		f, _ := c.until(func(f frame) bool { return f.Type == "ack" || f.Type == "error" })
		return f
	}
	fa, fb := answer(a), answer(b)
	if fa.Type != "ack" || fb.Code != "conflict" {
		t.Fatalf("tab a: %s; tab b: %s; want an ack and conflict", fa.raw, fb.raw)
	}
	msgs, err := log.Messages(ctx, s.ConversationID, 0, 20)
	if err != nil {
		t.Fatal(err)
	}
	ratings := 0
	for _, m := range msgs {
		if m.Kind == "rating" {
			ratings++
		}
	}
	if ratings != 1 {
		t.Fatalf("%d ratings logged, want 1", ratings)
	}
}

// holdBot answers "wait" only when released, and echoes anything else.
type holdBot struct {
	started chan struct{}
	release chan struct{}
}

func (b holdBot) Respond(ctx context.Context, turn tandem.Turn) (tandem.Reply, error) {
	if turn.Text == "wait" {
		close(b.started)
		<-b.release
	}
	return echoBot{}.Respond(ctx, turn)
}

// TestAgentJoinedWhileBotAnswered: an agent takes the conversation while
// the bot works on the customer's message; the bot's answer is not posted
// after "You are now chatting with …" (the agent answers the message),
// and it is counted.
func TestAgentJoinedWhileBotAnswered(t *testing.T) {
	ctx := context.Background()
	bot := holdBot{started: make(chan struct{}), release: make(chan struct{})}
	ts := startServer(t, serverOpts{bot: bot})
	s := ts.session(t, nil)
	c := ts.connect(t, s.Token, 0)
	c.send(map[string]any{"type": "message", "client_id": "m1", "text": "wait"})
	select {
	case <-bot.started:
	case <-time.After(10 * time.Second): // a hang guard
		t.Fatal("the bot turn never started")
	}
	if err := ts.Chat.HandoffStatus(ctx, s.ConversationID, gateway.HandoffStatus{Status: gateway.HandoffAssigned, AgentID: "agent-1", AgentName: "Sam"}); err != nil {
		t.Fatal(err)
	}
	close(bot.release)
	// The turn is over: the bot's typing indicator goes off, or (the
	// fault) its answer comes.
	c.until(func(f frame) bool {
		return f.Type == "typing" && f.Author == string(tandem.AuthorBot) && !f.On || f.Type == "message" && f.msg(t).Author == tandem.AuthorBot
	})
	msgs, err := ts.Log.Messages(ctx, s.ConversationID, 0, 20)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if m.Author == tandem.AuthorBot {
			t.Fatalf("the bot answered after the agent joined: %+v", m)
		}
	}
	if _, body := ts.get(t, "/metrics", ""); !strings.Contains(body, "tandem_bot_answers_dropped_total 1") {
		t.Fatalf("dropped answer not counted:\n%s", grepLines(body, "tandem_bot_answers_dropped_total"))
	}
}

// TestMalformedHelloIsInvalidNotUnauthorized: a hello the server cannot
// read (a negative last_seq) closes with 4400, not 4401, on which widgets
// throw away a token that is fine; a hello without a usable token, or a
// first frame that is not a hello, still closes with 4401.
func TestMalformedHelloIsInvalidNotUnauthorized(t *testing.T) {
	ts := startServer(t, serverOpts{})
	s := ts.session(t, nil)
	for _, tc := range []struct {
		name  string
		frame map[string]any
		want  int
	}{
		{"negative last_seq", map[string]any{"type": "hello", "token": s.Token, "last_seq": -1}, 4400},
		{"Last_Seq negative, keys in another case", map[string]any{"Type": "hello", "Token": s.Token, "last_seq": -1}, 4400},
		{"token of the wrong type", map[string]any{"type": "hello", "token": 5}, 4400}, // the frame is malformed; the stored token may be fine
		{"null token", map[string]any{"type": "hello", "token": nil}, 4401},
		{"empty token", map[string]any{"type": "hello", "token": ""}, 4401},
		{"not a hello", map[string]any{"type": "message", "client_id": "m", "text": "hi"}, 4401},
	} {
		ws, _, err := ts.dial(t, testSite, ts.URL)
		if err != nil {
			t.Fatal(err)
		}
		ws.send(tc.frame)
		if code := ws.expectClose(); code != tc.want {
			t.Errorf("%s: close %d, want %d", tc.name, code, tc.want)
		}
		ws.ws.Close()
	}
	// The token still works.
	ts.connect(t, s.Token, 0)
}

// TestInvisibleMessageIsEmpty: a message of only zero-width and other
// invisible characters is refused as empty (it was stored and answered
// with a fallback).
func TestInvisibleMessageIsEmpty(t *testing.T) {
	ts := startServer(t, serverOpts{})
	s := ts.session(t, nil)
	c := ts.connect(t, s.Token, 0)
	c.send(map[string]any{"type": "message", "client_id": "z1", "text": "\u3000\u00a0\u200b\ufeff\u200d"})
	f, _ := c.until(isType("error"))
	if f.Code != "invalid" || !strings.Contains(string(f.raw), "empty") {
		t.Fatalf("invisible message: %s, want invalid empty", f.raw)
	}
	c.send(map[string]any{"type": "message", "client_id": "z2", "text": "👍\u200d"})
	if f, _ := c.until(func(f frame) bool { return f.Type == "ack" || f.Type == "error" }); f.Type != "ack" {
		t.Fatalf("a visible message with a joiner: %s, want an ack", f.raw)
	}
	// Blank letters and lone marks show nothing either.
	for i, text := range []string{"\u3164", "\u2800\u2800", "\ufe0f", "\u0301"} {
		c.send(map[string]any{"type": "message", "client_id": fmt.Sprint("z3-", i), "text": text})
		if f, _ := c.until(func(f frame) bool { return f.Type == "ack" || f.Type == "error" }); f.Code != "invalid" {
			t.Fatalf("%q: %s, want invalid empty", text, f.raw)
		}
	}
}

// A request for a person whose text shows nothing is stored with the
// button's words, not as an invisible message in the agent's transcript.
func TestInvisibleHandoffRequestGetsTheButtonsWords(t *testing.T) {
	ts := startServer(t, serverOpts{})
	s := ts.session(t, nil)
	c := ts.connect(t, s.Token, 0)
	c.send(map[string]any{"type": "handoff_request", "client_id": "h1", "text": "\u200b"})
	f, _ := c.until(messageFrom(tandem.AuthorCustomer))
	if m := f.msg(t); m.Text != "I would like to talk to a person." {
		t.Fatalf("stored text %q", m.Text)
	}
}

// withdrawBot withdraws the request for a person on "never mind".
type withdrawBot struct{}

func (withdrawBot) Respond(_ context.Context, turn tandem.Turn) (tandem.Reply, error) {
	if turn.Text == "never mind" {
		return tandem.Reply{Kind: tandem.ReplyAnswer, Text: "Alright, withdrawn.", WithdrawHandoff: turn.Queued}, nil
	}
	return tandem.Reply{Kind: tandem.ReplyAnswer, Text: "echo: " + turn.Text}, nil
}

// cancelRecorder is a Handoff that records withdrawn requests.
type cancelRecorder struct {
	fakeHandoff
	cancelled chan string
}

func (h *cancelRecorder) CancelHandoff(_ context.Context, id string) error {
	h.cancelled <- id
	return nil
}

// TestBotWithdrawsQueuedRequest: a bot reply that withdraws the request
// for a person (the customer said they no longer want one while queued)
// cancels the open request, as the widget's handoff_cancel does (the
// ticket stayed queued).
func TestBotWithdrawsQueuedRequest(t *testing.T) {
	ctx := context.Background()
	h := &cancelRecorder{cancelled: make(chan string, 1)}
	ts := startServer(t, serverOpts{bot: withdrawBot{}, handoffImpl: h})
	s := ts.session(t, nil)
	c := ts.connect(t, s.Token, 0)
	if err := ts.Chat.HandoffStatus(ctx, s.ConversationID, gateway.HandoffStatus{Status: gateway.HandoffQueued}); err != nil {
		t.Fatal(err)
	}
	c.send(map[string]any{"type": "message", "client_id": "n1", "text": "never mind"})
	select {
	case id := <-h.cancelled:
		if id != s.ConversationID {
			t.Fatalf("cancelled %q, want %q", id, s.ConversationID)
		}
	case <-time.After(10 * time.Second): // a hang guard
		t.Fatal("the request for a person was not withdrawn")
	}
}

// A message of 4,000 emoji written by a client that escapes characters
// beyond the Basic Multilingual Plane as surrogate pairs (Python's
// json.dumps: twelve bytes each, 48 KB) fits the read limit: it closed the
// connection with 1009, and so did every resend.
func TestEscapedEmojiMessageFits(t *testing.T) {
	ts := startServer(t, serverOpts{})
	s := ts.session(t, nil)
	c := ts.connect(t, s.Token, 0)
	raw := `{"type":"message","client_id":"e1","text":"` + strings.Repeat(`\ud83d\ude42`, 4000) + `"}`
	c.sendRaw(websocket.TextMessage, []byte(raw))
	if f, _ := c.until(func(f frame) bool { return f.Type == "ack" || f.Type == "error" }); f.Type != "ack" {
		t.Fatalf("escaped emoji: %s", f.raw)
	}
}
