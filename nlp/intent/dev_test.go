package intent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tandem-chat/tandem/internal/testenv"
	"github.com/tandem-chat/tandem/nlp/data"
	"github.com/tandem-chat/tandem/nlp/features"
)

func envF(k string, d float64) float64 {
	if v := os.Getenv(k); v != "" {
		f, _ := strconv.ParseFloat(v, 64)
		return f
	}
	return d
}

// devOnly skips a development experiment unless TANDEM_INTENT_DEV is set.
func devOnly(t *testing.T) {
	t.Helper()
	if os.Getenv("TANDEM_INTENT_DEV") == "" {
		t.Skip("set TANDEM_INTENT_DEV=1")
	}
}

// devCLINC returns the CLINC150 development split (train,oos_train to
// fit, val,oos_val to evaluate; never test), skipping the experiment
// unless TANDEM_INTENT_DEV is set.
func devCLINC(t *testing.T) (tr, dv *data.Dataset) {
	t.Helper()
	devOnly(t)
	p := testenv.Dataset(t, "clinc150/data_full.json")
	tr, err := data.Load("clinc150:" + p + "#train,oos_train")
	if err != nil {
		t.Fatal(err)
	}
	dv, err = data.Load("clinc150:" + p + "#val,oos_val")
	if err != nil {
		t.Fatal(err)
	}
	return tr, dv
}

