package gateway_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/gateway"
	"github.com/tandem-chat/tandem/gateway/console"
	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/handoff/memstore"
	"github.com/tandem-chat/tandem/internal/browsertest"
)

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
		dump := browsertest.Eval[string](t, ctx, `document.getElementById("tandem-root") ? document.getElementById("tandem-root").innerText : "(no widget)"`)
		t.Fatalf("waiting for %s: %v\nwidget text:\n%s", what, err, dump)
	}
}

func sendFromWidget(t *testing.T, ctx context.Context, text string) {
	t.Helper()
	browsertest.Do(t, ctx, chromedp.SendKeys(chromedp.ID("tandem-input"), text), chromedp.Click(chromedp.ID("tandem-send")))
}

// loggedSeqs is the list of data-seq attributes of rendered log messages.
const loggedSeqs = `Array.from(document.querySelectorAll("#tandem-log .tandem-msg[data-seq]")).map(e => +e.dataset.seq)`

const botCount = `document.querySelectorAll('#tandem-log .tandem-msg[data-author="bot"][data-seq]').length`

func TestBrowserWidget(t *testing.T) {
	ts := startServer(t, serverOpts{})
	ctx := browsertest.Start(t, 390, 844)
	browsertest.Do(t, ctx, chromedp.Navigate(ts.URL+"/"))
	waitFor(t, ctx, "the widget to connect", `document.getElementById("tandem-status") && document.getElementById("tandem-status").textContent === "Online"`)

	// Accessibility basics.
	if role := browsertest.Eval[string](t, ctx, `document.getElementById("tandem-log").getAttribute("role") + "/" + document.getElementById("tandem-log").getAttribute("aria-live")`); role != "log/polite" {
		t.Fatalf("log role = %s", role)
	}
	// Opened by the page (data-open) the panel leaves the focus on the
	// page; opened by the customer it takes it (below).
	if got := browsertest.Eval[string](t, ctx, `document.activeElement ? document.activeElement.tagName : ""`); got != "BODY" {
		t.Fatalf("focus after the page opened the chat = %q, want the page's", got)
	}

	t.Run("send and get the bot's answer", func(t *testing.T) {
		sendFromWidget(t, ctx, "hello there")
		waitFor(t, ctx, "the bot's answer", `Array.from(document.querySelectorAll('#tandem-log .tandem-msg[data-author="bot"]')).some(e => e.textContent.includes("echo: hello there"))`)
		sendFromWidget(t, ctx, "help")
		waitFor(t, ctx, "quick replies", `document.querySelectorAll("#tandem-quick button").length === 2`)
		browsertest.Do(t, ctx, chromedp.Click(chromedp.CSS("#tandem-quick button")))
		waitFor(t, ctx, "the quick reply's answer", `document.body.innerText.includes("echo: Shipping")`)
	})

	t.Run("injected markup renders as text", func(t *testing.T) {
		payload := `<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>`
		sendFromWidget(t, ctx, payload)
		waitFor(t, ctx, "the echo of the payload", `Array.from(document.querySelectorAll('#tandem-log .tandem-msg[data-author="bot"]')).some(e => e.textContent.includes("echo: <img src=x"))`)
		if n := browsertest.Eval[int](t, ctx, `document.querySelectorAll("#tandem-log img, #tandem-log script").length`); n != 0 {
			t.Fatalf("%d injected elements in the log", n)
		}
		if p := browsertest.Eval[bool](t, ctx, `window.__pwned !== undefined`); p {
			t.Fatal("injected script ran")
		}
		if !browsertest.Eval[bool](t, ctx, fmt.Sprintf(`document.getElementById("tandem-log").textContent.includes(%q)`, payload)) {
			t.Fatal("payload text not shown literally")
		}
	})

	t.Run("reload shows the whole history once in order", func(t *testing.T) {
		before := browsertest.Eval[[]int](t, ctx, loggedSeqs)
		browsertest.Do(t, ctx, chromedp.Reload())
		waitFor(t, ctx, "reconnect after reload", `document.getElementById("tandem-status") && document.getElementById("tandem-status").textContent === "Online"`)
		sendFromWidget(t, ctx, "after reload")
		waitFor(t, ctx, "an answer after reload", `document.body.innerText.includes("echo: after reload")`)
		seqs := browsertest.Eval[[]int](t, ctx, loggedSeqs)
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
		waitFor(t, ctx, "the cache written", cacheSaved)
		browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](`(() => { const k = Object.keys(localStorage).find(k => k.startsWith("tandem:")); const s = JSON.parse(localStorage.getItem(k)); s.messages = []; s.lastSeq = 0; localStorage.setItem(k, JSON.stringify(s)); })()`),
			chromedp.Reload())
		waitFor(t, ctx, "a full replay", fmt.Sprintf(`%s.length === %d`, loggedSeqs, len(seqs)))
		if got := browsertest.Eval[[]int](t, ctx, loggedSeqs); fmt.Sprint(got) != fmt.Sprint(seqs) {
			t.Fatalf("replay = %v, want %v", got, seqs)
		}
	})

	t.Run("messages written offline are delivered once after reconnect", func(t *testing.T) {
		conv := browsertest.Eval[string](t, ctx, `window.__tandemWidget.state().conversationId`)
		bots := browsertest.Eval[int](t, ctx, botCount)
		ts.LN.setDown(true) // server-side drop; new connections refused
		waitFor(t, ctx, "the widget to notice", `document.getElementById("tandem-status").textContent.includes("connecting")`)
		for i := 0; i < 3; i++ {
			sendFromWidget(t, ctx, fmt.Sprintf("offline %d", i))
		}
		if n := browsertest.Eval[int](t, ctx, `document.querySelectorAll("#tandem-log .tandem-pending").length`); n != 3 {
			t.Fatalf("%d pending bubbles, want 3", n)
		}
		if n := browsertest.Eval[int](t, ctx, `window.__tandemWidget.state().outbox.length`); n != 3 {
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
		seqs := browsertest.Eval[[]int](t, ctx, loggedSeqs)
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
		browsertest.Do(t, ctx, chromedp.SendKeys(chromedp.ID("tandem-input"), "\x1b")) // kb.Escape
		waitFor(t, ctx, "the panel to close", `document.getElementById("tandem-panel").hidden && document.activeElement.id === "tandem-launcher"`)
		if got := browsertest.Eval[string](t, ctx, `document.getElementById("tandem-launcher").getAttribute("aria-expanded")`); got != "false" {
			t.Fatalf("aria-expanded = %s", got)
		}
		browsertest.Do(t, ctx, chromedp.Click(chromedp.ID("tandem-launcher")))
		waitFor(t, ctx, "the panel to open", `!document.getElementById("tandem-panel").hidden && document.activeElement.id === "tandem-input"`)
		// Mobile width: the panel fills the viewport.
		browsertest.Do(t, ctx, chromedp.EmulateViewport(390, 844))
		if w := browsertest.Eval[int](t, ctx, `Math.round(document.getElementById("tandem-panel").getBoundingClientRect().width)`); w != browsertest.Eval[int](t, ctx, `window.innerWidth`) {
			t.Fatalf("panel width %d at a phone viewport", w)
		}
	})

	t.Run("talk to a person", func(t *testing.T) {
		browsertest.Do(t, ctx, chromedp.Click(chromedp.ID("tandem-human")))
		waitFor(t, ctx, "the queued status", `document.getElementById("tandem-status").textContent.startsWith("Waiting for an agent")`)
	})
}

