package console_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/gateway"
	"github.com/tandem-chat/tandem/gateway/console"
	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/internal/pgtest"
)

// TestHandoffThroughConsole drives one handoff over real sockets: the
// customer asks for a person, the agent gets the offer with the transcript,
// the bot's summary and suggestions, accepts, they talk (messages and
// typing both ways, nothing reaches the bot meanwhile), and the agent
// returns the conversation to the bot, which answers again.
func TestHandoffThroughConsole(t *testing.T) {
	e := newEnv(t)
	ann, annTok := e.agent("ann@example.com", "Ann", map[string]any{"languages": []string{"en"}})
	agent := e.console(annTok)
	cust, conv := e.customer()

	cust.send(map[string]any{"type": "message", "client_id": "c1", "text": "where is my order A-1234?"})
	cust.until(messageFrom(tandem.AuthorBot, "bot: where is my order"))
	cust.send(map[string]any{"type": "handoff_request", "client_id": "c2"})
	cust.until(handoffStatus("queued"))
	e.escalated(conv)
	e.tick() // route: offer to Ann

	offer, _ := agent.until(ticketEvent("ticket.offered"))
	tk := offer.Ticket
	if tk.ConversationID != conv || tk.AgentID != ann.ID || tk.State != tandem.TicketOffered {
		t.Fatalf("offer = %+v", tk)
	}
	if tk.Summary.Intent.Name != "order_status" || tk.Summary.Intent.Confidence != 0.42 || len(tk.Summary.Entities) != 1 ||
		tk.Reason != tandem.EscalateRequested {
		t.Fatalf("offer lacks the bot's summary: %+v", tk)
	}
	// The transcript follows the offer, then suggestions.
	agent.until(messageFrom(tandem.AuthorCustomer, "where is my order A-1234?"))
	agent.until(messageFrom(tandem.AuthorBot, "Let me get a person"))
	sug, _ := agent.until(isType("suggestions"))
	if len(sug.Items) != 1 || sug.Items[0].FAQID != "faq-1" || !strings.Contains(string(sug.raw), "where is my order A-1234?") {
		t.Fatalf("suggestions = %s", sug.raw)
	}

	// A frame that fails validation is answered with its ref.
	agent.send(map[string]any{"type": "transfer", "ticket_id": tk.ID, "ref": "bad1"})
	if f, _ := agent.until(answer("bad1")); f.Type != "error" || f.Code != tandem.EINVALID {
		t.Fatalf("invalid transfer: %s", f.raw)
	}
	agent.send(map[string]any{"type": "accept", "ticket_id": tk.ID, "ref": "a1"})
	if f, _ := agent.until(answer("a1")); f.Type != "ok" || f.Ticket.State != tandem.TicketAssigned {
		t.Fatalf("accept: %s", f.raw)
	}
	// The note is logged before the status frame is published.
	cust.until(messageFrom(tandem.AuthorSystem, "You are now chatting with Ann"))
	if f, _ := cust.until(handoffStatus("assigned")); f.AgentName != "Ann" {
		t.Fatalf("customer sees %s", f.raw)
	}

	// Agent to customer, with typing.
	agent.send(map[string]any{"type": "typing", "conversation_id": conv, "on": true})
	if f, _ := cust.until(isType("typing")); f.Author != "agent" || f.Name != "Ann" || !f.On {
		t.Fatalf("customer typing frame %s", f.raw)
	}
	agent.send(map[string]any{"type": "message", "conversation_id": conv, "client_id": "m1", "text": "Hi, I'm Ann. Let me check."})
	ack, _ := agent.until(isType("ack"))
	if ack.ClientID != "m1" || ack.Seq == 0 {
		t.Fatalf("ack %s", ack.raw)
	}
	if f, _ := cust.until(messageFrom(tandem.AuthorAgent, "Let me check")); f.msg().AuthorName != "Ann" || f.msg().Seq != ack.Seq {
		t.Fatalf("customer got %s", f.raw)
	}
	// The agent's read marks: one past the end of the log is not relayed.
	agent.send(map[string]any{"type": "read", "conversation_id": conv, "seq": ack.Seq + 1000})
	agent.send(map[string]any{"type": "read", "conversation_id": conv, "seq": ack.Seq})
	if f, _ := cust.until(isType("read")); f.Author != "agent" || f.Seq != ack.Seq {
		t.Fatalf("customer read frame %s, want the agent's mark at %d", f.raw, ack.Seq)
	}
	// Customer to agent, with typing; the bot stays quiet.
	cust.send(map[string]any{"type": "typing", "on": true})
	if f, _ := agent.until(isType("typing")); f.Author != "customer" || !f.On {
		t.Fatalf("agent typing frame %s", f.raw)
	}
	cust.send(map[string]any{"type": "message", "client_id": "c3", "text": "thanks, it's order A-1234"})
	agent.until(messageFrom(tandem.AuthorCustomer, "thanks, it's order A-1234"))

	// Return to the bot.
	agent.send(map[string]any{"type": "return", "ticket_id": tk.ID, "ref": "r1"})
	if f, _ := agent.until(answer("r1")); f.Type != "ok" || f.Ticket.State != tandem.TicketReturned {
		t.Fatalf("return: %s", f.raw)
	}
	cust.until(handoffStatus("returned"))
	cust.send(map[string]any{"type": "message", "client_id": "c4", "text": "how do returns work"})
	cust.until(messageFrom(tandem.AuthorBot, "bot: how do returns work"))

	msgs, err := e.Chat.Messages(context.Background(), conv, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if m.Author == tandem.AuthorBot && strings.Contains(m.Text, "A-1234") && m.Text != "bot: where is my order A-1234?" {
			t.Fatalf("the bot answered a message written to the agent: %q", m.Text)
		}
	}
	// The agent no longer follows the conversation: the customer's next
	// message does not reach the console.
	agent.send(map[string]any{"type": "open", "conversation_id": conv, "ref": "o1"})
	if f, _ := agent.until(answer("o1")); f.Type != "error" || f.Code != tandem.EFORBIDDEN {
		t.Fatalf("open after return: %s", f.raw)
	}
}

