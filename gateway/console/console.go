// Package console is the agent side of the gateway: the agent console web
// page (served at /console, plain HTML/JS/CSS embedded in the binary), its
// WebSocket (/console/ws, protocol in docs/protocol.md "Agent console"),
// the agents REST API (/api/v1/agents: login, and admin create, list,
// disable; docs/openapi-agents.yaml), and the handoff Notifier that turns
// handoff engine events into customer handoff frames (gateway.Chat
// HandoffStatus) and console pushes on every node.
//
// # Events across nodes
//
// The engine emits each event once, on the node that made the change, to
// Console.Notify. Notify updates the customer (Chat.HandoffStatus, which the
// gateway fans out itself) and publishes the event on the bus subject
// SubjectEvents; every node (this one included) delivers it to its local
// console sessions. Node-local events (ticket.position) are delivered to
// local sockets only: the customer's position is published only by nodes
// that have a local follower of the conversation.
//
// # Access
//
// An agent reads a conversation (its transcript and live frames) only
// while it is offered or assigned to them and writes only while assigned
// (handoff.Engine.Authorize, checked on every action); admins may do both on
// any open ticket. Tokens are verified on hello (signature, issuer,
// expiry, role agent or admin) and the agent must exist and be enabled
// (Engine.Connect).
//
// # Concurrency
//
// New, then Mount before serving; Notify is called by one engine goroutine;
// Shutdown once, before the chat's Shutdown. Each console connection has a
// read goroutine (client frames, in order) and a worker goroutine that
// applies pushed events in order; both may call the engine concurrently.
package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/gateway"
	"github.com/tandem-chat/tandem/handoff"
)

// SubjectEvents is the bus subject carrying handoff events between nodes.
const SubjectEvents = "tandem.handoff.events"

// Suggester finds FAQ answers for what a customer asked (the knowledge
// base's search). It may be nil: no suggestions.
type Suggester interface {
	Suggest(ctx context.Context, query, locale string, k int) ([]Suggestion, error)
}

// SuggesterFunc adapts a function to Suggester.
type SuggesterFunc func(ctx context.Context, query, locale string, k int) ([]Suggestion, error)

// Suggest implements Suggester.
func (f SuggesterFunc) Suggest(ctx context.Context, query, locale string, k int) ([]Suggestion, error) {
	return f(ctx, query, locale, k)
}

// Canned is a canned response the console offers.
type Canned struct {
	Title string `json:"title"`
	Text  string `json:"text"`
}

// DefaultCanned are the canned responses used when Config.Canned is nil.
var DefaultCanned = []Canned{
	{"Greeting", "Hi, thanks for waiting! I'm looking at your conversation now."},
	{"One moment", "Thanks — give me a moment while I check that for you."},
	{"Order number", "Could you tell me your order number, please?"},
	{"Anything else", "Is there anything else I can help you with?"},
	{"Goodbye", "Thanks for contacting us. Have a great day!"},
}

// Config configures the console.
type Config struct {
	Engine *handoff.Engine // required
	Chat   *gateway.Chat   // required: sockets, conversation log, customer status
	Bus    gateway.Bus     // required: carries events between nodes
	// Suggester provides suggested FAQ answers (optional).
	Suggester Suggester
	// Canned responses (nil: DefaultCanned).
	Canned []Canned
	// TokenTTL is the lifetime of agent tokens issued by login (default 12h).
	TokenTTL time.Duration
	// AllowedOrigins are extra origins (scheme://host[:port]) allowed to
	// open the console socket besides the gateway's own; "*" allows any.
	AllowedOrigins []string
	// QueueViewLimit caps the queue view (default 50).
	QueueViewLimit int
	// ViewInterval is the minimum interval between two queue/team view
	// pushes on this node (default 500ms).
	ViewInterval time.Duration
	// SessionQueue bounds the events waiting for one console session
	// (default 256); a session that lets it overflow is closed (it reloads).
	SessionQueue int
	// LoginRate and LoginBurst limit login attempts per client address
	// (IPv6: per /64; default 1/s, burst 10). Each account (email) also
	// gets 10 attempts at once, then one every 10 s, whatever the address.
	LoginRate  float64
	LoginBurst int
	// MessageRate and MessageBurst limit an agent's messages per console
	// connection (default 5/s, burst 20): more get an error frame with
	// code overloaded and retry_after_ms, and 30 of those in a row close
	// the console with 4429 (a flood filled its send queue with acks and
	// echoes, and it was closed as a slow consumer).
	MessageRate  float64
	MessageBurst int
	Logger       *slog.Logger
}

