// Package embed holds Tandem's sentence encoders for knowledge retrieval:
//
//   - Local: a bag encoder trained by the project (Train) on FAQ phrasings
//     and intent-labelled utterances — hashed word unigrams and bigrams and
//     character 3-5-grams at word boundaries, an embedding table summed with
//     per-feature weights, L2-normalised — exported as int8 ONNX (Export:
//     per-row quantised table, dequantised after the gather) and run in ONNX
//     Runtime (OpenLocal).
//   - Remote: an OpenAI-compatible /v1/embeddings client (go-openai) with
//     batching, a per-request timeout, a gobreaker circuit breaker and a
//     configured dimension that every response is checked against.
//
// The featurisation lives here rather than in nlp because knowledge may not
// import nlp (DESIGN.md dependency rule); training and inference share it,
// and the encoder manifest records its parameters.
//
// Contract: Local and Remote are safe for concurrent use. Embed returns one
// unit-length vector per text, in order.
package embed

import (
	"hash/fnv"
	"math"
	"strings"

	"github.com/tandem-chat/tandem/knowledge"
)

// FeatureConfig describes the hashed n-gram featurisation; it is stored in
// the encoder manifest so inference featurises exactly like training.
type FeatureConfig struct {
	Buckets     int     `json:"buckets"`      // hash space (rows of the embedding table)
	CharMin     int     `json:"char_min"`     // character n-gram sizes at word boundaries
	CharMax     int     `json:"char_max"`     //
	WordBigrams bool    `json:"word_bigrams"` // add word bigrams
	MaxFeatures int     `json:"max_features"` // per text (truncated beyond)
	CharWeight  float32 `json:"char_weight"`  // weight of one char n-gram relative to a word
}

// DefaultFeatures is the configuration Tandem's encoders use.
var DefaultFeatures = FeatureConfig{Buckets: 1 << 18, CharMin: 3, CharMax: 5, WordBigrams: true, MaxFeatures: 384, CharWeight: 0.5}

// Features returns the hashed feature ids of text and their weights.
func (c FeatureConfig) Features(text string) ([]int64, []float32) {
	words := strings.Fields(knowledge.NormalizeQuery(text))
	ids := make([]int64, 0, 64)
	wts := make([]float32, 0, 64)
	add := func(kind byte, s string, w float32) {
		if len(ids) >= c.MaxFeatures {
			return
		}
		h := fnv.New64a()
		h.Write([]byte{kind, ':'})
		h.Write([]byte(s))
		ids = append(ids, int64(h.Sum64()%uint64(c.Buckets)))
		wts = append(wts, w)
	}
	for _, w := range words {
		add('w', w, 1)
	}
	if c.WordBigrams {
		for i := 1; i < len(words); i++ {
			add('b', words[i-1]+" "+words[i], 1)
		}
	}
	for _, w := range words {
		r := []rune("<" + w + ">")
		for n := c.CharMin; n <= c.CharMax; n++ {
			for i := 0; i+n <= len(r); i++ {
				add('c', string(r[i:i+n]), c.CharWeight)
			}
		}
	}
	return ids, wts
}

// normalize scales v to unit length in place (zero stays zero).
func normalize(v []float32) {
	var ss float64
	for _, x := range v {
		ss += float64(x) * float64(x)
	}
	if ss == 0 {
		return
	}
	inv := float32(1 / math.Sqrt(ss))
	for i := range v {
		v[i] *= inv
	}
}
