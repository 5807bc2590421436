package intent

import (
	"fmt"
	"math/rand/v2"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/tandem-chat/tandem/internal/testenv"
	"github.com/tandem-chat/tandem/models"
)

func randomModel(rows, H, C int) *Model {
	r := rand.New(rand.NewPCG(3, 4))
	f := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = r.Float32() - 0.5
		}
		return v
	}
	m := &Model{Hidden: H, E: f(rows * H), B0: f(H), Wo: f(H * C), Bo: f(C), Lin: f(rows * C), Temperature: 1}
	for i := range C {
		m.Labels = append(m.Labels, string(rune('a'+i%26))+string(rune('a'+i/26)))
	}
	return m
}

// BenchmarkIntentGraph times one ONNX Runtime call of the exported graph
// (int8 file, dequantised at session creation; and fp32) for 1 and 8 texts
// of 200 features over a 25,000-row vocabulary, 128 hidden, 31 intents.
func BenchmarkIntentGraph(b *testing.B) {
	rt, err := models.OpenRuntime(testenv.ONNXRuntimeLib(b))
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close()
	const rows, L = 25000, 200
	m := randomModel(rows, 128, 31)
	r := rand.New(rand.NewPCG(5, 6))
	for _, g := range []struct {
		name  string
		graph []byte
	}{{"int8", m.ONNX(true)}, {"fp32", m.ONNX(false)}} {
		s, err := rt.NewSession(g.graph, []string{InputIDs, InputWeights}, []string{OutputLogits, OutputProbs})
		if err != nil {
			b.Fatal(err)
		}
		for _, n := range []int{1, 8} {
			ids := make([]int64, n*L)
			w := make([]float32, n*L)
			for i := range ids {
				ids[i], w[i] = int64(1+r.IntN(rows-1)), r.Float32()
			}
			b.Run(fmt.Sprintf("%s/texts=%d", g.name, n), func(b *testing.B) {
				for b.Loop() {
					idT, _ := ort.NewTensor(ort.NewShape(int64(n), L), ids)
					wT, _ := ort.NewTensor(ort.NewShape(int64(n), L), w)
					outs := []ort.Value{nil, nil}
					if err := s.Run([]ort.Value{idT, wT}, outs); err != nil {
						b.Fatal(err)
					}
					outs[0].Destroy()
					outs[1].Destroy()
					idT.Destroy()
					wT.Destroy()
				}
			})
		}
		s.Close()
	}
}
