package knowledge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tandem-chat/tandem"
)

// Config configures a Service. Zero values take the documented defaults.
type Config struct {
	Store Store // required
	// Embedder is the current sentence encoder; nil turns vector retrieval
	// off (lexical search only).
	Embedder Embedder
	// Previous are older encoders kept loaded so that the index built with
	// them keeps serving while the store re-embeds with Embedder. Without
	// the old encoder, vector retrieval is off until re-embedding finishes.
	Previous []Embedder
	// Fusion weights of the hybrid ranking (default plain RRF, K=60).
	Fusion Fusion
	// Candidates is how many results each retriever contributes to fusion
	// (default 50).
	Candidates int
	// Cache bounds the hot answer cache.
	Cache CacheConfig
	// Registerer receives the cache and search metrics; nil registers none.
	Registerer prometheus.Registerer
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// ReindexBatch is the number of FAQs embedded per step of the background
	// re-embedding (default 64).
	ReindexBatch int
	// OnChange, when set, is called after every change to the knowledge base
	// (after the local cache is invalidated), e.g. to fan the invalidation
	// out to other nodes over the bus.
	OnChange func()
}

// Search limits.
const (
	MaxQueryLen = 1000 // characters
	MaxK        = 100
	DefaultK    = 5
)

// Mode selects the retrievers of a search.
type Mode string

// Search modes.
const (
	ModeHybrid  Mode = "hybrid"
	ModeLexical Mode = "lexical"
	ModeVector  Mode = "vector"
)

// SearchRequest is one search.
type SearchRequest struct {
	Query  string
	Filter Filter
	K      int  // default 5, at most 100
	Mode   Mode // default hybrid
	// NoCache bypasses the hot answer cache (search preview).
	NoCache bool
}

// SearchResult is the ranked hits of a search.
type SearchResult struct {
	Hits   []tandem.Hit `json:"hits"`
	Cached bool         `json:"cached"`
	Mode   Mode         `json:"mode"`
	Model  string       `json:"model,omitempty"` // encoder version used for vector retrieval; "" when it was off
}

// ReindexStatus describes the background re-embedding.
type ReindexStatus struct {
	Running    bool      `json:"running"`
	Model      string    `json:"model,omitempty"`   // the version being built
	Serving    string    `json:"serving,omitempty"` // the version searches use
	Embedded   int       `json:"embedded"`          // FAQs embedded by this run
	Error      string    `json:"error,omitempty"`   // last error (the run retries)
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
}

// Service is the knowledge base as the rest of Tandem sees it: validated,
// audited CRUD, bulk import/export, hybrid search behind the hot answer
// cache, and background re-embedding. Methods may be called concurrently.
type Service struct {
	cfg    Config
	store  Store
	log    *slog.Logger
	cache  *Cache[SearchResult]
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu           sync.Mutex    // guards the fields below
	serving      Embedder      // encoder for queries against the served index; nil = vector off
	servingModel string        // version searched
	target       Embedder      // encoder being built; nil when no job runs
	status       ReindexStatus // of the last or current job
	jobDone      chan struct{} // closed when the running job ends
	kickAgain    bool          // rerun the job after it ends
	forceNext    bool          // the next job run recomputes existing vectors too (Reindex with force)

	searches *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// NewService checks cfg and builds a Service; call Start before use.
func NewService(cfg Config) (*Service, error) {
	if cfg.Store == nil {
		return nil, errors.New("knowledge: Config.Store is required")
	}
	if cfg.Candidates <= 0 {
		cfg.Candidates = 50
	}
	if cfg.ReindexBatch <= 0 {
		cfg.ReindexBatch = 64
	}
	cfg.Fusion = cfg.Fusion.Defaults()
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cache, err := NewCache(cfg.Cache, resultSize, cfg.Registerer, "search")
	if err != nil {
		return nil, fmt.Errorf("knowledge: cache metrics: %w", err)
	}
	s := &Service{cfg: cfg, store: cfg.Store, log: cfg.Logger, cache: cache}
	s.searches = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "tandem", Subsystem: "knowledge", Name: "searches_total",
		Help: "Knowledge base searches by mode and outcome."}, []string{"mode", "outcome"})
	s.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "tandem", Subsystem: "knowledge", Name: "search_seconds",
		Help: "Knowledge base search latency (cache misses).", Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 12)}, []string{"mode"})
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{s.searches, s.latency} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("knowledge: metrics: %w", err)
			}
		}
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

func resultSize(r SearchResult) int64 {
	n := int64(64)
	for _, h := range r.Hits {
		n += int64(200 + len(h.FAQ.ID) + len(h.FAQ.ExternalID) + len(h.FAQ.Question) + len(h.FAQ.Answer) + len(h.Matched) + len(h.FAQ.Category) + len(h.FAQ.Intent))
		for _, p := range h.FAQ.Phrasings {
			n += int64(16 + len(p))
		}
		for _, t := range h.FAQ.Tags {
			n += int64(16 + len(t))
		}
		n += int64(48 * len(h.Retrievers))
	}
	return n
}

