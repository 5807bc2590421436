package gateway

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tandem-chat/tandem"
)

// A customer message is stored and acknowledged before its bot turn runs,
// so a turn can be lost while the message is safe: the store committed but
// its reply was lost (the client is told to try again, and its resend is a
// duplicate), the node stopped between the append and the turn, or the
// turn could not be queued. Two paths find such a message and answer it:
// its resend (unansweredResend), and the customer's next hello
// (recoverLostTurns).
//
// A customer message counts as answered (unanswered) when the log after it
// holds the bot's reply to it or to a later customer message (client id
// bot:<seq>, seq at least its own), or any agent or system message (a
// person took part, or the conversation changed hands: what the bot
// should do is no longer clear). Only conversations the bot answers now
// qualify (lostTurnWanted); a message older than lostTurnMaxAge is not
// answered late.

// recoverLookahead bounds the log read of both paths: how far past a
// resent message unansweredResend looks for its answer, and how many of
// the last messages a hello looks at.
const recoverLookahead = 50

// lostTurnMaxAge: a customer message older than this is not answered late.
const lostTurnMaxAge = 24 * time.Hour

// unansweredResend reports whether m, a customer message sent again under
// its client id (a duplicate), should now get the bot turn it never had:
// nothing answered it, no turn for it is queued or running on this node,
// and the bot answers the conversation now. A turn still running on
// another node (its client's link dropped between the append and the
// ack) then runs twice; its reply is stored once (its client id is
// bot:<seq>).
func (c *Chat) unansweredResend(ctx context.Context, m tandem.Message) (bool, error) {
	if !c.mayAnswer(m) || c.turns.has(m.ConversationID, m.Seq) {
		return false, nil
	}
	later, err := c.log.Messages(ctx, m.ConversationID, m.Seq, recoverLookahead)
	if err != nil {
		return false, fmt.Errorf("gateway: read the messages after a resent one: %w", err)
	}
	if len(later) == recoverLookahead || len(unanswered(append([]tandem.Message{m}, later...))) == 0 {
		return false, nil
	}
	return c.lostTurnWanted(ctx, m.ConversationID)
}

// mayAnswer reports whether m is a customer message a bot turn could
// still answer.
func (c *Chat) mayAnswer(m tandem.Message) bool {
	if c.bot == nil || m.Author != tandem.AuthorCustomer || time.Since(m.CreatedAt) > lostTurnMaxAge {
		return false
	}
	return m.Kind == "text" || m.Kind == "" || m.Kind == "handoff_request"
}

// unanswered returns the customer messages of msgs (ascending seqs, the
// end of a conversation's log) that nothing after them answered.
func unanswered(msgs []tandem.Message) []tandem.Message {
	var out []tandem.Message
	for _, m := range msgs {
		switch m.Author {
		case tandem.AuthorCustomer:
			out = append(out, m)
		case tandem.AuthorAgent, tandem.AuthorSystem:
			out = out[:0]
		case tandem.AuthorBot:
			seq, ok := strings.CutPrefix(m.ClientID, "bot:")
			if !ok {
				continue
			}
			n, err := strconv.ParseInt(seq, 10, 64)
			if err != nil {
				continue
			}
			i := 0
			for i < len(out) && out[i].Seq <= n {
				i++
			}
			out = out[i:]
		}
	}
	return out
}

// lostTurnWanted reports whether the bot answers the conversation now, for
// a message it never answered: it is with the bot, or queued with no
// agent having taken part (HandoffState known, not held). Unlike a new
// message's (botAnswers), an unknown handoff state is a no: the message
// may have been written to an agent.
func (c *Chat) lostTurnWanted(ctx context.Context, convID string) (bool, error) {
	cv, err := c.log.Conversation(ctx, convID)
	if err != nil {
		return false, fmt.Errorf("gateway: read the conversation of an unanswered message: %w", err)
	}
	cv, st, known := c.reconcile(ctx, cv)
	switch cv.Mode {
	case tandem.ModeBot, tandem.ModeClosed:
		return true, nil
	case tandem.ModeQueued:
		return known && !st.Held, nil
	}
	return false, nil
}

// recoverLostTurns runs after a customer's hello, off the connection's
// goroutine: the unanswered customer messages at the end of the
// conversation with no turn queued or running on this node lost their
// turns, and they run now. While the newest of them is younger than
// LostTurnAfter its turn may still be running on another node (this
// customer's link to it dropped), so the look is taken again when it
// reaches that age. One look per conversation is pending at a time.
func (c *Chat) recoverLostTurns(convID string) {
	c.turns.later(convID, 0, func(ctx context.Context) { c.lookForLostTurns(ctx, convID) })
}

func (c *Chat) lookForLostTurns(ctx context.Context, convID string) {
	wait, err := c.lostTurns(ctx, convID)
	if err != nil {
		if tandem.ErrorCode(err) != tandem.ENOTFOUND { // erased meanwhile: nothing to answer
			c.logger.Warn("look for lost bot turns", "conversation", convID, "err", err)
		}
		return
	}
	if wait > 0 {
		c.turns.later(convID, wait, func(ctx context.Context) {
			// A newer message meanwhile, itself young, is left to its own
			// resend or the next hello.
			if _, err := c.lostTurns(ctx, convID); err != nil && tandem.ErrorCode(err) != tandem.ENOTFOUND {
				c.logger.Warn("look for lost bot turns", "conversation", convID, "err", err)
			}
		})
	}
}

// lostTurns submits the turns of the conversation's unanswered customer
// messages when they were lost, or returns how long to wait before that
// can be told.
func (c *Chat) lostTurns(ctx context.Context, convID string) (time.Duration, error) {
	cv, err := c.log.Conversation(ctx, convID)
	if err != nil || cv.LastSeq == 0 {
		return 0, err
	}
	tail, err := c.log.Messages(ctx, convID, max(cv.LastSeq-recoverLookahead, 0), recoverLookahead)
	if err != nil {
		return 0, err
	}
	var lost []tandem.Message
	for _, m := range unanswered(tail) {
		if c.mayAnswer(m) && !c.turns.has(convID, m.Seq) {
			lost = append(lost, m)
		}
	}
	if len(lost) == 0 {
		return 0, nil
	}
	if age := time.Since(lost[len(lost)-1].CreatedAt); age < c.cfg.LostTurnAfter {
		return c.cfg.LostTurnAfter - age, nil
	}
	if want, err := c.lostTurnWanted(ctx, convID); err != nil || !want {
		return 0, err
	}
	for _, m := range lost {
		if err := c.turns.submit(turnJob{msg: m, requestHuman: m.Kind == "handoff_request"}); err != nil {
			return 0, fmt.Errorf("gateway: queue a lost bot turn: %w", err)
		}
		c.logger.Warn("answering a customer message whose bot turn was lost", "conversation", convID, "seq", m.Seq, "found_by", "hello")
		c.metrics.lostTurns.WithLabelValues("hello").Inc()
	}
	return 0, nil
}
