package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/tandem-chat/tandem"
)

// Policy is a bot's answer policy, loaded from YAML (see docs/pipeline.md).
// Zero values take the defaults documented on each field; Validate checks
// ranges and names the offending key.
type Policy struct {
	// Name of the bot, shown in logs.
	Name string `yaml:"name"`
	// AnswerThreshold is the minimum calibrated intent confidence (or FAQ
	// score) to answer (default 0.5). A per-FAQ threshold overrides it.
	AnswerThreshold float64 `yaml:"answer_threshold"`
	// FAQMinScore is the minimum retrieval score to answer from an FAQ when
	// the intent model does not point at it (default 0.75).
	FAQMinScore float64 `yaml:"faq_min_score"`
	// ClarifyMargin: when the top two candidates are within this margin and
	// the top one is below ClarifyCeiling, ask which one was meant (default 0.15).
	ClarifyMargin float64 `yaml:"clarify_margin"`
	// ClarifyCeiling: above this confidence never clarify (default 0.8).
	ClarifyCeiling float64 `yaml:"clarify_ceiling"`
	// ClarifyChoices is how many quick replies a clarification offers (default 3).
	ClarifyChoices int `yaml:"clarify_choices"`
	// MaxFallbacks: escalate after this many consecutive low-confidence
	// turns (default 2; 0 takes the default, -1 disables).
	MaxFallbacks int `yaml:"max_fallbacks"`

	Escalation EscalationPolicy `yaml:"escalation"`
	// Responses maps an intent to the bot's answer for it.
	Responses map[string]string `yaml:"responses"`
	// Labels maps an intent to a human label used in clarifying quick replies.
	Labels   map[string]string `yaml:"labels"`
	Messages Messages          `yaml:"messages"`
	LLM      LLMPolicy         `yaml:"llm"`
	// MaxTurnRunes: longer messages are cut to this many characters before
	// NLU (default 1000). The message is stored whole by the gateway.
	MaxTurnRunes int `yaml:"max_turn_runes"`
	// EntityMinConfidence: entities from the tagger model less confident
	// than this are left out of the turn (default 0.5); rule and lookup
	// entities are exact and always kept.
	EntityMinConfidence float64 `yaml:"entity_min_confidence"`
	// SuggestMinScore: a turn the bot falls back on offers its best FAQ as
	// a "did you mean" quick reply (Messages.Suggest) when that FAQ scores
	// at least this (default 0.6: about 1% of CLINC150's 200 out-of-scope
	// training texts reach it against the demo FAQs); 1 offers nothing.
	SuggestMinScore float64 `yaml:"suggest_min_score"`
}

// EscalationPolicy says when a conversation goes to a human.
type EscalationPolicy struct {
	// HumanIntents are intents meaning "I want a person" (default contact_human_agent).
	HumanIntents []string `yaml:"human_intents"`
	// Keywords are phrases, per language, meaning "I want a person"; matched
	// on normalised text (case-folded; substring for CJK, whole words otherwise).
	Keywords map[string][]string `yaml:"keywords"`
	// Intents escalate whenever predicted with at least AnswerThreshold (e.g. complaint).
	Intents []string `yaml:"intents"`
	// VIP escalates every turn of a VIP-tier customer (default true).
	VIP *bool `yaml:"vip"`
	// SentimentThreshold escalates turns whose sentiment is at or below it
	// (default -0.6; -1 disables... use Disabled sentiment by setting -2).
	SentimentThreshold float64 `yaml:"sentiment_threshold"`
	// AbuseWords escalate on abuse (whole words, case-folded).
	AbuseWords []string `yaml:"abuse_words"`
	// Priorities per reason (higher is more urgent).
	Priorities map[string]int `yaml:"priorities"`
	// Skills per reason or intent ("intent:complaint": ["complaints"]).
	Skills map[string][]string `yaml:"skills"`
}

// Messages are the bot's fixed texts.
type Messages struct {
	Fallback string `yaml:"fallback"`
	Clarify  string `yaml:"clarify"`
	// Suggest is the fallback that offers the nearest FAQ (SuggestMinScore).
	Suggest    string `yaml:"suggest"`
	Escalate   string `yaml:"escalate"`
	Overloaded string `yaml:"overloaded"`
	// AskSlot asks for a value an intent's response needs ({slot} is the
	// entity type, underscores as spaces).
	AskSlot string `yaml:"ask_slot"`
	// Withdrawn answers a customer who, while waiting for a person, says
	// they no longer want one (the request is then withdrawn).
	Withdrawn string `yaml:"withdrawn"`
	// DeclinedHuman answers a message that only says no to a person ("no,
	// I don't need a person"): not a failed turn, and no escalation.
	DeclinedHuman string `yaml:"declined_human"`
}

