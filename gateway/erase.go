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
// right to erasure: the handoff's tickets of it (HandoffEraser), the bot's
// state (BotForgetter), then the log with every message. A conversation
// with an open ticket is a conflict (resolve it or return it to the bot
// first) and nothing is deleted; an unknown one is not_found. A failure
// half-way leaves the rest for a retry, which finishes the job. The
// customer's token then names no conversation: their widget starts a new
// one.
func (c *Chat) EraseConversation(ctx context.Context, id string) error {
	if _, err := c.log.Conversation(ctx, id); err != nil {
		return err
	}
	if e, ok := c.handoff.(HandoffEraser); ok {
		if _, err := e.EraseConversation(ctx, id); err != nil {
			return err
		}
	}
	if f, ok := c.bot.(BotForgetter); ok {
		if err := f.Forget(ctx, id); err != nil {
			return fmt.Errorf("gateway: erase conversation: %w", err)
		}
	}
	if err := c.log.Erase(ctx, id); err != nil && tandem.ErrorCode(err) != tandem.ENOTFOUND {
		return fmt.Errorf("gateway: erase conversation: %w", err)
	}
	c.metrics.erased.Inc()
	return nil
}
