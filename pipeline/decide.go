package pipeline

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"strings"
	"unicode"

	"github.com/tandem-chat/tandem"
)

// decide applies the answer policy to the stage results. cacheable says the
// reply depends only on the normalised text (no dialogue state such as a
// picked quick reply, no slots, not generated, and not a stand-in for a
// generator that failed), so the hot cache may serve it next time.
func (p *Pipeline) decide(ctx context.Context, t *turnCtx, turn tandem.Turn, onDelta func(string)) (r tandem.Reply, cacheable bool, err error) {
	pol := p.cfg.Policy
	st, lerr := p.deps.State.Load(ctx, turn.ConversationID) // a snapshot; finish re-reads under the lock
	if lerr != nil {
		// Answer from the text alone; finish reports a store that stays down.
		p.log.WarnContext(ctx, "dialogue state unavailable", "conversation", turn.ConversationID, "err", lerr)
	}
	nlu := &t.nlu

	// Waiting for a person, the customer says they no longer want one
	// ("never mind, no need for a human"): the request is withdrawn (the
	// caller cancels it) and the bot takes the conversation back.
	if turn.Queued && (p.declinesHuman(t.norm) || declinesPerson(t.norm)) {
		return tandem.Reply{Kind: tandem.ReplyAnswer, Text: pol.Messages.Withdrawn, WithdrawHandoff: true}, false, nil
	}

	// The customer picked one of the clarifying quick replies: the answer
	// then depends on this conversation's pending choices, not only on the
	// text, so it is never cached.
	var chosenFAQ string
	picked := false
	if c, ok := pickChoice(st.PendingClarify, t.norm); ok {
		if c.Intent != "" {
			nlu.Intent = tandem.IntentScore{Name: c.Intent, Confidence: 1}
			nlu.OutOfScope = false
		}
		chosenFAQ = c.FAQID
		picked = true
		if chosenFAQ != "" && !slices.ContainsFunc(t.hits, func(h tandem.Hit) bool { return h.FAQ.ID == chosenFAQ }) && p.deps.Retriever != nil {
			// "yes please" retrieves nothing of the FAQ it accepts: look
			// it up by its question (the label the bot offered).
			if hits, err := p.deps.Retriever.Retrieve(ctx, c.Label, turn.Locale, p.cfg.TopK); err == nil {
				t.hits = append(t.hits, hits...)
			}
		}
	}
	// An extractive answer given because the generator was unavailable,
	// failed or found no answer (a sampled call) is not cached either: the
	// next identical question should get the generator again.
	llmFailed := false

	intent := nlu.Intent
	confident := !nlu.OutOfScope && intent.Name != "" && intent.Name != tandem.OutOfScope && intent.Confidence >= pol.AnswerThreshold

	// The bot asked for a value its response to an intent needs, and this
	// turn gives it (without asking something else): that response is the
	// answer. It depends on the conversation, so it is never cached.
	if pending := st.PendingSlotIntent; pending != "" && !picked && (!confident || intent.Name == pending) {
		if resp, ok := pol.Responses[pending]; ok {
			// All values given, or one given and another still needed
			// (then asked for).
			if text, _, missing := fillSlots(resp, nlu.Entities, st.Slots); missing == "" || fillsAny(resp, nlu.Entities) {
				nlu.Intent = tandem.IntentScore{Name: pending, Confidence: 1}
				nlu.OutOfScope = false
				if missing == "" {
					return tandem.Reply{Kind: tandem.ReplyAnswer, Text: text}, false, nil
				}
				t.askedSlotFor = pending
				return askSlot(&pol, missing), false, nil
			}
		}
	}
	if confident && slices.Contains(pol.Escalation.HumanIntents, intent.Name) && (p.declinesHuman(t.norm) || declinesPerson(t.norm)) {
		// "no, I don't need a person": the refusal is the whole message
		// (a question next to it has its own intent); acknowledged, not a
		// failed turn that would count towards escalating.
		return tandem.Reply{Kind: tandem.ReplyAnswer, Text: pol.Messages.DeclinedHuman}, false, nil
	}
	if confident && (slices.Contains(pol.Escalation.HumanIntents, intent.Name) || slices.Contains(pol.Escalation.Intents, intent.Name)) &&
		negatesIntent(turn.Text, intent.Name) {
		// "this is not a complaint, just a question": not the intent
		// that escalates; the text is answered as any unsure one is.
		confident = false
	}
	if confident && slices.Contains(pol.Escalation.HumanIntents, intent.Name) {
		return p.escalate(t, turn, tandem.EscalateRequested, "intent "+intent.Name), false, nil
	}
	if confident && slices.Contains(pol.Escalation.Intents, intent.Name) {
		return p.escalate(t, turn, tandem.EscalateIntent, intent.Name), false, nil
	}

	// Pick the FAQ to answer from: the chosen one, the one linked to a
	// confident intent, or a strong retrieval hit (per-item threshold wins).
	var faq *tandem.Hit
	_, intentResponse := pol.Responses[intent.Name]
	for i := range t.hits {
		h := &t.hits[i]
		if chosenFAQ != "" && h.FAQ.ID == chosenFAQ {
			faq = h
			break
		}
		if chosenFAQ == "" && confident && h.FAQ.Intent == intent.Name {
			// Of several FAQs linked to a broad intent, a weak match is
			// a guess ("what delivery options are there" is not "Do you
			// offer express delivery?"): the intent's own response, when
			// it has one, answers instead.
			if !intentResponse || h.Score >= faqThreshold(pol, h) {
				faq = h
			}
			break
		}
	}
	if faq == nil && len(t.hits) > 0 {
		h := &t.hits[0]
		thr := faqThreshold(pol, h)
		if h.Score >= thr && (!nlu.OutOfScope || h.Score >= max(thr, 0.9)) {
			faq = h
		}
	}

	// A confident intent's configured response is an answer of its own, so
	// with on_failure extractive a generator that is down falls back to it
	// as to an FAQ answer instead of escalating.
	_, hasResponse := pol.Responses[intent.Name]
	canFallBack := faq != nil || confident && hasResponse

	// Generative answer grounded in the top FAQs.
	if p.deps.LLM != nil && len(t.hits) > 0 && t.hits[0].Score >= pol.LLM.MinScore {
		if p.deps.LLM.Open() {
			p.m.llm.WithLabelValues("breaker_open").Inc()
			llmFailed = true
			if pol.LLM.OnFailure == "escalate" || !canFallBack && !nlu.OutOfScope {
				return p.escalate(t, turn, tandem.EscalateBreakerOpen, "the answer generator is unavailable"), false, nil
			}
		} else {
			n := min(pol.LLM.Sources, len(t.hits))
			sources := make([]tandem.FAQ, n)
			for i := range n {
				sources[i] = t.hits[i].FAQ
			}
			// The model stages are done and the rest is mostly waiting on
			// the server: the gateway's turn slot goes to another
			// conversation meanwhile (the generator bounds its own calls).
			tandem.ReleaseSlot(ctx)
			text, gerr := p.deps.LLM.Generate(ctx, t.text, sources, onDelta)
			switch {
			case gerr == nil:
				srcs, ok := citedSources(text, t.hits[:n])
				if !ok {
					// It cites a source it was not given: invented, so not
					// shown (a model fault, not the server's health).
					p.m.llm.WithLabelValues("bad_citation").Inc()
					llmFailed = true
					break
				}
				p.m.llm.WithLabelValues("ok").Inc()
				return tandem.Reply{Kind: tandem.ReplyAnswer, Text: groundLinks(text, sources), Sources: srcs, Generated: true}, false, nil
			case errors.Is(gerr, ErrNoAnswer):
				p.m.llm.WithLabelValues("no_answer").Inc()
				llmFailed = true
			default:
				if ctx.Err() != nil {
					return tandem.Reply{}, false, turnEnded(ctx)
				}
				llmFailed = true
				if errors.Is(gerr, ErrBusy) {
					// A full house says nothing about the server: the turn
					// answers as without a generator (a traffic peak sent
					// every unanswerable question to the agents).
					p.m.llm.WithLabelValues("busy").Inc()
					break
				}
				if BreakerRefused(gerr) { // half-open, its probe in flight
					p.m.llm.WithLabelValues("breaker_open").Inc()
				} else {
					p.m.llm.WithLabelValues("error").Inc()
				}
				p.log.WarnContext(ctx, "llm answer failed", "conversation", turn.ConversationID, "err", gerr)
				// Out of scope ("what is the capital of France?"), the
				// generator would have declined: no person is needed.
				if pol.LLM.OnFailure == "escalate" || !canFallBack && !nlu.OutOfScope {
					return p.escalate(t, turn, tandem.EscalateBreakerOpen, "answer generation failed"), false, nil
				}
			}
		}
	}

	if faq != nil {
		return tandem.Reply{Kind: tandem.ReplyAnswer, Text: faq.FAQ.Answer, Sources: toSources([]tandem.Hit{*faq})}, !picked && !llmFailed, nil
	}
	if confident {
		if resp, ok := pol.Responses[intent.Name]; ok {
			text, templated, missing := fillSlots(resp, nlu.Entities, st.Slots)
			if missing != "" {
				// Never show a raw "{order_id}": ask for it. The answer
				// comes when the customer gives it (a slot is remembered).
				t.askedSlotFor = intent.Name
				return askSlot(&pol, missing), false, nil
			}
			// A filled template is this conversation's answer: not cached.
			return tandem.Reply{Kind: tandem.ReplyAnswer, Text: text}, !templated && !picked && !llmFailed, nil
		}
	}

	if choices := p.clarifyChoices(t); len(choices) >= 2 {
		r := tandem.Reply{Kind: tandem.ReplyClarify, Text: pol.Messages.Clarify}
		for _, c := range choices {
			r.QuickReplies = append(r.QuickReplies, c.Label)
		}
		return r, false, nil
	}
	// Not answerable, but a near FAQ (a paraphrase the retrieval is not
	// sure of) is offered: its question, sent back, answers.
	if len(t.hits) > 0 && t.hits[0].Score >= pol.SuggestMinScore && pol.SuggestMinScore < 1 {
		return tandem.Reply{Kind: tandem.ReplyFallback, Text: pol.Messages.Suggest, QuickReplies: []string{t.hits[0].FAQ.Question}}, false, nil
	}
	return tandem.Reply{Kind: tandem.ReplyFallback, Text: pol.Messages.Fallback}, false, nil
}

