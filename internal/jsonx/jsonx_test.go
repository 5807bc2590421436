package jsonx_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/tandem-chat/tandem/internal/jsonx"
)

type body struct {
	Email       string  `json:"email"`
	DisplayName *string `json:"display_name,omitempty"`
	Skip        string  `json:"-"`
	Plain       int
	hidden      int //lint:ignore U1000 an unexported field is no JSON field
}

func TestExactKeys(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		keys int
		bad  string
	}{
		{`{"email":"a","display_name":null,"Plain":1}`, 3, ""},
		{`{}`, 0, ""},
		{`{"Email":"a"}`, 0, "Email"},
		{`{"email":"a","EMAIL":"b"}`, 0, "EMAIL"},
		{`{"display_Name":"x"}`, 0, "display_Name"},
		{`{"Skip":"x"}`, 0, "Skip"},
		{`{"hidden":1}`, 0, "hidden"},
		{`[1]`, 0, ""},
	} {
		var v body
		_ = json.Unmarshal([]byte(tc.raw), &v)
		sent, err := jsonx.ExactKeys([]byte(tc.raw), &v)
		var ke *jsonx.KeyError
		switch {
		case tc.bad == "" && err != nil:
			t.Errorf("%s: %v", tc.raw, err)
		case tc.bad == "" && len(sent) != tc.keys:
			t.Errorf("%s: %d keys, want %d", tc.raw, len(sent), tc.keys)
		case tc.bad != "" && (!errors.As(err, &ke) || ke.Key != tc.bad):
			t.Errorf("%s: error %v, want one naming %q", tc.raw, err, tc.bad)
		}
	}
}
