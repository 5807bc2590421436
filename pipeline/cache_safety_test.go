package pipeline

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-chat/tandem"
)

// stallOnceModel stalls its first call until the stage deadline, then
// answers like inner.
type stallOnceModel struct {
	inner IntentModel
	calls atomic.Int64
}

func (m *stallOnceModel) ClassifyBatch(ctx context.Context, texts []string) ([]tandem.NLU, error) {
	if m.calls.Add(1) == 1 {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return m.inner.ClassifyBatch(ctx, texts)
}

// TestDegradedReplyNotCached: a reply made while a stage failed (here the
// intent model missed its deadline) is not cached; otherwise the next
// customer with the same text would be served it from the cache, which
// skips the models and with them the escalation of configured intents.
func TestDegradedReplyNotCached(t *testing.T) {
	m := &stallOnceModel{inner: &keywordModel{rules: []kwRule{{kw: "complain", intent: "complaint", conf: 0.9}}}}
	p := newTestPipeline(t, func(c *Config, d *Deps) {
		d.Cache = newReplyCache(t)
		c.StageTimeout = 50 * time.Millisecond
		d.Intent = m
	})
	ctx := context.Background()
	const text = "I complain: my refund takes so long"
	if _, err := p.Respond(ctx, turn("c1", text)); err != nil {
		t.Fatal(err)
	}
	r, err := p.Respond(ctx, turn("c2", text))
	if err != nil {
		t.Fatal(err)
	}
	if r.Cached || r.Kind != tandem.ReplyEscalate || r.Escalation == nil || r.Escalation.Reason != tandem.EscalateIntent {
		t.Fatalf("second customer: %s %q cached=%v escalation=%+v; want the configured-intent escalation", r.Kind, r.Text, r.Cached, r.Escalation)
	}
}

// TestTemplatedResponsesNotCachedNorShownRaw: an intent response with a
// {slot} placeholder is this conversation's answer. Without the value the
// bot asks for it (never shows "{order_id}"); with it the answer is filled;
// neither is cached for other conversations.
func TestTemplatedResponsesNotCachedNorShownRaw(t *testing.T) {
	p := newTestPipeline(t, func(c *Config, d *Deps) {
		d.Cache = newReplyCache(t)
		d.Intent = &keywordModel{rules: []kwRule{{kw: "status", intent: "order_status", conf: 0.95}}}
	})
	ctx := context.Background()
	if _, err := p.Respond(ctx, turn("B", "my order is ORD-42")); err != nil {
		t.Fatal(err)
	}
	a, err := p.Respond(ctx, turn("A", "what is the status"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(a.Text, "{") || !strings.Contains(a.Text, "order id") {
		t.Fatalf("without an order id: %s %q; want a question for it", a.Kind, a.Text)
	}
	b, err := p.Respond(ctx, turn("B", "what is the status"))
	if err != nil {
		t.Fatal(err)
	}
	if b.Cached || b.Text != "Order ORD-42 is on its way." {
		t.Fatalf("with the slot: %q cached=%v", b.Text, b.Cached)
	}
	c, err := p.Respond(ctx, turn("C", "what is the status"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Cached || strings.Contains(c.Text, "ORD-42") {
		t.Fatalf("another conversation got %q cached=%v", c.Text, c.Cached)
	}
}

// TestCachedAnswerDoesNotOverridePickedChoice: a customer who picks one of
// their clarifying quick replies gets that choice, even when the label's
// text was asked (and its answer cached) by another conversation.
func TestCachedAnswerDoesNotOverridePickedChoice(t *testing.T) {
	p := newTestPipeline(t, func(c *Config, d *Deps) {
		d.Cache = newReplyCache(t)
		m := testModel()
		// Typed freely, the label text reads as check_invoice.
		m.rules = append([]kwRule{{kw: "check bill", intent: "check_invoice", conf: 0.9}}, m.rules...)
		d.Intent = m
	})
	ctx := context.Background()
	if _, err := p.Respond(ctx, turn("other", "Check bill")); err != nil {
		t.Fatal(err)
	}
	r, err := p.Respond(ctx, turn("cl", "invoice or bill?"))
	if err != nil {
		t.Fatal(err)
	}
	label := ""
	for _, q := range r.QuickReplies {
		if strings.Contains(strings.ToLower(q), "bill") && !strings.Contains(strings.ToLower(q), "invoice") {
			label = q
		}
	}
	if r.Kind != tandem.ReplyClarify || label == "" {
		t.Fatalf("clarify = %s %v", r.Kind, r.QuickReplies)
	}
	picked, err := p.Respond(ctx, turn("cl", label))
	if err != nil {
		t.Fatal(err)
	}
	if picked.Cached || picked.Text != "Your bill is under Account > Billing." {
		t.Fatalf("picked %q: got %q cached=%v", label, picked.Text, picked.Cached)
	}
}

// heldModel blocks every call until release is closed (a model stuck on
// a busy machine).
type heldModel struct{ release chan struct{} }

func (m heldModel) ClassifyBatch(_ context.Context, texts []string) ([]tandem.NLU, error) {
	<-m.release
	return make([]tandem.NLU, len(texts)), nil
}

// TestEscalationNotLostInAdmissionQueue: "talk to a person" must escalate
// even when the models are saturated: the best-effort NLU for the agent
// waits at most a stage's time for an admission slot, and the escalation
// is recorded even when the turn's own time ran out while waiting (it was
// lost: the turn failed as unavailable).
func TestEscalationNotLostInAdmissionQueue(t *testing.T) {
	m := heldModel{release: make(chan struct{})}
	p := newTestPipeline(t, func(c *Config, d *Deps) {
		c.MaxActiveTurns = 1
		c.StageTimeout = 5 * time.Second // the busy turn holds the only slot
		d.Intent = m
		d.Retriever = nil
	})
	busy := make(chan struct{})
	go func() {
		defer close(busy)
		_, _ = p.Respond(context.Background(), turn("busy", "where is my parcel"))
	}()
	defer func() { close(m.release); <-busy }()
	for len(p.gate.slots) == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	r, err := p.Respond(ctx, turn("X", "I want to talk to a person"))
	if err != nil || r.Kind != tandem.ReplyEscalate || r.Escalation == nil {
		t.Fatalf("escalation turn: %s %+v, %v", r.Kind, r.Escalation, err)
	}
}

// TestBatcherShortResultIsAnError: a model returning fewer results than
// inputs is an internal error on both paths, never a panic (the unbatched
// path indexed out[0] unchecked).
func TestBatcherShortResultIsAnError(t *testing.T) {
	short := func(context.Context, []int) ([]int, error) { return nil, nil }
	for _, disabled := range []bool{false, true} {
		b := NewBatcher(BatchConfig{Disabled: disabled, MaxWait: time.Millisecond}, short, nil)
		_, err := b.Submit(context.Background(), 1)
		b.Close()
		if tandem.ErrorCode(err) != tandem.EINTERNAL {
			t.Fatalf("disabled=%v: %v, want an internal error", disabled, err)
		}
	}
}

// TestCachedAnswerKeepsTheTurnsEntities: the entities a customer gives in a
// message (an order id, a relative date) are theirs: a message whose
// answer is also another conversation's must still fill this
// conversation's slots and carry its entities, so such a reply is not
// served from (or put in) the hot cache.
func TestCachedAnswerKeepsTheTurnsEntities(t *testing.T) {
	model := testModel()
	model.rules = append(model.rules, kwRule{kw: "status", intent: "order_status", conf: 0.95})
	p := newTestPipeline(t, func(c *Config, d *Deps) { d.Cache = newReplyCache(t); d.Intent = model })
	ctx := context.Background()
	const text = "I want a refund for ORD-777"
	a, err := p.Respond(ctx, turn("A", text))
	if err != nil || a.Kind != tandem.ReplyAnswer {
		t.Fatalf("A: %+v %v", a, err)
	}
	b, err := p.Respond(ctx, turn("B", text))
	if err != nil || b.Kind != tandem.ReplyAnswer {
		t.Fatalf("B: %+v %v", b, err)
	}
	if len(b.NLU.Entities) != 1 || b.NLU.Entities[0].Value != "ORD-777" {
		t.Errorf("B's reply lost the turn's entities: %+v (cached %v)", b.NLU.Entities, b.Cached)
	}
	s, err := p.Respond(ctx, turn("B", "what is the status"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Text != "Order ORD-777 is on its way." {
		t.Fatalf("B's order id was not remembered: %q", s.Text)
	}
}

// TestAskedSlotIsAnsweredWhenGiven: after "Could you tell me your order
// id?" the customer's next message with the id gets the response that
// needed it, not a fallback (the message alone names no intent).
func TestAskedSlotIsAnsweredWhenGiven(t *testing.T) {
	model := testModel()
	model.rules = append(model.rules, kwRule{kw: "status", intent: "order_status", conf: 0.95})
	p := newTestPipeline(t, func(c *Config, d *Deps) { d.Cache = newReplyCache(t); d.Intent = model })
	ctx := context.Background()
	a, err := p.Respond(ctx, turn("slot", "what is the status"))
	if err != nil || a.Kind != tandem.ReplyClarify || !strings.Contains(a.Text, "order id") {
		t.Fatalf("first turn: %+v %v; want a question for the order id", a, err)
	}
	b, err := p.Respond(ctx, turn("slot", "it's ORD-9001"))
	if err != nil {
		t.Fatal(err)
	}
	if b.Kind != tandem.ReplyAnswer || b.Text != "Order ORD-9001 is on its way." || b.NLU.Intent.Name != "order_status" {
		t.Fatalf("the order id given: %s %q (intent %s); want the order_status response", b.Kind, b.Text, b.NLU.Intent.Name)
	}
	// Answered once: a later message with another id is read on its own.
	c, err := p.Respond(ctx, turn("slot", "ORD-9002"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Kind == tandem.ReplyAnswer && strings.Contains(c.Text, "ORD-9002 is on its way") {
		t.Fatalf("the pending question was answered twice: %q", c.Text)
	}
	// Another conversation that asks something else after the question is
	// not held to it.
	if _, err := p.Respond(ctx, turn("slot2", "what is the status")); err != nil {
		t.Fatal(err)
	}
	d, err := p.Respond(ctx, turn("slot2", "hello, ORD-1"))
	if err != nil || d.Text != "Hello! How can I help?" {
		t.Fatalf("a new confident intent after the question: %+v %v", d, err)
	}
}

// TestAskedSlotsOneAtATime: a response with two placeholders asks for the
// second once the first is given, and answers when both are known.
func TestAskedSlotsOneAtATime(t *testing.T) {
	model := testModel()
	model.rules = append(model.rules, kwRule{kw: "status", intent: "order_status", conf: 0.95})
	p := newTestPipeline(t, func(c *Config, d *Deps) {
		d.Intent = model
		d.Rules = twoRules{}
		c.Policy.Responses["order_status"] = "Order {order_id} ships to {zip}."
	})
	ctx := context.Background()
	steps := []struct{ text, want string }{
		{"what is the status", "Could you tell me your order id?"},
		{"ORD-5", "Could you tell me your zip?"},
		{"ZIP-12345", "Order ORD-5 ships to ZIP-12345."},
	}
	for _, s := range steps {
		r, err := p.Respond(ctx, turn("two-slots", s.text))
		if err != nil || r.Text != s.want {
			t.Fatalf("%q: %s %q %v; want %q", s.text, r.Kind, r.Text, err, s.want)
		}
	}
}

// twoRules extracts ORD-n as order_id and ZIP-n as zip.
type twoRules struct{}

func (twoRules) Extract(text string, ref time.Time) []tandem.Entity {
	out := regexRules{}.Extract(text, ref)
	for _, loc := range regexp.MustCompile(`ZIP-\d+`).FindAllStringIndex(text, -1) {
		start := len([]rune(text[:loc[0]]))
		v := text[loc[0]:loc[1]]
		out = append(out, tandem.Entity{Type: "zip", Text: v, Value: v, Start: start, End: start + len([]rune(v)), Source: "rule"})
	}
	return out
}

// downStore is a dialogue-state store that is down.
type downStore struct{}

func (downStore) Load(context.Context, string) (State, error) {
	return State{}, errors.New("connection refused")
}
func (downStore) Save(context.Context, string, State) error { return errors.New("connection refused") }
func (downStore) Delete(context.Context, string) error      { return errors.New("connection refused") }

// saveFails loads fine but cannot write.
type saveFails struct{ *MemoryStateStore }

func (saveFails) Save(context.Context, string, State) error { return errors.New("disk full") }

// TestEscalationSurvivesStateStoreOutage: "talk to a person" (and every
// other escalation) still reaches a person when the dialogue state cannot
// be read or written; other replies report the store as unavailable.
func TestEscalationSurvivesStateStoreOutage(t *testing.T) {
	for name, store := range map[string]StateStore{"down": downStore{}, "save fails": saveFails{NewMemoryStateStore(0, 0)}} {
		p := newTestPipeline(t, func(c *Config, d *Deps) { d.State = store })
		ctx := context.Background()
		r, err := p.Respond(ctx, tandem.Turn{ConversationID: "out-" + name, RequestHuman: true, Time: time.Now()})
		if err != nil || r.Kind != tandem.ReplyEscalate || r.Escalation == nil || r.Escalation.Reason != tandem.EscalateButton {
			t.Fatalf("%s: button: %+v %v; want an escalation", name, r, err)
		}
		r, err = p.Respond(ctx, turn("out2-"+name, "I want to complain about the delivery"))
		if err != nil || r.Kind != tandem.ReplyEscalate || r.Escalation.Summary.Intent.Name != "complaint" {
			t.Fatalf("%s: configured intent: %+v %v; want an escalation with its summary", name, r, err)
		}
		if _, err := p.Respond(ctx, turn("out3-"+name, "hello")); tandem.ErrorCode(err) != tandem.EUNAVAILABLE {
			t.Fatalf("%s: an answer with the store down: err = %v, want unavailable", name, err)
		}
	}
}
