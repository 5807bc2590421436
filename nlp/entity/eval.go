package entity

import (
	"context"
	"fmt"
	"sort"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/nlp/data"
)

// Batcher tags many texts at once; *Tagger (ONNX Runtime) and *Model (the
// Go forward pass) implement it.
type Batcher interface {
	TagBatch(ctx context.Context, texts []string) ([][]tandem.Entity, error)
}

var (
	_ Batcher = (*Model)(nil)
	_ Batcher = (*Tagger)(nil)
)

// F1 is the precision, recall and F1 of one entity type. Support is the
// number of gold spans.
type F1 struct {
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	F1        float64 `json:"f1"`
	Support   int     `json:"support"`
	Predicted int     `json:"predicted"`
	Correct   int     `json:"correct"`
}

// Metrics are exact-match span metrics: a predicted entity is correct when
// its type, start and end equal a gold span's.
type Metrics struct {
	Examples  int           `json:"examples"`
	MicroF1   float64       `json:"micro_f1"`
	Precision float64       `json:"precision"`
	Recall    float64       `json:"recall"`
	MacroF1   float64       `json:"macro_f1"`
	Support   int           `json:"support"`
	PerType   map[string]F1 `json:"per_type"`
}

func prf(correct, predicted, gold int) (p, r, f float64) {
	if predicted > 0 {
		p = float64(correct) / float64(predicted)
	}
	if gold > 0 {
		r = float64(correct) / float64(gold)
	}
	if p+r > 0 {
		f = 2 * p * r / (p + r)
	}
	return p, r, f
}

// evalChunk is the number of texts per TagBatch call in Evaluate.
const evalChunk = 64

// Evaluate tags the examples with b and scores the predictions against
// their spans. Types that occur only in predictions count as false
// positives (they appear in PerType with Support 0).
func Evaluate(ctx context.Context, b Batcher, examples []data.Example) (Metrics, error) {
	type key struct {
		typ        string
		start, end int
	}
	per := map[string]*F1{}
	get := func(t string) *F1 {
		if per[t] == nil {
			per[t] = &F1{}
		}
		return per[t]
	}
	texts := make([]string, 0, evalChunk)
	for lo := 0; lo < len(examples); lo += evalChunk {
		hi := min(lo+evalChunk, len(examples))
		texts = texts[:0]
		for _, e := range examples[lo:hi] {
			texts = append(texts, e.Text)
		}
		preds, err := b.TagBatch(ctx, texts)
		if err != nil {
			return Metrics{}, fmt.Errorf("entity: evaluate: %w", err)
		}
		for i, e := range examples[lo:hi] {
			gold := map[key]bool{}
			for _, sp := range e.Entities {
				gold[key{sp.Type, sp.Start, sp.End}] = true
				get(sp.Type).Support++
			}
			for _, p := range preds[i] {
				f := get(p.Type)
				f.Predicted++
				if gold[key{p.Type, p.Start, p.End}] {
					f.Correct++
					delete(gold, key{p.Type, p.Start, p.End})
				}
			}
		}
	}
	met := Metrics{Examples: len(examples), PerType: map[string]F1{}}
	var c, p, g int
	types := make([]string, 0, len(per))
	for t := range per {
		types = append(types, t)
	}
	sort.Strings(types)
	macro, nm := 0.0, 0
	for _, t := range types {
		f := per[t]
		f.Precision, f.Recall, f.F1 = prf(f.Correct, f.Predicted, f.Support)
		c, p, g = c+f.Correct, p+f.Predicted, g+f.Support
		met.PerType[t] = *f
		if f.Support > 0 {
			macro += f.F1
			nm++
		}
	}
	met.Precision, met.Recall, met.MicroF1 = prf(c, p, g)
	met.Support = g
	if nm > 0 {
		met.MacroF1 = macro / float64(nm)
	}
	return met, nil
}
