package console

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/time/rate"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/gateway"
	"github.com/tandem-chat/tandem/handoff"
)

// session is one console connection. HandleFrame runs on the connection's
// read goroutine; pushed events are applied by the session's worker
// goroutine (run), in order.
type session struct {
	c    *Console
	done chan struct{} // closed when the worker ends

	// Set once by hello (read goroutine) before the session is registered
	// or its worker started; read-only afterwards.
	conn     *gateway.Conn
	agent    tandem.Agent
	token    gateway.Principal // the hello's token: its stamp is checked at each heartbeat
	admin    bool
	jobs     chan job
	welcomed chan struct{} // closed by the worker once the welcome is sent (or failed)
	welcome1 sync.Once     // closes welcomed

	authed  atomic.Bool
	isReady atomic.Bool // the welcome was sent
	closed  atomic.Bool
	// signedOut: the sign_out frame ended the presence session already.
	signedOut atomic.Bool
	sid       atomic.Value  // string: the engine's presence session id
	lastBeat  time.Time     // read goroutine only
	msgs      *rate.Limiter // the agent's messages (read goroutine only)
	rejects   int           // messages refused in a row by msgs (read goroutine only)

	mu      sync.Mutex      // guards watched
	watched map[string]bool // conversations an admin opened
}

type job struct {
	init   bool
	event  *handoff.Event
	resync bool // re-check every followed conversation against the store
}

func (s *session) actor() handoff.Actor { return handoff.Actor{AgentID: s.agent.ID, Admin: s.admin} }

func (s *session) ready() bool { return s.isReady.Load() }

func (s *session) watching(conv string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.watched[conv]
}

// push queues a job for the worker without blocking; a session that cannot
// keep up is closed (the console reconnects and reloads its state).
func (s *session) push(j job) {
	select {
	case s.jobs <- j:
	default:
		s.conn.Close(gateway.CloseSlowConsumer, "slow consumer", false)
	}
}

// HandleFrame implements gateway.FrameHandler.
func (s *session) HandleFrame(ctx context.Context, conn *gateway.Conn, data []byte) {
	if s.authed.Load() {
		// The worker sends the welcome; answers to the frames after hello
		// wait for it, so none comes first.
		select {
		case <-s.welcomed:
		case <-ctx.Done():
			return
		}
	}
	f, err := DecodeClientFrame(data)
	if err != nil {
		// Answer with the frame's ref and type when they can be read, so a
		// client waiting on its ref gets this error.
		conn.Send(errorFrame(err, refOf(data)))
		if !s.authed.Load() { // the first frame must be a valid hello
			if gateway.IsHello(data) {
				// A malformed hello: 4400, not 4401, on which the console
				// throws its token away.
				conn.Close(gateway.WSCloseCode(tandem.EINVALID), "invalid hello", true)
				return
			}
			conn.Close(gateway.WSCloseCode(tandem.EUNAUTHORIZED), "hello required", true)
			return
		}
		conn.Strike()
		return
	}
	if !s.authed.Load() {
		if f.Type != FrameHello {
			conn.Send(errorFrame(tandem.Errorf(tandem.EUNAUTHORIZED, "the first frame must be hello"), f))
			conn.Close(gateway.WSCloseCode(tandem.EUNAUTHORIZED), "hello required", true)
			return
		}
		s.hello(ctx, conn, f)
		return
	}
	s.heartbeat(ctx)
	if s.closed.Load() {
		return
	}
	if err := s.handle(ctx, f); err != nil {
		switch tandem.ErrorCode(err) {
		case tandem.EINVALID:
			s.conn.Strike()
		case tandem.EINTERNAL: // the agent sees "internal error": the operator needs the cause
			s.c.log.Error("console: action failed", "action", f.Type, "agent", s.agent.ID, "err", err)
		}
		s.conn.Send(errorFrame(err, f))
	}
}

