package intent

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/internal/testenv"
	"github.com/tandem-chat/tandem/models"
	"github.com/tandem-chat/tandem/nlp/data"
)

// ToyData returns a small synthetic dataset with English and Chinese intents
// and out-of-scope examples.
func toyData(n int, seed uint64) *data.Dataset {
	rng := rand.New(rand.NewPCG(seed, 7))
	tmpl := map[string][]string{
		"track_order":     {"where is my order %s", "track order %s please", "has order %s shipped yet", "status of my package %s", "when will %s arrive"},
		"refund":          {"i want a refund for %s", "give me my money back for %s", "refund order %s", "how do i get reimbursed for %s", "return %s for a refund"},
		"greet":           {"hello %s", "hi there %s", "good morning %s", "hey %s", "greetings %s"},
		"cancel_order":    {"cancel order %s", "please cancel %s", "i no longer want %s, cancel it", "stop order %s", "cancel my purchase %s"},
		"zh_weather":      {"今天%s天气怎么样", "%s明天会下雨吗", "%s的气温是多少", "查一下%s的天气", "%s天气预报"},
		tandem.OutOfScope: {"what is the capital of %s", "tell me a joke about %s", "who won the game %s", "how tall is %s", "sing a song about %s"},
	}
	fills := []string{"ord-123", "the blue shoes", "my laptop", "alice", "bob", "北京", "上海", "item 42", "x7", "the red dress"}
	var labels []string
	for l := range tmpl {
		labels = append(labels, l)
	}
	slices.Sort(labels)
	ds := &data.Dataset{Source: "toy"}
	for i := 0; i < n; i++ {
		for _, l := range labels {
			t := tmpl[l][rng.IntN(len(tmpl[l]))]
			ds.Examples = append(ds.Examples, data.Example{Text: fmt.Sprintf(t, fills[rng.IntN(len(fills))]), Intent: l})
		}
	}
	return ds
}

func toyConfig() Config {
	cfg := DefaultConfig()
	cfg.Hidden, cfg.Members, cfg.Epochs = 16, 2, 8
	cfg.Features.Buckets = 1 << 16
	return cfg
}

