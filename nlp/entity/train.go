package entity

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tandem-chat/tandem/nlp/data"
	"github.com/tandem-chat/tandem/nlp/text"
)

// Config configures training. The zero value means the defaults documented
// on each field.
type Config struct {
	Features FeatureConfig // zero: DefaultFeatureConfig()
	// Epochs over the training data (default 5).
	Epochs int
	// LearningRate of AdaGrad (default 0.15).
	LearningRate float64
	// L2 regularisation strength per example (default 1e-5; negative
	// disables it).
	L2 float64
	// BatchSize is the number of examples per update (default 16).
	BatchSize int
	// MinCount drops features seen on fewer training tokens (default 1).
	MinCount int
	// GazetteerFolds: the gazetteer features of a training example come
	// from the entity values of the other folds (and the lookup tables),
	// so the model learns how far to trust a gazetteer match on values it
	// has not memorised (default 5; 1 uses the full gazetteer, which
	// overfits).
	GazetteerFolds int
	// Workers is the number of goroutines (default GOMAXPROCS). The result
	// does not depend on it.
	Workers int
	// Seed makes training deterministic: the same data, config and seed
	// give the same model bit for bit.
	Seed int64
	// NoAverage disables parameter averaging (the final model is then the
	// last iterate instead of the average over all updates, which is
	// usually less accurate).
	NoAverage bool
	// Valid, when set, is tagged after every epoch and its F1 reported on
	// the progress writer (it does not influence training).
	Valid []data.Example
	// ExportFP32 makes Save also write entity.fp32.onnx (float weights).
	ExportFP32 bool
}

func (c Config) withDefaults() Config {
	if c.Features == (FeatureConfig{}) {
		c.Features = DefaultFeatureConfig()
	}
	if c.Epochs == 0 {
		c.Epochs = 5
	}
	if c.LearningRate == 0 {
		c.LearningRate = 0.15
	}
	if c.L2 == 0 {
		c.L2 = 1e-5
	} else if c.L2 < 0 {
		c.L2 = 0
	}
	if c.BatchSize == 0 {
		c.BatchSize = 16
	}
	if c.MinCount == 0 {
		c.MinCount = 1
	}
	if c.GazetteerFolds == 0 {
		c.GazetteerFolds = 5
	}
	if c.Workers <= 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	return c
}

// Validate checks the configuration (after defaults).
func (c Config) Validate() error {
	c = c.withDefaults()
	f := c.Features
	switch {
	case f.Version != FeatureVersion:
		return fmt.Errorf("entity: feature version %d, this build supports %d", f.Version, FeatureVersion)
	case f.Window < 0 || f.Window > 4:
		return fmt.Errorf("entity: window %d out of range [0, 4]", f.Window)
	case f.AffixMax < 0 || f.AffixMax > 6:
		return fmt.Errorf("entity: affix_max %d out of range [0, 6]", f.AffixMax)
	case f.CharN < 0 || f.CharN > 6:
		return fmt.Errorf("entity: char_n %d out of range [0, 6]", f.CharN)
	case f.MaxTokens < 1 || f.MaxTokens > 4096:
		return fmt.Errorf("entity: max_tokens %d out of range [1, 4096]", f.MaxTokens)
	case f.MaxSentence < 0:
		return errors.New("entity: max_sentence must not be negative")
	case c.Epochs < 1 || c.Epochs > 1000:
		return fmt.Errorf("entity: epochs %d out of range [1, 1000]", c.Epochs)
	case c.LearningRate <= 0 || c.LearningRate > 10:
		return fmt.Errorf("entity: learning rate %g out of range (0, 10]", c.LearningRate)
	case c.BatchSize < 1 || c.BatchSize > 4096:
		return fmt.Errorf("entity: batch size %d out of range [1, 4096]", c.BatchSize)
	case c.MinCount < 1:
		return errors.New("entity: min_count must be at least 1")
	case c.GazetteerFolds < 1 || c.GazetteerFolds > 100:
		return fmt.Errorf("entity: gazetteer folds %d out of range [1, 100]", c.GazetteerFolds)
	}
	return nil
}

