package main

import (
	"context"
	"fmt"
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
			return fmt.Errorf("serve: database: %w", err)
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
		nb, err := natsbus.Connect(nctx, natsbus.Config{URL: cfg.NATSURL, Name: "tandem", Logger: m.Logger})
		if err != nil {
			return fmt.Errorf("serve: NATS: %w", err)
		}
		m.server.AddReadyCheck(gateway.ReadyCheck{Name: "nats", Check: nb.Ping})
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
	m.server.OnShutdown(chat.Shutdown) // registered last: runs first
	m.chat, m.bus = chat, bus
	return nil
}

// parseSites reads "key=secret@origin,origin;key2=secret2@*" (secret may
// be empty: no verified identities for that site).
func parseSites(s string) (gateway.StaticSites, error) {
	sites := gateway.StaticSites{}
	for _, entry := range strings.Split(s, ";") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		key, rest, ok := strings.Cut(entry, "=")
		secret, origins, ok2 := strings.Cut(rest, "@")
		if !ok || !ok2 || key == "" || origins == "" {
			return nil, fmt.Errorf("entry %q: want key=secret@origin[,origin]", key)
		}
		site := gateway.Site{Key: key, Name: key, Secret: []byte(secret)}
		for _, o := range strings.Split(origins, ",") {
			if o = strings.TrimSpace(o); o != "" {
				site.AllowedOrigins = append(site.AllowedOrigins, o)
			}
		}
		if _, dup := sites[key]; dup {
			return nil, fmt.Errorf("site %q listed twice", key)
		}
		sites[key] = site
	}
	return sites, nil
}
