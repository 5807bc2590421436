package tandem_test

import (
	"testing"

	"github.com/tandem-chat/tandem"
)

func TestBlank(t *testing.T) {
	for s, want := range map[string]bool{
		"":                   true,
		" \t\n\u00a0":        true,
		"\u200b\u2060\u200e": true,
		"\u3164":             true, // HANGUL FILLER
		"\u2800 \u2800":      true, // BRAILLE PATTERN BLANK
		"\ufe0f":             true, // a variation selector alone
		"\u0301":             true, // a combining mark with nothing to combine with
		"\u115f\u1160\uffa0": true,
		"e\u0301":            false,
		"a":                  false,
		"👍":                  false,
		"👍\ufe0f":            false,
		"\u0e01\u0e34":       false, // Thai letter and its vowel mark
		"\u3164\u3164 hi":    false,
		"\u2800\u2801":       false, // a Braille dot is visible
	} {
		if got := tandem.Blank(s); got != want {
			t.Errorf("Blank(%q) = %v, want %v", s, got, want)
		}
	}
}
