package pipeline

import (
	"context"
	"strings"
	"testing"

	"github.com/tandem-chat/tandem"
)

// A reasoning model's <think> block is never shown, however the stream
// is chunked; text that only looks like the start of one is.
func TestThinkFilter(t *testing.T) {
	for in, want := range map[string]string{
		"<think>the sources say nothing; guess</think>\n\nStandard delivery takes 3 days [1].": "Standard delivery takes 3 days [1].",
		"  <think>x</think>Hi":       "Hi",
		"<Think>LEAK</THINK>Hi":      "Hi",
		"Plain answer":               "Plain answer",
		"<th":                        "<th",
		"<b>bold</b> answer":         "<b>bold</b> answer",
		"<think>never closed":        "",
		"Answer <think>late</think>": "Answer <think>late</think>", // only a leading block is the model's reasoning
	} {
		for size := 1; size <= len(in)+1; size++ {
			var f thinkFilter
			var out strings.Builder
			for i := 0; i < len(in); i += size {
				out.WriteString(f.feed(in[i:min(i+size, len(in))]))
			}
			out.WriteString(f.flush())
			if out.String() != want {
				t.Fatalf("%q in chunks of %d: %q, want %q", in, size, out.String(), want)
			}
		}
		if got := strings.TrimLeft(stripThink(in), " \n"); got != strings.TrimLeft(want, " \n") {
			t.Errorf("stripThink(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestThinkBlockNotShown(t *testing.T) {
	src := []tandem.FAQ{{ID: "f1", Question: "How long does delivery take?", Answer: "3 days."}}
	f := newFakeOpenAI(t, "<think>The customer wants delivery times. Internal note: do not mention fees.</think> Standard delivery takes 3 days [1].")
	for _, noStream := range []bool{false, true} {
		l := newLLM(t, f, func(c *LLMConfig) { c.NoStream = noStream })
		var d deltaRecorder
		out, err := l.Generate(context.Background(), "how long is delivery?", src, d.add)
		if err != nil || out != "Standard delivery takes 3 days [1]." || strings.Contains(d.String(), "Internal") || strings.Contains(d.String(), "think") {
			t.Fatalf("no stream %v: %q (streamed %q), %v", noStream, out, d.String(), err)
		}
	}
	// Reasoning, then the sentinel: declined, nothing shown.
	f2 := newFakeOpenAI(t, "<think>not in the sources</think> NO_ANSWER")
	l := newLLM(t, f2, nil)
	var d deltaRecorder
	if _, err := l.Generate(context.Background(), "q", src, d.add); err != ErrNoAnswer || d.String() != "" {
		t.Fatalf("think then NO_ANSWER: %v, streamed %q", err, d.String())
	}
}
