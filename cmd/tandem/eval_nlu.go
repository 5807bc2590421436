package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/models"
	"github.com/tandem-chat/tandem/nlp"
	"github.com/tandem-chat/tandem/nlp/data"
	"github.com/tandem-chat/tandem/nlp/entity"
	"github.com/tandem-chat/tandem/nlp/intent"
)

const evalUsage = `usage: tandem eval --model DIR --data SPEC [--json]

Evaluates a model directory on labelled data (SPEC as in tandem train) and
prints intent metrics (accuracy, in-scope accuracy, out-of-scope precision and
recall, macro F1 at the model's threshold) and, when the data has entity
spans, entity metrics. --json prints one JSON object.

flags:
`

// evalReport is the JSON printed by `tandem eval --json`.
type evalReport struct {
	Model    string         `json:"model"`
	Version  string         `json:"version"`
	Data     string         `json:"data"`
	Examples int            `json:"examples"`
	Intent   intent.Metrics `json:"intent"`
	// Score is what intent.threshold applies to: "max_prob" (the top
	// probability) or "oos_log_ratio" (ln p(top in-scope intent) - ln p(oos)).
	Score string `json:"score"`
	// IntentNoThreshold scores the top intent alone (out of scope only
	// when the top intent is "oos"): the usual accuracy of closed-set
	// benchmarks such as SNIPS.
	IntentNoThreshold intent.Metrics  `json:"intent_no_threshold"`
	Entity            *entity.Metrics `json:"entity,omitempty"`
	Speed             evalSpeed       `json:"speed"`
	// EntitySpeed is the tagger's throughput on the same texts (batched).
	EntitySpeed *evalSpeed `json:"entity_speed,omitempty"`
}

type evalSpeed struct {
	Seconds           float64 `json:"seconds"`
	MessagesPerSecond float64 `json:"messages_per_second"`
}

// runEvalNLU implements `tandem eval --model DIR --data SPEC`.
func runEvalNLU(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tandem eval", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, evalUsage); fs.PrintDefaults() }
	var (
		modelDir  = fs.String("model", "", "model directory (written by tandem train)")
		spec      = fs.String("data", "", "evaluation data SPEC")
		asJSON    = fs.Bool("json", false, "print one JSON object")
		oos       = fs.String("oos-label", "", "label the data uses for out-of-scope examples")
		threshold = fs.Float64("threshold", 0, "override the model's out-of-scope threshold, in the units of its score: a probability for max_prob, a log ratio (may be 0 or negative) for oos_log_ratio (default: the model's)")
		lib       = fs.String("onnxruntime-lib", defaultORTLib(), "ONNX Runtime shared library (env ONNXRUNTIME_LIB)")
	)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return flag.ErrHelp
		}
		return fmt.Errorf("eval: %w", err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("eval: unexpected argument %q", fs.Arg(0))
	}
	if *modelDir == "" || *spec == "" {
		fs.Usage()
		return errors.New("eval: --model and --data are required")
	}
	ds, err := data.LoadWith(*spec, data.Options{OOSLabel: *oos})
	if err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	labelled := ds.HasEntities()
	for _, ex := range ds.Examples {
		labelled = labelled || ex.Intent != ""
	}
	if !labelled {
		// Metrics of nothing would print as zeros and exit 0.
		return fmt.Errorf("eval: %s has no labelled examples (no intent, no entity span)", *spec)
	}
	rt, err := models.OpenRuntime(*lib)
	if err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	defer rt.Close()
	var opt nlp.Options
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "threshold" {
			opt.Threshold = threshold
		}
	})
	clf, err := nlp.LoadClassifier(rt, *modelDir, opt)
	if err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	defer clf.Close()
	var texts, gold []string
	for _, ex := range ds.Examples {
		if ex.Intent == "" {
			continue
		}
		texts = append(texts, ex.Text)
		gold = append(gold, ex.Intent)
	}
	start := time.Now()
	res, err := clf.ClassifyBatch(ctx, texts)
	if err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	el := time.Since(start)
	pred := make([]string, len(res))
	top := make([]string, len(res))
	for i, r := range res {
		pred[i] = r.Intent.Name
		top[i] = r.Intent.Name
		if r.OutOfScope {
			pred[i] = tandem.OutOfScope
		}
	}
	rep := evalReport{
		Model: *modelDir, Version: clf.Manifest().Version, Data: *spec, Examples: len(ds.Examples),
		Intent: intent.Score(gold, pred), IntentNoThreshold: intent.Score(gold, top),
		Speed: evalSpeed{Seconds: el.Seconds(), MessagesPerSecond: float64(len(texts)) / el.Seconds()},
	}
	rep.Intent.Threshold, rep.Score = clf.Threshold(), clf.Score()
	if ds.HasEntities() {
		tg, err := nlp.LoadEntityTagger(rt, *modelDir)
		switch {
		case errors.Is(err, nlp.ErrNoEntityModel):
			fmt.Fprintf(stderr, "eval: %s has no entity tagger; entity metrics skipped\n", *modelDir)
		case err != nil:
			return fmt.Errorf("eval: %w", err)
		default:
			defer tg.Close()
			start := time.Now()
			met, err := entity.Evaluate(ctx, tg, ds.Examples)
			if err != nil {
				return fmt.Errorf("eval: %w", err)
			}
			rep.Entity = &met
			rep.EntitySpeed = &evalSpeed{Seconds: time.Since(start).Seconds(), MessagesPerSecond: float64(len(ds.Examples)) / time.Since(start).Seconds()}
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	m := rep.Intent
	fmt.Fprintf(stdout, "model %s (%s) on %s: %d examples\n", *modelDir, rep.Version, *spec, rep.Examples)
	fmt.Fprintf(stdout, "intent: accuracy %.4f  in-scope accuracy %.4f  oos precision %.4f  oos recall %.4f  macro F1 %.4f  (threshold %.2f on %s)\n",
		m.Accuracy, m.InScopeAccuracy, m.OOSPrecision, m.OOSRecall, m.MacroF1, m.Threshold, rep.Score)
	m = rep.IntentNoThreshold
	fmt.Fprintf(stdout, "intent without threshold: accuracy %.4f  in-scope accuracy %.4f  oos recall %.4f  macro F1 %.4f\n",
		m.Accuracy, m.InScopeAccuracy, m.OOSRecall, m.MacroF1)
	fmt.Fprintf(stdout, "speed: %d texts in %s (%.0f/s, batched)\n", len(texts), el.Round(time.Millisecond), rep.Speed.MessagesPerSecond)
	if e := rep.Entity; e != nil {
		fmt.Fprintf(stdout, "entity: micro F1 %.4f  precision %.4f  recall %.4f  (%d gold spans)\n", e.MicroF1, e.Precision, e.Recall, e.Support)
		types := make([]string, 0, len(e.PerType))
		for t := range e.PerType {
			types = append(types, t)
		}
		sort.Strings(types)
		for _, t := range types {
			f := e.PerType[t]
			fmt.Fprintf(stdout, "  %-28s F1 %.3f  P %.3f  R %.3f  support %d\n", t, f.F1, f.Precision, f.Recall, f.Support)
		}
	}
	return nil
}

// defaultORTLib is $ONNXRUNTIME_LIB, else the library `make deps` installs.
func defaultORTLib() string {
	if p := os.Getenv("ONNXRUNTIME_LIB"); p != "" {
		return p
	}
	return filepath.Join(".deps", "onnxruntime", "libonnxruntime.so.1")
}
