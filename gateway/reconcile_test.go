package gateway_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/gateway"
)

// storeHandoff is a Handoff with a store of open tickets (HandoffStater);
// Escalate waits for gate before it records the ticket, like an engine
// whose store is slow to commit.
type storeHandoff struct {
	gate    chan struct{}
	entered chan string
	mu      sync.Mutex
	open    map[string]bool
	// committed, when set, runs after the ticket is recorded, before
	// Escalate returns (an agent quick enough to take it at once).
	committed func(id string)
}

func (h *storeHandoff) Escalate(ctx context.Context, id string, _ tandem.Escalation) error {
	h.entered <- id
	select {
	case <-h.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	h.mu.Lock()
	h.open[id] = true
	h.mu.Unlock()
	if h.committed != nil {
		h.committed(id)
	}
	return nil
}

func (h *storeHandoff) HandoffState(_ context.Context, id string) (gateway.HandoffState, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return gateway.HandoffState{Open: h.open[id]}, nil
}

// TestNoRepairWhileEscalating: the gateway puts a conversation in queued
// mode only once the handoff has committed its ticket. A customer message
// while the handoff is still committing must not be mistaken for a lost
// event (no "back with the assistant"): the bot answers it, as it does for
// any queued conversation before an agent joins, and the conversation ends
// up queued.
func TestNoRepairWhileEscalating(t *testing.T) {
	h := &storeHandoff{gate: make(chan struct{}), entered: make(chan string, 1), open: map[string]bool{}}
	ts := startServer(t, serverOpts{handoffImpl: h})
	s := ts.session(t, nil)
	c := ts.connect(t, s.Token, 0)
	c.send(map[string]any{"type": "message", "client_id": "m1", "text": "a human please"})
	if id := <-h.entered; id != s.ConversationID {
		t.Fatalf("escalated %s", id)
	}
	// The escalating turn is inside Escalate: no ticket yet.
	c.send(map[string]any{"type": "message", "client_id": "m2", "text": "still there?"})
	c.until(func(f frame) bool { return f.Type == "ack" && f.ClientID == "m2" })
	close(h.gate)
	f, skipped := c.until(func(f frame) bool { return f.Type == "message" && f.msg(t).Text == "echo: still there?" })
	for _, x := range append(skipped, f) {
		if x.Type == "handoff" && x.Status == "returned" || x.Type == "message" && strings.Contains(x.msg(t).Text, "back with the assistant") {
			t.Fatalf("the escalation in progress was taken for a lost event: %s", x.raw)
		}
	}
	conv, err := ts.Log.Conversation(context.Background(), s.ConversationID)
	if err != nil || conv.Mode != tandem.ModeQueued {
		t.Fatalf("conversation = %+v, %v; want queued", conv, err)
	}
	mfs, err := ts.Server.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if mf.GetName() == "tandem_handoff_mode_repaired_total" {
			found = true
			if n := mf.GetMetric()[0].GetCounter().GetValue(); n != 0 {
				t.Fatalf("repaired = %v", n)
			}
		}
	}
	if !found {
		t.Fatal("tandem_handoff_mode_repaired_total is not registered")
	}
}

// TestAgentFasterThanEscalate: an agent who takes the ticket before the
// gateway's Escalate call returns has put the conversation in human mode;
// the gateway's switch to queued must not undo that.
func TestAgentFasterThanEscalate(t *testing.T) {
	h := &storeHandoff{gate: make(chan struct{}), entered: make(chan string, 1), open: map[string]bool{}}
	close(h.gate)
	ts := startServer(t, serverOpts{handoffImpl: h})
	h.committed = func(id string) {
		if err := ts.Chat.HandoffStatus(context.Background(), id, gateway.HandoffStatus{Status: gateway.HandoffAssigned, AgentID: "a1", AgentName: "Sam"}); err != nil {
			t.Error(err)
		}
	}
	s := ts.session(t, nil)
	c := ts.connect(t, s.Token, 0)
	c.send(map[string]any{"type": "handoff_request", "client_id": "h1"})
	<-h.entered
	c.until(func(f frame) bool { return f.Type == "handoff" && f.Status == "assigned" })
	ts.Chat.Shutdown(context.Background()) // waits for the escalating turn
	conv, err := ts.Log.Conversation(context.Background(), s.ConversationID)
	if err != nil || conv.Mode != tandem.ModeHuman || conv.AgentID != "a1" {
		t.Fatalf("conversation = %+v, %v; want human with agent a1", conv, err)
	}
}