// startHandoffServer serves the widget with the real handoff engine (memory
// store, nobody online unless a test connects an agent) and the console's
// adapter, as tandem serve wires them.
func startHandoffServer(t *testing.T) (string, *handoff.Engine) {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	late := &console.LateNotifier{}
	eng, err := handoff.New(memstore.New(), handoff.Config{Notifier: late, Logger: logger, BcryptCost: 4})
	if err != nil {
		t.Fatal(err)
	}
	auth, err := gateway.NewAuth([]byte(testSecret), testAdmin, 0)
	if err != nil {
		t.Fatal(err)
	}
	bus := gateway.NewLocalBus()
	ho := &console.Handoff{Engine: eng}
	chat, err := gateway.NewChat(gateway.ChatConfig{DemoSiteKey: testSite}, gateway.ChatDeps{
		Log: gateway.NewMemLog(), Bus: bus, Auth: auth, Bot: echoBot{}, Handoff: ho, AgentAccess: ho.AgentAccess,
		Sites: gateway.StaticSites{testSite: {Key: testSite, AllowedOrigins: []string{"self"}}}, Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	ho.SetChat(chat)
	con, err := console.New(console.Config{Engine: eng, Chat: chat, Bus: bus, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	late.Set(con)
	srv := gateway.New(gateway.Config{}, logger)
	chat.Mount(srv.Router())
	con.Mount(srv.Router())
	srv.OnShutdown(func(ctx context.Context) error { return eng.Close(ctx) })
	srv.OnShutdown(chat.Shutdown)
	srv.OnShutdown(con.Shutdown)
	hs := httptest.NewServer(srv.Router())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hs.CloseClientConnections()
		_ = srv.Shutdown(ctx)
		hs.Close()
	})
	return hs.URL, eng
}

// TestBrowserLeaveContact: nobody is online, the widget offers the contact
// form; a bad address shows the server's error; a good one is confirmed
// and stored on the queued ticket; the customer keeps chatting with the
// bot meanwhile, by keyboard.
func TestBrowserLeaveContact(t *testing.T) {
	url, eng := startHandoffServer(t)
	ctx := browsertest.Start(t, 390, 844)
	browsertest.Do(t, ctx, chromedp.Navigate(url+"/"))
	waitFor(t, ctx, "the widget to connect", `document.getElementById("tandem-status") && document.getElementById("tandem-status").textContent === "Online"`)
	if !browsertest.Eval[bool](t, ctx, `document.getElementById("tandem-contact").hidden`) {
		t.Fatal("the contact form shows before anyone asked for a person")
	}

	browsertest.Do(t, ctx, chromedp.Click(chromedp.ID("tandem-human")))
	waitFor(t, ctx, "the nobody-online status and the contact form",
		`document.getElementById("tandem-status").textContent.includes("No agent is online") && !document.getElementById("tandem-contact").hidden`)
	conv := browsertest.Eval[string](t, ctx, `window.__tandemWidget.state().conversationId`)
	// Accessible: a labelled field in a labelled form, reachable by keyboard.
	if got := browsertest.Eval[string](t, ctx, `document.querySelector('label[for="tandem-contact-input"]').textContent + "|" + document.getElementById("tandem-contact").getAttribute("aria-label")`); got != "Leave your email or phone and we'll get back to you|Leave a contact address" {
		t.Fatalf("contact form labels = %q", got)
	}

	t.Run("the bot keeps answering", func(t *testing.T) {
		sendFromWidget(t, ctx, "are you still there")
		waitFor(t, ctx, "the bot's answer", `document.getElementById("tandem-log").textContent.includes("echo: are you still there")`)
	})

	t.Run("a bad address shows an error", func(t *testing.T) {
		browsertest.Do(t, ctx, chromedp.Focus(chromedp.ID("tandem-contact-input")), chromedp.SendKeys(chromedp.ID("tandem-contact-input"), "call me maybe\r"))
		waitFor(t, ctx, "the error", `(() => { const m = document.getElementById("tandem-contact-msg"); return m.getAttribute("role") === "alert" && m.textContent.includes("email address or a phone number"); })()`)
		if got := browsertest.Eval[string](t, ctx, `document.getElementById("tandem-contact-input").getAttribute("aria-invalid") + "|" + document.activeElement.id`); got != "true|tandem-contact-input" {
			t.Fatalf("after the error: %s", got)
		}
		if tk, err := eng.OpenTicket(context.Background(), conv); err != nil || tk.ContactAddress != "" {
			t.Fatalf("ticket after a bad address: %+v %v", tk, err)
		}
	})

	t.Run("a good address is confirmed and stored", func(t *testing.T) {
		browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](`document.getElementById("tandem-contact-input").value = ""`),
			chromedp.SendKeys(chromedp.ID("tandem-contact-input"), "ada@example.com"), chromedp.Click(chromedp.ID("tandem-contact-send")))
		waitFor(t, ctx, "the confirmation", `document.getElementById("tandem-contact-msg").textContent.includes("We'll get back to you at ada@example.com") && document.getElementById("tandem-contact-input").hidden`)
		waitFor(t, ctx, "the note in the log", `Array.from(document.querySelectorAll('#tandem-log .tandem-msg[data-author="system"]')).some(e => e.textContent.includes("ada@example.com"))`)
		tk, err := eng.OpenTicket(context.Background(), conv)
		if err != nil || tk.ContactAddress != "ada@example.com" || tk.State != tandem.TicketQueued {
			t.Fatalf("ticket after the contact: %+v %v", tk, err)
		}
		sendFromWidget(t, ctx, "one more question")
		waitFor(t, ctx, "the bot's answer after the contact", `document.getElementById("tandem-log").textContent.includes("echo: one more question")`)
	})

	t.Run("a reload while queued keeps the confirmation", func(t *testing.T) {
		browsertest.Do(t, ctx, chromedp.Reload())
		waitFor(t, ctx, "the queued status and the confirmation after reload",
			`document.getElementById("tandem-status").textContent === "Waiting for an agent" && !document.getElementById("tandem-contact").hidden && document.getElementById("tandem-contact-msg").textContent.includes("ada@example.com")`)
	})

	t.Run("back to the assistant", func(t *testing.T) {
		waitFor(t, ctx, "the button to offer going back", `document.getElementById("tandem-human").textContent === "Back to the assistant"`)
		browsertest.Do(t, ctx, chromedp.Click(chromedp.ID("tandem-human")))
		waitFor(t, ctx, "the bot back, the form gone, the button reset",
			`document.getElementById("tandem-status").textContent === "Online" && document.getElementById("tandem-contact").hidden && document.getElementById("tandem-human").textContent === "Talk to a person" && document.getElementById("tandem-log").textContent.includes("back with the assistant")`)
		if _, err := eng.OpenTicket(context.Background(), conv); tandem.ErrorCode(err) != tandem.ENOTFOUND {
			t.Fatalf("the ticket is still open after going back: %v", err)
		}
		sendFromWidget(t, ctx, "back again")
		waitFor(t, ctx, "the bot's answer", `document.getElementById("tandem-log").textContent.includes("echo: back again")`)
	})
}

