package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/tandem-chat/tandem"
)

// Close codes used by the gateway besides WSCloseCode's mapping.
const (
	CloseServiceRestart = websocket.CloseServiceRestart // 1012: reconnect (to any node)
	CloseMessageTooBig  = websocket.CloseMessageTooBig  // 1009: frame above the read limit
	CloseSlowConsumer   = 4429                          // the client did not read fast enough
)

// FrameHandler gives a Conn its protocol: the widget's is built in (see
// docs/protocol.md); the agent console provides its own.
type FrameHandler interface {
	// HandleFrame handles one text frame. It runs on the connection's read
	// goroutine: frames of one connection are handled one at a time.
	HandleFrame(ctx context.Context, c *Conn, data []byte)
	// Closed is called once, after the connection has ended.
	Closed(c *Conn)
}

// PongHandler is implemented by a FrameHandler that wants to know of the
// peer's pongs: an answer to the server's ping shows a client alive that
// sends no frames of its own (the agent console counts it as a presence
// heartbeat). HandlePong runs on the read goroutine, between frames, and
// only after the hello.
type PongHandler interface {
	HandlePong(ctx context.Context, c *Conn)
}

// Conn is one WebSocket connection: a read goroutine that hands frames to
// its FrameHandler and one writer goroutine that drains a bounded queue.
// Conversation messages are written in seq order, exactly once per
// connection: the writer drops seqs it has sent and reads gaps from the
// ConvLog. A connection whose queue overflows is closed with
// CloseSlowConsumer (the client resumes from its last seq).
//
// Send, Follow, Unfollow, Close and Deliver may be called concurrently.
type Conn struct {
	id      string
	chat    *Chat
	ws      *websocket.Conn
	ip      string
	handler FrameHandler
	ctx     context.Context
	cancel  context.CancelFunc

	queue    chan outItem
	closeReq chan closeRequest // capacity 1: the first close request wins
	closing  atomic.Bool       // no more frames are queued
	ignoring atomic.Bool       // a close was requested: incoming frames are ignored
	readDone chan struct{}     // closed when the read goroutine ends
	wrote    chan struct{}     // closed when the writer goroutine ends
	strikes  int               // invalid frames; read goroutine only

	authed  atomic.Bool // the handler accepted the hello (Authenticated)
	helloBy time.Time   // before that, the read deadline never moves past this

	ephemeral *rate.Limiter // AllowEphemeral's budget
	pings     *rate.Limiter // AllowPing's budget

	mu      sync.Mutex // guards follows, over
	follows map[string]func()
	over    bool // the connection ended: no more follows

	last map[string]int64 // conversation -> last seq written; writer goroutine only

	cutMu sync.Mutex        // guards cut
	cut   map[string]string // conversation -> the stream whose deltas are no longer sent
}

type outItem struct {
	ev       *Event     // conversation event (ordered by Seq when Seq > 0)
	frame    []byte     // a frame for this connection only
	follow   *followReq // start delivering a conversation after a seq
	unfollow string     // forget what was sent of a conversation
	resync   bool       // deliver what the log has beyond what was sent
}

type followReq struct {
	conv  string
	after int64
	first []byte // optional frame written before the replay (e.g. welcome)
}

type closeRequest struct {
	code   int
	reason string
	drain  bool // write what is queued first
}

// Authenticated records that the handler accepted the client's hello:
// from then on pongs and frames extend the read deadline (PongWait), which
// until then stays at the hello deadline (Config.HelloTimeout). It moves
// the deadline at once: a client quiet after its hello waits for the
// server's ping, which may come after the hello deadline.
func (c *Conn) Authenticated() {
	c.authed.Store(true)
	_ = c.ws.SetReadDeadline(time.Now().Add(c.chat.cfg.PongWait))
}

// ID returns the connection's unique id.
func (c *Conn) ID() string { return c.id }

// RemoteIP returns the client's IP address.
func (c *Conn) RemoteIP() string { return c.ip }

// Context is cancelled when the connection ends.
func (c *Conn) Context() context.Context { return c.ctx }

// Send queues a server frame (marshalled to JSON) for this connection only.
func (c *Conn) Send(frame any) {
	c.enqueue(outItem{frame: mustJSON(frame)})
}

