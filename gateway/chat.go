package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/internal/convlock"
)

// ChatConfig configures the customer chat: WebSocket limits, rate limits
// and the bot dispatcher. Zero values take the defaults of Defaults.
type ChatConfig struct {
	// MaxFrameBytes is the WebSocket read limit (default 64 KiB: a
	// message of MaxTextRunes characters fits whatever they are and however
	// a client escapes them — twelve bytes each for a character beyond the
	// Basic Multilingual Plane written as a surrogate pair of \u escapes,
	// as Python's json.dumps does; 32 KiB closed such a message of 4,000
	// emoji, and every resend of it); larger frames close the connection
	// with 1009.
	MaxFrameBytes int64
	// SendQueue is each connection's outbound queue (default 64 frames);
	// a connection that lets it overflow is closed as a slow consumer.
	SendQueue int
	// WriteTimeout bounds each write (default 10s).
	WriteTimeout time.Duration
	// PingInterval is how often the server pings (default 25s); PongWait
	// is how long it waits for any frame or pong (default 60s).
	PingInterval, PongWait time.Duration
	// HelloTimeout bounds the wait for the hello frame (default 10s).
	HelloTimeout time.Duration
	// CloseGrace is how long a closing connection waits for the peer's
	// close frame (default 1s).
	CloseGrace time.Duration
	// MaxInvalidFrames closes a connection after that many invalid frames (default 20).
	MaxInvalidFrames int

	// MaxConns bounds concurrent WebSocket connections on this node
	// (default 50000); MaxConnsPerIP per client address (default 200).
	MaxConns, MaxConnsPerIP int
	// IPRate and IPBurst limit new sessions and connections per client
	// address (default 5/s, burst 40).
	IPRate  float64
	IPBurst int
	// ConvRate and ConvBurst limit customer messages per conversation
	// (default 2/s, burst 10). A client over the limit gets an error frame
	// with code overloaded and retry_after_ms; MaxRejects rejections in a
	// row close the connection with 4429 (default 30).
	ConvRate   float64
	ConvBurst  int
	MaxRejects int

	// BotTimeout bounds one bot turn (default 30s). MaxConcurrentTurns
	// bounds turns in flight on this node (default 64), but for the part
	// of a turn spent waiting for a remote generator, which gives its slot
	// back (tandem.ReleaseSlot); MaxPendingTurns
	// bounds turns waiting per conversation (default 8).
	BotTimeout         time.Duration
	MaxConcurrentTurns int
	MaxPendingTurns    int
	// LostTurnAfter is how old a customer's last message must be, with
	// nothing after it and no turn for it on this node, before a hello of
	// that customer answers it as a lost turn (default BotTimeout + 12s:
	// by then no node can still be running its turn).
	LostTurnAfter time.Duration
	// BotName is the author name of bot messages (default "Assistant").
	BotName string

	// DemoSiteKey, when set, serves the demo page at / with that site key.
	DemoSiteKey string
	// ReadBufferSize is the per-connection read buffer (default 1024);
	// write buffers come from a shared pool.
	ReadBufferSize int
}

// Defaults returns c with zero values replaced by defaults.
func (c ChatConfig) Defaults() ChatConfig {
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	defd := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	if c.MaxFrameBytes == 0 {
		c.MaxFrameBytes = 64 << 10
	}
	def(&c.SendQueue, 64)
	defd(&c.WriteTimeout, 10*time.Second)
	defd(&c.PingInterval, 25*time.Second)
	defd(&c.PongWait, 60*time.Second)
	defd(&c.HelloTimeout, 10*time.Second)
	defd(&c.CloseGrace, time.Second)
	def(&c.MaxInvalidFrames, 20)
	def(&c.MaxConns, 50000)
	def(&c.MaxConnsPerIP, 200)
	if c.IPRate == 0 {
		c.IPRate = 5
	}
	def(&c.IPBurst, 40)
	if c.ConvRate == 0 {
		c.ConvRate = 2
	}
	def(&c.ConvBurst, 10)
	def(&c.MaxRejects, 30)
	defd(&c.BotTimeout, 30*time.Second)
	def(&c.MaxConcurrentTurns, 64)
	def(&c.MaxPendingTurns, 8)
	defd(&c.LostTurnAfter, c.BotTimeout+turnFinishTimeout+2*time.Second)
	if c.BotName == "" {
		c.BotName = "Assistant"
	}
	def(&c.ReadBufferSize, 1024)
	return c
}

