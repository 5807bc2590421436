// Command report trains the entity tagger on the public benchmarks and
// prints the figures recorded in docs/benchmarks.md (## Entities) as
// Markdown, reproducibly:
//
//	go run ./nlp/entity/internal/report                  # SNIPS + NLU++ + speed
//	go run ./nlp/entity/internal/report -dev             # tuning run: hold out 1/10 of SNIPS train
//
// SNIPS: train on train, test on validate. NLU++ banking: train on folds
// 0-9, test on folds 10-19. The test data is never seen in training; -dev
// tunes on a slice of the training data only.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"time"

	"github.com/tandem-chat/tandem/models"
	"github.com/tandem-chat/tandem/nlp/data"
	"github.com/tandem-chat/tandem/nlp/entity"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

type result struct {
	Name       string          `json:"name"`
	Train      string          `json:"train"`
	Test       string          `json:"test"`
	Seconds    float64         `json:"train_seconds"`
	Features   int             `json:"features"`
	GoF1       entity.Metrics  `json:"go_fp32"`
	FP32       *entity.Metrics `json:"onnx_fp32,omitempty"`
	Int8       *entity.Metrics `json:"onnx_int8,omitempty"`
	BytesInt8  int64           `json:"bytes_int8_dir,omitempty"`
	BytesFP32  int64           `json:"bytes_fp32_onnx,omitempty"`
	BytesONNX8 int64           `json:"bytes_int8_onnx,omitempty"`
}

