// Package gateway is Tandem's HTTP and WebSocket front door: a chi router with
// health, readiness and Prometheus metrics endpoints, the REST APIs (admin,
// agents, conversations), the WebSocket hubs for the customer widget and the
// agent console, auth, rate limits, and the embedded web assets.
//
// Contract: New builds a Server from a Config and its dependencies (given as
// interfaces); Serve runs it on a listener until Shutdown. Shutdown is safe to
// call once from any goroutine; it stops accepting, drains in-flight requests
// and sockets within the context's deadline, then runs the registered
// closers in reverse order. Handlers may be mounted only before Serve.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tandem-chat/tandem"
)

// Config is the gateway's configuration. Zero values are replaced by the
// documented defaults in Defaults.
type Config struct {
	// ReadHeaderTimeout bounds reading request headers (default 10s).
	ReadHeaderTimeout time.Duration
	// MaxBodyBytes bounds request bodies for handlers that do not set their
	// own limit (default 1 MiB).
	MaxBodyBytes int64
	// TrustedProxies are the reverse proxies (load balancers) in front of
	// the server. Only a request whose peer address is in one of them has
	// its client address taken from X-Forwarded-For (the rightmost entry
	// that is not itself a trusted proxy); everyone else's forwarding
	// headers are ignored, so a client cannot dodge per-IP limits by
	// sending one. Empty: forwarding headers are never trusted.
	TrustedProxies []netip.Prefix
}

// Defaults returns c with zero values replaced by defaults.
func (c Config) Defaults() Config {
	if c.ReadHeaderTimeout == 0 {
		c.ReadHeaderTimeout = 10 * time.Second
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 1 << 20
	}
	return c
}

// ReadyCheck reports whether a dependency is ready; a non-nil error makes
// /readyz answer 503 with the check's name, or, for a check that only
// Degrades the node, 200 with the check's name under "degraded" (the node
// still serves: taking every node out of a load balancer for it would be
// worse).
type ReadyCheck struct {
	Name     string
	Check    func(ctx context.Context) error
	Degrades bool
}

// Server is the gateway HTTP server.
type Server struct {
	cfg      Config
	logger   *slog.Logger
	router   chi.Router
	registry *prometheus.Registry
	httpSrv  *http.Server

	mu       sync.Mutex // guards checks, closers, draining
	checks   []ReadyCheck
	closers  []func(context.Context) error
	draining bool

	reqDuration *prometheus.HistogramVec
}

// New returns a Server with /healthz, /readyz and /metrics mounted.
func New(cfg Config, logger *slog.Logger) *Server {
	cfg = cfg.Defaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s := &Server{cfg: cfg, logger: logger, registry: reg}
	s.reqDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "tandem_http_request_duration_seconds",
		Help:    "HTTP request latency by route pattern and status class.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	}, []string{"route", "code"})
	reg.MustRegister(s.reqDuration)

	r := chi.NewRouter()
	// GetHead: a HEAD request is served by the GET route (load balancers
	// and uptime checks use HEAD /healthz).
	r.Use(middleware.RequestID, s.realIP, s.recoverer, canonicalPath, s.instrument, middleware.GetHead)
	r.Get("/healthz", func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	r.Get("/readyz", s.handleReady)
	r.Method(http.MethodGet, "/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		var b ErrorBody
		b.Error.Code, b.Error.Message = "not_found", "no such endpoint"
		WriteJSON(w, http.StatusNotFound, b)
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		SetAllow(w, req, r)
		var b ErrorBody
		b.Error.Code, b.Error.Message = "invalid", "method not allowed"
		WriteJSON(w, http.StatusMethodNotAllowed, b)
	})
	s.router = r
	s.httpSrv = &http.Server{
		Handler:           r,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	return s
}

// Router returns the chi router, to mount handlers before Serve.
func (s *Server) Router() chi.Router { return s.router }

// Registry returns the server's Prometheus registry (served at /metrics).
func (s *Server) Registry() *prometheus.Registry { return s.registry }

// AddReadyCheck registers a readiness check.
func (s *Server) AddReadyCheck(c ReadyCheck) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks = append(s.checks, c)
}

// OnShutdown registers a closer run during Shutdown after HTTP has drained,
// in reverse registration order (last registered, first closed).
func (s *Server) OnShutdown(f func(context.Context) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closers = append(s.closers, f)
}

