package intent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/nlp/data"
	"github.com/tandem-chat/tandem/nlp/features"
)

// Config is the training configuration (recorded in the model manifest).
type Config struct {
	Features         features.Config `json:"features"`
	Hidden           int             `json:"hidden"`             // hidden width per ensemble member
	Members          int             `json:"members"`            // ensemble size
	Epochs           int             `json:"epochs"`             //
	BatchSize        int             `json:"batch_size"`         //
	LR               float64         `json:"lr"`                 // Adam step for dense layers
	EmbedLR          float64         `json:"embed_lr"`           // row-wise AdaGrad step for the embedding table
	Dropout          float64         `json:"dropout"`            // on the hidden layer
	FeatureDropout   float64         `json:"feature_dropout"`    // on input features
	WeightDecay      float64         `json:"weight_decay"`       // decoupled, on the output layer
	LabelSmoothing   float64         `json:"label_smoothing"`    //
	ValidFraction    float64         `json:"valid_fraction"`     // held-out share of each label when no validation set is given
	OOSValidFraction float64         `json:"oos_valid_fraction"` // held-out share of the out-of-scope label (more, so the threshold sees enough of them; the refit trains on all)
	OOSPrior         float64         `json:"oos_prior"`          // assumed out-of-scope share of traffic for the threshold rule of the max_prob score
	OOSScore         string          `json:"oos_score"`          // out-of-scope score when the data has an oos label: ScoreOOSLogRatio or ScoreMaxProb ("" = max_prob, as in configurations saved before it existed)
	OOSReject        float64         `json:"oos_reject"`         // threshold rule of the oos_log_ratio score: share of the correct validation answers rejected
	MaxReject        float64         `json:"max_reject"`         // threshold rule without oos validation data: share of the correct validation answers rejected (0 = threshold at the least confident one)
	Refit            bool            `json:"refit"`              // after calibration, retrain on training + validation data
	PseudoOOS        float64         `json:"pseudo_oos"`         // synthetic out-of-scope texts per real one (mixtures of in-scope words); 0 = none (the default: they cost in-scope accuracy on CLINC150)
	InitScale        float64         `json:"init_scale"`         // std of the initial embedding rows
	LinearEpochs     int             `json:"linear_epochs"`      // epochs of the linear (wide) branch; 0 = no linear branch
	LinearLR         float64         `json:"linear_lr"`          // AdaGrad step of the linear branch
	LinearL2         float64         `json:"linear_l2"`          // decay per update of touched linear rows
	LinearSGD        bool            `json:"linear_sgd"`         // plain SGD instead of AdaGrad for the linear branch
	SVMEpochs        int             `json:"svm_epochs"`         // epochs of the linear SVM branch (one-vs-rest squared hinge, plain SGD); 0 = none
	SVMLR            float64         `json:"svm_lr"`             // SGD step of the SVM branch
	LinearAverage    float64         `json:"linear_average"`     // share of the last updates of the linear branch whose iterates are averaged (averaged SGD); 0 = the last iterate
	SVMAverage       float64         `json:"svm_average"`        // the same for the SVM branch
	LinearLRDecay    float64         `json:"linear_lr_decay"`    // the linear branch's step falls linearly over training to (1 - this) times its start; 0 = constant
	SVMLRDecay       float64         `json:"svm_lr_decay"`       // the same for the SVM branch
	DeepAverage      float64         `json:"deep_average"`       // share of the last updates of each MLP member whose parameters are averaged; 0 = the last ones
	DeepLRDecay      float64         `json:"deep_lr_decay"`      // the members' steps (Adam and AdaGrad) fall linearly to (1 - this) times their start; 0 = constant
	BranchWeights    [3]float64      `json:"branch_weights"`     // weights of the deep, linear and SVM branches' temperature-scaled logits (a product of experts)
	Seed             uint64          `json:"seed"`               //
	Threads          int             `json:"-"`                  // goroutines (0 = GOMAXPROCS); results do not depend on it
}

