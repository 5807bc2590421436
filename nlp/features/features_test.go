package features

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"testing"
)

func build(t testing.TB, cfg Config, docs ...string) *Featurizer {
	t.Helper()
	var terms [][]Term
	for _, d := range docs {
		terms = append(terms, cfg.Terms(d))
	}
	f, err := New(cfg, BuildVocab(terms, 1))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func groupNorms(f *Featurizer, rows []int32, w []float32) (word, char float64) {
	for i, r := range rows {
		if f.vocab.keys[r-1]>>32 == GroupWord {
			word += float64(w[i] * w[i])
		} else {
			char += float64(w[i] * w[i])
		}
	}
	return math.Sqrt(word), math.Sqrt(char)
}

func TestVector(t *testing.T) {
	cfg := DefaultConfig()
	f := build(t, cfg, "where is my order", "cancel my order please", "我想取消订单")
	rows, w := f.Vector("Where is my ORDER?", nil, nil)
	if len(rows) == 0 || len(rows) != len(w) {
		t.Fatalf("rows %v weights %v", rows, w)
	}
	if !slices.IsSorted(rows) || slices.Compact(slices.Clone(rows)) == nil || len(slices.Compact(slices.Clone(rows))) != len(rows) {
		t.Fatal("rows not sorted and unique")
	}
	wn, cn := groupNorms(f, rows, w)
	if math.Abs(wn-1) > 1e-5 || math.Abs(cn-1) > 1e-5 {
		t.Fatalf("group norms %v %v, want 1", wn, cn)
	}
	// Case and width folding: the same features.
	r2, w2 := f.Vector("ｗｈｅｒｅ is my order ?", nil, nil)
	if !slices.Equal(rows, r2) || !slices.Equal(w, w2) {
		t.Fatal("normalisation does not fold case/width")
	}
	// Unknown words only: no features.
	if r, _ := f.Vector("zzqx", nil, nil); len(r) != 0 {
		t.Fatalf("unknown text has rows %v", r)
	}
	// Chinese shares char n-grams with the training sentence.
	if r, _ := f.Vector("取消订单", nil, nil); len(r) < 5 {
		t.Fatalf("Chinese text has only %d features", len(r))
	}
	// Appending to existing buffers keeps the prefix.
	r3, w3 := f.Vector("my order", []int32{-1}, []float32{-1})
	if r3[0] != -1 || w3[0] != -1 || len(r3) < 2 {
		t.Fatal("append semantics broken")
	}
}

// TestOOVWeight: with OOVWeight, terms missing from the vocabulary count in
// their group's norm, so a text of mostly unseen words gets a short vector
// over the same rows; a text of known words is unchanged; Vector and
// FromTerms agree.
func TestOOVWeight(t *testing.T) {
	docs := []string{"where is my order", "cancel my order please", "我想取消订单"}
	cfg := DefaultConfig()
	cfg.OOVWeight = 0
	plain := build(t, cfg, docs...)
	cfg.OOVWeight = 1
	oov := build(t, cfg, docs...)
	for _, s := range []string{"where is my order", "my order", "我想取消订单"} {
		r1, w1 := plain.Vector(s, nil, nil)
		r2, w2 := oov.Vector(s, nil, nil)
		if !slices.Equal(r1, r2) || !slices.Equal(w1, w2) {
			t.Fatalf("%q: a text of known terms changed: %v %v / %v %v", s, r1, w1, r2, w2)
		}
	}
	s := "where is the capital of mongolia order"
	r1, w1 := plain.Vector(s, nil, nil)
	r2, w2 := oov.Vector(s, nil, nil)
	if len(r1) == 0 || !slices.Equal(r1, r2) {
		t.Fatalf("rows differ: %v / %v", r1, r2)
	}
	pw, pc := groupNorms(plain, r1, w1)
	ow, oc := groupNorms(oov, r2, w2)
	if math.Abs(pw-1) > 1e-5 || math.Abs(pc-1) > 1e-5 || ow > 0.8 || oc > 0.8 || ow <= 0 || oc <= 0 {
		t.Fatalf("group norms without %v/%v, with OOV weight %v/%v", pw, pc, ow, oc)
	}
	for _, s := range []string{s, "zzqx order order order", "取消 ünknown wörds", ""} {
		r3, w3 := oov.FromTerms(cfg.Terms(s), nil, nil)
		r2, w2 := oov.Vector(s, nil, nil)
		if !slices.Equal(r2, r3) || !slices.Equal(w2, w3) {
			t.Fatalf("%q: Vector %v %v, FromTerms %v %v", s, r2, w2, r3, w3)
		}
	}
}

func TestCJKGrams(t *testing.T) {
	cfg := DefaultConfig()
	cfg.CharMaxN, cfg.WordMaxN = 0, 0 // only CJK grams
	// 4 chars padded: unigrams 4, bigrams 5 (incl. pads), trigrams 4.
	if n := len(cfg.Terms("取消订单")); n != 13 {
		t.Fatalf("CJK terms = %d, want 13", n)
	}
}

func TestTermsIDF(t *testing.T) {
	cfg := DefaultConfig()
	docs := [][]Term{cfg.Terms("a b"), cfg.Terms("a c"), cfg.Terms("a d")}
	v := BuildVocab(docs, 1)
	// "a" is in all 3 docs: idf = ln(4/4)+1 = 1; "b" in 1: ln(4/2)+1.
	f, _ := New(cfg, v)
	want := map[string]float32{"a": 1, "b": float32(math.Log(2) + 1)}
	for word, idf := range want {
		ts := cfg.Terms(word)
		r := f.vocab.row(key(ts[0].Group, ts[0].Bucket))
		if r == 0 || math.Abs(float64(v.idf[r-1]-idf)) > 1e-6 {
			t.Fatalf("idf(%s) = %v, want %v", word, v.idf[r-1], idf)
		}
	}
	if BuildVocab(docs, 2).Len() >= v.Len() {
		t.Fatal("min_df does not prune")
	}
}

func TestVocabRoundTrip(t *testing.T) {
	cfg := DefaultConfig()
	f := build(t, cfg, "hello world", "goodbye world", "你好世界")
	var buf bytes.Buffer
	if _, err := f.vocab.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	v2, err := ReadVocab(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	f2, _ := New(cfg, v2)
	for _, s := range []string{"hello world", "你好", "goodbye"} {
		r1, w1 := f.Vector(s, nil, nil)
		r2, w2 := f2.Vector(s, nil, nil)
		if !slices.Equal(r1, r2) || !slices.Equal(w1, w2) {
			t.Fatalf("%q: features differ after round trip", s)
		}
	}
	if _, err := ReadVocab(bytes.NewReader(buf.Bytes()[:buf.Len()-3])); err == nil {
		t.Fatal("truncated vocab accepted")
	}
	if _, err := ReadVocab(bytes.NewReader([]byte("garbage........"))); err == nil {
		t.Fatal("bad magic accepted")
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, mut := range []func(*Config){
		func(c *Config) { c.Buckets = 1 },
		func(c *Config) { c.CharMinN = 6 },
		func(c *Config) { c.WordMaxN, c.CharMaxN, c.CJKMaxN = 0, 0, 0 },
		func(c *Config) { c.Version = 99 },
		func(c *Config) { c.MaxFeatures = 0 },
		func(c *Config) { c.OOVWeight = -1 },
		func(c *Config) { c.OOVWeight = float32(math.NaN()) },
		func(c *Config) { c.OOVWeight = float32(math.Inf(1)) },
		func(c *Config) { c.WordWeight = float32(math.NaN()) },
		func(c *Config) { c.CharWeight = float32(math.Inf(1)) },
	} {
		c := DefaultConfig()
		mut(&c)
		if c.Validate() == nil {
			t.Errorf("invalid config %+v accepted", c)
		}
	}
}

func FuzzFeatures(f *testing.F) {
	cfg := DefaultConfig()
	fz := build(f, cfg, "where is my order", "取消订单", "ｆｕｌｌ width", "e\u0301cole")
	for _, s := range []string{"", "where is my order", "\xff\xfe", "取消", "a\u0301", "สวัสดี", "🙂🙂"} {
		f.Add(s)
	}
	ocfg := cfg
	ocfg.OOVWeight = 1
	ofz := build(f, ocfg, "where is my order", "取消订单", "ｆｕｌｌ width", "e\u0301cole")
	f.Fuzz(func(t *testing.T, s string) {
		r4, w4 := ofz.Vector(s, nil, nil)
		r5, w5 := ofz.FromTerms(ocfg.Terms(s), nil, nil)
		if !slices.Equal(r4, r5) || !slices.Equal(w4, w5) {
			t.Fatal("with OOV weight, Vector differs from FromTerms(Terms)")
		}
		r1, w1 := fz.Vector(s, nil, nil)
		r2, w2 := fz.Vector(s, nil, nil)
		if !slices.Equal(r1, r2) || !slices.Equal(w1, w2) {
			t.Fatal("features differ between two calls")
		}
		for i, r := range r1 {
			if r < 1 || int(r) > fz.vocab.Len() || math.IsNaN(float64(w1[i])) || math.IsInf(float64(w1[i]), 0) || w1[i] <= 0 {
				t.Fatalf("bad feature %d weight %v", r, w1[i])
			}
		}
		terms := cfg.Terms(s)
		var n float32
		for _, tm := range terms {
			n += tm.Count
		}
		if int(n) > cfg.MaxFeatures {
			t.Fatal("max_features exceeded")
		}
		r3, w3 := fz.FromTerms(terms, nil, nil)
		if !slices.Equal(r1, r3) || !slices.Equal(w1, w3) {
			t.Fatal("Vector differs from FromTerms(Terms)")
		}
	})
}

// BenchmarkVector: one message, with unknown n-grams ignored (oov0) and
// counted in the norm (oov1, the default).
func BenchmarkVector(b *testing.B) {
	for _, oov := range []float32{0, 1} {
		b.Run(fmt.Sprintf("oov%g", oov), func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.OOVWeight = oov
			fz := build(b, cfg, "I would like to know where my order ORD-123456 is, it was due yesterday", "cancel my order please")
			s := "Hi, I would like to know where my order ORD-123456 is — it was due yesterday!"
			var rows []int32
			var w []float32
			b.ReportAllocs()
			for b.Loop() {
				rows, w = fz.Vector(s, rows[:0], w[:0])
			}
		})
	}
}
