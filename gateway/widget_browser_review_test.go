package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/gateway"
	"github.com/tandem-chat/tandem/internal/browsertest"
)

// sessionGate is an HTTP proxy in front of a test server: while held,
// requests for /v1/widget/session wait; it counts sessions and widget
// sockets (open now and in total).
type sessionGate struct {
	mu      sync.Mutex
	held    bool
	release chan struct{}
	sess    atomic.Int64
	wsOpen  atomic.Int64
	wsTotal atomic.Int64
}

func newSessionGate(t *testing.T, target string) (*sessionGate, string) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	g := &sessionGate{release: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/widget/session" && r.Method == http.MethodPost {
			g.sess.Add(1)
			g.mu.Lock()
			held, ch := g.held, g.release
			g.mu.Unlock()
			if held {
				select {
				case <-ch:
				case <-r.Context().Done():
					return
				}
			}
		}
		if strings.HasPrefix(r.URL.Path, "/v1/widget/ws") {
			g.wsOpen.Add(1)
			g.wsTotal.Add(1)
			defer g.wsOpen.Add(-1)
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { g.open(); srv.CloseClientConnections(); srv.Close() })
	return g, srv.URL
}

func (g *sessionGate) hold() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.held {
		g.held = true
		g.release = make(chan struct{})
	}
}

func (g *sessionGate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.held {
		g.held = false
		close(g.release)
	}
}

// waitCount polls a counter until it reaches want (a hang guard only).
func waitCount(t *testing.T, what string, c *atomic.Int64, want int64) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for c.Load() != want {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %d, want %d", what, c.Load(), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func customerTexts(t *testing.T, ts *testServer, conv string) []string {
	t.Helper()
	msgs, err := ts.Log.Messages(context.Background(), conv, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		if m.Author == tandem.AuthorCustomer {
			out = append(out, m.Text)
		}
	}
	return out
}

// cacheSaved is true once the widget's coalesced cache write has run (a
// test that edits the stored state waits for it, or the page's own write
// overwrites the edit).
const cacheSaved = `(() => { const k = Object.keys(localStorage).find(k => k.startsWith("tandem:")); return !!k && JSON.parse(localStorage.getItem(k)).lastSeq === window.__tandemWidget.state().lastSeq; })()`

const (
	statusOnline  = `document.getElementById("tandem-status") && document.getElementById("tandem-status").textContent === "Online"`
	pendingCount  = `document.querySelectorAll("#tandem-log .tandem-pending").length`
	outboxLength  = `window.__tandemWidget.state().outbox.length`
	noPendingLeft = pendingCount + ` === 0 && ` + outboxLength + ` === 0`
)

// A message typed before the first session answered (the conversation id
// changes from "" to the new one) is kept and delivered, not deleted.
func TestBrowserWidgetOutboxSurvivesConversationChange(t *testing.T) {
	ts := startServer(t, serverOpts{})
	g, purl := newSessionGate(t, ts.URL)
	g.hold()
	ctx := browsertest.Start(t, 1200, 900)
	browsertest.Do(t, ctx, chromedp.Navigate(purl+"/"))
	waitFor(t, ctx, "the widget", `!!document.getElementById("tandem-input")`)
	waitCount(t, "the session request", &g.sess, 1)
	sendFromWidget(t, ctx, "my first question")
	if n := browsertest.Eval[int](t, ctx, outboxLength); n != 1 {
		t.Fatalf("outbox before the session = %d, want 1", n)
	}
	g.open()
	waitFor(t, ctx, "the answer to the first question", `document.getElementById("tandem-log").textContent.includes("echo: my first question") && `+noPendingLeft)
	conv := browsertest.Eval[string](t, ctx, `window.__tandemWidget.state().conversationId`)
	if got := customerTexts(t, ts, conv); fmt.Sprint(got) != "[my first question]" {
		t.Fatalf("stored customer messages = %q", got)
	}

	// A returning visitor whose stored conversation is replaced by another
	// (e.g. an expired token): the unsent message moves along.
	waitFor(t, ctx, "the cache written", cacheSaved)
	browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](`(() => {
		const k = Object.keys(localStorage).find(k => k.startsWith("tandem:"));
		const s = JSON.parse(localStorage.getItem(k));
		s.token = "expired"; s.conversationId = "c-gone"; s.outbox = [{type: "message", client_id: "m-left-over-1", text: "still unsent"}];
		localStorage.setItem(k, JSON.stringify(s));
	})()`), chromedp.Reload())
	waitFor(t, ctx, "the left-over message's answer", `document.getElementById("tandem-log").textContent.includes("echo: still unsent") && `+noPendingLeft)
	conv2 := browsertest.Eval[string](t, ctx, `window.__tandemWidget.state().conversationId`)
	if conv2 == conv || conv2 == "c-gone" {
		t.Fatalf("conversation after an invalid token = %q", conv2)
	}
	if got := customerTexts(t, ts, conv2); fmt.Sprint(got) != "[still unsent]" {
		t.Fatalf("stored customer messages of the new conversation = %q", got)
	}
}

// An online event while the session request is in flight starts no second
// attempt: one socket, none orphaned.
func TestBrowserWidgetOneSocketAtATime(t *testing.T) {
	ts := startServer(t, serverOpts{})
	g, purl := newSessionGate(t, ts.URL)
	ctx := browsertest.Start(t, 1200, 900)
	browsertest.Do(t, ctx, chromedp.Navigate(purl+"/"))
	waitFor(t, ctx, "the widget to connect", statusOnline)
	waitCount(t, "one open socket", &g.wsOpen, 1)
	sessions := g.sess.Load()

	g.hold()
	ts.LN.dropAll()
	waitCount(t, "the session request of the reconnect", &g.sess, sessions+1)
	// The online event schedules a start 100 ms later; let it run while
	// the first request still waits.
	browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](`window.dispatchEvent(new Event("online"))`))
	time.Sleep(600 * time.Millisecond)
	g.open()
	waitFor(t, ctx, "the widget to reconnect", statusOnline)
	sendFromWidget(t, ctx, "one socket")
	waitFor(t, ctx, "the answer", `document.getElementById("tandem-log").textContent.includes("echo: one socket") && `+noPendingLeft)
	if n := g.sess.Load(); n != sessions+1 {
		t.Errorf("%d session requests for one reconnect, want 1", n-sessions)
	}
	if n := g.wsTotal.Load(); n != 2 {
		t.Errorf("%d sockets opened in all, want 2 (the first and one reconnect)", n)
	}
	waitCount(t, "one open socket after the reconnect", &g.wsOpen, 1)
}

// TestBrowserWidgetHungSessionRequestIsAbandoned: a session request that
// never answers (a black-holing proxy) is aborted after its timeout and
// retried, instead of blocking every later reconnect attempt.
func TestBrowserWidgetHungSessionRequestIsAbandoned(t *testing.T) {
	ts := startServer(t, serverOpts{})
	g, purl := newSessionGate(t, ts.URL)
	ctx := browsertest.Start(t, 1200, 900)
	browsertest.Do(t, ctx, chromedp.Navigate(purl+"/"))
	waitFor(t, ctx, "the widget to connect", statusOnline)
	sessions := g.sess.Load()
	g.hold() // from now on the session request hangs
	ts.LN.dropAll()
	waitCount(t, "the session request of the reconnect", &g.sess, sessions+1)
	// The widget gives up on it after 15 s and tries again.
	waitCount(t, "a new session request after the hung one was abandoned", &g.sess, sessions+2)
	g.open()
	waitFor(t, ctx, "the widget to reconnect", statusOnline)
}

// refuseJS makes the page's sockets answer a message whose text matches
// window.__refuse with the error frame the server sends for a message it
// will never accept (instead of sending it).
const refuseJS = `(() => {
	if (window.__refusing) { return; }
	window.__refusing = true;
	const orig = WebSocket.prototype.send;
	WebSocket.prototype.send = function (data) {
		let f = null;
		try { f = JSON.parse(data); } catch (e) { /* not JSON */ }
		if (f && f.type === "message" && window.__refuse && window.__refuse.test(f.text)) {
			const sock = this;
			setTimeout(() => sock.dispatchEvent(new MessageEvent("message", { data: JSON.stringify({ type: "error", code: "invalid", message: "refused by the test", client_id: f.client_id }) })), 0);
			return;
		}
		return orig.call(this, data);
	};
})()`

