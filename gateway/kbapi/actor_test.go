package kbapi_test

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/gateway"
	"github.com/tandem-chat/tandem/knowledge"
)

// Admins with long non-ASCII names (or odd characters) can write; the
// audit name is cut on a character boundary, keeps the id and has no
// control characters.
func TestActorNames(t *testing.T) {
	e := setup(t)
	auth, err := gateway.NewAuth([]byte(secret), "static-admin-token", 0)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ id, name, wantSuffix string }{
		{"u-9", strings.Repeat("田", 80), " <u-9>"},
		{"u-8", "Ada\nLove\x00lace", "Ada"},
		{"u-7", strings.Repeat("é", 150), " <u-7>"},
		{strings.Repeat("ü", 150), "Long Id", ""},
	}
	for i, tc := range cases {
		tok, err := auth.IssueStaff(tc.id, tc.name, gateway.RoleAdmin, "", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		r := e.do(t, "POST", "/faqs", tok, []byte(`{"question":"Question `+string(rune('a'+i))+`?","answer":"A"}`))
		if r.status != 201 {
			t.Fatalf("create as %q: %d %s", tc.name, r.status, r.body)
		}
		var f tandem.FAQ
		r.json(t, &f)
		if len(f.UpdatedBy) > knowledge.MaxActorLen || !utf8.ValidString(f.UpdatedBy) || knowledge.ValidActor(f.UpdatedBy) != nil ||
			!strings.Contains(f.UpdatedBy, tc.wantSuffix) || f.UpdatedBy == "" {
			t.Errorf("actor for %q <%s>: %q", tc.name, tc.id, f.UpdatedBy)
		}
	}
}
