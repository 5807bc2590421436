package console_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/gateway"
	"github.com/tandem-chat/tandem/internal/browsertest"
)

// Each conversation keeps its own unsent text: a draft written for one
// customer and left in the composer is not sent to the next customer the
// agent clicks on (it was: the composer was shared), and it is back when
// the agent returns to its conversation. A conversation whose customer
// wrote last while another one is shown is marked in the list and counted
// in the page title.
func TestBrowserConsoleDraftsAndWaitingChats(t *testing.T) {
	log := gateway.NewMemLog()
	e := newNode(t, nodeOpts{log: log, heartbeatTimeout: 30 * time.Minute})
	p := browsertest.NewHoleProxy(t, e.URL)
	ctx, custA, convA := startConsoleChat(t, e, p, "Ann")
	custB, convB := offerAndAccept(t, e, ctx)

	selectConv(t, ctx, convA)
	browsertest.Do(t, ctx, chromedp.SendKeys(chromedp.ID("composer-input"), "draft for A"))
	selectConv(t, ctx, convB)
	if got := browsertest.Eval[string](t, ctx, `document.getElementById("composer-input").value`); got != "" {
		t.Fatalf("B's composer holds %q", got)
	}
	typeReply(t, ctx, "for B")
	waitFrame(t, custB, "B's reply", messageFrom(tandem.AuthorAgent, "for B"))
	poll(t, ctx, "the reply acknowledged", consoleShows("for B"))
	selectConv(t, ctx, convA)
	if got := browsertest.Eval[string](t, ctx, `document.getElementById("composer-input").value`); got != "draft for A" {
		t.Fatalf("A's composer holds %q, want its draft", got)
	}
	if got := agentTexts(t, log, convA); len(got) != 0 {
		t.Fatalf("customer A got %q", got)
	}

	custB.send(map[string]any{"type": "message", "client_id": "b1", "text": "are you there?"})
	custB.send(map[string]any{"type": "message", "client_id": "b2", "text": "hello?"})
	poll(t, ctx, "B marked as waiting", fmt.Sprintf(`(() => { const b = document.querySelector('#chats button.open[data-conversation=%q]'); return b && b.closest(".item").classList.contains("waiting") && b.textContent.includes("2 new") && document.title.startsWith("(1) "); })()`, convB))
	selectConv(t, ctx, convB)
	poll(t, ctx, "the mark gone once B is shown", fmt.Sprintf(`!document.querySelector('#chats button.open[data-conversation=%q]').closest(".item").classList.contains("waiting") && !document.title.startsWith("(")`, convB))
	_ = custA
}

// deadLink makes the page's WebSocket frames vanish.
const deadLink = `WebSocket.prototype.send = function () {}`

// A reply the console could not send yet (the link is dead) is kept in
// the tab: after a reload, or a sign-out and a new sign-in, it is sent —
// once. Both used to drop it silently, though the console had said it
// "will be sent when the connection is back".
func TestBrowserConsoleUnsentReplySurvivesReloadAndSignOut(t *testing.T) {
	log := gateway.NewMemLog()
	e := newNode(t, nodeOpts{log: log, heartbeatTimeout: 30 * time.Minute})
	p := browsertest.NewHoleProxy(t, e.URL)
	ctx, cust, conv := startConsoleChat(t, e, p, "Ann")
	token := browsertest.Eval[string](t, ctx, `sessionStorage.getItem("tandem-console-token")`)

	// The link dies upwards: the page's frames go nowhere (a reload gives
	// the page its sockets back; a black-holed proxy would also stall the
	// reload's own HTTP connection).
	browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](deadLink))
	typeReply(t, ctx, "written on a dead link")
	poll(t, ctx, "the pending bubble", `document.querySelectorAll("#chat-log .msg.pending").length === 1`)
	browsertest.Do(t, ctx, chromedp.Reload())
	waitFrame(t, cust, "the reply after the reload", messageFrom(tandem.AuthorAgent, "written on a dead link"))

	poll(t, ctx, "the console back", `window.__tandemConsole.connected()`)
	browsertest.Do(t, ctx, chromedp.Click(chromedp.CSS(fmt.Sprintf(`#chats button.open[data-conversation=%q]`, conv))))
	browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](deadLink))
	typeReply(t, ctx, "written before signing out")
	poll(t, ctx, "the pending bubble", `document.querySelectorAll("#chat-log .msg.pending").length === 1`)
	browsertest.Do(t, ctx, chromedp.Click(chromedp.ID("logout")))
	poll(t, ctx, "the sign-out note", `document.getElementById("conn-status").textContent.includes("1 reply was not sent yet")`)
	browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`sessionStorage.setItem("tandem-console-token", %q)`, token)), chromedp.Reload())
	waitFrame(t, cust, "the reply after signing in again", messageFrom(tandem.AuthorAgent, "written before signing out"))
	poll(t, ctx, "the console back", `window.__tandemConsole.connected()`)
	if got := agentTexts(t, log, conv); fmt.Sprint(got) != "[written on a dead link written before signing out]" {
		t.Fatalf("agent messages in the log = %q, want each once", got)
	}
}

// "Sign out" gives the agent's chats back to the queue at once: the
// customer hears their agent left (it kept "Chatting with Ann" for the
// grace period, about a minute, with messages unanswered).
func TestBrowserConsoleSignOutRequeues(t *testing.T) {
	e := newNode(t, nodeOpts{heartbeatTimeout: 30 * time.Minute})
	p := browsertest.NewHoleProxy(t, e.URL)
	ctx, cust, _ := startConsoleChat(t, e, p, "Ann")
	browsertest.Do(t, ctx, chromedp.Click(chromedp.ID("logout")))
	waitFrame(t, cust, "the queued status saying the agent left", func(f frame) bool {
		return f.Type == "handoff" && f.Status == "queued" && strings.Contains(string(f.raw), "had to leave")
	})
	poll(t, ctx, "the login page", `!document.getElementById("login").hidden && document.getElementById("me").hidden`)
}

// Replies still on their way when the agent signs out are delivered first:
// sign_out gives the chats back to the queue, after which a reply would
// be refused (and its text was lost).
func TestBrowserConsoleSignOutDeliversRepliesFirst(t *testing.T) {
	log := gateway.NewMemLog()
	e := newNode(t, nodeOpts{log: log, heartbeatTimeout: 30 * time.Minute})
	p := browsertest.NewHoleProxy(t, e.URL)
	ctx, cust, conv := startConsoleChat(t, e, p, "Ann")
	browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](`(() => {
		const input = document.getElementById("composer-input"), form = document.getElementById("composer");
		for (const text of ["reply one", "reply two", "reply three"]) { input.value = text; form.requestSubmit(); }
		document.getElementById("logout").click();
	})()`))
	for _, text := range []string{"reply one", "reply two", "reply three"} {
		waitFrame(t, cust, text, messageFrom(tandem.AuthorAgent, text))
	}
	waitFrame(t, cust, "the queued status saying the agent left", func(f frame) bool {
		return f.Type == "handoff" && f.Status == "queued" && strings.Contains(string(f.raw), "had to leave")
	})
	if got := agentTexts(t, log, conv); fmt.Sprint(got) != "[reply one reply two reply three]" {
		t.Fatalf("agent messages in the log = %q", got)
	}
}