// SendError queues an error frame for err; internal errors are logged and
// sent without details.
func (c *Conn) SendError(err error, clientID string) {
	if tandem.ErrorCode(err) == tandem.EINTERNAL {
		c.chat.logger.Error("connection error", "conn", c.id, "err", err)
	}
	c.chat.metrics.errors.WithLabelValues(tandem.ErrorCode(err)).Inc()
	c.Send(errorFrameFor(err, clientID))
}

// Strike counts an invalid frame and closes the connection (invalid) after
// too many.
func (c *Conn) Strike() {
	c.strikes++
	if c.strikes > c.chat.cfg.MaxInvalidFrames {
		c.Close(WSCloseCode(tandem.EINVALID), "too many invalid frames", true)
	}
}

// Deliver implements Subscriber. Ephemeral events are not echoed to the
// connection that caused them, and those another connection caused (typing
// indicators and read receipts) are dropped rather than queued when this
// connection's queue is more than half full: they are worth nothing late,
// and a flood of them from the other side must not close this connection
// as a slow consumer. So is a streamed answer's delta, and with it every
// later delta of that stream (a preview with a hole in it would be
// wrong; the final message carries the whole text): a long answer
// streamed to a client that reads slowly for a moment must not close it.
// Logged messages (Seq > 0) and the server's other ephemeral frames
// (handoff status, the bot's typing) are never dropped this way.
func (c *Conn) Deliver(ev *Event) {
	if ev.Seq == 0 && ev.Origin != "" {
		if ev.Origin == c.id {
			return
		}
		if len(c.queue) > cap(c.queue)/2 {
			c.chat.metrics.ephemeralDropped.Inc()
			return
		}
	}
	if ev.Seq == 0 && ev.Origin == "" && c.cutDelta(ev) {
		c.chat.metrics.ephemeralDropped.Inc()
		return
	}
	c.enqueue(outItem{ev: ev})
}

// cutDelta reports whether ev, a server ephemeral frame, is a delta of a
// stream this connection no longer gets: one cut now, the queue being more
// than half full, or before.
func (c *Conn) cutDelta(ev *Event) bool {
	full := len(c.queue) > cap(c.queue)/2
	c.cutMu.Lock()
	defer c.cutMu.Unlock()
	if !full && len(c.cut) == 0 {
		return false
	}
	stream, ok := deltaStream(ev.Frame)
	if !ok {
		return false
	}
	if cut, ok := c.cut[ev.ConversationID]; ok && cut == stream {
		return true
	}
	if !full {
		return false
	}
	if c.cut == nil {
		c.cut = map[string]string{}
	}
	c.cut[ev.ConversationID] = stream // one per conversation: turns run one at a time
	return true
}

var deltaPrefix = []byte(`{"type":"` + FrameDelta + `"`)

// deltaStream returns the stream id of a delta frame.
func deltaStream(frame []byte) (string, bool) {
	if !bytes.HasPrefix(frame, deltaPrefix) {
		return "", false
	}
	var f DeltaFrame
	if json.Unmarshal(frame, &f) != nil || f.Type != FrameDelta {
		return "", false
	}
	return f.StreamID, true
}

// Ephemeral frames (typing, read receipts) a connection may send: a burst
// of ephemeralBurst, then ephemeralRate per second; more are ignored.
const (
	ephemeralRate  = 5
	ephemeralBurst = 10
)

// Pings: a client needs one every heartbeat (tens of seconds); a burst of
// pingBurst, then pingRate per second, are answered. More are dropped
// unanswered (counted in tandem_ws_rejected_total{limit="ping_rate"}), so a
// ping flood cannot make the server encode and write a pong per frame.
const (
	pingRate  = 1
	pingBurst = 5
)

// AllowPing reports whether a ping may be answered now.
func (c *Conn) AllowPing() bool {
	if c.pings.Allow() {
		return true
	}
	c.chat.metrics.rejected.WithLabelValues("ping_rate").Inc()
	return false
}

// AllowEphemeral reports whether the connection may publish one more
// ephemeral frame now.
func (c *Conn) AllowEphemeral() bool {
	if c.ephemeral.Allow() {
		return true
	}
	c.chat.metrics.ephemeralDropped.Inc()
	return false
}

func (c *Conn) enqueue(it outItem) {
	if c.closing.Load() {
		return
	}
	select {
	case c.queue <- it:
	default:
		c.chat.metrics.slow.Inc()
		c.Close(CloseSlowConsumer, "slow consumer", false)
	}
}

