package console_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/handoff"
)

// TestCustomerGoesBackToTheBot: a customer waiting for a person, even
// after a transfer (when their messages are held for the next agent), can
// withdraw the request: the ticket closes as returned, the request is
// logged and acknowledged, the customer gets the note and the "returned"
// status (once), and
// the bot answers again. A resend is acknowledged once; withdrawing with
// no open request is a clear not_found.
func TestCustomerGoesBackToTheBot(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ann, annTok := e.agent("ann@example.com", "Ann", map[string]any{"languages": []string{"en"}})
	agent := e.console(annTok)
	cust, conv := e.customer()

	// No request yet: not_found.
	cust.send(map[string]any{"type": "handoff_cancel", "client_id": "x0"})
	if f, _ := cust.until(isType("error")); f.Code != tandem.ENOTFOUND || f.ClientID != "x0" {
		t.Fatalf("cancel without a request: %s", f.raw)
	}

	cust.send(map[string]any{"type": "handoff_request", "client_id": "h1"})
	cust.until(handoffStatus("queued"))
	tk := e.escalated(conv)
	e.tick()
	agent.until(ticketEvent("ticket.offered"))
	agent.send(map[string]any{"type": "accept", "ticket_id": tk.ID, "ref": "a1"})
	agent.until(answer("a1"))
	cust.until(handoffStatus("assigned"))
	// Ann sends the chat back to the queue of a group: the customer's
	// messages now wait for the next agent, not the bot.
	agent.send(map[string]any{"type": "transfer", "ticket_id": tk.ID, "skills": []string{"billing"}, "ref": "t1"})
	if f, _ := agent.until(answer("t1")); f.Type != "ok" {
		t.Fatalf("transfer: %s", f.raw)
	}
	cust.until(handoffStatus("queued"))

	cust.send(map[string]any{"type": "handoff_cancel", "client_id": "x1"})
	fs := cust.all(isType("ack"), messageFrom(tandem.AuthorCustomer, "Back to the assistant"),
		messageFrom(tandem.AuthorSystem, "back with the assistant"), handoffStatus("returned"))
	if ack := fs[0]; ack.ClientID != "x1" || ack.Seq != fs[1].msg().Seq || fs[1].msg().Kind != "handoff_cancel" {
		t.Fatalf("ack %s for the request %s", ack.raw, fs[1].raw)
	}
	if _, err := e.Engine.OpenTicket(ctx, conv); tandem.ErrorCode(err) != tandem.ENOTFOUND {
		t.Fatalf("the ticket is still open: %v", err)
	}
	_ = ann

	// The same frame again (its ack lost): acknowledged again, nothing new logged.
	cust.send(map[string]any{"type": "handoff_cancel", "client_id": "x1"})
	if f, _ := cust.until(isType("ack")); f.Seq != fs[0].Seq || !strings.Contains(string(f.raw), `"duplicate":true`) {
		t.Fatalf("repeated cancel: %s", f.raw)
	}
	// The bot answers again.
	cust.send(map[string]any{"type": "message", "client_id": "m1", "text": "and my refund?"})
	cust.until(messageFrom(tandem.AuthorBot, "bot: and my refund?"))
}

