package natsbus_test

import (
	"context"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/tandem-chat/tandem/gateway/natsbus"
)

func runNATS(t *testing.T, port int) *natsserver.Server {
	t.Helper()
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	return ns
}

// TestOnLossAfterReconnect: what was published while a node was cut off
// from NATS is gone; after the reconnect the bus says so (OnLoss), so the
// gateway recovers conversation messages from the log.
func TestOnLossAfterReconnect(t *testing.T) {
	ns := runNATS(t, -1)
	port := ns.Addr().(*net.TCPAddr).Port
	addr := ns.ClientURL()
	lost := make(chan struct{}, 10)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := natsbus.Connect(ctx, natsbus.Config{URL: addr, Name: "t", OnLoss: func() { lost <- struct{}{} }})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ns.Shutdown()
	ns.WaitForShutdown()
	ns2 := runNATS(t, port) // the same address: the client reconnects

	defer ns2.Shutdown()
	select {
	case <-lost:
	case <-time.After(30 * time.Second): // a hang guard, not a speed limit
		t.Fatal("no OnLoss after the reconnect")
	}
}

// recorder collects what a handler received.
type recorder struct {
	mu  sync.Mutex
	got []string
}

func (r *recorder) handle(b []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, string(b))
}

func (r *recorder) wait(t *testing.T, what string) []string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		r.mu.Lock()
		got := append([]string(nil), r.got...)
		r.mu.Unlock()
		if slices.Contains(got, what) {
			return got
		}
		if time.Now().After(deadline) { // a hang guard
			t.Fatalf("%q never arrived; got %q", what, got)
		}
	}
}

// TestOwnEventsOnceAndDuringOutage: a node's own subscriptions get its
// events once (at publish, not again from NATS), the other node's once
// through NATS, and while NATS is down the node still delivers to its own
// subscriptions (only delivery across nodes waits for the reconnect).
func TestOwnEventsOnceAndDuringOutage(t *testing.T) {
	ns := runNATS(t, -1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, err := natsbus.Connect(ctx, natsbus.Config{URL: ns.ClientURL(), Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := natsbus.Connect(ctx, natsbus.Config{URL: ns.ClientURL(), Name: "b"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var onA, onB recorder
	if _, err := a.Subscribe("s", onA.handle); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Subscribe("s", onB.handle); err != nil {
		t.Fatal(err)
	}
	if err := a.Publish(ctx, "s", []byte("m1")); err != nil {
		t.Fatal(err)
	}
	onB.wait(t, "m1")
	// b's event reaches a after any echo of m1 would have (one connection,
	// in order from the server).
	if err := b.Publish(ctx, "s", []byte("sentinel")); err != nil {
		t.Fatal(err)
	}
	if got := onA.wait(t, "sentinel"); !slices.Equal(got, []string{"m1", "sentinel"}) {
		t.Fatalf("a's subscription got %q, want m1 once, then b's event", got)
	}
	if got := onB.wait(t, "sentinel"); !slices.Equal(got, []string{"m1", "sentinel"}) {
		t.Fatalf("b's subscription got %q, want a's event, then its own once", got)
	}

	ns.Shutdown()
	ns.WaitForShutdown()
	if err := a.Publish(ctx, "s", []byte("during outage")); err != nil {
		t.Fatalf("publish while reconnecting: %v", err)
	}
	onA.wait(t, "during outage")
	// A conversation followed during the outage gets this node's events
	// (subscribing does not wait for the server).
	var late recorder
	if _, err := a.Subscribe("s2", late.handle); err != nil {
		t.Fatalf("subscribe while reconnecting: %v", err)
	}
	if err := a.Publish(ctx, "s2", []byte("to a new follower")); err != nil {
		t.Fatal(err)
	}
	late.wait(t, "to a new follower")
	// Closed: nothing is delivered, and the publisher is told.
	a.Close()
	if err := a.Publish(ctx, "s", []byte("after close")); err == nil {
		t.Fatal("publish on a closed bus succeeded")
	}
	onA.mu.Lock()
	defer onA.mu.Unlock()
	if slices.Contains(onA.got, "after close") {
		t.Fatal("a closed bus delivered an event")
	}
}
