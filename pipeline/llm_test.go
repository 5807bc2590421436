package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandem-chat/tandem"
)

const groundedAnswer = "You can track your order from the Orders page [1]. It updates every hour."

func newLLM(t *testing.T, f *fakeOpenAI, mutate func(*LLMConfig)) *LLM {
	t.Helper()
	cfg := LLMConfig{BaseURL: f.URL + "/v1", Model: "ok", FirstTokenTimeout: 2 * time.Second, IdleTimeout: 300 * time.Millisecond,
		ConsecutiveFailures: 3, OpenFor: 100 * time.Millisecond}
	if mutate != nil {
		mutate(&cfg)
	}
	l, err := NewLLM(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

type deltaRecorder struct {
	mu sync.Mutex
	b  strings.Builder
	n  int
}

func (d *deltaRecorder) add(s string) { d.mu.Lock(); d.b.WriteString(s); d.n++; d.mu.Unlock() }
func (d *deltaRecorder) String() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.b.String()
}

func TestLLMModes(t *testing.T) {
	f := newFakeOpenAI(t, groundedAnswer)
	ctx := context.Background()
	src := []tandem.FAQ{{ID: "f1", Question: "How do I track my order?", Answer: "Orders page."}}

	t.Run("stream", func(t *testing.T) {
		l := newLLM(t, f, nil)
		var d deltaRecorder
		out, err := l.Generate(ctx, "where is my order", src, d.add)
		if err != nil || out != groundedAnswer || d.String() != groundedAnswer || d.n < 3 {
			t.Fatalf("out=%q err=%v deltas=%q (%d)", out, err, d.String(), d.n)
		}
	})
	t.Run("non-stream", func(t *testing.T) {
		l := newLLM(t, f, func(c *LLMConfig) { c.NoStream = true })
		out, err := l.Generate(ctx, "where is my order", src, nil)
		if err != nil || out != groundedAnswer {
			t.Fatalf("out=%q err=%v", out, err)
		}
	})
	for _, mode := range []string{"fail", "malformed", "cut", "stall", "slow"} {
		t.Run(mode, func(t *testing.T) {
			l := newLLM(t, f, func(c *LLMConfig) { c.Model = mode; c.FirstTokenTimeout = 300 * time.Millisecond })
			if _, err := l.Generate(ctx, "q", src, nil); err == nil {
				t.Fatalf("mode %s: no error", mode)
			}
		})
	}
	t.Run("noanswer", func(t *testing.T) {
		l := newLLM(t, f, func(c *LLMConfig) { c.Model = "noanswer" })
		var d deltaRecorder
		if _, err := l.Generate(ctx, "q", src, d.add); err != ErrNoAnswer {
			t.Fatalf("err = %v", err)
		}
		if d.String() != "" {
			t.Fatalf("sentinel leaked to the stream: %q", d.String())
		}
		if l.BreakerState() != "closed" {
			t.Fatal("a declined answer counted as a failure")
		}
	})
}

// TestBreakerOpensAndRecovers: failures open the breaker, turns still get an
// answer (extractive) or an escalation, and a half-open probe closes it again.
func TestBreakerOpensAndRecovers(t *testing.T) {
	f := newFakeOpenAI(t, groundedAnswer)
	l := newLLM(t, f, nil)
	p := newTestPipeline(t, func(c *Config, d *Deps) { d.LLM = l })
	ctx := context.Background()

	r, err := p.Respond(ctx, turn("llm", "how can I track my order"))
	if err != nil || !r.Generated || r.Text != groundedAnswer || len(r.Sources) == 0 {
		t.Fatalf("healthy LLM: %+v %v", r, err)
	}

	f.mode.Store("fail")
	for i := range 3 {
		r, err := p.Respond(ctx, turn("llm", "how can I track my order"))
		if err != nil {
			t.Fatal(err)
		}
		if r.Kind != tandem.ReplyAnswer || r.Generated || r.Text != demoFAQs[0].Answer {
			t.Fatalf("failure %d: want extractive answer, got %+v", i, r)
		}
	}
	if l.BreakerState() != "open" {
		t.Fatalf("breaker = %s after 3 failures", l.BreakerState())
	}
	before := f.requests.Load()
	r, err = p.Respond(ctx, turn("llm2", "how can I track my order"))
	if err != nil || r.Kind != tandem.ReplyAnswer || r.Generated {
		t.Fatalf("open breaker: %+v %v", r, err)
	}
	if f.requests.Load() != before {
		t.Fatal("open breaker still called the server")
	}
	// With no extractive answer available, an open breaker escalates.
	r, _ = p.Respond(ctx, turn("llm3", "what are the shipping costs"))
	if r.Kind != tandem.ReplyAnswer {
		// shipping FAQ is a strong hit (0.9) so extractive answer is fine
		t.Fatalf("shipping: %+v", r)
	}
	pe := newTestPipeline(t, func(c *Config, d *Deps) { d.LLM = l; c.Policy.LLM.OnFailure = "escalate" })
	r, _ = pe.Respond(ctx, turn("llm4", "how can I track my order"))
	if r.Kind != tandem.ReplyEscalate || r.Escalation.Reason != tandem.EscalateBreakerOpen {
		t.Fatalf("escalate policy with open breaker: %+v", r)
	}

	// Recovery: after OpenFor the breaker lets one probe through.
	f.mode.Store("")
	for l.BreakerState() == "open" {
		time.Sleep(20 * time.Millisecond)
	}
	if l.BreakerState() != "half-open" {
		t.Fatalf("breaker = %s", l.BreakerState())
	}
	r, err = p.Respond(ctx, turn("llm5", "how can I track my order"))
	if err != nil || !r.Generated {
		t.Fatalf("half-open probe: %+v %v", r, err)
	}
	if l.BreakerState() != "closed" {
		t.Fatalf("breaker = %s after a successful probe", l.BreakerState())
	}
}

// TestStreamCutMidAnswer: the customer saw part of an answer, the stream
// died; the turn yields one coherent reply (the extractive answer) and the
// partial text is not repeated in it.
func TestStreamCutMidAnswer(t *testing.T) {
	f := newFakeOpenAI(t, groundedAnswer)
	f.mode.Store("cut")
	l := newLLM(t, f, nil)
	p := newTestPipeline(t, func(c *Config, d *Deps) { d.LLM = l })
	var d deltaRecorder
	r, err := p.RespondStream(context.Background(), turn("cut", "how can I track my order"), d.add)
	if err != nil {
		t.Fatal(err)
	}
	if d.String() == "" || !strings.HasPrefix(groundedAnswer, d.String()) || d.String() == groundedAnswer {
		t.Fatalf("expected a partial stream, got %q", d.String())
	}
	if r.Generated || r.Text != demoFAQs[0].Answer || strings.Contains(r.Text, d.String()) {
		t.Fatalf("reply after cut = %+v", r)
	}
	if strings.Count(r.Text, "Orders") != 1 {
		t.Fatalf("duplicated text: %q", r.Text)
	}
}

// TestLLMFallbackAnswerNotCached: the extractive answer given because the
// generator failed, or declined (NO_ANSWER: a sampled call), is not put in
// the hot cache, so the same question gets the generator again.
func TestLLMFallbackAnswerNotCached(t *testing.T) {
	for _, mode := range []string{"fail", "noanswer"} {
		t.Run(mode, func(t *testing.T) {
			f := newFakeOpenAI(t, groundedAnswer)
			l := newLLM(t, f, nil)
			p := newTestPipeline(t, func(c *Config, d *Deps) { d.LLM = l; d.Cache = newReplyCache(t) })
			ctx := context.Background()
			f.mode.Store(mode)
			r, err := p.Respond(ctx, turn("cache-llm-1", "how can I track my order"))
			if err != nil || r.Kind != tandem.ReplyAnswer || r.Generated {
				t.Fatalf("%s: want the extractive answer, got %+v %v", mode, r, err)
			}
			f.mode.Store("")
			r, err = p.Respond(ctx, turn("cache-llm-2", "how can I track my order"))
			if err != nil || r.Cached || !r.Generated || r.Text != groundedAnswer || f.requests.Load() != 2 {
				t.Fatalf("second time: want a generated answer, got %+v %v (%d requests)", r, err, f.requests.Load())
			}
		})
	}
}

// TestNonStreamWaitsForTheWholeAnswer: without streaming the whole answer
// comes with the response headers, so it may take longer than the first
// token and idle timeouts together; MaxDuration still bounds it.
func TestNonStreamWaitsForTheWholeAnswer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(400 * time.Millisecond): // a slow CPU model thinking
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
			"choices": []any{map[string]any{"index": 0, "finish_reason": "stop",
				"message": map[string]any{"role": "assistant", "content": groundedAnswer}}},
		})
	}))
	defer srv.Close()
	src := demoFAQs[:1]
	for _, tc := range []struct {
		maxDuration time.Duration
		ok          bool
	}{{10 * time.Second, true}, {100 * time.Millisecond, false}} {
		l, err := NewLLM(LLMConfig{BaseURL: srv.URL + "/v1", Model: "m", NoStream: true,
			FirstTokenTimeout: 100 * time.Millisecond, IdleTimeout: 50 * time.Millisecond, MaxDuration: tc.maxDuration})
		if err != nil {
			t.Fatal(err)
		}
		out, err := l.Generate(context.Background(), "where is my order", src, nil)
		if tc.ok && (err != nil || out != groundedAnswer) {
			t.Fatalf("max %s: out=%q err=%v", tc.maxDuration, out, err)
		}
		if !tc.ok && err == nil {
			t.Fatalf("max %s: an answer slower than MaxDuration was accepted", tc.maxDuration)
		}
	}
}