// TestSessionControlCharacters: a NUL in the session request's locale or
// identity is the caller's mistake: the locale hint is ignored and the
// identity refused with 400, on PostgreSQL too (which cannot store NUL and
// answered 500).
func TestSessionControlCharacters(t *testing.T) {
	ts := startServer(t, serverOpts{log: pgLog(t)})
	code, body := ts.post(t, "/v1/widget/session", map[string]any{"site_key": testSite, "locale": "en\x00"}, ts.URL)
	if code != 200 {
		t.Fatalf("locale with NUL: %d %s", code, body)
	}
	id := map[string]any{"user_id": "u1", "name": "Ada\x00", "signature": gateway.SignIdentity([]byte(testSiteSecret), "u1")}
	code, body = ts.post(t, "/v1/widget/session", map[string]any{"site_key": testSiteKey2, "identity": id}, "https://shop.example")
	if code != 400 || !strings.Contains(body, "invalid") {
		t.Fatalf("identity with NUL: %d %s", code, body)
	}
}

// TestResyncDeliversLostMessages: a message that reached the log but whose
// bus event was lost (a NATS outage, a dropped delivery) reaches the
// conversation's connections when the chat resyncs (the bus calls it on
// such losses), not only with the conversation's next message.
func TestResyncDeliversLostMessages(t *testing.T) {
	ts := startServer(t, serverOpts{})
	s := ts.session(t, nil)
	c := ts.connect(t, s.Token, 0)
	c.send(map[string]any{"type": "ping", "id": "ready"})
	c.until(isType("pong"))
	// Logged, never published: its event is lost.
	if _, _, err := ts.Log.Append(context.Background(), tandem.Message{ConversationID: s.ConversationID, Author: tandem.AuthorAgent, AuthorName: "Sam", Text: "your refund is on its way"}); err != nil {
		t.Fatal(err)
	}
	ts.Chat.Resync()
	if f, _ := c.until(messageFrom(tandem.AuthorAgent)); !strings.Contains(f.msg(t).Text, "refund is on its way") {
		t.Fatalf("got %s", f.raw)
	}
}

// TestLateReturnedEventAfterRepair: when the "returned" event is late
// rather than lost, the repair (on the customer's message) gets there
// first; the late event then announces nothing twice.
func TestLateReturnedEventAfterRepair(t *testing.T) {
	h := &storeHandoff{gate: make(chan struct{}), entered: make(chan string, 1), open: map[string]bool{}}
	close(h.gate)
	ts := startServer(t, serverOpts{handoffImpl: h})
	s := ts.session(t, nil)
	c := ts.connect(t, s.Token, 0)
	ctx := context.Background()
	c.send(map[string]any{"type": "handoff_request", "client_id": "h1"})
	<-h.entered
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if cv, _ := ts.Log.Conversation(ctx, s.ConversationID); cv.Mode == tandem.ModeQueued {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("not queued")
		}
	}
	// The ticket ends in the store; its event is still on its way.
	h.mu.Lock()
	delete(h.open, s.ConversationID)
	h.mu.Unlock()
	c.send(map[string]any{"type": "message", "client_id": "m1", "text": "hello?"})
	c.until(func(f frame) bool { return f.Type == "message" && f.msg(t).Text == "echo: hello?" })
	if err := ts.Chat.HandoffStatus(ctx, s.ConversationID, gateway.HandoffStatus{Status: gateway.HandoffReturned}); err != nil {
		t.Fatal(err)
	}
	msgs, err := ts.Log.Messages(ctx, s.ConversationID, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	notes := 0
	for _, m := range msgs {
		if m.Author == tandem.AuthorSystem && strings.Contains(m.Text, "back with the assistant") {
			notes++
		}
	}
	if notes != 1 {
		t.Fatalf("%d 'back with the assistant' notes, want 1", notes)
	}
}

// failingLog fails Conversation while broken is set (a database outage).
type failingLog struct {
	gateway.ConvLog
	broken atomic.Bool
}

func (l *failingLog) Conversation(ctx context.Context, id string) (tandem.Conversation, error) {
	if l.broken.Load() {
		return tandem.Conversation{}, errors.New("pq: connection refused")
	}
	return l.ConvLog.Conversation(ctx, id)
}

