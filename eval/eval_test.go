package eval

import (
	"bytes"
	"context"
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