// DefaultConfig returns the configuration `tandem train` uses.
func DefaultConfig() Config {
	return Config{
		Features: features.DefaultConfig(), Hidden: 256, Members: 2, Epochs: 5, BatchSize: 32,
		LR: 2e-3, EmbedLR: 0.05, Dropout: 0.3, FeatureDropout: 0.1, WeightDecay: 1e-4,
		LabelSmoothing: 0.05, InitScale: 0.01, ValidFraction: 0.1, OOSValidFraction: 0.25, OOSPrior: 0.05, OOSScore: ScoreOOSLogRatio, OOSReject: 0.005, MaxReject: 0, Refit: true, PseudoOOS: 0, Seed: 1,
		LinearEpochs: 20, LinearLR: 20, LinearSGD: true, SVMEpochs: 20, SVMLR: 1, BranchWeights: [3]float64{1, 1, 2},
		// The members' steps fall linearly to 0 over training: +0.20 to
		// +0.27 point of in-scope accuracy at the chosen threshold on the
		// CLINC150 development split (seeds 1-3), oos recall within
		// -0.03..+0.01 (0 = constant steps, as before).
		DeepLRDecay: 1,
	}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if err := c.Features.Validate(); err != nil {
		return err
	}
	if name := nonFinite(reflect.ValueOf(c)); name != "" {
		// NaN passes every range check below (each comparison is false).
		return fmt.Errorf("intent: %s must be a finite number", name)
	}
	switch {
	case c.Hidden < 1 || c.Hidden > 4096:
		return fmt.Errorf("intent: hidden %d out of range [1, 4096]", c.Hidden)
	case c.Members < 1 || c.Members > 16:
		return fmt.Errorf("intent: members %d out of range [1, 16]", c.Members)
	case c.Epochs < 1 || c.BatchSize < 1:
		return errors.New("intent: epochs and batch size must be positive")
	case c.LR <= 0 || c.EmbedLR <= 0:
		return errors.New("intent: learning rates must be positive")
	case c.Dropout < 0 || c.Dropout >= 1 || c.FeatureDropout < 0 || c.FeatureDropout >= 1:
		return errors.New("intent: dropout must be in [0, 1)")
	case c.ValidFraction < 0 || c.ValidFraction >= 0.5 || c.OOSValidFraction < 0 || c.OOSValidFraction >= 0.5:
		return errors.New("intent: valid_fraction and oos_valid_fraction must be in [0, 0.5)")
	case c.OOSPrior < 0 || c.OOSPrior >= 1 || c.MaxReject < 0 || c.MaxReject >= 1 || c.OOSReject < 0 || c.OOSReject >= 1:
		return errors.New("intent: oos_prior, oos_reject and max_reject must be in [0, 1)")
	case c.OOSScore != "" && c.OOSScore != ScoreMaxProb && c.OOSScore != ScoreOOSLogRatio:
		return fmt.Errorf("intent: oos_score %q: want %q or %q", c.OOSScore, ScoreOOSLogRatio, ScoreMaxProb)
	case c.LinearEpochs < 0 || c.LinearEpochs > 0 && c.LinearLR <= 0 || c.SVMEpochs < 0 || c.SVMEpochs > 0 && c.SVMLR <= 0:
		return errors.New("intent: the linear and SVM branches need epochs >= 0 and a positive step")
	case c.BranchWeights[0] <= 0 || c.BranchWeights[1] < 0 || c.BranchWeights[2] < 0:
		return errors.New("intent: branch weights must be positive (deep) and non-negative (linear, SVM)")
	case c.LinearL2 < 0 || c.LinearL2 >= 1:
		return errors.New("intent: linear_l2 must be in [0, 1)")
	case c.LinearAverage < 0 || c.LinearAverage > 1 || c.SVMAverage < 0 || c.SVMAverage > 1 || c.DeepAverage < 0 || c.DeepAverage > 1:
		return errors.New("intent: linear_average, svm_average and deep_average must be in [0, 1]")
	case c.LinearLRDecay < 0 || c.LinearLRDecay > 1 || c.SVMLRDecay < 0 || c.SVMLRDecay > 1 || c.DeepLRDecay < 0 || c.DeepLRDecay > 1:
		return errors.New("intent: linear_lr_decay, svm_lr_decay and deep_lr_decay must be in [0, 1]")
	}
	return nil
}

// Progress receives training progress; nil is allowed.
type Progress func(format string, args ...any)

// WriterProgress returns a Progress printing lines to w.
func WriterProgress(w io.Writer) Progress {
	var mu sync.Mutex
	return func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(w, format+"\n", args...)
	}
}

// set is a featurised example set.
type set struct {
	off    []int // example i has features off[i]:off[i+1]
	rows   []int32
	w      []float32
	labels []int32
	texts  []string
}

func (s *set) n() int { return len(s.labels) }

func (s *set) example(i int) ([]int32, []float32) {
	return s.rows[s.off[i]:s.off[i+1]], s.w[s.off[i]:s.off[i+1]]
}

// Split divides examples (with non-empty intents) into a fit part and a
// stratified held-out validation part (frac of each label, oosFrac of the
// out-of-scope label, at least one when the label has 4 or more examples),
// deterministically for seed.
func Split(exs []data.Example, frac, oosFrac float64, seed uint64) (fit, valid []data.Example) {
	byLabel := map[string][]int{}
	for i, ex := range exs {
		if ex.Intent != "" {
			byLabel[ex.Intent] = append(byLabel[ex.Intent], i)
		}
	}
	labels := make([]string, 0, len(byLabel))
	for l := range byLabel {
		labels = append(labels, l)
	}
	sort.Strings(labels)
	isValid := make([]bool, len(exs))
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	for _, l := range labels {
		idx := byLabel[l]
		f := frac
		if l == tandem.OutOfScope && frac > 0 {
			f = oosFrac
		}
		k := int(math.Round(f * float64(len(idx))))
		if k == 0 && frac > 0 && len(idx) >= 4 {
			k = 1
		}
		rng.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
		for _, i := range idx[:k] {
			isValid[i] = true
		}
	}
	for i, ex := range exs {
		if ex.Intent == "" {
			continue
		}
		if isValid[i] {
			valid = append(valid, ex)
		} else {
			fit = append(fit, ex)
		}
	}
	return fit, valid
}

