package entity

import (
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tandem-chat/tandem/nlp/rules"
	"github.com/tandem-chat/tandem/nlp/text"
)

// FeatureConfig is the token featurisation, stored in the manifest. Every
// field changes the feature ids, so a model must be served with the config
// it was trained with.
type FeatureConfig struct {
	Version     int    `json:"version"`      // featuriser algorithm version
	Seed        uint64 `json:"seed"`         // hash seed
	Window      int    `json:"window"`       // word features of tokens i-Window..i+Window
	AffixMax    int    `json:"affix_max"`    // prefixes/suffixes of 1..AffixMax runes
	CharN       int    `json:"char_n"`       // char n-grams (n = CharN) of the padded token; 0 disables
	Sentence    bool   `json:"sentence"`     // bag of the sentence's words (intent context)
	Gazetteer   bool   `json:"gazetteer"`    // gazetteer match features
	Rules       bool   `json:"rules"`        // nlp/rules entity-type features (dates, times, money, ...); off by default, see docs/entities.md
	MaxTokens   int    `json:"max_tokens"`   // tokens tagged per text (the rest is not tagged)
	MaxSentence int    `json:"max_sentence"` // words in the sentence bag
}

// FeatureVersion is the featuriser algorithm version of this build.
const FeatureVersion = 1

// DefaultFeatureConfig returns the featurisation used unless configured.
func DefaultFeatureConfig() FeatureConfig {
	return FeatureConfig{Version: FeatureVersion, Seed: 0x656e74697479, Window: 2, AffixMax: 4, CharN: 3,
		Sentence: true, Gazetteer: true, Rules: false, MaxTokens: 128, MaxSentence: 48}
}

// Token is a token of the entity tagger: a text.Tokenize token, further
// split where letters meet digits and where a lower-case letter meets an
// upper-case one ("3pm" -> "3" "pm", "L.aJoseph" -> ... "a" "Joseph"), so
// more annotated span boundaries fall on token boundaries.
type Token = text.Token

// Tokens returns the tagger's tokens of s (rune offsets into s).
func Tokens(s string) []Token {
	return appendTokens(nil, s)
}

func appendTokens(dst []Token, s string) []Token {
	base := text.Tokenize(s)
	for _, t := range base {
		if t.End-t.Start < 2 || !needsSplit(t.Text) {
			dst = append(dst, t)
			continue
		}
		rs := []rune(t.Text)
		if len(rs) != t.End-t.Start { // combining sequences changed the count: keep whole
			dst = append(dst, t)
			continue
		}
		start := 0
		for i := 1; i <= len(rs); i++ {
			if i == len(rs) || boundary(rs[i-1], rs[i]) {
				piece := string(rs[start:i])
				dst = append(dst, Token{Text: piece, Norm: text.Normalize(piece), Start: t.Start + start, End: t.Start + i})
				start = i
			}
		}
	}
	return dst
}

func needsSplit(s string) bool {
	var prev rune = -1
	for _, r := range s {
		if prev >= 0 && boundary(prev, r) {
			return true
		}
		prev = r
	}
	return false
}

func boundary(a, b rune) bool {
	da, db := unicode.IsDigit(a), unicode.IsDigit(b)
	la, lb := unicode.IsLetter(a), unicode.IsLetter(b)
	switch {
	case da && lb, la && db:
		return true
	case unicode.IsLower(a) && unicode.IsUpper(b):
		return true
	}
	return false
}

// --- hashing -----------------------------------------------------------------

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

type hasher uint64

func (c *FeatureConfig) start(tag string) hasher {
	h := uint64(fnvOffset) ^ c.Seed
	h *= fnvPrime
	for i := 0; i < len(tag); i++ {
		h ^= uint64(tag[i])
		h *= fnvPrime
	}
	return hasher(h)
}

func (h hasher) str(s string) hasher {
	x := uint64(h)
	x ^= 0xff // field separator
	x *= fnvPrime
	for i := 0; i < len(s); i++ {
		x ^= uint64(s[i])
		x *= fnvPrime
	}
	return hasher(x)
}

// runes is str(string(rs)) without building the string: the same bytes
// (each rune UTF-8 encoded, invalid ones as U+FFFD) hash the same.
func (h hasher) runes(rs []rune) hasher {
	x := uint64(h)
	x ^= 0xff // field separator
	x *= fnvPrime
	var buf [utf8.UTFMax]byte
	for _, r := range rs {
		if r >= 0 && r < utf8.RuneSelf {
			x ^= uint64(r)
			x *= fnvPrime
			continue
		}
		n := utf8.EncodeRune(buf[:], r)
		for _, b := range buf[:n] {
			x ^= uint64(b)
			x *= fnvPrime
		}
	}
	return hasher(x)
}