// The widget checks text as the server does before queuing it, and shows a
// message the server refused as "not sent" with Retry and Discard, instead
// of keeping it pending forever.
func TestBrowserWidgetRefusedMessages(t *testing.T) {
	ts, ctx := onlineWidget(t, serverOpts{})
	submit := func(js string) {
		t.Helper()
		browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](`(() => { const i = document.getElementById("tandem-input"); i.value = `+js+`; document.getElementById("tandem-send").click(); })()`))
	}

	t.Run("text the server would refuse is not queued", func(t *testing.T) {
		submit(`"\u0085 \u3000"`) // blank for Go's strings.TrimSpace, not for String.prototype.trim
		submit(`"a\u0000b"`)
		if got := browsertest.Eval[string](t, ctx, `document.getElementById("tandem-form-error").textContent`); !strings.Contains(got, "cannot be sent") {
			t.Fatalf("form error after a NUL = %q", got)
		}
		submit(`"x".repeat(4001)`)
		if got := browsertest.Eval[string](t, ctx, `document.getElementById("tandem-form-error").textContent`); !strings.Contains(got, "too long") {
			t.Fatalf("form error after 4001 characters = %q", got)
		}
		if n := browsertest.Eval[int](t, ctx, outboxLength+` + `+pendingCount); n != 0 {
			t.Fatalf("%d queued or pending after invalid text", n)
		}
		if n := browsertest.Eval[int](t, ctx, `document.getElementById("tandem-input").value.length`); n != 4001 {
			t.Fatalf("the input lost the refused text (%d characters left)", n)
		}
		// The server's trimming: U+0085 around the text goes.
		submit(`"\u0085trimmed\u0085"`)
		waitFor(t, ctx, "the trimmed message's answer", `document.getElementById("tandem-log").textContent.includes("echo: trimmed") && `+noPendingLeft)
		if got := browsertest.Eval[string](t, ctx, `document.getElementById("tandem-form-error").textContent`); got != "" {
			t.Fatalf("form error after a good message = %q", got)
		}
	})

	t.Run("a refused message shows retry and discard", func(t *testing.T) {
		browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](refuseJS), chromedp.Evaluate[chromedp.Void](`window.__refuse = /^refuse/`))
		sendFromWidget(t, ctx, "refuse me")
		waitFor(t, ctx, "the not-sent state", `(() => { const f = document.querySelector("#tandem-log .tandem-failed"); return !!f && f.textContent.includes("Not sent: refused by the test") && !!f.querySelector(".tandem-retry") && !!f.querySelector(".tandem-discard"); })()`)
		if n := browsertest.Eval[int](t, ctx, pendingCount); n != 0 {
			t.Fatalf("%d bubbles still pending", n)
		}
		// It survives a reload, and is not resent by itself.
		browsertest.Do(t, ctx, chromedp.Reload())
		waitFor(t, ctx, "the widget to reconnect", statusOnline)
		sendFromWidget(t, ctx, "later message")
		waitFor(t, ctx, "the later message's answer", `document.getElementById("tandem-log").textContent.includes("echo: later message")`)
		waitFor(t, ctx, "the not-sent message after the reload", `!!document.querySelector("#tandem-log .tandem-failed .tandem-retry")`)
		conv := browsertest.Eval[string](t, ctx, `window.__tandemWidget.state().conversationId`)
		if got := customerTexts(t, ts, conv); slicesContain(got, "refuse me") {
			t.Fatalf("the refused message was resent: %q", got)
		}
		// Retry sends it (the server takes it now).
		browsertest.Do(t, ctx, chromedp.Click(chromedp.CSS("#tandem-log .tandem-failed .tandem-retry")))
		waitFor(t, ctx, "the retried message's answer", `document.getElementById("tandem-log").textContent.includes("echo: refuse me") && `+noPendingLeft+` && !document.querySelector("#tandem-log .tandem-failed")`)
		// Discard drops one.
		browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](refuseJS), chromedp.Evaluate[chromedp.Void](`window.__refuse = /^refuse/`))
		sendFromWidget(t, ctx, "refuse again")
		waitFor(t, ctx, "the second not-sent state", `!!document.querySelector("#tandem-log .tandem-failed .tandem-discard")`)
		browsertest.Do(t, ctx, chromedp.Click(chromedp.CSS("#tandem-log .tandem-failed .tandem-discard")))
		waitFor(t, ctx, "the discarded message gone", `!document.querySelector("#tandem-log .tandem-failed") && `+noPendingLeft+` && !document.getElementById("tandem-log").textContent.includes("refuse again")`)
	})
}

func slicesContain(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// recordBackoffJS records the delays the widget's scheduleReconnect asks
// setTimeout for.
const recordBackoffJS = `(() => {
	if (window.__delays) { return; }
	window.__delays = [];
	const orig = window.setTimeout;
	window.setTimeout = function (fn, ms, ...rest) {
		if (typeof fn === "function" && fn.name === "start" && (new Error().stack || "").includes("scheduleReconnect")) { window.__delays.push(ms); }
		return orig.call(this, fn, ms, ...rest);
	};
})()`

// A connection that drops right after its welcome does not start the
// backoff over, nor does a socket closed with 4401 retry at a fixed pace.
func TestBrowserWidgetBackoffGrows(t *testing.T) {
	ts, ctx := onlineWidget(t, serverOpts{})
	browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](recordBackoffJS))

	t.Run("drops right after the welcome", func(t *testing.T) {
		for i := 1; i <= 4; i++ {
			waitFor(t, ctx, "the widget to connect", statusOnline)
			ts.LN.dropAll()
			waitFor(t, ctx, "a reconnect to be scheduled", fmt.Sprintf(`window.__delays.length >= %d`, i))
		}
		delays := browsertest.Eval[[]float64](t, ctx, `window.__delays`)
		// Attempt n waits between c/2 and c, c = 0.5 s * 2^n: the fourth
		// at least 2 s, unless the welcomes reset the backoff.
		if delays[3] < 2000 {
			t.Fatalf("reconnect delays %v: the backoff did not grow", delays)
		}
	})

	t.Run("4401 closes", func(t *testing.T) {
		waitFor(t, ctx, "the widget to connect", statusOnline)
		browsertest.Do(t, ctx, chromedp.Reload())
		waitFor(t, ctx, "the widget to connect after the reload", statusOnline)
		// Every hello now carries a token the server refuses: close 4401.
		browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](recordBackoffJS), chromedp.Evaluate[chromedp.Void](`(() => {
			const orig = WebSocket.prototype.send;
			WebSocket.prototype.send = function (data) {
				try { const f = JSON.parse(data); if (f.type === "hello") { f.token = "not-a-token"; data = JSON.stringify(f); } } catch (e) { /* as is */ }
				return orig.call(this, data);
			};
		})()`))
		ts.LN.dropAll()
		waitFor(t, ctx, "four reconnects to be scheduled", `window.__delays.length >= 4`)
		delays := browsertest.Eval[[]float64](t, ctx, `window.__delays`)
		if delays[3] < 1000 {
			t.Fatalf("reconnect delays %v: no backoff after 4401", delays)
		}
	})
}

// A message the server asked to resend later (overloaded, retry_after_ms)
// is not overtaken by the messages after it.
func TestBrowserWidgetRetryKeepsOrder(t *testing.T) {
	ts, ctx := onlineWidget(t, serverOpts{})
	// The first send of "slow" is answered as the server's rate limit does.
	browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](`(() => {
		const orig = WebSocket.prototype.send;
		let refused = false;
		WebSocket.prototype.send = function (data) {
			let f = null;
			try { f = JSON.parse(data); } catch (e) { /* not JSON */ }
			if (f && f.type === "message" && f.text === "slow" && !refused) {
				refused = true;
				const sock = this;
				setTimeout(() => sock.dispatchEvent(new MessageEvent("message", { data: JSON.stringify({ type: "error", code: "overloaded", message: "too many messages; slow down", client_id: f.client_id, retry_after_ms: 1500 }) })), 0);
				return;
			}
			return orig.call(this, data);
		};
	})()`))
	sendFromWidget(t, ctx, "slow")
	waitFor(t, ctx, "the rate-limit answer", `window.__tandemWidget.state().outbox.some(x => x.retryAt > 0)`)
	sendFromWidget(t, ctx, "next")
	waitFor(t, ctx, "both answers", `document.getElementById("tandem-log").textContent.includes("echo: slow") && document.getElementById("tandem-log").textContent.includes("echo: next") && `+noPendingLeft)
	conv := browsertest.Eval[string](t, ctx, `window.__tandemWidget.state().conversationId`)
	if got := customerTexts(t, ts, conv); fmt.Sprint(got) != "[slow next]" {
		t.Fatalf("stored order = %q, want [slow next]", got)
	}
}

