package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/gateway"
)

// TestCustomerConversationsAndErasure: an admin lists a customer's
// conversations on a site (newest first, every mode) and erases them all —
// tickets, log and bot state of each, as DELETE /v1/conversations/{id}
// does — leaving the ones with an open ticket (listed) and every other
// customer's and site's; only admins may, and bad parameters are 400.
func TestCustomerConversationsAndErasure(t *testing.T) {
	ctx := context.Background()
	h := &erasingHandoff{open: map[string]bool{}, tickets: map[string]int{}}
	ts := startServer(t, serverOpts{handoffImpl: h, bot: forgettingBot{h: h}})
	base := time.Now().Add(-time.Hour)
	create := func(id, site, customer string, age time.Duration) {
		t.Helper()
		c := tandem.Conversation{ID: id, SiteKey: site, Customer: tandem.Customer{ID: customer, Verified: true}, CreatedAt: base.Add(-age)}
		if _, err := ts.Log.CreateConversation(ctx, c); err != nil {
			t.Fatal(err)
		}
		if _, _, err := ts.Log.Append(ctx, tandem.Message{ConversationID: id, Author: tandem.AuthorCustomer, Text: "my email is ada@example.com"}); err != nil {
			t.Fatal(err)
		}
	}
	create("c_ada1", testSite, "u:ada", 3*time.Minute)
	create("c_ada2", testSite, "u:ada", 2*time.Minute)
	create("c_ada3", testSite, "u:ada", time.Minute)
	create("c_bob", testSite, "u:bob", 0)
	create("c_ada_elsewhere", "other-site", "u:ada", 0)
	query := "?site_key=" + testSite + "&customer_id=" + url.QueryEscape("u:ada")

	s := ts.session(t, nil)
	agent, _ := ts.Auth.IssueStaff("agent-7", "Sam", gateway.RoleAgent, "", time.Hour)
	for _, who := range []struct{ name, bearer string }{{"nobody", ""}, {"a customer", s.Token}, {"an agent", agent}} {
		for _, method := range []string{"GET", "DELETE"} {
			if code, _ := ts.request(t, method, "/v1/conversations"+query, who.bearer); code != 401 && code != 403 {
				t.Fatalf("%s by %s: %d, want 401 or 403", method, who.name, code)
			}
		}
	}
	for _, q := range []string{"", "?site_key=" + testSite, "?customer_id=u:ada", "?site_key=a%20b&customer_id=u:ada",
		"?site_key=" + testSite + "&customer_id=%ff", "?site_key=" + testSite + "&customer_id=a%0Ab",
		"?site_key=" + testSite + "&customer_id=" + strings.Repeat("x", 131), query + "&limit=0", query + "&limit=501", query + "&limit=ten"} {
		if code, body := ts.request(t, "GET", "/v1/conversations"+q, testAdmin); code != 400 || !strings.Contains(body, `"invalid"`) {
			t.Fatalf("GET /v1/conversations%s: %d %s, want 400 invalid", q, code, body)
		}
	}
	if code, _ := ts.request(t, "DELETE", "/v1/conversations?site_key="+testSite, testAdmin); code != 400 {
		t.Fatalf("DELETE without customer_id: %d, want 400", code)
	}

	list := func(q string) gateway.CustomerConversations {
		t.Helper()
		code, body := ts.request(t, "GET", "/v1/conversations"+q, testAdmin)
		var page gateway.CustomerConversations
		if err := json.Unmarshal([]byte(body), &page); code != 200 || err != nil {
			t.Fatalf("list: %d %s", code, body)
		}
		return page
	}
	ids := func(cs []tandem.Conversation) string {
		var out []string
		for _, c := range cs {
			out = append(out, c.ID)
		}
		return fmt.Sprint(out)
	}
	if page := list(query); ids(page.Conversations) != "[c_ada3 c_ada2 c_ada1]" || page.More {
		t.Fatalf("list = %s more=%v, want [c_ada3 c_ada2 c_ada1] and no more", ids(page.Conversations), page.More)
	}
	if page := list(query + "&limit=2"); ids(page.Conversations) != "[c_ada3 c_ada2]" || !page.More {
		t.Fatalf("list limit 2 = %s more=%v, want [c_ada3 c_ada2] and more", ids(page.Conversations), page.More)
	}
	if page := list("?site_key=" + testSite + "&customer_id=u:nobody"); page.Conversations == nil || len(page.Conversations) != 0 {
		t.Fatalf("unknown customer = %+v, want an empty list", page)
	}

	erase := func() gateway.CustomerErasure {
		t.Helper()
		code, body := ts.request(t, "DELETE", "/v1/conversations"+query, testAdmin)
		var res gateway.CustomerErasure
		if err := json.Unmarshal([]byte(body), &res); code != 200 || err != nil {
			t.Fatalf("erase: %d %s", code, body)
		}
		return res
	}
	h.mu.Lock()
	h.open["c_ada2"] = true
	h.mu.Unlock()
	if res := erase(); res.Erased != 2 || fmt.Sprint(res.Kept) != "[c_ada2]" {
		t.Fatalf("erase = %+v, want 2 erased and c_ada2 kept", res)
	}
	for id, want := range map[string]bool{"c_ada1": false, "c_ada2": true, "c_ada3": false, "c_bob": true, "c_ada_elsewhere": true} {
		_, err := ts.Log.Conversation(ctx, id)
		if (err == nil) != want {
			t.Fatalf("%s after the erasure: %v (kept: %v)", id, err, want)
		}
	}
	h.mu.Lock()
	forgot := fmt.Sprint(h.forgets)
	h.open["c_ada2"] = false
	h.mu.Unlock()
	if forgot != "[c_ada3 c_ada1]" {
		t.Fatalf("bot forgot %s, want [c_ada3 c_ada1]", forgot)
	}
	if res := erase(); res.Erased != 1 || len(res.Kept) != 0 {
		t.Fatalf("second erase = %+v, want 1 erased", res)
	}
	if res := erase(); res.Erased != 0 || res.Kept == nil || len(res.Kept) != 0 {
		t.Fatalf("third erase = %+v, want nothing erased and kept []", res)
	}
	if page := list(query); len(page.Conversations) != 0 {
		t.Fatalf("list after the erasure = %s", ids(page.Conversations))
	}
}
