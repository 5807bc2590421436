package console_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/handoff/memstore"
)

// flakyStore is a memory store whose OpenTicket fails while failOpen is
// positive (one call per unit), as a database blip would.
type flakyStore struct {
	handoff.Store
	failOpen atomic.Int32
}

func newFlakyStore() *flakyStore { return &flakyStore{Store: memstore.New()} }

func (s *flakyStore) OpenTicket(ctx context.Context, conv string) (tandem.Ticket, error) {
	if s.failOpen.Add(-1) >= 0 {
		return tandem.Ticket{}, errors.New("pq: connection reset by peer")
	}
	s.failOpen.Store(0)
	return s.Store.OpenTicket(ctx, conv)
}

// TestStoreBlipKeepsAgentFollowing: a store error while the console checks
// an event against the store must not stop the assigned agent's console
// from following the chat (the customer's next messages never reached the
// agent): only a definite "no longer yours" does.
func TestStoreBlipKeepsAgentFollowing(t *testing.T) {
	fs := newFlakyStore()
	e := newNode(t, nodeOpts{store: fs, drop: func(ev handoff.Event) bool {
		if ev.Type == handoff.EventContact {
			fs.failOpen.Store(1) // the console's check of this event fails
		}
		return false
	}})
	ctx := context.Background()
	_, annTok := e.agent("ann@example.com", "Ann", nil)
	annC := e.console(annTok)
	annC.away()
	cust, conv, _ := e.claimedChat(annC)

	if _, err := e.Engine.LeaveContact(ctx, conv, "someone@example.org"); err != nil {
		t.Fatal(err)
	}
	annC.until(ticketEvent("ticket.contact"))
	for deadline := time.Now().Add(10 * time.Second); fs.failOpen.Load() > 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) { // a hang guard, not a speed limit
			t.Fatal("the console never checked the event against the store")
		}
	}
	cust.send(map[string]any{"type": "message", "client_id": "m1", "text": "are you still there?"})
	annC.until(messageFrom(tandem.AuthorCustomer, "are you still there?"))
}

// TestWithdrawnOfferDoesNotTellCustomerTheirAgentLeft: an offer withdrawn
// before any agent joined (the agent went away without answering it) is no
// "your agent had to leave; your messages will be passed on to them": no
// agent took part, and the bot keeps answering, as docs/handoff.md says.
func TestWithdrawnOfferDoesNotTellCustomerTheirAgentLeft(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	_, annTok := e.agent("ann@example.com", "Ann", nil)
	annC := e.console(annTok)
	cust, conv := e.customer()
	cust.send(map[string]any{"type": "handoff_request", "client_id": "h1"})
	tk := e.escalated(conv)
	e.tick()
	annC.until(ticketEvent("ticket.offered"))
	annC.away() // withdraws the pending offer: ticket.requeued (presence)
	if err := e.Engine.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.Engine.Ticket(ctx, tk.ID); got.State != tandem.TicketQueued {
		t.Fatalf("ticket %s, want queued", got.State)
	}
	cust.send(map[string]any{"type": "message", "client_id": "m1", "text": "hello?"})
	_, skipped := cust.until(messageFrom(tandem.AuthorBot, "bot: hello?"))
	for _, f := range skipped {
		if f.Type == "handoff" && strings.Contains(f.errText(), "passed on") {
			t.Fatalf("customer told their messages wait for an agent, but the bot answers: %s", f.raw)
		}
	}
}

// failingStore fails Agent and Apply while broken is set (a database
// outage).
type failingStore struct {
	handoff.Store
	broken atomic.Bool
}

func (s *failingStore) Agent(ctx context.Context, id string) (tandem.Agent, error) {
	if s.broken.Load() {
		return tandem.Agent{}, errors.New("pq: connection refused")
	}
	return s.Store.Agent(ctx, id)
}

func (s *failingStore) Apply(ctx context.Context, c handoff.Change) (tandem.Ticket, error) {
	if s.broken.Load() {
		return tandem.Ticket{}, errors.New("pq: connection refused")
	}
	return s.Store.Apply(ctx, c)
}