// Console serves the agent console and the agents API and is the handoff
// engine's Notifier.
type Console struct {
	cfg    Config
	eng    *handoff.Engine
	chat   *gateway.Chat
	auth   *gateway.Auth
	log    *slog.Logger
	sub    gateway.Subscription
	logins *limiter
	// accountLogins limits login attempts per email address.
	accountLogins *limiter

	ctx    context.Context // cancelled by Shutdown
	cancel context.CancelFunc
	dirty  chan struct{} // capacity 1: the queue/team views changed
	wg     sync.WaitGroup

	mu       sync.Mutex // guards sessions
	sessions map[*session]struct{}
}

var _ handoff.Notifier = (*Console)(nil)

// New returns a console and subscribes it to the bus.
func New(cfg Config) (*Console, error) {
	if cfg.Engine == nil || cfg.Chat == nil || cfg.Bus == nil {
		return nil, errors.New("console: Engine, Chat and Bus are required")
	}
	if cfg.Canned == nil {
		cfg.Canned = DefaultCanned
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = 12 * time.Hour
	}
	if cfg.QueueViewLimit <= 0 {
		cfg.QueueViewLimit = 50
	}
	if cfg.ViewInterval <= 0 {
		cfg.ViewInterval = 500 * time.Millisecond
	}
	if cfg.SessionQueue <= 0 {
		cfg.SessionQueue = 256
	}
	if cfg.LoginRate <= 0 {
		cfg.LoginRate = 1
	}
	if cfg.LoginBurst <= 0 {
		cfg.LoginBurst = 10
	}
	if cfg.MessageRate <= 0 {
		cfg.MessageRate = 5
	}
	if cfg.MessageBurst <= 0 {
		cfg.MessageBurst = 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Console{
		cfg: cfg, eng: cfg.Engine, chat: cfg.Chat, auth: cfg.Chat.Auth(), log: cfg.Logger,
		logins: newLimiter(cfg.LoginRate, cfg.LoginBurst, 10000),
		// 10 at once, then one every 10 s per account.
		accountLogins: newLimiter(0.1, 10, 10000),
		ctx:           ctx, cancel: cancel, dirty: make(chan struct{}, 1), sessions: map[*session]struct{}{},
	}
	// Agent and admin tokens count only while their account is enabled,
	// and with its current role, on every API that authenticates through
	// the chat's Auth (agents, knowledge, history), not only in the console.
	c.auth.SetStaffLookup(func(ctx context.Context, id string) (string, string, error) {
		a, stamp, err := c.eng.AgentWithStamp(ctx, id)
		if err != nil {
			return "", "", err
		}
		if a.Disabled {
			return "", "", tandem.Errorf(tandem.EUNAUTHORIZED, "this account is disabled")
		}
		return a.Role, stamp, nil
	})
	sub, err := cfg.Bus.Subscribe(SubjectEvents, c.onBus)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("console: subscribe %s: %w", SubjectEvents, err)
	}
	c.sub = sub
	c.wg.Add(1)
	go c.viewLoop()
	return c, nil
}

// Mount adds the console page, its assets and socket, and the agents API.
func (c *Console) Mount(r chi.Router) {
	r.Get("/console", c.servePage)
	r.Get("/console/", c.servePage)
	r.Get("/console/console.js", c.serveAsset("console.js", "text/javascript; charset=utf-8"))
	r.Get("/console/console.css", c.serveAsset("console.css", "text/css; charset=utf-8"))
	r.Get("/console/ws", c.handleWS)
	r.Mount("/api/v1/agents", c.agentsAPI())
}

