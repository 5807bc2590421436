package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/gateway"
)

// deliveryConfig sizes a delivery run.
type deliveryConfig struct {
	seed         uint64
	customers    int
	perCustomer  int // customer messages per conversation (each gets a bot reply)
	agentPerConv int // agent messages per conversation, posted server-side
	window       int // unacknowledged messages a client keeps in flight
	// killAfter, when > 0, kills nodes[0] once that many customer messages
	// are acknowledged in total.
	killAfter int64
}

// chaosConfig is a ChatConfig with limits that do not get in the way of a
// load test from one address.
func chaosConfig() gateway.ChatConfig {
	return gateway.ChatConfig{ConvRate: 100000, ConvBurst: 100000, IPRate: 100000, IPBurst: 100000,
		MaxConnsPerIP: 100000, MaxPendingTurns: 1000, CloseGrace: 50 * time.Millisecond}
}

// runDelivery runs customers against the nodes while a chaos goroutine cuts
// connections at random points (server side) and clients drop their own
// sockets at random; agents post from the server side at the same time.
// It then checks the guarantees: every acknowledged message is stored
// exactly once, customer messages in send order, and every client saw the
// whole log exactly once, in seq order.
func runDelivery(t *testing.T, nodes []*testServer, dc deliveryConfig) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var dead atomic.Bool   // nodes[0] is being killed: route around it
	var killed atomic.Bool // nodes[0] is dead: its turns have ended
	var ackedTotal atomic.Int64
	var cuts atomic.Int64

	sessions := make([]gateway.SessionResponse, dc.customers)
	for i := range sessions {
		sessions[i] = nodes[0].session(t, nil)
	}
	// Chaos: drop every connection of a random live node now and then.
	chaosDone := make(chan struct{})
	stopChaos := make(chan struct{})
	go func() {
		defer close(chaosDone)
		rng := rand.New(rand.NewPCG(dc.seed, 0xc4a05))
		for {
			select {
			case <-stopChaos:
				return
			case <-time.After(time.Duration(5+rng.IntN(40)) * time.Millisecond):
			}
			i := rng.IntN(len(nodes))
			if i == 0 && dead.Load() {
				continue
			}
			nodes[i].LN.dropAll()
			cuts.Add(1)
		}
	}()

	var wg sync.WaitGroup
	errs := make(chan error, dc.customers*2+1)
	received := make([][]tandem.Message, dc.customers)
	agentsDone := make(chan struct{})
	var agentWG sync.WaitGroup
	for i := range sessions {
		// The other direction: agent messages posted on random nodes.
		agentWG.Add(1)
		go func() {
			defer agentWG.Done()
			rng := rand.New(rand.NewPCG(dc.seed, uint64(1000+i)))
			for k := 0; k < dc.agentPerConv; k++ {
				time.Sleep(time.Duration(rng.IntN(8)) * time.Millisecond)
				n := nodes[rng.IntN(len(nodes))]
				if n == nodes[0] && dead.Load() {
					n = nodes[len(nodes)-1]
				}
				m := tandem.Message{ConversationID: sessions[i].ConversationID, ClientID: fmt.Sprintf("agent-%d", k),
					Author: tandem.AuthorAgent, AuthorName: "Agent", Text: fmt.Sprintf("agent says %d", k)}
				for {
					if _, _, err := n.Chat.PostMessage(ctx, m); err == nil {
						break
					} else if ctx.Err() != nil {
						errs <- fmt.Errorf("agent post: %w", err)
						return
					}
					n = nodes[len(nodes)-1] // the killed node's log calls fail; retry on a live one
				}
			}
		}()
	}
	go func() { agentWG.Wait(); close(agentsDone) }()

	for i := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := &chaosClient{t: t, nodes: nodes, dead: &dead, killed: &killed, s: sessions[i], rng: rand.New(rand.NewPCG(dc.seed, uint64(i))),
				total: dc.perCustomer, window: dc.window, acked: &ackedTotal, agentsDone: agentsDone}
			if err := cl.run(ctx); err != nil {
				errs <- fmt.Errorf("customer %d: %w", i, err)
			}
			received[i] = cl.received
		}()
	}
	// Kill node 0 mid-run when asked.
	if dc.killAfter > 0 {
		go func() {
			for ackedTotal.Load() < dc.killAfter && ctx.Err() == nil {
				time.Sleep(time.Millisecond)
			}
			dead.Store(true)
			nodes[0].kill()
			killed.Store(true)
		}()
	}
	wg.Wait()
	close(stopChaos)
	<-chaosDone
	agentWG.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	live := nodes[len(nodes)-1]
	total := 0
	for i, s := range sessions {
		logged, err := live.Log.Messages(context.Background(), s.ConversationID, 0, 1_000_000)
		if err != nil {
			t.Fatal(err)
		}
		total += len(logged)
		// Customer messages: each exactly once, in send order.
		next := 0
		bot := map[string]bool{}
		agent := 0
		for _, m := range logged {
			switch m.Author {
			case tandem.AuthorCustomer:
				if m.ClientID != fmt.Sprintf("c%d", next) {
					t.Fatalf("customer %d: seq %d has %s, want c%d (lost, duplicated or reordered)", i, m.Seq, m.ClientID, next)
				}
				next++
			case tandem.AuthorBot:
				if bot[m.ClientID] {
					t.Fatalf("customer %d: bot answered %s twice", i, m.ClientID)
				}
				bot[m.ClientID] = true
			case tandem.AuthorAgent:
				agent++
			}
		}
		if next != dc.perCustomer || agent != dc.agentPerConv {
			t.Fatalf("customer %d: log has %d customer and %d agent messages, want %d and %d", i, next, agent, dc.perCustomer, dc.agentPerConv)
		}
		if dc.killAfter == 0 && len(bot) != dc.perCustomer {
			t.Fatalf("customer %d: %d bot replies for %d messages", i, len(bot), dc.perCustomer)
		}
		// The client saw the whole log exactly once, in order.
		got := received[i]
		if len(got) != len(logged) {
			t.Fatalf("customer %d: received %d messages, log has %d", i, len(got), len(logged))
		}
		for k := range got {
			if got[k].Seq != logged[k].Seq || got[k].Text != logged[k].Text || got[k].ClientID != logged[k].ClientID {
				t.Fatalf("customer %d: message %d differs: got %+v want %+v", i, k, got[k], logged[k])
			}
		}
	}
	t.Logf("%d messages in %d conversations over %d nodes; %d server-side cuts", total, dc.customers, len(nodes), cuts.Load())
}