func (s *session) hello(ctx context.Context, conn *gateway.Conn, f ClientFrame) {
	c := s.c
	fail := func(err error) {
		err = unavailable(c, "hello", err)
		conn.Send(errorFrame(err, f))
		conn.Close(gateway.WSCloseCode(tandem.ErrorCode(err)), tandem.ErrorMessage(err), true)
	}
	p, err := c.auth.Parse(f.Token)
	if err != nil {
		fail(err)
		return
	}
	if p.Role != gateway.RoleAgent && p.Role != gateway.RoleAdmin {
		fail(tandem.Errorf(tandem.EUNAUTHORIZED, "the console needs an agent token"))
		return
	}
	agent, stamp, err := c.eng.AgentWithStamp(ctx, p.ID)
	if err != nil {
		if tandem.ErrorCode(err) == tandem.ENOTFOUND {
			err = tandem.Errorf(tandem.EUNAUTHORIZED, "unknown agent; log in again")
		}
		fail(err)
		return
	}
	if agent.Disabled {
		// Said before the stamp (disabling changes it too): the reason.
		fail(tandem.Errorf(tandem.EFORBIDDEN, "this account is disabled"))
		return
	}
	if err := p.CheckStamp(stamp); err != nil {
		fail(err)
		return
	}
	sid, _, err := c.eng.Connect(ctx, agent.ID)
	if err != nil {
		if tandem.ErrorCode(err) == tandem.ENOTFOUND {
			err = tandem.Errorf(tandem.EUNAUTHORIZED, "unknown agent; log in again")
		}
		fail(err)
		return
	}
	s.conn, s.agent, s.admin, s.token = conn, agent, agent.Role == handoff.RoleAdmin, p
	s.sid.Store(sid)
	s.lastBeat = c.eng.Config().Clock.Now()
	s.msgs = rate.NewLimiter(rate.Limit(c.cfg.MessageRate), c.cfg.MessageBurst)
	s.jobs = make(chan job, c.cfg.SessionQueue)
	s.welcomed = make(chan struct{})
	s.authed.Store(true)
	conn.Authenticated()
	s.jobs <- job{init: true} // first: before any event can be queued
	c.register(s)
	go s.run()
}

// heartbeat tells the engine the agent is alive, at most every
// HeartbeatTimeout/6 (the console pings every HeartbeatTimeout/3).
func (s *session) heartbeat(ctx context.Context) {
	cfg := s.c.eng.Config()
	every := cfg.HeartbeatTimeout / 6
	now := cfg.Clock.Now() // the engine's time: tests move it

	if now.Sub(s.lastBeat) < every {
		return
	}
	s.lastBeat = now
	sid, _ := s.sid.Load().(string)
	if s.c.auth.Expired(s.token) {
		// The token the console said hello with ran out: the console
		// signs in again (its unsent replies are kept in the tab).
		s.end(tandem.Errorf(tandem.EUNAUTHORIZED, "your session expired; log in again"))
		return
	}
	stamp, role, err := s.c.eng.HeartbeatWithStamp(ctx, s.agent.ID, sid)
	if err == nil {
		// A password changed since the hello (here, or by `tandem agent
		// password` in another process) ends the console as it ends the
		// token: whoever held the old password is out within a heartbeat.
		err = s.token.CheckStamp(stamp)
	}
	if err == nil && (role == handoff.RoleAdmin) != s.admin {
		// A role change whose event was lost (or that came between a
		// login and the swap of the role): no console keeps the old
		// role's powers past a heartbeat.
		err = tandem.Errorf(tandem.EUNAUTHORIZED, "your role changed to %s; log in again", role)
	}
	switch tandem.ErrorCode(err) {
	case "":
		// Events are hints and can be lost: now and then, check what the
		// agent follows against the store (on the worker, which owns
		// follows), so a chat that moved on stops reaching them.
		s.push(job{resync: true})
	case tandem.ENOTFOUND: // the session expired (e.g. a long network stall): open a new one
		if sid, _, err := s.c.eng.Connect(ctx, s.agent.ID); err == nil {
			s.sid.Store(sid)
		} else {
			s.end(err)
		}
	case tandem.EFORBIDDEN, tandem.EUNAUTHORIZED: // disabled, or the password changed
		s.end(err)
	default:
		s.c.log.Warn("console: heartbeat", "agent", s.agent.ID, "err", err)
	}
}

