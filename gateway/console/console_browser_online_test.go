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
