package gateway

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tandem-chat/tandem"
)

// Bot answers customer turns (the pipeline implements it).
type Bot interface {
	Respond(ctx context.Context, turn tandem.Turn) (tandem.Reply, error)
}

// StreamingBot is a Bot that can stream its answer; the gateway uses it
// when the Bot implements it, sending each delta as a delta frame.
type StreamingBot interface {
	RespondStream(ctx context.Context, turn tandem.Turn, onDelta func(delta string)) (tandem.Reply, error)
}

// Handoff takes escalated conversations (the handoff engine implements
// it). It reports progress back through Chat.HandoffStatus.
type Handoff interface {
	Escalate(ctx context.Context, conversationID string, esc tandem.Escalation) error
}

// ContactTaker is an optional interface of a Handoff: the customer leaves
// a contact address (an email address or a phone number) on the
// conversation's open ticket, typically while nobody is online. It returns
// the address as stored and whether the ticket still waits in the queue
// (not with an agent); a malformed address is invalid, a conversation
// without an open ticket not_found (both *tandem.Error with a message the
// customer may read).
type ContactTaker interface {
	LeaveContact(ctx context.Context, conversationID, address string) (stored string, queued bool, err error)
}

// HandoffCanceler is an optional interface of a Handoff: the customer
// withdraws their request for a person and goes back to the bot (the
// conversation's open ticket is closed as returned; an agent holding it is
// told). A conversation without an open ticket is not_found.
type HandoffCanceler interface {
	CancelHandoff(ctx context.Context, conversationID string) error
}

// HandoffState is where a conversation's handoff stands in the handoff's
// own store.
type HandoffState struct {
	// Open: the conversation has an open ticket (queued, offered or
	// assigned).
	Open bool
	// Held: the customer's messages wait for an agent instead of going to
	// the bot — the ticket is assigned, or an agent already took part in it
	// (a transfer, or a re-queue after the agent left). Before any agent
	// joined, the bot keeps answering while the customer waits.
	Held bool
}

// HandoffStater is an optional interface of a Handoff, asked for every
// customer message of a conversation in queued or human mode.
//
// The conversation's mode follows the handoff through its events, and
// events are hints that can be lost (a full event buffer, a node stopped
// between a ticket's change and its event); the handoff's store is the
// source of truth. A conversation found in queued or human mode without an
// open ticket goes back to the bot — the customer is told, the message is
// answered, and a new request for a person works — and the repair is
// logged and counted in tandem_handoff_mode_repaired_total. When the
// handoff cannot tell (an error), or without the interface, a queued
// conversation's messages go to the bot and a human one's to its agent.
type HandoffStater interface {
	HandoffState(ctx context.Context, conversationID string) (HandoffState, error)
}

// turnJob is one customer message to answer.
type turnJob struct {
	msg          tandem.Message
	requestHuman bool
}

// dispatcher runs bot turns: in order per conversation, at most
// MaxConcurrentTurns at once on the node, at most MaxPendingTurns waiting
// per conversation. A turn that goes on to stream a generative answer
// gives its slot back when it starts waiting for the remote server, which
// bounds its own calls (pipeline.LLMConfig MaxConcurrent). A "talk to a
// person" request (the widget's button) takes no slot: it must not wait
// behind other conversations' turns; it is bounded by the
// per-conversation queue, the widget's rate limits and the pipeline's own
// admission gate.
type dispatcher struct {
	chat   *Chat
	sem    chan struct{}
	ctx    context.Context // cancelled when shutdown runs out of time
	cancel context.CancelFunc

	pending atomic.Int64 // turns queued or running

	mu      sync.Mutex // guards queues, running, looks, closed
	queues  map[string][]turnJob
	running map[string]int64 // conversation -> seq of the turn running
	// stops ends the running bot turn of a conversation (not a request
	// for a person) when the customer asks for a person meanwhile.
	stops  map[string]context.CancelCauseFunc
	looks  map[string]*time.Timer // conversation -> pending look for lost turns (later)
	closed bool
	wg     sync.WaitGroup
}

