package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/tandem-chat/tandem/gateway"
)

// TestRealIPOnlyFromTrustedProxies: forwarding headers move the client
// address only when the peer is a configured proxy, so a client cannot
// spoof its way around per-IP limits.
func TestRealIPOnlyFromTrustedProxies(t *testing.T) {
	cases := []struct {
		name    string
		trusted []string
		peer    string
		xff     []string
		want    string
	}{
		{"no proxies configured", nil, "203.0.113.9:5000", []string{"1.2.3.4"}, "203.0.113.9:5000"},
		{"untrusted peer", []string{"10.0.0.0/8"}, "203.0.113.9:5000", []string{"1.2.3.4"}, "203.0.113.9:5000"},
		{"trusted peer", []string{"10.0.0.0/8"}, "10.1.2.3:5000", []string{"198.51.100.7"}, "198.51.100.7:0"},
		{"spoofed leftmost entry ignored", []string{"10.0.0.0/8"}, "10.1.2.3:5000", []string{"1.1.1.1, 198.51.100.7"}, "198.51.100.7:0"},
		{"chain of proxies", []string{"10.0.0.0/8"}, "10.1.2.3:5000", []string{"198.51.100.7", "10.9.9.9"}, "198.51.100.7:0"},
		{"garbage header", []string{"10.0.0.0/8"}, "10.1.2.3:5000", []string{"<script>"}, "10.1.2.3:5000"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var cfg gateway.Config
			for _, p := range c.trusted {
				cfg.TrustedProxies = append(cfg.TrustedProxies, netip.MustParsePrefix(p))
			}
			s := gateway.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
			var got string
			s.Router().Get("/ip", func(w http.ResponseWriter, r *http.Request) { got = r.RemoteAddr })
			req := httptest.NewRequest("GET", "/ip", nil)
			req.RemoteAddr = c.peer
			for _, v := range c.xff {
				req.Header.Add("X-Forwarded-For", v)
			}
			s.Router().ServeHTTP(httptest.NewRecorder(), req)
			if got != c.want {
				t.Fatalf("RemoteAddr = %q, want %q", got, c.want)
			}
		})
	}
}

// TestProbeMethods: HEAD works wherever GET does (health checks), and
// /metrics answers GET only.
func TestProbeMethods(t *testing.T) {
	s := gateway.New(gateway.Config{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/healthz", 200}, {"HEAD", "/healthz", 200}, {"HEAD", "/metrics", 200},
		{"GET", "/metrics", 200}, {"POST", "/metrics", 405}, {"DELETE", "/metrics", 405},
	} {
		rec := httptest.NewRecorder()
		s.Router().ServeHTTP(rec, httptest.NewRequest(c.method, c.path, nil))
		if rec.Code != c.want {
			t.Errorf("%s %s = %d, want %d", c.method, c.path, rec.Code, c.want)
		}
	}
}

// TestPathParamsDecoded: a path parameter is the same whatever way the
// client escaped it — "f%61q_1" is "faq_1", "%ff" is the byte 0xff as
// "%FF" is — and an escaped '/' is refused (400). (chi matched the escaped
// form whenever a character needed no escaping, and the parameter kept its
// escapes: an existing FAQ answered 404.)
func TestPathParamsDecoded(t *testing.T) {
	s := gateway.New(gateway.Config{}, slog.New(slog.DiscardHandler))
	s.Router().Get("/things/{id}", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "id="+chi.URLParam(r, "id"))
	})
	hs := httptest.NewServer(s.Router())
	defer hs.Close()
	for _, c := range []struct {
		path, want string
		status     int
	}{
		{"/things/faq_1", "id=faq_1", 200},
		{"/things/f%61q_1", "id=faq_1", 200},
		{"/things/faq%5f1", "id=faq_1", 200},
		{"/things/a%FFb", "id=a\xffb", 200},
		{"/things/a%ffb", "id=a\xffb", 200},
		{"/things/a%2fb", `"code":"invalid"`, 400},
		{"/things/r%C3%A9sum%C3%A9%2F", `"code":"invalid"`, 400},
	} {
		resp, err := http.Get(hs.URL + c.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status || !strings.Contains(string(body), c.want) {
			t.Errorf("GET %s = %d %q, want %d %q", c.path, resp.StatusCode, body, c.status, c.want)
		}
	}
}

// TestReadyDegraded: a failing check that only degrades the node (NATS:
// cross-node delivery) leaves /readyz at 200, naming it, so a load
// balancer keeps every node in during the outage; any other failing check
// answers 503.
func TestReadyDegraded(t *testing.T) {
	s := gateway.New(gateway.Config{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	down := func(context.Context) error {
		return errors.New("failed to connect to `user=postgres database=shop`: 10.0.0.5:5432 (db.internal): dial error")
	}
	s.AddReadyCheck(gateway.ReadyCheck{Name: "nats", Check: down, Degrades: true})
	rec := httptest.NewRecorder()
	s.Router().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"degraded"`) || !strings.Contains(rec.Body.String(), "nats") {
		t.Fatalf("degraded: %d %s", rec.Code, rec.Body)
	}
	s.AddReadyCheck(gateway.ReadyCheck{Name: "database", Check: down})
	rec = httptest.NewRecorder()
	s.Router().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != 503 || !strings.Contains(rec.Body.String(), "database") {
		t.Fatalf("failed: %d %s", rec.Code, rec.Body)
	}
	// The public answer names the checks, not their causes.
	for _, secret := range []string{"postgres", "shop", "10.0.0.5", "db.internal"} {
		if strings.Contains(rec.Body.String(), secret) {
			t.Fatalf("/readyz shows %q: %s", secret, rec.Body)
		}
	}
}

// TestShutdownClosersAfterTheDeadline: a closer that runs after the
// shutdown deadline has passed (an earlier one used it up) still gets a
// live context of its own: the handoff's event dispatcher gave up at once
// with the spent one and its queued events were lost.
func TestShutdownClosersAfterTheDeadline(t *testing.T) {
	s := gateway.New(gateway.Config{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	flushed := false
	s.OnShutdown(func(ctx context.Context) error { // runs last
		if err := ctx.Err(); err != nil {
			return err
		}
		flushed = true
		return nil
	})
	s.OnShutdown(func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }) // uses the whole deadline
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	err := s.Shutdown(ctx)
	if !flushed {
		t.Fatalf("the last closer got a spent context: %v", err)
	}
}

// TestUnreachableStoreIs503: an error that comes from a service that
// cannot be reached (a database that is down: a dial error under the
// store's wrapping) is answered 503 unavailable, which clients retry; it
// was 500 internal. Other unknown errors stay 500.
func TestUnreachableStoreIs503(t *testing.T) {
	dial := fmt.Errorf("log: conversation: %w", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")})
	for err, want := range map[error]int{dial: 503, errors.New("bug"): 500} {
		rec := httptest.NewRecorder()
		gateway.WriteError(rec, httptest.NewRequest("POST", "/v1/widget/session", nil), slog.New(slog.NewTextHandler(io.Discard, nil)), err)
		if rec.Code != want || strings.Contains(rec.Body.String(), "refused") {
			t.Errorf("%v: %d %s, want %d without the cause", err, rec.Code, rec.Body, want)
		}
	}
}
