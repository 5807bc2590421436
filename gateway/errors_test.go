package gateway_test

import (
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tandem-chat/tandem/gateway"
)

// TestWriteJSONNeverSendsAnEmptySuccess: a value that cannot be encoded
// (a NaN score) gets 500 with an error body, not the intended status with
// an empty body (the header used to be written before encoding).
func TestWriteJSONNeverSendsAnEmptySuccess(t *testing.T) {
	w := httptest.NewRecorder()
	gateway.WriteJSON(w, http.StatusOK, map[string]float64{"score": math.NaN()})
	var body gateway.ErrorBody
	if w.Code != http.StatusInternalServerError || json.Unmarshal(w.Body.Bytes(), &body) != nil || body.Error.Code != "internal" {
		t.Fatalf("status %d, body %q", w.Code, w.Body.String())
	}
	w = httptest.NewRecorder()
	gateway.WriteJSON(w, http.StatusCreated, map[string]int{"n": 1})
	if w.Code != http.StatusCreated || w.Body.String() != "{\"n\":1}\n" {
		t.Fatalf("status %d, body %q", w.Code, w.Body.String())
	}
}

// TestCloseReason: a reason longer than a close frame allows is cut at a
// character boundary (a close frame with the whole reason could not be
// written, and the peer saw 1006 instead of the code).
func TestCloseReason(t *testing.T) {
	short := "log in again"
	if got := gateway.CloseReason(short); got != short {
		t.Fatalf("short reason changed: %q", got)
	}
	long := strings.Repeat("é", 100) // 200 bytes
	got := gateway.CloseReason(long)
	if len(got) > 123 || !utf8.ValidString(got) || !strings.HasSuffix(got, "…") || !strings.HasPrefix(long, strings.TrimSuffix(got, "…")) {
		t.Fatalf("long reason = %q (%d bytes)", got, len(got))
	}
	exact := strings.Repeat("a", 123)
	if got := gateway.CloseReason(exact); got != exact {
		t.Fatalf("a 123-byte reason was cut: %q", got)
	}
}
