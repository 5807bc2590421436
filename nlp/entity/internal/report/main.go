// Command report trains the entity tagger and prints its figures.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/tandem-chat/tandem/nlp/data"
	"github.com/tandem-chat/tandem/nlp/entity"
)

func main() {
	train := flag.String("train", "snips:../shared/datasets/snips#train", "training data spec")
	test := flag.String("test", "", "test data spec (empty: hold out -holdout of train)")
	holdout := flag.Int("holdout", 10, "hold out every n-th training example as dev set when -test is empty")
	epochs := flag.Int("epochs", 0, "epochs")
	lr := flag.Float64("lr", 0, "learning rate")
	l2 := flag.Float64("l2", 0, "l2")
	folds := flag.Int("folds", 0, "gazetteer folds")
	noSent := flag.Bool("nosent", false, "disable sentence features")
	noGaz := flag.Bool("nogaz", false, "disable gazetteer features")
	flag.Parse()
	ds, err := data.Load(*train)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var testEx []data.Example
	if *test != "" {
		ts, err := data.Load(*test)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		testEx = ts.Examples
	} else {
		var tr []data.Example
		for i, e := range ds.Examples {
			if i%*holdout == *holdout-1 {
				testEx = append(testEx, e)
			} else {
				tr = append(tr, e)
			}
		}
		ds.Examples = tr
	}
	cfg := entity.Config{Epochs: *epochs, LearningRate: *lr, L2: *l2, GazetteerFolds: *folds, Valid: testEx}
	cfg.Features = entity.DefaultFeatureConfig()
	cfg.Features.Sentence = !*noSent
	cfg.Features.Gazetteer = !*noGaz
	t0 := time.Now()
	m, err := entity.Train(context.Background(), ds, cfg, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "trained in %.1fs\n", time.Since(t0).Seconds())
	met, err := entity.Evaluate(context.Background(), m, testEx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	b, _ := json.MarshalIndent(met, "", " ")
	fmt.Println(string(b))
}
