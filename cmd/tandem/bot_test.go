package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/gateway"
	"github.com/tandem-chat/tandem/internal/testenv"
	"github.com/tandem-chat/tandem/models"
)

// bootServer starts the real server on :0 with env (plus the ONNX Runtime
// library and the trained models) and closes it at the end of the test.
func bootServer(t *testing.T, env map[string]string, args ...string) *Main {
	t.Helper()
	if env == nil {
		env = map[string]string{}
	}
	env["ONNXRUNTIME_LIB"] = testenv.ONNXRuntimeLib(t)
	env["TANDEM_MODEL_DIR"] = testenv.ModelDir(t)
	var stdout, stderr syncBuffer
	m := NewMain(&stdout, &stderr)
	if err := m.ParseFlags(append([]string{"--addr", "127.0.0.1:0"}, args...), testGetenv(env)); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(context.Background()); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// widgetClient is a customer connected like the widget.
type widgetClient struct {
	t    *testing.T
	ws   *websocket.Conn
	conv string
	n    int
}

func dialWidget(t *testing.T, base string) *widgetClient {
	t.Helper()
	return dialWidgetLocale(t, base, "")
}

// dialWidgetLocale is dialWidget for a browser whose language is locale.
func dialWidgetLocale(t *testing.T, base, locale string) *widgetClient {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"site_key": "demo", "locale": locale})
	req, _ := http.NewRequest("POST", base+"/v1/widget/session", bytes.NewReader(body))
	req.Header.Set("Origin", base)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var s gateway.SessionResponse
	_ = json.NewDecoder(resp.Body).Decode(&s)
	resp.Body.Close()
	if resp.StatusCode != 200 || s.Token == "" {
		t.Fatalf("session: %d %+v", resp.StatusCode, s)
	}
	d := websocket.Dialer{Subprotocols: []string{gateway.Subprotocol}}
	ws, _, err := d.Dial(strings.Replace(base, "http", "ws", 1)+s.WebSocketPath, http.Header{"Origin": {base}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	if err := ws.WriteJSON(map[string]any{"type": "hello", "token": s.Token}); err != nil {
		t.Fatal(err)
	}
	return &widgetClient{t: t, ws: ws, conv: s.ConversationID}
}

// ask sends text and returns the bot's answer (the first bot message
// frame) and the handoff frames seen before it.
func (c *widgetClient) ask(text string) (tandem.Message, []map[string]any) {
	c.t.Helper()
	c.n++
	if err := c.ws.WriteJSON(map[string]any{"type": "message", "client_id": fmt.Sprintf("m%d", c.n), "text": text}); err != nil {
		c.t.Fatal(err)
	}
	var handoffs []map[string]any
	_ = c.ws.SetReadDeadline(time.Now().Add(15 * time.Second))
	for {
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			c.t.Fatalf("waiting for the answer to %q: %v", text, err)
		}
		var f struct {
			Type    string         `json:"type"`
			Message tandem.Message `json:"message"`
		}
		if err := json.Unmarshal(b, &f); err != nil {
			c.t.Fatalf("frame %s: %v", b, err)
		}
		switch f.Type {
		case gateway.FrameHandoff:
			var h map[string]any
			_ = json.Unmarshal(b, &h)
			handoffs = append(handoffs, h)
		case gateway.FrameMessage:
			if f.Message.Author == tandem.AuthorBot {
				return f.Message, handoffs
			}
		}
	}
}

