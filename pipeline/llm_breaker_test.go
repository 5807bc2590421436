package pipeline

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestBreakerAbandonedProbeIsNoProofOfHealth: a half-open probe whose
// caller went away says nothing about the server: the breaker must not
// close on it (it opens again), while the server still hangs.
func TestBreakerAbandonedProbeIsNoProofOfHealth(t *testing.T) {
	f := newFakeOpenAI(t, "Shipping is free over 50 EUR [1].")
	l, err := NewLLM(LLMConfig{BaseURL: f.URL + "/v1", Model: "m", ConsecutiveFailures: 2, OpenFor: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	f.mode.Store("fail")
	for range 2 {
		if _, err := l.Generate(ctx, "q", demoFAQs, nil); err == nil {
			t.Fatal("a failing server answered")
		}
	}
	if s := l.BreakerState(); s != "open" {
		t.Fatalf("state after failures = %s", s)
	}
	for l.BreakerState() != "half-open" {
		time.Sleep(10 * time.Millisecond)
	}
	f.mode.Store("slow") // still broken: hangs
	cctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(100*time.Millisecond, cancel) // the customer leaves
	if _, err := l.Generate(cctx, "q", demoFAQs, nil); err == nil {
		t.Fatal("a hanging server answered")
	}
	if s := l.BreakerState(); s == "closed" {
		t.Fatal("an abandoned half-open probe closed the breaker")
	}
}

// TestBreakerTripsOnServerSlowerThanTheTurn: a server that stalls mid-answer
// longer than the turn may wait must count as failing (the call ends
// before the turn's deadline), so the breaker opens instead of every turn
// waiting for it.
func TestBreakerTripsOnServerSlowerThanTheTurn(t *testing.T) {
	f := newFakeOpenAI(t, "alpha beta gamma delta")
	f.mode.Store("stall") // first chunk, then silence
	l, err := NewLLM(LLMConfig{BaseURL: f.URL + "/v1", Model: "m", ConsecutiveFailures: 2, IdleTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := l.Generate(cctx, "q", demoFAQs, nil)
		cancel()
		if err == nil {
			t.Fatalf("call %d: a stalled stream answered", i)
		}
	}
	if s := l.BreakerState(); s != "open" {
		t.Fatalf("after two stalled calls the breaker is %s, want open", s)
	}
}

// TestBreakerIgnoresRefusedRequests: a 400 for one request (a prompt over
// the model's context) is that request's problem, not the server's.
func TestBreakerIgnoresRefusedRequests(t *testing.T) {
	f := newFakeOpenAI(t, "x")
	f.mode.Store("toolong")
	l, err := NewLLM(LLMConfig{BaseURL: f.URL + "/v1", Model: "m", ConsecutiveFailures: 2})
	if err != nil {
		t.Fatal(err)
	}
	for range 4 {
		if _, err := l.Generate(context.Background(), "q", demoFAQs, nil); err == nil {
			t.Fatal("refused request answered")
		}
	}
	if s := l.BreakerState(); s != "closed" {
		t.Fatalf("breaker %s after refused requests; want closed", s)
	}
}

// TestFirstTokenDeadlineSurvivesRoleChunk: the role-only chunk servers
// send first does not shorten the first-token deadline to the idle one;
// and a stream that goes quiet is reported as such.
func TestFirstTokenDeadlineSurvivesRoleChunk(t *testing.T) {
	f := newFakeOpenAI(t, "Hello [1]")
	f.mode.Store("rolefirst")
	f.firstTokenDelay = 500 * time.Millisecond // well past IdleTimeout, well within FirstTokenTimeout
	l, err := NewLLM(LLMConfig{BaseURL: f.URL + "/v1", Model: "m", FirstTokenTimeout: 30 * time.Second, IdleTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	got, err := l.Generate(context.Background(), "q", demoFAQs, nil)
	if err != nil || got != "Hello [1]" {
		t.Fatalf("got %q, %v", got, err)
	}
	// A first token that never comes is a first-token timeout.
	f.mode.Store("rolefirst-stall")
	l2, err := NewLLM(LLMConfig{BaseURL: f.URL + "/v1", Model: "m", FirstTokenTimeout: 100 * time.Millisecond, IdleTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l2.Generate(context.Background(), "q", demoFAQs, nil); !errors.Is(err, errFirstToken) {
		t.Fatalf("stalled first token: %v", err)
	}
	// A stream that stops after text is an idle timeout, named so.
	f.mode.Store("stall")
	l3, err := NewLLM(LLMConfig{BaseURL: f.URL + "/v1", Model: "m", FirstTokenTimeout: time.Minute, IdleTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l3.Generate(context.Background(), "q", demoFAQs, nil); !errors.Is(err, errIdle) || strings.Contains(err.Error(), "first token") {
		t.Fatalf("stalled stream: %v", err)
	}
}