// Start registers the encoder with the store and decides what searches use:
// the encoder itself when the store's vectors are already from it (or when
// there is no complete index yet), else the previous encoder that built the
// active index (if configured) while a background job re-embeds every FAQ.
// A dimension that disagrees with the stored vectors of the same encoder
// version is an error.
func (s *Service) Start(ctx context.Context) error {
	models, err := s.store.Models(ctx)
	if err != nil {
		return fmt.Errorf("knowledge: read models: %w", err)
	}
	var active *ModelInfo
	for i := range models {
		if models[i].Active {
			active = &models[i]
		}
	}
	e := s.cfg.Embedder
	if e == nil {
		if active != nil {
			if prev := s.previous(active.Version); prev != nil {
				s.mu.Lock()
				s.serving, s.servingModel = prev, active.Version
				s.mu.Unlock()
			}
		}
		return nil
	}
	if e.Dim() <= 0 {
		return fmt.Errorf("knowledge: embedder %s reports dimension %d", e.Version(), e.Dim())
	}
	if err := s.store.RegisterModel(ctx, e.Version(), e.Dim()); err != nil {
		return fmt.Errorf("knowledge: register embedder %s: %w", e.Version(), err)
	}
	s.mu.Lock()
	switch {
	case active == nil || active.Version == e.Version():
		s.serving, s.servingModel = e, e.Version()
	default:
		if prev := s.previous(active.Version); prev != nil {
			s.serving, s.servingModel = prev, active.Version
		}
		s.log.Info("knowledge: encoder changed; re-embedding in the background", "from", active.Version, "to", e.Version())
	}
	s.target = e
	s.mu.Unlock()
	s.kick()
	return nil
}

func (s *Service) previous(version string) Embedder {
	for _, p := range s.cfg.Previous {
		if p != nil && p.Version() == version {
			return p
		}
	}
	return nil
}

// SetEmbedder hot-swaps the encoder: the current index keeps serving with
// the current encoder while every FAQ is re-embedded with e in the
// background; searches switch when the new index is complete.
func (s *Service) SetEmbedder(ctx context.Context, e Embedder) error {
	if e == nil || e.Dim() <= 0 {
		return tandem.Errorf(tandem.EINVALID, "embedder is missing or has no dimension")
	}
	if err := s.store.RegisterModel(ctx, e.Version(), e.Dim()); err != nil {
		return fmt.Errorf("knowledge: register embedder %s: %w", e.Version(), err)
	}
	s.mu.Lock()
	if s.serving == nil {
		s.serving, s.servingModel = e, e.Version()
	}
	s.target = e
	s.mu.Unlock()
	s.kick()
	return nil
}