// TestConsoleAccess: agents cannot read or act on conversations that are
// not theirs, bad tokens are refused, and conflicting actions get clear
// errors that change nothing.
func TestConsoleAccess(t *testing.T) {
	e := newEnv(t)
	ann, annTok := e.agent("ann@example.com", "Ann", nil)
	bob, bobTok := e.agent("bob@example.com", "Bob", nil)
	_, carlTok := e.agent("carl@example.com", "Carl", nil)
	annC := e.console(annTok)
	// Bob and Carl connect but step away, so the ticket goes to Ann.
	bobC := e.console(bobTok)
	bobC.send(map[string]any{"type": "presence", "status": "away", "ref": "p"})
	bobC.until(answer("p"))
	carlC := e.console(carlTok)
	carlC.send(map[string]any{"type": "presence", "status": "away", "ref": "p"})
	carlC.until(answer("p"))

	cust, conv := e.customer()
	cust.send(map[string]any{"type": "message", "client_id": "c1", "text": "I want a human"})
	cust.until(handoffStatus("queued"))
	e.escalated(conv)
	e.tick()
	offer, _ := annC.until(ticketEvent("ticket.offered"))
	tk := offer.Ticket

	t.Run("another agent cannot read or act", func(t *testing.T) {
		steps := []map[string]any{
			{"type": "open", "conversation_id": conv},
			{"type": "message", "conversation_id": conv, "client_id": "x1", "text": "hijack"},
			{"type": "typing", "conversation_id": conv, "on": true},
			{"type": "read", "conversation_id": conv, "seq": 1},
			{"type": "suggest", "conversation_id": conv},
			{"type": "accept", "ticket_id": tk.ID},
			{"type": "resolve", "ticket_id": tk.ID},
			{"type": "return", "ticket_id": tk.ID},
			{"type": "transfer", "ticket_id": tk.ID, "to_agent_id": bob.ID},
		}
		for i, s := range steps {
			ref := "b" + string(rune('a'+i))
			s["ref"] = ref
			bobC.send(s)
			f, skipped := bobC.until(answer(ref))
			if f.Type != "error" || (f.Code != tandem.EFORBIDDEN && f.Code != tandem.ECONFLICT) {
				t.Errorf("%v: got %s", s["type"], f.raw)
			}
			for _, x := range skipped {
				if x.Type == "message" || x.Type == "typing" {
					t.Errorf("bob received a frame of the conversation: %s", x.raw)
				}
			}
		}
		// The history API agrees: 403 for Bob, 200 for Ann (offered to her).
		if code, raw := e.do("GET", "/v1/conversations/"+conv+"/messages", bobTok, nil); code != http.StatusForbidden {
			t.Errorf("history for bob: %d %s", code, raw)
		}
		if code, raw := e.do("GET", "/v1/conversations/"+conv+"/messages", annTok, nil); code != http.StatusOK {
			t.Errorf("history for ann: %d %s", code, raw)
		}
		// Ann cannot write before accepting.
		annC.send(map[string]any{"type": "message", "conversation_id": conv, "client_id": "early", "text": "hi", "ref": "early"})
		if f, _ := annC.until(answer("early")); f.Type != "error" || f.Code != tandem.EFORBIDDEN {
			t.Errorf("message before accept: %s", f.raw)
		}
	})

	t.Run("double accept", func(t *testing.T) {
		annC.send(map[string]any{"type": "accept", "ticket_id": tk.ID, "ref": "a1"})
		if f, _ := annC.until(answer("a1")); f.Type != "ok" {
			t.Fatalf("accept: %s", f.raw)
		}
		annC.send(map[string]any{"type": "accept", "ticket_id": tk.ID, "ref": "a2"})
		f, _ := annC.until(answer("a2"))
		if f.Type != "error" || f.Code != tandem.ECONFLICT || !strings.Contains(f.errText(), "already accepted") || f.TicketID() != tk.ID {
			t.Fatalf("second accept: %s", f.raw)
		}
	})

	t.Run("transfer to an offline or away agent", func(t *testing.T) {
		carlC.ws.Close() // Carl is away and now disconnected
		annC.send(map[string]any{"type": "transfer", "ticket_id": tk.ID, "to_agent_id": bob.ID, "ref": "t1"})
		f, _ := annC.until(answer("t1"))
		if f.Type != "error" || f.Code != tandem.ECONFLICT || !strings.Contains(f.errText(), "away") {
			t.Fatalf("transfer to away bob: %s", f.raw)
		}
		annC.send(map[string]any{"type": "transfer", "ticket_id": tk.ID, "to_agent_id": "agt_nobody", "ref": "t2"})
		if f, _ := annC.until(answer("t2")); f.Type != "error" {
			t.Fatalf("transfer to unknown: %s", f.raw)
		}
		got, err := e.Engine.Ticket(context.Background(), tk.ID)
		if err != nil || got.State != tandem.TicketAssigned || got.AgentID != ann.ID {
			t.Fatalf("after failed transfers the ticket is %+v (%v)", got, err)
		}
	})

	t.Run("accept after the offer timed out", func(t *testing.T) {
		cust2, conv2 := e.customer()
		cust2.send(map[string]any{"type": "handoff_request", "client_id": "h"})
		cust2.until(handoffStatus("queued"))
		e.escalated(conv2)
		e.tick()
		o, _ := annC.until(func(f frame) bool { return ticketEvent("ticket.offered")(f) && f.Ticket.ConversationID == conv2 })
		e.Clock.Advance(e.Engine.Config().OfferTimeout + time.Second)
		annC.send(map[string]any{"type": "accept", "ticket_id": o.Ticket.ID, "ref": "late"})
		f, _ := annC.until(answer("late"))
		if f.Type != "error" || f.Code != tandem.ECONFLICT || !strings.Contains(f.errText(), "expired") {
			t.Fatalf("late accept: %s", f.raw)
		}
		e.tick() // the sweep re-queues it
		annC.until(func(f frame) bool { return ticketEvent("ticket.offer_expired")(f) && f.Ticket.ID == o.Ticket.ID })
		got, _ := e.Engine.Ticket(context.Background(), o.Ticket.ID)
		if got.State == tandem.TicketAssigned {
			t.Fatalf("late accept assigned the ticket: %+v", got)
		}
	})

	t.Run("bad tokens", func(t *testing.T) {
		forged := func() string {
			c := gateway.Claims{Role: gateway.RoleAdmin, RegisteredClaims: jwt.RegisteredClaims{Subject: ann.ID, Issuer: "tandem",
				ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}}
			s, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte("another-secret-of-at-least-32-bytes!!"))
			return s
		}()
		expired := func() string {
			c := gateway.Claims{Role: gateway.RoleAgent, RegisteredClaims: jwt.RegisteredClaims{Subject: ann.ID, Issuer: "tandem",
				ExpiresAt: jwt.NewNumericDate(time.Now().Add(-time.Minute))}}
			s, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(testSecret))
			return s
		}()
		unknown, _ := e.Auth.IssueStaff("agt_deleted", "Ghost", gateway.RoleAgent, "", time.Hour)
		custTok, _ := e.Auth.IssueCustomer(tandem.Conversation{ID: conv, SiteKey: "demo", Customer: tandem.Customer{ID: "anon_x"}})
		for name, tok := range map[string]string{"forged": forged, "expired": expired, "unknown agent": unknown, "customer": custTok, "admin token": testAdmin} {
			c := e.dial("/console/ws")
			c.send(map[string]any{"type": "hello", "token": tok})
			f, _ := c.until(isType("error"))
			if f.Code != tandem.EUNAUTHORIZED {
				t.Errorf("%s: %s", name, f.raw)
			}
			if code := c.expectClose(); code != 4401 {
				t.Errorf("%s: close %d", name, code)
			}
		}
		// The first frame must be hello.
		c := e.dial("/console/ws")
		c.send(map[string]any{"type": "queue"})
		if code := c.expectClose(); code != 4401 {
			t.Errorf("no hello: close %d", code)
		}
		// Another origin is refused before the upgrade.
		req, _ := http.NewRequest("GET", e.URL+"/console/ws", nil)
		req.Header.Set("Origin", "https://evil.example")
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusForbidden {
			t.Errorf("foreign origin: %v %v", resp.StatusCode, err)
		}
	})

	t.Run("disabled agent is cut off", func(t *testing.T) {
		if code, raw := e.do("POST", "/api/v1/agents/"+bob.ID+"/disable", testAdmin, nil); code != 200 {
			t.Fatalf("disable: %d %s", code, raw)
		}
		c := e.dial("/console/ws")
		c.send(map[string]any{"type": "hello", "token": bobTok})
		if f, _ := c.until(isType("error")); f.Code != tandem.EFORBIDDEN {
			t.Fatalf("disabled hello: %s", f.raw)
		}
		if code, _ := e.do("POST", "/api/v1/agents/login", "", map[string]string{"email": "bob@example.com", "password": password}); code != http.StatusUnauthorized {
			t.Fatalf("disabled login: %d", code)
		}
		// Enabled again: the token issued before stays ended (it may have
		// been stolen); a new login works.
		if code, raw := e.do("POST", "/api/v1/agents/"+bob.ID+"/enable", testAdmin, nil); code != 200 {
			t.Fatalf("enable: %d %s", code, raw)
		}
		c = e.dial("/console/ws")
		c.send(map[string]any{"type": "hello", "token": bobTok})
		if f, _ := c.until(isType("error")); f.Code != tandem.EUNAUTHORIZED {
			t.Fatalf("hello with the token from before the disable: %s", f.raw)
		}
		if code, raw := e.do("GET", "/api/v1/agents/"+bob.ID, bobTok, nil); code != http.StatusUnauthorized {
			t.Fatalf("API with the token from before the disable: %d %s", code, raw)
		}
		if code, _ := e.do("POST", "/api/v1/agents/login", "", map[string]string{"email": "bob@example.com", "password": password}); code != http.StatusOK {
			t.Fatalf("login after enabling: %d", code)
		}
	})
}