// kill stops a node abruptly: no new connections, every socket dropped,
// in-flight bot turns abandoned.
func (ts *testServer) kill() {
	ts.LN.setDown(true)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = ts.Server.Shutdown(ctx)
}

// chaosClient behaves like the widget: an outbox of unacknowledged
// messages resent after every reconnect, resume from the last seq seen,
// and random self-inflicted disconnects.
type chaosClient struct {
	t          *testing.T
	nodes      []*testServer
	dead       *atomic.Bool
	killed     *atomic.Bool
	s          gateway.SessionResponse
	rng        *rand.Rand
	total      int
	window     int
	acked      *atomic.Int64
	agentsDone chan struct{}

	sent     int      // messages created so far (client ids c0..c{sent-1})
	outbox   []string // unacknowledged client ids, in order
	lastSeq  int64
	received []tandem.Message
}

var errCut = errors.New("cut")

func (c *chaosClient) run(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		if ctx.Err() != nil {
			return fmt.Errorf("timed out: sent %d, outbox %d, last seq %d", c.sent, len(c.outbox), c.lastSeq)
		}
		done, err := c.session(ctx)
		if done {
			return nil
		}
		if err != nil && !errors.Is(err, errCut) {
			return err
		}
		time.Sleep(time.Duration(c.rng.IntN(3)) * time.Millisecond)
	}
}

// finished reports whether everything is sent, acknowledged and received.
func (c *chaosClient) finished(ctx context.Context) bool {
	if c.sent < c.total || len(c.outbox) > 0 {
		return false
	}
	select {
	case <-c.agentsDone:
	default:
		return false
	}
	conv, err := c.nodes[len(c.nodes)-1].Log.Conversation(ctx, c.s.ConversationID)
	if err != nil {
		return false
	}
	// All bot replies are in once the log stops growing past what we have.
	customer, bot := 0, 0
	for _, m := range c.received {
		switch m.Author {
		case tandem.AuthorCustomer:
			customer++
		case tandem.AuthorBot:
			bot++
		}
	}
	if conv.LastSeq != c.lastSeq {
		return false
	}
	if bot == customer {
		return true
	}
	// Turns cut short by the killed node have no reply; wait until no node
	// has turns left, then take the log as final.
	if !c.killed.Load() {
		return false
	}
	for _, n := range c.nodes {
		if n.Chat.PendingTurns() > 0 {
			return false
		}
	}
	conv, err = c.nodes[len(c.nodes)-1].Log.Conversation(ctx, c.s.ConversationID)
	return err == nil && conv.LastSeq == c.lastSeq
}