func newDispatcher(c *Chat) *dispatcher {
	ctx, cancel := context.WithCancel(context.Background())
	return &dispatcher{chat: c, sem: make(chan struct{}, c.cfg.MaxConcurrentTurns), ctx: ctx, cancel: cancel,
		queues: map[string][]turnJob{}, running: map[string]int64{}, stops: map[string]context.CancelCauseFunc{}, looks: map[string]*time.Timer{}}
}

// room reports whether the conversation can take another turn.
func (d *dispatcher) room(conv string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return tandem.Errorf(tandem.EUNAVAILABLE, "server is restarting; reconnect")
	}
	if len(d.queues[conv]) >= d.chat.cfg.MaxPendingTurns {
		return tandem.Errorf(tandem.EOVERLOADED, "the assistant is still answering your previous messages")
	}
	return nil
}

func (d *dispatcher) submit(j turnJob) error {
	conv := j.msg.ConversationID
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return tandem.Errorf(tandem.EUNAVAILABLE, "server is restarting")
	}
	q, running := d.queues[conv]
	if d.hasLocked(conv, j.msg.Seq) {
		return nil // already queued or running: one turn per message
	}
	// room() admitted this message before it was stored; messages from
	// several tabs admitted at once may overshoot that limit by a few.
	// Refusing them now would leave a stored, acknowledged message (a
	// "talk to a person" maybe) unanswered, so only a hard bound of twice
	// the limit applies here.
	if len(q) >= 2*d.chat.cfg.MaxPendingTurns {
		return tandem.Errorf(tandem.EOVERLOADED, "too many pending turns")
	}
	// In seq order: two tabs' messages stored as 5 and 6 may be submitted
	// as 6 and 5; the bot answers them in the order the log has them.
	i := len(q)
	for i > 0 && q[i-1].msg.Seq > j.msg.Seq {
		i--
	}
	d.queues[conv] = slices.Insert(q, i, j)
	d.pending.Add(1)
	// "Talk to a person" does not wait behind a bot answer still being
	// written (a slow generator held the button up to half a minute): that
	// turn ends, and the request runs next.
	if stop, ok := d.stops[conv]; ok && j.requestHuman && d.running[conv] < j.msg.Seq {
		stop(errSupersededByHuman)
	}
	if !running {
		d.wg.Add(1)
		go d.run(conv)
	}
	return nil
}

func (d *dispatcher) run(conv string) {
	defer d.wg.Done()
	for {
		d.mu.Lock()
		q := d.queues[conv]
		if len(q) == 0 {
			delete(d.queues, conv)
			d.mu.Unlock()
			return
		}
		j := q[0]
		d.queues[conv] = q[1:]
		d.running[conv] = j.msg.Seq
		tctx, stop := context.WithCancelCause(d.ctx)
		if !j.requestHuman {
			d.stops[conv] = stop
			// A request for a person queued behind this message: its
			// answer is not waited for either (the agent sees the message).
			if slices.ContainsFunc(q[1:], func(x turnJob) bool { return x.requestHuman }) {
				stop(errSupersededByHuman)
			}
		}
		d.mu.Unlock()
		switch {
		case d.ctx.Err() != nil: // drain without running
		case j.requestHuman:
			d.chat.runTurn(tctx, j)
		default:
			select {
			case d.sem <- struct{}{}:
				// The bot gives the slot back early when it goes on to
				// wait for a remote generator (tandem.ReleaseSlot).
				release := sync.OnceFunc(func() { <-d.sem })
				d.chat.runTurn(tandem.WithSlotRelease(tctx, release), j)
				release()
			case <-tctx.Done(): // drain, or superseded, without running
			}
		}
		stop(nil)
		d.mu.Lock()
		delete(d.running, conv)
		delete(d.stops, conv)
		d.mu.Unlock()
		d.pending.Add(-1)
	}
}

// has reports whether a turn for message seq of conv is queued or running
// on this node.
func (d *dispatcher) has(conv string, seq int64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.hasLocked(conv, seq)
}

func (d *dispatcher) hasLocked(conv string, seq int64) bool {
	if s, ok := d.running[conv]; ok && s == seq {
		return true
	}
	for _, j := range d.queues[conv] {
		if j.msg.Seq == seq {
			return true
		}
	}
	return false
}