// TicketID returns the error frame's ticket_id.
func (f frame) TicketID() string {
	var x struct {
		TicketID string `json:"ticket_id"`
	}
	_ = json.Unmarshal(f.raw, &x)
	return x.TicketID
}

// TestDisconnectRequeues: when an agent's console closes and stays away
// beyond the grace period, their chat goes to another agent with its
// transcript; nothing is lost.
func TestDisconnectRequeues(t *testing.T) {
	e := newEnv(t)
	_, annTok := e.agent("ann@example.com", "Ann", nil)
	bob, bobTok := e.agent("bob@example.com", "Bob", nil)
	annC := e.console(annTok)
	cust, conv, offer := e.offerTo(annC)
	acceptAndWrite(annC, cust, conv, offer.Ticket.ID, "Ann here")

	annC.ws.Close()
	// Wait until the server has seen the close (no console session left).
	for e.Console.Sessions() != 0 {
		time.Sleep(5 * time.Millisecond)
	}
	bobC := e.console(bobTok)
	cfg := e.Engine.Config()
	// Keep Bob alive while the clock passes Ann's grace period.
	for step := time.Duration(0); step <= cfg.DisconnectGrace; step += cfg.HeartbeatTimeout / 3 {
		e.Clock.Advance(cfg.HeartbeatTimeout / 3)
		bobC.send(map[string]any{"type": "ping"})
		bobC.until(isType("pong"))
		st, err := e.Engine.AgentStatus(context.Background(), bob.ID)
		if err != nil || !st.Connected {
			t.Fatalf("bob not connected: %+v %v", st, err)
		}
	}
	e.tick()
	e.tick()
	o, _ := bobC.until(ticketEvent("ticket.offered"))
	if o.Ticket.ConversationID != conv || o.Ticket.LastAgentID == "" {
		t.Fatalf("re-offered ticket %+v", o.Ticket)
	}
	bobC.until(messageFrom(tandem.AuthorAgent, "Ann here")) // the transcript is intact
	cust.until(handoffStatus("queued"))
	wantTransition(t, e, o.Ticket.ID, handoff.ReasonDisconnect)
}

// wantTransition fails the test unless the ticket's history has a
// transition with reason.
func wantTransition(t *testing.T, e *env, ticketID, reason string) {
	t.Helper()
	trs, err := e.Engine.Transitions(context.Background(), ticketID)
	if err != nil {
		t.Fatal(err)
	}
	var reasons []string
	for _, tr := range trs {
		reasons = append(reasons, tr.Reason)
	}
	if !slices.Contains(reasons, reason) {
		t.Fatalf("transitions %v lack a %s", reasons, reason)
	}
}

// TestSignOutRequeuesAtOnce: an agent who signs out (sign_out) gives their
// chat back to the queue at once — the customer is told, and the next agent
// is offered it with the transcript — without the grace period a dropped
// connection gets (the customer waited a minute, "Chatting with Ann").
// With a second console of theirs still open they keep their chats.
func TestSignOutRequeuesAtOnce(t *testing.T) {
	t.Run("memory", func(t *testing.T) { testSignOut(t, newEnv(t)) })
	t.Run("postgres", func(t *testing.T) {
		store, log := pgStores(t, pgtest.New(t).URL)
		testSignOut(t, newNode(t, nodeOpts{store: store, log: log}))
	})
}

