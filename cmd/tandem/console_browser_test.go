package main

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tandem-chat/tandem/internal/browsertest"
	"github.com/tandem-chat/tandem/internal/testenv"
)

// bootWithBanner starts the real server (bot with the trained models, demo
// knowledge, handoff engine, console) on :0 and returns it with its
// start-up banner.
func bootWithBanner(t *testing.T, env map[string]string) (*Main, string) {
	t.Helper()
	if env == nil {
		env = map[string]string{}
	}
	env["ONNXRUNTIME_LIB"] = testenv.ONNXRuntimeLib(t)
	env["TANDEM_MODEL_DIR"] = testenv.ModelDir(t)
	var stdout, stderr syncBuffer
	m := NewMain(&stdout, &stderr)
	if err := m.ParseFlags([]string{"--addr", "127.0.0.1:0"}, testGetenv(env)); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(context.Background()); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return m, stdout.String()
}

var demoAgentLine = regexp.MustCompile(`demo agent:\s+(\S+) / (\S+)`)

// until polls a JavaScript predicate in a tab until it holds; on failure
// it shows both pages' text.
func until(t *testing.T, ctx context.Context, what, expr string, pages ...context.Context) {
	t.Helper()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(45*time.Second)))
	if err != nil {
		var dump strings.Builder
		for i, p := range append([]context.Context{ctx}, pages...) {
			txt, _ := chromedp.Run(p, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
			fmt.Fprintf(&dump, "\n--- page %d ---\n%s", i, txt)
		}
		t.Fatalf("waiting for %s: %v%s", what, err, dump.String())
	}
}

// Text predicates built from Go strings (quoted as JavaScript literals by %q).
func hasMsg(sel, text string) string {
	return fmt.Sprintf(`Array.from(document.querySelectorAll(%q)).some(e => e.textContent.includes(%q))`, sel, text)
}

const botMsgs = `document.querySelectorAll('#tandem-log .tandem-msg[data-author="bot"][data-seq]').length`

