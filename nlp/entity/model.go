package entity

import (
	"context"
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/nlp/text"
)

// Model is a trained tagger held in memory: the featuriser configuration,
// the feature vocabulary, the emission table (one row of tag scores per
// feature), the linear-chain transitions, the gazetteer and the value
// normalisation table. It tags text with a pure-Go forward pass (the
// reference the ONNX export is tested against) and is safe for concurrent
// use once trained.
type Model struct {
	Types    []string      // entity types, sorted
	Tags     []string      // "O", then "B-type", "I-type" for each type
	Features FeatureConfig // featurisation

	hashes []uint64   // row r (1-based) is the feature hashes[r-1]
	vocab  *hashIndex // feature hash -> row
	w      []float32  // (len(hashes)+1) x K emission table; row 0 is zero (padding)
	start  []float32  // K: score of a tag at the first token
	end    []float32  // K: score of a tag at the last token
	trans  []float32  // K x K: trans[i*K+j] is the score of tag j after tag i
	gaz    *gazetteer
	values map[string]string // normalised surface text -> canonical value

	crfOnce sync.Once
	crf     *crf // exponentiated potentials, built on first use

	seen    sync.Pool // *rowSeen, for deduplicating rows in encode
	scratch sync.Pool // *featScratch, encode's feature buffers

	info       TrainInfo
	exportFP32 bool // Save also writes entity.fp32.onnx
}

// TrainInfo describes how a model was trained (stored in the manifest).
type TrainInfo struct {
	Examples   int     `json:"examples"`
	Epochs     int     `json:"epochs"`
	Seed       int64   `json:"seed"`
	DataDigest string  `json:"data_digest,omitempty"`
	Seconds    float64 `json:"seconds"`
	Loss       float64 `json:"final_loss"`
	Features   int     `json:"features"`
}

// Info returns the training information.
func (m *Model) Info() TrainInfo { return m.info }

// K returns the number of tags.
func (m *Model) K() int { return len(m.Tags) }

// NumFeatures returns the size of the feature vocabulary.
func (m *Model) NumFeatures() int { return len(m.hashes) }

const negInf = float32(-1e30)

// tagSet builds the BIO tag list of types.
func tagSet(types []string) []string {
	tags := []string{"O"}
	for _, t := range types {
		tags = append(tags, "B-"+t, "I-"+t)
	}
	return tags
}

// allowedMatrix returns the BIO constraints: I-x may only follow B-x or
// I-x, and may not start a sequence. Tags are laid out as tagSet.
func allowedMatrix(k int) (allowed []bool, startOK []bool) {
	allowed = make([]bool, k*k)
	startOK = make([]bool, k)
	for j := 0; j < k; j++ {
		startOK[j] = j == 0 || j%2 == 1 // O or B-x
		for i := 0; i < k; i++ {
			if j == 0 || j%2 == 1 {
				allowed[i*k+j] = true
				continue
			}
			// j is I-x with B-x = j-1.
			allowed[i*k+j] = i == j || i == j-1
		}
	}
	return allowed, startOK
}

// rowsOf maps hashed features to vocabulary rows, dropping unknown ones.
func (m *Model) rowsOf(feats []uint64, dst []int32) []int32 {
	dst = dst[:0]
	for _, h := range feats {
		if r := m.vocab.row(h); r != 0 {
			dst = append(dst, r)
		}
	}
	return dst
}

// encode tokenises and featurises s into rows per token.
func (m *Model) encode(s string) ([]Token, [][]int32) {
	toks, rows, _, _ := m.encodeInto(s, nil, nil)
	return toks, rows
}