func testSignOut(t *testing.T, e *env) {
	_, annTok := e.agent("ann@example.com", "Ann", nil)
	_, bobTok := e.agent("bob@example.com", "Bob", nil)
	annC := e.console(annTok)
	annC2 := e.console(annTok)
	cust, conv, offer := e.offerTo(annC)
	acceptAndWrite(annC, cust, conv, offer.Ticket.ID, "Ann here")

	annC2.send(map[string]any{"type": "sign_out", "ref": "s2"})
	annC2.until(answer("s2"))
	if code := annC2.expectClose(); code != 1000 {
		t.Fatalf("close code %d, want 1000", code)
	}
	if tk, err := e.Engine.Ticket(context.Background(), offer.Ticket.ID); err != nil || tk.State != tandem.TicketAssigned {
		t.Fatalf("with another console open the chat stays: %+v %v", tk, err)
	}

	bobC := e.console(bobTok)
	annC.send(map[string]any{"type": "sign_out", "ref": "s"})
	annC.until(answer("s"))
	if code := annC.expectClose(); code != 1000 {
		t.Fatalf("close code %d, want 1000", code)
	}
	cust.until(handoffStatus("queued")) // "Your agent had to leave…", no clock advanced
	e.tick()
	o, _ := bobC.until(ticketEvent("ticket.offered"))
	if o.Ticket.ConversationID != conv || o.Ticket.LastAgentID == "" {
		t.Fatalf("re-offered ticket %+v", o.Ticket)
	}
	bobC.until(messageFrom(tandem.AuthorAgent, "Ann here")) // the transcript is intact
	wantTransition(t, e, o.Ticket.ID, handoff.ReasonSignOut)
}

// TestExpiredTokenEndsConsole: a console opened with a token stays open
// past the token's expiry no longer than a heartbeat: it is closed 4401
// (the agent kept writing to customers on a token expired minutes ago).
func TestExpiredTokenEndsConsole(t *testing.T) {
	e := newEnv(t)
	ann, _ := e.agent("ann@example.com", "Ann", nil)
	_, stamp, err := e.Engine.AgentWithStamp(context.Background(), ann.ID)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := e.Auth.IssueStaff(ann.ID, ann.DisplayName, gateway.RoleAgent, stamp, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := e.console(tok)
	c.send(map[string]any{"type": "ping"})
	c.until(isType("pong"))
	time.Sleep(3 * time.Second) // past the token's expiry (whole seconds), not a timing assertion
	e.Clock.Advance(e.Engine.Config().HeartbeatTimeout / 3)
	c.send(map[string]any{"type": "ping"})
	if code := c.expectClose(); code != 4401 {
		t.Fatalf("close code %d, want 4401", code)
	}
}

// TestPasswordChangeEndsTokens: a token issued before its account's
// password changed is refused by the APIs and at the console's hello (it
// stayed valid until it expired), and a console opened with it ends at its
// next heartbeat (it stayed open); a new login works and its console stays.
func TestPasswordChangeEndsTokens(t *testing.T) {
	e := newEnv(t)
	a, oldTok := e.agent("pat@example.com", "Pat", map[string]any{"role": "admin"})
	open := e.console(oldTok)
	if code, raw := e.do("GET", "/api/v1/agents", oldTok, nil); code != 200 {
		t.Fatalf("before the change: %d %s", code, raw)
	}
	if err := e.Engine.SetPassword(context.Background(), a.ID, "a brand new password"); err != nil {
		t.Fatal(err)
	}
	code, raw := e.do("GET", "/api/v1/agents", oldTok, nil)
	if code != 401 || !strings.Contains(string(raw), "this token was ended") {
		t.Fatalf("old token after the change: %d %s", code, raw)
	}
	c := e.dial("/console/ws")
	c.send(map[string]any{"type": "hello", "token": oldTok})
	if f, _ := c.until(isType("error")); f.Code != tandem.EUNAUTHORIZED {
		t.Fatalf("console hello with the old token: %s", f.raw)
	}
	if code := c.expectClose(); code != 4401 {
		t.Fatalf("console hello with the old token: close %d", code)
	}
	var login console.LoginResponse
	code, raw = e.do("POST", "/api/v1/agents/login", "", map[string]string{"email": "pat@example.com", "password": "a brand new password"})
	if code != 200 || json.Unmarshal(raw, &login) != nil {
		t.Fatalf("login with the new password: %d %s", code, raw)
	}
	if code, raw := e.do("GET", "/api/v1/agents", login.Token, nil); code != 200 {
		t.Fatalf("new token: %d %s", code, raw)
	}
	fresh := e.console(login.Token)
	e.Clock.Advance(e.Engine.Config().HeartbeatTimeout / 3) // the next frame heartbeats
	open.send(map[string]any{"type": "ping"})
	if f, _ := open.until(isType("error")); f.Code != tandem.EUNAUTHORIZED || !strings.Contains(f.errText(), "password") {
		t.Fatalf("console opened before the change, at its heartbeat: %s", f.raw)
	}
	if code := open.expectClose(); code != 4401 {
		t.Fatalf("console opened before the change: close %d", code)
	}
	fresh.send(map[string]any{"type": "presence", "status": "away", "ref": "p"})
	fresh.until(answer("p"))
}

// TestSetPasswordAPI: an admin sets an agent's password through the API
// (the in-memory stores have no other way); the agent's old token stops
// working, the new password logs in, and bad requests change nothing.
func TestSetPasswordAPI(t *testing.T) {
	e := newEnv(t)
	a, agentTok := e.agent("sam@example.com", "Sam", nil)
	path := "/api/v1/agents/" + a.ID + "/password"
	for _, tc := range []struct {
		name, bearer, path string
		body               any
		want               int
	}{
		{"no token", "", path, map[string]string{"password": "new password 1"}, 401},
		{"agent token", agentTok, path, map[string]string{"password": "new password 1"}, 403},
		{"short", testAdmin, path, map[string]string{"password": "short"}, 400},
		{"too long", testAdmin, path, map[string]string{"password": strings.Repeat("x", 73)}, 400},
		{"unknown field", testAdmin, path, map[string]any{"password": "new password 1", "role": "admin"}, 400},
		{"wrong type", testAdmin, path, map[string]any{"password": 12345678}, 400},
		{"not an object", testAdmin, path, json.RawMessage(`"new password 1"`), 400},
		{"invalid UTF-8", testAdmin, path, json.RawMessage("{\"password\":\"new pass\xff\xfe1\"}"), 400},
		{"unknown agent", testAdmin, "/api/v1/agents/ag_nope/password", map[string]string{"password": "new password 1"}, 404},
	} {
		if code, raw := e.do("POST", tc.path, tc.bearer, tc.body); code != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, code, raw, tc.want)
		}
	}
	// Nothing above changed it: the old token still opens a console.
	c := e.console(agentTok)
	c.send(map[string]any{"type": "presence", "status": "away", "ref": "p"})
	c.until(answer("p"))

	if code, raw := e.do("POST", path, testAdmin, map[string]string{"password": "new password 1"}); code != 204 || len(raw) != 0 {
		t.Fatalf("set: %d %q", code, raw)
	}
	old := e.dial("/console/ws")
	old.send(map[string]any{"type": "hello", "token": agentTok})
	if code := old.expectClose(); code != 4401 {
		t.Fatalf("hello with the token from before: close %d", code)
	}
	if code, _ := e.do("POST", "/api/v1/agents/login", "", map[string]string{"email": "sam@example.com", "password": password}); code != 401 {
		t.Fatalf("login with the old password: %d", code)
	}
	if code, raw := e.do("POST", "/api/v1/agents/login", "", map[string]string{"email": "sam@example.com", "password": "new password 1"}); code != 200 {
		t.Fatalf("login with the new password: %d %s", code, raw)
	}
}

