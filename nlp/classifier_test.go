package nlp

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/internal/testenv"
	"github.com/tandem-chat/tandem/models"
	"github.com/tandem-chat/tandem/nlp/data"
	"github.com/tandem-chat/tandem/nlp/intent"
)

func toyDataset(n int, seed uint64) *data.Dataset {
	rng := rand.New(rand.NewPCG(seed, 3))
	tmpl := map[string][]string{
		"track_order":     {"where is my order %s", "track order %s please", "has order %s shipped", "when will %s arrive"},
		"refund":          {"i want a refund for %s", "refund order %s", "money back for %s please", "return %s for a refund"},
		"greet":           {"hello %s", "hi there %s", "good morning %s", "hey %s"},
		"zh_weather":      {"今天%s天气怎么样", "%s明天会下雨吗", "查一下%s的天气", "%s天气预报"},
		tandem.OutOfScope: {"what is the capital of %s", "tell me a joke about %s", "who won the game %s", "sing a song about %s"},
	}
	fills := []string{"ord-123", "the blue shoes", "my laptop", "alice", "北京", "上海", "item 42"}
	ds := &data.Dataset{Source: "toy"}
	for _, l := range []string{"greet", tandem.OutOfScope, "refund", "track_order", "zh_weather"} {
		for i := 0; i < n; i++ {
			t := tmpl[l][rng.IntN(len(tmpl[l]))]
			ds.Examples = append(ds.Examples, data.Example{Text: fmt.Sprintf(t, fills[rng.IntN(len(fills))]), Intent: l})
		}
	}
	return ds
}

func trainToyDir(t testing.TB) (string, *TrainResult) {
	t.Helper()
	cfg := intent.DefaultConfig()
	cfg.Hidden, cfg.Members, cfg.Epochs = 16, 2, 8
	cfg.Features.Buckets = 1 << 16
	dir := filepath.Join(t.TempDir(), "model")
	res, err := TrainDir(context.Background(), TrainOptions{Data: toyDataset(30, 1), Out: dir, FP32Out: dir + "-fp32", Intent: cfg, Name: "toy"})
	if err != nil {
		t.Fatal(err)
	}
	return dir, res
}