// brokenStreamBot streams its answers as streamBot does, except: "empty…"
// streams a little and then answers nothing; "stall…" streams a little and
// then waits (a node that died mid-answer) until release is closed.
type brokenStreamBot struct {
	echoBot
	release chan struct{}
}

func (b brokenStreamBot) RespondStream(ctx context.Context, turn tandem.Turn, onDelta func(string)) (tandem.Reply, error) {
	switch {
	case strings.HasPrefix(turn.Text, "empty"):
		onDelta("partial ")
		onDelta("empty")
		return tandem.Reply{Kind: tandem.ReplyAnswer}, nil
	case strings.HasPrefix(turn.Text, "stall"):
		onDelta("partial ")
		onDelta("stall")
		select {
		case <-b.release:
		case <-ctx.Done():
		}
		return tandem.Reply{Kind: tandem.ReplyAnswer}, nil
	}
	return streamBot{}.RespondStream(ctx, turn, onDelta)
}

// unsavedReplyLog fails to store the bot's replies to "nosave…".
type unsavedReplyLog struct{ gateway.ConvLog }

func (l unsavedReplyLog) Append(ctx context.Context, m tandem.Message) (tandem.Message, bool, error) {
	if m.Author == tandem.AuthorBot && strings.HasPrefix(m.Text, "echo: nosave") {
		return m, false, fmt.Errorf("the test refuses to store it")
	}
	return l.ConvLog.Append(ctx, m)
}

// sawStreamJS records the text of every streaming bubble the widget shows
// (window.__streams, by stream id), however briefly.
const sawStreamJS = `(() => {
	if (window.__streams) { return; }
	window.__streams = {};
	const log = document.getElementById("tandem-log");
	const note = () => log.querySelectorAll(".tandem-msg[data-stream]").forEach(e => { window.__streams[e.dataset.stream] = e.textContent; });
	new MutationObserver(note).observe(log, { childList: true, subtree: true, characterData: true });
})()`

const streamBubbles = `document.querySelectorAll("#tandem-log .tandem-msg[data-stream]").length`

// sawStream is true once a streaming bubble showed text.
func sawStream(text string) string {
	return fmt.Sprintf(`Object.values(window.__streams).some(t => t.includes(%q))`, text)
}

// A streamed answer that never completes leaves no bubble behind: an empty
// final answer, a reply that was not saved, a connection lost mid-stream.
func TestBrowserWidgetUnfinishedStreams(t *testing.T) {
	release := make(chan struct{})
	ts := startServer(t, serverOpts{bot: brokenStreamBot{release: release}, log: unsavedReplyLog{gateway.NewMemLog()}})
	t.Cleanup(func() { close(release) })
	g, purl := newSessionGate(t, ts.URL)
	ctx := browsertest.Start(t, 1200, 900)
	browsertest.Do(t, ctx, chromedp.Navigate(purl+"/"))
	waitFor(t, ctx, "the widget to connect", statusOnline)
	browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](sawStreamJS))

	t.Run("a streamed answer completes", func(t *testing.T) {
		sendFromWidget(t, ctx, "hello stream")
		waitFor(t, ctx, "the final answer", `document.getElementById("tandem-log").textContent.includes("echo: hello stream") && `+streamBubbles+` === 0`)
	})

	t.Run("the final answer is empty", func(t *testing.T) {
		sendFromWidget(t, ctx, "empty please")
		// The bot's typing-off frame follows its deltas.
		waitFor(t, ctx, "the stream and the end of the bot's typing", sawStream("partial empty")+` && document.getElementById("tandem-typing").textContent === ""`)
		if n := browsertest.Eval[int](t, ctx, streamBubbles); n != 0 {
			t.Fatalf("%d streaming bubbles left after an empty answer", n)
		}
	})

	t.Run("the reply was not saved", func(t *testing.T) {
		sendFromWidget(t, ctx, "nosave this")
		waitFor(t, ctx, "the stream", sawStream("echo: nosave this"))
		sendFromWidget(t, ctx, "and then")
		waitFor(t, ctx, "the next answer", `document.getElementById("tandem-log").textContent.includes("echo: and then")`)
		if got := browsertest.Eval[string](t, ctx, `Array.from(document.querySelectorAll("#tandem-log .tandem-msg[data-stream]")).map(e => e.textContent).join(" | ")`); got != "" {
			t.Fatalf("streaming bubbles left after the next answer: %q", got)
		}
	})

	t.Run("the connection drops mid-stream", func(t *testing.T) {
		sockets := g.wsTotal.Load()
		sendFromWidget(t, ctx, "stall here")
		waitFor(t, ctx, "the stream", sawStream("partial stall"))
		ts.LN.dropAll()
		waitCount(t, "the reconnect's socket", &g.wsTotal, sockets+1)
		waitFor(t, ctx, "the widget to reconnect", statusOnline)
		if n := browsertest.Eval[int](t, ctx, streamBubbles); n != 0 {
			t.Fatalf("%d streaming bubbles left after the reconnect", n)
		}
	})
}

// Right-to-left text (Arabic, Hebrew) reads right to left in the bubbles
// and in the input; left-to-right text stays so.
func TestBrowserWidgetTextDirection(t *testing.T) {
	_, ctx := onlineWidget(t, serverOpts{})
	rtl := func(sel string) string {
		return fmt.Sprintf(`Array.from(document.querySelectorAll(%q)).map(e => e.matches(":dir(rtl)") ? "rtl" : "ltr").join(",")`, sel)
	}

	browsertest.Do(t, ctx, chromedp.SendKeys(chromedp.ID("tandem-input"), "مرحبا بكم"))
	if got := browsertest.Eval[string](t, ctx, rtl("#tandem-input")); got != "rtl" {
		t.Fatalf("the input with Arabic text reads %s", got)
	}
	browsertest.Do(t, ctx, chromedp.Click(chromedp.ID("tandem-send")))
	waitFor(t, ctx, "the answer", `document.getElementById("tandem-log").textContent.includes("echo: مرحبا بكم") && `+noPendingLeft)
	if got := browsertest.Eval[string](t, ctx, rtl(`#tandem-log .tandem-msg[data-author="customer"] .tandem-text`)); got != "rtl" {
		t.Fatalf("the customer's Arabic message reads %s", got)
	}
	if got := browsertest.Eval[string](t, ctx, rtl(`#tandem-log .tandem-msg[data-author="bot"] .tandem-text`)); got != "ltr" {
		t.Fatalf("the bot's answer (starting in Latin) reads %s", got)
	}
	// A message the server refused, too.
	browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](refuseJS), chromedp.Evaluate[chromedp.Void](`window.__refuse = /^שלום/`))
	sendFromWidget(t, ctx, "שלום עולם")
	waitFor(t, ctx, "the refused message", `!!document.querySelector("#tandem-log .tandem-failed")`)
	if got := browsertest.Eval[string](t, ctx, rtl(`#tandem-log .tandem-failed .tandem-text`)); got != "rtl" {
		t.Fatalf("the unsent Hebrew message reads %s", got)
	}
}

// Two tabs share the stored state: a message waiting in one tab's outbox
// is not erased from storage when the other tab saves, so it is still sent
// after the first tab is gone.
func TestBrowserWidgetTabsKeepEachOthersOutbox(t *testing.T) {
	ts := startServer(t, serverOpts{})
	tabA := browsertest.Start(t, 1200, 900)
	browsertest.Do(t, tabA, chromedp.Navigate(ts.URL+"/"))
	waitFor(t, tabA, "tab A to connect", statusOnline)
	tabB := browsertest.Tab(t, tabA)
	browsertest.Do(t, tabB, chromedp.Navigate(ts.URL+"/"))
	waitFor(t, tabB, "tab B to connect", statusOnline)
	conv := browsertest.Eval[string](t, tabA, `window.__tandemWidget.state().conversationId`)
	if c := browsertest.Eval[string](t, tabB, `window.__tandemWidget.state().conversationId`); c != conv {
		t.Fatalf("the tabs are in conversations %q and %q", conv, c)
	}
	const storedOutbox = `(() => { const k = Object.keys(localStorage).find(k => k.startsWith("tandem:")); return JSON.parse(localStorage.getItem(k)).outbox.map(x => x.text).sort().join(","); })()`

	// Tab A's message never reaches the server (a link that swallows it).
	browsertest.Do(t, tabA, chromedp.Evaluate[chromedp.Void](`(() => {
		const orig = WebSocket.prototype.send;
		WebSocket.prototype.send = function (data) {
			try { if (JSON.parse(data).text === "from tab A") { return; } } catch (e) { /* not JSON */ }
			return orig.call(this, data);
		};
	})()`))
	sendFromWidget(t, tabA, "from tab A")
	waitFor(t, tabA, "tab A's message stored", storedOutbox+` === "from tab A"`)
	// Tab B sends and gets its answer: it saves several times meanwhile.
	sendFromWidget(t, tabB, "from tab B")
	waitFor(t, tabB, "tab B's answer", `document.getElementById("tandem-log").textContent.includes("echo: from tab B") && `+noPendingLeft)
	if got := browsertest.Eval[string](t, tabB, storedOutbox); got != "from tab A" {
		t.Fatalf("stored outbox after tab B's message = %q, want tab A's message", got)
	}

	// Tab A goes; tab B, reloaded, sends its message.
	browsertest.Do(t, tabA, chromedp.Navigate("about:blank"))
	browsertest.Do(t, tabB, chromedp.Reload())
	waitFor(t, tabB, "tab A's message answered", `document.getElementById("tandem-log").textContent.includes("echo: from tab A") && `+noPendingLeft)
	if got := customerTexts(t, ts, conv); fmt.Sprint(got) != "[from tab B from tab A]" {
		t.Fatalf("stored customer messages = %q", got)
	}
	if got := browsertest.Eval[string](t, tabB, storedOutbox); got != "" {
		t.Fatalf("stored outbox at the end = %q", got)
	}
}

