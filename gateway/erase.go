package gateway

import (
	"context"
	"fmt"

	"github.com/tandem-chat/tandem"
)

// HandoffEraser is an optional interface of a Handoff: it deletes what it
// keeps about a conversation (its tickets and their history), returning
// how many tickets; a conversation with an open ticket is a conflict and
// nothing is deleted.
type HandoffEraser interface {
	EraseConversation(ctx context.Context, conversationID string) (int, error)
}

// BotForgetter is an optional interface of a Bot: it deletes what it keeps
// about a conversation (its dialogue state).
type BotForgetter interface {
	Forget(ctx context.Context, conversationID string) error
}

// EraseConversation deletes a conversation for good — the customer's
// right to erasure: the handoff's tickets of it (HandoffEraser), the log
// with every message, then the bot's state (BotForgetter; after the log,
// so that a turn that ended meanwhile leaves nothing, and a turn still
// running forgets when it finds the conversation gone, see runTurn). A
// conversation with an open ticket is a conflict (resolve it or return it
// to the bot first) and nothing is deleted. A conversation the log no
// longer has still gets the rest (a retry after a failure half-way, or a
// ticket an escalation opened during an erasure and closed since); it is
// not_found only when no ticket of it was left either. The customer's
// token then names no conversation: their widget starts a new one.
func (c *Chat) EraseConversation(ctx context.Context, id string) error {
	_, err := c.log.Conversation(ctx, id)
	inLog := err == nil
	if err != nil && tandem.ErrorCode(err) != tandem.ENOTFOUND {
		return err
	}
	tickets := 0
	if e, ok := c.handoff.(HandoffEraser); ok {
		if tickets, err = e.EraseConversation(ctx, id); err != nil {
			return err
		}
	}
	if inLog {
		if err := c.log.Erase(ctx, id); err != nil && tandem.ErrorCode(err) != tandem.ENOTFOUND {
			return fmt.Errorf("gateway: erase conversation: %w", err)
		}
	}
	if err := c.forget(ctx, id); err != nil {
		return err
	}
	if !inLog && tickets == 0 {
		return tandem.Errorf(tandem.ENOTFOUND, "conversation not found")
	}
	c.metrics.erased.Inc()
	return nil
}

// forget deletes the bot's state of a conversation (BotForgetter).
func (c *Chat) forget(ctx context.Context, id string) error {
	if f, ok := c.bot.(BotForgetter); ok {
		if err := f.Forget(ctx, id); err != nil {
			return fmt.Errorf("gateway: forget conversation: %w", err)
		}
	}
	return nil
}