// Shutdown stops the console's background work and bus subscription.
// Sockets are closed by the chat's Shutdown (register this one after it
// with Server.OnShutdown, so it runs first... or before; either is safe).
func (c *Console) Shutdown(context.Context) error {
	c.cancel()
	var err error
	if c.sub != nil {
		err = c.sub.Unsubscribe()
	}
	c.wg.Wait()
	return err
}

// Notify implements handoff.Notifier: customer status first (on this node,
// which made the change), then the consoles of every node.
func (c *Console) Notify(ctx context.Context, e handoff.Event) {
	c.notifyCustomer(ctx, e)
	if e.Local() {
		c.dispatch(e)
		return
	}
	data, err := json.Marshal(e)
	if err != nil {
		c.log.Error("console: encode event", "type", e.Type, "err", err)
		return
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.cfg.Bus.Publish(pctx, SubjectEvents, data); err != nil {
		// The bus is down: at least this node's consoles learn of it.
		c.log.Warn("console: publish event", "type", e.Type, "err", err)
		c.dispatch(e)
	}
}

func (c *Console) onBus(data []byte) {
	var e handoff.Event
	if err := json.Unmarshal(data, &e); err != nil {
		c.log.Warn("console: bad event on bus", "err", err)
		return
	}
	c.dispatch(e)
}

// notifyCustomer tells the customer where their conversation stands.
func (c *Console) notifyCustomer(ctx context.Context, e handoff.Event) {
	if e.Ticket == nil {
		return
	}
	conv := e.Ticket.ConversationID
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var err error
	switch e.Type {
	case handoff.EventQueued, handoff.EventPosition:
		if e.Queue == nil {
			return
		}
		if e.Type == handoff.EventPosition {
			if c.chat.Hub().Subscribers(conv) == 0 {
				return // node-local: only nodes with a follower of the conversation publish it
			}
			// Every node computes positions from its own read of the queue:
			// one read before the ticket left it (claimed, routed, returned
			// on another node) must not show the customer a place in the
			// queue after they were told otherwise.
			if cur, err := c.eng.Ticket(ctx, e.Ticket.ID); err == nil && cur.State != tandem.TicketQueued {
				return
			}
		}
		// The conversation is already in queued mode (the gateway set it
		// when escalating): an ephemeral frame is enough.
		err = c.chat.Publish(ctx, conv, "", queuedFrame(conv, *e.Queue, ""))
	case handoff.EventNobodyOnline:
		err = c.chat.HandoffStatus(ctx, conv, gateway.HandoffStatus{Status: gateway.HandoffUnavailable, LeaveContact: true,
			Message: "No agent is online right now. You stay in the queue and we will connect you as soon as someone is available; the assistant can keep helping meanwhile."})
	case handoff.EventAssigned:
		err = c.chat.HandoffStatus(ctx, conv, assignedStatus(*e.Ticket, e.AgentName))
	case handoff.EventTransferred, handoff.EventRequeued:
		// Customer messages from now until the next agent joins are kept
		// for that agent (Handoff.HandoffState), not answered by the bot.
		msg := "Your agent had to leave; connecting you with another agent. Your messages will be passed on to them."
		if e.Type == handoff.EventTransferred {
			msg = "Transferring you to another agent. Your messages will be passed on to them."
		}
		var q handoff.QueueInfo
		if e.Ticket.State == tandem.TicketQueued {
			q, _ = c.eng.Position(ctx, e.Ticket.ID)
		}
		if e.Type == handoff.EventRequeued {
			// An offer withdrawn or lost before any agent joined: nobody
			// left the customer, and the bot keeps answering them
			// (HandoffState), so only their place in the queue changed.
			if took, terr := tookPart(ctx, c.eng, *e.Ticket); terr == nil && !took {
				if e.Ticket.State == tandem.TicketQueued {
					err = c.chat.Publish(ctx, conv, "", queuedFrame(conv, q, ""))
				}
				break
			}
		}
		st := gateway.HandoffStatus{Status: gateway.HandoffQueued, Position: q.Position, EstimatedWait: q.EstimatedWait, Message: msg,
			LeaveContact: q.NobodyOnline}
		err = c.chat.HandoffStatus(ctx, conv, st)
	case handoff.EventReturned:
		err = c.chat.HandoffStatus(ctx, conv, gateway.HandoffStatus{Status: gateway.HandoffReturned})
	case handoff.EventClosed:
		if e.Ticket.State == tandem.TicketResolved {
			err = c.chat.HandoffStatus(ctx, conv, gateway.HandoffStatus{Status: gateway.HandoffClosed})
		}
	}
	if err != nil {
		c.log.Warn("console: customer handoff status", "event", e.Type, "conversation", conv, "err", err)
	}
}

// assignedStatus is the customer's news of an assignment. Its note's key
// names the assignment (ticket and version), so the accepting console's
// own announcement and the event's are logged once.
func assignedStatus(t tandem.Ticket, agentName string) gateway.HandoffStatus {
	return gateway.HandoffStatus{Status: gateway.HandoffAssigned, AgentName: agentName, AgentID: t.AgentID,
		NoteKey: "handoff:assigned:" + t.ID + ":" + strconv.FormatInt(t.Version, 10)}
}

func queuedFrame(conv string, q handoff.QueueInfo, msg string) gateway.HandoffFrame {
	return gateway.HandoffFrame{Type: gateway.FrameHandoff, ConversationID: conv, Status: gateway.HandoffQueued,
		Position: q.Position, EstimatedWaitS: seconds(q.EstimatedWait), Message: msg, LeaveContact: q.NobodyOnline}
}

// dispatch hands an event to the local sessions it concerns and marks the
// views dirty. It never blocks.
func (c *Console) dispatch(e handoff.Event) {
	if e.Type != handoff.EventPosition {
		c.markDirty()
	}
	concerned := map[string]bool{}
	for _, id := range []string{e.AgentID, e.PrevAgentID} {
		if id != "" {
			concerned[id] = true
		}
	}
	if e.Ticket != nil && e.Ticket.AgentID != "" && handoff.Holds(e.Ticket.State) {
		concerned[e.Ticket.AgentID] = true
	}
	if e.Agent != nil {
		concerned[e.Agent.Agent.ID] = true
	}
	if len(concerned) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for s := range c.sessions {
		if concerned[s.agent.ID] || s.admin && e.Ticket != nil && s.watching(e.Ticket.ConversationID) {
			s.push(job{event: &e})
		}
	}
}

func (c *Console) markDirty() {
	select {
	case c.dirty <- struct{}{}:
	default:
	}
}

// viewLoop pushes the queue and team views to every local session when
// they changed, at most once per ViewInterval.
func (c *Console) viewLoop() {
	defer c.wg.Done()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-c.dirty:
		}
		c.mu.Lock()
		n := len(c.sessions)
		c.mu.Unlock()
		if n > 0 {
			c.pushViews()
		}
		t := time.NewTimer(c.cfg.ViewInterval)
		select {
		case <-c.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (c *Console) pushViews() {
	ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
	defer cancel()
	q, err := c.queueFrame(ctx)
	if err != nil {
		c.log.Warn("console: queue view", "err", err)
		return
	}
	a, err := c.agentsFrame(ctx)
	if err != nil {
		c.log.Warn("console: team view", "err", err)
		return
	}
	qb, ab := mustJSON(q), mustJSON(a)
	c.mu.Lock()
	defer c.mu.Unlock()
	for s := range c.sessions {
		if s.ready() {
			s.conn.Send(json.RawMessage(qb))
			s.conn.Send(json.RawMessage(ab))
		}
	}
}

func (c *Console) queueFrame(ctx context.Context) (QueueFrame, error) {
	qs, err := c.eng.Queue(ctx, c.cfg.QueueViewLimit)
	if err != nil {
		return QueueFrame{}, err
	}
	f := QueueFrame{Type: FrameQueueView, Tickets: make([]QueueEntry, len(qs)), Total: len(qs)}
	for i, q := range qs {
		f.Tickets[i] = QueueEntry{Ticket: q.Ticket, Position: q.Queue.Position, EstimatedWaitS: seconds(q.Queue.EstimatedWait)}
	}
	return f, nil
}

func (c *Console) agentsFrame(ctx context.Context) (AgentsFrame, error) {
	sts, err := c.eng.AgentStatuses(ctx)
	if err != nil {
		return AgentsFrame{}, err
	}
	f := AgentsFrame{Type: FrameAgentsView, Agents: make([]AgentView, 0, len(sts))}
	for _, st := range sts {
		if !st.Agent.Disabled {
			f.Agents = append(f.Agents, agentView(st, false))
		}
	}
	return f, nil
}

func (c *Console) register(s *session) {
	c.mu.Lock()
	c.sessions[s] = struct{}{}
	c.mu.Unlock()
}

func (c *Console) unregister(s *session) {
	c.mu.Lock()
	delete(c.sessions, s)
	c.mu.Unlock()
}

// Sessions returns the number of authenticated console sessions on this node.
func (c *Console) Sessions() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.sessions)
}

