package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tandem-chat/tandem"
)

// SessionRequest is the body of POST /v1/widget/session.
type SessionRequest struct {
	SiteKey string `json:"site_key"`
	// Token is a previously issued customer token: the same conversation
	// is resumed when it is still valid for this site.
	Token string `json:"token,omitempty"`
	// Identity is a verified customer, signed by the site's backend.
	Identity *SignedIdentity `json:"identity,omitempty"`
	Locale   string          `json:"locale,omitempty"`
}

// SignedIdentity is a site's assertion of who the customer is.
type SignedIdentity struct {
	UserID string `json:"user_id"`
	Name   string `json:"name,omitempty"`
	Email  string `json:"email,omitempty"`
	// Tier is the customer's service tier, e.g. "vip" (VIP customers are
	// escalated and routed first, per policy); letters, digits, '-' and
	// '_', at most 32, case-insensitive. It is signed with the user id.
	Tier      string `json:"tier,omitempty"`
	Signature string `json:"signature"` // hex(HMAC-SHA256(site secret, user_id)), or of user_id + "\n" + tier
}

// SessionResponse answers a session request.
type SessionResponse struct {
	Token          string          `json:"token"`
	ConversationID string          `json:"conversation_id"`
	Customer       tandem.Customer `json:"customer"`
	Mode           tandem.Mode     `json:"mode"`
	LastSeq        int64           `json:"last_seq"`
	WebSocketPath  string          `json:"ws_path"`
	Protocol       string          `json:"protocol"`
}

const maxSessionBody = 8 << 10

// allowCORS sets CORS headers for an allowed site origin.
func allowCORS(w http.ResponseWriter, r *http.Request) {
	if o := r.Header.Get("Origin"); o != "" {
		w.Header().Set("Access-Control-Allow-Origin", o)
		w.Header().Add("Vary", "Origin")
	}
}

func (c *Chat) handleSessionPreflight(w http.ResponseWriter, r *http.Request) {
	// The site key is in the body, which a preflight does not carry: allow
	// the preflight for any origin; the real request is checked per site.
	allowCORS(w, r)
	w.Header().Set("Access-Control-Allow-Methods", "POST")
	w.Header().Set("Access-Control-Allow-Headers", "Content-Type")
	w.Header().Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}

