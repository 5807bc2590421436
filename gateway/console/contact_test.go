package console_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tandem-chat/tandem"
)

// leaveContact reports whether a handoff frame invites a contact address.
func leaveContact(f frame) bool {
	var v struct {
		LeaveContact bool `json:"leave_contact"`
	}
	_ = json.Unmarshal(f.raw, &v)
	return v.LeaveContact
}

// TestLeaveContactWhenNobodyOnline: with no agent online the customer is
// told so and invited to leave a contact; the bot keeps answering; a bad
// address and a conversation without a ticket get clear errors; a good
// address is stored on the queued ticket, confirmed with an ack and a note
// in the conversation, and shown to agents in the queue view. Nobody can
// leave a contact on another customer's conversation.
func TestLeaveContactWhenNobodyOnline(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cust, conv := e.customer()

	cust.send(map[string]any{"type": "handoff_request", "client_id": "h1"})
	if f, _ := cust.until(handoffStatus("unavailable")); !leaveContact(f) || !strings.Contains(string(f.raw), "No agent is online") {
		t.Fatalf("nobody-online frame: %s", f.raw)
	}
	tk := e.escalated(conv)

	// The bot keeps answering while the ticket waits (no agent took part yet).
	cust.send(map[string]any{"type": "message", "client_id": "m1", "text": "what are your opening hours?"})
	cust.until(messageFrom(tandem.AuthorBot, "bot: what are your opening hours?"))

	// A bad address: invalid, with the frame's client_id; nothing stored.
	cust.send(map[string]any{"type": "contact", "client_id": "k1", "address": "call me maybe"})
	if f, _ := cust.until(isType("error")); f.Code != tandem.EINVALID || f.ClientID != "k1" || !strings.Contains(f.errText(), "email address or a phone number") {
		t.Fatalf("bad address: %s", f.raw)
	}
	if got, _ := e.Engine.OpenTicket(ctx, conv); got.ContactAddress != "" {
		t.Fatalf("bad address stored: %+v", got)
	}

	// A good one: ack with the note's seq, the note, the ticket still queued.
	cust.send(map[string]any{"type": "contact", "client_id": "k2", "address": "  ada@example.com "})
	fs := cust.all(isType("ack"), messageFrom(tandem.AuthorSystem, "get back to you at ada@example.com"))
	ack, note := fs[0], fs[1]
	if ack.ClientID != "k2" || ack.Seq == 0 || ack.Seq != note.msg().Seq || note.msg().Kind != "event" {
		t.Fatalf("ack %s for note %s", ack.raw, note.raw)
	}
	got, err := e.Engine.OpenTicket(ctx, conv)
	if err != nil || got.ID != tk.ID || got.ContactAddress != "ada@example.com" || got.State != tandem.TicketQueued {
		t.Fatalf("ticket after contact: %+v %v", got, err)
	}
	// The same frame again: acknowledged as a duplicate, one note.
	cust.send(map[string]any{"type": "contact", "client_id": "k2", "address": "ada@example.com"})
	if f, _ := cust.until(isType("ack")); f.Seq != ack.Seq || !strings.Contains(string(f.raw), `"duplicate":true`) {
		t.Fatalf("repeated contact: %s", f.raw)
	}
	// Another address under the same client_id: a conflict, and neither
	// the ticket nor the log changes (the ticket took it before).
	cust.send(map[string]any{"type": "contact", "client_id": "k2", "address": "other@example.com"})
	if f, _ := cust.until(isType("error")); f.Code != tandem.ECONFLICT || f.ClientID != "k2" {
		t.Fatalf("another address under a used client_id: %s", f.raw)
	}
	if got, _ := e.Engine.OpenTicket(ctx, conv); got.ContactAddress != "ada@example.com" {
		t.Fatalf("a refused contact changed the ticket: %+v", got)
	}
	// A withdrawal under a client_id a message used: a conflict, and the
	// request for a person stands (the ack of a duplicate with nothing
	// done, before).
	cust.send(map[string]any{"type": "handoff_cancel", "client_id": "m1"})
	if f, _ := cust.until(isType("error")); f.Code != tandem.ECONFLICT || f.ClientID != "m1" {
		t.Fatalf("handoff_cancel under a message's client_id: %s", f.raw)
	}
	if got, err := e.Engine.OpenTicket(ctx, conv); err != nil || got.ID != tk.ID {
		t.Fatalf("a refused cancel closed the ticket: %+v %v", got, err)
	}

	// An agent sees the address on the queue entry.
	_, tok := e.agent("ann@example.com", "Ann", nil)
	annC := e.console(tok)
	q, _ := annC.until(isType("queue"))
	var entries []struct {
		Ticket tandem.Ticket `json:"ticket"`
	}
	if err := json.Unmarshal(q.Tickets, &entries); err != nil || len(entries) != 1 || entries[0].Ticket.ContactAddress != "ada@example.com" {
		t.Fatalf("queue view %s", q.raw)
	}

	// Another customer: no ticket -> not_found; this conversation -> forbidden.
	other, otherConv := e.customer()
	other.send(map[string]any{"type": "contact", "client_id": "k3", "address": "eve@example.com"})
	if f, _ := other.until(isType("error")); f.Code != tandem.ENOTFOUND || f.ClientID != "k3" || !strings.Contains(f.errText(), "ask for a person first") {
		t.Fatalf("contact without a ticket: %s", f.raw)
	}
	other.send(map[string]any{"type": "contact", "client_id": "k4", "address": "eve@example.com", "conversation_id": conv})
	if f, _ := other.until(isType("error")); f.Code != tandem.EFORBIDDEN || f.ClientID != "k4" {
		t.Fatalf("contact on another conversation: %s", f.raw)
	}
	if got, _ := e.Engine.OpenTicket(ctx, conv); got.ContactAddress != "ada@example.com" {
		t.Fatalf("another customer changed the contact: %+v", got)
	}
	// The address never reaches the other conversation.
	msgs, err := e.Chat.Messages(ctx, otherConv, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if strings.Contains(m.Text, "ada@example.com") {
			t.Fatalf("address leaked into another conversation: %+v", m)
		}
	}
}

