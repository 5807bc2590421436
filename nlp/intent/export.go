package intent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/tandem-chat/tandem/models"
	"github.com/tandem-chat/tandem/models/onnx"
)

// Graph names shared by the exporter and the classifier.
const (
	InputIDs      = "ids"     // [batch, len] int64 feature rows (0 = padding)
	InputWeights  = "weights" // [batch, len] float tf-idf weights (0 for padding)
	OutputLogits  = "logits"  // [batch, labels] float, uncalibrated
	OutputProbs   = "probs"   // [batch, labels] float, softmax(logits / temperature)
	FileONNX      = "intent.onnx"
	FileVocab     = "intent.vocab"
	Kind          = "intent-bag-mlp"
	RoleIntent    = "intent"
	PrecisionInt8 = "int8"
	PrecisionFP32 = "fp32"
)

// QuantizeRows quantises a [rows x cols] matrix per row to int8 with a
// float scale per row (symmetric: v ~= q * scale).
func QuantizeRows(x []float32, rows, cols int) ([]int8, []float32) {
	q := make([]int8, len(x))
	scales := make([]float32, rows)
	for r := 0; r < rows; r++ {
		row := x[r*cols : r*cols+cols]
		var mx float32
		for _, v := range row {
			mx = max(mx, float32(math.Abs(float64(v))))
		}
		if mx == 0 {
			continue
		}
		s := mx / 127
		scales[r] = s
		for i, v := range row {
			q[r*cols+i] = int8(max(-127, min(127, math.Round(float64(v/s)))))
		}
	}
	return q, scales
}

// ONNX returns the model as an ONNX graph: ids/weights -> logits, probs.
// With int8 the embedding and linear tables are stored as int8 rows with a
// float scale per row (the file is about a quarter of the fp32 one); the
// dequantisation nodes have only constant inputs, so ONNX Runtime folds
// them into float tables when it creates a session, and each call gathers
// float rows. (Dequantising after the gather instead costs a Cast pass over
// the [B,L,H] rows on every call: 25 -> 16 µs for one text,
// BenchmarkIntentGraph.) The embedding and linear tables are concatenated
// (also folded) so that one Gather and one MatMul serve both branches, and
// the result is sliced. The small dense layers stay float.
func (m *Model) ONNX(int8 bool) []byte {
	rows := len(m.E) / m.Hidden
	C := len(m.Labels)
	H := m.Hidden
	var g onnx.Graph
	g.Name = "tandem_intent"
	g.Input(InputIDs, onnx.Int64, onnx.P("batch"), onnx.P("len"))
	g.Input(InputWeights, onnx.Float, onnx.P("batch"), onnx.P("len"))
	g.Output(OutputLogits, onnx.Float, onnx.P("batch"), onnx.D(int64(C)))
	g.Output(OutputProbs, onnx.Float, onnx.P("batch"), onnx.D(int64(C)))
	g.Init(onnx.Int64Tensor("axes_1", []int64{1}, []int64{1}))
	// table returns a [rows, cols] float table: an initializer, or int8 rows
	// with per-row scales dequantised by constant (folded) nodes.
	table := func(name string, w []float32, cols int) string {
		if !int8 {
			g.Init(onnx.FloatTensor(name, []int64{int64(rows), int64(cols)}, w))
			return name
		}
		q, scales := QuantizeRows(w, rows, cols)
		g.Init(onnx.Int8Tensor(name+"_q", []int64{int64(rows), int64(cols)}, q))
		g.Init(onnx.FloatTensor(name+"_scale", []int64{int64(rows)}, scales))
		f := g.Op("Cast", []string{name + "_q"}, name+"_f", onnx.AttrInt("to", int64(onnx.Float))) // [V,cols]
		sc := g.Op("Unsqueeze", []string{name + "_scale", "axes_1"}, name+"_s")                    // [V,1]
		return g.Op("Mul", []string{f, sc}, name+"_dq")                                            // [V,cols]
	}
	tab := table("E", m.E, H)
	width := H
	if m.Lin != nil {
		lt := table("L", m.Lin, C)
		tab = g.Op("Concat", []string{tab, lt}, "EL", onnx.AttrInt("axis", 1)) // [V,H+C], folded
		width += C
	}
	w3 := g.Op("Unsqueeze", []string{InputWeights, "axes_1"}, "w3") // [B,1,L]
	ge := g.Op("Gather", []string{tab, InputIDs}, "rows")           // [B,L,width]
	sum3 := g.Op("MatMul", []string{w3, ge}, "sum3")                // [B,1,width]
	sum := g.Op("Squeeze", []string{sum3, "axes_1"}, "sum")         // [B,width]
	bag2, wide2 := sum, ""
	if m.Lin != nil {
		g.Init(onnx.Int64Tensor("s_0", []int64{1}, []int64{0}))
		g.Init(onnx.Int64Tensor("s_h", []int64{1}, []int64{int64(H)}))
		g.Init(onnx.Int64Tensor("s_w", []int64{1}, []int64{int64(width)}))
		bag2 = g.Op("Slice", []string{sum, "s_0", "s_h", "axes_1"}, "bag")   // [B,H]
		wide2 = g.Op("Slice", []string{sum, "s_h", "s_w", "axes_1"}, "wide") // [B,C]
	}
	g.Init(onnx.FloatTensor("B0", []int64{int64(m.Hidden)}, m.B0))
	g.Init(onnx.FloatTensor("Wo", []int64{int64(m.Hidden), int64(C)}, m.Wo))
	g.Init(onnx.FloatTensor("Bo", []int64{int64(C)}, m.Bo))
	g.Init(onnx.FloatTensor("inv_t", []int64{}, []float32{float32(1 / m.Temperature)}))
	h := g.Op("Add", []string{bag2, "B0"}, "h")
	a := g.Op("Relu", []string{h}, "a")
	mm := g.Op("MatMul", []string{a, "Wo"}, "mm")
	lgName := OutputLogits
	if m.Lin != nil {
		lgName = "deep_logits"
	}
	lg := g.Op("Add", []string{mm, "Bo"}, lgName)
	if m.Lin != nil {
		lg = g.Op("Add", []string{lg, wide2}, OutputLogits)
	}
	sc := g.Op("Mul", []string{lg, "inv_t"}, "scaled")
	g.Op("Softmax", []string{sc}, OutputProbs, onnx.AttrInt("axis", -1))
	prec := PrecisionFP32
	if int8 {
		prec = PrecisionInt8
	}
	mod := onnx.Model{Graph: g, Producer: "tandem", Version: prec, Doc: "Tandem intent classifier (" + Kind + ")",
		Metadata: map[string]string{"labels": strings.Join(m.Labels, "\n"), "temperature": strconv.FormatFloat(m.Temperature, 'g', -1, 64)}}
	return mod.Marshal()
}

