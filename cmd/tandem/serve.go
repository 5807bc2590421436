package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tandem-chat/tandem/gateway"
	"github.com/tandem-chat/tandem/models"
)

// Main is the server process as an object, so tests can boot the real server
// on ":0": NewMain, ParseFlags, Run (returns once listening), Close.
type Main struct {
	Config Config
	Logger *slog.Logger
	Stdout io.Writer
	Stderr io.Writer

	ln     net.Listener
	server *gateway.Server
	chat   *gateway.Chat // customer chat (wireGateway)
	// adminGenerated: the admin token was generated for this run (printed
	// in the banner); an operator's own token is never printed.
	adminGenerated bool
	// lossTarget is the chat the NATS bus asks to resync after losing
	// events (set once the chat exists; the bus is created before it).
	lossTarget atomic.Pointer[gateway.Chat]
	bus        gateway.Bus // cross-node bus: conversation events, "kb.invalidate"
	runtime    *models.Runtime
	nodeID     string   // this process's id on the bus
	kbBus      struct { // the bus for knowledge invalidations, once wired
		sync.Mutex
		bus gateway.Bus
	}
	banner    []string // extra "name: value" lines for the start-up banner; "{url}" becomes the base URL
	bot       *bot     // the pipeline and what it owns (wireBot)
	serveErr  chan error
	closeOnce sync.Once
	closeErr  error
}

// NewMain returns a Main with the default configuration.
func NewMain(stdout, stderr io.Writer) *Main {
	return &Main{Config: DefaultConfig(), Stdout: stdout, Stderr: stderr}
}

// ParseFlags fills Config from the environment and args and validates it.
func (m *Main) ParseFlags(args []string, getenv func(string) string) error {
	fs := flag.NewFlagSet("tandem serve", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	envErr := m.Config.bindFlags(fs, getenv)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return flag.ErrHelp
		}
		return fmt.Errorf("serve: %w", err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("serve: unexpected argument %q", fs.Arg(0))
	}
	if err := errors.Join(envErr.err(fs), m.Config.Validate()); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	m.Config.resolvePaths()
	return nil
}

// Run wires the components, starts listening and returns; the server keeps
// serving in the background until Close.
func (m *Main) Run(ctx context.Context) (err error) {
	cfg := m.Config
	m.Logger = newLogger(m.Stderr, cfg.LogLevel, cfg.LogFormat)
	if cfg.AdminToken == "" {
		m.Config.AdminToken = randomToken(24)
		m.adminGenerated = true
	}
	if cfg.JWTSecret == "" {
		m.Config.JWTSecret = randomToken(32)
	}

	// Listen first: a taken port is found before anything is loaded or
	// written to a database (the demo agent's one-time password, say).
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("serve: listen on %s: %w", cfg.Addr, err)
	}
	defer func() {
		if m.ln == nil { // wiring failed: nothing serves on it
			_ = ln.Close()
		}
	}()

	m.nodeID = randomToken(8)
	started := time.Now()
	rt, err := models.OpenRuntime(cfg.ONNXRuntimeLib)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	m.runtime = rt

	proxies, _ := parseProxies(cfg.TrustedProxies) // validated by ParseFlags
	m.server = gateway.New(gateway.Config{TrustedProxies: proxies}, m.Logger)
	m.server.AddReadyCheck(gateway.ReadyCheck{Name: "onnxruntime", Check: func(context.Context) error {
		if rt.Version() == "" {
			return errors.New("ONNX Runtime not loaded")
		}
		return nil
	}})

	bot, err := m.wireBot(ctx) // cmd/tandem/bot.go: NLU, knowledge, pipeline
	if err != nil {
		return err
	}
	ho, err := m.wireHandoff(ctx) // cmd/tandem/handoff_wiring.go: handoff engine and store
	if err != nil {
		return err
	}
	if err := m.wireGateway(ctx, bot, ho.adapter); err != nil {
		return err
	}
	if err := m.wireConsole(ctx, ho); err != nil { // needs the chat: agent console, agents API, routing
		return err
	}
	if err := m.wireKnowledgeAPI(ctx); err != nil { // needs the chat's auth and bus
		return err
	}
	// Registered last, so it runs first (closers run in reverse order):
	// customer sockets close and in-flight bot turns finish (their
	// escalations included) while the handoff engine, the console, the bus
	// and the stores are still up.
	m.server.OnShutdown(m.chat.Shutdown)
	if keep := cfg.Retention; keep > 0 {
		m.startRetention(keep)
	}

	m.ln = ln
	m.serveErr = make(chan error, 1)
	go func() { m.serveErr <- m.server.Serve(ln) }()

	m.Logger.Info("tandem started", "addr", ln.Addr().String(), "onnxruntime", rt.Version(),
		"stores", storesName(cfg), "startup", time.Since(started).Round(time.Millisecond))
	m.printBanner()
	return nil
}