// TestBrowserHandoffToConsole is the handoff seen by two people in a real
// browser against the real server: a customer in the widget demo page asks
// for a person in their own words; the demo agent, logged into /console, gets the offer with
// the transcript, the bot's summary and suggested answers, accepts; they
// type and exchange messages both ways; the agent returns the conversation
// to the bot, and the bot answers the customer again.
func TestBrowserHandoffToConsole(t *testing.T) {
	m, banner := bootWithBanner(t, nil)
	creds := demoAgentLine.FindStringSubmatch(banner)
	if creds == nil {
		t.Fatalf("the banner does not show the demo agent:\n%s", banner)
	}
	if !strings.Contains(banner, "agent console:") {
		t.Fatalf("the banner does not show the console:\n%s", banner)
	}
	base := m.URL()
	b := browsertest.Start(t, 1280, 900)
	agent := b
	cust := browsertest.Tab(t, b)

	// The agent signs in.
	browsertest.Do(t, agent, chromedp.Navigate(base+"/console"))
	until(t, agent, "the login form", `!!document.getElementById("login-email")`)
	if role := browsertest.Eval[string](t, agent, `document.getElementById("chat-log").getAttribute("role")`); role != "log" {
		t.Fatalf("transcript role = %q", role)
	}
	browsertest.Do(t, agent,
		chromedp.SendKeys(chromedp.ID("login-email"), creds[1]),
		chromedp.SendKeys(chromedp.ID("login-password"), creds[2]),
		chromedp.Click(chromedp.ID("login-submit")))
	until(t, agent, "the console to connect", `window.__tandemConsole.connected() && document.getElementById("conn-status").textContent === "Connected"`)

	// The customer asks the bot something, then asks for a person.
	browsertest.Do(t, cust, chromedp.Navigate(base+"/"))
	until(t, cust, "the widget to connect", `document.getElementById("tandem-status") && document.getElementById("tandem-status").textContent === "Online"`)
	question := "How long does delivery take?"
	browsertest.Do(t, cust, chromedp.SendKeys(chromedp.ID("tandem-input"), question), chromedp.Click(chromedp.ID("tandem-send")))
	until(t, cust, "the bot's first answer", botMsgs+` >= 1`)
	firstAnswer := browsertest.Eval[string](t, cust, `document.querySelector('#tandem-log .tandem-msg[data-author="bot"][data-seq] .tandem-text').textContent`)
	// The answer is about delivery times (the demo's delivery intent or FAQ),
	// whatever the browser's own locale (e.g. en-US).
	if !strings.Contains(firstAnswer, "business days") {
		t.Fatalf("the first answer is not about delivery times: %q (browser language %s)", firstAnswer, browsertest.Eval[string](t, cust, `navigator.language`))
	}
	// The customer asks for a person in their own words: the bot escalates.
	browsertest.Do(t, cust, chromedp.SendKeys(chromedp.ID("tandem-input"), "I'd like to talk to a human please"), chromedp.Click(chromedp.ID("tandem-send")))
	until(t, cust, "the queued status", `document.getElementById("tandem-status").textContent.startsWith("Waiting for an agent")`, agent)

	// The offer reaches the console with the transcript, the bot's summary
	// and suggestions.
	until(t, agent, "the offer", `document.querySelectorAll("#offers .item.offer").length === 1`, cust)
	browsertest.Do(t, agent, chromedp.Click(chromedp.CSS("#offers .item.offer .open")))
	until(t, agent, "the transcript", hasMsg(`#chat-log .msg[data-author="customer"]`, question)+" && "+hasMsg(`#chat-log .msg[data-author="bot"]`, firstAnswer[:min(20, len(firstAnswer))]), cust)
	until(t, agent, "the bot's summary", hasMsg("#summary dt", "Escalated because")+" && "+hasMsg("#summary dd", "person"))
	until(t, agent, "suggested answers", `document.querySelectorAll("#suggestions .suggestion").length > 0`)
	if s := browsertest.Eval[string](t, agent, `document.getElementById("conv-state").textContent`); s != "Offered to you" {
		t.Fatalf("state before accepting = %q", s)
	}
	if !browsertest.Eval[bool](t, agent, `document.getElementById("composer-input").disabled`) {
		t.Fatal("the composer is enabled before accepting")
	}

	// Accept (by keyboard: focus the button and press Enter).
	browsertest.Do(t, agent, chromedp.Focus(chromedp.ID("accept-btn")), chromedp.KeyEvent("\r"))
	until(t, agent, "the assignment", `document.getElementById("conv-state").textContent === "Assigned to you" && !document.getElementById("composer-input").disabled`)
	until(t, cust, "the customer to see the agent", `document.getElementById("tandem-status").textContent === "Chatting with Demo Agent"`, agent)
	until(t, cust, "the joined note", hasMsg(`#tandem-log .tandem-msg[data-author="system"]`, "Demo Agent"))

	// Agent -> customer, typing first.
	browsertest.Do(t, agent, chromedp.SendKeys(chromedp.ID("composer-input"), "Hello, I am the demo agent"))
	until(t, cust, "the agent's typing indicator", `document.getElementById("tandem-typing").textContent.includes("is typing")`, agent)
	browsertest.Do(t, agent, chromedp.SendKeys(chromedp.ID("composer-input"), ". How can I help?"), chromedp.Click(chromedp.ID("composer-send")))
	until(t, cust, "the agent's message", hasMsg(`#tandem-log .tandem-msg[data-author="agent"]`, "Hello, I am the demo agent. How can I help?"), agent)
	until(t, agent, "the message in the console", hasMsg(`#chat-log .msg[data-author="agent"][data-seq]`, "How can I help?")+` && document.querySelectorAll("#chat-log .msg.pending").length === 0`)

	// Customer -> agent, typing first; markup stays text.
	browsertest.Do(t, cust, chromedp.SendKeys(chromedp.ID("tandem-input"), "My parcel"))
	until(t, agent, "the customer's typing indicator", `document.getElementById("typing").textContent.includes("typing")`, cust)
	payload := ` <img src=x onerror="window.__pwned=1"> has not arrived`
	browsertest.Do(t, cust, chromedp.SendKeys(chromedp.ID("tandem-input"), payload), chromedp.Click(chromedp.ID("tandem-send")))
	until(t, agent, "the customer's message", hasMsg(`#chat-log .msg[data-author="customer"]`, "My parcel"+payload), cust)
	if n := browsertest.Eval[int](t, agent, `document.querySelectorAll("#chat-log img, #chat-log script").length`); n != 0 || browsertest.Eval[bool](t, agent, `window.__pwned !== undefined`) {
		t.Fatal("customer markup was rendered as HTML in the console")
	}
	bots := browsertest.Eval[int](t, cust, botMsgs)

	// A canned response (the select, as a keyboard user changes it).
	browsertest.Do(t, agent, chromedp.Evaluate[chromedp.Void](`(() => { const s = document.getElementById("canned"); s.focus(); s.value = "1"; s.dispatchEvent(new Event("change")); })()`))
	until(t, agent, "the canned text in the composer", `document.getElementById("composer-input").value.length > 0`)
	browsertest.Do(t, agent, chromedp.Click(chromedp.ID("composer-send")))
	until(t, cust, "the canned response", `document.querySelectorAll('#tandem-log .tandem-msg[data-author="agent"]').length === 2`, agent)

	// Return to the bot.
	browsertest.Do(t, agent, chromedp.Click(chromedp.ID("return-btn")))
	until(t, agent, "the conversation to leave the console", `document.querySelectorAll("#chats .item").length === 0 && document.getElementById("composer-input").disabled`)
	until(t, cust, "the back-to-bot note", `document.getElementById("tandem-status").textContent === "Online" && `+hasMsg(`#tandem-log .tandem-msg[data-author="system"]`, "back with the assistant"), agent)
	if got := browsertest.Eval[int](t, cust, botMsgs); got != bots {
		t.Fatalf("the bot answered while the agent had the conversation (%d bot messages, had %d)", got, bots)
	}
	browsertest.Do(t, cust, chromedp.SendKeys(chromedp.ID("tandem-input"), "How can I pay for my order?"), chromedp.Click(chromedp.ID("tandem-send")))
	until(t, cust, "the bot to answer again", fmt.Sprintf(`%s > %d`, botMsgs, bots), agent)
	last := browsertest.Eval[string](t, cust, `(() => { const all = document.querySelectorAll('#tandem-log .tandem-msg[data-seq]'); return all[all.length-1].dataset.author; })()`)
	if last != "bot" {
		t.Fatalf("the last message after returning is by %s, want the bot", last)
	}
}
