package knowledge_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tandem-chat/tandem/knowledge"
)

func TestTokensCapLongWords(t *testing.T) {
	for _, text := range []string{
		strings.Repeat("សួស្តី", 130),
		"key: " + strings.Repeat("ab12", 520),
		"x" + strings.Repeat("é", 1100),
		"退款" + strings.Repeat("q", 3000), // a Latin run inside a CJK word
	} {
		toks := knowledge.Tokens(text)
		if len(toks) == 0 {
			t.Fatalf("no tokens for a %d-byte text", len(text))
		}
		for _, tok := range toks {
			if len(tok) > knowledge.MaxTermBytes || !utf8.ValidString(tok) || tok == "" {
				t.Errorf("token of %d bytes (valid UTF-8: %v)", len(tok), utf8.ValidString(tok))
			}
		}
	}
	if got := knowledge.Tokens("short words stay"); strings.Join(got, " ") != "short word stay" {
		t.Errorf("Tokens = %v", got)
	}
}

// TestStemKeepsUTF8: un-doubling a consonant before -ing/-ed applies to
// ASCII letters only; it used to drop the last byte of a multi-byte letter
// whose encoding ends in two equal bytes (त, 곳), leaving invalid UTF-8.
func TestStemKeepsUTF8(t *testing.T) {
	for _, w := range []string{"तing", "तed", "곳ing", "bigतed", "running", "stopped"} {
		for _, tok := range knowledge.Tokens(w) {
			if !utf8.ValidString(tok) {
				t.Errorf("Tokens(%q) has the invalid term %q", w, tok)
			}
		}
	}
	if got := knowledge.Stem("running") + " " + knowledge.Stem("stopped") + " " + knowledge.Stem("तing"); got != "run stop त" {
		t.Errorf("stems = %q", got)
	}
}
