package gateway_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/gateway"
)

// TestExpireIdle: a retention sweep erases every conversation idle since
// the cutoff — tickets, log and bot state, as an erasure does — over more
// than one page, and keeps the ones with an open ticket and the ones
// updated after the cutoff; a second sweep finds nothing new to erase.
func TestExpireIdle(t *testing.T) {
	ctx := context.Background()
	h := &erasingHandoff{open: map[string]bool{}, tickets: map[string]int{}}
	ts := startServer(t, serverOpts{handoffImpl: h, bot: forgettingBot{h: h}})

	// 450 conversations last written 100 days ago (more than two pages of
	// a sweep), one of them with an open ticket and one with closed ones.
	old := time.Now().Add(-100 * 24 * time.Hour)
	const n = 450
	for i := range n {
		id := fmt.Sprintf("old-%03d", i)
		c := tandem.Conversation{ID: id, SiteKey: testSite, Customer: tandem.Customer{ID: "cust-" + id}, CreatedAt: old.Add(time.Duration(i) * time.Second)}
		if _, err := ts.Log.CreateConversation(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	h.mu.Lock()
	h.open["old-007"] = true
	h.tickets["old-008"] = 2
	h.mu.Unlock()
	// A conversation the customer is using now.
	s := ts.session(t, nil)
	ws := ts.connect(t, s.Token, 0)
	ws.send(map[string]any{"type": "message", "client_id": "m1", "text": "hello"})
	ws.until(messageFrom(tandem.AuthorBot))

	cutoff := time.Now().Add(-90 * 24 * time.Hour)
	res, err := ts.Chat.ExpireIdle(ctx, cutoff)
	if err != nil {
		t.Fatal(err)
	}
	if res.Erased != n-1 || res.Kept != 1 {
		t.Fatalf("sweep = %+v, want %d erased and 1 kept (the open ticket)", res, n-1)
	}
	for i := range n {
		id := fmt.Sprintf("old-%03d", i)
		_, err := ts.Log.Conversation(ctx, id)
		if want := id == "old-007"; (err == nil) != want {
			t.Fatalf("%s after the sweep: %v (kept: %v)", id, err, want)
		}
	}
	if _, err := ts.Log.Conversation(ctx, s.ConversationID); err != nil {
		t.Fatalf("the active conversation after the sweep: %v", err)
	}
	if msgs, err := ts.Log.Messages(ctx, s.ConversationID, 0, 10); err != nil || len(msgs) != 2 {
		t.Fatalf("the active conversation's messages: %d, %v; want 2", len(msgs), err)
	}
	h.mu.Lock()
	erased, forgot, left := len(h.erased), len(h.forgets), h.tickets["old-008"]
	h.mu.Unlock()
	if erased != n-1 || forgot != n-1 || left != 0 {
		t.Fatalf("handoff erased %d, bot forgot %d, tickets of old-008 left %d; want %d, %d, 0", erased, forgot, left, n-1, n-1)
	}
	if _, body := ts.get(t, "/metrics", ""); !strings.Contains(body, fmt.Sprintf(`tandem_conversations_expired_total{outcome="erased"} %d`, n-1)) ||
		!strings.Contains(body, `tandem_conversations_expired_total{outcome="kept"} 1`) {
		t.Fatalf("metrics lack the sweep's counts:\n%s", grepLines(body, "tandem_conversations_expired_total"))
	}

	// Once its ticket is closed, the last one goes at the next sweep.
	h.mu.Lock()
	h.open["old-007"] = false
	h.mu.Unlock()
	if res, err := ts.Chat.ExpireIdle(ctx, cutoff); err != nil || res.Erased != 1 || res.Kept != 0 {
		t.Fatalf("second sweep = %+v, %v; want 1 erased", res, err)
	}
	if res, err := ts.Chat.ExpireIdle(ctx, cutoff); err != nil || res != (gateway.ExpireResult{}) {
		t.Fatalf("third sweep = %+v, %v; want nothing", res, err)
	}
}

// writeAfterPage is a log on which a customer writes to one conversation
// right after a retention sweep read the page that lists it.
type writeAfterPage struct {
	gateway.ConvLog
	conv string
}

func (l writeAfterPage) IdleConversations(ctx context.Context, before time.Time, after gateway.IdleCursor, limit int) ([]tandem.Conversation, error) {
	page, err := l.ConvLog.IdleConversations(ctx, before, after, limit)
	if err == nil && len(page) > 0 {
		_, _, err = l.ConvLog.Append(ctx, tandem.Message{ConversationID: l.conv, Author: tandem.AuthorCustomer, Text: "I'm back"})
	}
	return page, err
}

// TestExpireKeepsWhatWasWrittenMeanwhile: a conversation that gets a
// message after the sweep listed it keeps its log and its tickets (they
// were erased before the log's check refused).
func TestExpireKeepsWhatWasWrittenMeanwhile(t *testing.T) {
	ctx := context.Background()
	h := &erasingHandoff{open: map[string]bool{}, tickets: map[string]int{"back": 2, "gone": 1}}
	mem := gateway.NewMemLog()
	ts := startServer(t, serverOpts{log: writeAfterPage{ConvLog: mem, conv: "back"}, handoffImpl: h, bot: forgettingBot{h: h}})
	old := time.Now().Add(-100 * 24 * time.Hour)
	for _, id := range []string{"back", "gone"} {
		if _, err := mem.CreateConversation(ctx, tandem.Conversation{ID: id, SiteKey: testSite, Customer: tandem.Customer{ID: id}, CreatedAt: old}); err != nil {
			t.Fatal(err)
		}
	}
	res, err := ts.Chat.ExpireIdle(ctx, time.Now().Add(-90*24*time.Hour))
	if err != nil || res.Erased != 1 || res.Kept != 1 {
		t.Fatalf("sweep = %+v, %v; want 1 erased, 1 kept", res, err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.tickets["back"] != 2 || h.tickets["gone"] != 0 || fmt.Sprint(h.erased) != "[gone]" || fmt.Sprint(h.forgets) != "[gone]" {
		t.Fatalf("tickets %v, handoff erased %v, bot forgot %v; want back's 2 tickets kept, only gone erased", h.tickets, h.erased, h.forgets)
	}
	if msgs, err := mem.Messages(ctx, "back", 0, 10); err != nil || len(msgs) != 1 {
		t.Fatalf("back's log: %d messages, %v", len(msgs), err)
	}
}

// TestRunRetention: the loop sweeps at once and on every tick, and stops
// with its context.
func TestRunRetention(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	ts := startServer(t, serverOpts{})
	old := time.Now().Add(-2 * time.Hour)
	create := func(id string) {
		t.Helper()
		if _, err := ts.Log.CreateConversation(ctx, tandem.Conversation{ID: id, SiteKey: testSite, Customer: tandem.Customer{ID: id}, CreatedAt: old}); err != nil {
			t.Fatal(err)
		}
	}
	gone := func(id string) bool {
		_, err := ts.Log.Conversation(ctx, id)
		return tandem.ErrorCode(err) == tandem.ENOTFOUND
	}
	create("first")
	done := make(chan struct{})
	go func() {
		defer close(done)
		ts.Chat.RunRetention(ctx, time.Hour, 10*time.Millisecond)
	}()
	poll(t, "the first sweep", func() bool { return gone("first") })
	create("second")
	poll(t, "a later sweep", func() bool { return gone("second") })
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second): // a hang guard, not a timing assertion
		t.Fatal("RunRetention did not return after its context ended")
	}
}

func TestRetentionInterval(t *testing.T) {
	for _, c := range []struct{ keep, want time.Duration }{
		{10 * time.Minute, time.Minute},
		{time.Hour, 150 * time.Second},
		{24 * time.Hour, time.Hour},
		{12 * time.Hour, 30 * time.Minute},
		{90 * 24 * time.Hour, time.Hour},
	} {
		if got := gateway.RetentionInterval(c.keep); got != c.want {
			t.Errorf("RetentionInterval(%v) = %v, want %v", c.keep, got, c.want)
		}
	}
}

// poll waits until ok holds (a hang guard of 10 s, not a timing assertion).
func poll(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