func trainToy(t testing.TB, threads int) *Model {
	t.Helper()
	cfg := toyConfig()
	cfg.Threads = threads
	m, err := Train(context.Background(), toyData(30, 1), nil, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestTrainLearnsAndIsDeterministic(t *testing.T) {
	a := trainToy(t, 1)
	b := trainToy(t, 2)
	if !slices.Equal(a.E, b.E) || !slices.Equal(a.Wo, b.Wo) || a.Threshold != b.Threshold || a.Temperature != b.Temperature {
		t.Fatal("training is not deterministic across thread counts")
	}
	test := toyData(10, 99)
	ok := 0
	for _, ex := range test.Examples {
		if a.Predict(ex.Text).Label == ex.Intent {
			ok++
		}
	}
	if acc := float64(ok) / float64(len(test.Examples)); acc < 0.9 {
		t.Fatalf("toy accuracy %.3f < 0.9", acc)
	}
	if p := a.Predict("上海明天会下雨吗"); p.Label != "zh_weather" {
		t.Fatalf("Chinese text classified as %s", p.Label)
	}
	if a.Temperature <= 0 || a.Validation.Examples == 0 {
		t.Fatalf("not calibrated: T=%v validation %+v", a.Temperature, a.Validation)
	}
	cfg := toyConfig()
	cfg.Seed = 2
	c, err := Train(context.Background(), toyData(30, 1), nil, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Equal(a.E, c.E) {
		t.Fatal("different seeds gave identical weights")
	}
}

func TestTrainErrors(t *testing.T) {
	one := &data.Dataset{Examples: []data.Example{{Text: "a", Intent: "x"}, {Text: "b", Intent: "x"}}}
	if _, err := Train(context.Background(), one, nil, toyConfig(), nil); err == nil {
		t.Fatal("one intent accepted")
	}
	bad := toyConfig()
	bad.Hidden = 0
	if _, err := Train(context.Background(), toyData(3, 1), nil, bad, nil); err == nil {
		t.Fatal("invalid config accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Train(ctx, toyData(30, 1), nil, toyConfig(), nil); err == nil {
		t.Fatal("cancelled context ignored")
	}
}

func TestQuantizeRows(t *testing.T) {
	x := []float32{0, 0, 0, 1, -2, 0.5, 0.001, 0.002, -0.003}
	q, s := QuantizeRows(x, 3, 3)
	if s[0] != 0 || q[0] != 0 {
		t.Fatal("zero row")
	}
	for r := 0; r < 3; r++ {
		for c := 0; c < 3; c++ {
			got := float32(q[r*3+c]) * s[r]
			if d := math.Abs(float64(got - x[r*3+c])); d > float64(s[r])/2+1e-9 {
				t.Fatalf("row %d col %d: %v vs %v", r, c, got, x[r*3+c])
			}
		}
	}
}

// TestONNXMatchesForward runs the exported graphs in ONNX Runtime and
// compares them with the trainer's own forward pass: fp32 within 1e-4,
// int8 within the quantisation error.
func TestONNXMatchesForward(t *testing.T) {
	rt, err := models.OpenRuntime(testenv.ONNXRuntimeLib(t))
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	m := trainToy(t, 0)
	if m.Lin == nil {
		t.Fatal("the default configuration has no linear branch")
	}
	texts := []string{"where is my order ord-123", "hello bob", "今天北京天气怎么样", "", "zzzz unknown words qqq", "Cancel ORDER x7!!"}
	C := m.NumLabels()
	// Reference logits.
	var rows [][]int32
	var ws [][]float32
	L := 1
	want := make([]float32, len(texts)*C)
	h := make([]float32, m.Hidden)
	for i, s := range texts {
		r, w := m.Featurizer.Vector(s, nil, nil)
		rows, ws = append(rows, r), append(ws, w)
		L = max(L, len(r))
		m.Logits(r, w, h, want[i*C:i*C+C])
	}
	ids := make([]int64, len(texts)*L)
	wts := make([]float32, len(texts)*L)
	for i := range texts {
		for j := range rows[i] {
			ids[i*L+j] = int64(rows[i][j])
			wts[i*L+j] = ws[i][j]
		}
	}
	for _, tc := range []struct {
		int8 bool
		tol  float64
	}{{false, 1e-4}, {true, 0.05}} {
		sess, err := rt.NewSession(m.ONNX(tc.int8), []string{InputIDs, InputWeights}, []string{OutputLogits, OutputProbs})
		if err != nil {
			t.Fatal(err)
		}
		idT, _ := ort.NewTensor(ort.NewShape(int64(len(texts)), int64(L)), ids)
		wT, _ := ort.NewTensor(ort.NewShape(int64(len(texts)), int64(L)), wts)
		outs := []ort.Value{nil, nil}
		if err := sess.Run([]ort.Value{idT, wT}, outs); err != nil {
			t.Fatal(err)
		}
		got := outs[0].(*ort.Tensor[float32]).GetData()
		probs := outs[1].(*ort.Tensor[float32]).GetData()
		var maxDiff float64
		for i := range want {
			maxDiff = max(maxDiff, math.Abs(float64(got[i]-want[i])))
		}
		if maxDiff > tc.tol {
			t.Errorf("int8=%v: max |onnx - forward| = %g > %g", tc.int8, maxDiff, tc.tol)
		}
		p := make([]float64, C)
		for i := range texts {
			best := Softmax(want[i*C:i*C+C], m.Temperature, p)
			var sum float64
			for c := 0; c < C; c++ {
				sum += float64(probs[i*C+c])
				if !tc.int8 && math.Abs(float64(probs[i*C+c])-p[c]) > 1e-4 {
					t.Errorf("prob %d/%d: onnx %v, forward %v", i, c, probs[i*C+c], p[c])
				}
			}
			if math.Abs(sum-1) > 1e-4 {
				t.Errorf("probs of text %d sum to %v", i, sum)
			}
			if !tc.int8 && slices.Index(probs[i*C:i*C+C], slices.Max(probs[i*C:i*C+C])) != best {
				t.Errorf("text %d: arg max differs", i)
			}
		}
		t.Logf("int8=%v: max logit difference %g", tc.int8, maxDiff)
		idT.Destroy()
		wT.Destroy()
		outs[0].Destroy()
		outs[1].Destroy()
		sess.Close()
	}
}

func TestChooseThresholdWithoutOOS(t *testing.T) {
	gold := []string{"a", "a", "b", "b", "b", "a"}
	top := []string{"a", "b", "b", "b", "a", "a"}
	conf := []float64{0.9, 0.3, 0.55, 0.8, 0.4, 0.7}
	// Correct answers have confidences 0.9, 0.55, 0.8, 0.7: the threshold is
	// the least confident of them, so none of them is rejected.
	if got := ChooseThreshold(gold, top, conf, 0.05, 0); got != 0.55 {
		t.Fatalf("maxReject 0: threshold %v, want 0.55", got)
	}
	for i, p := range thresholded(top, conf, 0.55) {
		if gold[i] == top[i] && p != top[i] {
			t.Fatalf("a correct validation answer (%d) is rejected", i)
		}
	}
	// maxReject 0.5 rejects the two least confident correct answers.
	if got := ChooseThreshold(gold, top, conf, 0.05, 0.5); got != 0.8 {
		t.Fatalf("maxReject 0.5: threshold %v, want 0.8", got)
	}
	if got := ChooseThreshold(gold, top, conf, 0.05, 0.99); got != 0.9 {
		t.Fatalf("maxReject 0.99: threshold %v, want 0.9", got)
	}
	if got := ChooseThreshold([]string{"a"}, []string{"b"}, []float64{0.9}, 0.05, 0); got != 0 {
		t.Fatalf("no correct answer: threshold %v, want 0", got)
	}
}

func TestChooseThresholdWithOOS(t *testing.T) {
	// Three oos texts with low confidence, in-scope texts above them: the
	// threshold separates them (one text at 0.4 is within the error, two
	// are not); an oos prior of 0 keeps threshold 0.
	gold := []string{"a", "a", "b", tandem.OutOfScope, tandem.OutOfScope, tandem.OutOfScope, "b"}
	top := []string{"a", "a", "b", "a", "b", "a", "b"}
	conf := []float64{0.9, 0.8, 0.7, 0.3, 0.4, 0.4, 0.95}
	got := ChooseThreshold(gold, top, conf, 0.05, 0)
	if got != 0.41 {
		t.Fatalf("threshold %v, want the lowest separating one, 0.41", got)
	}
	if got := ChooseThreshold(gold, top, conf, 0, 0); got != 0 {
		t.Fatalf("prior 0: threshold %v, want 0", got)
	}
}

func TestTrainWithoutOOSRejectsNoCorrectValidationAnswer(t *testing.T) {
	ds := toyData(30, 1)
	kept := ds.Examples[:0]
	for _, ex := range ds.Examples {
		if ex.Intent != tandem.OutOfScope {
			kept = append(kept, ex)
		}
	}
	ds.Examples = kept
	cfg := toyConfig()
	cfg.Refit = false
	m, err := Train(context.Background(), ds, nil, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.Threshold <= 0 {
		t.Fatalf("threshold %v, want the lowest correct validation confidence (> 0)", m.Threshold)
	}
	// Every correct validation answer is kept: in-scope accuracy at the
	// threshold equals top-1 accuracy.
	_, valid := Split(ds.Examples, cfg.ValidFraction, cfg.OOSValidFraction, cfg.Seed)
	ok, kept2 := 0, 0
	for _, ex := range valid {
		p := m.Predict(ex.Text)
		if p.Label == ex.Intent {
			ok++
			if !p.OutOfScope {
				kept2++
			}
		}
	}
	if ok == 0 || kept2 != ok {
		t.Fatalf("%d of %d correct validation answers kept at threshold %v", kept2, ok, m.Threshold)
	}
	if m.Validation.InScopeAccuracy != float64(ok)/float64(len(valid)) {
		t.Fatalf("validation in-scope accuracy %v, top-1 %v", m.Validation.InScopeAccuracy, float64(ok)/float64(len(valid)))
	}
}

func TestOOSScore(t *testing.T) {
	p := []float64{0.5, 0.3, 0.2} // label 2 is oos
	if got := OOSScore(ScoreMaxProb, p, 0, 2); got != 0.5 {
		t.Fatalf("max_prob %v", got)
	}
	if got := OOSScore("", p, 0, 2); got != 0.5 {
		t.Fatalf("empty kind %v, want max_prob", got)
	}
	if got, want := OOSScore(ScoreOOSLogRatio, p, 0, 2), math.Log(0.5/0.2); math.Abs(got-want) > 1e-12 {
		t.Fatalf("log ratio %v, want %v", got, want)
	}
	// Top label oos: the ratio uses the best in-scope intent (negative).
	q := []float32{0.1, 0.3, 0.6}
	if got, want := OOSScore(ScoreOOSLogRatio, q, 2, 2), math.Log(0.3/0.6); math.Abs(got-want) > 1e-6 {
		t.Fatalf("log ratio with oos on top %v, want %v", got, want)
	}
	// No oos label: the top probability.
	if got := OOSScore(ScoreOOSLogRatio, p, 0, -1); got != 0.5 {
		t.Fatalf("log ratio without oos %v, want 0.5", got)
	}
	// The log ratio does not penalise probability shared between in-scope
	// intents: two similar intents at 0.45 each beat 0.6 with oos at 0.3.
	shared, sure := []float64{0.45, 0.45, 0.1}, []float64{0.6, 0.1, 0.3}
	if OOSScore(ScoreOOSLogRatio, shared, 0, 2) <= OOSScore(ScoreOOSLogRatio, sure, 0, 2) {
		t.Fatal("shared in-scope probability scored as more out of scope")
	}
}

func TestRejectThreshold(t *testing.T) {
	gold := []string{"a", "a", "b", tandem.OutOfScope, "b", tandem.OutOfScope}
	top := []string{"a", "b", "b", tandem.OutOfScope, "b", "a"}
	score := []float64{3, -1, 1, -5, 2, 0.5}
	// Correct in-scope answers score 3, 1, 2 (the correct oos answer does not count).
	for _, tc := range []struct{ reject, want float64 }{{0, 1}, {0.34, 2}, {0.99, 3}} {
		if got := RejectThreshold(gold, top, score, tc.reject); got != tc.want {
			t.Fatalf("reject %v: threshold %v, want %v", tc.reject, got, tc.want)
		}
	}
}

func TestTrainLogRatioThreshold(t *testing.T) {
	cfg := toyConfig()
	cfg.Refit = false
	m, err := Train(context.Background(), toyData(30, 1), nil, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.Score != ScoreOOSLogRatio {
		t.Fatalf("score %q, want %q (the data has oos)", m.Score, ScoreOOSLogRatio)
	}
	cfg.OOSScore = ScoreMaxProb
	m2, err := Train(context.Background(), toyData(30, 1), nil, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m2.Score != ScoreMaxProb || m2.Threshold < 0 || m2.Threshold > 1 {
		t.Fatalf("max_prob: score %q threshold %v", m2.Score, m2.Threshold)
	}
	cfg.OOSScore = "energy"
	if _, err := Train(context.Background(), toyData(30, 1), nil, cfg, nil); err == nil {
		t.Fatal("unknown oos_score accepted")
	}
}

// TestAverager checks the lazy averager against the mean of explicit
// snapshots of a table updated sparsely.
func TestAverager(t *testing.T) {
	const rows, width, total = 5, 3, 40
	rng := rand.New(rand.NewPCG(7, 7))
	for _, share := range []float64{0.25, 0.5, 1} {
		p := make([]float32, rows*width)
		a := newAverager(rows, width, total, share)
		n := total - a.start
		want := make([]float64, rows*width)
		for step := 1; step <= total; step++ {
			for r := range rows {
				if rng.IntN(3) != 0 {
					continue // most rows are left alone in most updates
				}
				row := p[r*width : r*width+width]
				a.before(r, row, step)
				for i := range row {
					row[i] += float32(rng.NormFloat64())
				}
				a.after(r, row, step)
			}
			if step > total-n {
				for i, v := range p {
					want[i] += float64(v) / float64(n)
				}
			}
		}
		a.finish(p, total)
		for i, v := range p {
			if math.Abs(float64(v)-want[i]) > 1e-4 {
				t.Fatalf("share %v: entry %d is %v, want the mean %v", share, i, v, want[i])
			}
		}
	}
	if newAverager(rows, width, total, 0) != nil {
		t.Fatal("share 0 must not average")
	}
	if decayed(0, 5, 10) != 1 || decayed(1, 1, 10) != 1 || decayed(1, 10, 10) != 0 || decayed(0.5, 10, 10) != 0.5 {
		t.Fatal("decayed: wrong schedule")
	}
}

// TestChooseThresholdOneStandardError: one out-of-scope text a little more
// confident than the other twenty does not decide the threshold (the score
// it adds is within the paired difference's error); seven do; and a lower
// threshold that only loses (the same in-scope accuracy, lower recall) is
// not taken.
func TestChooseThresholdOneStandardError(t *testing.T) {
	build := func(nIn, nWrong, nOOSLabelled int, oosConf []float64) (gold, top []string, conf []float64) {
		for i := range nIn {
			gold = append(gold, "a")
			if i < nIn-nWrong {
				top = append(top, "a")
			} else {
				top = append(top, "b")
			}
			conf = append(conf, 0.9)
		}
		for range nOOSLabelled {
			gold, top, conf = append(gold, tandem.OutOfScope), append(top, tandem.OutOfScope), append(conf, 0.9)
		}
		for _, c := range oosConf {
			gold, top, conf = append(gold, tandem.OutOfScope), append(top, "b"), append(conf, c)
		}
		return
	}
	one := append(slices.Repeat([]float64{0.3}, 20), 0.6)
	gold, top, conf := build(200, 10, 0, one)
	if got := ChooseThreshold(gold, top, conf, 0.05, 0); got != 0.31 {
		t.Fatalf("threshold %v, want 0.31 (the 0.6 text is within one standard error)", got)
	}
	gold, top, conf = build(200, 10, 0, append(slices.Repeat([]float64{0.3}, 14), slices.Repeat([]float64{0.6}, 7)...))
	if got := ChooseThreshold(gold, top, conf, 0.05, 0); got != 0.61 {
		t.Fatalf("seven texts at 0.6: threshold %v, want 0.61", got)
	}
	gold, top, conf = build(500, 50, 52, slices.Repeat([]float64{0.3}, 7))
	if got := ChooseThreshold(gold, top, conf, 0.05, 0); got != 0.31 {
		t.Fatalf("a lower threshold that only loses: %v, want 0.31", got)
	}
}
