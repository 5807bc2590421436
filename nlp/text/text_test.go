package text

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func toks(ts []Token) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Norm
	}
	return out
}

func TestTokenize(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"   ", nil},
		{"Hello, World!", []string{"hello", ",", "world", "!"}},
		{"I don't want order ORD-12345.", []string{"i", "don", "'", "t", "want", "order", "ord", "-", "12345", "."}},
		{"ship it to [Berlin](city)", []string{"ship", "it", "to", "[", "berlin", "]", "(", "city", ")"}},
		{"我想订一张去北京的机票", []string{"我", "想", "订", "一", "张", "去", "北", "京", "的", "机", "票"}},
		{"東京に行きたい", []string{"東", "京", "に", "行", "き", "た", "い"}},
		{"カード", []string{"カ", "ー", "ド"}},
		{"안녕 하세요", []string{"안", "녕", "하", "세", "요"}},
		{"ＡＢＣ１２３ full-width", []string{"abc123", "full", "-", "width"}},
		{"Straße ÉCOLE café", []string{"straße", "école", "café"}},
		{"e\u0301cole", []string{"école"}}, // combining accent stays with the word, NFKC composes
		{"price: $12.50 😀", []string{"price", ":", "$", "12", ".", "50", "😀"}},
		{"ﬁne", []string{"fine"}},
		{"mix中文words", []string{"mix", "中", "文", "words"}},
		{"tab\tnew\nline\u00a0nbsp", []string{"tab", "new", "line", "nbsp"}},
		{"zero\u200bwidth", []string{"zero", "width"}},
	}
	for _, tc := range tests {
		got := toks(Tokenize(tc.in))
		if strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("Tokenize(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestTokenizeThaiMarksAttach(t *testing.T) {
	// Thai vowel signs and tone marks are combining marks: they attach to
	// the consonant before them.
	got := Tokenize("สวัสดี")
	var texts []string
	for _, tk := range got {
		texts = append(texts, tk.Text)
	}
	want := []string{"ส", "วั", "ส", "ดี"}
	if strings.Join(texts, "|") != strings.Join(want, "|") {
		t.Fatalf("Thai tokens = %q, want %q", texts, want)
	}
}

func TestOffsetsAreRunes(t *testing.T) {
	s := "Zürich → 北京, ok"
	rs := []rune(s)
	for _, tk := range Tokenize(s) {
		if got := string(rs[tk.Start:tk.End]); got != tk.Text {
			t.Errorf("token %+v: runes[%d:%d] = %q", tk, tk.Start, tk.End, got)
		}
	}
	ts := Tokenize(s)
	if ts[0].Start != 0 || ts[0].End != 6 || ts[2].Text != "北" || ts[2].Start != 9 {
		t.Fatalf("unexpected offsets %+v", ts)
	}
}

func TestInvalidUTF8(t *testing.T) {
	s := "ab\xffcd \xc3 x\xe4\xb8"
	ts := Tokenize(s)
	rs := []rune(s)
	for _, tk := range ts {
		if !utf8.ValidString(tk.Text) || !utf8.ValidString(tk.Norm) {
			t.Fatalf("invalid UTF-8 in token %+v", tk)
		}
		if got := string(rs[tk.Start:tk.End]); got != tk.Text {
			t.Errorf("token %+v: runes[%d:%d] = %q", tk, tk.Start, tk.End, got)
		}
	}
	got := toks(ts)
	want := []string{"ab", "\uFFFD", "cd", "\uFFFD", "x", "\uFFFD", "\uFFFD"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("tokens = %q, want %q", got, want)
	}
}

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"Hello":    "hello",
		"hello":    "hello",
		"ＨＥＬＬＯ":    "hello",
		"Ⅻ":        "xii",
		"e\u0301":  "é",
		"a\xffb":   "a\uFFFDb",
		"İstanbul": "istanbul",
		"㎏":        "kg",
		"ÀÉÎ":      "àéî",
		"ｶﾀｶﾅ":     "カタカナ",
		"Mixed 中文": "mixed 中文",
		// Typographic apostrophes and quotes read as the ASCII ones.
		"O’Brien":      "o'brien",
		"‘Quoted’":     "'quoted'",
		"it\u201bs":    "it's",
		"“Hi” „there‟": "\"hi\" \"there\"",
		"’":            "'",
		"Straße’s ＂x＂": "straße's \"x\"",
	} {
		if got := Normalize(in); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSlice(t *testing.T) {
	if got := Slice("héllo wörld", 6, 11); got != "wörld" {
		t.Fatalf("Slice = %q", got)
	}
	if got := Slice("abc", 2, 10); got != "c" {
		t.Fatalf("Slice clamp = %q", got)
	}
	if got := Slice("abc", 3, 1); got != "" {
		t.Fatalf("Slice empty = %q", got)
	}
}

func FuzzTokenize(f *testing.F) {
	for _, s := range []string{"", "Hello, World!", "我想订机票", "\xff\xfe", "e\u0301", "สวัสดี", "ＡＢＣ", "a\u200db", "\u0301x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ts := Tokenize(s)
		again := Tokenize(s)
		if len(ts) != len(again) {
			t.Fatalf("non-deterministic")
		}
		rs := []rune(s)
		prevEnd := 0
		for i, tk := range ts {
			if tk != again[i] {
				t.Fatalf("non-deterministic token %d", i)
			}
			if tk.Start < prevEnd || tk.End <= tk.Start || tk.End > len(rs) {
				t.Fatalf("bad offsets %+v (prev end %d, runes %d)", tk, prevEnd, len(rs))
			}
			if string(rs[tk.Start:tk.End]) != tk.Text {
				t.Fatalf("text %q != runes %q", tk.Text, string(rs[tk.Start:tk.End]))
			}
			if !utf8.ValidString(tk.Norm) || tk.Norm == "" {
				t.Fatalf("bad norm %q", tk.Norm)
			}
			prevEnd = tk.End
		}
	})
}

// Typographic apostrophes and quotes (phone keyboards put them in by
// default) read as the ASCII ones, so "I’m in O’Brien’s shop" gives the
// models the same tokens as "I'm in O'Brien's shop".
func TestTokensFoldTypographicQuotes(t *testing.T) {
	norms := func(s string) (out []string) {
		for _, tok := range Tokenize(s) {
			out = append(out, tok.Norm)
		}
		return out
	}
	a, b := norms("I’m in O’Brien’s “shop”"), norms(`I'm in O'Brien's "shop"`)
	if strings.Join(a, "|") != strings.Join(b, "|") {
		t.Errorf("tokens differ: %q vs %q", a, b)
	}
}
