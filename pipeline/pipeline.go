// Package pipeline is the bot's brain: Respond(ctx, Turn) (Reply, error)
// turns one customer message into an answer, a clarifying question, a
// fallback, or an escalation to a human.
//
// A turn first passes cheap checks (the "talk to a person" button, human
// request keywords in several languages including Chinese, VIP tier, abuse,
// strong negative sentiment), then the hot answer cache; on a miss it takes a
// per-turn context from a sync.Pool and runs the stages in parallel, each
// under its own deadline and timed into Prometheus: intent model and entity
// model (both micro-batched across concurrent turns, see Batcher), rule
// extractors and FAQ retrieval. The answer policy (Policy, YAML) then decides,
// using and updating the conversation's bounded dialogue State. With an LLM
// configured, answers are generated from the top FAQs behind a circuit
// breaker and streamed; on failure the turn falls back to the extractive FAQ
// answer or escalates, per policy.
//
// Contract: Respond and RespondStream may be called from any number of
// goroutines; turns of the same conversation are serialised only around the
// state update. Every escalation carries a machine-readable reason and the
// NLU summary. Close refuses new turns, lets the turns in flight finish, then
// stops the batchers.
// Dependencies are interfaces declared here; cmd wires the concrete models,
// knowledge base and stores.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tandem-chat/tandem"
)

// IntentModel classifies many texts in one call (one model run).
type IntentModel interface {
	ClassifyBatch(ctx context.Context, texts []string) ([]tandem.NLU, error)
}

// EntityModel tags many texts in one call.
type EntityModel interface {
	TagBatch(ctx context.Context, texts []string) ([][]tandem.Entity, error)
}

// RuleExtractor finds rule-based entities (emails, order ids, dates
// relative to ref, ...).
type RuleExtractor interface {
	Extract(text string, ref time.Time) []tandem.Entity
}

// Retriever searches the published FAQs. Hit.Score must be in [0, 1] and
// comparable across queries (e.g. the best phrasing's cosine similarity).
type Retriever interface {
	Retrieve(ctx context.Context, query, locale string, k int) ([]tandem.Hit, error)
}

// AnswerCache maps a normalised query to a reply; the knowledge base
// invalidates it on every change. The pipeline reads Generation before it
// computes an answer and passes it to Put, which must refuse the reply if
// the cache was invalidated in between (knowledge.Cache does), so an answer
// computed from an old knowledge base is never cached.
type AnswerCache interface {
	Generation() uint64
	Get(key string) (tandem.Reply, bool)
	Put(key string, r tandem.Reply, gen uint64) bool
}

// Generator writes grounded answers (see LLM).
type Generator interface {
	Generate(ctx context.Context, question string, sources []tandem.FAQ, onDelta func(string)) (string, error)
	Open() bool
}

// Deps are the pipeline's collaborators; only Intent is required.
type Deps struct {
	Intent     IntentModel
	Entities   EntityModel
	Rules      RuleExtractor
	Retriever  Retriever
	Cache      AnswerCache
	LLM        Generator
	State      StateStore            // default: NewMemoryStateStore(0, 0)
	Registerer prometheus.Registerer // default: a private registry
	Logger     *slog.Logger
}

// Config tunes the pipeline. Zero values take the defaults.
type Config struct {
	Policy       Policy
	Batch        BatchConfig
	StageTimeout time.Duration // per stage [250ms]
	TopK         int           // FAQ hits retrieved [5]
	// MaxActiveTurns bounds the turns running their model stages at once;
	// later ones wait in arrival order (see gate) [16 × GOMAXPROCS]. A
	// negative value disables the bound.
	MaxActiveTurns int
	// MaxWaitingTurns bounds the turns waiting for that; beyond it a turn
	// fails with "overloaded" [4096].
	MaxWaitingTurns int
}

// DefaultMaxActiveTurns is Config.MaxActiveTurns when left 0: 16 turns per
// core Go uses, enough to keep the micro-batches full (docs/benchmarks.md).
func DefaultMaxActiveTurns() int { return 16 * runtime.GOMAXPROCS(0) }

