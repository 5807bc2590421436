package pipeline

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandem-chat/tandem"
)

var demoFAQs = []tandem.FAQ{
	{ID: "f-track", Question: "How do I track my order?", Answer: "Open Orders and click Track.", Intent: "track_order", Status: tandem.FAQPublished},
	{ID: "f-refund", Question: "How long does a refund take?", Answer: "Refunds take 5 business days.", Intent: "get_refund", Status: tandem.FAQPublished},
	{ID: "f-ship", Question: "What are the shipping costs?", Answer: "Shipping is free over 50 EUR.", Status: tandem.FAQPublished},
}

func testModel() *keywordModel {
	return &keywordModel{rules: []kwRule{
		{kw: "track", intent: "track_order", conf: 0.95},
		{kw: "refund", intent: "get_refund", conf: 0.9},
		{kw: "complain", intent: "complaint", conf: 0.9},
		{kw: "agent please", intent: "contact_human_agent", conf: 0.9},
		{kw: "invoice or bill", intent: "check_invoice", conf: 0.42, second: "check_bill", secondConf: 0.38},
		{kw: "hello", intent: "greet", conf: 0.97},
		{kw: "vague", intent: "track_order", conf: 0.2},
	}}
}

func newTestPipeline(t testing.TB, mutate func(*Config, *Deps)) *Pipeline {
	t.Helper()
	cfg := Config{Policy: DefaultPolicy()}
	cfg.Policy.Escalation.Intents = []string{"complaint"}
	cfg.Policy.Responses = map[string]string{
		"greet":         "Hello! How can I help?",
		"check_invoice": "Your invoices are under Account > Invoices.",
		"check_bill":    "Your bill is under Account > Billing.",
		"order_status":  "Order {order_id} is on its way.",
	}
	deps := Deps{Intent: testModel(), Rules: regexRules{}, Retriever: staticRetriever{faqs: demoFAQs}}
	if mutate != nil {
		mutate(&cfg, &deps)
	}
	p, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func turn(conv, text string) tandem.Turn {
	return tandem.Turn{ConversationID: conv, Text: text, Time: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)}
}