// TestLostEventDoesNotStrandTheCustomer: the events that tell the gateway
// a ticket ended are hints and can be lost. When the agent resolves the
// chat and the "closed" event never arrives, the conversation is still in
// human mode; the customer's next message must not go to an agent who is
// gone: the gateway checks the handoff's store, takes the conversation
// back to the bot (telling the customer), the bot answers, and a new
// request for a person opens a new ticket.
func TestLostEventDoesNotStrandTheCustomer(t *testing.T) {
	var lose atomic.Bool
	e := newNode(t, nodeOpts{drop: func(ev handoff.Event) bool {
		return lose.Load() && (ev.Type == handoff.EventClosed || ev.Type == handoff.EventReturned)
	}})
	ctx := context.Background()
	_, annTok := e.agent("ann@example.com", "Ann", map[string]any{"languages": []string{"en"}})
	agent := e.console(annTok)
	cust, conv := e.customer()

	cust.send(map[string]any{"type": "handoff_request", "client_id": "h1"})
	cust.until(handoffStatus("queued"))
	tk := e.escalated(conv)
	e.tick()
	agent.until(ticketEvent("ticket.offered"))
	agent.send(map[string]any{"type": "accept", "ticket_id": tk.ID, "ref": "a1"})
	agent.until(answer("a1"))
	cust.until(handoffStatus("assigned"))

	lose.Store(true)
	agent.send(map[string]any{"type": "resolve", "ticket_id": tk.ID, "ref": "r1"})
	if f, _ := agent.until(answer("r1")); f.Type != "ok" {
		t.Fatalf("resolve: %s", f.raw)
	}
	if err := e.Engine.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if cv, err := e.Chat.Conversation(ctx, conv); err != nil || cv.Mode != tandem.ModeHuman {
		t.Fatalf("the test lost no event: conversation %+v, %v", cv, err)
	}

	cust.send(map[string]any{"type": "message", "client_id": "m1", "text": "anyone there?"})
	cust.all(isType("ack"), messageFrom(tandem.AuthorSystem, "back with the assistant"), handoffStatus("returned"),
		messageFrom(tandem.AuthorBot, "bot: anyone there?"))
	if cv, err := e.Chat.Conversation(ctx, conv); err != nil || cv.Mode != tandem.ModeBot {
		t.Fatalf("conversation after the repair: %+v, %v", cv, err)
	}

	cust.send(map[string]any{"type": "handoff_request", "client_id": "h2"})
	cust.until(handoffStatus("queued"))
	if tk2 := e.escalated(conv); tk2.ID == tk.ID {
		t.Fatalf("the old ticket %s was reused", tk.ID)
	}
}

// TestLostEventDoesNotKeepFormerAgentFollowing: when the event that moves
// a chat away from an agent is lost, the agent's console must not keep
// receiving the customer's messages: the console re-checks what it follows
// against the store on the agent's heartbeats.
func TestLostEventDoesNotKeepFormerAgentFollowing(t *testing.T) {
	var lose atomic.Bool
	e := newNode(t, nodeOpts{drop: func(ev handoff.Event) bool {
		return lose.Load() && ev.Type == handoff.EventTransferred
	}})
	ctx := context.Background()
	ann, annTok := e.agent("ann@example.com", "Ann", nil)
	_, bobTok := e.agent("bob@example.com", "Bob", nil)
	annC, bobC := e.console(annTok), e.console(bobTok)
	annC.away()
	bobC.away()
	cust, conv, tk := e.claimedChat(annC)

	lose.Store(true)
	if _, err := e.Engine.TransferToGroup(ctx, handoff.Actor{AgentID: "admin", Admin: true}, tk.ID, []string{"general"}); err != nil {
		t.Fatal(err)
	}
	if err := e.Engine.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	bobC.send(map[string]any{"type": "claim", "ticket_id": tk.ID, "ref": "c2"})
	bobC.all(answer("c2"), messageFrom(tandem.AuthorCustomer, "talk to a person"))
	if _, err := e.Engine.Authorize(ctx, handoff.Actor{AgentID: ann.ID}, conv, false); err == nil {
		t.Fatal("the transfer did not take the chat from Ann")
	}
	// Ann's next heartbeat (any frame, once the heartbeat interval passed).
	e.Clock.Advance(time.Minute)
	annC.send(map[string]any{"type": "ping", "id": "hb"})
	annC.until(isType("pong"))
	for deadline := time.Now().Add(10 * time.Second); e.Chat.Hub().Subscribers(conv) > 2; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) { // a hang guard, not a speed limit
			t.Fatalf("Ann's console still follows the conversation (%d followers)", e.Chat.Hub().Subscribers(conv))
		}
	}
	cust.send(map[string]any{"type": "message", "client_id": "m", "text": "my card number is 4111"})
	bobC.until(messageFrom(tandem.AuthorCustomer, "4111"))
	e.Clock.Advance(time.Minute)
	annC.send(map[string]any{"type": "ping", "id": "sync"})
	_, skipped := annC.until(isType("pong"))
	for _, f := range skipped {
		if f.Type == "message" && strings.Contains(f.msg().Text, "4111") {
			t.Fatalf("Ann, no longer on the chat, received: %s", f.raw)
		}
	}
}

