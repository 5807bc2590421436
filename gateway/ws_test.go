package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/gateway"
)

func TestMessageAckAndBotAnswer(t *testing.T) {
	ts := startServer(t, serverOpts{})
	s := ts.session(t, nil)
	if s.Protocol != gateway.Subprotocol || s.ConversationID == "" || s.Token == "" || s.Customer.Verified {
		t.Fatalf("session = %+v", s)
	}
	c := ts.connect(t, s.Token, 0)
	c.send(map[string]any{"type": "message", "client_id": "m1", "text": "  where is my order?  "})
	// Frames of one connection may interleave (a log replay can deliver a
	// message before its ack); wait for everything expected.
	var ack frame
	var msgs []tandem.Message
	typing := false
	c.collect(func(f frame) bool {
		switch {
		case f.Type == "ack":
			ack = f
		case f.Type == "message":
			msgs = append(msgs, f.msg(t))
		case f.Type == "typing" && f.Author == "bot" && f.On:
			typing = true
		}
		return ack.Type != "" && len(msgs) == 2 && typing
	})
	if ack.ClientID != "m1" || ack.Seq != 1 || ack.Duplicate {
		t.Fatalf("ack = %s", ack.raw)
	}
	if m := msgs[0]; m.Seq != 1 || m.Text != "where is my order?" || m.Author != tandem.AuthorCustomer || m.ClientID != "m1" {
		t.Fatalf("own message = %+v", m)
	}
	m := msgs[1]
	if m.Seq != 2 || m.Author != tandem.AuthorBot || m.Text != "echo: where is my order?" || m.AuthorName != "Assistant" {
		t.Fatalf("bot message = %+v", m)
	}
	if src, _ := m.Data["sources"].([]any); len(src) != 1 || m.Data["reply_kind"] != "answer" {
		t.Fatalf("bot data = %#v", m.Data)
	}
	// Application heartbeat.
	c.send(map[string]any{"type": "ping", "id": "p1"})
	if f, _ := c.until(isType("pong")); f.ID != "p1" {
		t.Fatalf("pong = %s", f.raw)
	}
	// Quick replies.
	c.send(map[string]any{"type": "message", "client_id": "m2", "text": "help"})
	f, _ := c.until(messageFrom(tandem.AuthorBot))
	if qr, _ := f.msg(t).Data["quick_replies"].([]any); len(qr) != 2 || qr[0] != "Shipping" {
		t.Fatalf("quick replies = %#v", f.msg(t).Data)
	}
}

// TestPingFloodIsNotAnsweredInFull: pings beyond the per-connection budget
// are dropped unanswered and counted; the connection keeps working.
func TestPingFloodIsNotAnsweredInFull(t *testing.T) {
	ts := startServer(t, serverOpts{})
	s := ts.session(t, nil)
	c := ts.connect(t, s.Token, 0)
	const flood = 300
	for i := range flood {
		c.send(map[string]any{"type": "ping", "id": fmt.Sprint(i)})
	}
	// The message's ack comes after every pong the flood earned.
	c.send(map[string]any{"type": "message", "client_id": "after", "text": "still here"})
	_, before := c.until(func(f frame) bool { return f.Type == "ack" && f.ClientID == "after" })
	pongs := 0
	for _, f := range before {
		if f.Type == "pong" {
			pongs++
		}
	}
	if pongs == 0 || pongs >= flood {
		t.Fatalf("%d pongs for %d pings; want some answered and the flood dropped", pongs, flood)
	}
	code, body := ts.get(t, "/metrics", "")
	if code != 200 || !strings.Contains(body, `tandem_ws_rejected_total{limit="ping_rate"}`) {
		t.Fatalf("metrics (%d) lack the ping_rate rejections", code)
	}
}

// TestInvalidMessageErrorCarriesClientID: a message frame that fails
// validation (text empty once trimmed, here only U+0085) is answered with
// its client_id, so the client can fail that message instead of resending
// it on every reconnect; a frame whose client_id is itself bad gets none.
func TestInvalidMessageErrorCarriesClientID(t *testing.T) {
	ts := startServer(t, serverOpts{})
	s := ts.session(t, nil)
	c := ts.connect(t, s.Token, 0)
	c.send(map[string]any{"type": "message", "client_id": "e1", "text": "\u0085"})
	if f, _ := c.until(isType("error")); f.Code != tandem.EINVALID || f.ClientID != "e1" {
		t.Fatalf("error = %s", f.raw)
	}
	c.send(map[string]any{"type": "message", "client_id": "bad:id", "text": ""})
	if f, _ := c.until(isType("error")); f.ClientID != "" {
		t.Fatalf("error echoes an invalid client_id: %s", f.raw)
	}
}

func TestStreamedAnswer(t *testing.T) {
	ts := startServer(t, serverOpts{bot: streamBot{}})
	s := ts.session(t, nil)
	c := ts.connect(t, s.Token, 0)
	c.send(map[string]any{"type": "message", "client_id": "m1", "text": "one two three"})
	var text strings.Builder
	var final tandem.Message
	c.collect(func(f frame) bool {
		if f.Type == "delta" {
			if f.StreamID != "s1" {
				t.Fatalf("delta = %s", f.raw)
			}
			text.WriteString(f.Text)
		}
		if f.Type == "message" && f.msg(t).Author == tandem.AuthorBot {
			final = f.msg(t)
		}
		return final.Seq > 0 && text.Len() >= len(final.Text)
	})
	if text.String() != "echo: one two three" {
		t.Fatalf("deltas = %q", text.String())
	}
	if final.Text != text.String() || final.Data["stream_id"] != "s1" {
		t.Fatalf("final = %+v", final)
	}
}