// Train trains an intent model on ds. When valid is nil a validation slice
// is held out of ds (Config.ValidFraction); the validation data picks the
// temperature and the out-of-scope threshold and is never trained on.
// Examples without an intent are skipped.
func Train(ctx context.Context, ds, valid *data.Dataset, cfg Config, progress Progress) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if progress == nil {
		progress = func(string, ...any) {}
	}
	threads := cfg.Threads
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	var fitEx, validEx []data.Example
	if valid != nil {
		for _, ex := range ds.Examples {
			if ex.Intent != "" {
				fitEx = append(fitEx, ex)
			}
		}
		for _, ex := range valid.Examples {
			if ex.Intent != "" {
				validEx = append(validEx, ex)
			}
		}
	} else {
		fitEx, validEx = Split(ds.Examples, cfg.ValidFraction, max(cfg.ValidFraction, cfg.OOSValidFraction), cfg.Seed)
	}
	if len(fitEx) == 0 {
		return nil, errors.New("intent: no training examples with an intent")
	}
	labelSet := map[string]bool{}
	for _, ex := range fitEx {
		labelSet[ex.Intent] = true
	}
	if len(labelSet) < 2 {
		return nil, fmt.Errorf("intent: need at least 2 intents, got %d", len(labelSet))
	}
	labels := make([]string, 0, len(labelSet))
	for l := range labelSet {
		labels = append(labels, l)
	}
	sort.Strings(labels)
	index := labelIndex(labels)

	start := time.Now()
	temps := [3]float64{1, 1, 1}
	m, vs, err := fitModel(ctx, fitEx, validEx, labels, index, cfg, threads, "", &temps, progress)
	if err != nil {
		return nil, err
	}
	m.calibrate(vs, threads)
	progress("intent: calibrated in %s; validation accuracy %.4f, in-scope %.4f, oos recall %.3f at threshold %.2f (temperature %.3f)",
		time.Since(start).Round(time.Millisecond), m.Validation.Accuracy, m.Validation.InScopeAccuracy,
		m.Validation.OOSRecall, m.Threshold, m.Temperature)
	if cfg.Refit && len(validEx) > 0 && valid == nil {
		// Retrain on all the data with the same recipe; the temperature and
		// threshold fitted above carry over (the recipe, not the weights,
		// determines the confidence scale).
		all := append(append([]data.Example(nil), fitEx...), validEx...)
		full, _, err := fitModel(ctx, all, nil, labels, index, cfg, threads, "refit ", &temps, progress)
		if err != nil {
			return nil, err
		}
		full.Temperature, full.Threshold, full.Validation, full.Score = m.Temperature, m.Threshold, m.Validation, m.Score
		m = full
	}
	progress("intent: trained in %s", time.Since(start).Round(time.Millisecond))
	return m, nil
}

// fitModel featurises the examples, learns the vocabulary on fitEx, trains
// the branches and merges them. With validation examples it fits each
// branch's temperature into temps (the product of experts mixes
// temperature-scaled logits); without, it uses the temperatures in temps
// (a refit keeps those of the calibration fit).
func fitModel(ctx context.Context, fitEx, validEx []data.Example, labels []string, index map[string]int32, cfg Config, threads int, phase string, temps *[3]float64, progress Progress) (*Model, *set, error) {
	fitEx = append(fitEx, pseudoOOS(fitEx, cfg.PseudoOOS, cfg.Seed)...)
	fitTerms := termsParallel(&cfg.Features, fitEx, threads)
	vocab := features.BuildVocab(fitTerms, cfg.Features.MinDF)
	fz, err := features.New(cfg.Features, vocab)
	if err != nil {
		return nil, nil, err
	}
	fit := vectorise(fz, fitEx, fitTerms, index)
	vs := vectorise(fz, validEx, termsParallel(&cfg.Features, validEx, threads), index)
	progress("intent: %s%d training and %d validation examples, %d intents, %d features",
		phase, fit.n(), vs.n(), len(labels), vocab.Len())

	// Train the members (and the linear branch) concurrently; each is
	// deterministic on its own. The linear branch starts first: it is the
	// longest job.
	members := make([]*member, cfg.Members)
	errs := make([]error, cfg.Members+2)
	sem := make(chan struct{}, threads)
	var wg sync.WaitGroup
	var lin, svm *linear
	if cfg.LinearEpochs > 0 {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			lin, errs[cfg.Members] = trainLinear(ctx, fit, vs, vocab.Len()+1, len(labels), cfg.linearParams(), false, cfg, phase+"linear ", progress)
		}()
	}
	if cfg.SVMEpochs > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			svm, errs[cfg.Members+1] = trainLinear(ctx, fit, vs, vocab.Len()+1, len(labels), cfg.svmParams(), true, cfg, phase+"svm ", progress)
		}()
	}
	for k := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			members[k], errs[k] = trainMember(ctx, fit, vs, vocab.Len()+1, len(labels), cfg, k, phase, progress)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	if vs.n() > 0 {
		*temps = branchTemperatures(members, lin, svm, vs, len(labels), cfg.Hidden)
		progress("intent: %sbranch temperatures deep %.3f, linear %.3f, svm %.3f", phase, temps[0], temps[1], temps[2])
	}
	m := combine(members, lin, svm, labels, fz, cfg, *temps)
	m.Examples = fit.n()
	return m, vs, nil
}

// branchTemperatures fits the temperature of each branch's logits on the
// validation set (1 for an absent branch).
func branchTemperatures(ms []*member, lin, svm *linear, vs *set, C, H int) [3]float64 {
	out := [3]float64{1, 1, 1}
	deep := make([]float32, vs.n()*C)
	h := make([]float32, H)
	lg := make([]float32, C)
	inv := 1 / float32(len(ms))
	for i := 0; i < vs.n(); i++ {
		rs, ws := vs.example(i)
		for _, mb := range ms {
			logits(mb.E, mb.B0, mb.Wo, mb.Bo, H, C, rs, ws, h, lg)
			for c, v := range lg {
				deep[i*C+c] += v * inv
			}
		}
	}
	out[0] = fitTemperature(deep, vs, C)
	for k, l := range []*linear{lin, svm} {
		if l == nil {
			continue
		}
		all := make([]float32, vs.n()*C)
		for i := 0; i < vs.n(); i++ {
			rs, ws := vs.example(i)
			l.logits(C, rs, ws, all[i*C:i*C+C])
		}
		out[k+1] = fitTemperature(all, vs, C)
	}
	return out
}

