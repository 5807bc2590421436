package intent

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandem-chat/tandem/nlp/data"
	"github.com/tandem-chat/tandem/nlp/features"
)

// devBranches trains the branches like fitModel and returns a function
// giving the three branch logits (deep mean, linear, svm) of examples.
func devBranches(ctx context.Context, fitEx []data.Example, labels []string, index map[string]int32, cfg Config) func([]data.Example) (*set, [3][]float32) {
	threads := 2
	fitTerms := termsParallel(&cfg.Features, fitEx, threads)
	vocab := features.BuildVocab(fitTerms, cfg.Features.MinDF)
	fz, _ := features.New(cfg.Features, vocab)
	fit := vectorise(fz, fitEx, fitTerms, index)
	empty := &set{off: []int{0}}
	C := len(labels)
	members := make([]*member, cfg.Members)
	var lin, svm *linear
	var wg sync.WaitGroup
	sem := make(chan struct{}, threads)
	run := func(f func()) {
		wg.Add(1)
		go func() { defer wg.Done(); sem <- struct{}{}; defer func() { <-sem }(); f() }()
	}
	run(func() {
		lin, _ = trainLinear(ctx, fit, empty, vocab.Len()+1, C, cfg.linearParams(), false, cfg, "", nil2)
	})
	run(func() {
		svm, _ = trainLinear(ctx, fit, empty, vocab.Len()+1, C, cfg.svmParams(), true, cfg, "", nil2)
	})
	for k := range members {
		run(func() { members[k], _ = trainMember(ctx, fit, empty, vocab.Len()+1, C, cfg, k, "", nil2) })
	}
	wg.Wait()
	return func(exs []data.Example) (*set, [3][]float32) {
		s := vectorise(fz, exs, termsParallel(&cfg.Features, exs, threads), index)
		var out [3][]float32
		for k := range out {
			out[k] = make([]float32, s.n()*C)
		}
		h := make([]float32, cfg.Hidden)
		lg := make([]float32, C)
		inv := 1 / float32(len(members))
		for i := 0; i < s.n(); i++ {
			rs, ws := s.example(i)
			for _, mb := range members {
				logits(mb.E, mb.B0, mb.Wo, mb.Bo, cfg.Hidden, C, rs, ws, h, lg)
				for c, v := range lg {
					out[0][i*C+c] += v * inv
				}
			}
			lin.logits(C, rs, ws, out[1][i*C:i*C+C])
			svm.logits(C, rs, ws, out[2][i*C:i*C+C])
		}
		return s, out
	}
}

func nil2(string, ...any) {}

// Development harness of the out-of-scope score and threshold rule
// (CLINC150 development split, never test data):
//
//	TANDEM_INTENT_DEV=1 DUMP=/tmp/oosdump1.bin SEED=1 go test -run TestDevOOSDump -v ./nlp/intent/
//	TANDEM_INTENT_DEV=1 DUMPS=/tmp/oosdump1.bin,/tmp/oosdump2.bin go test -run TestDevOOSAnalyse -v ./nlp/intent/
//
// The analysis scores the slice (calibration model) and val,oos_val (refit
// model) with each candidate score, picks thresholds on the slice with
// several rules and reports the development figures at them.