// encodeInto is encode with the rows appended to two arenas, which it
// returns grown (a batch reuses them from call to call): all holds the row
// ids, rowsOut the tokens' slices of them. The returned rows are the
// arena's last len(toks) entries; they stay valid when later calls grow
// the arenas.
func (m *Model) encodeInto(s string, all []int32, rowsArena [][]int32) ([]Token, [][]int32, []int32, [][]int32) {
	toks := Tokens(s)
	if len(toks) > m.Features.MaxTokens {
		toks = toks[:m.Features.MaxTokens]
	}
	// The same rows as rowsOf(featurize(...)) (distinct hashes have
	// distinct rows), deduplicated without sorting: in first-seen order.
	// Every token's list starts with the sentence features, so their rows
	// are looked up once per text rather than once per token.
	sc, _ := m.scratch.Get().(*featScratch)
	if sc == nil {
		sc = new(featScratch)
	}
	m.Features.featurizeInto(sc, s, toks, m.gaz)
	sn, _ := m.seen.Get().(*rowSeen)
	if sn == nil || len(sn.stamp) != len(m.hashes)+1 {
		sn = &rowSeen{stamp: make([]uint32, len(m.hashes)+1)}
	}
	sn.next()
	sent := sc.rows[:0]
	for _, h := range sc.sent {
		if row := m.vocab.row(h); row != 0 && sn.stamp[row] != sn.gen {
			sn.stamp[row] = sn.gen
			sent = append(sent, row)
		}
	}
	sc.rows = sent
	rlo := len(rowsArena)
	rowsArena = slices.Grow(rowsArena, len(sc.ends))
	all = slices.Grow(all, len(sc.ends)*len(sent)+len(sc.flat)) // one block for every token's rows
	for i := range sc.ends {
		sn.next()
		lo := len(all)
		for _, r := range sent {
			sn.stamp[r] = sn.gen
		}
		all = append(all, sent...)
		for _, h := range sc.own(i) {
			if row := m.vocab.row(h); row != 0 && sn.stamp[row] != sn.gen {
				sn.stamp[row] = sn.gen
				all = append(all, row)
			}
		}
		rowsArena = append(rowsArena, all[lo:len(all):len(all)])
	}
	m.seen.Put(sn)
	m.scratch.Put(sc)
	rows := rowsArena[rlo:len(rowsArena):len(rowsArena)]
	return toks, rows, all, rowsArena
}

// rowSeen marks rows already taken for the current token: stamp[row] ==
// gen. A new generation forgets all marks without clearing.
type rowSeen struct {
	stamp []uint32
	gen   uint32
}

func (s *rowSeen) next() {
	s.gen++
	if s.gen == 0 { // wrapped: clear once every 2^32 tokens
		clear(s.stamp)
		s.gen = 1
	}
}

// emissions computes the [T][K] emission scores of the token rows into out.
func (m *Model) emissions(rows [][]int32, out []float32) []float32 {
	k := m.K()
	out = resize(out, len(rows)*k)
	for t, rs := range rows {
		e := out[t*k : (t+1)*k]
		for i := range e {
			e[i] = 0
		}
		for _, r := range rs {
			w := m.w[int(r)*k : int(r+1)*k]
			for i := range e {
				e[i] += w[i]
			}
		}
	}
	return out
}

// resize returns b[:n], reallocating only when b is too small (the
// contents are whatever b held: callers overwrite or clear them).
func resize[T int64 | float32 | float64](b []T, n int) []T {
	if cap(b) < n {
		return make([]T, n)
	}
	return b[:n]
}

// viterbi returns the best constrained tag path for emissions [T][K].
func viterbi(emis []float32, T, K int, start, end, trans []float32, allowed, startOK []bool) []int {
	if T == 0 {
		return nil
	}
	score := make([]float32, T*K)
	back := make([]int32, T*K)
	for j := 0; j < K; j++ {
		if startOK[j] {
			score[j] = start[j] + emis[j]
		} else {
			score[j] = negInf
		}
	}
	for t := 1; t < T; t++ {
		prev := score[(t-1)*K : t*K]
		cur := score[t*K : (t+1)*K]
		for j := 0; j < K; j++ {
			best, bi := negInf*2, int32(0)
			if j > 0 && j%2 == 0 {
				// I-x: only from B-x (j-1) and I-x (j) when allowed.
				for _, i := range [2]int{j - 1, j} {
					if allowed[i*K+j] {
						if v := prev[i] + trans[i*K+j]; v > best {
							best, bi = v, int32(i)
						}
					}
				}
			} else {
				// O and B-x may follow any tag.
				for i := 0; i < K; i++ {
					if v := prev[i] + trans[i*K+j]; v > best {
						best, bi = v, int32(i)
					}
				}
			}
			cur[j] = best + emis[t*K+j]
			back[t*K+j] = bi
		}
	}
	last := score[(T-1)*K : T*K]
	best, bj := negInf*2, 0
	for j := 0; j < K; j++ {
		if v := last[j] + end[j]; v > best {
			best, bj = v, j
		}
	}
	path := make([]int, T)
	path[T-1] = bj
	for t := T - 1; t > 0; t-- {
		path[t-1] = int(back[t*K+path[t]])
	}
	return path
}

// crf holds exponentiated potentials for scaled forward-backward.
type crf struct {
	K       int
	expT    []float64 // K x K, 0 where not allowed
	expS    []float64 // K
	expE    []float64 // K
	allowed []bool
	startOK []bool
}

func newCRF(K int, start, end, trans []float32, allowed, startOK []bool) *crf {
	c := &crf{K: K, expT: make([]float64, K*K), expS: make([]float64, K), expE: make([]float64, K), allowed: allowed, startOK: startOK}
	for i := range c.expT {
		if allowed[i] {
			c.expT[i] = math.Exp(float64(trans[i]))
		}
	}
	for j := 0; j < K; j++ {
		if startOK[j] {
			c.expS[j] = math.Exp(float64(start[j]))
		}
		c.expE[j] = math.Exp(float64(end[j]))
	}
	return c
}

