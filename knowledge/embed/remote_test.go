package embed_test

import (
	"context"
	"encoding/json"
	"errors"
	"hash/fnv"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/knowledge"
	"github.com/tandem-chat/tandem/knowledge/embed"
	"github.com/tandem-chat/tandem/knowledge/memstore"
)

// fakeOpenAI speaks the /v1/embeddings protocol: JSON request with input
// (array of strings), model, encoding_format; response object "list" with
// data[{object, index, embedding}], model and usage. It returns data in
// reverse order to check that the client orders by index.
type fakeOpenAI struct {
	dim      int
	requests atomic.Int32
	mu       sync.Mutex
	fail     int           // answer 500 to this many requests
	status   int           // status of failures (default 500)
	delay    time.Duration // before answering
	batches  []int
}

func (f *fakeOpenAI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.requests.Add(1)
	if r.Method != http.MethodPost || r.URL.Path != "/v1/embeddings" {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	if r.Header.Get("Authorization") != "Bearer sk-test" {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}`))
		return
	}
	var req struct {
		Input          []string `json:"input"`
		Model          string   `json:"model"`
		EncodingFormat string   `json:"encoding_format"`
		Dimensions     int      `json:"dimensions"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Model == "" || len(req.Input) == 0 {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":{"message":"bad request","type":"invalid_request_error"}}`))
		return
	}
	f.mu.Lock()
	f.batches = append(f.batches, len(req.Input))
	fail, delay, status := f.fail > 0, f.delay, f.status
	if fail {
		f.fail--
	}
	f.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	if fail {
		if status == 0 {
			status = http.StatusInternalServerError
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"error":{"message":"The server had an error","type":"server_error"}}`))
		return
	}
	type datum struct {
		Object    string    `json:"object"`
		Index     int       `json:"index"`
		Embedding []float32 `json:"embedding"`
	}
	resp := struct {
		Object string  `json:"object"`
		Data   []datum `json:"data"`
		Model  string  `json:"model"`
		Usage  struct {
			PromptTokens int `json:"prompt_tokens"`
			TotalTokens  int `json:"total_tokens"`
		} `json:"usage"`
	}{Object: "list", Model: req.Model}
	for i := len(req.Input) - 1; i >= 0; i-- {
		resp.Data = append(resp.Data, datum{Object: "embedding", Index: i, Embedding: fakeVector(req.Input[i], f.dim)})
		resp.Usage.PromptTokens += len(strings.Fields(req.Input[i]))
	}
	resp.Usage.TotalTokens = resp.Usage.PromptTokens
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

// fakeVector is a deterministic bag of hashed words.
func fakeVector(text string, dim int) []float32 {
	v := make([]float32, dim)
	for _, w := range strings.Fields(strings.ToLower(text)) {
		h := fnv.New32a()
		h.Write([]byte(w))
		v[h.Sum32()%uint32(dim)] += 1
	}
	v[0] += 0.01
	return v
}

func newRemote(t *testing.T, f *fakeOpenAI, cfg embed.RemoteConfig) *embed.Remote {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	cfg.BaseURL = srv.URL + "/v1"
	if cfg.APIKey == "" {
		cfg.APIKey = "sk-test"
	}
	cfg.Model = "text-embedding-3-small"
	r, err := embed.NewRemote(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRemoteBatchesAndOrders(t *testing.T) {
	f := &fakeOpenAI{dim: 8}
	r := newRemote(t, f, embed.RemoteConfig{Dim: 8, BatchSize: 2})
	texts := []string{"where is my order", "refund please", "reset password", "ship to canada", "cancel order"}
	vecs, err := r.Embed(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}
	if len(vecs) != 5 || f.requests.Load() != 3 {
		t.Fatalf("%d vectors in %d requests, want 5 in 3", len(vecs), f.requests.Load())
	}
	for i, v := range vecs {
		want := fakeVector(texts[i], 8)
		var dot, n1, n2 float64
		for k := range v {
			dot += float64(v[k] * want[k])
			n1 += float64(v[k] * v[k])
			n2 += float64(want[k] * want[k])
		}
		if n1 < 0.999 || n1 > 1.001 || dot*dot < 0.999*n1*n2 {
			t.Fatalf("vector %d is not the unit-length embedding of %q", i, texts[i])
		}
	}
	if r.Version() != "openai:text-embedding-3-small" || r.Dim() != 8 {
		t.Fatalf("version %q dim %d", r.Version(), r.Dim())
	}
}

func TestRemoteDimensionMismatch(t *testing.T) {
	f := &fakeOpenAI{dim: 12}
	r := newRemote(t, f, embed.RemoteConfig{Dim: 8})
	_, err := r.Embed(context.Background(), []string{"hello"})
	if err == nil || !strings.Contains(err.Error(), "12-dimensional") || !strings.Contains(err.Error(), "8 are configured") {
		t.Fatalf("err = %v, want a clear dimension mismatch", err)
	}
	if r.State() != "closed" {
		t.Fatalf("a dimension mismatch tripped the breaker")
	}
}

func TestRemoteStoreDimensionMismatch(t *testing.T) {
	ctx := context.Background()
	store := memstore.New()
	if err := store.RegisterModel(ctx, "openai:text-embedding-3-small", 1536); err != nil {
		t.Fatal(err)
	}
	r := newRemote(t, &fakeOpenAI{dim: 8}, embed.RemoteConfig{Dim: 8})
	svc, err := knowledge.NewService(knowledge.Config{Store: store, Embedder: r})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	err = svc.Start(ctx)
	if err == nil || !strings.Contains(err.Error(), "8 dimensions") || !strings.Contains(err.Error(), "1536-dimensional") {
		t.Fatalf("start = %v, want a clear mismatch with the stored vectors", err)
	}
}

func TestRemoteTimeout(t *testing.T) {
	// The server would answer after a minute: only the request's own
	// timeout can end the call, and the error must say so.
	f := &fakeOpenAI{dim: 8, delay: time.Minute}
	r := newRemote(t, f, embed.RemoteConfig{Dim: 8, Timeout: 100 * time.Millisecond})
	_, err := r.Embed(context.Background(), []string{"slow"})
	if err == nil {
		t.Fatal("slow request succeeded")
	}
	if !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "deadline") && !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("request was not cut by its timeout: %v", err)
	}
}

func TestRemoteCircuitBreaker(t *testing.T) {
	f := &fakeOpenAI{dim: 8, fail: 3}
	r := newRemote(t, f, embed.RemoteConfig{Dim: 8, FailureThreshold: 3, OpenTimeout: 200 * time.Millisecond})
	ctx := context.Background()
	for i := range 3 {
		if _, err := r.Embed(ctx, []string{"x"}); err == nil {
			t.Fatalf("request %d succeeded against a failing server", i)
		}
	}
	if r.State() != "open" {
		t.Fatalf("breaker %s after 3 failures, want open", r.State())
	}
	before := f.requests.Load()
	_, err := r.Embed(ctx, []string{"x"})
	if tandem.ErrorCode(err) != tandem.EUNAVAILABLE {
		t.Fatalf("open breaker err = %v, want unavailable", err)
	}
	if f.requests.Load() != before {
		t.Fatal("an open breaker still called the server")
	}
	time.Sleep(250 * time.Millisecond)
	if _, err := r.Embed(ctx, []string{"x"}); err != nil {
		t.Fatalf("half-open probe failed: %v", err)
	}
	if r.State() != "closed" {
		t.Fatalf("breaker %s after a good probe, want closed", r.State())
	}
}

func TestRemoteClientErrorsDoNotTrip(t *testing.T) {
	f := &fakeOpenAI{dim: 8}
	r := newRemote(t, f, embed.RemoteConfig{Dim: 8, FailureThreshold: 2, APIKey: "sk-wrong"})
	for range 4 {
		_, err := r.Embed(context.Background(), []string{"x"})
		if err == nil || !strings.Contains(err.Error(), "401") {
			t.Fatalf("err = %v, want the 401 reported", err)
		}
	}
	if r.State() != "closed" {
		t.Fatalf("client errors tripped the breaker")
	}
}

// TestRemoteCallerDeadlinesDoNotTrip: callers running out of their own
// time against a slow but healthy server do not open the breaker, while the
// service's own timeout still does.
func TestRemoteCallerDeadlinesDoNotTrip(t *testing.T) {
	f := &fakeOpenAI{dim: 8, delay: 100 * time.Millisecond}
	r := newRemote(t, f, embed.RemoteConfig{Dim: 8, FailureThreshold: 2})
	for i := range 4 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
		_, err := r.Embed(ctx, []string{"x"})
		cancel()
		if err == nil {
			t.Fatalf("call %d beat its 5ms deadline against a 100ms server", i)
		}
	}
	if r.State() != "closed" {
		t.Fatalf("breaker %s after callers' own deadlines, want closed", r.State())
	}
	if _, err := r.Embed(context.Background(), []string{"x"}); err != nil {
		t.Fatalf("a patient caller failed: %v", err)
	}
	// The service's own timeout is a failure of the service.
	slow := newRemote(t, &fakeOpenAI{dim: 8, delay: time.Minute}, embed.RemoteConfig{Dim: 8, FailureThreshold: 2, Timeout: 20 * time.Millisecond})
	for range 2 {
		if _, err := slow.Embed(context.Background(), []string{"x"}); err == nil {
			t.Fatal("a request past the service timeout succeeded")
		}
	}
	if slow.State() != "open" {
		t.Fatalf("breaker %s after two service timeouts, want open", slow.State())
	}
}

// TestRemoteBaseURLWithQuery: a base URL with a query (Azure-style
// ?api-version=) reaches /v1/embeddings with the query kept (go-openai put
// "/embeddings" after the query).
func TestRemoteBaseURLWithQuery(t *testing.T) {
	var path, query string
	f := &fakeOpenAI{dim: 8}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path, query = r.URL.Path, r.URL.RawQuery
		f.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	r, err := embed.NewRemote(embed.RemoteConfig{BaseURL: srv.URL + "/v1?api-version=2024-06-01", APIKey: "sk-test", Model: "m", Dim: 8})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Embed(context.Background(), []string{"where is my order"}); err != nil {
		t.Fatal(err)
	}
	if path != "/v1/embeddings" || query != "api-version=2024-06-01" {
		t.Fatalf("request went to %s?%s", path, query)
	}
}
