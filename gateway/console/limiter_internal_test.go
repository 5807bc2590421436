package console

import (
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tandem-chat/tandem/gateway"
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
