package gateway

import (
	"context"
	"fmt"
	"time"

	"github.com/tandem-chat/tandem"
)

// A customer message is stored and acknowledged before its bot turn runs,
// so a turn can be lost after the message is safe: the store committed
// but its reply was lost (the client is told to try again, and its resend
// is a duplicate), the node stopped between the append and the turn, or
// its turn queue was full. Two paths find such a message and answer it:
// its resend (unansweredResend), and the customer's next hello
// (recoverLostTurn). A message counts as answered when any message not
// written by the customer follows it in the log (the bot's answer, an
// agent's, or a system note).

// resendLookahead bounds how far past a resent message unansweredResend
// looks for an answer; a message with that many after it is not answered
// late.
const resendLookahead = 50

// unansweredResend reports whether m, a customer message sent again under
// its client id (a duplicate), should now get the bot turn it never had:
// nothing answered it, no turn for it is queued or running on this node,
// and the bot answers the conversation now (lostTurnWanted). A turn still
// running on another node (its client's link dropped between the append
// and the ack) may then run twice; its reply is stored once (its client
// id is bot:<seq>).
func (c *Chat) unansweredResend(ctx context.Context, m tandem.Message) (bool, error) {
	if !c.mayAnswer(m) || c.turns.has(m.ConversationID, m.Seq) {
		return false, nil
	}
	later, err := c.log.Messages(ctx, m.ConversationID, m.Seq, resendLookahead)
	if err != nil {
		return false, fmt.Errorf("gateway: read the messages after a resent one: %w", err)
	}
	if len(later) == resendLookahead {
		return false, nil
	}
	for _, x := range later {
		if x.Author != tandem.AuthorCustomer {
			return false, nil
		}
	}
	return c.lostTurnWanted(ctx, m)
}

// mayAnswer reports whether a turn of this node could answer m at all.
func (c *Chat) mayAnswer(m tandem.Message) bool {
	if m.Author != tandem.AuthorCustomer {
		return false
	}
	switch m.Kind {
	case "handoff_request":
		return true // escalated even without a bot
	case "text", "":
		return c.bot != nil
	}
	return false
}

// lostTurnWanted reports whether the bot should answer m, a customer
// message nothing answered, as the conversation now stands: the bot
// answers it (botAnswers), and a request for a person has not been
// escalated since (a conversation queued or with an agent has its
// ticket).
func (c *Chat) lostTurnWanted(ctx context.Context, m tandem.Message) (bool, error) {
	cv, err := c.log.Conversation(ctx, m.ConversationID)
	if err != nil {
		return false, fmt.Errorf("gateway: read the conversation of an unanswered message: %w", err)
	}
	if m.Kind == "handoff_request" && (cv.Mode == tandem.ModeQueued || cv.Mode == tandem.ModeHuman) {
		return false, nil
	}
	return c.botAnswers(ctx, cv), nil
}

// recoverLostTurn runs at a customer's hello: when the conversation's last
// message is the customer's, nothing answered it and no turn for it is
// queued or running on this node, its turn was lost, and it runs now. A
// message younger than LostTurnAfter may still have its turn running on
// another node (this customer's link to it dropped); it is looked at again
// when it reaches that age. Errors are logged: the hello goes on.
func (c *Chat) recoverLostTurn(ctx context.Context, cv tandem.Conversation) {
	convID := cv.ID
	wait, err := c.lostTurn(ctx, cv)
	if err != nil {
		c.logger.Warn("hello: look for a lost bot turn", "conversation", convID, "err", err)
		return
	}
	if wait <= 0 {
		return
	}
	time.AfterFunc(wait, func() {
		if c.turns.ctx.Err() != nil {
			return // shut down
		}
		ctx, cancel := context.WithTimeout(c.turns.ctx, turnFinishTimeout)
		defer cancel()
		// A new message meanwhile, itself young (wait > 0), is left to
		// its own resend or the next hello.
		cv, err := c.log.Conversation(ctx, convID)
		if err == nil {
			_, err = c.lostTurn(ctx, cv)
		}
		if err != nil {
			c.logger.Warn("look for a lost bot turn", "conversation", convID, "err", err)
		}
	})
}

// lostTurn submits the turn of the last message of conversation cv (as
// just read) when it was lost (see recoverLostTurn), or returns how long
// to wait before that can be told.
func (c *Chat) lostTurn(ctx context.Context, cv tandem.Conversation) (time.Duration, error) {
	convID := cv.ID
	if cv.LastSeq == 0 {
		return 0, nil
	}
	last, err := c.log.Messages(ctx, convID, cv.LastSeq-1, 1)
	if err != nil || len(last) == 0 {
		return 0, err
	}
	m := last[0]
	if !c.mayAnswer(m) || c.turns.has(convID, m.Seq) {
		return 0, nil
	}
	if age := time.Since(m.CreatedAt); age < c.cfg.LostTurnAfter {
		return c.cfg.LostTurnAfter - age, nil
	}
	want, err := c.lostTurnWanted(ctx, m)
	if err != nil || !want {
		return 0, err
	}
	c.logger.Warn("answering a customer message whose bot turn was lost", "conversation", convID, "seq", m.Seq)
	c.metrics.lostTurns.WithLabelValues("hello").Inc()
	if err := c.turns.submit(turnJob{msg: m, requestHuman: m.Kind == "handoff_request"}); err != nil {
		return 0, fmt.Errorf("gateway: queue a lost bot turn: %w", err)
	}
	return 0, nil
}