// TestDevOOSDump trains the recipe of Train on train,oos_train (slice,
// then refit) and dumps branch logits: calibration model on the slice and
// on val,oos_val, refit model on val,oos_val. File: $DUMP.
func TestDevOOSDump(t *testing.T) {
	tr, dv := devCLINC(t)
	cfg := DefaultConfig()
	cfg.Seed = uint64(envF("SEED", 1))
	labels := tr.Labels()
	index := labelIndex(labels)
	fitEx, validEx := Split(tr.Examples, cfg.ValidFraction, max(cfg.ValidFraction, cfg.OOSValidFraction), cfg.Seed)
	ctx := context.Background()
	t0 := time.Now()
	cal := devBranches(ctx, fitEx, labels, index, cfg)
	ss, sl := cal(validEx)
	ds, dl := cal(dv.Examples)
	t.Logf("calibration fit %s", time.Since(t0))
	all := append(append([]data.Example(nil), fitEx...), validEx...)
	ref := devBranches(ctx, all, labels, index, cfg)
	_, rl := ref(dv.Examples)
	t.Logf("both fits %s", time.Since(t0))
	f, err := os.Create(os.Getenv("DUMP"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := func(v any) {
		if err := binary.Write(f, binary.LittleEndian, v); err != nil {
			t.Fatal(err)
		}
	}
	w(int32(len(labels)))
	for _, s := range []*set{ss, ds} {
		w(int32(s.n()))
		w(s.labels)
	}
	for _, l := range [][3][]float32{sl, dl, rl} {
		for k := range l {
			w(l[k])
		}
	}
}

type devDump struct {
	C                 int
	sliceY, devY      []int32
	slice, cal, refit [3][]float32
}

func readDump(t *testing.T, path string) *devDump {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := func(v any) {
		if err := binary.Read(f, binary.LittleEndian, v); err != nil {
			t.Fatal(err)
		}
	}
	d := &devDump{}
	var c, n int32
	r(&c)
	d.C = int(c)
	r(&n)
	d.sliceY = make([]int32, n)
	r(d.sliceY)
	r(&n)
	d.devY = make([]int32, n)
	r(d.devY)
	for _, dst := range []*[3][]float32{&d.slice, &d.cal, &d.refit} {
		for k := range dst {
			m := len(d.sliceY)
			if dst != &d.slice {
				m = len(d.devY)
			}
			dst[k] = make([]float32, m*d.C)
			r(dst[k])
		}
	}
	return d
}

// scored is a set scored for the oos decision.
type scored struct {
	inScope []bool // gold in scope
	okTop   []bool // top label correct (in-scope gold)
	topOOS  []bool // top label is oos
	s       []float64
}

func (sc *scored) at(t float64) (in, rec float64) {
	var nin, cin, noos, roos int
	for i := range sc.s {
		rej := sc.topOOS[i] || sc.s[i] < t
		if sc.inScope[i] {
			nin++
			if !rej && sc.okTop[i] {
				cin++
			}
		} else {
			noos++
			if rej {
				roos++
			}
		}
	}
	return float64(cin) / float64(nin), float64(roos) / float64(max(noos, 1))
}

func (sc *scored) cands() []float64 {
	v := append([]float64(nil), sc.s...)
	sort.Float64s(v)
	out := []float64{math.Inf(-1)}
	for i := 1; i < len(v); i++ {
		if v[i] > v[i-1] {
			out = append(out, (v[i]+v[i-1])/2)
		}
	}
	return out
}

func (sc *scored) choose(prior float64, cands []float64) float64 {
	best, bs := 0.0, -1.0
	for _, t := range cands {
		in, rec := sc.at(t)
		if s := (1-prior)*in + prior*rec; s > bs+1e-12 {
			best, bs = t, s
		}
	}
	return best
}

func (sc *scored) sub(idx []int) *scored {
	o := &scored{}
	for _, i := range idx {
		o.inScope = append(o.inScope, sc.inScope[i])
		o.okTop = append(o.okTop, sc.okTop[i])
		o.topOOS = append(o.topOOS, sc.topOOS[i])
		o.s = append(o.s, sc.s[i])
	}
	return o
}

func (sc *scored) oracle(r float64) float64 {
	best := 0.0
	for _, t := range sc.cands() {
		in, rec := sc.at(t)
		if rec >= r && in > best {
			best = in
		}
	}
	return best
}

type scoreFn func(mix []float32, br [3][]float32, bt [3]float64, T float64, oos int, p []float64) float64

func TestDevOOSAnalyse(t *testing.T) {
	devOnly(t)
	for _, path := range strings.Split(os.Getenv("DUMPS"), ",") {
		d := readDump(t, path)
		C := d.C
		oos := devOOSIndex(d)
		cfg := DefaultConfig()
		sliceSet := &set{labels: d.sliceY}
		var bt [3]float64
		for k := range bt {
			bt[k] = fitTemperature(d.slice[k], sliceSet, C)
		}
		var coef [3]float64
		var sum float64
		for k := range coef {
			coef[k] = cfg.BranchWeights[k] / bt[k]
			sum += coef[k]
		}
		mixOf := func(b [3][]float32) []float32 {
			out := make([]float32, len(b[0]))
			for i := range out {
				out[i] = float32(coef[0]/sum)*b[0][i] + float32(coef[1]/sum)*b[1][i] + float32(coef[2]/sum)*b[2][i]
			}
			return out
		}
		smix, rmix, cmix := mixOf(d.slice), mixOf(d.refit), mixOf(d.cal)
		T := fitTemperature(smix, sliceSet, C)
		t.Logf("%s: branch T %.3f %.3f %.3f mix T %.3f", path, bt[0], bt[1], bt[2], T)
		mk := func(f scoreFn, mix []float32, br [3][]float32, y []int32) *scored {
			sc := &scored{}
			p := make([]float64, C)
			n := len(y)
			for i := 0; i < n; i++ {
				row := mix[i*C : i*C+C]
				var b3 [3][]float32
				for k := range b3 {
					b3[k] = br[k][i*C : i*C+C]
				}
				best := Softmax(row, T, p)
				sc.inScope = append(sc.inScope, int(y[i]) != oos)
				sc.okTop = append(sc.okTop, int32(best) == y[i])
				sc.topOOS = append(sc.topOOS, best == oos)
				sc.s = append(sc.s, f(row, b3, bt, T, oos, p))
			}
			return sc
		}
		topIn := func(p []float64, oos int) int {
			b := -1
			for c := range p {
				if c != oos && (b < 0 || p[c] > p[b]) {
					b = c
				}
			}
			return b
		}
		scores := []struct {
			name string
			f    scoreFn
		}{
			{"maxprob", func(mix []float32, br [3][]float32, bt [3]float64, T float64, oos int, p []float64) float64 {
				m := 0.0
				for _, v := range p {
					m = max(m, v)
				}
				return m
			}},
			{"maxlogit", func(mix []float32, br [3][]float32, bt [3]float64, T float64, oos int, p []float64) float64 {
				return float64(mix[topIn(p, oos)]) / T
			}},
			{"energy", func(mix []float32, br [3][]float32, bt [3]float64, T float64, oos int, p []float64) float64 {
				mx := math.Inf(-1)
				for _, v := range mix {
					mx = max(mx, float64(v)/T)
				}
				s := 0.0
				for c, v := range mix {
					if c != oos {
						s += math.Exp(float64(v)/T - mx)
					}
				}
				return mx + math.Log(s)
			}},
			{"margin", func(mix []float32, br [3][]float32, bt [3]float64, T float64, oos int, p []float64) float64 {
				a, b := 0.0, 0.0
				for _, v := range p {
					if v > a {
						a, b = v, a
					} else if v > b {
						b = v
					}
				}
				return a - b
			}},
			{"logratio_oos", func(mix []float32, br [3][]float32, bt [3]float64, T float64, oos int, p []float64) float64 {
				return math.Log(p[topIn(p, oos)]) - math.Log(p[oos])
			}},
			{"beta0.02", func(mix []float32, br [3][]float32, bt [3]float64, T float64, oos int, p []float64) float64 {
				b := topIn(p, oos)
				return math.Log(p[b]) - math.Log(p[oos]+0.02*(1-p[b]-p[oos]))
			}},
			{"beta0.05", func(mix []float32, br [3][]float32, bt [3]float64, T float64, oos int, p []float64) float64 {
				b := topIn(p, oos)
				return math.Log(p[b]) - math.Log(p[oos]+0.05*(1-p[b]-p[oos]))
			}},
			{"beta0.1", func(mix []float32, br [3][]float32, bt [3]float64, T float64, oos int, p []float64) float64 {
				b := topIn(p, oos)
				return math.Log(p[b]) - math.Log(p[oos]+0.1*(1-p[b]-p[oos]))
			}},
			{"beta0.2", func(mix []float32, br [3][]float32, bt [3]float64, T float64, oos int, p []float64) float64 {
				b := topIn(p, oos)
				return math.Log(p[b]) - math.Log(p[oos]+0.2*(1-p[b]-p[oos]))
			}},
			{"beta0.5", func(mix []float32, br [3][]float32, bt [3]float64, T float64, oos int, p []float64) float64 {
				b := topIn(p, oos)
				return math.Log(p[b]) - math.Log(p[oos]+0.5*(1-p[b]-p[oos]))
			}},
			{"p_top-p_oos", func(mix []float32, br [3][]float32, bt [3]float64, T float64, oos int, p []float64) float64 {
				return p[topIn(p, oos)] - p[oos]
			}},
			{"maxprob_T/2", func(mix []float32, br [3][]float32, bt [3]float64, T float64, oos int, p []float64) float64 {
				q := make([]float64, len(p))
				b := Softmax(mix, T/2, q)
				return q[b]
			}},
			{"maxprob_2T", func(mix []float32, br [3][]float32, bt [3]float64, T float64, oos int, p []float64) float64 {
				q := make([]float64, len(p))
				b := Softmax(mix, 2*T, q)
				return q[b]
			}},
			{"branch_min", func(mix []float32, br [3][]float32, bt [3]float64, T float64, oos int, p []float64) float64 {
				b := topIn(p, oos)
				q := make([]float64, len(p))
				m := 1.0
				for k := range br {
					Softmax(br[k], bt[k], q)
					m = min(m, q[b])
				}
				return m
			}},
			{"branch_mean", func(mix []float32, br [3][]float32, bt [3]float64, T float64, oos int, p []float64) float64 {
				b := topIn(p, oos)
				q := make([]float64, len(p))
				m := 0.0
				w := [3]float64{1, 1, 2}
				for k := range br {
					Softmax(br[k], bt[k], q)
					m += w[k] / 4 * q[b]
				}
				return m
			}},
			{"deep_maxprob", func(mix []float32, br [3][]float32, bt [3]float64, T float64, oos int, p []float64) float64 {
				q := make([]float64, len(p))
				Softmax(br[0], bt[0], q)
				return q[topIn(p, oos)]
			}},
			{"svm_top", func(mix []float32, br [3][]float32, bt [3]float64, T float64, oos int, p []float64) float64 {
				return float64(br[2][topIn(p, oos)])
			}},
			{"svm_top-oos", func(mix []float32, br [3][]float32, bt [3]float64, T float64, oos int, p []float64) float64 {
				return float64(br[2][topIn(p, oos)] - br[2][oos])
			}},
		}
		for _, s := range scores {
			sl := mk(s.f, smix, d.slice, d.sliceY)
			dv := mk(s.f, rmix, d.refit, d.devY)
			dc := mk(s.f, cmix, d.cal, d.devY)
			var sb strings.Builder
			cands := sl.cands()
			if s.name == "maxprob" {
				cands = nil
				for i := 0; i <= 100; i++ {
					cands = append(cands, float64(i)/100)
				}
			}
			n0, r0 := dv.at(math.Inf(-1))
			fmt.Fprintf(&sb, "%-13s none %.4f/%.2f", s.name, n0, r0)
			for _, prior := range []float64{0.05, 0.1} {
				th := sl.choose(prior, cands)
				si, sr := sl.at(th)
				in, rec := dv.at(th)
				ci, cr := dc.at(th)
				fmt.Fprintf(&sb, " | p%.2f slice %.4f/%.2f DEV %.4f/%.3f (cal %.4f/%.2f)", prior, si, sr, in, rec, ci, cr)
			}
			// bagged threshold: median of bootstrap argmaxes
			rng := rand.New(rand.NewPCG(1, 2))
			var ths []float64
			for b := 0; b < 100; b++ {
				idx := make([]int, len(sl.s))
				for i := range idx {
					idx[i] = rng.IntN(len(idx))
				}
				ths = append(ths, sl.sub(idx).choose(0.05, cands))
			}
			sort.Float64s(ths)
			th := ths[len(ths)/2]
			in, rec := dv.at(th)
			fmt.Fprintf(&sb, " | bag %.4f/%.3f", in, rec)
			{
				th := sl.choose(0.05, cands)
				var n, r int
				for i := range sl.s {
					if sl.inScope[i] && sl.okTop[i] {
						n++
						if sl.s[i] < th {
							r++
						}
					}
				}
				fmt.Fprintf(&sb, " | rejects %.4f of correct slice", float64(r)/float64(n))
			}
			for _, q := range []float64{0.005, 0.0075, 0.01} {
				var ok []float64
				for i := range sl.s {
					if sl.inScope[i] && sl.okTop[i] {
						ok = append(ok, sl.s[i])
					}
				}
				sort.Float64s(ok)
				th := ok[int(q*float64(len(ok)))]
				in, rec := dv.at(th)
				_, sr := sl.at(th)
				fmt.Fprintf(&sb, " | q%.3f sl %.2f DEV %.4f/%.3f", q, sr, in, rec)
			}
			fmt.Fprintf(&sb, " | oracle r.6 %.4f r.7 %.4f r.8 %.4f", dv.oracle(0.6), dv.oracle(0.7), dv.oracle(0.8))
			t.Log(sb.String())
		}
	}
}

func devOOSIndex(d *devDump) int {
	// the oos label is the one with the most dev examples (100 vs 20)
	cnt := make([]int, d.C)
	for _, y := range d.devY {
		cnt[y]++
	}
	b := 0
	for c := range cnt {
		if cnt[c] > cnt[b] {
			b = c
		}
	}
	return b
}
