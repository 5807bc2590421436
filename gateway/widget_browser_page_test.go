package gateway_test

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tandem-chat/tandem/gateway"
	"github.com/tandem-chat/tandem/internal/browsertest"
)

// A reload of a conversation an agent closed says so and asks for the
// rating (it said "Online" and the prompt was gone); once rated, a reload
// does not ask again.
func TestBrowserWidgetClosedConversationAfterReload(t *testing.T) {
	ts, ctx := onlineWidget(t, serverOpts{})
	closeWidgetConversation(t, ts, ctx)
	waitFor(t, ctx, "the rating prompt", `document.querySelectorAll("#tandem-quick button.tandem-rate").length === 2`)
	browsertest.Do(t, ctx, chromedp.Reload())
	waitFor(t, ctx, "the closed status and the prompt after the reload",
		`document.getElementById("tandem-status").textContent === "Conversation closed" && document.querySelectorAll("#tandem-quick button.tandem-rate").length === 2`)
	browsertest.Do(t, ctx, chromedp.Click(chromedp.CSS(`#tandem-quick button[data-score="good"]`)))
	waitFor(t, ctx, "the rating logged", `Array.from(document.querySelectorAll('#tandem-log .tandem-msg[data-author="customer"][data-seq]')).some(e => e.textContent.includes("👍 Good")) && `+noPendingLeft)
	browsertest.Do(t, ctx, chromedp.Reload())
	waitFor(t, ctx, "the closed status", `document.getElementById("tandem-status").textContent === "Conversation closed" && window.__tandemWidget.state().lastSeq > 0`)
	if n := browsertest.Eval[int](t, ctx, `document.querySelectorAll("#tandem-quick button.tandem-rate").length`); n != 0 {
		t.Fatalf("rated already, the prompt shows %d buttons", n)
	}
}

// On a phone the open panel fills the screen: the launcher ("Close chat")
// no longer lies over the Send button (a tap on Send closed the chat).
func TestBrowserWidgetPhoneSendReachable(t *testing.T) {
	ts := startServer(t, serverOpts{})
	ctx := browsertest.Start(t, 375, 667)
	browsertest.Do(t, ctx, chromedp.EmulateViewport(375, 667, chromedp.EmulateMobile), chromedp.Navigate(ts.URL+"/"))
	waitFor(t, ctx, "the widget to connect", statusOnline)
	if w := browsertest.Eval[int](t, ctx, `window.innerWidth`); w != 375 {
		t.Fatalf("viewport %d px wide, want 375", w)
	}
	if browsertest.Eval[bool](t, ctx, `document.getElementById("tandem-panel").hidden`) {
		browsertest.Do(t, ctx, chromedp.Click(chromedp.ID("tandem-launcher")))
	}
	waitFor(t, ctx, "the open panel", `!document.getElementById("tandem-panel").hidden`)
	hit := browsertest.Eval[string](t, ctx, `(() => { const r = document.getElementById("tandem-send").getBoundingClientRect(); const e = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2); return e ? e.id : ""; })()`)
	if hit != "tandem-send" {
		t.Fatalf("the point at the centre of Send belongs to %q", hit)
	}
}

// Answers' **bold** and [links](https://…) show as such, built as elements
// (no HTML is parsed; a javascript: link stays text; a link's address may
// hold a pair of parentheses, as Wikipedia-style addresses do); a message of only
// invisible characters is refused in the widget, not queued for a retry
// that can never succeed.
func TestBrowserWidgetRichTextAndInvisibleText(t *testing.T) {
	_, ctx := onlineWidget(t, serverOpts{})
	sendFromWidget(t, ctx, "see **Account → Orders** or [our help](https://example.com/help) or [the terms](https://example.com/Terms_(EU)) not [this](javascript:alert(1)) <b>x</b>")
	waitFor(t, ctx, "the answer", `Array.from(document.querySelectorAll('#tandem-log .tandem-msg[data-author="bot"]')).some(e => e.textContent.includes("echo: see")) && `+noPendingLeft)
	got := browsertest.Eval[string](t, ctx, `(() => { const m = Array.from(document.querySelectorAll('#tandem-log .tandem-msg[data-author="bot"]')).pop();
		const a = m.querySelectorAll("a"); const s = m.querySelectorAll("strong");
		return [s.length, s[0] && s[0].textContent, a.length, a[0] && a[0].getAttribute("href"), a[0] && a[0].getAttribute("rel"), a[1] && a[1].getAttribute("href"), a[1] && a[1].textContent, m.querySelectorAll("b").length, m.textContent.includes("[this](javascript:alert(1))")].join("|"); })()`)
	if got != "1|Account → Orders|2|https://example.com/help|noopener noreferrer nofollow|https://example.com/Terms_(EU)|the terms|0|true" {
		t.Fatalf("rendered answer: %s", got)
	}
	browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](`document.getElementById("tandem-input").value = "\u200b\u200b \u2060"`),
		chromedp.Click(chromedp.ID("tandem-send")))
	waitFor(t, ctx, "the form error", `document.getElementById("tandem-form-error").textContent === "Your message has no visible text."`)
	if n := browsertest.Eval[int](t, ctx, pendingCount+` + `+outboxLength); n != 0 {
		t.Fatalf("the invisible message was queued (%d)", n)
	}
}

// While an agent has the conversation the widget does not offer "Talk to
// a person" (it sent "I would like to talk to a person" to the agent); it
// is back when the conversation returns to the bot.
func TestBrowserWidgetNoHumanButtonWithAgent(t *testing.T) {
	ts, ctx := onlineWidget(t, serverOpts{})
	conv := helloFromWidget(t, ctx)
	if err := ts.Chat.HandoffStatus(context.Background(), conv, gateway.HandoffStatus{Status: gateway.HandoffAssigned, AgentName: "Ann"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the button hidden", `document.getElementById("tandem-status").textContent === "Chatting with Ann" && getComputedStyle(document.getElementById("tandem-human")).display === "none"`)
	if err := ts.Chat.HandoffStatus(context.Background(), conv, gateway.HandoffStatus{Status: gateway.HandoffReturned}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the button back", `getComputedStyle(document.getElementById("tandem-human")).display !== "none"`)
}

// A message not acknowledged within a few seconds makes the widget check
// the link (a ping that must be answered): on a link that died silently it
// reconnects and delivers the message then, instead of saying "Online"
// until two heartbeats pass (70 s by default; an hour here).
func TestBrowserWidgetUnackedMessageChecksLink(t *testing.T) {
	ts := startServer(t, serverOpts{cfg: gateway.ChatConfig{PingInterval: time.Hour}})
	p := browsertest.NewHoleProxy(t, ts.URL)
	ctx := browsertest.Start(t, 1200, 900)
	browsertest.Do(t, ctx, chromedp.Navigate(p.URL()+"/"))
	waitFor(t, ctx, "the widget to connect", statusOnline)
	conns := p.Connections()
	p.Blackhole(true)
	sendFromWidget(t, ctx, "on a silently dead link")
	waitFor(t, ctx, "the answer over a new connection", `document.getElementById("tandem-log").textContent.includes("echo: on a silently dead link") && `+noPendingLeft)
	if p.Connections() == conns {
		t.Fatal("the widget did not open a new connection")
	}
}