// example is a training example in token form.
type example struct {
	toks   []Token
	labels []int
	rows   [][]int32
}

// labelTokens turns spans into BIO tag indexes over toks. Overlapping
// spans are resolved longest first, then earliest; a token belongs to a
// span when they overlap (spans are widened to token boundaries).
func labelTokens(toks []Token, spans []data.Span, typeIdx map[string]int) []int {
	labels := make([]int, len(toks))
	sp := append([]data.Span(nil), spans...)
	sort.SliceStable(sp, func(i, j int) bool {
		if li, lj := sp[i].End-sp[i].Start, sp[j].End-sp[j].Start; li != lj {
			return li > lj
		}
		return sp[i].Start < sp[j].Start
	})
	for _, s := range sp {
		ti, ok := typeIdx[s.Type]
		if !ok {
			continue
		}
		first, last := -1, -1
		for i, t := range toks {
			if t.End > s.Start && t.Start < s.End {
				if first < 0 {
					first = i
				}
				last = i
			}
		}
		if first < 0 {
			continue
		}
		free := true
		for i := first; i <= last; i++ {
			free = free && labels[i] == 0
		}
		if !free {
			continue
		}
		labels[first] = 1 + 2*ti
		for i := first + 1; i <= last; i++ {
			labels[i] = 2 + 2*ti
		}
	}
	return labels
}

// spanNorms returns the normalised tokens of the span [st, en) of toks.
func spanNorms(toks []Token, st, en int) []string {
	var out []string
	for _, t := range toks {
		if t.End > st && t.Start < en {
			out = append(out, t.Norm)
		}
	}
	return out
}