// TestAgentsAPI covers the admin REST API and login.

func TestAgentsAPI(t *testing.T) {
	e := newEnv(t)
	a, agentTok := e.agent("ann@example.com", "Ann", map[string]any{"skills": []string{"billing"}, "languages": []string{"en", "de"}, "max_chats": 2})
	if a.MaxChats != 2 || len(a.Skills) != 1 || a.Role != "agent" {
		t.Fatalf("created %+v", a)
	}
	tests := []struct {
		name, method, path, bearer string
		body                       any
		want                       int
	}{
		{"list as admin", "GET", "/api/v1/agents", testAdmin, nil, 200},
		{"list without token", "GET", "/api/v1/agents", "", nil, 401},
		{"list as agent", "GET", "/api/v1/agents", agentTok, nil, 403},
		{"create as agent", "POST", "/api/v1/agents", agentTok, map[string]any{"email": "x@example.com", "password": password}, 403},
		{"duplicate email", "POST", "/api/v1/agents", testAdmin, map[string]any{"email": "ANN@example.com", "password": password}, 409},
		{"bad email", "POST", "/api/v1/agents", testAdmin, map[string]any{"email": "nope", "password": password}, 400},
		{"short password", "POST", "/api/v1/agents", testAdmin, map[string]any{"email": "y@example.com", "password": "short"}, 400},
		{"unknown field", "POST", "/api/v1/agents", testAdmin, map[string]any{"email": "z@example.com", "password": password, "is_god": true}, 400},
		{"oversized body", "POST", "/api/v1/agents", testAdmin, map[string]any{"email": "big@example.com", "password": password, "display_name": strings.Repeat("x", 20<<10)}, 413},
		{"trailing data", "POST", "/api/v1/agents", testAdmin, json.RawMessage(`{"email":"t@example.com","password":"` + password + `"} {"role":"admin"}`), 400},
		{"invalid UTF-8", "POST", "/api/v1/agents", testAdmin, json.RawMessage("{\"email\":\"u@example.com\",\"password\":\"" + password + "\",\"display_name\":\"a\xff\xfeb\"}"), 400},
		{"null body", "POST", "/api/v1/agents", testAdmin, json.RawMessage(`null`), 400},
		{"password of 4 characters in 8 bytes", "POST", "/api/v1/agents", testAdmin, map[string]any{"email": "p@example.com", "password": "éééé"}, 400},
		{"skills over the limit before de-duplication", "POST", "/api/v1/agents", testAdmin, map[string]any{"email": "s@example.com", "password": password, "skills": slices.Repeat([]string{"aa"}, 3000)}, 400},
		{"get", "GET", "/api/v1/agents/" + a.ID, testAdmin, nil, 200},
		{"get unknown", "GET", "/api/v1/agents/agt_nope", testAdmin, nil, 404},
		{"login with GET", "GET", "/api/v1/agents/login", "", nil, 405},
		{"login with GET as admin", "GET", "/api/v1/agents/login", testAdmin, nil, 405},
		{"wrong password", "POST", "/api/v1/agents/login", "", map[string]string{"email": "ann@example.com", "password": "wrong password"}, 401},
		{"unknown email", "POST", "/api/v1/agents/login", "", map[string]string{"email": "who@example.com", "password": password}, 401},
	}
	for _, tt := range tests {
		code, raw := e.do(tt.method, tt.path, tt.bearer, tt.body)
		if code != tt.want {
			t.Errorf("%s: %d %s, want %d", tt.name, code, raw, tt.want)
		}
		if code >= 400 && !strings.Contains(string(raw), `"error"`) {
			t.Errorf("%s: error body %s", tt.name, raw)
		}
	}
	// The bearer scheme's name is case-insensitive.
	req, _ := http.NewRequest("GET", e.URL+"/api/v1/agents", nil)
	req.Header.Set("Authorization", "bearer "+testAdmin)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("lower-case bearer: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	// An admin agent's JWT is an admin for the API.
	_, adminTok := e.agent("root@example.com", "Root", map[string]any{"role": "admin"})
	code, raw := e.do("GET", "/api/v1/agents", adminTok, nil)
	if code != 200 {
		t.Fatalf("admin jwt list: %d %s", code, raw)
	}
	var page struct {
		Agents []handoff.AgentStatus `json:"agents"`
	}
	if err := json.Unmarshal(raw, &page); err != nil || len(page.Agents) != 2 {
		t.Fatalf("list: %s", raw)
	}
	if strings.Contains(string(raw), "password") || strings.Contains(string(raw), "$2a$") {
		t.Fatalf("list leaks password hashes: %s", raw)
	}
	// Disable and enable.
	if code, raw := e.do("POST", "/api/v1/agents/"+a.ID+"/disable", adminTok, nil); code != 200 || !strings.Contains(string(raw), `"disabled":true`) {
		t.Fatalf("disable: %d %s", code, raw)
	}
	if code, _ := e.do("POST", "/api/v1/agents/login", "", map[string]string{"email": "ann@example.com", "password": password}); code != 401 {
		t.Fatalf("disabled agent logged in: %d", code)
	}
	if code, raw := e.do("POST", "/api/v1/agents/"+a.ID+"/enable", adminTok, nil); code != 200 || strings.Contains(string(raw), `"disabled":true`) {
		t.Fatalf("enable: %d %s", code, raw)
	}
	if code, _ := e.do("POST", "/api/v1/agents/login", "", map[string]string{"email": "ann@example.com", "password": password}); code != 200 {
		t.Fatalf("enabled agent cannot log in: %d", code)
	}
	// A disabled admin's token stops working at once, not when it expires:
	// it can neither use the API nor re-enable itself.
	root := page.Agents[0].Agent
	for _, st := range page.Agents {
		if st.Agent.Email == "root@example.com" {
			root = st.Agent
		}
	}
	if code, raw := e.do("POST", "/api/v1/agents/"+root.ID+"/disable", testAdmin, nil); code != 200 {
		t.Fatalf("disable root: %d %s", code, raw)
	}
	if code, raw := e.do("GET", "/api/v1/agents", adminTok, nil); code != 401 {
		t.Fatalf("disabled admin's token listed agents: %d %s", code, raw)
	}
	if code, raw := e.do("POST", "/api/v1/agents/"+root.ID+"/enable", adminTok, nil); code != 401 {
		t.Fatalf("disabled admin re-enabled itself: %d %s", code, raw)
	}
}

// TestAgentsAPIPatch: PATCH /api/v1/agents/{id} changes only the fields
// given, refuses bad input clearly, and a role change ends the agent's
// tokens (a demoted admin keeps no admin powers).
func TestAgentsAPIPatch(t *testing.T) {
	e := newEnv(t)
	a, agentTok := e.agent("ann@example.com", "Ann", map[string]any{"skills": []string{"billing"}, "languages": []string{"en"}, "max_chats": 2})
	e.agent("bob@example.com", "Bob", nil)
	path := "/api/v1/agents/" + a.ID
	code, raw := e.do("PATCH", path, testAdmin, map[string]any{"skills": []string{"returns", "Billing"}, "max_chats": 4})
	if code != 200 {
		t.Fatalf("patch: %d %s", code, raw)
	}
	var got tandem.Agent
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Skills, []string{"billing", "returns"}) || got.MaxChats != 4 || got.DisplayName != "Ann" || got.Email != "ann@example.com" ||
		!slices.Equal(got.Languages, []string{"en"}) || got.Role != "agent" || strings.Contains(string(raw), "password") {
		t.Fatalf("patched: %s", raw)
	}
	if code, raw := e.do("GET", "/api/v1/agents", agentTok, nil); code != 403 {
		t.Fatalf("a skills change should keep the agent's token (403 on the admin API, not 401): %d %s", code, raw)
	}
	for _, tt := range []struct {
		name, bearer string
		body         any
		want         int
		says         string
	}{
		{"no token", "", map[string]any{"max_chats": 3}, 401, ""},
		{"as the agent", agentTok, map[string]any{"role": "admin"}, 403, ""},
		{"empty", testAdmin, map[string]any{}, 400, "nothing to change"},
		{"null", testAdmin, json.RawMessage(`{"skills":null}`), 400, "skills: null"},
		{"password", testAdmin, map[string]any{"password": password}, 400, "password"},
		{"disabled", testAdmin, map[string]any{"disabled": true}, 400, "disabled"},
		{"bad role", testAdmin, map[string]any{"role": "boss"}, 400, "role"},
		{"wrong type", testAdmin, map[string]any{"max_chats": "4"}, 400, "max_chats"},
		{"max chats 0", testAdmin, map[string]any{"max_chats": 0}, 400, "max chats"},
		{"taken email", testAdmin, map[string]any{"email": "BOB@example.com"}, 409, ""},
		{"invalid UTF-8", testAdmin, json.RawMessage("{\"display_name\":\"a\xffb\"}"), 400, "UTF-8"},
		{"oversized", testAdmin, map[string]any{"display_name": strings.Repeat("x", 20<<10)}, 413, ""},
		{"array", testAdmin, json.RawMessage(`[]`), 400, ""},
		{"trailing data", testAdmin, json.RawMessage(`{"max_chats":3} {"role":"admin"}`), 400, ""},
	} {
		code, raw := e.do("PATCH", path, tt.bearer, tt.body)
		if code != tt.want || !strings.Contains(string(raw), `"error"`) || !strings.Contains(string(raw), tt.says) {
			t.Errorf("%s: %d %s, want %d saying %q", tt.name, code, raw, tt.want, tt.says)
		}
	}
	if code, raw := e.do("PATCH", "/api/v1/agents/agt_nope", testAdmin, map[string]any{"max_chats": 3}); code != 404 {
		t.Errorf("unknown agent: %d %s", code, raw)
	}
	if code, raw := e.do("GET", path, testAdmin, nil); code != 200 || !strings.Contains(string(raw), `"max_chats":4`) || strings.Contains(string(raw), `"admin"`) {
		t.Fatalf("refused patches changed the agent: %d %s", code, raw)
	}

	// Promote, then demote: each role change ends the tokens issued before.
	if code, raw := e.do("PATCH", path, testAdmin, map[string]any{"role": "admin"}); code != 200 || !strings.Contains(string(raw), `"role":"admin"`) {
		t.Fatalf("promote: %d %s", code, raw)
	}
	if code, raw := e.do("GET", "/api/v1/agents", agentTok, nil); code != 401 || !strings.Contains(string(raw), "role changed") {
		t.Fatalf("the token from before the promotion: %d %s, want 401 naming the role change", code, raw)
	}
	_, adminTok := e.login("ann@example.com")
	if code, raw := e.do("GET", "/api/v1/agents", adminTok, nil); code != 200 {
		t.Fatalf("promoted agent's new token: %d %s", code, raw)
	}
	if code, raw := e.do("PATCH", path, testAdmin, map[string]any{"role": "agent"}); code != 200 {
		t.Fatalf("demote: %d %s", code, raw)
	}
	if code, raw := e.do("GET", "/api/v1/agents", adminTok, nil); code != 401 {
		t.Fatalf("a demoted admin's token still works: %d %s", code, raw)
	}
	_, tok := e.login("ann@example.com")
	if code, raw := e.do("GET", "/api/v1/agents", tok, nil); code != 403 {
		t.Fatalf("demoted agent's new token on the admin API: %d %s, want 403", code, raw)
	}
}

