package embed_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/tandem-chat/tandem/internal/testenv"
	"github.com/tandem-chat/tandem/knowledge/embed"
	"github.com/tandem-chat/tandem/models"
)

func toyExamples() []embed.Example {
	intents := map[string][]string{
		"refund":   {"i want my money back", "refund my order", "how do i get a refund", "give me a refund please", "money back for the broken item", "refund status"},
		"shipping": {"when will my parcel arrive", "how long is delivery", "shipping time to canada", "where is my package", "delivery takes too long", "track my parcel"},
		"password": {"i forgot my password", "reset my password", "can't log in password", "change my login password", "password reset link", "new password please"},
	}
	var out []embed.Example
	for label, texts := range intents {
		for _, t := range texts {
			out = append(out, embed.Example{Text: t, Label: label})
		}
	}
	return out
}

func cos(a, b []float32) float64 {
	var d float64
	for i := range a {
		d += float64(a[i] * b[i])
	}
	return d
}

func TestTrainExportRunInONNXRuntime(t *testing.T) {
	rt, err := models.OpenRuntime(testenv.ONNXRuntimeLib(t))
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	feats := embed.DefaultFeatures
	feats.Buckets = 1 << 14
	enc, err := embed.Train(context.Background(), toyExamples(), embed.TrainConfig{Features: feats, Dim: 32, Epochs: 30})
	if err != nil {
		t.Fatal(err)
	}
	model, man := enc.Export("toy")
	dir := t.TempDir()
	if err := embed.WriteFiles(dir, model, man); err != nil {
		t.Fatal(err)
	}
	local, err := embed.OpenLocal(rt, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	if local.Dim() != 32 || local.Version() != man.Version || len(man.Version) != len("tandem-bag-")+12 {
		t.Fatalf("dim %d version %q", local.Dim(), local.Version())
	}
	queries := []string{"refund for my order please", "my parcel has not arrived", "forgot password again", "", "zzzz qqqq"}
	// Batches larger than the session batch exercise chunking.
	var many []string
	for i := range 150 {
		many = append(many, queries[i%len(queries)])
	}
	got, err := local.Embed(context.Background(), many)
	if err != nil {
		t.Fatal(err)
	}
	ref := enc.Embed(many)
	for i := range many {
		if len(got[i]) != 32 {
			t.Fatalf("vector %d has %d dims", i, len(got[i]))
		}
		var n float64
		for _, x := range ref[i] {
			n += float64(x * x)
		}
		if n == 0 { // no known features: the zero vector, in both
			if c := cos(got[i], got[i]); c != 0 {
				t.Fatalf("unknown text %q: ONNX gives non-zero vector", many[i])
			}
			continue
		}
		if c := cos(got[i], ref[i]); c < 0.995 {
			t.Fatalf("int8 ONNX vs float reference for %q: cosine %.4f", many[i], c)
		}
		if c := cos(got[i], got[i]); c < 0.999 || c > 1.001 {
			t.Fatalf("%q: norm² %.4f, want 1", many[i], c)
		}
	}
	// The trained space separates the intents on unseen phrasings.
	anchors, _ := local.Embed(context.Background(), []string{"refund my order", "track my parcel", "reset my password"})
	for qi, want := range []int{0, 1, 2} {
		best, bestC := -1, -2.0
		for ai, a := range anchors {
			if c := cos(got[qi], a); c > bestC {
				best, bestC = ai, c
			}
		}
		if best != want {
			t.Errorf("%q is closest to anchor %d, want %d", queries[qi], best, want)
		}
	}
	// A tampered model is refused.
	if err := os.WriteFile(filepath.Join(dir, embed.ModelFile), append(model[:len(model)-1:len(model)-1], 0), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := embed.OpenLocal(rt, dir); err == nil {
		t.Fatal("a model whose sha256 differs from the manifest was loaded")
	}
}

func TestFeaturesDeterministic(t *testing.T) {
	c := embed.DefaultFeatures
	a, wa := c.Features("Where is my ORDER?")
	b, wb := c.Features("where is my order")
	if fmt.Sprint(a, wa) != fmt.Sprint(b, wb) || len(a) == 0 {
		t.Fatalf("normalisation differs: %v vs %v", a, b)
	}
	zh, _ := c.Features("退款多久到账")
	if len(zh) < 5 {
		t.Fatalf("CJK text has only %d features", len(zh))
	}
	long := make([]byte, 0, 20000)
	for range 2000 {
		long = append(long, "word "...)
	}
	ids, _ := c.Features(string(long))
	if len(ids) > c.MaxFeatures {
		t.Fatalf("%d features, cap %d", len(ids), c.MaxFeatures)
	}
}