func (h hasher) num(n int) hasher {
	x := uint64(h)
	x ^= 0xfe
	x *= fnvPrime
	x ^= uint64(uint32(n))
	x *= fnvPrime
	return hasher(x)
}

func (h hasher) sum() uint64 {
	x := uint64(h)
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	if x == 0 {
		x = 1 // 0 is reserved for padding
	}
	return x
}

// shape maps a token to a compressed character-class string: "Xxx" -> "Xx",
// "12:30" -> "d:d", "ABC" -> "X", "北" -> "C".
func shape(s string) string {
	var b strings.Builder
	var last rune = -1
	n := 0
	for _, r := range s {
		var c rune
		switch {
		case unicode.IsUpper(r):
			c = 'X'
		case unicode.IsLower(r):
			c = 'x'
		case unicode.IsDigit(r):
			c = 'd'
		case text.IsUnsegmented(r):
			c = 'C'
		case unicode.IsLetter(r):
			c = 'L'
		default:
			c = r
		}
		if c != last {
			b.WriteRune(c)
			last = c
			n++
			if n >= 8 {
				break
			}
		}
	}
	return b.String()
}

// gazMatch is one gazetteer match over tokens [start, end).
type gazMatch struct {
	start, end int
	typ        string
}

// featurize computes the hashed features of every token of toks (at most
// MaxTokens). gaz may be nil.
// ruleRef is the fixed reference time of rule features: only the types of
// rule entities are features, never their (time-dependent) values.
var ruleRef = time.Date(2020, 1, 1, 12, 0, 0, 0, time.UTC)

// ruleMatches returns the nlp/rules entities of s as token matches.
func ruleMatches(s string, toks []Token) []gazMatch {
	var out []gazMatch
	for _, e := range rules.Extract(s, ruleRef) {
		st, en := -1, -1
		for i, t := range toks {
			if t.End > e.Start && t.Start < e.End {
				if st < 0 {
					st = i
				}
				en = i + 1
			}
		}
		if st >= 0 {
			out = append(out, gazMatch{start: st, end: en, typ: e.Type})
		}
	}
	return out
}

func (c *FeatureConfig) featurize(s string, toks []Token, gaz *gazetteer) [][]uint64 {
	return c.featurizeHashes(s, toks, gaz, true)
}

// featurizeHashes is featurize; with unique false a token's hashes are
// neither sorted nor deduplicated (for callers that map them to rows first
// and deduplicate the fewer rows). Token i's features are the sentence
// features followed by its own (featurizeInto).
func (c *FeatureConfig) featurizeHashes(s string, toks []Token, gaz *gazetteer, unique bool) [][]uint64 {
	var sc featScratch
	c.featurizeInto(&sc, s, toks, gaz)
	out := make([][]uint64, len(sc.ends))
	for i := range sc.ends {
		own := sc.own(i)
		f := make([]uint64, 0, len(sc.sent)+len(own))
		f = append(f, sc.sent...)
		f = append(f, own...)
		if unique {
			f = uniqSorted(f)
		}
		out[i] = f
	}
	return out
}

// featScratch holds one text's features: the sentence-level hashes shared
// by every token, and each token's own hashes back to back. Reusable: a
// call of featurizeInto overwrites everything.
type featScratch struct {
	sent     []uint64
	flat     []uint64 // token i's own hashes: flat[ends[i-1]:ends[i]]
	ends     []int
	norms    []string
	shapes   []string
	runes    []rune // token i's runes: runes[rends[i-1]:rends[i]]
	rends    []int
	padded   []rune
	seenW    []string
	gazFeats [][]uint64
	rows     []int32 // encode's sentence rows
}

// own returns token i's own hashes.
func (sc *featScratch) own(i int) []uint64 {
	lo := 0
	if i > 0 {
		lo = sc.ends[i-1]
	}
	return sc.flat[lo:sc.ends[i]]
}

// runesOf returns token i's runes.
func (sc *featScratch) runesOf(i int) []rune {
	lo := 0
	if i > 0 {
		lo = sc.rends[i-1]
	}
	return sc.runes[lo:sc.rends[i]]
}

