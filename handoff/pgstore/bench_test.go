package pgstore_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/internal/pgtest"
)

// benchRig is two engines (two nodes) on one database with simulated
// agents that accept every offer and resolve the chat at once.
type benchRig struct {
	engines [2]*handoff.Engine
	offers  chan handoff.Event
	waiters sync.Map // conversation ID -> chan time.Time (offer seen)
	started sync.Map // conversation ID -> time.Time (escalated)
	mu      sync.Mutex
	lat     []time.Duration // escalation -> offer event
	accepts atomic.Int64
	stop    context.CancelFunc
	timed   []*timedStore
	wg      sync.WaitGroup
}

func (r *benchRig) Notify(_ context.Context, e handoff.Event) {
	if e.Type != handoff.EventOffered {
		return
	}
	now := time.Now()
	if v, ok := r.started.Load(e.Ticket.ConversationID); ok {
		r.mu.Lock()
		r.lat = append(r.lat, now.Sub(v.(time.Time)))
		r.mu.Unlock()
	}
	if ch, ok := r.waiters.Load(e.Ticket.ConversationID); ok {
		ch.(chan time.Time) <- now
	}
	select {
	case r.offers <- e:
	default:
		panic("bench: offer buffer full")
	}
}

func newBenchRig(b *testing.B, agents, maxChats int) *benchRig {
	b.Helper()
	db := pgtest.New(b)
	ctx := context.Background()
	r := &benchRig{offers: make(chan handoff.Event, 1<<20)}
	for i := range r.engines {
		s := &timedStore{Store: open(b, db.URL)}
		r.timed = append(r.timed, s)
		e, err := handoff.New(s, handoff.Config{Node: fmt.Sprintf("node%d", i+1), Notifier: r, BcryptCost: 4, SweepInterval: 200 * time.Millisecond,
			PositionInterval: 2 * time.Second, EventBuffer: 1 << 16})
		if err != nil {
			b.Fatal(err)
		}
		r.engines[i] = e
	}
	type sess struct{ agent, id string }
	var sessions []sess
	for i := range agents {
		e := r.engines[i%2]
		a, err := e.CreateAgent(ctx, tandem.Agent{Email: fmt.Sprintf("agent%d@example.com", i), MaxChats: maxChats, Languages: []string{"en"}}, "")
		if err != nil {
			b.Fatal(err)
		}
		sid, _, err := e.Connect(ctx, a.ID)
		if err != nil {
			b.Fatal(err)
		}
		sessions = append(sessions, sess{a.ID, sid})
	}
	runCtx, stop := context.WithCancel(ctx)
	r.stop = stop
	for _, e := range r.engines {
		r.wg.Add(1)
		go func() { defer r.wg.Done(); _ = e.Run(runCtx) }()
	}
	r.wg.Add(1)
	go func() { // heartbeats, as the consoles would send them
		defer r.wg.Done()
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-t.C:
				for i, s := range sessions {
					_ = r.engines[i%2].Heartbeat(runCtx, s.agent, s.id)
				}
			}
		}
	}()
	for w := range agents { // agents: accept every offer, resolve at once
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			e := r.engines[w%2]
			for {
				select {
				case <-runCtx.Done():
					return
				case ev := <-r.offers:
					a := handoff.Actor{AgentID: ev.AgentID}
					if _, err := e.Accept(runCtx, a, ev.Ticket.ID); err != nil {
						if runCtx.Err() == nil {
							b.Errorf("accept: %v", err)
						}
						continue
					}
					r.accepts.Add(1)
					if _, err := e.Resolve(runCtx, a, ev.Ticket.ID); err != nil && runCtx.Err() == nil {
						b.Errorf("resolve: %v", err)
					}
				}
			}
		}()
	}
	b.Cleanup(func() {
		r.stop()
		r.wg.Wait()
		for _, e := range r.engines {
			_ = e.Close(context.Background())
		}
	})
	return r
}

func (r *benchRig) escalate(b *testing.B, i int) string {
	conv := fmt.Sprintf("c%d", i)
	r.started.Store(conv, time.Now())
	_, _, err := r.engines[i%2].Escalate(context.Background(), tandem.Conversation{ID: conv, Customer: tandem.Customer{ID: "cust" + conv}},
		tandem.Escalation{Reason: tandem.EscalateButton, Language: "en"})
	if err != nil {
		b.Error(err)
	}
	return conv
}

func (r *benchRig) report(b *testing.B, elapsed time.Duration) {
	r.mu.Lock()
	lat := slices.Clone(r.lat)
	r.mu.Unlock()
	slices.Sort(lat)
	if len(lat) == 0 {
		b.Fatal("no offers")
	}
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(r.accepts.Load())/elapsed.Seconds(), "assign/s")
	b.ReportMetric(0, "ns/op") // per-op time is meaningless here
	if testing.Verbose() {
		all := map[string][]time.Duration{}
		for _, s := range r.timed {
			s.mu.Lock()
			for k, v := range s.d {
				all[k] = append(all[k], v...)
			}
			s.mu.Unlock()
		}
		for k, v := range all {
			slices.Sort(v)
			var sum time.Duration
			for _, d := range v {
				sum += d
			}
			b.Logf("%-12s n=%6d mean=%v p50=%v p99=%v", k, len(v), sum/time.Duration(len(v)), v[len(v)/2], v[len(v)*99/100])
		}
	}
}

// BenchmarkRouting measures escalation -> agent offer latency and
// assignments per second on PostgreSQL with two engines (nodes) routing
// concurrently; 40 agents with 5 chats each accept every offer and resolve
// it at once.
//
//   - latency: 8 customers escalate one after another (closed loop; the
//     queue never backs up): pure routing latency.
//   - throughput: 32 producers escalate b.N tickets as fast as they can;
//     latency includes queueing behind the 200 chat slots.
func BenchmarkRouting(b *testing.B) {
	b.Run("latency", func(b *testing.B) {
		r := newBenchRig(b, 40, 5)
		var next atomic.Int64
		var wg sync.WaitGroup
		b.ResetTimer()
		start := time.Now()
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1))
					if i > b.N {
						return
					}
					conv := fmt.Sprintf("c%d", i)
					ch := make(chan time.Time, 1)
					r.waiters.Store(conv, ch)
					r.escalate(b, i)
					select {
					case <-ch:
					case <-time.After(30 * time.Second):
						b.Errorf("ticket %s never offered", conv)
						return
					}
				}
			}()
		}
		wg.Wait()
		elapsed := time.Since(start)
		b.StopTimer()
		r.report(b, elapsed)
	})
	b.Run("throughput", func(b *testing.B) {
		r := newBenchRig(b, 40, 5)
		var next atomic.Int64
		var wg sync.WaitGroup
		b.ResetTimer()
		start := time.Now()
		for range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1))
					if i > b.N {
						return
					}
					r.escalate(b, i)
				}
			}()
		}
		wg.Wait()
		deadline := time.Now().Add(2 * time.Minute)
		for r.accepts.Load() < int64(b.N) && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		elapsed := time.Since(start)
		b.StopTimer()
		if n := r.accepts.Load(); n < int64(b.N) {
			b.Fatalf("only %d of %d tickets assigned", n, b.N)
		}
		r.report(b, elapsed)
	})
}