// Pipeline answers turns. Build it with New.
type Pipeline struct {
	cfg     Config
	deps    Deps
	log     *slog.Logger
	pool    sync.Pool // *turnCtx
	locks   convLocks
	intentB *Batcher[string, tandem.NLU]
	entityB *Batcher[string, []tandem.Entity]
	m       metrics
	gate    *gate    // nil: no bound on active turns
	humanKW []string // normalised human-request keywords
	abuseKW []string // normalised abuse words

	// Shutdown: turns register under mu while the pipeline is open; Close
	// refuses new ones and waits for the registered ones to finish.
	mu       sync.RWMutex
	closed   bool
	inflight sync.WaitGroup
}

// New validates the configuration and starts the batchers.
func New(cfg Config, deps Deps) (*Pipeline, error) {
	if deps.Intent == nil {
		return nil, errors.New("pipeline: an intent model is required")
	}
	cfg.Policy.applyDefaults()
	if err := cfg.Policy.Validate(); err != nil {
		return nil, fmt.Errorf("pipeline: policy: %w", err)
	}
	if cfg.StageTimeout <= 0 {
		cfg.StageTimeout = 250 * time.Millisecond
	}
	if cfg.TopK <= 0 {
		cfg.TopK = 5
	}
	if cfg.MaxActiveTurns == 0 {
		cfg.MaxActiveTurns = DefaultMaxActiveTurns()
	}
	if cfg.MaxWaitingTurns <= 0 {
		cfg.MaxWaitingTurns = 4096
	}
	if deps.State == nil {
		deps.State = NewMemoryStateStore(0, 0)
	}
	if deps.Registerer == nil {
		deps.Registerer = prometheus.NewRegistry()
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Pipeline{cfg: cfg, deps: deps, log: deps.Logger}
	if err := p.m.register(deps.Registerer); err != nil {
		return nil, fmt.Errorf("pipeline: metrics: %w", err)
	}
	p.pool.New = func() any { return new(turnCtx) }
	if cfg.MaxActiveTurns > 0 {
		p.gate = newGate(cfg.MaxActiveTurns, cfg.MaxWaitingTurns)
		if err := registerGate(deps.Registerer, p.gate); err != nil {
			return nil, fmt.Errorf("pipeline: metrics: %w", err)
		}
	}
	for _, kws := range cfg.Policy.Escalation.Keywords {
		for _, k := range kws {
			p.humanKW = append(p.humanKW, normalise(k))
		}
	}
	for _, w := range cfg.Policy.Escalation.AbuseWords {
		p.abuseKW = append(p.abuseKW, normalise(w))
	}
	p.intentB = NewBatcher(cfg.Batch, deps.Intent.ClassifyBatch, func(n int) { p.m.batchIntent.Observe(float64(n)) })
	if deps.Entities != nil {
		p.entityB = NewBatcher(cfg.Batch, deps.Entities.TagBatch, func(n int) { p.m.batchEntity.Observe(float64(n)) })
	}
	return p, nil
}

// Forget deletes a conversation's dialogue state (its slots hold what
// the customer said), after any turn of it that is updating the state.
func (p *Pipeline) Forget(ctx context.Context, conversationID string) error {
	unlock, err := p.locks.lock(ctx, conversationID)
	if err != nil {
		return err
	}
	defer unlock()
	if err := p.deps.State.Delete(ctx, conversationID); err != nil {
		return fmt.Errorf("pipeline: forget conversation: %w", err)
	}
	return nil
}

// Close refuses new turns (tandem.EUNAVAILABLE), waits for the turns in
// flight to finish, then stops the batchers. Safe to call more than once.
func (p *Pipeline) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.inflight.Wait()
	p.intentB.Close()
	if p.entityB != nil {
		p.entityB.Close()
	}
}

// Policy returns the active policy.
func (p *Pipeline) Policy() Policy { return p.cfg.Policy }

// turnCtx is the per-turn scratch space, pooled. Everything a turn writes
// lives here and is cleared by reset before the context is reused, so one
// turn can never see another's data.
type turnCtx struct {
	text, norm, lang string
	nlu              tandem.NLU
	modelEnts        []tandem.Entity
	ruleEnts         []tandem.Entity
	hits             []tandem.Hit
	intentErr        error
	entityErr        error
	retrieveErr      error
	sentiment        float64
	askedSlotFor     string // the intent whose response this turn asked a missing value for
	lead             int    // code points of white space cut from the front of the text as sent
}

