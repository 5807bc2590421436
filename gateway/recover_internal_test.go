package gateway

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/tandem-chat/tandem"
)

func TestUnanswered(t *testing.T) {
	cust := func(seq int64) tandem.Message {
		return tandem.Message{Seq: seq, Author: tandem.AuthorCustomer, Kind: "text"}
	}
	bot := func(seq int64, clientID string) tandem.Message {
		return tandem.Message{Seq: seq, Author: tandem.AuthorBot, ClientID: clientID}
	}
	for _, tc := range []struct {
		name string
		log  []tandem.Message
		want []int64
	}{
		{"answered", []tandem.Message{cust(1), bot(2, "bot:1")}, nil},
		{"last unanswered", []tandem.Message{cust(1), bot(2, "bot:1"), cust(3)}, []int64{3}},
		// m2's turn was lost (a full queue); m1's answer came after it.
		{"answer to an earlier one after it", []tandem.Message{cust(1), cust(2), bot(3, "bot:1")}, []int64{2}},
		// The customer moved on: the answer to m3 covers m2.
		{"superseded", []tandem.Message{cust(1), cust(2), bot(3, "bot:1"), cust(4), bot(5, "bot:4")}, nil},
		{"agent took part", []tandem.Message{cust(1), {Seq: 2, Author: tandem.AuthorAgent}}, nil},
		{"system note", []tandem.Message{cust(1), {Seq: 2, Author: tandem.AuthorSystem}, cust(3)}, []int64{3}},
		{"bot message that is no reply", []tandem.Message{cust(1), bot(2, "welcome"), bot(3, "bot:x")}, []int64{1}},
		{"two lost", []tandem.Message{cust(1), bot(2, "bot:1"), cust(3), cust(4)}, []int64{3, 4}},
	} {
		var got []int64
		for _, m := range unanswered(tc.log) {
			got = append(got, m.Seq)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: unanswered = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestLostTurnBehindAnsweredOne: a message whose turn was lost while the
// turn of the message before it ran (its answer is logged after it) is
// found and answered, by its resend and by a look at hello.
func TestLostTurnBehindAnsweredOne(t *testing.T) {
	ctx := context.Background()
	for _, path := range []string{"resend", "hello"} {
		t.Run(path, func(t *testing.T) {
			log := NewMemLog()
			if _, err := log.CreateConversation(ctx, tandem.Conversation{ID: "c1", SiteKey: "s"}); err != nil {
				t.Fatal(err)
			}
			c := turnChat(t, ChatConfig{LostTurnAfter: time.Millisecond}, log, panicBot{})
			old := time.Now().Add(-time.Minute).UTC()
			var m2 tandem.Message
			for _, m := range []tandem.Message{
				{ConversationID: "c1", ClientID: "m1", Author: tandem.AuthorCustomer, Kind: "text", Text: "one", CreatedAt: old},
				{ConversationID: "c1", ClientID: "m2", Author: tandem.AuthorCustomer, Kind: "text", Text: "two", CreatedAt: old},
				{ConversationID: "c1", ClientID: "bot:1", Author: tandem.AuthorBot, Text: "echo: one", CreatedAt: old},
			} {
				stored, _, err := log.Append(ctx, m)
				if err != nil {
					t.Fatal(err)
				}
				if m.ClientID == "m2" {
					m2 = stored
				}
			}
			if path == "resend" {
				ok, err := c.unansweredResend(ctx, m2)
				if err != nil || !ok {
					t.Fatalf("unansweredResend(m2) = %v, %v; want true", ok, err)
				}
				if err := c.turns.submit(turnJob{msg: m2}); err != nil {
					t.Fatal(err)
				}
			} else if _, err := c.lostTurns(ctx, "c1"); err != nil {
				t.Fatal(err)
			}
			awaitTurns(t, c)
			msgs, err := log.Messages(ctx, "c1", 3, 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(msgs) != 1 || msgs[0].Text != "echo: two" || msgs[0].ClientID != "bot:2" {
				t.Fatalf("after the lost turn's recovery the log goes on with %+v, want only the answer to m2", msgs)
			}
			// Answered now: neither path runs it again.
			if ok, err := c.unansweredResend(ctx, m2); err != nil || ok {
				t.Fatalf("unansweredResend(m2) after its answer = %v, %v; want false", ok, err)
			}
			if _, err := c.lostTurns(ctx, "c1"); err != nil || c.PendingTurns() != 0 {
				t.Fatalf("lostTurns after the answer: %v, %d turns pending", err, c.PendingTurns())
			}
		})
	}
}

// TestLostTurnsLeftToPeople: an unanswered customer message in a
// conversation an agent has, or queued when the handoff's state is
// unknown (it may have been written to an agent), is not handed to the
// bot however old it is; neither is one without a bot, or one too old.
func TestLostTurnsLeftToPeople(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		mode tandem.Mode
		bot  Bot
		age  time.Duration
	}{
		{"human", tandem.ModeHuman, panicBot{}, time.Minute},
		{"queued, state unknown", tandem.ModeQueued, panicBot{}, time.Minute},
		{"no bot", tandem.ModeBot, nil, time.Minute},
		{"too old", tandem.ModeBot, panicBot{}, 25 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := NewMemLog()
			if _, err := log.CreateConversation(ctx, tandem.Conversation{ID: "c1", SiteKey: "s"}); err != nil {
				t.Fatal(err)
			}
			if _, err := log.SetMode(ctx, "c1", tc.mode, ""); err != nil {
				t.Fatal(err)
			}
			c := turnChat(t, ChatConfig{LostTurnAfter: time.Millisecond}, log, tc.bot)
			m, _, err := log.Append(ctx, tandem.Message{ConversationID: "c1", ClientID: "m1", Author: tandem.AuthorCustomer,
				Kind: "text", Text: "anyone?", CreatedAt: time.Now().Add(-tc.age).UTC()})
			if err != nil {
				t.Fatal(err)
			}
			if wait, err := c.lostTurns(ctx, "c1"); err != nil || wait != 0 || c.PendingTurns() != 0 {
				t.Fatalf("lostTurns = %v, %v with %d turns pending; want nothing done", wait, err, c.PendingTurns())
			}
			if ok, err := c.unansweredResend(ctx, m); err != nil || ok {
				t.Fatalf("unansweredResend = %v, %v; want false", ok, err)
			}
		})
	}
}

// stuckBot ignores its context and answers only when released.
type stuckBot struct {
	entered chan struct{}
	release chan struct{}
}

func (b stuckBot) Respond(context.Context, tandem.Turn) (tandem.Reply, error) {
	b.entered <- struct{}{}
	<-b.release
	return tandem.Reply{Kind: tandem.ReplyAnswer, Text: "late"}, nil
}

// TestShutdownDoesNotWaitForStuckBot: a shutdown that runs out of time
// cancels the bot turns and returns within a moment even when the bot
// ignores its context (the turn is answered at the customer's next
// hello); it used to wait for the bot for as long as it took.
func TestShutdownDoesNotWaitForStuckBot(t *testing.T) {
	ctx := context.Background()
	log := NewMemLog()
	if _, err := log.CreateConversation(ctx, tandem.Conversation{ID: "c1", SiteKey: "s"}); err != nil {
		t.Fatal(err)
	}
	bot := stuckBot{entered: make(chan struct{}, 1), release: make(chan struct{})}
	c := turnChat(t, ChatConfig{}, log, bot)
	t.Cleanup(func() { close(bot.release) }) // before turnChat's own cleanup
	m, _, err := log.Append(ctx, tandem.Message{ConversationID: "c1", Author: tandem.AuthorCustomer, Kind: "text", Text: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.turns.submit(turnJob{msg: m}); err != nil {
		t.Fatal(err)
	}
	<-bot.entered
	done := make(chan error, 1)
	go func() {
		sctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		done <- c.Shutdown(sctx)
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Shutdown = nil, want an error naming the turns cut short")
		}
	case <-time.After(20 * time.Second): // a hang guard
		t.Fatal("Shutdown waited for a bot that ignores its context")
	}
}