// LLMPolicy configures generative answers (used only when an LLM is wired).
type LLMPolicy struct {
	// Sources is how many retrieved FAQs ground the answer (default 3).
	Sources int `yaml:"sources"`
	// MinScore is the retrieval score needed to try generation (default 0.3).
	MinScore float64 `yaml:"min_score"`
	// OnFailure is "extractive" (answer with the best FAQ) or "escalate"
	// (default extractive).
	OnFailure string `yaml:"on_failure"`
}

// DefaultPolicy returns the defaults.
func DefaultPolicy() Policy {
	var p Policy
	p.applyDefaults()
	return p
}

func (p *Policy) applyDefaults() {
	if p.Name == "" {
		p.Name = "bot"
	}
	if p.AnswerThreshold == 0 {
		p.AnswerThreshold = 0.5
	}
	if p.FAQMinScore == 0 {
		p.FAQMinScore = 0.75
	}
	if p.ClarifyMargin == 0 {
		p.ClarifyMargin = 0.15
	}
	if p.ClarifyCeiling == 0 {
		p.ClarifyCeiling = 0.8
	}
	if p.ClarifyChoices == 0 {
		p.ClarifyChoices = 3
	}
	if p.MaxFallbacks == 0 {
		p.MaxFallbacks = 2
	}
	if p.MaxTurnRunes == 0 {
		p.MaxTurnRunes = 1000
	}
	if p.EntityMinConfidence == 0 {
		p.EntityMinConfidence = 0.5
	}
	if p.SuggestMinScore == 0 {
		p.SuggestMinScore = 0.6
	}
	e := &p.Escalation
	if e.HumanIntents == nil {
		e.HumanIntents = []string{"contact_human_agent"}
	}
	if e.Keywords == nil {
		e.Keywords = defaultHumanKeywords()
	}
	if e.VIP == nil {
		t := true
		e.VIP = &t
	}
	if e.SentimentThreshold == 0 {
		e.SentimentThreshold = -0.6
	}
	if e.AbuseWords == nil {
		e.AbuseWords = []string{"idiot", "idiots", "stupid", "moron", "fuck", "fucking", "shit", "bastard", "asshole", "dumbass", "useless piece",
			"bullshit", "you suck", "screw you", "piss off"}
	}
	if e.Priorities == nil {
		e.Priorities = map[string]int{}
	}
	m := &p.Messages
	if m.Fallback == "" {
		m.Fallback = "Sorry, I didn't quite get that. Could you rephrase it? You can also ask to talk to a person."
	}
	if m.Clarify == "" {
		m.Clarify = "Did you mean one of these?"
	}
	if m.Suggest == "" {
		m.Suggest = "Sorry, I'm not sure I understood. Did you mean this? You can also rephrase, or ask to talk to a person."
	}
	if m.Escalate == "" {
		m.Escalate = "I'm connecting you with a member of our team. They will see everything we talked about."
	}
	if m.AskSlot == "" {
		m.AskSlot = "Could you tell me your {slot}?"
	}
	if m.DeclinedHuman == "" {
		m.DeclinedHuman = "Alright, no person then. What can I help you with?"
	}
	if m.Withdrawn == "" {
		m.Withdrawn = "Alright, I've withdrawn your request for a person. What can I help you with?"
	}
	if m.Overloaded == "" {
		m.Overloaded = "We're very busy right now; please try again in a moment."
	}
	if p.LLM.Sources == 0 {
		p.LLM.Sources = 3
	}
	if p.LLM.MinScore == 0 {
		p.LLM.MinScore = 0.3
	}
	if p.LLM.OnFailure == "" {
		p.LLM.OnFailure = "extractive"
	}
}