// handleSession creates or resumes a widget session: a customer token
// bound to one conversation.
func (c *Chat) handleSession(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	// Every answer, errors too, is readable by the calling page: a widget
	// embedded on another site must see "unknown site key" or "origin not
	// allowed" (and stop) rather than a network error it retries forever.
	// Errors carry nothing secret; a token is issued only to an allowed
	// origin (below).
	allowCORS(w, r)
	if c.draining.Load() {
		WriteError(w, r, c.logger, tandem.Errorf(tandem.EUNAVAILABLE, "server is restarting; retry"))
		return
	}
	if ok, wait := c.ipLimiter.allow(ClientIP(r), time.Now()); !ok {
		c.metrics.rejected.WithLabelValues("ip_rate").Inc()
		setRetryAfter(w, wait)
		WriteError(w, r, c.logger, tandem.Errorf(tandem.EOVERLOADED, "too many requests; retry later"))
		return
	}
	var req SessionRequest
	body, err := io.ReadAll(io.LimitReader(r.Body, maxSessionBody+1))
	if err != nil {
		WriteError(w, r, c.logger, tandem.Errorf(tandem.EINVALID, "request body unreadable"))
		return
	}
	if len(body) > maxSessionBody {
		WriteError(w, r, c.logger, TooLargeError{Limit: maxSessionBody}) // 413
		return
	}
	if err := json.Unmarshal(body, &req); err != nil {
		WriteError(w, r, c.logger, tandem.Errorf(tandem.EINVALID, "body must be a JSON object with site_key"))
		return
	}
	if !ValidID(req.SiteKey, 64) {
		WriteError(w, r, c.logger, tandem.Errorf(tandem.EINVALID, "site_key is missing or malformed"))
		return
	}
	site, err := c.sites.Site(ctx, req.SiteKey)
	if err != nil {
		WriteError(w, r, c.logger, err)
		return
	}
	if !site.OriginAllowed(r) {
		WriteError(w, r, c.logger, tandem.Errorf(tandem.EFORBIDDEN, "origin not allowed for this site"))
		return
	}
	if !validLocale(req.Locale) {
		req.Locale = "" // a hint only: ignored rather than refused
	}

	var customer tandem.Customer
	if id := req.Identity; id != nil {
		if id.UserID == "" || len(id.UserID) > 128 || len(id.Name) > 128 || len(id.Email) > 254 ||
			!utf8.ValidString(id.UserID+id.Name+id.Email) || strings.IndexFunc(id.UserID+id.Name+id.Email, unicode.IsControl) >= 0 {
			WriteError(w, r, c.logger, tandem.Errorf(tandem.EINVALID, "identity fields are missing, too long or hold control characters"))
			return
		}
		if !validTier(id.Tier) {
			WriteError(w, r, c.logger, tandem.Errorf(tandem.EINVALID, "identity tier must be at most 32 letters, digits, '-' or '_'"))
			return
		}
		if !VerifyIdentity(site.Secret, id.UserID, id.Tier, id.Signature) {
			WriteError(w, r, c.logger, tandem.Errorf(tandem.EUNAUTHORIZED, "identity signature does not match"))
			return
		}
		customer = tandem.Customer{ID: "u:" + id.UserID, Verified: true, Name: id.Name, Email: id.Email, Tier: strings.ToLower(id.Tier)}
	}

	conv, resumed := c.resumeSession(ctx, req, site, customer)
	if !resumed {
		if customer.ID == "" {
			customer = tandem.Customer{ID: newID("anon")}
		}
		conv, err = c.log.CreateConversation(ctx, tandem.Conversation{ID: newID("c"), SiteKey: site.Key, Customer: customer, Mode: tandem.ModeBot, Locale: req.Locale})
		if err != nil {
			WriteError(w, r, c.logger, err)
			return
		}
	}
	token, err := c.auth.IssueCustomer(conv)
	if err != nil {
		WriteError(w, r, c.logger, err)
		return
	}
	WriteJSON(w, http.StatusOK, SessionResponse{Token: token, ConversationID: conv.ID, Customer: conv.Customer, Mode: conv.Mode,
		LastSeq: conv.LastSeq, WebSocketPath: "/v1/widget/ws?site=" + site.Key, Protocol: Subprotocol})
}

// resumeSession finds the conversation to continue: the one of a still
// valid token (for the same customer) unless it is closed and a verified
// customer has an open one, else a verified customer's latest open one,
// else the token's closed one.
func (c *Chat) resumeSession(ctx context.Context, req SessionRequest, site Site, verified tandem.Customer) (tandem.Conversation, bool) {
	var closed *tandem.Conversation
	if req.Token != "" {
		// A token issued to a signed-in customer resumes only with the same
		// signed identity: after they sign out of the site, the next person
		// at the browser (the token is still in its storage) gets a new
		// conversation, not theirs.
		if p, err := c.auth.Parse(req.Token); err == nil && p.Role == RoleCustomer && p.SiteKey == site.Key &&
			(verified.ID == "" && !p.Verified || verified.ID == p.ID) {
			if conv, err := c.log.Conversation(ctx, p.ConversationID); err == nil && conv.Customer.ID == p.ID {
				if conv.Mode != tandem.ModeClosed {
					return conv, true
				}
				// Closed: resumed unless a verified customer has an open
				// one (started on another device); a reload after an agent
				// closed the chat keeps its transcript and its customer,
				// and their next message reopens it.
				closed = &conv
			}
		}
	}
	if verified.ID != "" {
		if conv, err := c.log.LatestConversation(ctx, site.Key, verified.ID); err == nil {
			return conv, true
		}
	}
	if closed != nil {
		return *closed, true
	}
	return tandem.Conversation{}, false
}

