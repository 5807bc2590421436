package handoff_test

import (
	"context"
	"fmt"
	"time"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/handoff/memstore"
)

// The gateway's view of one handoff: an agent logs in and connects, the bot
// escalates, routing offers the ticket, the agent accepts and later returns
// the conversation to the bot. Tick stands in for Run so the example is
// deterministic.
func Example() {
	ctx := context.Background()
	clock := handoff.NewManualClock(time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC))
	events := make(chan handoff.Event, 64)
	e, err := handoff.New(memstore.New(), handoff.Config{
		Clock:    clock,
		Notifier: handoff.NotifierFunc(func(_ context.Context, ev handoff.Event) { events <- ev }),
	})
	if err != nil {
		panic(err)
	}
	defer e.Close(ctx)

	// Admin API / CLI: create an account. Console: log in, open the socket.
	ann, _ := e.CreateAgent(ctx, tandem.Agent{Email: "ann@example.com", DisplayName: "Ann", Skills: []string{"billing"}, Languages: []string{"en"}}, "correct horse")
	agent, _ := e.Authenticate(ctx, "ann@example.com", "correct horse")
	session, _, _ := e.Connect(ctx, agent.ID)

	// The bot escalates.
	conv := tandem.Conversation{ID: "conv-1", Customer: tandem.Customer{ID: "alice", Tier: "vip"}}
	ticket, queue, _ := e.Escalate(ctx, conv, tandem.Escalation{Reason: tandem.EscalateRequested, Skills: []string{"billing"}, Language: "en"})
	fmt.Println("queued at position", queue.Position, "priority", ticket.Priority)

	_ = e.Tick(ctx) // Run does this continuously
	me := handoff.Actor{AgentID: ann.ID}
	if _, err := e.Authorize(ctx, me, "conv-1", false); err == nil {
		fmt.Println("ann may read the transcript")
	}
	_, _ = e.Accept(ctx, me, ticket.ID)
	clock.Advance(4 * time.Minute)
	_ = e.Heartbeat(ctx, ann.ID, session)
	_, _ = e.ReturnToBot(ctx, me, ticket.ID)

	_ = e.Flush(ctx)
	close(events)
	for ev := range events {
		switch ev.Type {
		case handoff.EventAssigned:
			fmt.Println(ev.Type, "to", ev.AgentName)
		case handoff.EventPresence:
			fmt.Println(ev.Type, ev.Agent.Presence)
		default:
			fmt.Println(ev.Type, ev.Ticket.State)
		}
	}
	// Output:
	// queued at position 1 priority 120
	// ann may read the transcript
	// agent.presence online
	// ticket.queued queued
	// ticket.offered offered
	// ticket.assigned to Ann
	// ticket.returned returned
}
