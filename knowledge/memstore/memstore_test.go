package memstore_test

import (
	"context"
	"fmt"
	"math"
	"sync"
	"testing"

	"github.com/tandem-chat/tandem"

	"github.com/tandem-chat/tandem/knowledge"
	"github.com/tandem-chat/tandem/knowledge/memstore"
	"github.com/tandem-chat/tandem/knowledge/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) knowledge.Store { return memstore.New() })
}

// TestLexicalAfterChurn checks that BM25 scores after many deletes and
// creates (which reuse scratch slots) equal those of a store that only
// ever held the surviving FAQs, across concurrent searches.
func TestLexicalAfterChurn(t *testing.T) {
	ctx := context.Background()
	churned, fresh := memstore.New(), memstore.New()
	mk := func(s *memstore.Store, q string) string {
		f, err := s.Create(ctx, knowledge.Write{FAQ: tandem.FAQ{Question: q, Answer: "answer to " + q, Locale: "en", Status: tandem.FAQPublished}, Actor: "t"})
		if err != nil {
			t.Fatal(err)
		}
		return f.ID
	}
	var keep []string
	for i := range 200 {
		q := fmt.Sprintf("how do I change my order number %d delivery", i)
		id := mk(churned, q)
		if i%3 == 0 {
			keep = append(keep, q)
			continue
		}
		if err := churned.Delete(ctx, id, 0, "t"); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 50 {
		q := fmt.Sprintf("refund for order %d", i)
		mk(churned, q)
		keep = append(keep, q)
	}
	for _, q := range keep {
		mk(fresh, q)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				q := fmt.Sprintf("change order %d delivery refund", (i*7+g)%200)
				a, err := churned.LexicalSearch(ctx, q, knowledge.Filter{}, 10)
				if err != nil {
					t.Error(err)
					return
				}
				b, err := fresh.LexicalSearch(ctx, q, knowledge.Filter{}, 1000)
				if err != nil {
					t.Error(err)
					return
				}
				if len(a) != min(10, len(b)) || len(a) == 0 {
					t.Errorf("%q: %d hits after churn, %d fresh", q, len(a), len(b))
					return
				}
				// Ties are ordered by (random) id, so compare the score per
				// rank and each hit's score with the fresh store's.
				want := map[string]float64{}
				for _, h := range b {
					want[h.FAQ.Question] = h.Score
				}
				for j := range a {
					if math.Abs(a[j].Score-b[j].Score) > 1e-9 || math.Abs(a[j].Score-want[a[j].FAQ.Question]) > 1e-9 {
						t.Errorf("%q #%d: %q %.6f after churn, fresh %.6f at that rank, %.6f for that FAQ", q, j, a[j].FAQ.Question, a[j].Score, b[j].Score, want[a[j].FAQ.Question])
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}
