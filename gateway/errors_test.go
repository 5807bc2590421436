package gateway_test

import (
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"

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
