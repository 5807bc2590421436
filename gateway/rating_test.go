package gateway_test

import (
	"context"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/gateway"
	"github.com/tandem-chat/tandem/internal/browsertest"
)

// TestRating: a customer's rating is logged once as their message of kind
// "rating" with the score in its data, acknowledged, shown to followers,
// and not answered by the bot; a bad score is invalid, and another score
// under a used client_id a conflict.
func TestRating(t *testing.T) {
	ts := startServer(t, serverOpts{})
	s := ts.session(t, nil)
	ws := ts.connect(t, s.Token, 0)

	ws.send(map[string]any{"type": "rating", "client_id": "r1", "score": "excellent"})
	if f := ws.next(); f.Type != "error" || f.Code != "invalid" {
		t.Fatalf("bad score: %s, want invalid", f.raw)
	}
	ws.send(map[string]any{"type": "rating", "client_id": "r1", "score": "good"})
	f, skipped := ws.until(isType("ack"))
	if f.Seq != 1 || f.Duplicate {
		t.Fatalf("rating ack %s", f.raw)
	}
	var m tandem.Message
	for _, x := range skipped {
		if x.Type == "message" {
			m = x.msg(t)
		}
	}
	if m.Seq == 0 { // the message frame may come after the ack
		x, _ := ws.until(isType("message"))
		m = x.msg(t)
	}
	if m.Kind != "rating" || m.Author != tandem.AuthorCustomer || m.Data["score"] != "good" || m.Text != "Rated this conversation: 👍 Good" {
		t.Fatalf("rating message %+v", m)
	}
	ws.send(map[string]any{"type": "rating", "client_id": "r1", "score": "good"})
	if f, _ := ws.until(isType("ack")); !f.Duplicate || f.Seq != 1 {
		t.Fatalf("resent rating ack %s, want a duplicate of seq 1", f.raw)
	}
	ws.send(map[string]any{"type": "rating", "client_id": "r1", "score": "bad"})
	if f, _ := ws.until(isType("error")); f.Code != "conflict" {
		t.Fatalf("another score under r1: %s, want conflict", f.raw)
	}
	// The bot answers the next message, not the rating.
	ws.send(map[string]any{"type": "message", "client_id": "m2", "text": "thanks"})
	f, _ = ws.until(messageFrom(tandem.AuthorBot))
	if got := f.msg(t); got.Text != "echo: thanks" {
		t.Fatalf("the bot's first message is %q, want the answer to the next message", got.Text)
	}
	msgs, err := ts.Log.Messages(context.Background(), s.ConversationID, 0, 10)
	if err != nil || len(msgs) != 3 {
		t.Fatalf("log = %+v, %v; want the rating, the message and its answer", msgs, err)
	}
}

// closeWidgetConversation has the widget's customer say hello and get the
// answer, then closes the conversation as an agent does; it returns the
// conversation's id.
func closeWidgetConversation(t *testing.T, ts *testServer, ctx context.Context) string {
	t.Helper()
	sendFromWidget(t, ctx, "hello")
	waitFor(t, ctx, "the answer", `document.getElementById("tandem-log").textContent.includes("echo: hello") && `+noPendingLeft)
	conv := browsertest.Eval[string](t, ctx, `window.__tandemWidget.state().conversationId`)
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
	waitFor(t, ctx, "the rating prompt", `document.getElementById("tandem-quick").getAttribute("aria-label") === "Rate this conversation" && document.querySelectorAll("#tandem-quick button.tandem-rate").length === 2`)
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