// handleWS upgrades a console socket; the agent authenticates with hello.
func (c *Console) handleWS(w http.ResponseWriter, r *http.Request) {
	if !c.originAllowed(r) {
		gateway.WriteError(w, r, c.log, tandem.Errorf(tandem.EFORBIDDEN, "origin not allowed for the console"))
		return
	}
	c.chat.Accept(w, r, &session{c: c, done: make(chan struct{})})
}

// originAllowed accepts the gateway's own origin, configured origins, and
// clients that send no Origin (not browsers; they still need a token).
func (c *Console) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	if i := strings.Index(origin, "://"); i >= 0 && strings.EqualFold(origin[i+3:], r.Host) {
		return true
	}
	for _, o := range c.cfg.AllowedOrigins {
		if o == "*" || strings.EqualFold(strings.TrimRight(o, "/"), origin) {
			return true
		}
	}
	return false
}

// suggestions returns suggested answers for the latest customer message of
// a conversation (or query, when set).
func (c *Console) suggestions(ctx context.Context, convID, query string) (SuggestionsFrame, bool) {
	f := SuggestionsFrame{Type: FrameSuggestions, ConversationID: convID, Items: []Suggestion{}}
	if c.cfg.Suggester == nil {
		return f, false
	}
	conv, err := c.chat.Conversation(ctx, convID)
	if err != nil {
		return f, false
	}
	if query == "" {
		query = c.lastCustomerText(ctx, conv)
	}
	if query == "" {
		return f, false
	}
	if utf8.RuneCountInString(query) > maxQueryRunes {
		query = string([]rune(query)[:maxQueryRunes])
	}
	f.Query = query
	items, err := c.cfg.Suggester.Suggest(ctx, query, conv.Locale, 3)
	if tandem.ErrorCode(err) == tandem.EINVALID {
		// The customer's message has nothing to search by (e.g. only
		// symbols): no suggestions, and nothing for operators to fix.
		return SuggestionsFrame{}, false
	}
	if err != nil {
		c.log.Warn("console: suggestions", "conversation", convID, "err", err)
		return f, false
	}
	if items != nil {
		f.Items = items
	}
	return f, true
}

// lastCustomerText is the latest customer text message (not a bare "talk
// to a person" button press, a rating or a withdrawn request) among the
// last 50 messages.
func (c *Console) lastCustomerText(ctx context.Context, conv tandem.Conversation) string {
	after := max(conv.LastSeq-50, 0)
	msgs, err := c.chat.Messages(ctx, conv.ID, after, 50)
	if err != nil {
		return ""
	}
	for i := len(msgs) - 1; i >= 0; i-- {
		if m := msgs[i]; m.Author == tandem.AuthorCustomer && (m.Kind == "text" || m.Kind == "") {
			return m.Text
		}
	}
	return ""
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("console: marshal %T: %v", v, err))
	}
	return b
}