// TestDevCLINC is a development experiment (train,oos_train -> val,oos_val).
func TestDevCLINC(t *testing.T) {
	tr, dv := devCLINC(t)
	cfg := DefaultConfig()
	cfg.Hidden = int(envF("H", 256))
	cfg.Epochs = int(envF("EP", 10))
	cfg.LinearEpochs = int(envF("LEP", 10))
	cfg.LinearLR = envF("LLR", 0.5)
	cfg.LinearL2 = envF("LL2", 0)
	cfg.LinearSGD = envF("LSGD", 1) == 1
	cfg.PseudoOOS = envF("PSEUDO", cfg.PseudoOOS)
	cfg.Features.WordMaxN = int(envF("WN", 2))
	cfg.Features.CharMinN = int(envF("CMIN", 2))
	cfg.Features.CharMaxN = int(envF("CMAX", 5))
	cfg.Features.WordWeight = float32(envF("WW", 1))
	cfg.LabelSmoothing = envF("LS", 0.05)
	cfg.EmbedLR = envF("ELR", 0.05)
	cfg.Dropout = envF("DROP", 0.3)
	labelSet := map[string]bool{}
	for _, ex := range tr.Examples {
		labelSet[ex.Intent] = true
	}
	labels := tr.Labels()
	index := labelIndex(labels)
	C := len(labels)
	fitEx := append(append([]data.Example(nil), tr.Examples...), pseudoOOS(tr.Examples, cfg.PseudoOOS, cfg.Seed)...)
	t0 := time.Now()
	terms := termsParallel(&cfg.Features, fitEx, 2)
	vocab := features.BuildVocab(terms, cfg.Features.MinDF)
	fz, _ := features.New(cfg.Features, vocab)
	fit := vectorise(fz, fitEx, terms, index)
	vs := vectorise(fz, dv.Examples, termsParallel(&cfg.Features, dv.Examples, 2), index)
	t.Logf("featurised %d+%d in %s, %d features", fit.n(), vs.n(), time.Since(t0), vocab.Len())
	prog := func(f string, a ...any) { t.Logf(f, a...) }
	ctx := context.Background()
	gold := make([]string, vs.n())
	for i := range gold {
		gold[i] = labels[vs.labels[i]]
	}
	report := func(name string, lg []float32) {
		m := &Model{Labels: labels, Config: cfg}
		m.calibrateLogits(lg, vs)
		top := make([]string, vs.n())
		conf := make([]float64, vs.n())
		pp := make([]float64, C)
		for i := 0; i < vs.n(); i++ {
			b := Softmax(lg[i*C:i*C+C], m.Temperature, pp)
			top[i], conf[i] = labels[b], pp[b]
		}
		var sb strings.Builder
		at := func(th float64) Metrics { return Score(gold, thresholded(top, conf, th)) }
		m0 := at(0)
		fmt.Fprintf(&sb, "%s: T=%.3f none %.4f/%.2f chosen t=%.2f %.4f/%.2f", name, m.Temperature, m0.InScopeAccuracy, m0.OOSRecall, m.Threshold, m.Validation.InScopeAccuracy, m.Validation.OOSRecall)
		for _, prior := range []float64{0.05, 0.03} {
			th := ChooseThreshold(gold, top, conf, prior, cfg.MaxReject)
			mm := at(th)
			fmt.Fprintf(&sb, " | prior %.2f t=%.2f %.4f/%.2f", prior, th, mm.InScopeAccuracy, mm.OOSRecall)
		}
		for _, target := range []float64{0.6, 0.7, 0.8} {
			best := Metrics{}
			bt := 0.0
			for i := 0; i <= 100; i++ {
				mm := at(float64(i) / 100)
				if mm.OOSRecall >= target && mm.InScopeAccuracy > best.InScopeAccuracy {
					best, bt = mm, float64(i)/100
				}
			}
			fmt.Fprintf(&sb, " | r>=%.1f: %.4f (t=%.2f)", target, best.InScopeAccuracy, bt)
		}
		t.Log(sb.String())
	}
	var linLg []float32
	if cfg.LinearEpochs > 0 {
		t0 = time.Now()
		lin, err := trainLinear(ctx, fit, vs, vocab.Len()+1, C, linearParams{epochs: cfg.LinearEpochs, lr: cfg.LinearLR, l2: cfg.LinearL2}, envF("HINGE", 0) == 1, cfg, "linear ", prog)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("linear trained in %s", time.Since(t0))
		linLg = make([]float32, vs.n()*C)
		for i := 0; i < vs.n(); i++ {
			rs, ws := vs.example(i)
			lin.logits(C, rs, ws, linLg[i*C:i*C+C])
		}
		report("linear", linLg)
	}
	var svmLg []float32
	if envF("SVM", 0) == 1 {
		svm, err := trainLinear(ctx, fit, vs, vocab.Len()+1, C, linearParams{epochs: cfg.LinearEpochs, lr: envF("SVMLR", 1), l2: cfg.LinearL2}, true, cfg, "svm ", func(string, ...any) {})
		if err != nil {
			t.Fatal(err)
		}
		svmLg = make([]float32, vs.n()*C)
		for i := 0; i < vs.n(); i++ {
			rs, ws := vs.example(i)
			svm.logits(C, rs, ws, svmLg[i*C:i*C+C])
		}
		report("svm", svmLg)
	}
	K := int(envF("K", 2))
	if K == 0 {
		return
	}
	t0 = time.Now()
	mems := make([]*member, K)
	done := make(chan int)
	for k := range mems {
		go func() {
			mems[k], _ = trainMember(ctx, fit, vs, vocab.Len()+1, C, cfg, k, "", prog)
			done <- k
		}()
	}
	for range mems {
		<-done
	}
	t.Logf("mlp trained in %s", time.Since(t0))
	m := combine(mems, nil, nil, labels, fz, cfg, [3]float64{1, 1, 1})
	mlpLg := make([]float32, vs.n()*C)
	h := make([]float32, m.Hidden)
	for i := 0; i < vs.n(); i++ {
		rs, ws := vs.example(i)
		m.Logits(rs, ws, h, mlpLg[i*C:i*C+C])
	}
	report("mlp", mlpLg)
	if svmLg != nil && linLg != nil {
		// Product of experts: each branch's logits over its own fitted temperature.
		norm := func(lg []float32) []float32 {
			m := &Model{Labels: labels, Config: cfg}
			m.calibrateLogits(lg, vs)
			out := make([]float32, len(lg))
			for i, v := range lg {
				out[i] = v / float32(m.Temperature)
			}
			return out
		}
		nm, nl, ns := norm(mlpLg), norm(linLg), norm(svmLg)
		for _, w := range [][3]float32{{1, 1, 1}, {1, 0, 1}, {0, 1, 1}, {2, 1, 1}, {1, 1, 2}} {
			mix := make([]float32, len(nm))
			for i := range mix {
				mix[i] = w[0]*nm[i] + w[1]*nl[i] + w[2]*ns[i]
			}
			report(fmt.Sprintf("poe %v", w), mix)
		}
	}
	if linLg != nil {
		for _, a := range []float32{0.3, 0.5, 0.7} {
			mix := make([]float32, len(mlpLg))
			for i := range mix {
				mix[i] = a*mlpLg[i] + (1-a)*linLg[i]
			}
			report(fmt.Sprintf("mix a=%.1f", a), mix)
		}
	}
}

