package gateway_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/gateway"
	"github.com/tandem-chat/tandem/gateway/natsbus"
	"github.com/tandem-chat/tandem/gateway/pgconvlog"
	"github.com/tandem-chat/tandem/internal/pgtest"
)

// startNATS runs an embedded NATS server for the test.
func startNATS(t testing.TB) string {
	t.Helper()
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(ns.Shutdown)
	return ns.ClientURL()
}

func connectBus(t testing.TB, url, name string) *natsbus.Bus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, err := natsbus.Connect(ctx, natsbus.Config{URL: url, Name: name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func pgLog(t testing.TB) gateway.ConvLog {
	t.Helper()
	db := pgtest.New(t)
	l, err := pgconvlog.New(context.Background(), db.Pool)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestDeliveryUnderChaosPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	ts := startServer(t, serverOpts{log: pgLog(t), cfg: chaosConfig()})
	runDelivery(t, []*testServer{ts}, deliveryConfig{seed: 7, customers: 6, perCustomer: 120, agentPerConv: 50, window: 4})
}

// TestTwoNodesOverNATS: a customer on node A and a subscriber (agent
// console) on node B exchange messages through a real NATS server and a
// shared Postgres log.
func TestTwoNodesOverNATS(t *testing.T) {
	url := startNATS(t)
	log := pgLog(t)
	a := startServer(t, serverOpts{log: log, bus: connectBus(t, url, "a")})
	b := startServer(t, serverOpts{log: log, bus: connectBus(t, url, "b")})
	s := a.session(t, nil)
	cust := a.connect(t, s.Token, 0)
	sub := &collector{ch: make(chan *gateway.Event, 64)}
	unsub, err := b.Chat.Hub().Subscribe(s.ConversationID, sub)
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	// Customer (node A) -> subscriber (node B).
	cust.send(map[string]any{"type": "message", "client_id": "m1", "text": "hello from A"})
	deadline := time.After(10 * time.Second)
	for got := false; !got; {
		select {
		case ev := <-sub.ch:
			got = ev.Seq == 1 && string(ev.Frame) != "" && contains(ev.Frame, "hello from A")
		case <-deadline:
			t.Fatal("node B never saw the customer's message")
		}
	}
	// Agent on node B -> customer on node A, and a typing indicator.
	if err := b.Chat.Publish(context.Background(), s.ConversationID, "", gateway.TypingFrame{Type: gateway.FrameTyping, ConversationID: s.ConversationID, Author: tandem.AuthorAgent, On: true}); err != nil {
		t.Fatal(err)
	}
	cust.until(func(f frame) bool { return f.Type == "typing" && f.Author == "agent" })
	if _, _, err := b.Chat.PostMessage(context.Background(), tandem.Message{ConversationID: s.ConversationID, Author: tandem.AuthorAgent, Text: "hi from B"}); err != nil {
		t.Fatal(err)
	}
	f, _ := cust.until(messageFrom(tandem.AuthorAgent))
	if f.msg(t).Text != "hi from B" {
		t.Fatalf("customer got %s", f.raw)
	}
}

// TestDeliveryTwoNodesNodeKilled: customers hop between two nodes while
// connections are cut; node A is killed mid-run and everything that was
// acknowledged survives and reaches the clients exactly once, in order.
func TestDeliveryTwoNodesNodeKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	url := startNATS(t)
	log := pgLog(t)
	a := startServer(t, serverOpts{log: log, bus: connectBus(t, url, "a"), cfg: chaosConfig()})
	b := startServer(t, serverOpts{log: log, bus: connectBus(t, url, "b"), cfg: chaosConfig()})
	runDelivery(t, []*testServer{a, b}, deliveryConfig{seed: 99, customers: 6, perCustomer: 120, agentPerConv: 50, window: 4, killAfter: 300})
}

func TestNATSBusKBInvalidateReachesAllNodes(t *testing.T) {
	url := startNATS(t)
	buses := []*natsbus.Bus{connectBus(t, url, "a"), connectBus(t, url, "b"), connectBus(t, url, "c")}
	got := make(chan string, 8)
	for i, bus := range buses {
		if _, err := bus.Subscribe(gateway.SubjectKBInvalidate, func(data []byte) { got <- fmt.Sprintf("%d:%s", i, data) }); err != nil {
			t.Fatal(err)
		}
	}
	if err := buses[1].Publish(context.Background(), gateway.SubjectKBInvalidate, []byte("faq-9")); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for len(seen) < 3 {
		select {
		case s := <-got:
			seen[s] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("invalidation reached only %v", seen)
		}
	}
	for i := range buses {
		if !seen[fmt.Sprintf("%d:faq-9", i)] {
			t.Fatalf("node %d missed the invalidation: %v", i, seen)
		}
	}
}

func contains(b []byte, s string) bool { return strings.Contains(string(b), s) }

// stuckBot never answers in time: it returns when its turn's time is up.
type stuckBot struct{}

func (stuckBot) Respond(ctx context.Context, _ tandem.Turn) (tandem.Reply, error) {
	<-ctx.Done()
	return tandem.Reply{}, ctx.Err()
}

// TestBotTimeoutStillAnswers: a turn whose bot runs out of time answers
// with the fallback. Its reply was stored with the turn's expired context,
// which PostgreSQL refuses: the customer got no answer at all (and the
// bot's typing indicator stayed on).
func TestBotTimeoutStillAnswers(t *testing.T) {
	ts := startServer(t, serverOpts{log: pgLog(t), bot: stuckBot{}, cfg: gateway.ChatConfig{BotTimeout: 200 * time.Millisecond}})
	s := ts.session(t, nil)
	c := ts.connect(t, s.Token, 0)
	c.send(map[string]any{"type": "message", "client_id": "m1", "text": "are you there?"})
	f, _ := c.until(messageFrom(tandem.AuthorBot))
	if m := f.msg(t); m.Data["reply_kind"] != string(tandem.ReplyFallback) {
		t.Fatalf("bot answered %+v", m)
	}
}
