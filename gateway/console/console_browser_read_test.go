package console_test

import (
	"testing"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/internal/browsertest"
)

// The customer's read receipts reach the agent: their latest reply the
// customer has read is marked "Read" (one mark, moving down as they read).
func TestBrowserConsoleShowsCustomerRead(t *testing.T) {
	e, _ := newQuickNode(t)
	p := browsertest.NewHoleProxy(t, e.URL)
	ctx, cust, _ := startConsoleChat(t, e, p, "Ann")
	marks := `Array.from(document.querySelectorAll("#chat-log .msg")).filter(e => Array.from(e.children).some(c => c.textContent === "Read")).map(e => e.querySelector(".text").textContent).join("|")`
	reply := func(text string) int64 {
		t.Helper()
		typeReply(t, ctx, text)
		var seq int64
		waitFrame(t, cust, text, func(f frame) bool {
			if messageFrom(tandem.AuthorAgent, text)(f) {
				seq = f.msg().Seq
				return true
			}
			return false
		})
		poll(t, ctx, "the reply in the console", consoleShows(text))
		return seq
	}

	s1 := reply("first reply")
	s2 := reply("second reply")
	cust.send(map[string]any{"type": "read", "seq": s1})
	poll(t, ctx, "the first reply marked read", marks+` === "first reply"`)
	cust.send(map[string]any{"type": "read", "seq": s2})
	poll(t, ctx, "the mark moved to the second reply", marks+` === "second reply"`)
}
