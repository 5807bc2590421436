package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/tandem-chat/tandem/gateway"
	"github.com/tandem-chat/tandem/internal/testenv"
)

// TestServeWidget boots the real server and talks to it like the widget:
// demo page, session, WebSocket hello, a message stored and acknowledged,
// and the history API.
func TestServeWidget(t *testing.T) {
	lib := testenv.ONNXRuntimeLib(t)
	var stdout, stderr bytes.Buffer
	m := NewMain(&stdout, &stderr)
	if err := m.ParseFlags([]string{"--addr", "127.0.0.1:0"}, testGetenv(map[string]string{"ONNXRUNTIME_LIB": lib,
		"TANDEM_SITES": "shop=s3cret@https://shop.example"})); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	base := m.URL()
	resp, err := http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), `data-site-key="demo"`) {
		t.Fatalf("demo page: %d %.200s", resp.StatusCode, page)
	}
	req, _ := http.NewRequest("POST", base+"/v1/widget/session", strings.NewReader(`{"site_key":"demo"}`))
	req.Header.Set("Origin", base)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var s gateway.SessionResponse
	_ = json.NewDecoder(resp.Body).Decode(&s)
	resp.Body.Close()
	if resp.StatusCode != 200 || s.Token == "" {
		t.Fatalf("session: %d %+v", resp.StatusCode, s)
	}
	// The configured site refuses other origins.
	req, _ = http.NewRequest("POST", base+"/v1/widget/session", strings.NewReader(`{"site_key":"shop"}`))
	req.Header.Set("Origin", "https://evil.example")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 403 {
		t.Fatalf("foreign origin on shop: %v %v", resp.StatusCode, err)
	}
	d := websocket.Dialer{Subprotocols: []string{gateway.Subprotocol}}
	ws, _, err := d.Dial(strings.Replace(base, "http", "ws", 1)+s.WebSocketPath, http.Header{"Origin": {base}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_ = ws.WriteJSON(map[string]any{"type": "hello", "token": s.Token})
	_ = ws.WriteJSON(map[string]any{"type": "message", "client_id": "m1", "text": "hi"})
	for {
		var f map[string]any
		if err := ws.ReadJSON(&f); err != nil {
			t.Fatal(err)
		}
		if f["type"] == "ack" {
			if f["seq"] != 1.0 {
				t.Fatalf("ack = %v", f)
			}
			break
		}
	}
	hreq, _ := http.NewRequest("GET", base+"/v1/conversations/"+s.ConversationID+"/messages", nil)
	hreq.Header.Set("Authorization", "Bearer "+m.Config.AdminToken)
	resp, err = http.DefaultClient.Do(hreq)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"text":"hi"`) {
		t.Fatalf("history: %d %s", resp.StatusCode, body)
	}
	// Shutdown tells the client to reconnect.
	go m.Close()
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			if !websocket.IsCloseError(err, websocket.CloseServiceRestart) {
				t.Fatalf("close = %v, want 1012", err)
			}
			break
		}
	}
}

func TestParseSites(t *testing.T) {
	sites, err := parseSites("a=x@https://a.example,https://b.example; b=@*")
	if err != nil || len(sites) != 2 || len(sites["a"].AllowedOrigins) != 2 || string(sites["a"].Secret) != "x" || sites["b"].AllowedOrigins[0] != "*" {
		t.Fatalf("sites = %+v, %v", sites, err)
	}
	for _, bad := range []string{"a", "a=x", "=x@*", "a=x@*;a=y@*", "a=x@", "a b=x@*", "a=x@ftp://a.example",
		"a=x@https://a.example/path", "a=x@a.example"} {
		if _, err := parseSites(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	// A secret may hold '@' and '='; errors never show it.
	sites, err = parseSites("a=s3cr@t==@https://a.example/")
	if err != nil || string(sites["a"].Secret) != "s3cr@t==" {
		t.Fatalf("secret with @ and =: %+v, %v", sites, err)
	}
	for _, bad := range []string{"topsecret@https://a.example", "a=topsecret@https://a.example/p", "a=topsecret@",
		"a=Tr0ub4dor@topsecret" /* the origins forgotten: the secret's end taken for one */} {
		if _, err := parseSites(bad); err == nil || strings.Contains(err.Error(), "topsecret") {
			t.Errorf("%q: error %v shows the secret", bad, err)
		}
	}
	// Checked with the other settings, before anything is loaded.
	cfg := Config{Sites: "mysecret@https://a.example"}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "TANDEM_SITES") || strings.Contains(err.Error(), "mysecret") {
		t.Fatalf("Validate: %v", err)
	}
}