func TestConsolePage(t *testing.T) {
	e := newEnv(t)
	for path, want := range map[string]string{"/console": "text/html", "/console/console.js": "text/javascript", "/console/console.css": "text/css"} {
		resp, err := http.Get(e.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), want) {
			t.Errorf("%s: %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if path == "/console" && !strings.Contains(resp.Header.Get("Content-Security-Policy"), "script-src 'self'") {
			t.Errorf("console page CSP: %q", resp.Header.Get("Content-Security-Policy"))
		}
	}
}

// TestLoginRateLimit: password guessing from one address is cut off with 429.
func TestLoginRateLimit(t *testing.T) {
	e := newEnv(t)
	e.agent("ann@example.com", "Ann", nil) // one login
	limited := 0
	for i := 0; i < 30; i++ {
		code, raw := e.do("POST", "/api/v1/agents/login", "", map[string]string{"email": "ann@example.com", "password": "guess-" + string(rune('a'+i))})
		switch code {
		case http.StatusUnauthorized:
		case http.StatusTooManyRequests:
			limited++
		default:
			t.Fatalf("attempt %d: %d %s", i, code, raw)
		}
	}
	if limited == 0 {
		t.Fatal("30 quick login attempts were never rate limited")
	}
	// The refusal says when to come back.
	resp, err := http.Post(e.URL+"/api/v1/agents/login", "application/json", strings.NewReader(`{"email":"ann@example.com","password":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	n, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if resp.StatusCode != http.StatusTooManyRequests || err != nil || n < 1 || n > 3600 {
		t.Fatalf("limited login: %d, Retry-After %q; want 429 with whole seconds", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// The wait given covers the account's limit too (it said 1 s, the
	// address's, and the retry was refused by the account's).
	if n < 2 {
		t.Fatalf("Retry-After %d: shorter than the account's limit", n)
	}
}

// TestLoginRateLimitPerAccount: guesses at one account are limited even
// when they come from many addresses (here: a per-address burst too large
// to matter); other accounts are unaffected, and unknown emails are
// limited the same way (the answer reveals nothing).
func TestLoginRateLimitPerAccount(t *testing.T) {
	e := newNode(t, nodeOpts{loginBurst: 1000})
	e.agent("ann@example.com", "Ann", nil)
	for email, want := range map[string]int{"ann@example.com": 9, "nobody@example.com": 10} { // ann logged in once already
		limited := -1
		for i := range 15 {
			code, raw := e.do("POST", "/api/v1/agents/login", "", map[string]string{"email": email, "password": "guess-" + string(rune('a'+i))})
			if code == http.StatusTooManyRequests {
				if !strings.Contains(string(raw), "this account") {
					t.Fatalf("%s: %s", email, raw)
				}
				limited = i
				break
			}
			if code != http.StatusUnauthorized {
				t.Fatalf("%s attempt %d: %d %s", email, i, code, raw)
			}
		}
		if limited != want {
			t.Fatalf("%s: limited at attempt %d, want %d (a burst of 10 per account)", email, limited, want)
		}
	}
	// Another account still gets its own attempts.
	if code, raw := e.do("POST", "/api/v1/agents/login", "", map[string]string{"email": "bob@example.com", "password": "x"}); code != http.StatusUnauthorized {
		t.Fatalf("other account: %d %s", code, raw)
	}
}

// TestClaimAndTransfer: an away agent claims from the queue view, then
// hands the chat to a skill group, where an agent with that skill gets it
// and passes it on to a colleague.
func TestClaimAndTransfer(t *testing.T) {
	e := newEnv(t)
	_, annTok := e.agent("ann@example.com", "Ann", nil)
	bob, bobTok := e.agent("bob@example.com", "Bob", map[string]any{"skills": []string{"billing"}})
	carl, carlTok := e.agent("carl@example.com", "Carl", nil)
	annC, bobC, carlC := e.console(annTok), e.console(bobTok), e.console(carlTok)
	for _, c := range []*client{annC, bobC, carlC} {
		c.send(map[string]any{"type": "presence", "status": "away", "ref": "p"})
		c.until(answer("p"))
	}
	cust, conv := e.customer()
	cust.send(map[string]any{"type": "handoff_request", "client_id": "h"})
	tk := e.escalated(conv)
	e.tick() // nobody online: stays queued
	q, _ := annC.until(func(f frame) bool { return f.Type == "queue" && strings.Contains(string(f.Tickets), tk.ID) })
	if !strings.Contains(string(q.raw), `"position":1`) {
		t.Fatalf("queue view %s", q.raw)
	}
	annC.send(map[string]any{"type": "claim", "ticket_id": tk.ID, "ref": "c"})
	// The answer and the transcript (the assigned event may follow first).
	if fs := annC.all(answer("c"), messageFrom(tandem.AuthorCustomer, "talk to a person")); fs[0].Type != "ok" || fs[0].Ticket.State != tandem.TicketAssigned {
		t.Fatalf("claim: %s", fs[0].raw)
	}
	cust.until(handoffStatus("assigned"))
	bobC.send(map[string]any{"type": "claim", "ticket_id": tk.ID, "ref": "c2"})
	if f, _ := bobC.until(answer("c2")); f.Type != "error" || f.Code != tandem.ECONFLICT {
		t.Fatalf("second claim: %s", f.raw)
	}

	bobC.send(map[string]any{"type": "presence", "status": "online", "ref": "on"})
	bobC.until(answer("on"))
	annC.send(map[string]any{"type": "transfer", "ticket_id": tk.ID, "skills": []string{"Billing"}, "ref": "g"})
	if f, _ := annC.until(answer("g")); f.Type != "ok" || f.Ticket.State != tandem.TicketQueued || len(f.Ticket.Skills) != 1 || f.Ticket.Skills[0] != "billing" {
		t.Fatalf("transfer to group: %s", f.raw)
	}
	cust.until(handoffStatus("queued"))
	e.tick()
	o, _ := bobC.until(ticketEvent("ticket.offered"))
	if o.Ticket.ID != tk.ID || o.Ticket.AgentID != bob.ID {
		t.Fatalf("offer after group transfer: %+v", o.Ticket)
	}
	bobC.send(map[string]any{"type": "accept", "ticket_id": tk.ID, "ref": "a"})
	bobC.until(answer("a"))

	carlC.send(map[string]any{"type": "presence", "status": "online", "ref": "on"})
	carlC.until(answer("on"))
	bobC.send(map[string]any{"type": "transfer", "ticket_id": tk.ID, "to_agent_id": carl.ID, "ref": "t"})
	if f, _ := bobC.until(answer("t")); f.Type != "ok" || f.Ticket.State != tandem.TicketOffered || f.Ticket.AgentID != carl.ID {
		t.Fatalf("transfer to carl: %s", f.raw)
	}
	// The offer and its transcript (which follows the transfer event).
	if fs := carlC.all(ticketEvent("ticket.offered"), messageFrom(tandem.AuthorCustomer, "talk to a person")); fs[0].Ticket.ID != tk.ID {
		t.Fatalf("carl's offer: %s", fs[0].raw)
	}
	// Bob no longer follows: a customer message reaches Carl, not Bob.
	cust.send(map[string]any{"type": "message", "client_id": "m", "text": "still there?"})
	carlC.until(messageFrom(tandem.AuthorCustomer, "still there?"))
	bobC.send(map[string]any{"type": "ping", "id": "sync"})
	_, skipped := bobC.until(isType("pong"))
	for _, f := range skipped {
		if f.Type == "message" && strings.Contains(f.msg().Text, "still there?") {
			t.Fatal("bob still receives the conversation after transferring it")
		}
	}
}

// TestAssignedNoteBeforeAgentsFirstMessage: an agent who writes the moment
// their accept (or claim) is answered — as the "Greeting" canned reply
// invites — is logged after the customer's "You are now chatting with …"
// note, and the note is logged once although the assignment's event
// announces it too. (The note used to be written only when the event came,
// and the greeting could come first; with the event lost, never.)
func TestAssignedNoteBeforeAgentsFirstMessage(t *testing.T) {
	t.Run("with the event", func(t *testing.T) { testAssignedNoteFirst(t, newEnv(t)) })
	t.Run("event lost", func(t *testing.T) {
		testAssignedNoteFirst(t, newNode(t, nodeOpts{drop: func(e handoff.Event) bool { return e.Type == handoff.EventAssigned }}))
	})
}

func testAssignedNoteFirst(t *testing.T, e *env) {
	ctx := context.Background()
	_, annTok := e.agent("ann@example.com", "Ann", nil)
	agent := e.console(annTok)
	check := func(conv string) {
		t.Helper()
		if err := e.Engine.Flush(ctx); err != nil { // the assignment's event reached the gateway
			t.Fatal(err)
		}
		msgs, err := e.Chat.Messages(ctx, conv, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		note, greeting, notes := -1, -1, 0
		for i, m := range msgs {
			switch {
			case m.Kind == "event" && strings.Contains(m.Text, "You are now chatting with Ann"):
				notes++
				note = i
			case m.Author == tandem.AuthorAgent:
				greeting = i
			}
		}
		if notes != 1 || greeting < 0 || note > greeting {
			t.Fatalf("log of %s: %d assigned notes, note at %d, greeting at %d; want one note before the greeting:\n%+v", conv, notes, note, greeting, msgs)
		}
	}
	for i, action := range []string{"accept", "claim"} {
		if action == "claim" {
			agent.away()
		}
		cust, conv := e.customer()
		cust.send(map[string]any{"type": "handoff_request", "client_id": "h"})
		tk := e.escalated(conv)
		if action == "accept" {
			e.tick()
			agent.until(ticketEvent("ticket.offered"))
		}
		ref := "a" + strconv.Itoa(i)
		agent.send(map[string]any{"type": action, "ticket_id": tk.ID, "ref": ref})
		agent.until(answer(ref))
		agent.send(map[string]any{"type": "message", "conversation_id": conv, "client_id": "g" + ref, "text": "Hi, thanks for waiting!"})
		agent.until(isType("ack"))
		check(conv)
	}
}

// TestWelcomeComesFirst: frames sent right behind the hello are answered
// after the welcome (the worker sends it while the read loop went on to
// the next frames, whose answers could come first).
func TestWelcomeComesFirst(t *testing.T) {
	e := newEnv(t)
	_, tok := e.agent("ann@example.com", "Ann", nil)
	for i := range 20 {
		c := e.dial("/console/ws")
		c.send(map[string]any{"type": "hello", "token": tok})
		c.send(map[string]any{"type": "presence", "status": "online", "ref": "p"})
		c.send(map[string]any{"type": "resolve", "ref": "bad"}) // invalid: no ticket_id
		if f, err := c.read(10 * time.Second); err != nil || f.Type != "welcome" {
			t.Fatalf("attempt %d: first frame %s (%v), want the welcome", i, f.raw, err)
		}
		c.until(answer("bad"))
		c.ws.Close()
	}
}

// TestBadFieldTypeKeepsRef: a frame with a field of the wrong type is
// answered with an error that carries its ref and action (a numeric
// ticket_id lost the ref, and the client waited on it for ever).
func TestBadFieldTypeKeepsRef(t *testing.T) {
	e := newEnv(t)
	_, tok := e.agent("ann@example.com", "Ann", nil)
	c := e.console(tok)
	c.send(map[string]any{"type": "accept", "ticket_id": 5, "ref": "r1"})
	f, _ := c.until(isType("error"))
	var body struct {
		Ref    string `json:"ref"`
		Action string `json:"action"`
		Code   string `json:"code"`
	}
	if err := json.Unmarshal(f.raw, &body); err != nil || body.Ref != "r1" || body.Action != "accept" || body.Code != tandem.EINVALID {
		t.Fatalf("error frame %s, want invalid with ref r1 and action accept", f.raw)
	}
}

// TestMethodNotAllowedAllow: a 405 from the agents API or the server's own
// routes names the route's methods in Allow, as HTTP requires (the custom
// JSON 405 handlers dropped chi's header).
func TestMethodNotAllowedAllow(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct{ method, path, want string }{
		{"PATCH", "/api/v1/agents/ag_x/password", "POST"},
		{"DELETE", "/api/v1/agents/", "GET, POST"},
		{"POST", "/api/v1/agents/ag_x", "GET, PATCH"},
		{"PUT", "/api/v1/agents/login", "POST"},
		{"POST", "/healthz", "GET"},
	} {
		req, _ := http.NewRequest(tc.method, e.URL+tc.path, nil)
		req.Header.Set("Authorization", "Bearer "+testAdmin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := strings.Join(resp.Header.Values("Allow"), ", "); resp.StatusCode != 405 || got != tc.want {
			t.Errorf("%s %s: %d, Allow %q, want 405 and %q", tc.method, tc.path, resp.StatusCode, got, tc.want)
		}
	}
}
