package handoff_test

import (
	"context"
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
	<-done // would hang here if emitting blocked
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
}
