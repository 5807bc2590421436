package console_test

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/internal/browsertest"
)

// Back online (after sleep, on another network), the console checks its
// socket, still open but dead, with a ping and reconnects when no answer
// comes; the reply written meanwhile is delivered. The heartbeat is long
// here, so only the online check can find the dead link.
func TestBrowserConsoleOnlineChecksDeadSocket(t *testing.T) {
	e := newNode(t, nodeOpts{heartbeatTimeout: 30 * time.Minute})
	p := browsertest.NewHoleProxy(t, e.URL)
	ctx, cust, _ := startConsoleChat(t, e, p, "Ann")

	conns := p.Connections()
	p.Blackhole(true)
	browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](`window.dispatchEvent(new Event("online"))`))
	typeReply(t, ctx, "back from sleep")
	for deadline := time.Now().Add(45 * time.Second); p.Connections() == conns; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) { // a hang guard
			t.Fatal("the console kept its dead socket after the online event")
		}
	}
	waitFrame(t, cust, "the reply", messageFrom(tandem.AuthorAgent, "back from sleep"))
	poll(t, ctx, "the reply acknowledged in the console", consoleShows("back from sleep")+` && window.__tandemConsole.connected()`)
}

// On a half-dead link (the console's frames are lost, the server's still
// arrive) the online check waits for the answer to its own ping: the
// customer's frames coming in meanwhile do not prove the way to the
// server works, and the reply written meanwhile is delivered after the
// reconnect.
func TestBrowserConsoleOnlineCheckWantsItsPong(t *testing.T) {
	e := newNode(t, nodeOpts{heartbeatTimeout: 30 * time.Minute})
	p := browsertest.NewHoleProxy(t, e.URL)
	ctx, cust, _ := startConsoleChat(t, e, p, "Ann")

	conns := p.Connections()
	p.BlackholeUp()
	browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](`window.dispatchEvent(new Event("online"))`))
	typeReply(t, ctx, "over a half-dead link")
	on := false
	for deadline := time.Now().Add(45 * time.Second); p.Connections() == conns; time.Sleep(250 * time.Millisecond) {
		if time.Now().After(deadline) { // a hang guard
			t.Fatal("the console kept its half-dead socket after the online event")
		}
		on = !on // the customer's typing reaches the console all along
		cust.send(map[string]any{"type": "typing", "on": on})
	}
	waitFrame(t, cust, "the reply", messageFrom(tandem.AuthorAgent, "over a half-dead link"))
	poll(t, ctx, "the reply acknowledged in the console", consoleShows("over a half-dead link")+` && window.__tandemConsole.connected()`)
}

// An action sent over a dead link (here a status change) gets no answer;
// when the console gives that socket up, the action's callback is told
// "not connected" and dropped, instead of waiting for an answer that can
// never come (it used to stay for the page's life, one per lost action).
func TestBrowserConsoleDropsActionsOfDeadSocket(t *testing.T) {
	e := newNode(t, nodeOpts{heartbeatTimeout: 30 * time.Minute})
	p := browsertest.NewHoleProxy(t, e.URL)
	ctx, _, _ := startConsoleChat(t, e, p, "Ann")

	conns := p.Connections()
	p.Blackhole(true)
	browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](`(() => { const s = document.getElementById("presence"); s.value = "away"; s.dispatchEvent(new Event("change")); })()`))
	poll(t, ctx, "the status change waiting for its answer", `window.__tandemConsole.pendingActions() === 1`)
	browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](`window.dispatchEvent(new Event("online"))`))
	for deadline := time.Now().Add(45 * time.Second); p.Connections() == conns; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) { // a hang guard
			t.Fatal("the console kept its dead socket after the online event")
		}
	}
	poll(t, ctx, "reconnected with no action left waiting", `window.__tandemConsole.connected() && window.__tandemConsole.pendingActions() === 0`)
}