func TestDuplicateClientIDAckedOnceProcessedOnce(t *testing.T) {
	ts := startServer(t, serverOpts{})
	s := ts.session(t, nil)
	c := ts.connect(t, s.Token, 0)
	c.send(map[string]any{"type": "message", "client_id": "same", "text": "hello"})
	c.until(messageFrom(tandem.AuthorBot))
	// The same client id again (e.g. resent after a reconnect) on another connection.
	c2 := ts.connect(t, s.Token, 2)
	c2.send(map[string]any{"type": "message", "client_id": "same", "text": "hello"})
	ack, _ := c2.until(isType("ack"))
	if ack.Seq != 1 || !ack.Duplicate {
		t.Fatalf("duplicate ack = %s", ack.raw)
	}
	c2.send(map[string]any{"type": "message", "client_id": "other", "text": "next"})
	f, _ := c2.until(messageFrom(tandem.AuthorBot))
	if m := f.msg(t); m.Seq != 4 || m.Text != "echo: next" {
		t.Fatalf("after duplicate: %+v (a duplicate was processed twice?)", m)
	}
	msgs, _ := ts.Log.Messages(context.Background(), s.ConversationID, 0, 100)
	if len(msgs) != 4 {
		t.Fatalf("log has %d messages, want 4", len(msgs))
	}
}

// TestReusedClientIDForAnotherMessage: a client_id names one message. A
// different message (other text, or a request for a person) under a used
// client_id is refused with conflict instead of being acknowledged as a
// duplicate and dropped; nothing is logged or escalated for it.
func TestReusedClientIDForAnotherMessage(t *testing.T) {
	ts := startServer(t, serverOpts{})
	s := ts.session(t, nil)
	c := ts.connect(t, s.Token, 0)
	c.send(map[string]any{"type": "message", "client_id": "k1", "text": "hello"})
	// Its ack and the bot's answer, in either order.
	acked, answered := false, false
	c.collect(func(f frame) bool {
		acked = acked || f.Type == "ack" && f.ClientID == "k1"
		answered = answered || f.Type == "message" && f.msg(t).Author == tandem.AuthorBot
		return acked && answered
	})
	for _, fr := range []map[string]any{
		{"type": "message", "client_id": "k1", "text": "something else"},
		{"type": "handoff_request", "client_id": "k1"},
	} {
		c.send(fr)
		f, _ := c.until(func(f frame) bool { return f.Type == "ack" || f.Type == "error" })
		if f.Type != "error" || f.Code != tandem.ECONFLICT || f.ClientID != "k1" {
			t.Fatalf("%v under a used client_id: %s", fr, f.raw)
		}
	}
	// The same message again is still a duplicate.
	c.send(map[string]any{"type": "message", "client_id": "k1", "text": "hello"})
	if f, _ := c.until(isType("ack")); !f.Duplicate || f.Seq != 1 {
		t.Fatalf("resend: %s", f.raw)
	}
	msgs, _ := ts.Log.Messages(context.Background(), s.ConversationID, 0, 100)
	if len(msgs) != 2 || len(ts.Handoff.escalated()) != 0 {
		t.Fatalf("log has %d messages (want 2), escalations %v", len(msgs), ts.Handoff.escalated())
	}
}

func TestResumeReplaysGapInOrder(t *testing.T) {
	ts := startServer(t, serverOpts{})
	s := ts.session(t, nil)
	c := ts.connect(t, s.Token, 0)
	for i := 1; i <= 3; i++ {
		c.send(map[string]any{"type": "message", "client_id": fmt.Sprint("m", i), "text": fmt.Sprint("msg ", i)})
		c.until(messageFrom(tandem.AuthorBot))
	}
	c.ws.Close()
	// Messages logged while the client is away (e.g. an agent writes).
	for i := 0; i < 3; i++ {
		if _, _, err := ts.Chat.PostMessage(context.Background(), tandem.Message{ConversationID: s.ConversationID, Author: tandem.AuthorAgent, Text: fmt.Sprint("agent ", i)}); err != nil {
			t.Fatal(err)
		}
	}
	c2 := ts.connect(t, s.Token, 4)
	for want := int64(5); want <= 9; want++ {
		f := c2.next()
		if f.Type != "message" || f.msg(t).Seq != want {
			t.Fatalf("replay: want seq %d, got %s", want, f.raw)
		}
	}
	// A session request with the stored token resumes the same conversation.
	s2 := ts.session(t, map[string]any{"site_key": testSite, "token": s.Token})
	if s2.ConversationID != s.ConversationID || s2.LastSeq != 9 {
		t.Fatalf("resume session = %+v", s2)
	}
	// Also once an agent closed it (a reload after the close keeps the
	// transcript and the customer; their next message reopens it). It
	// started a new conversation with a new anonymous customer.
	if _, err := ts.Log.SetMode(context.Background(), s.ConversationID, tandem.ModeClosed, ""); err != nil {
		t.Fatal(err)
	}
	s3 := ts.session(t, map[string]any{"site_key": testSite, "token": s.Token})
	if s3.ConversationID != s.ConversationID || s3.Customer.ID != s.Customer.ID || s3.Mode != tandem.ModeClosed || s3.LastSeq != 9 {
		t.Fatalf("resume a closed conversation = %+v, want %s of %s", s3, s.ConversationID, s.Customer.ID)
	}
}

