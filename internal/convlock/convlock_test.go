package convlock

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestLocks: one holder per conversation; another conversation is not
// blocked; a waiter whose context ends gives up (it stayed behind a holder
// stuck on a slow store); the lock works after.
func TestLocks(t *testing.T) {
	var l Locks
	ctx := context.Background()
	unlock, err := l.Lock(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	other, err := l.Lock(ctx, "c2") // another conversation (another stripe): not blocked
	if err != nil {
		t.Fatal(err)
	}
	other()
	cctx, cancel := context.WithCancel(ctx)
	got := make(chan error, 1)
	go func() {
		u, err := l.Lock(cctx, "c1")
		if u != nil {
			u()
		}
		got <- err
	}()
	cancel()
	select {
	case err := <-got:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("a cancelled waiter: %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second): // a hang guard
		t.Fatal("a cancelled waiter stayed blocked")
	}
	done := make(chan struct{})
	go func() {
		if u, err := l.Lock(ctx, "c1"); err == nil {
			u()
		}
		close(done)
	}()
	unlock()
	<-done
}
