package nlp

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-chat/tandem/models"
	"github.com/tandem-chat/tandem/nlp/data"
	"github.com/tandem-chat/tandem/nlp/entity"
	"github.com/tandem-chat/tandem/nlp/intent"
	"github.com/tandem-chat/tandem/nlp/rules"
)

// TestTrainDirOutput checks what TrainDir may replace: a missing path, an
// empty directory or a model directory; never a file or a directory of
// other things (such as the training data), and never both exports in one
// directory. Refusals come before any training.
func TestTrainDirOutput(t *testing.T) {
	cfg := intent.DefaultConfig()
	cfg.Hidden, cfg.Members, cfg.Epochs, cfg.LinearEpochs, cfg.SVMEpochs = 8, 1, 2, 2, 2
	cfg.Features.Buckets = 1 << 12
	var trained atomic.Int64 // progress lines (from the trainer's goroutines): a refusal must come before any training
	progress := func(string, ...any) { trained.Add(1) }
	train := func(out, fp32 string, valid *data.Dataset) error {
		_, err := TrainDir(context.Background(), TrainOptions{Data: toyDataset(10, 1), Valid: valid, Out: out, FP32Out: fp32, Intent: cfg, NoEntity: true, Progress: progress})
		return err
	}
	refused := func(what string, err error, want string) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: err %v, want %q", what, err, want)
		}
		if n := trained.Load(); n != 0 {
			t.Fatalf("%s: refused after training (%d progress lines)", what, n)
		}
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
	refused("foreign directory", train(work, "", nil), "not a model directory")
	// A file, such as the training data itself.
	refused("file", train(dataFile, "", nil), "not a directory")
	// A symbolic link to nothing.
	dangling := filepath.Join(root, "dangling")
	if err := os.Symlink(filepath.Join(root, "nowhere", "x"), dangling); err != nil {
		t.Fatal(err)
	}
	refused("dangling link", train(dangling, "", nil), "symbolic link")
	if b, err := os.ReadFile(dataFile); err != nil || string(b) != "keep me" {
		t.Fatalf("data file after refusals: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(work, "sub")); err != nil {
		t.Fatalf("sub directory after refusals: %v", err)
	}
	// Both exports in one directory however spelled (through a link to
	// the parent too), or one inside the other.
	out := filepath.Join(root, "m")
	link := filepath.Join(root, "link")
	if err := os.Symlink(root, link); err != nil {
		t.Fatal(err)
	}
	for _, fp32 := range []string{root + "/./m", link + "/m", out + "/fp32"} {
		refused("fp32 in "+fp32, train(out, fp32, nil), "two separate directories")
	}
	refused("int8 inside fp32", train(out+"/int8", out, nil), "two separate directories")
	// Validation data without examples.
	refused("empty validation data", train(out, "", &data.Dataset{}), "no examples")
	refused("validation data of other intents", train(out, "", &data.Dataset{Examples: []data.Example{{Text: "hello there", Intent: "not_in_training"}}}), "none of the validation data")
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

	// A run that fails writing the fp32 export (here: a directory nothing
	// can be created in) leaves the int8 directory as it was.
	// (Training is deterministic, so the files could be equal: the
	// directory itself must be the same one, not a replacement.)
	before, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/proc/self"); err == nil {
		if err := train(out, "/proc/tandem-fp32", nil); err == nil {
			t.Fatal("fp32 export into /proc succeeded")
		}
		after, err := os.Stat(out)
		if err != nil || !os.SameFile(before, after) {
			t.Fatalf("the int8 directory was replaced by a run whose fp32 export failed (%v)", err)
		}
	}
}

// TestTrainedRuleEntitiesReachTheExtractor: the lookup tables, synonyms and
// regex entities of the training data are written into the model
// directory (sealed by the manifest) and LoadRules gives them to the rule
// extractor, as the server does; a directory without them serves the
// built-in rules only.
func TestTrainedRuleEntitiesReachTheExtractor(t *testing.T) {
	cfg := intent.DefaultConfig()
	cfg.Hidden, cfg.Members, cfg.Epochs, cfg.LinearEpochs, cfg.SVMEpochs = 8, 1, 2, 2, 2
	cfg.Features.Buckets = 1 << 12
	ds := toyDataset(10, 1)
	ds.Regexes = map[string]string{"sku": `\bSKU\d{4}\b`}
	ds.Lookups = map[string][]string{"product": {"red shirt", "blue hat"}}
	ds.Synonyms = map[string]string{"navy cap": "blue hat"}
	out := filepath.Join(t.TempDir(), "m")
	if _, err := TrainDir(context.Background(), TrainOptions{Data: ds, Out: out, Intent: cfg, NoEntity: true}); err != nil {
		t.Fatal(err)
	}
	man, err := models.ReadManifest(out)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := LoadRules(out, man, rules.Config{})
	if err != nil {
		t.Fatal(err)
	}
	x, err := rules.New(rc)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range x.Extract("I want SKU4321, a navy cap and a red shirt", time.Now()) {
		got[e.Type+":"+e.Text] = e.Value
	}
	for k, v := range map[string]string{"sku:SKU4321": "SKU4321", "product:navy cap": "blue hat", "product:red shirt": "red shirt"} {
		if got[k] != v {
			t.Errorf("%s = %q, want %q (all: %v)", k, got[k], v, got)
		}
	}

	// The file is sealed: an edited rules file is refused.
	p := filepath.Join(out, FileRules)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, append(b, ' '), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadRules(out, man, rules.Config{}); err == nil {
		t.Fatal("an edited rules file was loaded")
	}

	// Without rule entities in the data: no file, the base config.
	plain := filepath.Join(t.TempDir(), "p")
	if _, err := TrainDir(context.Background(), TrainOptions{Data: toyDataset(10, 1), Out: plain, Intent: cfg, NoEntity: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(plain, FileRules)); !os.IsNotExist(err) {
		t.Fatalf("rules file without rule entities: %v", err)
	}
	pman, err := models.ReadManifest(plain)
	if err != nil {
		t.Fatal(err)
	}
	if rc, err := LoadRules(plain, pman, rules.Config{DateOrder: "MDY"}); err != nil || rc.DateOrder != "MDY" || len(rc.Regexes) > 0 {
		t.Fatalf("plain directory: %+v %v", rc, err)
	}
}

// TestTrainDirChecksSettingsFirst: an entity tagger setting out of range
// is refused before the intent model trains (it was refused after).
func TestTrainDirChecksSettingsFirst(t *testing.T) {
	cfg := intent.DefaultConfig()
	cfg.Hidden, cfg.Members, cfg.Epochs, cfg.LinearEpochs, cfg.SVMEpochs = 8, 1, 2, 2, 2
	var trained atomic.Int64
	_, err := TrainDir(context.Background(), TrainOptions{Data: toyDataset(10, 1), Out: filepath.Join(t.TempDir(), "m"), Intent: cfg,
		Entity: entity.Config{Epochs: 5000}, Progress: func(string, ...any) { trained.Add(1) }})
	if err == nil || !strings.Contains(err.Error(), "epochs") || trained.Load() != 0 {
		t.Fatalf("err %v after %d progress lines, want an epochs error before training", err, trained.Load())
	}
}
