package gateway

import (
	"context"
	"strings"
	"testing"

	"github.com/tandem-chat/tandem"
)

// blockBot holds every turn until release is closed.
type blockBot struct{ release chan struct{} }

func (b blockBot) Respond(ctx context.Context, _ tandem.Turn) (tandem.Reply, error) {
	select {
	case <-b.release:
	case <-ctx.Done():
	}
	return tandem.Reply{}, nil
}

// TestAdmittedTurnsAreQueued: two tabs may both pass the room check for
// the last place in a conversation's turn queue before either stores its
// message; both stored messages must get their turn (the second was
// dropped: stored and acknowledged, never answered or escalated).
func TestAdmittedTurnsAreQueued(t *testing.T) {
	bot := blockBot{release: make(chan struct{})}
	auth, err := NewAuth([]byte(strings.Repeat("x", 32)), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewChat(ChatConfig{MaxPendingTurns: 2}, ChatDeps{Log: NewMemLog(), Bus: NewLocalBus(), Auth: auth, Sites: StaticSites{}, Bot: bot})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { close(bot.release); _ = c.Shutdown(context.Background()) }()
	job := func(seq int64) turnJob {
		return turnJob{msg: tandem.Message{ConversationID: "c1", Seq: seq, Text: "hi"}}
	}
	if err := c.turns.submit(job(1)); err != nil { // one queued
		t.Fatal(err)
	}
	// Two tabs find one place left, and both are admitted.
	if err := c.turns.room("c1"); err != nil {
		t.Fatal(err)
	}
	if err := c.turns.room("c1"); err != nil {
		t.Fatal(err)
	}
	for _, seq := range []int64{2, 3} {
		if err := c.turns.submit(job(seq)); err != nil {
			t.Fatalf("admitted turn %d dropped: %v", seq, err)
		}
	}
	// New messages are refused before they are stored.
	if err := c.turns.room("c1"); tandem.ErrorCode(err) != tandem.EOVERLOADED {
		t.Fatalf("room with a full queue: %v", err)
	}
}
