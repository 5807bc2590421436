package kbapi_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tandem-chat/tandem/gateway"
	"github.com/tandem-chat/tandem/gateway/kbapi"
	"github.com/tandem-chat/tandem/internal/pgtest"
	"github.com/tandem-chat/tandem/knowledge"
	"github.com/tandem-chat/tandem/knowledge/memstore"
	"github.com/tandem-chat/tandem/knowledge/pgstore"
)

// storeEnv is an API over a given store and encoder (and, optionally, a
// wrapper around the service).
type storeEnv struct {
	*env
	kstore knowledge.Store
}

// setupStore serves the API over a fresh store of the kind ("mem" or "pg").
func setupStore(t *testing.T, kind string, emb knowledge.Embedder, wrap func(*knowledge.Service) kbapi.Service) *storeEnv {
	t.Helper()
	auth, err := gateway.NewAuth([]byte(secret), "static-admin-token", 0)
	if err != nil {
		t.Fatal(err)
	}
	var store knowledge.Store
	var mem *memstore.Store
	switch kind {
	case "mem":
		mem = memstore.New()
		store = mem
	case "pg":
		db := pgtest.New(t)
		s, err := pgstore.Open(context.Background(), db.URL, pgstore.Options{MaxConns: 4})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		store = s
	default:
		t.Fatalf("unknown store %q", kind)
	}
	svc, err := knowledge.NewService(knowledge.Config{Store: store, Embedder: emb})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	var api kbapi.Service = svc
	if wrap != nil {
		api = wrap(svc)
	}
	h, err := kbapi.New(kbapi.Config{Service: api, Auth: auth})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/api/v1/knowledge/", http.StripPrefix("/api/v1/knowledge", h))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	admin, _ := auth.IssueStaff("u-1", "Ada", gateway.RoleAdmin, "", time.Hour)
	agent, _ := auth.IssueStaff("u-2", "Bob", gateway.RoleAgent, "", time.Hour)
	return &storeEnv{env: &env{srv: srv, svc: svc, store: mem, admin: admin, agent: agent, adminToken: "static-admin-token"}, kstore: store}
}

// eachStore runs fn against the in-memory and the PostgreSQL store.
func eachStore(t *testing.T, emb knowledge.Embedder, fn func(t *testing.T, e *storeEnv)) {
	for _, kind := range []string{"mem", "pg"} {
		t.Run(kind, func(t *testing.T) { fn(t, setupStore(t, kind, emb, nil)) })
	}
}
