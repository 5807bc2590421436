package entity

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/tandem-chat/tandem/models/onnx"
)

// File names in a model directory.
const (
	FileONNX     = "entity.onnx"      // int8 emission model (served)
	FileONNXFP32 = "entity.fp32.onnx" // float emission model (optional)
	FileManifest = "entity.json"      // tags, transitions, features, gazetteer, values
	FileVocab    = "entity.vocab"     // feature hashes, row order
)

// ONNX graph names.
const (
	InputIDs      = "ids"     // int64 [batch, tokens, features]: vocabulary rows, 0 = padding
	InputWeights  = "weights" // float [batch, tokens, features]: 1 for a feature, 0 for padding
	OutputScores  = "scores"  // float [batch, tokens, tags]: emission scores
	manifestMagic = "tandem-entity"
	vocabMagic    = "TNDENTV1"
)

// Manifest is the JSON file beside the ONNX model.
type Manifest struct {
	Format       string              `json:"format"`
	Version      int                 `json:"version"`
	Types        []string            `json:"types"`
	Tags         []string            `json:"tags"`
	Features     FeatureConfig       `json:"features"`
	NumFeatures  int                 `json:"num_features"`
	Quantization string              `json:"quantization"`
	Start        []float32           `json:"start"`
	End          []float32           `json:"end"`
	Transitions  [][]float32         `json:"transitions"` // [from][to]; BIO-forbidden pairs are ignored
	Gazetteer    map[string][]string `json:"gazetteer"`   // type -> values (normalised tokens joined by U+001F)
	Values       map[string]string   `json:"values"`      // normalised surface -> canonical value
	Files        map[string]FileInfo `json:"files"`
	Train        TrainInfo           `json:"train"`
}

// FileInfo identifies one file of the model directory.
type FileInfo struct {
	SHA256 string `json:"sha256"`
	Bytes  int64  `json:"bytes"`
}

// quantizeRows quantises a [rows][k] table per row, symmetric int8.
func quantizeRows(w []float32, k int) ([]int8, []float32) {
	rows := len(w) / k
	q := make([]int8, len(w))
	scales := make([]float32, rows)
	for r := 0; r < rows; r++ {
		row := w[r*k : (r+1)*k]
		mx := float32(0)
		for _, v := range row {
			mx = max(mx, float32(math.Abs(float64(v))))
		}
		if mx == 0 {
			continue
		}
		s := mx / 127
		scales[r] = s
		for i, v := range row {
			x := math.Round(float64(v / s))
			q[r*k+i] = int8(max(-127, min(127, x)))
		}
	}
	return q, scales
}

// Quantized returns a copy of m whose emission table holds the int8
// per-row quantised weights dequantised to float (what entity.onnx
// computes), for comparing int8 and float accuracy in Go.
func (m *Model) Quantized() *Model {
	c := m.clone()
	q, s := quantizeRows(m.w, m.K())
	c.w = make([]float32, len(m.w))
	k := m.K()
	for i, v := range q {
		c.w[i] = float32(v) * s[i/k]
	}
	return c
}

