package console

import (
	"context"
	"sync/atomic"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/gateway"
	"github.com/tandem-chat/tandem/handoff"
)

// The engine needs its Notifier (the Console) when it is created, the chat
// needs the engine (gateway.Handoff) when it is created, and the Console
// needs the chat: Handoff and LateNotifier break the cycle.

// Handoff adapts a handoff.Engine to gateway.Handoff and
// gateway.ChatDeps.AgentAccess. The chat is bound after it is built
// (SetChat); escalations before that fail with unavailable.
type Handoff struct {
	Engine *handoff.Engine
	chat   atomic.Pointer[gateway.Chat]
}

var (
	_ gateway.Handoff       = (*Handoff)(nil)
	_ gateway.ContactTaker  = (*Handoff)(nil)
	_ gateway.HandoffStater = (*Handoff)(nil)
	_ gateway.HandoffEraser = (*Handoff)(nil)
)

// EraseConversation implements gateway.HandoffEraser.
func (h *Handoff) EraseConversation(ctx context.Context, conversationID string) (int, error) {
	return h.Engine.EraseConversation(ctx, conversationID)
}

// SetChat binds the chat whose conversations are escalated.
func (h *Handoff) SetChat(c *gateway.Chat) { h.chat.Store(c) }

// Escalate implements gateway.Handoff: it creates the conversation's ticket.
func (h *Handoff) Escalate(ctx context.Context, conversationID string, esc tandem.Escalation) error {
	chat := h.chat.Load()
	if chat == nil {
		return tandem.Errorf(tandem.EUNAVAILABLE, "handoff is starting")
	}
	conv, err := chat.Conversation(ctx, conversationID)
	if err != nil {
		return err
	}
	_, _, err = h.Engine.Escalate(ctx, conv, esc)
	return err
}

// LeaveContact implements gateway.ContactTaker: the address is stored on
// the conversation's open ticket (handoff.Engine.LeaveContact validates it)
// and shown to agents in the console.
func (h *Handoff) LeaveContact(ctx context.Context, conversationID, address string) (string, bool, error) {
	t, err := h.Engine.LeaveContact(ctx, conversationID, address)
	if tandem.ErrorCode(err) == tandem.ENOTFOUND {
		return "", false, tandem.Errorf(tandem.ENOTFOUND, "there is no open request for an agent in this conversation; ask for a person first")
	}
	if err != nil {
		return "", false, err
	}
	return t.ContactAddress, t.State == tandem.TicketQueued, nil
}

// CancelHandoff implements gateway.HandoffCanceler: the customer goes
// back to the bot; the open ticket closes as returned (an agent holding it
// is told through the returned event).
func (h *Handoff) CancelHandoff(ctx context.Context, conversationID string) error {
	_, err := h.Engine.Cancel(ctx, conversationID, tandem.TicketReturned)
	if tandem.ErrorCode(err) == tandem.ENOTFOUND {
		return tandem.Errorf(tandem.ENOTFOUND, "there is no open request for a person in this conversation")
	}
	return err
}

// HandoffState implements gateway.HandoffStater from the engine's store:
// whether the conversation has an open ticket, and whether customer
// messages wait for the next agent — the ticket is assigned, or is back in
// the queue (or offered) after an agent had it: its transitions include an
// assignment. Before any agent joined, the bot keeps answering.
func (h *Handoff) HandoffState(ctx context.Context, conversationID string) (gateway.HandoffState, error) {
	t, err := h.Engine.OpenTicket(ctx, conversationID)
	if tandem.ErrorCode(err) == tandem.ENOTFOUND {
		return gateway.HandoffState{}, nil
	}
	if err != nil {
		return gateway.HandoffState{}, err
	}
	took, err := tookPart(ctx, h.Engine, t)
	if err != nil {
		return gateway.HandoffState{}, err
	}
	return gateway.HandoffState{Open: true, Held: took}, nil
}

// tookPart reports whether an agent took part in a ticket: it is assigned,
// or its transitions include an assignment.
func tookPart(ctx context.Context, eng *handoff.Engine, t tandem.Ticket) (bool, error) {
	if t.State == tandem.TicketAssigned {
		return true, nil
	}
	trs, err := eng.Transitions(ctx, t.ID)
	if err != nil {
		return false, err
	}
	for _, tr := range trs {
		if tr.To == tandem.TicketAssigned {
			return true, nil
		}
	}
	return false, nil
}

// AgentAccess is gateway.ChatDeps.AgentAccess: an agent may read a
// conversation offered or assigned to them.
func (h *Handoff) AgentAccess(ctx context.Context, agentID, conversationID string) bool {
	_, err := h.Engine.Authorize(ctx, handoff.Actor{AgentID: agentID}, conversationID, false)
	return err == nil
}

// LateNotifier is a handoff.Notifier that forwards to a Console bound after
// the engine was created; events before Set are dropped.
type LateNotifier struct {
	c atomic.Pointer[Console]
}

var _ handoff.Notifier = (*LateNotifier)(nil)

// Set binds the console.
func (n *LateNotifier) Set(c *Console) { n.c.Store(c) }

// Notify implements handoff.Notifier.
func (n *LateNotifier) Notify(ctx context.Context, e handoff.Event) {
	if c := n.c.Load(); c != nil {
		c.Notify(ctx, e)
	}
}
