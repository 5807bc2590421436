package gateway_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/gateway"
)

// storeHandoff is a Handoff with a store of open tickets (HandoffStater);
// Escalate waits for gate before it records the ticket, like an engine
// whose store is slow to commit.
type storeHandoff struct {
	gate    chan struct{}
	entered chan string
	mu      sync.Mutex
	open    map[string]bool
}

func (h *storeHandoff) Escalate(ctx context.Context, id string, _ tandem.Escalation) error {
	h.entered <- id
	select {
	case <-h.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.open[id] = true
	return nil
}

func (h *storeHandoff) HandoffState(_ context.Context, id string) (gateway.HandoffState, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return gateway.HandoffState{Open: h.open[id]}, nil
}

// TestNoRepairWhileEscalating: the gateway puts a conversation in queued
// mode before the handoff has committed its ticket. A customer message in
// that window must not be mistaken for a lost event (no "back with the
// assistant", the mode stays queued): the bot answers it while the
// customer waits, as it does for any queued conversation before an agent
// joins.
func TestNoRepairWhileEscalating(t *testing.T) {
	h := &storeHandoff{gate: make(chan struct{}), entered: make(chan string, 1), open: map[string]bool{}}
	ts := startServer(t, serverOpts{handoffImpl: h})
	s := ts.session(t, nil)
	c := ts.connect(t, s.Token, 0)
	c.send(map[string]any{"type": "message", "client_id": "m1", "text": "a human please"})
	if id := <-h.entered; id != s.ConversationID {
		t.Fatalf("escalated %s", id)
	}
	// The escalating turn is inside Escalate: the mode is queued, no ticket yet.
	c.send(map[string]any{"type": "message", "client_id": "m2", "text": "still there?"})
	c.until(func(f frame) bool { return f.Type == "ack" && f.ClientID == "m2" })
	close(h.gate)
	f, skipped := c.until(func(f frame) bool { return f.Type == "message" && f.msg(t).Text == "echo: still there?" })
	for _, x := range append(skipped, f) {
		if x.Type == "handoff" && x.Status == "returned" || x.Type == "message" && strings.Contains(x.msg(t).Text, "back with the assistant") {
			t.Fatalf("the escalation in progress was taken for a lost event: %s", x.raw)
		}
	}
	conv, err := ts.Log.Conversation(context.Background(), s.ConversationID)
	if err != nil || conv.Mode != tandem.ModeQueued {
		t.Fatalf("conversation = %+v, %v; want queued", conv, err)
	}
	mfs, err := ts.Server.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if mf.GetName() == "tandem_handoff_mode_repaired_total" {
			found = true
			if n := mf.GetMetric()[0].GetCounter().GetValue(); n != 0 {
				t.Fatalf("repaired = %v", n)
			}
		}
	}
	if !found {
		t.Fatal("tandem_handoff_mode_repaired_total is not registered")
	}
}