// Save writes the model's files (FileONNX and FileVocab) into dir and
// returns its manifest entry. The caller seals the manifest.
func (m *Model) Save(dir string, int8 bool) (models.ModelEntry, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return models.ModelEntry{}, fmt.Errorf("intent: %w", err)
	}
	if err := models.WriteFileAtomic(filepath.Join(dir, FileONNX), m.ONNX(int8)); err != nil {
		return models.ModelEntry{}, err
	}
	var vb bytes.Buffer
	if _, err := m.Featurizer.Vocab().WriteTo(&vb); err != nil {
		return models.ModelEntry{}, fmt.Errorf("intent: vocab: %w", err)
	}
	if err := models.WriteFileAtomic(filepath.Join(dir, FileVocab), vb.Bytes()); err != nil {
		return models.ModelEntry{}, err
	}
	feat, err := json.Marshal(m.Featurizer.Config())
	if err != nil {
		return models.ModelEntry{}, fmt.Errorf("intent: feature config: %w", err)
	}
	train, err := json.Marshal(m.Config)
	if err != nil {
		return models.ModelEntry{}, fmt.Errorf("intent: training config: %w", err)
	}
	v := m.Validation
	return models.ModelEntry{
		Kind: Kind, File: FileONNX,
		Inputs: []string{InputIDs, InputWeights}, Outputs: []string{OutputLogits, OutputProbs},
		Labels: m.Labels, Aux: map[string]string{"vocab": FileVocab},
		Features: feat, Training: train, Threshold: m.Threshold, Score: m.Score, Temperature: m.Temperature,
		Validation: map[string]float64{
			"examples": float64(v.Examples), "accuracy": v.Accuracy, "in_scope_accuracy": v.InScopeAccuracy,
			"oos_precision": v.OOSPrecision, "oos_recall": v.OOSRecall, "macro_f1": v.MacroF1,
			"training_examples": float64(m.Examples),
		},
	}, nil
}
