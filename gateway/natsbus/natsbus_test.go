package natsbus_test

import (
	"context"
	"net"
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