// unavailable logs a store failure (an internal error) and turns it into
// unavailable: the socket closes with 1013, try again later, as for the
// widget (docs/protocol.md), not 1011. Other errors are returned as they are.
func unavailable(c *Console, op string, err error) error {
	if tandem.ErrorCode(err) != tandem.EINTERNAL {
		return err
	}
	c.log.Error("console: "+op, "err", err)
	return tandem.WrapError(tandem.EUNAVAILABLE, err, "the agent store is unavailable; retry shortly")
}

func (s *session) end(err error) {
	err = unavailable(s.c, "session", err)
	s.closed.Store(true)
	s.conn.Send(errorFrame(err, ClientFrame{}))
	s.conn.Close(gateway.WSCloseCode(tandem.ErrorCode(err)), tandem.ErrorMessage(err), true)
}

// assigning wraps an action that assigns a ticket to this agent (accept,
// claim): before the console hears "ok" and can write, the customer's
// conversation is in human mode and its "You are now chatting with …" note
// is logged, so the agent's first message comes after it — if the
// conversation is still queued (Chat.AssignedIfQueued: a withdrawal that
// came first is not overwritten). The assignment's event announces it
// again, logged once (assignedStatus's key); a failure here is left to
// that event.
func (s *session) assigning(do func(context.Context, handoff.Actor, string) (tandem.Ticket, error)) func(context.Context, handoff.Actor, string) (tandem.Ticket, error) {
	return func(ctx context.Context, a handoff.Actor, id string) (tandem.Ticket, error) {
		t, err := do(ctx, a, id)
		if err == nil && t.State == tandem.TicketAssigned && t.AgentID == s.agent.ID {
			st := assignedStatus(t, s.agent.DisplayName)
			done, aerr := s.c.chat.AssignedIfQueued(ctx, t.ConversationID, st)
			if aerr == nil && !done {
				// Still in bot mode: the escalating node has not switched it
				// to queued yet (it does once the ticket is committed, and
				// routing can be quicker). The note must still come before
				// the ok, so the agent's greeting follows it.
				if cur, cerr := s.c.eng.OpenTicket(ctx, t.ConversationID); cerr == nil && cur.ID == t.ID &&
					cur.State == tandem.TicketAssigned && cur.AgentID == s.agent.ID {
					_, aerr = s.c.chat.AssignedIfBot(ctx, t.ConversationID, st)
				}
			}
			if aerr != nil {
				s.c.log.Warn("console: announce an assignment", "conversation", t.ConversationID, "err", aerr)
			}
		}
		return t, err
	}
}

