package main

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/handoff/memstore"
)

// racedStore reports no agents, as a node starting at the same moment as
// another on an empty database sees, while the other has created the demo
// agent.
type racedStore struct{ handoff.Store }

func (racedStore) Agents(context.Context) ([]tandem.Agent, error) { return nil, nil }

// TestDemoAgentCreatedByAnotherNode: two nodes starting together on an
// empty database both try to create the demo agent; the one that loses
// starts anyway (it exited with a conflict). In memory mode the banner
// points to the API for more agents (the CLI needs a database).
func TestDemoAgentCreatedByAnotherNode(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	eng, err := handoff.New(racedStore{st}, handoff.Config{BcryptCost: 4, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	m := &Main{}
	first, err := m.demoAgent(ctx, eng)
	if err != nil || !strings.Contains(first, "POST /api/v1/agents") {
		t.Fatalf("first node: %q, %v", first, err)
	}
	second, err := m.demoAgent(ctx, eng)
	if err != nil || !strings.Contains(second, "created by another node") {
		t.Fatalf("second node: %q, %v", second, err)
	}
}

// TestHelpIsSuccess: a subcommand's -h prints its flags and succeeds (it
// exited 1, as a mistake does); a mistake still fails.
func TestHelpIsSuccess(t *testing.T) {
	for _, args := range [][]string{{"serve", "-h"}, {"ask", "-h"}, {"train", "-h"}, {"eval", "-h"}, {"agent", "create", "-h"}, {"agent", "list", "-h"}} {
		var out, errOut strings.Builder
		if err := run(context.Background(), args, func(string) string { return "" }, &out, &errOut); err != nil {
			t.Errorf("%v: %v", args, err)
		}
		if !strings.Contains(errOut.String()+out.String(), "-") {
			t.Errorf("%v printed no flags", args)
		}
	}
	var out, errOut strings.Builder
	if err := run(context.Background(), []string{"serve", "--no-such-flag"}, func(string) string { return "" }, &out, &errOut); err == nil {
		t.Error("a mistyped flag succeeded")
	}
}
