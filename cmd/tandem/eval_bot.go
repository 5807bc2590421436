package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/tandem-chat/tandem/eval"
	"github.com/tandem-chat/tandem/models"
	"github.com/tandem-chat/tandem/nlp/data"
)

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, " ") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// evalBotReport is what `tandem eval-bot` prints.
type evalBotReport struct {
	Data     []string       `json:"data"`
	Examples int            `json:"examples"`
	Model    string         `json:"model"`
	Policy   string         `json:"policy"`
	Bot      eval.BotReport `json:"bot"`
	Failed   []string       `json:"failed_gates,omitempty"`
}

// runEvalBot runs labelled customer messages through the whole bot of the
// configuration (models, policy, knowledge; each message the first turn of
// its own conversation) and reports intent quality, outcome rates,
// handoff precision/recall and latency. --gate makes it a check: the
// command fails when a metric is out of bounds.
//
//	tandem eval-bot --data SPEC [--data SPEC ...] [--gate METRIC>=N ...] [--json] [serve flags]
func runEvalBot(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var specs, gateS stringList
	var asJSON *bool
	var conc *int
	cfg, fs, err := parseOfflineFlags("eval-bot", args, getenv, stderr, func(fs *flag.FlagSet) {
		fs.Var(&specs, "data", "labelled messages, FORMAT:PATH[#SPLITS] (repeatable); use data the models never trained on, e.g. tandem:eval/data/demo-bot.yml")
		fs.Var(&gateS, "gate", "fail unless METRIC>=N or METRIC<=N holds, e.g. bot.handoff_recall>=0.9 (repeatable; metric names as in --json)")
		asJSON = fs.Bool("json", false, "print one JSON object")
		conc = fs.Int("concurrency", 8, "turns in flight")
	})
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("eval-bot: unexpected argument %q (data sets go in --data SPEC)", fs.Arg(0))
	}
	if *conc < 1 {
		return fmt.Errorf("eval-bot: --concurrency must be at least 1")
	}
	if len(specs) == 0 {
		return fmt.Errorf("eval-bot: give at least one --data SPEC")
	}
	var gates []eval.Gate
	for _, g := range gateS {
		pg, err := eval.ParseGate(g)
		if err != nil {
			return err
		}
		gates = append(gates, pg)
	}
	var cases []eval.Case
	for _, spec := range specs {
		ds, err := data.Load(spec)
		if err != nil {
			return fmt.Errorf("eval-bot: %w", err)
		}
		for _, e := range ds.Examples {
			if e.Intent != "" {
				cases = append(cases, eval.Case{Text: e.Text, Intent: e.Intent})
			}
		}
	}
	if len(cases) == 0 {
		return fmt.Errorf("eval-bot: the data has no labelled messages")
	}
	rt, err := models.OpenRuntime(cfg.ONNXRuntimeLib)
	if err != nil {
		return fmt.Errorf("eval-bot: %w", err)
	}
	defer rt.Close()
	b, err := buildBot(ctx, rt, cfg, botOptions{})
	if err != nil {
		return err
	}
	defer b.Close()
	esc := slices.Concat(b.Policy.Escalation.HumanIntents, b.Policy.Escalation.Intents)
	rep, err := eval.RunBot(ctx, b, cases, eval.BotOptions{EscalateIntents: esc, Concurrency: *conc})
	if err != nil {
		return fmt.Errorf("eval-bot: %w", err)
	}
	out := evalBotReport{Data: specs, Examples: len(cases), Model: b.Intent.Manifest().Version, Policy: b.Policy.Name, Bot: rep}
	fails, err := eval.Check(out, gates)
	if err != nil {
		return err
	}
	out.Failed = fails
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else if err := eval.WriteMarkdown(stdout, "Bot evaluation: "+strings.Join(specs, ", "), out); err != nil {
		return err
	}
	if len(fails) > 0 {
		return fmt.Errorf("eval-bot: %d gate(s) failed: %s", len(fails), strings.Join(fails, "; "))
	}
	return nil
}
