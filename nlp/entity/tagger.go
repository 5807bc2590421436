package entity

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/models"
)

// Options adjust a Tagger. The zero value is the default.
type Options struct {
	// Sessions is the number of ONNX Runtime sessions in the pool (default
	// GOMAXPROCS); each runs single-threaded.
	Sessions int
	// MaxBatch is the number of texts per ONNX Runtime call (default 64);
	// TagBatch splits larger batches and runs the parts concurrently.
	MaxBatch int
	// FP32 serves entity.fp32.onnx instead of the int8 entity.onnx.
	FP32 bool
}

// Tagger serves a saved model through ONNX Runtime: featurisation and
// Viterbi decoding in Go, emission scores in ONNX Runtime. All methods are
// safe for concurrent use; Close must not race with them.
type Tagger struct {
	m        *Model // without emission weights
	pool     *models.SessionPool
	maxBatch int
	crf      *crf
	file     string
	bufs     sync.Pool // *runBufs: a call's tensors, reused (they were most of the NLU path's garbage)
}

// runBufs holds the backing arrays of one call: its tensors', and the
// arenas of its texts' feature rows (Model.encodeInto).
type runBufs struct {
	ids    []int64
	wts    []float32
	scores []float32
	all    []int32
	rows   [][]int32
}

// Load opens the model directory dir (see Save) with default Options.
func Load(rt *models.Runtime, dir string) (*Tagger, error) { return LoadWith(rt, dir, Options{}) }

// LoadWith opens the model directory dir.
func LoadWith(rt *models.Runtime, dir string, opt Options) (*Tagger, error) {
	if rt == nil {
		return nil, errors.New("entity: load: nil ONNX runtime")
	}
	m, mf, err := readManifest(dir)
	if err != nil {
		return nil, err
	}
	name := FileONNX
	if opt.FP32 {
		name = FileONNXFP32
	}
	b, err := readChecked(dir, name, mf.Files)
	if err != nil {
		return nil, err
	}
	if opt.Sessions <= 0 {
		opt.Sessions = runtime.GOMAXPROCS(0)
	}
	if opt.MaxBatch <= 0 {
		opt.MaxBatch = 64
	}
	// Each session holds its own float copy of the table (see ONNX).
	pool, err := rt.NewSessionPool(b, []string{InputIDs, InputWeights}, []string{OutputScores}, opt.Sessions)
	if err != nil {
		return nil, fmt.Errorf("entity: load %s: %w", name, err)
	}
	t := &Tagger{m: m, pool: pool, maxBatch: opt.MaxBatch, crf: m.newCRF(), file: name}
	return t, nil
}

// Types returns the entity types the tagger predicts.
func (t *Tagger) Types() []string { return t.m.Types }

// Manifest-level information about the training run.
func (t *Tagger) Info() TrainInfo { return t.m.info }

// Close releases the sessions.
func (t *Tagger) Close() error { return t.pool.Close() }

