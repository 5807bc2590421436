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
	Outputs   []string      `json:"outputs"`
}

// Export builds the int8 ONNX graph of e:
//
//	ids[N,L] int64, weights[N,L] float -> Gather(table int8) -> Cast ->
//	MatMul with (Gather(scales) x weights)[N,1,L] (the weighted sum over L in
//	one pass) -> / max(ReduceL2, eps) -> embedding[N,Dim] float
//
// (An earlier graph multiplied the [N,L,Dim] rows by their weights and then
// summed them with ReduceSum: three passes over the largest intermediate
// instead of one, about twice the time per call; BenchmarkEncoderGraph.)
func (e *Encoder) Export(name string) ([]byte, Manifest) {
	q, scales := e.Quantize()
	B, D := int64(e.Features.Buckets), int64(e.Dim)
	var g onnx.Graph
	g.Name = "tandem_kb_encoder"
	g.Input("ids", onnx.Int64, onnx.P("batch"), onnx.P("len"))
	g.Input("weights", onnx.Float, onnx.P("batch"), onnx.P("len"))
	g.Output("embedding", onnx.Float, onnx.P("batch"), onnx.D(D))
	g.Init(onnx.Int8Tensor("table", []int64{B, D}, q))
	g.Init(onnx.FloatTensor("scales", []int64{B}, scales))
	g.Init(onnx.Int64Tensor("axes_1", []int64{1}, []int64{1}))
	g.Init(onnx.FloatTensor("eps", []int64{1}, []float32{1e-12}))
	rows := g.Op("Gather", []string{"table", "ids"}, "rows")                               // [N,L,D] int8
	rowsF := g.Op("Cast", []string{rows}, "rows_f", onnx.AttrInt("to", int64(onnx.Float))) // dequantise after the gather
	sc := g.Op("Gather", []string{"scales", "ids"}, "row_scales")                          // [N,L]
	w := g.Op("Mul", []string{sc, "weights"}, "row_weights")                               // [N,L]
	w3 := g.Op("Unsqueeze", []string{w, "axes_1"}, "row_weights3")                         // [N,1,L]
	bag := g.Op("MatMul", []string{w3, rowsF}, "bag3")                                     // [N,1,D]
	sum := g.Op("Squeeze", []string{bag, "axes_1"}, "bag")                                 // [N,D]
	norm := g.Op("ReduceL2", []string{sum}, "norm", onnx.AttrInts("axes", 1), onnx.AttrInt("keepdims", 1))
	safe := g.Op("Max", []string{norm, "eps"}, "norm_safe")
	g.Op("Div", []string{sum, safe}, "embedding")
	m := onnx.Model{Graph: g, Producer: "tandem", Doc: "Tandem knowledge-base sentence encoder (hashed n-gram bag, int8 table)",
		Metadata: map[string]string{"dim": fmt.Sprint(e.Dim), "buckets": fmt.Sprint(e.Features.Buckets)}}
	b := m.Marshal()
	sum256 := sha256.Sum256(b)
	h := hex.EncodeToString(sum256[:])
	return b, Manifest{Name: name, Version: "tandem-bag-" + h[:12], Dim: e.Dim, Features: e.Features, SHA256: h,
		Labels: e.Labels, Examples: e.Examples, CreatedAt: time.Now().UTC().Truncate(time.Second),
		Inputs: []string{"ids", "weights"}, Outputs: []string{"embedding"}}
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
	wT, err := ort.NewTensor(ort.NewShape(int64(n), int64(L)), ws)
	if err != nil {
		return nil, fmt.Errorf("embed: weights tensor: %w", err)
	}
	defer wT.Destroy()
	outs := []ort.Value{nil}
	if err := l.sess.Run([]ort.Value{idT, wT}, outs); err != nil {
		return nil, fmt.Errorf("embed: %w", err)
	}
	defer outs[0].Destroy()
	t, ok := outs[0].(*ort.Tensor[float32])
	if !ok {
		return nil, fmt.Errorf("embed: unexpected output type %T", outs[0])
	}
	data := t.GetData()
	D := l.man.Dim
	if len(data) != n*D {
		return nil, fmt.Errorf("embed: output has %d values, want %d", len(data), n*D)
	}
	res := make([][]float32, n)
	for i := range res {
		res[i] = append([]float32(nil), data[i*D:(i+1)*D]...)
	}
	return res, nil
}
