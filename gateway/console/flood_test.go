package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/handoff/memstore"
)

// floodResult sends n agent messages back to back while reading, and
// returns the acked client ids, the overloaded ones, and the close code
// (0 when the console stayed open).
func flood(t *testing.T, c *client, conv string, n int) (acked, overloaded map[string]bool, closed int) {
	t.Helper()
	frames := make(chan frame, 4*n)
	readErr := make(chan error, 1)
	go func() {
		for {
			f, err := c.read(10e9)
			if err != nil {
				readErr <- err
				close(frames)
				return
			}
			frames <- f
		}
	}()
	for i := range n {
		if err := c.ws.WriteJSON(map[string]any{"type": "message", "conversation_id": conv, "client_id": fmt.Sprintf("f%d", i), "text": fmt.Sprintf("line %d", i)}); err != nil {
			break // closed under us
		}
	}
	acked, overloaded = map[string]bool{}, map[string]bool{}
	for f := range frames {
		switch {
		case f.Type == "ack":
			acked[f.ClientID] = true
		case f.Type == "error" && f.Code == tandem.EOVERLOADED:
			var body struct {
				RetryAfterMS int64 `json:"retry_after_ms"`
			}
			if json.Unmarshal(f.raw, &body) != nil || body.RetryAfterMS <= 0 {
				t.Errorf("overloaded without retry_after_ms: %s", f.raw)
			}
			overloaded[f.ClientID] = true
		case f.Type == "error":
			t.Errorf("unexpected error: %s", f.raw)
		}
		if len(acked)+len(overloaded) == n {
			c.ws.Close()
		}
	}
	if ce, ok := (<-readErr).(*websocket.CloseError); ok {
		closed = ce.Code
	}
	return acked, overloaded, closed
}

// agentMessages counts the conversation's messages by its agent.
func agentMessages(t *testing.T, e *env, conv string) map[string]bool {
	t.Helper()
	msgs, err := e.Chat.Messages(context.Background(), conv, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, m := range msgs {
		if m.Author == tandem.AuthorAgent {
			out[m.ClientID] = true
		}
	}
	return out
}

// TestAgentMessageBurstIsRateLimited: an agent's burst of messages gets
// acks up to the rate and overloaded (with retry_after_ms) beyond it; the
// console stays open and every stored message was acked (40 messages at
// once used to close it as a slow consumer with stored messages unacked).
func TestAgentMessageBurstIsRateLimited(t *testing.T) {
	e := newEnv(t)
	_, tok := e.agent("ann@example.com", "Ann", nil)
	annC := e.console(tok)
	_, conv, _ := e.claimedChat(annC)
	acked, overloaded, closed := flood(t, annC, conv, 45)
	if closed != 0 && closed != websocket.CloseNormalClosure {
		t.Fatalf("console closed with %d under a burst of 45", closed)
	}
	if len(acked) < 20 || len(overloaded) == 0 || len(acked)+len(overloaded) != 45 {
		t.Fatalf("%d acked, %d overloaded of 45; want the burst of 20 acked and the rest refused", len(acked), len(overloaded))
	}
	stored := agentMessages(t, e, conv)
	for id := range acked {
		if !stored["agent:"+id] {
			t.Errorf("acked %s not stored", id)
		}
	}
	if len(stored) != len(acked) {
		t.Fatalf("%d agent messages stored, %d acked", len(stored), len(acked))
	}
}

// TestAgentMessageFloodCloses: a flood past the rate closes the console
// with 4429 after 30 refusals in a row; what was stored was acked.
func TestAgentMessageFloodCloses(t *testing.T) {
	e := newEnv(t)
	_, tok := e.agent("ann@example.com", "Ann", nil)
	annC := e.console(tok)
	_, conv, _ := e.claimedChat(annC)
	acked, _, closed := flood(t, annC, conv, 400)
	if closed != 4429 {
		t.Fatalf("close %d, want 4429", closed)
	}
	stored := agentMessages(t, e, conv)
	if len(stored) != len(acked) {
		t.Fatalf("%d agent messages stored, %d acked", len(stored), len(acked))
	}
}

// TestMalformedConsoleHello: a hello the server cannot read closes with
// 4400 (fix the client), not 4401 (log in again).
func TestMalformedConsoleHello(t *testing.T) {
	e := newEnv(t)
	c := e.dial("/console/ws")
	c.send(map[string]any{"type": "hello", "token": "x", "ref": 5})
	if code := c.expectClose(); code != 4400 {
		t.Fatalf("close %d, want 4400", code)
	}
	c = e.dial("/console/ws")
	c.send(map[string]any{"type": "hello", "token": 5})
	if code := c.expectClose(); code != 4400 {
		t.Fatalf("a token that is not a string (docs/protocol.md): close %d, want 4400", code)
	}
	c = e.dial("/console/ws")
	c.send(map[string]any{"type": "hello", "token": ""})
	if code := c.expectClose(); code != 4401 {
		t.Fatalf("a hello without a usable token: close %d, want 4401", code)
	}
}

// TestOfferedAgentReadNotRelayed: an agent who holds only an offer and
// reads its transcript is not shown to the customer as having read it
// (they have not joined); once they accept, their marks are relayed.
func TestOfferedAgentReadNotRelayed(t *testing.T) {
	e := newEnv(t)
	_, tok := e.agent("ann@example.com", "Ann", nil)
	agent := e.console(tok)
	cust, conv, offer := e.offerTo(agent)
	agent.send(map[string]any{"type": "read", "conversation_id": conv, "seq": 1})
	agent.send(map[string]any{"type": "accept", "ticket_id": offer.Ticket.ID, "ref": "a"})
	agent.until(answer("a"))
	agent.send(map[string]any{"type": "read", "conversation_id": conv, "seq": 2})
	f, skipped := cust.until(isType("read"))
	for _, g := range skipped {
		if g.Type == "read" {
			t.Fatalf("read mark relayed before the agent joined: %s", g.raw)
		}
	}
	if f.Seq != 2 {
		t.Fatalf("first read mark the customer saw: %s, want the one after the accept (seq 2)", f.raw)
	}
}

// TestRoleChangeSeenAtHeartbeat: a role changed without its event reaching
// the console (another process, a lost event) ends the console at its next
// heartbeat; it kept the old role's powers until it reconnected.
func TestRoleChangeSeenAtHeartbeat(t *testing.T) {
	st := memstore.New()
	e := newNode(t, nodeOpts{store: st})
	root, tok := e.agent("root@example.com", "Root", map[string]any{"role": "admin"})
	c := e.console(tok)
	a, err := st.Agent(context.Background(), root.ID)
	if err != nil {
		t.Fatal(err)
	}
	a.Role = "agent"
	if err := st.UpdateAgent(context.Background(), a); err != nil { // no event, no revocation
		t.Fatal(err)
	}
	e.Clock.Advance(e.Engine.Config().HeartbeatTimeout / 3) // the next frame heartbeats
	c.send(map[string]any{"type": "ping"})
	if f, _ := c.until(isType("error")); f.Code != tandem.EUNAUTHORIZED || !strings.Contains(string(f.raw), "role changed") {
		t.Fatalf("at the heartbeat: %s", f.raw)
	}
	if code := c.expectClose(); code != 4401 {
		t.Fatalf("close %d, want 4401", code)
	}
}