func run() error {
	var (
		snips     = flag.String("snips", "../shared/datasets/snips", "SNIPS directory")
		nlupp     = flag.String("nlupp", "../shared/datasets/nlupp-banking", "NLU++ banking directory (empty: skip)")
		lib       = flag.String("onnxruntime", envOr("ONNXRUNTIME_LIB", ".deps/onnxruntime/libonnxruntime.so.1"), "ONNX Runtime library")
		seed      = flag.Int64("seed", 1, "training seed")
		epochs    = flag.Int("epochs", 0, "epochs (0: default)")
		l2        = flag.Float64("l2", 0, "L2 (0: default)")
		out       = flag.String("out", "", "model directory for the SNIPS model (default: a temporary directory)")
		dev       = flag.Bool("dev", false, "tuning run: train on 9/10 of SNIPS train, test on the other 1/10")
		speedN    = flag.Int("speed-n", 3000, "single-message calls in the latency run")
		jsonOut   = flag.String("json", "", "also write the results as JSON to this file")
		withRules = flag.Bool("rules", false, "enable rule-type features")
		nluppOnly = flag.Bool("nlupp-only", false, "only NLU++ (tuning)")
	)
	flag.Parse()
	ctx := context.Background()
	cfg := entity.Config{Seed: *seed, Epochs: *epochs, L2: *l2, ExportFP32: true, Features: entity.DefaultFeatureConfig()}
	cfg.Features.Rules = *withRules
	var results []result
	if *nluppOnly {
		tr, err := data.Load("nlupp:" + *nlupp + "#0-9")
		if err != nil {
			return err
		}
		te, err := data.Load("nlupp:" + *nlupp + "#10-19")
		if err != nil {
			return err
		}
		m, err := entity.Train(ctx, tr, cfg, os.Stderr)
		if err != nil {
			return err
		}
		met, err := entity.Evaluate(ctx, m, te.Examples)
		if err != nil {
			return err
		}
		fmt.Printf("NLU++ micro F1 %.4f (P %.4f R %.4f)\n", met.MicroF1, met.Precision, met.Recall)
		for _, t := range sortedTypes(met) {
			fmt.Printf("  %-20s %.3f %d\n", t, met.PerType[t].F1, met.PerType[t].Support)
		}
		return nil
	}

	// SNIPS.
	trainDS, err := data.Load("snips:" + *snips + "#train")
	if err != nil {
		return err
	}
	testSpec := "snips:" + *snips + "#validate"
	var test []data.Example
	if *dev {
		var tr []data.Example
		for i, e := range trainDS.Examples {
			if i%10 == 9 {
				test = append(test, e)
			} else {
				tr = append(tr, e)
			}
		}
		trainDS.Examples = tr
		testSpec = "1/10 of snips train (dev)"
	} else {
		ts, err := data.Load(testSpec)
		if err != nil {
			return err
		}
		test = ts.Examples
	}
	dir := *out
	if dir == "" {
		if dir, err = os.MkdirTemp("", "tandem-entity-*"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	rt, err := models.OpenRuntime(*lib)
	if err != nil {
		return err
	}
	defer rt.Close()
	r, tg, err := trainEval(ctx, rt, "SNIPS", "snips:"+*snips+"#train", trainDS, testSpec, test, cfg, dir)
	if err != nil {
		return err
	}
	results = append(results, r)
	lat, thr, err := speed(ctx, rt, dir, test, *speedN)
	tg.Close()
	if err != nil {
		return err
	}

	// NLU++.
	if *nlupp != "" && !*dev {
		tr, err := data.Load("nlupp:" + *nlupp + "#0-9")
		if err != nil {
			return err
		}
		te, err := data.Load("nlupp:" + *nlupp + "#10-19")
		if err != nil {
			return err
		}
		ndir, err := os.MkdirTemp("", "tandem-entity-nlupp-*")
		if err != nil {
			return err
		}
		defer os.RemoveAll(ndir)
		r, tg, err := trainEval(ctx, rt, "NLU++ banking", "nlupp:"+*nlupp+"#0-9", tr, "nlupp:"+*nlupp+"#10-19", te.Examples, cfg, ndir)
		if err != nil {
			return err
		}
		tg.Close()
		results = append(results, r)
	}

	// Markdown.
	fmt.Printf("Machine: %d cores (GOMAXPROCS %d), %s/%s, %s, ONNX Runtime %s. Date: %s.\n\n",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH, runtime.Version(), rt.Version(), time.Now().Format("2006-01-02"))
	fmt.Println("| data (train -> test) | micro F1 int8 ONNX | P | R | fp32 ONNX | Go fp32 | train time | features | entity.onnx int8 | fp32 ONNX |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range results {
		fmt.Printf("| %s (%s -> %s) | **%.4f** | %.4f | %.4f | %.4f | %.4f | %.0f s | %d | %s | %s |\n", r.Name, r.Train, r.Test,
			r.Int8.MicroF1, r.Int8.Precision, r.Int8.Recall, r.FP32.MicroF1, r.GoF1.MicroF1, r.Seconds, r.Features,
			mib(r.BytesONNX8), mib(r.BytesFP32))
	}
	for _, r := range results {
		fmt.Printf("\n%s per type (int8 ONNX; F1, support):\n\n", r.Name)
		fmt.Println("| type | P | R | F1 | support |")
		fmt.Println("|---|---|---|---|---|")
		types := make([]string, 0, len(r.Int8.PerType))
		for t := range r.Int8.PerType {
			types = append(types, t)
		}
		sort.Slice(types, func(i, j int) bool {
			a, b := r.Int8.PerType[types[i]], r.Int8.PerType[types[j]]
			if a.Support != b.Support {
				return a.Support > b.Support
			}
			return types[i] < types[j]
		})
		for _, t := range types {
			f := r.Int8.PerType[t]
			fmt.Printf("| %s | %.3f | %.3f | %.3f | %d |\n", t, f.Precision, f.Recall, f.F1, f.Support)
		}
	}
	fmt.Printf("\nSpeed (SNIPS model, int8 ONNX, %s test texts):\n\n", results[0].Name)
	fmt.Printf("- one message per call, 1 goroutine, 1 session: p50 %s, p90 %s, p99 %s (%d calls)\n", lat[0], lat[1], lat[2], *speedN)
	fmt.Printf("- TagBatch of %d texts (64 per ONNX Runtime call, %d sessions): %.0f messages/s\n", len(test), runtime.GOMAXPROCS(0), thr)
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(map[string]any{"results": results, "latency": []string{lat[0].String(), lat[1].String(), lat[2].String()}, "throughput": thr}, "", " ")
		if err := os.WriteFile(*jsonOut, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func trainEval(ctx context.Context, rt *models.Runtime, name, trainSpec string, ds *data.Dataset, testSpec string, test []data.Example, cfg entity.Config, dir string) (result, *entity.Tagger, error) {
	r := result{Name: name, Train: trainSpec, Test: testSpec}
	t0 := time.Now()
	m, err := entity.Train(ctx, ds, cfg, os.Stderr)
	if err != nil {
		return r, nil, err
	}
	r.Seconds = time.Since(t0).Seconds()
	r.Features = m.NumFeatures()
	if r.GoF1, err = entity.Evaluate(ctx, m, test); err != nil {
		return r, nil, err
	}
	if _, err := m.Save(dir); err != nil {
		return r, nil, err
	}
	for _, name := range []string{entity.FileONNX, entity.FileVocab, entity.FileManifest} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			return r, nil, err
		}
		r.BytesInt8 += st.Size()
		if name == entity.FileONNX {
			r.BytesONNX8 = st.Size()
		}
	}
	st, err := os.Stat(filepath.Join(dir, entity.FileONNXFP32))
	if err != nil {
		return r, nil, err
	}
	r.BytesFP32 = st.Size()
	fp, err := entity.LoadWith(rt, dir, entity.Options{FP32: true})
	if err != nil {
		return r, nil, err
	}
	m32, err := entity.Evaluate(ctx, fp, test)
	fp.Close()
	if err != nil {
		return r, nil, err
	}
	r.FP32 = &m32
	tg, err := entity.Load(rt, dir)
	if err != nil {
		return r, nil, err
	}
	m8, err := entity.Evaluate(ctx, tg, test)
	if err != nil {
		tg.Close()
		return r, nil, err
	}
	r.Int8 = &m8
	fmt.Fprintf(os.Stderr, "%s: micro F1 int8 %.4f fp32 %.4f go %.4f (train %.1fs)\n", name, m8.MicroF1, m32.MicroF1, r.GoF1.MicroF1, r.Seconds)
	return r, tg, nil
}

// speed measures single-message latency (1 session, sequential) and
// batched throughput (default sessions).
func speed(ctx context.Context, rt *models.Runtime, dir string, test []data.Example, n int) ([3]time.Duration, float64, error) {
	var lat [3]time.Duration
	one, err := entity.LoadWith(rt, dir, entity.Options{Sessions: 1})
	if err != nil {
		return lat, 0, err
	}
	defer one.Close()
	texts := make([]string, len(test))
	for i, e := range test {
		texts[i] = e.Text
	}
	for i := 0; i < 200; i++ { // warm up
		if _, err := one.Tag(ctx, texts[i%len(texts)]); err != nil {
			return lat, 0, err
		}
	}
	ds := make([]time.Duration, n)
	for i := 0; i < n; i++ {
		t0 := time.Now()
		if _, err := one.Tag(ctx, texts[i%len(texts)]); err != nil {
			return lat, 0, err
		}
		ds[i] = time.Since(t0)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	lat = [3]time.Duration{ds[n/2].Round(time.Microsecond), ds[n*9/10].Round(time.Microsecond), ds[n*99/100].Round(time.Microsecond)}
	tg, err := entity.Load(rt, dir)
	if err != nil {
		return lat, 0, err
	}
	defer tg.Close()
	if _, err := tg.TagBatch(ctx, texts); err != nil {
		return lat, 0, err
	}
	const rounds = 10
	t0 := time.Now()
	for i := 0; i < rounds; i++ {
		if _, err := tg.TagBatch(ctx, texts); err != nil {
			return lat, 0, err
		}
	}
	thr := float64(rounds*len(texts)) / time.Since(t0).Seconds()
	return lat, thr, nil
}

func sortedTypes(m entity.Metrics) []string {
	types := make([]string, 0, len(m.PerType))
	for t := range m.PerType {
		types = append(types, t)
	}
	sort.Strings(types)
	return types
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
