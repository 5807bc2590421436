// Package convlogtest is the contract suite every gateway.ConvLog
// implementation must pass (in-memory and Postgres run the same tests).
//
// Contract: Run(t, newLog) calls newLog once per subtest and expects an
// empty log each time.
package convlogtest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/gateway"
)

// Run runs the contract suite.
func Run(t *testing.T, newLog func(t *testing.T) gateway.ConvLog) {
	ctx := context.Background()
	conv := func(id string) tandem.Conversation {
		return tandem.Conversation{ID: id, SiteKey: "site", Customer: tandem.Customer{ID: "cust-" + id}, Locale: "en"}
	}
	mustCreate := func(t *testing.T, l gateway.ConvLog, c tandem.Conversation) tandem.Conversation {
		t.Helper()
		got, err := l.CreateConversation(ctx, c)
		if err != nil {
			t.Fatalf("create %s: %v", c.ID, err)
		}
		return got
	}
	code := func(err error) string { return tandem.ErrorCode(err) }

	t.Run("create and get", func(t *testing.T) {
		l := newLog(t)
		c := conv("c1")
		c.Customer = tandem.Customer{ID: "u1", Verified: true, Name: "Zoë", Email: "z@example.com", Tier: "vip"}
		got := mustCreate(t, l, c)
		if got.Mode != tandem.ModeBot || got.LastSeq != 0 || got.CreatedAt.IsZero() {
			t.Fatalf("created = %+v", got)
		}
		back, err := l.Conversation(ctx, "c1")
		if err != nil {
			t.Fatal(err)
		}
		if back.Customer != c.Customer || back.SiteKey != "site" || back.Locale != "en" || back.Mode != tandem.ModeBot {
			t.Fatalf("round trip = %+v", back)
		}
		if _, err := l.CreateConversation(ctx, c); code(err) != tandem.ECONFLICT {
			t.Fatalf("second create: %v, want conflict", err)
		}
		if _, err := l.Conversation(ctx, "nope"); code(err) != tandem.ENOTFOUND {
			t.Fatalf("unknown: %v, want not_found", err)
		}
	})

	t.Run("append assigns seqs and dedups client ids", func(t *testing.T) {
		l := newLog(t)
		mustCreate(t, l, conv("c1"))
		mustCreate(t, l, conv("c2"))
		for i := 1; i <= 5; i++ {
			m, dup, err := l.Append(ctx, tandem.Message{ConversationID: "c1", ClientID: fmt.Sprintf("k%d", i), Author: tandem.AuthorCustomer, Text: fmt.Sprintf("hello %d ✓", i)})
			if err != nil || dup || m.Seq != int64(i) {
				t.Fatalf("append %d = %+v dup=%v err=%v", i, m, dup, err)
			}
		}
		again, dup, err := l.Append(ctx, tandem.Message{ConversationID: "c1", ClientID: "k3", Author: tandem.AuthorCustomer, Text: "different"})
		if err != nil || !dup || again.Seq != 3 || again.Text != "hello 3 ✓" {
			t.Fatalf("duplicate append = %+v dup=%v err=%v", again, dup, err)
		}
		// The same client id in another conversation is a different message.
		other, dup, err := l.Append(ctx, tandem.Message{ConversationID: "c2", ClientID: "k3", Author: tandem.AuthorCustomer, Text: "x"})
		if err != nil || dup || other.Seq != 1 {
			t.Fatalf("other conversation = %+v dup=%v err=%v", other, dup, err)
		}
		// Messages without a client id are never deduplicated.
		for i := 0; i < 2; i++ {
			if m, dup, err := l.Append(ctx, tandem.Message{ConversationID: "c1", Author: tandem.AuthorBot, Text: "same"}); err != nil || dup || m.Seq != int64(6+i) {
				t.Fatalf("bot append = %+v %v %v", m, dup, err)
			}
		}
		c, _ := l.Conversation(ctx, "c1")
		if c.LastSeq != 7 {
			t.Fatalf("LastSeq = %d, want 7", c.LastSeq)
		}
		if _, _, err := l.Append(ctx, tandem.Message{ConversationID: "missing", Text: "x"}); code(err) != tandem.ENOTFOUND {
			t.Fatalf("append to unknown: %v", err)
		}
	})

	t.Run("messages pages in order and keeps fields", func(t *testing.T) {
		l := newLog(t)
		mustCreate(t, l, conv("c1"))
		created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		first, _, err := l.Append(ctx, tandem.Message{
			ConversationID: "c1", ClientID: "a", Author: tandem.AuthorBot, AuthorID: "bot", AuthorName: "Bot",
			Text: "<img src=x onerror=alert(1)> 你好", Kind: "text", CreatedAt: created,
			Data: map[string]any{"quick_replies": []any{"yes", "no"}, "reply_kind": "answer"},
		})
		if err != nil {
			t.Fatal(err)
		}
		if first.Seq != 1 || !first.CreatedAt.Equal(created) {
			t.Fatalf("first = %+v", first)
		}
		for i := 2; i <= 25; i++ {
			if _, _, err := l.Append(ctx, tandem.Message{ConversationID: "c1", Author: tandem.AuthorCustomer, Text: fmt.Sprint(i)}); err != nil {
				t.Fatal(err)
			}
		}
		all, err := l.Messages(ctx, "c1", 0, 100)
		if err != nil || len(all) != 25 {
			t.Fatalf("messages = %d, %v", len(all), err)
		}
		for i, m := range all {
			if m.Seq != int64(i+1) || m.ConversationID != "c1" {
				t.Fatalf("message %d has seq %d conv %q", i, m.Seq, m.ConversationID)
			}
		}
		m := all[0]
		if m.Text != first.Text || m.AuthorName != "Bot" || m.AuthorID != "bot" || m.ClientID != "a" || m.Kind != "text" {
			t.Fatalf("fields lost: %+v", m)
		}
		qr, ok := m.Data["quick_replies"].([]any)
		if !ok || len(qr) != 2 || qr[0] != "yes" || m.Data["reply_kind"] != "answer" {
			t.Fatalf("data lost: %#v", m.Data)
		}
		if all[1].Kind != "text" {
			t.Fatalf("default kind = %q, want text", all[1].Kind)
		}
		page, err := l.Messages(ctx, "c1", 10, 5)
		if err != nil || len(page) != 5 || page[0].Seq != 11 || page[4].Seq != 15 {
			t.Fatalf("page = %v, %v", seqs(page), err)
		}
		if tail, err := l.Messages(ctx, "c1", 25, 5); err != nil || len(tail) != 0 {
			t.Fatalf("after end = %v, %v", seqs(tail), err)
		}
		if _, err := l.Messages(ctx, "nope", 0, 5); code(err) != tandem.ENOTFOUND {
			t.Fatalf("unknown conversation: %v", err)
		}
	})

	t.Run("concurrent appends have no gaps and store each client id once", func(t *testing.T) {
		l := newLog(t)
		mustCreate(t, l, conv("c1"))
		const writers, each = 8, 25
		var wg sync.WaitGroup
		errs := make(chan error, writers*each*2)
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < each; i++ {
					// Two writers share every client id: each id must be stored once.
					id := fmt.Sprintf("w%d-%d", w/2, i)
					if _, _, err := l.Append(ctx, tandem.Message{ConversationID: "c1", ClientID: id, Author: tandem.AuthorCustomer, Text: id}); err != nil {
						errs <- err
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		all, err := l.Messages(ctx, "c1", 0, 10000)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != writers/2*each {
			t.Fatalf("stored %d messages, want %d", len(all), writers/2*each)
		}
		seen := map[string]bool{}
		for i, m := range all {
			if m.Seq != int64(i+1) {
				t.Fatalf("gap: position %d has seq %d", i, m.Seq)
			}
			if seen[m.ClientID] {
				t.Fatalf("client id %s stored twice", m.ClientID)
			}
			seen[m.ClientID] = true
		}
	})

	t.Run("latest conversation and mode", func(t *testing.T) {
		l := newLog(t)
		a := conv("a")
		a.Customer.ID = "u"
		b := conv("b")
		b.Customer.ID = "u"
		mustCreate(t, l, a)
		mustCreate(t, l, b)
		if _, _, err := l.Append(ctx, tandem.Message{ConversationID: "a", Author: tandem.AuthorCustomer, Text: "later"}); err != nil {
			t.Fatal(err)
		}
		got, err := l.LatestConversation(ctx, "site", "u")
		if err != nil || got.ID != "a" {
			t.Fatalf("latest = %+v, %v; want a", got, err)
		}
		c, err := l.SetMode(ctx, "a", tandem.ModeHuman, "agent-1")
		if err != nil || c.Mode != tandem.ModeHuman || c.AgentID != "agent-1" {
			t.Fatalf("set mode = %+v, %v", c, err)
		}
		if c, _ := l.Conversation(ctx, "a"); c.Mode != tandem.ModeHuman || c.AgentID != "agent-1" {
			t.Fatalf("mode not stored: %+v", c)
		}
		if _, err := l.SetMode(ctx, "a", tandem.ModeClosed, ""); err != nil {
			t.Fatal(err)
		}
		if got, err := l.LatestConversation(ctx, "site", "u"); err != nil || got.ID != "b" {
			t.Fatalf("latest after close = %+v, %v; want b", got, err)
		}
		if _, err := l.LatestConversation(ctx, "other-site", "u"); code(err) != tandem.ENOTFOUND {
			t.Fatalf("other site: %v", err)
		}
		if _, err := l.SetMode(ctx, "nope", tandem.ModeBot, ""); code(err) != tandem.ENOTFOUND {
			t.Fatalf("set mode unknown: %v", err)
		}
		// Compare-and-swap: only from the expected mode.
		if c, ok, err := l.SwapMode(ctx, "a", tandem.ModeBot, tandem.ModeQueued, ""); err != nil || ok || c.Mode != tandem.ModeClosed {
			t.Fatalf("swap from the wrong mode = %+v, %v, %v; want not swapped, closed", c, ok, err)
		}
		if c, ok, err := l.SwapMode(ctx, "a", tandem.ModeClosed, tandem.ModeHuman, "agent-2"); err != nil || !ok || c.Mode != tandem.ModeHuman || c.AgentID != "agent-2" {
			t.Fatalf("swap = %+v, %v, %v", c, ok, err)
		}
		if c, _ := l.Conversation(ctx, "a"); c.Mode != tandem.ModeHuman || c.AgentID != "agent-2" {
			t.Fatalf("swap not stored: %+v", c)
		}
		if _, _, err := l.SwapMode(ctx, "nope", tandem.ModeBot, tandem.ModeQueued, ""); code(err) != tandem.ENOTFOUND {
			t.Fatalf("swap unknown: %v", err)
		}
	})

	t.Run("erase deletes the conversation and its messages", func(t *testing.T) {
		l := newLog(t)
		mustCreate(t, l, conv("gone"))
		mustCreate(t, l, conv("kept"))
		for _, id := range []string{"gone", "kept"} {
			if _, _, err := l.Append(ctx, tandem.Message{ConversationID: id, ClientID: "m1", Author: tandem.AuthorCustomer, Text: "my email is z@example.com"}); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Erase(ctx, "gone"); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Conversation(ctx, "gone"); code(err) != tandem.ENOTFOUND {
			t.Fatalf("erased conversation read: %v, want not_found", err)
		}
		if _, err := l.Messages(ctx, "gone", 0, 10); code(err) != tandem.ENOTFOUND {
			t.Fatalf("erased conversation's messages: %v, want not_found", err)
		}
		if _, _, err := l.Append(ctx, tandem.Message{ConversationID: "gone", Author: tandem.AuthorCustomer, Text: "late"}); code(err) != tandem.ENOTFOUND {
			t.Fatalf("append to an erased conversation: %v, want not_found", err)
		}
		if _, err := l.LatestConversation(ctx, "site", "cust-gone"); code(err) != tandem.ENOTFOUND {
			t.Fatalf("latest conversation of its customer: %v, want not_found", err)
		}
		if err := l.Erase(ctx, "gone"); code(err) != tandem.ENOTFOUND {
			t.Fatalf("second erase: %v, want not_found", err)
		}
		if ms, err := l.Messages(ctx, "kept", 0, 10); err != nil || len(ms) != 1 {
			t.Fatalf("the other conversation: %d messages, %v", len(ms), err)
		}
		// The id can be used again, from seq 1.
		mustCreate(t, l, conv("gone"))
		if m, _, err := l.Append(ctx, tandem.Message{ConversationID: "gone", ClientID: "m1", Author: tandem.AuthorCustomer, Text: "new"}); err != nil || m.Seq != 1 {
			t.Fatalf("append after re-creating: %+v, %v", m, err)
		}
	})

	t.Run("customer conversations, newest first, every mode", func(t *testing.T) {
		l := newLog(t)
		base := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
		for i, id := range []string{"old", "mid", "new"} {
			c := conv(id)
			c.Customer.ID, c.CreatedAt = "u:ada", base.Add(time.Duration(i)*time.Minute)
			mustCreate(t, l, c)
		}
		other := conv("other-site")
		other.SiteKey, other.Customer.ID = "site2", "u:ada"
		mustCreate(t, l, other)
		mustCreate(t, l, conv("someone-else"))
		if _, err := l.SetMode(ctx, "mid", tandem.ModeClosed, ""); err != nil { // now the most recent
			t.Fatal(err)
		}
		ids := func(cs []tandem.Conversation) string {
			var out []string
			for _, c := range cs {
				out = append(out, c.ID)
			}
			return fmt.Sprint(out)
		}
		got, err := l.CustomerConversations(ctx, "site", "u:ada", 10)
		if err != nil || ids(got) != "[mid new old]" {
			t.Fatalf("customer conversations = %s, %v; want [mid new old]", ids(got), err)
		}
		if got[0].Mode != tandem.ModeClosed || got[0].Customer.ID != "u:ada" {
			t.Fatalf("first = %+v", got[0])
		}
		if got, err := l.CustomerConversations(ctx, "site", "u:ada", 2); err != nil || ids(got) != "[mid new]" {
			t.Fatalf("limit 2 = %s, %v", ids(got), err)
		}
		if got, err := l.CustomerConversations(ctx, "site", "u:nobody", 10); err != nil || len(got) != 0 {
			t.Fatalf("unknown customer = %s, %v; want none", ids(got), err)
		}
		if _, err := l.CustomerConversations(ctx, "site", "u:ada", 0); code(err) != tandem.EINVALID {
			t.Fatalf("limit 0: %v, want invalid", err)
		}
	})

	t.Run("idle conversations page oldest first and erase only while idle", func(t *testing.T) {
		l := newLog(t)
		base := time.Now().UTC().Add(-48 * time.Hour).Truncate(time.Second)
		// Five conversations last updated at base, base, base+1h, base+2h,
		// base+3h; "d" then gets a message now, so it is no longer idle.
		at := map[string]time.Duration{"a": 0, "b": 0, "c": time.Hour, "d": 2 * time.Hour, "e": 3 * time.Hour}
		for _, id := range []string{"e", "d", "c", "b", "a"} {
			c := conv(id)
			c.CreatedAt = base.Add(at[id])
			mustCreate(t, l, c)
		}
		if _, _, err := l.Append(ctx, tandem.Message{ConversationID: "d", Author: tandem.AuthorCustomer, Text: "still here"}); err != nil {
			t.Fatal(err)
		}
		cutoff := base.Add(24 * time.Hour)
		var got []string
		var cur gateway.IdleCursor
		for pages := 0; ; pages++ {
			page, err := l.IdleConversations(ctx, cutoff, cur, 2)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range page {
				got = append(got, c.ID)
				cur = gateway.IdleCursor{UpdatedAt: c.UpdatedAt, ID: c.ID}
			}
			if len(page) < 2 || pages > 5 {
				break
			}
		}
		if fmt.Sprint(got) != "[a b c e]" {
			t.Fatalf("idle conversations in pages of 2 = %v, want [a b c e]", got)
		}
		if page, err := l.IdleConversations(ctx, base, gateway.IdleCursor{}, 10); err != nil || len(page) != 0 {
			t.Fatalf("idle before the oldest update = %v, %v; want none", page, err)
		}
		if _, err := l.IdleConversations(ctx, cutoff, gateway.IdleCursor{}, 0); code(err) != tandem.EINVALID {
			t.Fatalf("limit 0: %v, want invalid", err)
		}
		// "d" was updated after the cutoff: kept, messages and all.
		if ok, err := l.EraseIdle(ctx, "d", cutoff); err != nil || ok {
			t.Fatalf("erase idle of an active conversation = %v, %v; want false", ok, err)
		}
		if ms, err := l.Messages(ctx, "d", 0, 10); err != nil || len(ms) != 1 {
			t.Fatalf("the active conversation after erase idle: %d messages, %v", len(ms), err)
		}
		if ok, err := l.EraseIdle(ctx, "a", cutoff); err != nil || !ok {
			t.Fatalf("erase idle of an idle conversation = %v, %v; want true", ok, err)
		}
		if _, err := l.Conversation(ctx, "a"); code(err) != tandem.ENOTFOUND {
			t.Fatalf("erased idle conversation read: %v, want not_found", err)
		}
		if ok, err := l.EraseIdle(ctx, "a", cutoff); err != nil || ok {
			t.Fatalf("second erase idle = %v, %v; want false", ok, err)
		}
	})
}

func seqs(ms []tandem.Message) []int64 {
	out := make([]int64, len(ms))
	for i, m := range ms {
		out[i] = m.Seq
	}
	return out
}
