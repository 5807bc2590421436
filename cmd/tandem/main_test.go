package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandem-chat/tandem/internal/testenv"
)

// testGetenv serves env; TANDEM_MODEL_DIR defaults to the trained models
// ($TANDEM_MODEL_DIR or models/default), which every server needs.
func testGetenv(env map[string]string) func(string) string {
	return func(k string) string {
		if v, ok := env[k]; ok {
			return v
		}
		if k == "TANDEM_STAGE_TIMEOUT" {
			// Tests check answers, not latency: a loaded CI machine must not
			// time a stage out.
			return "1m"
		}
		if k != "TANDEM_MODEL_DIR" {
			return ""
		}
		if v := os.Getenv("TANDEM_MODEL_DIR"); v != "" {
			return v
		}
		return filepath.Join("..", "..", "models", "default")
	}
}

// TestServeLifecycle boots the real server on :0, checks the operational
// endpoints, then shuts it down and sees it exit cleanly.
func TestServeLifecycle(t *testing.T) {
	lib := testenv.ONNXRuntimeLib(t)
	var stdout, stderr bytes.Buffer
	m := NewMain(&stdout, &stderr)
	err := m.ParseFlags([]string{"--addr", "127.0.0.1:0", "--log-level", "debug"},
		testGetenv(map[string]string{"ONNXRUNTIME_LIB": lib}))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	base := m.URL()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 200 || !strings.Contains(body, `"ok"`) {
		t.Fatalf("/healthz = %d %s", code, body)
	}
	if code, body := get("/readyz"); code != 200 || !strings.Contains(body, `"ready"`) {
		t.Fatalf("/readyz = %d %s", code, body)
	}
	code, body := get("/metrics")
	if code != 200 || !strings.Contains(body, "go_goroutines") || !strings.Contains(body, "tandem_http_request_duration_seconds") {
		t.Fatalf("/metrics = %d, missing expected series:\n%.500s", code, body)
	}
	if code, body := get("/no-such-thing"); code != 404 || !strings.Contains(body, `"not_found"`) {
		t.Fatalf("unknown path = %d %s", code, body)
	}
	if !strings.Contains(stdout.String(), base+"/healthz") {
		t.Fatalf("banner does not print the health URL:\n%s", stdout.String())
	}

	if err := m.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Fatal("server still answers after Close")
	}
	if !strings.Contains(stderr.String(), "shutdown complete") {
		t.Fatalf("no clean shutdown log:\n%s", stderr.String())
	}
}

// TestServeSignalShutdown runs the serve command as main does and cancels its
// context (what SIGTERM does through signal.NotifyContext).
func TestServeSignalShutdown(t *testing.T) {
	lib := testenv.ONNXRuntimeLib(t)
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--addr", "127.0.0.1:0"}, testGetenv(map[string]string{"ONNXRUNTIME_LIB": lib}), &stdout, &stderr)
	}()
	// Wait for the banner, then "send SIGTERM".
	for !strings.Contains(stdout.String(), "/healthz") {
		select {
		case err := <-done:
			t.Fatalf("serve exited early: %v\n%s", err, stderr.String())
		default:
		}
		waitABit()
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve returned %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "shutdown complete") {
		t.Fatalf("no clean shutdown:\n%s", stderr.String())
	}
}