// pseudoOOS synthesises out-of-scope examples when the data has real ones:
// each mixes the words of two training texts of different intents, so the
// model learns that evidence split between intents means "none of them".
// It returns rate times as many as there are real oos examples.
func pseudoOOS(exs []data.Example, rate float64, seed uint64) []data.Example {
	var nOOS int
	var in []int
	for i, ex := range exs {
		if ex.Intent == tandem.OutOfScope {
			nOOS++
		} else {
			in = append(in, i)
		}
	}
	n := int(rate * float64(nOOS))
	if n == 0 || len(in) < 2 {
		return nil
	}
	rng := rand.New(rand.NewPCG(seed, 0x00505))
	out := make([]data.Example, 0, n)
	for len(out) < n {
		a, b := exs[in[rng.IntN(len(in))]], exs[in[rng.IntN(len(in))]]
		if a.Intent == b.Intent {
			continue
		}
		wa, wb := strings.Fields(a.Text), strings.Fields(b.Text)
		var words []string
		for _, w := range [][]string{wa, wb} {
			if len(w) == 0 {
				continue
			}
			k := 1 + rng.IntN((len(w)+1)/2)
			s := rng.IntN(len(w) - k + 1)
			words = append(words, w[s:s+k]...)
		}
		rng.Shuffle(len(words), func(i, j int) { words[i], words[j] = words[j], words[i] })
		out = append(out, data.Example{Text: strings.Join(words, " "), Intent: tandem.OutOfScope})
	}
	return out
}

func termsParallel(cfg *features.Config, exs []data.Example, threads int) [][]features.Term {
	out := make([][]features.Term, len(exs))
	var wg sync.WaitGroup
	for t := 0; t < threads; t++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := t; i < len(exs); i += threads {
				out[i] = cfg.Terms(exs[i].Text)
			}
		}()
	}
	wg.Wait()
	return out
}

func vectorise(fz *features.Featurizer, exs []data.Example, terms [][]features.Term, index map[string]int32) *set {
	s := &set{off: []int{0}}
	for i, ex := range exs {
		s.rows, s.w = fz.FromTerms(terms[i], s.rows, s.w)
		s.off = append(s.off, len(s.rows))
		l, ok := index[ex.Intent]
		if !ok {
			l = -1 // a validation label never seen in training: always wrong
		}
		s.labels = append(s.labels, l)
		s.texts = append(s.texts, ex.Text)
	}
	return s
}

// member is one trained ensemble member.
type member struct {
	E, B0, Wo, Bo []float32
}

type adam struct {
	m, v []float32
	t    int
}

func (a *adam) step(p, g []float32, lr, decay float64) {
	if a.m == nil {
		a.m = make([]float32, len(p))
		a.v = make([]float32, len(p))
	}
	const b1, b2, eps = 0.9, 0.999, 1e-8
	a.t++
	c1 := 1 - math.Pow(b1, float64(a.t))
	c2 := 1 - math.Pow(b2, float64(a.t))
	step := float32(lr * math.Sqrt(c2) / c1)
	dec := float32(1 - lr*decay)
	for i, gi := range g {
		a.m[i] = b1*a.m[i] + (1-b1)*gi
		a.v[i] = b2*a.v[i] + (1-b2)*gi*gi
		p[i] = p[i]*dec - step*a.m[i]/(float32(math.Sqrt(float64(a.v[i])))+eps)
	}
}

