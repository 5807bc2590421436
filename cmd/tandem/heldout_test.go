package main

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tandem-chat/tandem/internal/testenv"
	"github.com/tandem-chat/tandem/nlp/data"
)

var wordRE = regexp.MustCompile(`[a-z0-9']+`)

func wordSet(s string) map[string]bool {
	m := map[string]bool{}
	for _, w := range wordRE.FindAllString(strings.ToLower(s), -1) {
		m[w] = true
	}
	return m
}

// TestHeldOutSetStaysHeldOut: no project-written training text
// (models/data/*.yml) is a copy or a near-copy (word Jaccard >= 0.7: the same words, or one or two more) of a
// message of the held-out demo-bot set (eval/data/demo-bot.yml), so that
// `make eval-bot` measures phrasings the demo model never trained on.
func TestHeldOutSetStaysHeldOut(t *testing.T) {
	root := testenv.RepoRoot(t)
	held, err := data.Load("tandem:" + filepath.Join(root, "eval", "data", "demo-bot.yml"))
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(root, "models", "data", "*.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no training data files: %v", err)
	}
	heldSets := make([]map[string]bool, len(held.Examples))
	for i, ex := range held.Examples {
		heldSets[i] = wordSet(ex.Text)
	}
	for _, f := range files {
		ds, err := data.Load("tandem:" + f)
		if err != nil {
			t.Fatal(err)
		}
		for _, ex := range ds.Examples {
			a := wordSet(ex.Text)
			for i, b := range heldSets {
				inter := 0
				for w := range a {
					if b[w] {
						inter++
					}
				}
				union := len(a) + len(b) - inter
				if union > 0 && float64(inter)/float64(union) >= 0.7 {
					t.Errorf("%s: training text %q is a near-copy of held-out message %q", filepath.Base(f), ex.Text, held.Examples[i].Text)
				}
			}
		}
	}
}