// clarifyChoices returns the options to offer when the top candidates are
// too close to call, or nil.
func (p *Pipeline) clarifyChoices(t *turnCtx) []Choice {
	pol := p.cfg.Policy
	var out []Choice
	rk := t.nlu.Ranking
	if len(rk) >= 2 && !t.nlu.OutOfScope && rk[0].Confidence < pol.ClarifyCeiling && rk[0].Confidence-rk[1].Confidence <= pol.ClarifyMargin && rk[1].Confidence >= 0.1 {
		for _, s := range rk {
			if len(out) == pol.ClarifyChoices || s.Confidence < 0.1 || s.Name == tandem.OutOfScope {
				break
			}
			if !p.answerable(t, s.Name) || !p.labelled(t, s.Name) {
				// Small talk has no label: a "Greet" button offered next
				// to "Delivery options" made no sense.
				continue
			}
			out = append(out, Choice{Label: p.label(t, s.Name), Intent: s.Name})
		}
		if len(out) >= 2 {
			return out
		}
		out = out[:0]
	}
	// Two or more FAQs nearly tied below the answer threshold.
	h := t.hits
	if len(h) >= 2 && h[0].Score >= pol.FAQMinScore*0.75 && h[0].Score-h[1].Score <= pol.ClarifyMargin/2 {
		for _, x := range h {
			if len(out) == pol.ClarifyChoices || h[0].Score-x.Score > pol.ClarifyMargin/2 {
				break
			}
			out = append(out, Choice{Label: x.FAQ.Question, FAQID: x.FAQ.ID})
		}
	}
	return out
}

