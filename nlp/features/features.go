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
// for padding) with their idf; buckets never seen in training are dropped,
// like out-of-vocabulary terms of a TF-IDF vectoriser.
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
	"strings"
	"unicode/utf8"

	"github.com/tandem-chat/tandem/nlp/text"
)

// Config is the featurisation configuration, stored in model manifests.
type Config struct {
	Buckets     int     `json:"buckets"`      // hash space size
	Seed        uint64  `json:"seed"`         // hash seed
	WordMaxN    int     `json:"word_max_n"`   // word n-grams 1..WordMaxN
	CharMinN    int     `json:"char_min_n"`   // char_wb n-grams CharMinN..CharMaxN
	CharMaxN    int     `json:"char_max_n"`   //
	CJKMaxN     int     `json:"cjk_max_n"`    // char 1..CJKMaxN-grams over unsegmented runs
	Sublinear   bool    `json:"sublinear_tf"` // 1+ln(tf) instead of tf
	WordWeight  float32 `json:"word_weight"`  // L2 norm of the word group
	CharWeight  float32 `json:"char_weight"`  // L2 norm of the char group
	MinDF       int     `json:"min_df"`       // buckets in fewer training texts are dropped
	MaxFeatures int     `json:"max_features"` // cap on features per text (longest texts are truncated)
	Version     int     `json:"version"`      // featuriser algorithm version
}

// Version is the featuriser algorithm version written in new configs.
const Version = 1

// DefaultConfig is the configuration `tandem train` uses unless told
// otherwise: word 1-2-grams, char_wb 2-5-grams, CJK char 1-3-grams, sublinear
// tf with idf, 2^21 buckets.
func DefaultConfig() Config {
	return Config{
		Buckets: 1 << 21, Seed: 0x7a6e64656d, WordMaxN: 2, CharMinN: 2, CharMaxN: 5, CJKMaxN: 3,
		Sublinear: true, WordWeight: 1, CharWeight: 1, MinDF: 1, MaxFeatures: 4096, Version: Version,
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
	case c.WordWeight < 0 || c.CharWeight < 0:
		return errors.New("features: negative group weight")
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
	runes []rune
	terms []Term
}

// Terms returns the hashed terms of s with their raw counts, sorted by
// (group, bucket), each (group, bucket) once.
func (c *Config) Terms(s string) []Term {
	var sc scratch
	return c.terms(&sc, s)
}

func (c *Config) terms(sc *scratch, s string) []Term {
	sc.toks = text.AppendTokens(sc.toks[:0], s)
	sc.terms = sc.terms[:0]
	add := func(g uint8, h uint64) {
		if len(sc.terms) < c.MaxFeatures {
			sc.terms = append(sc.terms, Term{Bucket: c.bucket(h), Group: g, Count: 1})
		}
	}
	// Word tokens: tokens with at least one letter or digit, and runs of
	// unsegmented characters (joined, for char n-grams).
	sc.words = sc.words[:0]
	for i := 0; i < len(sc.toks); i++ {
		t := sc.toks[i]
		r, _ := utf8.DecodeRuneInString(t.Norm)
		if text.IsUnsegmented(r) && c.CJKMaxN > 0 {
			// Gather the run of unsegmented single-char tokens that touch.
			j := i + 1
			for j < len(sc.toks) && sc.toks[j].Start == sc.toks[j-1].End {
				r2, _ := utf8.DecodeRuneInString(sc.toks[j].Norm)
				if !text.IsUnsegmented(r2) {
					break
				}
				j++
			}
			var run strings.Builder
			for k := i; k < j; k++ {
				run.WriteString(sc.toks[k].Norm)
				sc.words = append(sc.words, sc.toks[k].Norm)
			}
			sc.runes = append(sc.runes[:0], ' ')
			sc.runes = append(sc.runes, []rune(run.String())...)
			sc.runes = append(sc.runes, ' ')
			c.charGrams(sc, add, 1, c.CJKMaxN, true)
			i = j - 1
			continue
		}
		if !isWordy(t.Norm) {
			continue
		}
		sc.words = append(sc.words, t.Norm)
		if c.CharMaxN > 0 {
			sc.runes = append(sc.runes[:0], ' ')
			sc.runes = append(sc.runes, []rune(t.Norm)...)
			sc.runes = append(sc.runes, ' ')
			c.charGrams(sc, add, c.CharMinN, c.CharMaxN, false)
		}
	}
	if c.WordMaxN > 0 {
		for i := range sc.words {
			h := c.hashStart('w')
			for n := 1; n <= c.WordMaxN && i+n <= len(sc.words); n++ {
				if n > 1 {
					h ^= ' '
					h *= fnvPrime
				}
				h = hashString(h, sc.words[i+n-1])
				add(GroupWord, h)
			}
		}
	}
	return mergeTerms(sc.terms)
}

// charGrams adds the n-grams (minN..maxN) of sc.runes (a padded word).
// Grams that are only padding are skipped; with skipPadOnly1, unigrams of
// the padding are skipped too.
func (c *Config) charGrams(sc *scratch, add func(uint8, uint64), minN, maxN int, _ bool) {
	rs := sc.runes
	for n := minN; n <= maxN; n++ {
		if n > len(rs) {
			break
		}
		for i := 0; i+n <= len(rs); i++ {
			g := rs[i : i+n]
			if n <= 2 && allSpace(g) {
				continue
			}
			sc.buf = sc.buf[:0]
			for _, r := range g {
				sc.buf = utf8.AppendRune(sc.buf, r)
			}
			h := c.hashStart('c')
			for _, b := range sc.buf {
				h ^= uint64(b)
				h *= fnvPrime
			}
			add(GroupChar, h)
		}
		// sklearn's char_wb stops after the first n-gram when the padded
		// word is shorter than n; here every n-gram of the padded word counts.
	}
}

func allSpace(rs []rune) bool {
	for _, r := range rs {
		if r != ' ' {
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
		if r >= utf8.RuneSelf && (isLetterOrDigit(r)) {
			return true
		}
	}
	return false
}

func mergeTerms(ts []Term) []Term {
	if len(ts) == 0 {
		return ts
	}
	slices.SortFunc(ts, func(a, b Term) int {
		if a.Group != b.Group {
			return int(a.Group) - int(b.Group)
		}
		if a.Bucket < b.Bucket {
			return -1
		}
		if a.Bucket > b.Bucket {
			return 1
		}
		return 0
	})
	out := ts[:1]
	for _, t := range ts[1:] {
		last := &out[len(out)-1]
		if t.Group == last.Group && t.Bucket == last.Bucket {
			last.Count += t.Count
			continue
		}
		out = append(out, t)
	}
	return out
}

// tfWeight returns the term-frequency weight of a count.
func (c *Config) tfWeight(count float32) float32 {
	if c.Sublinear {
		return 1 + float32(math.Log(float64(count)))
	}
	return count
}
