package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/gateway"
	"github.com/tandem-chat/tandem/gateway/console"
	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/handoff/memstore"
	"github.com/tandem-chat/tandem/handoff/pgstore"
	"github.com/tandem-chat/tandem/knowledge"
)

// demoAgentEmail is the account created in demo mode when no agent exists.
const demoAgentEmail = "agent@demo.tandem.example"

// handoffWiring is what wireHandoff builds for wireGateway and wireConsole.
// The engine needs its Notifier (the console) when it is created, but the
// console needs the chat, which needs the engine: the adapter and the
// notifier are bound late, in wireConsole.
type handoffWiring struct {
	engine   *handoff.Engine
	adapter  *console.Handoff // gateway.Handoff and ChatDeps.AgentAccess
	notifier *console.LateNotifier
}

// wireHandoff builds the handoff engine over the in-memory store, or the
// PostgreSQL store when DATABASE_URL is set. The store is closed last at
// shutdown (after the sockets drained: consoles disconnect through it).
func (m *Main) wireHandoff(ctx context.Context) (*handoffWiring, error) {
	cfg := m.Config // validated (Config.Validate): durations in range
	var store handoff.Store
	if cfg.DatabaseURL != "" {
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		ps, err := pgstore.Open(pctx, cfg.DatabaseURL, pgstore.Options{})
		if err != nil {
			return nil, fmt.Errorf("serve: handoff store (DATABASE_URL): %w", err)
		}
		m.server.AddReadyCheck(gateway.ReadyCheck{Name: "handoff-store", Check: func(ctx context.Context) error { return ps.Pool().Ping(ctx) }})
		store = ps
	} else {
		store = memstore.New()
	}
	m.server.OnShutdown(func(context.Context) error { return store.Close() })
	late := &console.LateNotifier{}
	eng, err := handoff.New(store, handoff.Config{
		Node: m.nodeID, Notifier: late, Registerer: m.server.Registry(), Logger: m.Logger,
		OfferTimeout: cfg.OfferTimeout, DisconnectGrace: cfg.DisconnectGrace,
	})
	if err != nil {
		return nil, fmt.Errorf("serve: handoff: %w", err)
	}
	return &handoffWiring{engine: eng, adapter: &console.Handoff{Engine: eng}, notifier: late}, nil
}

// agentAccess returns gateway.ChatDeps.AgentAccess for a handoff that
// offers it (the engine's Authorize: offered or assigned to the agent).
func agentAccess(h gateway.Handoff) func(ctx context.Context, agentID, conversationID string) bool {
	if a, ok := h.(interface {
		AgentAccess(ctx context.Context, agentID, conversationID string) bool
	}); ok {
		return a.AgentAccess
	}
	return nil
}

// wireConsole binds the engine to the chat, mounts the agent console and
// the agents API, starts routing, and in demo mode creates a demo agent.
// It runs after wireGateway. Its closer runs before the chat's (it is
// registered later): routing stops and buffered events are delivered
// while the sockets are still open.
func (m *Main) wireConsole(ctx context.Context, h *handoffWiring) error {
	h.adapter.SetChat(m.chat)
	con, err := console.New(console.Config{
		Engine: h.engine, Chat: m.chat, Bus: m.bus, Suggester: m.suggester(), TokenTTL: m.Config.AgentTokenTTL,
		Logger: m.Logger.With("component", "console"),
	})
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	h.notifier.Set(con)
	con.Mount(m.server.Router())

	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := h.engine.Run(runCtx); err != nil {
			m.Logger.Error("handoff: run", "err", err)
		}
	}()
	m.server.OnShutdown(func(ctx context.Context) error {
		stop()
		<-done
		return errors.Join(h.engine.Close(ctx), con.Shutdown(ctx))
	})

	m.banner = append(m.banner, "agent console: "+m.consoleURL())
	if m.Config.Demo {
		line, err := m.demoAgent(ctx, h.engine)
		if err != nil {
			return err
		}
		m.banner = append(m.banner, line)
	}
	return nil
}

// consoleURL is the console's address for the banner, which is built
// before the server listens: from the public URL or the configured port.
func (m *Main) consoleURL() string {
	if u := m.Config.PublicURL; u != "" {
		return strings.TrimRight(u, "/") + "/console"
	}
	host, port, err := net.SplitHostPort(m.Config.Addr)
	if err != nil || port == "0" {
		return "/console on the server's address"
	}
	if host == "" || host == "::" || host == "0.0.0.0" {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port) + "/console"
}

// demoAgent creates the demo agent when there is no agent at all and
// returns the banner line with its credentials.
func (m *Main) demoAgent(ctx context.Context, eng *handoff.Engine) (string, error) {
	agents, err := eng.Agents(ctx)
	if err != nil {
		return "", fmt.Errorf("serve: demo agent: %w", err)
	}
	if len(agents) > 0 {
		for _, a := range agents {
			if a.Email == demoAgentEmail {
				return "demo agent:    " + demoAgentEmail + " (an admin; password printed when it was created; reset it with `tandem agent password --email " + demoAgentEmail + "`)", nil
			}
		}
		return "", nil
	}
	password := randomToken(8)
	_, err = eng.CreateAgent(ctx, tandem.Agent{
		Email: demoAgentEmail, DisplayName: "Demo Agent", Role: handoff.RoleAdmin,
		Skills:    []string{"complaints", "accounts"},
		Languages: []string{"en", "de", "fr", "es", "it", "nl", "pt", "zh", "ja", "ko"},
	}, password)
	if tandem.ErrorCode(err) == tandem.ECONFLICT {
		// Another node starting on the same empty database created it a
		// moment ago: this one starts too.
		return "demo agent:    " + demoAgentEmail + " (an admin; created by another node, which printed its password)", nil
	}
	if err != nil {
		return "", fmt.Errorf("serve: demo agent: %w", err)
	}
	create := "`tandem agent create`"
	if m.Config.DatabaseURL == "" {
		// The CLI writes to a database; in memory only the API can.
		create = "POST /api/v1/agents (docs/openapi-agents.yaml)"
	}
	return "demo agent:    " + demoAgentEmail + " / " + password + " (an admin: sees and may write in every open chat; create plain agents with " + create + ")", nil
}

// suggester searches the knowledge base for the console's suggested
// answers: published FAQs in the ticket's language (its locale, then its
// primary language), else in any language.
func (m *Main) suggester() console.Suggester {
	if m.bot == nil || m.bot.Knowledge == nil {
		return nil
	}
	kb := m.bot.Knowledge
	return console.SuggesterFunc(func(ctx context.Context, query, locale string, k int) ([]console.Suggestion, error) {
		req := knowledge.SearchRequest{Query: query, K: k, Filter: knowledge.Filter{PublishedOnly: true, Locale: locale}}
		res, err := kb.Search(ctx, req)
		if err == nil && len(res.Hits) == 0 && locale != "" {
			req.Filter.Locale = "" // any language, rather than nothing
			res, err = kb.Search(ctx, req)
		}
		if err != nil {
			return nil, err
		}
		out := make([]console.Suggestion, 0, len(res.Hits))
		for _, h := range res.Hits {
			out = append(out, console.Suggestion{FAQID: h.FAQ.ID, Question: h.FAQ.Question, Answer: h.FAQ.Answer, Score: h.Score})
		}
		return out, nil
	})
}