// validTier reports whether t is empty or a tier name: at most 32 ASCII
// letters, digits, '-' and '_'.
func validTier(t string) bool {
	if len(t) > 32 {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// handleWidgetWS upgrades a widget connection after checking the site's
// Origin allow-list; the client then authenticates with a hello frame.
func (c *Chat) handleWidgetWS(w http.ResponseWriter, r *http.Request) {
	key := r.URL.Query().Get("site")
	if !ValidID(key, 64) {
		WriteError(w, r, c.logger, tandem.Errorf(tandem.EINVALID, "site query parameter is missing or malformed"))
		return
	}
	site, err := c.sites.Site(r.Context(), key)
	if err != nil {
		WriteError(w, r, c.logger, err)
		return
	}
	if !site.OriginAllowed(r) {
		c.metrics.rejected.WithLabelValues("origin").Inc()
		WriteError(w, r, c.logger, tandem.Errorf(tandem.EFORBIDDEN, "origin not allowed for this site"))
		return
	}
	c.Accept(w, r, &widgetSession{chat: c, siteKey: key})
}

// widgetSession is the widget protocol state of one connection. Its
// methods run on the connection's read goroutine.
type widgetSession struct {
	chat    *Chat
	siteKey string
	p       Principal // set by hello
	rejects int       // rate-limit rejections in a row
}

// HandleFrame implements FrameHandler.
func (s *widgetSession) HandleFrame(ctx context.Context, c *Conn, data []byte) {
	f, err := DecodeClientFrame(data)
	if err != nil {
		// Echo the frame's client_id when it can be read, so the client
		// can fail that message instead of resending it forever.
		c.SendError(err, clientIDOf(data))
		if s.p.ID == "" { // the first frame must be a valid hello
			if IsHello(data) {
				// A malformed hello (a negative last_seq): 4400, not
				// 4401, on which clients throw their token away.
				c.Close(WSCloseCode(tandem.EINVALID), "invalid hello", true)
				return
			}
			c.Close(WSCloseCode(tandem.EUNAUTHORIZED), "hello required", true)
			return
		}
		c.Strike()
		return
	}
	if s.p.ID == "" {
		if f.Type != FrameHello {
			c.SendError(tandem.Errorf(tandem.EUNAUTHORIZED, "the first frame must be hello"), "")
			c.Close(WSCloseCode(tandem.EUNAUTHORIZED), "hello required", true)
			return
		}
		s.hello(ctx, c, f)
		return
	}
	if f.ConversationID != "" && f.ConversationID != s.p.ConversationID {
		c.SendError(tandem.Errorf(tandem.EFORBIDDEN, "not your conversation"), f.ClientID)
		c.Strike()
		return
	}
	conv := s.p.ConversationID
	switch f.Type {
	case FrameHello:
		c.SendError(tandem.Errorf(tandem.EINVALID, "already said hello"), "")
		c.Strike()
	case FrameMessage, FrameHandoffRequest:
		s.message(ctx, c, f)
	case FrameContact:
		s.contact(ctx, c, f)
	case FrameRating:
		s.rate(ctx, c, f)
	case FrameHandoffCancel:
		s.cancelHandoff(ctx, c, f)
	case FrameTyping:
		if c.AllowEphemeral() {
			_ = s.chat.Publish(ctx, conv, c.ID(), TypingFrame{Type: FrameTyping, ConversationID: conv, Author: tandem.AuthorCustomer, On: *f.On})
		}
	case FrameRead:
		// A read mark past the end of the log is not relayed: the agent's
		// console would show messages not yet written as read.
		if c.AllowEphemeral() && s.chat.SeqLogged(ctx, conv, f.Seq) {
			_ = s.chat.Publish(ctx, conv, c.ID(), ReadFrame{Type: FrameRead, ConversationID: conv, Author: tandem.AuthorCustomer, Seq: f.Seq})
		}
	case FramePing:
		if c.AllowPing() {
			c.Send(PongFrame{Type: FramePong, ID: f.ID})
		}
	}
}

func (s *widgetSession) hello(ctx context.Context, c *Conn, f ClientFrame) {
	p, err := s.chat.auth.Parse(f.Token)
	if err == nil && (p.Role != RoleCustomer || p.SiteKey != s.siteKey) {
		err = tandem.Errorf(tandem.EUNAUTHORIZED, "token is not a customer token for this site")
	}
	if err == nil && f.ConversationID != "" && f.ConversationID != p.ConversationID {
		err = tandem.Errorf(tandem.EFORBIDDEN, "not your conversation")
	}
	var conv tandem.Conversation
	if err == nil {
		conv, err = s.chat.log.Conversation(ctx, p.ConversationID)
		if err == nil && conv.Customer.ID != p.ID {
			err = tandem.Errorf(tandem.EFORBIDDEN, "not your conversation")
		} else if tandem.ErrorCode(err) == tandem.ENOTFOUND {
			err = tandem.Errorf(tandem.EUNAUTHORIZED, "conversation no longer exists; start a new session")
		} else if err != nil && tandem.ErrorCode(err) == tandem.EINTERNAL {
			// The store failed (a database outage): a retry later can work,
			// which is what 1013 tells the client (1011 reads as a bug).
			s.chat.logger.Error("hello: read conversation", "conversation", p.ConversationID, "err", err)
			err = tandem.WrapError(tandem.EUNAVAILABLE, err, "the conversation store is unavailable; retry shortly")
		}
	}
	if err != nil {
		c.SendError(err, "")
		c.Close(WSCloseCode(tandem.ErrorCode(err)), tandem.ErrorMessage(err), true)
		return
	}
	after := f.LastSeq
	if after > conv.LastSeq {
		after = 0 // the client is ahead of the log (e.g. a reset demo store): replay everything
	}
	s.p = p
	c.Authenticated()
	welcome := WelcomeFrame{Type: FrameWelcome, Protocol: Subprotocol, ConversationID: conv.ID, Customer: conv.Customer,
		Mode: conv.Mode, LastSeq: conv.LastSeq, HeartbeatMS: s.chat.cfg.PingInterval.Milliseconds()}
	if err := c.FollowAfter(conv.ID, after, welcome); err != nil {
		c.SendError(err, "")
		c.Close(WSCloseCode(tandem.ErrorCode(err)), "cannot follow conversation", true)
		return
	}
	s.chat.recoverLostTurns(conv.ID)
}

// allow applies the per-conversation message rate to a frame that writes
// to the conversation; a rejected frame is answered here.
func (s *widgetSession) allow(c *Conn, f ClientFrame) bool {
	chat := s.chat
	if ok, wait := chat.convLimiter.allow(s.p.ConversationID, time.Now()); !ok {
		chat.metrics.rejected.WithLabelValues("conversation_rate").Inc()
		fr := errorFrameFor(tandem.Errorf(tandem.EOVERLOADED, "too many messages; slow down"), f.ClientID)
		fr.RetryAfterMS = max(wait.Milliseconds(), 1)
		c.Send(fr)
		if s.rejects++; s.rejects >= chat.cfg.MaxRejects {
			c.Close(WSCloseCode(tandem.EOVERLOADED), "message flood", true)
		}
		return false
	}
	s.rejects = 0
	return true
}

func (s *widgetSession) message(ctx context.Context, c *Conn, f ClientFrame) {
	chat := s.chat
	conv := s.p.ConversationID
	if !s.allow(c, f) {
		return
	}
	if chat.bot != nil || f.Type == FrameHandoffRequest {
		if err := chat.turns.room(conv); err != nil {
			c.SendError(err, f.ClientID)
			return
		}
	}
	m := tandem.Message{ConversationID: conv, ClientID: f.ClientID, Author: tandem.AuthorCustomer, AuthorID: s.p.ID,
		AuthorName: s.p.Name, Text: f.Text, Kind: "text"}
	if f.Type == FrameHandoffRequest {
		m.Kind = "handoff_request"
		if tandem.Blank(m.Text) { // nothing to show: the button's words
			m.Text = "I would like to talk to a person."
		}
	}
	// From the append to the turn queue, one message of the conversation
	// at a time: two tabs' messages stored as 5 and 6 are then queued as 5
	// and 6, so 6's turn cannot start before 5 is queued (the queue orders
	// only the turns still waiting), and the replies follow the log.
	unlock, ok := s.intake(ctx, c, f)
	if !ok {
		return
	}
	defer unlock()
	stored, dup, err := chat.log.Append(ctx, m)
	if err != nil {
		c.SendError(err, f.ClientID)
		return
	}
	if dup && (stored.Author != m.Author || stored.Kind != m.Kind || stored.Text != m.Text) {
		// An idempotency key is one message: a different message under a
		// used key would otherwise be acknowledged and silently dropped.
		c.SendError(tandem.Errorf(tandem.ECONFLICT, "client_id %q was already used for a different message (seq %d); send a new message with a new client_id",
			f.ClientID, stored.Seq), f.ClientID)
		return
	}
	// Who answers is decided when the message is stored, before the ack
	// (so a client that saw the ack knows the decision was made): a message
	// written while an agent has the conversation is for the agent, even if
	// the conversation returns to the bot before its turn runs; so is one
	// written while the conversation waits for its next agent after an
	// agent took part (a transfer or re-queue). A mode the handoff's store
	// contradicts is repaired first (HandoffStater).
	toBot := false
	if !dup {
		cv, err := chat.log.Conversation(ctx, conv)
		if err != nil {
			// Unknown: the turn decides from the conversation as it then
			// stands (an agent's conversation is left to the agent), rather
			// than leaving a stored, acknowledged message unanswered.
			chat.logger.Error("read conversation", "conversation", conv, "err", err)
			toBot = true
		} else {
			toBot = chat.botAnswers(ctx, cv)
		}
	} else {
		// A resend: its first attempt may have been stored without the
		// client learning it (the store's reply was lost, or the node
		// stopped before the ack), and then nothing answered it. When the
		// check cannot be made the resend is refused, so the client sends
		// it again rather than taking the ack as the end of it.
		var err error
		if toBot, err = chat.unansweredResend(ctx, stored); err != nil {
			c.SendError(err, f.ClientID)
			return
		}
	}
	c.Send(AckFrame{Type: FrameAck, ClientID: f.ClientID, Seq: stored.Seq, Duplicate: dup})
	// Publish duplicates too: if the first attempt's node died before
	// publishing, this delivers it; receivers drop seqs they have.
	chat.publishMessage(ctx, stored, c.ID())
	if !dup {
		chat.metrics.appended.WithLabelValues(string(tandem.AuthorCustomer)).Inc()
	}
	if !toBot {
		return
	}
	if err := chat.turns.submit(turnJob{msg: stored, requestHuman: f.Type == FrameHandoffRequest}); err != nil {
		chat.logger.Warn("bot turn not queued", "conversation", conv, "seq", stored.Seq, "err", err)
	} else if dup {
		chat.logger.Warn("answering a customer message whose bot turn was lost", "conversation", conv, "seq", stored.Seq, "found_by", "resend")
		chat.metrics.lostTurns.WithLabelValues("resend").Inc()
	}
}

// rate logs the customer's rating (satisfaction: good or bad) of a
// conversation an agent closed, as their message of kind "rating" under
// their client_id with the score in its data; the bot does not answer it.
// One rating per closing: the conversation must be closed (a customer
// message reopens it) and its last message not a rating already, else the
// rating is a conflict — except the resend of that rating, acknowledged
// again.
func (s *widgetSession) rate(ctx context.Context, c *Conn, f ClientFrame) {
	chat := s.chat
	conv := s.p.ConversationID
	if !s.allow(c, f) {
		return
	}
	m := tandem.Message{ConversationID: conv, ClientID: f.ClientID, Author: tandem.AuthorCustomer, AuthorID: s.p.ID,
		AuthorName: s.p.Name, Text: ratingText[f.Score], Kind: "rating", Data: map[string]any{"score": f.Score}}
	// The check that the conversation is not rated yet and the append, one
	// customer frame of the conversation at a time on this node: two tabs
	// rating at once logged two ratings.
	unlock, ok := s.intake(ctx, c, f)
	if !ok {
		return
	}
	defer unlock()
	cv, err := chat.log.Conversation(ctx, conv)
	if err != nil {
		c.SendError(err, f.ClientID)
		return
	}
	// The end of the log: whether it is rated already, and which agent
	// wrote last (the rating is counted for them).
	tail, err := chat.log.Messages(ctx, conv, max(cv.LastSeq-ratingLookback, 0), ratingLookback)
	if err != nil {
		c.SendError(err, f.ClientID)
		return
	}
	// A resend of a rating that went through (its ack lost) is acked
	// again, also when the customer wrote since (which reopened the
	// conversation: the rating was answered conflict and shown as failed).
	for i := len(tail) - 1; i >= 0; i-- {
		if x := tail[i]; x.ClientID == f.ClientID && x.Kind == "rating" && x.Text == m.Text {
			c.Send(AckFrame{Type: FrameAck, ClientID: f.ClientID, Seq: x.Seq, Duplicate: true})
			return
		}
	}
	if n := len(tail); n > 0 && tail[n-1].Kind == "rating" {
		c.SendError(tandem.Errorf(tandem.ECONFLICT, "this conversation is rated already"), f.ClientID)
		return
	}
	if cv.Mode != tandem.ModeClosed {
		c.SendError(tandem.Errorf(tandem.ECONFLICT, "only a conversation an agent closed can be rated"), f.ClientID)
		return
	}
	stored, dup, err := chat.log.Append(ctx, m)
	if err != nil {
		c.SendError(err, f.ClientID)
		return
	}
	if dup && (stored.Kind != m.Kind || stored.Text != m.Text) {
		c.SendError(tandem.Errorf(tandem.ECONFLICT, "client_id %q was already used for a different message (seq %d); send it with a new client_id",
			f.ClientID, stored.Seq), f.ClientID)
		return
	}
	c.Send(AckFrame{Type: FrameAck, ClientID: f.ClientID, Seq: stored.Seq, Duplicate: dup})
	chat.publishMessage(ctx, stored, c.ID())
	if !dup {
		agent := ""
		for i := len(tail) - 1; i >= 0 && agent == ""; i-- {
			if tail[i].Author == tandem.AuthorAgent {
				agent = tail[i].AuthorID
			}
		}
		chat.metrics.appended.WithLabelValues(string(tandem.AuthorCustomer)).Inc()
		chat.metrics.ratings.WithLabelValues(f.Score, agent).Inc()
	}
}

// ratingLookback is how many of a conversation's last messages a rating
// looks at for the agent it is counted for.
const ratingLookback = 50

// contact leaves the customer's contact address on the conversation's open
// ticket (ContactTaker) and logs a system note, seen only by the
// conversation's participants (the customer and the agents who may read
// it), that the team will get back to them there. The ack carries the
// note's seq; the note's idempotency key is "contact:<client_id>".
func (s *widgetSession) contact(ctx context.Context, c *Conn, f ClientFrame) {
	chat := s.chat
	conv := s.p.ConversationID
	if !s.allow(c, f) {
		return
	}
	ct, ok := chat.handoff.(ContactTaker)
	if !ok {
		c.SendError(tandem.Errorf(tandem.EUNAVAILABLE, "leaving a contact address is not available here"), f.ClientID)
		return
	}
	key := "contact:" + f.ClientID
	// A resend (its ack was lost) is acknowledged again without touching
	// the ticket; another address under a used client_id is a conflict,
	// refused before the ticket changes (its note names the address).
	if m, ok := s.recent(ctx, key, "event"); ok {
		if !sameContact(m, strings.TrimSpace(f.Address)) {
			c.SendError(tandem.Errorf(tandem.ECONFLICT, "client_id %q was already used for a different contact address (seq %d); send it with a new client_id", f.ClientID, m.Seq), f.ClientID)
			return
		}
		c.Send(AckFrame{Type: FrameAck, ClientID: f.ClientID, Seq: m.Seq, Duplicate: true})
		return
	}
	addr, queued, err := ct.LeaveContact(ctx, conv, f.Address)
	if err != nil {
		c.SendError(err, f.ClientID)
		return
	}
	note := tandem.Message{ConversationID: conv, ClientID: key, Author: tandem.AuthorSystem,
		Text: contactNote(addr, queued), Kind: "event", Data: map[string]any{"contact": true, "address": addr}}
	stored, dup, err := chat.PostMessage(ctx, note)
	if err != nil {
		c.SendError(err, f.ClientID)
		return
	}
	if dup && !sameContact(stored, addr) {
		// Reused past the look-back: the ticket took the new address but
		// the log keeps the first note; the customer learns it.
		c.SendError(tandem.Errorf(tandem.ECONFLICT, "client_id %q was already used for a different contact address (seq %d); send it with a new client_id", f.ClientID, stored.Seq), f.ClientID)
		return
	}
	c.Send(AckFrame{Type: FrameAck, ClientID: f.ClientID, Seq: stored.Seq, Duplicate: dup})
}

// contactNote is the system note logged when a customer leaves a contact
// address (queued: their request still waits for an agent).
func contactNote(addr string, queued bool) string {
	if queued {
		return "Thanks! We'll get back to you at " + addr + ". You stay in the queue meanwhile."
	}
	return "Thanks! We'll get back to you at " + addr + "."
}

// sameContact reports whether a contact note is for addr (its data names
// the address; notes logged before that, their text).
func sameContact(note tandem.Message, addr string) bool {
	if a, ok := note.Data["address"].(string); ok {
		return a == addr
	}
	return strings.HasPrefix(note.Text, "Thanks! We'll get back to you at "+addr+".")
}

// cancelHandoff withdraws the customer's request for a person
// (HandoffCanceler). The customer's request is logged first, as their
// message (kind "handoff_cancel", their client_id), which the ack carries;
// then the handoff reports "returned" through HandoffStatus, which hands
// the conversation back to the bot and logs the system note after it. A
// resend of a cancel that went through is acknowledged again. When the
// handoff can tell (HandoffStater) that there is nothing to withdraw,
// nothing is logged.
func (s *widgetSession) cancelHandoff(ctx context.Context, c *Conn, f ClientFrame) {
	chat := s.chat
	conv := s.p.ConversationID
	if !s.allow(c, f) {
		return
	}
	hc, ok := chat.handoff.(HandoffCanceler)
	if !ok {
		c.SendError(tandem.Errorf(tandem.EUNAVAILABLE, "there is no request for a person to withdraw here"), f.ClientID)
		return
	}
	// The check for an open request and the append, one customer frame of
	// the conversation at a time on this node (as messages and ratings):
	// two tabs withdrawing at once both logged "Back to the assistant",
	// and one was told not_found.
	unlock, ok := s.intake(ctx, c, f)
	if !ok {
		return
	}
	defer unlock()
	var st HandoffState
	stKnown := false
	if hs, ok := chat.handoff.(HandoffStater); ok {
		var err error
		st, err = hs.HandoffState(ctx, conv)
		stKnown = err == nil
		if stKnown && !st.Open {
			// A resend of a cancel that went through (its ack was lost)?
			if m, ok := s.recent(ctx, f.ClientID, "handoff_cancel"); ok {
				c.Send(AckFrame{Type: FrameAck, ClientID: f.ClientID, Seq: m.Seq, Duplicate: true})
				return
			}
			c.SendError(tandem.Errorf(tandem.ENOTFOUND, "there is no open request for a person in this conversation"), f.ClientID)
			return
		}
	}
	m := tandem.Message{ConversationID: conv, ClientID: f.ClientID, Author: tandem.AuthorCustomer, AuthorID: s.p.ID,
		AuthorName: s.p.Name, Text: "Back to the assistant, please.", Kind: "handoff_cancel"}
	stored, dup, err := chat.PostMessage(ctx, m)
	if err != nil {
		c.SendError(err, f.ClientID)
		return
	}
	if dup && stored.Kind != m.Kind {
		// The client_id names another message: refused, nothing cancelled.
		c.SendError(tandem.Errorf(tandem.ECONFLICT, "client_id %q was already used for a different message (seq %d); send it with a new client_id", f.ClientID, stored.Seq), f.ClientID)
		return
	}
	// A resend of a withdrawal stored before the open request was made (its
	// ack was lost, and meanwhile the customer asked again, perhaps in
	// another tab) withdrew the earlier request: acknowledged, and the new
	// one is left alone.
	if dup && stKnown && st.Open && s.returnedAfter(ctx, stored.Seq) {
		c.Send(AckFrame{Type: FrameAck, ClientID: f.ClientID, Seq: stored.Seq, Duplicate: true})
		return
	}
	// Also for a duplicate: its first attempt may have failed to cancel.
	if err := hc.CancelHandoff(ctx, conv); err != nil && !(dup && tandem.ErrorCode(err) == tandem.ENOTFOUND) {
		c.SendError(err, f.ClientID)
		return
	}
	c.Send(AckFrame{Type: FrameAck, ClientID: f.ClientID, Seq: stored.Seq, Duplicate: dup})
}

// returnedAfter reports whether the log shows the conversation going back
// to the assistant after seq (the "returned" note): a withdrawal stored at
// seq took effect, so a request open now was made after it. (The log's
// order, not clocks: the ticket's and the message's times come from
// different nodes.)
func (s *widgetSession) returnedAfter(ctx context.Context, seq int64) bool {
	conv, err := s.chat.log.Conversation(ctx, s.p.ConversationID)
	if err != nil || conv.LastSeq <= seq {
		return false
	}
	ms, err := s.chat.log.Messages(ctx, conv.ID, seq, 200)
	if err != nil {
		return false
	}
	for _, m := range ms {
		if m.Author == tandem.AuthorSystem && m.Data["handoff"] == string(HandoffReturned) {
			return true
		}
	}
	return false
}

// recent finds a message of the given kind by idempotency key among the
// conversation's last 50 messages.
func (s *widgetSession) recent(ctx context.Context, clientID, kind string) (tandem.Message, bool) {
	conv, err := s.chat.log.Conversation(ctx, s.p.ConversationID)
	if err != nil {
		return tandem.Message{}, false
	}
	ms, err := s.chat.log.Messages(ctx, conv.ID, max(0, conv.LastSeq-50), 50)
	if err != nil {
		return tandem.Message{}, false
	}
	for _, m := range ms {
		if m.ClientID == clientID && m.Kind == kind {
			return m, true
		}
	}
	return tandem.Message{}, false
}

// validLocale accepts a BCP 47-like tag: at most 16 characters of
// letters, digits, '-' and '_' (no NUL, which PostgreSQL cannot store).
func validLocale(s string) bool {
	if len(s) > 16 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// clientIDOf returns the client_id of a frame that failed validation, or
// "" when the frame is not a JSON object with a sane string client_id.
func clientIDOf(data []byte) string {
	var f struct {
		ClientID string `json:"client_id"`
	}
	if json.Unmarshal(data, &f) != nil || !validClientID(f.ClientID) {
		return ""
	}
	return f.ClientID
}

// intake takes the conversation's intake lock for frame f (Chat.intake);
// a frame whose connection ended while it waited is answered unavailable.
func (s *widgetSession) intake(ctx context.Context, c *Conn, f ClientFrame) (func(), bool) {
	unlock, err := s.chat.intake.Lock(ctx, s.p.ConversationID)
	if err != nil {
		c.SendError(tandem.WrapError(tandem.EUNAVAILABLE, err, "the connection is closing; send it again"), f.ClientID)
		return nil, false
	}
	return unlock, true
}

// IsHello reports whether a frame that failed validation is a hello with
// a token that could be one (a non-empty string of at most the longest
// token's length), something else being wrong with it: the client should
// keep that token. Keys match case-insensitively, as the frame decoder's
// do.
//
// A token of another JSON type than string (5, {}) is a malformed frame,
// not a bad token: the client's stored token may be fine (docs/protocol.md:
// close 4400, not 4401, on which clients throw their token away).
func IsHello(data []byte) bool {
	var f map[string]json.RawMessage
	if json.Unmarshal(data, &f) != nil {
		return false
	}
	var typ string
	var tok json.RawMessage
	for k, v := range f {
		switch {
		case strings.EqualFold(k, "type"):
			_ = json.Unmarshal(v, &typ)
		case strings.EqualFold(k, "token"):
			tok = v
		}
	}
	if typ != FrameHello || tok == nil || string(bytes.TrimSpace(tok)) == "null" {
		return false
	}
	var s string
	if json.Unmarshal(tok, &s) != nil {
		return true
	}
	return s != "" && len(s) <= maxTokenLen
}

// LooseStrings reads the string fields of a frame that may have failed
// validation, field by field (one of the wrong type does not cost the
// others): str finds a key case-insensitively, as the frame decoder does,
// and reports whether its value is a string. ok is false when data is not
// a JSON object.
func LooseStrings(data []byte) (str func(key string) (string, bool), ok bool) {
	var f map[string]json.RawMessage
	if json.Unmarshal(data, &f) != nil {
		return nil, false
	}
	return func(k string) (string, bool) {
		for key, v := range f {
			if strings.EqualFold(key, k) {
				var s string
				return s, json.Unmarshal(v, &s) == nil
			}
		}
		return "", false
	}, true
}

// Closed implements FrameHandler.
func (s *widgetSession) Closed(*Conn) {}