// TestDevCLINCTrain is a development experiment that follows Train's own
// recipe (stratified validation slice, calibration, refit on all) on
// train,oos_train and evaluates the refit model on val,oos_val at the
// threshold chosen on the slice. Knobs: MEMBERS, PSEUDO, PRIOR, MAXREJ,
// OOSVF, BW (deep,linear,svm), SEED.
func TestDevCLINCTrain(t *testing.T) {
	tr, dv := devCLINC(t)
	cfg := DefaultConfig()
	cfg.Members = int(envF("MEMBERS", float64(cfg.Members)))
	cfg.Hidden = int(envF("H", float64(cfg.Hidden)))
	cfg.Epochs = int(envF("EP", float64(cfg.Epochs)))
	cfg.PseudoOOS = envF("PSEUDO", cfg.PseudoOOS)
	cfg.OOSPrior = envF("PRIOR", cfg.OOSPrior)
	cfg.MaxReject = envF("MAXREJ", cfg.MaxReject)
	cfg.OOSReject = envF("OOSREJ", cfg.OOSReject)
	if s := os.Getenv("SCORE"); s != "" {
		cfg.OOSScore = s
	}
	cfg.OOSValidFraction = envF("OOSVF", cfg.OOSValidFraction)
	cfg.Seed = uint64(envF("SEED", float64(cfg.Seed)))
	cfg.LinearEpochs = int(envF("LEP", float64(cfg.LinearEpochs)))
	cfg.LinearLR = envF("LLR", cfg.LinearLR)
	cfg.LinearL2 = envF("LL2", cfg.LinearL2)
	cfg.LinearAverage = envF("LAVG", cfg.LinearAverage)
	cfg.LinearLRDecay = envF("LDEC", cfg.LinearLRDecay)
	cfg.SVMEpochs = int(envF("SEP", float64(cfg.SVMEpochs)))
	cfg.SVMLR = envF("SLR", cfg.SVMLR)
	cfg.SVMAverage = envF("SAVG", cfg.SVMAverage)
	cfg.SVMLRDecay = envF("SDEC", cfg.SVMLRDecay)
	cfg.DeepAverage = envF("DAVG", cfg.DeepAverage)
	cfg.DeepLRDecay = envF("DDEC", cfg.DeepLRDecay)
	cfg.LR = envF("LR", cfg.LR)
	cfg.EmbedLR = envF("ELR", cfg.EmbedLR)
	cfg.LabelSmoothing = envF("LS", cfg.LabelSmoothing)
	cfg.FeatureDropout = envF("FDROP", cfg.FeatureDropout)
	cfg.Dropout = envF("DROP", cfg.Dropout)
	cfg.Features.OOVWeight = float32(envF("OOVW", float64(cfg.Features.OOVWeight)))
	if bw := os.Getenv("BW"); bw != "" {
		for i, f := range strings.Split(bw, ",") {
			cfg.BranchWeights[i], _ = strconv.ParseFloat(f, 64)
		}
	}
	t.Logf("config: oov weight %g", cfg.Features.OOVWeight)
	t.Logf("config: members %d hidden %d epochs %d pseudo %.1f prior %.2f oosvf %.2f bw %v seed %d",
		cfg.Members, cfg.Hidden, cfg.Epochs, cfg.PseudoOOS, cfg.OOSPrior, cfg.OOSValidFraction, cfg.BranchWeights, cfg.Seed)
	t.Logf("config: linear %d/%g/l2 %g/avg %g/dec %g svm %d/%g/avg %g/dec %g deep lr %g elr %g avg %g dec %g ls %g fdrop %g drop %g",
		cfg.LinearEpochs, cfg.LinearLR, cfg.LinearL2, cfg.LinearAverage, cfg.LinearLRDecay, cfg.SVMEpochs, cfg.SVMLR, cfg.SVMAverage, cfg.SVMLRDecay,
		cfg.LR, cfg.EmbedLR, cfg.DeepAverage, cfg.DeepLRDecay, cfg.LabelSmoothing, cfg.FeatureDropout, cfg.Dropout)
	ctx := context.Background()
	threads := 2
	prog := func(string, ...any) {}
	if os.Getenv("VERBOSE") != "" {
		prog = func(f string, a ...any) { t.Logf(f, a...) }
	}
	start := time.Now()
	labels := tr.Labels()
	index := labelIndex(labels)
	C := len(labels)
	fitEx, validEx := Split(tr.Examples, cfg.ValidFraction, max(cfg.ValidFraction, cfg.OOSValidFraction), cfg.Seed)
	temps := [3]float64{1, 1, 1}
	m, vs, err := fitModel(ctx, fitEx, validEx, labels, index, cfg, threads, "", &temps, prog)
	if err != nil {
		t.Fatal(err)
	}
	m.calibrate(vs, threads)
	// Slice predictions of the calibration model (for alternative rules).
	sliceTop, sliceConf, sliceGold := predictSet(m, vs)
	final := m
	if envF("REFIT", 1) == 1 {
		all := append(append([]data.Example(nil), fitEx...), validEx...)
		full, _, err := fitModel(ctx, all, nil, labels, index, cfg, threads, "refit ", &temps, prog)
		if err != nil {
			t.Fatal(err)
		}
		full.Temperature, full.Threshold, full.Validation = m.Temperature, m.Threshold, m.Validation
		final = full
	}
	t.Logf("trained in %s; slice: T=%.3f t=%.2f in-scope %.4f recall %.3f", time.Since(start).Round(time.Second),
		m.Temperature, m.Threshold, m.Validation.InScopeAccuracy, m.Validation.OOSRecall)
	dvs := vectorise(final.Featurizer, dv.Examples, termsParallel(&cfg.Features, dv.Examples, threads), index)
	top, conf, gold := predictSet(final, dvs)
	at := func(th float64) Metrics { return Score(gold, thresholded(top, conf, th)) }
	var sb strings.Builder
	m0, mt := at(0), at(final.Threshold)
	fmt.Fprintf(&sb, "DEV none %.4f/%.2f | chosen t=%.2f %.4f/%.2f", m0.InScopeAccuracy, m0.OOSRecall, final.Threshold, mt.InScopeAccuracy, mt.OOSRecall)
	for _, prior := range []float64{0.03, 0.05, 0.08, 0.1} {
		if final.Score != ScoreMaxProb {
			break // the prior rule's grid is for probabilities
		}
		th := ChooseThreshold(sliceGold, sliceTop, sliceConf, prior, cfg.MaxReject)
		mm := at(th)
		fmt.Fprintf(&sb, " | prior %.2f t=%.2f %.4f/%.2f", prior, th, mm.InScopeAccuracy, mm.OOSRecall)
	}
	for _, target := range []float64{0.6, 0.7} {
		best, bt := Metrics{}, 0.0
		for _, th := range append(append([]float64(nil), conf...), -1e9) {
			mm := at(th)
			if mm.OOSRecall >= target && mm.InScopeAccuracy > best.InScopeAccuracy {
				best, bt = mm, th
			}
		}
		fmt.Fprintf(&sb, " | oracle r>=%.1f: %.4f (t=%.2f)", target, best.InScopeAccuracy, bt)
	}
	_ = C
	t.Log(sb.String())
}

