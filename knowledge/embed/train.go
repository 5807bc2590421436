package embed

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
)

// Example is one labelled text: texts with the same label (an intent, or
// the phrasings of one FAQ) should embed close together.
type Example struct {
	Text  string
	Label string
}

// TrainConfig configures Train. Zero values take the defaults.
type TrainConfig struct {
	Features FeatureConfig // default DefaultFeatures
	Dim      int           // embedding size, default 128
	Epochs   int           // default 12
	LR       float64       // Adagrad learning rate, default 0.5
	Scale    float64       // softmax scale on cosine logits, default 20
	Margin   float64       // additive cosine margin on the true label, default 0.15
	Seed     uint64        // default 1
	// Logf, when set, receives one line per epoch.
	Logf func(format string, args ...any)
}

func (c TrainConfig) defaults() TrainConfig {
	if c.Features.Buckets == 0 {
		c.Features = DefaultFeatures
	}
	if c.Dim <= 0 {
		c.Dim = 128
	}
	if c.Epochs <= 0 {
		c.Epochs = 12
	}
	if c.LR <= 0 {
		c.LR = 0.5
	}
	if c.Scale <= 0 {
		c.Scale = 20
	}
	if c.Margin < 0 {
		c.Margin = 0
	} else if c.Margin == 0 {
		c.Margin = 0.15
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	return c
}

// Encoder is a trained float32 bag encoder: Table has Features.Buckets
// rows of Dim values; rows never seen in training are zero, so unknown
// n-grams add nothing.
type Encoder struct {
	Features FeatureConfig
	Dim      int
	Table    []float32
	Labels   int // number of training labels
	Examples int // number of training examples
}

// Train learns an encoder with a normalised softmax over labels (each label
// has a learned unit prototype; logits are Scale*cos(u, p) with an additive
// margin on the true label, as in CosFace), so texts of one label cluster
// and different labels separate on the unit sphere. Optimisation is
// row-wise Adagrad on the sparse table and the prototypes, one example at
// a time, with a fixed seed: the same data gives the same encoder.
func Train(ctx context.Context, examples []Example, cfg TrainConfig) (*Encoder, error) {
	cfg = cfg.defaults()
	if len(examples) == 0 {
		return nil, errors.New("embed: no training examples")
	}
	labelIdx := map[string]int{}
	var names []string
	for _, e := range examples {
		if _, ok := labelIdx[e.Label]; !ok {
			labelIdx[e.Label] = 0
			names = append(names, e.Label)
		}
	}
	if len(names) < 2 {
		return nil, errors.New("embed: training needs at least two labels")
	}
	sort.Strings(names)
	for i, n := range names {
		labelIdx[n] = i
	}
	type feat struct {
		ids   []int64
		wts   []float32
		label int
	}
	data := make([]feat, 0, len(examples))
	for _, e := range examples {
		ids, wts := cfg.Features.Features(e.Text)
		if len(ids) == 0 {
			continue
		}
		data = append(data, feat{ids, wts, labelIdx[e.Label]})
	}
	D, C, B := cfg.Dim, len(names), cfg.Features.Buckets
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x7a6e))
	table := make([]float32, B*D)
	used := make([]bool, B)
	for _, d := range data {
		for _, id := range d.ids {
			if !used[id] {
				used[id] = true
				row := table[int(id)*D : int(id)*D+D]
				for k := range row {
					row[k] = float32(rng.NormFloat64() * 0.1)
				}
			}
		}
	}
	protos := make([]float32, C*D)
	for k := range protos {
		protos[k] = float32(rng.NormFloat64())
	}
	for c := range C {
		normalize(protos[c*D : c*D+D])
	}
	gTable := make([]float64, B)
	gProto := make([]float64, C)
	s := make([]float32, D)
	u := make([]float32, D)
	gu := make([]float32, D)
	gs := make([]float32, D)
	logits := make([]float64, C)
	alpha := cfg.Scale
	order := make([]int, len(data))
	for i := range order {
		order[i] = i
	}
	for epoch := range cfg.Epochs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		var loss float64
		var correct int
		for _, oi := range order {
			d := data[oi]
			clear(s)
			for j, id := range d.ids {
				row := table[int(id)*D : int(id)*D+D]
				w := d.wts[j]
				for k := range s {
					s[k] += w * row[k]
				}
			}
			var ss float64
			for _, x := range s {
				ss += float64(x) * float64(x)
			}
			n := math.Sqrt(ss)
			if n < 1e-9 {
				continue
			}
			for k := range u {
				u[k] = s[k] / float32(n)
			}
			maxL := math.Inf(-1)
			best := 0
			for c := range C {
				p := protos[c*D : c*D+D]
				var dot float32
				for k := range p {
					dot += u[k] * p[k]
				}
				l := alpha * float64(dot)
				if c == d.label {
					l -= alpha * cfg.Margin
				}
				logits[c] = l
				if l > maxL {
					maxL, best = l, c
				}
			}
			if best == d.label {
				correct++
			}
			var z float64
			for c := range C {
				logits[c] = math.Exp(logits[c] - maxL)
				z += logits[c]
			}
			loss -= math.Log(logits[d.label]/z + 1e-12)
			clear(gu)
			for c := range C {
				q := logits[c] / z
				if c == d.label {
					q -= 1
				}
				if math.Abs(q) < 1e-6 {
					continue
				}
				p := protos[c*D : c*D+D]
				g := float32(alpha * q)
				for k := range gu {
					gu[k] += g * p[k]
				}
				// prototype step on the sphere
				var g2 float64
				for k := range p {
					gk := g * u[k]
					g2 += float64(gk) * float64(gk)
				}
				gProto[c] += g2 / float64(D)
				lr := float32(cfg.LR / math.Sqrt(gProto[c]+1e-8))
				for k := range p {
					p[k] -= lr * g * u[k]
				}
				normalize(p)
			}
			var gdu float32
			for k := range gu {
				gdu += gu[k] * u[k]
			}
			for k := range gs {
				gs[k] = (gu[k] - gdu*u[k]) / float32(n)
			}
			for j, id := range d.ids {
				w := d.wts[j]
				var g2 float64
				for k := range gs {
					gk := w * gs[k]
					g2 += float64(gk) * float64(gk)
				}
				gTable[id] += g2 / float64(D)
				lr := float32(cfg.LR/math.Sqrt(gTable[id]+1e-8)) * w
				row := table[int(id)*D : int(id)*D+D]
				for k := range row {
					row[k] -= lr * gs[k]
				}
			}
		}
		if cfg.Logf != nil {
			cfg.Logf("epoch %d/%d: loss %.4f, train accuracy %.4f", epoch+1, cfg.Epochs, loss/float64(len(data)), float64(correct)/float64(len(data)))
		}
	}
	return &Encoder{Features: cfg.Features, Dim: D, Table: table, Labels: C, Examples: len(data)}, nil
}