func TestCustomerIsolation(t *testing.T) {
	ts := startServer(t, serverOpts{})
	alice := ts.session(t, nil)
	bob := ts.session(t, nil)
	if alice.ConversationID == bob.ConversationID || alice.Customer.ID == bob.Customer.ID {
		t.Fatal("two anonymous sessions share a conversation")
	}
	ca := ts.connect(t, alice.Token, 0)
	ca.send(map[string]any{"type": "message", "client_id": "a1", "text": "alice secret"})
	ca.until(messageFrom(tandem.AuthorBot))

	// Bob names Alice's conversation in a frame: refused, nothing stored.
	cb := ts.connect(t, bob.Token, 0)
	cb.send(map[string]any{"type": "message", "client_id": "b1", "text": "let me in", "conversation_id": alice.ConversationID})
	f, _ := cb.until(isType("error"))
	if f.Code != "forbidden" || f.ClientID != "b1" {
		t.Fatalf("cross-conversation write = %s", f.raw)
	}
	// Bob's hello naming Alice's conversation is refused and closed.
	c3, _, err := ts.dial(t, testSite, "")
	if err != nil {
		t.Fatal(err)
	}
	c3.send(map[string]any{"type": "hello", "token": bob.Token, "conversation_id": alice.ConversationID})
	if f := c3.next(); f.Type != "error" || f.Code != "forbidden" {
		t.Fatalf("hello into another conversation = %s", f.raw)
	}
	if code := c3.expectClose(); code != 4403 {
		t.Fatalf("close code = %d, want 4403", code)
	}
	// Forged token: Alice's conversation id signed with another secret.
	forger, _ := gateway.NewAuth([]byte(strings.Repeat("x", 40)), "", 0)
	forged, _ := forger.IssueCustomer(tandem.Conversation{ID: alice.ConversationID, SiteKey: testSite, Customer: alice.Customer})
	c4, _, _ := ts.dial(t, testSite, "")
	c4.send(map[string]any{"type": "hello", "token": forged})
	if f := c4.next(); f.Code != "unauthorized" {
		t.Fatalf("forged hello = %s", f.raw)
	}
	if code := c4.expectClose(); code != 4401 {
		t.Fatalf("forged close = %d, want 4401", code)
	}
	// A "none" algorithm token.
	c5, _, _ := ts.dial(t, testSite, "")
	c5.send(map[string]any{"type": "hello", "token": "eyJhbGciOiJub25lIn0.eyJyb2xlIjoiY3VzdG9tZXIifQ."})
	if f := c5.next(); f.Code != "unauthorized" {
		t.Fatalf("alg none hello = %s", f.raw)
	}
	// History API: Bob cannot read Alice's history, Alice can, an admin can.
	path := "/v1/conversations/" + alice.ConversationID + "/messages"
	if code, body := ts.get(t, path, bob.Token); code != 403 || strings.Contains(body, "alice secret") {
		t.Fatalf("bob reads alice: %d %s", code, body)
	}
	if code, _ := ts.get(t, path, forged); code != 401 {
		t.Fatalf("forged REST token: %d", code)
	}
	if code, _ := ts.get(t, path, ""); code != 401 {
		t.Fatalf("no token: %d", code)
	}
	if code, _ := ts.get(t, "/v1/conversations/c_doesnotexist/messages", bob.Token); code != 403 {
		t.Fatalf("bob probes unknown id: %d (must not reveal existence)", code)
	}
	code, body := ts.get(t, path, alice.Token)
	var page gateway.MessagesPage
	_ = json.Unmarshal([]byte(body), &page)
	if code != 200 || len(page.Messages) != 2 || page.Messages[0].Text != "alice secret" {
		t.Fatalf("alice history: %d %s", code, body)
	}
	if code, _ := ts.get(t, path, testAdmin); code != 200 {
		t.Fatalf("admin token: %d", code)
	}
	// Agents: only when assigned.
	agent, _ := ts.Auth.IssueStaff("agent-7", "Sam", gateway.RoleAgent, "", time.Hour)
	if code, _ := ts.get(t, path, agent); code != 403 {
		t.Fatalf("unassigned agent: %d", code)
	}
	if err := ts.Chat.HandoffStatus(context.Background(), alice.ConversationID, gateway.HandoffStatus{Status: gateway.HandoffAssigned, AgentID: "agent-7", AgentName: "Sam"}); err != nil {
		t.Fatal(err)
	}
	if code, body := ts.get(t, path+"?after=1&limit=1", agent); code != 200 || !strings.Contains(body, `"seq":2`) || !strings.Contains(body, `"next_after":2`) {
		t.Fatalf("assigned agent page: %d %s", code, body)
	}
	adminJWT, _ := ts.Auth.IssueStaff("root", "Root", gateway.RoleAdmin, "", time.Hour)
	if code, _ := ts.get(t, "/v1/conversations/"+bob.ConversationID, adminJWT); code != 200 {
		t.Fatalf("admin JWT: %d", code)
	}
	// Nothing of Bob's attempts was stored in either conversation.
	for _, id := range []string{alice.ConversationID, bob.ConversationID} {
		msgs, _ := ts.Log.Messages(context.Background(), id, 0, 100)
		for _, m := range msgs {
			if m.ClientID == "b1" {
				t.Fatalf("refused message stored in %s", id)
			}
		}
	}
}

// TestReservedClientIDs: a customer cannot use the idempotency keys of the
// messages the server writes itself ("bot:<seq>" ...), which would make
// the bot's answer to that message look like a duplicate and drop it.
func TestReservedClientIDs(t *testing.T) {
	ts := startServer(t, serverOpts{})
	s := ts.session(t, nil)
	c := ts.connect(t, s.Token, 0)
	for _, raw := range []string{
		`{"type":"message","client_id":"bot:2","text":"x"}`,
		`{"type":"handoff_request","client_id":"agent:x"}`,
		`{"type":"contact","client_id":"contact:k","address":"ann@example.com"}`,
		`{"type":"handoff_cancel","client_id":"cancel:k"}`,
		`{"type":"handoff_cancel"}`,
	} {
		c.sendRaw(websocket.TextMessage, []byte(raw))
		if f := c.next(); f.Type != "error" || f.Code != "invalid" {
			t.Fatalf("%s: got %s, want error invalid", raw, f.raw)
		}
	}
}

