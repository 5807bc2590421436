package gateway

import (
	"context"
	"fmt"
	"time"

	"github.com/tandem-chat/tandem"
)

// retentionPage is how many idle conversations a sweep reads at a time.
const retentionPage = 200

// ExpireResult counts what one retention sweep did.
type ExpireResult struct {
	// Erased conversations are gone for good, as after
	// DELETE /v1/conversations/{id}.
	Erased int
	// Kept conversations were idle when the sweep read them but are kept:
	// a ticket of theirs is still open (an agent's conversation is never
	// expired), or a message arrived since (or another node erased it).
	Kept int
}

// ExpireIdle erases every conversation last updated before the cutoff —
// the retention period's automatic counterpart of EraseConversation, with
// the same reach: the log with every message, the handoff's tickets
// (HandoffEraser) and the bot's state (BotForgetter). A conversation with
// an open ticket is kept (HandoffStater; without it, the handoff's
// eraser refusing, ECONFLICT, keeps it before anything is deleted). The
// log's delete comes first and is conditional (ConvLog.EraseIdle), so a
// customer who writes while the sweep runs keeps their conversation with
// its tickets; the tickets go only with the log.
//
// Several nodes may sweep at once: each conversation is erased once, the
// others find it gone. It returns at the first error of the log or the
// handoff (the next sweep starts over); the bot's state failing to go is
// logged and does not stop the sweep.
func (c *Chat) ExpireIdle(ctx context.Context, before time.Time) (ExpireResult, error) {
	var res ExpireResult
	var cur IdleCursor
	for {
		page, err := c.log.IdleConversations(ctx, before, cur, retentionPage)
		if err != nil {
			return res, fmt.Errorf("gateway: retention: %w", err)
		}
		for _, conv := range page {
			cur = IdleCursor{UpdatedAt: conv.UpdatedAt, ID: conv.ID}
			erased, err := c.expire(ctx, conv.ID, before)
			if err != nil {
				return res, fmt.Errorf("gateway: retention: conversation %s: %w", conv.ID, err)
			}
			if erased {
				res.Erased++
				c.metrics.expired.WithLabelValues("erased").Inc()
			} else {
				res.Kept++
				c.metrics.expired.WithLabelValues("kept").Inc()
			}
		}
		if len(page) < retentionPage {
			return res, nil
		}
	}
}

// expire erases one idle conversation unless it has an open ticket or was
// updated since the cutoff; it reports whether it did.
func (c *Chat) expire(ctx context.Context, id string, before time.Time) (bool, error) {
	eraser, canErase := c.handoff.(HandoffEraser)
	if hs, ok := c.handoff.(HandoffStater); ok {
		st, err := hs.HandoffState(ctx, id)
		if err != nil {
			return false, err
		}
		if st.Open {
			return false, nil
		}
	} else if canErase {
		// No way to ask first: the eraser's refusal is the check.
		if _, err := eraser.EraseConversation(ctx, id); err != nil {
			if tandem.ErrorCode(err) == tandem.ECONFLICT {
				return false, nil
			}
			return false, err
		}
	}
	erased, err := c.log.EraseIdle(ctx, id, before)
	if err != nil || !erased {
		return false, err
	}
	if canErase {
		// A ticket opened since the check needs a customer message, which
		// would have kept the log: any ticket left is closed and old.
		if _, err := eraser.EraseConversation(ctx, id); err != nil {
			c.logger.Error("retention: erase an expired conversation's tickets", "conversation", id, "err", err)
		}
	}
	if err := c.forget(ctx, id); err != nil {
		c.logger.Error("retention: forget an expired conversation", "conversation", id, "err", err)
	}
	return true, nil
}

// RetentionInterval is how often RunRetention sweeps for a retention
// period: a 24th of it, between a minute and an hour.
func RetentionInterval(keep time.Duration) time.Duration {
	return min(max(keep/24, time.Minute), time.Hour)
}

// RunRetention erases conversations idle for longer than keep (see
// ExpireIdle) every interval, starting at once, until ctx ends. Each
// sweep's outcome is logged; a failed sweep is retried at the next one.
func (c *Chat) RunRetention(ctx context.Context, keep, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		res, err := c.ExpireIdle(ctx, time.Now().Add(-keep))
		switch {
		case err != nil && ctx.Err() == nil:
			c.logger.Error("retention sweep failed", "erased", res.Erased, "kept", res.Kept, "err", err)
		case res.Erased+res.Kept > 0:
			c.logger.Info("retention sweep", "erased", res.Erased, "kept", res.Kept, "idle_longer_than", keep)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
