package kbapi_test

import (
	"context"
	"encoding/json"
	"math"
	"net/url"
	"strings"
	"testing"

	"github.com/tandem-chat/tandem/gateway/kbapi"
	"github.com/tandem-chat/tandem/knowledge"
)

// zeroEmbedder is bagEmbedder, except that texts made only of "ㄱ" embed to
// the zero vector, as the local encoder does for text it has no features
// for.
type zeroEmbedder struct{ bagEmbedder }

func (z zeroEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	out, err := z.bagEmbedder.Embed(ctx, texts)
	for i, t := range texts {
		if t == "ㄱ" || t == "ㄱㄱ?" {
			out[i] = make([]float32, z.Dim())
		}
	}
	return out, err
}

func checkHits(t *testing.T, r resp) knowledge.SearchResult {
	t.Helper()
	var res knowledge.SearchResult
	if r.status != 200 {
		t.Fatalf("search: %d %s", r.status, r.body)
	}
	if err := json.Unmarshal(r.body, &res); err != nil {
		t.Fatalf("search body %q: %v", r.body, err)
	}
	for _, h := range res.Hits {
		if math.IsNaN(h.Score) || math.IsInf(h.Score, 0) {
			t.Errorf("hit %s: score %v", h.FAQ.ExternalID, h.Score)
		}
		if v, ok := h.Retrievers[knowledge.RetrieverVector]; ok && !(v >= 0 && v <= 1) {
			t.Errorf("hit %s: vector score %v outside [0, 1]", h.FAQ.ExternalID, v)
		}
	}
	return res
}

// A query the encoder maps to the zero vector finds nothing by vector (it
// has no direction), on both stores, and the answer is well-formed JSON;
// an FAQ whose only phrasing embeds to zero is never a vector hit.
func TestSearchZeroQueryVector(t *testing.T) {
	eachStore(t, zeroEmbedder{}, func(t *testing.T, e *storeEnv) {
		for _, b := range []string{
			`{"external_id":"ship","question":"How long is shipping?","answer":"3 days","status":"published"}`,
			`{"external_id":"zero","question":"ㄱㄱ?","answer":"jamo","status":"published"}`,
		} {
			if r := e.do(t, "POST", "/faqs", e.admin, []byte(b)); r.status != 201 {
				t.Fatalf("create: %d %s", r.status, r.body)
			}
		}
		_ = e.svc.WaitReindex(context.Background())
		for _, mode := range []string{"hybrid", "vector"} {
			res := checkHits(t, e.do(t, "GET", "/search?q="+url.QueryEscape("ㄱ")+"&mode="+mode, e.admin, nil))
			for _, h := range res.Hits {
				if _, ok := h.Retrievers[knowledge.RetrieverVector]; ok {
					t.Errorf("%s: zero query vector found %s by vector", mode, h.FAQ.ExternalID)
				}
			}
			if mode == "vector" && len(res.Hits) != 0 {
				t.Errorf("vector search for a zero query vector: %+v", res.Hits)
			}
			// A real query: scores in [0, 1]; the zero-vector FAQ is not a
			// vector match.
			res = checkHits(t, e.do(t, "GET", "/search?k=10&q=shipping&mode="+mode, e.admin, nil))
			if len(res.Hits) == 0 || res.Hits[0].FAQ.ExternalID != "ship" {
				t.Fatalf("%s search for shipping: %+v", mode, res.Hits)
			}
			for _, h := range res.Hits {
				if _, ok := h.Retrievers[knowledge.RetrieverVector]; ok && h.FAQ.ExternalID == "zero" {
					t.Errorf("%s: the FAQ with a zero vector was a vector match", mode)
				}
			}
		}
	})
}

// nanService returns a hit with a NaN score next to the real ones, as a
// faulty store could.
type nanService struct{ *knowledge.Service }

func (n nanService) Search(ctx context.Context, req knowledge.SearchRequest) (knowledge.SearchResult, error) {
	res, err := n.Service.Search(ctx, req)
	if err != nil || len(res.Hits) == 0 {
		return res, err
	}
	bad := res.Hits[0]
	bad.FAQ.ExternalID = "nan"
	bad.Retrievers = map[string]float64{knowledge.RetrieverVector: math.NaN()}
	res.Hits = append(res.Hits, bad)
	return res, nil
}

// The API never hands a NaN score to the JSON writer (which would answer
// 200 with an empty body): such hits are dropped.
func TestSearchDropsNaNScores(t *testing.T) {
	e := setupStore(t, "mem", bagEmbedder{}, func(s *knowledge.Service) kbapi.Service { return nanService{s} })
	if r := e.do(t, "POST", "/faqs", e.admin, []byte(`{"external_id":"ship","question":"How long is shipping?","answer":"3 days"}`)); r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	res := checkHits(t, e.do(t, "GET", "/search?q=shipping", e.admin, nil))
	if len(res.Hits) != 1 || res.Hits[0].FAQ.ExternalID != "ship" {
		t.Fatalf("hits = %+v", res.Hits)
	}
}

// Different tag filters never share a cache entry: tag=a,b (one tag "a,b")
// and tag=a&tag=b (two tags) are different searches.
func TestSearchCacheKeyTags(t *testing.T) {
	e := setup(t)
	if r := e.do(t, "POST", "/faqs", e.admin, []byte(`{"question":"How long is shipping?","answer":"3 days","tags":["a","b"]}`)); r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	// The start-up embedding job ends by switching encoders, which empties
	// the cache: searched before it ends, a cached entry could be gone.
	_ = e.svc.WaitReindex(context.Background())
	for _, tc := range []struct {
		query  string
		hits   int
		cached bool
	}{
		{"q=shipping&cache=true&tag=a,b", 0, false},
		{"q=shipping&cache=true&tag=a&tag=b", 1, false},
		{"q=shipping&cache=true&tag=b&tag=a", 1, true},
		{"q=shipping&cache=true&tag=a,b", 0, true},
	} {
		res := checkHits(t, e.do(t, "GET", "/search?"+tc.query, e.admin, nil))
		if len(res.Hits) != tc.hits || res.Cached != tc.cached {
			t.Errorf("%s: %d hits, cached %v; want %d, %v", tc.query, len(res.Hits), res.Cached, tc.hits, tc.cached)
		}
	}
}

// TestSearchKRange: k outside [1, 100] is 400 naming k, as documented; k=0
// used to mean the default 5.
func TestSearchKRange(t *testing.T) {
	e := setup(t)
	if r := e.do(t, "POST", "/faqs", e.admin, []byte(`{"question":"How long is shipping?","answer":"3 days"}`)); r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	for _, k := range []string{"0", "-1", "101", "five", "1.5"} {
		r := e.do(t, "GET", "/search?q=shipping&k="+k, e.admin, nil)
		if r.status != 400 {
			t.Errorf("k=%s: %d %s, want 400", k, r.status, r.body)
			continue
		}
		if code, msg := r.errCode(t); code != "invalid" || !strings.HasPrefix(msg, "k") {
			t.Errorf("k=%s: %s %q", k, code, msg)
		}
	}
	for _, k := range []string{"1", "100"} {
		if r := e.do(t, "GET", "/search?q=shipping&k="+k, e.admin, nil); r.status != 200 {
			t.Errorf("k=%s: %d %s", k, r.status, r.body)
		}
	}
}
