// Package embed holds Tandem's sentence encoders for knowledge retrieval:
//
//   - Local: a bag encoder trained by the project (Train) on FAQ phrasings
//     and intent-labelled utterances — hashed word unigrams and bigrams and
//     character 3-5-grams at word boundaries, an embedding table summed with
//     per-feature weights, L2-normalised — exported as int8 ONNX (Export:
//     the non-zero rows, per-row quantised, dequantised once when the
//     session is created) and run in ONNX Runtime (OpenLocal).
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
	"math"
	"strings"
	"unicode/utf8"

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

// FNV-1a, 64 bit.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnvString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

// fnvRunes hashes the UTF-8 encoding of rs (what string(rs) would hold)
// without building the string.
func fnvRunes(h uint64, rs []rune) uint64 {
	var buf [utf8.UTFMax]byte
	for _, r := range rs {
		if r >= 0 && r < utf8.RuneSelf {
			h ^= uint64(r)
			h *= fnvPrime
			continue
		}
		n := utf8.EncodeRune(buf[:], r)
		for _, b := range buf[:n] {
			h ^= uint64(b)
			h *= fnvPrime
		}
	}
	return h
}

// Features returns the hashed feature ids of text and their weights: the
// FNV-1a hash of "KIND:" followed by the n-gram's UTF-8 bytes, modulo
// Buckets (KIND: w word, b bigram "a b", c character n-gram of "<word>").
func (c FeatureConfig) Features(text string) ([]int64, []float32) {
	words := strings.Fields(knowledge.NormalizeQuery(text))
	ids := make([]int64, 0, 64)
	wts := make([]float32, 0, 64)
	hw, hb, hc := fnvString(fnvOffset, "w:"), fnvString(fnvOffset, "b:"), fnvString(fnvOffset, "c:")
	add := func(h uint64, w float32) {
		if len(ids) >= c.MaxFeatures {
			return
		}
		ids = append(ids, int64(h%uint64(c.Buckets)))
		wts = append(wts, w)
	}
	for _, w := range words {
		add(fnvString(hw, w), 1)
	}
	if c.WordBigrams {
		for i := 1; i < len(words); i++ {
			add(fnvString(fnvString(fnvString(hb, words[i-1]), " "), words[i]), 1)
		}
	}
	var r []rune
	for _, w := range words {
		r = append(r[:0], '<')
		for _, x := range w {
			r = append(r, x)
		}
		r = append(r, '>')
		for n := c.CharMin; n <= c.CharMax; n++ {
			for i := 0; i+n <= len(r); i++ {
				add(fnvRunes(hc, r[i:i+n]), c.CharWeight)
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