// A signed-in customer's tier, given as data-user-tier and signed by the
// site with the user id, reaches the server with the session request: the
// server accepts the signature (the widget goes online) and the
// conversation's customer is a VIP.
func TestBrowserWidgetSignedTier(t *testing.T) {
	ts := startServer(t, serverOpts{})
	ctx := browsertest.Start(t, 390, 844)
	// A page of the server's own origin without the demo widget.
	browsertest.Do(t, ctx, chromedp.Navigate(ts.URL+"/healthz"))
	sig := gateway.SignIdentityTier([]byte(testSiteSecret), "vip-7", "VIP")
	browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => {
		const s = document.createElement("script");
		s.src = "/widget.js";
		for (const [k, v] of Object.entries({"data-site-key": %q, "data-open": "true", "data-user-id": "vip-7",
				"data-user-tier": "VIP", "data-user-signature": %q})) { s.setAttribute(k, v); }
		document.body.appendChild(s);
	})()`, testSiteSigned, sig)))
	waitFor(t, ctx, "the widget to connect", `document.getElementById("tandem-status") && document.getElementById("tandem-status").textContent === "Online"`)
	conv, err := ts.Log.LatestConversation(context.Background(), testSiteSigned, "u:vip-7")
	if err != nil {
		t.Fatal(err)
	}
	if !conv.Customer.Verified || conv.Customer.Tier != "vip" || !conv.Customer.VIP() {
		t.Fatalf("customer = %+v, want a verified VIP", conv.Customer)
	}
}

// A signed-in customer who signs out of the site leaves the widget's token
// in the browser: the next page without their identity gets a new
// anonymous conversation (it resumed theirs: transcript and all, for the
// next person at the browser), and what they left unsent is not sent
// into it.
func TestBrowserWidgetSignedOutCustomerIsForgotten(t *testing.T) {
	ts := startServer(t, serverOpts{})
	ctx := browsertest.Start(t, 390, 844)
	browsertest.Do(t, ctx, chromedp.Navigate(ts.URL+"/healthz"))
	embed := func(identity string) {
		t.Helper()
		browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => {
			const s = document.createElement("script");
			s.src = "/widget.js";
			for (const [k, v] of Object.entries(Object.assign({"data-site-key": %q, "data-open": "true"}, %s))) { s.setAttribute(k, v); }
			document.body.appendChild(s);
		})()`, testSiteSigned, identity)))
		waitFor(t, ctx, "the widget to connect", `document.getElementById("tandem-status") && document.getElementById("tandem-status").textContent === "Online"`)
	}
	sig := gateway.SignIdentity([]byte(testSiteSecret), "ada")
	embed(fmt.Sprintf(`{"data-user-id": "ada", "data-user-signature": %q}`, sig))
	sendFromWidget(t, ctx, "my address is 1 Main Street")
	waitFor(t, ctx, "the answer", `document.getElementById("tandem-log").textContent.includes("echo: my address is 1 Main Street") && `+noPendingLeft)
	adaConv, err := ts.Log.LatestConversation(context.Background(), testSiteSigned, "u:ada")
	if err != nil {
		t.Fatal(err)
	}
	// Something Ada wrote that never left (stored as the widget stores
	// its outbox), then she signs out: the page no longer names her.
	browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](`(() => {
		const k = Object.keys(localStorage).find(k => k.startsWith("tandem:v1:"));
		const s = JSON.parse(localStorage.getItem(k));
		s.outbox.push({client_id: "ada-unsent-1", type: "message", text: "my card ends in 4242"});
		localStorage.setItem(k, JSON.stringify(s));
	})()`), chromedp.Navigate(ts.URL+"/healthz"))
	embed(`{}`)
	conv := browsertest.Eval[string](t, ctx, `window.__tandemWidget.state().conversationId`)
	if conv == adaConv.ID {
		t.Fatal("the signed-out page resumed Ada's conversation")
	}
	sendFromWidget(t, ctx, "hello")
	waitFor(t, ctx, "the answer", `document.getElementById("tandem-log").textContent.includes("echo: hello") && `+noPendingLeft)
	if txt := browsertest.Eval[string](t, ctx, `document.getElementById("tandem-log").textContent`); strings.Contains(txt, "Main Street") || strings.Contains(txt, "4242") {
		t.Fatalf("the next person sees Ada's chat: %q", txt)
	}
	msgs, err := ts.Log.Messages(context.Background(), conv, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if strings.Contains(m.Text, "4242") {
			t.Fatalf("Ada's unsent message went into the next person's conversation: %+v", m)
		}
	}
	if c, err := ts.Log.Conversation(context.Background(), conv); err != nil || c.Customer.Verified {
		t.Fatalf("the next person's conversation: %+v, %v", c.Customer, err)
	}
}