// Follow subscribes the connection to a conversation and delivers every
// message after seq `after`, then new ones as they are logged, in order.
// Ephemeral events of the conversation are delivered from then on.
func (c *Conn) Follow(conversationID string, after int64) error {
	return c.follow(conversationID, after, nil)
}

// FollowAfter is Follow with a frame written first, before the replay and
// before any event of the conversation (the widget's welcome).
func (c *Conn) FollowAfter(conversationID string, after int64, first any) error {
	return c.follow(conversationID, after, mustJSON(first))
}

func (c *Conn) follow(conversationID string, after int64, first []byte) error {
	c.mu.Lock()
	if c.over {
		c.mu.Unlock()
		return tandem.Errorf(tandem.EUNAVAILABLE, "connection closed")
	}
	if c.follows == nil {
		c.follows = map[string]func(){}
	}
	if _, ok := c.follows[conversationID]; ok {
		c.mu.Unlock()
		return tandem.Errorf(tandem.ECONFLICT, "already following this conversation")
	}
	c.follows[conversationID] = func() {} // reserve
	c.mu.Unlock()
	// Subscribe before reading the log (in the writer): a message logged
	// after the read arrives as an event; one logged before is in the read.
	unsub, err := c.chat.hub.Subscribe(conversationID, c)
	c.mu.Lock()
	if err != nil {
		delete(c.follows, conversationID)
		c.mu.Unlock()
		return tandem.WrapError(tandem.EUNAVAILABLE, err, "cannot subscribe to the conversation")
	}
	if c.over { // the connection ended meanwhile
		c.mu.Unlock()
		unsub()
		return tandem.Errorf(tandem.EUNAVAILABLE, "connection closed")
	}
	c.follows[conversationID] = unsub
	// Queued under mu, as Unfollow's item is: the writer sees follows and
	// unfollows of a conversation in the order they took effect.
	c.enqueue(outItem{follow: &followReq{conv: conversationID, after: after, first: first}})
	c.mu.Unlock()
	return nil
}

// Following returns the conversations the connection follows.
func (c *Conn) Following() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.follows))
	for id := range c.follows {
		out = append(out, id)
	}
	return out
}

// Unfollow stops delivering a conversation. A later Follow starts afresh
// from its own seq, in order.
func (c *Conn) Unfollow(conversationID string) {
	c.mu.Lock()
	unsub, ok := c.follows[conversationID]
	delete(c.follows, conversationID)
	if ok {
		// The writer forgets its position, so that events of a later
		// follow, arriving before that follow's replay, wait for it
		// instead of being checked against the old position. Queued under
		// mu: a Follow racing this one queues its item after this one.
		c.enqueue(outItem{unfollow: conversationID})
	}
	c.mu.Unlock()
	if unsub != nil {
		unsub()
	}
}

// Close asks the connection to close with a close code. With drain, the
// frames already queued are written first. The first request wins.
func (c *Conn) Close(code int, reason string, drain bool) {
	c.ignoring.Store(true)
	select {
	case c.closeReq <- closeRequest{code: code, reason: reason, drain: drain}:
		if !drain {
			c.closing.Store(true)
		}
	default:
	}
}

func (c *Conn) readLoop() {
	defer c.chat.connEnded(c)
	defer close(c.readDone)
	cfg := &c.chat.cfg
	c.ws.SetReadLimit(cfg.MaxFrameBytes)
	c.helloBy = time.Now().Add(cfg.HelloTimeout)
	_ = c.ws.SetReadDeadline(c.helloBy)
	// Pongs and frames keep an authenticated connection alive; before the
	// hello nothing extends the hello deadline, so a client that never
	// authenticates is cut off at HelloTimeout whatever else it sends.
	deadline := func() time.Time {
		if !c.authed.Load() {
			return c.helloBy
		}
		return time.Now().Add(cfg.PongWait)
	}
	ph, _ := c.handler.(PongHandler)
	c.ws.SetPongHandler(func(string) error {
		if ph != nil && c.authed.Load() && !c.ignoring.Load() {
			c.handlePong(ph)
		}
		return c.ws.SetReadDeadline(deadline())
	})
	for {
		mt, data, err := c.ws.ReadMessage()
		if err != nil {
			if errors.Is(err, websocket.ErrReadLimit) {
				c.chat.metrics.errors.WithLabelValues("too_big").Inc()
			}
			var ne net.Error
			if !c.authed.Load() && errors.As(err, &ne) && ne.Timeout() {
				// No hello in time: closed with a code (it was a dropped
				// connection, 1006, with no reason).
				c.Close(WSCloseCode(tandem.EUNAUTHORIZED), "hello required", false)
			}
			return
		}
		_ = c.ws.SetReadDeadline(deadline())
		if c.ignoring.Load() {
			continue // wait for the peer's close frame
		}
		c.chat.metrics.framesIn.Inc()
		if mt != websocket.TextMessage {
			c.SendError(tandem.Errorf(tandem.EINVALID, "binary frames are not supported"), "")
			if !c.authed.Load() { // the first frame must be a valid hello
				c.Close(WSCloseCode(tandem.EUNAUTHORIZED), "hello required", true)
				continue
			}
			c.Strike()
			continue
		}
		c.yieldToWriter()
		c.handleFrame(data)
	}
}

