package handoff_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/handoff/memstore"
)

var ctx = context.Background()

func TestConfigValidate(t *testing.T) {
	if err := (handoff.Config{}).Validate(); err != nil {
		t.Fatalf("zero config must be valid: %v", err)
	}
	for _, c := range []handoff.Config{
		{OfferTimeout: -time.Second}, {RouteBatch: 20000}, {DefaultMaxChats: 101}, {BcryptCost: 99}, {EventBuffer: -1},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: want an error", c)
		}
	}
	if _, err := handoff.New(nil, handoff.Config{}); err == nil {
		t.Fatal("nil store accepted")
	}
}

// blockingNotifier blocks every Notify until released.
type blockingNotifier struct {
	release chan struct{}
	mu      sync.Mutex
	got     int
}

func (b *blockingNotifier) Notify(ctx context.Context, e handoff.Event) {
	select {
	case <-b.release:
	case <-ctx.Done():
	}
	b.mu.Lock()
	b.got++
	b.mu.Unlock()
}

// TestSlowNotifierNeverBlocks: with a Notifier stuck forever, the engine's
// calls still return; events beyond the buffer are dropped and counted.
func TestSlowNotifierNeverBlocks(t *testing.T) {
	n := &blockingNotifier{release: make(chan struct{})}
	reg := prometheus.NewRegistry()
	e, err := handoff.New(memstore.New(), handoff.Config{Notifier: n, EventBuffer: 4, Registerer: reg, BcryptCost: 4,
		Clock: handoff.NewManualClock(t0)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 50 {
			conv := tandem.Conversation{ID: "c" + string(rune('A'+i))}
			if _, _, err := e.Escalate(ctx, conv, tandem.Escalation{Reason: tandem.EscalateButton}); err != nil {
				t.Error(err)
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second): // a hang guard, not a speed limit
		t.Fatal("Escalate blocked on a stuck Notifier")
	}
	dropped := counterValue(t, reg, "tandem_handoff_events_dropped_total")
	if dropped < 40 {
		t.Fatalf("dropped = %v, want most of the 100 events (buffer 4, notifier stuck)", dropped)
	}
	close(n.release)
	if err := e.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

type chanNotifier chan handoff.Event

func (c chanNotifier) Notify(_ context.Context, e handoff.Event) { c <- e }

// TestRunRoutesOnDemand: with Run going, an escalation is offered without
// anyone calling Tick (the engine routes when a call makes it possible),
// events arrive in order, and Close flushes.
func TestRunRoutesOnDemand(t *testing.T) {
	events := make(chanNotifier, 100)
	clock := handoff.NewManualClock(t0)
	e, err := handoff.New(memstore.New(), handoff.Config{Notifier: events, BcryptCost: 4, Clock: clock, SweepInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error)
	go func() { ran <- e.Run(runCtx) }()
	a, err := e.CreateAgent(ctx, tandem.Agent{Email: "ann@example.com", Languages: []string{"en"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.Connect(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	tk, _, err := e.Escalate(ctx, tandem.Conversation{ID: "c1"}, tandem.Escalation{Reason: tandem.EscalateButton, Language: "en"})
	if err != nil {
		t.Fatal(err)
	}
	var types []handoff.EventType
	for ev := range events {
		types = append(types, ev.Type)
		if ev.Type == handoff.EventOffered {
			if ev.Ticket.ID != tk.ID || ev.AgentID != a.ID || ev.Node != "node" {
				t.Fatalf("offer event = %+v", ev)
			}
			break
		}
	}
	want := []handoff.EventType{handoff.EventPresence, handoff.EventQueued, handoff.EventOffered}
	if len(types) != len(want) {
		t.Fatalf("events = %v, want %v", types, want)
	}
	for i := range want {
		if types[i] != want[i] {
			t.Fatalf("events = %v, want %v", types, want)
		}
	}
	if err := e.Run(ctx); err == nil {
		t.Fatal("second Run must fail")
	}
	stop()
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	if err := e.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(ctx); err != nil {
		t.Fatal("Close twice:", err)
	}
}

// TestAgentValidation: agent languages are stored the way ticket languages
// are (so "EN_us" speaks to an "en_US" ticket), malformed languages and
// control characters in display names are refused.
func TestAgentValidation(t *testing.T) {
	e, err := handoff.New(memstore.New(), handoff.Config{BcryptCost: 4, SweepInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	a, err := e.CreateAgent(ctx, tandem.Agent{Email: "lang@example.com", Languages: []string{"EN_us", " de "}}, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Languages) != 2 || a.Languages[0] != "de" || a.Languages[1] != "en-us" {
		t.Fatalf("languages = %q", a.Languages)
	}
	tk, _, err := e.Escalate(ctx, tandem.Conversation{ID: "lang-1"}, tandem.Escalation{Reason: tandem.EscalateButton, Language: "en_US"})
	if err != nil {
		t.Fatal(err)
	}
	if !handoff.SpeaksLanguage(a.Languages, tk.Language) {
		t.Fatalf("agent %q does not speak ticket language %q", a.Languages, tk.Language)
	}
	for _, bad := range []tandem.Agent{
		{Email: "x1@example.com", Languages: []string{"../x"}},
		{Email: "x2@example.com", Languages: []string{"english please"}},
		{Email: "x3@example.com", DisplayName: "Bell\u0007"},
		{Email: "x4@example.com", DisplayName: "Two\nlines"},
	} {
		if _, err := e.CreateAgent(ctx, bad, ""); tandem.ErrorCode(err) != tandem.EINVALID {
			t.Errorf("%+v: %v, want invalid", bad, err)
		}
	}
	// One address however its accents are encoded (NFC "ü", or u and a
	// combining diaeresis): the second account is a conflict, and the
	// password signs in with either form.
	if _, err := e.CreateAgent(ctx, tandem.Agent{Email: "\u00fcn\u00ef@ex\u00e4mple.com"}, "password123"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateAgent(ctx, tandem.Agent{Email: "u\u0308ni\u0308@exa\u0308mple.com"}, "password123"); tandem.ErrorCode(err) != tandem.ECONFLICT {
		t.Fatalf("the NFD spelling of an existing email: %v, want conflict", err)
	}
	if _, err := e.Authenticate(ctx, "U\u0308NI\u0308@exa\u0308mple.com", "password123"); err != nil {
		t.Fatalf("sign-in with the NFD spelling: %v", err)
	}
	// An account stored before emails were kept in NFC (here: put in the
	// store as it is) still signs in with the spelling it has.
	st := memstore.New()
	le, err := handoff.New(st, handoff.Config{BcryptCost: 4, SweepInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	old, err := le.CreateAgent(ctx, tandem.Agent{Email: "legacy@example.com"}, "password123")
	if err != nil {
		t.Fatal(err)
	}
	stored, err := st.Agent(ctx, old.ID)
	if err != nil {
		t.Fatal(err)
	}
	nfd := stored
	nfd.Email = "ju\u0308rgen@example.com"
	if ok, err := st.SwapAgent(ctx, stored, nfd); !ok || err != nil {
		t.Fatalf("swap: %v %v", ok, err)
	}
	if _, err := le.Authenticate(ctx, "ju\u0308rgen@example.com", "password123"); err != nil {
		t.Fatalf("sign-in of an account stored in NFD: %v", err)
	}
	// A long local part is cut to the display name's limit, not refused
	// for a display name nobody sent.
	a, err = e.CreateAgent(ctx, tandem.Agent{Email: strings.Repeat("l", 120) + "@example.com"}, "")
	if err != nil || len(a.DisplayName) != 100 {
		t.Fatalf("long local part: %q %v", a.DisplayName, err)
	}
}

// gatedNotifier records events; every Notify waits until release is closed.
type gatedNotifier struct {
	release chan struct{}
	mu      sync.Mutex
	got     []handoff.Event
}

func (g *gatedNotifier) Notify(ctx context.Context, e handoff.Event) {
	select {
	case <-g.release:
	case <-ctx.Done():
	}
	g.mu.Lock()
	g.got = append(g.got, e)
	g.mu.Unlock()
}

// TestPositionsNeverCrowdOutStateChanges: while the Notifier is stuck,
// queue-position updates must not fill the buffer that state changes need:
// a ticket returned to the bot after a position sweep is still announced
// (the gateway takes the conversation back from human mode on it), and no
// stale position of that ticket follows its return.
func TestPositionsNeverCrowdOutStateChanges(t *testing.T) {
	n := &gatedNotifier{release: make(chan struct{})}
	reg := prometheus.NewRegistry()
	clock := handoff.NewManualClock(t0)
	e, err := handoff.New(memstore.New(), handoff.Config{Notifier: n, EventBuffer: 12, Registerer: reg, BcryptCost: 4,
		Clock: clock, SweepInterval: time.Hour, PositionInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// Four tickets while nobody is online: eight state changes, one of
	// them held by the stuck Notify, seven buffered.
	for _, id := range []string{"pa", "pb", "pc", "pd"} {
		if _, _, err := e.Escalate(ctx, tandem.Conversation{ID: id}, tandem.Escalation{Reason: tandem.EscalateButton}); err != nil {
			t.Fatal(err)
		}
	}
	// An urgent ticket jumps the queue (two more state changes) and moves
	// everyone else down: the sweeps emit a position update per ticket.
	if _, _, err := e.Escalate(ctx, tandem.Conversation{ID: "urgent"}, tandem.Escalation{Reason: tandem.EscalateButton, Priority: 50}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		clock.Advance(2 * time.Second)
		if err := e.Tick(ctx); err != nil {
			t.Fatal(err)
		}
	}
	ret, err := e.Cancel(ctx, "pa", tandem.TicketReturned)
	if err != nil {
		t.Fatal(err)
	}
	if d := counterValue(t, reg, "tandem_handoff_events_dropped_total"); d != 0 {
		t.Errorf("dropped %v events; the buffer had room for every state change", d)
	}
	close(n.release)
	if err := e.Close(ctx); err != nil {
		t.Fatal(err)
	}
	returned, posAfter, positions := false, false, 0
	for _, ev := range n.got {
		switch {
		case ev.Type == handoff.EventReturned && ev.Ticket.ID == ret.ID:
			returned = true
		case ev.Type == handoff.EventPosition:
			positions++
			if returned && ev.Ticket.ID == ret.ID {
				posAfter = true
			}
		}
	}
	if !returned {
		t.Fatalf("the return of ticket %s was never delivered; got %d events", ret.ID, len(n.got))
	}
	if posAfter {
		t.Error("a stale position update of the returned ticket followed its return")
	}
	if positions == 0 {
		t.Error("no position update was delivered at all; the sweep did not move anyone")
	}
}

// TestCloseHonoursTimeoutWhileFlushBlocks: a Flush blocked on a full buffer
// (the Notifier is stuck) must not keep Close from returning at its
// deadline, and both return once the Notifier moves again.
func TestCloseHonoursTimeoutWhileFlushBlocks(t *testing.T) {
	n := &blockingNotifier{release: make(chan struct{})}
	e, err := handoff.New(memstore.New(), handoff.Config{Notifier: n, EventBuffer: 2, BcryptCost: 4,
		Registerer: prometheus.NewRegistry(), Clock: handoff.NewManualClock(t0)})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"fa", "fb", "fc"} { // one held by Notify, the rest fill the buffer
		if _, _, err := e.Escalate(ctx, tandem.Conversation{ID: id}, tandem.Escalation{Reason: tandem.EscalateButton}); err != nil {
			t.Fatal(err)
		}
	}
	flushed := make(chan error, 1)
	go func() { flushed <- e.Flush(ctx) }() // no deadline: blocks on the full buffer
	closeCtx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	closed := make(chan error, 1)
	go func() { closed <- e.Close(closeCtx) }()
	select {
	case err := <-closed:
		if err == nil {
			t.Fatal("Close reported every event delivered while the Notifier was stuck")
		}
	case <-time.After(30 * time.Second): // a hang guard, not a speed limit
		t.Fatal("Close ignored its deadline while a Flush was blocked")
	}
	close(n.release)
	select {
	case <-flushed:
	case <-time.After(30 * time.Second):
		t.Fatal("Flush never returned after the Notifier moved again")
	}
}

// failingQueueStore fails every queue-position query.
type failingQueueStore struct{ handoff.Store }

func (failingQueueStore) QueueAhead(context.Context, tandem.Ticket) (int, error) {
	return 0, errors.New("replica lagging")
}

// TestEscalateSucceedsWhenPositionFails: once the ticket is committed the
// escalation has happened; a failing position query must not report it as
// failed (the gateway would take the conversation back to the bot while
// an agent is offered the ticket).
func TestEscalateSucceedsWhenPositionFails(t *testing.T) {
	events := make(chanNotifier, 16)
	e, err := handoff.New(failingQueueStore{memstore.New()}, handoff.Config{Notifier: events, BcryptCost: 4,
		Registerer: prometheus.NewRegistry(), Clock: handoff.NewManualClock(t0)})
	if err != nil {
		t.Fatal(err)
	}
	tk, _, err := e.Escalate(ctx, tandem.Conversation{ID: "pf"}, tandem.Escalation{Reason: tandem.EscalateButton})
	if err != nil {
		t.Fatalf("escalate reported %v after committing the ticket", err)
	}
	if open, err := e.OpenTicket(ctx, "pf"); err != nil || open.ID != tk.ID {
		t.Fatalf("open ticket = %+v, %v", open, err)
	}
	if err := e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if ev := <-events; ev.Type != handoff.EventQueued || ev.Ticket.ID != tk.ID {
		t.Fatalf("first event = %+v, want queued", ev)
	}
}