func (t *turnCtx) reset() {
	clear(t.modelEnts[:cap(t.modelEnts)])
	clear(t.ruleEnts[:cap(t.ruleEnts)])
	clear(t.hits[:cap(t.hits)])
	*t = turnCtx{modelEnts: t.modelEnts[:0], ruleEnts: t.ruleEnts[:0], hits: t.hits[:0]}
}

func (p *Pipeline) acquire() *turnCtx { return p.pool.Get().(*turnCtx) }

func (p *Pipeline) release(t *turnCtx) {
	t.reset()
	p.pool.Put(t)
}

// Respond answers one turn.
func (p *Pipeline) Respond(ctx context.Context, turn tandem.Turn) (tandem.Reply, error) {
	return p.RespondStream(ctx, turn, nil)
}

// RespondStream answers one turn; generated answers are also delivered
// piece by piece to onDelta as they arrive. The returned Reply is
// authoritative: if generation fails midway, the streamed preview must be
// replaced by Reply.Text (which is then the extractive answer or an
// escalation notice, never the partial text plus more).
func (p *Pipeline) RespondStream(ctx context.Context, turn tandem.Turn, onDelta func(string)) (reply tandem.Reply, err error) {
	start := time.Now()
	defer func() {
		kind := string(reply.Kind)
		if err != nil {
			kind = "error_" + tandem.ErrorCode(err)
		}
		p.m.turns.WithLabelValues(kind).Inc()
		p.m.obsTurn.Observe(time.Since(start).Seconds())
	}()
	p.mu.RLock()
	if p.closed {
		p.mu.RUnlock()
		return tandem.Reply{}, tandem.Errorf(tandem.EUNAVAILABLE, "the bot is shutting down")
	}
	p.inflight.Add(1)
	p.mu.RUnlock()
	defer p.inflight.Done()
	if turn.ConversationID == "" {
		return tandem.Reply{}, tandem.Errorf(tandem.EINVALID, "conversation id is required")
	}
	text := strings.ToValidUTF8(turn.Text, "\uFFFD")
	lead := text // the white space before the text, for entity offsets
	text = strings.TrimLeftFunc(text, unicode.IsSpace)
	lead = lead[:len(lead)-len(text)]
	text = strings.TrimSpace(truncateRunes(text, p.cfg.Policy.MaxTurnRunes))
	if text == "" && !turn.RequestHuman {
		return tandem.Reply{}, tandem.Errorf(tandem.EINVALID, "message is empty")
	}
	if turn.Time.IsZero() {
		turn.Time = time.Now()
	}

	if rest, cut := stripGreeting(text); cut > 0 {
		// "Hi there, quick question - …": the question is the turn.
		lead, text = lead+text[:cut], rest
	}
	t := p.acquire()
	defer p.release(t)
	t.text = glossEmoji(text)
	t.lead = utf8.RuneCountInString(lead)
	t.norm = normalise(t.text)
	t.lang = detectLanguage(text, turn.Locale)
	t.sentiment = sentiment(t.text, t.norm)

	if esc := p.cheapTrigger(ctx, t, turn); esc != "" {
		p.runStages(ctx, t, turn, false) // best effort: the agent gets the NLU summary
		// The escalation is recorded even when the turn's time ran out
		// meanwhile: losing "talk to a person" is worse than a late reply.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), escalationFinishTimeout)
		defer cancel()
		return p.finish(fctx, t, turn, p.escalate(t, turn, esc, ""), nil)
	}

	cacheKey := turn.Locale + "\x00" + t.norm
	var gen uint64
	if p.deps.Cache != nil && t.norm != "" {
		gen = p.deps.Cache.Generation()
		cs := time.Now()
		r, ok := p.deps.Cache.Get(cacheKey)
		p.m.obsCache.Observe(time.Since(cs).Seconds())
		if ok {
			r.Cached = true
			reply, used, err := p.finishCached(ctx, t, turn, r)
			if used || err != nil {
				p.m.cacheHit.Inc()
				return reply, err
			}
			// The text picks one of this conversation's clarifying
			// choices: its answer is this conversation's, not the cache's.
		}
		p.m.cacheMiss.Inc()
	}

	if err := p.runStages(ctx, t, turn, true); err != nil {
		return tandem.Reply{}, err
	}
	r, cacheable, err := p.decide(ctx, t, turn, onDelta)
	if err != nil {
		return tandem.Reply{}, err
	}
	reply, err = p.finish(ctx, t, turn, r, nil)
	// A reply made without a stage (an error or a missed deadline) is this
	// turn's best effort, not the answer to the text: it is not cached (a
	// cache hit skips the models, and with them the intent-based
	// escalations).
	degraded := t.intentErr != nil || t.entityErr != nil || t.retrieveErr != nil
	// Nor is the reply to a message with entities: a cache hit skips the
	// extractors, and the entities (an order id, a date relative to this
	// turn) fill this conversation's slots and summary.
	if err == nil && cacheable && !degraded && len(t.nlu.Entities) == 0 && p.deps.Cache != nil && t.norm != "" {
		p.deps.Cache.Put(cacheKey, cacheableReply(reply), gen)
	}
	return reply, err
}

