package models_test

import (
	"context"
	"sync"
	"testing"

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
