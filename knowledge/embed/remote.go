package embed

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"strings"
	"time"

	openai "github.com/sashabaranov/go-openai"
	"github.com/sony/gobreaker"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/internal/baseurl"
	"github.com/tandem-chat/tandem/knowledge"
)

// RemoteConfig configures an OpenAI-compatible embeddings client. Zero
// values take the documented defaults; BaseURL, Model and Dim are required.
type RemoteConfig struct {
	BaseURL string // e.g. https://api.openai.com/v1
	APIKey  string
	Model   string // e.g. text-embedding-3-small
	// Dim is the vector size the store indexes. Every response is checked
	// against it; with SendDimensions the request asks the API for it.
	Dim            int
	SendDimensions bool
	// BatchSize is the number of texts per request (default 64).
	BatchSize int
	// Timeout bounds each request (default 10s), through the request's
	// context rather than http.Client.Timeout.
	Timeout time.Duration
	// HeaderTimeout bounds waiting for response headers (default 10s).
	HeaderTimeout time.Duration
	// Breaker settings: the breaker opens after FailureThreshold
	// consecutive failures (default 5), stays open OpenTimeout (default
	// 30s), then lets HalfOpenRequests (default 1) through; counts clear
	// every Interval while closed (default 60s).
	FailureThreshold uint32
	OpenTimeout      time.Duration
	HalfOpenRequests uint32
	Interval         time.Duration
	// HTTPClient overrides the client (tests); its transport should have a
	// header timeout.
	HTTPClient *http.Client
}

// Remote embeds texts with an OpenAI-compatible /embeddings endpoint.
type Remote struct {
	cfg    RemoteConfig
	client *openai.Client
	cb     *gobreaker.CircuitBreaker
}

var _ knowledge.Embedder = (*Remote)(nil)

// NewRemote checks cfg and returns a client.
func NewRemote(cfg RemoteConfig) (*Remote, error) {
	if cfg.BaseURL == "" || cfg.Model == "" {
		return nil, errors.New("embed: remote embeddings need a base URL and a model")
	}
	if cfg.Dim <= 0 {
		return nil, errors.New("embed: remote embeddings need the configured dimension (Dim)")
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 64
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.HeaderTimeout <= 0 {
		cfg.HeaderTimeout = 10 * time.Second
	}
	if cfg.FailureThreshold == 0 {
		cfg.FailureThreshold = 5
	}
	if cfg.OpenTimeout <= 0 {
		cfg.OpenTimeout = 30 * time.Second
	}
	if cfg.HalfOpenRequests == 0 {
		cfg.HalfOpenRequests = 1
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 60 * time.Second
	}
	oc := openai.DefaultConfig(cfg.APIKey)
	// A query on the base URL (?api-version=, a gateway key) goes on every
	// request, not before the endpoint's path.
	base, query, err := baseurl.Split(cfg.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("embed: base URL: %w", err)
	}
	oc.BaseURL = base
	if cfg.HTTPClient != nil {
		hc := *cfg.HTTPClient
		hc.Transport = baseurl.Transport(hc.Transport, query)
		oc.HTTPClient = &hc
	} else {
		oc.HTTPClient = &http.Client{Transport: baseurl.Transport(&http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			ResponseHeaderTimeout: cfg.HeaderTimeout,
			MaxIdleConnsPerHost:   8,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   5 * time.Second,
		}, query)}
	}
	threshold := cfg.FailureThreshold
	cb := gobreaker.NewCircuitBreaker(gobreaker.Settings{
		Name:        "embeddings:" + cfg.Model,
		MaxRequests: cfg.HalfOpenRequests,
		Interval:    cfg.Interval,
		Timeout:     cfg.OpenTimeout,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= threshold },
		// A caller that gave up or a client-side fault (bad input, bad
		// dimension) says nothing about the service's health.
		IsSuccessful: func(err error) bool {
			return err == nil || errors.Is(err, errCallerGone) || errors.Is(err, errClientSide)
		},
	})
	return &Remote{cfg: cfg, client: openai.NewClientWithConfig(oc), cb: cb}, nil
}

