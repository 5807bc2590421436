package models_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/tandem-chat/tandem/internal/testenv"
	"github.com/tandem-chat/tandem/models"
	"github.com/tandem-chat/tandem/models/onnx"
)

// TestSessionPool: Size slots serve concurrent runs, the slots beyond
// MaxPoolSessions share sessions, and a run waiting for a busy pool gives
// up with its context.
func TestSessionPool(t *testing.T) {
	rt, err := models.OpenRuntime(testenv.ONNXRuntimeLib(t))
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	var g onnx.Graph
	g.Name = "relu"
	g.Input("x", onnx.Float, onnx.P("n"))
	g.Output("y", onnx.Float, onnx.P("n"))
	g.Op("Relu", []string{"x"}, "y")
	m := onnx.Model{Graph: g, Producer: "tandem-test"}
	if _, err := rt.NewSessionPool(m.Marshal(), []string{"x"}, []string{"y"}, 0); err == nil {
		t.Fatal("a pool of 0 slots was created")
	}
	const n = models.MaxPoolSessions + 2
	p, err := rt.NewSessionPool(m.Marshal(), []string{"x"}, []string{"y"}, n)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.Size() != n {
		t.Fatalf("size %d, want %d", p.Size(), n)
	}
	ctx := context.Background()
	held := map[*models.Session]int{}
	var hold []*models.Session
	for range n {
		s, err := p.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held[s]++
		hold = append(hold, s)
	}
	if len(held) != models.MaxPoolSessions {
		t.Fatalf("%d distinct sessions behind %d slots, want %d", len(held), n, models.MaxPoolSessions)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := p.Run(cctx, nil, nil); err != context.Canceled {
		t.Fatalf("run on a busy pool with a cancelled context: %v", err)
	}
	for _, s := range hold {
		p.Release(s)
	}
	var wg sync.WaitGroup
	for i := range 3 * n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x, _ := ort.NewTensor(ort.NewShape(2), []float32{-1, float32(i)})
			defer x.Destroy()
			y, _ := ort.NewEmptyTensor[float32](ort.NewShape(2))
			defer y.Destroy()
			if err := p.Run(ctx, []ort.Value{x}, []ort.Value{y}); err != nil {
				t.Error(err)
				return
			}
			if d := y.GetData(); d[0] != 0 || d[1] != float32(i) {
				t.Errorf("relu(-1, %d) = %v", i, d)
			}
		}()
	}
	wg.Wait()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

// TestRunChunks: every item lands in exactly one chunk, at most limit
// chunks run at once (and limit do), chunk errors are joined, and an ended
// context stops the launches, waits for the launched chunks and wins over
// their errors.
func TestRunChunks(t *testing.T) {
	ctx := context.Background()
	if err := models.RunChunks(ctx, 0, 4, 2, func(lo, hi int) error {
		t.Errorf("chunk [%d, %d) of nothing", lo, hi)
		return nil
	}); err != nil {
		t.Fatalf("no items: %v", err)
	}

	// 23 items in chunks of 4, 3 in flight: the first 3 chunks wait for
	// each other, so the limit is reached, never passed.
	const n, size, limit = 23, 4, 3
	var (
		mu       sync.Mutex
		seen     [n]int
		inFlight int
		full     = make(chan struct{})
	)
	err := models.RunChunks(ctx, n, size, limit, func(lo, hi int) error {
		mu.Lock()
		inFlight++
		if inFlight > limit {
			t.Errorf("%d chunks in flight, limit %d", inFlight, limit)
		}
		if inFlight == limit {
			select {
			case <-full:
			default:
				close(full)
			}
		}
		if hi-lo != size && hi != n || hi-lo > size || lo%size != 0 {
			t.Errorf("chunk [%d, %d)", lo, hi)
		}
		for i := lo; i < hi; i++ {
			seen[i]++
		}
		mu.Unlock()
		<-full
		mu.Lock()
		inFlight--
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range seen {
		if k != 1 {
			t.Fatalf("item %d in %d chunks, want 1", i, k)
		}
	}

	// Errors of several chunks are all returned; the other chunks still run.
	errA, errB := errors.New("chunk a"), errors.New("chunk b")
	var ran atomic.Int32
	err = models.RunChunks(ctx, 10, 2, 2, func(lo, hi int) error {
		ran.Add(1)
		switch lo {
		case 2:
			return errA
		case 6:
			return errB
		}
		return nil
	})
	if !errors.Is(err, errA) || !errors.Is(err, errB) {
		t.Fatalf("err = %v, want both chunk errors", err)
	}
	if ran.Load() != 5 {
		t.Fatalf("%d chunks ran, want 5", ran.Load())
	}

	// ctx ends while chunk 0 holds the only slot: no more launches, chunk 0
	// has returned by the time RunChunks does, and ctx's error replaces
	// chunk 0's.
	cctx, cancel := context.WithCancel(ctx)
	started := make(chan struct{})
	var launched, active atomic.Int32
	go func() {
		<-started
		time.Sleep(20 * time.Millisecond) // let RunChunks block on the slot
		cancel()
	}()
	err = models.RunChunks(cctx, 8, 1, 1, func(lo, hi int) error {
		active.Add(1)
		defer active.Add(-1)
		if launched.Add(1) == 1 {
			close(started)
			<-cctx.Done()
			time.Sleep(10 * time.Millisecond) // returns well after the cancel
			return errors.New("chunk 0 gave up")
		}
		return cctx.Err()
	})
	if err != context.Canceled {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if active.Load() != 0 {
		t.Fatalf("%d chunks still running after RunChunks returned", active.Load())
	}
	if launched.Load() != 1 {
		t.Fatalf("%d chunks launched, want 1 (the context ended while the slot was taken)", launched.Load())
	}

	// Already ended: the result is ctx's error whether or not a chunk got
	// launched before RunChunks noticed.
	err = models.RunChunks(cctx, 64, 1, 1, func(lo, hi int) error { return cctx.Err() })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("ended context: err = %v", err)
	}
}