// weakRetriever returns one FAQ hit too weak to answer from (0.5 < 0.75)
// but strong enough to try the generator (>= 0.3).
type weakRetriever struct{}

func (weakRetriever) Retrieve(context.Context, string, string, int) ([]tandem.Hit, error) {
	return []tandem.Hit{{FAQ: demoFAQs[2], Score: 0.5}}, nil
}

// TestLLMFailureFallsBackToIntentResponse: with on_failure extractive, a
// failed or unavailable generator falls back to the confident intent's
// configured response (an answer the bot has without the LLM) instead of
// escalating with llm_unavailable; that answer is not cached.
func TestLLMFailureFallsBackToIntentResponse(t *testing.T) {
	f := newFakeOpenAI(t, groundedAnswer)
	f.mode.Store("fail")
	l := newLLM(t, f, func(c *LLMConfig) { c.OpenFor = time.Hour })
	cache := newReplyCache(t)
	p := newTestPipeline(t, func(c *Config, d *Deps) { d.LLM = l; d.Retriever = weakRetriever{}; d.Cache = cache })
	ctx := context.Background()
	for i := range 5 { // failures, then an open breaker
		r, err := p.Respond(ctx, turn(fmt.Sprint("resp-", i), "hello there"))
		if err != nil {
			t.Fatal(err)
		}
		if r.Kind != tandem.ReplyAnswer || r.Text != "Hello! How can I help?" || r.Cached {
			t.Fatalf("turn %d (breaker %s): want the greet response, got %+v", i, l.BreakerState(), r)
		}
	}
	if l.BreakerState() != "open" {
		t.Fatalf("breaker = %s", l.BreakerState())
	}
	// Without an FAQ or a response to fall back to, an in-scope question
	// still escalates; an out-of-scope one (the generator would have
	// declined it) gets the fallback, not a person.
	r, err := p.Respond(ctx, turn("resp-x", "something vague"))
	if err != nil || r.Kind != tandem.ReplyEscalate || r.Escalation.Reason != tandem.EscalateBreakerOpen {
		t.Fatalf("nothing to fall back to: %+v %v", r, err)
	}
	r, err = p.Respond(ctx, turn("resp-y", "something else entirely"))
	if err != nil || r.Kind != tandem.ReplyFallback {
		t.Fatalf("out of scope with the breaker open: %+v %v", r, err)
	}
}