func TestAnswerFromLinkedFAQAndIntentResponse(t *testing.T) {
	p := newTestPipeline(t, nil)
	ctx := context.Background()
	r, err := p.Respond(ctx, turn("c1", "where can I track my parcel"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Kind != tandem.ReplyAnswer || r.Text != demoFAQs[0].Answer || len(r.Sources) != 1 || r.Sources[0].FAQID != "f-track" {
		t.Fatalf("reply = %+v", r)
	}
	if r.NLU.Intent.Name != "track_order" {
		t.Fatalf("nlu = %+v", r.NLU)
	}
	r, _ = p.Respond(ctx, turn("c1", "hello there"))
	if r.Kind != tandem.ReplyAnswer || r.Text != "Hello! How can I help?" {
		t.Fatalf("intent response: %+v", r)
	}
}

func TestClarifyThenResolve(t *testing.T) {
	p := newTestPipeline(t, nil)
	ctx := context.Background()
	r, err := p.Respond(ctx, turn("c2", "invoice or bill?"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Kind != tandem.ReplyClarify || len(r.QuickReplies) != 2 {
		t.Fatalf("want clarify with 2 quick replies, got %+v", r)
	}
	// Picking a quick reply answers with that intent.
	r, err = p.Respond(ctx, turn("c2", r.QuickReplies[1]))
	if err != nil {
		t.Fatal(err)
	}
	if r.Kind != tandem.ReplyAnswer || r.Text != "Your bill is under Account > Billing." {
		t.Fatalf("after choosing: %+v", r)
	}
}

// TestClarifiedAnswerNotCached: an answer chosen through a conversation's
// pending quick replies depends on that conversation, so another
// conversation sending the same text is not served it from the cache.
func TestClarifiedAnswerNotCached(t *testing.T) {
	p := newTestPipeline(t, func(c *Config, d *Deps) { d.Cache = newReplyCache(t) })
	ctx := context.Background()
	r, err := p.Respond(ctx, turn("cl-1", "invoice or bill?"))
	if err != nil || r.Kind != tandem.ReplyClarify || len(r.QuickReplies) != 2 {
		t.Fatalf("want clarify, got %+v %v", r, err)
	}
	pick := r.QuickReplies[1]
	if r, err = p.Respond(ctx, turn("cl-1", pick)); err != nil || r.Kind != tandem.ReplyAnswer {
		t.Fatalf("after choosing: %+v %v", r, err)
	}
	r, err = p.Respond(ctx, turn("cl-2", pick))
	if err != nil {
		t.Fatal(err)
	}
	if r.Cached {
		t.Fatalf("another conversation got the clarified answer from the cache: %+v", r)
	}
}

func TestEscalationTriggers(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		turns  []tandem.Turn
		reason tandem.EscalationReason
	}{
		{"button", []tandem.Turn{{ConversationID: "b", RequestHuman: true}}, tandem.EscalateButton},
		{"keyword en", []tandem.Turn{turn("k1", "Can I talk to a human please")}, tandem.EscalateRequested},
		{"keyword zh", []tandem.Turn{turn("k2", "我要转人工")}, tandem.EscalateRequested},
		{"keyword zh short", []tandem.Turn{turn("k2b", "我要人工")}, tandem.EscalateRequested},
		{"keyword de", []tandem.Turn{turn("k3", "Ich möchte mit einem Menschen sprechen")}, tandem.EscalateRequested},
		{"human intent", []tandem.Turn{turn("h", "agent please")}, tandem.EscalateRequested},
		{"configured intent", []tandem.Turn{turn("ci", "I want to complain about the delivery")}, tandem.EscalateIntent},
		{"abuse", []tandem.Turn{turn("ab", "you stupid bot")}, tandem.EscalateAbuse},
		{"negative sentiment", []tandem.Turn{turn("ns", "this is absolutely terrible, the worst service, I am furious")}, tandem.EscalateSentiment},
		{"vip", []tandem.Turn{{ConversationID: "v", Text: "track my order", Customer: tandem.Customer{ID: "u1", Tier: "vip"}}}, tandem.EscalateVIP},
		{"low confidence", []tandem.Turn{turn("lc", "blorp zzz"), turn("lc", "qwerty asdf")}, tandem.EscalateLowConfidence},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newTestPipeline(t, nil)
			var r tandem.Reply
			var err error
			for i, tn := range tt.turns {
				r, err = p.Respond(ctx, tn)
				if err != nil {
					t.Fatal(err)
				}
				if i < len(tt.turns)-1 && r.Kind == tandem.ReplyEscalate {
					t.Fatalf("escalated too early at turn %d: %+v", i, r)
				}
			}
			if r.Kind != tandem.ReplyEscalate || r.Escalation == nil {
				t.Fatalf("want escalation, got %+v", r)
			}
			if r.Escalation.Reason != tt.reason {
				t.Fatalf("reason = %q, want %q", r.Escalation.Reason, tt.reason)
			}
			if tt.turns[len(tt.turns)-1].Text != "" && r.Escalation.Summary.Intent.Name == "" {
				t.Fatalf("escalation carries no NLU summary: %+v", r.Escalation)
			}
		})
	}
}

// TestNegatedConfiguredIntentDoesNotEscalate: "this is not a complaint"
// is classified as a complaint, but it does not escalate as one.
func TestNegatedConfiguredIntentDoesNotEscalate(t *testing.T) {
	p := newTestPipeline(t, nil)
	r, err := p.Respond(context.Background(), turn("neg", "this is not a complaint, just a question about my delivery"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Kind == tandem.ReplyEscalate && r.Escalation != nil && r.Escalation.Reason == tandem.EscalateIntent {
		t.Fatalf("a negated complaint escalated as one: %+v", r)
	}
}

// TestDeclinedHumanIntentDoesNotEscalate: a text the model reads as a
// request for a person, but that declines one ("I don't want to talk to a
// person, just asking: agent please?"), does not escalate through the intent either.
func TestDeclinedHumanIntentDoesNotEscalate(t *testing.T) {
	p := newTestPipeline(t, nil)
	ctx := context.Background()
	r, err := p.Respond(ctx, turn("dh", "I don't want to talk to a person, just asking: agent please?"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Kind == tandem.ReplyEscalate {
		t.Fatalf("a declined request for a person escalated: %+v", r.Escalation)
	}
	if r, err = p.Respond(ctx, turn("dh2", "agent please")); err != nil || r.Kind != tandem.ReplyEscalate {
		t.Fatalf("agent please: %+v %v, want an escalation", r, err)
	}
}

// A message the model reads as a request for a person but that only says
// no to one ("no I don't need a person", "please don't transfer me to a
// person") gets the declined_human acknowledgement: no escalation (the
// second escalated) and no failed turn counting towards one.
func TestOnlyDecliningAPersonIsAcknowledged(t *testing.T) {
	p := newTestPipeline(t, func(_ *Config, d *Deps) {
		d.Intent = &keywordModel{rules: []kwRule{{kw: "person", intent: "contact_human_agent", conf: 0.95}}}
	})
	ctx := context.Background()
	for i, text := range []string{"no I don't need a person", "please don't transfer me to a person", "I don't want to talk to a person"} {
		r, err := p.Respond(ctx, turn("decl", text))
		if err != nil || r.Kind != tandem.ReplyAnswer || r.Text != p.cfg.Policy.Messages.DeclinedHuman {
			t.Fatalf("turn %d %q: %s %q (%v), want the declined_human answer", i, text, r.Kind, r.Text, err)
		}
	}
	if r, err := p.Respond(ctx, turn("decl2", "please connect me to a person")); err != nil || r.Kind != tandem.ReplyEscalate {
		t.Fatalf("a request for a person: %+v %v, want an escalation", r, err)
	}
}

// With labels configured, a clarification offers only labelled intents
// (or ones with a linked FAQ): small talk ("Greet") is not a choice.
func TestClarifyOffersOnlyLabelledIntents(t *testing.T) {
	p := newTestPipeline(t, func(c *Config, d *Deps) {
		c.Policy.Labels = map[string]string{"check_invoice": "My invoices", "check_bill": "My bill"}
		c.Policy.Responses["greet"] = "Hello! How can I help?"
		d.Intent = &keywordModel{rules: []kwRule{{kw: "canada", intent: "check_invoice", conf: 0.42, second: "greet", secondConf: 0.4}}}
	})
	r, err := p.Respond(context.Background(), turn("lbl", "hey do you ship to canada"))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range r.QuickReplies {
		if q == "Greet" {
			t.Fatalf("offered %q: %+v", q, r)
		}
	}
}

// TestVIPBackWithTheBot: a VIP's first turn escalates; while queued every
// turn does; once the conversation is back with the bot (handed back, or
// the request withdrawn) the bot answers them, until a day has passed (a
// VIP could never talk to the bot again).
func TestVIPBackWithTheBot(t *testing.T) {
	p := newTestPipeline(t, nil)
	ctx := context.Background()
	t0 := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	vip := func(text string, at time.Time, queued bool) tandem.Reply {
		t.Helper()
		r, err := p.Respond(ctx, tandem.Turn{ConversationID: "vip", Text: text, Customer: tandem.Customer{ID: "u1", Tier: "vip"}, Queued: queued, Time: at})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	isVIP := func(r tandem.Reply) bool {
		return r.Kind == tandem.ReplyEscalate && r.Escalation.Reason == tandem.EscalateVIP
	}
	if r := vip("hello", t0, false); !isVIP(r) {
		t.Fatalf("first VIP turn: %+v, want a vip escalation", r)
	}
	if r := vip("track my order", t0.Add(time.Minute), true); !isVIP(r) {
		t.Fatalf("VIP turn while queued: %+v, want a vip escalation", r)
	}
	if r := vip("track my order", t0.Add(10*time.Minute), false); isVIP(r) || r.Kind != tandem.ReplyAnswer {
		t.Fatalf("VIP back with the bot: %+v, want the bot's answer", r)
	}
	if r := vip("track my order", t0.Add(25*time.Hour), false); !isVIP(r) {
		t.Fatalf("VIP a day later: %+v, want a vip escalation", r)
	}
}

// TestEscalationSummaryKeepsEarlierValues: the order id a customer gave
// before pressing "talk to a person" is in the escalation's summary (it
// held only the button turn's own understanding: no entities).
func TestEscalationSummaryKeepsEarlierValues(t *testing.T) {
	p := newTestPipeline(t, nil)
	ctx := context.Background()
	if _, err := p.Respond(ctx, turn("sum", "track ORD-7014 please")); err != nil {
		t.Fatal(err)
	}
	r, err := p.Respond(ctx, tandem.Turn{ConversationID: "sum", RequestHuman: true})
	if err != nil || r.Escalation == nil {
		t.Fatalf("button: %+v %v", r, err)
	}
	found := false
	for _, e := range r.Escalation.Summary.Entities {
		if e.Type == "order_id" && e.Value == "ORD-7014" && e.Source == "dialogue" {
			found = true
		}
	}
	if !found {
		t.Fatalf("summary entities %+v lack the order id given before", r.Escalation.Summary.Entities)
	}
}

// TestPickChoiceByYesOrPosition: the customer answers a clarification
// with its position ("2", "the first one") or says "yes" to the bot's one
// suggestion; both pick it (they were read as new questions).
func TestPickChoiceByYesOrPosition(t *testing.T) {
	p := newTestPipeline(t, nil)
	ctx := context.Background()
	r, err := p.Respond(ctx, turn("pick", "invoice or bill?"))
	if err != nil || r.Kind != tandem.ReplyClarify || len(r.QuickReplies) != 2 {
		t.Fatalf("want clarify, got %+v %v", r, err)
	}
	if r, err = p.Respond(ctx, turn("pick", "the second one")); err != nil || r.Kind != tandem.ReplyAnswer || r.Text != "Your bill is under Account > Billing." {
		t.Fatalf("after 'the second one': %+v %v", r, err)
	}
	suggest := []Choice{{Label: "What are the shipping costs?", FAQID: "f-ship"}, {Label: "Talk to a person"}}
	for norm, want := range map[string]string{"yes": "f-ship", "yes please": "f-ship", "1": "f-ship", "2": "", "first": "f-ship", "no": "", "what": ""} {
		c, ok := pickChoice(suggest, norm)
		if ok != (want != "" || norm == "2") || c.FAQID != want {
			t.Errorf("pickChoice(%q) = %+v, %v; want FAQ %q", norm, c, ok, want)
		}
	}
	two := []Choice{{Label: "A", Intent: "a"}, {Label: "B", Intent: "b"}}
	if _, ok := pickChoice(two, "yes"); ok {
		t.Error("'yes' picked one of two topics")
	}
}

// scoredRetriever returns its FAQs, all with the same score.
type scoredRetriever struct {
	faqs  []tandem.FAQ
	score float64
}

func (w scoredRetriever) Retrieve(context.Context, string, string, int) ([]tandem.Hit, error) {
	var out []tandem.Hit
	for _, f := range w.faqs {
		out = append(out, tandem.Hit{FAQ: f, Score: w.score})
	}
	return out, nil
}

// TestWeakLinkedFAQLeavesTheIntentResponse: of the FAQs linked to a
// confident intent, a weak match does not answer when the intent has a
// response of its own ("what delivery options are there" got "Yes: express
// delivery…"); a strong one does.
func TestWeakLinkedFAQLeavesTheIntentResponse(t *testing.T) {
	express := tandem.FAQ{ID: "f-express", Question: "Do you offer express delivery?", Answer: "Yes: express delivery is 9.90 EUR.", Intent: "track_order", Status: tandem.FAQPublished}
	for _, tc := range []struct {
		score float64
		want  string
	}{{0.5, "Your orders are under Account > Orders."}, {0.9, "Yes: express delivery is 9.90 EUR."}} {
		p := newTestPipeline(t, func(c *Config, d *Deps) {
			c.Policy.Responses["track_order"] = "Your orders are under Account > Orders."
			d.Retriever = scoredRetriever{faqs: []tandem.FAQ{express}, score: tc.score}
		})
		r, err := p.Respond(context.Background(), turn(fmt.Sprintf("weak-%v", tc.score), "track my things"))
		if err != nil {
			t.Fatal(err)
		}
		if r.Text != tc.want {
			t.Errorf("score %.1f: %q, want %q", tc.score, r.Text, tc.want)
		}
	}
}

// TestNoLowConfidenceEscalationWhileQueued: while the conversation waits
// for a person, unsure turns stay fallbacks ("I'm connecting you…" came
// again on every second one).
func TestNoLowConfidenceEscalationWhileQueued(t *testing.T) {
	p := newTestPipeline(t, nil)
	for i, text := range []string{"blorp zzz", "qwerty asdf", "zzz blorp"} {
		r, err := p.Respond(context.Background(), tandem.Turn{ConversationID: "q-lc", Text: text, Queued: true})
		if err != nil {
			t.Fatal(err)
		}
		if r.Kind == tandem.ReplyEscalate {
			t.Fatalf("turn %d while queued escalated: %+v", i, r.Escalation)
		}
	}
}

// TestWithdrawWhileQueued: waiting for a person, a customer who says they
// no longer want one gets the request withdrawn (the ticket stayed queued);
// not queued, the same words withdraw nothing.
func TestWithdrawWhileQueued(t *testing.T) {
	p := newTestPipeline(t, nil)
	ctx := context.Background()
	r, err := p.Respond(ctx, tandem.Turn{ConversationID: "wd", Text: "actually never mind, no need for a human", Queued: true})
	if err != nil || !r.WithdrawHandoff || r.Kind != tandem.ReplyAnswer || r.Text == "" {
		t.Fatalf("queued decline: %+v %v, want an answer that withdraws the request", r, err)
	}
	if r, err = p.Respond(ctx, tandem.Turn{ConversationID: "wd2", Text: "actually never mind, no need for a human"}); err != nil || r.WithdrawHandoff {
		t.Fatalf("decline while not queued: %+v %v, want no withdrawal", r, err)
	}
	if r, err = p.Respond(ctx, tandem.Turn{ConversationID: "wd3", Text: "where is my parcel", Queued: true}); err != nil || r.WithdrawHandoff {
		t.Fatalf("a question while queued: %+v %v, want no withdrawal", r, err)
	}
}

// TestHumanKeywordsNoFalsePositive: words that merely contain a keyword's
// characters (人工智能, "AI") are not a request for a person.
func TestHumanKeywordsNoFalsePositive(t *testing.T) {
	p := newTestPipeline(t, nil)
	for i, text := range []string{"人工智能是什么？", "你们用人工智能吗", "an operatorless workflow"} {
		r, err := p.Respond(context.Background(), turn(fmt.Sprint("fp", i), text))
		if err != nil {
			t.Fatal(err)
		}
		if r.Kind == tandem.ReplyEscalate && r.Escalation.Reason == tandem.EscalateRequested {
			t.Errorf("%q escalated as a request for a person", text)
		}
	}
}

func TestBadInput(t *testing.T) {
	p := newTestPipeline(t, nil)
	ctx := context.Background()
	for _, tc := range []struct {
		name, text string
		wantErr    string
	}{
		{"empty", "", tandem.EINVALID},
		{"whitespace", " \t\n  ", tandem.EINVALID},
		{"100KB", strings.Repeat("where is my refund ", 100*1024/19), ""},
		{"invalid utf8", "track \xff\xfe my order \xc3", ""},
		{"emoji only", "😀😀🙏", ""},
		{"mixed script", "track my 订单 заказ please", ""},
		{"control chars", "track\x00\x01 order", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := p.Respond(ctx, turn("bad-"+tc.name, tc.text))
			if tc.wantErr != "" {
				if tandem.ErrorCode(err) != tc.wantErr {
					t.Fatalf("err = %v, want code %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if r.Kind == "" || r.Text == "" {
				t.Fatalf("no sensible reply: %+v", r)
			}
		})
	}
	if _, err := p.Respond(ctx, tandem.Turn{Text: "hi"}); tandem.ErrorCode(err) != tandem.EINVALID {
		t.Fatalf("missing conversation id: %v", err)
	}
}

// TestConcurrentTurns runs thousands of turns over many conversations at
// once; each turn mentions its own order id, and each reply must carry
// exactly that id (no cross-talk through pooled contexts or batches).
func TestConcurrentTurns(t *testing.T) {
	model := testModel()
	// A generous stage deadline: this test is about correctness, and a
	// loaded CI machine (-race, other packages) must not time a stage out.
	p := newTestPipeline(t, func(c *Config, d *Deps) { d.Intent = model; c.Policy.MaxFallbacks = -1; c.StageTimeout = time.Minute })
	ctx := context.Background()
	const convs, perConv = 200, 15
	var wg sync.WaitGroup
	errs := make(chan error, convs)
	for c := range convs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conv := fmt.Sprintf("conv-%d", c)
			for i := range perConv {
				id := fmt.Sprintf("ORD-%d%03d", c, i)
				text := "track " + id
				if i%3 == 1 {
					text = "refund for " + id
				}
				r, err := p.Respond(ctx, turn(conv, text))
				if err != nil {
					errs <- err
					return
				}
				if len(r.NLU.Entities) != 1 || r.NLU.Entities[0].Value != id {
					errs <- fmt.Errorf("%s turn %d: entities %+v, want only %s", conv, i, r.NLU.Entities, id)
					return
				}
				want := "track_order"
				if i%3 == 1 {
					want = "get_refund"
				}
				if r.NLU.Intent.Name != want || r.Kind != tandem.ReplyAnswer {
					errs <- fmt.Errorf("%s turn %d: %+v", conv, i, r)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st, _ := p.deps.State.Load(ctx, "conv-7")
	if st.Turns != perConv || len(st.RecentIntents) != maxRecent || st.Slots["order_id"] != "ORD-7014" {
		t.Fatalf("state of conv-7 = %+v", st)
	}
	var batched bool
	model.sizes.Range(func(k, _ any) bool {
		if k.(int) > 1 {
			batched = true
		}
		return true
	})
	if !batched {
		t.Error("no model call carried more than one text under concurrency")
	}
}

// TestPooledContextReset checks that reset leaves nothing of a turn behind.
func TestPooledContextReset(t *testing.T) {
	tc := &turnCtx{
		text: "secret", norm: "secret", lang: "en", sentiment: -1,
		nlu:         tandem.NLU{Intent: tandem.IntentScore{Name: "x", Confidence: 1}, Entities: []tandem.Entity{{Type: "email"}}},
		modelEnts:   []tandem.Entity{{Type: "a", Value: "secret"}},
		ruleEnts:    []tandem.Entity{{Type: "b", Value: "secret"}},
		hits:        []tandem.Hit{{FAQ: tandem.FAQ{ID: "f"}}},
		intentErr:   errors.New("x"),
		retrieveErr: errors.New("y"),
	}
	backing := tc.modelEnts[:1]
	tc.reset()
	if len(tc.modelEnts) != 0 || len(tc.ruleEnts) != 0 || len(tc.hits) != 0 {
		t.Fatal("slices not emptied")
	}
	if backing[0] != (tandem.Entity{}) {
		t.Fatal("backing array still holds the old entity")
	}
	zero := turnCtx{modelEnts: tc.modelEnts, ruleEnts: tc.ruleEnts, hits: tc.hits}
	if !reflect.DeepEqual(*tc, zero) {
		t.Fatalf("reset left data: %+v", *tc)
	}
}

func TestHotCache(t *testing.T) {
	cache := newReplyCache(t)
	model := testModel()
	p := newTestPipeline(t, func(c *Config, d *Deps) { d.Cache = cache; d.Intent = model })
	ctx := context.Background()
	r1, err := p.Respond(ctx, turn("a", "Where can I TRACK my parcel?"))
	if err != nil {
		t.Fatal(err)
	}
	calls := model.calls.Load()
	r2, err := p.Respond(ctx, turn("b", "where can i track my parcel"))
	if err != nil {
		t.Fatal(err)
	}
	if !r2.Cached || r2.Text != r1.Text || model.calls.Load() != calls {
		t.Fatalf("second identical question not served from cache: %+v (model calls %d -> %d)", r2, calls, model.calls.Load())
	}
	// Escalation triggers still win over the cache.
	r3, _ := p.Respond(ctx, tandem.Turn{ConversationID: "v", Text: "where can i track my parcel", Customer: tandem.Customer{Tier: "vip"}})
	if r3.Kind != tandem.ReplyEscalate {
		t.Fatalf("VIP not escalated on a cached question: %+v", r3)
	}
}

func TestBatcherOverloadAndLoneTurn(t *testing.T) {
	block := make(chan struct{})
	var sizes []int
	var mu sync.Mutex
	b := NewBatcher(BatchConfig{QueueSize: 2, Workers: 1, MaxBatch: 4}, func(ctx context.Context, in []int) ([]int, error) {
		<-block
		return in, nil
	}, func(n int) { mu.Lock(); sizes = append(sizes, n); mu.Unlock() })
	defer b.Close()
	ctx := context.Background()
	var wg sync.WaitGroup
	results := make(chan error, 10)
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := b.Submit(ctx, i)
			results <- err
		}()
	}
	// Some submissions must be refused while the worker is blocked.
	deadline := time.After(5 * time.Second)
	overloaded := 0
	for overloaded == 0 {
		select {
		case err := <-results:
			if tandem.ErrorCode(err) == tandem.EOVERLOADED {
				overloaded++
			}
		case <-deadline:
			t.Fatal("no submission was refused with a full queue")
		}
	}
	close(block)
	wg.Wait()

	// A lone submission is processed alone, without waiting for company.
	b2 := NewBatcher(BatchConfig{MaxWait: time.Millisecond}, func(ctx context.Context, in []int) ([]int, error) { return in, nil }, nil)
	defer b2.Close()
	if v, err := b2.Submit(ctx, 42); err != nil || v != 42 {
		t.Fatalf("lone submit = %v, %v", v, err)
	}
}

func TestPolicyYAML(t *testing.T) {
	good := `
name: demo
answer_threshold: 0.6
escalation:
  intents: [complaint]
  keywords:
    zh: ["人工"]
responses:
  greet: "Hi!"
llm:
  on_failure: escalate
`
	p, err := ParsePolicy([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if p.AnswerThreshold != 0.6 || p.Escalation.Intents[0] != "complaint" || p.LLM.OnFailure != "escalate" || p.MaxFallbacks != 2 {
		t.Fatalf("parsed %+v", p)
	}
	for _, bad := range []struct{ yaml, want string }{
		{"answer_treshold: 0.5", "answer_treshold"},
		{"answer_threshold: 1.5", "answer_threshold"},
		{"llm: {on_failure: shrug}", "llm.on_failure"},
		{"responses: {greet: ''}", "responses.greet"},
		{"clarify_choices: 50", "clarify_choices"},
		// NaN passes "v < 0 || v > 1"; it would mean "never confident".
		{"answer_threshold: .nan", "answer_threshold"},
		{"escalation: {sentiment_threshold: .nan}", "sentiment_threshold"},
		{"escalation: {sentiment_threshold: -1.5}", "sentiment_threshold"},
		{"escalation: {priorities: {negative_sentment: 5}}", "negative_sentment"},
		{"escalation: {priorities: {vip: -3}}", "priorities.vip"},
		{"escalation: {skills: {complaints: [billing]}}", "skills.complaints"},
		{"escalation: {keywords: {en: ['!!!']}}", "keywords.en"},
		{"escalation: {abuse_words: ['...']}", "abuse_words"},
		{"labels: {greet: '   '}", "labels.greet"},
		{"messages: {fallback: '   '}", "messages.fallback"},
		{"answer_threshold: 0.5\n---\nbogus_key: 1\n", "more than one YAML document"},
		// yaml.v3 truncated these into integers without a word.
		{"max_fallbacks: 1.5", "max_fallbacks must be a whole number"},
		{"llm: {sources: 2.5}", "llm.sources must be a whole number"},
		{"escalation: {priorities: {vip: 1.25e1}}", "escalation.priorities.vip must be a whole number"},
	} {
		if _, err := ParsePolicy([]byte(bad.yaml)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: err = %v, want mention of %q", bad.yaml, err, bad.want)
		}
	}
}

// TestLoadPolicyBounded: a policy file over 1 MiB is refused unread.
// TestPolicyWholeNumbersAsFloats: an integer setting written as 2.0 or
// 1e1 is that number (yaml.v3 accepts it); only a fraction is refused.
func TestPolicyWholeNumbersAsFloats(t *testing.T) {
	p, err := ParsePolicy([]byte("max_fallbacks: 2.0\nescalation: {priorities: {vip: 1e1}}\n"))
	if err != nil || p.MaxFallbacks != 2 || p.Escalation.Priorities["vip"] != 10 {
		t.Fatalf("%v %v %v", p.MaxFallbacks, p.Escalation.Priorities, err)
	}
}

func TestLoadPolicyBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(path, []byte("# "+strings.Repeat("x", maxPolicyBytes)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPolicy(path); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("err = %v", err)
	}
}

func TestSentimentAndKeywords(t *testing.T) {
	for _, tc := range []struct {
		text string
		neg  bool
	}{
		{"this is terrible and I am furious", true},
		{"the worst experience ever, absolutely awful", true},
		{"not bad at all, thanks", false},
		{"great service, thank you", false},
		{"where is my order", false},
		{"太差了，我很生气", true},
		{"what is the worst that can happen if I return late?", false},
		{"how do you protect me against fraud?", false},
		{"I got a scam email claiming to be from your store", false},
		{"I hate to bother you but where is my order", false},
		{"worst case, can I return it after 30 days?", false},
		{"why is your service so terrible?", true},
		{"this is a scam, I am furious", true},
		{"I hate this shop", true},
		{"ok 😡", true},
		{"still nothing 👎🤬", true},
		{"thanks 😊", false},
		{"where is my order 🙂", false},
		{"ok", false},
		{"I'm not 😡, just asking where my parcel is", false},
		{"where is my order 😡", true},
		{"not 👍", false},
		{"I hate these shoes, how do I return them?", false},
		{"the shoes are terrible quality, can I return them?", false},
		{"why is your service so terrible?", true},
	} {
		s := sentiment(tc.text, normalise(tc.text))
		if (s <= -0.6) != tc.neg {
			t.Errorf("sentiment(%q) = %.2f", tc.text, s)
		}
	}
	if containsPhrase(normalise("I'd like to reprEsentative"), "representative") != true {
		t.Error("keyword not found")
	}
	if containsPhrase(normalise("representatives of the company"), "representative") {
		t.Error("keyword matched inside a longer word")
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 1000 {
		b := make([]byte, r.IntN(64))
		for i := range b {
			b[i] = byte(r.UintN(256))
		}
		_ = sentiment(string(b), normalise(string(b)))
		_ = detectLanguage(string(b), "")
	}
}

// blockingModel holds every classification until release is closed.
type blockingModel struct {
	entered chan struct{}
	release chan struct{}
}

func (m *blockingModel) ClassifyBatch(ctx context.Context, texts []string) ([]tandem.NLU, error) {
	m.entered <- struct{}{}
	<-m.release
	out := make([]tandem.NLU, len(texts))
	for i := range out {
		out[i] = tandem.NLU{Intent: tandem.IntentScore{Name: "greet", Confidence: 0.99}}
	}
	return out, nil
}

// TestCloseDrainsThenRefuses: Close waits for a turn in flight, which gets
// its normal answer, and later turns are refused as unavailable instead of
// running without models (which used to fall back and then escalate).
func TestCloseDrainsThenRefuses(t *testing.T) {
	m := &blockingModel{entered: make(chan struct{}, 1), release: make(chan struct{})}
	p := newTestPipeline(t, func(c *Config, d *Deps) { d.Intent = m; c.StageTimeout = time.Minute })
	ctx := context.Background()
	type result struct {
		r   tandem.Reply
		err error
	}
	inflight := make(chan result, 1)
	go func() {
		r, err := p.Respond(ctx, turn("close-1", "hello there"))
		inflight <- result{r, err}
	}()
	<-m.entered
	closed := make(chan struct{})
	go func() { p.Close(); close(closed) }()
	// Close must not finish while the turn is in flight; once it refuses
	// new turns, release the model.
	waitFor(func() bool {
		p.mu.RLock()
		defer p.mu.RUnlock()
		return p.closed
	})
	if _, err := p.Respond(ctx, turn("close-2", "hello again")); tandem.ErrorCode(err) != tandem.EUNAVAILABLE {
		t.Fatalf("turn while closing: %v, want unavailable", err)
	}
	select {
	case <-closed:
		t.Fatal("Close returned with a turn in flight")
	default:
	}
	close(m.release)
	got := <-inflight
	if got.err != nil || got.r.Kind != tandem.ReplyAnswer || got.r.Text != "Hello! How can I help?" {
		t.Fatalf("in-flight turn: %+v %v", got.r, got.err)
	}
	<-closed
	if _, err := p.Respond(ctx, turn("close-3", "hello")); tandem.ErrorCode(err) != tandem.EUNAVAILABLE {
		t.Fatalf("turn after Close: %v, want unavailable", err)
	}
}

// TestHumanKeywordInMixedScript: Chinese text has no space before or after
// an English phrase, so a keyword next to a CJK character is on a word
// boundary; inside a longer Latin word it still is not.
func TestHumanKeywordInMixedScript(t *testing.T) {
	p := newTestPipeline(t, nil)
	for _, text := range []string{"我要real person", "请给我human agent谢谢", "可以talk to a person吗"} {
		r, err := p.Respond(context.Background(), turn("mixed-"+text, text))
		if err != nil {
			t.Fatal(err)
		}
		if r.Kind != tandem.ReplyEscalate || r.Escalation.Reason != tandem.EscalateRequested {
			t.Errorf("%q: %s, want an escalation as requested", text, r.Kind)
		}
	}
	if containsPhrase(normalise("我要unreal persons"), "real person") {
		t.Error("keyword matched inside longer Latin words")
	}
}

// TestLongLeadingWhiteSpaceIsNotAnEmptyMessage: the text is cut to
// max_turn_runes after the surrounding white space is dropped; cutting
// first turned a message with a long blank preamble (pasted text) into an
// "empty message" error.
func TestLongLeadingWhiteSpaceIsNotAnEmptyMessage(t *testing.T) {
	p := newTestPipeline(t, nil)
	r, err := p.Respond(context.Background(), turn("blank-preamble", strings.Repeat("\n", 2000)+"hello, I want to track my order"))
	if err != nil {
		t.Fatalf("err = %v", err)
	}
	if r.NLU.Intent.Name != "greet" && r.NLU.Intent.Name != "track_order" {
		t.Fatalf("the text after the blank lines was not read: %+v", r)
	}
}

// TestChineseNegatedSentimentDoesNotEscalate: 我不生气 ("I'm not angry")
// and 不失望 ("not disappointed") are not negative, as "not angry" is not
// in English; 我很生气 still is.
func TestChineseNegatedSentimentDoesNotEscalate(t *testing.T) {
	for text, neg := range map[string]bool{
		"我不生气，只是想问一下订单": false,
		"我一点也不失望":       false,
		"我很生气":          true,
		"太差了，我很失望":      true,
	} {
		if s := sentiment(text, normalise(text)); (s <= -0.6) != neg {
			t.Errorf("sentiment(%q) = %.2f, negative %v", text, s, neg)
		}
	}
	p := newTestPipeline(t, nil)
	r, err := p.Respond(context.Background(), turn("zh-neg", "我不生气，只是想问一下订单"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Kind == tandem.ReplyEscalate && r.Escalation.Reason == tandem.EscalateSentiment {
		t.Fatalf("'I'm not angry' escalated as negative sentiment: %+v", r.Escalation)
	}
}

// TestTypographicApostropheNegates: phone keyboards type ’ for ', and
// "I don’t hate it" is as little negative as "I don't hate it" (the
// negation was lost and the turn escalated as negative sentiment).
func TestTypographicApostropheNegates(t *testing.T) {
	for _, text := range []string{"I don’t hate it, where is my order?", "it isn’t terrible", "it wasnʼt awful"} {
		if s := sentiment(text, normalise(text)); s <= -0.6 {
			t.Errorf("sentiment(%q) = %.2f", text, s)
		}
	}
	if normalise("I don’t know") != normalise("I don't know") {
		t.Errorf("normalise: %q != %q", normalise("I don’t know"), normalise("I don't know"))
	}
	p := newTestPipeline(t, nil)
	r, err := p.Respond(context.Background(), turn("curly", "I don’t hate it, I just want to track my order"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Kind == tandem.ReplyEscalate {
		t.Fatalf("escalated: %+v", r.Escalation)
	}
}

// TestEmptyPolicyIsTheDefault: a policy file of comments only (every key
// left at its default) loads as the default policy; it failed with a bare
// "policy: EOF".
func TestEmptyPolicyIsTheDefault(t *testing.T) {
	for _, doc := range []string{"", "# all defaults\n", "---\n"} {
		p, err := ParsePolicy([]byte(doc))
		if err != nil {
			t.Fatalf("%q: %v", doc, err)
		}
		if !reflect.DeepEqual(p, DefaultPolicy()) {
			t.Fatalf("%q: %+v, want the default policy", doc, p)
		}
	}
}

// TestEmptyPolicyFileRefused: a policy file with nothing in it at all is
// refused at start (a truncated file or a failed mount ran the default
// policy, without the operator's rules, unnoticed); a comment is enough
// to mean "the defaults".
func TestEmptyPolicyFileRefused(t *testing.T) {
	dir := t.TempDir()
	for name, doc := range map[string]string{"empty.yml": "", "blank.yml": " \n\n"} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadPolicy(path); err == nil || !strings.Contains(err.Error(), "empty") {
			t.Errorf("%s: %v, want an error", name, err)
		}
	}
	path := filepath.Join(dir, "defaults.yml")
	if err := os.WriteFile(path, []byte("# all defaults\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPolicy(path); err != nil {
		t.Fatal(err)
	}
}

// Entity offsets index the customer's text as sent (in code points), white
// space around it included, so a console or API client can mark the span
// in the stored message.
func TestEntityOffsetsIndexTheTextAsSent(t *testing.T) {
	p := newTestPipeline(t, nil)
	for _, text := range []string{"track ORD-12345", "  \u00a0\t track ORD-12345 \n", "\u3000\u3000track ORD-12345"} {
		r, err := p.Respond(context.Background(), turn("c-offsets", text))
		if err != nil {
			t.Fatal(err)
		}
		if len(r.NLU.Entities) == 0 {
			t.Fatalf("%q: no entities", text)
		}
		runes := []rune(text)
		for _, e := range r.NLU.Entities {
			if e.Start < 0 || e.End > len(runes) || e.Start >= e.End || string(runes[e.Start:e.End]) != e.Text {
				t.Errorf("%q: entity %+v does not index the text as sent", text, e)
			}
		}
	}
}

// An emoji-only turn whose meaning is plain (👍 for "ok", 🙏 for "thanks")
// reaches the models as those words, so "👍🏽" is understood as "ok" is;
// emoji of no such meaning go through as they are.
func TestEmojiOnlyTurnsReadAsTheirWords(t *testing.T) {
	model := testModel()
	model.rules = append(model.rules, kwRule{kw: "ok", intent: "acknowledge", conf: 0.95}, kwRule{kw: "thanks", intent: "thanks", conf: 0.95},
		kwRule{kw: "not helpful", intent: "not_helpful", conf: 0.95})
	p := newTestPipeline(t, func(c *Config, d *Deps) {
		d.Intent = model
		c.Policy.Responses["acknowledge"] = "Great!"
		c.Policy.Responses["thanks"] = "You're welcome!"
	})
	for text, want := range map[string]string{
		"👍":     "acknowledge",
		"👍🏽👍🏽!": "acknowledge",
		" 👌 ":   "acknowledge",
		"🙏":     "thanks",
		"❤️":    "thanks",
		"👍 🙏":   "acknowledge", // "ok thanks": the first rule of the model wins
		"👎🏻":    "not_helpful",
		"🦄":     tandem.OutOfScope,
		"👍🦄":    tandem.OutOfScope, // one emoji of no plain meaning: no guess
		"ok 👍":  "acknowledge",
	} {
		r, err := p.Respond(context.Background(), turn("c-emoji-"+text, text))
		if err != nil {
			t.Fatal(err)
		}
		if r.NLU.Intent.Name != want {
			t.Errorf("%q: intent %q (%s), want %q", text, r.NLU.Intent.Name, r.Kind, want)
		}
	}
	// An angry face alone is strong negative sentiment, as "furious" is.
	for _, text := range []string{"😡", "🤬!", "😠😠"} {
		r, err := p.Respond(context.Background(), turn("c-emoji-"+text, text))
		if err != nil {
			t.Fatal(err)
		}
		if r.Kind != tandem.ReplyEscalate || r.Escalation == nil || r.Escalation.Reason != tandem.EscalateSentiment {
			t.Errorf("%q: %s %+v, want an escalation for sentiment", text, r.Kind, r.Escalation)
		}
	}
}

// fixedTagger tags every text with the same model entities.
type fixedTagger []tandem.Entity

func (f fixedTagger) TagBatch(_ context.Context, texts []string) ([][]tandem.Entity, error) {
	out := make([][]tandem.Entity, len(texts))
	for i := range out {
		out[i] = append([]tandem.Entity(nil), f...)
	}
	return out, nil
}

// Model entities less confident than entity_min_confidence are left out
// ("49.99" read as a product at 0.35); rule entities are exact and kept.
func TestUnsureModelEntitiesLeftOut(t *testing.T) {
	text := "track ORD-123 yoga mat 49.99"
	tagger := fixedTagger{
		{Type: "product", Text: "yoga mat", Value: "yoga mat", Start: 14, End: 22, Source: "model", Confidence: 0.97},
		{Type: "product", Text: "49.99", Value: "49.99", Start: 23, End: 28, Source: "model", Confidence: 0.35},
	}
	for _, c := range []struct {
		min  float64
		want string
	}{{0, "[order_id:ORD-123 product:yoga mat]"}, {0.3, "[order_id:ORD-123 product:yoga mat product:49.99]"}, {0.99, "[order_id:ORD-123]"}} {
		p := newTestPipeline(t, func(cfg *Config, d *Deps) {
			d.Entities = tagger
			cfg.Policy.EntityMinConfidence = c.min
		})
		r, err := p.Respond(context.Background(), turn(fmt.Sprintf("c-ents-%v", c.min), text))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range r.NLU.Entities {
			got = append(got, e.Type+":"+e.Value)
		}
		if fmt.Sprint(got) != c.want {
			t.Errorf("entity_min_confidence %v: entities %v, want %s", c.min, got, c.want)
		}
	}
	bad := DefaultPolicy()
	bad.EntityMinConfidence = 1.5
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "entity_min_confidence") {
		t.Errorf("entity_min_confidence 1.5 validated: %v", err)
	}
}

// fixedRetriever returns the same hit for every query.
type fixedRetriever struct{ hit tandem.Hit }

func (f fixedRetriever) Retrieve(context.Context, string, string, int) ([]tandem.Hit, error) {
	return []tandem.Hit{f.hit}, nil
}

// A turn the bot cannot answer, whose best FAQ is close without being sure
// (a paraphrase: "what does delivery cost"), gets the fallback with that
// FAQ's question as a "did you mean" quick reply; such turns still count
// towards the low-confidence escalation, and weaker hits offer nothing.
func TestFallbackSuggestsTheNearFAQ(t *testing.T) {
	ship := demoFAQs[2]
	for _, c := range []struct {
		score, min float64
		suggest    bool
	}{{0.7, 0, true}, {0.59, 0, false}, {0.7, 0.8, false}, {0.74, 0.6, true}} {
		p := newTestPipeline(t, func(cfg *Config, d *Deps) {
			d.Retriever = fixedRetriever{tandem.Hit{FAQ: ship, Score: c.score}}
			cfg.Policy.SuggestMinScore = c.min
		})
		conv := fmt.Sprintf("c-suggest-%v-%v", c.score, c.min)
		r, err := p.Respond(context.Background(), turn(conv, "what does delivery cost"))
		if err != nil {
			t.Fatal(err)
		}
		got := r.Kind == tandem.ReplyFallback && len(r.QuickReplies) == 1 && r.QuickReplies[0] == ship.Question && r.Text == p.cfg.Policy.Messages.Suggest
		if r.Kind != tandem.ReplyFallback || got != c.suggest || (!c.suggest && len(r.QuickReplies) > 0) {
			t.Errorf("score %v, suggest_min_score %v: %s %q %q, want a suggestion: %v", c.score, c.min, r.Kind, r.Text, r.QuickReplies, c.suggest)
		}
		if r, err = p.Respond(context.Background(), turn(conv, "what does delivery cost then")); err != nil || r.Kind != tandem.ReplyEscalate {
			t.Errorf("score %v: the second unanswered turn gave %s (%v), want the low-confidence escalation", c.score, r.Kind, err)
		}
	}
	bad := DefaultPolicy()
	bad.SuggestMinScore = -0.5
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "suggest_min_score") {
		t.Errorf("suggest_min_score -0.5 validated: %v", err)
	}
}

// Sending the suggested question back answers from that FAQ through the
// conversation's pending choices, whatever the retrieval makes of the
// question this time.
func TestPickedSuggestionAnswers(t *testing.T) {
	ship := demoFAQs[2]
	p := newTestPipeline(t, func(_ *Config, d *Deps) { d.Retriever = fixedRetriever{tandem.Hit{FAQ: ship, Score: 0.7}} })
	r, err := p.Respond(context.Background(), turn("c-pick", "what does delivery cost"))
	if err != nil || len(r.QuickReplies) != 1 {
		t.Fatalf("no suggestion: %+v %v", r, err)
	}
	r, err = p.Respond(context.Background(), turn("c-pick", r.QuickReplies[0]))
	if err != nil || r.Kind != tandem.ReplyAnswer || r.Text != ship.Answer {
		t.Fatalf("picking %q gave %s %q (%v), want its answer", ship.Question, r.Kind, r.Text, err)
	}
}

// onlyRetriever finds its hit for queries that contain one of its words.
type onlyRetriever struct {
	hit   tandem.Hit
	words []string
}

func (o onlyRetriever) Retrieve(_ context.Context, q, _ string, _ int) ([]tandem.Hit, error) {
	for _, w := range o.words {
		if strings.Contains(strings.ToLower(q), w) {
			return []tandem.Hit{o.hit}, nil
		}
	}
	return nil, nil
}

// "sure" (or "yes please") to the bot's one suggestion answers from that
// FAQ although the retrieval finds nothing for "sure" (it got the affirm
// intent's "what can I help you with?"); "the last one" picks the last
// choice.
func TestAcceptedSuggestionAnswersWithoutItsHit(t *testing.T) {
	ship := demoFAQs[2]
	p := newTestPipeline(t, func(_ *Config, d *Deps) {
		d.Retriever = onlyRetriever{tandem.Hit{FAQ: ship, Score: 0.7}, []string{"delivery", strings.ToLower(ship.Question)}}
	})
	r, err := p.Respond(context.Background(), turn("c-sure", "what does delivery cost"))
	if err != nil || len(r.QuickReplies) != 1 {
		t.Fatalf("no suggestion: %+v %v", r, err)
	}
	r, err = p.Respond(context.Background(), turn("c-sure", "sure"))
	if err != nil || r.Kind != tandem.ReplyAnswer || r.Text != ship.Answer {
		t.Fatalf("'sure' gave %s %q (%v), want the suggested FAQ's answer", r.Kind, r.Text, err)
	}
	three := []Choice{{Label: "A", Intent: "a"}, {Label: "B", Intent: "b"}, {Label: "C", Intent: "c"}}
	if c, ok := pickChoice(three, "the last one"); !ok || c.Intent != "c" {
		t.Errorf("'the last one' picked %+v %v", c, ok)
	}
}

// TestForgetDeletesState: Forget deletes a conversation's dialogue state
// (its slots hold what the customer said), leaving others alone.
func TestForgetDeletesState(t *testing.T) {
	ctx := context.Background()
	st := NewMemoryStateStore(0, 0)
	p := newTestPipeline(t, func(c *Config, d *Deps) { d.State = st })
	for _, conv := range []string{"c-forget", "c-keep"} {
		if _, err := p.Respond(ctx, turn(conv, "my email is ada@example.com")); err != nil {
			t.Fatal(err)
		}
	}
	if s, _ := st.Load(ctx, "c-forget"); s.Turns == 0 {
		t.Fatal("no state saved for the turn")
	}
	if err := p.Forget(ctx, "c-forget"); err != nil {
		t.Fatal(err)
	}
	if s, _ := st.Load(ctx, "c-forget"); s.Turns != 0 || len(s.Slots) != 0 {
		t.Fatalf("state after Forget: %+v", s)
	}
	if s, _ := st.Load(ctx, "c-keep"); s.Turns == 0 {
		t.Fatal("Forget took another conversation's state")
	}
}

// Requests for a person that were missed ("agent" alone, "Mitarbeiter
// bitte", 担当者につないでください, 有真人吗, "get me someone who can
// actually help") escalate, while the same words inside ordinary questions
// do not; "this is bullshit" and "you suck" are abuse.
func TestMoreHumanRequestsAndAbuse(t *testing.T) {
	p := newTestPipeline(t, nil)
	for text, want := range map[string]bool{
		"agent": true, "Mitarbeiter bitte": true, "ich will einen echten Mitarbeiter": true, "担当者につないでください": true, "有真人吗": true,
		"I've asked three times already, get me someone who can actually help": true,
		"which shipping agent do you use?":                                     false, "is a person needed to sign for the parcel?": false,
	} {
		if got := p.mentionsHuman(normalise(text)); got != want {
			t.Errorf("mentionsHuman(%q) = %v, want %v", text, got, want)
		}
	}
	for text, want := range map[string]bool{"this is bullshit": true, "you suck": true, "my vacuum doesn't suck anymore": false} {
		if got := p.abusive(normalise(text)); got != want {
			t.Errorf("abusive(%q) = %v, want %v", text, got, want)
		}
	}
}