// predictSet returns the top labels, their confidences and the gold labels
// of a featurised set under m.
func predictSet(m *Model, s *set) (top []string, conf []float64, gold []string) {
	C := len(m.Labels)
	lg := make([]float32, C)
	h := make([]float32, m.Hidden)
	p := make([]float64, C)
	for i := 0; i < s.n(); i++ {
		rs, ws := s.example(i)
		m.Logits(rs, ws, h, lg)
		b := Softmax(lg, m.Temperature, p)
		top, conf = append(top, m.Labels[b]), append(conf, OOSScore(m.Score, p, b, m.OOSIndex()))
		g := "?"
		if s.labels[i] >= 0 {
			g = m.Labels[s.labels[i]]
		}
		gold = append(gold, g)
	}
	return top, conf, gold
}

// TestDevDemo trains the demo models' recipe (Bitext + models/data, 1 x 128,
// no refit) and reports the share of CLINC150 oos_val queries it rejects.
// Knob: PSEUDO.
func TestDevDemo(t *testing.T) {
	devOnly(t)
	bt, err := data.Load("bitext:" + testenv.Dataset(t, "bitext-customer-support/bitext_customer_support_20k.csv"))
	if err != nil {
		t.Fatal(err)
	}
	demo, err := data.Load("tandem:" + filepath.Join(testenv.RepoRoot(t), "models", "data", "demo.yml"))
	if err != nil {
		t.Fatal(err)
	}
	oos, err := data.Load("clinc150:" + testenv.Dataset(t, "clinc150/data_full.json") + "#oos_val")
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Seed, cfg.Members, cfg.Hidden, cfg.Epochs, cfg.Refit = 20240601, 1, 128, 5, false
	cfg.PseudoOOS = envF("PSEUDO", cfg.PseudoOOS)
	if s := os.Getenv("SCORE"); s != "" {
		cfg.OOSScore = s
	}
	start := time.Now()
	m, err := Train(context.Background(), data.Merge(bt, demo), nil, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	rej := 0
	for _, ex := range oos.Examples {
		if m.Predict(ex.Text).OutOfScope {
			rej++
		}
	}
	t.Logf("pseudo %.1f: %s; validation in-scope %.4f oos recall %.3f at t=%.2f; rejects %d/%d CLINC150 oos_val",
		cfg.PseudoOOS, time.Since(start).Round(time.Second), m.Validation.InScopeAccuracy, m.Validation.OOSRecall, m.Threshold, rej, len(oos.Examples))
}
