package demo_test

import (
	"context"
	"testing"

	"github.com/tandem-chat/tandem/knowledge"
	"github.com/tandem-chat/tandem/knowledge/demo"
	"github.com/tandem-chat/tandem/knowledge/memstore"
)

func TestPack(t *testing.T) {
	faqs, err := demo.FAQs()
	if err != nil {
		t.Fatal(err)
	}
	if len(faqs) < 40 {
		t.Fatalf("%d FAQs, want at least 40", len(faqs))
	}
	cats := map[string]int{}
	for _, f := range faqs {
		cats[f.Category]++
		if len(f.Phrasings) < 3 {
			t.Errorf("%s has %d phrasings, want several", f.ExternalID, len(f.Phrasings))
		}
	}
	for _, c := range []string{"orders", "shipping", "returns", "refunds", "payments", "account", "privacy"} {
		if cats[c] == 0 {
			t.Errorf("no FAQ in category %s", c)
		}
	}
}

func TestLoadIdempotentAndSearchable(t *testing.T) {
	ctx := context.Background()
	svc, err := knowledge.NewService(knowledge.Config{Store: memstore.New()})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	rep, err := demo.Load(ctx, svc)
	if err != nil || rep.Created < 40 {
		t.Fatalf("load: %+v, %v", rep, err)
	}
	rep, err = demo.Load(ctx, svc)
	if err != nil || rep.Unchanged != rep.Total || rep.Created != 0 {
		t.Fatalf("second load: %+v, %v", rep, err)
	}
	for q, want := range map[string]string{
		"I forgot my password":              "demo-acct-password",
		"how long until my parcel arrives":  "demo-ship-time",
		"can I pay with paypal":             "demo-pay-methods",
		"I was charged twice for one order": "demo-pay-charged-twice",
		"how do I send back an item":        "demo-return-how",
	} {
		res, err := svc.Search(ctx, knowledge.SearchRequest{Query: q, Filter: knowledge.Filter{PublishedOnly: true}})
		if err != nil || len(res.Hits) == 0 || res.Hits[0].FAQ.ExternalID != want {
			got := ""
			if len(res.Hits) > 0 {
				got = res.Hits[0].FAQ.ExternalID
			}
			t.Errorf("%q -> %s, want %s (%v)", q, got, want, err)
		}
	}
}