func TestBadInput(t *testing.T) {
	ts := startServer(t, serverOpts{cfg: gateway.ChatConfig{MaxFrameBytes: 1024}})
	s := ts.session(t, nil)
	cases := []struct {
		name string
		mt   int
		data string
		code string
	}{
		{"malformed json", websocket.TextMessage, `{"type":"message",`, "invalid"},
		{"not an object", websocket.TextMessage, `[1,2,3]`, "invalid"},
		{"wrong field type", websocket.TextMessage, `{"type":"message","client_id":7,"text":"x"}`, "invalid"},
		{"text wrong type", websocket.TextMessage, `{"type":"message","client_id":"a","text":{"x":1}}`, "invalid"},
		{"unknown type", websocket.TextMessage, `{"type":"launch_missiles"}`, "invalid"},
		{"no type", websocket.TextMessage, `{"text":"hi"}`, "invalid"},
		{"empty text", websocket.TextMessage, `{"type":"message","client_id":"a","text":"   "}`, "invalid"},
		{"bad client id", websocket.TextMessage, `{"type":"message","client_id":"a b<script>","text":"x"}`, "invalid"},
		{"invalid utf8", websocket.TextMessage, "{\"type\":\"message\",\"client_id\":\"a\",\"text\":\"\xff\xfe\"}", "invalid"},
		{"binary frame", websocket.BinaryMessage, `{"type":"ping"}`, "invalid"},
		{"trailing data", websocket.TextMessage, `{"type":"ping"} {"type":"ping"}`, "invalid"},
		{"typing without on", websocket.TextMessage, `{"type":"typing"}`, "invalid"},
		{"contact without address", websocket.TextMessage, `{"type":"contact","client_id":"k"}`, "invalid"},
		{"contact blank address", websocket.TextMessage, `{"type":"contact","client_id":"k","address":"  "}`, "invalid"},
		{"contact without client id", websocket.TextMessage, `{"type":"contact","address":"ann@example.com"}`, "invalid"},
		{"contact address wrong type", websocket.TextMessage, `{"type":"contact","client_id":"k","address":["ann@example.com"]}`, "invalid"},
		{"contact address too long", websocket.TextMessage, `{"type":"contact","client_id":"k","address":"` + strings.Repeat("a", 250) + `@x.io"}`, "invalid"},
		{"contact address control char", websocket.TextMessage, `{"type":"contact","client_id":"k","address":"ann@example.com\r\nBcc: x@y.z"}`, "invalid"},
		{"contact invalid utf8", websocket.TextMessage, "{\"type\":\"contact\",\"client_id\":\"k\",\"address\":\"\xff@x.io\"}", "invalid"},
		{"contact of another conversation", websocket.TextMessage, `{"type":"contact","client_id":"k","address":"ann@example.com","conversation_id":"c_someone_else"}`, "forbidden"},
		// A valid frame, but this server's handoff cannot take contacts.
		{"contact without a contact-taking handoff", websocket.TextMessage, `{"type":"contact","client_id":"k","address":"ann@example.com"}`, "unavailable"},
	}
	c := ts.connect(t, s.Token, 0)
	for _, tc := range cases {
		c.sendRaw(tc.mt, []byte(tc.data))
		f := c.next()
		if f.Type != "error" || f.Code != tc.code {
			t.Fatalf("%s: got %s, want error %s", tc.name, f.raw, tc.code)
		}
	}
	// The connection still works after bad frames.
	c.send(map[string]any{"type": "message", "client_id": "ok", "text": "still here"})
	if ack, _ := c.until(isType("ack")); ack.Seq != 1 {
		t.Fatalf("ack after bad input = %s", ack.raw)
	}
	// Oversized frame: closed with 1009, nothing stored.
	c.send(map[string]any{"type": "message", "client_id": "big", "text": strings.Repeat("a", 2000)})
	if code := c.expectClose(); code != websocket.CloseMessageTooBig {
		t.Fatalf("oversized close = %d", code)
	}
	// Too many invalid frames: closed with 4400.
	c2 := ts.connect(t, s.Token, 0)
	closed := 0
	for i := 0; i < 30 && closed == 0; i++ {
		_ = c2.ws.WriteMessage(websocket.TextMessage, []byte(`nonsense`))
	}
	if code := c2.expectClose(); code != 4400 {
		t.Fatalf("invalid flood close = %d", code)
	}
	// A frame before hello: unauthorized.
	c3, _, _ := ts.dial(t, testSite, "")
	c3.send(map[string]any{"type": "message", "client_id": "x", "text": "hi"})
	if f := c3.next(); f.Code != "unauthorized" {
		t.Fatalf("pre-hello message = %s", f.raw)
	}
	if code := c3.expectClose(); code != 4401 {
		t.Fatalf("pre-hello close = %d", code)
	}
	msgs, _ := ts.Log.Messages(context.Background(), s.ConversationID, 0, 100)
	for _, m := range msgs {
		if m.ClientID != "ok" && m.Author == tandem.AuthorCustomer {
			t.Fatalf("bad input stored: %+v", m)
		}
	}
	// Bad session requests.
	for _, body := range []any{"nope", map[string]any{}, map[string]any{"site_key": "no-such-site"}, map[string]any{"site_key": "../../etc"}} {
		if code, raw := ts.post(t, "/v1/widget/session", body, ts.URL); code == 200 || !strings.Contains(raw, `"code"`) {
			t.Fatalf("bad session %v accepted: %d %s", body, code, raw)
		}
	}
	// A body over the limit is 413, with the limit in the message.
	if code, raw := ts.post(t, "/v1/widget/session", map[string]any{"site_key": testSite, "pad": strings.Repeat("x", 2<<20)}, ts.URL); code != 413 || !strings.Contains(raw, "larger than 8192 bytes") {
		t.Fatalf("2 MiB session request: %d %s, want 413", code, raw)
	}
}