// TestBadConfigRejected shows bad values fail fast naming the setting and
// the accepted values.
func TestBadConfigRejected(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want []string
	}{
		{"log level flag", []string{"--log-level", "verbose"}, nil, []string{"LOG_LEVEL", "verbose", "debug, info, warn, error"}},
		{"log format env", nil, map[string]string{"LOG_FORMAT": "xml"}, []string{"LOG_FORMAT", "text, json"}},
		{"addr", []string{"--addr", "nonsense"}, nil, []string{"TANDEM_ADDR", "host:port"}},
		{"database url", nil, map[string]string{"DATABASE_URL": "mysql://x"}, []string{"DATABASE_URL", "postgres"}},
		{"shutdown env", nil, map[string]string{"TANDEM_SHUTDOWN_TIMEOUT": "soon"}, []string{"TANDEM_SHUTDOWN_TIMEOUT", "duration"}},
		{"max active turns env", nil, map[string]string{"TANDEM_MAX_ACTIVE_TURNS": "many"}, []string{"TANDEM_MAX_ACTIVE_TURNS", "integer"}},
		{"max active turns flag", []string{"--max-active-turns", "-5"}, nil, []string{"TANDEM_MAX_ACTIVE_TURNS", "-5", "no bound"}},
		{"llm max concurrent env", nil, map[string]string{"LLM_MAX_CONCURRENT": "lots"}, []string{"LLM_MAX_CONCURRENT", "between 1 and 4096"}},
		{"llm max concurrent flag", []string{"--llm-max-concurrent", "0"}, nil, []string{"LLM_MAX_CONCURRENT", "0", "between 1 and 4096"}},
		{"demo env", nil, map[string]string{"TANDEM_DEMO": "maybe"}, []string{"TANDEM_DEMO", "true, false"}},
		{"retention env", nil, map[string]string{"TANDEM_RETENTION": "90d"}, []string{"TANDEM_RETENTION", "duration"}},
		{"retention too short", []string{"--retention", "10m"}, nil, []string{"TANDEM_RETENTION", "10m0s", "at least 1h"}},
		{"retention negative", nil, map[string]string{"TANDEM_RETENTION": "-2160h"}, []string{"TANDEM_RETENTION", "at least 1h"}},
		{"public url", nil, map[string]string{"TANDEM_PUBLIC_URL": "notaurl"}, []string{"TANDEM_PUBLIC_URL", "scheme http or https"}},
		{"embeddings model without url", nil, map[string]string{"EMBEDDINGS_MODEL": "x"}, []string{"EMBEDDINGS_MODEL", "only with EMBEDDINGS_BASE_URL"}},
		{"demo site clash", nil, map[string]string{"TANDEM_SITES": "demo=s@https://a.example"}, []string{"TANDEM_SITES", `no site named "demo"`}},
		{"retention unparsable", nil, map[string]string{"TANDEM_RETENTION": "xyz"}, []string{"TANDEM_RETENTION (--retention)", "2160h"}},
		{"unknown flag", []string{"--no-such-flag"}, nil, []string{"no-such-flag"}},
		{"stage timeout under 1ms", []string{"--stage-timeout", "1us"}, nil, []string{"TANDEM_STAGE_TIMEOUT", "between 1ms and 5m"}},
		{"shutdown timeout under 1ms", nil, map[string]string{"TANDEM_SHUTDOWN_TIMEOUT": "1ns"}, []string{"TANDEM_SHUTDOWN_TIMEOUT", "between 1ms and 10m"}},
		{"database url without host or database", nil, map[string]string{"DATABASE_URL": "postgres://"}, []string{"DATABASE_URL", "Unix socket"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			err := run(context.Background(), append([]string{"serve"}, tt.args...), testGetenv(tt.env), &out, &errb)
			if err == nil {
				t.Fatal("bad configuration accepted")
			}
			msg := err.Error() + errb.String()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
		})
	}
}