// logBuffer is a concurrency-safe log sink.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestStoreOutageIsLoggedAndSaysRetry: a store failure at hello closes the
// console with 1013 (try again later, as for the widget; protocol.md), not
// 1011, and store failures of hello and of actions are logged for the
// operator (the agent only sees "internal error"; nothing was logged).
func TestStoreOutageIsLoggedAndSaysRetry(t *testing.T) {
	st := &failingStore{Store: memstore.New()}
	logs := &logBuffer{}
	e := newNode(t, nodeOpts{store: st, logger: slog.New(slog.NewTextHandler(logs, nil))})
	_, annTok := e.agent("ann@example.com", "Ann", nil)
	annC := e.console(annTok)
	annC.away()
	cust, conv := e.customer()
	cust.send(map[string]any{"type": "handoff_request", "client_id": "h"})
	tk := e.escalated(conv)

	st.broken.Store(true)
	annC.send(map[string]any{"type": "claim", "ticket_id": tk.ID, "ref": "c"})
	if f, _ := annC.until(answer("c")); f.Type != "error" || f.Code != tandem.EINTERNAL {
		t.Fatalf("claim during the outage: %s", f.raw)
	}
	bob := e.dial("/console/ws")
	bob.send(map[string]any{"type": "hello", "token": annTok})
	if code := bob.expectClose(); code != 1013 {
		t.Fatalf("hello during the outage: close %d, want 1013", code)
	}
	for _, want := range []string{"claim", "hello"} {
		if !strings.Contains(logs.String(), want) || strings.Count(logs.String(), "connection refused") < 2 {
			t.Fatalf("the store failure of %s was not logged; logs:\n%s", want, logs.String())
		}
	}
}