// Close stops background work. It does not close the store. The context
// is cancelled under mu, where kick starts jobs, so no job starts after it.
func (s *Service) Close() error {
	s.mu.Lock()
	s.cancel()
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// Invalidate empties the hot answer cache; call it when another node
// reports a knowledge base change. It returns the new generation.
func (s *Service) Invalidate() uint64 { return s.cache.Invalidate() }

// CacheGeneration returns the cache generation (bumped by every change).
func (s *Service) CacheGeneration() uint64 { return s.cache.Generation() }

func (s *Service) changed() {
	s.cache.Invalidate()
	if s.cfg.OnChange != nil {
		s.cfg.OnChange()
	}
}

// writeEncoders returns the encoders whose vectors a write must carry.
func (s *Service) writeEncoders() []Embedder {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Embedder
	if s.serving != nil {
		out = append(out, s.serving)
	}
	if s.target != nil && (s.serving == nil || s.target.Version() != s.serving.Version()) {
		out = append(out, s.target)
	}
	return out
}

// embedFAQs computes the vectors of every FAQ under every write encoder.
// On failure it returns nil vectors and an error; callers store the text
// anyway and let the background job fill the vectors in.
func (s *Service) embedFAQs(ctx context.Context, faqs []tandem.FAQ) ([][]Embedding, error) {
	encs := s.writeEncoders()
	out := make([][]Embedding, len(faqs))
	if len(encs) == 0 || len(faqs) == 0 {
		return out, nil
	}
	var texts []string
	for _, f := range faqs {
		texts = append(texts, Texts(f)...)
	}
	for _, e := range encs {
		vecs, err := embedBatched(ctx, e, texts, 256)
		if err != nil {
			return make([][]Embedding, len(faqs)), err
		}
		off := 0
		for i, f := range faqs {
			n := 1 + len(f.Phrasings)
			out[i] = append(out[i], Embedding{Model: e.Version(), Vectors: vecs[off : off+n]})
			off += n
		}
	}
	return out, nil
}

func embedBatched(ctx context.Context, e Embedder, texts []string, batch int) ([][]float32, error) {
	out := make([][]float32, 0, len(texts))
	for i := 0; i < len(texts); i += batch {
		j := min(i+batch, len(texts))
		v, err := e.Embed(ctx, texts[i:j])
		if err != nil {
			return nil, fmt.Errorf("knowledge: embed with %s: %w", e.Version(), err)
		}
		if len(v) != j-i {
			return nil, fmt.Errorf("knowledge: embedder %s returned %d vectors for %d texts", e.Version(), len(v), j-i)
		}
		for _, x := range v {
			if len(x) != e.Dim() {
				return nil, fmt.Errorf("knowledge: embedder %s returned a %d-dimensional vector, configured %d", e.Version(), len(x), e.Dim())
			}
		}
		out = append(out, v...)
	}
	return out, nil
}

func (s *Service) embedOne(ctx context.Context, f tandem.FAQ) []Embedding {
	embs, err := s.embedFAQs(ctx, []tandem.FAQ{f})
	if err != nil {
		s.log.WarnContext(ctx, "knowledge: embedding failed; stored without vectors, the background job will retry", "err", err)
		return nil
	}
	return embs[0]
}

// List returns a page of FAQs. Malformed filter values are EINVALID.
func (s *Service) List(ctx context.Context, f ListFilter) (Page, error) {
	if err := f.Validate(); err != nil {
		return Page{}, err
	}
	f.Tags = filterTags(f.Tags)
	return s.store.List(ctx, f)
}

// filterTags normalises tag filters as stored tags are (case-folded,
// spaces collapsed), so "Shipping" finds FAQs tagged "shipping" in every
// read path (search did; list and export did not).
func filterTags(tags []string) []string {
	if len(tags) == 0 {
		return tags
	}
	out := make([]string, len(tags))
	for i, t := range tags {
		out[i] = strings.ToLower(collapse(t))
	}
	return out
}

// Get returns one FAQ. A malformed id (see ValidID) is EINVALID.
func (s *Service) Get(ctx context.Context, id string) (tandem.FAQ, error) {
	if err := ValidID("id", id); err != nil {
		return tandem.FAQ{}, err
	}
	return s.store.Get(ctx, id)
}

// Versions returns a page of the audit trail of an FAQ, oldest first: the
// revisions with a version above after, at most limit (1 to
// MaxVersionsPage+1, the one more telling a pager whether another page
// follows; 0: all).
func (s *Service) Versions(ctx context.Context, id string, after int64, limit int) ([]Revision, error) {
	if err := ValidID("id", id); err != nil {
		return nil, err
	}
	if after < 0 {
		return nil, tandem.Errorf(tandem.EINVALID, "after must be a version number (0 or more)")
	}
	if limit < 0 || limit > MaxVersionsPage+1 {
		return nil, tandem.Errorf(tandem.EINVALID, "limit must be between 1 and %d", MaxVersionsPage)
	}
	return s.store.Versions(ctx, id, after, limit)
}

// MaxVersionsPage is the largest page of the audit trail the API serves.
const MaxVersionsPage = 1000

// Create validates and stores a new FAQ on behalf of actor.
func (s *Service) Create(ctx context.Context, actor string, f tandem.FAQ) (tandem.FAQ, error) {
	if err := ValidActor(actor); err != nil {
		return tandem.FAQ{}, err
	}
	f.ID = ""
	n, err := Normalize(f)
	if err != nil {
		return tandem.FAQ{}, err
	}
	embs := s.embedOne(ctx, n)
	var out tandem.FAQ
	embs, err = s.storeVectorsOrNot(ctx, embs, func(embs []Embedding) (err error) {
		out, err = s.store.Create(ctx, Write{FAQ: n, Embeddings: embs, Actor: actor})
		return err
	})
	if err != nil {
		return tandem.FAQ{}, err
	}
	s.afterWrite(embs)
	return out, nil
}

// storeVectorsOrNot runs write with embs and, if the store refuses them
// (ErrUnknownEncoder: in a rolling deploy another node activated a new
// encoder and dropped the vectors of this node's), once more without vectors, as when
// the encoder fails: the text is stored and the background job fills in
// what it can. It returns the vectors stored.
func (s *Service) storeVectorsOrNot(ctx context.Context, embs []Embedding, write func([]Embedding) error) ([]Embedding, error) {
	err := write(embs)
	if err == nil || len(embs) == 0 || !errors.Is(err, ErrUnknownEncoder) {
		return embs, err
	}
	s.log.WarnContext(ctx, "knowledge: the store refused the vectors; stored without them", "err", err)
	return nil, write(nil)
}

func (s *Service) afterWrite(embs []Embedding) {
	s.changed()
	if len(s.writeEncoders()) > len(embs) {
		s.kick() // vectors missing: fill them in the background
	}
}

// Keep names the fields an Update leaves as they are instead of taking
// f's (the API's PUT keeps the ones its body leaves out).
type Keep struct {
	Status     bool // the publication state, which has its own calls
	ExternalID bool // the import key
}

// Update replaces the content of FAQ f.ID if it is still at
// expectedVersion (ECONFLICT otherwise): every field of f except those keep
// names, which stay as they are. An update that changes nothing returns the
// FAQ as it is, without a new version.
func (s *Service) Update(ctx context.Context, actor string, f tandem.FAQ, expectedVersion int64, keep Keep) (tandem.FAQ, error) {
	if err := ValidActor(actor); err != nil {
		return tandem.FAQ{}, err
	}
	if expectedVersion <= 0 {
		return tandem.FAQ{}, tandem.Errorf(tandem.EINVALID, "the expected version is required (If-Match or \"version\")")
	}
	n, err := Normalize(f)
	if err != nil {
		return tandem.FAQ{}, err
	}
	cur, err := s.store.Get(ctx, f.ID)
	if err != nil {
		return tandem.FAQ{}, err
	}
	if cur.Version != expectedVersion {
		return tandem.FAQ{}, versionConflict(f.ID, expectedVersion, cur.Version)
	}
	if keep.Status {
		n.Status = cur.Status
	}
	if keep.ExternalID {
		n.ExternalID = cur.ExternalID
	}
	if SameContent(cur, n) {
		return cur, nil // nothing to change: no new version (as an import's unchanged row)
	}
	var embs []Embedding
	if !SameText(cur, n) {
		embs = s.embedOne(ctx, n)
	}
	var out tandem.FAQ
	embs, err = s.storeVectorsOrNot(ctx, embs, func(embs []Embedding) (err error) {
		out, err = s.store.Update(ctx, Write{FAQ: n, Embeddings: embs, Actor: actor, ExpectedVersion: expectedVersion})
		return err
	})
	if err != nil {
		return tandem.FAQ{}, err
	}
	if SameText(cur, n) {
		s.changed()
	} else {
		s.afterWrite(embs)
	}
	return out, nil
}

func versionConflict(id string, expected, actual int64) error {
	return tandem.Errorf(tandem.ECONFLICT, "FAQ %s is at version %d, not %d: reload it and apply your change again", id, actual, expected)
}

// SetStatus publishes or unpublishes an FAQ. expectedVersion 0 skips the
// version check: the status is applied to whatever version is current,
// even when another editor saves the FAQ meanwhile.
func (s *Service) SetStatus(ctx context.Context, actor, id string, status tandem.FAQStatus, expectedVersion int64) (tandem.FAQ, error) {
	if err := ValidActor(actor); err != nil {
		return tandem.FAQ{}, err
	}
	if status != tandem.FAQDraft && status != tandem.FAQPublished {
		return tandem.FAQ{}, tandem.Errorf(tandem.EINVALID, "status: %q is neither draft nor published", status)
	}
	if err := ValidID("id", id); err != nil {
		return tandem.FAQ{}, err
	}
	// Without a version check, another editor saving between the read and
	// the write is no conflict for the caller: read again and retry.
	for attempt := 1; ; attempt++ {
		cur, err := s.store.Get(ctx, id)
		if err != nil {
			return tandem.FAQ{}, err
		}
		if expectedVersion != 0 && cur.Version != expectedVersion {
			return tandem.FAQ{}, versionConflict(id, expectedVersion, cur.Version)
		}
		if cur.Status == status {
			return cur, nil
		}
		next := Clone(cur)
		next.Status = status
		out, err := s.store.Update(ctx, Write{FAQ: next, Actor: actor, ExpectedVersion: cur.Version})
		if tandem.ErrorCode(err) == tandem.ECONFLICT && expectedVersion == 0 && attempt < setStatusAttempts {
			continue
		}
		if err != nil {
			return tandem.FAQ{}, err
		}
		s.changed()
		return out, nil
	}
}

// setStatusAttempts bounds SetStatus's retries when it races other editors.
const setStatusAttempts = 5

// Delete removes an FAQ if it is at expectedVersion (0: any version). Its
// audit trail remains.
func (s *Service) Delete(ctx context.Context, actor, id string, expectedVersion int64) error {
	if err := ValidActor(actor); err != nil {
		return err
	}
	if err := ValidID("id", id); err != nil {
		return err
	}
	if err := s.store.Delete(ctx, id, expectedVersion, actor); err != nil {
		return err
	}
	s.changed()
	return nil
}

// Upsert creates or updates the FAQ with f.ExternalID (required).
func (s *Service) Upsert(ctx context.Context, actor string, f tandem.FAQ) (Outcome, error) {
	if err := ValidActor(actor); err != nil {
		return Outcome{}, err
	}
	n, err := Normalize(f)
	if err != nil {
		return Outcome{}, err
	}
	if n.ExternalID == "" {
		return Outcome{}, tandem.Errorf(tandem.EINVALID, "external_id: required for upserts")
	}
	var embs []Embedding
	if cur, err := s.store.GetByExternalID(ctx, n.ExternalID); err != nil || !SameText(cur, n) {
		embs = s.embedOne(ctx, n)
	}
	var out Outcome
	embs, err = s.storeVectorsOrNot(ctx, embs, func(embs []Embedding) (err error) {
		out, err = s.store.UpsertByExternalID(ctx, Write{FAQ: n, Embeddings: embs, Actor: actor})
		return err
	})
	if err != nil {
		return Outcome{}, err
	}
	if out.Action != ActionUnchanged {
		s.afterWrite(embs)
	}
	return out, nil
}

// ImportOptions control a bulk import.
type ImportOptions struct {
	// DryRun validates and reports what would happen without storing.
	DryRun bool
	// Partial applies the valid rows even when some rows are invalid (the
	// report says exactly which rows applied). By default an import with
	// any invalid row applies nothing.
	Partial bool
}

// RowResult is the outcome of one import row.
type RowResult struct {
	Row        int          `json:"row"`
	Line       int          `json:"line,omitempty"`
	ExternalID string       `json:"external_id,omitempty"`
	ID         string       `json:"id,omitempty"`
	Action     Action       `json:"action,omitempty"` // empty when the row failed or was not applied
	Version    int64        `json:"version,omitempty"`
	Error      *ErrorDetail `json:"error,omitempty"`
}

// ErrorDetail is the client-facing shape of an error.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// ImportReport says what an import did (or, for a dry run, would do).
type ImportReport struct {
	DryRun    bool        `json:"dry_run"`
	Applied   bool        `json:"applied"` // true when the valid rows were stored
	Total     int         `json:"total"`
	Created   int         `json:"created"`
	Updated   int         `json:"updated"`
	Unchanged int         `json:"unchanged"`
	Failed    int         `json:"failed"`
	Rows      []RowResult `json:"rows"`
}

// Import upserts parsed records by external id, all in one store
// transaction. Without opts.Partial any invalid row means nothing is
// applied; with it, exactly the valid rows are applied. Either way the
// report lists every row.
func (s *Service) Import(ctx context.Context, actor string, recs []Record, opts ImportOptions) (ImportReport, error) {
	if err := ValidActor(actor); err != nil {
		return ImportReport{}, err
	}
	rep := ImportReport{DryRun: opts.DryRun, Total: len(recs), Rows: make([]RowResult, len(recs))}
	var writes []Write
	var rowOf []int
	for i, r := range recs {
		rr := RowResult{Row: r.Row, Line: r.Line, ExternalID: r.FAQ.ExternalID}
		if r.Err != nil {
			rr.Error = &ErrorDetail{Code: tandem.ErrorCode(r.Err), Message: tandem.ErrorMessage(r.Err)}
			rep.Failed++
		} else {
			writes = append(writes, Write{FAQ: r.FAQ, Actor: actor})
			rowOf = append(rowOf, i)
		}
		rep.Rows[i] = rr
	}
	// Rows for an FAQ that another row names by its other key are found
	// here, all at once; the store refuses them too, one per transaction.
	// Looked for even when rows failed to parse, so an atomic import's
	// report lists every row to fix, not some of them.
	same, err := s.sameFAQRows(ctx, writes)
	if err != nil {
		return rep, err
	}
	if len(same) > 0 {
		keep := 0
		for j := range writes {
			if d := same[j]; d != nil {
				rep.Rows[rowOf[j]].Error = d
				rep.Failed++
				continue
			}
			writes[keep], rowOf[keep] = writes[j], rowOf[j]
			keep++
		}
		writes, rowOf = writes[:keep], rowOf[:keep]
	}
	if rep.Failed > 0 && !opts.Partial {
		return rep, nil
	}
	for refused := 0; ; refused++ {
		outs, err := s.importWrites(ctx, writes, opts)
		i, detail := importRowFailure(err, len(writes))
		if detail == nil || refused >= maxRefusedRows {
			if err != nil {
				return rep, err
			}
			rep.Applied = !opts.DryRun && len(writes) > 0
			for j, o := range outs {
				rr := &rep.Rows[rowOf[j]]
				rr.ID, rr.Version = o.FAQ.ID, o.FAQ.Version
				rr.Action = o.Action
				switch o.Action {
				case ActionCreated:
					rep.Created++
				case ActionUpdated:
					rep.Updated++
				case ActionUnchanged:
					rep.Unchanged++
				}
			}
			return rep, nil
		}
		// The store refused one row: it is that row's error, as for the
		// rows the parser refused. Atomic mode stops; partial mode goes on
		// without it.
		rep.Rows[rowOf[i]].Error = detail
		rep.Failed++
		if !opts.Partial {
			return rep, nil
		}
		writes = append(writes[:i:i], writes[i+1:]...)
		rowOf = append(rowOf[:i:i], rowOf[i+1:]...)
	}
}

// maxRefusedRows bounds the rows of one partial import that the store
// refuses one transaction at a time (each costs a pass over the batch).
const maxRefusedRows = 10

// sameFAQRows finds the writes keyed by id whose FAQ another write names
// by its external id, and returns an error for the later of each pair
// (the one the store would refuse), by position in writes.
func (s *Service) sameFAQRows(ctx context.Context, writes []Write) (map[int]*ErrorDetail, error) {
	byExt := map[string]int{}
	for j, w := range writes {
		if w.FAQ.ExternalID != "" {
			byExt[w.FAQ.ExternalID] = j
		}
	}
	if len(byExt) == 0 || len(byExt) == len(writes) {
		return nil, nil // one kind of key only: no lookups needed
	}
	var out map[int]*ErrorDetail
	for j, w := range writes {
		key, byID := ImportKey(w.FAQ)
		if !byID {
			continue
		}
		cur, err := s.store.Get(ctx, w.FAQ.ID)
		if tandem.ErrorCode(err) == tandem.ENOTFOUND {
			continue
		}
		if err != nil {
			return nil, err
		}
		k, ok := byExt[cur.ExternalID]
		if cur.ExternalID == "" || !ok {
			continue
		}
		later, earlierKey := j, fmt.Sprintf("external_id %q", cur.ExternalID)
		if k > j {
			later, earlierKey = k, key
		}
		if out == nil {
			out = map[int]*ErrorDetail{}
		}
		laterKey, _ := ImportKey(writes[later].FAQ)
		out[later] = &ErrorDetail{Code: tandem.EINVALID, Message: fmt.Sprintf("%s is FAQ %s, which the row with %s already changes: one row per FAQ", laterKey, cur.ID, earlierKey)}
	}
	return out, nil
}

// importRowFailure returns the write and client-facing error of a store
// import that failed because of one write (a *RowError with a client
// code); detail is nil for any other error.
func importRowFailure(err error, n int) (int, *ErrorDetail) {
	var re *RowError
	if err == nil || !errors.As(err, &re) || re.Index < 0 || re.Index >= n {
		return 0, nil
	}
	switch code := tandem.ErrorCode(re.Err); code {
	case tandem.EINVALID, tandem.ECONFLICT:
		return re.Index, &ErrorDetail{Code: code, Message: tandem.ErrorMessage(re.Err)}
	}
	return 0, nil
}

// importWrites classifies writes, embeds the new and changed ones and,
// unless opts.DryRun, applies them in one store transaction.
func (s *Service) importWrites(ctx context.Context, writes []Write, opts ImportOptions) ([]Outcome, error) {
	// Classify first (a rolled-back transaction), so only new or changed
	// text is embedded.
	outs, err := s.store.Import(ctx, writes, true)
	if err != nil {
		return nil, err
	}
	if !opts.DryRun && len(writes) > 0 {
		var need []int
		var faqs []tandem.FAQ
		for i, o := range outs {
			if o.Action == ActionCreated || o.Action == ActionUpdated {
				need = append(need, i)
				faqs = append(faqs, writes[i].FAQ)
			}
		}
		embs, err := s.embedFAQs(ctx, faqs)
		if err != nil {
			s.log.WarnContext(ctx, "knowledge: import embedding failed; stored without vectors, the background job will retry", "err", err)
		}
		missing := err != nil
		for j, i := range need {
			writes[i].Embeddings = embs[j]
		}
		outs, err = s.store.Import(ctx, writes, false)
		if errors.Is(err, ErrUnknownEncoder) && len(need) > 0 && !missing {
			// The store refused the vectors (see storeVectorsOrNot).
			s.log.WarnContext(ctx, "knowledge: the store refused the vectors; importing without them", "err", err)
			for i := range writes {
				writes[i].Embeddings = nil
			}
			missing = true
			outs, err = s.store.Import(ctx, writes, false)
		}
		if err != nil {
			return nil, err
		}
		changed := false
		for i, o := range outs {
			if o.Action != ActionUnchanged {
				changed = true
				// Another writer changed a row between the dry run and this
				// import: it was written without the vectors it now needs.
				// (kick does nothing without an encoder.)
				if len(writes[i].Embeddings) == 0 {
					missing = true
				}
			}
		}
		if changed {
			s.changed()
		}
		if missing {
			s.kick()
		}
	}
	return outs, nil
}

// Export writes every FAQ matching f in the format, from one consistent
// snapshot of the store (Store.Scan): edits made while it runs are either
// all in the export or none of them. f.After and f.Limit are ignored.
func (s *Service) Export(ctx context.Context, f ListFilter, e *Exporter) error {
	f.After = ""
	f.Limit = 1000
	if err := f.Validate(); err != nil {
		return err
	}
	f.Tags = filterTags(f.Tags)
	err := s.store.Scan(ctx, f, func(item tandem.FAQ) error {
		if err := e.Write(item); err != nil {
			return fmt.Errorf("knowledge: export: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return e.Close()
}

// Search runs a hybrid (or single-retriever) search behind the hot answer
// cache.
func (s *Service) Search(ctx context.Context, req SearchRequest) (SearchResult, error) {
	if !utf8.ValidString(req.Query) {
		return SearchResult{}, tandem.Errorf(tandem.EINVALID, "q: not valid UTF-8")
	}
	if n := utf8.RuneCountInString(req.Query); n > MaxQueryLen {
		return SearchResult{}, tandem.Errorf(tandem.EINVALID, "q: %d characters, more than %d", n, MaxQueryLen)
	}
	norm := NormalizeQuery(req.Query)
	if norm == "" {
		return SearchResult{}, tandem.Errorf(tandem.EINVALID, "q: nothing to search for (empty, or only spaces, punctuation or control characters)")
	}
	if err := req.Filter.Validate(); err != nil {
		return SearchResult{}, err
	}
	if req.K == 0 {
		req.K = DefaultK
	}
	if req.K < 0 || req.K > MaxK {
		return SearchResult{}, tandem.Errorf(tandem.EINVALID, "k: must be between 1 and %d", MaxK)
	}
	switch req.Mode {
	case "":
		req.Mode = ModeHybrid
	case ModeHybrid, ModeLexical, ModeVector:
	default:
		return SearchResult{}, tandem.Errorf(tandem.EINVALID, "mode: %q is not hybrid, lexical or vector", req.Mode)
	}
	tags := filterTags(req.Filter.Tags) // a copy: sorting leaves the caller's alone
	sort.Strings(tags)
	req.Filter.Tags = tags
	// Filter values are quoted, so no two different filters share a key
	// (joining tags with "," made tag=a,b and tag=a&tag=b collide).
	key := fmt.Sprintf("%s|%d|%q|%t|%q|%s", req.Mode, req.K, req.Filter.Locale, req.Filter.PublishedOnly, tags, norm)
	if !req.NoCache {
		if r, ok := s.cache.Get(key); ok {
			r.Cached = true
			s.searches.WithLabelValues(string(req.Mode), "cache_hit").Inc()
			return r, nil
		}
	}
	gen := s.cache.Generation()
	start := time.Now()
	res, degraded, err := s.search(ctx, req)
	if err != nil {
		s.searches.WithLabelValues(string(req.Mode), "error").Inc()
		return SearchResult{}, err
	}
	s.latency.WithLabelValues(string(req.Mode)).Observe(time.Since(start).Seconds())
	s.searches.WithLabelValues(string(req.Mode), "ok").Inc()
	// A hybrid answer that lost one side (encoder down, timeout) is served
	// but not cached: it would outlive the failure by the TTL.
	if !req.NoCache && !degraded {
		s.cache.Put(key, res, gen)
	}
	return res, nil
}

// search runs the retrievers and fuses them; degraded is true when one
// side of a hybrid search failed and the hits come from the other alone.
func (s *Service) search(ctx context.Context, req SearchRequest) (res SearchResult, degraded bool, err error) {
	s.mu.Lock()
	enc, model := s.serving, s.servingModel
	s.mu.Unlock()
	res = SearchResult{Mode: req.Mode}
	lists := map[string][]Scored{}
	var lexErr, vecErr error
	var wg sync.WaitGroup
	var lex, vec []Scored
	// The vector side (encoder, then search) runs in its own goroutine while
	// this one does the lexical search.
	if req.Mode != ModeLexical && enc != nil {
		res.Model = model
		wg.Add(1)
		go func() {
			defer wg.Done()
			var v [][]float32
			v, vecErr = enc.Embed(ctx, []string{req.Query})
			if vecErr == nil && (len(v) != 1 || len(v[0]) != enc.Dim()) {
				vecErr = fmt.Errorf("knowledge: embedder %s returned a malformed query vector", model)
			}
			// A zero query vector (the encoder knows none of the query's
			// features) has no direction: no vector hits.
			if vecErr == nil && Searchable(v[0]) {
				vec, vecErr = s.store.VectorSearch(ctx, model, v[0], req.Filter, s.cfg.Candidates)
			}
		}()
	}
	if req.Mode != ModeVector {
		lex, lexErr = s.store.LexicalSearch(ctx, req.Query, req.Filter, s.cfg.Candidates)
	}
	wg.Wait()
	if lexErr != nil {
		if req.Mode != ModeHybrid || enc == nil || vecErr != nil {
			return SearchResult{}, false, fmt.Errorf("knowledge: lexical search: %w", lexErr)
		}
		// Hybrid degrades to vector, as it degrades to lexical when the
		// encoder fails.
		s.log.WarnContext(ctx, "knowledge: lexical retrieval failed; answering from vector only", "err", lexErr)
		degraded = true
	}
	switch {
	case req.Mode == ModeVector && enc == nil:
		return SearchResult{}, false, tandem.Errorf(tandem.EUNAVAILABLE, "vector search is off: no sentence encoder is serving")
	case vecErr != nil && req.Mode == ModeVector:
		return SearchResult{}, false, tandem.WrapError(tandem.EUNAVAILABLE, vecErr, "vector search failed")
	case vecErr != nil:
		// Hybrid degrades to lexical rather than failing the turn.
		s.log.WarnContext(ctx, "knowledge: vector retrieval failed; answering from lexical only", "err", vecErr)
		res.Model = ""
		degraded = true
	default:
		if enc != nil && req.Mode != ModeLexical {
			lists[RetrieverVector] = finite(vec)
		}
	}
	if req.Mode != ModeVector && lexErr == nil {
		lists[RetrieverLexical] = finite(lex)
	}
	res.Hits = s.cfg.Fusion.Fuse(lists, req.K)
	if res.Hits == nil {
		res.Hits = []tandem.Hit{}
	}
	return res, degraded, nil
}

// finite drops results whose score is NaN or infinite (a store should not
// return them; they would also make the JSON encoding of the hits fail).
func finite(l []Scored) []Scored {
	for i := range l {
		if math.IsNaN(l[i].Score) || math.IsInf(l[i].Score, 0) {
			out := append([]Scored(nil), l[:i]...)
			for _, sc := range l[i+1:] {
				if !math.IsNaN(sc.Score) && !math.IsInf(sc.Score, 0) {
					out = append(out, sc)
				}
			}
			return out
		}
	}
	return l
}

// ReindexStatus returns the state of the background re-embedding.
func (s *Service) ReindexStatus() ReindexStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.status
	st.Serving = s.servingModel
	return st
}

// Reindex starts (or, if running, re-arms) the background job that embeds
// every FAQ lacking vectors for the current encoder and then switches
// searches to it. With force, existing vectors are recomputed too (in
// place; searches keep working). It returns immediately. There is only
// ever one job: calls while it runs make it run once more (with force,
// recomputing everything once more), however many calls there are.
func (s *Service) Reindex(ctx context.Context, force bool) (ReindexStatus, error) {
	s.mu.Lock()
	if s.ctx.Err() != nil {
		s.mu.Unlock()
		return ReindexStatus{}, tandem.Errorf(tandem.EUNAVAILABLE, "the knowledge service is shutting down")
	}
	e := s.cfg.Embedder
	if s.target != nil {
		e = s.target
	}
	if e == nil {
		s.mu.Unlock()
		return ReindexStatus{}, tandem.Errorf(tandem.EUNAVAILABLE, "no sentence encoder is configured: nothing to index")
	}
	s.target = e
	s.forceNext = s.forceNext || force
	s.mu.Unlock()
	s.kick()
	return s.ReindexStatus(), nil
}

// reembed recomputes all vectors of e in place, page by page (the job's
// forced part).
func (s *Service) reembed(e Embedder) error {
	f := ListFilter{Limit: s.cfg.ReindexBatch}
	for {
		page, err := s.store.List(s.ctx, f)
		if err != nil {
			return err
		}
		embs, err := s.embedWith(s.ctx, e, page.Items)
		if err != nil {
			return err
		}
		for i, it := range page.Items {
			if err := s.store.SetEmbedding(s.ctx, it.ID, it.Version, embs[i]); err != nil && !isConflictOrGone(err) {
				return err
			}
		}
		s.mu.Lock()
		s.status.Embedded += len(page.Items)
		s.mu.Unlock()
		if page.Next == "" {
			return nil
		}
		f.After = page.Next
	}
}

func (s *Service) setErr(err error) {
	if s.ctx.Err() != nil {
		return
	}
	s.log.Error("knowledge: reindex", "err", err)
	s.mu.Lock()
	s.status.Error = err.Error()
	s.mu.Unlock()
}

func isConflictOrGone(err error) bool {
	c := tandem.ErrorCode(err)
	return c == tandem.ECONFLICT || c == tandem.ENOTFOUND
}

func (s *Service) embedWith(ctx context.Context, e Embedder, faqs []tandem.FAQ) ([]Embedding, error) {
	var texts []string
	for _, f := range faqs {
		texts = append(texts, Texts(f)...)
	}
	vecs, err := embedBatched(ctx, e, texts, 256)
	if err != nil {
		return nil, err
	}
	out := make([]Embedding, len(faqs))
	off := 0
	for i, f := range faqs {
		n := 1 + len(f.Phrasings)
		out[i] = Embedding{Model: e.Version(), Vectors: vecs[off : off+n]}
		off += n
	}
	return out, nil
}

// kick starts the re-embedding job if an encoder is targeted and no job
// runs; if one runs it will run once more.
func (s *Service) kick() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.target == nil {
		s.target = s.cfg.Embedder
	}
	if s.target == nil || s.ctx.Err() != nil {
		return
	}
	if s.status.Running {
		s.kickAgain = true
		return
	}
	s.status = ReindexStatus{Running: true, Model: s.target.Version(), StartedAt: time.Now()}
	s.jobDone = make(chan struct{})
	e, done := s.target, s.jobDone
	s.wg.Add(1)
	go s.runJob(e, done)
}

// WaitReindex blocks until the current re-embedding job (if any) ends or
// ctx is done.
func (s *Service) WaitReindex(ctx context.Context) error {
	for {
		s.mu.Lock()
		running, done := s.status.Running, s.jobDone
		s.mu.Unlock()
		if !running {
			return nil
		}
		select {
		case <-done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *Service) runJob(e Embedder, done chan struct{}) {
	defer s.wg.Done()
	backoff := time.Second
	// Requests made before this run starts its work are served by it.
	s.mu.Lock()
	force := s.forceNext
	s.forceNext, s.kickAgain = false, false
	s.mu.Unlock()
	for {
		var err error
		if force {
			if err = s.reembed(e); err == nil {
				force = false
			}
		}
		if err == nil {
			err = s.fill(e)
		}
		if err == nil {
			err = s.store.ActivateModel(s.ctx, e.Version())
			if tandem.ErrorCode(err) == tandem.ECONFLICT {
				// Written meanwhile without vectors: fill again.
				select {
				case <-s.ctx.Done():
				case <-time.After(50 * time.Millisecond):
				}
				continue
			}
		}
		if err == nil {
			break
		}
		if s.ctx.Err() != nil {
			break
		}
		s.setErr(err)
		select {
		case <-s.ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Minute)
	}
	s.mu.Lock()
	ok := s.ctx.Err() == nil
	var old string
	if ok {
		old = s.servingModel
		s.serving, s.servingModel = e, e.Version()
		s.status.Error = ""
	}
	s.mu.Unlock()
	if ok {
		if old != "" && old != e.Version() {
			if err := s.store.DropModel(s.ctx, old); err != nil {
				s.log.Warn("knowledge: drop old vectors", "model", old, "err", err)
			}
			s.log.Info("knowledge: searches switched to the new encoder", "model", e.Version(), "was", old)
		}
		s.changed()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	again := s.kickAgain && ok && s.ctx.Err() == nil
	s.kickAgain = false
	if again {
		// Run once more as the same job: the status stays "running" and
		// WaitReindex keeps waiting, so nobody sees the job as done while
		// a requested rerun is still to come.
		s.status.Model, s.status.Error = s.target.Version(), ""
		s.wg.Add(1)
		go s.runJob(s.target, done)
		return
	}
	s.status.Running = false
	s.status.FinishedAt = time.Now()
	close(done)
}

// fill embeds every FAQ lacking vectors for e, batch by batch. It is
// resumable: a restart continues with whatever is still missing.
func (s *Service) fill(e Embedder) error {
	skip := map[string]int64{}
	for {
		faqs, err := s.store.MissingEmbeddings(s.ctx, e.Version(), s.cfg.ReindexBatch+len(skip))
		if err != nil {
			return err
		}
		var todo []tandem.FAQ
		for _, f := range faqs {
			if v, ok := skip[f.ID]; ok && v == f.Version {
				continue
			}
			todo = append(todo, f)
		}
		if len(todo) == 0 {
			return nil
		}
		if len(todo) > s.cfg.ReindexBatch {
			todo = todo[:s.cfg.ReindexBatch]
		}
		embs, err := s.embedWith(s.ctx, e, todo)
		if err != nil {
			return err
		}
		for i, f := range todo {
			err := s.store.SetEmbedding(s.ctx, f.ID, f.Version, embs[i])
			switch {
			case err == nil:
			case isConflictOrGone(err):
				skip[f.ID] = f.Version // changed meanwhile; the new version is picked up next round
			default:
				return err
			}
		}
		s.mu.Lock()
		s.status.Embedded += len(todo)
		s.mu.Unlock()
	}
}