// Embed computes the float32 embeddings (the reference the int8 ONNX model
// approximates).
func (e *Encoder) Embed(texts []string) [][]float32 {
	out := make([][]float32, len(texts))
	for i, t := range texts {
		v := make([]float32, e.Dim)
		ids, wts := e.Features.Features(t)
		for j, id := range ids {
			row := e.Table[int(id)*e.Dim : int(id)*e.Dim+e.Dim]
			for k := range v {
				v[k] += wts[j] * row[k]
			}
		}
		normalize(v)
		out[i] = v
	}
	return out
}

// Quantize returns the table as int8 with one float32 scale per row
// (max |x| / 127; zero rows get scale 0).
func (e *Encoder) Quantize() ([]int8, []float32) {
	B, D := e.Features.Buckets, e.Dim
	q := make([]int8, B*D)
	scales := make([]float32, B)
	for r := range B {
		row := e.Table[r*D : r*D+D]
		var m float32
		for _, x := range row {
			m = max(m, float32(math.Abs(float64(x))))
		}
		if m == 0 {
			continue
		}
		sc := m / 127
		scales[r] = sc
		for k, x := range row {
			q[r*D+k] = int8(max(-127, min(127, math.Round(float64(x/sc)))))
		}
	}
	return q, scales
}

func (e *Encoder) String() string {
	return fmt.Sprintf("bag encoder: %d buckets x %d dims, %d labels, %d examples", e.Features.Buckets, e.Dim, e.Labels, e.Examples)
}