// TestHelloDuringStoreOutageSaysRetry: a store failure at hello closes
// with 1013 (try again later), as protocol.md documents, not 1011.
func TestHelloDuringStoreOutageSaysRetry(t *testing.T) {
	log := &failingLog{ConvLog: gateway.NewMemLog()}
	ts := startServer(t, serverOpts{log: log})
	s := ts.session(t, nil)
	log.broken.Store(true)
	ws, _, err := ts.dial(t, testSite, ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	ws.send(map[string]any{"type": "hello", "token": s.Token})
	if code := ws.expectClose(); code != 1013 {
		t.Fatalf("close code %d, want 1013", code)
	}
}

// failingMessagesLog fails Messages while broken is set (a database outage
// after the hello's conversation read).
type failingMessagesLog struct {
	gateway.ConvLog
	broken atomic.Bool
}

func (l *failingMessagesLog) Messages(ctx context.Context, id string, after int64, limit int) ([]tandem.Message, error) {
	if l.broken.Load() {
		return nil, errors.New("pq: connection refused")
	}
	return l.ConvLog.Messages(ctx, id, after, limit)
}

// TestReplayDuringStoreOutageSaysRetry: a log read that fails while the
// connection replays (after the welcome) closes with 1013, as protocol.md
// documents ("dependency unavailable (log read failed)"); the writer used
// to give up before writing its close frame (1006, no reason).
func TestReplayDuringStoreOutageSaysRetry(t *testing.T) {
	log := &failingMessagesLog{ConvLog: gateway.NewMemLog()}
	ts := startServer(t, serverOpts{log: log})
	s := ts.session(t, nil)
	log.broken.Store(true)
	if code := ts.helloClose(t, s.Token); code != 1013 {
		t.Fatalf("close code %d, want 1013", code)
	}
}

// blinkingLog fails the first Conversation read after each customer
// Append (one failed query in a database blip).
type blinkingLog struct {
	gateway.ConvLog
	failNext atomic.Bool
}

func (l *blinkingLog) Append(ctx context.Context, m tandem.Message) (tandem.Message, bool, error) {
	stored, dup, err := l.ConvLog.Append(ctx, m)
	if err == nil && m.Author == tandem.AuthorCustomer {
		l.failNext.Store(true)
	}
	return stored, dup, err
}

func (l *blinkingLog) Conversation(ctx context.Context, id string) (tandem.Conversation, error) {
	if l.failNext.CompareAndSwap(true, false) {
		return tandem.Conversation{}, errors.New("pq: connection reset by peer")
	}
	return l.ConvLog.Conversation(ctx, id)
}

// TestStoreBlipAfterAppendStillAnswered: a stored and acknowledged message
// whose conversation could not be read right after the append (who
// answers is then unknown) still gets its turn, which decides from the
// conversation as it stands; it used to be acknowledged and never
// answered, and its resend, a duplicate, was not answered either.
func TestStoreBlipAfterAppendStillAnswered(t *testing.T) {
	log := &blinkingLog{ConvLog: gateway.NewMemLog()}
	ts := startServer(t, serverOpts{log: log})
	s := ts.session(t, nil)
	ws := ts.connect(t, s.Token, 0)
	ws.send(map[string]any{"type": "message", "client_id": "m1", "text": "hello there"})
	f, _ := ws.until(messageFrom(tandem.AuthorBot))
	if m := f.msg(t); m.Text != "echo: hello there" {
		t.Fatalf("bot answered %q", m.Text)
	}
}

// syncCancelHandoff reports "returned" from inside CancelHandoff (a
// handoff whose events are delivered synchronously).
type syncCancelHandoff struct {
	chat *gateway.Chat
	mu   sync.Mutex
	open map[string]bool
}

func (h *syncCancelHandoff) Escalate(_ context.Context, id string, _ tandem.Escalation) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.open[id] = true
	return nil
}

func (h *syncCancelHandoff) HandoffState(_ context.Context, id string) (gateway.HandoffState, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return gateway.HandoffState{Open: h.open[id]}, nil
}

