// Package nlp understands customer text: normalisation and tokenisation
// (nlp/text), featurisation shared by training and inference
// (nlp/features), the intent trainer (nlp/intent), the entity tagger
// (nlp/entity), rule extractors (nlp/rules) and data loaders (nlp/data).
// This package serves the trained models: a Classifier loads a model
// directory (models.Manifest) and runs the intent model in ONNX Runtime.
//
// Contract: a Classifier is safe for concurrent use. It holds a bounded pool
// of ONNX Runtime sessions; calls wait for a free session (or ctx). Batched
// calls put many texts in one ONNX Runtime Run. Confidences are calibrated
// (temperature scaling fitted at training time); NLU.OutOfScope is set when
// the top intent is "oos" or the model's out-of-scope score (the manifest's
// "score": the top probability, or the log ratio of the top in-scope
// intent's probability to the oos probability) is below its threshold, in
// which case NLU.Intent still names the best guess.
package nlp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sort"
	"sync"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/models"
	"github.com/tandem-chat/tandem/nlp/features"
	"github.com/tandem-chat/tandem/nlp/intent"
)

// Options configure a Classifier. Zero values mean the defaults.
type Options struct {
	Sessions int // concurrent ONNX Runtime calls (default GOMAXPROCS; at most 4 distinct sessions, shared beyond)
	TopK     int // intents in NLU.Ranking (default 5)
	MaxBatch int // texts per ONNX Runtime call (default 8: larger calls are slower per text, their [batch x features x hidden] intermediate falls out of cache)
	// Threshold, when non-nil, overrides the manifest's out-of-scope
	// threshold, in the units of the model's score (Classifier.Score): a
	// probability in [0, 1] for max_prob, any finite log ratio (0 and
	// negative values included) for oos_log_ratio.
	Threshold *float64
}

// Classifier runs a model directory's intent model.
type Classifier struct {
	dir       string
	manifest  *models.Manifest
	labels    []string
	oos       int
	fz        *features.Featurizer
	threshold float64
	score     string // the out-of-scope score the threshold applies to (intent.ScoreMaxProb or intent.ScoreOOSLogRatio)
	topK      int
	maxBatch  int
	pool      *models.SessionPool
	bufs      sync.Pool // *batchBuf
}

type batchBuf struct {
	rows [][]int32
	w    [][]float32
	ids  []int64
	wts  []float32
}

