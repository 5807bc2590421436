package console_test

import (
	"context"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/gateway/natsbus"
	"github.com/tandem-chat/tandem/gateway/pgconvlog"
	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/handoff/pgstore"
	"github.com/tandem-chat/tandem/internal/pgtest"
)

// pgStores opens a handoff store and a conversation log on the PostgreSQL
// database at url, closed when the test ends.
func pgStores(t *testing.T, url string) (*pgstore.Store, *pgconvlog.Log) {
	t.Helper()
	ctx := context.Background()
	store, err := pgstore.Open(ctx, url, pgstore.Options{MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	log, err := pgconvlog.New(ctx, store.Pool())
	if err != nil {
		t.Fatal(err)
	}
	return store, log
}

// TestTwoNodes: the customer is connected to node A, the agent's console to
// node B; both nodes share PostgreSQL (handoff store and conversation log)
// and NATS. Events emitted on one node reach sockets on the other: the
// offer routed on A reaches the console on B, the acceptance on B reaches
// the customer on A, and messages flow both ways.
func TestTwoNodes(t *testing.T) {
	db := pgtest.New(t)
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	t.Cleanup(ns.Shutdown)
	clock := handoff.NewManualClock(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	node := func(name string) *env {
		ctx := context.Background()
		store, log := pgStores(t, db.URL)
		bus, err := natsbus.Connect(ctx, natsbus.Config{URL: ns.ClientURL(), Name: name})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = bus.Close() })
		return newNode(t, nodeOpts{name: name, clock: clock, store: store, log: log, bus: bus})
	}
	a, b := node("a"), node("b")
	_, annTok := b.agent("ann@example.com", "Ann", nil)
	agent := b.console(annTok)
	cust, conv := a.customer()
	cust.send(map[string]any{"type": "handoff_request", "client_id": "h1"})
	cust.until(handoffStatus("queued"))
	a.escalated(conv)
	a.tick() // node A routes and emits the offer

	offer, _ := agent.until(ticketEvent("ticket.offered"))
	agent.until(messageFrom(tandem.AuthorCustomer, "talk to a person"))
	agent.send(map[string]any{"type": "accept", "ticket_id": offer.Ticket.ID, "ref": "a"})
	if f, _ := agent.until(answer("a")); f.Type != "ok" {
		t.Fatalf("accept on B: %s", f.raw)
	}
	if f, _ := cust.until(handoffStatus("assigned")); f.AgentName != "Ann" {
		t.Fatalf("customer on A: %s", f.raw)
	}
	agent.send(map[string]any{"type": "message", "conversation_id": conv, "client_id": "m1", "text": "hello from node B"})
	cust.until(messageFrom(tandem.AuthorAgent, "hello from node B"))
	cust.send(map[string]any{"type": "message", "client_id": "c1", "text": "hello from node A"})
	agent.until(messageFrom(tandem.AuthorCustomer, "hello from node A"))

	// Resolving on B closes the conversation for the customer on A.
	agent.send(map[string]any{"type": "resolve", "ticket_id": offer.Ticket.ID, "ref": "r"})
	agent.until(answer("r"))
	cust.until(handoffStatus("closed"))
}
