package console_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/gateway"
	"github.com/tandem-chat/tandem/internal/browsertest"
)

// newQuickNode is newNode with a short console heartbeat (500 ms), so the
// console's dead-link watchdog fires within seconds; it also returns the
// conversation log.
func newQuickNode(t *testing.T) (*env, gateway.ConvLog) {
	t.Helper()
	log := gateway.NewMemLog()
	return newNode(t, nodeOpts{log: log, heartbeatTimeout: 1500 * time.Millisecond}), log
}

// poll waits for a JavaScript predicate in the page (a hang guard only).
func poll(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(45*time.Second))); err != nil {
		txt, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
		t.Fatalf("waiting for %s: %v\n--- page ---\n%s", what, err, txt)
	}
}

// waitFrame reads the customer's frames until ok (45 s hang guard).
func waitFrame(t *testing.T, c *client, what string, ok func(frame) bool) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		f, err := c.read(time.Until(deadline))
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok(f) {
			return
		}
	}
}

// startConsoleChat signs an agent into the console page (through proxy
// p) and gives them an assigned conversation with a customer.
func startConsoleChat(t *testing.T, e *env, p *browsertest.HoleProxy, name string) (context.Context, *client, string) {
	t.Helper()
	_, tok := e.agent(strings.ToLower(name)+"@example.com", name, nil)
	ctx := browsertest.Start(t, 1280, 900)
	browsertest.Do(t, ctx, chromedp.Navigate(p.URL()+"/console"),
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`sessionStorage.setItem("tandem-console-token", %q)`, tok)),
		chromedp.Reload())
	poll(t, ctx, "the console to connect", `window.__tandemConsole && window.__tandemConsole.connected() && document.getElementById("conn-status").textContent === "Connected"`)

	cust, conv := e.customer()
	cust.send(map[string]any{"type": "handoff_request", "client_id": "h1"})
	cust.until(handoffStatus("queued"))
	e.escalated(conv)
	e.tick()
	poll(t, ctx, "the offer", `document.querySelectorAll("#offers .item.offer").length === 1`)
	browsertest.Do(t, ctx, chromedp.Click(chromedp.CSS("#offers .item.offer .open")), chromedp.Click(chromedp.ID("accept-btn")))
	poll(t, ctx, "the assignment", `document.getElementById("conv-state").textContent === "Assigned to you" && !document.getElementById("composer-input").disabled`)
	return ctx, cust, conv
}

func typeReply(t *testing.T, ctx context.Context, text string) {
	t.Helper()
	browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](`document.getElementById("composer-input").value = ""`),
		chromedp.SendKeys(chromedp.ID("composer-input"), text), chromedp.Click(chromedp.ID("composer-send")))
}

func consoleShows(text string) string {
	return fmt.Sprintf(`Array.from(document.querySelectorAll('#chat-log .msg[data-author="agent"][data-seq]')).filter(e => e.textContent.includes(%q)).length === 1 && document.querySelectorAll("#chat-log .msg.pending").length === 0`, text)
}

func agentTexts(t *testing.T, log gateway.ConvLog, conv string) []string {
	t.Helper()
	msgs, err := log.Messages(context.Background(), conv, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		if m.Author == tandem.AuthorAgent {
			out = append(out, m.Text)
		}
	}
	return out
}

// The console notices a dead link by its silence (no close event ever
// comes), reconnects, and resends the unacknowledged reply under the same
// client id: a reply that never left is delivered, one whose ack was lost
// is not posted twice.
func TestBrowserConsoleDeadLinkKeepsReplies(t *testing.T) {
	e, convLog := newQuickNode(t)
	p := browsertest.NewHoleProxy(t, e.URL)
	ctx, cust, conv := startConsoleChat(t, e, p, "Ann")

	t.Run("a reply written on a dead link is delivered after the reconnect", func(t *testing.T) {
		conns := p.Connections()
		p.Blackhole(true)
		typeReply(t, ctx, "first reply")
		waitFrame(t, cust, "the first reply", messageFrom(tandem.AuthorAgent, "first reply"))
		poll(t, ctx, "the reply acknowledged in the console", consoleShows("first reply")+` && window.__tandemConsole.connected()`)
		if p.Connections() == conns {
			t.Fatal("the console did not open a new connection")
		}
	})

	t.Run("a reply whose ack was lost is not posted twice", func(t *testing.T) {
		p.Blackhole(false) // the server gets the reply; its answers are lost
		typeReply(t, ctx, "second reply")
		waitFrame(t, cust, "the second reply", messageFrom(tandem.AuthorAgent, "second reply"))
		poll(t, ctx, "the reply acknowledged in the console", consoleShows("second reply")+` && window.__tandemConsole.connected()`)
		if got := agentTexts(t, convLog, conv); fmt.Sprint(got) != "[first reply second reply]" {
			t.Fatalf("agent messages in the log = %q, want each once", got)
		}
	})
}