// TestSentinelAfterAnyWhiteSpaceNotStreamed: a model that puts a tab or a
// CRLF before NO_ANSWER declines just the same, and the sentinel never
// reaches the customer's stream.
func TestSentinelAfterAnyWhiteSpaceNotStreamed(t *testing.T) {
	src := []tandem.FAQ{{ID: "f1", Question: "How do I track my order?", Answer: "Orders page."}}
	for _, answer := range []string{"\r\nNO_ANSWER", "\tNO_ANSWER", "\u00a0NO_ANSWER"} {
		f := newFakeOpenAI(t, answer)
		l := newLLM(t, f, nil)
		var d deltaRecorder
		if _, err := l.Generate(context.Background(), "q", src, d.add); err != ErrNoAnswer {
			t.Errorf("%q: err = %v, want ErrNoAnswer", answer, err)
		}
		if strings.Contains(d.String(), "NO_") {
			t.Errorf("%q: sentinel streamed: %q", answer, d.String())
		}
	}
}

// TestUnfinishedAnswersNotShown: a stream whose body ends without a
// finish_reason (a connection closed mid-answer looks the same to the
// client as [DONE]) and an answer stopped at max_tokens are not shown as
// answers: the turn gets the extractive answer. The first counts against
// the server (breaker), the second does not: the server is healthy.
func TestUnfinishedAnswersNotShown(t *testing.T) {
	src := []tandem.FAQ{{ID: "f1", Question: "How do I track my order?", Answer: "Orders page."}}
	for _, tc := range []struct {
		mode   string
		counts bool
	}{{"unfinished", true}, {"length", false}} {
		t.Run(tc.mode, func(t *testing.T) {
			f := newFakeOpenAI(t, groundedAnswer)
			f.mode.Store(tc.mode)
			for _, stream := range []bool{true, false} {
				if tc.mode == "unfinished" && !stream {
					continue // a JSON body is whole or fails to parse
				}
				l := newLLM(t, f, func(c *LLMConfig) { c.NoStream = !stream })
				for i := range 3 { // ConsecutiveFailures
					if out, err := l.Generate(context.Background(), "q", src, nil); err == nil {
						t.Fatalf("stream=%v call %d: answer %q shown", stream, i, out)
					}
				}
				if got := l.BreakerState() == "open"; got != tc.counts {
					t.Fatalf("stream=%v: breaker %s after 3 calls, want open=%v", stream, l.BreakerState(), tc.counts)
				}
			}
			l := newLLM(t, f, nil)
			p := newTestPipeline(t, func(c *Config, d *Deps) { d.LLM = l })
			var d deltaRecorder
			r, err := p.RespondStream(context.Background(), turn("unfinished-"+tc.mode, "how can I track my order"), d.add)
			if err != nil || r.Generated || r.Text != demoFAQs[0].Answer {
				t.Fatalf("reply %+v %v, want the extractive answer", r, err)
			}
			if d.String() != groundedAnswer {
				t.Fatalf("deltas %q", d.String()) // streamed, then replaced by the reply
			}
		})
	}
}

