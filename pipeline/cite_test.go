package pipeline

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tandem-chat/tandem"
)

func TestCitedSources(t *testing.T) {
	hits := []tandem.Hit{{FAQ: tandem.FAQ{ID: "a", Question: "A?"}}, {FAQ: tandem.FAQ{ID: "b", Question: "B?"}}, {FAQ: tandem.FAQ{ID: "c", Question: "C?"}}}
	ids := func(s []tandem.Source) (out string) {
		for _, x := range s {
			out += x.FAQID + string(rune('0'+x.N))
		}
		return out
	}
	for text, want := range map[string]string{
		"Yes [2].":                 "b2",
		"Yes [3] and no [1].":      "a1c3",
		"Both [1, 3].":             "a1c3",
		"Both [1][2].":             "a1b2",
		"No citation at all.":      "a1b2c3",
		"Invented [7].":            "!",
		"Zero [0].":                "a1b2c3",
		"Press [3](https://x) [1]": "a1",
		"A link [docs](https://x)": "a1b2c3",
	} {
		got, ok := citedSources(text, hits)
		if !ok {
			if want != "!" {
				t.Errorf("%q refused", text)
			}
			continue
		}
		if want == "!" || ids(got) != want {
			t.Errorf("%q: %s, want %s", text, ids(got), want)
		}
	}
}

// A generated answer lists only the sources it cites, numbered as cited;
// one citing a source it was not given is not shown (the extractive
// answer instead), and is counted as bad_citation.
func TestGeneratedAnswerCitations(t *testing.T) {
	f := newFakeOpenAI(t, groundedAnswer) // cites [1]
	l := newLLM(t, f, nil)
	p := newTestPipeline(t, func(c *Config, d *Deps) { d.LLM = l })
	ctx := context.Background()
	r, err := p.Respond(ctx, turn("c1", "how can I track my order"))
	if err != nil || !r.Generated || len(r.Sources) != 1 || r.Sources[0].N != 1 {
		t.Fatalf("cited answer: %+v %v", r, err)
	}
	f2 := newFakeOpenAI(t, "Shipping is free worldwide and takes 24 hours [7].")
	l2 := newLLM(t, f2, nil)
	p2 := newTestPipeline(t, func(c *Config, d *Deps) { d.LLM = l2 })
	r, err = p2.Respond(ctx, turn("c2", "how can I track my order"))
	if err != nil || r.Generated || r.Text != demoFAQs[0].Answer {
		t.Fatalf("invented citation: %+v %v, want the extractive answer", r, err)
	}
	if got := testutil.ToFloat64(p2.m.llm.WithLabelValues("bad_citation")); got != 1 {
		t.Fatalf("bad_citation = %v", got)
	}
}

func TestGroundLinks(t *testing.T) {
	src := []tandem.FAQ{{Question: "Where are the terms?", Answer: "Read [the terms](https://shop.example/terms_(EU)) or https://shop.example/help."}}
	for in, want := range map[string]string{
		"See [the terms](https://shop.example/terms_(EU)) [1].": "See [the terms](https://shop.example/terms_(EU)) [1].",
		"See [help](https://shop.example/help) [1].":            "See [help](https://shop.example/help) [1].",
		"Pay at [our partner](https://evil.example/pay) [1].":   "Pay at our partner [1].",
		"No links here [1].": "No links here [1].",
		"A lookalike [help](https://shop.example/hel) [1].": "A lookalike help [1].",
		"A lookalike [help](https://shop.exampl) [1].":      "A lookalike help [1].",
	} {
		if got := groundLinks(in, src); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}
