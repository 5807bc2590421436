package console

import (
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tandem-chat/tandem/gateway"
	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/handoff/memstore"
)

// TestLoginKeyGroupsIPv6Networks: addresses of one IPv6 /64 share one
// login bucket (a host can rotate through its /64).
func TestLoginKeyGroupsIPv6Networks(t *testing.T) {
	key := func(remote string) string {
		r := httptest.NewRequest("POST", "/api/v1/agents/login", nil)
		r.RemoteAddr = remote
		return gateway.ClientIP(r)
	}
	if a, b := key("[2001:db8:1:2::1]:5000"), key("[2001:db8:1:2:ffff::9]:6000"); a != b {
		t.Fatalf("one /64, two keys: %s, %s", a, b)
	}
	if a, b := key("[2001:db8:1:2::1]:5000"), key("[2001:db8:1:3::1]:5000"); a == b {
		t.Fatalf("two /64s, one key %s", a)
	}
	if a, b := key("192.0.2.1:1"), key("[::ffff:192.0.2.1]:2"); a != b || a != "192.0.2.1" {
		t.Fatalf("IPv4 keys %s, %s", a, b)
	}
}

// TestLimiterFullKeepsLimitedClientsLimited: when the limiter is full, a
// new key must not wipe the buckets of clients being limited.
func TestLimiterFullKeepsLimitedClientsLimited(t *testing.T) {
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	l := newLimiter(0.001, 2, 100)
	for l.allow("attacker", now) {
	}
	for i := range 200 { // fill the limiter and beyond with other clients
		l.allow(fmt.Sprint("client-", i), now.Add(time.Duration(i)*time.Millisecond))
	}
	if l.allow("attacker", now.Add(time.Second)) {
		t.Fatal("the attacker's bucket was forgotten when the limiter filled up")
	}
	if len(l.buckets) > 100 {
		t.Fatalf("%d buckets, bound 100", len(l.buckets))
	}
}

// TestAccountLimiterKeysAreBounded: the per-account login limiter keeps a
// bucket per email tried; emails up to the 16 KiB body limit, from many
// addresses, must not make each bucket's key cost kilobytes (10,000 of
// them held 160 MB).
func TestAccountLimiterKeysAreBounded(t *testing.T) {
	eng, err := handoff.New(memstore.New(), handoff.Config{BcryptCost: 4})
	if err != nil {
		t.Fatal(err)
	}
	c := &Console{eng: eng, log: slog.New(slog.DiscardHandler), logins: newLimiter(1, 10, 10000), accountLogins: newLimiter(0.1, 10, 10000)}
	for i := range 20 {
		body := fmt.Sprintf(`{"email":"%d%s@example.com","password":"x"}`, i, strings.Repeat("a", 15000))
		r := httptest.NewRequest("POST", "/api/v1/agents/login", strings.NewReader(body))
		r.RemoteAddr = fmt.Sprintf("192.0.2.%d:1000", i+1)
		w := httptest.NewRecorder()
		c.login(w, r)
		if w.Code != 401 {
			t.Fatalf("login %d: %d %s", i, w.Code, w.Body)
		}
	}
	size := 0
	for k := range c.accountLogins.buckets {
		size += len(k)
	}
	if size > 20*254 {
		t.Fatalf("account limiter keys hold %d bytes for 20 attempts", size)
	}
}
