package gateway_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/internal/testenv"
)

// newBrowser starts headless Chromium with a fresh profile.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path := testenv.Chromium(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(390, 844), // a phone
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelA() })
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

func do(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatal(err)
	}
}

func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitFor polls a JavaScript predicate until it is true.
func waitFor(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	var err error
	for try := 0; try < 5; try++ {
		_, err = chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(45*time.Second)))
		// A navigation (reload) replaces the page's execution context: poll again.
		if err == nil || !strings.Contains(err.Error(), "context") {
			break
		}
	}
	if err != nil {
		dump := eval[string](t, ctx, `document.getElementById("tandem-root") ? document.getElementById("tandem-root").innerText : "(no widget)"`)
		t.Fatalf("waiting for %s: %v\nwidget text:\n%s", what, err, dump)
	}
}

func sendFromWidget(t *testing.T, ctx context.Context, text string) {
	t.Helper()
	do(t, ctx, chromedp.SendKeys(chromedp.ID("tandem-input"), text), chromedp.Click(chromedp.ID("tandem-send")))
}

// loggedSeqs is the list of data-seq attributes of rendered log messages.
const loggedSeqs = `Array.from(document.querySelectorAll("#tandem-log .tandem-msg[data-seq]")).map(e => +e.dataset.seq)`

const botCount = `document.querySelectorAll('#tandem-log .tandem-msg[data-author="bot"][data-seq]').length`

