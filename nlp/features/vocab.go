package features

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"
	"unicode"
)

func isLetterOrDigit(r rune) bool { return unicode.IsLetter(r) || unicode.IsNumber(r) }

// Key identifies a feature: group and bucket.
type Key uint64

func key(g uint8, b uint32) Key { return Key(uint64(g)<<32 | uint64(b)) }

// Vocab maps the (group, bucket) keys seen in training to dense rows
// 1..Len() (row 0 is the padding row) and holds their idf.
type Vocab struct {
	keys []Key     // sorted; keys[i] has row i+1
	idf  []float32 // idf[i] of keys[i]
	rows map[Key]int32
}

// Len is the number of feature rows excluding the padding row; a model's
// embedding tables have Len()+1 rows.
func (v *Vocab) Len() int { return len(v.keys) }

// BuildVocab learns the vocabulary and smooth idf (ln((1+n)/(1+df))+1) from
// the term lists of the training texts, dropping keys with df < minDF.
func BuildVocab(docs [][]Term, minDF int) *Vocab {
	df := map[Key]int{}
	for _, d := range docs {
		for _, t := range d {
			df[key(t.Group, t.Bucket)]++
		}
	}
	keys := make([]Key, 0, len(df))
	for k, n := range df {
		if n >= minDF {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	n := float64(len(docs))
	idf := make([]float32, len(keys))
	for i, k := range keys {
		idf[i] = float32(math.Log((1+n)/(1+float64(df[k]))) + 1)
	}
	return newVocab(keys, idf)
}

func newVocab(keys []Key, idf []float32) *Vocab {
	rows := make(map[Key]int32, len(keys))
	for i, k := range keys {
		rows[k] = int32(i + 1)
	}
	return &Vocab{keys: keys, idf: idf, rows: rows}
}

const vocabMagic = "TNDVOC01"

// WriteTo writes the vocabulary in a little-endian binary form: magic, count,
// then (key uint64, idf float32) pairs.
func (v *Vocab) WriteTo(w io.Writer) (int64, error) {
	bw := bufio.NewWriter(w)
	var n int64
	buf := make([]byte, 12)
	m, _ := bw.WriteString(vocabMagic)
	n += int64(m)
	binary.LittleEndian.PutUint64(buf, uint64(len(v.keys)))
	m, _ = bw.Write(buf[:8])
	n += int64(m)
	for i, k := range v.keys {
		binary.LittleEndian.PutUint64(buf, uint64(k))
		binary.LittleEndian.PutUint32(buf[8:], math.Float32bits(v.idf[i]))
		m, _ = bw.Write(buf)
		n += int64(m)
	}
	return n, bw.Flush()
}

// ReadVocab reads a vocabulary written by WriteTo.
func ReadVocab(r io.Reader) (*Vocab, error) {
	br := bufio.NewReader(r)
	head := make([]byte, len(vocabMagic)+8)
	if _, err := io.ReadFull(br, head); err != nil {
		return nil, fmt.Errorf("features: read vocab: %w", err)
	}
	if string(head[:len(vocabMagic)]) != vocabMagic {
		return nil, errors.New("features: not a vocabulary file (bad magic)")
	}
	count := binary.LittleEndian.Uint64(head[len(vocabMagic):])
	if count > 1<<28 {
		return nil, fmt.Errorf("features: vocabulary of %d entries is implausible", count)
	}
	keys := make([]Key, count)
	idf := make([]float32, count)
	buf := make([]byte, 12)
	for i := range keys {
		if _, err := io.ReadFull(br, buf); err != nil {
			return nil, fmt.Errorf("features: read vocab entry %d: %w", i, err)
		}
		keys[i] = Key(binary.LittleEndian.Uint64(buf))
		idf[i] = math.Float32frombits(binary.LittleEndian.Uint32(buf[8:]))
		if i > 0 && keys[i] <= keys[i-1] {
			return nil, fmt.Errorf("features: vocabulary keys not sorted at entry %d", i)
		}
	}
	return newVocab(keys, idf), nil
}

// Featurizer turns texts into (rows, weights) vectors. Safe for concurrent use.
type Featurizer struct {
	cfg   Config
	vocab *Vocab
	pool  sync.Pool // *scratch
}

// New returns a featurizer for cfg and vocab.
func New(cfg Config, vocab *Vocab) (*Featurizer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if vocab == nil {
		return nil, errors.New("features: nil vocabulary")
	}
	f := &Featurizer{cfg: cfg, vocab: vocab}
	f.pool.New = func() any { return new(scratch) }
	return f, nil
}

// Config returns the configuration.
func (f *Featurizer) Config() Config { return f.cfg }

// Vocab returns the vocabulary.
func (f *Featurizer) Vocab() *Vocab { return f.vocab }

// Vector appends the feature rows and weights of s to rows and weights and
// returns them. Rows are ascending and unique; the weights of each group
// have L2 norm equal to the group weight (or are absent).
func (f *Featurizer) Vector(s string, rows []int32, weights []float32) ([]int32, []float32) {
	sc := f.pool.Get().(*scratch)
	terms := f.cfg.terms(sc, s)
	rows, weights = f.FromTerms(terms, rows, weights)
	f.pool.Put(sc)
	return rows, weights
}

// FromTerms is Vector for precomputed terms (Config.Terms).
func (f *Featurizer) FromTerms(terms []Term, rows []int32, weights []float32) ([]int32, []float32) {
	base := len(rows)
	groupStart := base
	var curGroup uint8
	var sum float64
	flush := func(end int) {
		gw := f.cfg.WordWeight
		if curGroup == GroupChar {
			gw = f.cfg.CharWeight
		}
		if sum > 0 {
			scale := float32(float64(gw) / math.Sqrt(sum))
			for i := groupStart; i < end; i++ {
				weights[i] *= scale
			}
		}
		sum = 0
	}
	for _, t := range terms {
		if t.Group != curGroup {
			flush(len(rows))
			curGroup, groupStart = t.Group, len(rows)
		}
		r, ok := f.vocab.rows[key(t.Group, t.Bucket)]
		if !ok {
			continue
		}
		w := f.cfg.tfWeight(t.Count) * f.vocab.idf[r-1]
		rows = append(rows, r)
		weights = append(weights, w)
		sum += float64(w) * float64(w)
	}
	flush(len(rows))
	// Keys sort by group then bucket, and rows follow key order, so rows
	// are already ascending; drop zero-weight rows (group weight 0).
	out := base
	for i := base; i < len(rows); i++ {
		if weights[i] != 0 {
			rows[out], weights[out] = rows[i], weights[i]
			out++
		}
	}
	return rows[:out], weights[:out]
}