func trainMember(ctx context.Context, fit, vs *set, rows, C int, cfg Config, k int, phase string, progress Progress) (*member, error) {
	H := cfg.Hidden
	rng := rand.New(rand.NewPCG(cfg.Seed, uint64(k)+1))
	m := &member{
		E:  make([]float32, rows*H),
		B0: make([]float32, H),
		Wo: make([]float32, H*C),
		Bo: make([]float32, C),
	}
	// Row 0 (padding) stays zero. Small initial rows keep features seen
	// rarely in training from adding noise at inference; the random output
	// layer breaks the symmetry between hidden units.
	for i := H; i < len(m.E); i++ {
		m.E[i] = float32(rng.NormFloat64() * cfg.InitScale)
	}
	lim := math.Sqrt(6 / float64(H+C))
	for i := range m.Wo {
		m.Wo[i] = float32((rng.Float64()*2 - 1) * lim)
	}
	for i := range m.B0 {
		m.B0[i] = 0.01
	}
	var (
		adamWo, adamBo, adamB0 adam
		gWo                    = make([]float32, H*C)
		gBo                    = make([]float32, C)
		gB0                    = make([]float32, H)
		acc                    = make([]float32, rows) // row-wise AdaGrad accumulators
		slot                   = make([]int32, rows)   // row -> slot in gE, or -1
		gE                     []float32
		touched                []int32
		h                      = make([]float32, H)
		a                      = make([]float32, H)
		mask                   = make([]float32, H)
		lg                     = make([]float32, C)
		p                      = make([]float64, C)
		g                      = make([]float32, C)
		da                     = make([]float32, H)
		dr                     []int32
		dw                     []float32
	)
	for i := range slot {
		slot[i] = -1
	}
	order := make([]int, fit.n())
	for i := range order {
		order[i] = i
	}
	keep := float32(1 - cfg.Dropout)
	fkeep := 1 - cfg.FeatureDropout
	smooth := cfg.LabelSmoothing
	total := cfg.Epochs * ((fit.n() + cfg.BatchSize - 1) / cfg.BatchSize)
	avgE := newAverager(rows, H, total, cfg.DeepAverage)
	avgWo := newAverager(1, H*C, total, cfg.DeepAverage)
	avgBo := newAverager(1, C, total, cfg.DeepAverage)
	avgB0 := newAverager(1, H, total, cfg.DeepAverage)
	var t int // updates done
	for epoch := 1; epoch <= cfg.Epochs; epoch++ {
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		var loss float64
		for b0 := 0; b0 < len(order); b0 += cfg.BatchSize {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			t++
			mult := decayed(cfg.DeepLRDecay, t, total)
			batch := order[b0:min(b0+cfg.BatchSize, len(order))]
			inv := float32(1) / float32(len(batch))
			clear(gWo)
			clear(gBo)
			clear(gB0)
			touched = touched[:0]
			gE = gE[:0]
			for _, ei := range batch {
				rs, ws := fit.example(ei)
				// Feature dropout: drop each feature with the given rate.
				dr, dw = dr[:0], dw[:0]
				for i, r := range rs {
					if cfg.FeatureDropout == 0 || rng.Float64() < fkeep {
						dr = append(dr, r)
						dw = append(dw, ws[i])
					}
				}
				if len(dr) == 0 && len(rs) > 0 {
					dr, dw = append(dr, rs...), append(dw, ws...)
				}
				copy(h, m.B0)
				for i, r := range dr {
					w := dw[i]
					e := m.E[int(r)*H : int(r)*H+H]
					for d := range h {
						h[d] += w * e[d]
					}
				}
				copy(lg, m.Bo)
				for d, v := range h {
					mask[d] = 0
					a[d] = 0
					if v <= 0 {
						continue
					}
					if cfg.Dropout > 0 && rng.Float32() >= keep {
						continue
					}
					mask[d] = 1 / keep
					a[d] = v / keep
					wo := m.Wo[d*C : d*C+C]
					for c := range lg {
						lg[c] += a[d] * wo[c]
					}
				}
				Softmax(lg, 1, p)
				y := int(fit.labels[ei])
				loss -= math.Log(math.Max(p[y], 1e-12))
				for c := range g {
					t := smooth / float64(C)
					if c == y {
						t += 1 - smooth
					}
					g[c] = float32(p[c]-t) * inv
					gBo[c] += g[c]
				}
				for d := range da {
					da[d] = 0
					if a[d] == 0 {
						continue
					}
					wo := m.Wo[d*C : d*C+C]
					gw := gWo[d*C : d*C+C]
					var s float32
					for c, gc := range g {
						gw[c] += a[d] * gc
						s += wo[c] * gc
					}
					da[d] = s * mask[d]
					gB0[d] += da[d]
				}
				for i, r := range dr {
					sl := slot[r]
					if sl < 0 {
						sl = int32(len(touched))
						slot[r] = sl
						touched = append(touched, r)
						gE = append(gE, make([]float32, H)...)
					}
					w := dw[i]
					ge := gE[int(sl)*H : int(sl)*H+H]
					for d, v := range da {
						ge[d] += w * v
					}
				}
			}
			avgWo.before(0, m.Wo, t)
			avgBo.before(0, m.Bo, t)
			avgB0.before(0, m.B0, t)
			adamWo.step(m.Wo, gWo, cfg.LR*mult, cfg.WeightDecay)
			adamBo.step(m.Bo, gBo, cfg.LR*mult, 0)
			adamB0.step(m.B0, gB0, cfg.LR*mult, 0)
			avgWo.after(0, m.Wo, t)
			avgBo.after(0, m.Bo, t)
			avgB0.after(0, m.B0, t)
			// Row-wise AdaGrad on the touched embedding rows, in first-touch order.
			for sl, r := range touched {
				ge := gE[sl*H : sl*H+H]
				var sq float32
				for _, v := range ge {
					sq += v * v
				}
				acc[r] += sq / float32(H)
				step := float32(cfg.EmbedLR * mult / math.Sqrt(float64(acc[r])+1e-10))
				e := m.E[int(r)*H : int(r)*H+H]
				avgE.before(int(r), e, t)
				for d, v := range ge {
					e[d] -= step * v
				}
				avgE.after(int(r), e, t)
				slot[r] = -1
			}
		}
		if epoch == cfg.Epochs {
			avgE.finish(m.E, t)
			avgWo.finish(m.Wo, t)
			avgBo.finish(m.Bo, t)
			avgB0.finish(m.B0, t)
		}
		if vs.n() > 0 {
			acc := accuracy(m, vs, H, C)
			progress("intent: %smember %d/%d epoch %d/%d loss %.4f validation accuracy %.4f", phase, k+1, cfg.Members, epoch, cfg.Epochs, loss/float64(len(order)), acc)
		} else {
			progress("intent: %smember %d/%d epoch %d/%d loss %.4f", phase, k+1, cfg.Members, epoch, cfg.Epochs, loss/float64(len(order)))
		}
	}
	return m, nil
}

func accuracy(m *member, vs *set, H, C int) float64 {
	h := make([]float32, H)
	return setAccuracy(vs, C, func(rs []int32, ws []float32, lg []float32) {
		logits(m.E, m.B0, m.Wo, m.Bo, H, C, rs, ws, h, lg)
	})
}

