package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/gateway"
)

const (
	testSecret     = "0123456789abcdef0123456789abcdef-test-secret"
	testAdmin      = "admin-token-for-tests-0123"
	testSite       = "demo"
	testSiteKey2   = "shop"
	testSiteSecret = "site-secret-of-shop"
	testSiteSigned = "signed" // a site with a secret that allows the test server's own origin (browser tests)
)

// echoBot is the deterministic test bot: it echoes, offers quick replies
// for "help", and escalates when asked for a human.
type echoBot struct{}

func (echoBot) Respond(_ context.Context, turn tandem.Turn) (tandem.Reply, error) {
	switch {
	case turn.RequestHuman || strings.Contains(strings.ToLower(turn.Text), "human"):
		return tandem.Reply{Kind: tandem.ReplyEscalate, Text: "Let me get a person for you.",
			Escalation: &tandem.Escalation{Reason: tandem.EscalateRequested, Priority: 1}}, nil
	case strings.EqualFold(turn.Text, "help"):
		return tandem.Reply{Kind: tandem.ReplyClarify, Text: "What do you need help with?", QuickReplies: []string{"Shipping", "Returns"}}, nil
	case strings.HasPrefix(turn.Text, "fail"):
		return tandem.Reply{}, fmt.Errorf("bot exploded")
	}
	return tandem.Reply{Kind: tandem.ReplyAnswer, Text: "echo: " + turn.Text,
		Sources: []tandem.Source{{FAQID: "f1", Question: "How does echo work?", Score: 0.9}}}, nil
}

// streamBot streams its answer word by word.
type streamBot struct{ echoBot }

func (b streamBot) RespondStream(ctx context.Context, turn tandem.Turn, onDelta func(string)) (tandem.Reply, error) {
	r, err := b.Respond(ctx, turn)
	for _, w := range strings.SplitAfter(r.Text, " ") {
		onDelta(w)
	}
	return r, err
}

// fakeHandoff records escalations.
type fakeHandoff struct {
	mu    sync.Mutex
	convs []string
	err   error
}

func (h *fakeHandoff) Escalate(_ context.Context, id string, _ tandem.Escalation) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.convs = append(h.convs, id)
	return h.err
}

func (h *fakeHandoff) escalated() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.convs...)
}

// killableListener lets tests drop every connection server-side and keep
// the "network" down for a while.
type killableListener struct {
	net.Listener
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	down  bool
}

func newKillableListener(t testing.TB) *killableListener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return &killableListener{Listener: ln, conns: map[net.Conn]struct{}{}}
}

func (l *killableListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		if l.down {
			l.mu.Unlock()
			c.Close()
			continue
		}
		tc := &trackedConn{Conn: c, l: l}
		l.conns[tc] = struct{}{}
		l.mu.Unlock()
		return tc, nil
	}
}