// TestTransferWindowKeepsMessagesForTheNextAgent: after an agent took part,
// a transfer sends the conversation back to the queue; customer messages
// written then are not answered by the bot but kept for the next agent,
// who gets them in the transcript.
func TestTransferWindowKeepsMessagesForTheNextAgent(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	_, annTok := e.agent("ann@example.com", "Ann", nil)
	bob, bobTok := e.agent("bob@example.com", "Bob", map[string]any{"skills": []string{"billing"}})
	annC := e.console(annTok)
	cust, conv := e.customer()

	cust.send(map[string]any{"type": "handoff_request", "client_id": "h1"})
	tk := e.escalated(conv)
	e.tick()
	annC.until(ticketEvent("ticket.offered"))
	annC.send(map[string]any{"type": "accept", "ticket_id": tk.ID, "ref": "a"})
	annC.until(answer("a"))
	cust.until(handoffStatus("assigned"))

	annC.send(map[string]any{"type": "transfer", "ticket_id": tk.ID, "skills": []string{"billing"}, "ref": "g"})
	if f, _ := annC.until(answer("g")); f.Type != "ok" || f.Ticket.State != tandem.TicketQueued {
		t.Fatalf("transfer to group: %s", f.raw)
	}
	if f, _ := cust.until(handoffStatus("queued")); !strings.Contains(string(f.raw), "passed on") {
		t.Fatalf("transfer status: %s", f.raw)
	}

	// In the window: stored and acknowledged, not sent to the bot.
	cust.send(map[string]any{"type": "message", "client_id": "w1", "text": "is anyone there?"})
	ack, _ := cust.until(isType("ack"))
	// Frames of one connection are handled in order: after the pong, the
	// message's bot-or-not decision is made; any turn it started has ended
	// when no turn is pending, and its answer would be in the log.
	cust.send(map[string]any{"type": "ping", "id": "sync"})
	cust.until(isType("pong"))
	waitNoTurns(t, e)
	msgs, err := e.Chat.Messages(ctx, conv, 0, 500)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if m.Author == tandem.AuthorBot && m.ClientID == "bot:"+strconv.FormatInt(ack.Seq, 10) {
			t.Fatalf("the bot answered in the transfer window: %+v", m)
		}
	}

	// The next agent gets the ticket with the held message in the transcript.
	bobC := e.console(bobTok)
	e.tick()
	if fs := bobC.all(ticketEvent("ticket.offered"), messageFrom(tandem.AuthorCustomer, "is anyone there?")); fs[0].Ticket.AgentID != bob.ID {
		t.Fatalf("offer after transfer: %s", fs[0].raw)
	}
	bobC.send(map[string]any{"type": "accept", "ticket_id": tk.ID, "ref": "b"})
	bobC.until(answer("b"))
	cust.until(handoffStatus("assigned"))

	// Returned to the bot: it answers again.
	bobC.send(map[string]any{"type": "return", "ticket_id": tk.ID, "ref": "r"})
	bobC.until(answer("r"))
	cust.until(handoffStatus("returned"))
	cust.send(map[string]any{"type": "message", "client_id": "w2", "text": "thanks"})
	cust.until(messageFrom(tandem.AuthorBot, "bot: thanks"))
}

