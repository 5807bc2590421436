package knowledge

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/tandem-chat/tandem"
)

// TestFuseTopKIsPrefixOfFullRanking: asking for k hits returns exactly the
// first k of the full fused ranking (ties by FAQ id), for random lists with
// shared and tied candidates.
func TestFuseTopKIsPrefixOfFullRanking(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	faqs := make([]*tandem.FAQ, 40)
	for i := range faqs {
		faqs[i] = &tandem.FAQ{ID: fmt.Sprintf("faq-%02d", i), Question: fmt.Sprintf("q%d", i), Phrasings: []string{"p"}}
	}
	list := func(n int) []Scored {
		perm := rng.Perm(len(faqs))[:n]
		l := make([]Scored, n)
		for r, i := range perm {
			l[r] = Scored{FAQ: faqs[i], Score: 1 / float64(r+1), Matched: rng.IntN(2)}
		}
		return l
	}
	for trial := range 200 {
		lists := map[string][]Scored{RetrieverLexical: list(rng.IntN(30)), RetrieverVector: list(rng.IntN(30))}
		f := Fusion{}
		if trial%2 == 1 {
			f = Fusion{K: 1, LexicalWeight: 1, VectorWeight: 1} // many exact ties
		}
		all := f.Fuse(lists, 0)
		for _, k := range []int{1, 3, 5, 50} {
			got := f.Fuse(lists, k)
			want := all[:min(k, len(all))]
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("trial %d k=%d:\n got %v\nwant %v", trial, k, ids(got), ids(want))
			}
		}
		for i := 1; i < len(all); i++ {
			a, b := all[i-1], all[i]
			if a.Score < b.Score || (a.Score == b.Score && a.FAQ.ID > b.FAQ.ID) {
				t.Fatalf("trial %d: ranking out of order at %d: %v", trial, i, ids(all))
			}
		}
	}
}

func ids(hs []tandem.Hit) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = fmt.Sprintf("%s:%.4f", h.FAQ.ID, h.Score)
	}
	return out
}