// setAccuracy is the share of vs whose arg-max logit (written by lgOf for
// an example's rows and weights) is the example's label.
func setAccuracy(vs *set, C int, lgOf func(rs []int32, ws []float32, lg []float32)) float64 {
	lg := make([]float32, C)
	ok := 0
	for i := 0; i < vs.n(); i++ {
		rs, ws := vs.example(i)
		lgOf(rs, ws, lg)
		best := 0
		for c := range lg {
			if lg[c] > lg[best] {
				best = c
			}
		}
		if int32(best) == vs.labels[i] {
			ok++
		}
	}
	return float64(ok) / float64(vs.n())
}

// labelIndex maps each label to its position.
func labelIndex(labels []string) map[string]int32 {
	index := make(map[string]int32, len(labels))
	for i, l := range labels {
		index[l] = int32(i)
	}
	return index
}

// combine merges ensemble members into one model whose logits are the mean
// of the members' logits.
func combine(ms []*member, lin, svm *linear, labels []string, fz *features.Featurizer, cfg Config, temps [3]float64) *Model {
	K, H, C := len(ms), cfg.Hidden, len(labels)
	HT := K * H
	rows := len(ms[0].E) / H
	m := &Model{
		Labels: labels, Featurizer: fz, Hidden: HT, Config: cfg,
		E: make([]float32, rows*HT), B0: make([]float32, HT), Wo: make([]float32, HT*C), Bo: make([]float32, C),
		Temperature: 1, BranchTemperatures: temps, Score: ScoreMaxProb,
	}
	if cfg.OOSScore == ScoreOOSLogRatio && m.OOSIndex() >= 0 {
		m.Score = ScoreOOSLogRatio
	}
	// Mixing coefficients weight_i / temperature_i, normalised to sum to 1
	// (the overall temperature is fitted on the mixture afterwards, so only
	// their ratios matter; normalised, the logits keep the branches' scale).
	coef := [3]float64{cfg.BranchWeights[0] / temps[0]}
	sum := coef[0]
	for k, l := range []*linear{lin, svm} {
		if l != nil {
			coef[k+1] = cfg.BranchWeights[k+1] / temps[k+1]
			sum += coef[k+1]
		}
	}
	for k := range coef {
		coef[k] /= sum
	}
	// The linear branches are summed into one table: the product of
	// experts costs one gather at inference whatever the number of linear
	// experts.
	for k, l := range []*linear{lin, svm} {
		if l == nil || coef[k+1] == 0 {
			continue
		}
		w := float32(coef[k+1])
		if m.Lin == nil {
			m.Lin = make([]float32, len(l.W))
		}
		for i, v := range l.W {
			m.Lin[i] += w * v
		}
		for c := range m.Bo {
			m.Bo[c] += w * l.B[c]
		}
	}
	inv := float32(coef[0]) / float32(K)
	for k, mb := range ms {
		for r := 0; r < rows; r++ {
			copy(m.E[r*HT+k*H:r*HT+k*H+H], mb.E[r*H:r*H+H])
		}
		copy(m.B0[k*H:], mb.B0)
		for d := 0; d < H; d++ {
			for c := 0; c < C; c++ {
				m.Wo[(k*H+d)*C+c] = mb.Wo[d*C+c] * inv
			}
		}
		for c := range m.Bo {
			m.Bo[c] += mb.Bo[c] * inv
		}
	}
	return m
}

// calibrate fits the temperature (minimum NLL on the validation set) and the
// out-of-scope threshold, and records validation metrics.
func (m *Model) calibrate(vs *set, threads int) {
	if vs.n() == 0 {
		m.Temperature, m.Threshold = 1, 0
		return
	}
	C := len(m.Labels)
	all := make([]float32, vs.n()*C)
	var wg sync.WaitGroup
	for t := 0; t < threads; t++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := make([]float32, m.Hidden)
			for i := t; i < vs.n(); i += threads {
				rs, ws := vs.example(i)
				m.Logits(rs, ws, h, all[i*C:i*C+C])
			}
		}()
	}
	wg.Wait()
	m.calibrateLogits(all, vs)
}

// calibrateLogits fits the temperature and threshold from the validation
// logits all ([vs.n() x C]) and records the validation metrics.
func (m *Model) calibrateLogits(all []float32, vs *set) {
	C := len(m.Labels)
	m.Temperature = fitTemperature(all, vs, C)
	m.thresholdFromLogits(all, vs)
}

// fitTemperature returns the temperature minimising the negative
// log-likelihood of the validation labels under softmax(logits / T).
func fitTemperature(all []float32, vs *set, C int) float64 {
	nll := func(T float64) float64 {
		p := make([]float64, C)
		var s float64
		for i := 0; i < vs.n(); i++ {
			y := vs.labels[i]
			if y < 0 {
				continue
			}
			Softmax(all[i*C:i*C+C], T, p)
			s -= math.Log(math.Max(p[y], 1e-300))
		}
		return s
	}
	// Golden-section search on log T in [ln 0.05, ln 20].
	lo, hi := math.Log(0.05), math.Log(20)
	phi := (math.Sqrt(5) - 1) / 2
	x1, x2 := hi-phi*(hi-lo), lo+phi*(hi-lo)
	f1, f2 := nll(math.Exp(x1)), nll(math.Exp(x2))
	for i := 0; i < 60; i++ {
		if f1 < f2 {
			hi, x2, f2 = x2, x1, f1
			x1 = hi - phi*(hi-lo)
			f1 = nll(math.Exp(x1))
		} else {
			lo, x1, f1 = x1, x2, f2
			x2 = lo + phi*(hi-lo)
			f2 = nll(math.Exp(x2))
		}
	}
	return math.Exp((lo + hi) / 2)
}

