package entity

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/internal/testenv"
	"github.com/tandem-chat/tandem/models"
	"github.com/tandem-chat/tandem/nlp/data"
)

// --- unit tests ---------------------------------------------------------------

func TestTokens(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"at 3pm", "at|3|pm"},
		{"Live In L.aJoseph Meyer", "Live|In|L|.|a|Joseph|Meyer"},
		{"mp3 iPhone", "mp|3|i|Phone"},
		{"北京天气", "北|京|天|气"},
		{"Ünïcödé ok", "Ünïcödé|ok"},
	} {
		var parts []string
		for _, tk := range Tokens(c.in) {
			rs := []rune(c.in)
			if string(rs[tk.Start:tk.End]) != tk.Text {
				t.Fatalf("%q: token %+v text does not match offsets", c.in, tk)
			}
			parts = append(parts, tk.Text)
		}
		if got := strings.Join(parts, "|"); got != c.want {
			t.Errorf("Tokens(%q) = %s, want %s", c.in, got, c.want)
		}
	}
}

func TestLabelTokens(t *testing.T) {
	s := "play the beatles at 3pm"
	toks := Tokens(s)
	types := map[string]int{"artist": 0, "time": 1}
	got := labelTokens(toks, []data.Span{{Type: "artist", Start: 5, End: 16}, {Type: "time", Start: 20, End: 21}, {Type: "nope", Start: 0, End: 4}}, types)
	tags := tagSet([]string{"artist", "time"})
	var names []string
	for _, l := range got {
		names = append(names, tags[l])
	}
	if want := "O|B-artist|I-artist|O|B-time|O"; strings.Join(names, "|") != want {
		t.Fatalf("labels %s, want %s", strings.Join(names, "|"), want)
	}
}

// bruteForce enumerates all valid paths: best path score and log Z.
func bruteForce(emis []float32, T, K int, start, end, trans []float32) (best []int, bestScore float64, logZ float64) {
	allowed, startOK := allowedMatrix(K)
	path := make([]int, T)
	bestScore = math.Inf(-1)
	var sum float64
	var rec func(t int, score float64)
	rec = func(t int, score float64) {
		if t == T {
			score += float64(end[path[T-1]])
			sum += math.Exp(score)
			if score > bestScore {
				bestScore = score
				best = append(best[:0], path...)
			}
			return
		}
		for j := 0; j < K; j++ {
			var s float64
			if t == 0 {
				if !startOK[j] {
					continue
				}
				s = float64(start[j])
			} else {
				if !allowed[path[t-1]*K+j] {
					continue
				}
				s = float64(trans[path[t-1]*K+j])
			}
			path[t] = j
			rec(t+1, score+s+float64(emis[t*K+j]))
		}
	}
	rec(0, 0)
	return best, bestScore, math.Log(sum)
}