func (p *Pipeline) answerable(t *turnCtx, intent string) bool {
	if _, ok := p.cfg.Policy.Responses[intent]; ok {
		return true
	}
	for _, h := range t.hits {
		if h.FAQ.Intent == intent {
			return true
		}
	}
	return false
}

// labelled reports whether an intent has a label a customer can read: one
// configured (labels), or the question of an FAQ linked to it. A policy
// with no labels at all offers its intents by their names.
func (p *Pipeline) labelled(t *turnCtx, intent string) bool {
	if _, ok := p.cfg.Policy.Labels[intent]; ok || len(p.cfg.Policy.Labels) == 0 {
		return true
	}
	for _, h := range t.hits {
		if h.FAQ.Intent == intent {
			return true
		}
	}
	return false
}

func (p *Pipeline) label(t *turnCtx, intent string) string {
	if l, ok := p.cfg.Policy.Labels[intent]; ok {
		return l
	}
	for _, h := range t.hits {
		if h.FAQ.Intent == intent {
			return h.FAQ.Question
		}
	}
	s := strings.ReplaceAll(intent, "_", " ")
	if s == "" {
		return s
	}
	r := []rune(s)
	r[0] = unicode.ToUpper(r[0])
	return string(r)
}

// escalate builds an escalation reply with its reason, priority, skills and
// the NLU summary.
func (p *Pipeline) escalate(t *turnCtx, turn tandem.Turn, reason tandem.EscalationReason, detail string) tandem.Reply {
	e := p.cfg.Policy.Escalation
	prio, ok := e.Priorities[string(reason)]
	if !ok {
		prio = defaultPriority(reason)
	}
	if turn.Customer.VIP() && prio < 3 {
		prio = 3
	}
	skills := e.Skills[string(reason)]
	if s, ok := e.Skills["intent:"+t.nlu.Intent.Name]; ok {
		skills = s
	}
	p.m.escalations.WithLabelValues(string(reason)).Inc()
	return tandem.Reply{
		Kind: tandem.ReplyEscalate,
		Text: p.cfg.Policy.Messages.Escalate,
		Escalation: &tandem.Escalation{
			Reason: reason, Detail: detail, Priority: prio,
			Skills: append([]string(nil), skills...), Language: t.lang,
		},
	}
}