// TestDatabaseURLUnixSocket: libpq's Unix-socket URL forms are accepted
// (they were refused as "not a URL with a scheme and host").
func TestDatabaseURLUnixSocket(t *testing.T) {
	for _, u := range []string{"postgresql:///tandem", "postgresql:///tandem?host=/var/run/postgresql&user=app"} {
		c := DefaultConfig()
		c.DatabaseURL = u
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
}

// TestSecretsStayOutOfOutput: the flag package prints every flag's default
// on -h and after any mistyped flag, and defaults came from the
// environment, so a typo in a service file put every secret into its
// logs; configuration errors echoed a libpq connection string with its
// password; and the banner printed an operator's own admin token.
func TestSecretsStayOutOfOutput(t *testing.T) {
	env := testGetenv(map[string]string{
		"TANDEM_ADMIN_TOKEN": "admin-secret-0123456789", "TANDEM_JWT_SECRET": "jwt-secret-0123456789-0123456789-xx",
		"LLM_API_KEY": "sk-live-secret", "EMBEDDINGS_API_KEY": "emb-secret", "TANDEM_SITES": "shop=site-secret@*",
		"DATABASE_URL": "postgres://app:db-secret@db.example/tandem",
		"LLM_BASE_URL": "https://llm.example/v1?key=llm-query-secret", "EMBEDDINGS_BASE_URL": "https://emb.example/v1?api-key=emb-query-secret",
	})
	secrets := []string{"admin-secret", "jwt-secret-0123", "sk-live-secret", "emb-secret", "site-secret", "db-secret", "llm-query-secret", "emb-query-secret"}
	for _, args := range [][]string{{"serve", "--bogus"}, {"serve", "-h"}, {"agent", "list", "-h"}, {"ask", "-h"}} {
		var stdout, stderr bytes.Buffer
		_ = run(context.Background(), args, env, &stdout, &stderr)
		for _, s := range secrets {
			if strings.Contains(stdout.String()+stderr.String(), s) {
				t.Errorf("%v prints %q:\n%s", args, s, stderr.String())
			}
		}
	}
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"serve"}, testGetenv(map[string]string{"DATABASE_URL": "host=db user=app password=Sup3rS3cret dbname=tandem"}), &stdout, &stderr)
	if err == nil || strings.Contains(err.Error(), "Sup3rS3cret") || !strings.Contains(err.Error(), "DATABASE_URL") {
		t.Fatalf("libpq string: %v", err)
	}
	// A password in a URL's query (libpq and nats.go read one there).
	for env, v := range map[string]string{"DATABASE_URL": "postgress://db.example/tandem?user=app&password=QueryS3cret", "NATS_URL": "nat://n.example?password=QueryS3cret",
		"LLM_BASE_URL": "ftp://llm.example/v1?key=QueryS3cret"} {
		err := run(context.Background(), []string{"serve"}, testGetenv(map[string]string{env: v}), &stdout, &stderr)
		if err == nil || strings.Contains(err.Error()+stderr.String(), "QueryS3cret") || !strings.Contains(err.Error(), env) {
			t.Fatalf("%s with a secret in its query: %v", env, err)
		}
	}
	m := NewMain(&stdout, &stderr)
	m.Config.AdminToken = "operators-own-token-123"
	m.printBanner()
	if strings.Contains(stdout.String(), "operators-own-token-123") {
		t.Fatalf("banner prints the operator's admin token:\n%s", stdout.String())
	}
}

// TestFlagOverridesBadEnv: flags win over the environment, also over a
// value there that does not parse; and the handoff durations are checked
// with the other settings, before anything is loaded.
func TestFlagOverridesBadEnv(t *testing.T) {
	var stdout, stderr bytes.Buffer
	m := NewMain(&stdout, &stderr)
	if err := m.ParseFlags([]string{"--shutdown-timeout=15s"}, testGetenv(map[string]string{"TANDEM_SHUTDOWN_TIMEOUT": "15"})); err != nil {
		t.Fatalf("a valid flag over a bad env value: %v", err)
	}
	m = NewMain(&stdout, &stderr)
	if err := m.ParseFlags([]string{"--offer-timeout=-1s"}, testGetenv(nil)); err == nil || !strings.Contains(err.Error(), "TANDEM_OFFER_TIMEOUT") {
		t.Fatalf("negative offer timeout: %v", err)
	}
	for _, flag := range []string{"--disconnect-grace=1ns", "--offer-timeout=10ms", "--agent-token-ttl=3s", "--sites=;;"} {
		m = NewMain(&stdout, &stderr)
		if err := m.ParseFlags([]string{flag}, testGetenv(nil)); err == nil {
			t.Errorf("%s accepted", flag)
		}
	}
}
