// Package memstore is the in-memory knowledge.Store, Tandem's embedded
// default: FAQs, their audit trail and phrasing vectors live in process
// memory. Lexical search is BM25 (k1=1.2, b=0.75) over an inverted index of
// the question, phrasings and tags (answer terms weigh 0.3); vector search
// is exact (brute-force cosine over every phrasing vector, so its recall is
// 1 by construction).
//
// Contract: all methods may be called concurrently (one RWMutex: searches
// share it, writes take it exclusively). Import applies a batch atomically:
// it checks every row before changing anything. Nothing is persisted.
package memstore

import (
	"context"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/knowledge"
)

var _ knowledge.Store = (*Store)(nil)

// BM25 parameters and the weight of answer terms relative to question terms.
const (
	k1           = 1.2
	b            = 0.75
	answerWeight = 0.3
)

// item is one live FAQ. The pointer is stable for the FAQ's life, so vector
// rows can point at it.
type item struct {
	faq   tandem.FAQ
	terms map[string]float64 // weighted term frequencies
	dl    float64            // document length (sum of weights)
	rows  map[string][]int   // model -> row indices in that model's matrix
	slot  int32              // dense index for per-search scratch arrays, reused after delete
	snap  *tandem.FAQ        // immutable copy of faq handed out by searches; replaced, never modified
}

// matrix holds the vectors of one model, one row per phrasing; rows of one
// FAQ are contiguous, dead rows have owner nil.
type matrix struct {
	info  knowledge.ModelInfo
	data  []float32
	owner []*item
	ord   []int
	dead  int
}

// Store is the in-memory store.
type Store struct {
	now func() time.Time

	mu       sync.RWMutex // guards everything below
	items    map[string]*item
	byExt    map[string]*item
	ids      []string // sorted ids of live items
	revs     map[string][]knowledge.Revision
	postings map[string]map[*item]float64
	totalDL  float64
	models   map[string]*matrix
	slots    int32     // high-water mark of item slots
	free     []int32   // slots of deleted items
	scratch  sync.Pool // *lexScratch
}

// lexScratch accumulates BM25 scores by item slot for one search; only the
// touched entries are non-zero, and they are zeroed again after use.
type lexScratch struct {
	score   []float64
	owner   []*item
	touched []int32
}

func (s *Store) allocSlot() int32 {
	if n := len(s.free); n > 0 {
		sl := s.free[n-1]
		s.free = s.free[:n-1]
		return sl
	}
	s.slots++
	return s.slots - 1
}

// New returns an empty store.
func New() *Store {
	return &Store{now: time.Now, items: map[string]*item{}, byExt: map[string]*item{}, revs: map[string][]knowledge.Revision{},
		postings: map[string]map[*item]float64{}, models: map[string]*matrix{}}
}

// Close releases nothing; it exists for the interface.
func (s *Store) Close() error { return nil }

func notFound(id string) error { return tandem.Errorf(tandem.ENOTFOUND, "FAQ %s not found", id) }

func (s *Store) stamp() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// List implements knowledge.Store.
func (s *Store) List(ctx context.Context, f knowledge.ListFilter) (knowledge.Page, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 1000)
	s.mu.RLock()
	defer s.mu.RUnlock()
	i := sort.SearchStrings(s.ids, f.After)
	if i < len(s.ids) && s.ids[i] == f.After {
		i++
	}
	var page knowledge.Page
	page.Items = []tandem.FAQ{}
	match := f.Filter.Matcher()
	for ; i < len(s.ids); i++ {
		it := s.items[s.ids[i]]
		if !match(it.faq) || (f.Status != "" && it.faq.Status != f.Status) || (f.Category != "" && it.faq.Category != f.Category) {
			continue
		}
		if len(page.Items) == limit {
			page.Next = page.Items[limit-1].ID
			break
		}
		page.Items = append(page.Items, knowledge.Clone(it.faq))
	}
	return page, nil
}

