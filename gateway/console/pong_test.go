package console_test

import (
	"context"
	"testing"
	"time"

	"github.com/tandem-chat/tandem"
)

// An agent whose console is connected but sends no frames of its own —
// it only answers the server's pings — keeps their chats: a pong is a
// presence heartbeat (docs/handoff.md). The engine re-queued the chat as
// "disconnected" after the heartbeat timeout and grace period while the
// socket stayed open, and the agent's next reply was refused.
func TestConsolePongsAreHeartbeats(t *testing.T) {
	e := newNode(t, nodeOpts{pingInterval: 20 * time.Millisecond})
	ann, tok := e.agent("ann@example.com", "Ann", nil)
	c := e.console(tok)
	_, conv, tk := e.claimedChat(c)
	go func() { // reads (answering pings with pongs), sends nothing
		for {
			if _, _, err := c.ws.ReadMessage(); err != nil {
				return
			}
		}
	}()
	cfg := e.Engine.Config()
	step := cfg.HeartbeatTimeout/6 + time.Second
	for elapsed := time.Duration(0); elapsed < cfg.HeartbeatTimeout+cfg.DisconnectGrace+2*step; elapsed += step {
		now := e.Clock.Advance(step)
		// A pong after the clock moved is a heartbeat at the new time.
		deadline := time.Now().Add(10 * time.Second) // hang guard
		for {
			sts, err := e.Engine.AgentStatuses(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			seen := false
			for _, st := range sts {
				if st.Agent.ID == ann.ID && !st.LastSeen.Before(now) {
					seen = true
				}
			}
			if seen {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after %v: no heartbeat from the console's pongs", elapsed+step)
			}
			time.Sleep(5 * time.Millisecond)
		}
		e.tick()
	}
	got, err := e.Engine.OpenTicket(context.Background(), conv)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != tk.ID || got.State != tandem.TicketAssigned || got.AgentID != ann.ID {
		t.Fatalf("ticket = %+v, want still assigned to Ann", got)
	}
}