// later runs fn after wait on a goroutine of its own, with a context that
// ends at turnFinishTimeout or when shutdown runs out of time, unless a
// call for conv is pending already or the dispatcher is closed. close stops
// the pending ones and waits for those running.
func (d *dispatcher) later(conv string, wait time.Duration, fn func(context.Context)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed || d.looks[conv] != nil {
		return
	}
	var t *time.Timer
	t = time.AfterFunc(wait, func() {
		d.mu.Lock()
		if d.closed || d.looks[conv] != t {
			d.mu.Unlock()
			return
		}
		delete(d.looks, conv)
		d.wg.Add(1)
		d.mu.Unlock()
		defer d.wg.Done()
		ctx, cancel := context.WithTimeout(d.ctx, turnFinishTimeout)
		defer cancel()
		fn(ctx)
	})
	d.looks[conv] = t
}

// close stops taking turns and waits for queued ones within ctx.
func (d *dispatcher) close(ctx context.Context) error {
	d.mu.Lock()
	d.closed = true
	for conv, t := range d.looks {
		t.Stop()
		delete(d.looks, conv)
	}
	d.mu.Unlock()
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	select {
	case <-done:
		d.cancel()
		return nil
	case <-ctx.Done():
	}
	// Out of time: the turns' context ends, and they get a moment to see
	// it (a turn cut short is answered at its customer's next hello); a
	// bot that does not honour its context is not waited for.
	d.cancel()
	t := time.NewTimer(shutdownCutGrace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		return fmt.Errorf("gateway: bot turns cut short by shutdown, some still running: %w", ctx.Err())
	}
	return fmt.Errorf("gateway: bot turns cut short by shutdown: %w", ctx.Err())
}

// shutdownCutGrace is how long a shutdown that ran out of time waits for
// the bot turns it cancelled to end.
const shutdownCutGrace = time.Second

// PendingTurns returns the bot turns queued or running on this node.
func (c *Chat) PendingTurns() int { return int(c.turns.pending.Load()) }

// turnFinishTimeout bounds storing a turn's answer and escalating, after
// the bot (which has BotTimeout) is done.
const turnFinishTimeout = 10 * time.Second

