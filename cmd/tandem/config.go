package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Config is the whole configuration of `tandem serve`: one struct tree,
// filled from defaults, then the environment, then flags (flags win), and
// checked by Validate before anything starts. Only package main reads the
// environment; every other package receives its part of this struct.
type Config struct {
	// Addr is the listen address (env TANDEM_ADDR, default ":8080"; ":0" picks a free port).
	Addr string
	// PublicURL is the base URL printed for humans (env TANDEM_PUBLIC_URL; default derived from Addr).
	PublicURL string
	// LogLevel is one of debug, info, warn, error (env LOG_LEVEL, default info).
	LogLevel string
	// LogFormat is text or json (env LOG_FORMAT, default text).
	LogFormat string
	// ShutdownTimeout bounds graceful shutdown (env TANDEM_SHUTDOWN_TIMEOUT, default 15s).
	ShutdownTimeout time.Duration

	// DatabaseURL selects PostgreSQL stores when set; empty means in-memory
	// stores (env DATABASE_URL).
	DatabaseURL string
	// NATSURL enables cross-node delivery when set (env NATS_URL).
	NATSURL string

	// ModelDir holds the trained NLU models (env TANDEM_MODEL_DIR, default models/default).
	ModelDir string
	// ONNXRuntimeLib is the ONNX Runtime shared library (env ONNXRUNTIME_LIB,
	// default .deps/onnxruntime/libonnxruntime.so.1).
	ONNXRuntimeLib string

	// AdminToken authenticates the admin API; generated and printed at start
	// when empty (env TANDEM_ADMIN_TOKEN).
	AdminToken string
	// JWTSecret signs agent/admin/customer tokens; generated at start when
	// empty, which invalidates tokens across restarts (env TANDEM_JWT_SECRET).
	JWTSecret string
	// Demo loads the demo knowledge pack, demo site and demo agent at start
	// when the stores are empty (env TANDEM_DEMO, default true).
	Demo bool

	// Sites lists the sites that embed the widget:
	// "key=secret@origin,origin;key2=secret2@*" (env TANDEM_SITES). The
	// secret signs verified identities; "*" allows any origin. With Demo,
	// the site "demo" (own origin) is added.
	Sites string

	// LLM configures optional generative answers; off unless BaseURL is set.
	LLM LLMConfig

	// Policy is the bot's answer policy (YAML, see docs/pipeline.md); empty
	// uses the embedded demo policy (env TANDEM_POLICY).
	Policy string
	// EmbeddingsURL selects a remote OpenAI-compatible embeddings API for
	// the knowledge base instead of the local encoder (env
	// EMBEDDINGS_BASE_URL); EmbeddingsModel and EmbeddingsDim describe it
	// (env EMBEDDINGS_MODEL, EMBEDDINGS_DIM; EMBEDDINGS_API_KEY is the key).
	EmbeddingsURL   string
	EmbeddingsModel string
	EmbeddingsDim   int
	EmbeddingsKey   string

	// StageTimeout bounds each pipeline stage of a turn (models, retrieval)
	// (env TANDEM_STAGE_TIMEOUT, default 250ms); a stage that runs late is
	// left out of the decision rather than delaying the answer.
	StageTimeout time.Duration
	// MaxActiveTurns bounds the turns running their model stages at once;
	// later turns wait their turn in arrival order, which keeps the latency
	// tail short under load (env TANDEM_MAX_ACTIVE_TURNS; 0 = 16 × the
	// cores Go uses, -1 = no bound; see docs/benchmarks.md, Pipeline).
	MaxActiveTurns int

	// TrustedProxies lists the reverse proxies in front of the server as
	// comma-separated CIDRs or addresses; only their X-Forwarded-For is
	// believed for per-IP limits (env TANDEM_TRUSTED_PROXIES; default none).
	TrustedProxies string

	// Agent settings (the handoff engine and agent console) live below.
	// AgentTokenTTL is the lifetime of the agent and admin tokens issued by
	// POST /api/v1/agents/login (env TANDEM_AGENT_TOKEN_TTL; 0 = 12h).
	AgentTokenTTL time.Duration
	// OfferTimeout is how long an agent has to accept an offered
	// conversation before it goes to the next one (env TANDEM_OFFER_TIMEOUT; 0 = 30s).
	OfferTimeout time.Duration
	// DisconnectGrace is how long an agent whose console disconnected keeps
	// their chats before they are queued again (env TANDEM_DISCONNECT_GRACE; 0 = 60s).
	DisconnectGrace time.Duration

	// Retention erases conversations (messages, tickets, bot state) idle
	// for longer than this, as DELETE /v1/conversations/{id} does (env
	// TANDEM_RETENTION, e.g. 2160h for 90 days; 0 = keep them forever, the
	// default; at least 1h).
	Retention time.Duration
}

