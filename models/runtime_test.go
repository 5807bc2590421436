package models_test

import (
	"math"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/tandem-chat/tandem/internal/testenv"
	"github.com/tandem-chat/tandem/models"
	"github.com/tandem-chat/tandem/models/onnx"
)

// TestRuntimeRunsExportedGraph builds a small graph with the project's own
// exporter (an int8 embedding table gathered by index, dequantised per row,
// weighted and summed: the shape of Tandem's bag encoders), runs it in the
// real ONNX Runtime and checks the known output.
func TestRuntimeRunsExportedGraph(t *testing.T) {
	rt, err := models.OpenRuntime(testenv.ONNXRuntimeLib(t))
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	if v := rt.Version(); v == "" {
		t.Fatal("empty ONNX Runtime version")
	}

	// table[4][2] int8 with per-row scales.
	table := []int8{1, 2, 3, 4, -5, 6, 7, -8}
	scales := []float32{0.5, 1, 0.25, 2}
	var g onnx.Graph
	g.Name = "bag"
	g.Input("ids", onnx.Int64, onnx.P("batch"), onnx.P("len"))
	g.Input("weights", onnx.Float, onnx.P("batch"), onnx.P("len"))
	g.Output("out", onnx.Float, onnx.P("batch"), onnx.D(2))
	g.Init(onnx.Int8Tensor("table", []int64{4, 2}, table))
	g.Init(onnx.FloatTensor("scales", []int64{4}, scales))
	g.Init(onnx.Int64Tensor("axes_last", []int64{1}, []int64{-1}))
	g.Init(onnx.Int64Tensor("axes_seq", []int64{1}, []int64{1}))
	q := g.Op("Gather", []string{"table", "ids"}, "q") // [B,L,2] int8
	f := g.Op("Cast", []string{q}, "qf", onnx.AttrInt("to", int64(onnx.Float)))
	s := g.Op("Gather", []string{"scales", "ids"}, "s")      // [B,L]
	w := g.Op("Mul", []string{s, "weights"}, "sw")           // [B,L]
	w3 := g.Op("Unsqueeze", []string{w, "axes_last"}, "sw3") // [B,L,1]
	x := g.Op("Mul", []string{f, w3}, "x")                   // [B,L,2]
	g.Op("ReduceSum", []string{x, "axes_seq"}, "out", onnx.AttrInt("keepdims", 0))
	m := onnx.Model{Graph: g, Producer: "tandem-test", Metadata: map[string]string{"k": "v"}}

	sess, err := rt.NewSession(m.Marshal(), []string{"ids", "weights"}, []string{"out"})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()

	ids, _ := ort.NewTensor(ort.NewShape(2, 2), []int64{0, 1, 3, 3})
	defer ids.Destroy()
	wts, _ := ort.NewTensor(ort.NewShape(2, 2), []float32{1, 2, 1, 0})
	defer wts.Destroy()
	outs := []ort.Value{nil}
	if err := sess.Run([]ort.Value{ids, wts}, outs); err != nil {
		t.Fatal(err)
	}
	defer outs[0].Destroy()
	got := outs[0].(*ort.Tensor[float32]).GetData()
	// row0 = 0.5*[1,2]*1 + 1*[3,4]*2 = [6.5, 9]; row1 = 2*[7,-8]*1 = [14,-16]
	want := []float32{6.5, 9, 14, -16}
	for i := range want {
		if math.Abs(float64(got[i]-want[i])) > 1e-6 {
			t.Fatalf("out = %v, want %v", got, want)
		}
	}
}