// fbScratch is reusable forward-backward state.
type fbScratch struct {
	pe, alpha, beta, marg []float64
	scale                 []float64
}

// forwardBackward computes token marginals marg[T][K] and log Z for the
// emissions. Emissions are shifted per token for stability.
func (c *crf) forwardBackward(emis []float32, T int, sc *fbScratch) (logZ float64) {
	K := c.K
	sc.pe = resize(sc.pe, T*K)
	sc.alpha = resize(sc.alpha, T*K)
	sc.beta = resize(sc.beta, T*K)
	sc.marg = resize(sc.marg, T*K)
	sc.scale = resize(sc.scale, T)
	shift := 0.0
	for t := 0; t < T; t++ {
		mx := float32(negInf)
		for j := 0; j < K; j++ {
			mx = max(mx, emis[t*K+j])
		}
		shift += float64(mx)
		for j := 0; j < K; j++ {
			sc.pe[t*K+j] = math.Exp(float64(emis[t*K+j] - mx))
		}
	}
	// Forward.
	a := sc.alpha
	s := 0.0
	for j := 0; j < K; j++ {
		a[j] = c.expS[j] * sc.pe[j]
		s += a[j]
	}
	sc.scale[0] = s
	for j := 0; j < K; j++ {
		a[j] /= s
	}
	for t := 1; t < T; t++ {
		prev := a[(t-1)*K : t*K]
		cur := a[t*K : (t+1)*K]
		for j := range cur {
			cur[j] = 0
		}
		// BIO structure: O and B-x may follow any tag (columns 0 and odd);
		// I-x (even columns > 0) only B-x and I-x.
		for i := 0; i < K; i++ {
			p := prev[i]
			if p == 0 {
				continue
			}
			row := c.expT[i*K : (i+1)*K]
			cur[0] += p * row[0]
			for j := 1; j < K; j += 2 {
				cur[j] += p * row[j]
			}
		}
		for j := 2; j < K; j += 2 {
			cur[j] = prev[j-1]*c.expT[(j-1)*K+j] + prev[j]*c.expT[j*K+j]
		}
		s := 0.0
		for j := 0; j < K; j++ {
			cur[j] *= sc.pe[t*K+j]
			s += cur[j]
		}
		sc.scale[t] = s
		for j := 0; j < K; j++ {
			cur[j] /= s
		}
	}
	zEnd := 0.0
	for j := 0; j < K; j++ {
		zEnd += a[(T-1)*K+j] * c.expE[j]
	}
	logZ = shift + math.Log(zEnd)
	for t := 0; t < T; t++ {
		logZ += math.Log(sc.scale[t])
	}
	// Backward (scaled with the same factors).
	b := sc.beta
	for j := 0; j < K; j++ {
		b[(T-1)*K+j] = c.expE[j] / zEnd
	}
	for t := T - 2; t >= 0; t-- {
		nxt := b[(t+1)*K : (t+2)*K]
		cur := b[t*K : (t+1)*K]
		tmp := sc.marg[t*K : (t+1)*K] // scratch: nxt * pe
		for j := 0; j < K; j++ {
			tmp[j] = nxt[j] * sc.pe[(t+1)*K+j]
		}
		for i := 0; i < K; i++ {
			row := c.expT[i*K : (i+1)*K]
			v := row[0] * tmp[0]
			for j := 1; j < K; j += 2 {
				v += row[j] * tmp[j]
			}
			switch {
			case i == 0:
			case i%2 == 1: // B-x -> I-x
				v += row[i+1] * tmp[i+1]
			default: // I-x -> I-x
				v += row[i] * tmp[i]
			}
			cur[i] = v / sc.scale[t+1]
		}
	}
	for t := 0; t < T; t++ {
		for j := 0; j < K; j++ {
			sc.marg[t*K+j] = a[t*K+j] * b[t*K+j]
		}
	}
	return logZ
}

// spans turns a tag path over toks into entities of s.
func (m *Model) spans(s string, toks []Token, path []int, marg []float64) []tandem.Entity {
	var out []tandem.Entity
	K := m.K()
	rs := []rune(s)
	for t := 0; t < len(path); {
		tag := path[t]
		if tag == 0 || tag%2 == 0 { // O, or a stray I (cannot happen under the constraints)
			t++
			continue
		}
		typ := m.Types[(tag-1)/2]
		u := t + 1
		for u < len(path) && path[u] == tag+1 {
			u++
		}
		st, en := toks[t].Start, toks[u-1].End
		conf := 1.0
		if marg != nil {
			for v := t; v < u; v++ {
				conf = math.Min(conf, marg[v*K+path[v]])
			}
		}
		surf := string(rs[max(0, st):min(len(rs), en)])
		out = append(out, tandem.Entity{Type: typ, Text: surf, Value: m.normalise(surf), Start: st, End: en, Source: "model", Confidence: math.Round(conf*1e4) / 1e4})
		t = u
	}
	return out
}

