package pipeline

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tandem-chat/tandem"
)

// TestLLMBusyFallsBackWithoutCallingTheServer: with every generator call
// taken (MaxConcurrent) a turn waits QueueTimeout, then answers
// extractively without calling the server, counted as busy and not as a
// breaker failure; before waiting on the generator the turn gave its
// caller's slot back (tandem.ReleaseSlot).
func TestLLMBusyFallsBackWithoutCallingTheServer(t *testing.T) {
	f := newFakeOpenAI(t, groundedAnswer)
	l := newLLM(t, f, func(c *LLMConfig) {
		c.MaxConcurrent = 1
		c.QueueTimeout = 50 * time.Millisecond
		c.ConsecutiveFailures = 1
	})
	p := newTestPipeline(t, func(c *Config, d *Deps) { d.LLM = l })
	f.mode.Store("slow")
	slowCtx, cancelSlow := context.WithCancel(context.Background())
	first := make(chan tandem.Reply, 1)
	go func() {
		r, _ := p.Respond(slowCtx, turn("busy-1", "how can I track my order"))
		first <- r
	}()
	for f.requests.Load() < 1 {
		time.Sleep(2 * time.Millisecond)
	}

	var released atomic.Int64
	ctx := tandem.WithSlotRelease(context.Background(), func() { released.Add(1) })
	r, err := p.Respond(ctx, turn("busy-2", "how can I track my order"))
	if err != nil || r.Kind != tandem.ReplyAnswer || r.Generated || r.Text != demoFAQs[0].Answer {
		t.Fatalf("with the generator busy: want the extractive answer, got %+v %v", r, err)
	}
	if n := f.requests.Load(); n != 1 {
		t.Fatalf("the server was called %d times, want only the first turn's call", n)
	}
	if got := testutil.ToFloat64(p.m.llm.WithLabelValues("busy")); got != 1 {
		t.Fatalf("busy count = %v, want 1", got)
	}
	if released.Load() == 0 {
		t.Fatal("the turn did not give its slot back before waiting on the generator")
	}
	if l.Open() {
		t.Fatal("a busy generator opened the breaker (one failure trips it here)")
	}

	cancelSlow()
	<-first
	f.mode.Store("")
	r, err = p.Respond(context.Background(), turn("busy-3", "how can I track my order"))
	if err != nil || !r.Generated || r.Text != groundedAnswer {
		t.Fatalf("after the slow call ended: want a generated answer, got %+v %v", r, err)
	}
}

// TestLLMBusyNeverEscalates: a turn with nothing to fall back to (no FAQ
// strong enough, no configured response) that finds the generator busy
// answers as without a generator; it escalated with llm_unavailable, so a
// traffic peak sent every unanswerable question to the agents.
func TestLLMBusyNeverEscalates(t *testing.T) {
	f := newFakeOpenAI(t, groundedAnswer)
	l := newLLM(t, f, func(c *LLMConfig) {
		c.MaxConcurrent = 1
		c.QueueTimeout = 20 * time.Millisecond
	})
	p := newTestPipeline(t, func(c *Config, d *Deps) { d.LLM = l; d.Retriever = weakRetriever{} })
	f.mode.Store("slow")
	slowCtx, cancelSlow := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = p.Respond(slowCtx, turn("busy-a", "something else entirely"))
	}()
	for f.requests.Load() < 1 {
		time.Sleep(2 * time.Millisecond)
	}
	r, err := p.Respond(context.Background(), turn("busy-b", "something else entirely"))
	cancelSlow()
	<-done
	if err != nil || r.Kind == tandem.ReplyEscalate {
		t.Fatalf("with the generator busy: %+v %v, want no escalation", r, err)
	}
	if got := testutil.ToFloat64(p.m.llm.WithLabelValues("busy")); got != 1 {
		t.Fatalf("busy count = %v, want 1", got)
	}
}

// TestServerIgnoringStreamFlag: a server that answers a streaming request
// with one plain JSON completion (it ignores "stream": true) still gives
// answers: the first call asks again without streaming, later calls do not
// stream at all (one request each).
func TestServerIgnoringStreamFlag(t *testing.T) {
	f := newFakeOpenAI(t, groundedAnswer)
	l := newLLM(t, f, nil)
	f.mode.Store("jsonstream")
	src := []tandem.FAQ{{ID: "f1", Question: "How do I track my order?", Answer: "Orders page."}}
	var d deltaRecorder
	text, err := l.Generate(context.Background(), "track my order", src, d.add)
	if err != nil || text != groundedAnswer || d.String() != groundedAnswer {
		t.Fatalf("first call: %q %v (deltas %q)", text, err, d.String())
	}
	n := f.requests.Load()
	if _, err := l.Generate(context.Background(), "track my order", src, nil); err != nil || f.requests.Load() != n+1 {
		t.Fatalf("second call: %v, %d requests (want one more than %d)", err, f.requests.Load(), n)
	}
}

// TestServerIgnoringStreamFlagSlowAnswer: once a server is known not to
// stream, its whole answers may take longer than the first-token timeout
// (only MaxDuration bounds them, as with NoStream); they failed with a
// header timeout.
func TestServerIgnoringStreamFlagSlowAnswer(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) > 1 {
			time.Sleep(700 * time.Millisecond) // longer than FirstTokenTimeout
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":%q}}]}`, groundedAnswer)
	}))
	t.Cleanup(srv.Close)
	l, err := NewLLM(LLMConfig{BaseURL: srv.URL + "/v1", Model: "m", FirstTokenTimeout: 300 * time.Millisecond, MaxDuration: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	src := []tandem.FAQ{{ID: "f1", Question: "How do I track my order?", Answer: "Orders page."}}
	for i := range 2 {
		if text, err := l.Generate(context.Background(), "track my order", src, nil); err != nil || text != groundedAnswer {
			t.Fatalf("call %d: %q %v", i, text, err)
		}
	}
}

// TestPlainModeIsNotForever: after a server answered a streaming request
// whole, requests go unstreamed for a while, then streaming is tried
// again (it was off for the life of the process: every later turn waited
// for whole answers).
func TestPlainModeIsNotForever(t *testing.T) {
	f := newFakeOpenAI(t, groundedAnswer)
	l := newLLM(t, f, nil)
	src := []tandem.FAQ{{ID: "f1", Question: "How do I track my order?", Answer: "Orders page."}}
	f.mode.Store("jsonstream")
	if text, err := l.Generate(context.Background(), "track my order", src, nil); err != nil || text != groundedAnswer {
		t.Fatalf("whole answer: %q %v", text, err)
	}
	f.mode.Store("")
	var d deltaRecorder
	if _, err := l.Generate(context.Background(), "track my order", src, d.add); err != nil || d.n != 1 {
		t.Fatalf("right after: %v, %d deltas, want one whole answer", err, d.n)
	}
	l.now = func() time.Time { return time.Now().Add(plainFor + time.Minute) }
	var d2 deltaRecorder
	if text, err := l.Generate(context.Background(), "track my order", src, d2.add); err != nil || text != groundedAnswer || d2.n < 2 {
		t.Fatalf("later: %q %v, %d deltas, want a stream", text, err, d2.n)
	}
}