// ONNX returns the emission model as ONNX bytes: int8 per-row quantised
// tables (dequantised by constant nodes, folded at session creation) when
// quantized, else float tables.
func (m *Model) ONNX(quantized bool) []byte {
	K := int64(m.K())
	V := int64(len(m.hashes) + 1)
	var g onnx.Graph
	g.Name = "tandem_entity"
	g.Input(InputIDs, onnx.Int64, onnx.P("batch"), onnx.P("tokens"), onnx.P("features"))
	g.Input(InputWeights, onnx.Float, onnx.P("batch"), onnx.P("tokens"), onnx.P("features"))
	g.Output(OutputScores, onnx.Float, onnx.P("batch"), onnx.P("tokens"), onnx.D(K))
	// The weighted sum over features is a batched MatMul:
	// [B,T,1,F] x [B,T,F,K] -> [B,T,1,K], then the unit axis is squeezed.
	g.Init(onnx.Int64Tensor("axes_row", []int64{1}, []int64{2}))
	var w4, e string
	if quantized {
		q, s := quantizeRows(m.w, int(K))
		g.Init(onnx.Int8Tensor("table_q", []int64{V, K}, q))
		g.Init(onnx.FloatTensor("table_scale", []int64{V}, s))
		// Constant nodes: ONNX Runtime folds them into a float table when it
		// creates the session, so calls gather float rows (no Cast per call).
		g.Init(onnx.Int64Tensor("axes_col", []int64{1}, []int64{1}))
		tf := g.Op("Cast", []string{"table_q"}, "table_f", onnx.AttrInt("to", int64(onnx.Float))) // [V,K]
		ts := g.Op("Unsqueeze", []string{"table_scale", "axes_col"}, "table_s")                   // [V,1]
		td := g.Op("Mul", []string{tf, ts}, "table_dq")                                           // [V,K]
		e = g.Op("Gather", []string{td, InputIDs}, "emb")                                         // [B,T,F,K]
		w4 = g.Op("Unsqueeze", []string{InputWeights, "axes_row"}, "w_row")                       // [B,T,1,F]
	} else {
		g.Init(onnx.FloatTensor("table", []int64{V, K}, m.w))
		e = g.Op("Gather", []string{"table", InputIDs}, "emb")              // [B,T,F,K]
		w4 = g.Op("Unsqueeze", []string{InputWeights, "axes_row"}, "w_row") // [B,T,1,F]
	}
	y := g.Op("MatMul", []string{w4, e}, "summed")         // [B,T,1,K]
	g.Op("Squeeze", []string{y, "axes_row"}, OutputScores) // [B,T,K]
	quant := "fp32"
	if quantized {
		quant = "int8-per-row-symmetric"
	}
	mod := onnx.Model{Graph: g, Producer: "tandem", Version: "1", Doc: "Tandem entity tagger emissions (BIO tags; transitions in entity.json)",
		Metadata: map[string]string{"tags": strings.Join(m.Tags, ","), "quantization": quant}}
	return mod.Marshal()
}

// vocabBytes serialises the feature hashes (row r+1 is hashes[r]).
func (m *Model) vocabBytes() []byte {
	b := make([]byte, 0, len(vocabMagic)+8+8*len(m.hashes))
	b = append(b, vocabMagic...)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(m.hashes)))
	for _, h := range m.hashes {
		b = binary.LittleEndian.AppendUint64(b, h)
	}
	return b
}