// Tag tags one text.
func (t *Tagger) Tag(ctx context.Context, s string) ([]tandem.Entity, error) {
	out, err := t.TagBatch(ctx, []string{s})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// TagBatch tags texts, MaxBatch texts per ONNX Runtime call, the calls
// running concurrently on the session pool. The result has one slice per
// text (nil when it has no entity).
func (t *Tagger) TagBatch(ctx context.Context, texts []string) ([][]tandem.Entity, error) {
	out := make([][]tandem.Entity, len(texts))
	if len(texts) <= t.maxBatch {
		return out, t.run(ctx, texts, out)
	}
	err := models.RunChunks(ctx, len(texts), t.maxBatch, t.pool.Size(), func(lo, hi int) error {
		return t.run(ctx, texts[lo:hi], out[lo:hi])
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// run tags one chunk with one ONNX Runtime call.
func (t *Tagger) run(ctx context.Context, texts []string, out [][]tandem.Entity) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m := t.m
	bufs, _ := t.bufs.Get().(*runBufs)
	if bufs == nil {
		bufs = new(runBufs)
	}
	// Back to the pool only after the tensors are destroyed and the scores
	// decoded (deferred calls run last in, first out).
	defer t.bufs.Put(bufs)
	bufs.all, bufs.rows = bufs.all[:0], bufs.rows[:0]
	toks := make([][]Token, len(texts))
	rows := make([][][]int32, len(texts))
	// The emission graph scores every token on its own (neighbour context
	// is in the hashed features), so the tokens of all texts are packed
	// into one sequence of batch 1: no padding to the longest text.
	first := make([]int, len(texts)+1)
	maxF := 0
	for i, s := range texts {
		toks[i], rows[i], bufs.all, bufs.rows = m.encodeInto(s, bufs.all, bufs.rows)
		first[i+1] = first[i] + len(toks[i])
		for _, r := range rows[i] {
			maxF = max(maxF, len(r))
		}
	}
	N := first[len(texts)]
	if N == 0 {
		return nil
	}
	maxF = max(maxF, 1)
	K := m.K()
	bufs.ids, bufs.wts, bufs.scores = resize(bufs.ids, N*maxF), resize(bufs.wts, N*maxF), resize(bufs.scores, N*K)
	ids, wts, scores := bufs.ids, bufs.wts, bufs.scores
	clear(ids) // padding: row 0 with weight 0; nothing of an earlier call may remain
	clear(wts)
	for i := range texts {
		for tk, rs := range rows[i] {
			base := (first[i] + tk) * maxF
			for f, r := range rs {
				ids[base+f] = int64(r)
				wts[base+f] = 1
			}
		}
	}
	idT, err := ort.NewTensor(ort.NewShape(1, int64(N), int64(maxF)), ids)
	if err != nil {
		return fmt.Errorf("entity: ids tensor: %w", err)
	}
	defer idT.Destroy()
	wT, err := ort.NewTensor(ort.NewShape(1, int64(N), int64(maxF)), wts)
	if err != nil {
		return fmt.Errorf("entity: weights tensor: %w", err)
	}
	defer wT.Destroy()
	// ONNX Runtime writes the scores straight into a Go slice.
	sT, err := ort.NewTensor(ort.NewShape(1, int64(N), int64(K)), scores)
	if err != nil {
		return fmt.Errorf("entity: scores tensor: %w", err)
	}
	defer sT.Destroy()
	if err := t.pool.Run(ctx, []ort.Value{idT, wT}, []ort.Value{sT}); err != nil {
		if err == ctx.Err() { // gave up waiting for a session
			return err
		}
		return fmt.Errorf("entity: %s: %w", t.file, err)
	}
	var sc fbScratch
	for i, s := range texts {
		if len(toks[i]) == 0 {
			continue
		}
		out[i] = m.decode(s, toks[i], scores[first[i]*K:first[i+1]*K], t.crf, &sc)
	}
	return nil
}

// Emissions returns the ONNX emission scores of s, [T][K] flattened, with
// its tokens (for tests comparing with the Go forward pass).
func (t *Tagger) Emissions(ctx context.Context, s string) ([]Token, []float32, error) {
	toks, rows := t.m.encode(s)
	if len(toks) == 0 {
		return nil, nil, nil
	}
	maxF := 1
	for _, r := range rows {
		maxF = max(maxF, len(r))
	}
	T := len(toks)
	ids := make([]int64, T*maxF)
	wts := make([]float32, T*maxF)
	for tk, rs := range rows {
		for f, r := range rs {
			ids[tk*maxF+f] = int64(r)
			wts[tk*maxF+f] = 1
		}
	}
	idT, err := ort.NewTensor(ort.NewShape(1, int64(T), int64(maxF)), ids)
	if err != nil {
		return nil, nil, err
	}
	defer idT.Destroy()
	wT, err := ort.NewTensor(ort.NewShape(1, int64(T), int64(maxF)), wts)
	if err != nil {
		return nil, nil, err
	}
	defer wT.Destroy()
	outs := []ort.Value{nil}
	if err := t.pool.Run(context.Background(), []ort.Value{idT, wT}, outs); err != nil {
		return nil, nil, err
	}
	defer outs[0].Destroy()
	return toks, append([]float32(nil), outs[0].(*ort.Tensor[float32]).GetData()...), nil
}