// Train trains a tagger on the entity spans of ds. Progress (one line per
// epoch) goes to progress when it is not nil. It honours ctx between
// batches.
func Train(ctx context.Context, ds *data.Dataset, cfg Config, progress io.Writer) (*Model, error) {
	began := time.Now()
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if ds == nil || !ds.HasEntities() {
		return nil, errors.New("entity: train: the data has no entity spans")
	}
	logf := func(format string, args ...any) {
		if progress != nil {
			fmt.Fprintf(progress, format+"\n", args...)
		}
	}
	types := ds.SpanTypes()
	typeIdx := map[string]int{}
	for i, t := range types {
		typeIdx[t] = i
	}
	m := &Model{Types: types, Tags: tagSet(types), Features: cfg.Features}
	K := m.K()

	// Token form, labels and folds.
	exs := make([]example, 0, len(ds.Examples))
	var src []data.Example
	for _, e := range ds.Examples {
		toks := Tokens(e.Text)
		if len(toks) == 0 {
			continue
		}
		if len(toks) > cfg.Features.MaxTokens {
			toks = toks[:cfg.Features.MaxTokens]
		}
		exs = append(exs, example{toks: toks, labels: labelTokens(toks, e.Entities, typeIdx)})
		src = append(src, e)
	}
	if len(exs) == 0 {
		return nil, errors.New("entity: train: no example has tokens")
	}
	folds := cfg.GazetteerFolds
	fold := make([]int, len(exs))
	perm := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x67617a)).Perm(len(exs))
	for i, p := range perm {
		fold[p] = i % folds
	}
	full := newGazetteer()
	foldGaz := make([]*gazetteer, folds)
	for f := range foldGaz {
		foldGaz[f] = newGazetteer()
	}
	addLookups := func(g *gazetteer) {
		for _, typ := range sortedKeys(ds.Lookups) {
			if _, ok := typeIdx[typ]; !ok {
				continue
			}
			for _, v := range ds.Lookups[typ] {
				g.add(normsOf(Tokens(v)), typ)
			}
		}
	}
	addLookups(full)
	for f := range foldGaz {
		addLookups(foldGaz[f])
	}
	for i, e := range src {
		for _, sp := range e.Entities {
			if _, ok := typeIdx[sp.Type]; !ok {
				continue
			}
			norms := spanNorms(exs[i].toks, sp.Start, sp.End)
			full.add(norms, sp.Type)
			if folds > 1 {
				for f := range foldGaz {
					if f != fold[i] {
						foldGaz[f].add(norms, sp.Type)
					}
				}
			}
		}
	}
	if folds == 1 {
		foldGaz[0] = full
	}
	m.gaz = full
	m.values = learnValues(ds, src)

	// Featurise (in parallel; each example independently) and build the
	// vocabulary.
	hashes := make([][][]uint64, len(exs))
	parallel(cfg.Workers, len(exs), func(i int) {
		g := (*gazetteer)(nil)
		if cfg.Features.Gazetteer {
			g = foldGaz[fold[i]]
		}
		hashes[i] = cfg.Features.featurize(src[i].Text, exs[i].toks, g)
	})
	counts := map[uint64]int32{}
	for _, ex := range hashes {
		for _, tok := range ex {
			for _, h := range tok {
				counts[h]++
			}
		}
	}
	for h, n := range counts {
		if int(n) >= cfg.MinCount {
			m.hashes = append(m.hashes, h)
		}
	}
	counts = nil
	sort.Slice(m.hashes, func(i, j int) bool { return m.hashes[i] < m.hashes[j] })
	m.vocab = newHashIndex(m.hashes)
	for i := range exs {
		exs[i].rows = make([][]int32, len(hashes[i]))
		for t, f := range hashes[i] {
			exs[i].rows[t] = m.rowsOf(f, nil)
		}
		hashes[i] = nil
	}
	V := len(m.hashes) + 1
	logf("entity: %d examples, %d types, %d tags, %d features (%.1fs)", len(exs), len(types), K, V-1, time.Since(began).Seconds())

	m.w = make([]float32, V*K)
	m.start = make([]float32, K)
	m.end = make([]float32, K)
	m.trans = make([]float32, K*K)
	allowed, startOK := allowedMatrix(K)
	tr := &trainer{
		cfg: cfg, m: m, exs: exs, K: K, allowed: allowed, startOK: startOK,
		g2w:    make([]float32, V*K),
		gradW:  make([]float32, V*K),
		touch:  make([]bool, V),
		g2t:    make([]float64, K*K+2*K),
		slots:  make([]slot, cfg.BatchSize),
		l2Step: cfg.L2,
	}
	if !cfg.NoAverage {
		tr.uw = make([]float32, V*K)
		tr.ut = make([]float64, K*K+2*K)
	}
	order := make([]int, len(exs))
	for i := range order {
		order[i] = i
	}
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x656e74))
	var loss float64
	for ep := 1; ep <= cfg.Epochs; ep++ {
		t0 := time.Now()
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		loss = 0
		for b := 0; b < len(order); b += cfg.BatchSize {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("entity: train: %w", err)
			}
			loss += tr.step(order[b:min(b+cfg.BatchSize, len(order))])
		}
		line := fmt.Sprintf("entity: epoch %d/%d loss %.4f", ep, cfg.Epochs, loss/float64(len(exs)))
		if len(cfg.Valid) > 0 {
			eval := m.clone() // the parameters change after this evaluation
			if !cfg.NoAverage {
				eval = tr.averaged()
			}
			met, err := Evaluate(ctx, eval, cfg.Valid)
			if err != nil {
				return nil, err
			}
			line += fmt.Sprintf(" valid micro F1 %.4f", met.MicroF1)
		}
		logf("%s (%.1fs)", line, time.Since(t0).Seconds())
	}
	if !cfg.NoAverage {
		avg := tr.averaged()
		m.w, m.start, m.end, m.trans = avg.w, avg.start, avg.end, avg.trans
		tr.uw, tr.g2w, tr.gradW = nil, nil, nil
	}
	m.info = TrainInfo{Examples: len(exs), Epochs: cfg.Epochs, Seed: cfg.Seed, DataDigest: ds.Digest(),
		Seconds: math.Round(time.Since(began).Seconds()*10) / 10, Loss: loss / float64(len(exs)), Features: V - 1}
	m.exportFP32 = cfg.ExportFP32
	return m, nil
}