func (h *syncCancelHandoff) CancelHandoff(ctx context.Context, id string) error {
	h.mu.Lock()
	open := h.open[id]
	delete(h.open, id)
	h.mu.Unlock()
	if !open {
		return tandem.Errorf(tandem.ENOTFOUND, "there is no open request for a person in this conversation")
	}
	return h.chat.HandoffStatus(ctx, id, gateway.HandoffStatus{Status: gateway.HandoffReturned})
}

// TestCancelLoggedBeforeReturnedNote: protocol.md promises the customer's
// handoff_cancel message first, then the "returned" frame and note. The
// request was logged only after the handoff had cancelled, so a handoff
// reporting "returned" at once put the note before the request.
func TestCancelLoggedBeforeReturnedNote(t *testing.T) {
	h := &syncCancelHandoff{open: map[string]bool{}}
	ts := startServer(t, serverOpts{handoffImpl: h})
	h.chat = ts.Chat
	s := ts.session(t, nil)
	c := ts.connect(t, s.Token, 0)
	ctx := context.Background()
	c.send(map[string]any{"type": "handoff_cancel", "client_id": "x0"})
	if f, _ := c.until(isType("error")); f.Code != tandem.ENOTFOUND || f.ClientID != "x0" {
		t.Fatalf("cancel without a request: %s", f.raw)
	}
	c.send(map[string]any{"type": "handoff_request", "client_id": "h1"})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) { // a hang guard
		if conv, _ := ts.Log.Conversation(ctx, s.ConversationID); conv.Mode == tandem.ModeQueued {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("not queued")
		}
	}
	c.send(map[string]any{"type": "handoff_cancel", "client_id": "x1"})
	ack, _ := c.until(func(f frame) bool { return f.Type == "ack" && f.ClientID == "x1" })
	msgs, err := ts.Log.Messages(ctx, s.ConversationID, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var cancelSeq, noteSeq int64
	for _, m := range msgs {
		switch {
		case m.Kind == "handoff_cancel":
			cancelSeq = m.Seq
		case m.Author == tandem.AuthorSystem && strings.Contains(m.Text, "back with the assistant"):
			noteSeq = m.Seq
		}
	}
	if ack.Seq != cancelSeq || cancelSeq == 0 || noteSeq == 0 || cancelSeq > noteSeq {
		t.Fatalf("ack %s; request at seq %d, note at seq %d (want the request first)", ack.raw, cancelSeq, noteSeq)
	}
	// A resend (its ack lost) is acknowledged again, nothing new logged.
	c.send(map[string]any{"type": "handoff_cancel", "client_id": "x1"})
	if f, _ := c.until(func(f frame) bool { return f.Type == "ack" && f.ClientID == "x1" }); f.Seq != cancelSeq || !f.Duplicate {
		t.Fatalf("repeated cancel: %s", f.raw)
	}
	if after, _ := ts.Log.Messages(ctx, s.ConversationID, 0, 100); len(after) != len(msgs) {
		t.Fatalf("the resend logged %d more", len(after)-len(msgs))
	}
}

// lostAckLog stores the next customer message, then reports an error once
// armed: the commit went through but its answer was lost (a connection
// reset after COMMIT), so the client is told to try again.
type lostAckLog struct {
	gateway.ConvLog
	armed atomic.Bool
}

func (l *lostAckLog) Append(ctx context.Context, m tandem.Message) (tandem.Message, bool, error) {
	stored, dup, err := l.ConvLog.Append(ctx, m)
	if err == nil && m.Author == tandem.AuthorCustomer && l.armed.CompareAndSwap(true, false) {
		return tandem.Message{}, false, errors.New("pq: connection reset by peer")
	}
	return stored, dup, err
}