// runTurn answers one customer message and escalates when the bot says so.
func (c *Chat) runTurn(base context.Context, j turnJob) {
	ctx, cancel := context.WithTimeout(base, c.cfg.BotTimeout)
	defer cancel()
	convID := j.msg.ConversationID
	conv, err := c.turnConversation(ctx, convID)
	if err != nil {
		if !errors.Is(context.Cause(ctx), errSupersededByHuman) {
			c.logger.Error("bot turn: read conversation", "conversation", convID, "err", err)
		}
		return
	}
	conv, st, known := c.reconcile(ctx, conv)
	switch conv.Mode {
	case tandem.ModeHuman:
		return // an agent answers
	case tandem.ModeQueued:
		if known && st.Held {
			return // the next agent answers
		}
	case tandem.ModeClosed:
		if conv, err = c.log.SetMode(ctx, convID, tandem.ModeBot, ""); err != nil {
			c.logger.Error("bot turn: reopen conversation", "conversation", convID, "err", err)
			return
		}
	}
	if c.bot == nil {
		if j.requestHuman {
			c.escalate(ctx, conv, tandem.Escalation{Reason: tandem.EscalateButton})
		}
		return
	}
	turn := tandem.Turn{ConversationID: convID, MessageSeq: j.msg.Seq, Text: j.msg.Text, Locale: conv.Locale,
		Customer: conv.Customer, RequestHuman: j.requestHuman, Queued: conv.Mode == tandem.ModeQueued, Time: j.msg.CreatedAt}
	_ = c.Publish(ctx, convID, "", TypingFrame{Type: FrameTyping, ConversationID: convID, Author: tandem.AuthorBot, Name: c.cfg.BotName, On: true})
	start := time.Now()
	streamID := ""
	if _, ok := c.bot.(StreamingBot); ok {
		streamID = "s" + strconv.FormatInt(j.msg.Seq, 10)
	}
	reply, streamed, err := c.respond(ctx, turn, streamID)
	if err != nil {
		if errors.Is(context.Cause(ctx), errSupersededByHuman) {
			// The customer asked for a person while this answer was being
			// written: no answer, the request runs next. The typing line
			// ends, and with it the bubble of any streamed part.
			c.logger.Info("bot turn ended: the customer asked for a person", "conversation", convID, "seq", j.msg.Seq)
			_ = c.Publish(context.WithoutCancel(ctx), convID, "", TypingFrame{Type: FrameTyping, ConversationID: convID, Author: tandem.AuthorBot, On: false})
			return
		}
		if c.cutByShutdown(err) {
			// Expected at a shutdown deadline; the message is answered at the
			// customer's next hello, on any node (docs/operations.md).
			c.logger.Warn("bot turn cut short by shutdown; it is answered when the customer reconnects", "conversation", convID, "seq", j.msg.Seq)
			return
		}
		c.logger.Error("bot turn failed", "conversation", convID, "seq", j.msg.Seq, "err", err)
		reply = tandem.Reply{Kind: tandem.ReplyFallback,
			Text:         "Sorry, I could not process that just now. Please try again, or talk to a person.",
			QuickReplies: []string{"Talk to a person"}}
	}
	c.metrics.turns.WithLabelValues(string(reply.Kind)).Observe(time.Since(start).Seconds())
	// The answer (the fallback of a bot that ran out of time included) is
	// stored and escalated with time of its own: the turn's may be spent.
	// A shutdown that runs out of time still cuts it short (the
	// dispatcher's context); a request for a person that came meanwhile
	// (which ends base) does not: the answer is written, so it is stored.
	ctx, cancel = context.WithTimeout(context.WithoutCancel(base), turnFinishTimeout)
	defer cancel()
	defer context.AfterFunc(c.turns.ctx, cancel)()
	if !streamed {
		// An agent who took the conversation while the bot worked answers
		// the message (it is in their transcript): the bot's answer (or
		// its escalation), after "You are now chatting with …", would talk
		// over them. A streamed answer is stored all the same: the
		// customer has seen part of it.
		if now, err := c.log.Conversation(ctx, convID); err == nil && now.Mode == tandem.ModeHuman {
			c.logger.Info("bot turn: an agent took the conversation meanwhile; the answer is dropped", "conversation", convID, "seq", j.msg.Seq)
			c.metrics.lateAnswers.Inc()
			_ = c.Publish(ctx, convID, "", TypingFrame{Type: FrameTyping, ConversationID: convID, Author: tandem.AuthorBot, On: false})
			return
		}
	}
	if reply.Text != "" {
		data := map[string]any{"reply_kind": string(reply.Kind), "reply_to": j.msg.Seq}
		if len(reply.Sources) > 0 {
			data["sources"] = reply.Sources
		}
		if len(reply.QuickReplies) > 0 {
			data["quick_replies"] = reply.QuickReplies
		}
		if streamID != "" {
			data["stream_id"] = streamID
		}
		m := tandem.Message{ConversationID: convID, ClientID: "bot:" + strconv.FormatInt(j.msg.Seq, 10),
			Author: tandem.AuthorBot, AuthorID: "bot", AuthorName: c.cfg.BotName, Text: reply.Text, Data: normaliseData(data)}
		// Idempotent (bot:<seq>): a blip is tried again.
		if err := c.storeRetry(ctx, "bot turn: log reply", convID, func() error {
			_, _, err := c.PostMessage(ctx, m)
			return err
		}); err != nil {
			if tandem.ErrorCode(err) == tandem.ENOTFOUND {
				// Erased while the bot answered: what the turn saved of
				// the conversation goes too.
				c.logger.Info("bot turn: the conversation was erased meanwhile", "conversation", convID)
				if err := c.forget(ctx, convID); err != nil {
					c.logger.Error("bot turn: forget an erased conversation", "conversation", convID, "err", err)
				}
				return
			}
			if c.cutByShutdown(err) {
				c.logger.Warn("bot turn cut short by shutdown before its reply was stored; it is answered when the customer reconnects", "conversation", convID)
				return
			}
			c.logger.Error("bot turn: log reply", "conversation", convID, "err", err)
			return
		}
	} else {
		_ = c.Publish(ctx, convID, "", TypingFrame{Type: FrameTyping, ConversationID: convID, Author: tandem.AuthorBot, On: false})
	}
	if reply.WithdrawHandoff && conv.Mode == tandem.ModeQueued {
		// As the widget's handoff_cancel: the ticket closes as returned and
		// the handoff reports it (HandoffStatus: back with the bot).
		if hc, ok := c.handoff.(HandoffCanceler); ok {
			if err := hc.CancelHandoff(ctx, convID); err != nil && tandem.ErrorCode(err) != tandem.ENOTFOUND {
				c.logger.Warn("bot turn: withdraw the request for a person", "conversation", convID, "err", err)
			}
		}
	}
	if reply.Kind == tandem.ReplyEscalate {
		esc := tandem.Escalation{Reason: tandem.EscalateLowConfidence, Summary: reply.NLU}
		if reply.Escalation != nil {
			esc = *reply.Escalation
		} else if j.requestHuman {
			esc.Reason = tandem.EscalateButton
		}
		c.escalate(ctx, conv, esc)
	}
}