// handle runs one client frame after hello.
func (s *session) handle(ctx context.Context, f ClientFrame) error {
	c, a := s.c, s.actor()
	ok := func(t *tandem.Ticket) {
		s.conn.Send(OKFrame{Type: FrameOK, Ref: f.Ref, Action: f.Type, Ticket: t})
	}
	ticketAction := func(do func(context.Context, handoff.Actor, string) (tandem.Ticket, error)) error {
		t, err := do(ctx, a, f.TicketID)
		if err != nil {
			return err
		}
		ok(&t) // the answer first, then the transcript if the agent may now read it
		s.sync(ctx, t.ConversationID)
		return nil
	}
	switch f.Type {
	case FrameHello:
		return tandem.Errorf(tandem.EINVALID, "already said hello")
	case FramePing:
		if s.conn.AllowPing() {
			s.conn.Send(PongFrame{Type: FramePong, ID: f.ID})
		}
	case FramePresence:
		if _, err := c.eng.SetPresence(ctx, s.agent.ID, tandem.Presence(f.Status)); err != nil {
			return err
		}
		ok(nil)
	case FrameAccept:
		return ticketAction(s.assigning(c.eng.Accept))
	case FrameDecline:
		return ticketAction(c.eng.Decline)
	case FrameClaim:
		return ticketAction(s.assigning(c.eng.Claim))
	case FrameResolve:
		return ticketAction(c.eng.Resolve)
	case FrameReturn:
		return ticketAction(c.eng.ReturnToBot)
	case FrameTransfer:
		if f.ToAgentID != "" {
			return ticketAction(func(ctx context.Context, a handoff.Actor, id string) (tandem.Ticket, error) {
				return c.eng.Transfer(ctx, a, id, f.ToAgentID)
			})
		}
		return ticketAction(func(ctx context.Context, a handoff.Actor, id string) (tandem.Ticket, error) {
			return c.eng.TransferToGroup(ctx, a, id, f.Skills)
		})
	case FrameOpen:
		if _, err := c.eng.Authorize(ctx, a, f.ConversationID, false); err != nil {
			return err
		}
		if s.admin {
			s.mu.Lock()
			if s.watched == nil {
				s.watched = map[string]bool{}
			}
			s.watched[f.ConversationID] = true
			s.mu.Unlock()
		}
		if err := s.follow(f.ConversationID); err != nil {
			return err
		}
		ok(nil)
	case FrameMessage:
		if r := s.msgs.Reserve(); r.Delay() > 0 {
			wait := r.Delay()
			r.Cancel()
			fr := errorFrame(tandem.Errorf(tandem.EOVERLOADED, "too many messages; slow down"), f)
			fr.RetryAfterMS = max(wait.Milliseconds(), 1)
			s.conn.Send(fr)
			if s.rejects++; s.rejects >= maxMessageRejects {
				s.conn.Close(gateway.WSCloseCode(tandem.EOVERLOADED), "message flood", true)
			}
			return nil
		}
		s.rejects = 0
		if _, err := c.eng.Authorize(ctx, a, f.ConversationID, true); err != nil {
			return err
		}
		m, dup, err := c.chat.PostMessage(ctx, tandem.Message{ConversationID: f.ConversationID, ClientID: "agent:" + f.ClientID,
			Author: tandem.AuthorAgent, AuthorID: s.agent.ID, AuthorName: s.agent.DisplayName, Text: f.Text, Kind: "text"})
		if err != nil {
			return err
		}
		if dup && (m.Text != f.Text || m.AuthorID != s.agent.ID) {
			// A client_id names one message (as for customers): another
			// text under a used one would be acked and silently dropped.
			return tandem.Errorf(tandem.ECONFLICT, "client_id %q was already used for a different message (seq %d); send it with a new client_id", f.ClientID, m.Seq)
		}
		s.conn.Send(AckFrame{Type: FrameAck, ConversationID: f.ConversationID, ClientID: f.ClientID, Seq: m.Seq, Duplicate: dup})
	case FrameTyping:
		if _, err := c.eng.Authorize(ctx, a, f.ConversationID, true); err != nil {
			return err
		}
		if !s.conn.AllowEphemeral() {
			return nil
		}
		return c.chat.Publish(ctx, f.ConversationID, s.conn.ID(), gateway.TypingFrame{Type: gateway.FrameTyping,
			ConversationID: f.ConversationID, Author: tandem.AuthorAgent, Name: s.agent.DisplayName, On: *f.On})
	case FrameRead:
		t, err := c.eng.Authorize(ctx, a, f.ConversationID, false)
		if err != nil {
			return err
		}
		if t.State == tandem.TicketOffered && !a.Admin {
			// An agent reading an offer's transcript has not joined: the
			// customer is not told "read" by someone not in the chat.
			return nil
		}
		if !s.conn.AllowEphemeral() || !c.chat.SeqLogged(ctx, f.ConversationID, f.Seq) {
			return nil // a read mark past the end of the log is not relayed
		}
		return c.chat.Publish(ctx, f.ConversationID, s.conn.ID(), gateway.ReadFrame{Type: gateway.FrameRead,
			ConversationID: f.ConversationID, Author: tandem.AuthorAgent, Seq: f.Seq})
	case FrameSuggest:
		if _, err := c.eng.Authorize(ctx, a, f.ConversationID, false); err != nil {
			return err
		}
		sf, _ := c.suggestions(ctx, f.ConversationID, f.Query)
		s.conn.Send(sf)
	case FrameQueue:
		q, err := c.queueFrame(ctx)
		if err != nil {
			return err
		}
		s.conn.Send(q)
	case FrameAgents:
		af, err := c.agentsFrame(ctx)
		if err != nil {
			return err
		}
		s.conn.Send(af)
	case FrameSignOut:
		// The agent left on purpose: their chats go back to the queue
		// now (unless another console of theirs is open), not after the
		// grace period a dropped connection gets.
		sid, _ := s.sid.Load().(string)
		if _, err := c.eng.SignOut(ctx, s.agent.ID, sid); err != nil {
			return err
		}
		s.signedOut.Store(true)
		ok(nil)
		s.closed.Store(true)
		s.conn.Close(1000, "signed out", true) // a normal closure
	}
	return nil
}