func TestClassifier(t *testing.T) {
	rt, err := models.OpenRuntime(testenv.ONNXRuntimeLib(t))
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	dir, res := trainToyDir(t)
	man := res.Manifest
	if man.Precision != "int8" || man.Models["intent"].Threshold != res.Intent.Threshold || man.Data.Digest == "" || len(man.Files) != 2 {
		t.Fatalf("manifest %+v", man)
	}
	c, err := LoadClassifier(rt, dir, Options{Sessions: 2, TopK: 3, MaxBatch: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	test := toyDataset(8, 42)
	var texts []string
	for _, ex := range test.Examples {
		texts = append(texts, ex.Text)
	}
	batch, err := c.ClassifyBatch(ctx, texts)
	if err != nil {
		t.Fatal(err)
	}
	ok := 0
	for i, ex := range test.Examples {
		single, err := c.Classify(ctx, ex.Text)
		if err != nil {
			t.Fatal(err)
		}
		// Batching (padding) must not change results.
		if d := single.Intent.Confidence - batch[i].Intent.Confidence; single.Intent.Name != batch[i].Intent.Name || d > 1e-5 || d < -1e-5 {
			t.Fatalf("%q: single %+v, batch %+v", ex.Text, single.Intent, batch[i].Intent)
		}
		if len(single.Ranking) != 3 || single.Ranking[0] != single.Intent || single.Ranking[1].Confidence > single.Ranking[0].Confidence {
			t.Fatalf("ranking %+v", single.Ranking)
		}
		// The ONNX model agrees with the trainer's forward pass.
		ref := res.Intent.Predict(ex.Text)
		if ref.Label != single.Intent.Name {
			t.Fatalf("%q: onnx %s, reference %s", ex.Text, single.Intent.Name, ref.Label)
		}
		pred := single.Intent.Name
		if single.OutOfScope {
			pred = tandem.OutOfScope
		}
		if pred == ex.Intent {
			ok++
		}
	}
	if acc := float64(ok) / float64(len(test.Examples)); acc < 0.85 {
		t.Fatalf("accuracy %.3f", acc)
	}
	// Concurrent use.
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				if _, err := c.ClassifyBatch(ctx, texts[:5]); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	// Empty input, texts without features, and cancelled context.
	if out, err := c.ClassifyBatch(ctx, nil); err != nil || len(out) != 0 {
		t.Fatalf("empty batch: %v %v", out, err)
	}
	if out, err := c.ClassifyBatch(ctx, []string{"", "  !! ", "qqqq zzzz"}); err != nil || len(out) != 3 || out[0].Intent.Name == "" {
		t.Fatalf("featureless batch: %+v %v", out, err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	hold := make([]*models.Session, 0, 2)
	for i := 0; i < 2; i++ {
		s, err := c.pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		hold = append(hold, s)
	}
	if _, err := c.Classify(cctx, "hello"); err == nil {
		t.Fatal("cancelled context with a busy pool did not fail")
	}
	for _, s := range hold {
		c.pool.Release(s)
	}
	// The fp32 export loads too and agrees.
	c32, err := LoadClassifier(rt, dir+"-fp32", Options{Sessions: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c32.Close()
	r32, _ := c32.Classify(ctx, texts[0])
	if r32.Intent.Name != batch[0].Intent.Name {
		t.Fatalf("fp32 %s vs int8 %s", r32.Intent.Name, batch[0].Intent.Name)
	}
}

func TestClassifierRejectsTamperedDir(t *testing.T) {
	rt, err := models.OpenRuntime(testenv.ONNXRuntimeLib(t))
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	dir, _ := trainToyDir(t)
	f, _ := os.OpenFile(filepath.Join(dir, intent.FileONNX), os.O_APPEND|os.O_WRONLY, 0)
	f.Write([]byte{0})
	f.Close()
	if _, err := LoadClassifier(rt, dir, Options{}); err == nil {
		t.Fatal("tampered model loaded")
	}
	if _, err := LoadClassifier(rt, t.TempDir(), Options{}); err == nil {
		t.Fatal("empty dir loaded")
	}
}

// benchDir is $TANDEM_MODEL_DIR (the default models, `make bench`) or a toy model.
func benchClassifier(b *testing.B) (*Classifier, func()) {
	rt, err := models.OpenRuntime(testenv.ONNXRuntimeLib(b))
	if err != nil {
		b.Fatal(err)
	}
	dir := os.Getenv("TANDEM_MODEL_DIR")
	if dir == "" {
		dir, _ = trainToyDir(b)
	}
	c, err := LoadClassifier(rt, dir, Options{})
	if err != nil {
		b.Fatal(err)
	}
	return c, func() { c.Close(); rt.Close() }
}

var benchTexts = []string{
	"hi, where is my order ORD-482913? it was supposed to arrive yesterday",
	"I want to cancel my order",
	"how do I get a refund for the shoes",
	"can I talk to a human please",
	"what's the weather in Paris",
	"my payment did not go through, what should I do",
	"change my shipping address to Berlin",
	"thanks, bye",
}

// BenchmarkClassifySingle is one message per ONNX Runtime call on one
// goroutine (latency).
func BenchmarkClassifySingle(b *testing.B) {
	c, done := benchClassifier(b)
	defer done()
	ctx := context.Background()
	lat := make([]time.Duration, 0, 1<<16)
	i := 0
	for b.Loop() {
		t0 := time.Now()
		if _, err := c.Classify(ctx, benchTexts[i%len(benchTexts)]); err != nil {
			b.Fatal(err)
		}
		if len(lat) < cap(lat) {
			lat = append(lat, time.Since(t0))
		}
		i++
	}
	reportP50(b, lat)
}

// BenchmarkClassifyBatchParallel is 64 messages per call from all cores
// (throughput); msgs/s is the figure.
func BenchmarkClassifyBatchParallel(b *testing.B) {
	c, done := benchClassifier(b)
	defer done()
	ctx := context.Background()
	batch := make([]string, 64)
	for i := range batch {
		batch[i] = benchTexts[i%len(benchTexts)]
	}
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.ClassifyBatch(ctx, batch); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N*len(batch))/time.Since(start).Seconds(), "msgs/s")
}

func reportP50(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	b.ReportMetric(float64(s[len(s)/2].Nanoseconds())/1e3, "p50-µs")
}

func TestClassifierOOSScore(t *testing.T) {
	rt, err := models.OpenRuntime(testenv.ONNXRuntimeLib(t))
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	dir, res := trainToyDir(t)
	if s := res.Manifest.Models["intent"].Score; s != intent.ScoreOOSLogRatio || res.Intent.Score != s {
		t.Fatalf("manifest score %q, model %q, want %q", s, res.Intent.Score, intent.ScoreOOSLogRatio)
	}
	c, err := LoadClassifier(rt, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, ex := range toyDataset(8, 7).Examples {
		got, err := c.Classify(ctx, ex.Text)
		if err != nil {
			t.Fatal(err)
		}
		ref := res.Intent.Predict(ex.Text)
		if d := ref.Score - res.Intent.Threshold; got.OutOfScope != ref.OutOfScope && (d > 1e-3 || d < -1e-3) {
			t.Fatalf("%q: served out of scope %v, reference %v (score %v, threshold %v)", ex.Text, got.OutOfScope, ref.OutOfScope, ref.Score, res.Intent.Threshold)
		}
	}
	c.Close()
	// A log-ratio threshold may be overridden with 0 or a negative value
	// (0 was taken for "the model's" and negative values were ignored).
	for _, th := range []float64{0, -2.5} {
		c, err := LoadClassifier(rt, dir, Options{Threshold: &th})
		if err != nil {
			t.Fatalf("threshold %v: %v", th, err)
		}
		if c.Threshold() != th {
			t.Fatalf("threshold %v requested, %v in use", th, c.Threshold())
		}
		c.Close()
	}
	for _, th := range []float64{math.NaN(), math.Inf(1)} {
		if _, err := LoadClassifier(rt, dir, Options{Threshold: &th}); err == nil {
			t.Fatalf("threshold %v accepted", th)
		}
	}
	// A directory written before the manifest named the score: max_prob.
	man, err := models.ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	me := man.Models["intent"]
	me.Score, me.Threshold = "", 0.5
	man.Models["intent"] = me
	if err := man.Seal(dir); err != nil {
		t.Fatal(err)
	}
	c, err = LoadClassifier(rt, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Score() != intent.ScoreMaxProb {
		t.Fatalf("score %q, want %q", c.Score(), intent.ScoreMaxProb)
	}
	for _, th := range []float64{-0.1, 1.5} {
		if _, err := LoadClassifier(rt, dir, Options{Threshold: &th}); err == nil || !strings.Contains(err.Error(), "[0, 1]") {
			t.Fatalf("probability threshold %v: %v", th, err)
		}
	}
	n, err := c.Classify(ctx, "hello alice")
	if err != nil {
		t.Fatal(err)
	}
	if n.OutOfScope != (n.Intent.Name == tandem.OutOfScope || n.Intent.Confidence < 0.5) {
		t.Fatalf("max_prob decision %+v", n)
	}
	c.Close()
	// An unknown score fails with a clear error.
	me.Score = "energy"
	man.Models["intent"] = me
	if err := man.Seal(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadClassifier(rt, dir, Options{}); err == nil || !strings.Contains(err.Error(), `score "energy" unknown`) {
		t.Fatalf("unknown score: %v", err)
	}
}

// TestDecideRanking checks the top-k selection against a full stable sort
// (descending probability, ties in label order) on random vectors with
// many ties.
func TestDecideRanking(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for trial := range 2000 {
		C := 1 + r.IntN(40)
		labels := make([]string, C)
		p := make([]float32, C)
		for i := range p {
			labels[i] = fmt.Sprint("l", i)
			p[i] = float32(r.IntN(6)) / 8 // few distinct values: ties
		}
		c := &Classifier{labels: labels, oos: -1, topK: 1 + r.IntN(6), score: intent.ScoreMaxProb}
		all := make([]int, C)
		for i := range all {
			all[i] = i
		}
		slices.SortStableFunc(all, func(a, b int) int {
			switch {
			case p[a] > p[b]:
				return -1
			case p[a] < p[b]:
				return 1
			}
			return 0
		})
		want := all[:min(c.topK, C)]
		got := c.decide(p).Ranking
		if len(got) != len(want) {
			t.Fatalf("trial %d: %d ranked, want %d", trial, len(got), len(want))
		}
		for k, i := range want {
			if got[k].Name != labels[i] || got[k].Confidence != float64(p[i]) {
				t.Fatalf("trial %d: ranking %v, want labels %v (p %v)", trial, got, want, p)
			}
		}
	}
}
