package knowledge

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// NormalizeQuery returns the canonical form of a query used as the cache
// key: NFKC, lower case, punctuation removed (apostrophes inside words are
// dropped, so "don't" and "dont" agree), white space collapsed.
func NormalizeQuery(q string) string {
	q = norm.NFKC.String(q)
	var b strings.Builder
	b.Grow(len(q))
	space := false
	for _, r := range q {
		switch {
		case r == '\'' || r == '’':
			continue
		case unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r):
			if space && b.Len() > 0 {
				b.WriteByte(' ')
			}
			space = false
			b.WriteRune(unicode.ToLower(r))
		default:
			space = true
		}
	}
	return b.String()
}

// MaxTermBytes is the longest lexical term: PostgreSQL refuses tsvector
// lexemes of 2048 bytes or more ("word is too long"), so longer terms (a
// run of an unspaced script such as Khmer, a long key or hash) are cut to
// this length on a character boundary, in both stores and in queries alike.
const MaxTermBytes = 2047

// Tokens splits text into lexical terms for BM25: the words of
// NormalizeQuery with a light English suffix stemmer, and each character of
// unsegmented scripts (Han, Hiragana, Katakana, Thai) as its own term plus
// bigrams of neighbouring characters, so Chinese and Japanese match without
// a word segmenter. Terms are at most MaxTermBytes long.
func Tokens(text string) []string {
	norm := NormalizeQuery(text)
	out := make([]string, 0, 16)
	for _, w := range strings.Fields(norm) {
		if hasUnsegmented(w) {
			out = appendCJK(out, w)
			continue
		}
		out = append(out, capTerm(Stem(w)))
	}
	return out
}

// capTerm cuts t to at most MaxTermBytes on a character boundary.
func capTerm(t string) string {
	if len(t) <= MaxTermBytes {
		return t
	}
	n := MaxTermBytes
	for n > 0 && !utf8.RuneStart(t[n]) {
		n--
	}
	return t[:n]
}

func hasUnsegmented(w string) bool {
	for _, r := range w {
		if unsegmented(r) {
			return true
		}
	}
	return false
}

func unsegmented(r rune) bool {
	return unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Thai)
}

func appendCJK(out []string, w string) []string {
	var prev rune
	var latin []rune
	flush := func() {
		if len(latin) > 0 {
			out = append(out, capTerm(Stem(string(latin))))
			latin = latin[:0]
		}
	}
	for _, r := range w {
		if !unsegmented(r) {
			latin = append(latin, r)
			prev = 0
			continue
		}
		flush()
		out = append(out, string(r))
		if prev != 0 {
			out = append(out, string([]rune{prev, r}))
		}
		prev = r
	}
	flush()
	return out
}

// Stem strips common English inflections (plural -s/-es/-ies, -ing, -ed)
// from a lower-case word of at least 4 letters; it is deliberately light so
// that it never merges unrelated words often.
func Stem(w string) string {
	n := len(w)
	if n < 4 {
		return w
	}
	switch {
	case strings.HasSuffix(w, "ies") && n > 4:
		return w[:n-3] + "y"
	case strings.HasSuffix(w, "sses"):
		return w[:n-2]
	case strings.HasSuffix(w, "ss") || strings.HasSuffix(w, "us") || strings.HasSuffix(w, "is"):
		return w
	case strings.HasSuffix(w, "ing") && n > 5:
		return undouble(w[:n-3])
	case strings.HasSuffix(w, "ed") && n > 4:
		return undouble(w[:n-2])
	case strings.HasSuffix(w, "s"):
		return w[:n-1]
	}
	return w
}

// undouble drops the second of two equal final ASCII letters ("stopp" ->
// "stop"). Bytes of multi-byte characters are left alone: some letters
// end in two equal bytes (त is E0 A4 A4), and cutting one would leave
// invalid UTF-8.
func undouble(w string) string {
	n := len(w)
	if n >= 3 && w[n-1] < utf8.RuneSelf && w[n-1] == w[n-2] && w[n-1] != 'l' && w[n-1] != 's' && w[n-1] != 'z' {
		return w[:n-1]
	}
	return w
}