// learnValues builds the normalisation table: the dataset's synonyms, then
// for every surface text annotated with a value different from itself the
// most frequent such value.
func learnValues(ds *data.Dataset, src []data.Example) map[string]string {
	out := map[string]string{}
	votes := map[string]map[string]int{}
	for _, e := range src {
		rs := []rune(e.Text)
		for _, sp := range e.Entities {
			if sp.Start < 0 || sp.End > len(rs) || sp.Start >= sp.End {
				continue
			}
			surf := strings.TrimSpace(string(rs[sp.Start:sp.End]))
			if sp.Value == "" || sp.Value == surf {
				continue
			}
			k := text.Normalize(surf)
			if votes[k] == nil {
				votes[k] = map[string]int{}
			}
			votes[k][sp.Value]++
		}
	}
	for k, vs := range votes {
		best, bn := "", 0
		for v, n := range vs {
			if n > bn || n == bn && v < best {
				best, bn = v, n
			}
		}
		out[k] = best
	}
	for k, v := range ds.Synonyms {
		out[text.Normalize(k)] = v
	}
	return out
}

// parallel runs f(0..n-1) on w goroutines.
func parallel(w, n int, f func(i int)) {
	if w <= 1 || n < 2 {
		for i := 0; i < n; i++ {
			f(i)
		}
		return
	}
	var wg sync.WaitGroup
	next := make(chan int, 64)
	for g := 0; g < w; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				f(i)
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
}

// slot holds one example's gradient within a batch.
type slot struct {
	ex   int
	dE   []float32 // T x K: marginal - gold
	dT   []float64 // K x K transitions, then K start, then K end
	loss float64
	emis []float32
	fb   fbScratch
}

type trainer struct {
	cfg              Config
	m                *Model
	exs              []example
	K                int
	allowed, startOK []bool
	g2w              []float32 // AdaGrad accumulators of m.w
	gradW            []float32 // batch gradient of m.w (touched rows only are non-zero)
	touch            []bool
	touched          []int32
	g2t              []float64 // AdaGrad accumulators of trans, start, end
	slots            []slot
	l2Step           float64
	// Averaging: after n updates the average of the iterates is
	// w - u/n, where every update delta at step c adds c*delta to u.
	uw    []float32
	ut    []float64
	steps int
}

// averaged returns a copy of the model with the averaged parameters.
func (tr *trainer) averaged() *Model {
	m := tr.m.clone()
	n := float64(tr.steps)
	if n == 0 {
		return m
	}
	inv := float32(1 / n)
	m.w = make([]float32, len(tr.m.w))
	for i, v := range tr.m.w {
		m.w[i] = v - tr.uw[i]*inv
	}
	K := tr.K
	m.trans = make([]float32, K*K)
	m.start = make([]float32, K)
	m.end = make([]float32, K)
	for i := range tr.ut {
		var v float32
		switch {
		case i < K*K:
			v = tr.m.trans[i]
		case i < K*K+K:
			v = tr.m.start[i-K*K]
		default:
			v = tr.m.end[i-K*K-K]
		}
		v -= float32(tr.ut[i] / n)
		switch {
		case i < K*K:
			m.trans[i] = v
		case i < K*K+K:
			m.start[i-K*K] = v
		default:
			m.end[i-K*K-K] = v
		}
	}
	return m
}