// ChatDeps are the Chat's collaborators. Log, Bus, Auth and Sites are
// required; Bot and Handoff are optional (without a bot, messages wait for
// an agent; without handoff, "talk to a person" answers that nobody is
// available).
type ChatDeps struct {
	Log     ConvLog
	Bus     Bus
	Auth    *Auth
	Sites   SiteStore
	Bot     Bot
	Handoff Handoff
	// AgentAccess, when set, says whether an agent (not admin) may read a
	// conversation that is not assigned to them (e.g. one offered to them).
	AgentAccess func(ctx context.Context, agentID, conversationID string) bool
	Logger      *slog.Logger
	// Registerer receives the chat's metrics (optional).
	Registerer prometheus.Registerer
}

// Chat is the customer side of the gateway: widget sessions and WebSocket
// connections, the conversation history API, the bot dispatcher, and the
// hub that delivers conversation events to every connection on any node.
//
// Contract: NewChat, then Mount before the server serves; Shutdown once
// (register it with Server.OnShutdown). PostMessage, Publish,
// HandoffStatus and Conversation may be called concurrently by other
// components (handoff engine, agent console).
type Chat struct {
	cfg      ChatConfig
	log      ConvLog
	hub      *Hub
	auth     *Auth
	sites    SiteStore
	bot      Bot
	handoff  Handoff
	access   func(ctx context.Context, agentID, conversationID string) bool
	logger   *slog.Logger
	metrics  *chatMetrics
	upgrader websocket.Upgrader
	turns    *dispatcher
	intake   convlock.Locks // a conversation's customer messages, from store to turn queue, one at a time on this node

	ipLimiter   *keyedLimiter
	convLimiter *keyedLimiter
	conns       *connCounter

	draining atomic.Bool
	mu       sync.Mutex // guards live
	live     map[*Conn]struct{}
	wg       sync.WaitGroup // connection goroutines
}