func defaultHumanKeywords() map[string][]string {
	return map[string][]string{
		// Phrases, not single words: "operator", "representative",
		// "conseiller" or "Kundenberater" alone are in ordinary questions
		// ("which payment operator do you use?").
		"en": {"talk to a person", "talk to a human", "speak to a human", "speak to a person", "real person", "human agent", "live agent", "live-agent", "customer service representative",
			"talk to an agent", "speak to an agent", "talk to someone", "speak to someone", "talk to a representative", "speak to a representative", "talk to an operator", "speak to an operator",
			"connect me to a person", "connect me with a person", "connect me to an agent", "connect me with an agent", "connect me to someone", "connect me with someone", "connect me to a human", "connect me with a human",
			"get me a human", "get me a person", "get me an agent", "get me someone", "someone who can help", "someone who can actually help", "a real human"},
		"de": {"mit einem menschen", "mitarbeiter sprechen", "echten menschen", "mit einem kundenberater", "kundenberater sprechen",
			"mit jemandem sprechen", "mit jemandem reden", "einen menschen sprechen", "mit einem mitarbeiter", "mitarbeiter reden", "menschen sprechen",
			"echten mitarbeiter", "einen mitarbeiter", "mitarbeiter bitte"},
		// Also without accents: phone keyboards and hurried customers
		// leave them out.
		"fr": {"parler à un humain", "parler à une personne", "parler à un conseiller", "un agent humain", "parler a un humain", "parler a une personne", "parler a un conseiller",
			"parler à un agent", "parler a un agent", "parler à quelqu'un", "parler a quelqu'un", "parler avec un conseiller", "parler avec quelqu'un", "parler avec un humain"},
		"es": {"hablar con una persona", "hablar con un humano", "agente humano", "hablar con un representante", "hablar con un agente", "hablar con alguien", "hablar con un asesor", "persona real"},
		// Not the bare 人工 ("manual, human-made"): CJK phrases match as
		// substrings, and it would also match 人工智能 ("AI"); nor 真人
		// (真人秀 "reality show"), 担当者 or 人と話 (友人と話す).
		"zh": {"人工客服", "人工服务", "转人工", "要人工", "找人工", "接人工", "真人客服", "找真人", "转真人", "客服人员", "找客服", "有真人吗"},
		"ja": {"オペレーター", "担当者と話", "担当者に代わ", "担当者につな", "担当者に繋", "人間と話"},
	}
}

// Validate checks the policy, naming each bad key.
func (p Policy) Validate() error {
	var errs []error
	unit := func(key string, v float64) {
		if !(v >= 0 && v <= 1) { // also NaN, which fails every comparison
			errs = append(errs, fmt.Errorf("%s = %v: must be between 0 and 1", key, v))
		}
	}
	unit("answer_threshold", p.AnswerThreshold)
	unit("faq_min_score", p.FAQMinScore)
	unit("entity_min_confidence", p.EntityMinConfidence)
	unit("suggest_min_score", p.SuggestMinScore)
	unit("clarify_margin", p.ClarifyMargin)
	unit("clarify_ceiling", p.ClarifyCeiling)
	unit("llm.min_score", p.LLM.MinScore)
	if p.ClarifyChoices < 2 || p.ClarifyChoices > 10 {
		errs = append(errs, fmt.Errorf("clarify_choices = %d: must be between 2 and 10", p.ClarifyChoices))
	}
	if p.MaxFallbacks < -1 || p.MaxFallbacks > 100 {
		errs = append(errs, fmt.Errorf("max_fallbacks = %d: must be -1 (never) or between 1 and 100", p.MaxFallbacks))
	}
	if p.MaxTurnRunes < 10 || p.MaxTurnRunes > 100000 {
		errs = append(errs, fmt.Errorf("max_turn_runes = %d: must be between 10 and 100000", p.MaxTurnRunes))
	}
	if st := p.Escalation.SentimentThreshold; !(st >= -1 && st <= 0 || st == -2) {
		errs = append(errs, fmt.Errorf("escalation.sentiment_threshold = %v: must be between -1 and 0 (or -2 to disable)", st))
	}
	reasons := []string{string(tandem.EscalateRequested), string(tandem.EscalateButton), string(tandem.EscalateLowConfidence),
		string(tandem.EscalateIntent), string(tandem.EscalateSentiment), string(tandem.EscalateAbuse), string(tandem.EscalateVIP),
		string(tandem.EscalateBreakerOpen)}
	for k, v := range p.Escalation.Priorities {
		if !slices.Contains(reasons, k) {
			errs = append(errs, fmt.Errorf("escalation.priorities.%s: unknown escalation reason; accepted: %s", k, strings.Join(reasons, ", ")))
		}
		if v < 0 || v > 1000 {
			errs = append(errs, fmt.Errorf("escalation.priorities.%s = %d: must be between 0 and 1000", k, v))
		}
	}
	for k := range p.Escalation.Skills {
		if name, ok := strings.CutPrefix(k, "intent:"); ok && strings.TrimSpace(name) != "" || slices.Contains(reasons, k) {
			continue
		}
		errs = append(errs, fmt.Errorf("escalation.skills.%s: unknown escalation reason; accepted: %s, or intent:NAME", k, strings.Join(reasons, ", ")))
	}
	for _, w := range p.Escalation.AbuseWords {
		if normalise(w) == "" {
			errs = append(errs, fmt.Errorf("escalation.abuse_words: %q is empty once normalised", w))
		}
	}
	if !slices.Contains([]string{"extractive", "escalate"}, p.LLM.OnFailure) {
		errs = append(errs, fmt.Errorf("llm.on_failure = %q: accepted values: extractive, escalate", p.LLM.OnFailure))
	}
	if p.LLM.Sources < 1 || p.LLM.Sources > 10 {
		errs = append(errs, fmt.Errorf("llm.sources = %d: must be between 1 and 10", p.LLM.Sources))
	}
	for lang, kws := range p.Escalation.Keywords {
		for _, k := range kws {
			if normalise(k) == "" {
				errs = append(errs, fmt.Errorf("escalation.keywords.%s: keyword %q is empty once normalised (punctuation and spaces only)", lang, k))
			}
		}
	}
	for intent, r := range p.Responses {
		if strings.TrimSpace(r) == "" {
			errs = append(errs, fmt.Errorf("responses.%s: empty response", intent))
		}
	}
	for intent, l := range p.Labels {
		if strings.TrimSpace(l) == "" { // a quick reply nobody can pick
			errs = append(errs, fmt.Errorf("labels.%s: empty label", intent))
		}
	}
	m := p.Messages
	for key, v := range map[string]string{"fallback": m.Fallback, "clarify": m.Clarify, "suggest": m.Suggest, "escalate": m.Escalate, "overloaded": m.Overloaded, "ask_slot": m.AskSlot, "withdrawn": m.Withdrawn, "declined_human": m.DeclinedHuman} {
		if strings.TrimSpace(v) == "" { // "" is the default; spaces are not
			errs = append(errs, fmt.Errorf("messages.%s: blank message", key))
		}
	}
	return errors.Join(errs...)
}