func readVocab(b []byte) ([]uint64, error) {
	if len(b) < len(vocabMagic)+8 || string(b[:len(vocabMagic)]) != vocabMagic {
		return nil, errors.New("not an entity vocabulary file")
	}
	b = b[len(vocabMagic):]
	n := binary.LittleEndian.Uint64(b)
	b = b[8:]
	if uint64(len(b)) != 8*n {
		return nil, fmt.Errorf("vocabulary: %d bytes for %d hashes", len(b), n)
	}
	out := make([]uint64, n)
	for i := range out {
		out[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	return out, nil
}

// manifest builds the manifest (without Files).
func (m *Model) manifest() *Manifest {
	K := m.K()
	mf := &Manifest{Format: manifestMagic, Version: 1, Types: m.Types, Tags: m.Tags, Features: m.Features,
		NumFeatures: len(m.hashes), Quantization: "int8-per-row-symmetric", Start: m.start, End: m.end,
		Gazetteer: map[string][]string{}, Values: m.values, Files: map[string]FileInfo{}, Train: m.info}
	for i := 0; i < K; i++ {
		mf.Transitions = append(mf.Transitions, m.trans[i*K:(i+1)*K])
	}
	if m.gaz != nil {
		for _, e := range m.gaz.entries() {
			mf.Gazetteer[e[0]] = append(mf.Gazetteer[e[0]], e[1])
		}
	}
	if mf.Values == nil {
		mf.Values = map[string]string{}
	}
	return mf
}

// Save writes the model directory (created if needed): entity.onnx,
// entity.vocab, entity.json and, when Config.ExportFP32 was set,
// entity.fp32.onnx. It returns the paths written. Files are written to
// temporary names and renamed, so a reader never sees a partial file.
func (m *Model) Save(dir string) (files []string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("entity: save: %w", err)
	}
	mf := m.manifest()
	write := func(name string, b []byte) error {
		p := filepath.Join(dir, name)
		if err := writeAtomic(p, b); err != nil {
			return fmt.Errorf("entity: save %s: %w", name, err)
		}
		sum := sha256.Sum256(b)
		mf.Files[name] = FileInfo{SHA256: hex.EncodeToString(sum[:]), Bytes: int64(len(b))}
		files = append(files, p)
		return nil
	}
	if err := write(FileONNX, m.ONNX(true)); err != nil {
		return nil, err
	}
	if m.exportFP32 {
		if err := write(FileONNXFP32, m.ONNX(false)); err != nil {
			return nil, err
		}
	}
	if err := write(FileVocab, m.vocabBytes()); err != nil {
		return nil, err
	}
	js, err := json.MarshalIndent(mf, "", " ")
	if err != nil {
		return nil, fmt.Errorf("entity: save manifest: %w", err)
	}
	if err := writeAtomic(filepath.Join(dir, FileManifest), append(js, '\n')); err != nil {
		return nil, fmt.Errorf("entity: save manifest: %w", err)
	}
	files = append(files, filepath.Join(dir, FileManifest))
	sort.Strings(files)
	return files, nil
}

// SetExportFP32 sets whether Save also writes entity.fp32.onnx.
func (m *Model) SetExportFP32(v bool) { m.exportFP32 = v }

func writeAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	if _, err := io.Copy(tmp, bytes.NewReader(b)); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// readManifest reads and checks a model directory's manifest and vocabulary
// and returns a Model without emission weights (served by ONNX Runtime).
func readManifest(dir string) (*Model, *Manifest, error) {
	b, err := os.ReadFile(filepath.Join(dir, FileManifest))
	if err != nil {
		return nil, nil, fmt.Errorf("entity: load: %w", err)
	}
	var mf Manifest
	if err := json.Unmarshal(b, &mf); err != nil {
		return nil, nil, fmt.Errorf("entity: load %s: %w", FileManifest, err)
	}
	if mf.Format != manifestMagic {
		return nil, nil, fmt.Errorf("entity: load %s: format %q, want %q", FileManifest, mf.Format, manifestMagic)
	}
	if mf.Version != 1 {
		return nil, nil, fmt.Errorf("entity: load %s: manifest version %d not supported", FileManifest, mf.Version)
	}
	if mf.Features.Version != FeatureVersion {
		return nil, nil, fmt.Errorf("entity: load: feature version %d, this build supports %d", mf.Features.Version, FeatureVersion)
	}
	want := tagSet(mf.Types)
	K := len(want)
	if strings.Join(want, ",") != strings.Join(mf.Tags, ",") || len(mf.Start) != K || len(mf.End) != K || len(mf.Transitions) != K {
		return nil, nil, fmt.Errorf("entity: load %s: inconsistent tags or transitions", FileManifest)
	}
	m := &Model{Types: mf.Types, Tags: mf.Tags, Features: mf.Features, start: mf.Start, end: mf.End, values: mf.Values, info: mf.Train}
	m.trans = make([]float32, 0, K*K)
	for _, row := range mf.Transitions {
		if len(row) != K {
			return nil, nil, fmt.Errorf("entity: load %s: transition row of %d, want %d", FileManifest, len(row), K)
		}
		m.trans = append(m.trans, row...)
	}
	m.gaz = newGazetteer()
	for _, typ := range sortedKeys(mf.Gazetteer) {
		for _, v := range mf.Gazetteer[typ] {
			m.gaz.add(strings.Split(v, "\x1f"), typ)
		}
	}
	vb, err := readChecked(dir, FileVocab, mf.Files)
	if err != nil {
		return nil, nil, err
	}
	if m.hashes, err = readVocab(vb); err != nil {
		return nil, nil, fmt.Errorf("entity: load %s: %w", FileVocab, err)
	}
	if len(m.hashes) != mf.NumFeatures {
		return nil, nil, fmt.Errorf("entity: load: vocabulary has %d features, manifest says %d", len(m.hashes), mf.NumFeatures)
	}
	m.vocab = newHashIndex(m.hashes)
	return m, &mf, nil
}

// readChecked reads a file of the model directory and verifies its hash.
func readChecked(dir, name string, files map[string]FileInfo) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return nil, fmt.Errorf("entity: load: %w", err)
	}
	fi, ok := files[name]
	if !ok {
		return nil, fmt.Errorf("entity: load: %s is not listed in %s", name, FileManifest)
	}
	sum := sha256.Sum256(b)
	if hex.EncodeToString(sum[:]) != fi.SHA256 {
		return nil, fmt.Errorf("entity: load: %s: sha256 mismatch (file changed after training)", name)
	}
	return b, nil
}