// normalise maps a surface text to its canonical value (dataset synonyms,
// then values learned from the training spans), else the text itself.
func (m *Model) normalise(surf string) string {
	if v, ok := m.values[text.Normalize(strings.TrimSpace(surf))]; ok {
		return v
	}
	return surf
}

// decode runs Viterbi (and, for confidences, forward-backward) on the
// emissions of one text.
func (m *Model) decode(s string, toks []Token, emis []float32, c *crf, sc *fbScratch) []tandem.Entity {
	T := len(toks)
	if T == 0 {
		return nil
	}
	path := viterbi(emis, T, m.K(), m.start, m.end, m.trans, c.allowed, c.startOK)
	// The marginals only serve the confidence of predicted spans: a path
	// of O tags (tag 0) needs no forward-backward pass.
	allO := true
	for _, p := range path {
		allO = allO && p == 0
	}
	if allO {
		return nil
	}
	c.forwardBackward(emis, T, sc)
	return m.spans(s, toks, path, sc.marg)
}

// Tag tags one text with the Go forward pass.
func (m *Model) Tag(s string) []tandem.Entity {
	toks, rows := m.encode(s)
	emis := m.emissions(rows, nil)
	return m.decode(s, toks, emis, m.cachedCRF(), &fbScratch{})
}

// TagBatch tags texts with the Go forward pass. It never fails; the error
// is for interface compatibility with (*Tagger).TagBatch.
func (m *Model) TagBatch(ctx context.Context, texts []string) ([][]tandem.Entity, error) {
	out := make([][]tandem.Entity, len(texts))
	c := m.cachedCRF()
	var sc fbScratch
	var emis []float32
	for i, s := range texts {
		if i%64 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		toks, rows := m.encode(s)
		emis = m.emissions(rows, emis)
		out[i] = m.decode(s, toks, emis, c, &sc)
	}
	return out, nil
}

func (m *Model) newCRF() *crf {
	allowed, startOK := allowedMatrix(m.K())
	return newCRF(m.K(), m.start, m.end, m.trans, allowed, startOK)
}

// clone returns a copy of m sharing its (immutable) tables, with its own
// CRF cache.
func (m *Model) clone() *Model {
	return &Model{Types: m.Types, Tags: m.Tags, Features: m.Features, hashes: m.hashes, vocab: m.vocab, w: m.w,
		start: m.start, end: m.end, trans: m.trans, gaz: m.gaz, values: m.values, info: m.info, exportFP32: m.exportFP32}
}

// cachedCRF returns the model's CRF potentials, computed once (the
// parameters do not change after training).
func (m *Model) cachedCRF() *crf {
	m.crfOnce.Do(func() { m.crf = m.newCRF() })
	return m.crf
}

// Emissions returns the Go forward pass's emission scores of s, [T][K]
// flattened, with its tokens (the reference for the ONNX export).
func (m *Model) Emissions(s string) ([]Token, []float32) {
	toks, rows := m.encode(s)
	return toks, m.emissions(rows, nil)
}

// hashIndex maps feature hashes to vocabulary rows (1-based): open
// addressing over a power-of-two table, faster than a Go map on the
// serving path (featurisation looks up every feature of every token).
type hashIndex struct {
	keys  []uint64
	rows  []int32 // 0 = empty slot
	shift uint
}

// newHashIndex indexes hashes[i] as row i+1.
func newHashIndex(hashes []uint64) *hashIndex {
	size, bits := 16, uint(4)
	for size < 2*len(hashes) {
		size, bits = size*2, bits+1
	}
	x := &hashIndex{keys: make([]uint64, size), rows: make([]int32, size), shift: 64 - bits}
	mask := size - 1
	for i, h := range hashes {
		j := int((h * 0x9E3779B97F4A7C15) >> x.shift)
		for x.rows[j] != 0 && x.keys[j] != h {
			j = (j + 1) & mask
		}
		x.keys[j], x.rows[j] = h, int32(i+1)
	}
	return x
}

// row returns the row of h, or 0 when h is not in the vocabulary.
func (x *hashIndex) row(h uint64) int32 {
	mask := len(x.rows) - 1
	for j := int((h * 0x9E3779B97F4A7C15) >> x.shift); ; j = (j + 1) & mask {
		r := x.rows[j]
		if r == 0 || x.keys[j] == h {
			return r
		}
	}
}
