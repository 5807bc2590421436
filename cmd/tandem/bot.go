package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/gateway"
	"github.com/tandem-chat/tandem/gateway/kbapi"
	"github.com/tandem-chat/tandem/knowledge"
	"github.com/tandem-chat/tandem/knowledge/demo"
	"github.com/tandem-chat/tandem/knowledge/embed"
	"github.com/tandem-chat/tandem/knowledge/memstore"
	"github.com/tandem-chat/tandem/knowledge/pgstore"
	"github.com/tandem-chat/tandem/models"
	"github.com/tandem-chat/tandem/nlp"
	"github.com/tandem-chat/tandem/nlp/entity"
	"github.com/tandem-chat/tandem/nlp/rules"
	"github.com/tandem-chat/tandem/pipeline"
	"github.com/tandem-chat/tandem/pipeline/pgstate"
)

//go:embed demo/policy.yaml
var demoPolicy []byte

// bot is the conversation pipeline and everything it owns: the NLU models,
// the knowledge service and its store, and the hot answer cache.
// The gateway erases a conversation's dialogue state through the bot.
var _ gateway.BotForgetter = (*bot)(nil)

type bot struct {
	*pipeline.Pipeline
	Knowledge *knowledge.Service
	Answers   *knowledge.Cache[tandem.Reply]
	Intent    *nlp.Classifier
	Policy    pipeline.Policy
	closers   []func() error // run in reverse order by Close
}

// Close releases the pipeline, the knowledge service, the models and the
// stores, in reverse order of creation.
func (b *bot) Close() error {
	if b.Pipeline != nil {
		b.Pipeline.Close()
	}
	var errs []error
	for i := len(b.closers) - 1; i >= 0; i-- {
		errs = append(errs, b.closers[i]())
	}
	return errors.Join(errs...)
}

// Invalidate empties the knowledge base's search cache and the answer cache
// (a knowledge base change on this or another node).
func (b *bot) Invalidate() {
	b.Knowledge.Invalidate()
	b.Answers.Invalidate()
}

// botOptions tune buildBot for tools (the load generator) and tests.
type botOptions struct {
	NoBatching bool // one model call per turn
	NoCache    bool // no hot answer cache
	// StageTimeout overrides the pipeline's per-stage deadline (tests on a
	// loaded machine); 0 keeps the default.
	StageTimeout time.Duration
	Registerer   prometheus.Registerer // nil: a private registry
	Logger       *slog.Logger
	// OnChange is called after every knowledge base change (fan-out).
	OnChange func()
}