// escalationFinishTimeout bounds recording a cheap-trigger escalation in
// the dialogue state once the turn's own context has ended.
const escalationFinishTimeout = 2 * time.Second

// turnEnded is the error of a turn whose context ended (the caller went
// away or its deadline passed): EUNAVAILABLE, wrapping the context's error
// (errors.Is still sees context.Canceled or DeadlineExceeded), so metrics
// and HTTP answers do not report it as an internal error.
func turnEnded(ctx context.Context) error {
	return tandem.WrapError(tandem.EUNAVAILABLE, ctx.Err(), "the turn was cancelled or ran out of time")
}

// cheapTrigger checks the triggers that need no model.
func (p *Pipeline) cheapTrigger(ctx context.Context, t *turnCtx, turn tandem.Turn) tandem.EscalationReason {
	e := p.cfg.Policy.Escalation
	switch {
	case turn.RequestHuman:
		return tandem.EscalateButton
	case p.mentionsHuman(t.norm):
		return tandem.EscalateRequested
	case *e.VIP && turn.Customer.VIP() && p.vipEscalates(ctx, turn):
		return tandem.EscalateVIP
	case p.abusive(t.norm):
		return tandem.EscalateAbuse
	case e.SentimentThreshold >= -1 && t.sentiment <= e.SentimentThreshold:
		return tandem.EscalateSentiment
	}
	return ""
}

// declinesHuman reports whether the normalised text names a person only to
// decline one ("I don't want to talk to a person", "ich möchte nicht mit
// einem Menschen sprechen") or to ask what the bot is ("am I talking to a
// real person?"): then a human-request intent does not escalate either.
func (p *Pipeline) declinesHuman(norm string) bool {
	declined := false
	for _, k := range p.humanKW {
		if containsAffirmed(norm, k) {
			return false
		}
		if containsNormalised(norm, k) {
			declined = true
		}
	}
	return declined
}

// vipRepeat is how long after a VIP escalation a VIP whose conversation
// is back with the bot is answered by it instead of escalated again.
const vipRepeat = 24 * time.Hour

// vipEscalates reports whether a VIP's turn escalates: while the
// conversation waits in the queue (the reply says a person is coming),
// and otherwise unless the tier escalated it in the last vipRepeat — a VIP
// handed back to the bot, or who withdrew the request, is answered by it.
// When the state cannot be read it escalates.
func (p *Pipeline) vipEscalates(ctx context.Context, turn tandem.Turn) bool {
	if turn.Queued {
		return true
	}
	st, err := p.deps.State.Load(ctx, turn.ConversationID)
	if err != nil {
		return true
	}
	return st.VIPEscalatedAt.IsZero() || turn.Time.Sub(st.VIPEscalatedAt) >= vipRepeat
}

// bareHumanRequests are whole messages that ask for a person ("agent"):
// single words that, inside a sentence, are ordinary questions' words.
var bareHumanRequests = set("agent", "human", "person", "operator", "representative", "a human", "a person", "an agent", "human please",
	"agent please", "person please", "operator please", "live agent please", "real person please", "mitarbeiter", "humano", "humain")

func (p *Pipeline) mentionsHuman(norm string) bool {
	if bareHumanRequests[norm] {
		return true
	}
	for _, k := range p.humanKW {
		if containsAffirmed(norm, k) {
			return true
		}
	}
	return false
}

// abusive reports whether the normalised text holds an abuse word aimed at
// someone: one the customer says of themselves or their own question ("a
// stupid question", "I'm an idiot") does not count (selfDirected).
func (p *Pipeline) abusive(norm string) bool {
	for _, w := range p.abuseKW {
		if findPhraseUnless(norm, w, selfDirected) {
			return true
		}
	}
	return false
}