// Scan implements knowledge.Store: the matching FAQs are copied under
// the read lock, then yielded without it.
func (s *Store) Scan(ctx context.Context, f knowledge.ListFilter, yield func(tandem.FAQ) error) error {
	s.mu.RLock()
	match := f.Filter.Matcher()
	var items []tandem.FAQ
	for _, id := range s.ids {
		it := s.items[id]
		if match(it.faq) && (f.Status == "" || it.faq.Status == f.Status) && (f.Category == "" || it.faq.Category == f.Category) {
			items = append(items, knowledge.Clone(it.faq))
		}
	}
	s.mu.RUnlock()
	for _, item := range items {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := yield(item); err != nil {
			return err
		}
	}
	return nil
}

// Get implements knowledge.Store.
func (s *Store) Get(ctx context.Context, id string) (tandem.FAQ, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	it, ok := s.items[id]
	if !ok {
		return tandem.FAQ{}, notFound(id)
	}
	return knowledge.Clone(it.faq), nil
}

// GetByExternalID implements knowledge.Store.
func (s *Store) GetByExternalID(ctx context.Context, ext string) (tandem.FAQ, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	it, ok := s.byExt[ext]
	if !ok || ext == "" {
		return tandem.FAQ{}, tandem.Errorf(tandem.ENOTFOUND, "no FAQ with external id %q", ext)
	}
	return knowledge.Clone(it.faq), nil
}

// checkEmbeddings verifies vector counts and dimensions; s.mu is held.
func (s *Store) checkEmbeddings(f tandem.FAQ, embs []knowledge.Embedding) error {
	n := 1 + len(f.Phrasings)
	for _, e := range embs {
		m, ok := s.models[e.Model]
		if !ok {
			return tandem.WrapError(tandem.EINVALID, knowledge.ErrUnknownEncoder, "encoder %q is not registered", e.Model)
		}
		if len(e.Vectors) != n {
			return tandem.Errorf(tandem.EINVALID, "%d vectors for %d phrasings", len(e.Vectors), n)
		}
		for _, v := range e.Vectors {
			if len(v) != m.info.Dim {
				return tandem.Errorf(tandem.EINVALID, "a %d-dimensional vector for encoder %s, which has %d dimensions", len(v), e.Model, m.info.Dim)
			}
			if math.IsNaN(knowledge.Norm(v)) {
				return tandem.Errorf(tandem.EINVALID, "a vector for encoder %s has a NaN or infinite component", e.Model)
			}
		}
	}
	return nil
}

// Create implements knowledge.Store.
func (s *Store) Create(ctx context.Context, w knowledge.Write) (tandem.FAQ, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkCreate(w); err != nil {
		return tandem.FAQ{}, err
	}
	return s.create(w), nil
}

func (s *Store) checkCreate(w knowledge.Write) error {
	if w.FAQ.ID != "" {
		if _, ok := s.items[w.FAQ.ID]; ok {
			return tandem.Errorf(tandem.ECONFLICT, "FAQ %s already exists", w.FAQ.ID)
		}
	}
	if w.FAQ.ExternalID != "" {
		if _, ok := s.byExt[w.FAQ.ExternalID]; ok {
			return tandem.Errorf(tandem.ECONFLICT, "an FAQ with external id %q already exists", w.FAQ.ExternalID)
		}
	}
	return s.checkEmbeddings(w.FAQ, w.Embeddings)
}

func (s *Store) create(w knowledge.Write) tandem.FAQ {
	f := knowledge.Clone(w.FAQ)
	if f.ID == "" {
		f.ID = knowledge.NewID()
	}
	now := s.stamp()
	f.Version, f.CreatedAt, f.UpdatedAt, f.UpdatedBy = 1, now, now, w.Actor
	if revs := s.revs[f.ID]; len(revs) > 0 {
		// The id belonged to a deleted FAQ (restored from an export): the
		// audit trail survived, so continue its version numbers.
		f.Version = revs[len(revs)-1].FAQ.Version + 1
	}
	snap := f
	it := &item{faq: f, snap: &snap, rows: map[string][]int{}, slot: s.allocSlot()}
	s.items[f.ID] = it
	if f.ExternalID != "" {
		s.byExt[f.ExternalID] = it
	}
	i := sort.SearchStrings(s.ids, f.ID)
	s.ids = append(s.ids, "")
	copy(s.ids[i+1:], s.ids[i:])
	s.ids[i] = f.ID
	s.index(it)
	for _, e := range w.Embeddings {
		s.setRows(it, e)
	}
	s.revs[f.ID] = append(s.revs[f.ID], knowledge.Revision{FAQ: knowledge.Clone(f), Op: knowledge.OpCreate, Actor: w.Actor, At: now})
	return knowledge.Clone(f)
}

