package console_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/internal/browsertest"
)

// postCustomer stores customer messages from..to in the conversation
// (straight into the chat, past the widget's rate limit) as "line <i>".
func postCustomer(t *testing.T, e *env, conv string, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		if _, _, err := e.Chat.PostMessage(context.Background(), tandem.Message{ConversationID: conv, ClientID: fmt.Sprintf("c-%d", i),
			Author: tandem.AuthorCustomer, Text: fmt.Sprintf("line %d", i), Kind: "text"}); err != nil {
			t.Fatal(err)
		}
	}
}

func shownLine(i int) string {
	return fmt.Sprintf(`Array.from(document.querySelectorAll('#chat-log .msg[data-author="customer"] .text')).some(e => e.textContent === %q)`, fmt.Sprintf("line %d", i))
}

const atBottom = `(l => l.scrollHeight - l.scrollTop - l.clientHeight < 4)(document.getElementById("chat-log"))`

// The transcript follows new messages while the agent is at its bottom;
// one who scrolled up to read stays where they are; their own replies
// always bring them down.
func TestBrowserConsoleScrollFollowsOnlyAtBottom(t *testing.T) {
	e, _ := newQuickNode(t)
	p := browsertest.NewHoleProxy(t, e.URL)
	ctx, _, conv := startConsoleChat(t, e, p, "Ann")

	postCustomer(t, e, conv, 1, 60)
	poll(t, ctx, "the transcript", shownLine(60))
	if !browsertest.Eval[bool](t, ctx, `(l => l.scrollHeight > l.clientHeight + 100)(document.getElementById("chat-log"))`) {
		t.Fatal("the transcript does not overflow; the test needs a longer one")
	}
	poll(t, ctx, "the transcript at its bottom", atBottom)

	browsertest.Eval[bool](t, ctx, `(document.getElementById("chat-log").scrollTop = 0) === 0`)
	postCustomer(t, e, conv, 61, 61)
	poll(t, ctx, "the new message", shownLine(61))
	if got := browsertest.Eval[float64](t, ctx, `document.getElementById("chat-log").scrollTop`); got != 0 {
		t.Fatalf("a new message scrolled the transcript the agent was reading (scrollTop %v)", got)
	}

	typeReply(t, ctx, "my own reply")
	poll(t, ctx, "the reply", consoleShows("my own reply"))
	poll(t, ctx, "the transcript brought down by the agent's reply", atBottom)

	postCustomer(t, e, conv, 62, 62)
	poll(t, ctx, "the next message", shownLine(62))
	poll(t, ctx, "the transcript following at its bottom", atBottom)
}

// A long conversation renders and keeps only its latest 500 messages.
func TestBrowserConsoleTranscriptBounded(t *testing.T) {
	e, _ := newQuickNode(t)
	p := browsertest.NewHoleProxy(t, e.URL)
	ctx, _, conv := startConsoleChat(t, e, p, "Ann")

	postCustomer(t, e, conv, 1, 560)
	poll(t, ctx, "the transcript", shownLine(560))
	if n := browsertest.Eval[int](t, ctx, `document.querySelectorAll("#chat-log .msg[data-seq]").length`); n != 500 {
		t.Fatalf("the transcript renders %d messages, want the latest 500", n)
	}
	if n := browsertest.Eval[int](t, ctx, fmt.Sprintf(`window.__tandemConsole.messageCount(%q)`, conv)); n != 500 {
		t.Fatalf("the console keeps %d messages of the conversation, want 500", n)
	}
	if !browsertest.Eval[bool](t, ctx, shownLine(560)+` && !(`+shownLine(60)+`)`) {
		t.Fatal("the transcript does not show the latest messages")
	}
}

// What the console knows of a conversation that left it (its transcript,
// its note) is forgotten a while later, once another one is shown; the
// agent's own conversations are kept.
func TestBrowserConsoleForgetsClosedConversations(t *testing.T) {
	e, _ := newQuickNode(t)
	p := browsertest.NewHoleProxy(t, e.URL)
	ctx, _, convA := startConsoleChat(t, e, p, "Ann")
	_, convB := offerAndAccept(t, e, ctx)
	// "A while" (minutes) passes at once: long timers fire after 20 ms.
	browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](`(() => { const st = window.setTimeout; window.setTimeout = (f, d, ...a) => st(f, d >= 60000 ? 20 : d, ...a); })()`))

	selectConv(t, ctx, convA)
	browsertest.Do(t, ctx, chromedp.Click(chromedp.ID("resolve-btn")))
	poll(t, ctx, "the conversation closed", `document.getElementById("conv-state").textContent === "Closed."`)
	selectConv(t, ctx, convB)
	poll(t, ctx, "the closed conversation forgotten", fmt.Sprintf(`!window.__tandemConsole.knows(%q)`, convA))
	if !browsertest.Eval[bool](t, ctx, fmt.Sprintf(`window.__tandemConsole.knows(%q) && window.__tandemConsole.messageCount(%q) > 0`, convB, convB)) {
		t.Fatal("the agent's own conversation was forgotten")
	}
}