// waitNoTurns waits until the node has no bot turn queued or running.
func waitNoTurns(t *testing.T, e *env) {
	t.Helper()
	for i := 0; e.Chat.PendingTurns() != 0; i++ {
		if i > 10000 {
			t.Fatal("bot turns never finished")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestTransferToAgentKeepsMessagesForThem: a transfer to a named agent is
// an offer to them; in that window the bot stays quiet and the target
// follows the conversation, held messages included.
func TestTransferToAgentKeepsMessagesForThem(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	_, annTok := e.agent("ann@example.com", "Ann", nil)
	bob, bobTok := e.agent("bob@example.com", "Bob", nil)
	annC := e.console(annTok)
	cust, conv := e.customer()

	// Before any agent joined, the bot answers while the ticket is offered.
	cust.send(map[string]any{"type": "handoff_request", "client_id": "h1"})
	tk := e.escalated(conv)
	e.tick()
	annC.until(ticketEvent("ticket.offered"))
	cust.send(map[string]any{"type": "message", "client_id": "b1", "text": "before anyone joined"})
	cust.until(messageFrom(tandem.AuthorBot, "bot: before anyone joined"))

	annC.send(map[string]any{"type": "accept", "ticket_id": tk.ID, "ref": "a"})
	annC.until(answer("a"))
	cust.until(handoffStatus("assigned"))
	bobC := e.console(bobTok)
	annC.send(map[string]any{"type": "transfer", "ticket_id": tk.ID, "to_agent_id": bob.ID, "ref": "t"})
	if f, _ := annC.until(answer("t")); f.Type != "ok" || f.Ticket.State != tandem.TicketOffered {
		t.Fatalf("transfer to bob: %s", f.raw)
	}
	cust.until(handoffStatus("queued"))
	cust.send(map[string]any{"type": "message", "client_id": "w1", "text": "hello again"})
	ack, _ := cust.until(isType("ack"))
	bobC.until(messageFrom(tandem.AuthorCustomer, "hello again"))
	cust.send(map[string]any{"type": "ping", "id": "sync"}) // the message's frame is fully handled
	cust.until(isType("pong"))
	waitNoTurns(t, e)
	msgs, err := e.Chat.Messages(ctx, conv, ack.Seq, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if m.Author == tandem.AuthorBot {
			t.Fatalf("the bot answered during the transfer: %+v", m)
		}
	}
}

// TestContactWhileWithAnAgent: a contact left while an agent holds the
// chat is stored, and its note does not say the customer waits in the
// queue.
func TestContactWhileWithAnAgent(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	_, tok := e.agent("ann@example.com", "Ann", nil)
	agent := e.console(tok)
	agent.away()
	cust, conv, _ := e.claimedChat(agent)
	cust.until(handoffStatus("assigned"))
	cust.send(map[string]any{"type": "contact", "client_id": "k1", "address": "ada@example.com"})
	f, _ := cust.until(messageFrom(tandem.AuthorSystem, "get back to you at ada@example.com"))
	if m := f.msg(); m.Text != "Thanks! We'll get back to you at ada@example.com." || m.Data["address"] != "ada@example.com" {
		t.Fatalf("note while assigned: %+v", m)
	}
	if got, err := e.Engine.OpenTicket(ctx, conv); err != nil || got.ContactAddress != "ada@example.com" || got.State != tandem.TicketAssigned {
		t.Fatalf("ticket: %+v %v", got, err)
	}
}
