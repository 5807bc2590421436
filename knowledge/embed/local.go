package embed

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/tandem-chat/tandem/knowledge"
	"github.com/tandem-chat/tandem/models"
	"github.com/tandem-chat/tandem/models/onnx"
)

// File names of an exported encoder in a model directory.
const (
	ModelFile    = "kb-encoder.onnx"
	ManifestFile = "kb-encoder.json"
)

// Manifest describes an exported encoder.
type Manifest struct {
	Name      string        `json:"name"`
	Version   string        `json:"version"` // "tandem-bag-" + first 12 hex of the ONNX sha256
	Dim       int           `json:"dim"`
	Features  FeatureConfig `json:"features"`
	SHA256    string        `json:"sha256"` // of the ONNX file
	Labels    int           `json:"labels"`
	Examples  int           `json:"examples"`
	CreatedAt time.Time     `json:"created_at"`
	Inputs    []string      `json:"inputs"`
	// Graph is the encoder graph's interface: 1 takes weights [N,1,L] and
	// returns the weighted sum [N,1,Dim] (Local normalises it); 0 (encoders
	// exported before it existed) takes weights [N,L] and returns unit
	// vectors [N,Dim]. Local runs both.
	Graph   int      `json:"graph,omitempty"`
	Outputs []string `json:"outputs"`
}

// Export builds the int8 ONNX graph of e. Only the table's non-zero rows
// (features seen in training) are stored, behind a bucket -> row map:
//
//	ids[N,L] int64 -> Gather(row map int32) -> Gather(rows) ->
//	MatMul with weights[N,1,L] (the weighted sum over L in one pass) ->
//	bag[N,1,Dim] float (not normalised: Local scales it to unit length)
//
// The rows are stored as int8 with a scale per row; the dequantisation
// nodes have only constant inputs, so ONNX Runtime folds them into a float
// table when it creates the session and calls gather float rows. Zero rows
// add nothing to the sum, so the output equals a full-table graph
// (TestExportMatchesReduceSumGraph). The weights come in as [N,1,L] and the
// sum leaves as [N,1,Dim], and the L2 normalisation happens in Go, because
// each small ONNX Runtime node costs 1-3 µs per call. Against the earlier
// graph (full int8 table dequantised after the gather, Mul + ReduceSum,
// normalisation in the graph): BenchmarkEncoderGraph.
func (e *Encoder) Export(name string) ([]byte, Manifest) {
	q, scales := e.Quantize()
	B, D := e.Features.Buckets, e.Dim
	rowOf := make([]int32, B) // 0: a zero row
	cq := make([]int8, D, D+len(q)/8)
	cs := []float32{0}
	for b := range B {
		if scales[b] == 0 {
			continue
		}
		rowOf[b] = int32(len(cs))
		cq = append(cq, q[b*D:(b+1)*D]...)
		cs = append(cs, scales[b])
	}
	R := int64(len(cs))
	var g onnx.Graph
	g.Name = "tandem_kb_encoder"
	g.Input("ids", onnx.Int64, onnx.P("batch"), onnx.P("len"))
	g.Input("weights", onnx.Float, onnx.P("batch"), onnx.D(1), onnx.P("len"))
	g.Output("embedding", onnx.Float, onnx.P("batch"), onnx.D(1), onnx.D(int64(D)))
	g.Init(onnx.Int32Tensor("row_of", []int64{int64(B)}, rowOf))
	g.Init(onnx.Int8Tensor("table", []int64{R, int64(D)}, cq))
	g.Init(onnx.FloatTensor("scales", []int64{R}, cs))
	g.Init(onnx.Int64Tensor("axes_1", []int64{1}, []int64{1}))
	tf := g.Op("Cast", []string{"table"}, "table_f", onnx.AttrInt("to", int64(onnx.Float))) // [R,D], folded
	ts := g.Op("Unsqueeze", []string{"scales", "axes_1"}, "scales_1")                       // [R,1], folded
	td := g.Op("Mul", []string{tf, ts}, "table_dq")                                         // [R,D], folded
	rid := g.Op("Gather", []string{"row_of", "ids"}, "row_ids")                             // [N,L] int32
	rows := g.Op("Gather", []string{td, rid}, "rows")                                       // [N,L,D]
	g.Op("MatMul", []string{"weights", rows}, "embedding")                                  // [N,1,D]
	m := onnx.Model{Graph: g, Producer: "tandem", Doc: "Tandem knowledge-base sentence encoder (hashed n-gram bag, int8 table)",
		Metadata: map[string]string{"dim": fmt.Sprint(e.Dim), "buckets": fmt.Sprint(e.Features.Buckets), "rows": fmt.Sprint(R)}}
	b := m.Marshal()
	sum256 := sha256.Sum256(b)
	h := hex.EncodeToString(sum256[:])
	return b, Manifest{Name: name, Version: "tandem-bag-" + h[:12], Dim: e.Dim, Features: e.Features, SHA256: h,
		Labels: e.Labels, Examples: e.Examples, CreatedAt: time.Now().UTC().Truncate(time.Second),
		Inputs: []string{"ids", "weights"}, Outputs: []string{"embedding"}, Graph: 1}
}

