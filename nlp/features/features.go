// Package features turns text into the sparse, weighted feature vectors that
// Tandem's intent model consumes. The same code runs at training time and
// at inference, so features are identical bit for bit.
//
// Pipeline: text.Tokenize -> hashed n-grams in two groups, words (word
// 1..WordMaxN-grams over word tokens) and chars (char_wb CharMinN..CharMaxN
// n-grams of each space-padded word token; runs of unsegmented-script
// characters such as Chinese get char 1..CJKMaxN-grams instead) -> term
// counts per bucket -> sublinear tf (1+ln tf) -> times the idf learned at
// training time -> L2 normalisation of each group, scaled by the group's
// weight.
//
// Buckets are FNV-1a 64 hashes (seeded, with a group tag) modulo Buckets.
// A Vocab maps the buckets seen in training to dense rows (row 0 is reserved
// for padding) with their idf; buckets never seen in training get no row,
// like out-of-vocabulary terms of a TF-IDF vectoriser, but with OOVWeight
// they still count in their group's norm (so the known rows of a text of
// mostly unseen words get small weights).
//
// Contract: Config and Vocab are immutable after construction; Featurizer
// methods are safe for concurrent use; output rows are sorted ascending and
// unique, so sums over features are reproducible.
package features

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"unicode/utf8"

	"github.com/tandem-chat/tandem/nlp/text"
)

// Config is the featurisation configuration, stored in model manifests.
type Config struct {
	Buckets     int     `json:"buckets"`              // hash space size
	Seed        uint64  `json:"seed"`                 // hash seed
	WordMaxN    int     `json:"word_max_n"`           // word n-grams 1..WordMaxN
	CharMinN    int     `json:"char_min_n"`           // char_wb n-grams CharMinN..CharMaxN
	CharMaxN    int     `json:"char_max_n"`           //
	CJKMaxN     int     `json:"cjk_max_n"`            // char 1..CJKMaxN-grams over unsegmented runs
	Sublinear   bool    `json:"sublinear_tf"`         // 1+ln(tf) instead of tf
	WordWeight  float32 `json:"word_weight"`          // L2 norm of the word group (an upper bound with OOVWeight)
	CharWeight  float32 `json:"char_weight"`          // L2 norm of the char group (likewise)
	MinDF       int     `json:"min_df"`               // buckets in fewer training texts are dropped
	MaxFeatures int     `json:"max_features"`         // cap on features per text (longest texts are truncated)
	OOVWeight   float32 `json:"oov_weight,omitempty"` // terms not in the vocabulary count in each group's L2 norm at this times the largest idf (0 = they are ignored)
	Version     int     `json:"version"`              // featuriser algorithm version
}

// Version is the featuriser algorithm version written in new configs.
const Version = 1

// DefaultConfig is the configuration `tandem train` uses unless told
// otherwise: word 1-2-grams, char_wb 2-5-grams, CJK char 1-3-grams, sublinear
// tf with idf, 2^21 buckets, unknown terms counted in the norm at the
// largest idf (OOVWeight 1: on the CLINC150 development split, seeds 1-5,
// +0.26 point of in-scope accuracy at the trainer's threshold and +0.02 oos
// recall on average, and a better trade-off at every seed; see
// docs/benchmarks.md).
func DefaultConfig() Config {
	return Config{
		Buckets: 1 << 21, Seed: 0x7a6e64656d, WordMaxN: 2, CharMinN: 2, CharMaxN: 5, CJKMaxN: 3,
		Sublinear: true, WordWeight: 1, CharWeight: 1, MinDF: 1, MaxFeatures: 4096, OOVWeight: 1, Version: Version,
	}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.Version != Version:
		return fmt.Errorf("features: config version %d, this build supports %d", c.Version, Version)
	case c.Buckets < 16 || c.Buckets > 1<<30:
		return fmt.Errorf("features: buckets %d out of range [16, 2^30]", c.Buckets)
	case c.WordMaxN < 0 || c.WordMaxN > 4:
		return fmt.Errorf("features: word_max_n %d out of range [0, 4]", c.WordMaxN)
	case c.CharMaxN > 0 && (c.CharMinN < 1 || c.CharMinN > c.CharMaxN || c.CharMaxN > 8):
		return fmt.Errorf("features: char n-gram range [%d, %d] invalid", c.CharMinN, c.CharMaxN)
	case c.CJKMaxN < 0 || c.CJKMaxN > 6:
		return fmt.Errorf("features: cjk_max_n %d out of range [0, 6]", c.CJKMaxN)
	case c.WordMaxN == 0 && c.CharMaxN == 0 && c.CJKMaxN == 0:
		return errors.New("features: no feature group enabled")
	case !(c.WordWeight >= 0) || !(c.CharWeight >= 0) || math.IsInf(float64(c.WordWeight), 0) || math.IsInf(float64(c.CharWeight), 0): // also NaN
		return errors.New("features: negative group weight")
	case !(c.OOVWeight >= 0 && c.OOVWeight <= 16): // also NaN
		return errors.New("features: oov_weight out of range [0, 16]")
	case c.MaxFeatures < 1:
		return errors.New("features: max_features must be positive")
	}
	return nil
}