// TestServedBotAnswers boots the real server (trained models in ONNX
// Runtime, demo knowledge, demo policy) and asks it questions through the
// widget's WebSocket: FAQ answers with sources, an intent response, and a
// fallback for nonsense.
func TestServedBotAnswers(t *testing.T) {
	m := bootServer(t, nil)
	c := dialWidget(t, m.URL())

	ans, _ := c.ask("How long does shipping take?")
	if ans.Text == "" || ans.Data["sources"] == nil {
		t.Fatalf("shipping question: %+v", ans)
	}
	t.Logf("shipping: %.120q sources=%v", ans.Text, ans.Data["sources"])

	ans, _ = c.ask("I want to track my order")
	if ans.Text == "" {
		t.Fatalf("track order: %+v", ans)
	}
	// Understanding it needs the models trained on the public datasets
	// (Bitext's track_order); without them it may fall back.
	switch {
	case !testenv.HasDataset(t, "bitext-customer-support"):
		t.Log("not checking that the bot understood: the public datasets are absent, so the models were trained on models/data only")
	case strings.Contains(ans.Text, "didn't quite get"):
		t.Fatalf("track order: %+v", ans)
	}
	nlu, _ := json.Marshal(ans.Data)
	t.Logf("track: %.120q %s", ans.Text, nlu)

	ans, _ = c.ask("zxq vlorp ptang")
	if ans.Text == "" {
		t.Fatalf("nonsense got no reply: %+v", ans)
	}
	t.Logf("nonsense: %.120q", ans.Text)

	// The turns show in /metrics: pipeline stages, outcomes, cache counters.
	mresp, err := http.Get(m.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var metrics bytes.Buffer
	_, _ = metrics.ReadFrom(mresp.Body)
	mresp.Body.Close()
	for _, want := range []string{`tandem_pipeline_turns_total{kind="answer"}`, `tandem_pipeline_stage_seconds_bucket{stage="intent"`,
		`tandem_pipeline_stage_seconds_bucket{stage="retrieval"`, "tandem_knowledge_cache_misses_total", `tandem_knowledge_searches_total`} {
		if !strings.Contains(metrics.String(), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// The demo FAQs are searchable through the admin API.
	req, _ := http.NewRequest("GET", m.URL()+"/api/v1/knowledge/search?q=refund", nil)
	req.Header.Set("Authorization", "Bearer "+m.Config.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(buf.String(), `"hits"`) {
		t.Fatalf("search preview: %d %.300s", resp.StatusCode, buf.String())
	}
}

// newTestBot builds the served bot (real models in ONNX Runtime, demo
// knowledge and policy, in-memory stores) without the HTTP server.
func newTestBot(t testing.TB, opt botOptions) *bot {
	t.Helper()
	rt, err := models.OpenRuntime(testenv.ONNXRuntimeLib(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Close() })
	cfg := DefaultConfig()
	cfg.ModelDir = testenv.ModelDir(t)
	b, err := buildBot(context.Background(), rt, cfg, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// TestRealBotBadInput: hostile or odd turns get a reply or a clear error
// from the real models, never a panic.
func TestRealBotBadInput(t *testing.T) {
	b := newTestBot(t, botOptions{})
	ctx := context.Background()
	cases := map[string]string{
		"empty":         "",
		"whitespace":    " \t\n  ",
		"100KB":         strings.Repeat("where is my order ", 100<<10/18),
		"invalid UTF8":  "where is my \xff\xfe order",
		"emoji only":    "😡😡😡🔥",
		"mixed script":  "我的订单 where is it? Где мой заказ",
		"chinese human": "我要人工客服",
		"control chars": "track\x00my\x1border",
		"markup":        "<img src=x onerror=alert(1)> refund",
	}
	for name, text := range cases {
		r, err := b.Respond(ctx, tandem.Turn{ConversationID: "bad-" + name, Text: text, Time: time.Now()})
		if err != nil {
			if tandem.ErrorCode(err) != tandem.EINVALID || tandem.ErrorMessage(err) == "" {
				t.Errorf("%s: error %v is not a clear invalid-input error", name, err)
			}
			continue
		}
		if r.Kind == "" || (r.Text == "" && r.Kind != tandem.ReplyEscalate) {
			t.Errorf("%s: empty reply %+v", name, r)
		}
		if name == "chinese human" && r.Escalation == nil {
			t.Errorf("a Chinese request for a person did not escalate: %+v", r)
		}
	}
}

// TestRealBotConcurrentTurns: thousands of turns from many conversations
// at once through the real models, micro-batched, give every conversation
// exactly the replies it gets when run alone.
func TestRealBotConcurrentTurns(t *testing.T) {
	texts := []string{
		"How long does shipping take?", "I want a refund", "where is my order ORD-12345",
		"can I pay with paypal", "how do I reset my password", "I want to delete my account",
		"do you ship to Canada", "my parcel arrived damaged", "thanks!", "hello",
		"change my delivery address", "what is your return policy", "zxq vlorp",
	}
	const convs, turns = 100, 20
	script := func(c int) []string {
		out := make([]string, turns)
		for i := range out {
			out[i] = texts[(c*7+i*3)%len(texts)]
		}
		return out
	}
	type result struct {
		kind   tandem.ReplyKind
		text   string
		intent string
	}
	ctx := context.Background()
	run := func(b *bot, c int) []result {
		var out []result
		for i, text := range script(c) {
			r, err := b.Respond(ctx, tandem.Turn{ConversationID: fmt.Sprintf("conv-%d", c), MessageSeq: int64(i + 1), Text: text, Time: time.Unix(1_800_000_000, 0)})
			if err != nil {
				t.Errorf("conv %d turn %d: %v", c, i, err)
				return out
			}
			out = append(out, result{r.Kind, r.Text, r.NLU.Intent.Name})
		}
		return out
	}
	// Alone: one conversation at a time on its own bot.
	// Generous stage deadlines: this is about correctness, and a loaded CI
	// machine must not time a stage out in one run and not the other.
	alone := newTestBot(t, botOptions{NoCache: true, StageTimeout: time.Minute})
	want := make([][]result, convs)
	for c := range convs {
		want[c] = run(alone, c)
	}
	// Together: all conversations at once on a shared, batching bot.
	shared := newTestBot(t, botOptions{NoCache: true, StageTimeout: time.Minute})
	got := make([][]result, convs)
	var wg sync.WaitGroup
	for c := range convs {
		wg.Add(1)
		go func() { defer wg.Done(); got[c] = run(shared, c) }()
	}
	wg.Wait()
	for c := range convs {
		if fmt.Sprint(got[c]) != fmt.Sprint(want[c]) {
			t.Fatalf("conversation %d differs when run concurrently:\n got %v\nwant %v", c, got[c], want[c])
		}
	}
}

// TestRealBotEntities: the served bot reports rule entities (order ids)
// and the trained tagger's entities (cities) with character offsets.
func TestRealBotEntities(t *testing.T) {
	b := newTestBot(t, botOptions{})
	text := "where is my order ORD-12345, I live in Berlin"
	r, err := b.Respond(context.Background(), tandem.Turn{ConversationID: "ents", Text: text, Time: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]string{}
	for _, e := range r.NLU.Entities {
		if text[e.Start:e.End] != e.Text {
			t.Errorf("entity %+v: offsets do not match its text", e)
		}
		found[e.Type] = e.Value
	}
	if found["order_id"] != "ORD-12345" || found["city"] != "Berlin" {
		t.Fatalf("entities = %+v", r.NLU.Entities)
	}
}

// TestLoadgen runs the load command briefly in both modes and checks that
// every turn was answered and reported.
func TestLoadgen(t *testing.T) {
	env := map[string]string{"ONNXRUNTIME_LIB": testenv.ONNXRuntimeLib(t), "TANDEM_MODEL_DIR": testenv.ModelDir(t)}
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"loadgen", "--concurrency", "1,4", "--rate", "0,400", "--turns", "200", "--json"}, testGetenv(env), &out, &errOut)
	if err == nil {
		t.Fatal("a zero rate was accepted")
	}
	out.Reset()
	err = run(context.Background(), []string{"loadgen", "--concurrency", "1,4", "--turns", "200", "--unique", "50", "--cache", "--json"}, testGetenv(env), &out, &errOut)
	if err != nil {
		t.Fatalf("loadgen: %v\n%s", err, errOut.String())
	}
	dec := json.NewDecoder(&out)
	runs := 0
	for dec.More() {
		var r loadResult
		if err := dec.Decode(&r); err != nil {
			t.Fatal(err)
		}
		runs++
		var answered int64
		for _, n := range r.Kinds {
			answered += n
		}
		if r.Turns != 200 || answered+r.Errors+r.Overloaded != 200 || r.Errors != 0 || r.Latency.Count != 200 || r.TurnsPerSec <= 0 {
			t.Fatalf("run %+v", r)
		}
		if r.CacheHits == 0 {
			t.Errorf("50 distinct texts over 200 turns with the cache on: no cache hits (%+v)", r)
		}
	}
	if runs != 2 {
		t.Fatalf("%d runs reported, want 2:\n%s", runs, out.String())
	}
	out.Reset()
	if err := run(context.Background(), []string{"loadgen", "--concurrency", "4", "--rate", "2000", "--turns", "100", "--json"}, testGetenv(env), &out, &errOut); err != nil {
		t.Fatalf("open loop: %v\n%s", err, errOut.String())
	}
	var r loadResult
	if err := json.Unmarshal(out.Bytes(), &r); err != nil || r.OfferedRate != 2000 || r.Latency.Count != 100 {
		t.Fatalf("open loop run %+v (%v)", r, err)
	}
}

// TestEvalBot runs the held-out demo evaluation set through the served bot:
// the report has every case, and gates pass or fail the command.
func TestEvalBot(t *testing.T) {
	env := map[string]string{"ONNXRUNTIME_LIB": testenv.ONNXRuntimeLib(t), "TANDEM_MODEL_DIR": testenv.ModelDir(t)}
	set := "tandem:" + filepath.Join(testenv.RepoRoot(t), "eval", "data", "demo-bot.yml")
	var out, errOut bytes.Buffer
	// Loose floors: a regression guard for the wiring (escalations reach
	// the right people, nonsense is not answered), not an accuracy claim.
	err := run(context.Background(), []string{"eval-bot", "--data", set, "--json",
		"--gate", "bot.errors<=0", "--gate", "bot.handoff_precision>=0.8", "--gate", "bot.intent.oos_recall>=0.75"},
		testGetenv(env), &out, &errOut)
	if err != nil {
		t.Fatalf("eval-bot: %v\n%s\n%s", err, out.String(), errOut.String())
	}
	var rep evalBotReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Examples < 50 || rep.Bot.Intent.Examples != rep.Examples || rep.Bot.Latency.Count != rep.Examples || len(rep.Failed) != 0 {
		t.Fatalf("report %+v", rep)
	}
	out.Reset()
	err = run(context.Background(), []string{"eval-bot", "--data", set, "--gate", "bot.answer_rate>=1.01"}, testGetenv(env), &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "bot.answer_rate") {
		t.Fatalf("an impossible gate passed: %v", err)
	}
}

// TestServedBotAnswersInTheBrowsersLocale: a widget in a browser set to
// "en-US" (the conversation's locale) still gets answers from the demo
// FAQs, written for "en" (knowledge.Filter matches a regional locale's
// primary language).
func TestServedBotAnswersInTheBrowsersLocale(t *testing.T) {
	m := bootServer(t, nil)
	for _, loc := range []string{"en-US", "en_GB", "en"} {
		c := dialWidgetLocale(t, m.URL(), loc)
		ans, _ := c.ask("How long does shipping take?")
		if ans.Data["sources"] == nil || !strings.Contains(ans.Text, "business days") {
			t.Fatalf("locale %s: %+v", loc, ans)
		}
	}
}

// TestRealBotConversationalTurns: the short turns of a conversation after
// an answer — "ok" or a thumbs-up, "no", "yes", "that didn't help", "are
// you a bot?" — get the demo's reply for them, not "I didn't get that"
// (which counts towards a low-confidence escalation) nor an unrelated
// answer ("no" used to get how to create an account).
func TestRealBotConversationalTurns(t *testing.T) {
	b := newTestBot(t, botOptions{})
	ctx := context.Background()
	conv := "small-talk"
	if _, err := b.Respond(ctx, tandem.Turn{ConversationID: conv, Text: "How long does shipping take?", Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ text, intent string }{
		{"ok", "acknowledge"}, {"👍", "acknowledge"}, {"got it", "acknowledge"}, {"okay cool", "acknowledge"},
		{"👍🏽", "acknowledge"}, {"alright", "acknowledge"},
		{"no", "deny"}, {"no thanks", "deny"}, {"nope", "deny"},
		{"yes", "affirm"}, {"yes please", "affirm"},
		{"that didn't help", "not_helpful"}, {"that's not what I asked", "not_helpful"}, {"👎", "not_helpful"},
		{"are you a bot?", "bot_challenge"}, {"am I talking to a robot", "bot_challenge"},
	} {
		r, err := b.Respond(ctx, tandem.Turn{ConversationID: conv, Text: c.text, Time: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		if r.Kind != tandem.ReplyAnswer || r.Escalation != nil || r.NLU.Intent.Name != c.intent {
			t.Errorf("%q: %s %q (intent %s %.2f), want the %s response", c.text, r.Kind, r.Text, r.NLU.Intent.Name, r.NLU.Intent.Confidence, c.intent)
		}
	}
}

// TestRealBotSuggestsNearFAQ: a paraphrase of a demo FAQ question that the
// bot is not sure of is not a dead end: it is answered from that FAQ or
// offers it as a "did you mean" quick reply, and sending the offered
// question back answers it.
func TestRealBotSuggestsNearFAQ(t *testing.T) {
	b := newTestBot(t, botOptions{})
	ctx := context.Background()
	const want = "How much does shipping cost?"
	r, err := b.Respond(ctx, tandem.Turn{ConversationID: "suggest", Text: "what does delivery cost", Time: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case r.Kind == tandem.ReplyAnswer && len(r.Sources) > 0 && r.Sources[0].Question == want:
		t.Logf("answered from %q", want)
	case r.Kind == tandem.ReplyFallback && len(r.QuickReplies) == 1 && r.QuickReplies[0] == want:
		r, err = b.Respond(ctx, tandem.Turn{ConversationID: "suggest", Text: r.QuickReplies[0], Time: time.Now()})
		if err != nil || r.Kind != tandem.ReplyAnswer || len(r.Sources) == 0 || r.Sources[0].Question != want {
			t.Fatalf("the offered question gave %s %q %v (%v), want its answer", r.Kind, r.Text, r.Sources, err)
		}
	case !testenv.HasDataset(t, "bitext-customer-support"):
		// Models trained on models/data only read it as delivery_period.
		t.Logf("not checked: the public datasets are absent, so the models were trained on models/data only (got %s %q)", r.Kind, r.Text)
	default:
		t.Fatalf("got %s %q %v, want %q answered or offered", r.Kind, r.Text, r.QuickReplies, want)
	}
}