func TestOriginAllowListAndIdentity(t *testing.T) {
	ts := startServer(t, serverOpts{})
	// The shop site allows only https://shop.example.
	if code, _ := ts.post(t, "/v1/widget/session", map[string]any{"site_key": testSiteKey2}, "https://evil.example"); code != 403 {
		t.Fatalf("foreign origin session = %d", code)
	}
	if _, resp, err := ts.dial(t, testSiteKey2, "https://evil.example"); err == nil || resp == nil || resp.StatusCode != 403 {
		t.Fatalf("foreign origin websocket upgraded (err %v)", err)
	}
	// Verified identity: right signature.
	sig := gateway.SignIdentity([]byte(testSiteSecret), "user-42")
	code, raw := ts.post(t, "/v1/widget/session", map[string]any{"site_key": testSiteKey2,
		"identity": map[string]any{"user_id": "user-42", "name": "Ada", "signature": sig}}, "https://shop.example")
	var s gateway.SessionResponse
	_ = json.Unmarshal([]byte(raw), &s)
	if code != 200 || !s.Customer.Verified || s.Customer.ID != "u:user-42" || s.Customer.Name != "Ada" {
		t.Fatalf("verified session = %d %s", code, raw)
	}
	// The same verified user on another device resumes the same conversation.
	_, raw2 := ts.post(t, "/v1/widget/session", map[string]any{"site_key": testSiteKey2,
		"identity": map[string]any{"user_id": "user-42", "signature": sig}}, "https://shop.example")
	var s2 gateway.SessionResponse
	_ = json.Unmarshal([]byte(raw2), &s2)
	if s2.ConversationID != s.ConversationID {
		t.Fatalf("verified user got a new conversation: %s vs %s", s2.ConversationID, s.ConversationID)
	}
	// Once it is closed: a new session starts a new conversation; the old
	// device's token then resumes that open one, not the closed one.
	// Without the identity (the customer signed out of the site; the next
	// person at the browser still has the token) the token resumes
	// nothing: a new anonymous conversation.
	if _, err := ts.Log.SetMode(context.Background(), s.ConversationID, tandem.ModeClosed, ""); err != nil {
		t.Fatal(err)
	}
	verified := func(body map[string]any) gateway.SessionResponse {
		t.Helper()
		body["site_key"] = testSiteKey2
		body["identity"] = map[string]any{"user_id": "user-42", "signature": sig}
		code, raw := ts.post(t, "/v1/widget/session", body, "https://shop.example")
		var out gateway.SessionResponse
		if err := json.Unmarshal([]byte(raw), &out); code != 200 || err != nil {
			t.Fatalf("session: %d %s", code, raw)
		}
		return out
	}
	fresh := verified(map[string]any{})
	if fresh.ConversationID == s.ConversationID || fresh.Mode == tandem.ModeClosed {
		t.Fatalf("new device after the close = %+v, want a new open conversation", fresh)
	}
	if back := verified(map[string]any{"token": s.Token}); back.ConversationID != fresh.ConversationID {
		t.Fatalf("old device's closed token = %s, want the open %s", back.ConversationID, fresh.ConversationID)
	}
	for _, tok := range []string{s.Token, fresh.Token} {
		code, raw = ts.post(t, "/v1/widget/session", map[string]any{"site_key": testSiteKey2, "token": tok}, "https://shop.example")
		var alone gateway.SessionResponse
		if _ = json.Unmarshal([]byte(raw), &alone); code != 200 || alone.ConversationID == s.ConversationID || alone.ConversationID == fresh.ConversationID ||
			alone.Customer.Verified || alone.Customer.Name != "" || alone.LastSeq != 0 {
			t.Fatalf("a signed-in customer's token without the identity = %d %s, want a new anonymous conversation", code, raw)
		}
	}
	// Wrong signature (e.g. signed for another user).
	bad := gateway.SignIdentity([]byte(testSiteSecret), "user-43")
	if code, _ := ts.post(t, "/v1/widget/session", map[string]any{"site_key": testSiteKey2,
		"identity": map[string]any{"user_id": "user-42", "signature": bad}}, "https://shop.example"); code != 401 {
		t.Fatalf("bad signature = %d", code)
	}
	// A token for one site is not valid on another.
	c, _, err := ts.dial(t, testSite, "")
	if err != nil {
		t.Fatal(err)
	}
	c.send(map[string]any{"type": "hello", "token": s.Token})
	if f := c.next(); f.Code != "unauthorized" {
		t.Fatalf("cross-site token = %s", f.raw)
	}
}