// LLMConfig configures an OpenAI-compatible chat completions server.
type LLMConfig struct {
	BaseURL string // env LLM_BASE_URL
	Model   string // env LLM_MODEL (default "gpt-4o-mini")
	APIKey  string // env LLM_API_KEY
	// MaxConcurrent bounds the calls in flight to the server (env
	// LLM_MAX_CONCURRENT, default 64); a turn that finds them all taken for
	// 2 s answers without the generator (pipeline.ErrBusy).
	MaxConcurrent int
}

// DefaultConfig returns the documented defaults: the embedded configuration
// that `make run` uses.
func DefaultConfig() Config {
	return Config{
		Addr:            ":8080",
		LogLevel:        "info",
		LogFormat:       "text",
		ShutdownTimeout: 15 * time.Second,
		StageTimeout:    250 * time.Millisecond,
		ModelDir:        filepath.Join("models", "default"),
		ONNXRuntimeLib:  filepath.Join(".deps", "onnxruntime", "libonnxruntime.so.1"),
		Demo:            true,
		LLM:             LLMConfig{Model: "gpt-4o-mini", MaxConcurrent: 64},
	}
}

var (
	logLevels  = []string{"debug", "info", "warn", "error"}
	logFormats = []string{"text", "json"}
)

// Validate checks every setting and names the offending one with its
// accepted values.
func (c Config) Validate() error {
	var errs []error
	bad := func(setting, value, accepted string) {
		errs = append(errs, fmt.Errorf("invalid %s %q: accepted values: %s", setting, value, accepted))
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		bad("TANDEM_ADDR (--addr)", c.Addr, "host:port, e.g. :8080 or 127.0.0.1:0")
	} else if _, port, _ := net.SplitHostPort(c.Addr); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			bad("TANDEM_ADDR (--addr)", c.Addr, "a port between 0 and 65535")
		}
	}
	if !slices.Contains(logLevels, c.LogLevel) {
		bad("LOG_LEVEL (--log-level)", c.LogLevel, strings.Join(logLevels, ", "))
	}
	if !slices.Contains(logFormats, c.LogFormat) {
		bad("LOG_FORMAT (--log-format)", c.LogFormat, strings.Join(logFormats, ", "))
	}
	if c.ShutdownTimeout < time.Millisecond || c.ShutdownTimeout > 10*time.Minute {
		bad("TANDEM_SHUTDOWN_TIMEOUT (--shutdown-timeout)", c.ShutdownTimeout.String(), "a duration between 1ms and 10m, e.g. 15s")
	}
	if c.StageTimeout < time.Millisecond || c.StageTimeout > 5*time.Minute {
		bad("TANDEM_STAGE_TIMEOUT (--stage-timeout)", c.StageTimeout.String(), "a duration between 1ms and 5m, e.g. 250ms")
	}
	for _, d := range []struct {
		v        time.Duration
		setting  string
		min, max time.Duration // below min nothing useful happens: 1ns re-queued an agent's chats at once
	}{
		{c.AgentTokenTTL, "TANDEM_AGENT_TOKEN_TTL (--agent-token-ttl)", time.Minute, 30 * 24 * time.Hour},
		{c.OfferTimeout, "TANDEM_OFFER_TIMEOUT (--offer-timeout)", time.Second, time.Hour},
		{c.DisconnectGrace, "TANDEM_DISCONNECT_GRACE (--disconnect-grace)", time.Second, 24 * time.Hour},
	} {
		if d.v < 0 || d.v > d.max || d.v != 0 && d.v < d.min {
			bad(d.setting, d.v.String(), "0 (default) or a duration from "+d.min.String()+" to "+d.max.String())
		}
	}
	if c.Retention != 0 && (c.Retention < time.Hour || c.Retention > 100*365*24*time.Hour) {
		// Below an hour a customer who steps away would lose their chat.
		bad("TANDEM_RETENTION (--retention)", c.Retention.String(), "0 (keep forever, the default) or a duration of at least 1h, e.g. 2160h for 90 days")
	}
	if c.MaxActiveTurns < -1 || c.MaxActiveTurns > 1<<16 {
		bad("TANDEM_MAX_ACTIVE_TURNS (--max-active-turns)", strconv.Itoa(c.MaxActiveTurns), "0 (16 × the cores), -1 (no bound) or a number of turns up to 65536")
	}
	checkURL := func(setting, v string, schemes ...string) {
		if v == "" {
			return
		}
		u, err := url.Parse(v)
		if err != nil || !slices.Contains(schemes, u.Scheme) || u.Host == "" {
			bad(setting, redact(v), "a URL with scheme "+strings.Join(schemes, " or "))
		}
	}
	if v := c.DatabaseURL; v != "" {
		// libpq's URL forms, the Unix socket ones included
		// (postgresql:///tandem, postgresql:///tandem?host=/var/run/postgresql).
		if u, err := url.Parse(v); err != nil || u.Scheme != "postgres" && u.Scheme != "postgresql" || u.Host == "" && u.Path == "" && u.Query().Get("host") == "" {
			bad("DATABASE_URL (--database-url)", redact(v), "a URL with scheme postgres or postgresql, e.g. postgres://user@db.example/tandem or postgresql:///tandem?host=/var/run/postgresql (a Unix socket)")
		}
	}
	checkURL("NATS_URL (--nats-url)", c.NATSURL, "nats", "tls")
	checkURL("LLM_BASE_URL (--llm-base-url)", c.LLM.BaseURL, "http", "https")
	checkURL("TANDEM_PUBLIC_URL (--public-url)", c.PublicURL, "http", "https")
	if c.EmbeddingsURL == "" && (c.EmbeddingsModel != "" || c.EmbeddingsDim != 0) {
		bad("EMBEDDINGS_MODEL/EMBEDDINGS_DIM", fmt.Sprintf("%s/%d", c.EmbeddingsModel, c.EmbeddingsDim), "set only with EMBEDDINGS_BASE_URL (without it the local encoder is used)")
	}
	if c.LLM.BaseURL != "" && c.LLM.Model == "" {
		bad("LLM_MODEL (--llm-model)", "", "a model name when LLM_BASE_URL is set")
	}
	if c.LLM.MaxConcurrent < 1 || c.LLM.MaxConcurrent > 4096 {
		bad("LLM_MAX_CONCURRENT (--llm-max-concurrent)", strconv.Itoa(c.LLM.MaxConcurrent), "a number of calls between 1 and 4096")
	}
	if c.ModelDir == "" {
		bad("TANDEM_MODEL_DIR (--models)", "", "a directory made by `make models` or `tandem train`")
	}
	checkURL("EMBEDDINGS_BASE_URL (--embeddings-base-url)", c.EmbeddingsURL, "http", "https")
	if c.EmbeddingsURL != "" && (c.EmbeddingsModel == "" || c.EmbeddingsDim <= 0 || c.EmbeddingsDim > 16000) {
		bad("EMBEDDINGS_MODEL/EMBEDDINGS_DIM", fmt.Sprintf("%s/%d", c.EmbeddingsModel, c.EmbeddingsDim), "a model name and dimensions between 1 and 16000 when EMBEDDINGS_BASE_URL is set")
	}
	if sites, err := parseSites(c.Sites); err != nil {
		errs = append(errs, fmt.Errorf("invalid TANDEM_SITES (--sites): %w", err))
	} else if _, clash := sites[demoSiteKey]; clash && c.Demo {
		bad("TANDEM_SITES (--sites)", "(hidden)", "no site named \""+demoSiteKey+"\" while TANDEM_DEMO is on (the demo adds it, with the server's own origin)")
	}
	if _, err := parseProxies(c.TrustedProxies); err != nil {
		bad("TANDEM_TRUSTED_PROXIES (--trusted-proxies)", c.TrustedProxies, "comma-separated CIDRs or IP addresses, e.g. 10.0.0.0/8,192.168.1.5")
	}
	if c.AdminToken != "" && len(c.AdminToken) < 16 {
		bad("TANDEM_ADMIN_TOKEN", "(hidden)", "at least 16 characters")
	}
	if c.JWTSecret != "" && len(c.JWTSecret) < 32 {
		bad("TANDEM_JWT_SECRET", "(hidden)", "at least 32 characters")
	}
	return errors.Join(errs...)
}