// NewChat builds the chat from its configuration and dependencies.
func NewChat(cfg ChatConfig, deps ChatDeps) (*Chat, error) {
	cfg = cfg.Defaults()
	if deps.Log == nil || deps.Bus == nil || deps.Auth == nil || deps.Sites == nil {
		return nil, errors.New("gateway: chat needs Log, Bus, Auth and Sites")
	}
	logger := deps.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Chat{
		cfg: cfg, log: deps.Log, hub: NewHub(deps.Bus, logger), auth: deps.Auth, sites: deps.Sites,
		bot: deps.Bot, handoff: deps.Handoff, access: deps.AgentAccess, logger: logger,
		metrics:     newChatMetrics(),
		ipLimiter:   newKeyedLimiter(cfg.IPRate, cfg.IPBurst, 100000),
		convLimiter: newKeyedLimiter(cfg.ConvRate, cfg.ConvBurst, 200000),
		conns:       newConnCounter(cfg.MaxConns, cfg.MaxConnsPerIP),
		live:        map[*Conn]struct{}{},
	}
	c.upgrader = websocket.Upgrader{
		HandshakeTimeout:  10 * time.Second,
		ReadBufferSize:    cfg.ReadBufferSize,
		WriteBufferSize:   4096,
		WriteBufferPool:   &sync.Pool{},
		Subprotocols:      []string{Subprotocol},
		EnableCompression: false,
		// Origins are checked per site before the upgrade (widgetWS).
		CheckOrigin: func(*http.Request) bool { return true },
		Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
			WriteError(w, r, nil, tandem.Errorf(codeForStatus(status), "websocket handshake failed: %s", reason.Error()))
		},
	}
	c.turns = newDispatcher(c)
	if deps.Registerer != nil {
		if err := c.metrics.register(deps.Registerer, c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func codeForStatus(status int) string {
	switch status {
	case http.StatusForbidden:
		return tandem.EFORBIDDEN
	case http.StatusServiceUnavailable:
		return tandem.EUNAVAILABLE
	default:
		return tandem.EINVALID
	}
}

// Resync makes every connection on this node deliver what the logs of its
// conversations hold beyond what it sent. Call it when the bus may have
// lost events (a reconnect, a dropped delivery): without it a lost message
// reached its followers only with the conversation's next message or a
// client reconnect.
func (c *Chat) Resync() {
	c.mu.Lock()
	conns := make([]*Conn, 0, len(c.live))
	for conn := range c.live {
		conns = append(conns, conn)
	}
	c.mu.Unlock()
	for _, conn := range conns {
		conn.enqueue(outItem{resync: true})
	}
}

// Hub returns the hub (the agent console subscribes connections to it).
func (c *Chat) Hub() *Hub { return c.hub }

// Auth returns the token issuer/verifier.
func (c *Chat) Auth() *Auth { return c.auth }

// Mount adds the widget, demo page, session, WebSocket and history routes.
func (c *Chat) Mount(r chi.Router) {
	r.Get("/widget.js", c.serveWidgetJS)
	if c.cfg.DemoSiteKey != "" {
		r.Get("/", c.serveDemo)
	}
	r.Post("/v1/widget/session", c.handleSession)
	r.Options("/v1/widget/session", c.handleSessionPreflight)
	r.Get("/v1/widget/ws", c.handleWidgetWS)
	r.Get("/v1/conversations/{id}", c.handleConversation)
	r.Get("/v1/conversations/{id}/messages", c.handleMessages)
	r.Delete("/v1/conversations/{id}", c.handleErase)
	r.Get("/v1/conversations", c.handleCustomerConversations)
	r.Delete("/v1/conversations", c.handleEraseCustomer)
}

// Conversation returns a conversation from the log.
func (c *Chat) Conversation(ctx context.Context, id string) (tandem.Conversation, error) {
	return c.log.Conversation(ctx, id)
}

// Messages returns up to limit logged messages after seq `after`.
func (c *Chat) Messages(ctx context.Context, id string, after int64, limit int) ([]tandem.Message, error) {
	return c.log.Messages(ctx, id, after, limit)
}

// PostMessage logs a message (from an agent, the bot or the system) and
// delivers it to every connection following the conversation. With a
// ClientID it is idempotent: a repeat returns the stored message and
// duplicate = true (and delivers it again; receivers drop seqs they have).
func (c *Chat) PostMessage(ctx context.Context, m tandem.Message) (tandem.Message, bool, error) {
	if m.ConversationID == "" {
		return m, false, tandem.Errorf(tandem.EINVALID, "message has no conversation")
	}
	if m.Author == "" {
		return m, false, tandem.Errorf(tandem.EINVALID, "message has no author")
	}
	stored, dup, err := c.log.Append(ctx, m)
	if err != nil {
		return m, false, err
	}
	c.metrics.appended.WithLabelValues(string(stored.Author)).Inc()
	c.publishMessage(ctx, stored, "")
	return stored, dup, nil
}

func (c *Chat) publishMessage(ctx context.Context, m tandem.Message, origin string) {
	ev := &Event{ConversationID: m.ConversationID, Seq: m.Seq, Origin: origin,
		Frame: mustJSON(MessageFrame{Type: FrameMessage, ConversationID: m.ConversationID, Message: wireMessage(m)})}
	if err := c.hub.Publish(ctx, ev); err != nil {
		// Stored already: followers get it by gap fill or on resume.
		c.logger.Warn("publish message", "conversation", m.ConversationID, "seq", m.Seq, "err", err)
	}
}

// Publish delivers an ephemeral frame (typing, read, delta, handoff) to
// the conversation's connections on every node, except the origin
// connection (pass "" to reach all). Ephemeral frames are not logged.
func (c *Chat) Publish(ctx context.Context, conversationID, origin string, frame any) error {
	return c.hub.Publish(ctx, &Event{ConversationID: conversationID, Origin: origin, Frame: mustJSON(frame)})
}

// HandoffStatus tells the customer where the conversation stands in the
// handoff (the handoff engine calls it). Assigned, returned and closed
// also change the conversation's mode and are logged as system messages,
// so they survive reloads; queued and unavailable updates are ephemeral.
func (c *Chat) HandoffStatus(ctx context.Context, conversationID string, st HandoffStatus) error {
	var mode tandem.Mode
	var note string
	agentID := ""
	switch st.Status {
	case HandoffQueued:
		mode = tandem.ModeQueued
	case HandoffAssigned:
		mode, agentID = tandem.ModeHuman, st.AgentID
		note = assignedNote(st.AgentName)
	case HandoffReturned:
		mode, note = tandem.ModeBot, returnedNote
		// Already with the bot (a repair by reconcile got there first,
		// the event was late, not lost): the frame again, not the note.
		if cv, err := c.log.Conversation(ctx, conversationID); err == nil && cv.Mode == tandem.ModeBot {
			mode, note = "", ""
		}
	case HandoffClosed:
		mode, note = tandem.ModeClosed, "The conversation was closed. Write again any time."
	case HandoffUnavailable:
	default:
		return tandem.Errorf(tandem.EINVALID, "unknown handoff status %q", st.Status)
	}
	if mode != "" {
		if _, err := c.log.SetMode(ctx, conversationID, mode, agentID); err != nil {
			return err
		}
	}
	return c.announce(ctx, conversationID, st, note)
}

// AssignedIfQueued announces an assignment made by the caller itself (an
// agent's accept or claim, before it answers them) as HandoffStatus does,
// but only while the conversation is still queued: it goes to human mode
// and the note is logged in one compare-and-swap, so a later change that
// got there first (the customer withdrew; the assignment's own event) is
// not overwritten. st.Status must be HandoffAssigned; it reports whether
// it announced.
func (c *Chat) AssignedIfQueued(ctx context.Context, conversationID string, st HandoffStatus) (bool, error) {
	return c.assignedIf(ctx, conversationID, tandem.ModeQueued, st)
}

// AssignedIfBot is AssignedIfQueued for a conversation still in bot mode:
// the escalating node switches it to queued only once the engine has
// committed the ticket, and routing can offer the ticket and the agent
// accept it before that. The caller checks that the ticket is still open
// and the agent's; a conversation in human mode without an open ticket is
// repaired at the customer's next message (HandoffStater).
func (c *Chat) AssignedIfBot(ctx context.Context, conversationID string, st HandoffStatus) (bool, error) {
	return c.assignedIf(ctx, conversationID, tandem.ModeBot, st)
}

// assignedIf moves the conversation from mode from to human and announces
// the assignment st, if it still is in mode from.
func (c *Chat) assignedIf(ctx context.Context, conversationID string, from tandem.Mode, st HandoffStatus) (bool, error) {
	if st.Status != HandoffAssigned {
		return false, tandem.Errorf(tandem.EINVALID, "not an assignment: %q", st.Status)
	}
	_, swapped, err := c.log.SwapMode(ctx, conversationID, from, tandem.ModeHuman, st.AgentID)
	if err != nil || !swapped {
		return false, err
	}
	return true, c.announce(ctx, conversationID, st, assignedNote(st.AgentName))
}

// assignedNote is the customer's note of an assignment.
func assignedNote(agentName string) string {
	return "You are now chatting with " + nonEmpty(agentName, "an agent") + "."
}

// announce logs a handoff change's system note (when note is not empty;
// st.Message replaces it) and publishes its handoff frame.
func (c *Chat) announce(ctx context.Context, conversationID string, st HandoffStatus, note string) error {
	if note != "" {
		if st.Message != "" {
			note = st.Message
		}
		data := map[string]any{"handoff": st.Status}
		if st.AgentName != "" {
			data["agent_name"] = st.AgentName
		}
		if _, _, err := c.PostMessage(ctx, tandem.Message{ConversationID: conversationID, ClientID: st.NoteKey, Author: tandem.AuthorSystem,
			Text: note, Kind: "event", Data: data}); err != nil {
			return err
		}
	}
	return c.Publish(ctx, conversationID, "", handoffFrame(conversationID, st))
}

// wireMessage is a message as connections receive it: an agent's id is
// kept in the log (and the staff history API) but never sent on a socket,
// where customers follow the conversation too (agents are named by
// author_name).
func wireMessage(m tandem.Message) tandem.Message {
	if m.Author == tandem.AuthorAgent {
		m.AuthorID = ""
	}
	return m
}

// returnedNote is the system note of a conversation back with the bot.
const returnedNote = "You are back with the assistant."

func nonEmpty(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Shutdown tells every connection to reconnect (close 1012, after writing
// what is queued), waits for sockets to drain within ctx, then finishes
// in-flight bot turns within ctx. New connections and sessions are refused
// from the start.
func (c *Chat) Shutdown(ctx context.Context) error {
	c.mu.Lock()
	c.draining.Store(true) // under mu: Accept adds to live and wg before, or sees it
	conns := make([]*Conn, 0, len(c.live))
	for conn := range c.live {
		conns = append(conns, conn)
	}
	c.mu.Unlock()
	for _, conn := range conns {
		conn.Close(CloseServiceRestart, "service restart", true)
	}
	done := make(chan struct{})
	go func() { c.wg.Wait(); close(done) }()
	var errs []error
	select {
	case <-done:
	case <-ctx.Done():
		c.mu.Lock()
		for conn := range c.live {
			_ = conn.ws.NetConn().Close()
		}
		c.mu.Unlock()
		errs = append(errs, fmt.Errorf("gateway: %d connections did not drain: %w", len(conns), ctx.Err()))
	}
	if err := c.turns.close(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Accept upgrades an HTTP request to a WebSocket connection served by h
// (after the caller has authenticated what it must and checked the
// Origin) and returns; the connection lives in its own goroutines.
func (c *Chat) Accept(w http.ResponseWriter, r *http.Request, h FrameHandler) {
	if c.draining.Load() {
		WriteError(w, r, c.logger, tandem.Errorf(tandem.EUNAVAILABLE, "server is restarting; reconnect"))
		return
	}
	ip := ClientIP(r)
	if ok, wait := c.ipLimiter.allow(ip, time.Now()); !ok {
		c.metrics.rejected.WithLabelValues("ip_rate").Inc()
		setRetryAfter(w, wait)
		WriteError(w, r, c.logger, tandem.Errorf(tandem.EOVERLOADED, "too many connections; retry later"))
		return
	}
	if !c.conns.acquire(ip) {
		c.metrics.rejected.WithLabelValues("conn_limit").Inc()
		WriteError(w, r, c.logger, tandem.Errorf(tandem.EOVERLOADED, "too many connections"))
		return
	}
	ws, err := c.upgrader.Upgrade(w, r, nil)
	if err != nil {
		c.conns.release(ip)
		return // the upgrader has answered
	}
	c.mu.Lock()
	if c.draining.Load() { // Shutdown started after the check above
		c.mu.Unlock()
		msg := websocket.FormatCloseMessage(CloseServiceRestart, "service restart")
		_ = ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(c.cfg.WriteTimeout))
		_ = ws.Close()
		c.conns.release(ip)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	conn := &Conn{
		ephemeral: rate.NewLimiter(ephemeralRate, ephemeralBurst),
		pings:     rate.NewLimiter(pingRate, pingBurst),
		id:        newID("k"), chat: c, ws: ws, ip: ip, handler: h, ctx: ctx, cancel: cancel,
		queue: make(chan outItem, c.cfg.SendQueue), closeReq: make(chan closeRequest, 1), readDone: make(chan struct{}), wrote: make(chan struct{}),
	}
	c.live[conn] = struct{}{}
	// Under mu with the draining check: Shutdown waits for these
	// goroutines, and an Add racing its Wait would be a misuse of wg.
	c.wg.Add(2)
	c.mu.Unlock()
	c.metrics.accepted.Inc()
	go func() { defer c.wg.Done(); defer close(conn.wrote); conn.writeLoop() }()
	go func() { defer c.wg.Done(); conn.readLoop() }()
}

// connEnded runs once per connection when its reader ends.
func (c *Chat) connEnded(conn *Conn) {
	conn.ended()
	c.mu.Lock()
	delete(c.live, conn)
	c.mu.Unlock()
	c.conns.release(conn.ip)
	conn.handler.Closed(conn)
}

// Connections returns the number of open WebSocket connections on this node.
func (c *Chat) Connections() int { return c.conns.count() }

// newID returns prefix + "_" + 32 random hex digits.
func newID(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return prefix + "_" + hex.EncodeToString(b[:])
}

// SeqLogged reports whether conversation conv's log reaches seq (a read
// mark up to seq is true); false when the log cannot be read.
func (c *Chat) SeqLogged(ctx context.Context, conv string, seq int64) bool {
	cv, err := c.log.Conversation(ctx, conv)
	return err == nil && seq <= cv.LastSeq
}