// Update implements knowledge.Store.
func (s *Store) Update(ctx context.Context, w knowledge.Write) (tandem.FAQ, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, err := s.checkUpdate(w)
	if err != nil {
		return tandem.FAQ{}, err
	}
	return s.update(it, w), nil
}

func (s *Store) checkUpdate(w knowledge.Write) (*item, error) {
	it, ok := s.items[w.FAQ.ID]
	if !ok {
		return nil, notFound(w.FAQ.ID)
	}
	if it.faq.Version != w.ExpectedVersion {
		return nil, tandem.Errorf(tandem.ECONFLICT, "FAQ %s is at version %d, not %d: reload it and apply your change again", w.FAQ.ID, it.faq.Version, w.ExpectedVersion)
	}
	if w.FAQ.ExternalID != "" && w.FAQ.ExternalID != it.faq.ExternalID {
		if _, taken := s.byExt[w.FAQ.ExternalID]; taken {
			return nil, tandem.Errorf(tandem.ECONFLICT, "an FAQ with external id %q already exists", w.FAQ.ExternalID)
		}
	}
	return it, s.checkEmbeddings(w.FAQ, w.Embeddings)
}

func (s *Store) update(it *item, w knowledge.Write) tandem.FAQ {
	old := it.faq
	f := knowledge.Clone(w.FAQ)
	now := s.stamp()
	f.ID, f.CreatedAt = old.ID, old.CreatedAt
	f.Version, f.UpdatedAt, f.UpdatedBy = old.Version+1, now, w.Actor
	if old.ExternalID != "" {
		delete(s.byExt, old.ExternalID)
	}
	if f.ExternalID != "" {
		s.byExt[f.ExternalID] = it
	}
	s.unindex(it)
	textChanged := !knowledge.SameText(old, f)
	it.faq = f
	snap := f
	it.snap = &snap
	s.index(it)
	if textChanged || len(w.Embeddings) > 0 {
		for model := range it.rows {
			s.killRows(it, model)
		}
		for _, e := range w.Embeddings {
			s.setRows(it, e)
		}
	}
	s.revs[f.ID] = append(s.revs[f.ID], knowledge.Revision{FAQ: knowledge.Clone(f), Op: knowledge.OpUpdate, Actor: w.Actor, At: now})
	return knowledge.Clone(f)
}

// Delete implements knowledge.Store.
func (s *Store) Delete(ctx context.Context, id string, expected int64, actor string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.items[id]
	if !ok {
		return notFound(id)
	}
	if expected != 0 && it.faq.Version != expected {
		return tandem.Errorf(tandem.ECONFLICT, "FAQ %s is at version %d, not %d: reload it and apply your change again", id, it.faq.Version, expected)
	}
	s.unindex(it)
	for model := range it.rows {
		s.killRows(it, model)
	}
	delete(s.items, id)
	s.free = append(s.free, it.slot)
	if it.faq.ExternalID != "" {
		delete(s.byExt, it.faq.ExternalID)
	}
	i := sort.SearchStrings(s.ids, id)
	s.ids = append(s.ids[:i], s.ids[i+1:]...)
	last := knowledge.Clone(it.faq)
	now := s.stamp()
	last.Version++
	last.UpdatedAt, last.UpdatedBy = now, actor
	s.revs[id] = append(s.revs[id], knowledge.Revision{FAQ: last, Op: knowledge.OpDelete, Actor: actor, At: now})
	return nil
}

// UpsertByExternalID implements knowledge.Store.
func (s *Store) UpsertByExternalID(ctx context.Context, w knowledge.Write) (knowledge.Outcome, error) {
	outs, err := s.Import(ctx, []knowledge.Write{w}, false)
	if err != nil {
		return knowledge.Outcome{}, err
	}
	return outs[0], nil
}