// Serve serves on ln until Shutdown; it returns nil after a clean shutdown.
func (s *Server) Serve(ln net.Listener) error {
	err := s.httpSrv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// closerGrace is what each shutdown closer gets once the shutdown
// deadline has passed.
const closerGrace = 2 * time.Second

// Shutdown marks the server not ready, stops accepting connections, waits
// for in-flight requests within ctx, then runs the closers (in reverse
// order; each one that starts after ctx's deadline gets closerGrace).
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining = true
	closers := append([]func(context.Context) error(nil), s.closers...)
	s.mu.Unlock()
	var errs []error
	if err := s.httpSrv.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("gateway: http shutdown: %w", err))
	}
	for i := len(closers) - 1; i >= 0; i-- {
		// A closer after the deadline (the chat's used it up, cutting
		// turns short) still gets a moment of its own: the handoff's
		// event dispatcher flushes, the pools close cleanly. With the
		// spent context it gave up at once and queued events were lost.
		cctx, cancel := ctx, context.CancelFunc(func() {})
		if ctx.Err() != nil {
			cctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), closerGrace)
		}
		err := closers[i](cctx)
		cancel()
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	checks := append([]ReadyCheck(nil), s.checks...)
	draining := s.draining
	s.mu.Unlock()
	if draining {
		WriteJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "draining"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	failed, degraded := map[string]string{}, map[string]string{}
	for _, c := range checks {
		if err := c.Check(ctx); err != nil {
			// The endpoint is public (load balancers call it without
			// credentials): the cause — a database error names the user,
			// database, host and port — goes to the log, not the answer.
			s.logger.WarnContext(r.Context(), "readiness check failed", "check", c.Name, "degrades_only", c.Degrades, "err", err)
			if c.Degrades {
				degraded[c.Name] = "unavailable"
			} else {
				failed[c.Name] = "unavailable"
			}
		}
	}
	if len(failed) > 0 {
		WriteJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not ready", "failed": failed})
		return
	}
	if len(degraded) > 0 {
		WriteJSON(w, http.StatusOK, map[string]any{"status": "degraded", "degraded": degraded})
		return
	}
	WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.logger.ErrorContext(r.Context(), "panic in handler", "path", r.URL.Path, "panic", v)
				WriteError(w, r, nil, fmt.Errorf("panic: %v", v))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func (s *Server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r)
		route := chi.RouteContext(r.Context()).RoutePattern()
		if route == "" {
			route = "unmatched"
		}
		status := ww.Status()
		if status == 0 {
			status = http.StatusOK // hijacked (WebSocket) or nothing written
		}
		s.reqDuration.WithLabelValues(route, fmt.Sprintf("%dxx", status/100)).Observe(time.Since(start).Seconds())
	})
}

// canonicalPath routes a request on its decoded path. chi matches the
// escaped form (URL.RawPath) whenever the client escaped a character that
// needs no escaping ("f%61q_1" for "faq_1", or "%ff" in lower case), and
// the path's parameters then kept their escapes: one id answered 200, 404
// or 400 by its spelling. An escaped '/' (%2F) is refused with 400: no
// Tandem id contains '/', and routed either way it would name something
// else (a parameter "a%2Fb" kept its escapes and found an FAQ whose id
// really is "a%2Fb").
func canonicalPath(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if raw := r.URL.RawPath; raw != "" {
			if strings.Contains(strings.ToLower(raw), "%2f") {
				WriteError(w, r, nil, tandem.Errorf(tandem.EINVALID, "the path contains an escaped '/' (%%2F); no id contains '/'"))
				return
			}
			u := *r.URL
			u.RawPath = ""
			r = r.WithContext(r.Context()) // a shallow copy: the caller's URL stays as it was
			r.URL = &u
		}
		next.ServeHTTP(w, r)
	})
}

// realIP sets r.RemoteAddr to the client's address as reported by a
// trusted proxy (see Config.TrustedProxies); other requests keep their
// peer address.
func (s *Server) realIP(next http.Handler) http.Handler {
	if len(s.cfg.TrustedProxies) == 0 {
		return next
	}
	trusted := func(a netip.Addr) bool {
		a = a.Unmap()
		for _, p := range s.cfg.TrustedProxies {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peer, err := netip.ParseAddrPort(r.RemoteAddr)
		if err != nil || !trusted(peer.Addr()) {
			next.ServeHTTP(w, r)
			return
		}
		var hops []string
		for _, h := range r.Header.Values("X-Forwarded-For") {
			hops = append(hops, strings.Split(h, ",")...)
		}
		for i := len(hops) - 1; i >= 0; i-- {
			a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
			if err != nil {
				break // malformed: stop at the last address we could trust
			}
			if !trusted(a) {
				r2 := r.Clone(r.Context())
				r2.RemoteAddr = netip.AddrPortFrom(a.Unmap(), 0).String()
				next.ServeHTTP(w, r2)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