// TestSentinelVariants: NO_ANSWER in markdown or quotes, or after an
// apology, is the model declining, never an answer; the sentinel is never
// streamed (an apology before it may be).
func TestSentinelVariants(t *testing.T) {
	src := []tandem.FAQ{{ID: "f1", Question: "How do I track my order?", Answer: "Orders page."}}
	for _, tc := range []struct {
		answer     string
		noStreamed bool
	}{{"`NO_ANSWER`", true}, {"**NO_ANSWER**", true}, {`"NO_ANSWER"`, true}, {"Sorry, I cannot help with that. NO_ANSWER", false},
		{"No_Answer", true}, {"no_answer", true}, {"NO ANSWER", false}, {"Sorry. no_answer.", false}} {
		f := newFakeOpenAI(t, tc.answer)
		for _, noStream := range []bool{false, true} {
			l := newLLM(t, f, func(c *LLMConfig) { c.NoStream = noStream })
			var d deltaRecorder
			if out, err := l.Generate(context.Background(), "q", src, d.add); err != ErrNoAnswer {
				t.Errorf("%q (no stream %v): %q, %v; want ErrNoAnswer", tc.answer, noStream, out, err)
			}
			if streamed := strings.ToUpper(d.String()); tc.noStreamed && strings.Contains(streamed, "NO_") || strings.Contains(streamed, "NO_ANSWER") {
				t.Errorf("%q: sentinel streamed: %q", tc.answer, d.String())
			}
		}
	}
}

