package gateway

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
	log := NewMemLog()
	// The conversation exists, so turn 1 is held by the bot (a turn of an
	// unknown conversation ends at once, and the queue could drain before
	// the last check).
	if _, err := log.CreateConversation(context.Background(), tandem.Conversation{ID: "c1", SiteKey: "s"}); err != nil {
		t.Fatal(err)
	}
	c := turnChat(t, ChatConfig{MaxPendingTurns: 2}, log, bot)
	defer close(bot.release) // before turnChat's Shutdown: the held turns end
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

// orderBot records the seqs it answers; the first turn waits for release.
type orderBot struct {
	release chan struct{}
	mu      sync.Mutex
	seqs    []int64
	done    chan struct{} // gets one value per turn
}

func (b *orderBot) Respond(ctx context.Context, turn tandem.Turn) (tandem.Reply, error) {
	b.mu.Lock()
	first := len(b.seqs) == 0
	b.seqs = append(b.seqs, turn.MessageSeq)
	b.mu.Unlock()
	if first {
		select {
		case <-b.release:
		case <-ctx.Done():
		}
	}
	b.done <- struct{}{}
	return tandem.Reply{}, nil
}

// TestTurnsRunInSeqOrder: two tabs store messages 2 and 3 at once and the
// one with 3 submits its turn first; the bot must still answer 2 before 3
// (it answered in submit order: replies out of order, and a bot with
// conversation state saw the customer's messages swapped).
func TestTurnsRunInSeqOrder(t *testing.T) {
	bot := &orderBot{release: make(chan struct{}), done: make(chan struct{}, 8)}
	log := NewMemLog()
	ctx := context.Background()
	if _, err := log.CreateConversation(ctx, tandem.Conversation{ID: "c1", SiteKey: "s"}); err != nil {
		t.Fatal(err)
	}
	c := turnChat(t, ChatConfig{}, log, bot)
	var msgs []tandem.Message
	for _, text := range []string{"one", "two", "three"} {
		m, _, err := log.Append(ctx, tandem.Message{ConversationID: "c1", Author: tandem.AuthorCustomer, Text: text})
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	for _, i := range []int{0, 2, 1} { // seq 1 runs; 3 is submitted before 2
		if err := c.turns.submit(turnJob{msg: msgs[i]}); err != nil {
			t.Fatal(err)
		}
	}
	close(bot.release)
	for range 3 {
		select {
		case <-bot.done:
		case <-time.After(10 * time.Second): // a hang guard
			t.Fatal("turns did not run")
		}
	}
	bot.mu.Lock()
	defer bot.mu.Unlock()
	if want := []int64{1, 2, 3}; !slices.Equal(bot.seqs, want) {
		t.Fatalf("turns ran for seqs %v, want %v", bot.seqs, want)
	}
}

// panicBot panics on "boom" and echoes anything else.
type panicBot struct{}

func (panicBot) Respond(_ context.Context, turn tandem.Turn) (tandem.Reply, error) {
	if turn.Text == "boom" {
		panic("index out of range in the model")
	}
	return tandem.Reply{Kind: tandem.ReplyAnswer, Text: "echo: " + turn.Text}, nil
}

// TestBotPanicIsATurnFailure: a bot that panics answers that turn with the
// fallback (as for a bot error) and the node keeps serving; the panic used
// to end the process, dropping every connection on the node.
func TestBotPanicIsATurnFailure(t *testing.T) {
	log := NewMemLog()
	ctx := context.Background()
	if _, err := log.CreateConversation(ctx, tandem.Conversation{ID: "c1", SiteKey: "s"}); err != nil {
		t.Fatal(err)
	}
	c := turnChat(t, ChatConfig{}, log, panicBot{})
	seqs := map[string]int64{}
	for _, text := range []string{"boom", "still there?"} {
		m, _, err := log.Append(ctx, tandem.Message{ConversationID: "c1", Author: tandem.AuthorCustomer, Text: text})
		if err != nil {
			t.Fatal(err)
		}
		seqs[text] = m.Seq
		if err := c.turns.submit(turnJob{msg: m}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second) // a hang guard
	for {
		msgs, err := log.Messages(ctx, "c1", 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 4 {
			// The replies, by the message they answer (the first turn may
			// run before the second message is stored).
			replies := map[string]tandem.Message{}
			for _, m := range msgs {
				if m.Author == tandem.AuthorBot {
					replies[m.ClientID] = m
				}
			}
			boom, still := replies[fmt.Sprintf("bot:%d", seqs["boom"])], replies[fmt.Sprintf("bot:%d", seqs["still there?"])]
			if boom.Data["reply_kind"] != string(tandem.ReplyFallback) || still.Text != "echo: still there?" {
				t.Fatalf("log after a bot panic: %+v", msgs)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("turns not answered: %+v", msgs)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// blinkLog fails the next Conversation read once armed (a database blip).
type blinkLog struct {
	*MemLog
	armed atomic.Bool
}

func (l *blinkLog) Conversation(ctx context.Context, id string) (tandem.Conversation, error) {
	if l.armed.CompareAndSwap(true, false) {
		return tandem.Conversation{}, errors.New("pq: connection reset by peer")
	}
	return l.MemLog.Conversation(ctx, id)
}

// TestTurnSurvivesStoreBlip: one failed conversation read at the start of
// a turn (a database blip) does not cost the customer their answer; the
// turn used to end there, and the stored, acknowledged message was never
// answered (its resend is a duplicate, which is not answered again).
func TestTurnSurvivesStoreBlip(t *testing.T) {
	log := &blinkLog{MemLog: NewMemLog()}
	ctx := context.Background()
	if _, err := log.CreateConversation(ctx, tandem.Conversation{ID: "c1", SiteKey: "s"}); err != nil {
		t.Fatal(err)
	}
	c := turnChat(t, ChatConfig{}, log, panicBot{})
	m, _, err := log.Append(ctx, tandem.Message{ConversationID: "c1", Author: tandem.AuthorCustomer, Text: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	log.armed.Store(true)
	if err := c.turns.submit(turnJob{msg: m}); err != nil {
		t.Fatal(err)
	}
	awaitTurns(t, c)
	msgs, err := log.Messages(ctx, "c1", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 || msgs[1].Text != "echo: hi" {
		t.Fatalf("log after a blip at the turn's start: %+v", msgs)
	}
}

// blinkAppendLog fails the next Append once armed (a database blip).
type blinkAppendLog struct {
	*MemLog
	armed atomic.Bool
}

func (l *blinkAppendLog) Append(ctx context.Context, m tandem.Message) (tandem.Message, bool, error) {
	if l.armed.CompareAndSwap(true, false) {
		return m, false, errors.New("pq: connection reset by peer")
	}
	return l.MemLog.Append(ctx, m)
}

// armingBot arms its log's blip, then answers.
type armingBot struct{ log *blinkAppendLog }

func (b armingBot) Respond(_ context.Context, turn tandem.Turn) (tandem.Reply, error) {
	b.log.armed.Store(true)
	return tandem.Reply{Kind: tandem.ReplyAnswer, Text: "echo: " + turn.Text}, nil
}

// TestReplySurvivesStoreBlip: one failed append of the bot's answer (a
// database blip) does not lose the answer: the append is idempotent
// (bot:<seq>) and is tried again; the answer used to be dropped.
func TestReplySurvivesStoreBlip(t *testing.T) {
	log := &blinkAppendLog{MemLog: NewMemLog()}
	ctx := context.Background()
	if _, err := log.CreateConversation(ctx, tandem.Conversation{ID: "c1", SiteKey: "s"}); err != nil {
		t.Fatal(err)
	}
	c := turnChat(t, ChatConfig{}, log, armingBot{log: log})
	m, _, err := log.Append(ctx, tandem.Message{ConversationID: "c1", Author: tandem.AuthorCustomer, Text: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.turns.submit(turnJob{msg: m}); err != nil {
		t.Fatal(err)
	}
	awaitTurns(t, c)
	msgs, err := log.Messages(ctx, "c1", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 || msgs[1].Text != "echo: hi" {
		t.Fatalf("log after a blip storing the answer: %+v", msgs)
	}
}

// turnChat is a Chat over log and bot with cfg, shut down when the test ends.
func turnChat(t *testing.T, cfg ChatConfig, log ConvLog, bot Bot) *Chat {
	t.Helper()
	auth, err := NewAuth([]byte(strings.Repeat("x", 32)), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewChat(cfg, ChatDeps{Log: log, Bus: NewLocalBus(), Auth: auth, Sites: StaticSites{}, Bot: bot})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Shutdown(context.Background()) })
	return c
}

// awaitTurns waits until c has no bot turn pending (with a hang guard).
func awaitTurns(t *testing.T, c *Chat) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for c.PendingTurns() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the turn did not end")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
