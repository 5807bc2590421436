package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/tandem-chat/tandem/gateway"
	"github.com/tandem-chat/tandem/gateway/console"
	"github.com/tandem-chat/tandem/internal/pgtest"
)

// TestAgentCLIAndPostgresServe creates an agent with `tandem agent create`
// in a real PostgreSQL database, then boots the server on that database
// and logs the agent into the console socket: the CLI and the server share
// the Postgres handoff store.
func TestAgentCLIAndPostgresServe(t *testing.T) {
	db := pgtest.New(t)
	env := testGetenv(map[string]string{"DATABASE_URL": db.URL})
	ctx := context.Background()
	// agentCmd runs `tandem agent args...` with stdin (list goes through
	// the top-level dispatch, which reads the process's stdin).
	agentCmd := func(stdin string, args ...string) (string, error) {
		var out, errb bytes.Buffer
		var err error
		if args[0] == "list" {
			err = run(ctx, append([]string{"agent"}, args...), env, &out, &errb)
		} else {
			err = runAgent(ctx, args, env, strings.NewReader(stdin), &out, &errb)
		}
		return out.String() + errb.String(), err
	}

	out, err := agentCmd("s3cret-passw0rd\n", "create", "--email", "Dana@Example.com", "--name", "Dana", "--skills", "billing, returns",
		"--languages", "en,de", "--max-chats", "4", "--password-stdin")
	if err != nil || !strings.Contains(out, "created agt_") || !strings.Contains(out, "skills billing,returns") {
		t.Fatalf("create: %v\n%s", err, out)
	}
	for _, tt := range []struct {
		name  string
		stdin string
		args  []string
		want  string
	}{
		{"duplicate email", "another-password\n", []string{"create", "--email", "dana@example.com", "--password-stdin"}, "already"},
		{"short password", "short\n", []string{"create", "--email", "x@example.com", "--password-stdin"}, "at least 8 characters"},
		{"no email", "long-enough-pw\n", []string{"create", "--password-stdin"}, "--email is required"},
		{"bad role", "long-enough-pw\n", []string{"create", "--email", "y@example.com", "--role", "root", "--password-stdin"}, "agent, admin"},
		{"no terminal", "long-enough-pw\n", []string{"create", "--email", "z@example.com"}, "--password-stdin"},
		{"bad email", "long-enough-pw\n", []string{"create", "--email", "not-an-email", "--password-stdin"}, "email"},
	} {
		out, err := agentCmd(tt.stdin, tt.args...)
		if err == nil || !strings.Contains(err.Error()+out, tt.want) {
			t.Errorf("%s: err %v, out %q; want an error mentioning %q", tt.name, err, out, tt.want)
		}
	}
	var noDB bytes.Buffer
	if err := run(ctx, []string{"agent", "list"}, testGetenv(nil), &noDB, &noDB); err == nil || !strings.Contains(err.Error(), "DATABASE_URL") {
		t.Errorf("list without a database: %v", err)
	}
	// A database without Tandem's schema (a mistyped name) is refused by
	// list, password and update, and left as it was (it got the schema,
	// and an empty list).
	empty := pgtest.New(t)
	emptyEnv := testGetenv(map[string]string{"DATABASE_URL": empty.URL})
	for _, args := range [][]string{{"agent", "list"}, {"agent", "update", "--email", "dana@example.com", "--name", "D"}} {
		var out bytes.Buffer
		if err := run(ctx, args, emptyEnv, &out, &out); err == nil || !strings.Contains(err.Error(), "no Tandem agents") {
			t.Errorf("%v on an empty database: %v\n%s", args, err, out.String())
		}
	}
	var tables int
	if err := empty.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE tablename LIKE 'handoff_%'`).Scan(&tables); err != nil || tables != 0 {
		t.Errorf("the empty database got %d handoff tables (%v)", tables, err)
	}
	if out, err := agentCmd("", "list"); err != nil || !strings.Contains(out, "dana@example.com") || !strings.Contains(out, "billing,returns") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	// A new password (the old one was lost), found by email in any case.
	if out, err := agentCmd("n3w-s3cret-pw\n", "password", "--email", "DANA@example.com", "--password-stdin"); err != nil || !strings.Contains(out, "password set for agt_") {
		t.Fatalf("password: %v\n%s", err, out)
	}
	for _, tt := range []struct {
		name, stdin string
		args        []string
		want        string
	}{
		{"unknown email", "n3w-s3cret-pw\n", []string{"password", "--email", "nobody@example.com", "--password-stdin"}, "no agent has the email"},
		{"short password", "short\n", []string{"password", "--email", "dana@example.com", "--password-stdin"}, "at least 8 characters"},
		{"no email", "n3w-s3cret-pw\n", []string{"password", "--password-stdin"}, "--email is required"},
	} {
		if out, err := agentCmd(tt.stdin, tt.args...); err == nil || !strings.Contains(err.Error()+out, tt.want) {
			t.Errorf("password, %s: err %v, out %q; want an error mentioning %q", tt.name, err, out, tt.want)
		}
	}

	// A profile change: only the flags given change.
	if out, err := agentCmd("", "update", "--email", "dana@example.com", "--skills", "", "--max-chats", "5", "--name", "Dana K"); err != nil ||
		!strings.Contains(out, "updated agt_") || !strings.Contains(out, "Dana K <dana@example.com> (agent, max 5 chats, skills none, languages de,en)") {
		t.Fatalf("update: %v\n%s", err, out)
	}
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"nothing to change", []string{"update", "--email", "dana@example.com"}, "nothing to change"},
		{"bad role", []string{"update", "--email", "dana@example.com", "--role", "root"}, "agent, admin"},
		{"max chats 0", []string{"update", "--email", "dana@example.com", "--max-chats", "0"}, "1..100"},
		{"unknown email", []string{"update", "--email", "nobody@example.com", "--role", "admin"}, "no agent has the email"},
		{"bad new email", []string{"update", "--email", "dana@example.com", "--new-email", "nope"}, "invalid email"},
	} {
		if out, err := agentCmd("", tt.args...); err == nil || !strings.Contains(err.Error()+out, tt.want) {
			t.Errorf("update, %s: err %v, out %q; want an error mentioning %q", tt.name, err, out, tt.want)
		}
	}
	if out, err := agentCmd("", "update", "--email", "dana@example.com", "--max-chats", "4", "--skills", "billing,returns"); err != nil || !strings.Contains(out, "max 4 chats, skills billing,returns") {
		t.Fatalf("update back: %v\n%s", err, out)
	}

	// The server on the same database: Dana logs in and opens the console.
	m := bootServer(t, map[string]string{"DATABASE_URL": db.URL, "TANDEM_DEMO": "false"})
	base := m.URL()
	body := strings.NewReader(`{"email":"dana@example.com","password":"n3w-s3cret-pw"}`)
	resp, err := http.Post(base+"/api/v1/agents/login", "application/json", body)
	if err != nil {
		t.Fatal(err)
	}
	var lr console.LoginResponse
	_ = json.NewDecoder(resp.Body).Decode(&lr)
	resp.Body.Close()
	if resp.StatusCode != 200 || lr.Token == "" || lr.Agent.MaxChats != 4 {
		t.Fatalf("login: %d %+v", resp.StatusCode, lr)
	}
	d := websocket.Dialer{Subprotocols: []string{gateway.Subprotocol}, HandshakeTimeout: 5 * time.Second}
	ws, _, err := d.Dial(strings.Replace(base, "http", "ws", 1)+"/console/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	_ = ws.WriteJSON(map[string]any{"type": "hello", "token": lr.Token})
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	var welcome struct {
		Type  string            `json:"type"`
		Agent console.AgentView `json:"agent"`
	}
	if err := ws.ReadJSON(&welcome); err != nil || welcome.Type != "welcome" || welcome.Agent.Email != "dana@example.com" || !welcome.Agent.Connected {
		t.Fatalf("welcome: %+v %v", welcome, err)
	}
	// The admin API lists her from the database.
	req, _ := http.NewRequest("GET", base+"/api/v1/agents", nil)
	req.Header.Set("Authorization", "Bearer "+m.Config.AdminToken)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var page console.AgentsPage
	_ = json.NewDecoder(resp.Body).Decode(&page)
	resp.Body.Close()
	if len(page.Agents) != 1 || !page.Agents[0].Connected {
		t.Fatalf("agents: %+v", page)
	}
}