// buildBot loads the models of cfg.ModelDir into rt, opens the knowledge
// store (memory, or Postgres when cfg.DatabaseURL is set), loads the demo
// pack into an empty store when cfg.Demo, and builds the pipeline with
// cfg's answer policy.
func buildBot(ctx context.Context, rt *models.Runtime, cfg Config, opt botOptions) (_ *bot, err error) {
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg := opt.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	b := &bot{}
	defer func() {
		if err != nil {
			_ = b.Close()
		}
	}()

	policy, err := loadPolicy(cfg.Policy)
	if err != nil {
		return nil, err
	}
	b.Policy = policy

	cls, err := nlp.LoadClassifier(rt, cfg.ModelDir, nlp.Options{})
	if err != nil {
		return nil, fmt.Errorf("serve: intent model of TANDEM_MODEL_DIR (--models) %s (run `make models`): %w", cfg.ModelDir, err)
	}
	b.Intent = cls
	b.closers = append(b.closers, cls.Close)
	if err := checkPolicyIntents(policy, cls.Labels()); err != nil {
		if cfg.Policy != "" {
			return nil, fmt.Errorf("%w (policy %s, models %s)", err, cfg.Policy, cfg.ModelDir)
		}
		// The embedded demo policy covers the Bitext intents, which models
		// trained without the public datasets lack: serve what there is.
		log.Warn("the demo policy names intents this model was not trained on (were the public datasets missing at `make models`?)", "err", err)
	}
	entities, err := loadEntityModel(rt, cfg.ModelDir, log)
	if err != nil {
		return nil, err
	}
	if entities != nil {
		b.closers = append(b.closers, entities.Close)
	}
	// The built-in rules, plus the lookup tables, synonyms and regex
	// entities the models' training data declared.
	rcfg, err := nlp.LoadRules(cfg.ModelDir, cls.Manifest(), rules.Config{})
	if err != nil {
		return nil, fmt.Errorf("serve: rule entities of %s: %w", cfg.ModelDir, err)
	}
	ruleX, err := rules.New(rcfg)
	if err != nil {
		return nil, fmt.Errorf("serve: rule extractors: %w", err)
	}

	var pool *pgxpool.Pool
	var store knowledge.Store
	if cfg.DatabaseURL != "" {
		ps, err := pgstore.Open(ctx, cfg.DatabaseURL, pgstore.Options{})
		if err != nil {
			return nil, fmt.Errorf("serve: knowledge store (DATABASE_URL): %w", err)
		}
		b.closers = append(b.closers, ps.Close)
		store = ps
		pool, err = pgxpool.New(ctx, cfg.DatabaseURL)
		if err != nil {
			return nil, fmt.Errorf("serve: database (DATABASE_URL): %w", err)
		}
		b.closers = append(b.closers, func() error { pool.Close(); return nil })
	} else {
		store = memstore.New()
	}

	embedder, err := openEmbedder(rt, cfg, log)
	if err != nil {
		return nil, err
	}
	closeEmbedder := func(e knowledge.Embedder) {
		if c, ok := e.(interface{ Close() error }); ok {
			b.closers = append(b.closers, c.Close)
		}
	}
	closeEmbedder(embedder)
	if embedder != nil {
		be := newBatchedEmbedder(embedder, opt.NoBatching)
		b.closers = append(b.closers, func() error { be.b.Close(); return nil })
		embedder = be
	}
	// The answer cache exists before the knowledge service starts: its
	// background jobs invalidate it.
	answers, err := knowledge.NewCache(knowledge.CacheConfig{}, replySize, reg, "answer")
	if err != nil {
		return nil, fmt.Errorf("serve: answer cache: %w", err)
	}
	b.Answers = answers

	var previous []knowledge.Embedder
	if prev := openPreviousEmbedder(rt, cfg, log); prev != nil {
		closeEmbedder(prev)
		previous = append(previous, prev)
	}
	svc, err := knowledge.NewService(knowledge.Config{
		Store: store, Embedder: embedder, Previous: previous, Registerer: reg, Logger: log.With("component", "knowledge"),
		// Vector first, lexical as a tie-breaker: the weights measured best
		// on the retrieval evaluation (docs/benchmarks.md, Knowledge).
		Fusion: knowledge.Fusion{K: 5, LexicalWeight: 0.1, VectorWeight: 1},
		// The pipeline uses the top 5; 16 candidates per retriever keep
		// fusion's recall while copying a third of the default 50 FAQs.
		Candidates: 16,
		OnChange: func() {
			answers.Invalidate()
			if opt.OnChange != nil {
				opt.OnChange()
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("serve: knowledge: %w", err)
	}
	b.Knowledge = svc
	b.closers = append(b.closers, svc.Close)
	if err := svc.Start(ctx); err != nil {
		return nil, fmt.Errorf("serve: knowledge: %w", err)
	}
	if cfg.Demo {
		page, err := svc.List(ctx, knowledge.ListFilter{Limit: 1})
		if err != nil {
			return nil, fmt.Errorf("serve: knowledge: %w", err)
		}
		if len(page.Items) == 0 {
			rep, err := demo.Load(ctx, svc)
			if err != nil {
				return nil, fmt.Errorf("serve: %w", err)
			}
			log.Info("loaded the demo knowledge pack", "faqs", rep.Created+rep.Updated)
		}
	}

	var state pipeline.StateStore = pipeline.NewMemoryStateStore(0, 0)
	if pool != nil {
		ps, err := pgstate.New(ctx, pool)
		if err != nil {
			return nil, fmt.Errorf("serve: dialogue state: %w", err)
		}
		b.closers = append(b.closers, func() error { ps.Wait(); return nil }) // before the pool closes
		state = ps
	}

	var gen pipeline.Generator
	if cfg.LLM.BaseURL != "" {
		llm, err := pipeline.NewLLM(pipeline.LLMConfig{BaseURL: cfg.LLM.BaseURL, Model: cfg.LLM.Model, APIKey: cfg.LLM.APIKey, Company: policy.Name,
			MaxConcurrent: cfg.LLM.MaxConcurrent})
		if err != nil {
			return nil, fmt.Errorf("serve: LLM: %w", err)
		}
		gen = llm
	}

	deps := pipeline.Deps{
		Intent: cls, Rules: ruleX, Retriever: retriever{svc: svc, noCache: opt.NoCache}, LLM: gen, State: state,
		Registerer: reg, Logger: log.With("component", "pipeline"),
	}
	if entities != nil {
		deps.Entities = entities
	}
	if !opt.NoCache {
		deps.Cache = answers
	}
	pcfg := pipeline.Config{Policy: policy, StageTimeout: cfg.StageTimeout, MaxActiveTurns: cfg.MaxActiveTurns}
	if opt.StageTimeout > 0 {
		pcfg.StageTimeout = opt.StageTimeout
	}
	pcfg.Batch.Disabled = opt.NoBatching
	p, err := pipeline.New(pcfg, deps)
	if err != nil {
		return nil, fmt.Errorf("serve: pipeline: %w", err)
	}
	b.Pipeline = p
	return b, nil
}

// loadEntityModel opens the entity tagger of the model directory (saved by
// `tandem train` when the training data has entity annotations). A
// directory without one serves rule-based entities only.
func loadEntityModel(rt *models.Runtime, dir string, log *slog.Logger) (*entity.Tagger, error) {
	t, err := nlp.LoadEntityTagger(rt, dir)
	if errors.Is(err, nlp.ErrNoEntityModel) {
		log.Info("no entity tagger in the model directory; entities come from the rule extractors only", "dir", dir)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("serve: entity model: %w", err)
	}
	return t, nil
}

// loadPolicy reads the answer policy: the file at path, or the embedded
// demo policy when path is empty.
func loadPolicy(path string) (pipeline.Policy, error) {
	if path == "" {
		p, err := pipeline.ParsePolicy(demoPolicy)
		if err != nil {
			return p, fmt.Errorf("serve: embedded demo policy: %w", err)
		}
		return p, nil
	}
	p, err := pipeline.LoadPolicy(path)
	if err != nil {
		return p, fmt.Errorf("serve: TANDEM_POLICY (--policy): %w", err) // err names the file
	}
	return p, nil
}

// checkPolicyIntents fails when the policy names intents the model cannot
// predict: a typo there would silently never fire.
func checkPolicyIntents(p pipeline.Policy, labels []string) error {
	known := map[string]bool{"oos": true}
	for _, l := range labels {
		known[l] = true
	}
	var unknown []string
	add := func(what, intent string) {
		if !known[intent] {
			unknown = append(unknown, what+" "+intent)
		}
	}
	for in := range p.Responses {
		add("responses:", in)
	}
	for _, in := range p.Escalation.Intents {
		add("escalation.intents:", in)
	}
	// The default human_intents (a policy that leaves the key out) names
	// the Bitext label; a model without it simply never predicts it.
	if !slices.Equal(p.Escalation.HumanIntents, pipeline.DefaultPolicy().Escalation.HumanIntents) {
		for _, in := range p.Escalation.HumanIntents {
			add("escalation.human_intents:", in)
		}
	}
	for in := range p.Labels {
		add("labels:", in)
	}
	for k := range p.Escalation.Skills {
		if in, ok := strings.CutPrefix(k, "intent:"); ok {
			add("escalation.skills:", in)
		}
	}
	sort.Strings(unknown)
	if len(unknown) > 0 {
		return fmt.Errorf("serve: the answer policy names intents the model does not know: %v (model labels: %d)", unknown, len(labels))
	}
	return nil
}

// openEmbedder picks the knowledge base's sentence encoder: the remote
// embeddings API when configured, else the local encoder of the model
// directory. Without either, search is lexical only (logged).
func openEmbedder(rt *models.Runtime, cfg Config, log *slog.Logger) (knowledge.Embedder, error) {
	if cfg.EmbeddingsURL != "" {
		r, err := embed.NewRemote(embed.RemoteConfig{BaseURL: cfg.EmbeddingsURL, Model: cfg.EmbeddingsModel, APIKey: cfg.EmbeddingsKey, Dim: cfg.EmbeddingsDim})
		if err != nil {
			return nil, fmt.Errorf("serve: embeddings: %w", err)
		}
		return r, nil
	}
	if _, err := os.Stat(filepath.Join(cfg.ModelDir, "kb-encoder.onnx")); errors.Is(err, os.ErrNotExist) {
		log.Warn("no knowledge encoder in the model directory; FAQ search is lexical only (run `make models`)", "dir", cfg.ModelDir)
		return nil, nil
	}
	l, err := embed.OpenLocal(rt, cfg.ModelDir)
	if err != nil {
		return nil, fmt.Errorf("serve: knowledge encoder: %w", err)
	}
	return l, nil
}

// openPreviousEmbedder opens the encoder that `make models` kept when it
// trained a new one (DIR/previous), so that a Postgres knowledge base
// indexed with it keeps serving vector search while the service re-embeds
// every FAQ with the new encoder in the background. nil when there is none.
func openPreviousEmbedder(rt *models.Runtime, cfg Config, log *slog.Logger) knowledge.Embedder {
	dir := filepath.Join(cfg.ModelDir, "previous")
	if cfg.EmbeddingsURL != "" {
		return nil
	}
	if _, err := os.Stat(filepath.Join(dir, "kb-encoder.onnx")); err != nil {
		return nil
	}
	l, err := embed.OpenLocal(rt, dir)
	if err != nil {
		log.Warn("the previous knowledge encoder does not load; vector search pauses while the knowledge base is re-embedded", "dir", dir, "err", err)
		return nil
	}
	return l
}

// batchedEmbedder groups the one-query embeddings of concurrent turns into
// batched encoder calls (one ONNX Runtime run for many queries), like the
// pipeline does for the NLU models. Calls with several texts (indexing)
// go straight to the encoder.
type batchedEmbedder struct {
	knowledge.Embedder
	b *pipeline.Batcher[string, []float32]
}

func newBatchedEmbedder(e knowledge.Embedder, disabled bool) *batchedEmbedder {
	return &batchedEmbedder{Embedder: e, b: pipeline.NewBatcher(pipeline.BatchConfig{Disabled: disabled}, e.Embed, nil)}
}

func (e *batchedEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	if len(texts) != 1 {
		return e.Embedder.Embed(ctx, texts)
	}
	v, err := e.b.Submit(ctx, texts[0])
	if err != nil {
		return nil, err
	}
	return [][]float32{v}, nil
}

// retriever adapts the knowledge service to the pipeline: published FAQs
// only, and a score in [0, 1] comparable across queries. The fused rank
// score is not (it depends on the list lengths), so the score is the
// vector retriever's cosine similarity of the best phrasing; a hit found
// only lexically gets a capped score so that it can ground a clarification
// or an LLM answer but never answers on its own.
type retriever struct {
	svc     *knowledge.Service
	noCache bool // bypass the search cache too (measurements of the miss path)
}

// lexicalOnlyCap bounds the score of hits the vector retriever did not find.
const lexicalOnlyCap = 0.5

func (r retriever) Retrieve(ctx context.Context, query, locale string, k int) ([]tandem.Hit, error) {
	res, err := r.svc.Search(ctx, knowledge.SearchRequest{Query: query, K: k, NoCache: r.noCache, Filter: knowledge.Filter{PublishedOnly: true, Locale: locale}})
	if err != nil {
		if tandem.ErrorCode(err) == tandem.EINVALID { // e.g. a query of punctuation only
			return nil, nil
		}
		return nil, err
	}
	hits := make([]tandem.Hit, len(res.Hits))
	for i, h := range res.Hits {
		if v, ok := h.Retrievers[knowledge.RetrieverVector]; ok {
			h.Score = min(max(v, 0), 1)
		} else {
			lex := h.Retrievers[knowledge.RetrieverLexical]
			h.Score = min(lexicalOnlyCap, lex/(lex+1))
		}
		hits[i] = h
	}
	return hits, nil
}

func replySize(r tandem.Reply) int64 {
	n := int64(256 + len(r.Text))
	for _, s := range r.Sources {
		n += int64(64 + len(s.FAQID) + len(s.Question))
	}
	for _, q := range r.QuickReplies {
		n += int64(32 + len(q))
	}
	return n
}

// wireBot builds the bot for the server, registers its metrics and its
// shutdown, and keeps it in m.bot.
func (m *Main) wireBot(ctx context.Context) (gateway.Bot, error) {
	started := time.Now()
	b, err := buildBot(ctx, m.runtime, m.Config, botOptions{
		Registerer: m.server.Registry(),
		Logger:     m.Logger,
		OnChange:   m.publishKBChange,
	})
	if err != nil {
		return nil, err
	}
	m.bot = b
	m.server.OnShutdown(func(context.Context) error { return b.Close() })
	policyFile := m.Config.Policy
	if policyFile == "" {
		policyFile = "(embedded demo policy)"
	}
	m.Logger.Info("bot ready", "policy", b.Policy.Name, "policy_file", policyFile, "intents", len(b.Intent.Labels()),
		"model", b.Intent.Manifest().Version, "took", time.Since(started).Round(time.Millisecond))
	return b, nil
}

// publishKBChange tells the other nodes to drop their knowledge caches. It
// may run on the knowledge service's background goroutine before the bus
// exists (changes before that are local only: no other node has cached
// anything from this node's start-up).
func (m *Main) publishKBChange() {
	m.kbBus.Lock()
	bus := m.kbBus.bus
	m.kbBus.Unlock()
	if bus == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := bus.Publish(ctx, gateway.SubjectKBInvalidate, []byte(m.nodeID)); err != nil {
		m.Logger.Warn("knowledge: publishing the cache invalidation failed", "err", err)
	}
}

// wireKnowledgeAPI mounts the admin knowledge API and subscribes to the
// other nodes' knowledge changes. It runs after wireGateway (it needs the
// chat's authenticator and the bus).
func (m *Main) wireKnowledgeAPI(ctx context.Context) error {
	h, err := kbapi.New(kbapi.Config{Service: m.bot.Knowledge, Auth: m.chat.Auth(), Logger: m.Logger.With("component", "kbapi")})
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	m.server.Router().Mount("/api/v1/knowledge", h)
	m.kbBus.Lock()
	m.kbBus.bus = m.bus
	m.kbBus.Unlock()
	sub, err := m.bus.Subscribe(gateway.SubjectKBInvalidate, func(data []byte) {
		if string(data) != m.nodeID { // our own change is already applied
			m.bot.Invalidate()
		}
	})
	if err != nil {
		return fmt.Errorf("serve: subscribe to knowledge changes: %w", err)
	}
	m.server.OnShutdown(func(context.Context) error { return sub.Unsubscribe() })
	m.banner = append(m.banner, "admin API:     {url}/api/v1/knowledge/faqs (Authorization: Bearer <admin token>)")
	return nil
}
