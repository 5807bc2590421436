package console_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/gateway"
	"github.com/tandem-chat/tandem/internal/browsertest"
)

// failOnceLog fails the first append of a message with text failText (an
// internal error, as a database blip gives).
type failOnceLog struct {
	gateway.ConvLog
	failText string
	failed   atomic.Bool
}

func (l *failOnceLog) Append(ctx context.Context, m tandem.Message) (tandem.Message, bool, error) {
	if m.Text == l.failText && l.failed.CompareAndSwap(false, true) {
		return m, false, errors.New("pq: connection reset by peer")
	}
	return l.ConvLog.Append(ctx, m)
}

// Replies are sent one at a time, in order: after an internal error on a
// reply, the ones written after it wait for it, so the log keeps the
// order the agent wrote them in.
func TestBrowserConsoleRepliesStayInOrder(t *testing.T) {
	convLog := &failOnceLog{ConvLog: gateway.NewMemLog(), failText: "first reply"}
	e := newNode(t, nodeOpts{log: convLog, heartbeatTimeout: 1500 * time.Millisecond})
	p := browsertest.NewHoleProxy(t, e.URL)
	ctx, cust, conv := startConsoleChat(t, e, p, "Ann")

	typeReply(t, ctx, "first reply")
	typeReply(t, ctx, "second reply")
	typeReply(t, ctx, "third reply")
	waitFrame(t, cust, "the last reply", func(f frame) bool {
		return f.Type == "message" && f.msg().Author == tandem.AuthorAgent && len(agentTexts(t, convLog, conv)) == 3
	})
	poll(t, ctx, "the replies acknowledged in the console", consoleShows("third reply"))
	if !convLog.failed.Load() {
		t.Fatal("the first reply never failed")
	}
	if got := agentTexts(t, convLog, conv); fmt.Sprint(got) != "[first reply second reply third reply]" {
		t.Fatalf("agent messages in the log = %q, want them in the order written", got)
	}
}
