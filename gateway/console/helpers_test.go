package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/gateway"
	"github.com/tandem-chat/tandem/gateway/console"
	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/handoff/memstore"
)

const (
	testSecret = "0123456789abcdef0123456789abcdef-console-test"
	testAdmin  = "admin-token-for-console-tests"
	password   = "correct horse battery"
)

// testBot escalates when asked for a person and echoes otherwise.
type testBot struct{}

func (testBot) Respond(_ context.Context, turn tandem.Turn) (tandem.Reply, error) {
	nlu := tandem.NLU{Intent: tandem.IntentScore{Name: "order_status", Confidence: 0.42},
		Entities: []tandem.Entity{{Type: "order_id", Text: "A-1234", Value: "A-1234", Start: 0, End: 6, Source: "rule"}}}
	if turn.RequestHuman || strings.Contains(strings.ToLower(turn.Text), "human") {
		return tandem.Reply{Kind: tandem.ReplyEscalate, Text: "Let me get a person for you.", NLU: nlu,
			Escalation: &tandem.Escalation{Reason: tandem.EscalateRequested, Summary: nlu, Detail: "asked for a human"}}, nil
	}
	return tandem.Reply{Kind: tandem.ReplyAnswer, Text: "bot: " + turn.Text, NLU: nlu}, nil
}

// env is one gateway node with the handoff engine (memory store, manual
// clock: routing runs when the test calls Tick) and the console.
type env struct {
	t       *testing.T
	URL     string
	Clock   *handoff.ManualClock
	Engine  *handoff.Engine
	Chat    *gateway.Chat
	Console *console.Console
	Auth    *gateway.Auth
}

func newEnv(t *testing.T) *env { return newNode(t, nodeOpts{}) }

// nodeOpts lets several nodes share a clock, a handoff store, a
// conversation log and a bus (zero values: a fresh memory node).
type nodeOpts struct {
	name  string
	clock *handoff.ManualClock
	store handoff.Store
	log   gateway.ConvLog
	bus   gateway.Bus
	// drop, when set, loses the handoff events it returns true for (as a
	// full event buffer or a node stopped before publishing would).
	drop func(handoff.Event) bool
	// loginBurst, when set, is the per-address login burst.
	loginBurst int
	// heartbeatTimeout, when set, is the engine's (consoles ping every
	// sixth of it).
	heartbeatTimeout time.Duration
	// logger, when set, receives the node's logs (default: discarded).
	logger *slog.Logger
	// pingInterval, when set, is how often the server pings its sockets.
	pingInterval time.Duration
}

