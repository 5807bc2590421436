package gateway

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tandem-chat/tandem"
)

// FuzzDecodeClientFrame: the frame decoder never panics, rejects with code
// invalid only, and whatever it accepts is valid UTF-8 with a known type
// and bounded fields.
func FuzzDecodeClientFrame(f *testing.F) {
	for _, s := range []string{
		`{"type":"hello","token":"t","last_seq":3}`,
		`{"type":"message","client_id":"m-1","text":"hi"}`,
		`{"type":"handoff_request","client_id":"h"}`,
		`{"type":"typing","on":true}`, `{"type":"read","seq":9}`, `{"type":"ping","id":"x"}`,
		`{"type":"contact","client_id":"k1","address":"ann@example.com"}`, `{"type":"contact","client_id":"k1","address":5}`,
		`{"type":"contact","client_id":"k1","address":"a\u0007b"}`,
		`{"type":"handoff_cancel","client_id":"c1"}`, `{"type":"rating","client_id":"r1","score":"good"}`,
		`{"type":"rating","client_id":"r1","score":"meh"}`, `{"type":"rating","client_id":"r:1","score":"bad"}`,
		`{"type":"message","client_id":7}`, `{"type":"nope"}`, `[]`, `null`, `{"type":"ping"} x`,
		"{\"type\":\"message\",\"client_id\":\"a\",\"text\":\"\xff\"}", `{"type":"message","client_id":"a","text":"\u0000"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := DecodeClientFrame(data)
		if err != nil {
			if tandem.ErrorCode(err) != tandem.EINVALID {
				t.Fatalf("error code %q for %q", tandem.ErrorCode(err), data)
			}
			if !utf8.ValidString(tandem.ErrorMessage(err)) {
				t.Fatalf("error message is not UTF-8: %q", tandem.ErrorMessage(err))
			}
			return
		}
		if !utf8.Valid(data) {
			t.Fatalf("accepted invalid UTF-8 %q", data)
		}
		switch fr.Type {
		case FrameHello, FrameMessage, FrameHandoffRequest, FrameTyping, FrameRead, FramePing, FrameContact, FrameHandoffCancel, FrameRating:
		default:
			t.Fatalf("accepted unknown type %q", fr.Type)
		}
		if (fr.Type == FrameMessage || fr.Type == FrameHandoffRequest) && !ValidID(fr.ClientID, MaxClientIDLen) {
			t.Fatalf("accepted client id %q", fr.ClientID)
		}
		if fr.Type == FrameContact && (!ValidID(fr.ClientID, MaxClientIDLen) || fr.Address == "" || len(fr.Address) > MaxContactBytes ||
			strings.ContainsFunc(fr.Address, func(r rune) bool { return r < 0x20 || r == 0x7f })) {
			t.Fatalf("accepted contact frame %+v", fr)
		}
		if fr.Type == FrameRating && (!validClientID(fr.ClientID) || ratingText[fr.Score] == "") {
			t.Fatalf("accepted rating frame %+v", fr)
		}
		if utf8.RuneCountInString(fr.Text) > MaxTextRunes || fr.LastSeq < 0 {
			t.Fatalf("accepted out-of-bounds frame %+v", fr)
		}
		// An accepted frame re-encodes and decodes to the same frame.
		b, _ := json.Marshal(fr)
		again, err := DecodeClientFrame(b)
		if err != nil || again.Type != fr.Type || again.Text != fr.Text || again.ClientID != fr.ClientID || again.Address != fr.Address {
			t.Fatalf("round trip of %q: %+v, %v", data, again, err)
		}
	})
}

func FuzzDecodeEvent(f *testing.F) {
	f.Add([]byte("3 c_1 k_2\n{\"type\":\"message\"}"))
	f.Add([]byte("x"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := decodeEvent(data)
		if err != nil {
			return
		}
		if ev.Seq < 0 {
			t.Fatalf("negative seq from %q", data)
		}
		back, err := decodeEvent(encodeEvent(ev))
		if err != nil || back.Seq != ev.Seq || back.ConversationID != ev.ConversationID || string(back.Frame) != string(ev.Frame) {
			t.Fatalf("event round trip of %q: %+v %v", data, back, err)
		}
	})
}