// LoadClassifier loads the model directory dir (verifying the manifest's
// checksums) and creates the session pool in rt.
func LoadClassifier(rt *models.Runtime, dir string, opt Options) (*Classifier, error) {
	man, err := models.ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	me, ok := man.Models[intent.RoleIntent]
	if !ok {
		return nil, fmt.Errorf("nlp: %s has no intent model", dir)
	}
	if me.Kind != intent.Kind {
		return nil, fmt.Errorf("nlp: %s: intent model kind %q, this build serves %q", dir, me.Kind, intent.Kind)
	}
	var fcfg features.Config
	if err := json.Unmarshal(me.Features, &fcfg); err != nil {
		return nil, fmt.Errorf("nlp: %s: feature config: %w", dir, err)
	}
	vb, err := man.ReadFile(dir, me.Aux["vocab"])
	if err != nil {
		return nil, fmt.Errorf("nlp: %w", err)
	}
	vocab, err := features.ReadVocab(bytes.NewReader(vb))
	if err != nil {
		return nil, fmt.Errorf("nlp: %s: %w", dir, err)
	}
	fz, err := features.New(fcfg, vocab)
	if err != nil {
		return nil, fmt.Errorf("nlp: %s: %w", dir, err)
	}
	graph, err := man.ReadFile(dir, me.File)
	if err != nil {
		return nil, fmt.Errorf("nlp: %w", err)
	}
	if len(me.Labels) < 2 {
		return nil, fmt.Errorf("nlp: %s: intent model has %d labels", dir, len(me.Labels))
	}
	c := &Classifier{
		dir: dir, manifest: man, labels: me.Labels, oos: -1, fz: fz, threshold: me.Threshold,
		topK: 5, maxBatch: 8,
	}
	for i, l := range me.Labels {
		if l == tandem.OutOfScope {
			c.oos = i
		}
	}
	switch me.Score {
	case "", intent.ScoreMaxProb:
		c.score = intent.ScoreMaxProb // directories written before the manifest named the score
	case intent.ScoreOOSLogRatio:
		if c.oos < 0 {
			return nil, fmt.Errorf("nlp: %s: out-of-scope score %q needs an %q label", dir, me.Score, tandem.OutOfScope)
		}
		c.score = me.Score
	default:
		return nil, fmt.Errorf("nlp: %s: out-of-scope score %q unknown to this build (want %q or %q)", dir, me.Score, intent.ScoreMaxProb, intent.ScoreOOSLogRatio)
	}
	if t := opt.Threshold; t != nil {
		switch {
		case math.IsNaN(*t) || math.IsInf(*t, 0):
			return nil, fmt.Errorf("nlp: threshold %v is not a finite number", *t)
		case c.score == intent.ScoreMaxProb && (*t < 0 || *t > 1):
			return nil, fmt.Errorf("nlp: threshold %v: the model's score is %s, a probability; want a value in [0, 1]", *t, c.score)
		}
		c.threshold = *t
	}
	if opt.TopK > 0 {
		c.topK = opt.TopK
	}
	c.topK = min(c.topK, len(c.labels))
	if opt.MaxBatch > 0 {
		c.maxBatch = opt.MaxBatch
	}
	n := opt.Sessions
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	c.pool, err = rt.NewSessionPool(graph, []string{intent.InputIDs, intent.InputWeights}, []string{intent.OutputProbs}, n)
	if err != nil {
		return nil, fmt.Errorf("nlp: %s: %w", dir, err)
	}
	c.bufs.New = func() any { return new(batchBuf) }
	return c, nil
}

// Manifest returns the loaded manifest.
func (c *Classifier) Manifest() *models.Manifest { return c.manifest }

// Labels returns the intent labels.
func (c *Classifier) Labels() []string { return c.labels }

// Threshold returns the out-of-scope threshold in use.
func (c *Classifier) Threshold() float64 { return c.threshold }

// Score returns the out-of-scope score the threshold applies to:
// intent.ScoreMaxProb (the top probability) or intent.ScoreOOSLogRatio
// (ln p(top in-scope intent) - ln p(oos)).
func (c *Classifier) Score() string { return c.score }

// Close releases the sessions. Calls in flight must have returned.
func (c *Classifier) Close() error { return c.pool.Close() }

// Classify classifies one text.
func (c *Classifier) Classify(ctx context.Context, text string) (tandem.NLU, error) {
	var out [1]tandem.NLU
	if err := c.classify(ctx, []string{text}, out[:]); err != nil {
		return tandem.NLU{}, err
	}
	return out[0], nil
}