func newNode(t *testing.T, o nodeOpts) *env {
	t.Helper()
	clock := o.clock
	if clock == nil {
		clock = handoff.NewManualClock(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	}
	if o.store == nil {
		o.store = memstore.New()
	}
	if o.log == nil {
		o.log = gateway.NewMemLog()
	}
	if o.bus == nil {
		o.bus = gateway.NewLocalBus()
	}
	late := &console.LateNotifier{}
	logger := o.logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	var notifier handoff.Notifier = late
	if o.drop != nil {
		notifier = handoff.NotifierFunc(func(ctx context.Context, e handoff.Event) {
			if !o.drop(e) {
				late.Notify(ctx, e)
			}
		})
	}
	eng, err := handoff.New(o.store, handoff.Config{Node: o.name, Clock: clock, Notifier: notifier, Logger: logger, BcryptCost: 4,
		HeartbeatTimeout: o.heartbeatTimeout})
	if err != nil {
		t.Fatal(err)
	}
	auth, err := gateway.NewAuth([]byte(testSecret), testAdmin, 0)
	if err != nil {
		t.Fatal(err)
	}
	bus := o.bus
	ho := &console.Handoff{Engine: eng}
	chat, err := gateway.NewChat(gateway.ChatConfig{PingInterval: o.pingInterval}, gateway.ChatDeps{
		Log: o.log, Bus: bus, Auth: auth, Bot: testBot{}, Handoff: ho, AgentAccess: ho.AgentAccess,
		Sites: gateway.StaticSites{"demo": {Key: "demo", AllowedOrigins: []string{"self"}}}, Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	ho.SetChat(chat)
	con, err := console.New(console.Config{Engine: eng, Chat: chat, Bus: bus, Logger: logger, ViewInterval: 10 * time.Millisecond, LoginBurst: o.loginBurst,
		Suggester: console.SuggesterFunc(func(_ context.Context, q, _ string, k int) ([]console.Suggestion, error) {
			return []console.Suggestion{{FAQID: "faq-1", Question: "Where is my order?", Answer: "Track it under Orders.", Score: 0.8}}, nil
		})})
	if err != nil {
		t.Fatal(err)
	}
	late.Set(con)
	srv := gateway.New(gateway.Config{}, logger)
	chat.Mount(srv.Router())
	con.Mount(srv.Router())
	srv.OnShutdown(func(ctx context.Context) error { return eng.Close(ctx) })
	srv.OnShutdown(chat.Shutdown)
	srv.OnShutdown(con.Shutdown)
	hs := httptest.NewServer(srv.Router())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hs.CloseClientConnections()
		_ = srv.Shutdown(ctx)
		hs.Close()
	})
	return &env{t: t, URL: hs.URL, Clock: clock, Engine: eng, Chat: chat, Console: con, Auth: auth}
}

// offerTo has a new customer ask for a person and routes the ticket; it
// returns the customer, their conversation and the offer frame agent's
// console got.
func (e *env) offerTo(agent *client) (*client, string, frame) {
	e.t.Helper()
	cust, conv := e.customer()
	cust.send(map[string]any{"type": "handoff_request", "client_id": "h"})
	cust.until(handoffStatus("queued"))
	e.escalated(conv)
	e.tick()
	offer, _ := agent.until(ticketEvent("ticket.offered"))
	return cust, conv, offer
}

// acceptAndWrite accepts the offer on agent's console and writes text to
// the customer, who gets it.
func acceptAndWrite(agent, cust *client, conv, ticketID, text string) {
	agent.send(map[string]any{"type": "accept", "ticket_id": ticketID, "ref": "a"})
	agent.until(answer("a"))
	agent.send(map[string]any{"type": "message", "conversation_id": conv, "client_id": "m1", "text": text})
	agent.until(isType("ack"))
	cust.until(messageFrom(tandem.AuthorAgent, text))
}

// escalated waits until the conversation has an open ticket (the bot turn
// that escalates runs asynchronously).
func (e *env) escalated(conv string) tandem.Ticket {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		t, err := e.Engine.OpenTicket(context.Background(), conv)
		if err == nil {
			return t
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("conversation %s was not escalated: %v", conv, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// away sets the console's agent away (so routing offers them nothing).
func (c *client) away() {
	c.send(map[string]any{"type": "presence", "status": "away", "ref": "p"})
	c.until(answer("p"))
}

// claimedChat has a new customer ask for a person and the (away) agent of
// console c claim the ticket, and waits until c shows the transcript. It
// returns the customer, the conversation id and the ticket.
func (e *env) claimedChat(c *client) (*client, string, tandem.Ticket) {
	e.t.Helper()
	cust, conv := e.customer()
	cust.send(map[string]any{"type": "handoff_request", "client_id": "h"})
	tk := e.escalated(conv)
	c.send(map[string]any{"type": "claim", "ticket_id": tk.ID, "ref": "c"})
	c.all(answer("c"), messageFrom(tandem.AuthorCustomer, "talk to a person"))
	return cust, conv, tk
}

// tick runs one routing pass and waits until its events reached the console.
func (e *env) tick() {
	e.t.Helper()
	ctx := context.Background()
	if err := e.Engine.Tick(ctx); err != nil {
		e.t.Fatal(err)
	}
	if err := e.Engine.Flush(ctx); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) do(method, path, bearer string, body any) (int, []byte) {
	e.t.Helper()
	var rd io.Reader
	if raw, ok := body.(json.RawMessage); ok { // sent as it is
		rd = strings.NewReader(string(raw))
	} else if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	}
	req, _ := http.NewRequest(method, e.URL+path, rd)
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

// agent creates an agent through the admin API and logs them in.
func (e *env) agent(email, name string, extra map[string]any) (tandem.Agent, string) {
	e.t.Helper()
	body := map[string]any{"email": email, "display_name": name, "password": password}
	for k, v := range extra {
		body[k] = v
	}
	code, raw := e.do("POST", "/api/v1/agents", testAdmin, body)
	if code != http.StatusCreated {
		e.t.Fatalf("create agent: %d %s", code, raw)
	}
	return e.login(email)
}

// login logs an agent in with the test password.
func (e *env) login(email string) (tandem.Agent, string) {
	e.t.Helper()
	code, raw := e.do("POST", "/api/v1/agents/login", "", map[string]string{"email": email, "password": password})
	if code != 200 {
		e.t.Fatalf("login: %d %s", code, raw)
	}
	var lr console.LoginResponse
	if err := json.Unmarshal(raw, &lr); err != nil {
		e.t.Fatal(err)
	}
	return lr.Agent, lr.Token
}

// frame is a decoded server frame of either protocol.
type frame struct {
	Type           string          `json:"type"`
	Event          string          `json:"event"`
	Ref            string          `json:"ref"`
	Action         string          `json:"action"`
	Code           string          `json:"code"`
	Text           string          `json:"text"`
	Status         string          `json:"status"`
	AgentName      string          `json:"agent_name"`
	Author         string          `json:"author"`
	Name           string          `json:"name"`
	On             bool            `json:"on"`
	ConversationID string          `json:"conversation_id"`
	ClientID       string          `json:"client_id"`
	Seq            int64           `json:"seq"`
	Ticket         tandem.Ticket   `json:"ticket"`
	Tickets        json.RawMessage `json:"tickets"`
	Items          []console.Suggestion
	RawMessage     json.RawMessage `json:"message"`
	raw            []byte
}

// msg decodes a message frame's message (for error frames, message is a string).
func (f frame) msg() tandem.Message {
	var m tandem.Message
	_ = json.Unmarshal(f.RawMessage, &m)
	return m
}

func (f frame) errText() string {
	var s string
	_ = json.Unmarshal(f.RawMessage, &s)
	return s
}

type client struct {
	t  *testing.T
	ws *websocket.Conn
}

func (e *env) dial(path string) *client {
	e.t.Helper()
	d := websocket.Dialer{Subprotocols: []string{gateway.Subprotocol}, HandshakeTimeout: 5 * time.Second}
	ws, _, err := d.Dial(strings.Replace(e.URL, "http://", "ws://", 1)+path, http.Header{"Origin": {e.URL}})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { ws.Close() })
	return &client{t: e.t, ws: ws}
}

// console opens a console socket and waits for the welcome.
func (e *env) console(token string) *client {
	e.t.Helper()
	c := e.dial("/console/ws")
	c.send(map[string]any{"type": "hello", "token": token})
	c.until(isType("welcome"))
	return c
}

// customer opens a widget session and socket.
func (e *env) customer() (*client, string) {
	e.t.Helper()
	req, _ := http.NewRequest("POST", e.URL+"/v1/widget/session", strings.NewReader(`{"site_key":"demo"}`))
	req.Header.Set("Origin", e.URL)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	var s gateway.SessionResponse
	_ = json.NewDecoder(resp.Body).Decode(&s)
	resp.Body.Close()
	c := e.dial(s.WebSocketPath)
	c.send(map[string]any{"type": "hello", "token": s.Token})
	c.until(isType("welcome"))
	return c, s.ConversationID
}

func (c *client) send(v any) {
	c.t.Helper()
	_ = c.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := c.ws.WriteJSON(v); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *client) read(timeout time.Duration) (frame, error) {
	_ = c.ws.SetReadDeadline(time.Now().Add(timeout))
	_, b, err := c.ws.ReadMessage()
	if err != nil {
		return frame{}, err
	}
	var f frame
	if err := json.Unmarshal(b, &f); err != nil {
		return frame{}, fmt.Errorf("bad frame %q: %w", b, err)
	}
	f.raw = b
	return f, nil
}

// until reads frames until ok, failing after 10s without one.
func (c *client) until(ok func(frame) bool) (frame, []frame) {
	c.t.Helper()
	var skipped []frame
	for {
		f, err := c.read(10 * time.Second)
		if err != nil {
			c.t.Fatalf("read (after %d frames): %v", len(skipped), err)
		}
		if ok(f) {
			return f, skipped
		}
		skipped = append(skipped, f)
	}
}

// all reads frames until each predicate has matched one of them, in any
// order (frames of different kinds may interleave), and returns the first
// match of each.
func (c *client) all(preds ...func(frame) bool) []frame {
	c.t.Helper()
	got := make([]frame, len(preds))
	seen := make([]bool, len(preds))
	left := len(preds)
	for left > 0 {
		f, err := c.read(10 * time.Second)
		if err != nil {
			c.t.Fatalf("read (%d of %d seen): %v", len(preds)-left, len(preds), err)
		}
		for i, p := range preds {
			if !seen[i] && p(f) {
				seen[i], got[i] = true, f
				left--
			}
		}
	}
	return got
}

// expectClose reads until the server closes and returns the close code.
func (c *client) expectClose() int {
	c.t.Helper()
	for {
		_, err := c.read(10 * time.Second)
		if err == nil {
			continue
		}
		if ce, ok := err.(*websocket.CloseError); ok {
			return ce.Code
		}
		c.t.Fatalf("no close frame: %v", err)
	}
}

func isType(typ string) func(frame) bool { return func(f frame) bool { return f.Type == typ } }

func ticketEvent(event string) func(frame) bool {
	return func(f frame) bool { return f.Type == "ticket" && f.Event == event }
}

func answer(ref string) func(frame) bool {
	return func(f frame) bool { return (f.Type == "ok" || f.Type == "error") && f.Ref == ref }
}

func messageFrom(author tandem.Author, text string) func(frame) bool {
	return func(f frame) bool {
		if f.Type != "message" {
			return false
		}
		m := f.msg()
		return m.Author == author && strings.Contains(m.Text, text)
	}
}

func handoffStatus(status string) func(frame) bool {
	return func(f frame) bool { return f.Type == "handoff" && f.Status == status }
}