// turnConversation reads a turn's conversation, trying a failed read
// again (storeRetry): the message is stored and acknowledged, and its
// resend would be a duplicate, so a turn given up here is an answer lost.
func (c *Chat) turnConversation(ctx context.Context, id string) (conv tandem.Conversation, err error) {
	err = c.storeRetry(ctx, "bot turn: read conversation", id, func() error {
		conv, err = c.log.Conversation(ctx, id)
		return err
	})
	return conv, err
}

// storeRetry runs op, a conversation-log operation of a bot turn that is
// safe to repeat, and tries it again, twice, within ctx when it failed for
// want of the store (a database blip: internal or unavailable).
func (c *Chat) storeRetry(ctx context.Context, what, conversationID string, op func() error) error {
	wait := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := op()
		if code := tandem.ErrorCode(err); attempt == 3 || code != tandem.EINTERNAL && code != tandem.EUNAVAILABLE {
			return err
		}
		c.logger.Warn(what+", retrying", "conversation", conversationID, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
		wait *= 4
	}
}

// respond asks the bot for its reply to turn, streamed as stream
// (delta frames) when stream is set. A panicking bot fails the turn (the
// customer gets the fallback) instead of ending the process.
// respond runs the bot, streaming its deltas under stream when it is set;
// streamed reports whether any delta was sent.
func (c *Chat) respond(ctx context.Context, turn tandem.Turn, stream string) (reply tandem.Reply, streamed bool, err error) {
	defer func() {
		if v := recover(); v != nil {
			c.logger.Error("bot panicked", "conversation", turn.ConversationID, "seq", turn.MessageSeq, "panic", v, "stack", string(debug.Stack()))
			reply, err = tandem.Reply{}, fmt.Errorf("gateway: bot panicked: %v", v)
		}
	}()
	if stream == "" {
		reply, err = c.bot.Respond(ctx, turn)
		return reply, false, err
	}
	convID := turn.ConversationID
	reply, err = c.bot.(StreamingBot).RespondStream(ctx, turn, func(delta string) {
		if delta == "" {
			return
		}
		streamed = true
		_ = c.Publish(ctx, convID, "", DeltaFrame{Type: FrameDelta, ConversationID: convID, StreamID: stream, ReplyTo: turn.MessageSeq, Text: delta})
	})
	return reply, streamed, err
}

// botAnswers decides who answers a customer message just stored in
// conversation cv: the bot (true), or people — an agent has the
// conversation, or it waits for its next agent after one took part. It
// first repairs a mode the handoff's store contradicts (HandoffStater);
// cv is the conversation as read after the message was stored.
func (c *Chat) botAnswers(ctx context.Context, cv tandem.Conversation) bool {
	cv, st, known := c.reconcile(ctx, cv)
	switch cv.Mode {
	case tandem.ModeHuman:
		return false
	case tandem.ModeQueued:
		return !known || !st.Held
	}
	return true
}