// offerAndAccept gives the signed-in agent one more assigned conversation.
func offerAndAccept(t *testing.T, e *env, ctx context.Context) (*client, string) {
	t.Helper()
	cust, conv := e.customer()
	cust.send(map[string]any{"type": "handoff_request", "client_id": "h1"})
	cust.until(handoffStatus("queued"))
	e.escalated(conv)
	e.tick()
	poll(t, ctx, "the offer", `document.querySelectorAll("#offers .item.offer").length === 1`)
	browsertest.Do(t, ctx, chromedp.Click(chromedp.CSS("#offers .item.offer .open")), chromedp.Click(chromedp.ID("accept-btn")))
	poll(t, ctx, "the assignment", fmt.Sprintf(`window.__tandemConsole.state().selected === %q && document.getElementById("conv-state").textContent === "Assigned to you"`, conv))
	return cust, conv
}

func selectConv(t *testing.T, ctx context.Context, conv string) {
	t.Helper()
	browsertest.Do(t, ctx, chromedp.Click(chromedp.CSS(fmt.Sprintf(`#chats button.open[data-conversation=%q]`, conv))))
	poll(t, ctx, "the selection", fmt.Sprintf(`window.__tandemConsole.state().selected === %q`, conv))
}

// "Customer is typing…" goes away by itself in every conversation: the
// typing of one customer does not keep another's line on for good.
func TestBrowserConsoleTypingPerConversation(t *testing.T) {
	e, _ := newQuickNode(t)
	p := browsertest.NewHoleProxy(t, e.URL)
	ctx, custA, convA := startConsoleChat(t, e, p, "Ann")
	custB, convB := offerAndAccept(t, e, ctx)
	const typing = `document.getElementById("typing").textContent`

	selectConv(t, ctx, convA)
	custA.send(map[string]any{"type": "typing", "on": true})
	poll(t, ctx, "A's typing", typing+` === "Customer is typing…"`)
	selectConv(t, ctx, convB)
	custB.send(map[string]any{"type": "typing", "on": true})
	poll(t, ctx, "B's typing", typing+` === "Customer is typing…"`)
	// Neither customer says they stopped: the lines clear by themselves,
	// A's (shown first) before B's.
	poll(t, ctx, "B's typing to clear", typing+` === ""`)
	selectConv(t, ctx, convA)
	if got := browsertest.Eval[string](t, ctx, typing); got != "" {
		t.Fatalf("conversation A still shows %q", got)
	}
}

// Right-to-left text (Arabic, Hebrew) reads right to left in the
// transcript and in the composer; left-to-right text stays so.
func TestBrowserConsoleTextDirection(t *testing.T) {
	e, _ := newQuickNode(t)
	p := browsertest.NewHoleProxy(t, e.URL)
	ctx, cust, _ := startConsoleChat(t, e, p, "Ann")
	rtl := func(sel string) string {
		return fmt.Sprintf(`Array.from(document.querySelectorAll(%q)).map(e => e.matches(":dir(rtl)") ? "rtl" : "ltr").join(",")`, sel)
	}

	cust.send(map[string]any{"type": "message", "client_id": "c-rtl", "text": "مرحبا، أحتاج مساعدة"})
	poll(t, ctx, "the customer's message", `document.getElementById("chat-log").textContent.includes("أحتاج")`)
	// (The customer's earlier messages are in English.)
	if got := browsertest.Eval[string](t, ctx, rtl(`#chat-log .msg[data-author="customer"] .text`)); !strings.HasSuffix(got, "rtl") || strings.Count(got, "rtl") != 1 {
		t.Fatalf("the customer's messages read %s, want their last (Arabic) one rtl", got)
	}
	browsertest.Do(t, ctx, chromedp.SendKeys(chromedp.ID("composer-input"), "שלום"))
	if got := browsertest.Eval[string](t, ctx, rtl("#composer-input")); got != "rtl" {
		t.Fatalf("the composer with Hebrew text reads %s", got)
	}
	browsertest.Do(t, ctx, chromedp.Click(chromedp.ID("composer-send")))
	poll(t, ctx, "the reply", consoleShows("שלום"))
	if got := browsertest.Eval[string](t, ctx, rtl(`#chat-log .msg[data-author="agent"] .text`)); got != "rtl" {
		t.Fatalf("the agent's Hebrew reply reads %s", got)
	}
	typeReply(t, ctx, "hello")
	poll(t, ctx, "the Latin reply", consoleShows("hello"))
	if got := browsertest.Eval[string](t, ctx, rtl(`#chat-log .msg[data-author="agent"] .text`)); got != "rtl,ltr" {
		t.Fatalf("the agent's replies read %s, want rtl,ltr", got)
	}
}