// A widget on another site can read the session endpoint's refusals (the
// CORS header is on errors too): it showed "Offline — reconnecting…" and
// retried forever on an unknown site key or a foreign origin, since the
// browser hid the answer from it.
func TestSessionErrorsReadableCrossOrigin(t *testing.T) {
	ts := startServer(t, serverOpts{})
	for _, tc := range []struct {
		body   string
		origin string
		code   int
	}{
		{`{"site_key":"` + testSiteKey2 + `"}`, "https://evil.example", 403},
		{`{"site_key":"no-such-site"}`, "https://shop.example", 404},
		{`{"site_key":`, "https://shop.example", 400},
	} {
		req, _ := http.NewRequest("POST", ts.URL+"/v1/widget/session", strings.NewReader(tc.body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", tc.origin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || resp.Header.Get("Access-Control-Allow-Origin") != tc.origin {
			t.Errorf("%s from %s: %d, Access-Control-Allow-Origin %q: %s", tc.body, tc.origin, resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"), raw)
		}
	}
}

// A site can sign a customer's tier with their user id: a VIP customer is
// one (case-insensitively), and the tier cannot be claimed without the
// site's signature or with a malformed name.
func TestIdentityTier(t *testing.T) {
	ts := startServer(t, serverOpts{})
	session := func(id map[string]any) (int, gateway.SessionResponse, string) {
		code, raw := ts.post(t, "/v1/widget/session", map[string]any{"site_key": testSiteKey2, "identity": id}, "https://shop.example")
		var s gateway.SessionResponse
		_ = json.Unmarshal([]byte(raw), &s)
		return code, s, raw
	}
	secret := []byte(testSiteSecret)
	code, s, raw := session(map[string]any{"user_id": "vip-1", "tier": "VIP", "signature": gateway.SignIdentityTier(secret, "vip-1", "VIP")})
	if code != 200 || s.Customer.Tier != "vip" || !s.Customer.VIP() || !s.Customer.Verified {
		t.Fatalf("signed VIP session = %d %s", code, raw)
	}
	// The tier is part of what is signed: the plain user-id signature does
	// not carry it, and a tier signature does not fit another tier.
	if code, _, raw := session(map[string]any{"user_id": "vip-2", "tier": "vip", "signature": gateway.SignIdentity(secret, "vip-2")}); code != 401 {
		t.Fatalf("tier without its signature = %d %s", code, raw)
	}
	if code, _, raw := session(map[string]any{"user_id": "vip-2", "tier": "vip", "signature": gateway.SignIdentityTier(secret, "vip-2", "gold")}); code != 401 {
		t.Fatalf("tier signed as another = %d %s", code, raw)
	}
	for _, bad := range []string{"v i p", "vip\n", strings.Repeat("a", 33), "vïp"} {
		if code, _, raw := session(map[string]any{"user_id": "vip-3", "tier": bad, "signature": gateway.SignIdentityTier(secret, "vip-3", bad)}); code != 400 {
			t.Fatalf("tier %q = %d %s", bad, code, raw)
		}
	}
	// Without a tier, the signature is the plain one, as before.
	if code, s, raw := session(map[string]any{"user_id": "plain", "signature": gateway.SignIdentity(secret, "plain")}); code != 200 || s.Customer.Tier != "" || s.Customer.VIP() {
		t.Fatalf("plain session = %d %s", code, raw)
	}
}

func TestRateLimitFlood(t *testing.T) {
	ts := startServer(t, serverOpts{cfg: gateway.ChatConfig{ConvRate: 0.001, ConvBurst: 3, MaxRejects: 5}})
	s := ts.session(t, nil)
	c := ts.connect(t, s.Token, 0)
	for i := 0; i < 20; i++ {
		b, _ := json.Marshal(map[string]any{"type": "message", "client_id": fmt.Sprint("f", i), "text": "spam"})
		if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
			break
		}
	}
	acks, limited := 0, 0
	for {
		f, err := c.read(10 * time.Second)
		if err != nil {
			ce, ok := err.(*websocket.CloseError)
			if !ok || ce.Code != 4429 {
				t.Fatalf("flood ended with %v, want close 4429", err)
			}
			break
		}
		switch {
		case f.Type == "ack":
			acks++
		case f.Type == "error" && f.Code == "overloaded":
			if f.RetryAfterMS <= 0 || f.ClientID == "" {
				t.Fatalf("overloaded frame = %s", f.raw)
			}
			limited++
		}
	}
	if acks != 3 || limited != 5 {
		t.Fatalf("acks %d, rate-limited %d; want 3 and 5", acks, limited)
	}
	msgs, _ := ts.Log.Messages(context.Background(), s.ConversationID, 0, 100)
	customer := 0
	for _, m := range msgs {
		if m.Author == tandem.AuthorCustomer {
			customer++
		}
	}
	if customer != 3 {
		t.Fatalf("stored %d customer messages, want 3", customer)
	}
}

func TestEscalationAndHandoffStatus(t *testing.T) {
	ts := startServer(t, serverOpts{})
	s := ts.session(t, nil)
	c := ts.connect(t, s.Token, 0)
	c.send(map[string]any{"type": "handoff_request", "client_id": "h1"})
	if f, _ := c.until(isType("handoff")); f.Status != "queued" {
		t.Fatalf("handoff frame = %s", f.raw)
	}
	// The queued frame goes out as the escalation starts; wait for it to land.
	for len(ts.Handoff.escalated()) == 0 {
		time.Sleep(time.Millisecond)
	}
	if got := ts.Handoff.escalated(); len(got) != 1 || got[0] != s.ConversationID {
		t.Fatalf("escalated = %v", got)
	}
	// The mode changes once the handoff has the ticket (Escalate returned).
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		conv, _ := ts.Log.Conversation(context.Background(), s.ConversationID)
		if conv.Mode == tandem.ModeQueued {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("mode = %s, want queued", conv.Mode)
		}
	}
	// The engine reports a queue position, then an assignment.
	ctx := context.Background()
	_ = ts.Chat.HandoffStatus(ctx, s.ConversationID, gateway.HandoffStatus{Status: gateway.HandoffQueued, Position: 2, EstimatedWait: 90 * time.Second})
	f, _ := c.until(func(f frame) bool { return f.Type == "handoff" && strings.Contains(string(f.raw), `"position":2`) })
	if !strings.Contains(string(f.raw), `"estimated_wait_s":90`) {
		t.Fatalf("queued frame = %s", f.raw)
	}
	_ = ts.Chat.HandoffStatus(ctx, s.ConversationID, gateway.HandoffStatus{Status: gateway.HandoffAssigned, AgentID: "agent-secret-id", AgentName: "Sam"})
	note, _ := c.until(messageFrom(tandem.AuthorSystem))
	if !strings.Contains(note.msg(t).Text, "Sam") {
		t.Fatalf("assignment note = %s", note.raw)
	}
	if f, _ := c.until(isType("handoff")); f.Status != "assigned" || strings.Contains(string(f.raw), "agent-secret-id") {
		t.Fatalf("assigned frame = %s (must not expose the agent id)", f.raw)
	}
	// In human mode the bot stays quiet; the agent's message reaches the customer.
	c.send(map[string]any{"type": "message", "client_id": "x1", "text": "hi agent"})
	c.until(isType("ack"))
	if _, _, err := ts.Chat.PostMessage(ctx, tandem.Message{ConversationID: s.ConversationID, Author: tandem.AuthorAgent, AuthorID: "agent-secret-id", AuthorName: "Sam", Text: "hello, Sam here"}); err != nil {
		t.Fatal(err)
	}
	f, skipped := c.until(messageFrom(tandem.AuthorAgent))
	for _, x := range skipped {
		if x.Type == "message" && x.msg(t).Author == tandem.AuthorBot {
			t.Fatalf("bot answered in human mode: %s", x.raw)
		}
	}
	if f.msg(t).Text != "hello, Sam here" || strings.Contains(string(f.raw), "agent-secret-id") {
		t.Fatalf("agent message = %s (must not expose the agent id)", f.raw)
	}
	// Nor in a replay, nor in the customer's history API.
	replay := ts.connect(t, s.Token, 0)
	if f, _ := replay.until(messageFrom(tandem.AuthorAgent)); strings.Contains(string(f.raw), "agent-secret-id") {
		t.Fatalf("replayed agent message = %s", f.raw)
	}
	for _, path := range []string{"/v1/conversations/" + s.ConversationID, "/v1/conversations/" + s.ConversationID + "/messages"} {
		if code, body := ts.get(t, path, s.Token); code != 200 || strings.Contains(body, "agent-secret-id") {
			t.Fatalf("GET %s: %d %s", path, code, body)
		}
	}
	// Back to the bot.
	_ = ts.Chat.HandoffStatus(ctx, s.ConversationID, gateway.HandoffStatus{Status: gateway.HandoffReturned})
	c.until(func(f frame) bool { return f.Type == "handoff" && f.Status == "returned" })
	c.send(map[string]any{"type": "message", "client_id": "x2", "text": "bot again"})
	if f, _ := c.until(messageFrom(tandem.AuthorBot)); f.msg(t).Text != "echo: bot again" {
		t.Fatalf("after return = %s", f.raw)
	}
}