// yieldToWriter holds the read loop while the connection's own send queue
// is more than half full (up to 5 s): a client that sends frames faster
// than it reads their answers (a burst of messages, each acked and echoed)
// is slowed down, by TCP, instead of being closed as a slow consumer with
// answers to frames it sent never written. A client that does not read at
// all is still closed when the queue fills or a write times out.
func (c *Conn) yieldToWriter() {
	half := cap(c.queue) / 2
	if len(c.queue) <= half {
		return
	}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for until := time.Now().Add(5 * time.Second); len(c.queue) > half && !c.closing.Load() && time.Now().Before(until); {
		select {
		case <-c.wrote: // the writer is gone: nothing will drain the queue
			return
		case <-tick.C:
		}
	}
}

// handleFrame hands one frame to the handler. A panic closes this
// connection (1011) instead of ending the process with every other.
func (c *Conn) handleFrame(data []byte) {
	defer func() {
		if v := recover(); v != nil {
			c.chat.logger.Error("panic in a frame handler", "conn", c.id, "panic", v, "stack", string(debug.Stack()))
			c.Close(WSCloseCode(tandem.EINTERNAL), "internal error", false)
		}
	}()
	c.handler.HandleFrame(c.ctx, c, data)
}

func (c *Conn) handlePong(ph PongHandler) {
	defer func() {
		if v := recover(); v != nil {
			c.chat.logger.Error("panic in a pong handler", "conn", c.id, "panic", v, "stack", string(debug.Stack()))
			c.Close(WSCloseCode(tandem.EINTERNAL), "internal error", false)
		}
	}()
	ph.HandlePong(c.ctx, c)
}

func (c *Conn) writeLoop() {
	cfg := &c.chat.cfg
	defer c.ws.Close()
	ping := time.NewTicker(cfg.PingInterval)
	defer ping.Stop()
	for {
		select {
		case it := <-c.queue:
			if err := c.writeItem(it); err != nil {
				c.logEnd(err)
				// An item that failed for want of the log (fill) asked
				// for a close (1013): the client must get its code, not
				// a dropped connection.
				select {
				case req := <-c.closeReq:
					c.closing.Store(true)
					c.writeClose(req)
				default:
				}
				return
			}
		case req := <-c.closeReq:
			c.closing.Store(true)
			if req.drain {
			drain:
				for {
					select {
					case it := <-c.queue:
						if err := c.writeItem(it); err != nil {
							c.logEnd(err)
							c.writeClose(req)
							return
						}
					default:
						break drain
					}
				}
			}
			c.writeClose(req)
			return
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(cfg.WriteTimeout)); err != nil {
				c.logEnd(err)
				return
			}
		case <-c.readDone:
			// The reader may have asked for a close on its way out (a
			// client that never said hello): the client gets its code.
			select {
			case req := <-c.closeReq:
				c.closing.Store(true)
				c.writeClose(req)
			default:
			}
			return
		}
	}
}

// maxCloseReason is the most bytes a close frame's reason may have (RFC
// 6455: a control frame's payload is at most 125 bytes, 2 of them the
// code).
const maxCloseReason = 123

// CloseReason fits a close reason into a close frame: a longer one is cut
// at a character boundary and ends with "…" (a frame with the whole reason
// could not be sent at all, and the peer saw 1006 instead of the code; the
// error frame sent before the close carries the whole message).
func CloseReason(reason string) string {
	if len(reason) <= maxCloseReason {
		return reason
	}
	const ell = "…"
	cut := maxCloseReason - len(ell)
	for cut > 0 && !utf8.RuneStart(reason[cut]) {
		cut--
	}
	return reason[:cut] + ell
}

