package nlp

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandem-chat/tandem/nlp/data"
	"github.com/tandem-chat/tandem/nlp/intent"
)

// TestTrainDirOutput checks what TrainDir may replace: a missing path, an
// empty directory or a model directory; never a file or a directory of
// other things (such as the training data), and never both exports in one
// directory. Refusals come before any training.
func TestTrainDirOutput(t *testing.T) {
	cfg := intent.DefaultConfig()
	cfg.Hidden, cfg.Members, cfg.Epochs, cfg.LinearEpochs, cfg.SVMEpochs = 8, 1, 2, 2, 2
	cfg.Features.Buckets = 1 << 12
	train := func(out, fp32 string, valid *data.Dataset) error {
		_, err := TrainDir(context.Background(), TrainOptions{Data: toyDataset(10, 1), Valid: valid, Out: out, FP32Out: fp32, Intent: cfg, NoEntity: true})
		return err
	}
	root := t.TempDir()

	// A directory holding other files (here the "training data") is kept.
	work := filepath.Join(root, "work")
	if err := os.MkdirAll(filepath.Join(work, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	dataFile := filepath.Join(work, "data.yml")
	if err := os.WriteFile(dataFile, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := train(work, "", nil); err == nil || !strings.Contains(err.Error(), "not a model directory") {
		t.Fatalf("foreign directory: err %v", err)
	}
	// A file, such as the training data itself.
	if err := train(dataFile, "", nil); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("file: err %v", err)
	}
	if b, err := os.ReadFile(dataFile); err != nil || string(b) != "keep me" {
		t.Fatalf("data file after refusals: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(work, "sub")); err != nil {
		t.Fatalf("sub directory after refusals: %v", err)
	}
	// Both exports in one directory (however spelled).
	out := filepath.Join(root, "m")
	if err := train(out, filepath.Join(root, ".", "m"), nil); err == nil || !strings.Contains(err.Error(), "two different directories") {
		t.Fatalf("same directories: err %v", err)
	}
	// Validation data without examples.
	if err := train(out, "", &data.Dataset{}); err == nil || !strings.Contains(err.Error(), "no examples") {
		t.Fatalf("empty validation data: err %v", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("a refused run left %s: %v", out, err)
	}

	// An empty directory, then the model directory it became, are replaced.
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := train(out, "", nil); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		if _, err := os.Stat(filepath.Join(out, "manifest.json")); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
	}
}
