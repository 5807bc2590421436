package gateway_test

import (
	"context"
	"testing"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/gateway"
)

// TestAssignedIfQueued: an agent's own announcement of their accept takes
// a queued conversation to human mode with its note, once; it leaves a
// conversation the customer took back to the bot meanwhile alone (the
// "returned" change came first and stands).
func TestAssignedIfQueued(t *testing.T) {
	ctx := context.Background()
	ts := startServer(t, serverOpts{})
	st := gateway.HandoffStatus{Status: gateway.HandoffAssigned, AgentID: "agent-7", AgentName: "Sam", NoteKey: "handoff:assigned:t1:3"}
	notes := func(id string) int {
		t.Helper()
		msgs, err := ts.Log.Messages(ctx, id, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, m := range msgs {
			if m.Text == "You are now chatting with Sam." {
				n++
			}
		}
		return n
	}
	for _, c := range []struct {
		id   string
		mode tandem.Mode
		want bool
	}{{"queued", tandem.ModeQueued, true}, {"returned", tandem.ModeBot, false}, {"closed", tandem.ModeClosed, false}} {
		if _, err := ts.Log.CreateConversation(ctx, tandem.Conversation{ID: c.id, SiteKey: testSite, Customer: tandem.Customer{ID: c.id}, Mode: c.mode}); err != nil {
			t.Fatal(err)
		}
		did, err := ts.Chat.AssignedIfQueued(ctx, c.id, st)
		cv, _ := ts.Log.Conversation(ctx, c.id)
		wantMode, wantNotes := c.mode, 0
		if c.want {
			wantMode, wantNotes = tandem.ModeHuman, 1
		}
		if err != nil || did != c.want || cv.Mode != wantMode || notes(c.id) != wantNotes {
			t.Fatalf("%s: announced %v (%v), mode %s, %d notes; want %v, %s, %d", c.id, did, err, cv.Mode, notes(c.id), c.want, wantMode, wantNotes)
		}
	}
	// The assignment's event then announces it too: logged once.
	if err := ts.Chat.HandoffStatus(ctx, "queued", st); err != nil || notes("queued") != 1 {
		t.Fatalf("the event's announcement: %v, %d notes; want 1", err, notes("queued"))
	}
	if did, err := ts.Chat.AssignedIfQueued(ctx, "queued", gateway.HandoffStatus{Status: gateway.HandoffClosed}); err == nil || did {
		t.Fatalf("a non-assignment: %v %v, want an error", did, err)
	}
}
