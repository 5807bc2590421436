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
	keys      []Key     // sorted; keys[i] has row i+1
	idf       []float32 // idf[i] of keys[i]
	table     []slotKV  // open addressing, len a power of two
	shift     uint
	firstChar int32   // first row of the char group (rows below are words)
	idfMax    float32 // the largest idf (of the rarest training terms)
}

type slotKV struct {
	key Key
	row int32 // 0 = empty
}

func (v *Vocab) slot(k Key) int {
	return int((uint64(k) * 0x9E3779B97F4A7C15) >> v.shift)
}

// row returns the row of k, or 0 when k is not in the vocabulary.
func (v *Vocab) row(k Key) int32 {
	mask := len(v.table) - 1
	for i := v.slot(k); ; i = (i + 1) & mask {
		e := v.table[i]
		if e.row == 0 || e.key == k {
			return e.row
		}
	}
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
	size, bits := 16, uint(4)
	for size < 2*len(keys) {
		size, bits = size*2, bits+1
	}
	v := &Vocab{keys: keys, idf: idf, table: make([]slotKV, size), shift: 64 - bits, firstChar: int32(len(keys) + 1)}
	mask := size - 1
	for i, k := range keys {
		j := v.slot(k)
		for v.table[j].row != 0 {
			j = (j + 1) & mask
		}
		v.table[j] = slotKV{key: k, row: int32(i + 1)}
		v.idfMax = max(v.idfMax, idf[i])
		if k>>32 == GroupChar && v.firstChar == int32(len(keys)+1) {
			v.firstChar = int32(i + 1)
		}
	}
	return v
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
// have L2 norm equal to the group weight (or are absent), less when
// Config.OOVWeight counts unknown terms in the norm. The result equals
// FromTerms(Config.Terms(s)) exactly.
func (f *Featurizer) Vector(s string, rows []int32, weights []float32) ([]int32, []float32) {
	sc := f.pool.Get().(*scratch)
	f.cfg.keys(sc, s)
	sc.rows = sc.rows[:0]
	sc.unk = sc.unk[:0]
	for _, k := range sc.keys {
		if r := f.vocab.row(k); r != 0 {
			sc.rows = append(sc.rows, r)
		} else if f.cfg.OOVWeight > 0 {
			sc.unk = append(sc.unk, k)
		}
	}
	var unk [2]float64
	if len(sc.unk) > 0 {
		// The unknown terms' tf weights, each distinct key once (as Terms
		// counts them).
		slices.Sort(sc.unk)
		count := float32(1)
		for i, k := range sc.unk {
			if i+1 < len(sc.unk) && sc.unk[i+1] == k {
				count++
				continue
			}
			w := float64(f.cfg.tfWeight(count))
			unk[min(int(k>>32), 1)] += w * w
			count = 1
		}
	}
	slices.Sort(sc.rows)
	base := len(rows)
	for i, r := range sc.rows {
		if i > 0 && r == sc.rows[i-1] {
			weights[len(weights)-1]++
			continue
		}
		rows = append(rows, r)
		weights = append(weights, 1)
	}
	f.pool.Put(sc)
	return f.weigh(rows, weights, base, unk)
}

// FromTerms is Vector for precomputed terms (Config.Terms).
func (f *Featurizer) FromTerms(terms []Term, rows []int32, weights []float32) ([]int32, []float32) {
	base := len(rows)
	var unk [2]float64
	for _, t := range terms {
		if r := f.vocab.row(key(t.Group, t.Bucket)); r != 0 {
			rows = append(rows, r)
			weights = append(weights, t.Count)
		} else if f.cfg.OOVWeight > 0 {
			w := float64(f.cfg.tfWeight(t.Count))
			unk[min(int(t.Group), 1)] += w * w
		}
	}
	return f.weigh(rows, weights, base, unk)
}

// weigh turns the counts in weights[base:] (rows ascending) into tf-idf
// weights normalised per group.
//
// With Config.OOVWeight, unk holds per group the sum of the squared tf
// weights of the text's terms missing from the vocabulary; they count in the
// group's norm at OOVWeight times the largest idf, so a text made mostly of
// words never seen in training gets a short vector (less confident
// predictions) instead of its few known terms scaled up to the full norm.
func (f *Featurizer) weigh(rows []int32, weights []float32, base int, unk [2]float64) ([]int32, []float32) {
	split := base
	for split < len(rows) && rows[split] < f.vocab.firstChar {
		split++
	}
	for g, span := range [2][2]int{{base, split}, {split, len(rows)}} {
		gw := f.cfg.WordWeight
		if g == 1 {
			gw = f.cfg.CharWeight
		}
		var sum float64
		for i := span[0]; i < span[1]; i++ {
			w := f.cfg.tfWeight(weights[i]) * f.vocab.idf[rows[i]-1]
			weights[i] = w
			sum += float64(w) * float64(w)
		}
		if o := float64(f.cfg.OOVWeight) * float64(f.vocab.idfMax); o > 0 {
			sum += o * o * unk[g]
		}
		if sum > 0 {
			scale := float32(float64(gw) / math.Sqrt(sum))
			for i := span[0]; i < span[1]; i++ {
				weights[i] *= scale
			}
		}
	}
	out := base
	for i := base; i < len(rows); i++ {
		if weights[i] != 0 {
			rows[out], weights[out] = rows[i], weights[i]
			out++
		}
	}
	return rows[:out], weights[:out]
}