// TestDisableLegacyAgent: an account stored before today's validation
// rules (here a language that is not a tag, allowed by earlier versions)
// must still be disabled by an admin; disabling failed with 400 "invalid
// language", so a compromised account could not be locked out.
func TestDisableLegacyAgent(t *testing.T) {
	st := memstore.New()
	e := newNode(t, nodeOpts{store: st})
	legacy := tandem.Agent{ID: "agt_legacy", Email: "old@example.com", DisplayName: "Old", Role: "agent",
		Languages: []string{"english"}, MaxChats: 3, CreatedAt: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	if err := st.CreateAgent(context.Background(), legacy); err != nil {
		t.Fatal(err)
	}
	if code, raw := e.do("POST", "/api/v1/agents/"+legacy.ID+"/disable", testAdmin, nil); code != 200 {
		t.Fatalf("disable: %d %s", code, raw)
	}
	a, err := e.Engine.Agent(context.Background(), legacy.ID)
	if err != nil || !a.Disabled || a.Languages[0] != "english" {
		t.Fatalf("after disable: %+v %v", a, err)
	}
	if code, raw := e.do("POST", "/api/v1/agents/"+legacy.ID+"/enable", testAdmin, nil); code != 200 {
		t.Fatalf("enable: %d %s", code, raw)
	}
}

// TestLatePositionAfterAssignment: a queue position computed before the
// ticket left the queue (on another node, whose sweep raced with the
// claim) must not reach the customer after they were told an agent
// joined: they were shown a place in the queue while chatting.
func TestLatePositionAfterAssignment(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	_, annTok := e.agent("ann@example.com", "Ann", nil)
	annC := e.console(annTok)
	annC.away()
	cust, conv, tk := e.claimedChat(annC)
	cust.until(handoffStatus("assigned"))
	stale := tk // the snapshot the other node's sweep read: still queued
	e.Console.Notify(ctx, handoff.Event{Type: handoff.EventPosition, Ticket: &stale,
		Queue: &handoff.QueueInfo{Position: 2, AgentsOnline: 1}})
	cust.send(map[string]any{"type": "message", "client_id": "m1", "text": "hi Ann"})
	_, skipped := cust.until(isType("ack"))
	for _, f := range skipped {
		if f.Type == "handoff" && f.Status == "queued" {
			t.Fatalf("customer of %s, chatting with Ann, was shown a queue position: %s", conv, f.raw)
		}
	}
}

// TestAgentsAPINamesTheBadField: a body with a field of the wrong type or
// an unknown field is 400 naming that field, not only "body must be a
// JSON object with the documented fields".
func TestAgentsAPINamesTheBadField(t *testing.T) {
	e := newEnv(t)
	for body, field := range map[string]string{
		`{"email":"x@example.com","password":"password1","max_chats":"3"}`: "max_chats",
		`{"email":"x@example.com","password":"password1","skils":["a"]}`:   "skils",
	} {
		code, raw := e.do("POST", "/api/v1/agents", testAdmin, json.RawMessage(body))
		if code != 400 || !strings.Contains(string(raw), field) {
			t.Errorf("%s: %d %s", body, code, raw)
		}
	}
	code, raw := e.do("POST", "/api/v1/agents/login", "", json.RawMessage(`{"email":["a"],"password":"x"}`))
	if code != 400 || !strings.Contains(string(raw), "email") {
		t.Errorf("login with an array email: %d %s", code, raw)
	}
}

// TestAgentsAPIExactFieldNames: field names are matched as documented,
// not case-insensitively — a PATCH with "Display_Name" answered 200 and
// changed the name while a check of the body's fields saw no display_name,
// and of {"max_chats": 2, "MAX_CHATS": 9} the last one won.
func TestAgentsAPIExactFieldNames(t *testing.T) {
	e := newEnv(t)
	ann, _ := e.agent("ann@example.com", "Ann", nil)
	for _, body := range []string{
		`{"Display_Name":"Anna"}`,
		`{"max_chats":2,"MAX_CHATS":9}`,
	} {
		code, raw := e.do("PATCH", "/api/v1/agents/"+ann.ID, testAdmin, json.RawMessage(body))
		if code != 400 || !strings.Contains(string(raw), "unknown field") {
			t.Errorf("PATCH %s: %d %s", body, code, raw)
		}
	}
	if code, raw := e.do("POST", "/api/v1/agents", testAdmin, json.RawMessage(`{"Email":"b@example.com","display_name":"B","password":"password1"}`)); code != 400 || !strings.Contains(string(raw), `\"email\"`) {
		t.Errorf("POST with Email: %d %s", code, raw)
	}
	code, raw := e.do("GET", "/api/v1/agents/"+ann.ID, testAdmin, nil)
	if code != 200 || !strings.Contains(string(raw), `"display_name":"Ann"`) || strings.Contains(string(raw), `"max_chats":9`) {
		t.Errorf("the agent changed: %d %s", code, raw)
	}
	if code, raw := e.do("PATCH", "/api/v1/agents/"+ann.ID, testAdmin, json.RawMessage(`{"display_name":"Anna","max_chats":2}`)); code != 200 {
		t.Errorf("a documented PATCH: %d %s", code, raw)
	}
}

// offersFailStore fails the listing of an agent's pending offers while
// broken is set (disabling withdraws them).
type offersFailStore struct {
	handoff.Store
	broken atomic.Bool
}

func (s *offersFailStore) Tickets(ctx context.Context, f handoff.TicketFilter) ([]tandem.Ticket, error) {
	if s.broken.Load() && f.AgentID != "" && len(f.States) == 1 && f.States[0] == tandem.TicketOffered {
		return nil, errors.New("pq: connection reset by peer")
	}
	return s.Store.Tickets(ctx, f)
}

// TestDisableRetriedAfterFailure: a disable that failed half-way (the
// account is disabled, its offers not yet withdrawn, consoles not told)
// and is retried by the admin must finish the job: the retry found the
// account disabled already and did nothing, so the agent's console stayed
// open until its next heartbeat.
func TestDisableRetriedAfterFailure(t *testing.T) {
	st := &offersFailStore{Store: memstore.New()}
	e := newNode(t, nodeOpts{store: st})
	ann, annTok := e.agent("ann@example.com", "Ann", nil)
	annC := e.console(annTok)
	st.broken.Store(true)
	if code, raw := e.do("POST", "/api/v1/agents/"+ann.ID+"/disable", testAdmin, nil); code != 500 {
		t.Fatalf("disable during the outage: %d %s", code, raw)
	}
	st.broken.Store(false)
	if code, raw := e.do("POST", "/api/v1/agents/"+ann.ID+"/disable", testAdmin, nil); code != 200 {
		t.Fatalf("disable again: %d %s", code, raw)
	}
	if code := annC.expectClose(); code != 4403 {
		t.Fatalf("close code %d, want 4403", code)
	}
}

// TestPresenceFailureHalfWayTellsTheConsole: going away stores the new
// presence, then withdraws pending offers; when the withdrawal fails the
// agent gets the error but must also learn that they are away now (the
// console kept showing "online" while routing gave them nothing).
func TestPresenceFailureHalfWayTellsTheConsole(t *testing.T) {
	st := &offersFailStore{Store: memstore.New()}
	e := newNode(t, nodeOpts{store: st})
	_, annTok := e.agent("ann@example.com", "Ann", nil)
	annC := e.console(annTok)
	st.broken.Store(true)
	annC.send(map[string]any{"type": "presence", "status": "away", "ref": "p"})
	fs := annC.all(answer("p"), func(f frame) bool {
		return f.Type == "presence" && strings.Contains(string(f.raw), `"chosen_presence":"away"`)
	})
	if fs[0].Type != "error" {
		t.Fatalf("presence during the outage: %s", fs[0].raw)
	}
}