// Group tags.
const (
	GroupWord = 0
	GroupChar = 1
)

// Term is one hashed feature of a text: its bucket, group and count.
type Term struct {
	Bucket uint32
	Group  uint8
	Count  float32
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func (c *Config) hashStart(tag byte) uint64 {
	h := uint64(fnvOffset) ^ c.Seed
	h *= fnvPrime
	h ^= uint64(tag)
	h *= fnvPrime
	return h
}

func hashString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

func (c *Config) bucket(h uint64) uint32 {
	// Final avalanche (splitmix64) so that the low bits are well mixed.
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return uint32(h % uint64(c.Buckets))
}

// scratch is reusable per-call state.
type scratch struct {
	toks  []text.Token
	words []string
	buf   []byte
	offs  []int
	keys  []Key
	rows  []int32
	unk   []Key
}

// Terms returns the hashed terms of s with their raw counts, sorted by
// (group, bucket), each (group, bucket) once.
func (c *Config) Terms(s string) []Term {
	var sc scratch
	c.keys(&sc, s)
	slices.Sort(sc.keys)
	var out []Term
	for i, k := range sc.keys {
		if i > 0 && k == sc.keys[i-1] {
			out[len(out)-1].Count++
			continue
		}
		out = append(out, Term{Bucket: uint32(k), Group: uint8(k >> 32), Count: 1})
	}
	return out
}

// keys fills sc.keys with the feature keys of s in generation order: for
// each token its char n-grams (or, for a run of unsegmented characters, the
// run's char n-grams), then the word n-grams; at most MaxFeatures.
func (c *Config) keys(sc *scratch, s string) {
	sc.toks = text.AppendTokens(sc.toks[:0], s)
	sc.keys = sc.keys[:0]
	sc.words = sc.words[:0]
	for i := 0; i < len(sc.toks); i++ {
		t := sc.toks[i]
		r, _ := utf8.DecodeRuneInString(t.Norm)
		if c.CJKMaxN > 0 && text.IsUnsegmented(r) {
			// The run of touching unsegmented single-character tokens.
			j := i + 1
			for j < len(sc.toks) && sc.toks[j].Start == sc.toks[j-1].End {
				r2, _ := utf8.DecodeRuneInString(sc.toks[j].Norm)
				if !text.IsUnsegmented(r2) {
					break
				}
				j++
			}
			sc.buf = append(sc.buf[:0], ' ')
			for k := i; k < j; k++ {
				sc.buf = append(sc.buf, sc.toks[k].Norm...)
				sc.words = append(sc.words, sc.toks[k].Norm)
			}
			sc.buf = append(sc.buf, ' ')
			c.charGrams(sc, 1, c.CJKMaxN)
			i = j - 1
			continue
		}
		if !isWordy(t.Norm) {
			continue
		}
		sc.words = append(sc.words, t.Norm)
		if c.CharMaxN > 0 {
			sc.buf = append(sc.buf[:0], ' ')
			sc.buf = append(sc.buf, t.Norm...)
			sc.buf = append(sc.buf, ' ')
			c.charGrams(sc, c.CharMinN, c.CharMaxN)
		}
	}
	if c.WordMaxN > 0 {
		start := c.hashStart('w')
		for i := range sc.words {
			h := start
			for n := 1; n <= c.WordMaxN && i+n <= len(sc.words); n++ {
				if n > 1 {
					h ^= ' '
					h *= fnvPrime
				}
				h = hashString(h, sc.words[i+n-1])
				if len(sc.keys) < c.MaxFeatures {
					sc.keys = append(sc.keys, key(GroupWord, c.bucket(h)))
				}
			}
		}
	}
}

// charGrams adds the char n-grams (minN..maxN characters) of the padded
// word in sc.buf; grams of one or two characters that are only padding are
// skipped.
func (c *Config) charGrams(sc *scratch, minN, maxN int) {
	sc.offs = sc.offs[:0]
	for i := range string(sc.buf) {
		sc.offs = append(sc.offs, i)
	}
	nr := len(sc.offs)
	sc.offs = append(sc.offs, len(sc.buf))
	start := c.hashStart('c')
	for n := minN; n <= maxN && n <= nr; n++ {
		for i := 0; i+n <= nr; i++ {
			g := sc.buf[sc.offs[i]:sc.offs[i+n]]
			if n <= 2 && allSpace(g) {
				continue
			}
			if len(sc.keys) >= c.MaxFeatures {
				return
			}
			h := start
			for _, b := range g {
				h ^= uint64(b)
				h *= fnvPrime
			}
			sc.keys = append(sc.keys, key(GroupChar, c.bucket(h)))
		}
	}
}

func allSpace(b []byte) bool {
	for _, c := range b {
		if c != ' ' {
			return false
		}
	}
	return true
}

func isWordy(s string) bool {
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return true
		}
		if r >= utf8.RuneSelf && isLetterOrDigit(r) {
			return true
		}
	}
	return false
}

// tfWeight returns the term-frequency weight of a count.
func (c *Config) tfWeight(count float32) float32 {
	if c.Sublinear {
		if count == 1 { // most n-grams occur once; 1 + ln 1 is exactly 1
			return 1
		}
		return 1 + float32(math.Log(float64(count)))
	}
	return count
}