// swallowAcksJS makes the page's sockets drop the server's ack frames (the
// page is reloaded before they arrive).
const swallowAcksJS = `(() => {
	const desc = Object.getOwnPropertyDescriptor(WebSocket.prototype, "onmessage");
	Object.defineProperty(WebSocket.prototype, "onmessage", {
		configurable: true,
		get() { return desc.get.call(this); },
		set(fn) {
			desc.set.call(this, function (e) {
				try { if (JSON.parse(e.data).type === "ack") { return; } } catch (err) { /* not JSON */ }
				return fn.call(this, e);
			});
		},
	});
})()`

// A message whose logged copy arrived before its ack (frames of different
// kinds interleave), with the page reloaded before the ack: after the
// reload it is shown once, not once more as a bubble stuck "sending".
func TestBrowserWidgetLoggedBeforeAckShownOnce(t *testing.T) {
	ts := startServer(t, serverOpts{})
	ctx := browsertest.Start(t, 1200, 900)
	// The acks are lost until the reload.
	browsertest.Do(t, ctx, chromedp.Navigate(ts.URL+"/"), chromedp.Evaluate[chromedp.Void](swallowAcksJS))
	waitFor(t, ctx, "the widget to connect", statusOnline)
	// (The socket may have been set up before the override: reconnect.)
	ts.LN.dropAll()
	waitFor(t, ctx, "the widget to reconnect", statusOnline)
	sendFromWidget(t, ctx, "logged first")
	waitFor(t, ctx, "the answer, the message logged but not acknowledged",
		`document.getElementById("tandem-log").textContent.includes("echo: logged first") && `+pendingCount+` === 0 && `+outboxLength+` === 1`)

	browsertest.Do(t, ctx, chromedp.Reload())
	waitFor(t, ctx, "the widget to reconnect after the reload", statusOnline+` && `+outboxLength+` === 0`)
	sendFromWidget(t, ctx, "after reload")
	waitFor(t, ctx, "the next answer", `document.getElementById("tandem-log").textContent.includes("echo: after reload") && `+outboxLength+` === 0`)
	shown := browsertest.Eval[int](t, ctx, `Array.from(document.querySelectorAll("#tandem-log .tandem-msg")).filter(e => e.querySelector(".tandem-text").textContent === "logged first").length`)
	if n := browsertest.Eval[int](t, ctx, pendingCount); shown != 1 || n != 0 {
		t.Fatalf("the message is shown %d times, %d bubbles pending; want once, none", shown, n)
	}
	conv := browsertest.Eval[string](t, ctx, `window.__tandemWidget.state().conversationId`)
	if got := customerTexts(t, ts, conv); fmt.Sprint(got) != "[logged first after reload]" {
		t.Fatalf("stored customer messages = %q", got)
	}
}

// A link that dies silently (no close ever comes) is given up by the
// heartbeat watchdog, and the widget reconnects at once: it does not wait
// for the browser's close handshake on the dead socket (a minute in
// Chromium) before trying again, and the message written meanwhile is
// delivered.
func TestBrowserWidgetDeadLinkReconnects(t *testing.T) {
	ts := startServer(t, serverOpts{cfg: gateway.ChatConfig{PingInterval: 500 * time.Millisecond}})
	p := browsertest.NewHoleProxy(t, ts.URL)
	ctx := browsertest.Start(t, 1200, 900)
	browsertest.Do(t, ctx, chromedp.Navigate(p.URL()+"/"))
	waitFor(t, ctx, "the widget to connect", statusOnline)
	conns := p.Connections()
	p.Blackhole(true)
	sendFromWidget(t, ctx, "on a dead link")
	// The watchdog fires after two silent heartbeats (+5 s); the hang
	// guard (45 s) is well below Chromium's close-handshake timeout.
	waitFor(t, ctx, "the answer over a new connection", `document.getElementById("tandem-log").textContent.includes("echo: on a dead link") && `+noPendingLeft)
	if p.Connections() == conns {
		t.Fatal("the widget did not open a new connection")
	}
	conv := browsertest.Eval[string](t, ctx, `window.__tandemWidget.state().conversationId`)
	if got := customerTexts(t, ts, conv); fmt.Sprint(got) != "[on a dead link]" {
		t.Fatalf("stored customer messages = %q", got)
	}
}

// Text pasted into the input is never cut silently: too long text stays
// whole in the input with the "too long" alert (nothing is sent), and text
// within the server's limit of 4000 code points is sent whole even when it
// is longer in UTF-16 units (emoji).
func TestBrowserWidgetPasteIsNotTruncated(t *testing.T) {
	ts, ctx := onlineWidget(t, serverOpts{})
	paste := func(js string) {
		t.Helper()
		browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](`(() => {
			const i = document.getElementById("tandem-input");
			i.value = ""; i.focus();
			document.execCommand("insertText", false, `+js+`);
		})()`))
	}

	paste(`"y".repeat(4100)`)
	if n := browsertest.Eval[int](t, ctx, `document.getElementById("tandem-input").value.length`); n != 4100 {
		t.Fatalf("the input holds %d of the 4100 pasted characters", n)
	}
	browsertest.Do(t, ctx, chromedp.Click(chromedp.ID("tandem-send")))
	if got := browsertest.Eval[string](t, ctx, `document.getElementById("tandem-form-error").textContent`); !strings.Contains(got, "too long") {
		t.Fatalf("form error after pasting 4100 characters = %q", got)
	}
	if n := browsertest.Eval[int](t, ctx, outboxLength+` + `+pendingCount); n != 0 {
		t.Fatalf("%d queued or pending after too long text", n)
	}

	emoji := strings.Repeat("😀", 2500) // 2,500 code points, 5,000 UTF-16 units
	paste(fmt.Sprintf("%q", emoji))
	browsertest.Do(t, ctx, chromedp.Click(chromedp.ID("tandem-send")))
	waitFor(t, ctx, "the emoji message stored", noPendingLeft+` && document.getElementById("tandem-log").textContent.includes("echo: 😀")`)
	conv := browsertest.Eval[string](t, ctx, `window.__tandemWidget.state().conversationId`)
	if got := customerTexts(t, ts, conv); len(got) != 1 || got[0] != emoji {
		t.Fatalf("stored customer messages: %d, the first of %d bytes, want the %d bytes pasted", len(got), len(strings.Join(got, "")), len(emoji))
	}
}

