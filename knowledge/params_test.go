package knowledge_test

import (
	"io"
	"testing"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/knowledge"
)

// The service refuses malformed ids and filter values (which PostgreSQL
// cannot compare) with EINVALID, whoever calls it (the API, the bot with a
// customer's locale).
func TestServiceRejectsMalformedParams(t *testing.T) {
	s := newService(t, knowledge.Config{})
	want := func(name string, err error) {
		t.Helper()
		if tandem.ErrorCode(err) != tandem.EINVALID {
			t.Errorf("%s: %v, want invalid", name, err)
		}
	}
	for _, id := range []string{"\xff", "a\x00", "a\nb", string(make([]byte, 201))} {
		_, err := s.Get(ctx, id)
		want("get", err)
		_, err = s.Versions(ctx, id, 0, 0)
		want("versions", err)
		want("delete", s.Delete(ctx, "alice", id, 0))
		_, err = s.SetStatus(ctx, "alice", id, tandem.FAQPublished, 0)
		want("set status", err)
	}
	for _, f := range []knowledge.Filter{{Locale: "\xff"}, {Locale: "en\x00"}, {Tags: []string{"ok", "\xff"}}, {Tags: []string{"\x00"}}} {
		_, err := s.Search(ctx, knowledge.SearchRequest{Query: "shipping", Filter: f})
		want("search", err)
		_, err = s.List(ctx, knowledge.ListFilter{Filter: f})
		want("list", err)
	}
	for _, lf := range []knowledge.ListFilter{{Category: "\xff"}, {Category: "a\x00"}, {After: "\xff"}, {After: "\x00"}} {
		_, err := s.List(ctx, lf)
		want("list", err)
		if lf.After == "" { // Export starts at the beginning anyway
			e, err := knowledge.NewExporter(io.Discard, knowledge.FormatJSON)
			if err != nil {
				t.Fatal(err)
			}
			want("export", s.Export(ctx, lf, e))
		}
	}
	if _, err := s.Get(ctx, "faq_unknown"); tandem.ErrorCode(err) != tandem.ENOTFOUND {
		t.Errorf("unknown id: %v", err)
	}
}