// WriteFiles writes the ONNX model and its manifest into dir (atomically:
// temporary files renamed into place, manifest last).
func WriteFiles(dir string, model []byte, man Manifest) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	mj, err := json.MarshalIndent(man, "", "  ")
	if err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{ModelFile, model}, {ManifestFile, append(mj, '\n')}} {
		tmp := filepath.Join(dir, "."+f.name+".tmp")
		if err := os.WriteFile(tmp, f.data, 0o644); err != nil {
			return err
		}
		if err := os.Rename(tmp, filepath.Join(dir, f.name)); err != nil {
			return err
		}
	}
	return nil
}

// Local runs an exported encoder in ONNX Runtime.
type Local struct {
	sess     *models.Session
	man      Manifest
	maxBatch int
}

var _ knowledge.Embedder = (*Local)(nil)

// OpenLocal loads ModelFile and ManifestFile from dir, checking the
// model's sha256 against the manifest.
func OpenLocal(rt *models.Runtime, dir string) (*Local, error) {
	mj, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return nil, fmt.Errorf("embed: read manifest: %w", err)
	}
	var man Manifest
	if err := json.Unmarshal(mj, &man); err != nil {
		return nil, fmt.Errorf("embed: parse manifest: %w", err)
	}
	model, err := os.ReadFile(filepath.Join(dir, ModelFile))
	if err != nil {
		return nil, fmt.Errorf("embed: read model: %w", err)
	}
	return NewLocal(rt, model, man)
}

// NewLocal creates a session for an exported model.
func NewLocal(rt *models.Runtime, model []byte, man Manifest) (*Local, error) {
	sum := sha256.Sum256(model)
	if hex.EncodeToString(sum[:]) != man.SHA256 {
		return nil, fmt.Errorf("embed: model sha256 does not match the manifest (%s)", man.Version)
	}
	if man.Dim <= 0 || man.Features.Buckets <= 0 {
		return nil, fmt.Errorf("embed: manifest %s lacks dim or feature config", man.Version)
	}
	sess, err := rt.NewSession(model, []string{"ids", "weights"}, []string{"embedding"})
	if err != nil {
		return nil, fmt.Errorf("embed: %w", err)
	}
	return &Local{sess: sess, man: man, maxBatch: 64}, nil
}

// Manifest returns the encoder's manifest.
func (l *Local) Manifest() Manifest { return l.man }

// Dim implements knowledge.Embedder.
func (l *Local) Dim() int { return l.man.Dim }

// Version implements knowledge.Embedder.
func (l *Local) Version() string { return l.man.Version }

// Close destroys the session.
func (l *Local) Close() error { return l.sess.Close() }

// Embed implements knowledge.Embedder, in batches of up to 64 texts per
// ONNX Runtime call.
func (l *Local) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, 0, len(texts))
	for i := 0; i < len(texts); i += l.maxBatch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		j := min(i+l.maxBatch, len(texts))
		v, err := l.run(texts[i:j])
		if err != nil {
			return nil, err
		}
		out = append(out, v...)
	}
	return out, nil
}

func (l *Local) run(texts []string) ([][]float32, error) {
	n := len(texts)
	feats := make([][]int64, n)
	wts := make([][]float32, n)
	L := 1
	for i, t := range texts {
		feats[i], wts[i] = l.man.Features.Features(t)
		L = max(L, len(feats[i]))
	}
	ids := make([]int64, n*L)
	ws := make([]float32, n*L) // padding: id 0 with weight 0
	for i := range texts {
		copy(ids[i*L:], feats[i])
		copy(ws[i*L:], wts[i])
	}
	idT, err := ort.NewTensor(ort.NewShape(int64(n), int64(L)), ids)
	if err != nil {
		return nil, fmt.Errorf("embed: ids tensor: %w", err)
	}
	defer idT.Destroy()
	wShape := ort.NewShape(int64(n), int64(L))
	if l.man.Graph >= 1 {
		wShape = ort.NewShape(int64(n), 1, int64(L))
	}
	wT, err := ort.NewTensor(wShape, ws)
	if err != nil {
		return nil, fmt.Errorf("embed: weights tensor: %w", err)
	}
	defer wT.Destroy()
	// ONNX Runtime writes straight into one Go slice (no output value to
	// allocate, inspect and copy), which the results then share.
	D := l.man.Dim
	data := make([]float32, n*D)
	oShape := ort.NewShape(int64(n), int64(D))
	if l.man.Graph >= 1 {
		oShape = ort.NewShape(int64(n), 1, int64(D))
	}
	oT, err := ort.NewTensor(oShape, data)
	if err != nil {
		return nil, fmt.Errorf("embed: output tensor: %w", err)
	}
	defer oT.Destroy()
	if err := l.sess.Run([]ort.Value{idT, wT}, []ort.Value{oT}); err != nil {
		return nil, fmt.Errorf("embed: %w", err)
	}
	res := make([][]float32, n)
	for i := range res {
		res[i] = data[i*D : (i+1)*D : (i+1)*D] // capped: an append by the caller copies
		normalize(res[i])
	}
	return res, nil
}