// Import implements knowledge.Store: every row is checked against the state
// the previous rows would leave before anything changes.
func (s *Store) Import(ctx context.Context, ws []knowledge.Write, dryRun bool) ([]knowledge.Outcome, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	type plan struct {
		it     *item
		action knowledge.Action
	}
	ws = slices.Clone(ws) // rows keyed by id may get the item's external id below
	plans := make([]plan, len(ws))
	seen := map[string]int{}
	target := map[*item]string{} // stored FAQ -> the key of the row that matched it
	for i := range ws {
		w := &ws[i]
		key, byID := knowledge.ImportKey(w.FAQ)
		if key == "" {
			return nil, knowledge.ImportRowError(i, tandem.Errorf(tandem.EINVALID, "external_id (or the id of an FAQ without one) is required"))
		}
		if j, dup := seen[key]; dup {
			return nil, knowledge.ImportRowError(i, tandem.Errorf(tandem.EINVALID, "%s duplicates row %d", key, j+1))
		}
		seen[key] = i
		if err := s.checkEmbeddings(w.FAQ, w.Embeddings); err != nil {
			return nil, knowledge.ImportRowError(i, err)
		}
		var it *item
		var ok bool
		if byID {
			if it, ok = s.items[w.FAQ.ID]; ok && w.FAQ.ExternalID == "" {
				// The row names no external id: it keeps the item's.
				w.FAQ.ExternalID = it.faq.ExternalID
			}
		} else {
			it, ok = s.byExt[w.FAQ.ExternalID]
		}
		if ok {
			// Rows are planned against the stored state, so a second row
			// for the same FAQ (by its id, then by its external id) would
			// be planned against content the first one replaces.
			if prev, again := target[it]; again {
				return nil, knowledge.ImportRowError(i, tandem.Errorf(tandem.EINVALID, "%s is FAQ %s, which the row with %s already changes: one row per FAQ", key, it.faq.ID, prev))
			}
			target[it] = key
		}
		switch {
		case !ok:
			plans[i] = plan{action: knowledge.ActionCreated}
		case knowledge.SameContent(it.faq, w.FAQ) && len(w.Embeddings) == 0:
			plans[i] = plan{it: it, action: knowledge.ActionUnchanged}
		case knowledge.SameContent(it.faq, w.FAQ) && s.hasVectors(it, w.Embeddings):
			plans[i] = plan{it: it, action: knowledge.ActionUnchanged}
		default:
			plans[i] = plan{it: it, action: knowledge.ActionUpdated}
		}
	}
	outs := make([]knowledge.Outcome, len(ws))
	for i, w := range ws {
		p := plans[i]
		outs[i] = knowledge.Outcome{Row: i, Action: p.action}
		switch {
		case dryRun && p.it != nil:
			outs[i].FAQ = knowledge.Clone(p.it.faq)
			if p.action == knowledge.ActionUpdated {
				outs[i].FAQ.Version++
			}
		case dryRun:
			// The version it would get, as the PostgreSQL store's rolled
			// back run reports (1, or the next of a deleted id's trail).
			outs[i].FAQ = knowledge.Clone(w.FAQ)
			outs[i].FAQ.Version = 1
			if revs := s.revs[w.FAQ.ID]; w.FAQ.ID != "" && len(revs) > 0 {
				outs[i].FAQ.Version = revs[len(revs)-1].FAQ.Version + 1
			}
		case p.action == knowledge.ActionCreated:
			if _, byID := knowledge.ImportKey(w.FAQ); !byID {
				w.FAQ.ID = ""
			}
			outs[i].FAQ = s.create(w)
		case p.action == knowledge.ActionUpdated:
			w.FAQ.ID = p.it.faq.ID
			w.ExpectedVersion = p.it.faq.Version
			outs[i].FAQ = s.update(p.it, w)
		default:
			outs[i].FAQ = knowledge.Clone(p.it.faq)
		}
	}
	return outs, nil
}

// hasVectors reports whether it already has vectors for every model of embs.
func (s *Store) hasVectors(it *item, embs []knowledge.Embedding) bool {
	for _, e := range embs {
		if len(it.rows[e.Model]) == 0 {
			return false
		}
	}
	return true
}