// thresholdFromLogits picks the out-of-scope threshold on the validation
// logits at the model's temperature and records the validation metrics.
//
// With the oos_log_ratio score and out-of-scope validation texts the
// threshold rejects a share Config.OOSReject of the correct validation
// answers (RejectThreshold): on the CLINC150 development split the 5%-prior
// rule below rejected 0.07-0.7% of them with the max_prob score, but where
// it landed rode on the slice's 25-50 oos texts, and a threshold fixed by
// the 1,500-1,800 in-scope texts transfers better. With the max_prob score
// it maximises (1-OOSPrior)*in-scope accuracy + OOSPrior*oos recall
// (ChooseThreshold); without oos validation texts it rejects MaxReject of the
// correct answers.
func (m *Model) thresholdFromLogits(all []float32, vs *set) {
	C := len(m.Labels)
	oos := m.OOSIndex()
	gold := make([]string, vs.n())
	top := make([]string, vs.n())
	conf := make([]float64, vs.n())
	p := make([]float64, C)
	for i := 0; i < vs.n(); i++ {
		best := Softmax(all[i*C:i*C+C], m.Temperature, p)
		if vs.labels[i] >= 0 {
			gold[i] = m.Labels[vs.labels[i]]
		} else {
			gold[i] = "?"
		}
		top[i] = m.Labels[best]
		conf[i] = OOSScore(m.Score, p, best, oos)
	}
	hasOOS := false
	for _, g := range gold {
		hasOOS = hasOOS || g == tandem.OutOfScope
	}
	if m.Score == ScoreOOSLogRatio && hasOOS {
		m.Threshold = RejectThreshold(gold, top, conf, m.Config.OOSReject)
	} else {
		m.Threshold = ChooseThreshold(gold, top, conf, m.Config.OOSPrior, m.Config.MaxReject)
	}
	m.Validation = Score(gold, thresholded(top, conf, m.Threshold))
	m.Validation.Threshold = m.Threshold
}

// linear is a softmax regression over the tf-idf features (the "wide"
// branch): logits = bias + sum_i w_i * W[row_i].
type linear struct {
	W, B []float32 // W [rows x C]
}

// trainLinear fits a softmax regression (or, with hinge, a one-vs-rest
// squared-hinge SVM) on fit with plain SGD or per-coordinate AdaGrad on
// minibatches (rows touched by the batch only), decoupled L2 decay applied
// lazily to touched rows, an optionally decaying step and optional
// averaging of the last iterates (lp).
func trainLinear(ctx context.Context, fit, vs *set, rows, C int, lp linearParams, hinge bool, cfg Config, phase string, progress Progress) (*linear, error) {
	epochs, step := lp.epochs, lp.lr
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x11ea7))
	l := &linear{W: make([]float32, rows*C), B: make([]float32, C)}
	var acc []float32
	if !cfg.LinearSGD && !hinge {
		acc = make([]float32, rows*C)
	}
	batches := (fit.n() + cfg.BatchSize - 1) / cfg.BatchSize
	total := epochs * batches
	avgW := newAverager(rows, C, total, lp.average)
	avgB := newAverager(1, C, total, lp.average)
	var t int // updates done
	accB := make([]float32, C)
	slot := make([]int32, rows)
	for i := range slot {
		slot[i] = -1
	}
	var (
		touched []int32
		gW      []float32
		gB      = make([]float32, C)
		lg      = make([]float32, C)
		p       = make([]float64, C)
		g       = make([]float32, C)
	)
	order := make([]int, fit.n())
	for i := range order {
		order[i] = i
	}
	smooth := cfg.LabelSmoothing
	for epoch := 1; epoch <= epochs; epoch++ {
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		var loss float64
		for b0 := 0; b0 < len(order); b0 += cfg.BatchSize {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			t++
			lr := float32(step * decayed(lp.lrDecay, t, total))
			batch := order[b0:min(b0+cfg.BatchSize, len(order))]
			inv := float32(1) / float32(len(batch))
			clear(gB)
			touched = touched[:0]
			gW = gW[:0]
			for _, ei := range batch {
				rs, ws := fit.example(ei)
				copy(lg, l.B)
				for i, r := range rs {
					w := ws[i]
					row := l.W[int(r)*C : int(r)*C+C]
					for c, v := range row {
						lg[c] += w * v
					}
				}
				y := int(fit.labels[ei])
				if hinge {
					// One-vs-rest squared hinge (a linear SVM).
					for c := range g {
						yc := float32(-1)
						if c == y {
							yc = 1
						}
						g[c] = 0
						if m := 1 - yc*lg[c]; m > 0 {
							loss += float64(m * m)
							g[c] = -2 * yc * m * inv
						}
						gB[c] += g[c]
					}
				} else {
					Softmax(lg, 1, p)
					loss -= math.Log(math.Max(p[y], 1e-12))
					for c := range g {
						t := smooth / float64(C)
						if c == y {
							t += 1 - smooth
						}
						g[c] = float32(p[c]-t) * inv
						gB[c] += g[c]
					}
				}
				for i, r := range rs {
					sl := slot[r]
					if sl < 0 {
						sl = int32(len(touched))
						slot[r] = sl
						touched = append(touched, r)
						if n := len(gW) + C; n <= cap(gW) {
							gW = gW[:n]
							clear(gW[n-C:])
						} else {
							gW = append(gW, make([]float32, C)...)
						}
					}
					w := ws[i]
					gr := gW[int(sl)*C : int(sl)*C+C]
					for c, v := range g {
						gr[c] += w * v
					}
				}
			}
			avgB.before(0, l.B, t)
			for c, v := range gB {
				if cfg.LinearSGD || hinge {
					l.B[c] -= lr * v
					continue
				}
				accB[c] += v * v
				l.B[c] -= lr * v / float32(math.Sqrt(float64(accB[c]))+1e-8)
			}
			avgB.after(0, l.B, t)
			decay := float32(1 - lp.l2)
			for sl, r := range touched {
				gr := gW[sl*C : sl*C+C]
				row := l.W[int(r)*C : int(r)*C+C]
				avgW.before(int(r), row, t)
				if cfg.LinearSGD || hinge {
					for c, v := range gr {
						row[c] = row[c]*decay - lr*v
					}
				} else {
					ac := acc[int(r)*C : int(r)*C+C]
					for c, v := range gr {
						ac[c] += v * v
						row[c] = row[c]*decay - lr*v/(float32(math.Sqrt(float64(ac[c])))+1e-8)
					}
				}
				avgW.after(int(r), row, t)
				slot[r] = -1
			}
		}
		if epoch == epochs {
			avgW.finish(l.W, t)
			avgB.finish(l.B, t)
		}
		if vs.n() > 0 {
			progress("intent: %sepoch %d/%d loss %.4f validation accuracy %.4f", phase, epoch, epochs, loss/float64(len(order)), linearAccuracy(l, vs, C))
		} else {
			progress("intent: %sepoch %d/%d loss %.4f", phase, epoch, epochs, loss/float64(len(order)))
		}
	}
	return l, nil
}