// featurizeInto computes the hashed features of every token of toks (at
// most MaxTokens) into sc: the sentence features once, then each token's
// own. gaz may be nil.
func (c *FeatureConfig) featurizeInto(sc *featScratch, s string, toks []Token, gaz *gazetteer) {
	if len(toks) > c.MaxTokens {
		toks = toks[:c.MaxTokens]
	}
	n := len(toks)
	sc.norms, sc.shapes = sc.norms[:0], sc.shapes[:0]
	sc.runes, sc.rends = sc.runes[:0], sc.rends[:0]
	for _, t := range toks {
		sc.norms = append(sc.norms, t.Norm)
		sc.shapes = append(sc.shapes, shape(t.Text))
		// Each token's runes, decoded once (its neighbours' suffixes use them too).
		for _, r := range t.Norm {
			sc.runes = append(sc.runes, r)
		}
		sc.rends = append(sc.rends, len(sc.runes))
	}
	norms, shapes := sc.norms, sc.shapes
	word := func(i int) string {
		switch {
		case i < 0:
			return "<s>"
		case i >= n:
			return "</s>"
		}
		return norms[i]
	}
	shp := func(i int) string {
		switch {
		case i < 0:
			return "<s>"
		case i >= n:
			return "</s>"
		}
		return shapes[i]
	}
	// The feature kinds' hash prefixes, computed once per text.
	hW, hSh, hB, hT, hOs := c.start("w"), c.start("sh"), c.start("b"), c.start("t"), c.start("os")
	hP, hS, hS3, hC, hGn := c.start("p"), c.start("s"), c.start("s3"), c.start("c"), c.start("gn")
	// Sentence-level features, shared by every token.
	sc.sent = append(sc.sent[:0], c.start("bias").sum())
	if c.Sentence {
		sc.seenW = sc.seenW[:0]
		for i := 0; i < n && len(sc.seenW) < c.MaxSentence; i++ {
			w := norms[i]
			if !isWordy(w) || slices.Contains(sc.seenW, w) {
				continue
			}
			sc.seenW = append(sc.seenW, w)
			sc.sent = append(sc.sent, c.start("S").str(w).sum())
		}
		sc.sent = append(sc.sent, c.start("F0").str(word(0)).sum(), c.start("F01").str(word(0)).str(word(1)).sum())
	}
	// Gazetteer matches per token.
	var gazFeats [][]uint64
	if c.Gazetteer && gaz != nil {
		for len(sc.gazFeats) < n {
			sc.gazFeats = append(sc.gazFeats, nil)
		}
		gazFeats = sc.gazFeats[:n]
		for i := range gazFeats {
			gazFeats[i] = gazFeats[i][:0]
		}
		for _, m := range gaz.matches(norms) {
			for i := m.start; i < m.end; i++ {
				pos := "I"
				if i == m.start {
					pos = "B"
				}
				gazFeats[i] = append(gazFeats[i], c.start("G").str(pos).str(m.typ).sum(), c.start("Gt").str(m.typ).num(min(m.end-m.start, 4)).sum())
				if m.end-m.start == 1 {
					gazFeats[i] = append(gazFeats[i], c.start("G1").str(m.typ).sum())
				}
			}
			if m.start > 0 {
				gazFeats[m.start-1] = append(gazFeats[m.start-1], c.start("G>").str(m.typ).sum())
			}
			if m.end < n {
				gazFeats[m.end] = append(gazFeats[m.end], c.start("G<").str(m.typ).sum())
			}
		}
	}
	var ruleFeats [][]uint64
	if c.Rules {
		ruleFeats = make([][]uint64, n)
		for _, m := range ruleMatches(s, toks) {
			for i := m.start; i < m.end; i++ {
				pos := "I"
				if i == m.start {
					pos = "B"
				}
				ruleFeats[i] = append(ruleFeats[i], c.start("R").str(pos).str(m.typ).sum())
			}
			if m.start > 0 {
				ruleFeats[m.start-1] = append(ruleFeats[m.start-1], c.start("R>").str(m.typ).sum())
			}
			if m.end < n {
				ruleFeats[m.end] = append(ruleFeats[m.end], c.start("R<").str(m.typ).sum())
			}
		}
	}
	f := sc.flat[:0]
	sc.ends = sc.ends[:0]
	for i := 0; i < n; i++ {
		for d := -c.Window; d <= c.Window; d++ {
			f = append(f, hW.num(d).str(word(i+d)).sum())
		}
		for d := -1; d <= 1; d++ {
			f = append(f, hSh.num(d).str(shp(i+d)).sum())
		}
		f = append(f,
			hB.num(-1).str(word(i-1)).str(word(i)).sum(),
			hB.num(0).str(word(i)).str(word(i+1)).sum(),
			hB.num(-2).str(word(i-2)).str(word(i-1)).sum(),
			hB.num(1).str(word(i+1)).str(word(i+2)).sum(),
			hT.str(word(i-1)).str(word(i)).str(word(i+1)).sum(),
			hOs.str(toks[i].Text).sum(), // original case
		)
		runes := sc.runesOf(i)
		if len(runes) > 24 {
			runes = runes[:24]
		}
		for k := 1; k <= c.AffixMax && k <= len(runes); k++ {
			f = append(f, hP.runes(runes[:k]).sum(), hS.runes(runes[len(runes)-k:]).sum())
		}
		for _, d := range [2]int{-1, 1} {
			j := i + d
			if j >= 0 && j < n {
				if rs := sc.runesOf(j); len(rs) > 3 {
					f = append(f, hS3.num(d).runes(rs[len(rs)-3:]).sum())
				}
			}
		}
		if c.CharN > 0 && len(runes) > c.CharN-2 && len(runes) > 1 {
			sc.padded = append(sc.padded[:0], '<')
			sc.padded = append(sc.padded, runes...)
			sc.padded = append(sc.padded, '>')
			padded := sc.padded
			for k := 0; k+c.CharN <= len(padded); k++ {
				f = append(f, hC.runes(padded[k:k+c.CharN]).sum())
			}
		}
		if gazFeats != nil {
			f = append(f, gazFeats[i]...)
			for _, d := range [2]int{-1, 1} {
				if j := i + d; j >= 0 && j < n {
					for _, g := range gazFeats[j] {
						f = append(f, hGn.num(d).num(int(g%1000003)).sum())
					}
				}
			}
		}
		if ruleFeats != nil {
			f = append(f, ruleFeats[i]...)
		}
		sc.ends = append(sc.ends, len(f))
	}
	sc.flat = f
}