// follow subscribes the connection to a conversation: the transcript is
// replayed, then live frames follow. Following twice is not an error.
func (s *session) follow(conv string) error {
	if err := s.conn.Follow(conv, 0); err != nil && tandem.ErrorCode(err) != tandem.ECONFLICT {
		return err
	}
	return nil
}

// sync follows a conversation while the agent may read it and stops
// following it otherwise (the store is the source of truth, not the order
// in which events arrive). A store error keeps things as they are: it says
// nothing about the agent's access, and unfollowing would silently cut an
// assigned agent off the customer's messages.
func (s *session) sync(ctx context.Context, conv string) {
	_, err := s.c.eng.Authorize(ctx, s.actor(), conv, false)
	switch tandem.ErrorCode(err) {
	case "":
		if err := s.follow(conv); err != nil {
			s.c.log.Warn("console: follow", "conversation", conv, "err", err)
		}
		return
	case tandem.EFORBIDDEN, tandem.ENOTFOUND:
	default:
		if ctx.Err() == nil {
			s.c.log.Warn("console: check access", "agent", s.agent.ID, "conversation", conv, "err", err)
		}
		return
	}
	s.mu.Lock()
	delete(s.watched, conv)
	s.mu.Unlock()
	s.conn.Unfollow(conv)
}

// resync stops following the conversations the agent may no longer read
// (the event saying so was lost); a store error keeps things as they are.
func (s *session) resync(ctx context.Context) {
	for _, conv := range s.conn.Following() {
		_, err := s.c.eng.Authorize(ctx, s.actor(), conv, false)
		switch tandem.ErrorCode(err) {
		case "":
		case tandem.EFORBIDDEN, tandem.ENOTFOUND:
			s.c.log.Info("console: stopped following a conversation the agent may no longer read (an event was lost)",
				"agent", s.agent.ID, "conversation", conv)
			s.mu.Lock()
			delete(s.watched, conv)
			s.mu.Unlock()
			s.conn.Unfollow(conv)
		default:
			s.c.log.Warn("console: resync", "conversation", conv, "err", err)
		}
	}
}

// run is the session's worker: the welcome, then pushed events in order.
func (s *session) run() {
	defer close(s.done)
	ctx := s.conn.Context()
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-s.jobs:
			switch {
			case j.init:
				s.welcome(ctx)
				s.welcomeDone() // also when it failed (the socket is closing)
			case j.event != nil:
				s.apply(ctx, *j.event)
			case j.resync:
				s.resync(ctx)
			}
		}
	}
}

// welcomeDone lets the frames after hello be answered.
func (s *session) welcomeDone() { s.welcome1.Do(func() { close(s.welcomed) }) }

// welcomeTimeout bounds the reads of the welcome: the read loop waits for
// it (HandleFrame), so a stalled store must not hold the socket.
const welcomeTimeout = 10 * time.Second

