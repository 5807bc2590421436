package entity

import (
	"hash/fnv"
	"path/filepath"
	"slices"
	"testing"
	"unicode/utf8"

	"github.com/tandem-chat/tandem/internal/testenv"
)

// TestFeaturesGolden pins the token features of a fixed set of texts
// (Latin, accents, CJK, emoji, digits, invalid UTF-8), so that a change to
// the featuriser that would silently invalidate trained models fails here.
// The digest was computed with the string-building implementation the
// current one replaced.
func TestFeaturesGolden(t *testing.T) {
	texts := []string{
		"Ship order 12345 to Berlin tomorrow please",
		"où est ma commande ? Ça fait 3 jours",
		"我想退货，订单号是 A-778812",
		"ok 👍👍 thanks!!",
		"refund\xffbroken\xc3 utf8",
		"Supercalifragilisticexpialidocious-and-longer-than-twenty-four-runes word",
		"",
		"a",
	}
	c := DefaultFeatureConfig()
	h := fnv.New64a()
	var b [8]byte
	for _, s := range texts {
		toks := Tokens(s)
		for _, f := range c.featurize(s, toks, nil) {
			for _, v := range f {
				for i := range b {
					b[i] = byte(v >> (8 * i))
				}
				h.Write(b[:])
			}
			h.Write([]byte{0xff})
		}
	}
	const want = 0x52e4e7baea242d88
	if got := h.Sum64(); got != want {
		t.Fatalf("feature digest %#x, want %#x: the featuriser changed (retrain the models and update the digest only if that is intended)", got, want)
	}
}

func TestHasherRunesEqualsStr(t *testing.T) {
	c := DefaultFeatureConfig()
	for _, s := range []string{"", "abc", "é", "我们", "👍x", "\xff\xfe", "a\xc3", string([]rune{-1, 0xD800, 0x10FFFF + 1})} {
		rs := []rune(s)
		if got, want := c.start("p").runes(rs).sum(), c.start("p").str(string(rs)).sum(); got != want {
			t.Errorf("%q: runes %#x, str %#x", s, got, want)
		}
		if !utf8.ValidString(string(rs)) {
			t.Errorf("%q: not valid after conversion", s)
		}
	}
}

// TestEncodeRowsEqualDedupedHashes: encode deduplicates rows instead of
// hashes; the rows per token must be the same set as mapping the
// deduplicated hashes.
func TestEncodeRowsEqualDedupedHashes(t *testing.T) {
	m := tinyModel(t)
	for _, s := range []string{"ship order 12345 to Berlin tomorrow", "aaaa aaaa aaaa", "我想退货 A-778812", "", "x"} {
		toks, rows := m.encode(s)
		feats := m.Features.featurize(s, toks, m.gaz)
		if len(rows) != len(feats) {
			t.Fatalf("%q: %d token rows, %d token features", s, len(rows), len(feats))
		}
		for i := range feats {
			want := m.rowsOf(feats[i], nil)
			slices.Sort(want)
			got := slices.Clone(rows[i])
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("%q token %d: rows %v, want %v", s, i, rows[i], want)
			}
		}
	}
}

// TestEncodeRowsExactOrder: encode (sentence rows looked up once per text,
// pooled buffers) gives every token exactly the rows, in exactly the
// order, of the straightforward algorithm — map each of the token's
// hashes (sentence features first) to its row and keep first occurrences —
// so the ONNX model sums the same values in the same order. Texts run
// twice and interleaved to catch state left in the pooled buffers.
func TestEncodeRowsExactOrder(t *testing.T) {
	m := tinyModel(t)
	texts := []string{"ship order 12345 to Berlin tomorrow", "aaaa aaaa aaaa", "我想退货 A-778812", "", "x",
		"Ship it to berlin, then to Paris; order 12345 again 12345", "refund\xffbroken\xc3 utf8 👍👍"}
	for round := range 2 {
		for _, s := range texts {
			toks, rows := m.encode(s)
			feats := m.Features.featurizeHashes(s, toks, m.gaz, false)
			if len(rows) != len(feats) {
				t.Fatalf("%q: %d token rows, %d token features", s, len(rows), len(feats))
			}
			for i, f := range feats {
				var want []int32
				for _, h := range f {
					if r := m.vocab.row(h); r != 0 && !slices.Contains(want, r) {
						want = append(want, r)
					}
				}
				if !slices.Equal(rows[i], want) {
					t.Fatalf("round %d %q token %d: rows %v, want %v", round, s, i, rows[i], want)
				}
			}
		}
	}
}

// BenchmarkEncodeDemo: tokenise and featurise customer messages into rows
// with the default (demo) entity model, the Go side of the entity stage.
func BenchmarkEncodeDemo(b *testing.B) {
	m, _, err := readManifest(filepath.Join(testenv.ModelDir(b)))
	if err != nil {
		b.Fatal(err)
	}
	texts := []string{
		"I want to cancel order 4412-AB because it arrived damaged",
		"where is my package? it was supposed to arrive in Berlin yesterday",
		"can you help me change the shipping address of my last order",
		"talk to a human please",
		"how do I get a refund for the wireless headphones I bought",
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		m.encode(texts[i%len(texts)])
		i++
	}
}
