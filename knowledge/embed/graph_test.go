package embed

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/tandem-chat/tandem/internal/testenv"
	"github.com/tandem-chat/tandem/models"
	"github.com/tandem-chat/tandem/models/onnx"
)

// reduceSumGraph is the encoder graph Export built before it switched to a
// compacted, load-time-dequantised table and a MatMul: the full int8 table,
// dequantised after the gather, rows x weights, then ReduceSum over the
// sequence. It is the reference the current graph must equal.
func reduceSumGraph(e *Encoder) ([]byte, Manifest) {
	q, scales := e.Quantize()
	B, D := int64(e.Features.Buckets), int64(e.Dim)
	var g onnx.Graph
	g.Name = "reduce_sum_reference"
	g.Input("ids", onnx.Int64, onnx.P("batch"), onnx.P("len"))
	g.Input("weights", onnx.Float, onnx.P("batch"), onnx.P("len"))
	g.Output("embedding", onnx.Float, onnx.P("batch"), onnx.D(D))
	g.Init(onnx.Int8Tensor("table", []int64{B, D}, q))
	g.Init(onnx.FloatTensor("scales", []int64{B}, scales))
	g.Init(onnx.Int64Tensor("axes_last", []int64{1}, []int64{-1}))
	g.Init(onnx.Int64Tensor("axes_seq", []int64{1}, []int64{1}))
	g.Init(onnx.FloatTensor("eps", []int64{1}, []float32{1e-12}))
	rows := g.Op("Gather", []string{"table", "ids"}, "rows")
	rowsF := g.Op("Cast", []string{rows}, "rows_f", onnx.AttrInt("to", int64(onnx.Float)))
	sc := g.Op("Gather", []string{"scales", "ids"}, "row_scales")
	w := g.Op("Mul", []string{sc, "weights"}, "row_weights")
	w3 := g.Op("Unsqueeze", []string{w, "axes_last"}, "row_weights3")
	x := g.Op("Mul", []string{rowsF, w3}, "weighted")
	sum := g.Op("ReduceSum", []string{x, "axes_seq"}, "bag", onnx.AttrInt("keepdims", 0))
	norm := g.Op("ReduceL2", []string{sum}, "norm", onnx.AttrInts("axes", 1), onnx.AttrInt("keepdims", 1))
	safe := g.Op("Max", []string{norm, "eps"}, "norm_safe")
	g.Op("Div", []string{sum, safe}, "embedding")
	m := onnx.Model{Graph: g, Producer: "tandem"}
	b := m.Marshal()
	s := sha256.Sum256(b)
	return b, Manifest{Dim: e.Dim, Features: e.Features, SHA256: hex.EncodeToString(s[:])}
}

// randomEncoder has the default featurisation and a random table in which
// two rows of three are zero (features never seen in training), so that
// Export's compaction is exercised.
func randomEncoder() *Encoder {
	e := &Encoder{Features: DefaultFeatures, Dim: 128}
	r := rand.New(rand.NewPCG(1, 2))
	e.Table = make([]float32, e.Features.Buckets*e.Dim)
	for i := range e.Table {
		if (i/e.Dim)%3 == 0 {
			e.Table[i] = r.Float32() - 0.5
		}
	}
	return e
}

var graphTexts = []string{
	"i need help cancelling the order i made yesterday because it is wrong",
	"where can i see the status of my refund for the headphones",
	"how do I change the delivery address of order 12345",
	"talk to a human",
	"can you tell me what payment methods you accept for international orders please",
	"我想退货",
	"reset my password",
	"",
}

func openGraphs(tb testing.TB) (cur, ref *Local, closeAll func()) {
	rt, err := models.OpenRuntime(testenv.ONNXRuntimeLib(tb))
	if err != nil {
		tb.Fatal(err)
	}
	e := randomEncoder()
	model, man := e.Export("cur")
	cur, err = NewLocal(rt, model, man)
	if err != nil {
		tb.Fatal(err)
	}
	model, man = reduceSumGraph(e)
	ref, err = NewLocal(rt, model, man)
	if err != nil {
		tb.Fatal(err)
	}
	return cur, ref, func() { cur.Close(); ref.Close(); rt.Close() }
}

// TestExportMatchesReduceSumGraph: the shipped graph computes the same
// embeddings as the reference graph, alone and in a padded batch.
func TestExportMatchesReduceSumGraph(t *testing.T) {
	cur, ref, closeAll := openGraphs(t)
	defer closeAll()
	for _, batch := range [][]string{graphTexts, graphTexts[:1], graphTexts[3:4]} {
		got, err := cur.run(batch)
		if err != nil {
			t.Fatal(err)
		}
		want, err := ref.run(batch)
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			for j := range want[i] {
				if d := got[i][j] - want[i][j]; d > 1e-5 || d < -1e-5 {
					t.Fatalf("text %q dim %d: %g, reference %g", batch[i], j, got[i][j], want[i][j])
				}
			}
		}
	}
}

// BenchmarkEncoderGraph compares one ONNX Runtime call of the shipped graph
// with the reference graph, for 1 and 8 texts.
func BenchmarkEncoderGraph(b *testing.B) {
	cur, ref, closeAll := openGraphs(b)
	defer closeAll()
	for _, g := range []struct {
		name string
		l    *Local
	}{{"shipped", cur}, {"reduce-sum", ref}} {
		for _, n := range []int{1, 8} {
			b.Run(fmt.Sprintf("%s/texts=%d", g.name, n), func(b *testing.B) {
				for b.Loop() {
					if _, err := g.l.run(graphTexts[:n]); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
