// Package intent trains, calibrates, exports and evaluates Tandem's intent
// classifier.
//
// Architecture ("wide and deep", a product of experts): a text's sparse
// TF-IDF vector x over hashed word and char n-grams (package features) feeds
// three branches. The deep branch multiplies x into an embedding table E
// ([rows x Hidden], an "embedding bag": gather the rows of the text's
// features, weight them by tf-idf, sum), adds a bias, applies a ReLU, then a
// linear layer to one logit per intent (the out-of-scope label "oos" is an
// ordinary class when the data has it); members trained independently from
// different seeds are averaged, which is exactly one wider model (E and the
// output layer concatenated). Two wide branches are linear in x: a softmax
// regression and a one-vs-rest squared-hinge linear SVM, both trained with
// plain SGD (whose implicit bias toward large margins makes them behave like
// their L2-regularised counterparts). Each branch's logits are divided by
// its own temperature fitted on the validation slice and mixed with
// Config.BranchWeights; the two wide branches then add up to one table Lin
// [rows x labels], so the mixture exports as a single graph with one extra
// gather. Confidence is softmax(logits / Temperature), with the temperature
// fitted on the held-out validation slice; a text is out of scope when its
// top intent is "oos" or its out-of-scope score (Score) is below Threshold,
// also chosen on that slice. With an "oos" label the score is the log ratio
// of the top in-scope intent's probability to the oos probability
// (ScoreOOSLogRatio); without one it is the top probability (ScoreMaxProb).
//
// Contract: Model is immutable after Train or Load and its methods are safe
// for concurrent use. Forward is the reference the exported ONNX graph is
// tested against.
package intent

import (
	"math"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/nlp/features"
)

// Model is a trained intent classifier.
type Model struct {
	Labels     []string
	Featurizer *features.Featurizer
	Hidden     int       // width of the hidden (bag) layer
	E          []float32 // [(Vocab.Len()+1) x Hidden], row 0 zero (padding)
	B0         []float32 // [Hidden]
	Wo         []float32 // [Hidden x len(Labels)]
	Bo         []float32 // [len(Labels)]
	Lin        []float32 // [(Vocab.Len()+1) x len(Labels)] linear (wide) branches added to the logits; nil = none
	// BranchTemperatures are the temperatures of the deep, linear and SVM
	// branches fitted on the validation slice; the merged weights already
	// include them (weight / temperature).
	BranchTemperatures [3]float64
	Temperature        float64 // confidence = softmax(logits / Temperature)
	Threshold          float64 // out of scope when the Score is below this
	Score              string  // the score Threshold applies to: ScoreMaxProb ("" in models saved before it existed) or ScoreOOSLogRatio
	Validation         Metrics // metrics on the validation slice at Threshold
	Config             Config  // training configuration
	DataDigest         string  // features of the training data (data.Dataset.Digest)
	Examples           int     // training examples used
}

// NumLabels returns the number of intents.
func (m *Model) NumLabels() int { return len(m.Labels) }

// OOSIndex returns the index of the out-of-scope label, or -1.
func (m *Model) OOSIndex() int {
	for i, l := range m.Labels {
		if l == tandem.OutOfScope {
			return i
		}
	}
	return -1
}

// Logits computes the logits of a featurised text (rows, weights) into out
// (len NumLabels), using h as scratch (len Hidden). It is the reference
// forward pass.
func (m *Model) Logits(rows []int32, weights []float32, h, out []float32) {
	C := len(m.Labels)
	logits(m.E, m.B0, m.Wo, m.Bo, m.Hidden, C, rows, weights, h, out)
	if m.Lin != nil {
		for i, r := range rows {
			w := weights[i]
			row := m.Lin[int(r)*C : int(r)*C+C]
			for c, v := range row {
				out[c] += w * v
			}
		}
	}
}

func logits(E, b0, Wo, bo []float32, H, C int, rows []int32, weights []float32, h, out []float32) {
	copy(h, b0)
	for i, r := range rows {
		w := weights[i]
		e := E[int(r)*H : int(r)*H+H]
		for d := range h {
			h[d] += w * e[d]
		}
	}
	copy(out, bo)
	for d, v := range h {
		if v <= 0 {
			continue
		}
		wo := Wo[d*C : d*C+C]
		for c := range out {
			out[c] += v * wo[c]
		}
	}
}

// Softmax writes softmax(logits / T) into p and returns the arg max.
func Softmax(logits []float32, T float64, p []float64) int {
	best := 0
	mx := math.Inf(-1)
	for i, v := range logits {
		if float64(v) > mx {
			mx, best = float64(v), i
		}
	}
	var sum float64
	for i, v := range logits {
		p[i] = math.Exp((float64(v) - mx) / T)
		sum += p[i]
	}
	for i := range p {
		p[i] /= sum
	}
	return best
}

// Out-of-scope scores: what Model.Threshold (and the manifest's threshold)
// applies to.
const (
	// ScoreMaxProb is the top intent's calibrated probability.
	ScoreMaxProb = "max_prob"
	// ScoreOOSLogRatio is ln p(top in-scope intent) - ln p(oos): how much
	// more likely the best in-scope intent is than the out-of-scope class.
	// Unlike the top probability it does not fall when the probability is
	// shared between similar in-scope intents.
	ScoreOOSLogRatio = "oos_log_ratio"
)

// OOSScore returns the out-of-scope score of kind (ScoreMaxProb when kind is
// "") from calibrated probabilities p, their arg max best and the index of
// the oos label (-1 when there is none; ScoreOOSLogRatio then falls back to
// the top probability). Lower scores are more out of scope; +Inf when p(oos)
// underflows to 0.
func OOSScore[F float32 | float64](kind string, p []F, best, oos int) float64 {
	if kind != ScoreOOSLogRatio || oos < 0 {
		return float64(p[best])
	}
	top := best
	if top == oos {
		top = -1
		for c := range p {
			if c != oos && (top < 0 || p[c] > p[top]) {
				top = c
			}
		}
	}
	return math.Log(float64(p[top])) - math.Log(float64(p[oos]))
}

// Prediction is the decision for one text.
type Prediction struct {
	Label      string
	Index      int
	Confidence float64
	Score      float64 // the out-of-scope score compared with the threshold (Model.Score)
	OutOfScope bool
	Probs      []float64 // calibrated, per label
}

// Predict classifies one text with the reference (pure Go) forward pass.
func (m *Model) Predict(s string) Prediction {
	rows, w := m.Featurizer.Vector(s, nil, nil)
	h := make([]float32, m.Hidden)
	lg := make([]float32, len(m.Labels))
	m.Logits(rows, w, h, lg)
	p := make([]float64, len(m.Labels))
	best := Softmax(lg, m.Temperature, p)
	return m.Decide(p, best)
}

// Decide turns calibrated probabilities into a prediction.
func (m *Model) Decide(p []float64, best int) Prediction {
	pr := Prediction{Label: m.Labels[best], Index: best, Confidence: p[best], Probs: p}
	pr.Score = OOSScore(m.Score, p, best, m.OOSIndex())
	pr.OutOfScope = pr.Label == tandem.OutOfScope || pr.Score < m.Threshold
	return pr
}