// TestResendOfUnansweredMessageAnswered: a message stored although the
// store reported an error is sent again under its client_id, as the widget
// does on an internal or unavailable error; the resend is a duplicate, and
// it gets the bot's answer the first attempt never had. It used to be
// acknowledged as a duplicate and never answered. A resend of a message
// that was answered is not answered again.
func TestResendOfUnansweredMessageAnswered(t *testing.T) {
	log := &lostAckLog{ConvLog: gateway.NewMemLog()}
	ts := startServer(t, serverOpts{log: log})
	s := ts.session(t, nil)
	ws := ts.connect(t, s.Token, 0)
	log.armed.Store(true)
	ws.send(map[string]any{"type": "message", "client_id": "m1", "text": "hello there"})
	// (The stored message itself may come first: the connection's replay
	// of the log can read it.)
	if f, _ := ws.until(func(f frame) bool { return f.Type != "message" }); f.Type != "error" || (f.Code != "internal" && f.Code != "unavailable") {
		t.Fatalf("first attempt: got %s, want an internal or unavailable error", f.raw)
	}
	ws.send(map[string]any{"type": "message", "client_id": "m1", "text": "hello there"})
	ack, _ := ws.until(isType("ack"))
	if !ack.Duplicate || ack.Seq != 1 {
		t.Fatalf("resend: ack %s, want a duplicate of seq 1", ack.raw)
	}
	f, _ := ws.until(messageFrom(tandem.AuthorBot))
	if m := f.msg(t); m.Text != "echo: hello there" {
		t.Fatalf("bot answered %q", m.Text)
	}
	// Answered now: a third attempt is only acknowledged.
	ws.send(map[string]any{"type": "message", "client_id": "m1", "text": "hello there"})
	ws.until(isType("ack"))
	ws.send(map[string]any{"type": "message", "client_id": "m2", "text": "second"})
	f, _ = ws.until(messageFrom(tandem.AuthorBot))
	if m := f.msg(t); m.Text != "echo: second" {
		t.Fatalf("after the third attempt the bot said %q, want only the answer to the next message", m.Text)
	}
	msgs, err := log.Messages(context.Background(), s.ConversationID, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 4 {
		t.Fatalf("log has %d messages, want 4 (two questions, two answers): %+v", len(msgs), msgs)
	}
}

// TestHelloAnswersLostTurn: a customer message stored and acknowledged by
// a node that stopped before its bot turn (here: appended to the log with
// no turn) is answered when the customer connects again — at once when it
// is older than LostTurnAfter, otherwise once it reaches that age (until
// then another node may still be running its turn). A message something
// answered is left alone.
func TestHelloAnswersLostTurn(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		age  time.Duration
	}{{"old", time.Minute}, {"young", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			log := gateway.NewMemLog()
			ts := startServer(t, serverOpts{log: log, cfg: gateway.ChatConfig{LostTurnAfter: 300 * time.Millisecond}})
			s := ts.session(t, nil)
			m := tandem.Message{ConversationID: s.ConversationID, ClientID: "m1", Author: tandem.AuthorCustomer,
				Text: "where is my parcel", Kind: "text", CreatedAt: time.Now().Add(-tc.age).UTC()}
			if _, _, err := log.Append(ctx, m); err != nil {
				t.Fatal(err)
			}
			ws := ts.connect(t, s.Token, 0)
			f, _ := ws.until(messageFrom(tandem.AuthorBot))
			if got := f.msg(t); got.Text != "echo: where is my parcel" {
				t.Fatalf("bot said %q", got.Text)
			}
			// Answered: the next hello leaves it alone, and the next
			// message's answer is the next bot message.
			ws.ws.Close()
			ws = ts.connect(t, s.Token, 0)
			ws.send(map[string]any{"type": "message", "client_id": "m2", "text": "thanks"})
			f, _ = ws.until(func(f frame) bool { return messageFrom(tandem.AuthorBot)(f) && f.msg(t).Seq > 2 })
			if got := f.msg(t); got.Text != "echo: thanks" {
				t.Fatalf("after the second hello the bot said %q, want only the answer to the next message", got.Text)
			}
		})
	}
}

// gatedBot holds every turn whose text starts with "slow" until release is
// closed; the rest are echoBot's.
type gatedBot struct {
	echoBot
	release chan struct{}
	held    chan string
}

func (b gatedBot) Respond(ctx context.Context, turn tandem.Turn) (tandem.Reply, error) {
	if strings.HasPrefix(turn.Text, "slow") {
		b.held <- turn.ConversationID
		select {
		case <-b.release:
		case <-ctx.Done():
			return tandem.Reply{}, ctx.Err()
		}
	}
	return b.echoBot.Respond(ctx, turn)
}