// redact hides a URL's password. A value that is not a URL with a scheme
// and a host (a libpq "host=... password=..." string, say) may hold a
// secret anywhere: it is not shown at all.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "(hidden: not a URL with a scheme and host)"
	}
	// Query values may be secrets too (?password=, ?key=, ?sslpassword=).
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			q[k] = []string{"xxxxx"}
		}
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// envErrors are the environment values bindFlags could not parse, by
// flag name: one only counts when its flag was not given (flags win).
type envErrors map[string]error

// err returns the errors of the flags fs did not set; call it after Parse.
func (e envErrors) err(fs *flag.FlagSet) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	names := make([]string, 0, len(e))
	for n := range e {
		if !set[n] {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	errs := make([]error, len(names))
	for i, n := range names {
		errs[i] = e[n]
	}
	return errors.Join(errs...)
}

// secretFlags hold credentials: their values (taken from the environment)
// are never shown as defaults in the help text, which the flag package
// prints on -h and after any mistyped flag (into a service's logs).
var secretFlags = []string{"admin-token", "jwt-secret", "llm-api-key", "embeddings-api-key", "sites", "database-url", "nats-url"}

// urlFlags may carry a secret in their query (?key=, ?api-key=): their
// shown default is redacted.
var urlFlags = []string{"llm-base-url", "embeddings-base-url", "public-url"}

// hideSecretDefaults blanks the shown default of fs's secret flags and
// redacts that of its URL flags.
func hideSecretDefaults(fs *flag.FlagSet) {
	for _, n := range urlFlags {
		if f := fs.Lookup(n); f != nil && f.DefValue != "" {
			f.DefValue = redact(f.DefValue)
		}
	}
	for _, n := range secretFlags {
		if f := fs.Lookup(n); f != nil && f.DefValue != "" {
			f.DefValue = ""
			f.Usage += " [set; not shown]"
		}
	}
}

// bindFlags declares one flag per setting, with the environment variable
// (when set) overriding the default; values that do not parse are
// returned by flag name (see envErrors).
func (c *Config) bindFlags(fs *flag.FlagSet, getenv func(string) string) envErrors {
	errs := envErrors{}
	str := func(p *string, name, env, usage string) {
		if v := getenv(env); v != "" {
			*p = v
		}
		fs.StringVar(p, name, *p, usage+" (env "+env+")")
	}
	str(&c.Addr, "addr", "TANDEM_ADDR", "listen address")
	str(&c.PublicURL, "public-url", "TANDEM_PUBLIC_URL", "base URL printed for humans")
	str(&c.LogLevel, "log-level", "LOG_LEVEL", "log level: "+strings.Join(logLevels, ", "))
	str(&c.LogFormat, "log-format", "LOG_FORMAT", "log format: text or json")
	str(&c.DatabaseURL, "database-url", "DATABASE_URL", "PostgreSQL URL; empty = in-memory stores")
	str(&c.NATSURL, "nats-url", "NATS_URL", "NATS URL for multi-node delivery; empty = in-process bus")
	str(&c.ModelDir, "models", "TANDEM_MODEL_DIR", "trained model directory")
	str(&c.ONNXRuntimeLib, "onnxruntime-lib", "ONNXRUNTIME_LIB", "ONNX Runtime shared library")
	str(&c.AdminToken, "admin-token", "TANDEM_ADMIN_TOKEN", "admin API token; generated when empty")
	str(&c.JWTSecret, "jwt-secret", "TANDEM_JWT_SECRET", "token signing secret; generated when empty")
	str(&c.Sites, "sites", "TANDEM_SITES", "widget sites: key=secret@origin[,origin];...")
	str(&c.LLM.BaseURL, "llm-base-url", "LLM_BASE_URL", "OpenAI-compatible server; empty = no generative answers")
	str(&c.LLM.Model, "llm-model", "LLM_MODEL", "LLM model name")
	str(&c.LLM.APIKey, "llm-api-key", "LLM_API_KEY", "LLM API key")
	str(&c.TrustedProxies, "trusted-proxies", "TANDEM_TRUSTED_PROXIES", "reverse proxies whose X-Forwarded-For is believed (CIDRs, comma-separated)")
	str(&c.Policy, "policy", "TANDEM_POLICY", "path to the answer-policy YAML file; empty = embedded demo policy")
	str(&c.EmbeddingsURL, "embeddings-base-url", "EMBEDDINGS_BASE_URL", "OpenAI-compatible embeddings API; empty = local encoder")
	str(&c.EmbeddingsModel, "embeddings-model", "EMBEDDINGS_MODEL", "embeddings model name")
	str(&c.EmbeddingsKey, "embeddings-api-key", "EMBEDDINGS_API_KEY", "embeddings API key")
	num := func(p *int, name, env, accepted, usage string) {
		if v := getenv(env); v != "" {
			if n, err := strconv.Atoi(v); err != nil {
				errs[name] = fmt.Errorf("invalid %s %q: accepted values: %s", env, v, accepted)
			} else {
				*p = n
			}
		}
		fs.IntVar(p, name, *p, usage+" (env "+env+")")
	}
	num(&c.EmbeddingsDim, "embeddings-dim", "EMBEDDINGS_DIM", "a positive integer", "embedding dimensions of the remote API")
	num(&c.MaxActiveTurns, "max-active-turns", "TANDEM_MAX_ACTIVE_TURNS", "an integer (0 = 16 × the cores, -1 = no bound)",
		"turns running their model stages at once, the rest wait in arrival order; 0 = 16 × cores, -1 = no bound")
	num(&c.LLM.MaxConcurrent, "llm-max-concurrent", "LLM_MAX_CONCURRENT", "a number of calls between 1 and 4096",
		"calls in flight to the LLM server at most; a turn that waits 2 s for one answers without it")
	if v := getenv("TANDEM_SHUTDOWN_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			errs["shutdown-timeout"] = fmt.Errorf("invalid TANDEM_SHUTDOWN_TIMEOUT (--shutdown-timeout) %q: accepted values: a duration such as 15s", v)
		} else {
			c.ShutdownTimeout = d
		}
	}
	if v := getenv("TANDEM_STAGE_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			errs["stage-timeout"] = fmt.Errorf("invalid TANDEM_STAGE_TIMEOUT (--stage-timeout) %q: accepted values: a duration such as 250ms", v)
		} else {
			c.StageTimeout = d
		}
	}
	fs.DurationVar(&c.StageTimeout, "stage-timeout", c.StageTimeout, "deadline of each pipeline stage of a turn (env TANDEM_STAGE_TIMEOUT)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "graceful shutdown deadline (env TANDEM_SHUTDOWN_TIMEOUT)")
	if v := getenv("TANDEM_DEMO"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs["demo"] = fmt.Errorf("invalid TANDEM_DEMO %q: accepted values: true, false", v)
		} else {
			c.Demo = b
		}
	}
	fs.BoolVar(&c.Demo, "demo", c.Demo, "load the demo knowledge, site and agent into empty stores (env TANDEM_DEMO)")
	for _, d := range []struct {
		p              *time.Duration
		name, env      string
		usage, example string
	}{
		{&c.AgentTokenTTL, "agent-token-ttl", "TANDEM_AGENT_TOKEN_TTL", "lifetime of agent login tokens; 0 = 12h", "12h"},
		{&c.OfferTimeout, "offer-timeout", "TANDEM_OFFER_TIMEOUT", "time an agent has to accept an offer; 0 = 30s", "30s"},
		{&c.DisconnectGrace, "disconnect-grace", "TANDEM_DISCONNECT_GRACE", "how long a disconnected agent keeps their chats; 0 = 60s", "60s"},
		{&c.Retention, "retention", "TANDEM_RETENTION", "erase conversations idle longer than this, e.g. 2160h (90 days); 0 = keep forever", "2160h (at least 1h)"},
	} {
		if v := getenv(d.env); v != "" {
			if x, err := time.ParseDuration(v); err != nil {
				errs[d.name] = fmt.Errorf("invalid %s (--%s) %q: accepted values: a duration such as %s", d.env, d.name, v, d.example)
			} else {
				*d.p = x
			}
		}
		fs.DurationVar(d.p, d.name, *d.p, d.usage+" (env "+d.env+")")
	}
	hideSecretDefaults(fs)
	return errs
}

