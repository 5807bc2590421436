package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandem-chat/tandem/internal/testenv"
)

// TestTrainEvalCLI runs `tandem train` on a small annotated Tandem YAML file
// and `tandem eval --json` on it, checking the CLI contract: a model
// directory with both models and the JSON keys later tooling reads.
func TestTrainEvalCLI(t *testing.T) {
	lib := testenv.ONNXRuntimeLib(t)
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("version: 1\nintents:\n  track:\n")
	cities := []string{"Berlin", "Paris", "Oslo", "Rome", "Vienna", "Dublin"}
	products := []string{"kettle", "yoga mat", "desk lamp", "blender"}
	for i := 0; i < 24; i++ {
		b.WriteString("    - where is my [" + products[i%4] + "](product) going to [" + cities[i%6] + "](city)\n")
	}
	b.WriteString("  greet:\n")
	for _, s := range []string{"hello", "hi there", "good morning", "hey", "hello bot", "hi", "good evening", "greetings"} {
		b.WriteString("    - " + s + "\n    - " + s + " friend\n")
	}
	b.WriteString("  oos:\n")
	for _, s := range []string{"what is the meaning of life", "tell me a joke", "how tall is everest", "sing a song", "who won the match", "what time is it"} {
		b.WriteString("    - " + s + "\n")
	}
	file := filepath.Join(dir, "nlu.yml")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "model")
	var stdout, stderr bytes.Buffer
	ctx := context.Background()
	// Flags out of range are refused before training.
	for _, bad := range [][]string{{"--threads", "-3"}, {"--entity-epochs", "-1"}} {
		err := runTrain(ctx, append([]string{"--data", "tandem:" + file, "--out", out, "--quiet"}, bad...), &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), bad[0]) {
			t.Fatalf("train %v: err %v", bad, err)
		}
	}
	err := runTrain(ctx, []string{"--data", "tandem:" + file, "--out", out, "--seed", "3", "--hidden", "8", "--members", "1",
		"--epochs", "3", "--buckets", "16384", "--entity-epochs", "3", "--quiet"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("train: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "entity tagger: 2 types (city, product)") {
		t.Fatalf("train output: %s", stdout.String())
	}
	stdout.Reset()
	err = runEvalNLU(ctx, []string{"--model", out, "--data", "tandem:" + file, "--json", "--onnxruntime-lib", lib}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("eval: %v\n%s", err, stderr.String())
	}
	var rep struct {
		Examples int `json:"examples"`
		Intent   map[string]float64
		Entity   struct {
			MicroF1 *float64                  `json:"micro_f1"`
			PerType map[string]map[string]any `json:"per_type"`
		}
	}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("eval output %q: %v", stdout.String(), err)
	}
	for _, k := range []string{"accuracy", "in_scope_accuracy", "oos_precision", "oos_recall", "macro_f1", "threshold"} {
		if _, ok := rep.Intent[k]; !ok {
			t.Errorf("intent.%s missing", k)
		}
	}
	if rep.Examples != 46 || rep.Entity.MicroF1 == nil || *rep.Entity.MicroF1 < 0.9 || len(rep.Entity.PerType) != 2 {
		t.Fatalf("eval report %s", stdout.String())
	}

	// --oos-score picks the out-of-scope score the manifest records; an
	// unknown one is refused.
	score := func(dir string) string {
		var man struct {
			Models map[string]struct {
				Score string `json:"score"`
			} `json:"models"`
		}
		b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &man); err != nil {
			t.Fatal(err)
		}
		return man.Models["intent"].Score
	}
	if got := score(out); got != "oos_log_ratio" {
		t.Errorf("default score %q, want oos_log_ratio", got)
	}
	args := []string{"--data", "tandem:" + file, "--seed", "3", "--hidden", "8", "--members", "1", "--epochs", "3", "--buckets", "16384", "--no-entities", "--quiet"}
	out2 := filepath.Join(dir, "model-maxprob")
	if err := runTrain(ctx, append(args, "--out", out2, "--oos-score", "max_prob"), &stdout, &stderr); err != nil {
		t.Fatalf("train --oos-score max_prob: %v\n%s", err, stderr.String())
	}
	if got := score(out2); got != "max_prob" && got != "" {
		t.Errorf("--oos-score max_prob recorded %q", got)
	}
	if err := runTrain(ctx, append(args, "--out", filepath.Join(dir, "bad"), "--oos-score", "vibes"), &stdout, &stderr); err == nil || !strings.Contains(err.Error(), "vibes") {
		t.Errorf("--oos-score vibes: %v", err)
	}
}