func (l *linear) logits(C int, rows []int32, weights []float32, out []float32) {
	copy(out, l.B)
	for i, r := range rows {
		w := weights[i]
		row := l.W[int(r)*C : int(r)*C+C]
		for c, v := range row {
			out[c] += w * v
		}
	}
}

func linearAccuracy(l *linear, vs *set, C int) float64 {
	return setAccuracy(vs, C, func(rs []int32, ws []float32, lg []float32) { l.logits(C, rs, ws, lg) })
}

// linearParams are the training parameters of one wide branch.
type linearParams struct {
	epochs                   int
	lr, l2, average, lrDecay float64
}

func (c Config) linearParams() linearParams {
	return linearParams{c.LinearEpochs, c.LinearLR, c.LinearL2, c.LinearAverage, c.LinearLRDecay}
}

func (c Config) svmParams() linearParams {
	return linearParams{c.SVMEpochs, c.SVMLR, c.LinearL2, c.SVMAverage, c.SVMLRDecay}
}

// decayed is the step multiplier of update t (1-based) of total under a
// linear decay to 1 - decay.
func decayed(decay float64, t, total int) float64 {
	if decay == 0 || total <= 1 {
		return 1
	}
	return 1 - decay*float64(t-1)/float64(total-1)
}

// averager keeps the uniform average of a table's rows over the last
// updates of training (Polyak-Ruppert averaging), lazily: a row's sum
// catches up on the updates that left it unchanged when it is next
// updated, and at the end. A nil averager does nothing.
type averager struct {
	sum   []float32
	last  []int32 // per row: the update up to which sum includes the row
	width int
	start int // averaging covers the updates after this one
}

// newAverager returns an averager over the last share of total updates of
// a rows x width table, or nil when share is 0.
func newAverager(rows, width, total int, share float64) *averager {
	n := int(math.Round(share * float64(total)))
	if n <= 0 {
		return nil
	}
	a := &averager{sum: make([]float32, rows*width), last: make([]int32, rows), width: width, start: total - n}
	for i := range a.last {
		a.last[i] = int32(a.start)
	}
	return a
}

// before is called before row r (its values row) changes in update t.
func (a *averager) before(r int, row []float32, t int) {
	if a == nil || t <= a.start {
		return
	}
	if k := float32(t - 1 - int(a.last[r])); k > 0 {
		s := a.sum[r*a.width : r*a.width+a.width]
		for i, v := range row {
			s[i] += k * v
		}
	}
}

// after is called after row r changed in update t.
func (a *averager) after(r int, row []float32, t int) {
	if a == nil || t <= a.start {
		return
	}
	s := a.sum[r*a.width : r*a.width+a.width]
	for i, v := range row {
		s[i] += v
	}
	a.last[r] = int32(t)
}

// finish replaces the table p by the average after the last update t.
func (a *averager) finish(p []float32, t int) {
	if a == nil {
		return
	}
	inv := 1 / float32(t-a.start)
	for r := range a.last {
		s := a.sum[r*a.width : r*a.width+a.width]
		row := p[r*a.width : r*a.width+a.width]
		k := float32(t - int(a.last[r]))
		for i, v := range row {
			row[i] = (s[i] + k*v) * inv
		}
	}
}

// nonFinite returns the name of the first float field (or array element)
// of struct v that is NaN or infinite, or "".
func nonFinite(v reflect.Value) string {
	t := v.Type()
	for i := range t.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.Float32, reflect.Float64:
			if x := f.Float(); math.IsNaN(x) || math.IsInf(x, 0) {
				return t.Field(i).Name
			}
		case reflect.Array:
			if k := f.Type().Elem().Kind(); k == reflect.Float32 || k == reflect.Float64 {
				for j := range f.Len() {
					if x := f.Index(j).Float(); math.IsNaN(x) || math.IsInf(x, 0) {
						return fmt.Sprintf("%s[%d]", t.Field(i).Name, j)
					}
				}
			}
		}
	}
	return ""
}
