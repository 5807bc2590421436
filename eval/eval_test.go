package eval

import (
	"bytes"
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/tandem-chat/tandem"
)

func TestClassify(t *testing.T) {
	gold := []string{"a", "a", "b", "oos", "oos", "b"}
	pred := []string{"a", "b", "b", "oos", "a", "oos"}
	c := Classify(gold, pred, "oos")
	if c.Examples != 6 || c.Accuracy != 3.0/6 || c.InScopeAccuracy != 2.0/4 {
		t.Fatalf("%+v", c)
	}
	if c.OOSPrecision != 0.5 || c.OOSRecall != 0.5 {
		t.Fatalf("oos p/r = %v/%v", c.OOSPrecision, c.OOSRecall)
	}
	if a := c.PerClass["a"]; a.Precision != 0.5 || a.Recall != 0.5 || a.Support != 2 {
		t.Fatalf("class a = %+v", a)
	}
}

func TestRankAndPercentiles(t *testing.T) {
	r := Rank([]int{1, 2, 0, 5}, 1, 5)
	if r.RecallAt[1] != 0.25 || r.RecallAt[5] != 0.75 || r.MRR != (1+0.5+0.2)/4 {
		t.Fatalf("%+v", r)
	}
	l := Percentiles([]time.Duration{3 * time.Millisecond, time.Millisecond, 2 * time.Millisecond, 100 * time.Millisecond})
	if l.P50 != 2 || l.Max != 100 || l.Count != 4 {
		t.Fatalf("%+v", l)
	}
}

type echoBot struct{}

func (echoBot) Respond(_ context.Context, t tandem.Turn) (tandem.Reply, error) {
	switch {
	case strings.Contains(t.Text, "person"):
		return tandem.Reply{Kind: tandem.ReplyEscalate, NLU: tandem.NLU{Intent: tandem.IntentScore{Name: "contact_human_agent"}},
			Escalation: &tandem.Escalation{Reason: tandem.EscalateRequested}}, nil
	case strings.Contains(t.Text, "track"):
		return tandem.Reply{Kind: tandem.ReplyAnswer, NLU: tandem.NLU{Intent: tandem.IntentScore{Name: "track_order"}}}, nil
	}
	return tandem.Reply{Kind: tandem.ReplyFallback, NLU: tandem.NLU{OutOfScope: true}}, nil
}

func TestRunBotAndGates(t *testing.T) {
	cases := []Case{
		{"track my order", "track_order"}, {"a person please", "contact_human_agent"},
		{"I want a person", "complaint"}, {"weather?", "oos"},
	}
	rep, err := RunBot(context.Background(), echoBot{}, cases, BotOptions{EscalateIntents: []string{"contact_human_agent", "complaint"}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.AnswerRate != 0.25 || rep.EscalateRate != 0.5 || rep.HandoffRecall != 1 || rep.HandoffPrecision != 1 || rep.Reasons["customer_requested"] != 2 {
		t.Fatalf("%+v", rep)
	}
	g1, _ := ParseGate("handoff_recall>=0.9")
	g2, _ := ParseGate("intent.accuracy>=0.9")
	g3, _ := ParseGate("latency.p99_ms<=100000")
	fails, err := Check(rep, []Gate{g1, g2, g3})
	if err != nil {
		t.Fatal(err)
	}
	if len(fails) != 1 || !strings.HasPrefix(fails[0], "intent.accuracy") {
		t.Fatalf("fails = %v", fails)
	}
	if _, err := ParseGate("nonsense"); err == nil {
		t.Fatal("bad gate accepted")
	}
	var md bytes.Buffer
	if err := WriteMarkdown(&md, "bot", rep); err != nil || !strings.Contains(md.String(), "| handoff_recall | 1 |") {
		t.Fatalf("markdown: %v\n%s", err, md.String())
	}
}

type failingBot struct{}

func (failingBot) Respond(_ context.Context, turn tandem.Turn) (tandem.Reply, error) {
	if turn.Text == "fail" {
		return tandem.Reply{}, errors.New("boom")
	}
	return tandem.Reply{Kind: tandem.ReplyEscalate, NLU: tandem.NLU{Intent: tandem.IntentScore{Name: "human"}}}, nil
}

// TestBotErrorsCountAsMissedHandoffs: a turn that failed on a message
// needing a person is a missed handoff (it was left out of the recall).
func TestBotErrorsCountAsMissedHandoffs(t *testing.T) {
	cases := []Case{{Text: "ok", Intent: "human"}, {Text: "fail", Intent: "human"}, {Text: "fail", Intent: "human"}}
	rep, err := RunBot(context.Background(), failingBot{}, cases, BotOptions{EscalateIntents: []string{"human"}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Errors != 2 || math.Abs(rep.HandoffRecall-1.0/3) > 1e-9 {
		t.Fatalf("errors %d, handoff recall %v; want 2 and 1/3", rep.Errors, rep.HandoffRecall)
	}
}

// TestMacroF1DeterministicOverGoldAndPredicted: the same input gives the
// same macro F1 to the last digit, averaged over gold ∪ predicted labels.
func TestMacroF1DeterministicOverGoldAndPredicted(t *testing.T) {
	gold := []string{"a", "b", "c", "d", "e", "f", "g", "a", "b", "oos"}
	pred := []string{"a", "c", "c", "d", "x", "f", "g", "b", "b", "oos"}
	first := Classify(gold, pred, "oos").MacroF1
	for range 100 {
		if got := Classify(gold, pred, "oos").MacroF1; got != first {
			t.Fatalf("macro F1 %v then %v", first, got)
		}
	}
	if _, ok := Classify(gold, pred, "oos").PerClass["x"]; !ok {
		t.Fatal("a label only predicted is not in the per-class report")
	}
}

// TestGateRejectsNonNumbers: NaN would make a gate that can never fail.
func TestGateRejectsNonNumbers(t *testing.T) {
	for _, s := range []string{"intent.accuracy>=NaN", "intent.accuracy>=-Inf", "intent.accuracy>=0.9abc", "intent.accuracy<="} {
		if _, err := ParseGate(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
	if g, err := ParseGate("intent.accuracy >= 0.9"); err != nil || g.Metric != "intent.accuracy" || *g.Min != 0.9 {
		t.Fatalf("good gate: %+v, %v", g, err)
	}
}