func TestViterbiAndForwardBackward(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	K := 5 // O, B-a, I-a, B-b, I-b
	allowed, startOK := allowedMatrix(K)
	for trial := 0; trial < 200; trial++ {
		T := 1 + rng.IntN(5)
		emis := make([]float32, T*K)
		for i := range emis {
			emis[i] = float32(rng.NormFloat64() * 3)
			if i%K == 2 || i%K == 4 {
				emis[i] += 4 // tempt the decoder with I tags everywhere
			}
		}
		start, end, trans := make([]float32, K), make([]float32, K), make([]float32, K*K)
		for i := range trans {
			trans[i] = float32(rng.NormFloat64())
		}
		for i := range start {
			start[i], end[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
		}
		path := viterbi(emis, T, K, start, end, trans, allowed, startOK)
		if !startOK[path[0]] {
			t.Fatalf("path starts with %d", path[0])
		}
		for i := 1; i < T; i++ {
			if !allowed[path[i-1]*K+path[i]] {
				t.Fatalf("invalid transition %d -> %d in %v", path[i-1], path[i], path)
			}
		}
		best, _, logZ := bruteForce(emis, T, K, start, end, trans)
		for i := range best {
			if best[i] != path[i] {
				t.Fatalf("viterbi %v, brute force %v", path, best)
			}
		}
		c := newCRF(K, start, end, trans, allowed, startOK)
		var sc fbScratch
		got := c.forwardBackward(emis, T, &sc)
		if math.Abs(got-logZ) > 1e-6*math.Max(1, math.Abs(logZ)) {
			t.Fatalf("log Z %v, brute force %v", got, logZ)
		}
		for tt := 0; tt < T; tt++ {
			s := 0.0
			for j := 0; j < K; j++ {
				s += sc.marg[tt*K+j]
			}
			if math.Abs(s-1) > 1e-9 {
				t.Fatalf("marginals at %d sum to %v", tt, s)
			}
			if tt == 0 && (sc.marg[2] > 1e-12 || sc.marg[4] > 1e-12) {
				t.Fatalf("I tag has mass at the start: %v", sc.marg[:K])
			}
		}
	}
}

func TestEvaluateMetrics(t *testing.T) {
	m := fixedTagger{
		"a b c": {{Type: "x", Start: 0, End: 1}, {Type: "y", Start: 2, End: 5}},
		"d e":   {{Type: "x", Start: 0, End: 3}},
	}
	exs := []data.Example{
		{Text: "a b c", Entities: []data.Span{{Type: "x", Start: 0, End: 1}, {Type: "y", Start: 2, End: 3}}},
		{Text: "d e", Entities: []data.Span{{Type: "x", Start: 0, End: 3}, {Type: "z", Start: 2, End: 3}}},
	}
	met, err := Evaluate(context.Background(), m, exs)
	if err != nil {
		t.Fatal(err)
	}
	// correct 2 of predicted 3, gold 4.
	if math.Abs(met.Precision-2.0/3) > 1e-9 || math.Abs(met.Recall-0.5) > 1e-9 || math.Abs(met.MicroF1-4.0/7) > 1e-9 {
		t.Fatalf("metrics %+v", met)
	}
	if f := met.PerType["x"]; f.F1 != 1 || f.Support != 2 {
		t.Fatalf("x: %+v", f)
	}
	if f := met.PerType["z"]; f.Recall != 0 || f.Support != 1 {
		t.Fatalf("z: %+v", f)
	}
}

// --- trained-model tests --------------------------------------------------------

var (
	smallOnce  sync.Once
	smallModel *Model
	smallErr   error
	smallValid []data.Example
)

// smallSNIPS trains a model on every 4th SNIPS training example (about
// 3,400; every 8th under -race), 2 epochs: quick, and still above the
// regression floor (0.88 F1 with every 8th).
func smallSNIPS(t testing.TB) (*Model, []data.Example) {
	t.Helper()
	dir := testenv.Dataset(t, "snips")
	smallOnce.Do(func() {
		ds, err := data.Load("snips:" + dir + "#train")
		if err != nil {
			smallErr = err
			return
		}
		var sub []data.Example
		every := 4
		if raceEnabled || os.Getenv("TANDEM_ENTITY_SMALL") != "" {
			every = 8
		}
		for i, e := range ds.Examples {
			if i%every == 0 {
				sub = append(sub, e)
			}
		}
		ds.Examples = sub
		smallModel, smallErr = Train(context.Background(), ds, Config{Epochs: 2, Seed: 7, ExportFP32: true}, nil)
		if smallErr != nil {
			return
		}
		va, err := data.Load("snips:" + dir + "#validate")
		if err != nil {
			smallErr = err
			return
		}
		smallValid = va.Examples
	})
	if smallErr != nil {
		t.Fatal(smallErr)
	}
	return smallModel, smallValid
}

func TestSNIPSFloor(t *testing.T) {
	m, valid := smallSNIPS(t)
	met, err := Evaluate(context.Background(), m, valid)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("SNIPS (1/4 of train, 1/8 under -race, 2 epochs) validate micro F1 %.4f P %.4f R %.4f", met.MicroF1, met.Precision, met.Recall)
	// The full model scores ~0.96; this floor catches regressions only.
	if met.MicroF1 < 0.85 {
		t.Fatalf("micro F1 %.4f below the floor 0.85", met.MicroF1)
	}
	if met.Support != 1794 {
		t.Fatalf("support %d, want the 1794 validate spans", met.Support)
	}
}

func TestTrainDeterministic(t *testing.T) {
	dir := testenv.Dataset(t, "snips")
	ds, err := data.Load("snips:" + dir + "#train")
	if err != nil {
		t.Fatal(err)
	}
	var sub []data.Example
	every := 20
	if raceEnabled {
		every = 60
	}
	for i, e := range ds.Examples {
		if i%every == 0 {
			sub = append(sub, e)
		}
	}
	ds.Examples = sub
	sum := func(workers int, seed int64) [32]byte {
		m, err := Train(context.Background(), ds, Config{Epochs: 2, Seed: seed, Workers: workers}, nil)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		b.Write(m.ONNX(false))
		b.Write(m.vocabBytes())
		for _, v := range append(append(append([]float32(nil), m.start...), m.end...), m.trans...) {
			b.Write([]byte{byte(math.Float32bits(v)), byte(math.Float32bits(v) >> 8), byte(math.Float32bits(v) >> 16), byte(math.Float32bits(v) >> 24)})
		}
		return sha256.Sum256(b.Bytes())
	}
	a, b := sum(1, 3), sum(2, 3)
	if a != b {
		t.Fatal("training with 1 and 2 workers gave different models")
	}
	if c := sum(2, 3); c != a {
		t.Fatal("training twice gave different models")
	}
	if d := sum(2, 4); d == a {
		t.Fatal("a different seed gave the same model")
	}
}

func TestChinese(t *testing.T) {
	cities := []string{"北京", "上海", "广州", "深圳", "杭州", "成都", "武汉", "西安"}
	tmpl := []string{"明天%s天气怎么样", "我要去%s", "帮我订一张去%s的机票", "%s下雨吗", "查一下%s的酒店"}
	ds := &data.Dataset{}
	for i, c := range cities[:6] {
		for j, tp := range tmpl {
			if (i+j)%5 == 4 {
				continue
			}
			before, _, _ := strings.Cut(tp, "%s")
			st := len([]rune(before))
			ds.Examples = append(ds.Examples, data.Example{Text: strings.Replace(tp, "%s", c, 1),
				Entities: []data.Span{{Type: "city", Value: c, Start: st, End: st + len([]rune(c))}}})
		}
	}
	m, err := Train(context.Background(), ds, Config{Epochs: 30, Seed: 1, GazetteerFolds: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	es := m.Tag("明天上海天气怎么样")
	if len(es) != 1 || es[0].Text != "上海" || es[0].Start != 2 || es[0].End != 4 || es[0].Type != "city" {
		t.Fatalf("got %+v", es)
	}
}

func TestValuesNormalised(t *testing.T) {
	ds := &data.Dataset{Synonyms: map[string]string{"nyc": "New York"}}
	for i := 0; i < 6; i++ {
		ds.Examples = append(ds.Examples,
			data.Example{Text: "fly to NYC now", Entities: []data.Span{{Type: "city", Value: "New York", Start: 7, End: 10}}},
			data.Example{Text: "fly to Paris now", Entities: []data.Span{{Type: "city", Value: "Paris", Start: 7, End: 12}}},
			data.Example{Text: "hello there", Entities: nil},
		)
	}
	m, err := Train(context.Background(), ds, Config{Epochs: 10, Seed: 1, GazetteerFolds: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	es := m.Tag("fly to nyc now")
	if len(es) != 1 || es[0].Value != "New York" || es[0].Text != "nyc" || es[0].Source != "model" || es[0].Confidence <= 0.5 {
		t.Fatalf("got %+v", es)
	}
}

func TestTrainErrors(t *testing.T) {
	if _, err := Train(context.Background(), &data.Dataset{Examples: []data.Example{{Text: "hi", Intent: "x"}}}, Config{}, nil); err == nil {
		t.Fatal("training without spans succeeded")
	}
	if err := (Config{Epochs: -1}).Validate(); err == nil {
		t.Fatal("negative epochs accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ds := &data.Dataset{Examples: []data.Example{{Text: "a b", Entities: []data.Span{{Type: "x", Start: 0, End: 1}}}}}
	if _, err := Train(ctx, ds, Config{}, nil); err == nil {
		t.Fatal("cancelled training succeeded")
	}
}

// --- ONNX ---------------------------------------------------------------------

func openRuntime(t testing.TB) *models.Runtime {
	rt, err := models.OpenRuntime(testenv.ONNXRuntimeLib(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	return rt
}

func TestONNXMatchesGo(t *testing.T) {
	rt := openRuntime(t)
	m, valid := smallSNIPS(t)
	dir := t.TempDir()
	files, err := m.Save(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 4 {
		t.Fatalf("files %v", files)
	}
	fp32, err := LoadWith(rt, dir, Options{FP32: true, Sessions: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer fp32.Close()
	int8T, err := Load(rt, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer int8T.Close()
	q := m.Quantized()
	ctx := context.Background()
	worst32, worst8 := 0.0, 0.0
	for _, e := range valid[:100] {
		_, want := m.Emissions(e.Text)
		_, got, err := fp32.Emissions(ctx, e.Text)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%q: %d scores, want %d", e.Text, len(got), len(want))
		}
		for i := range want {
			worst32 = math.Max(worst32, math.Abs(float64(got[i]-want[i])))
		}
		_, wantQ := q.Emissions(e.Text)
		_, gotQ, err := int8T.Emissions(ctx, e.Text)
		if err != nil {
			t.Fatal(err)
		}
		for i := range wantQ {
			worst8 = math.Max(worst8, math.Abs(float64(gotQ[i]-wantQ[i])))
		}
	}
	t.Logf("max |ONNX - Go| fp32 %.2g, int8 (vs Go dequantised) %.2g", worst32, worst8)
	if worst32 > 1e-4 {
		t.Fatalf("fp32 ONNX differs from the Go forward pass by %g", worst32)
	}
	if worst8 > 1e-4 {
		t.Fatalf("int8 ONNX differs from the Go dequantised forward pass by %g", worst8)
	}
	// Batched tagging equals single tagging equals the Go model (fp32).
	texts := make([]string, 0, 150)
	for _, e := range valid[:150] {
		texts = append(texts, e.Text)
	}
	batch, err := fp32.TagBatch(ctx, texts)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := m.TagBatch(ctx, texts)
	for i := range texts {
		one, err := fp32.Tag(ctx, texts[i])
		if err != nil {
			t.Fatal(err)
		}
		if summary(one) != summary(batch[i]) || summary(one) != summary(ref[i]) {
			t.Fatalf("%q: single %s, batch %s, Go %s", texts[i], summary(one), summary(batch[i]), summary(ref[i]))
		}
	}
	// int8 vs fp32 accuracy.
	m32, err := Evaluate(ctx, fp32, valid)
	if err != nil {
		t.Fatal(err)
	}
	m8, err := Evaluate(ctx, int8T, valid)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("validate micro F1: fp32 %.4f int8 %.4f", m32.MicroF1, m8.MicroF1)
	if math.Abs(m32.MicroF1-m8.MicroF1) > 0.005 {
		t.Fatalf("int8 F1 %.4f vs fp32 %.4f: more than 0.5 points apart", m8.MicroF1, m32.MicroF1)
	}
	st8, _ := os.Stat(filepath.Join(dir, FileONNX))
	st32, _ := os.Stat(filepath.Join(dir, FileONNXFP32))
	if ratio := float64(st8.Size()) / float64(st32.Size()); ratio > 0.3 {
		t.Fatalf("int8 file is %.0f%% of fp32", 100*ratio)
	}
}

func TestLoadRejectsTamperedFiles(t *testing.T) {
	rt := openRuntime(t)
	m, _ := smallSNIPS(t)
	dir := t.TempDir()
	if _, err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, FileONNX)
	b, _ := os.ReadFile(p)
	b[len(b)-1] ^= 1
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(rt, dir); err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("tampered model loaded: %v", err)
	}
	if _, err := Load(rt, t.TempDir()); err == nil {
		t.Fatal("empty directory loaded")
	}
}

func TestTaggerConcurrent(t *testing.T) {
	rt := openRuntime(t)
	m, valid := smallSNIPS(t)
	dir := t.TempDir()
	if _, err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
	tg, err := LoadWith(rt, dir, Options{Sessions: 2, MaxBatch: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	ctx := context.Background()
	texts := make([]string, 40)
	for i := range texts {
		texts[i] = valid[i*7].Text
	}
	want, err := tg.TagBatch(ctx, texts)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := tg.TagBatch(ctx, texts)
			if err != nil {
				t.Error(err)
				return
			}
			for i := range got {
				if summary(got[i]) != summary(want[i]) {
					t.Errorf("concurrent result differs for %q", texts[i])
				}
			}
		}()
	}
	wg.Wait()
	// Alone, each text gets what it got in its batch: a call's arrays are
	// reused from a pool, and nothing of a larger earlier call may remain.
	for i, s := range texts {
		got, err := tg.TagBatch(ctx, []string{s})
		if err != nil || summary(got[0]) != summary(want[i]) {
			t.Fatalf("%q alone: %v %v, in a batch: %v", s, got, err, want[i])
		}
	}
	// Edge cases: empty texts, only punctuation, a cancelled context.
	out, err := tg.TagBatch(ctx, []string{"", "  ", "?!", "\xff"})
	if err != nil || len(out) != 4 {
		t.Fatalf("edge cases: %v %v", out, err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := tg.TagBatch(cctx, texts); err == nil {
		t.Fatal("cancelled context accepted")
	}
}

// --- benchmarks ---------------------------------------------------------------

func benchTagger(b *testing.B) (*Tagger, []string) {
	rt := openRuntime(b)
	m, valid := smallSNIPS(b)
	dir := b.TempDir()
	if _, err := m.Save(dir); err != nil {
		b.Fatal(err)
	}
	tg, err := Load(rt, dir)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tg.Close() })
	texts := make([]string, len(valid))
	for i, e := range valid {
		texts[i] = e.Text
	}
	return tg, texts
}

// BenchmarkTagOne tags one message per call (ONNX Runtime, int8).
func BenchmarkTagOne(b *testing.B) {
	tg, texts := benchTagger(b)
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := tg.Tag(ctx, texts[i%len(texts)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkTagBatch tags the 700 SNIPS validate texts per call; the
// msgs/s metric is the throughput.
func BenchmarkTagBatch(b *testing.B) {
	tg, texts := benchTagger(b)
	ctx := context.Background()
	for b.Loop() {
		if _, err := tg.TagBatch(ctx, texts); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(texts))/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkGoTagOne is the pure-Go forward pass for one message.
func BenchmarkGoTagOne(b *testing.B) {
	m, valid := smallSNIPS(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		m.Tag(valid[i%len(valid)].Text)
		i++
	}
}

type fixedTagger map[string][]tandem.Entity

func (f fixedTagger) TagBatch(_ context.Context, texts []string) ([][]tandem.Entity, error) {
	out := make([][]tandem.Entity, len(texts))
	for i, s := range texts {
		out[i] = f[s]
	}
	return out, nil
}

func summary(es []tandem.Entity) string {
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "%s[%d,%d)=%q ", e.Type, e.Start, e.End, e.Value)
	}
	return b.String()
}

var (
	tinyOnce  sync.Once
	tinyM     *Model
	tinyError error
)

// tinyModel is trained in milliseconds on synthetic data (for fuzzing and
// race tests).
func tinyModel(t testing.TB) *Model {
	t.Helper()
	tinyOnce.Do(func() {
		ds := &data.Dataset{Lookups: map[string][]string{"city": {"Lyon"}}}
		cities := []string{"Paris", "Berlin", "New York", "Rome", "北京", "São Paulo"}
		items := []string{"shoes", "a lamp", "two books", "the red bike"}
		for i := 0; i < 60; i++ {
			c, it := cities[i%len(cities)], items[i%len(items)]
			txt := "ship " + it + " to " + c + " please"
			st := len([]rune("ship "))
			cs := st + len([]rune(it)) + len(" to ")
			ds.Examples = append(ds.Examples, data.Example{Text: txt, Entities: []data.Span{
				{Type: "item", Value: it, Start: st, End: st + len([]rune(it))},
				{Type: "city", Value: c, Start: cs, End: cs + len([]rune(c))},
			}})
		}
		tinyM, tinyError = Train(context.Background(), ds, Config{Epochs: 5, Seed: 1, ExportFP32: true}, nil)
	})
	if tinyError != nil {
		t.Fatal(tinyError)
	}
	return tinyM
}

func FuzzTag(f *testing.F) {
	for _, s := range []string{"ship shoes to Paris please", "", "\xff\xfe", "北京 São Paulo", "a\u0301b", strings.Repeat("to Rome ", 200)} {
		f.Add(s)
	}
	m := tinyModel(f)
	f.Fuzz(func(t *testing.T, s string) {
		es := m.Tag(s)
		rs := []rune(s)
		prev := 0
		for _, e := range es {
			if e.Start < prev || e.End <= e.Start || e.End > len(rs) {
				t.Fatalf("bad offsets %+v in %q", e, s)
			}
			if string(rs[e.Start:e.End]) != e.Text {
				t.Fatalf("text %q != runes %q", e.Text, string(rs[e.Start:e.End]))
			}
			if e.Confidence < 0 || e.Confidence > 1 || math.IsNaN(e.Confidence) {
				t.Fatalf("confidence %v", e.Confidence)
			}
			prev = e.End
		}
		if again := m.Tag(s); summary(again) != summary(es) {
			t.Fatalf("not deterministic on %q", s)
		}
	})
}

// TestTinyTaggerRace exercises the ONNX tagger from many goroutines (run
// with -race).
func TestTinyTaggerRace(t *testing.T) {
	rt := openRuntime(t)
	m := tinyModel(t)
	if es := m.Tag("ship two books to Berlin please"); summary(es) != `item[5,14)="two books" city[18,24)="Berlin" ` {
		t.Fatalf("tiny model: %s", summary(es))
	}
	dir := t.TempDir()
	if _, err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
	tg, err := LoadWith(rt, dir, Options{Sessions: 2, MaxBatch: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	texts := []string{"ship shoes to Paris please", "ship a lamp to Lyon", "", "北京", "ship the red bike to Rome please", "hello"}
	want, _ := m.TagBatch(context.Background(), texts)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				got, err := tg.TagBatch(context.Background(), texts)
				if err != nil {
					t.Error(err)
					return
				}
				for k := range got {
					if summary(got[k]) != summary(want[k]) {
						t.Errorf("%q: ONNX %s, Go %s", texts[k], summary(got[k]), summary(want[k]))
					}
				}
				if _, err := tg.Tag(context.Background(), texts[(g+i)%len(texts)]); err != nil {
					t.Error(err)
				}
			}
		}(g)
	}
	wg.Wait()
}

// TestRuleFeatures: with FeatureConfig.Rules, tokens inside an nlp/rules
// entity carry its type as a feature (and only then).
func TestRuleFeatures(t *testing.T) {
	fc := DefaultFeatureConfig()
	fc.Rules = true
	s := "please send EUR 40 to my savings"
	toks := Tokens(s)
	feats := fc.featurize(s, toks, nil)
	want := fc.start("R").str("B").str("money").sum()
	found := false
	for _, h := range feats[2] { // "EUR"
		found = found || h == want
	}
	if !found {
		t.Fatal("no rule feature on the money token")
	}
	fc.Rules = false
	for _, h := range fc.featurize(s, toks, nil)[2] {
		if h == want {
			t.Fatal("rule feature present with Rules off")
		}
	}
}