// TestHandoffButtonTakesNoTurnSlot: with every turn slot of the node held
// by a slow turn (a generator streaming), the "talk to a person" button of
// another conversation still escalates at once; a plain message waits.
func TestHandoffButtonTakesNoTurnSlot(t *testing.T) {
	bot := gatedBot{release: make(chan struct{}), held: make(chan string, 1)}
	ts := startServer(t, serverOpts{bot: bot, cfg: gateway.ChatConfig{MaxConcurrentTurns: 1}})
	defer close(bot.release)
	slow := ts.session(t, nil)
	sc := ts.connect(t, slow.Token, 0)
	sc.send(map[string]any{"type": "message", "client_id": "m1", "text": "slow question"})
	<-bot.held // the only slot is taken

	s := ts.session(t, nil)
	c := ts.connect(t, s.Token, 0)
	c.send(map[string]any{"type": "handoff_request", "client_id": "h1"})
	c.until(func(f frame) bool { return f.Type == "handoff" && f.Status == "queued" })
	// The queued frame goes out just before the handoff is asked (the
	// customer learns at once): wait for the request itself (a hang guard,
	// while the slow turn still holds the only slot).
	deadline := time.Now().Add(10 * time.Second)
	for len(ts.Handoff.escalated()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := ts.Handoff.escalated(); len(got) != 1 || got[0] != s.ConversationID {
		t.Fatalf("escalated %v, want %s", got, s.ConversationID)
	}
}

// releasingBot is gatedBot for a bot that gives its turn slot back before
// it waits (a pipeline streaming a generative answer from a remote server).
type releasingBot struct{ gatedBot }

func (b releasingBot) Respond(ctx context.Context, turn tandem.Turn) (tandem.Reply, error) {
	if strings.HasPrefix(turn.Text, "slow") {
		tandem.ReleaseSlot(ctx)
	}
	return b.gatedBot.Respond(ctx, turn)
}

// TestTurnWaitingOnGeneratorFreesItsSlot: a turn that gives its slot back
// while it waits on a remote generator lets another conversation's
// ordinary turn run, with the node's only slot.
func TestTurnWaitingOnGeneratorFreesItsSlot(t *testing.T) {
	bot := releasingBot{gatedBot{release: make(chan struct{}), held: make(chan string, 1)}}
	ts := startServer(t, serverOpts{bot: bot, cfg: gateway.ChatConfig{MaxConcurrentTurns: 1}})
	defer close(bot.release)
	slow := ts.session(t, nil)
	sc := ts.connect(t, slow.Token, 0)
	sc.send(map[string]any{"type": "message", "client_id": "m1", "text": "slow question"})
	<-bot.held // waiting on the "generator", its slot given back

	s := ts.session(t, nil)
	c := ts.connect(t, s.Token, 0)
	c.send(map[string]any{"type": "message", "client_id": "m1", "text": "hello"})
	f, _ := c.until(messageFrom(tandem.AuthorBot))
	if got := f.msg(t).Text; got != "echo: hello" {
		t.Fatalf("bot said %q", got)
	}
}

// TestHandoffButtonEndsTheRunningAnswer: "talk to a person" pressed while
// the bot is still writing the answer to the customer's previous message
// (a slow generator) does not wait for it, nor for the answers of messages
// queued behind it: those turns end without an
// answer (nor a "Sorry, I could not process that" fallback) and the
// request is made at once; it waited up to half a minute.
func TestHandoffButtonEndsTheRunningAnswer(t *testing.T) {
	bot := gatedBot{release: make(chan struct{}), held: make(chan string, 2)}
	ts := startServer(t, serverOpts{bot: bot})
	defer close(bot.release)
	s := ts.session(t, nil)
	c := ts.connect(t, s.Token, 0)
	c.send(map[string]any{"type": "message", "client_id": "m1", "text": "slow question"})
	<-bot.held // the answer is being written
	// Another message queued behind it, whose answer would be slow too.
	c.send(map[string]any{"type": "message", "client_id": "m2", "text": "slow follow-up"})
	c.until(func(f frame) bool { return f.Type == "ack" && f.ClientID == "m2" })
	c.send(map[string]any{"type": "handoff_request", "client_id": "h1"})
	deadline := time.Now().Add(10 * time.Second) // hang guard
	for len(ts.Handoff.escalated()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := ts.Handoff.escalated(); len(got) != 1 || got[0] != s.ConversationID {
		t.Fatalf("escalated %v, want %s while the slow answer is still being written", got, s.ConversationID)
	}
	msgs, err := ts.Log.Messages(context.Background(), s.ConversationID, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if m.Author == tandem.AuthorBot && strings.Contains(m.Text, "could not process") {
			t.Fatalf("the ended turn stored a fallback: %+v", m)
		}
	}
}
