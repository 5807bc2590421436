// Package text normalises and tokenises user text for Tandem's NLU: Unicode
// NFKC normalisation with lower-casing, and a tokenizer that handles Latin and
// other space-separated scripts as well as unsegmented scripts (Chinese,
// Japanese, Korean, Thai, ...), where every character is its own token.
//
// Contract:
//   - Offsets are in Unicode code points (runes) of the ORIGINAL string, End
//     exclusive, matching tandem.Entity. Invalid UTF-8 bytes count as one
//     rune each and read as U+FFFD, exactly like []rune(s); nothing panics on
//     any input.
//   - A token is a maximal run of letters, digits and combining marks
//     (a "word"), or one punctuation/symbol character, or one character of an
//     unsegmented script (Han, Hiragana, Katakana, Hangul, Thai, Lao, Khmer,
//     Myanmar). Combining marks always attach to the preceding token.
//     Apostrophes, hyphens and other punctuation are separate tokens, so
//     entity span boundaries fall on token boundaries.
//   - Token.Norm is NFKC(Token.Text) lower-cased, with typographic
//     apostrophes and quotation marks (U+2018, U+2019, U+201B–U+201F) as
//     the ASCII ones; Token.Text is the original text of the span (with
//     U+FFFD for invalid bytes).
//   - The functions are pure and safe for concurrent use; the output for a
//     given input never changes within a version (features depend on it).
package text

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Token is one token of a text. Start and End are rune offsets into the
// original string, End exclusive.
type Token struct {
	Text  string // original text of the span
	Norm  string // NFKC, lower-cased
	Start int
	End   int
}

// Kind classes of characters.
const (
	kindSpace = iota
	kindWord
	kindMark
	kindSingle // punctuation, symbols, unsegmented-script characters, U+FFFD
)

// unsegmented lists the scripts written without spaces between words; each
// of their characters is a token (character n-grams recover the words).
var unsegmented = []*unicode.RangeTable{
	unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul,
	unicode.Thai, unicode.Lao, unicode.Khmer, unicode.Myanmar, unicode.Bopomofo,
}

// IsUnsegmented reports whether r belongs to a script whose characters are
// tokens of their own.
func IsUnsegmented(r rune) bool {
	if r < 0x0E00 { // fast path: nothing below Thai is unsegmented
		return false
	}
	if r == 0x30FC || r == 0x3005 { // katakana prolonged sound mark, ideographic iteration mark
		return true
	}
	return unicode.IsOneOf(unsegmented, r)
}

func classify(r rune) int {
	switch {
	case r < utf8.RuneSelf:
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			return kindWord
		case r == ' ', r == '\t', r == '\n', r == '\r', r == '\v', r == '\f':
			return kindSpace
		case r < 0x20 || r == 0x7f:
			return kindSpace // control characters separate tokens
		default:
			return kindSingle
		}
	case r == utf8.RuneError:
		return kindSingle
	case unicode.IsSpace(r), unicode.Is(unicode.Cc, r), unicode.Is(unicode.Cf, r):
		return kindSpace // includes zero-width joiners/spaces and BOM
	case unicode.Is(unicode.M, r):
		return kindMark
	case IsUnsegmented(r):
		return kindSingle
	case unicode.IsLetter(r), unicode.IsNumber(r):
		return kindWord
	default:
		return kindSingle
	}
}

// Tokenize splits s into tokens (see the package contract).
func Tokenize(s string) []Token {
	return AppendTokens(nil, s)
}

// AppendTokens appends the tokens of s to dst and returns the extended slice,
// so hot paths can reuse a buffer.
func AppendTokens(dst []Token, s string) []Token {
	var (
		runeIdx   int  // rune offset of the current position
		open      bool // a token is being built
		openWord  bool // the open token is a word (can grow)
		startByte int
		startRune int
		hadBad    bool // the open token contains an invalid byte
	)
	flush := func(endByte, endRune int) {
		if !open {
			return
		}
		raw := s[startByte:endByte]
		if hadBad {
			// One U+FFFD per invalid byte, consistent with []rune(s).
			raw = string([]rune(raw))
		}
		dst = append(dst, Token{Text: raw, Norm: Normalize(raw), Start: startRune, End: endRune})
		open, openWord, hadBad = false, false, false
	}
	for i := 0; i < len(s); {
		r, w := utf8.DecodeRuneInString(s[i:])
		bad := r == utf8.RuneError && w == 1
		k := classify(r)
		switch k {
		case kindSpace:
			flush(i, runeIdx)
		case kindMark:
			if !open { // a stray mark starts a single-character token
				open, openWord, startByte, startRune = true, false, i, runeIdx
			}
		case kindWord:
			if !open || !openWord {
				flush(i, runeIdx)
				open, openWord, startByte, startRune = true, true, i, runeIdx
			}
		case kindSingle:
			flush(i, runeIdx)
			open, openWord, startByte, startRune = true, false, i, runeIdx
		}
		if bad {
			hadBad = true
		}
		i += w
		runeIdx++
		// A single-character token closes at its end unless marks follow.
		if k == kindSingle || (k == kindMark && !openWord) {
			if i < len(s) {
				nr, _ := utf8.DecodeRuneInString(s[i:])
				if classify(nr) == kindMark {
					continue
				}
			}
			flush(i, runeIdx)
		}
	}
	flush(len(s), runeIdx)
	return dst
}

// Normalize returns NFKC(s) lower-cased, with typographic quotes as ASCII
// ones and invalid UTF-8 bytes replaced by U+FFFD. ASCII input takes a fast
// path with no allocation when already lower.
func Normalize(s string) string {
	ascii, upper := true, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			ascii = false
			break
		}
		if c >= 'A' && c <= 'Z' {
			upper = true
		}
	}
	if ascii {
		if !upper {
			return s
		}
		return strings.ToLower(s)
	}
	if !utf8.ValidString(s) {
		s = string([]rune(s))
	}
	return quotes.Replace(strings.ToLower(norm.NFKC.String(s)))
}

// quotes folds the typographic apostrophes and quotation marks that phone
// keyboards type by default into the ASCII ones the training data uses.
var quotes = strings.NewReplacer("\u2018", "'", "\u2019", "'", "\u201b", "'",
	"\u201c", `"`, "\u201d", `"`, "\u201e", `"`, "\u201f", `"`)

// RuneLen returns the number of runes of s, counting each invalid byte as one
// (the unit of every offset in Tandem).
func RuneLen(s string) int { return utf8.RuneCountInString(s) }

// Slice returns the runes [start, end) of s as a string (invalid bytes read
// as U+FFFD). Out-of-range bounds are clamped.
func Slice(s string, start, end int) string {
	rs := []rune(s)
	if start < 0 {
		start = 0
	}
	if end > len(rs) {
		end = len(rs)
	}
	if start >= end {
		return ""
	}
	return string(rs[start:end])
}
