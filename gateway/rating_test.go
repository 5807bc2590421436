package gateway_test

import (
	"context"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/gateway"
	"github.com/tandem-chat/tandem/internal/browsertest"
)

// TestRating: a customer rates a conversation an agent closed, once: the
// rating is logged as their message of kind "rating" with the score in
// its data, acknowledged, shown to followers, and not answered by the bot.
// A bad score is invalid; a rating of a conversation that is not closed,
// a second rating, or another score under a used client_id is a conflict;
// a resend is acknowledged again.
func TestRating(t *testing.T) {
	ctx := context.Background()
	ts := startServer(t, serverOpts{})
	s := ts.session(t, nil)
	ws := ts.connect(t, s.Token, 0)
	rate := func(clientID, score string) frame {
		t.Helper()
		ws.send(map[string]any{"type": "rating", "client_id": clientID, "score": score})
		f, _ := ws.until(func(f frame) bool { return f.Type == "ack" || f.Type == "error" })
		return f
	}

	if f := rate("r0", "good"); f.Code != "conflict" {
		t.Fatalf("rating a conversation with the bot: %s, want conflict", f.raw)
	}
	// An agent answered, then closed the conversation.
	if _, _, err := ts.Chat.PostMessage(ctx, tandem.Message{ConversationID: s.ConversationID, ClientID: "agent:a1", Author: tandem.AuthorAgent,
		AuthorID: "agent-7", AuthorName: "Sam", Text: "Sorted!"}); err != nil {
		t.Fatal(err)
	}
	if err := ts.Chat.HandoffStatus(ctx, s.ConversationID, gateway.HandoffStatus{Status: gateway.HandoffClosed}); err != nil {
		t.Fatal(err)
	}
	if f := rate("r1", "excellent"); f.Code != "invalid" {
		t.Fatalf("bad score: %s, want invalid", f.raw)
	}
	ack := rate("r1", "good")
	if ack.Type != "ack" || ack.Duplicate {
		t.Fatalf("rating: %s, want an ack", ack.raw)
	}
	f, _ := ws.until(func(f frame) bool { return f.Type == "message" && f.msg(t).Seq == ack.Seq })
	if m := f.msg(t); m.Kind != "rating" || m.Author != tandem.AuthorCustomer || m.Data["score"] != "good" || m.Text != "Rated this conversation: 👍 Good" {
		t.Fatalf("rating message %+v", m)
	}
	if f := rate("r1", "good"); f.Type != "ack" || !f.Duplicate || f.Seq != ack.Seq {
		t.Fatalf("resent rating: %s, want a duplicate ack of seq %d", f.raw, ack.Seq)
	}
	// Counted once, for the agent who wrote last.
	if _, body := ts.get(t, "/metrics", ""); !strings.Contains(body, `tandem_conversation_ratings_total{agent="agent-7",score="good"} 1`) {
		t.Fatalf("ratings metric not counted once for agent-7:\n%s", grepLines(body, "tandem_conversation_ratings_total"))
	}
	if f := rate("r1", "bad"); f.Code != "conflict" {
		t.Fatalf("another score under r1: %s, want conflict", f.raw)
	}
	if f := rate("r2", "bad"); f.Code != "conflict" {
		t.Fatalf("a second rating: %s, want conflict", f.raw)
	}
	// The bot answers the next message (which reopens the conversation),
	// not the rating; the reopened conversation cannot be rated.
	ws.send(map[string]any{"type": "message", "client_id": "m2", "text": "thanks"})
	f, _ = ws.until(messageFrom(tandem.AuthorBot))
	if got := f.msg(t); got.Text != "echo: thanks" {
		t.Fatalf("the bot's first message is %q, want the answer to the next message", got.Text)
	}
	if f := rate("r3", "good"); f.Code != "conflict" {
		t.Fatalf("rating the reopened conversation: %s, want conflict", f.raw)
	}
	// A resend of the rating that went through (another tab wrote since):
	// still its duplicate ack, not a conflict the widget shows as failed.
	if f := rate("r1", "good"); f.Type != "ack" || !f.Duplicate || f.Seq != ack.Seq {
		t.Fatalf("resent rating after the reopening: %s, want a duplicate ack of seq %d", f.raw, ack.Seq)
	}
	msgs, err := ts.Log.Messages(ctx, s.ConversationID, 0, 20)
	if err != nil {
		t.Fatal(err)
	}
	ratings := 0
	for _, m := range msgs {
		if m.Kind == "rating" {
			ratings++
		}
	}
	if ratings != 1 {
		t.Fatalf("%d ratings logged, want 1: %+v", ratings, msgs)
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// helloFromWidget has the widget's customer say hello and get the answer
// (with nothing left unsent); it returns the conversation's id.
func helloFromWidget(t *testing.T, ctx context.Context) string {
	t.Helper()
	sendFromWidget(t, ctx, "hello")
	waitFor(t, ctx, "the answer", `document.getElementById("tandem-log").textContent.includes("echo: hello") && `+noPendingLeft)
	return browsertest.Eval[string](t, ctx, `window.__tandemWidget.state().conversationId`)
}

// closeWidgetConversation has the widget's customer say hello and get the
// answer, then closes the conversation as an agent does; it returns the
// conversation's id.
func closeWidgetConversation(t *testing.T, ts *testServer, ctx context.Context) string {
	t.Helper()
	conv := helloFromWidget(t, ctx)
	if err := ts.Chat.HandoffStatus(context.Background(), conv, gateway.HandoffStatus{Status: gateway.HandoffClosed}); err != nil {
		t.Fatal(err)
	}
	return conv
}

// When an agent closes the conversation the widget asks how it went; the
// customer's choice is sent, logged and shown in the conversation, and the
// prompt goes.
func TestBrowserWidgetRatesClosedConversation(t *testing.T) {
	ts, ctx := onlineWidget(t, serverOpts{})
	conv := closeWidgetConversation(t, ts, ctx)
	waitFor(t, ctx, "the rating prompt", `document.getElementById("tandem-quick").getAttribute("aria-labelledby") === "tandem-rate-label" && document.querySelectorAll("#tandem-quick button.tandem-rate").length === 2`)
	browsertest.Do(t, ctx, chromedp.Click(chromedp.CSS(`#tandem-quick button[data-score="bad"]`)))
	waitFor(t, ctx, "the rating in the log, the prompt gone",
		`Array.from(document.querySelectorAll('#tandem-log .tandem-msg[data-author="customer"][data-seq]')).some(e => e.textContent.includes("👎 Not good")) && document.querySelectorAll("#tandem-quick button").length === 0 && `+noPendingLeft)
	msgs, err := ts.Log.Messages(context.Background(), conv, 0, 20)
	if err != nil {
		t.Fatal(err)
	}
	last := msgs[len(msgs)-1]
	if last.Kind != "rating" || last.Data["score"] != "bad" {
		t.Fatalf("last logged message %+v, want the rating", last)
	}
}
