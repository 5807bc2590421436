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
// BenchmarkIntentGraph.) The small dense layers stay float.
func (m *Model) ONNX(int8 bool) []byte {
	rows := len(m.E) / m.Hidden
	C := len(m.Labels)
	var g onnx.Graph
	g.Name = "tandem_intent"
	g.Input(InputIDs, onnx.Int64, onnx.P("batch"), onnx.P("len"))
	g.Input(InputWeights, onnx.Float, onnx.P("batch"), onnx.P("len"))
	g.Output(OutputLogits, onnx.Float, onnx.P("batch"), onnx.D(int64(C)))
	g.Output(OutputProbs, onnx.Float, onnx.P("batch"), onnx.D(int64(C)))
	g.Init(onnx.Int64Tensor("axes_1", []int64{1}, []int64{1}))
	var bag string
	if int8 {
		q, scales := QuantizeRows(m.E, rows, m.Hidden)
		g.Init(onnx.Int8Tensor("E_q", []int64{int64(rows), int64(m.Hidden)}, q))
		g.Init(onnx.FloatTensor("E_scale", []int64{int64(rows)}, scales))
		// Dequantised once, when ONNX Runtime folds these constant nodes at
		// session creation; each call then gathers float rows (no per-call
		// Cast pass over [B,L,H]).
		ef := g.Op("Cast", []string{"E_q"}, "E_f", onnx.AttrInt("to", int64(onnx.Float))) // [V,H]
		es := g.Op("Unsqueeze", []string{"E_scale", "axes_1"}, "E_s")                     // [V,1]
		ed := g.Op("Mul", []string{ef, es}, "E_dq")                                       // [V,H]
		ge := g.Op("Gather", []string{ed, InputIDs}, "e_f")                               // [B,L,H]
		w3 := g.Op("Unsqueeze", []string{InputWeights, "axes_1"}, "w3")                   // [B,1,L]
		bag = g.Op("MatMul", []string{w3, ge}, "bag3")                                    // [B,1,H]
	} else {
		g.Init(onnx.FloatTensor("E", []int64{int64(rows), int64(m.Hidden)}, m.E))
		w3 := g.Op("Unsqueeze", []string{InputWeights, "axes_1"}, "w3") // [B,1,L]
		ge := g.Op("Gather", []string{"E", InputIDs}, "e_f")            // [B,L,H]
		bag = g.Op("MatMul", []string{w3, ge}, "bag3")                  // [B,1,H]
	}
	bag2 := g.Op("Squeeze", []string{bag, "axes_1"}, "bag") // [B,H]
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
		var wide string
		if int8 {
			q, scales := QuantizeRows(m.Lin, rows, C)
			g.Init(onnx.Int8Tensor("L_q", []int64{int64(rows), int64(C)}, q))
			g.Init(onnx.FloatTensor("L_scale", []int64{int64(rows)}, scales))
			lf := g.Op("Cast", []string{"L_q"}, "L_f", onnx.AttrInt("to", int64(onnx.Float))) // [V,C], folded at load
			ls := g.Op("Unsqueeze", []string{"L_scale", "axes_1"}, "L_s")                     // [V,1]
			ld := g.Op("Mul", []string{lf, ls}, "L_dq")                                       // [V,C]
			gl := g.Op("Gather", []string{ld, InputIDs}, "l_f")                               // [B,L,C]
			w3 := g.Op("Unsqueeze", []string{InputWeights, "axes_1"}, "lw3")                  // [B,1,L]
			wide = g.Op("MatMul", []string{w3, gl}, "wide3")                                  // [B,1,C]
		} else {
			g.Init(onnx.FloatTensor("L", []int64{int64(rows), int64(C)}, m.Lin))
			w3 := g.Op("Unsqueeze", []string{InputWeights, "axes_1"}, "lw3") // [B,1,L]
			gl := g.Op("Gather", []string{"L", InputIDs}, "l_f")             // [B,L,C]
			wide = g.Op("MatMul", []string{w3, gl}, "wide3")                 // [B,1,C]
		}
		wide2 := g.Op("Squeeze", []string{wide, "axes_1"}, "wide") // [B,C]
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
	feat, _ := json.Marshal(m.Featurizer.Config())
	train, _ := json.Marshal(m.Config)
	v := m.Validation
	return models.ModelEntry{
		Kind: Kind, File: FileONNX,
		Inputs: []string{InputIDs, InputWeights}, Outputs: []string{OutputLogits, OutputProbs},
		Labels: m.Labels, Aux: map[string]string{"vocab": FileVocab},
		Features: feat, Training: train, Threshold: m.Threshold, Temperature: m.Temperature,
		Validation: map[string]float64{
			"examples": float64(v.Examples), "accuracy": v.Accuracy, "in_scope_accuracy": v.InScopeAccuracy,
			"oos_precision": v.OOSPrecision, "oos_recall": v.OOSRecall, "macro_f1": v.MacroF1,
			"training_examples": float64(m.Examples),
		},
	}, nil
}