// resolvePaths makes relative default paths work when the binary runs from
// the repository root or elsewhere (ONNXRUNTIME_LIB and model dir).
func (c *Config) resolvePaths() {
	for _, p := range []*string{&c.ModelDir, &c.ONNXRuntimeLib} {
		if *p == "" || filepath.IsAbs(*p) {
			continue
		}
		if abs, err := filepath.Abs(*p); err == nil {
			if _, err := os.Stat(abs); err == nil {
				*p = abs
			}
		}
	}
}

// parseProxies reads TrustedProxies: CIDRs or single addresses.
func parseProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("%q is neither a CIDR nor an IP address", f)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// parseOfflineFlags is the flag handling of the commands that run the bot
// in process (ask, eval-bot, loadgen): the serve settings plus the
// command's own flags (declared by own, which may be nil), parsed from args
// and validated, with relative paths resolved. These commands always use
// in-memory stores: DATABASE_URL is cleared, so they never write to a real
// knowledge base or conversation store.
func parseOfflineFlags(name string, args []string, getenv func(string) string, stderr io.Writer, own func(*flag.FlagSet)) (Config, *flag.FlagSet, error) {
	cfg := DefaultConfig()
	fs := flag.NewFlagSet("tandem "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	envErr := cfg.bindFlags(fs, getenv)
	if own != nil {
		own(fs)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, fs, flag.ErrHelp
		}
		return cfg, fs, err
	}
	if err := errors.Join(envErr.err(fs), cfg.Validate()); err != nil {
		return cfg, fs, fmt.Errorf("configuration: %w", err)
	}
	cfg.resolvePaths()
	cfg.DatabaseURL = ""
	return cfg, fs, nil
}