func TestTypingAndReadReachOthersNotSender(t *testing.T) {
	ts := startServer(t, serverOpts{})
	s := ts.session(t, nil)
	tab1 := ts.connect(t, s.Token, 0)
	tab2 := ts.connect(t, s.Token, 0)
	// An "agent console" subscriber through the hub.
	sub := &collector{ch: make(chan *gateway.Event, 16)}
	unsub, err := ts.Chat.Hub().Subscribe(s.ConversationID, sub)
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	tab1.send(map[string]any{"type": "message", "client_id": "m1", "text": "hi"})
	tab2.until(func(f frame) bool { return f.Type == "message" && f.msg(t).Seq == 1 })
	// A read mark past the end of the log is not relayed (an agent would
	// see messages not yet written as read).
	tab1.send(map[string]any{"type": "read", "seq": 99})
	tab1.send(map[string]any{"type": "typing", "on": true})
	tab1.send(map[string]any{"type": "read", "seq": 1})
	f, skipped := tab2.until(func(f frame) bool { return f.Type == "typing" && f.Author == "customer" })
	if !f.On {
		t.Fatalf("tab2 typing = %s", f.raw)
	}
	f, more := tab2.until(func(f frame) bool { return f.Type == "read" })
	if f.Seq != 1 {
		t.Fatalf("tab2 read = %s", f.raw)
	}
	for _, g := range append(skipped, more...) {
		if g.Type == "read" {
			t.Fatalf("tab2 got %s", g.raw)
		}
	}
	for ev := range sub.ch {
		if strings.Contains(string(ev.Frame), `"typing"`) {
			break
		}
		if strings.Contains(string(ev.Frame), `"seq":99`) {
			t.Fatalf("subscriber got %s", ev.Frame)
		}
	}
	tab1.send(map[string]any{"type": "ping", "id": "x"})
	_, own := tab1.until(func(f frame) bool { return f.Type == "pong" })
	for _, g := range own {
		if (g.Type == "typing" || g.Type == "read") && g.Author == "customer" {
			t.Fatalf("sender got its own ephemeral frame: %s", g.raw)
		}
	}
}

// TestTypingFloodDoesNotCutOffOthers: a client flooding typing frames is
// limited at its own connection, and the other side of the conversation is
// neither flooded nor closed as a slow consumer; messages still flow.
func TestTypingFloodDoesNotCutOffOthers(t *testing.T) {
	ts := startServer(t, serverOpts{})
	s := ts.session(t, nil)
	flooder := ts.connect(t, s.Token, 0)
	other := ts.connect(t, s.Token, 0)
	const n = 2000
	for i := range n {
		flooder.send(map[string]any{"type": "typing", "on": i%2 == 0})
	}
	flooder.send(map[string]any{"type": "message", "client_id": "after-flood", "text": "still there?"})
	typing := 0
	_, skipped := other.until(func(f frame) bool {
		return f.Type == "message" && f.msg(t).Author == tandem.AuthorCustomer && f.msg(t).Text == "still there?"
	})
	for _, f := range skipped {
		if f.Type == "typing" && f.Author == "customer" {
			typing++
		}
	}
	if typing >= n/10 {
		t.Fatalf("other tab got %d of %d typing frames: the sender was not limited", typing, n)
	}
	other.send(map[string]any{"type": "ping", "id": "alive"})
	other.until(func(f frame) bool { return f.Type == "pong" })
}

