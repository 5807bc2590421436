package gateway

import (
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// keyedLimiter is a token bucket per key (IP address, conversation id),
// bounded in size: idle buckets are swept, and when the table is full of
// active keys new keys are refused (fail closed under a flood of keys).
type keyedLimiter struct {
	limit rate.Limit
	burst int
	max   int
	idle  time.Duration

	mu        sync.Mutex // guards m, lastSweep
	m         map[string]*limiterEntry
	lastSweep time.Time
}

type limiterEntry struct {
	lim  *rate.Limiter
	last time.Time
}

func newKeyedLimiter(perSecond float64, burst, max int) *keyedLimiter {
	return &keyedLimiter{limit: rate.Limit(perSecond), burst: burst, max: max, idle: 10 * time.Minute, m: map[string]*limiterEntry{}}
}

// allow takes one token for key; it returns false and how long to wait
// when the bucket is empty.
func (k *keyedLimiter) allow(key string, now time.Time) (bool, time.Duration) {
	if k.limit <= 0 {
		return true, 0
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	e := k.m[key]
	if e == nil {
		if len(k.m) >= k.max || now.Sub(k.lastSweep) > time.Minute {
			k.sweep(now)
		}
		if len(k.m) >= k.max {
			return false, time.Second
		}
		e = &limiterEntry{lim: rate.NewLimiter(k.limit, k.burst)}
		k.m[key] = e
	}
	e.last = now
	r := e.lim.ReserveN(now, 1)
	if !r.OK() {
		return false, time.Second
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

func (k *keyedLimiter) sweep(now time.Time) {
	k.lastSweep = now
	for key, e := range k.m {
		// A bucket idle long enough to be full again carries no state.
		if now.Sub(e.last) > k.idle || e.lim.TokensAt(now) >= float64(k.burst) && now.Sub(e.last) > time.Minute {
			delete(k.m, key)
		}
	}
}

// connCounter bounds concurrent connections in total and per key (IP).
type connCounter struct {
	maxTotal, maxPerKey int

	mu    sync.Mutex // guards total, byKey
	total int
	byKey map[string]int
}

func newConnCounter(maxTotal, maxPerKey int) *connCounter {
	return &connCounter{maxTotal: maxTotal, maxPerKey: maxPerKey, byKey: map[string]int{}}
}

func (c *connCounter) acquire(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.total >= c.maxTotal || c.byKey[key] >= c.maxPerKey {
		return false
	}
	c.total++
	c.byKey[key]++
	return true
}

func (c *connCounter) release(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total--
	if n := c.byKey[key] - 1; n > 0 {
		c.byKey[key] = n
	} else {
		delete(c.byKey, key)
	}
}

func (c *connCounter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total
}

// ClientIP is the request's remote address as a per-client limit key:
// the peer address (already the client's when a trusted proxy forwarded
// the request, see Server), without the port, IPv6 by /64 (ClientKey).
func ClientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return ClientKey(host)
}

// ClientKey is the key per-client limits use for an address: the address
// itself for IPv4, its /64 network for IPv6 (one host commonly holds a
// whole /64, and could otherwise rotate through its addresses to escape
// every per-address limit). A string that is not an address is returned
// as it is.
func ClientKey(host string) string {
	a, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	p, err := a.Prefix(64)
	if err != nil {
		return host
	}
	return p.String()
}

// setRetryAfter tells a refused client when to try again (whole seconds,
// at least 1).
func setRetryAfter(w http.ResponseWriter, wait time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(wait.Seconds())))))
}