// Keyboard use: a control that goes away after it was used (a quick reply,
// once the customer's message is logged; Retry on a message not sent)
// leaves the focus in the widget's input, not on the page's body (where
// Escape and typing no longer reach the chat).
func TestBrowserWidgetFocusStaysAfterUsedControlsGo(t *testing.T) {
	_, ctx := onlineWidget(t, serverOpts{})
	const focused = `document.activeElement ? (document.activeElement.id || document.activeElement.tagName) : ""`

	t.Run("quick reply", func(t *testing.T) {
		sendFromWidget(t, ctx, "help")
		waitFor(t, ctx, "quick replies", `document.querySelectorAll("#tandem-quick button").length === 2`)
		browsertest.Do(t, ctx, chromedp.Focus(chromedp.CSS("#tandem-quick button")), chromedp.SendKeys(chromedp.CSS("#tandem-quick button"), "\r"))
		waitFor(t, ctx, "the quick reply's answer", `document.getElementById("tandem-log").textContent.includes("echo: Shipping") && `+noPendingLeft+` && document.querySelectorAll("#tandem-quick button").length === 0`)
		if got := browsertest.Eval[string](t, ctx, focused); got != "tandem-input" {
			t.Fatalf("focus after a quick reply = %q, want the input", got)
		}
	})

	t.Run("retry", func(t *testing.T) {
		browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](refuseJS), chromedp.Evaluate[chromedp.Void](`window.__refuse = /^refuse/`))
		sendFromWidget(t, ctx, "refuse once")
		waitFor(t, ctx, "the not-sent state", `!!document.querySelector("#tandem-log .tandem-failed .tandem-retry")`)
		browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](`window.__refuse = null`),
			chromedp.Focus(chromedp.CSS("#tandem-log .tandem-failed .tandem-retry")), chromedp.SendKeys(chromedp.CSS("#tandem-log .tandem-failed .tandem-retry"), "\r"))
		waitFor(t, ctx, "the retried message's answer", `document.getElementById("tandem-log").textContent.includes("echo: refuse once") && `+noPendingLeft)
		if got := browsertest.Eval[string](t, ctx, focused); got != "tandem-input" {
			t.Fatalf("focus after Retry = %q, want the input", got)
		}
	})
}

// A long chat does not grow the page without bound: the log keeps the
// latest 500 messages, as many as the widget caches for reloads.
func TestBrowserWidgetLongChatStaysBounded(t *testing.T) {
	_, ctx := onlineWidget(t, serverOpts{})
	sendFromWidget(t, ctx, "hello")
	waitFor(t, ctx, "the answer", `document.getElementById("tandem-log").textContent.includes("echo: hello") && `+noPendingLeft)
	// 1,500 more logged messages arrive on the widget's socket (as from a
	// long conversation with an agent), each a streamed bot answer.
	browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](`(() => {
		const orig = WebSocket.prototype.send;
		WebSocket.prototype.send = function (data) { window.__sock = this; return orig.call(this, data); };
	})()`))
	sendFromWidget(t, ctx, "capture")
	waitFor(t, ctx, "the socket", `!!window.__sock && `+noPendingLeft+` && document.getElementById("tandem-log").textContent.includes("echo: capture")`)
	browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](`(() => {
		const st = window.__tandemWidget.state();
		let seq = st.lastSeq;
		for (let i = 0; i < 1500; i++) {
			seq++;
			const sid = "s-" + seq;
			window.__sock.dispatchEvent(new MessageEvent("message", { data: JSON.stringify({ type: "delta", conversation_id: st.conversationId, stream_id: sid, reply_to: seq - 1, text: "part" }) }));
			window.__sock.dispatchEvent(new MessageEvent("message", { data: JSON.stringify({ type: "message", conversation_id: st.conversationId,
				message: { seq: seq, author: "bot", text: "long chat " + seq, kind: "text", data: { reply_to: seq - 1, stream_id: sid }, created_at: new Date().toISOString() } }) }));
		}
		window.__lastInjected = seq;
	})()`))
	last := browsertest.Eval[int](t, ctx, `window.__lastInjected`)
	waitFor(t, ctx, "the last injected message", fmt.Sprintf(`document.getElementById("tandem-log").lastElementChild.dataset.seq === "%d"`, last))
	n := browsertest.Eval[int](t, ctx, `document.querySelectorAll("#tandem-log .tandem-msg").length`)
	if n > 500 {
		t.Fatalf("the log holds %d messages, want at most 500", n)
	}
	if got := browsertest.Eval[[]int](t, ctx, loggedSeqs); len(got) == 0 || got[len(got)-1] != last || got[0] != last-len(got)+1 {
		t.Fatalf("the log does not keep the latest messages in order: first %v", got[:3])
	}
}

// fillStorageJS fills the page's localStorage (the host site's data) until
// nothing more fits.
const fillStorageJS = `(() => {
	let chunk = "j".repeat(1 << 20), i = 0;
	while (chunk.length > 0) {
		try { localStorage.setItem("site-junk-" + (i++), chunk); } catch (e) { chunk = chunk.slice(0, Math.floor(chunk.length / 4)); }
	}
})()`