func uniqSorted(f []uint64) []uint64 {
	slices.Sort(f)
	k := 0
	for i, v := range f {
		if i == 0 || v != f[k-1] {
			f[k] = v
			k++
		}
	}
	return f[:k]
}

// isWordy reports whether s has a letter or digit.
func isWordy(s string) bool {
	for _, r := range s {
		if unicode.IsLetter(r) || unicode.IsNumber(r) {
			return true
		}
	}
	return false
}

// --- gazetteer ---------------------------------------------------------------

// gazetteer matches known entity values (token sequences of normalised
// tokens) in a text.
type gazetteer struct {
	root gazNode
}

type gazNode struct {
	next  map[string]*gazNode
	types []string // sorted, unique
}

const gazMaxLen = 8

func newGazetteer() *gazetteer { return &gazetteer{} }

// add indexes value (normalised tokens) under typ.
func (g *gazetteer) add(norms []string, typ string) {
	if len(norms) == 0 || len(norms) > gazMaxLen {
		return
	}
	n := &g.root
	for _, w := range norms {
		if n.next == nil {
			n.next = map[string]*gazNode{}
		}
		c := n.next[w]
		if c == nil {
			c = &gazNode{}
			n.next[w] = c
		}
		n = c
	}
	i := sort.SearchStrings(n.types, typ)
	if i < len(n.types) && n.types[i] == typ {
		return
	}
	n.types = append(n.types, "")
	copy(n.types[i+1:], n.types[i:])
	n.types[i] = typ
}

// matches returns every (start, end, type) match, at most gazMaxLen tokens.
func (g *gazetteer) matches(norms []string) []gazMatch {
	var out []gazMatch
	for i := range norms {
		n := &g.root
		for j := i; j < len(norms) && j-i < gazMaxLen; j++ {
			n = n.next[norms[j]]
			if n == nil {
				break
			}
			for _, t := range n.types {
				out = append(out, gazMatch{start: i, end: j + 1, typ: t})
			}
		}
	}
	return out
}

// entries lists the gazetteer as (type, normalised value) pairs, sorted.
func (g *gazetteer) entries() [][2]string {
	var out [][2]string
	var walk func(n *gazNode, path []string)
	walk = func(n *gazNode, path []string) {
		for _, t := range n.types {
			out = append(out, [2]string{t, strings.Join(path, "\x1f")})
		}
		keys := make([]string, 0, len(n.next))
		for k := range n.next {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			walk(n.next[k], append(path, k))
		}
	}
	walk(&g.root, nil)
	sort.Slice(out, func(i, j int) bool {
		if out[i][0] != out[j][0] {
			return out[i][0] < out[j][0]
		}
		return out[i][1] < out[j][1]
	})
	return out
}

func normsOf(toks []Token) []string {
	out := make([]string, len(toks))
	for i, t := range toks {
		out[i] = t.Norm
	}
	return out
}