// ParsePolicy reads a policy from YAML; unknown keys are errors, so a typo
// does not silently fall back to a default.
func ParsePolicy(b []byte) (Policy, error) {
	var p Policy
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	// An empty document (a file of comments only) is the default policy,
	// not the decoder's bare "EOF".
	if err := dec.Decode(&p); err != nil && !errors.Is(err, io.EOF) {
		return Policy{}, fmt.Errorf("policy: %w", err)
	}
	// yaml.v3 truncates 1.5 into an int setting without a word.
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err == nil {
		if err := wholeNumbers(&doc, reflect.TypeOf(p), ""); err != nil {
			return Policy{}, fmt.Errorf("policy: %w", err)
		}
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		// A second document ("---") would be dropped unread.
		return Policy{}, errors.New("policy: the file holds more than one YAML document")
	}
	p.applyDefaults()
	if err := p.Validate(); err != nil {
		return Policy{}, fmt.Errorf("policy: %w", err)
	}
	return p, nil
}

// wholeNumbers walks n along the Go type t and refuses a number with a
// fraction or an exponent where t holds an integer.
func wholeNumbers(n *yaml.Node, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch n.Kind {
	case yaml.DocumentNode, yaml.AliasNode:
		for _, c := range n.Content {
			if err := wholeNumbers(c, t, path); err != nil {
				return err
			}
		}
		if n.Alias != nil {
			return wholeNumbers(n.Alias, t, path)
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!float" {
			// 2.0 and 1e1 are whole numbers; 1.5 (and .nan) are not.
			var v float64
			if err := n.Decode(&v); err != nil || v != math.Trunc(v) || math.IsInf(v, 0) {
				return fmt.Errorf("line %d: %s must be a whole number, got %s", n.Line, path, n.Value)
			}
		}
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return nil
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			for j := range t.NumField() {
				f := t.Field(j)
				if name, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); name == key {
					if err := wholeNumbers(n.Content[i+1], f.Type, strings.TrimPrefix(path+"."+key, ".")); err != nil {
						return err
					}
				}
			}
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return nil
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := wholeNumbers(n.Content[i+1], t.Elem(), path+"."+n.Content[i].Value); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		if n.Kind != yaml.SequenceNode {
			return nil
		}
		for i, c := range n.Content {
			if err := wholeNumbers(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

// maxPolicyBytes bounds a policy file (the demo's is about 4 KB).
const maxPolicyBytes = 1 << 20

// LoadPolicy reads a policy YAML file.
func LoadPolicy(path string) (Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return Policy{}, fmt.Errorf("policy: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPolicyBytes+1))
	if err != nil {
		return Policy{}, fmt.Errorf("policy: %w", err)
	}
	if len(b) > maxPolicyBytes {
		return Policy{}, fmt.Errorf("policy: %s: larger than %d bytes", path, maxPolicyBytes)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		// Most likely a truncated file or a mount that failed, not a
		// choice: the default policy would run without the operator's
		// responses and escalation rules, unnoticed. (A file with only a
		// comment in it is the default policy, on purpose.)
		return Policy{}, fmt.Errorf("policy: %s is empty (a truncated file or a failed mount?); write at least a comment to run the default policy", path)
	}
	p, err := ParsePolicy(b)
	if err != nil {
		return Policy{}, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}