// When the site's localStorage is (nearly) full, a message written
// offline is still stored and survives a reload: the widget caches fewer
// past messages rather than failing to store its outbox.
func TestBrowserWidgetOutboxKeptWhenStorageIsFull(t *testing.T) {
	ts := startServer(t, serverOpts{})
	g, purl := newSessionGate(t, ts.URL)
	ctx := browsertest.Start(t, 1200, 900)
	browsertest.Do(t, ctx, chromedp.Navigate(purl+"/"))
	waitFor(t, ctx, "the widget to connect", statusOnline)
	for i := 0; i < 3; i++ {
		text := fmt.Sprintf("long %d %s", i, strings.Repeat("words ", 500))
		browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => { const i = document.getElementById("tandem-input"); i.value = %q; document.getElementById("tandem-send").click(); })()`, text)))
		waitFor(t, ctx, "the answer", fmt.Sprintf(`document.getElementById("tandem-log").textContent.includes("echo: long %d") && `+noPendingLeft, i))
	}
	browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](fillStorageJS))
	// Offline: the link drops and session requests hang.
	g.hold()
	ts.LN.dropAll()
	waitFor(t, ctx, "the widget to notice", `document.getElementById("tandem-status").textContent.includes("onnecting")`)
	sendFromWidget(t, ctx, "written offline")
	browsertest.Do(t, ctx, chromedp.Reload())
	waitFor(t, ctx, "the widget after the reload", `!!document.getElementById("tandem-log")`)
	if n := browsertest.Eval[int](t, ctx, outboxLength); n != 1 {
		t.Fatalf("outbox after the reload has %d messages, want the one written offline", n)
	}
	g.open()
	waitFor(t, ctx, "the offline message's answer", `document.getElementById("tandem-log").textContent.includes("echo: written offline") && `+noPendingLeft)
}

// Messages written in a row are stored in that order even when the server
// turns one away for now (its rate limit, or the bot still busy with the
// earlier ones: overloaded) while the next one, already on its way, would
// be taken: the widget sends the next message only once the previous one
// is acknowledged.
func TestBrowserWidgetBurstKeepsOrder(t *testing.T) {
	ts, ctx := onlineWidget(t, serverOpts{})
	// The first "second" is turned away as the server does when the bot
	// queue is full (the third, sent right behind it, would be taken).
	browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](`(() => {
		const orig = WebSocket.prototype.send;
		let refused = false;
		WebSocket.prototype.send = function (data) {
			let f = null;
			try { f = JSON.parse(data); } catch (e) { /* not JSON */ }
			if (f && f.type === "message" && f.text === "second" && !refused) {
				refused = true;
				const sock = this;
				setTimeout(() => sock.dispatchEvent(new MessageEvent("message", { data: JSON.stringify({ type: "error", code: "overloaded", message: "the assistant is still answering your previous messages", client_id: f.client_id }) })), 5);
				return;
			}
			return orig.call(this, data);
		};
	})()`))
	browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](`(() => {
		const i = document.getElementById("tandem-input"), b = document.getElementById("tandem-send");
		for (const text of ["first", "second", "third"]) { i.value = text; b.click(); }
	})()`))
	waitFor(t, ctx, "all three answers", `["first", "second", "third"].every(x => document.getElementById("tandem-log").textContent.includes("echo: " + x)) && `+noPendingLeft)
	conv := browsertest.Eval[string](t, ctx, `window.__tandemWidget.state().conversationId`)
	if got := customerTexts(t, ts, conv); fmt.Sprint(got) != "[first second third]" {
		t.Fatalf("stored order = %q, want [first second third]", got)
	}
}

// An answer that arrives while the chat panel is closed is not missed: the
// launcher says how many new messages wait (for every user, and in its
// accessible name), a live region outside the closed panel announces it
// to screen readers, and opening the panel clears the count.
func TestBrowserWidgetNewMessagesWhileClosed(t *testing.T) {
	ts, ctx := onlineWidget(t, serverOpts{})
	conv := helloFromWidget(t, ctx)
	browsertest.Do(t, ctx, chromedp.Click(chromedp.ID("tandem-launcher")))
	waitFor(t, ctx, "the panel to close", `document.getElementById("tandem-panel").hidden`)
	launcher := browsertest.Eval[string](t, ctx, `document.getElementById("tandem-launcher").textContent`)

	if _, _, err := ts.Chat.PostMessage(context.Background(), tandem.Message{ConversationID: conv, ClientID: "agent:a1", Author: tandem.AuthorAgent, AuthorName: "Ann", Text: "Hi, I'm Ann. How can I help?", Kind: "text"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the agent's message", `document.getElementById("tandem-log").textContent.includes("I'm Ann")`)
	// Accessible name: aria-label if set, else the text.
	const name = `(() => { const l = document.getElementById("tandem-launcher"); return (l.getAttribute("aria-label") || l.textContent); })()`
	if got := browsertest.Eval[string](t, ctx, name); !strings.Contains(got, "1 new") {
		t.Errorf("the launcher's accessible name with the panel closed = %q, want it to count 1 new message", got)
	}
	if got := browsertest.Eval[string](t, ctx, `document.getElementById("tandem-launcher").textContent`); got == launcher {
		t.Errorf("the launcher shows no sign of the new message: %q", got)
	}
	announced := browsertest.Eval[bool](t, ctx, `Array.from(document.querySelectorAll("#tandem-root [aria-live]")).some(e => !e.closest("[hidden]") && e.textContent.includes("I'm Ann"))`)
	if !announced {
		t.Errorf("no live region outside the closed panel announces the new message")
	}
	browsertest.Do(t, ctx, chromedp.Click(chromedp.ID("tandem-launcher")))
	waitFor(t, ctx, "the panel to open", `!document.getElementById("tandem-panel").hidden`)
	if got := browsertest.Eval[string](t, ctx, name); strings.Contains(got, "new") {
		t.Errorf("the launcher after opening = %q, want no count", got)
	}

	// An answer written while the widget was offline counts too when the
	// reconnect's replay brings it.
	browsertest.Do(t, ctx, chromedp.Click(chromedp.ID("tandem-launcher")))
	waitFor(t, ctx, "the panel to close", `document.getElementById("tandem-panel").hidden`)
	ts.LN.setDown(true)
	waitFor(t, ctx, "the widget to notice", `document.getElementById("tandem-status").textContent.includes("connecting")`)
	if _, _, err := ts.Chat.PostMessage(context.Background(), tandem.Message{ConversationID: conv, ClientID: "agent:a2", Author: tandem.AuthorAgent, AuthorName: "Ann", Text: "Are you still there?", Kind: "text"}); err != nil {
		t.Fatal(err)
	}
	ts.LN.setDown(false)
	waitFor(t, ctx, "the replayed message", `document.getElementById("tandem-log").textContent.includes("still there?")`)
	if got := browsertest.Eval[string](t, ctx, name); !strings.Contains(got, "1 new") {
		t.Errorf("the launcher after a replayed answer = %q, want it to count 1 new message", got)
	}
}

// A 4000-character text of control characters (six bytes each in JSON: a
// 24 KB frame) fits the server's read limit and is answered: with the old
// 16 KiB limit the widget had to refuse it ("too long") although it is
// within 4000 characters, and sent, it closed the connection (1009).
func TestBrowserWidgetLongestFrameAnswered(t *testing.T) {
	_, ctx := onlineWidget(t, serverOpts{})
	browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](`(() => { const i = document.getElementById("tandem-input"); i.value = "x" + "\u0001".repeat(3998) + "x"; document.getElementById("tandem-send").click(); })()`))
	waitFor(t, ctx, "the answer to 4000 control characters", `document.getElementById("tandem-log").textContent.includes("echo: x\u0001") && `+noPendingLeft)
	if got := browsertest.Eval[string](t, ctx, `document.getElementById("tandem-form-error").textContent`); got != "" {
		t.Errorf("form error after a 4000-character text of a 24 KB frame = %q", got)
	}
	sendFromWidget(t, ctx, "still works")
	waitFor(t, ctx, "the next message's answer", `document.getElementById("tandem-log").textContent.includes("echo: still works") && `+noPendingLeft)
}

// When the browser comes back online (a laptop waking up, a new network)
// the widget's socket may be dead without knowing it: the widget checks it
// at once (a ping) and reconnects when it gets no answer, as
// docs/protocol.md says ("a browser online event retries at once"),
// rather than after its watchdog's two silent heartbeats (here minutes).
func TestBrowserWidgetOnlineChecksTheLink(t *testing.T) {
	ts := startServer(t, serverOpts{cfg: gateway.ChatConfig{PingInterval: 10 * time.Minute, PongWait: 20 * time.Minute}})
	p := browsertest.NewHoleProxy(t, ts.URL)
	ctx := browsertest.Start(t, 1200, 900)
	browsertest.Do(t, ctx, chromedp.Navigate(p.URL()+"/"))
	waitFor(t, ctx, "the widget to connect", statusOnline)

	t.Run("a live link is kept", func(t *testing.T) {
		conns := p.Connections()
		browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](`window.dispatchEvent(new Event("online"))`))
		sendFromWidget(t, ctx, "still here")
		waitFor(t, ctx, "the answer", `document.getElementById("tandem-log").textContent.includes("echo: still here") && `+noPendingLeft)
		time.Sleep(6 * time.Second) // past the check's wait
		if n := p.Connections(); n != conns {
			t.Fatalf("%d new connections after an online event on a live link, want none", n-conns)
		}
	})

	t.Run("a dead link is replaced", func(t *testing.T) {
		conns := p.Connections()
		p.Blackhole(true)
		sendFromWidget(t, ctx, "after waking up")
		browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](`window.dispatchEvent(new Event("online"))`))
		waitFor(t, ctx, "the answer over a new connection", `document.getElementById("tandem-log").textContent.includes("echo: after waking up") && `+noPendingLeft)
		if p.Connections() == conns {
			t.Fatal("the widget did not open a new connection")
		}
	})
}

// A double click on "Talk to a person" (or the button and then the quick
// reply) asks once: a request still on its way is not queued again.
func TestBrowserWidgetHandoffRequestedOnce(t *testing.T) {
	ts, ctx := onlineWidget(t, serverOpts{})
	browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](`(() => { const b = document.getElementById("tandem-human"); b.click(); b.click(); })()`))
	waitFor(t, ctx, "the request stored", noPendingLeft+` && document.getElementById("tandem-log").textContent.includes("get a person")`)
	sendFromWidget(t, ctx, "and then")
	waitFor(t, ctx, "the next message stored", noPendingLeft+` && Array.from(document.querySelectorAll('#tandem-log .tandem-msg[data-author="customer"]')).some(e => e.textContent === "and then")`)
	conv := browsertest.Eval[string](t, ctx, `window.__tandemWidget.state().conversationId`)
	msgs, err := ts.Log.Messages(context.Background(), conv, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range msgs {
		if m.Kind == "handoff_request" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d handoff requests stored after a double click, want 1", n)
	}
}

// A long history replayed on a new device (or after a cleared cache) is
// not written to localStorage once per message: each write serialises the
// whole cache (up to 500 messages), which froze the host page for seconds.
// The cache still ends up with the latest message.
func TestBrowserWidgetReplayCoalescesStorageWrites(t *testing.T) {
	_, ctx := onlineWidget(t, serverOpts{})
	browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](`(() => {
		const orig = WebSocket.prototype.send;
		WebSocket.prototype.send = function (data) { window.__sock = this; return orig.call(this, data); };
		const set = Storage.prototype.setItem;
		window.__writes = 0;
		Storage.prototype.setItem = function (k, v) { if (k.startsWith("tandem:")) { window.__writes++; } return set.call(this, k, v); };
	})()`))
	sendFromWidget(t, ctx, "capture")
	waitFor(t, ctx, "the socket", `!!window.__sock && `+noPendingLeft+` && document.getElementById("tandem-log").textContent.includes("echo: capture")`)
	browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](`(() => {
		const st = window.__tandemWidget.state();
		window.__writes = 0;
		let seq = st.lastSeq;
		for (let i = 0; i < 1000; i++) {
			seq++;
			window.__sock.dispatchEvent(new MessageEvent("message", { data: JSON.stringify({ type: "message", conversation_id: st.conversationId,
				message: { seq: seq, author: i % 2 ? "bot" : "customer", text: "history " + seq, kind: "text", created_at: new Date().toISOString() } }) }));
		}
		window.__lastInjected = seq;
	})()`))
	last := browsertest.Eval[int](t, ctx, `window.__lastInjected`)
	waitFor(t, ctx, "the cache to hold the latest message", fmt.Sprintf(`(() => { const k = Object.keys(localStorage).find(k => k.startsWith("tandem:")); return JSON.parse(localStorage.getItem(k)).lastSeq === %d; })()`, last))
	if n := browsertest.Eval[int](t, ctx, `window.__writes`); n > 100 {
		t.Fatalf("%d localStorage writes for 1,000 replayed messages", n)
	}
}

// A customer who scrolled up to read earlier messages is not pulled to the
// bottom by every new message of the bot or an agent (or every piece of a
// streamed answer); at the bottom, the log follows new messages, and their
// own message always brings them down.
func TestBrowserWidgetScrollStaysWhileReading(t *testing.T) {
	ts, ctx := onlineWidget(t, serverOpts{bot: streamBot{}})
	for i := 0; i < 8; i++ {
		sendFromWidget(t, ctx, fmt.Sprintf("question %d %s", i, strings.Repeat("filler ", 30)))
		waitFor(t, ctx, "the answer", fmt.Sprintf(`document.getElementById("tandem-log").textContent.includes("echo: question %d") && `+noPendingLeft, i))
	}
	const atBottom = `(() => { const l = document.getElementById("tandem-log"); return l.scrollHeight - l.scrollTop - l.clientHeight < 4; })()`
	if !browsertest.Eval[bool](t, ctx, atBottom) {
		t.Fatal("the log does not follow new messages at the bottom")
	}
	conv := browsertest.Eval[string](t, ctx, `window.__tandemWidget.state().conversationId`)
	browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](`document.getElementById("tandem-log").scrollTop = 0`))
	if _, _, err := ts.Chat.PostMessage(context.Background(), tandem.Message{ConversationID: conv, ClientID: "agent:a1", Author: tandem.AuthorAgent, AuthorName: "Ann", Text: "Anything else?", Kind: "text"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the agent's message", `document.getElementById("tandem-log").textContent.includes("Anything else?")`)
	if top := browsertest.Eval[float64](t, ctx, `document.getElementById("tandem-log").scrollTop`); top != 0 {
		t.Fatalf("the log scrolled to %v while the customer read from the top", top)
	}
	sendFromWidget(t, ctx, "one more")
	waitFor(t, ctx, "the answer", `document.getElementById("tandem-log").textContent.includes("echo: one more") && `+noPendingLeft)
	if !browsertest.Eval[bool](t, ctx, atBottom) {
		t.Fatal("the customer's own message did not bring the log to the bottom")
	}
}

// After an agent closed the conversation the customer may write again
// ("Write again any time"): the bot answers and reopens it, and the status
// says so instead of "Conversation closed" next to the bot's answers.
func TestBrowserWidgetStatusAfterClosedConversationReopens(t *testing.T) {
	ts, ctx := onlineWidget(t, serverOpts{})
	closeWidgetConversation(t, ts, ctx)
	waitFor(t, ctx, "the closed status", `document.getElementById("tandem-status").textContent === "Conversation closed"`)
	sendFromWidget(t, ctx, "one more thing")
	waitFor(t, ctx, "the bot's answer", `document.getElementById("tandem-log").textContent.includes("echo: one more thing") && `+noPendingLeft)
	if got := browsertest.Eval[string](t, ctx, `document.getElementById("tandem-status").textContent`); got != "Online" {
		t.Fatalf("status while the bot answers again = %q, want Online", got)
	}
}

// The bot and an agent may type at once (the bot finishing an answer as
// the agent takes over): the bot's "stopped typing" does not hide that the
// agent is still typing.
func TestBrowserWidgetTypingOfEachAuthor(t *testing.T) {
	_, ctx := onlineWidget(t, serverOpts{})
	browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](`(() => {
		const orig = WebSocket.prototype.send;
		WebSocket.prototype.send = function (data) { window.__sock = this; return orig.call(this, data); };
	})()`))
	sendFromWidget(t, ctx, "capture")
	waitFor(t, ctx, "the socket", `!!window.__sock && `+noPendingLeft+` && document.getElementById("tandem-log").textContent.includes("echo: capture")`)
	const typing = `document.getElementById("tandem-typing").textContent`
	frame := func(author, name string, on bool) {
		t.Helper()
		browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`window.__sock.dispatchEvent(new MessageEvent("message", { data: JSON.stringify({ type: "typing", conversation_id: window.__tandemWidget.state().conversationId, author: %q, name: %q, on: %v }) }))`, author, name, on)))
	}
	frame("agent", "Ann", true)
	frame("bot", "Assistant", true)
	frame("bot", "Assistant", false)
	if got := browsertest.Eval[string](t, ctx, typing); got != "Ann is typing…" {
		t.Fatalf("typing line after the bot stopped = %q, want Ann's", got)
	}
	frame("agent", "Ann", false)
	if got := browsertest.Eval[string](t, ctx, typing); got != "" {
		t.Fatalf("typing line after both stopped = %q", got)
	}
}

// A contact address whose answer was lost with the connection, sent again
// by the customer, is stored once: the resend keeps its client id, so the
// server acknowledges it as a duplicate instead of logging a second note.
func TestBrowserWidgetContactResentOnce(t *testing.T) {
	url, _ := startHandoffServer(t)
	ctx := browsertest.Start(t, 390, 844)
	browsertest.Do(t, ctx, chromedp.Navigate(url+"/"))
	waitFor(t, ctx, "the widget to connect", statusOnline)
	browsertest.Do(t, ctx, chromedp.Click(chromedp.ID("tandem-human")))
	waitFor(t, ctx, "the contact form", `!document.getElementById("tandem-contact").hidden`)
	// The first contact frame goes out, then the link drops before its ack.
	browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](`(() => {
		const orig = WebSocket.prototype.send;
		let dropped = false;
		WebSocket.prototype.send = function (data) {
			const r = orig.call(this, data);
			try { if (!dropped && JSON.parse(data).type === "contact") { dropped = true; this.close(); } } catch (e) { /* not JSON */ }
			return r;
		};
	})()`))
	browsertest.Do(t, ctx, chromedp.SendKeys(chromedp.ID("tandem-contact-input"), "ada@example.com"), chromedp.Click(chromedp.ID("tandem-contact-send")))
	waitFor(t, ctx, "the not-sent note", `document.getElementById("tandem-contact-msg").textContent.includes("connection dropped")`)
	waitFor(t, ctx, "the widget to reconnect", `document.getElementById("tandem-status").textContent.startsWith("Waiting for an agent") || document.getElementById("tandem-status").textContent.includes("No agent")`)
	waitFor(t, ctx, "the first note replayed", `Array.from(document.querySelectorAll('#tandem-log .tandem-msg[data-author="system"]')).some(e => e.textContent.includes("ada@example.com"))`)
	browsertest.Do(t, ctx, chromedp.Click(chromedp.ID("tandem-contact-send")))
	waitFor(t, ctx, "the confirmation", `document.getElementById("tandem-contact-msg").textContent.includes("We'll get back to you at ada@example.com")`)
	sendFromWidget(t, ctx, "anything else")
	waitFor(t, ctx, "the bot's answer", `document.getElementById("tandem-log").textContent.includes("echo: anything else")`)
	if n := browsertest.Eval[int](t, ctx, `Array.from(document.querySelectorAll('#tandem-log .tandem-msg[data-author="system"]')).filter(e => e.textContent.includes("ada@example.com")).length`); n != 1 {
		t.Fatalf("%d contact notes in the log, want 1", n)
	}
}

// Typing with an input method (Japanese, Chinese, Korean): the Escape that
// cancels a composition does not close the chat, and the Enter that
// confirms one (Safari reports it with keyCode 229, not isComposing) does
// not send the message half written.
func TestBrowserWidgetIMEKeys(t *testing.T) {
	_, ctx := onlineWidget(t, serverOpts{})
	key := func(name string, composing bool, keyCode int) {
		t.Helper()
		browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => {
			const i = document.getElementById("tandem-input");
			i.focus();
			const e = new KeyboardEvent("keydown", { key: %q, isComposing: %v, bubbles: true, cancelable: true });
			if (%d) { Object.defineProperty(e, "keyCode", { get: () => %d }); }
			i.dispatchEvent(e);
		})()`, name, composing, keyCode, keyCode)))
	}
	browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](`document.getElementById("tandem-input").value = "にほんご"`))
	key("Escape", true, 0)
	if browsertest.Eval[bool](t, ctx, `document.getElementById("tandem-panel").hidden`) {
		t.Fatal("the Escape that cancels a composition closed the chat")
	}
	key("Enter", false, 229)
	if n := browsertest.Eval[int](t, ctx, outboxLength+` + `+pendingCount); n != 0 || browsertest.Eval[string](t, ctx, `document.getElementById("tandem-input").value`) != "にほんご" {
		t.Fatal("the Enter that confirms a composition sent the message")
	}
	key("Enter", false, 13)
	waitFor(t, ctx, "the answer", `document.getElementById("tandem-log").textContent.includes("echo: にほんご") && `+noPendingLeft)
	key("Escape", false, 27)
	waitFor(t, ctx, "the panel to close", `document.getElementById("tandem-panel").hidden`)
}

