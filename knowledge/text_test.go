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