// writeClose writes the close frame of req and waits briefly for the
// peer's (the reader ends).
func (c *Conn) writeClose(req closeRequest) {
	msg := websocket.FormatCloseMessage(req.code, CloseReason(req.reason))
	if err := c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(c.chat.cfg.WriteTimeout)); err != nil {
		return
	}
	t := time.NewTimer(c.chat.cfg.CloseGrace)
	select {
	case <-c.readDone:
	case <-t.C:
	}
	t.Stop()
}

func (c *Conn) logEnd(err error) {
	var ne net.Error
	if errors.Is(err, net.ErrClosed) || errors.As(err, &ne) || errors.Is(err, websocket.ErrCloseSent) {
		c.chat.logger.Debug("connection write ended", "conn", c.id, "err", err)
		return
	}
	c.chat.logger.Warn("connection write failed", "conn", c.id, "err", err)
}

func (c *Conn) write(frame []byte) error {
	_ = c.ws.SetWriteDeadline(time.Now().Add(c.chat.cfg.WriteTimeout))
	if err := c.ws.WriteMessage(websocket.TextMessage, frame); err != nil {
		return err
	}
	c.chat.metrics.framesOut.Inc()
	return nil
}

func (c *Conn) writeItem(it outItem) error {
	switch {
	case it.unfollow != "":
		delete(c.last, it.unfollow)
		return nil
	case it.resync:
		// Events may have been lost (the bus dropped some): catch up on
		// every followed conversation from the log.
		for conv := range c.last {
			if err := c.fill(conv, math.MaxInt64); err != nil {
				return err
			}
		}
		return nil
	case it.follow != nil:
		if it.follow.first != nil {
			if err := c.write(it.follow.first); err != nil {
				return err
			}
		}
		if c.last == nil {
			c.last = map[string]int64{}
		}
		c.last[it.follow.conv] = it.follow.after
		return c.fill(it.follow.conv, math.MaxInt64)
	case it.ev != nil && it.ev.Seq > 0:
		last, ok := c.last[it.ev.ConversationID]
		if !ok || it.ev.Seq <= last {
			return nil // not followed yet (the pending log read covers it) or sent already
		}
		if it.ev.Seq > last+1 {
			c.chat.metrics.gapFills.Inc()
			if err := c.fill(it.ev.ConversationID, it.ev.Seq-1); err != nil {
				return err
			}
			if c.last[it.ev.ConversationID] != it.ev.Seq-1 {
				return fmt.Errorf("gateway: log of %s has no seq %d", it.ev.ConversationID, it.ev.Seq-1)
			}
		}
		if err := c.write(it.ev.Frame); err != nil {
			return err
		}
		c.last[it.ev.ConversationID] = it.ev.Seq
		return nil
	case it.ev != nil:
		if _, ok := c.last[it.ev.ConversationID]; !ok {
			return nil // ephemeral event from before the follow took effect
		}
		return c.write(it.ev.Frame)
	default:
		return c.write(it.frame)
	}
}

// fill writes the logged messages after the last one sent, up to seq upTo.
func (c *Conn) fill(conv string, upTo int64) error {
	const page = 256
	for c.last[conv] < upTo {
		ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
		msgs, err := c.chat.log.Messages(ctx, conv, c.last[conv], int(min(upTo-c.last[conv], page)))
		cancel()
		if err != nil {
			c.Close(WSCloseCode(tandem.EUNAVAILABLE), "log unavailable", false)
			return fmt.Errorf("gateway: read log of %s: %w", conv, err)
		}
		for _, m := range msgs {
			if m.Seq != c.last[conv]+1 {
				return fmt.Errorf("gateway: log of %s jumps from %d to %d", conv, c.last[conv], m.Seq)
			}
			if err := c.write(mustJSON(MessageFrame{Type: FrameMessage, ConversationID: conv, Message: wireMessage(m)})); err != nil {
				return err
			}
			c.last[conv] = m.Seq
		}
		if len(msgs) < page {
			return nil
		}
	}
	return nil
}

// ended releases the connection's subscriptions; called once by the reader.
func (c *Conn) ended() {
	c.cancel()
	c.mu.Lock()
	follows := c.follows
	c.follows, c.over = nil, true
	c.mu.Unlock()
	for _, unsub := range follows {
		unsub()
	}
}
