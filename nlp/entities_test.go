package nlp

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/tandem-chat/tandem/internal/testenv"
	"github.com/tandem-chat/tandem/models"
	"github.com/tandem-chat/tandem/nlp/data"
	"github.com/tandem-chat/tandem/nlp/entity"
	"github.com/tandem-chat/tandem/nlp/intent"
)

// annotatedToy is a small dataset with intents and city/product spans.
func annotatedToy(n int, seed uint64) *data.Dataset {
	rng := rand.New(rand.NewPCG(seed, 5))
	cities := []string{"Berlin", "Paris", "Madrid", "Oslo", "Lisbon", "Dublin"}
	products := []string{"blender", "desk lamp", "yoga mat", "kettle", "phone case"}
	ds := &data.Dataset{Source: "annotated-toy"}
	for i := 0; i < n; i++ {
		c, p := cities[rng.IntN(len(cities))], products[rng.IntN(len(products))]
		ship := fmt.Sprintf("please ship the %s to %s", p, c)
		ds.Examples = append(ds.Examples,
			data.Example{Text: ship, Intent: "ship", Entities: []data.Span{
				{Type: "product", Value: p, Start: 16, End: 16 + len(p)},
				{Type: "city", Value: c, Start: 16 + len(p) + 4, End: 16 + len(p) + 4 + len(c)},
			}},
			data.Example{Text: "refund my " + p, Intent: "refund", Entities: []data.Span{{Type: "product", Value: p, Start: 10, End: 10 + len(p)}}},
			data.Example{Text: []string{"hello", "hi there", "good morning"}[i%3], Intent: "greet"},
		)
	}
	return ds
}

func TestTrainDirWithEntityTagger(t *testing.T) {
	rt, err := models.OpenRuntime(testenv.ONNXRuntimeLib(t))
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	cfg := intent.DefaultConfig()
	cfg.Hidden, cfg.Members, cfg.Epochs, cfg.LinearEpochs = 8, 1, 4, 4
	cfg.Features.Buckets = 1 << 14
	dir := filepath.Join(t.TempDir(), "m")
	res, err := TrainDir(context.Background(), TrainOptions{
		Data: annotatedToy(30, 1), Out: dir, FP32Out: dir + "-fp32", Intent: cfg, Name: "toy",
		Entity: entity.Config{Epochs: 3, Workers: 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	me, ok := res.Manifest.Models[RoleEntity]
	if !ok || me.Kind != EntityKind || me.File != entity.FileONNX || len(me.Labels) != 2 {
		t.Fatalf("manifest entity entry %+v (ok %v)", me, ok)
	}
	for _, d := range []string{dir, dir + "-fp32"} {
		tg, err := LoadEntityTagger(rt, d)
		if err != nil {
			t.Fatal(err)
		}
		got, err := tg.TagBatch(context.Background(), []string{"please ship the kettle to Oslo", "hello"})
		tg.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || len(got[0]) != 2 || got[0][0].Type != "product" || got[0][0].Text != "kettle" || got[0][1].Type != "city" || got[0][1].Text != "Oslo" || len(got[1]) != 0 {
			t.Fatalf("%s: tagged %+v", d, got)
		}
	}
	// A directory trained on data without annotations has no tagger.
	plain := filepath.Join(t.TempDir(), "plain")
	if _, err := TrainDir(context.Background(), TrainOptions{Data: toyDataset(20, 1), Out: plain, Intent: cfg}); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadEntityTagger(rt, plain); !errors.Is(err, ErrNoEntityModel) {
		t.Fatalf("no tagger: err %v", err)
	}
	// NoEntity skips the tagger even with annotations.
	res, err = TrainDir(context.Background(), TrainOptions{Data: annotatedToy(10, 2), Out: plain, Intent: cfg, NoEntity: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := res.Manifest.Models[RoleEntity]; ok || res.Entity != nil {
		t.Fatal("NoEntity trained a tagger")
	}
}