// ClassifyBatch classifies texts, MaxBatch texts per ONNX Runtime call.
// A batch larger than MaxBatch is cut into chunks of texts of similar
// length (less padding) that run concurrently on the session pool.
func (c *Classifier) ClassifyBatch(ctx context.Context, texts []string) ([]tandem.NLU, error) {
	out := make([]tandem.NLU, len(texts))
	if len(texts) <= c.maxBatch {
		if err := c.classify(ctx, texts, out); err != nil {
			return nil, err
		}
		return out, nil
	}
	order := make([]int, len(texts))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return len(texts[order[a]]) < len(texts[order[b]]) })
	err := models.RunChunks(ctx, len(order), c.maxBatch, c.pool.Size(), func(lo, hi int) error {
		idx := order[lo:hi]
		chunk := make([]string, len(idx))
		for k, i := range idx {
			chunk[k] = texts[i]
		}
		return c.run(ctx, chunk, func(k int, p []float32) { out[idx[k]] = c.decide(p) })
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Probs returns the calibrated probabilities of each text (rows in the order
// of Labels), for evaluation tools.
func (c *Classifier) Probs(ctx context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, 0, len(texts))
	for i := 0; i < len(texts); i += c.maxBatch {
		j := min(i+c.maxBatch, len(texts))
		err := c.run(ctx, texts[i:j], func(k int, p []float32) {
			out = append(out, append([]float32(nil), p...))
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (c *Classifier) classify(ctx context.Context, texts []string, out []tandem.NLU) error {
	return c.run(ctx, texts, func(k int, p []float32) { out[k] = c.decide(p) })
}

// run featurises texts, runs one batch and calls each with every text's
// probabilities (valid only during the call).
func (c *Classifier) run(ctx context.Context, texts []string, each func(int, []float32)) error {
	if len(texts) == 0 {
		return nil
	}
	b := c.bufs.Get().(*batchBuf)
	defer c.bufs.Put(b)
	for len(b.rows) < len(texts) {
		b.rows = append(b.rows, nil)
		b.w = append(b.w, nil)
	}
	L := 1
	for i, t := range texts {
		b.rows[i], b.w[i] = c.fz.Vector(t, b.rows[i][:0], b.w[i][:0])
		L = max(L, len(b.rows[i]))
	}
	B := len(texts)
	if cap(b.ids) < B*L {
		b.ids = make([]int64, B*L)
		b.wts = make([]float32, B*L)
	}
	ids, wts := b.ids[:B*L], b.wts[:B*L]
	clear(ids)
	clear(wts)
	for i := 0; i < B; i++ {
		for j, r := range b.rows[i] {
			ids[i*L+j] = int64(r)
			wts[i*L+j] = b.w[i][j]
		}
	}
	idT, err := ort.NewTensor(ort.NewShape(int64(B), int64(L)), ids)
	if err != nil {
		return fmt.Errorf("nlp: ids tensor: %w", err)
	}
	defer idT.Destroy()
	wT, err := ort.NewTensor(ort.NewShape(int64(B), int64(L)), wts)
	if err != nil {
		return fmt.Errorf("nlp: weights tensor: %w", err)
	}
	defer wT.Destroy()
	C := len(c.labels)
	probs := make([]float32, B*C)
	pT, err := ort.NewTensor(ort.NewShape(int64(B), int64(C)), probs)
	if err != nil {
		return fmt.Errorf("nlp: probs tensor: %w", err)
	}
	defer pT.Destroy()
	if err := c.pool.Run(ctx, []ort.Value{idT, wT}, []ort.Value{pT}); err != nil {
		if err == ctx.Err() { // gave up waiting for a session
			return err
		}
		return fmt.Errorf("nlp: intent model: %w", err)
	}
	for i := 0; i < B; i++ {
		each(i, probs[i*C:i*C+C])
	}
	return nil
}

// decide turns one text's probabilities into an NLU result.
func (c *Classifier) decide(p []float32) tandem.NLU {
	best := 0
	for i, v := range p {
		if v > p[best] {
			best = i
		}
	}
	var n tandem.NLU
	n.Intent = tandem.IntentScore{Name: c.labels[best], Confidence: float64(p[best])}
	n.OutOfScope = best == c.oos || intent.OOSScore(c.score, p, best, c.oos) < c.threshold
	// Top-k by insertion (k is small): descending probability, ties in
	// label order.
	idx := make([]int, 0, c.topK+1)
	for i, v := range p {
		if len(idx) < c.topK || v > p[idx[len(idx)-1]] {
			pos := len(idx)
			for pos > 0 && p[idx[pos-1]] < v {
				pos--
			}
			idx = slices.Insert(idx, pos, i)
			if len(idx) > c.topK {
				idx = idx[:c.topK]
			}
		}
	}
	n.Ranking = make([]tandem.IntentScore, len(idx))
	for k, i := range idx {
		n.Ranking[k] = tandem.IntentScore{Name: c.labels[i], Confidence: float64(p[i])}
	}
	return n
}
