package console_test

import (
	"testing"
	"unicode/utf8"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/gateway/console"
)

// FuzzDecodeClientFrame: the console frame decoder never panics, every
// failure is an invalid error, and accepted frames are valid.
func FuzzDecodeClientFrame(f *testing.F) {
	for _, s := range []string{
		`{"type":"hello","token":"x"}`, `{"type":"accept","ticket_id":"tkt_1","ref":"r1"}`,
		`{"type":"transfer","ticket_id":"t","skills":["billing"]}`, `{"type":"transfer","ticket_id":"t","to_agent_id":"a","skills":["x"]}`,
		`{"type":"message","conversation_id":"c","client_id":"m","text":"hi"}`, `{"type":"typing","conversation_id":"c","on":true}`,
		`{"type":"presence","status":"busy"}`, `{"type":"read","conversation_id":"c","seq":-1}`, `{"type":1}`, `[]`, `{"type":"ping"} {}`,
		"{\"type\":\"message\",\"conversation_id\":\"c\",\"client_id\":\"m\",\"text\":\"a\\u0000b\"}", "\xff",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := console.DecodeClientFrame(data)
		if err != nil {
			if tandem.ErrorCode(err) != tandem.EINVALID {
				t.Fatalf("error code %q for %q", tandem.ErrorCode(err), data)
			}
			return
		}
		if fr.Type == "" || !utf8.ValidString(fr.Text) {
			t.Fatalf("accepted %q as %+v", data, fr)
		}
		if fr.Type == console.FrameMessage && (fr.Text == "" || utf8.RuneCountInString(fr.Text) > console.MaxTextRunes) {
			t.Fatalf("accepted message %q", fr.Text)
		}
	})
}