func defaultPriority(r tandem.EscalationReason) int {
	switch r {
	case tandem.EscalateVIP:
		return 3
	case tandem.EscalateSentiment, tandem.EscalateAbuse:
		return 2
	case tandem.EscalateRequested, tandem.EscalateButton, tandem.EscalateIntent, tandem.EscalateBreakerOpen:
		return 1
	}
	return 0
}

// finish updates the dialogue state under the conversation's lock, turns
// repeated fallbacks into an escalation, and attaches the NLU summary.
func (p *Pipeline) finish(ctx context.Context, t *turnCtx, turn tandem.Turn, r tandem.Reply, _ error) (tandem.Reply, error) {
	unlock, err := p.locks.lock(ctx, turn.ConversationID)
	if err != nil {
		return tandem.Reply{}, err
	}
	defer unlock()
	st, err := p.deps.State.Load(ctx, turn.ConversationID)
	if err != nil {
		if r.Kind == tandem.ReplyEscalate {
			return p.escalationWithoutState(ctx, t, turn, r, err), nil
		}
		return tandem.Reply{}, tandem.WrapError(tandem.EUNAVAILABLE, err, "conversation state unavailable")
	}
	st.Turns++
	st.UpdatedAt = turn.Time
	if t.nlu.Intent.Name != "" {
		st.pushIntent(t.nlu.Intent.Name)
	}
	for _, e := range t.nlu.Entities {
		st.setSlot(e.Type, e.Value)
	}
	st.PendingSlotIntent = t.askedSlotFor
	if r.Escalation != nil && r.Escalation.Reason == tandem.EscalateVIP {
		st.VIPEscalatedAt = turn.Time
	}
	switch r.Kind {
	case tandem.ReplyFallback:
		st.Fallbacks++
		p.setPending(t, &st, r.QuickReplies) // a suggested FAQ, picked, answers
		// Not while queued: a person is on the way already, and the
		// escalation reply ("I'm connecting you…") would come again.
		if max := p.cfg.Policy.MaxFallbacks; max > 0 && st.Fallbacks >= max && !turn.Queued {
			r = p.escalate(t, turn, tandem.EscalateLowConfidence, "consecutive low-confidence turns")
			st.Fallbacks = 0
			st.PendingClarify = nil
		}
	case tandem.ReplyClarify:
		p.setPending(t, &st, r.QuickReplies)
	default:
		st.Fallbacks = 0
		st.PendingClarify = nil
	}
	if err := p.deps.State.Save(ctx, turn.ConversationID, st); err != nil {
		if r.Kind == tandem.ReplyEscalate {
			return p.escalationWithoutState(ctx, t, turn, r, err), nil
		}
		return tandem.Reply{}, tandem.WrapError(tandem.EUNAVAILABLE, err, "conversation state unavailable")
	}
	r.NLU = t.nlu
	if r.Escalation != nil {
		r.Escalation.Summary = withSlots(t.nlu, st.Slots)
	}
	return r, nil
}