// Versions implements knowledge.Store.
func (s *Store) Versions(ctx context.Context, id string, after int64, limit int) ([]knowledge.Revision, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	revs, ok := s.revs[id]
	if !ok {
		return nil, notFound(id)
	}
	out := []knowledge.Revision{}
	for _, r := range revs {
		if r.FAQ.Version <= after {
			continue
		}
		if limit > 0 && len(out) == limit {
			break
		}
		r.FAQ = knowledge.Clone(r.FAQ)
		out = append(out, r)
	}
	return out, nil
}

// --- lexical index ---

func docTerms(f tandem.FAQ) (map[string]float64, float64) {
	terms := map[string]float64{}
	dl := 0.0
	add := func(text string, w float64) {
		for _, t := range knowledge.Tokens(text) {
			terms[t] += w
			dl += w
		}
	}
	for _, t := range knowledge.Texts(f) {
		add(t, 1)
	}
	add(strings.Join(f.Tags, " "), 1)
	add(f.Answer, answerWeight)
	return terms, dl
}

func (s *Store) index(it *item) {
	it.terms, it.dl = docTerms(it.faq)
	for t, tf := range it.terms {
		p := s.postings[t]
		if p == nil {
			p = map[*item]float64{}
			s.postings[t] = p
		}
		p[it] = tf
	}
	s.totalDL += it.dl
}

func (s *Store) unindex(it *item) {
	for t := range it.terms {
		p := s.postings[t]
		delete(p, it)
		if len(p) == 0 {
			delete(s.postings, t)
		}
	}
	s.totalDL -= it.dl
	it.terms, it.dl = nil, 0
}

// LexicalSearch implements knowledge.Store with BM25.
func (s *Store) LexicalSearch(ctx context.Context, query string, f knowledge.Filter, k int) ([]knowledge.Scored, error) {
	terms := knowledge.Tokens(query)
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := float64(len(s.items))
	if n == 0 || k <= 0 {
		return nil, nil
	}
	avgdl := s.totalDL / n
	sc, _ := s.scratch.Get().(*lexScratch)
	if sc == nil {
		sc = &lexScratch{}
	}
	if len(sc.score) < int(s.slots) {
		sc.score = make([]float64, s.slots)
		sc.owner = make([]*item, s.slots)
	}
	for i, t := range terms {
		if slices.Contains(terms[:i], t) {
			continue
		}
		p := s.postings[t]
		if len(p) == 0 {
			continue
		}
		df := float64(len(p))
		idf := math.Log(1 + (n-df+0.5)/(df+0.5))
		for it, tf := range p {
			if sc.score[it.slot] == 0 {
				sc.touched = append(sc.touched, it.slot)
				sc.owner[it.slot] = it
			}
			sc.score[it.slot] += idf * tf * (k1 + 1) / (tf + k1*(1-b+b*it.dl/avgdl))
		}
	}
	h := topK{k: k}
	match := f.Matcher()
	for _, sl := range sc.touched {
		if it := sc.owner[sl]; match(it.faq) {
			h.offer(it, sc.score[sl], -1)
		}
		sc.score[sl], sc.owner[sl] = 0, nil
	}
	sc.touched = sc.touched[:0]
	s.scratch.Put(sc)
	return h.result(), nil
}

// --- vectors ---