// TestHelloDeadlineHolds: a socket that never says hello is cut off at the
// hello deadline even while it answers pings and sends pongs, and a
// malformed first frame closes it as unauthorized at once.
func TestHelloDeadlineHolds(t *testing.T) {
	ts := startServer(t, serverOpts{cfg: gateway.ChatConfig{HelloTimeout: 300 * time.Millisecond, PingInterval: 50 * time.Millisecond}})
	c, _, err := ts.dial(t, testSite, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.ws.Close()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				if c.ws.WriteControl(websocket.PongMessage, nil, time.Now().Add(time.Second)) != nil {
					return
				}
			}
		}
	}()
	for {
		// The client library answers the server's pings while reading.
		_, err := c.read(10 * time.Second)
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("a socket without hello is still open after 10s: %v", err)
		}
		// Closed by the server with a code (it dropped the connection:
		// 1006, no reason).
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != gateway.WSCloseCode(tandem.EUNAUTHORIZED) {
			t.Fatalf("no hello in time: %v, want close %d", err, gateway.WSCloseCode(tandem.EUNAUTHORIZED))
		}
		break
	}

	for _, first := range []string{`{"type":"nope"}`, `{not json`, `{"type":"message","text":"hi"}`} {
		c, _, err := ts.dial(t, testSite, "")
		if err != nil {
			t.Fatal(err)
		}
		c.sendRaw(websocket.TextMessage, []byte(first))
		if code := c.expectClose(); code != gateway.WSCloseCode(tandem.EUNAUTHORIZED) {
			t.Errorf("first frame %s: close %d, want %d", first, code, gateway.WSCloseCode(tandem.EUNAUTHORIZED))
		}
		c.ws.Close()
	}
}

type collector struct{ ch chan *gateway.Event }

func (c *collector) Deliver(ev *gateway.Event) {
	select {
	case c.ch <- ev:
	default:
	}
}

func TestShutdownTellsClientsToReconnect(t *testing.T) {
	ts := startServer(t, serverOpts{})
	s := ts.session(t, nil)
	c := ts.connect(t, s.Token, 0)
	c.send(map[string]any{"type": "message", "client_id": "m1", "text": "bye"})
	c.until(isType("ack"))
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- ts.Server.Shutdown(ctx)
	}()
	if code := c.expectClose(); code != websocket.CloseServiceRestart {
		t.Fatalf("close = %d, want 1012", code)
	}
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if ts.Chat.Connections() != 0 {
		t.Fatalf("%d connections left after shutdown", ts.Chat.Connections())
	}
}

func TestWidgetAssetsAndDemoPage(t *testing.T) {
	ts := startServer(t, serverOpts{})
	resp, err := http.Get(ts.URL + "/widget.js")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") || resp.Header.Get("ETag") == "" {
		t.Fatalf("widget.js: %d %v", resp.StatusCode, resp.Header)
	}
	code, body := ts.get(t, "/", "")
	if code != 200 || !strings.Contains(body, `data-site-key="demo"`) || !strings.Contains(body, `src="/widget.js"`) {
		t.Fatalf("demo page: %d %.300s", code, body)
	}
}

// TestBinaryFrameBeforeHello: the first frame must be a hello; a binary
// first frame is refused like any other (error, close 4401, as
// protocol.md says) instead of leaving an unauthenticated connection open
// until the hello deadline.
func TestBinaryFrameBeforeHello(t *testing.T) {
	ts := startServer(t, serverOpts{})
	c, _, err := ts.dial(t, testSite, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.ws.Close()
	c.sendRaw(websocket.BinaryMessage, []byte(`{"type":"hello"}`))
	if f := c.next(); f.Type != "error" || f.Code != "invalid" {
		t.Fatalf("binary first frame answered %s", f.raw)
	}
	if code := c.expectClose(); code != 4401 {
		t.Fatalf("binary first frame: close %d, want 4401", code)
	}
}

// TestIdleAfterHelloOutlivesHelloDeadline: an authenticated connection
// that stays quiet after its hello is kept until PongWait, not cut off at
// the hello deadline (the deadline set for the hello frame itself was
// still the hello deadline, so a widget idle after connecting was dropped
// HelloTimeout after it connected).
func TestIdleAfterHelloOutlivesHelloDeadline(t *testing.T) {
	ts := startServer(t, serverOpts{cfg: gateway.ChatConfig{HelloTimeout: 300 * time.Millisecond}})
	s := ts.session(t, nil)
	c := ts.connect(t, s.Token, 0)
	time.Sleep(900 * time.Millisecond) // quiet for three hello deadlines
	c.send(map[string]any{"type": "message", "client_id": "m1", "text": "still here?"})
	if f := c.next(); f.Type != "ack" && f.Type != "message" {
		t.Fatalf("after an idle second: %s", f.raw)
	}
}

// TestLongStreamToBusyClient: a long streamed answer reaching a client
// that does not read for a moment must not close it as a slow consumer
// (deltas were never dropped, so a burst of them overflowed the send
// queue): the stream's later deltas are left out and the final message
// carries the whole answer.
func TestLongStreamToBusyClient(t *testing.T) {
	ts := startServer(t, serverOpts{bot: streamBot{}})
	s := ts.session(t, nil)
	c := ts.connect(t, s.Token, 0)
	text := strings.TrimSpace(strings.Repeat("a ", 1500))
	c.send(map[string]any{"type": "message", "client_id": "m1", "text": text})
	time.Sleep(200 * time.Millisecond) // the client is busy
	var got strings.Builder
	for {
		f, err := c.read(10 * time.Second)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if f.Type == "delta" {
			got.WriteString(f.Text)
		}
		if f.Type == "message" && f.msg(t).Author == tandem.AuthorBot {
			if m := f.msg(t); m.Text != "echo: "+text {
				t.Fatalf("final answer %q", m.Text)
			}
			break
		}
	}
	// What was streamed is a prefix of the answer: no holes.
	if !strings.HasPrefix("echo: "+text, got.String()) {
		t.Fatalf("streamed preview %q is not a prefix of the answer", got.String())
	}
}

// TestSessionRateLimitSaysWhen: a session request over the per-address
// rate is refused 429 with Retry-After (it had none: clients guessed).
func TestSessionRateLimitSaysWhen(t *testing.T) {
	ts := startServer(t, serverOpts{cfg: gateway.ChatConfig{IPRate: 0.01, IPBurst: 1}})
	ts.session(t, nil)
	req, _ := http.NewRequest("POST", ts.URL+"/v1/widget/session", strings.NewReader(`{"site_key":"`+testSite+`"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", ts.URL)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" || resp.Header.Get("Retry-After") == "0" {
		t.Fatalf("%d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}