// TestDisabledAgentConsoleEndsAtOnce: disabling an agent ends their open
// console at once (it could still write to and resolve chats until its
// next heartbeat), and the chat they held stays theirs to reassign.
func TestDisabledAgentConsoleEndsAtOnce(t *testing.T) {
	e := newEnv(t)
	ann, annTok := e.agent("ann@example.com", "Ann", nil)
	annC := e.console(annTok)
	annC.away()
	_, conv, _ := e.claimedChat(annC)
	if code, raw := e.do("POST", "/api/v1/agents/"+ann.ID+"/disable", testAdmin, nil); code != 200 {
		t.Fatalf("disable: %d %s", code, raw)
	}
	if code := annC.expectClose(); code != 4403 {
		t.Fatalf("close code %d, want 4403", code)
	}
	msgs, err := e.Chat.Messages(context.Background(), conv, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if m.Author == tandem.AuthorAgent {
			t.Fatalf("a message from the disabled agent was logged: %+v", m)
		}
	}
}

// TestDemotedAdminConsoleEndsAtOnce: an admin demoted to agent loses the
// admin console at once (it could act on others' chats until it
// reconnected), with 4401 and the reason; a skills change keeps the
// console open.
func TestDemotedAdminConsoleEndsAtOnce(t *testing.T) {
	e := newEnv(t)
	root, rootTok := e.agent("root@example.com", "Root", map[string]any{"role": "admin"})
	rootC := e.console(rootTok)
	if code, raw := e.do("PATCH", "/api/v1/agents/"+root.ID, testAdmin, map[string]any{"skills": []string{"billing"}}); code != 200 {
		t.Fatalf("patch skills: %d %s", code, raw)
	}
	rootC.send(map[string]any{"type": "ping", "id": "still-open"})
	rootC.until(isType("pong"))
	if code, raw := e.do("PATCH", "/api/v1/agents/"+root.ID, testAdmin, map[string]any{"role": "agent"}); code != 200 {
		t.Fatalf("demote: %d %s", code, raw)
	}
	f, _ := rootC.until(isType("error"))
	if !strings.Contains(string(f.raw), "role changed") {
		t.Fatalf("error frame %s, want the role change named", f.raw)
	}
	if code := rootC.expectClose(); code != 4401 {
		t.Fatalf("close code %d, want 4401", code)
	}
}

// TestAgentReusedClientID: an agent's client_id names one message: another
// text under a used one is refused with conflict (it was acked as a
// duplicate and dropped); the same message again is a duplicate.
func TestAgentReusedClientID(t *testing.T) {
	e := newEnv(t)
	_, annTok := e.agent("ann@example.com", "Ann", nil)
	agent := e.console(annTok)
	agent.away()
	_, conv, _ := e.claimedChat(agent)
	agent.send(map[string]any{"type": "message", "conversation_id": conv, "client_id": "r1", "text": "Hello, Ann here.", "ref": "m1"})
	if f, _ := agent.until(func(f frame) bool { return f.Type == "ack" || f.Type == "error" }); f.Type != "ack" {
		t.Fatalf("first message: %s", f.raw)
	}
	agent.send(map[string]any{"type": "message", "conversation_id": conv, "client_id": "r1", "text": "Something else", "ref": "m2"})
	if f, _ := agent.until(func(f frame) bool { return f.Type == "ack" || f.Type == "error" }); f.Type != "error" || f.Code != tandem.ECONFLICT {
		t.Fatalf("another text under r1: %s", f.raw)
	}
	agent.send(map[string]any{"type": "message", "conversation_id": conv, "client_id": "r1", "text": "Hello, Ann here.", "ref": "m3"})
	if f, _ := agent.until(func(f frame) bool { return f.Type == "ack" || f.Type == "error" }); f.Type != "ack" || !strings.Contains(string(f.raw), `"duplicate":true`) {
		t.Fatalf("resend: %s", f.raw)
	}
}

