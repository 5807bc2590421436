package eval

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/tandem-chat/tandem"
)

// Bot answers turns (pipeline.Pipeline satisfies it).
type Bot interface {
	Respond(ctx context.Context, turn tandem.Turn) (tandem.Reply, error)
}

// Case is one labelled customer message.
type Case struct {
	Text   string
	Intent string // gold intent ("oos" for out-of-scope)
}

// BotOptions configure RunBot.
type BotOptions struct {
	// EscalateIntents are gold intents for which escalation is the right
	// outcome (e.g. contact_human_agent, complaint).
	EscalateIntents []string
	// OOS is the out-of-scope label (default "oos").
	OOS string
	// Concurrency bounds parallel turns (default 8).
	Concurrency int
}

// BotReport is the end-to-end outcome of running cases through the bot.
type BotReport struct {
	Intent Classification `json:"intent"`
	// Outcome rates over all cases.
	AnswerRate   float64 `json:"answer_rate"`
	ClarifyRate  float64 `json:"clarify_rate"`
	FallbackRate float64 `json:"fallback_rate"`
	EscalateRate float64 `json:"escalate_rate"`
	// Handoff quality: escalation as a binary decision against
	// EscalateIntents.
	HandoffPrecision float64        `json:"handoff_precision"`
	HandoffRecall    float64        `json:"handoff_recall"`
	Reasons          map[string]int `json:"escalation_reasons"`
	Errors           int            `json:"errors"`
	Latency          Latency        `json:"latency"`
}

// RunBot sends each case as the first turn of its own conversation.
func RunBot(ctx context.Context, bot Bot, cases []Case, opt BotOptions) (BotReport, error) {
	if opt.OOS == "" {
		opt.OOS = tandem.OutOfScope
	}
	if opt.Concurrency <= 0 {
		opt.Concurrency = 8
	}
	replies := make([]tandem.Reply, len(cases))
	errs := make([]error, len(cases))
	lat := make([]time.Duration, len(cases))
	var wg sync.WaitGroup
	sem := make(chan struct{}, opt.Concurrency)
	for i, c := range cases {
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			start := time.Now()
			replies[i], errs[i] = bot.Respond(ctx, tandem.Turn{ConversationID: fmt.Sprintf("eval-%d", i), Text: c.Text, Time: start})
			lat[i] = time.Since(start)
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return BotReport{}, err
	}
	rep := BotReport{Reasons: map[string]int{}}
	gold := make([]string, len(cases))
	pred := make([]string, len(cases))
	var ans, clar, fb, esc, escTP, escGold int
	for i, c := range cases {
		gold[i] = c.Intent
		r := replies[i]
		// Counted before the error check: a failed turn that needed a
		// person is a missed handoff, not one left out of the recall.
		wantEsc := slices.Contains(opt.EscalateIntents, c.Intent)
		if wantEsc {
			escGold++
		}
		if errs[i] != nil {
			rep.Errors++
			pred[i] = opt.OOS
			continue
		}
		pred[i] = r.NLU.Intent.Name
		if r.NLU.OutOfScope || pred[i] == "" {
			pred[i] = opt.OOS
		}
		switch r.Kind {
		case tandem.ReplyAnswer:
			ans++
		case tandem.ReplyClarify:
			clar++
		case tandem.ReplyFallback:
			fb++
		case tandem.ReplyEscalate:
			esc++
			if wantEsc {
				escTP++
			}
			if r.Escalation != nil {
				rep.Reasons[string(r.Escalation.Reason)]++
			}
		}
	}
	n := len(cases)
	rep.Intent = Classify(gold, pred, opt.OOS)
	rep.Intent.PerClass = nil
	rep.AnswerRate, rep.ClarifyRate, rep.FallbackRate, rep.EscalateRate = ratio(ans, n), ratio(clar, n), ratio(fb, n), ratio(esc, n)
	rep.HandoffPrecision = ratio(escTP, esc)
	rep.HandoffRecall = ratio(escTP, escGold)
	rep.Latency = Percentiles(lat)
	return rep, nil
}
