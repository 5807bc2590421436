package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/tandem-chat/tandem/nlp"
	"github.com/tandem-chat/tandem/nlp/data"
	"github.com/tandem-chat/tandem/nlp/entity"
	"github.com/tandem-chat/tandem/nlp/intent"
)

// specList is a repeatable --data flag.
type specList []string

func (s *specList) String() string     { return strings.Join(*s, " ") }
func (s *specList) Set(v string) error { *s = append(*s, v); return nil }

const trainUsage = `usage: tandem train --data SPEC [--data SPEC ...] --out DIR [--seed N] [--valid SPEC]

Trains the intent classifier (and, when the data has entity spans, the entity
tagger) and writes a model directory: ONNX graphs with int8 weights, the
feature vocabulary and manifest.json (labels, feature configuration, sha256
of each file, training data digest, validation metrics, threshold).

SPEC is FORMAT:PATH[?oos=LABEL][#SPLITS], FORMAT one of ` + "tandem, rasa, csv, bitext, clinc150, snips, nlupp" + `, e.g.
  clinc150:../shared/datasets/clinc150/data_full.json#train,val,oos_train,oos_val
  snips:../shared/datasets/snips#train    nlupp:../shared/datasets/nlupp-banking#0-9
  bitext:FILE.csv   csv:FILE.csv?oos=other   rasa:nlu.yml   tandem:nlu.yml

flags:
`

// runTrain implements `tandem train`.
func runTrain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tandem train", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, trainUsage); fs.PrintDefaults() }
	def := intent.DefaultConfig()
	var (
		specs   specList
		out     = fs.String("out", "", "model directory to write (replaced atomically)")
		fp32Out = fs.String("fp32-out", "", "also write an fp32 export of the same model to this directory")
		valid   = fs.String("valid", "", "validation data SPEC (default: hold out a slice of the training data)")
		oos     = fs.String("oos-label", "", "label the data uses for out-of-scope examples (renamed to \"oos\")")
		seed    = fs.Uint64("seed", def.Seed, "random seed (training is deterministic for a given seed)")
		name    = fs.String("name", "", "model name in the manifest (default: base name of --out)")
		version = fs.String("version", "", "model version in the manifest (default: time and data digest)")
		epochs  = fs.Int("epochs", def.Epochs, "training epochs")
		members = fs.Int("members", def.Members, "ensemble members")
		hidden  = fs.Int("hidden", def.Hidden, "hidden width per member")
		buckets = fs.Int("buckets", def.Features.Buckets, "feature hash buckets")
		oovW    = fs.Float64("oov-weight", float64(def.Features.OOVWeight), "weight, in units of the largest idf, of a text's n-grams missing from the vocabulary in its feature norm (0 = ignore them, as models before it did)")
		validFr = fs.Float64("valid-fraction", def.ValidFraction, "held-out share of each intent when --valid is not given")
		threads = fs.Int("threads", 0, "worker goroutines (0 = all cores; results do not depend on it)")
		quiet   = fs.Bool("quiet", false, "no progress output")
		noRefit = fs.Bool("no-refit", false, "keep the model trained without the validation slice (faster) instead of retraining on all data")
		noEnt   = fs.Bool("no-entities", false, "do not train the entity tagger even when the data has entity annotations")
		entEp   = fs.Int("entity-epochs", 0, "entity tagger training epochs (0 = the tagger's default)")
		oosSc   = fs.String("oos-score", def.OOSScore, "out-of-scope score when the data has oos examples: "+intent.ScoreOOSLogRatio+" (ln p(top) - ln p(oos), threshold rejecting 0.5% of correct validation answers) or "+intent.ScoreMaxProb+" (top probability, threshold by the 5%-prior rule)")
	)
	fs.Var(&specs, "data", "training data SPEC (repeatable)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return flag.ErrHelp
		}
		return fmt.Errorf("train: %w", err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("train: unexpected argument %q", fs.Arg(0))
	}
	if len(specs) == 0 || *out == "" {
		fs.Usage()
		return fmt.Errorf("train: --data and --out are required")
	}
	opt := data.Options{OOSLabel: *oos}
	var sets, annotated []*data.Dataset
	for _, s := range specs {
		ds, err := data.LoadWith(s, opt)
		if err != nil {
			return fmt.Errorf("train: %w", err)
		}
		sets = append(sets, ds)
		if ds.HasEntities() {
			annotated = append(annotated, ds)
		}
	}
	if err := data.CheckSynonyms(sets...); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	ds := data.Merge(sets...)
	// The entity tagger learns from the data sets that carry annotations
	// only: a set without any is unannotated, not free of entities.
	var eds *data.Dataset
	if len(annotated) > 0 {
		eds = data.Merge(annotated...)
	}
	var vds *data.Dataset
	if *valid != "" {
		var err error
		if vds, err = data.LoadWith(*valid, opt); err != nil {
			return fmt.Errorf("train: %w", err)
		}
	}
	cfg := def
	cfg.Seed, cfg.Epochs, cfg.Members, cfg.Hidden = *seed, *epochs, *members, *hidden
	cfg.OOSScore = *oosSc
	cfg.Features.Buckets, cfg.ValidFraction, cfg.Threads = *buckets, *validFr, *threads
	cfg.Features.OOVWeight = float32(*oovW)
	cfg.Refit = !*noRefit
	progress := intent.WriterProgress(stderr)
	if *quiet {
		progress = nil
	}
	if *entEp < 0 {
		return fmt.Errorf("train: --entity-epochs must be >= 0")
	}
	if *threads < 0 {
		return fmt.Errorf("train: --threads must be >= 0 (0 = all cores)")
	}
	res, err := nlp.TrainDir(ctx, nlp.TrainOptions{
		Data: ds, Valid: vds, Out: *out, FP32Out: *fp32Out, Intent: cfg,
		EntityData: eds, NoEntity: eds == nil || *noEnt, Entity: entity.Config{Epochs: *entEp, Seed: int64(*seed)},
		Name: *name, Version: *version, Progress: progress,
	})
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	m := res.Intent
	fmt.Fprintf(stdout, "wrote %s (%s %s): %d intents, %d examples, validation accuracy %.4f, in-scope %.4f, oos recall %.3f, threshold %.2f (%s), in %s\n",
		*out, res.Manifest.Name, res.Manifest.Version, len(m.Labels), m.Examples, m.Validation.Accuracy,
		m.Validation.InScopeAccuracy, m.Validation.OOSRecall, m.Threshold, m.Score, res.Elapsed.Round(1e7))
	if e := res.Entity; e != nil {
		fmt.Fprintf(stdout, "entity tagger: %d types (%s), %d examples, %d features\n",
			len(e.Types), strings.Join(e.Types, ", "), e.Info().Examples, e.NumFeatures())
	}
	return nil
}
