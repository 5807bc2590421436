package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandem-chat/tandem/gateway"
	"github.com/tandem-chat/tandem/gateway/natsbus"
	"github.com/tandem-chat/tandem/gateway/pgconvlog"
)

// demoSiteKey is the site key of the demo page served at / (with --demo).
const demoSiteKey = "demo"

// wireGateway builds the customer chat (conversation log, bus, auth,
// widget, history API) on m.server and mounts it. bot and handoff may be
// nil until the pipeline and handoff engine are wired: without a bot,
// messages wait for an agent; without handoff, "talk to a person" says
// nobody is available. It registers its closers with the server so that
// Shutdown drains sockets first, then closes the bus and the database pool.
func (m *Main) wireGateway(ctx context.Context, bot gateway.Bot, handoff gateway.Handoff) error {
	cfg := m.Config
	sites, err := parseSites(cfg.Sites)
	if err != nil {
		return fmt.Errorf("serve: TANDEM_SITES: %w", err)
	}
	chatCfg := gateway.ChatConfig{}
	if cfg.Demo {
		if _, ok := sites[demoSiteKey]; !ok {
			sites[demoSiteKey] = gateway.Site{Key: demoSiteKey, Name: "Demo store", AllowedOrigins: []string{"self"}}
		}
		chatCfg.DemoSiteKey = demoSiteKey
	}

	var log gateway.ConvLog = gateway.NewMemLog()
	if cfg.DatabaseURL != "" {
		pool, err := pgxpool.New(ctx, cfg.DatabaseURL)
		if err != nil {
			return fmt.Errorf("serve: database (DATABASE_URL): %w", err)
		}
		m.server.OnShutdown(func(context.Context) error { pool.Close(); return nil })
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		pl, err := pgconvlog.New(pctx, pool)
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		m.server.AddReadyCheck(gateway.ReadyCheck{Name: "conversation-log", Check: pl.Ping})
		log = pl
	}

	var bus gateway.Bus = gateway.NewLocalBus()
	if cfg.NATSURL != "" {
		nctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		nb, err := natsbus.Connect(nctx, natsbus.Config{URL: cfg.NATSURL, Name: "tandem", Logger: m.Logger,
			OnLoss: func() {
				if chat := m.lossTarget.Load(); chat != nil {
					chat.Resync() // recover lost conversation messages from the log
				}
			}})
		if err != nil {
			return fmt.Errorf("serve: NATS (NATS_URL): %w", err)
		}
		// A NATS outage stops cross-node delivery only (a node's own
		// customers and agents keep chatting; gaps are filled from the log
		// on reconnect): the node stays in the load balancer, degraded.
		m.server.AddReadyCheck(gateway.ReadyCheck{Name: "nats", Check: nb.Ping, Degrades: true})
		bus = nb
	}
	m.server.OnShutdown(func(context.Context) error { return bus.Close() })

	auth, err := gateway.NewAuth([]byte(m.Config.JWTSecret), m.Config.AdminToken, 0)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	chat, err := gateway.NewChat(chatCfg, gateway.ChatDeps{
		Log: log, Bus: bus, Auth: auth, Sites: sites, Bot: bot, Handoff: handoff, AgentAccess: agentAccess(handoff),
		Logger: m.Logger.With("component", "chat"), Registerer: m.server.Registry(),
	})
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	chat.Mount(m.server.Router())
	// chat.Shutdown is registered by Run after every other component, so
	// that it runs first (see Run).
	m.chat, m.bus = chat, bus
	m.lossTarget.Store(chat)
	return nil
}

// parseSites reads "key=secret@origin,origin;key2=secret2@*" (secret may
// be empty: no verified identities for that site).
func parseSites(s string) (gateway.StaticSites, error) {
	sites := gateway.StaticSites{}
	for i, entry := range strings.Split(s, ";") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		// Errors never quote the entry: it holds the site's secret.
		key, rest, ok := strings.Cut(entry, "=")
		at := strings.LastIndexByte(rest, '@') // the secret may contain '@' or '='; origins do not
		if !ok || at < 0 {
			return nil, fmt.Errorf("entry %d: want key=secret@origin[,origin] (secret may be empty)", i+1)
		}
		key = strings.TrimSpace(key)
		if !validSiteKey(key) {
			return nil, fmt.Errorf("entry %d: site key must be 1-64 letters, digits, '-' or '_'", i+1)
		}
		secret, origins := rest[:at], rest[at+1:]
		site := gateway.Site{Key: key, Name: key, Secret: []byte(secret)}
		for j, o := range strings.Split(origins, ",") {
			o = strings.TrimSpace(o)
			if o == "" {
				continue
			}
			if err := checkOrigin(o); err != nil {
				if !strings.Contains(o, "://") {
					// Not even shaped like an origin: maybe the end of a
					// secret holding '@' whose origins were forgotten. Not
					// shown (errors never print a secret).
					return nil, fmt.Errorf("site %q: origin %d is not *, self or scheme://host[:port] (not shown: it may be part of the secret; the origins follow the last '@')", key, j+1)
				}
				return nil, fmt.Errorf("site %q: origin %q: %w", key, o, err)
			}
			site.AllowedOrigins = append(site.AllowedOrigins, o)
		}
		if len(site.AllowedOrigins) == 0 {
			return nil, fmt.Errorf("site %q: no origin (want *, self or scheme://host[:port])", key)
		}
		if _, dup := sites[key]; dup {
			return nil, fmt.Errorf("site %q listed twice", key)
		}
		sites[key] = site
	}
	if len(sites) == 0 && strings.TrimSpace(s) != "" {
		return nil, fmt.Errorf("no site in %q (want key=secret@origin[,origin];...)", s)
	}
	return sites, nil
}

func validSiteKey(k string) bool {
	if k == "" || len(k) > 64 {
		return false
	}
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// checkOrigin accepts what gateway.Site.OriginAllowed can match: "*",
// "self", or a browser origin scheme://host[:port] (no path, query or
// user info).
func checkOrigin(o string) error {
	if o == "*" || o == "self" {
		return nil
	}
	u, err := url.Parse(strings.TrimRight(o, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" {
		return errors.New("want *, self or scheme://host[:port], e.g. https://shop.example")
	}
	return nil
}