// setDown drops every open connection and, while down, every new one.
func (l *killableListener) setDown(down bool) {
	l.mu.Lock()
	l.down = down
	var conns []net.Conn
	if down {
		for c := range l.conns {
			conns = append(conns, c)
		}
	}
	l.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// dropAll closes every open connection (a crash of the links, not the node).
func (l *killableListener) dropAll() {
	l.setDown(true)
	l.setDown(false)
}

type trackedConn struct {
	net.Conn
	l    *killableListener
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}

type testServer struct {
	URL     string
	Chat    *gateway.Chat
	Server  *gateway.Server
	Log     gateway.ConvLog
	Auth    *gateway.Auth
	LN      *killableListener
	Handoff *fakeHandoff
}

type serverOpts struct {
	log     gateway.ConvLog
	bus     gateway.Bus
	bot     gateway.Bot
	noBot   bool
	cfg     gateway.ChatConfig
	handoff *fakeHandoff
	// handoffImpl, when set, is the chat's Handoff instead of handoff.
	handoffImpl gateway.Handoff
}

func startServer(t testing.TB, o serverOpts) *testServer {
	t.Helper()
	if o.log == nil {
		o.log = gateway.NewMemLog()
	}
	if o.bus == nil {
		o.bus = gateway.NewLocalBus()
	}
	if o.bot == nil && !o.noBot {
		o.bot = echoBot{}
	}
	if o.handoff == nil {
		o.handoff = &fakeHandoff{}
	}
	auth, err := gateway.NewAuth([]byte(testSecret), testAdmin, 0)
	if err != nil {
		t.Fatal(err)
	}
	sites := gateway.StaticSites{
		testSite:       {Key: testSite, Name: "Demo", AllowedOrigins: []string{"self"}},
		testSiteKey2:   {Key: testSiteKey2, Name: "Shop", Secret: []byte(testSiteSecret), AllowedOrigins: []string{"https://shop.example"}},
		testSiteSigned: {Key: testSiteSigned, Name: "Signed", Secret: []byte(testSiteSecret), AllowedOrigins: []string{"self"}},
	}
	if o.cfg.DemoSiteKey == "" {
		o.cfg.DemoSiteKey = testSite
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := gateway.New(gateway.Config{}, logger)
	deps := gateway.ChatDeps{Log: o.log, Bus: o.bus, Auth: auth, Sites: sites, Handoff: o.handoff, Logger: logger, Registerer: srv.Registry()}
	if o.bot != nil {
		deps.Bot = o.bot
	}
	if o.handoffImpl != nil {
		deps.Handoff = o.handoffImpl
	}
	chat, err := gateway.NewChat(o.cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	chat.Mount(srv.Router())
	srv.OnShutdown(chat.Shutdown)
	ln := newKillableListener(t)
	go func() { _ = srv.Serve(ln) }()
	ts := &testServer{URL: "http://" + ln.Addr().String(), Chat: chat, Server: srv, Log: o.log, Auth: auth, LN: ln, Handoff: o.handoff}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return ts
}

// session creates a widget session from the server's own origin.
func (ts *testServer) session(t testing.TB, body map[string]any) gateway.SessionResponse {
	t.Helper()
	if body == nil {
		body = map[string]any{"site_key": testSite}
	}
	code, raw := ts.post(t, "/v1/widget/session", body, ts.URL)
	if code != 200 {
		t.Fatalf("session: %d %s", code, raw)
	}
	var s gateway.SessionResponse
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func (ts *testServer) post(t testing.TB, path string, body any, origin string) (int, string) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", ts.URL+path, strings.NewReader(string(b)))
	req.Header.Set("Content-Type", "application/json")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

func (ts *testServer) get(t testing.TB, path, bearer string) (int, string) {
	t.Helper()
	return ts.request(t, "GET", path, bearer)
}

// request sends a body-less request with an optional bearer token and
// returns the status and the body.
func (ts *testServer) request(t testing.TB, method, path, bearer string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, ts.URL+path, nil)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

// frame is a decoded server frame.
type frame struct {
	Type           string          `json:"type"`
	ConversationID string          `json:"conversation_id"`
	ClientID       string          `json:"client_id"`
	Seq            int64           `json:"seq"`
	Duplicate      bool            `json:"duplicate"`
	Code           string          `json:"code"`
	Message        json.RawMessage `json:"message"`
	LastSeq        int64           `json:"last_seq"`
	Mode           string          `json:"mode"`
	Status         string          `json:"status"`
	Text           string          `json:"text"`
	StreamID       string          `json:"stream_id"`
	Author         string          `json:"author"`
	On             bool            `json:"on"`
	ID             string          `json:"id"`
	RetryAfterMS   int64           `json:"retry_after_ms"`
	raw            []byte
}

func (f frame) msg(t testing.TB) tandem.Message {
	t.Helper()
	var m tandem.Message
	if err := json.Unmarshal(f.Message, &m); err != nil {
		t.Fatalf("message frame %s: %v", f.raw, err)
	}
	return m
}

type wsClient struct {
	t  testing.TB
	ws *websocket.Conn
}

func (ts *testServer) dial(t testing.TB, site, origin string) (*wsClient, *http.Response, error) {
	t.Helper()
	u := strings.Replace(ts.URL, "http://", "ws://", 1) + "/v1/widget/ws?site=" + site
	h := http.Header{}
	if origin == "" {
		origin = ts.URL
	}
	h.Set("Origin", origin)
	d := websocket.Dialer{Subprotocols: []string{gateway.Subprotocol}, HandshakeTimeout: 5 * time.Second}
	ws, resp, err := d.Dial(u, h)
	if err != nil {
		return nil, resp, err
	}
	return &wsClient{t: t, ws: ws}, resp, nil
}

// helloClose dials, says hello with token and returns the code the server
// closes the connection with.
func (ts *testServer) helloClose(t testing.TB, token string) int {
	t.Helper()
	c, _, err := ts.dial(t, testSite, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.ws.Close()
	c.send(map[string]any{"type": "hello", "token": token})
	return c.expectClose()
}

// connect dials and says hello; it returns the client after the welcome.
func (ts *testServer) connect(t testing.TB, token string, lastSeq int64) *wsClient {
	t.Helper()
	c, _, err := ts.dial(t, testSite, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.ws.Close() })
	c.send(map[string]any{"type": "hello", "token": token, "last_seq": lastSeq})
	if f := c.next(); f.Type != "welcome" {
		t.Fatalf("expected welcome, got %s", f.raw)
	}
	return c
}

func (c *wsClient) send(v any) {
	c.t.Helper()
	b, _ := json.Marshal(v)
	c.sendRaw(websocket.TextMessage, b)
}

func (c *wsClient) sendRaw(mt int, b []byte) {
	c.t.Helper()
	_ = c.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := c.ws.WriteMessage(mt, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// read returns the next frame or the read error (e.g. a close).
func (c *wsClient) read(timeout time.Duration) (frame, error) {
	_ = c.ws.SetReadDeadline(time.Now().Add(timeout))
	_, b, err := c.ws.ReadMessage()
	if err != nil {
		return frame{}, err
	}
	var f frame
	if err := json.Unmarshal(b, &f); err != nil {
		return frame{}, fmt.Errorf("bad server frame %q: %w", b, err)
	}
	f.raw = b
	return f, nil
}

// next returns the next frame, failing the test after 10s.
func (c *wsClient) next() frame {
	c.t.Helper()
	f, err := c.read(10 * time.Second)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return f
}

// until reads frames until one satisfies ok, returning the frames skipped.
func (c *wsClient) until(ok func(frame) bool) (frame, []frame) {
	c.t.Helper()
	var skipped []frame
	for {
		f := c.next()
		if ok(f) {
			return f, skipped
		}
		skipped = append(skipped, f)
	}
}

// collect reads frames until done returns true.
func (c *wsClient) collect(done func(frame) bool) {
	c.t.Helper()
	for !done(c.next()) {
	}
}

// expectClose reads until the connection closes and returns the close code.
func (c *wsClient) expectClose() int {
	c.t.Helper()
	for {
		_, err := c.read(10 * time.Second)
		if err == nil {
			continue
		}
		if ce, ok := err.(*websocket.CloseError); ok {
			return ce.Code
		}
		c.t.Fatalf("connection ended without a close frame: %v", err)
	}
}

func isType(typ string) func(frame) bool { return func(f frame) bool { return f.Type == typ } }

func messageFrom(author tandem.Author) func(frame) bool {
	return func(f frame) bool {
		if f.Type != "message" {
			return false
		}
		var m tandem.Message
		_ = json.Unmarshal(f.Message, &m)
		return m.Author == author
	}
}