var (
	errClientSide = errors.New("client-side error")
	errCallerGone = errors.New("embeddings: caller went away")
)

// Dim implements knowledge.Embedder.
func (r *Remote) Dim() int { return r.cfg.Dim }

// Version implements knowledge.Embedder: "openai:<model>". The dimension is
// deliberately not part of it, so a changed dimension for the same model
// is reported as a mismatch with the stored vectors instead of silently
// starting a new index.
func (r *Remote) Version() string { return "openai:" + r.cfg.Model }

// State returns the circuit breaker state ("closed", "half-open", "open").
func (r *Remote) State() string { return r.cb.State().String() }

// Embed implements knowledge.Embedder: batches of BatchSize texts, each
// request bounded by Timeout and guarded by the circuit breaker. An open
// breaker is EUNAVAILABLE; a vector of the wrong size is an error naming
// both sizes.
func (r *Remote) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, 0, len(texts))
	for i := 0; i < len(texts); i += r.cfg.BatchSize {
		j := min(i+r.cfg.BatchSize, len(texts))
		v, err := r.cb.Execute(func() (any, error) {
			v, err := r.request(ctx, texts[i:j])
			if err != nil && ctx.Err() != nil {
				// The caller gave up (its own deadline or cancellation),
				// which says nothing about the service: a slow but healthy
				// server must not open the breaker because turns run out
				// of their stage budget. The service's own timeout
				// (RemoteConfig.Timeout) still counts as a failure.
				return nil, fmt.Errorf("%w: %w", errCallerGone, err)
			}
			return v, err
		})
		if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
			return nil, tandem.WrapError(tandem.EUNAVAILABLE, err, "the embeddings service is unavailable (circuit open)")
		}
		if err != nil {
			return nil, err
		}
		out = append(out, v.([][]float32)...)
	}
	return out, nil
}

func (r *Remote) request(ctx context.Context, texts []string) ([][]float32, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	req := openai.EmbeddingRequestStrings{Input: make([]string, len(texts)), Model: openai.EmbeddingModel(r.cfg.Model), EncodingFormat: openai.EmbeddingEncodingFormatFloat}
	for i, t := range texts {
		t = strings.ReplaceAll(t, "\n", " ")
		if strings.TrimSpace(t) == "" {
			t = " "
		}
		req.Input[i] = t
	}
	if r.cfg.SendDimensions {
		req.Dimensions = r.cfg.Dim
	}
	resp, err := r.client.CreateEmbeddings(ctx, req)
	if err != nil {
		var apiErr *openai.APIError
		if errors.As(err, &apiErr) && apiErr.HTTPStatusCode >= 400 && apiErr.HTTPStatusCode < 500 && apiErr.HTTPStatusCode != 429 && apiErr.HTTPStatusCode != 408 {
			return nil, fmt.Errorf("embed: %s rejected the request (%d): %s: %w", r.cfg.Model, apiErr.HTTPStatusCode, apiErr.Message, errClientSide)
		}
		return nil, fmt.Errorf("embed: %s: %w", r.cfg.Model, err)
	}
	if len(resp.Data) != len(texts) {
		return nil, fmt.Errorf("embed: %s returned %d embeddings for %d inputs", r.cfg.Model, len(resp.Data), len(texts))
	}
	out := make([][]float32, len(texts))
	for _, d := range resp.Data {
		if d.Index < 0 || d.Index >= len(texts) || out[d.Index] != nil {
			return nil, fmt.Errorf("embed: %s returned a bad or repeated index %d", r.cfg.Model, d.Index)
		}
		if len(d.Embedding) != r.cfg.Dim {
			return nil, tandem.WrapError(tandem.EINVALID, errClientSide,
				"embeddings model %s returns %d-dimensional vectors but %d are configured; fix the configured dimension (and reindex under a new model name if it really changed)",
				r.cfg.Model, len(d.Embedding), r.cfg.Dim)
		}
		v := append([]float32(nil), d.Embedding...)
		for _, x := range v {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return nil, fmt.Errorf("embed: %s returned a non-finite value", r.cfg.Model)
			}
		}
		normalize(v)
		out[d.Index] = v
	}
	return out, nil
}
