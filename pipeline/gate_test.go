package pipeline

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tandem-chat/tandem"
)

// waitFor polls cond until it holds (no wall-clock assertion: the test
// fails by its own timeout if it never does).
func waitFor(cond func() bool) {
	for !cond() {
		time.Sleep(100 * time.Microsecond)
	}
}

// parkedInEnter counts the goroutines blocked in gate.enter's select.
func parkedInEnter() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "[select") && strings.Contains(g, "(*gate).enter") {
			n++
		}
	}
	return n
}

func TestGateAdmitsInArrivalOrder(t *testing.T) {
	g := newGate(1, 100)
	ctx := context.Background()
	if err := g.enter(ctx); err != nil {
		t.Fatal(err)
	}
	const n = 20
	order := make(chan int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := g.enter(ctx); err != nil {
				t.Error(err)
				return
			}
			order <- i
			g.leave()
		}()
		// Queued before the next one starts: parked in enter's select, not
		// merely counted (the count goes up just before it parks).
		waitFor(func() bool { return g.waiting.Load() == int64(i+1) && parkedInEnter() == i+1 })
	}
	g.leave()
	wg.Wait()
	close(order)
	want := 0
	for got := range order {
		if got != want {
			t.Fatalf("turn %d admitted when turn %d was next", got, want)
		}
		want++
	}
	if want != n {
		t.Fatalf("%d turns admitted, want %d", want, n)
	}
}

func TestGateOverloadedWhenQueueFull(t *testing.T) {
	g := newGate(1, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := g.enter(ctx); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- g.enter(ctx) }()
	waitFor(func() bool { return g.waiting.Load() == 1 })
	if err := g.enter(ctx); tandem.ErrorCode(err) != tandem.EOVERLOADED {
		t.Fatalf("third turn: %v, want overloaded", err)
	}
	if g.waiting.Load() != 1 {
		t.Fatalf("a refused turn stayed counted: %d waiting", g.waiting.Load())
	}
	g.leave()
	if err := <-waited; err != nil {
		t.Fatalf("queued turn: %v", err)
	}
	g.leave()
}

func TestGateWaitEndsWithContext(t *testing.T) {
	g := newGate(1, 10)
	if err := g.enter(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	waited := make(chan error, 1)
	go func() { waited <- g.enter(ctx) }()
	waitFor(func() bool { return g.waiting.Load() == 1 })
	cancel()
	if err := <-waited; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait: %v", err)
	}
	if g.waiting.Load() != 0 {
		t.Fatalf("%d still waiting", g.waiting.Load())
	}
	g.leave()
	// The slot the cancelled turn never took is free: a new turn gets in.
	if err := g.enter(context.Background()); err != nil {
		t.Fatal(err)
	}
	g.leave()
}

// countingModel wraps an intent model and records the most texts it was
// working on at once.
type countingModel struct {
	IntentModel
	active, peak atomic.Int64
}

func (m *countingModel) ClassifyBatch(ctx context.Context, texts []string) ([]tandem.NLU, error) {
	n := m.active.Add(int64(len(texts)))
	for {
		p := m.peak.Load()
		if n <= p || m.peak.CompareAndSwap(p, n) {
			break
		}
	}
	time.Sleep(200 * time.Microsecond) // hold the slot long enough for others to pile up
	defer m.active.Add(-int64(len(texts)))
	return m.IntentModel.ClassifyBatch(ctx, texts)
}

func TestPipelineBoundsActiveTurns(t *testing.T) {
	for _, tc := range []struct {
		name     string
		active   int
		wantPeak func(int64) bool
	}{
		{"bound 2", 2, func(p int64) bool { return p >= 1 && p <= 2 }},
		{"unbounded", -1, func(p int64) bool { return p > 2 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cm := &countingModel{IntentModel: testModel()}
			reg := prometheus.NewRegistry()
			p := newTestPipeline(t, func(c *Config, d *Deps) {
				c.MaxActiveTurns = tc.active
				d.Intent = cm
				d.Registerer = reg
			})
			var wg sync.WaitGroup
			for i := range 64 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r, err := p.Respond(context.Background(), tandem.Turn{ConversationID: "c" + string(rune('A'+i)), Text: "where is my invoice"})
					if err != nil || r.Text == "" {
						t.Errorf("turn %d: %v %+v", i, err, r)
					}
				}()
			}
			wg.Wait()
			if peak := cm.peak.Load(); !tc.wantPeak(peak) {
				t.Fatalf("at most %d texts in the intent model at once", peak)
			}
			// The gate's metrics: every turn's admission wait is timed, and
			// the gauges read empty once all turns are done.
			mfs, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			var admitted uint64
			gauges := map[string]float64{}
			for _, mf := range mfs {
				for _, m := range mf.GetMetric() {
					switch mf.GetName() {
					case "tandem_pipeline_stage_seconds":
						for _, l := range m.GetLabel() {
							if l.GetName() == "stage" && l.GetValue() == "admission" {
								admitted = m.GetHistogram().GetSampleCount()
							}
						}
					case "tandem_pipeline_admission_active", "tandem_pipeline_admission_waiting":
						gauges[mf.GetName()] = m.GetGauge().GetValue()
					}
				}
			}
			if tc.active > 0 {
				if admitted != 64 || len(gauges) != 2 || gauges["tandem_pipeline_admission_active"] != 0 || gauges["tandem_pipeline_admission_waiting"] != 0 {
					t.Fatalf("admission metrics: %d waits timed, gauges %v", admitted, gauges)
				}
			} else if admitted != 0 || len(gauges) != 0 {
				t.Fatalf("no gate, yet admission metrics: %d, %v", admitted, gauges)
			}
		})
	}
}

// TestConvLockHonoursContext: waiting for a conversation's lock ends with
// the turn's context, as unavailable, and the lock still works after.
func TestConvLockHonoursContext(t *testing.T) {
	var l convLocks
	unlock, err := l.lock(context.Background(), "conv-1")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		u, err := l.lock(ctx, "conv-1")
		if u != nil {
			u()
		}
		done <- err
	}()
	cancel()
	if err := <-done; tandem.ErrorCode(err) != tandem.EUNAVAILABLE || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait: %v", err)
	}
	unlock()
	u, err := l.lock(context.Background(), "conv-1")
	if err != nil {
		t.Fatal(err)
	}
	u()
}