func (c *chaosClient) session(ctx context.Context) (done bool, err error) {
	n := c.nodes[c.rng.IntN(len(c.nodes))]
	if n == c.nodes[0] && c.dead.Load() {
		n = c.nodes[len(c.nodes)-1]
	}
	u := strings.Replace(n.URL, "http://", "ws://", 1) + "/v1/widget/ws?site=" + testSite
	d := websocket.Dialer{Subprotocols: []string{gateway.Subprotocol}, HandshakeTimeout: 2 * time.Second}
	ws, _, err := d.DialContext(ctx, u, http.Header{"Origin": {n.URL}})
	if err != nil {
		return false, errCut
	}
	defer ws.Close()
	frames := make(chan frame, 256)
	readErr := make(chan error, 1)
	go func() {
		for {
			_ = ws.SetReadDeadline(time.Now().Add(20 * time.Second))
			_, b, err := ws.ReadMessage()
			if err != nil {
				readErr <- err
				return
			}
			var f frame
			if err := json.Unmarshal(b, &f); err != nil {
				readErr <- fmt.Errorf("bad frame %q: %w", b, err)
				return
			}
			f.raw = b
			frames <- f
		}
	}()
	write := func(v any) error {
		b, _ := json.Marshal(v)
		_ = ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if err := ws.WriteMessage(websocket.TextMessage, b); err != nil {
			return errCut
		}
		return nil
	}
	if err := write(map[string]any{"type": "hello", "token": c.s.Token, "last_seq": c.lastSeq}); err != nil {
		return false, err
	}
	welcomed := false
	selfCut := 20 + c.rng.IntN(200) // frames until we drop the socket ourselves
	inflight := 0                   // sent on this connection, not yet acknowledged
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	sendMore := func() error {
		if !welcomed {
			return nil
		}
		// Resend the outbox first (in order), then new messages, within the window.
		for inflight < len(c.outbox) && inflight < c.window {
			id := c.outbox[inflight]
			if err := write(map[string]any{"type": "message", "client_id": id, "text": "text of " + id}); err != nil {
				return err
			}
			inflight++
		}
		for len(c.outbox) < c.window && c.sent < c.total {
			id := fmt.Sprintf("c%d", c.sent)
			c.sent++
			c.outbox = append(c.outbox, id)
			if err := write(map[string]any{"type": "message", "client_id": id, "text": "text of " + id}); err != nil {
				return err
			}
			inflight++
		}
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case err := <-readErr:
			var ce *websocket.CloseError
			if errors.As(err, &ce) && ce.Code != websocket.CloseServiceRestart && ce.Code != websocket.CloseAbnormalClosure && ce.Code != gateway.CloseSlowConsumer {
				return false, fmt.Errorf("unexpected close: %w", err)
			}
			return false, errCut
		case <-tick.C:
			if c.finished(ctx) {
				return true, nil
			}
			if err := sendMore(); err != nil {
				return false, err
			}
		case f := <-frames:
			if selfCut--; selfCut == 0 {
				return false, errCut
			}
			switch f.Type {
			case "welcome":
				welcomed = true
				if err := sendMore(); err != nil {
					return false, err
				}
			case "ack":
				if len(c.outbox) == 0 || c.outbox[0] != f.ClientID {
					return false, fmt.Errorf("ack for %s out of order (outbox head %v)", f.ClientID, c.outbox[:min(1, len(c.outbox))])
				}
				c.outbox = c.outbox[1:]
				inflight--
				c.acked.Add(1)
				if err := sendMore(); err != nil {
					return false, err
				}
			case "message":
				m := f.msg(c.t)
				if m.Seq != c.lastSeq+1 {
					return false, fmt.Errorf("got seq %d after %d: a message was lost, duplicated or reordered", m.Seq, c.lastSeq)
				}
				c.lastSeq = m.Seq
				c.received = append(c.received, m)
			case "error":
				if f.Code == "overloaded" || f.Code == "unavailable" {
					return false, errCut // reconnect and resend, as the widget does after retry_after_ms
				}
				return false, fmt.Errorf("error frame %s", f.raw)
			}
		}
	}
}

func TestDeliveryUnderChaosMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	ts := startServer(t, serverOpts{cfg: chaosConfig()})
	runDelivery(t, []*testServer{ts}, deliveryConfig{seed: 42, customers: 8, perCustomer: 150, agentPerConv: 60, window: 4})
}