// "no answer" in lower case is English, not the sentinel: such an answer
// is an answer.
func TestNoAnswerInWordsIsAnAnswer(t *testing.T) {
	src := []tandem.FAQ{{ID: "f1", Question: "How do I track my order?", Answer: "Orders page."}}
	const answer = "Track it on the Orders page [1]; if there is no answer within two days, write to us."
	f := newFakeOpenAI(t, answer)
	l := newLLM(t, f, nil)
	if out, err := l.Generate(context.Background(), "q", src, nil); err != nil || out != answer {
		t.Fatalf("%q, %v", out, err)
	}
}

// TestOversizedAnswerRefused: a server that ignores max_tokens is cut off
// once the answer passes maxAnswerBytes; nothing of it becomes an answer.
func TestOversizedAnswerRefused(t *testing.T) {
	src := []tandem.FAQ{{ID: "f1", Question: "How do I track my order?", Answer: "Orders page."}}
	f := newFakeOpenAI(t, strings.Repeat("Tracking is on the Orders page [1]. ", maxAnswerBytes/30))
	for _, noStream := range []bool{false, true} {
		l := newLLM(t, f, func(c *LLMConfig) { c.NoStream = noStream })
		if out, err := l.Generate(context.Background(), "q", src, nil); err == nil || !strings.Contains(err.Error(), "longer than") {
			t.Errorf("no stream %v: %d bytes, %v", noStream, len(out), err)
		}
	}
}

// TestHalfOpenRefusalIsBreakerOpen: while the half-open probe is in
// flight, another call is refused without reaching the server, as by an
// open breaker (BreakerRefused; counted as breaker_open, not as an error).
func TestHalfOpenRefusalIsBreakerOpen(t *testing.T) {
	f := newFakeOpenAI(t, groundedAnswer)
	l := newLLM(t, f, func(c *LLMConfig) { c.FirstTokenTimeout = time.Second })
	src := []tandem.FAQ{{ID: "f1", Question: "How do I track my order?", Answer: "Orders page."}}
	ctx := context.Background()
	f.mode.Store("fail")
	for range 3 {
		_, _ = l.Generate(ctx, "q", src, nil)
	}
	if !l.Open() {
		t.Fatal("breaker not open")
	}
	time.Sleep(150 * time.Millisecond) // OpenFor
	f.mode.Store("slow")
	probe := make(chan error, 1)
	go func() { _, err := l.Generate(ctx, "q", src, nil); probe <- err }()
	for l.BreakerState() != "half-open" || f.requests.Load() < 4 {
		time.Sleep(5 * time.Millisecond)
	}
	n := f.requests.Load()
	_, err := l.Generate(ctx, "q", src, nil)
	if !BreakerRefused(err) || tandem.ErrorCode(err) != tandem.EUNAVAILABLE || f.requests.Load() != n {
		t.Fatalf("call during the probe: %v (requests %d -> %d)", err, n, f.requests.Load())
	}
	if err := <-probe; err == nil {
		t.Fatal("the slow probe succeeded")
	}
}

// "NO ANSWER" in capitals split across chunks ("NO " then "ANSWER") is
// held back like NO_ANSWER: nothing of it is streamed.
func TestSpacedSentinelAcrossChunksNotStreamed(t *testing.T) {
	if k := sentinelTail("Sorry. NO "); k != 3 {
		t.Fatalf("sentinelTail(%q) = %d, want 3", "Sorry. NO ", k)
	}
	src := []tandem.FAQ{{ID: "f1", Question: "How do I track my order?", Answer: "Orders page."}}
	f := newFakeOpenAI(t, "NO ANSWER") // the fake streams word by word: "NO ", "ANSWER"
	l := newLLM(t, f, nil)
	var d deltaRecorder
	if _, err := l.Generate(context.Background(), "q", src, d.add); err != ErrNoAnswer || d.String() != "" {
		t.Fatalf("%v, streamed %q", err, d.String())
	}
}