func TestBrowserWidget(t *testing.T) {
	ts := startServer(t, serverOpts{})
	ctx := newBrowser(t)
	do(t, ctx, chromedp.Navigate(ts.URL+"/"))
	waitFor(t, ctx, "the widget to connect", `document.getElementById("tandem-status") && document.getElementById("tandem-status").textContent === "Online"`)

	// Accessibility basics.
	if role := eval[string](t, ctx, `document.getElementById("tandem-log").getAttribute("role") + "/" + document.getElementById("tandem-log").getAttribute("aria-live")`); role != "log/polite" {
		t.Fatalf("log role = %s", role)
	}
	if got := eval[string](t, ctx, `document.activeElement && document.activeElement.id`); got != "tandem-input" {
		t.Fatalf("focus after open = %q, want the input", got)
	}

	t.Run("send and get the bot's answer", func(t *testing.T) {
		sendFromWidget(t, ctx, "hello there")
		waitFor(t, ctx, "the bot's answer", `Array.from(document.querySelectorAll('#tandem-log .tandem-msg[data-author="bot"]')).some(e => e.textContent.includes("echo: hello there"))`)
		sendFromWidget(t, ctx, "help")
		waitFor(t, ctx, "quick replies", `document.querySelectorAll("#tandem-quick button").length === 2`)
		do(t, ctx, chromedp.Click(chromedp.CSS("#tandem-quick button")))
		waitFor(t, ctx, "the quick reply's answer", `document.body.innerText.includes("echo: Shipping")`)
	})

	t.Run("injected markup renders as text", func(t *testing.T) {
		payload := `<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>`
		sendFromWidget(t, ctx, payload)
		waitFor(t, ctx, "the echo of the payload", `Array.from(document.querySelectorAll('#tandem-log .tandem-msg[data-author="bot"]')).some(e => e.textContent.includes("echo: <img src=x"))`)
		if n := eval[int](t, ctx, `document.querySelectorAll("#tandem-log img, #tandem-log script").length`); n != 0 {
			t.Fatalf("%d injected elements in the log", n)
		}
		if p := eval[bool](t, ctx, `window.__pwned !== undefined`); p {
			t.Fatal("injected script ran")
		}
		if !eval[bool](t, ctx, fmt.Sprintf(`document.getElementById("tandem-log").textContent.includes(%q)`, payload)) {
			t.Fatal("payload text not shown literally")
		}
	})

	t.Run("reload shows the whole history once in order", func(t *testing.T) {
		before := eval[[]int](t, ctx, loggedSeqs)
		do(t, ctx, chromedp.Reload())
		waitFor(t, ctx, "reconnect after reload", `document.getElementById("tandem-status") && document.getElementById("tandem-status").textContent === "Online"`)
		sendFromWidget(t, ctx, "after reload")
		waitFor(t, ctx, "an answer after reload", `document.body.innerText.includes("echo: after reload")`)
		seqs := eval[[]int](t, ctx, loggedSeqs)
		if len(seqs) != len(before)+2 {
			t.Fatalf("after reload %d messages (%v), want %d", len(seqs), seqs, len(before)+2)
		}
		for i, s := range seqs {
			if s != i+1 {
				t.Fatalf("history after reload not once and in order: %v", seqs)
			}
		}
		// Also from an empty cache (another device with the same token is not
		// possible, but a cleared cache replays from the server).
		do(t, ctx, chromedp.Evaluate[chromedp.Void](`(() => { const k = Object.keys(localStorage).find(k => k.startsWith("tandem:")); const s = JSON.parse(localStorage.getItem(k)); s.messages = []; s.lastSeq = 0; localStorage.setItem(k, JSON.stringify(s)); })()`),
			chromedp.Reload())
		waitFor(t, ctx, "a full replay", fmt.Sprintf(`%s.length === %d`, loggedSeqs, len(seqs)))
		if got := eval[[]int](t, ctx, loggedSeqs); fmt.Sprint(got) != fmt.Sprint(seqs) {
			t.Fatalf("replay = %v, want %v", got, seqs)
		}
	})

	t.Run("messages written offline are delivered once after reconnect", func(t *testing.T) {
		conv := eval[string](t, ctx, `window.__tandemWidget.state().conversationId`)
		bots := eval[int](t, ctx, botCount)
		ts.LN.setDown(true) // server-side drop; new connections refused
		waitFor(t, ctx, "the widget to notice", `document.getElementById("tandem-status").textContent.includes("connecting")`)
		for i := 0; i < 3; i++ {
			sendFromWidget(t, ctx, fmt.Sprintf("offline %d", i))
		}
		if n := eval[int](t, ctx, `document.querySelectorAll("#tandem-log .tandem-pending").length`); n != 3 {
			t.Fatalf("%d pending bubbles, want 3", n)
		}
		if n := eval[int](t, ctx, `window.__tandemWidget.state().outbox.length`); n != 3 {
			t.Fatalf("outbox has %d, want 3", n)
		}
		ts.LN.setDown(false)
		waitFor(t, ctx, "the outbox to drain", fmt.Sprintf(`%s === %d && document.querySelectorAll("#tandem-log .tandem-pending").length === 0`, botCount, bots+3))
		msgs, err := ts.Log.Messages(context.Background(), conv, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		var offline []string
		for _, m := range msgs {
			if m.Author == tandem.AuthorCustomer && strings.HasPrefix(m.Text, "offline") {
				offline = append(offline, m.Text)
			}
		}
		if fmt.Sprint(offline) != "[offline 0 offline 1 offline 2]" {
			t.Fatalf("stored offline messages = %v, want each once in order", offline)
		}
		seqs := eval[[]int](t, ctx, loggedSeqs)
		if len(seqs) != len(msgs) {
			t.Fatalf("page shows %d messages, log has %d", len(seqs), len(msgs))
		}
		for i, s := range seqs {
			if s != i+1 {
				t.Fatalf("page order after reconnect: %v", seqs)
			}
		}
	})

	t.Run("keyboard: escape closes, the launcher reopens", func(t *testing.T) {
		do(t, ctx, chromedp.SendKeys(chromedp.ID("tandem-input"), "\x1b")) // kb.Escape
		waitFor(t, ctx, "the panel to close", `document.getElementById("tandem-panel").hidden && document.activeElement.id === "tandem-launcher"`)
		if got := eval[string](t, ctx, `document.getElementById("tandem-launcher").getAttribute("aria-expanded")`); got != "false" {
			t.Fatalf("aria-expanded = %s", got)
		}
		do(t, ctx, chromedp.Click(chromedp.ID("tandem-launcher")))
		waitFor(t, ctx, "the panel to open", `!document.getElementById("tandem-panel").hidden && document.activeElement.id === "tandem-input"`)
		// Mobile width: the panel fills the viewport.
		do(t, ctx, chromedp.EmulateViewport(390, 844))
		if w := eval[int](t, ctx, `Math.round(document.getElementById("tandem-panel").getBoundingClientRect().width)`); w != eval[int](t, ctx, `window.innerWidth`) {
			t.Fatalf("panel width %d at a phone viewport", w)
		}
	})

	t.Run("talk to a person", func(t *testing.T) {
		do(t, ctx, chromedp.Click(chromedp.ID("tandem-human")))
		waitFor(t, ctx, "the queued status", `document.getElementById("tandem-status").textContent.startsWith("Waiting for an agent")`)
	})
}