// runStages runs intent, entities, rules and retrieval in parallel. With
// strict, an overloaded model fails the turn; otherwise stage errors only
// leave their results empty.
func (p *Pipeline) runStages(ctx context.Context, t *turnCtx, turn tandem.Turn, strict bool) error {
	if t.text == "" {
		return nil
	}
	if p.gate != nil {
		s := time.Now()
		gctx := ctx
		if !strict {
			// Best effort (an escalation's NLU summary): wait no longer
			// than a stage may take, then escalate without it.
			var cancel context.CancelFunc
			gctx, cancel = context.WithTimeout(ctx, p.cfg.StageTimeout)
			defer cancel()
		}
		err := p.gate.enter(gctx)
		p.m.obsAdmission.Observe(time.Since(s).Seconds())
		if err != nil {
			if strict {
				return err
			}
			return nil // best effort: the escalation goes on without the NLU summary
		}
		defer p.gate.leave()
	}
	// One deadline for every stage; intent and entities run in their own
	// goroutines (through the micro-batchers) while this one extracts rule
	// entities and retrieves.
	sctx, cancel := context.WithTimeout(ctx, p.cfg.StageTimeout)
	defer cancel()
	var wg sync.WaitGroup
	p.intentB.Expect(1)
	if p.entityB != nil {
		p.entityB.Expect(1)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		s := time.Now()
		p.intentB.Expect(-1)
		nlu, err := p.intentB.Submit(sctx, t.text)
		p.m.obsIntent.Observe(time.Since(s).Seconds())
		t.nlu, t.intentErr = nlu, err
	}()
	if p.entityB != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := time.Now()
			p.entityB.Expect(-1)
			ents, err := p.entityB.Submit(sctx, t.text)
			p.m.obsEntities.Observe(time.Since(s).Seconds())
			t.modelEnts, t.entityErr = append(t.modelEnts, ents...), err
		}()
	}
	if p.deps.Rules != nil {
		s := time.Now()
		t.ruleEnts = append(t.ruleEnts, p.deps.Rules.Extract(t.text, turn.Time)...)
		p.m.obsRules.Observe(time.Since(s).Seconds())
	}
	if p.deps.Retriever != nil {
		s := time.Now()
		hits, err := p.deps.Retriever.Retrieve(sctx, t.text, turn.Locale, p.cfg.TopK)
		p.m.obsRetrieval.Observe(time.Since(s).Seconds())
		t.hits, t.retrieveErr = append(t.hits, hits...), err
	}
	wg.Wait()
	for _, se := range [...]struct {
		name string
		err  error
	}{{"intent", t.intentErr}, {"entities", t.entityErr}, {"retrieval", t.retrieveErr}} {
		name, err := se.name, se.err
		if err == nil {
			continue
		}
		if strict && tandem.ErrorCode(err) == tandem.EOVERLOADED {
			return err
		}
		if ctx.Err() != nil {
			return turnEnded(ctx)
		}
		p.m.stageErrors.WithLabelValues(name).Inc()
		p.log.WarnContext(ctx, "pipeline stage failed", "stage", name, "conversation", turn.ConversationID, "err", err)
	}
	t.nlu.Entities = mergeEntities(t.modelEnts, t.ruleEnts, p.cfg.Policy.EntityMinConfidence)
	for i := range t.nlu.Entities { // offsets index the text as sent
		t.nlu.Entities[i].Start += t.lead
		t.nlu.Entities[i].End += t.lead
	}
	t.nlu.Language = t.lang
	t.nlu.Sentiment = t.sentiment
	return nil
}

// mergeEntities returns rule entities and the model entities at least
// minConf confident; a rule entity wins over an overlapping model entity
// (rules are exact and normalised).
func mergeEntities(model, rules []tandem.Entity, minConf float64) []tandem.Entity {
	out := make([]tandem.Entity, 0, len(model)+len(rules))
	out = append(out, rules...)
	for _, m := range model {
		if m.Confidence < minConf {
			continue
		}
		overlap := false
		for _, r := range rules {
			if m.Start < r.End && r.Start < m.End {
				overlap = true
				break
			}
		}
		if !overlap {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b tandem.Entity) int { return a.Start - b.Start })
	return out
}