// step computes the CRF gradient of a batch (examples in parallel) and
// applies one AdaGrad update (columns in parallel). The arithmetic order is
// fixed, so the result does not depend on scheduling.
func (tr *trainer) step(batch []int) float64 {
	tr.steps++
	cStep := float32(tr.steps)
	K := tr.K
	m := tr.m
	c := newCRF(K, m.start, m.end, m.trans, tr.allowed, tr.startOK)
	slots := tr.slots[:len(batch)]
	parallel(tr.cfg.Workers, len(batch), func(b int) {
		s := &slots[b]
		ex := &tr.exs[batch[b]]
		T := len(ex.toks)
		s.ex = batch[b]
		s.emis = m.emissions(ex.rows, s.emis)
		logZ := c.forwardBackward(s.emis, T, &s.fb)
		gold := 0.0
		for t, y := range ex.labels {
			gold += float64(s.emis[t*K+y])
			if t == 0 {
				gold += float64(m.start[y])
			} else {
				gold += float64(m.trans[ex.labels[t-1]*K+y])
			}
		}
		gold += float64(m.end[ex.labels[T-1]])
		s.loss = logZ - gold
		s.dE = resize(s.dE, T*K)
		for i := 0; i < T*K; i++ {
			s.dE[i] = float32(s.fb.marg[i])
		}
		for t, y := range ex.labels {
			s.dE[t*K+y]--
		}
		if cap(s.dT) < K*K+2*K {
			s.dT = make([]float64, K*K+2*K)
		}
		s.dT = s.dT[:K*K+2*K]
		for i := range s.dT {
			s.dT[i] = 0
		}
		// Expected transition counts.
		a, bt, pe := s.fb.alpha, s.fb.beta, s.fb.pe
		for t := 1; t < T; t++ {
			inv := 1 / s.fb.scale[t]
			for j := 0; j < K; j++ {
				f := pe[t*K+j] * bt[t*K+j] * inv
				if f == 0 {
					continue
				}
				if j > 0 && j%2 == 0 { // I-x: only from B-x and I-x
					for _, i := range [2]int{j - 1, j} {
						s.dT[i*K+j] += a[(t-1)*K+i] * c.expT[i*K+j] * f
					}
					continue
				}
				for i := 0; i < K; i++ {
					s.dT[i*K+j] += a[(t-1)*K+i] * c.expT[i*K+j] * f
				}
			}
			s.dT[ex.labels[t-1]*K+ex.labels[t]]--
		}
		for j := 0; j < K; j++ {
			s.dT[K*K+j] += s.fb.marg[j]
			s.dT[K*K+K+j] += s.fb.marg[(T-1)*K+j]
		}
		s.dT[K*K+ex.labels[0]]--
		s.dT[K*K+K+ex.labels[T-1]]--
	})
	// Touched rows, in batch order.
	tr.touched = tr.touched[:0]
	for b := range slots {
		for _, rs := range tr.exs[slots[b].ex].rows {
			for _, r := range rs {
				if !tr.touch[r] {
					tr.touch[r] = true
					tr.touched = append(tr.touched, r)
				}
			}
		}
	}
	lr := float32(tr.cfg.LearningRate)
	l2 := float32(tr.l2Step * float64(len(batch)))
	const eps = 1e-6
	// Emission update, parallel over column ranges.
	w := tr.cfg.Workers
	if w > K {
		w = K
	}
	parallel(w, w, func(part int) {
		k0, k1 := part*K/w, (part+1)*K/w
		for b := range slots {
			s := &slots[b]
			for t, rs := range tr.exs[s.ex].rows {
				d := s.dE[t*K : (t+1)*K]
				for _, r := range rs {
					g := tr.gradW[int(r)*K : int(r+1)*K]
					for k := k0; k < k1; k++ {
						g[k] += d[k]
					}
				}
			}
		}
		for _, r := range tr.touched {
			base := int(r) * K
			for k := k0; k < k1; k++ {
				i := base + k
				g := tr.gradW[i] + l2*m.w[i]
				tr.gradW[i] = 0
				tr.g2w[i] += g * g
				delta := -lr * g / (float32(math.Sqrt(float64(tr.g2w[i]))) + eps)
				m.w[i] += delta
				if tr.uw != nil {
					tr.uw[i] += cStep * delta
				}
			}
		}
	})
	for _, r := range tr.touched {
		tr.touch[r] = false
	}
	// Transitions, start and end: sum in batch order.
	grad := make([]float64, K*K+2*K)
	loss := 0.0
	for b := range slots {
		for i, v := range slots[b].dT {
			grad[i] += v
		}
		loss += slots[b].loss
	}
	for i, g := range grad {
		var p *float32
		switch {
		case i < K*K:
			if !tr.allowed[i] {
				continue
			}
			p = &m.trans[i]
		case i < K*K+K:
			if !tr.startOK[i-K*K] {
				continue
			}
			p = &m.start[i-K*K]
		default:
			p = &m.end[i-K*K-K]
		}
		tr.g2t[i] += g * g
		delta := -tr.cfg.LearningRate * g / (math.Sqrt(tr.g2t[i]) + eps)
		*p += float32(delta)
		if tr.ut != nil {
			tr.ut[i] += float64(tr.steps) * delta
		}
	}
	return loss
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
