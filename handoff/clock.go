package handoff

import (
	"sync"
	"time"
)

// Clock tells the engine the time. Offer timeouts, disconnect grace and
// heartbeat expiry are all decided by comparing Clock.Now with times kept
// in the Store, so a test that controls the Clock controls every timeout.
type Clock interface {
	Now() time.Time
}

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

// ManualClock is a Clock that moves only when told to, for tests and
// simulations. It is safe for concurrent use.
type ManualClock struct {
	mu sync.Mutex // guards t
	t  time.Time
}

// NewManualClock returns a clock set to t (truncated to microseconds, UTC).
func NewManualClock(t time.Time) *ManualClock { return &ManualClock{t: UTC(t)} }

// Now returns the clock's time.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d and returns the new time.
func (c *ManualClock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = UTC(c.t.Add(d))
	return c.t
}