// RegisterModel implements knowledge.Store.
func (s *Store) RegisterModel(ctx context.Context, version string, dim int) error {
	if version == "" || dim <= 0 {
		return tandem.Errorf(tandem.EINVALID, "encoder version and a positive dimension are required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if m, ok := s.models[version]; ok {
		if m.info.Dim != dim {
			return tandem.Errorf(tandem.EINVALID, "encoder %s is configured with %d dimensions but the store holds %d-dimensional vectors for it; fix the configured dimension or use a new encoder name and reindex", version, dim, m.info.Dim)
		}
		return nil
	}
	s.models[version] = &matrix{info: knowledge.ModelInfo{Version: version, Dim: dim}}
	return nil
}

// Models implements knowledge.Store.
func (s *Store) Models(ctx context.Context) ([]knowledge.ModelInfo, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]knowledge.ModelInfo, 0, len(s.models))
	for _, m := range s.models {
		out = append(out, m.info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// ActivateModel implements knowledge.Store.
func (s *Store) ActivateModel(ctx context.Context, version string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.models[version]
	if !ok {
		return tandem.Errorf(tandem.ENOTFOUND, "encoder %s is not registered", version)
	}
	for _, it := range s.items {
		if len(it.rows[version]) == 0 {
			return tandem.Errorf(tandem.ECONFLICT, "FAQ %s has no vectors for encoder %s yet", it.faq.ID, version)
		}
	}
	for _, o := range s.models {
		o.info.Active = false
	}
	m.info.Active = true
	return nil
}

// DropModel implements knowledge.Store.
func (s *Store) DropModel(ctx context.Context, version string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.models[version]
	if !ok {
		return nil
	}
	if m.info.Active {
		return tandem.Errorf(tandem.ECONFLICT, "encoder %s is active", version)
	}
	for _, it := range s.items {
		delete(it.rows, version)
	}
	delete(s.models, version)
	return nil
}

// SetEmbedding implements knowledge.Store.
func (s *Store) SetEmbedding(ctx context.Context, id string, version int64, e knowledge.Embedding) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.items[id]
	if !ok {
		return notFound(id)
	}
	if it.faq.Version != version {
		return tandem.Errorf(tandem.ECONFLICT, "FAQ %s is at version %d, not %d", id, it.faq.Version, version)
	}
	if err := s.checkEmbeddings(it.faq, []knowledge.Embedding{e}); err != nil {
		return err
	}
	s.killRows(it, e.Model)
	s.setRows(it, e)
	return nil
}

// MissingEmbeddings implements knowledge.Store.
func (s *Store) MissingEmbeddings(ctx context.Context, model string, limit int) ([]tandem.FAQ, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []tandem.FAQ
	for _, id := range s.ids {
		if len(out) >= limit {
			break
		}
		it := s.items[id]
		if len(it.rows[model]) == 0 {
			out = append(out, knowledge.Clone(it.faq))
		}
	}
	return out, nil
}

func (s *Store) setRows(it *item, e knowledge.Embedding) {
	m := s.models[e.Model]
	rows := make([]int, len(e.Vectors))
	for i, v := range e.Vectors {
		rows[i] = len(m.owner)
		m.data = append(m.data, normalized(v)...)
		m.owner = append(m.owner, it)
		m.ord = append(m.ord, i)
	}
	it.rows[e.Model] = rows
}

func normalized(v []float32) []float32 {
	var ss float64
	for _, x := range v {
		ss += float64(x) * float64(x)
	}
	out := make([]float32, len(v))
	if ss == 0 {
		return out
	}
	inv := float32(1 / math.Sqrt(ss))
	for i, x := range v {
		out[i] = x * inv
	}
	return out
}

func (s *Store) killRows(it *item, model string) {
	m := s.models[model]
	if m == nil {
		return
	}
	for _, r := range it.rows[model] {
		m.owner[r] = nil
		m.dead++
	}
	delete(it.rows, model)
	if m.dead > 1024 && m.dead > len(m.owner)/2 {
		s.compact(model, m)
	}
}

// compact rewrites a matrix without dead rows and renumbers the owners' row
// indices.
func (s *Store) compact(model string, m *matrix) {
	dim := m.info.Dim
	data := make([]float32, 0, (len(m.owner)-m.dead)*dim)
	owner := make([]*item, 0, len(m.owner)-m.dead)
	ord := make([]int, 0, len(m.owner)-m.dead)
	for r, it := range m.owner {
		if it == nil {
			continue
		}
		if m.ord[r] == 0 {
			it.rows[model] = it.rows[model][:0]
		}
		it.rows[model] = append(it.rows[model], len(owner))
		data = append(data, m.data[r*dim:(r+1)*dim]...)
		owner = append(owner, it)
		ord = append(ord, m.ord[r])
	}
	m.data, m.owner, m.ord, m.dead = data, owner, ord, 0
}

// VectorSearch implements knowledge.Store: exact cosine over all rows, the
// best row per FAQ.
func (s *Store) VectorSearch(ctx context.Context, model string, vec []float32, f knowledge.Filter, k int) ([]knowledge.Scored, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	m, ok := s.models[model]
	if !ok {
		return nil, tandem.Errorf(tandem.ENOTFOUND, "no vectors for encoder %s", model)
	}
	if len(vec) != m.info.Dim {
		return nil, tandem.Errorf(tandem.EINVALID, "query vector has %d dimensions, encoder %s has %d", len(vec), model, m.info.Dim)
	}
	if k <= 0 || !knowledge.Searchable(vec) {
		// A zero (or non-finite) query has no direction and matches
		// nothing (pgstore: pgvector's cosine distance would be NaN).
		return nil, nil
	}
	q := normalized(vec)
	dim := m.info.Dim
	h := topK{k: k, clamp: true}
	var cur *item
	best, bestOrd := float32(-2), -1
	pass := false
	flush := func() {
		if cur != nil && pass && bestOrd >= 0 {
			h.offer(cur, float64(best), bestOrd)
		}
	}
	match := f.Matcher()
	for r, it := range m.owner {
		if it == nil {
			continue
		}
		if it != cur {
			flush()
			cur, best, bestOrd = it, -2, -1
			pass = match(it.faq)
		}
		if !pass {
			continue
		}
		row := m.data[r*dim : (r+1)*dim]
		d := dot(q, row)
		if d == 0 && allZero(row) {
			continue // a stored zero vector: no direction, never a match (as in pgstore)
		}
		if d > best {
			best, bestOrd = d, m.ord[r]
		}
	}
	flush()
	return h.result(), nil
}

func allZero(v []float32) bool {
	for _, x := range v {
		if x != 0 {
			return false
		}
	}
	return true
}

// dotGo is the portable inner product of a and b[:len(a)] (see dot).
func dotGo(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return s0 + s1 + s2 + s3
}

// topK keeps the k best (score, id) pairs in a min-heap (worst on top).
type topK struct {
	k     int
	items []scoredItem
	clamp bool // report scores as similarities clamped to [0, 1] (vector search)
}

type scoredItem struct {
	it    *item
	score float64
	ord   int
}

// worse reports whether a ranks below b: lower score, or equal score and
// greater id.
func worse(a, b *scoredItem) bool {
	if a.score != b.score {
		return a.score < b.score
	}
	return a.it.faq.ID > b.it.faq.ID
}

func (h *topK) up(j int) {
	for j > 0 {
		i := (j - 1) / 2
		if !worse(&h.items[j], &h.items[i]) {
			break
		}
		h.items[i], h.items[j] = h.items[j], h.items[i]
		j = i
	}
}

func (h *topK) down(i int) {
	n := len(h.items)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		j := l
		if r := l + 1; r < n && worse(&h.items[r], &h.items[l]) {
			j = r
		}
		if !worse(&h.items[j], &h.items[i]) {
			return
		}
		h.items[i], h.items[j] = h.items[j], h.items[i]
		i = j
	}
}

func (h *topK) offer(it *item, score float64, ord int) {
	si := scoredItem{it: it, score: score, ord: ord}
	if len(h.items) < h.k {
		if h.items == nil {
			h.items = make([]scoredItem, 0, min(h.k, 64))
		}
		h.items = append(h.items, si)
		h.up(len(h.items) - 1)
		return
	}
	if worse(&h.items[0], &si) {
		h.items[0] = si
		h.down(0)
	}
}

// result returns the kept items, best first. The FAQs are the items'
// snapshots, which the store never modifies (an update replaces the
// snapshot), so callers get a consistent view without a copy; they must not
// modify them (see knowledge.Scored).
func (h *topK) result() []knowledge.Scored {
	out := make([]knowledge.Scored, len(h.items))
	for i := len(h.items) - 1; i >= 0; i-- {
		si := h.items[0]
		last := len(h.items) - 1
		h.items[0] = h.items[last]
		h.items = h.items[:last]
		h.down(0)
		out[i] = knowledge.Scored{FAQ: si.it.snap, Score: si.score, Matched: si.ord}
		if h.clamp {
			out[i].Score, _ = knowledge.Similarity(si.score)
		}
	}
	return out
}