// The contact form hidden while an address was on its way (an agent took
// the conversation) and shown again later (nobody online again) can be
// used: its Send button is not left disabled.
func TestBrowserWidgetContactFormUsableAgain(t *testing.T) {
	_, ctx := onlineWidget(t, serverOpts{})
	// Contact frames vanish (no answer comes); the socket is kept to play
	// the server's handoff frames.
	browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](`(() => {
		const orig = WebSocket.prototype.send;
		WebSocket.prototype.send = function (data) {
			window.__sock = this;
			try { if (JSON.parse(data).type === "contact") { return; } } catch (e) { /* not JSON */ }
			return orig.call(this, data);
		};
	})()`))
	sendFromWidget(t, ctx, "capture")
	waitFor(t, ctx, "the socket", `!!window.__sock && `+noPendingLeft+` && document.getElementById("tandem-log").textContent.includes("echo: capture")`)
	handoff := func(js string) {
		t.Helper()
		browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](`window.__sock.dispatchEvent(new MessageEvent("message", { data: JSON.stringify(Object.assign({ type: "handoff", conversation_id: window.__tandemWidget.state().conversationId }, `+js+`)) }))`))
	}
	handoff(`{ status: "unavailable", message: "No agent is online right now", leave_contact: true }`)
	waitFor(t, ctx, "the contact form", `!document.getElementById("tandem-contact").hidden`)
	browsertest.Do(t, ctx, chromedp.SendKeys(chromedp.ID("tandem-contact-input"), "ada@example.com"), chromedp.Click(chromedp.ID("tandem-contact-send")))
	waitFor(t, ctx, "the address on its way", `document.getElementById("tandem-contact-send").disabled`)
	handoff(`{ status: "assigned", agent_name: "Ann" }`)
	waitFor(t, ctx, "the form hidden", `document.getElementById("tandem-contact").hidden`)
	handoff(`{ status: "unavailable", message: "No agent is online right now", leave_contact: true }`)
	waitFor(t, ctx, "the form again", `!document.getElementById("tandem-contact").hidden`)
	if browsertest.Eval[bool](t, ctx, `document.getElementById("tandem-contact-send").disabled`) {
		t.Fatal("the contact form's Send button is still disabled")
	}
}