// reconcile checks a conversation in queued or human mode against the
// handoff's store (HandoffStater) and sends it back to the bot when it has
// no open ticket. It returns the conversation as it now stands, the
// handoff's state, and whether that state is known.
func (c *Chat) reconcile(ctx context.Context, cv tandem.Conversation) (tandem.Conversation, HandoffState, bool) {
	if cv.Mode != tandem.ModeHuman && cv.Mode != tandem.ModeQueued {
		return cv, HandoffState{}, false
	}
	h, ok := c.handoff.(HandoffStater)
	if !ok {
		return cv, HandoffState{}, false
	}
	st, err := h.HandoffState(ctx, cv.ID)
	if err != nil {
		c.logger.Warn("handoff state", "conversation", cv.ID, "err", err)
		return cv, HandoffState{}, false
	}
	if st.Open {
		return cv, st, true
	}
	// No open ticket. (The gateway sets queued mode only once the ticket
	// is committed, see escalate, so this is not an escalation in
	// progress.) Swap, so that a mode changed meanwhile is left alone.
	now, swapped, err := c.log.SwapMode(ctx, cv.ID, cv.Mode, tandem.ModeBot, "")
	if err != nil {
		c.logger.Error("repair conversation mode", "conversation", cv.ID, "err", err)
		return cv, st, true
	}
	if !swapped {
		return now, st, false // moved on meanwhile: what it is now is unknown to st
	}
	c.logger.Warn("conversation was left in "+string(cv.Mode)+" mode without an open ticket (a handoff event was lost or is late); back to the bot",
		"conversation", cv.ID, "mode", cv.Mode)
	c.metrics.modeRepaired.Inc()
	if err := c.announce(ctx, cv.ID, HandoffStatus{Status: HandoffReturned}, returnedNote); err != nil {
		c.logger.Error("repair conversation mode: tell the customer", "conversation", cv.ID, "err", err)
	}
	return now, st, true
}

// normaliseData makes structured data look the same whether it comes from
// memory or from a JSON store (slices of structs become []any of maps).
func normaliseData(d map[string]any) map[string]any {
	var out map[string]any
	if err := jsonRoundTrip(d, &out); err != nil {
		return d
	}
	return out
}

// escalate hands the conversation to the handoff engine.
func (c *Chat) escalate(ctx context.Context, conv tandem.Conversation, esc tandem.Escalation) {
	if conv.Mode == tandem.ModeQueued || conv.Mode == tandem.ModeHuman {
		return // already escalated
	}
	unavailable := func() {
		_ = c.HandoffStatus(ctx, conv.ID, HandoffStatus{Status: HandoffUnavailable,
			Message: "No one is available to take over right now. The assistant can keep helping."})
	}
	if c.handoff == nil {
		unavailable()
		return
	}
	// The customer learns at once that a person was asked for; the mode
	// changes only once the ticket is committed, so that a conversation in
	// queued or human mode always had a ticket (reconcile relies on it).
	_ = c.Publish(ctx, conv.ID, "", handoffFrame(conv.ID, HandoffStatus{Status: HandoffQueued}))
	if err := c.handoff.Escalate(ctx, conv.ID, esc); err != nil {
		c.logger.Error("escalate", "conversation", conv.ID, "err", err)
		unavailable()
		return
	}
	// Swap: an agent may already have taken the ticket (human mode).
	if _, _, err := c.log.SwapMode(ctx, conv.ID, conv.Mode, tandem.ModeQueued, ""); err != nil {
		// The ticket is open; the engine's next event for it sets the mode.
		c.logger.Error("escalate: set mode", "conversation", conv.ID, "err", err)
	}
}

// errSupersededByHuman ends a bot turn when the customer asks for a
// person while it runs.
var errSupersededByHuman = errors.New("the customer asked for a person")

// cutByShutdown reports whether err is a turn's context ended by the
// node's shutdown deadline.
func (c *Chat) cutByShutdown(err error) bool {
	// The dispatcher's context ends when the shutdown deadline passes (not
	// when the drain starts: a turn's own timeout during a drain is a
	// failure like any other).
	return c.turns.ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded))
}