func (s *session) welcome(ctx context.Context) {
	c := s.c
	rctx, cancel := context.WithTimeout(ctx, welcomeTimeout)
	st, err := c.eng.AgentStatus(rctx, s.agent.ID)
	var tickets []tandem.Ticket
	if err == nil {
		tickets, err = c.eng.AgentTickets(rctx, s.agent.ID)
	}
	cancel()
	if err != nil {
		s.end(err)
		return
	}
	if tickets == nil {
		tickets = []tandem.Ticket{}
	}
	cfg := c.eng.Config()
	s.conn.Send(WelcomeFrame{Type: FrameWelcome, Protocol: gateway.Subprotocol, Agent: agentView(st, true), Tickets: tickets,
		Canned: c.cfg.Canned, HeartbeatMS: (cfg.HeartbeatTimeout / 3).Milliseconds(), OfferTimeoutS: seconds(cfg.OfferTimeout)})
	s.isReady.Store(true)
	s.welcomeDone() // answers may follow the welcome now, before the transcripts
	for _, t := range tickets {
		s.sync(ctx, t.ConversationID)
		if sf, ok := c.suggestions(ctx, t.ConversationID, ""); ok {
			s.conn.Send(sf)
		}
	}
	if q, err := c.queueFrame(ctx); err == nil {
		s.conn.Send(q)
	}
	if a, err := c.agentsFrame(ctx); err == nil {
		s.conn.Send(a)
	}
}

// apply pushes one handoff event to the console.
func (s *session) apply(ctx context.Context, e handoff.Event) {
	if e.Type == handoff.EventPresence {
		if e.Agent != nil && e.Agent.Agent.ID == s.agent.ID {
			if e.Agent.Agent.Disabled {
				s.end(tandem.Errorf(tandem.EFORBIDDEN, "this account is disabled"))
				return
			}
			if (e.Agent.Agent.Role == handoff.RoleAdmin) != s.admin {
				// The token is ended too (handoff.PatchAgent): no console
				// keeps the old role's powers.
				s.end(tandem.Errorf(tandem.EUNAUTHORIZED, "your role changed to %s; log in again", e.Agent.Agent.Role))
				return
			}
			s.conn.Send(PresenceFrame{Type: FrameMyPresence, Agent: agentView(*e.Agent, true)})
		}
		return
	}
	if e.Ticket == nil {
		return
	}
	t := *e.Ticket
	s.conn.Send(TicketFrame{Type: FrameTicket, Event: string(e.Type), Ticket: t, AgentName: e.AgentName,
		PrevAgentID: e.PrevAgentID, Reason: e.Reason})
	s.sync(ctx, t.ConversationID)
	if e.Type == handoff.EventOffered && e.AgentID == s.agent.ID {
		if sf, ok := s.c.suggestions(ctx, t.ConversationID, ""); ok {
			s.conn.Send(sf)
		}
	}
}

// Closed implements gateway.FrameHandler: the agent's presence session ends
// (the engine's grace period starts when it was their last).
// HandlePong counts the console's answer to a server ping as a presence
// heartbeat (docs/handoff.md: "pong / any frame"): a console that is
// connected but sends nothing (a client relying on WebSocket keepalive, a
// browser throttling a background tab's timers) kept its socket open
// while the engine re-queued its chats as disconnected.
func (s *session) HandlePong(ctx context.Context, _ *gateway.Conn) {
	if s.authed.Load() && !s.closed.Load() {
		s.heartbeat(ctx)
	}
}

func (s *session) Closed(*gateway.Conn) {
	if !s.authed.Load() {
		return
	}
	s.c.unregister(s)
	if s.signedOut.Load() {
		return
	}
	sid, _ := s.sid.Load().(string)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.c.eng.Disconnect(ctx, s.agent.ID, sid); err != nil {
		s.c.log.Warn("console: disconnect", "agent", s.agent.ID, "err", err)
	}
}

// maxMessageRejects is how many messages in a row a console may send over
// its rate before it is closed (4429).
const maxMessageRejects = 30

// refOf reads what it can of a frame that failed validation (its ref, type,
// ticket and client ids) for the error answer; nothing for malformed JSON.
func refOf(data []byte) ClientFrame {
	get, ok := gateway.LooseStrings(data)
	if !ok {
		return ClientFrame{}
	}
	str := func(k string) string { v, _ := get(k); return v }
	f := ClientFrame{Type: str("type"), Ref: str("ref"), TicketID: str("ticket_id"), ClientID: str("client_id")}
	if !utf8.ValidString(f.Ref+f.Type+f.TicketID+f.ClientID) || len(f.Ref)+len(f.Type)+len(f.TicketID)+len(f.ClientID) > 512 {
		return ClientFrame{}
	}
	return f
}