// A message waiting to be sent (offline, it may wait long) stays readable:
// its text has at least WCAG AA contrast (4.5:1) with its bubble.
func TestBrowserWidgetPendingMessageContrast(t *testing.T) {
	ts := startServer(t, serverOpts{})
	g, purl := newSessionGate(t, ts.URL)
	ctx := browsertest.Start(t, 1200, 900)
	browsertest.Do(t, ctx, chromedp.Navigate(purl+"/"))
	waitFor(t, ctx, "the widget to connect", statusOnline)
	g.hold()
	ts.LN.dropAll()
	waitFor(t, ctx, "the widget to notice", `document.getElementById("tandem-status").textContent.includes("onnecting")`)
	sendFromWidget(t, ctx, "waiting to be sent")
	ratio := browsertest.Eval[float64](t, ctx, `(() => {
		const n = document.querySelector("#tandem-log .tandem-pending");
		const rgb = s => s.match(/[\d.]+/g).map(Number);
		const cs = getComputedStyle(n), a = +cs.opacity;
		const back = rgb(getComputedStyle(document.getElementById("tandem-log")).backgroundColor);
		let bg = rgb(cs.backgroundColor);
		if (bg.length === 4 && bg[3] === 0) { bg = back; }
		const fg = rgb(getComputedStyle(n.querySelector(".tandem-text")).color);
		const mix = c => c.slice(0, 3).map((v, i) => a * v + (1 - a) * back[i]); // the bubble's opacity over the log
		const lum = c => { const [r, g, b] = c.map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }); return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
		const l1 = lum(mix(bg)), l2 = lum(mix(fg));
		return (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
	})()`)
	if ratio < 4.5 {
		t.Fatalf("a pending message's text contrast is %.2f:1, want at least 4.5:1", ratio)
	}
	g.open()
	waitFor(t, ctx, "the message sent", `document.getElementById("tandem-log").textContent.includes("echo: waiting to be sent") && `+noPendingLeft)
}

// A read receipt says the customer read the messages: none is sent while
// the page is hidden (another tab in front, the window minimised); it goes
// when the page is shown again.
func TestBrowserWidgetNoReadReceiptWhileHidden(t *testing.T) {
	ts, ctx := onlineWidget(t, serverOpts{})
	browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](`(() => {
		window.__reads = [];
		const orig = WebSocket.prototype.send;
		WebSocket.prototype.send = function (data) {
			try { const f = JSON.parse(data); if (f.type === "read") { window.__reads.push(f.seq); } } catch (e) { /* not JSON */ }
			return orig.call(this, data);
		};
		window.__hidden = false;
		Object.defineProperty(document, "visibilityState", { configurable: true, get: () => window.__hidden ? "hidden" : "visible" });
		Object.defineProperty(document, "hidden", { configurable: true, get: () => window.__hidden });
	})()`))
	conv := helloFromWidget(t, ctx)
	browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](`window.__hidden = true; document.dispatchEvent(new Event("visibilitychange"))`))
	m, _, err := ts.Chat.PostMessage(context.Background(), tandem.Message{ConversationID: conv, ClientID: "agent:a1", Author: tandem.AuthorAgent, AuthorName: "Ann", Text: "Hello from Ann", Kind: "text"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the agent's message", `document.getElementById("tandem-log").textContent.includes("Hello from Ann")`)
	if got := browsertest.Eval[[]int](t, ctx, `window.__reads`); len(got) > 0 && got[len(got)-1] >= int(m.Seq) {
		t.Fatalf("read receipts %v sent while the page was hidden (the agent's message is seq %d)", got, m.Seq)
	}
	browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](`window.__hidden = false; document.dispatchEvent(new Event("visibilitychange"))`))
	waitFor(t, ctx, "the read receipt once shown", fmt.Sprintf(`window.__reads.includes(%d)`, m.Seq))
}

// onlineWidget starts a server with o and a 1200 × 900 browser on its demo
// page, and waits for the widget to be online.
func onlineWidget(t *testing.T, o serverOpts) (*testServer, context.Context) {
	t.Helper()
	ts := startServer(t, o)
	ctx := browsertest.Start(t, 1200, 900)
	browsertest.Do(t, ctx, chromedp.Navigate(ts.URL+"/"))
	waitFor(t, ctx, "the widget to connect", statusOnline)
	return ts, ctx
}

// On a half-dead link (the widget's frames are lost, the server's still
// arrive) the online check waits for the answer to its own ping: frames
// from the customer's other tab coming in meanwhile do not prove the way
// to the server works, and the message written meanwhile is delivered
// after the reconnect.
func TestBrowserWidgetOnlineCheckWantsItsPong(t *testing.T) {
	ts := startServer(t, serverOpts{cfg: gateway.ChatConfig{PingInterval: time.Hour}})
	p := browsertest.NewHoleProxy(t, ts.URL)
	ctx := browsertest.Start(t, 1200, 900)
	browsertest.Do(t, ctx, chromedp.Navigate(p.URL()+"/"))
	waitFor(t, ctx, "the widget to connect", statusOnline)
	sendFromWidget(t, ctx, "first")
	waitFor(t, ctx, "the first answer", `document.getElementById("tandem-log").textContent.includes("echo: first")`)
	other := ts.connect(t, browsertest.Eval[string](t, ctx, `window.__tandemWidget.state().token`), 0)

	conns := p.Connections()
	p.BlackholeUp()
	browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](`window.dispatchEvent(new Event("online"))`))
	sendFromWidget(t, ctx, "over a half-dead link")
	for i, deadline := 0, time.Now().Add(45*time.Second); p.Connections() == conns; i++ {
		if time.Now().After(deadline) { // a hang guard
			t.Fatal("the widget kept its half-dead socket after the online event")
		}
		// The other tab's messages reach the widget all along.
		other.send(map[string]any{"type": "message", "client_id": fmt.Sprintf("o%d", i), "text": fmt.Sprintf("other tab %d", i)})
		time.Sleep(600 * time.Millisecond)
	}
	waitFor(t, ctx, "the answer over a new connection", `document.getElementById("tandem-log").textContent.includes("echo: over a half-dead link") && `+noPendingLeft)
}