// withSlots is an escalation's summary: the turn's NLU plus the values the
// conversation gave before (its dialogue slots, source "dialogue") that
// the turn does not repeat — "my parcel ORD-98765 has not arrived", then
// the "talk to a person" button: the agent sees the order id.
func withSlots(nlu tandem.NLU, slots map[string]string) tandem.NLU {
	if len(slots) == 0 {
		return nlu
	}
	have := map[string]bool{}
	for _, e := range nlu.Entities {
		have[e.Type] = true
	}
	types := make([]string, 0, len(slots))
	for k := range slots {
		if !have[k] {
			types = append(types, k)
		}
	}
	if len(types) == 0 {
		return nlu
	}
	slices.Sort(types)
	nlu.Entities = slices.Clone(nlu.Entities)
	for _, k := range types {
		nlu.Entities = append(nlu.Entities, tandem.Entity{Type: k, Text: slots[k], Value: slots[k], Source: "dialogue"})
	}
	return nlu
}

// escalationWithoutState returns an escalation whose dialogue state could
// not be read or written: the customer still goes to a person (losing
// "talk to a person" is worse than a dialogue state a turn behind); the
// store failure is logged.
func (p *Pipeline) escalationWithoutState(ctx context.Context, t *turnCtx, turn tandem.Turn, r tandem.Reply, err error) tandem.Reply {
	p.log.WarnContext(ctx, "dialogue state unavailable; escalating without updating it", "conversation", turn.ConversationID, "err", err)
	r.NLU = t.nlu
	if r.Escalation != nil {
		r.Escalation.Summary = t.nlu
	}
	return r
}

func (p *Pipeline) choiceFor(t *turnCtx, label string) Choice {
	for _, c := range p.clarifyChoices(t) {
		if c.Label == label {
			return c
		}
	}
	for _, h := range t.hits { // a suggested FAQ
		if h.FAQ.Question == label {
			return Choice{Label: label, FAQID: h.FAQ.ID}
		}
	}
	return Choice{Label: label}
}

// faqThreshold is the retrieval score an FAQ answers from: its own
// threshold, else the policy's.
func faqThreshold(pol Policy, h *tandem.Hit) float64 {
	if h.FAQ.Threshold > 0 {
		return h.FAQ.Threshold
	}
	return pol.FAQMinScore
}

// pickChoice returns the pending choice the normalised text picks: its
// label; "yes" (and the like) when one choice names a topic (the bot's
// "Did you mean this?"); or its position ("1", "the second one").
func pickChoice(choices []Choice, norm string) (Choice, bool) {
	if len(choices) == 0 || norm == "" {
		return Choice{}, false
	}
	for _, c := range choices {
		if normalise(c.Label) == norm {
			return c, true
		}
	}
	if affirmations[norm] {
		var topic []Choice
		for _, c := range choices {
			if c.Intent != "" || c.FAQID != "" {
				topic = append(topic, c)
			}
		}
		if len(topic) == 1 {
			return topic[0], true
		}
		return Choice{}, false
	}
	words := strings.Fields(norm)
	if len(words) > 0 && (words[0] == "the" || words[0] == "number" || words[0] == "option") {
		words = words[1:]
	}
	if len(words) == 2 && words[1] == "one" || len(words) == 1 {
		if i, ok := ordinals[words[0]]; ok && i < len(choices) {
			return choices[i], true
		}
		if words[0] == "last" {
			return choices[len(choices)-1], true
		}
	}
	return Choice{}, false
}

var (
	// affirmations say yes to the bot's one suggestion.
	affirmations = map[string]bool{"yes": true, "yes please": true, "yeah": true, "yep": true, "yup": true, "y": true, "sure": true,
		"ok": true, "okay": true, "correct": true, "right": true, "exactly": true, "that's it": true, "that one": true, "yes that's it": true,
		"ja": true, "oui": true, "sí": true, "si": true, "是": true, "是的": true, "对": true, "はい": true}
	// ordinals pick a choice by its position.
	ordinals = map[string]int{"1": 0, "2": 1, "3": 2, "4": 3, "5": 4, "first": 0, "second": 1, "third": 2, "fourth": 3, "fifth": 4, "1st": 0, "2nd": 1, "3rd": 2}
)