// TestStaleCancelResendKeepsNewRequest: a withdrawal whose ack was lost is
// resent after the customer asked for a person again (another tab): it is
// acknowledged as a duplicate and the new request stays (it was closed as
// "returned", and the customer was told "back with the assistant").
func TestStaleCancelResendKeepsNewRequest(t *testing.T) {
	// The engine's clock is far from the log's (another node's): the
	// order is the log's, not the clocks'.
	clock := handoff.NewManualClock(time.Now().Add(-time.Hour))
	e := newNode(t, nodeOpts{clock: clock})
	ctx := context.Background()
	cust, conv := e.customer()
	cust.send(map[string]any{"type": "handoff_request", "client_id": "h1"})
	cust.until(handoffStatus("queued"))
	cust.send(map[string]any{"type": "handoff_cancel", "client_id": "x1"})
	cust.all(isType("ack"), handoffStatus("returned"))

	clock.Advance(time.Minute)
	cust.send(map[string]any{"type": "handoff_request", "client_id": "h2", "text": "I really need a person"})
	cust.until(handoffStatus("queued"))
	second := e.escalated(conv)

	cust.send(map[string]any{"type": "handoff_cancel", "client_id": "x1"})
	if f, _ := cust.until(func(f frame) bool { return f.Type == "ack" || f.Type == "error" }); f.Type != "ack" || !strings.Contains(string(f.raw), `"duplicate":true`) {
		t.Fatalf("stale resend: %s", f.raw)
	}
	got, err := e.Engine.OpenTicket(ctx, conv)
	if err != nil || got.ID != second.ID {
		t.Fatalf("the new request was withdrawn by the old resend: %+v %v", got, err)
	}
}

// TestAcceptBeforeTheModeSwitch: routing can offer a ticket, and the
// agent accept it, before the escalating node has switched the
// conversation to queued (it does once the ticket is committed). The
// "You are now chatting with …" note still comes before the accept's ok,
// so a greeting sent on ok follows it (it came after the greeting, or not
// at all when that node died before the event).
func TestAcceptBeforeTheModeSwitch(t *testing.T) {
	// The assignment's event is late (here: lost), as across nodes; the
	// accept itself must announce.
	e := newNode(t, nodeOpts{drop: func(ev handoff.Event) bool { return ev.Type == handoff.EventAssigned }})
	ctx := context.Background()
	_, annTok := e.agent("ann@example.com", "Ann", nil)
	agent := e.console(annTok)
	cust, convID := e.customer()
	conv, err := e.Chat.Conversation(ctx, convID)
	if err != nil {
		t.Fatal(err)
	}
	// The engine commits the ticket; the gateway's mode switch has not
	// happened yet (the conversation is still with the bot).
	tk, _, err := e.Engine.Escalate(ctx, conv, tandem.Escalation{Reason: tandem.EscalateButton})
	if err != nil {
		t.Fatal(err)
	}
	e.tick()
	agent.until(ticketEvent("ticket.offered"))
	agent.send(map[string]any{"type": "accept", "ticket_id": tk.ID, "ref": "a1"})
	agent.until(answer("a1"))
	agent.send(map[string]any{"type": "message", "conversation_id": convID, "client_id": "g1", "text": "Hi, I'm Ann", "ref": "m1"})
	if f, _ := agent.until(func(f frame) bool { return f.Type == "ack" || f.Type == "error" }); f.Type != "ack" {
		t.Fatalf("greeting: %s", f.raw)
	}
	note, _ := cust.until(messageFrom(tandem.AuthorSystem, "You are now chatting with Ann"))
	greeting, _ := cust.until(messageFrom(tandem.AuthorAgent, "Hi, I'm Ann"))
	if note.msg().Seq > greeting.msg().Seq {
		t.Fatalf("the note (seq %d) came after the greeting (seq %d)", note.msg().Seq, greeting.msg().Seq)
	}
	if c, err := e.Chat.Conversation(ctx, convID); err != nil || c.Mode != tandem.ModeHuman {
		t.Fatalf("mode %v, %v", c.Mode, err)
	}
}