// startRetention runs the retention sweeps (gateway.Chat.RunRetention)
// until shutdown, which stops them first (a sweep in progress ends at its
// next store call), before the chat's sockets and the stores close.
func (m *Main) startRetention(keep time.Duration) {
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.chat.RunRetention(ctx, keep, gateway.RetentionInterval(keep))
	}()
	m.server.OnShutdown(func(context.Context) error { stop(); <-done; return nil })
	m.Logger.Info("retention on: idle conversations are erased", "idle_longer_than", keep, "every", gateway.RetentionInterval(keep))
}

// Addr returns the address the server listens on (after Run).
func (m *Main) Addr() string {
	if m.ln == nil {
		return ""
	}
	return m.ln.Addr().String()
}

// URL returns the base URL of the running server.
func (m *Main) URL() string {
	if m.Config.PublicURL != "" {
		return strings.TrimRight(m.Config.PublicURL, "/")
	}
	addr := m.Addr()
	host, port, _ := net.SplitHostPort(addr)
	if host == "" || host == "::" || host == "0.0.0.0" {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// Close shuts down in order within the configured deadline: stop accepting
// and drain HTTP and sockets, run the gateway's closers (pipelines, stores),
// then release the ONNX Runtime. It is safe to call more than once.
func (m *Main) Close() error {
	m.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), m.Config.ShutdownTimeout)
		defer cancel()
		var errs []error
		if m.server != nil {
			errs = append(errs, m.server.Shutdown(ctx))
			if m.serveErr != nil {
				if err := <-m.serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
					errs = append(errs, err)
				}
			}
		}
		if m.runtime != nil {
			errs = append(errs, m.runtime.Close())
		}
		m.closeErr = errors.Join(errs...)
		if m.Logger != nil {
			switch {
			case m.closeErr != nil:
				m.Logger.Error("shutdown finished with errors", "err", m.closeErr)
			case m.serveErr != nil: // after a failed start there was nothing to shut down
				m.Logger.Info("shutdown complete")
			}
		}
	})
	return m.closeErr
}

func (m *Main) printBanner() {
	u := m.URL()
	fmt.Fprintf(m.Stdout, "\nTandem is running.\n")
	fmt.Fprintf(m.Stdout, "  health:        %s/healthz\n", u)
	fmt.Fprintf(m.Stdout, "  metrics:       %s/metrics\n", u)
	if m.Config.Demo {
		fmt.Fprintf(m.Stdout, "  widget demo:   %s/\n", u)
	}
	for _, line := range m.banner {
		fmt.Fprintf(m.Stdout, "  %s\n", strings.ReplaceAll(line, "{url}", u))
	}
	if m.adminGenerated {
		fmt.Fprintf(m.Stdout, "  admin token:   %s (generated for this run; set TANDEM_ADMIN_TOKEN to keep one)\n\n", m.Config.AdminToken)
	} else {
		fmt.Fprintf(m.Stdout, "  admin token:   (from TANDEM_ADMIN_TOKEN / --admin-token, not shown)\n\n")
	}
}

func storesName(cfg Config) string {
	if cfg.DatabaseURL != "" {
		return "postgres"
	}
	return "memory"
}

func newLogger(w io.Writer, level, format string) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