// setPending records a reply's quick replies as the conversation's
// pending choices (none: no pending choice).
func (p *Pipeline) setPending(t *turnCtx, st *State, quick []string) {
	st.PendingClarify = nil
	for _, q := range quick {
		st.PendingClarify = append(st.PendingClarify, p.choiceFor(t, q))
	}
}

// finishCached records a cache-served answer in the dialogue state.
//
// It does not use the cached reply (used false, state untouched) when the
// text picks one of the conversation's pending clarifying choices: that
// answer depends on the conversation.
func (p *Pipeline) finishCached(ctx context.Context, t *turnCtx, turn tandem.Turn, r tandem.Reply) (_ tandem.Reply, used bool, _ error) {
	unlock, err := p.locks.lock(ctx, turn.ConversationID)
	if err != nil {
		return tandem.Reply{}, true, err
	}
	defer unlock()
	st, err := p.deps.State.Load(ctx, turn.ConversationID)
	if err != nil {
		return tandem.Reply{}, true, tandem.WrapError(tandem.EUNAVAILABLE, err, "conversation state unavailable")
	}
	if _, ok := pickChoice(st.PendingClarify, t.norm); ok {
		return tandem.Reply{}, false, nil
	}
	st.Turns++
	st.UpdatedAt = turn.Time
	st.Fallbacks = 0
	st.PendingClarify = nil
	st.PendingSlotIntent = ""
	if r.NLU.Intent.Name != "" {
		st.pushIntent(r.NLU.Intent.Name)
	}
	if err := p.deps.State.Save(ctx, turn.ConversationID, st); err != nil {
		return tandem.Reply{}, true, tandem.WrapError(tandem.EUNAVAILABLE, err, "conversation state unavailable")
	}
	return r, true, nil
}

// cacheableReply strips what must not be shared between conversations.
func cacheableReply(r tandem.Reply) tandem.Reply {
	r.NLU.Entities = nil
	r.Escalation = nil
	r.Sources = slices.Clone(r.Sources)
	r.QuickReplies = slices.Clone(r.QuickReplies)
	r.NLU.Ranking = slices.Clone(r.NLU.Ranking)
	return r
}

func toSources(hits []tandem.Hit) []tandem.Source {
	out := make([]tandem.Source, len(hits))
	for i, h := range hits {
		out[i] = tandem.Source{FAQID: h.FAQ.ID, Question: h.FAQ.Question, Score: h.Score}
	}
	return out
}

// askSlot is the clarifying question for the missing slot of a response.
func askSlot(pol *Policy, missing string) tandem.Reply {
	return tandem.Reply{Kind: tandem.ReplyClarify, Text: strings.ReplaceAll(pol.Messages.AskSlot, "{slot}", strings.ReplaceAll(missing, "_", " "))}
}

// fillsAny reports whether one of ents fills a placeholder of tmpl.
func fillsAny(tmpl string, ents []tandem.Entity) bool {
	for _, m := range placeholder.FindAllStringSubmatch(tmpl, -1) {
		for _, e := range ents {
			if e.Type == m[1] && e.Value != "" {
				return true
			}
		}
	}
	return false
}

// placeholder matches a response template's {type} placeholder.
var placeholder = regexp.MustCompile(`\{([A-Za-z_][A-Za-z0-9_.-]*)\}`)

// fillSlots replaces {type} placeholders with this turn's entities, else
// the conversation's remembered slots. It reports whether the template has
// placeholders at all, and the first one it could not fill ("" if none).
func fillSlots(tmpl string, ents []tandem.Entity, slots map[string]string) (text string, templated bool, missing string) {
	if !strings.Contains(tmpl, "{") {
		return tmpl, false, ""
	}
	text = placeholder.ReplaceAllStringFunc(tmpl, func(m string) string {
		typ := m[1 : len(m)-1]
		for _, e := range ents {
			if e.Type == typ && e.Value != "" {
				return e.Value
			}
		}
		if v, ok := slots[typ]; ok && v != "" {
			return v
		}
		if missing == "" {
			missing = typ
		}
		return m
	})
	return text, text != tmpl || missing != "", missing
}
