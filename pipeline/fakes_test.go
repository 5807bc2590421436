package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/tandem-chat/tandem/knowledge"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-chat/tandem"
)

// keywordModel is a deterministic intent model for policy tests: the first
// rule whose keyword occurs in the text wins with its confidence.
type keywordModel struct {
	rules []kwRule
	calls atomic.Int64
	sizes sync.Map // batch size -> count
}

type kwRule struct {
	kw, intent string
	conf       float64
	second     string
	secondConf float64
}

func (m *keywordModel) ClassifyBatch(ctx context.Context, texts []string) ([]tandem.NLU, error) {
	m.calls.Add(1)
	v, _ := m.sizes.LoadOrStore(len(texts), new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
	out := make([]tandem.NLU, len(texts))
	for i, t := range texts {
		lt := strings.ToLower(t)
		out[i] = tandem.NLU{Intent: tandem.IntentScore{Name: tandem.OutOfScope, Confidence: 0.9}, OutOfScope: true}
		for _, r := range m.rules {
			if strings.Contains(lt, r.kw) {
				n := tandem.NLU{Intent: tandem.IntentScore{Name: r.intent, Confidence: r.conf}}
				n.Ranking = []tandem.IntentScore{n.Intent}
				if r.second != "" {
					n.Ranking = append(n.Ranking, tandem.IntentScore{Name: r.second, Confidence: r.secondConf})
				}
				out[i] = n
				break
			}
		}
	}
	return out, nil
}

// regexRules extracts order ids like ORD-123 as a rule entity.
type regexRules struct{}

var orderRe = regexp.MustCompile(`ORD-\d+`)

func (regexRules) Extract(text string, _ time.Time) []tandem.Entity {
	var out []tandem.Entity
	for _, loc := range orderRe.FindAllStringIndex(text, -1) {
		start := len([]rune(text[:loc[0]]))
		v := text[loc[0]:loc[1]]
		out = append(out, tandem.Entity{Type: "order_id", Text: v, Value: v, Start: start, End: start + len([]rune(v)), Source: "rule"})
	}
	return out
}

// staticRetriever returns FAQs whose question shares a keyword with the query.
type staticRetriever struct{ faqs []tandem.FAQ }

func (s staticRetriever) Retrieve(_ context.Context, q, _ string, k int) ([]tandem.Hit, error) {
	var out []tandem.Hit
	lq := strings.ToLower(q)
	for _, f := range s.faqs {
		for _, w := range strings.Fields(strings.ToLower(f.Question)) {
			if len(w) > 4 && strings.Contains(lq, w) {
				out = append(out, tandem.Hit{FAQ: f, Score: 0.9, Retrievers: map[string]float64{"test": 0.9}})
				break
			}
		}
		if len(out) == k {
			break
		}
	}
	return out, nil
}

// newReplyCache returns the real hot answer cache (knowledge.Cache).
func newReplyCache(t testing.TB) *knowledge.Cache[tandem.Reply] {
	t.Helper()
	c, err := knowledge.NewCache(knowledge.CacheConfig{}, func(r tandem.Reply) int64 { return int64(64 + len(r.Text)) }, nil, "answer")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// fakeOpenAI is a protocol-faithful OpenAI-compatible chat completions
// server. Its behaviour is chosen per request by the model name:
// "ok", "noanswer", "fail" (500), "slow" (headers late), "stall" (first
// chunk then silence), "malformed" (bad JSON chunk), "cut" (connection
// dropped mid-stream), "unfinished" (the body ends cleanly after the text,
// without a finish_reason or [DONE]), "length" (finish_reason "length":
// max_tokens reached), "jsonstream" (a plain JSON completion also when
// asked to stream). mode, when set, overrides the model name. A stream
// ends as OpenAI's does: a chunk with an empty delta and the
// finish_reason, then "data: [DONE]".
type fakeOpenAI struct {
	*httptest.Server
	mode     atomic.Value // string
	requests atomic.Int64
	answer   string
	release  chan struct{} // closed at cleanup to free slow handlers
	// firstTokenDelay is the wait after the role chunk in "rolefirst" mode.
	firstTokenDelay time.Duration
}

func newFakeOpenAI(t *testing.T, answer string) *fakeOpenAI {
	f := &fakeOpenAI{answer: answer, release: make(chan struct{})}
	f.mode.Store("")
	f.Server = httptest.NewServer(http.HandlerFunc(f.handle))
	t.Cleanup(func() { close(f.release); f.Server.Close() })
	return f
}

func (f *fakeOpenAI) handle(w http.ResponseWriter, r *http.Request) {
	f.requests.Add(1)
	if r.URL.Path != "/v1/chat/completions" || r.Method != http.MethodPost {
		http.Error(w, `{"error":{"message":"not found","type":"invalid_request_error"}}`, http.StatusNotFound)
		return
	}
	var req struct {
		Model    string `json:"model"`
		Stream   bool   `json:"stream"`
		Messages []struct {
			Role, Content string
		} `json:"messages"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Messages) == 0 {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error":{"message":"bad request","type":"invalid_request_error"}}`)
		return
	}
	mode := f.mode.Load().(string)
	if mode == "" {
		mode = req.Model
	}
	answer := f.answer
	if mode == "noanswer" {
		answer = noAnswer
	}
	switch mode {
	case "fail":
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprint(w, `{"error":{"message":"upstream exploded","type":"server_error"}}`)
		return
	case "slow":
		select {
		case <-r.Context().Done():
		case <-f.release:
		}
		return
	case "toolong": // what OpenAI and vLLM answer for a prompt beyond the context
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error":{"message":"This model's maximum context length is 4096 tokens","type":"invalid_request_error","code":"context_length_exceeded"}}`)
		return
	}
	finish := "stop"
	if mode == "length" {
		finish = "length"
	}
	if !req.Stream || mode == "jsonstream" { // "jsonstream": a server that ignores "stream": true
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": req.Model,
			"choices": []any{map[string]any{"index": 0, "finish_reason": finish,
				"message": map[string]any{"role": "assistant", "content": answer}}},
		})
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	fl := w.(http.Flusher)
	chunk := func(content string) {
		b, _ := json.Marshal(map[string]any{
			"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": req.Model,
			"choices": []any{map[string]any{"index": 0, "delta": map[string]any{"content": content}}},
		})
		fmt.Fprintf(w, "data: %s\n\n", b)
		fl.Flush()
	}
	if strings.HasPrefix(mode, "rolefirst") {
		// vLLM and OpenAI open with a role-only chunk; the first token can
		// follow much later (prompt prefill). "rolefirst-stall": never.
		b, _ := json.Marshal(map[string]any{
			"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": req.Model,
			"choices": []any{map[string]any{"index": 0, "delta": map[string]any{"role": "assistant", "content": ""}}},
		})
		fmt.Fprintf(w, "data: %s\n\n", b)
		fl.Flush()
		wait := f.firstTokenDelay
		if mode == "rolefirst-stall" {
			wait = time.Hour
		}
		select {
		case <-time.After(wait):
		case <-r.Context().Done():
			return
		case <-f.release:
			return
		}
	}
	words := strings.SplitAfter(answer, " ")
	for i, wd := range words {
		if mode == "cut" && i == len(words)/2 {
			hj, ok := w.(http.Hijacker)
			if ok {
				conn, _, _ := hj.Hijack()
				conn.Close()
			}
			return
		}
		if mode == "malformed" && i == 1 {
			fmt.Fprint(w, "data: {not json\n\n")
			fl.Flush()
			return
		}
		if mode == "stall" && i == 1 {
			select {
			case <-r.Context().Done():
			case <-f.release:
			}
			return
		}
		chunk(wd)
	}
	if mode == "unfinished" {
		return // a clean end of the body, mid-answer as far as anyone knows
	}
	b, _ := json.Marshal(map[string]any{
		"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": req.Model,
		"choices": []any{map[string]any{"index": 0, "delta": map[string]any{}, "finish_reason": finish}},
	})
	fmt.Fprintf(w, "data: %s\n\n", b)
	fmt.Fprint(w, "data: [DONE]\n\n")
	fl.Flush()
}
