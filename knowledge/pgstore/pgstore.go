// Package pgstore is the PostgreSQL + pgvector knowledge.Store (pgx/v5,
// pgvector-go). Migrations are embedded and applied by Open under an
// advisory lock. FAQs, their audit trail (kb_revisions, one JSON snapshot
// per version) and BM25 statistics are written in one transaction per
// change. Lexical search is BM25 over a tsvector column with a GIN index
// (terms tokenised in Go with knowledge.Tokens, so rankings match the
// in-memory store); vector search uses one partial HNSW index per encoder
// version on embedding::vector(dim) with cosine distance, with pgvector 0.8
// iterative scans (relaxed order, re-sorted) so filtered searches return as
// many rows as asked.
//
// Contract: a Store may be used concurrently. Optimistic concurrency is a
// conditional UPDATE on (id, version). Encoder versions are restricted to
// [A-Za-z0-9._:@/+-] because they appear as literals in partial index
// predicates.
package pgstore

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pgvector/pgvector-go"
	pgxvec "github.com/pgvector/pgvector-go/pgx"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/internal/pgmigrate"
	"github.com/tandem-chat/tandem/knowledge"
)

var _ knowledge.Store = (*Store)(nil)

//go:embed migrations/*.sql
var migrations embed.FS

// BM25 parameters; identical to knowledge/memstore.
const (
	k1           = 1.2
	bm25b        = 0.75
	answerWeight = 0.3
)

// Options tune the store. Zero values take the defaults.
type Options struct {
	MaxConns       int32 // pool size, default 8
	EfSearch       int   // hnsw.ef_search, default 100
	HNSWM          int   // HNSW m, default 16
	EfConstruction int   // HNSW ef_construction, default 64
	// MaxScanTuples bounds iterative scans (hnsw.max_scan_tuples), default 20000.
	MaxScanTuples int
}

func (o Options) defaults() Options {
	if o.MaxConns <= 0 {
		o.MaxConns = 8
	}
	if o.EfSearch <= 0 {
		o.EfSearch = 100
	}
	if o.HNSWM <= 0 {
		o.HNSWM = 16
	}
	if o.EfConstruction <= 0 {
		o.EfConstruction = 64
	}
	if o.MaxScanTuples <= 0 {
		o.MaxScanTuples = 20000
	}
	return o
}

// Store is the PostgreSQL store.
type Store struct {
	pool *pgxpool.Pool
	opts Options
	now  func() time.Time
}

// Open connects to the database at url, applies the embedded migrations
// and returns a store with its own connection pool (each connection has
// pgvector types registered and iterative HNSW scans on).
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	opts = opts.defaults()
	afterConnect := func(ctx context.Context, c *pgx.Conn) error {
		if err := pgxvec.RegisterTypes(ctx, c); err != nil {
			return fmt.Errorf("pgstore: register vector types: %w", err)
		}
		_, err := c.Exec(ctx, fmt.Sprintf("SET hnsw.ef_search = %d; SET hnsw.iterative_scan = relaxed_order; SET hnsw.max_scan_tuples = %d", opts.EfSearch, opts.MaxScanTuples))
		if err != nil {
			return fmt.Errorf("pgstore: session settings (pgvector >= 0.8 required): %w", err)
		}
		return nil
	}
	set := pgmigrate.Set{FS: migrations, Dir: "migrations", Table: "kb_schema_migrations", Lock: 7262011304}
	pool, err := pgmigrate.Open(ctx, url, set, opts.MaxConns, afterConnect)
	if err != nil {
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	return &Store{pool: pool, opts: opts, now: time.Now}, nil
}

// Pool returns the store's pool (for tests and diagnostics).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Close closes the pool.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

const faqColumns = "{p}id, coalesce(external_id, ''), {p}question, {p}phrasings, {p}answer, {p}category, {p}tags, {p}locale, {p}status, {p}intent, {p}threshold, {p}version, {p}created_at, {p}updated_at, {p}updated_by"

func scanFAQ(row pgx.Row) (tandem.FAQ, error) {
	var f tandem.FAQ
	var status string
	err := row.Scan(&f.ID, &f.ExternalID, &f.Question, &f.Phrasings, &f.Answer, &f.Category, &f.Tags, &f.Locale, &status, &f.Intent, &f.Threshold, &f.Version, &f.CreatedAt, &f.UpdatedAt, &f.UpdatedBy)
	f.Status = tandem.FAQStatus(status)
	if len(f.Phrasings) == 0 {
		f.Phrasings = nil
	}
	if len(f.Tags) == 0 {
		f.Tags = nil
	}
	f.CreatedAt, f.UpdatedAt = f.CreatedAt.UTC(), f.UpdatedAt.UTC()
	return f, err
}

func notFound(id string) error { return tandem.Errorf(tandem.ENOTFOUND, "FAQ %s not found", id) }

func (s *Store) stamp() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// where builds a filter clause over kb_faqs (alias f) appending args.
func where(fl knowledge.Filter, args []any) (string, []any) {
	var conds []string
	if locs := fl.Locales(); locs != nil {
		args = append(args, locs)
		conds = append(conds, fmt.Sprintf("f.locale = ANY($%d)", len(args)))
	}
	if fl.PublishedOnly {
		conds = append(conds, "f.status = 'published'")
	}
	if len(fl.Tags) > 0 {
		args = append(args, fl.Tags)
		conds = append(conds, fmt.Sprintf("f.tags @> $%d::text[]", len(args)))
	}
	if len(conds) == 0 {
		return "true", args
	}
	return strings.Join(conds, " AND "), args
}

// List implements knowledge.Store.
func (s *Store) List(ctx context.Context, lf knowledge.ListFilter) (knowledge.Page, error) {
	limit := lf.Limit
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 1000)
	cond, args := listWhere(lf)
	args = append(args, lf.After)
	cond += fmt.Sprintf(" AND f.id > $%d", len(args))
	args = append(args, limit+1)
	rows, err := s.pool.Query(ctx, "SELECT "+prefixed("", faqColumns)+" FROM kb_faqs f WHERE "+cond+fmt.Sprintf(" ORDER BY f.id LIMIT $%d", len(args)), args...)
	if err != nil {
		return knowledge.Page{}, fmt.Errorf("pgstore: list: %w", err)
	}
	items, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (tandem.FAQ, error) { return scanFAQ(r) })
	if err != nil {
		return knowledge.Page{}, fmt.Errorf("pgstore: list: %w", err)
	}
	page := knowledge.Page{Items: items}
	if len(items) > limit {
		page.Items = items[:limit]
		page.Next = items[limit-1].ID
	}
	if page.Items == nil {
		page.Items = []tandem.FAQ{}
	}
	return page, nil
}

// listWhere is the condition of List and Scan (without the cursor).
func listWhere(lf knowledge.ListFilter) (string, []any) {
	cond, args := where(lf.Filter, nil)
	if lf.Status != "" {
		args = append(args, string(lf.Status))
		cond += fmt.Sprintf(" AND f.status = $%d", len(args))
	}
	if lf.Category != "" {
		args = append(args, lf.Category)
		cond += fmt.Sprintf(" AND f.category = $%d", len(args))
	}
	return cond, args
}

// Scan implements knowledge.Store with one streamed query: a statement
// reads from one snapshot, so the FAQs are consistent with each other
// however long yield takes (the scan holds a pooled connection meanwhile).
func (s *Store) Scan(ctx context.Context, lf knowledge.ListFilter, yield func(tandem.FAQ) error) error {
	cond, args := listWhere(lf)
	rows, err := s.pool.Query(ctx, "SELECT "+prefixed("", faqColumns)+" FROM kb_faqs f WHERE "+cond+" ORDER BY f.id", args...)
	if err != nil {
		return fmt.Errorf("pgstore: scan: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		f, err := scanFAQ(rows)
		if err != nil {
			return fmt.Errorf("pgstore: scan: %w", err)
		}
		if err := yield(f); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("pgstore: scan: %w", err)
	}
	return nil
}

// Get implements knowledge.Store.
func (s *Store) Get(ctx context.Context, id string) (tandem.FAQ, error) {
	f, err := scanFAQ(s.pool.QueryRow(ctx, "SELECT "+prefixed("", faqColumns)+" FROM kb_faqs WHERE id = $1", id))
	if errors.Is(err, pgx.ErrNoRows) {
		return tandem.FAQ{}, notFound(id)
	}
	if err != nil {
		return tandem.FAQ{}, fmt.Errorf("pgstore: get: %w", err)
	}
	return f, nil
}

// GetByExternalID implements knowledge.Store.
func (s *Store) GetByExternalID(ctx context.Context, ext string) (tandem.FAQ, error) {
	f, err := scanFAQ(s.pool.QueryRow(ctx, "SELECT "+prefixed("", faqColumns)+" FROM kb_faqs WHERE external_id = $1", ext))
	if errors.Is(err, pgx.ErrNoRows) || ext == "" {
		return tandem.FAQ{}, tandem.Errorf(tandem.ENOTFOUND, "no FAQ with external id %q", ext)
	}
	if err != nil {
		return tandem.FAQ{}, fmt.Errorf("pgstore: get: %w", err)
	}
	return f, nil
}

// --- write transactions ---

// txw is one write transaction: it accumulates BM25 statistic deltas and
// applies them once, in term order, at commit (so concurrent writers lock
// kb_terms rows in the same order).
type txw struct {
	s      *Store
	tx     pgx.Tx
	dfs    map[string]int
	docs   int
	dl     float64
	models map[string]int // dim per model, loaded lazily
}

func (s *Store) inTx(ctx context.Context, fn func(w *txw) error) error {
	for attempt := 0; ; attempt++ {
		tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{})
		if err != nil {
			return fmt.Errorf("pgstore: begin: %w", err)
		}
		w := &txw{s: s, tx: tx, dfs: map[string]int{}}
		err = fn(w)
		if err == nil {
			err = w.flushStats(ctx)
		}
		if err == nil {
			err = tx.Commit(ctx)
		}
		if err != nil {
			_ = tx.Rollback(ctx)
			var pe *pgconn.PgError
			if errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001") && attempt < 3 {
				continue // deadlock or serialization failure: retry
			}
			var race raced
			if errors.As(err, &race) {
				if attempt < 3 {
					continue // the item exists now: the retry finds it
				}
				return race.err
			}
			return err
		}
		return nil
	}
}

// raced is an upsert's create that lost to a concurrent create of the same
// key (unique violation): inTx runs the transaction again, which then
// finds the item and updates it or leaves it unchanged.
type raced struct{ err error }

func (r raced) Error() string { return r.err.Error() }

func (w *txw) flushStats(ctx context.Context) error {
	if len(w.dfs) > 0 {
		terms := make([]string, 0, len(w.dfs))
		for t, d := range w.dfs {
			if d != 0 {
				terms = append(terms, t)
			}
		}
		sort.Strings(terms)
		deltas := make([]int32, len(terms))
		for i, t := range terms {
			deltas[i] = int32(w.dfs[t])
		}
		if _, err := w.tx.Exec(ctx, `INSERT INTO kb_terms (term, df) SELECT t, d FROM unnest($1::text[], $2::int[]) AS u(t, d) ORDER BY t
			ON CONFLICT (term) DO UPDATE SET df = kb_terms.df + excluded.df`, terms, deltas); err != nil {
			return fmt.Errorf("pgstore: term statistics: %w", err)
		}
		if _, err := w.tx.Exec(ctx, "DELETE FROM kb_terms WHERE term = ANY($1) AND df <= 0", terms); err != nil {
			return fmt.Errorf("pgstore: term statistics: %w", err)
		}
	}
	if w.docs != 0 || w.dl != 0 {
		if _, err := w.tx.Exec(ctx, "UPDATE kb_stats SET docs = docs + $1, total_dl = greatest(total_dl + $2, 0)", w.docs, w.dl); err != nil {
			return fmt.Errorf("pgstore: statistics: %w", err)
		}
	}
	return nil
}

// lexDoc is the lexical form of an FAQ: a tsvector literal, its weighted
// length and its distinct terms.
type lexDoc struct {
	tsv   string
	dl    float64
	terms []string
}

func lexical(f tandem.FAQ) lexDoc {
	type occ struct {
		pos    []int
		weight []byte
	}
	lex := map[string]*occ{}
	pos := 0
	dl := 0.0
	add := func(text string, wt byte, w float64) {
		for _, t := range knowledge.Tokens(text) {
			pos++
			o := lex[t]
			if o == nil {
				o = &occ{}
				lex[t] = o
			}
			if len(o.pos) < 256 { // tsvector keeps at most 256 positions per lexeme
				o.pos = append(o.pos, min(pos, 16383))
				o.weight = append(o.weight, wt)
			}
			dl += w
		}
	}
	for _, t := range knowledge.Texts(f) {
		add(t, 'A', 1)
	}
	add(strings.Join(f.Tags, " "), 'A', 1)
	add(f.Answer, 'D', answerWeight)
	terms := make([]string, 0, len(lex))
	for t := range lex {
		terms = append(terms, t)
	}
	sort.Strings(terms)
	var b strings.Builder
	for i, t := range terms {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(quoteLexeme(t))
		b.WriteByte(':')
		o := lex[t]
		// Positions must be unique and increasing in a tsvector literal;
		// capped positions may repeat, so deduplicate.
		last := -1
		first := true
		for j, p := range o.pos {
			if p == last {
				continue
			}
			last = p
			if !first {
				b.WriteByte(',')
			}
			first = false
			b.WriteString(strconv.Itoa(p))
			if o.weight[j] != 'D' {
				b.WriteByte(o.weight[j])
			}
		}
	}
	return lexDoc{tsv: b.String(), dl: dl, terms: terms}
}

func quoteLexeme(t string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(t) + "'"
}

func (w *txw) account(d lexDoc, sign int) {
	for _, t := range d.terms {
		w.dfs[t] += sign
	}
	w.docs += sign
	w.dl += float64(sign) * d.dl
}

func (w *txw) dim(ctx context.Context, model string) (int, error) {
	if w.models == nil {
		w.models = map[string]int{}
		rows, err := w.tx.Query(ctx, "SELECT version, dim FROM kb_models")
		if err != nil {
			return 0, fmt.Errorf("pgstore: models: %w", err)
		}
		for rows.Next() {
			var v string
			var d int
			if err := rows.Scan(&v, &d); err != nil {
				rows.Close()
				return 0, err
			}
			w.models[v] = d
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return 0, err
		}
	}
	d, ok := w.models[model]
	if !ok {
		return 0, tandem.WrapError(tandem.EINVALID, knowledge.ErrUnknownEncoder, "encoder %q is not registered", model)
	}
	return d, nil
}

func (w *txw) checkEmbeddings(ctx context.Context, f tandem.FAQ, embs []knowledge.Embedding) error {
	n := 1 + len(f.Phrasings)
	for _, e := range embs {
		d, err := w.dim(ctx, e.Model)
		if err != nil {
			return err
		}
		if len(e.Vectors) != n {
			return tandem.Errorf(tandem.EINVALID, "%d vectors for %d phrasings", len(e.Vectors), n)
		}
		for _, v := range e.Vectors {
			if len(v) != d {
				return tandem.Errorf(tandem.EINVALID, "a %d-dimensional vector for encoder %s, which has %d dimensions", len(v), e.Model, d)
			}
			if math.IsNaN(knowledge.Norm(v)) {
				return tandem.Errorf(tandem.EINVALID, "a vector for encoder %s has a NaN or infinite component", e.Model)
			}
		}
	}
	return nil
}

func (w *txw) insertVectors(ctx context.Context, f tandem.FAQ, e knowledge.Embedding) error {
	ords := make([]int32, len(e.Vectors))
	vecs := make([]pgvector.Vector, len(e.Vectors))
	for i, v := range e.Vectors {
		ords[i] = int32(i)
		vecs[i] = pgvector.NewVector(v)
	}
	tags := f.Tags
	if tags == nil {
		tags = []string{}
	}
	_, err := w.tx.Exec(ctx, `INSERT INTO kb_embeddings (model, faq_id, ord, locale, published, tags, embedding)
		SELECT $1, $2, o, $3, $4, $5, v FROM unnest($6::int[], $7::vector[]) AS u(o, v)`,
		e.Model, f.ID, f.Locale, f.Status == tandem.FAQPublished, tags, ords, vecs)
	if err != nil {
		return fmt.Errorf("pgstore: insert vectors: %w", err)
	}
	return nil
}

func (w *txw) revision(ctx context.Context, f tandem.FAQ, op knowledge.Op, actor string, at time.Time) error {
	snap, err := json.Marshal(f)
	if err != nil {
		return err
	}
	if _, err := w.tx.Exec(ctx, "INSERT INTO kb_revisions (faq_id, version, op, actor, at, snapshot) VALUES ($1, $2, $3, $4, $5, $6)",
		f.ID, f.Version, string(op), actor, at, snap); err != nil {
		return fmt.Errorf("pgstore: audit: %w", err)
	}
	return nil
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nonNil(xs []string) []string {
	if xs == nil {
		return []string{}
	}
	return xs
}

func uniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

func (w *txw) create(ctx context.Context, wr knowledge.Write) (tandem.FAQ, error) {
	if err := w.checkEmbeddings(ctx, wr.FAQ, wr.Embeddings); err != nil {
		return tandem.FAQ{}, err
	}
	f := knowledge.Clone(wr.FAQ)
	f.Version = 1
	if f.ID == "" {
		f.ID = knowledge.NewID()
	} else {
		// The id may have belonged to a deleted FAQ (restored from an
		// export): its audit trail survived, so continue its versions
		// ((faq_id, version) is the trail's key).
		if err := w.tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) + 1 FROM kb_revisions WHERE faq_id = $1", f.ID).Scan(&f.Version); err != nil {
			return tandem.FAQ{}, fmt.Errorf("pgstore: audit: %w", err)
		}
	}
	now := w.s.stamp()
	f.CreatedAt, f.UpdatedAt, f.UpdatedBy = now, now, wr.Actor
	d := lexical(f)
	_, err := w.tx.Exec(ctx, `INSERT INTO kb_faqs (id, external_id, question, phrasings, answer, category, tags, locale, status, intent, threshold, version, created_at, updated_at, updated_by, tsv, dl)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16::tsvector, $17)`,
		f.ID, nullable(f.ExternalID), f.Question, nonNil(f.Phrasings), f.Answer, f.Category, nonNil(f.Tags), f.Locale, string(f.Status), f.Intent, f.Threshold,
		f.Version, f.CreatedAt, f.UpdatedAt, f.UpdatedBy, d.tsv, d.dl)
	if uniqueViolation(err) {
		// Name what clashed: a generated id is the rejected create's own,
		// which no one can look up.
		var pe *pgconn.PgError
		if errors.As(err, &pe) && strings.Contains(pe.ConstraintName, "pkey") {
			return tandem.FAQ{}, tandem.Errorf(tandem.ECONFLICT, "FAQ %s already exists", f.ID)
		}
		return tandem.FAQ{}, tandem.Errorf(tandem.ECONFLICT, "an FAQ with external id %q already exists", f.ExternalID)
	}
	if err != nil {
		return tandem.FAQ{}, fmt.Errorf("pgstore: insert: %w", err)
	}
	w.account(d, 1)
	for _, e := range wr.Embeddings {
		if err := w.insertVectors(ctx, f, e); err != nil {
			return tandem.FAQ{}, err
		}
	}
	return f, w.revision(ctx, f, knowledge.OpCreate, wr.Actor, now)
}

// update writes wr over old (locked by the caller with FOR UPDATE).
func (w *txw) update(ctx context.Context, old tandem.FAQ, wr knowledge.Write) (tandem.FAQ, error) {
	if err := w.checkEmbeddings(ctx, wr.FAQ, wr.Embeddings); err != nil {
		return tandem.FAQ{}, err
	}
	f := knowledge.Clone(wr.FAQ)
	now := w.s.stamp()
	f.ID, f.CreatedAt = old.ID, old.CreatedAt
	f.Version, f.UpdatedAt, f.UpdatedBy = old.Version+1, now, wr.Actor
	d := lexical(f)
	tag, err := w.tx.Exec(ctx, `UPDATE kb_faqs SET external_id = $2, question = $3, phrasings = $4, answer = $5, category = $6, tags = $7, locale = $8, status = $9,
		intent = $10, threshold = $11, version = $12, updated_at = $13, updated_by = $14, tsv = $15::tsvector, dl = $16 WHERE id = $1 AND version = $17`,
		f.ID, nullable(f.ExternalID), f.Question, nonNil(f.Phrasings), f.Answer, f.Category, nonNil(f.Tags), f.Locale, string(f.Status), f.Intent, f.Threshold,
		f.Version, f.UpdatedAt, f.UpdatedBy, d.tsv, d.dl, old.Version)
	if uniqueViolation(err) {
		return tandem.FAQ{}, tandem.Errorf(tandem.ECONFLICT, "an FAQ with external id %q already exists", f.ExternalID)
	}
	if err != nil {
		return tandem.FAQ{}, fmt.Errorf("pgstore: update: %w", err)
	}
	if tag.RowsAffected() != 1 {
		return tandem.FAQ{}, tandem.Errorf(tandem.ECONFLICT, "FAQ %s changed concurrently", f.ID)
	}
	w.account(lexical(old), -1)
	w.account(d, 1)
	if !knowledge.SameText(old, f) || len(wr.Embeddings) > 0 {
		if _, err := w.tx.Exec(ctx, "DELETE FROM kb_embeddings WHERE faq_id = $1", f.ID); err != nil {
			return tandem.FAQ{}, fmt.Errorf("pgstore: drop vectors: %w", err)
		}
		for _, e := range wr.Embeddings {
			if err := w.insertVectors(ctx, f, e); err != nil {
				return tandem.FAQ{}, err
			}
		}
	} else if old.Locale != f.Locale || old.Status != f.Status || !sameStrings(old.Tags, f.Tags) {
		if _, err := w.tx.Exec(ctx, "UPDATE kb_embeddings SET locale = $2, published = $3, tags = $4 WHERE faq_id = $1",
			f.ID, f.Locale, f.Status == tandem.FAQPublished, nonNil(f.Tags)); err != nil {
			return tandem.FAQ{}, fmt.Errorf("pgstore: update vector filters: %w", err)
		}
	}
	return f, w.revision(ctx, f, knowledge.OpUpdate, wr.Actor, now)
}

func sameStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func (w *txw) lock(ctx context.Context, byExt bool, key string) (tandem.FAQ, bool, error) {
	col := "id"
	if byExt {
		col = "external_id"
	}
	f, err := scanFAQ(w.tx.QueryRow(ctx, "SELECT "+prefixed("", faqColumns)+" FROM kb_faqs WHERE "+col+" = $1 FOR UPDATE", key))
	if errors.Is(err, pgx.ErrNoRows) {
		return tandem.FAQ{}, false, nil
	}
	if err != nil {
		return tandem.FAQ{}, false, fmt.Errorf("pgstore: lock: %w", err)
	}
	return f, true, nil
}

// Create implements knowledge.Store.
func (s *Store) Create(ctx context.Context, wr knowledge.Write) (tandem.FAQ, error) {
	var out tandem.FAQ
	err := s.inTx(ctx, func(w *txw) error {
		var err error
		out, err = w.create(ctx, wr)
		return err
	})
	return out, err
}

func conflict(id string, actual, expected int64) error {
	return tandem.Errorf(tandem.ECONFLICT, "FAQ %s is at version %d, not %d: reload it and apply your change again", id, actual, expected)
}

// Update implements knowledge.Store.
func (s *Store) Update(ctx context.Context, wr knowledge.Write) (tandem.FAQ, error) {
	var out tandem.FAQ
	err := s.inTx(ctx, func(w *txw) error {
		old, ok, err := w.lock(ctx, false, wr.FAQ.ID)
		if err != nil {
			return err
		}
		if !ok {
			return notFound(wr.FAQ.ID)
		}
		if old.Version != wr.ExpectedVersion {
			return conflict(old.ID, old.Version, wr.ExpectedVersion)
		}
		out, err = w.update(ctx, old, wr)
		return err
	})
	return out, err
}

// Delete implements knowledge.Store.
func (s *Store) Delete(ctx context.Context, id string, expected int64, actor string) error {
	return s.inTx(ctx, func(w *txw) error {
		old, ok, err := w.lock(ctx, false, id)
		if err != nil {
			return err
		}
		if !ok {
			return notFound(id)
		}
		if expected != 0 && old.Version != expected {
			return conflict(id, old.Version, expected)
		}
		if _, err := w.tx.Exec(ctx, "DELETE FROM kb_faqs WHERE id = $1", id); err != nil {
			return fmt.Errorf("pgstore: delete: %w", err)
		}
		w.account(lexical(old), -1)
		now := s.stamp()
		last := old
		last.Version++
		last.UpdatedAt, last.UpdatedBy = now, actor
		return w.revision(ctx, last, knowledge.OpDelete, actor, now)
	})
}

// UpsertByExternalID implements knowledge.Store.
func (s *Store) UpsertByExternalID(ctx context.Context, wr knowledge.Write) (knowledge.Outcome, error) {
	outs, err := s.Import(ctx, []knowledge.Write{wr}, false)
	if err != nil {
		return knowledge.Outcome{}, err
	}
	return outs[0], nil
}

// errDryRun rolls back a dry-run transaction.
var errDryRun = errors.New("dry run")

// Import implements knowledge.Store in one transaction; a dry run executes
// the same statements and rolls back.
func (s *Store) Import(ctx context.Context, ws []knowledge.Write, dryRun bool) ([]knowledge.Outcome, error) {
	outs := make([]knowledge.Outcome, len(ws))
	err := s.inTx(ctx, func(w *txw) error {
		seen := map[string]int{}
		target := map[string]string{} // stored FAQ id -> the key of the row that matched it
		for i, wr := range ws {
			rowErr := func(err error) error { return knowledge.ImportRowError(i, err) }
			key, byID := knowledge.ImportKey(wr.FAQ)
			if key == "" {
				return rowErr(tandem.Errorf(tandem.EINVALID, "external_id (or the id of an FAQ without one) is required"))
			}
			if j, dup := seen[key]; dup {
				return rowErr(tandem.Errorf(tandem.EINVALID, "%s duplicates row %d", key, j+1))
			}
			seen[key] = i
			var old tandem.FAQ
			var ok bool
			var err error
			if byID {
				old, ok, err = w.lock(ctx, false, wr.FAQ.ID)
				if ok && wr.FAQ.ExternalID == "" {
					wr.FAQ.ExternalID = old.ExternalID // the row names none: keep the item's
				}
			} else {
				old, ok, err = w.lock(ctx, true, wr.FAQ.ExternalID)
			}
			if err != nil {
				return rowErr(err)
			}
			if ok {
				// As in memstore: one row per FAQ, whichever key names it.
				if prev, again := target[old.ID]; again {
					return rowErr(tandem.Errorf(tandem.EINVALID, "%s is FAQ %s, which the row with %s already changes: one row per FAQ", key, old.ID, prev))
				}
				target[old.ID] = key
			}
			outs[i].Row = i
			switch {
			case !ok:
				if !byID {
					wr.FAQ.ID = ""
				}
				f, err := w.create(ctx, wr)
				if tandem.ErrorCode(err) == tandem.ECONFLICT {
					// Absent when looked up, so created meanwhile by
					// another transaction: an upsert, not a conflict.
					return raced{rowErr(err)}
				}
				if err != nil {
					return rowErr(err)
				}
				outs[i].Action, outs[i].FAQ = knowledge.ActionCreated, f
			case knowledge.SameContent(old, wr.FAQ):
				if err := w.checkEmbeddings(ctx, wr.FAQ, wr.Embeddings); err != nil {
					return rowErr(err)
				}
				has, err := w.hasVectors(ctx, old.ID, wr.Embeddings)
				if err != nil {
					return rowErr(err)
				}
				if has {
					outs[i].Action, outs[i].FAQ = knowledge.ActionUnchanged, old
					continue
				}
				fallthrough
			default:
				wr.FAQ.ID = old.ID
				f, err := w.update(ctx, old, wr)
				if err != nil {
					return rowErr(err)
				}
				outs[i].Action, outs[i].FAQ = knowledge.ActionUpdated, f
			}
		}
		if dryRun {
			return errDryRun
		}
		return nil
	})
	if errors.Is(err, errDryRun) {
		for i := range outs {
			if _, byID := knowledge.ImportKey(ws[i].FAQ); outs[i].Action == knowledge.ActionCreated && !byID {
				outs[i].FAQ.ID = "" // not assigned: nothing was stored
			}
		}
		return outs, nil
	}
	if err != nil {
		return nil, err
	}
	return outs, nil
}

func (w *txw) hasVectors(ctx context.Context, id string, embs []knowledge.Embedding) (bool, error) {
	for _, e := range embs {
		var ok bool
		if err := w.tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM kb_embeddings WHERE model = $1 AND faq_id = $2)", e.Model, id).Scan(&ok); err != nil {
			return false, fmt.Errorf("pgstore: vectors: %w", err)
		}
		if !ok {
			return false, nil
		}
	}
	return true, nil
}

// Versions implements knowledge.Store.
func (s *Store) Versions(ctx context.Context, id string, after int64, limit int) ([]knowledge.Revision, error) {
	var lim *int // NULL: LIMIT ALL
	if limit > 0 {
		lim = &limit
	}
	rows, err := s.pool.Query(ctx, "SELECT op, actor, at, snapshot FROM kb_revisions WHERE faq_id = $1 AND version > $2 ORDER BY version LIMIT $3", id, after, lim)
	if err != nil {
		return nil, fmt.Errorf("pgstore: versions: %w", err)
	}
	revs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (knowledge.Revision, error) {
		var rev knowledge.Revision
		var op string
		var snap []byte
		if err := r.Scan(&op, &rev.Actor, &rev.At, &snap); err != nil {
			return rev, err
		}
		rev.Op = knowledge.Op(op)
		rev.At = rev.At.UTC()
		return rev, json.Unmarshal(snap, &rev.FAQ)
	})
	if err != nil {
		return nil, fmt.Errorf("pgstore: versions: %w", err)
	}
	if len(revs) == 0 {
		// Past the last revision, or no FAQ at all.
		var exists bool
		if err := s.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM kb_revisions WHERE faq_id = $1)", id).Scan(&exists); err != nil {
			return nil, fmt.Errorf("pgstore: versions: %w", err)
		}
		if !exists {
			return nil, notFound(id)
		}
		return []knowledge.Revision{}, nil
	}
	return revs, nil
}

// --- search ---

// LexicalSearch implements knowledge.Store: BM25 over the tsvector column.
// Candidates come from the GIN index: documents containing a query term
// that occurs in at most 10% of the FAQs or in at most selectiveFloor FAQs
// (or, if the query has none, its rarest term), so very common words never
// make the scan cover most of a large table; candidates are then scored with every query term. A document that
// matches only very common words is thus not ranked — the price of bounded
// latency (the in-memory store scores every document).
func (s *Store) LexicalSearch(ctx context.Context, query string, fl knowledge.Filter, k int) ([]knowledge.Scored, error) {
	terms := uniq(knowledge.Tokens(query))
	if len(terms) == 0 || k <= 0 {
		return nil, nil
	}
	var docs int64
	var total float64
	if err := s.pool.QueryRow(ctx, "SELECT docs, total_dl FROM kb_stats").Scan(&docs, &total); err != nil {
		return nil, fmt.Errorf("pgstore: statistics: %w", err)
	}
	if docs == 0 {
		return nil, nil
	}
	dfs := map[string]int{}
	rows, err := s.pool.Query(ctx, "SELECT term, df FROM kb_terms WHERE term = ANY($1)", terms)
	if err != nil {
		return nil, fmt.Errorf("pgstore: term statistics: %w", err)
	}
	for rows.Next() {
		var t string
		var df int
		if err := rows.Scan(&t, &df); err != nil {
			rows.Close()
			return nil, err
		}
		dfs[t] = df
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pgstore: term statistics: %w", err)
	}
	n := float64(docs)
	var qterms []string
	var idfs []float64
	var selective []string
	for _, t := range terms {
		df := float64(dfs[t])
		if df == 0 {
			continue
		}
		qterms = append(qterms, t)
		idfs = append(idfs, math.Log(1+(n-df+0.5)/(df+0.5)))
		if df <= max(0.1*n, selectiveFloor) {
			selective = append(selective, t)
		}
	}
	if len(qterms) == 0 {
		return nil, nil
	}
	if len(selective) == 0 {
		// Only very common terms: candidates are documents with the rarest
		// of them.
		rarest := 0
		for i, t := range qterms {
			if dfs[t] < dfs[qterms[rarest]] {
				rarest = i
			}
		}
		selective = []string{qterms[rarest]}
	}
	parts := make([]string, len(selective))
	for i, t := range selective {
		parts[i] = quoteLexeme(t)
	}
	avgdl := total / n
	if avgdl <= 0 {
		avgdl = 1
	}
	// Every number is cast to float8 in the SQL: an untyped parameter in
	// "$5 + 1" is inferred as an integer, and k1 = 1.2, b = 0.75 were
	// bound as 1 and 0 (document length did not count).
	args := []any{qterms, idfs, strings.Join(parts, " | "), avgdl, k1, bm25b, answerWeight}
	cond, args := where(fl, args)
	args = append(args, k)
	sql := `WITH q AS (SELECT * FROM unnest($1::text[], $2::float8[]) AS q(term, idf)),
cand AS (SELECT f.id, f.tsv, f.dl FROM kb_faqs f WHERE f.tsv @@ $3::tsquery AND ` + cond + `),
scored AS (
  SELECT c.id, sum(q.idf * t.tf * ($5::float8 + 1) / (t.tf + $5::float8 * (1 - $6::float8 + $6::float8 * c.dl / $4::float8))) AS score
  FROM cand c
  CROSS JOIN LATERAL (SELECT u.lexeme, (SELECT sum(CASE WHEN w = 'D' THEN $7::float8 ELSE 1 END) FROM unnest(u.weights) AS w) AS tf
                      FROM unnest(c.tsv) AS u WHERE u.lexeme = ANY($1)) t
  JOIN q ON q.term = t.lexeme
  GROUP BY c.id
  ORDER BY score DESC, c.id
  LIMIT $` + strconv.Itoa(len(args)) + `)
SELECT ` + prefixed("f.", faqColumns) + `, s.score FROM scored s JOIN kb_faqs f ON f.id = s.id ORDER BY s.score DESC, f.id`
	rows, err = s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("pgstore: lexical search: %w", err)
	}
	return collectScored(rows)
}

// selectiveFloor: a term in at most this many FAQs always selects
// candidates. Without it, in a knowledge base of under 10 FAQs every term
// was "common" and only the documents with the rarest query term were
// ranked; scanning this many documents per term is cheap at any size.
const selectiveFloor = 100

// prefixed qualifies faqColumns with a table alias.
func prefixed(p, cols string) string {
	return strings.ReplaceAll(strings.ReplaceAll(cols, "coalesce(external_id", "coalesce("+p+"external_id"), "{p}", p)
}

func collectScored(rows pgx.Rows) ([]knowledge.Scored, error) {
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (knowledge.Scored, error) {
		var sc knowledge.Scored
		var f tandem.FAQ
		var status string
		err := r.Scan(&f.ID, &f.ExternalID, &f.Question, &f.Phrasings, &f.Answer, &f.Category, &f.Tags, &f.Locale, &status, &f.Intent, &f.Threshold,
			&f.Version, &f.CreatedAt, &f.UpdatedAt, &f.UpdatedBy, &sc.Score)
		f.Status = tandem.FAQStatus(status)
		if len(f.Phrasings) == 0 {
			f.Phrasings = nil
		}
		if len(f.Tags) == 0 {
			f.Tags = nil
		}
		f.CreatedAt, f.UpdatedAt = f.CreatedAt.UTC(), f.UpdatedAt.UTC()
		sc.FAQ, sc.Matched = &f, -1
		return sc, err
	})
	if err != nil {
		return nil, fmt.Errorf("pgstore: search: %w", err)
	}
	return out, nil
}

func uniq(xs []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

var versionRE = regexp.MustCompile(`^[A-Za-z0-9._:@/+-]{1,200}$`)

func indexName(version string) string {
	h := sha256.Sum256([]byte(version))
	return "kb_emb_hnsw_" + hex.EncodeToString(h[:6])
}

// MaxIndexedDim is the largest dimension pgvector's HNSW indexes accept for
// the vector type; larger encoders are searched exactly.
const MaxIndexedDim = 2000

// RegisterModel implements knowledge.Store and creates the version's HNSW
// index.
func (s *Store) RegisterModel(ctx context.Context, version string, dim int) error {
	if !versionRE.MatchString(version) || dim <= 0 {
		return tandem.Errorf(tandem.EINVALID, "encoder version %q must match %s and the dimension must be positive", version, versionRE)
	}
	var have int
	err := s.pool.QueryRow(ctx, "INSERT INTO kb_models (version, dim) VALUES ($1, $2) ON CONFLICT (version) DO UPDATE SET version = excluded.version RETURNING dim", version, dim).Scan(&have)
	if err != nil {
		return fmt.Errorf("pgstore: register model: %w", err)
	}
	if have != dim {
		return tandem.Errorf(tandem.EINVALID, "encoder %s is configured with %d dimensions but the store holds %d-dimensional vectors for it; fix the configured dimension or use a new encoder name and reindex", version, dim, have)
	}
	if dim > MaxIndexedDim {
		return nil
	}
	// CREATE INDEX IF NOT EXISTS racing itself (nodes starting at once)
	// fails one of them with a duplicate pg_class key: serialise it.
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", indexLock); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, fmt.Sprintf("CREATE INDEX IF NOT EXISTS %s ON kb_embeddings USING hnsw ((embedding::vector(%d)) vector_cosine_ops) WITH (m = %d, ef_construction = %d) WHERE model = '%s'",
			indexName(version), dim, s.opts.HNSWM, s.opts.EfConstruction, version))
		return err
	})
	if err != nil {
		return fmt.Errorf("pgstore: create HNSW index for %s: %w", version, err)
	}
	return nil
}

// indexLock is the advisory lock key under which HNSW indexes are created
// (the migrations use 7262011304).
const indexLock = 7262011305

// Models implements knowledge.Store.
func (s *Store) Models(ctx context.Context) ([]knowledge.ModelInfo, error) {
	rows, err := s.pool.Query(ctx, "SELECT version, dim, active FROM kb_models ORDER BY version")
	if err != nil {
		return nil, fmt.Errorf("pgstore: models: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (knowledge.ModelInfo, error) {
		var m knowledge.ModelInfo
		return m, r.Scan(&m.Version, &m.Dim, &m.Active)
	})
	if err != nil {
		return nil, fmt.Errorf("pgstore: models: %w", err)
	}
	return out, nil
}

// ActivateModel implements knowledge.Store.
func (s *Store) ActivateModel(ctx context.Context, version string) error {
	return s.inTx(ctx, func(w *txw) error {
		var exists bool
		if err := w.tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM kb_models WHERE version = $1)", version).Scan(&exists); err != nil {
			return fmt.Errorf("pgstore: activate: %w", err)
		}
		if !exists {
			return tandem.Errorf(tandem.ENOTFOUND, "encoder %s is not registered", version)
		}
		// Lock the FAQ table against writes for the check-and-switch.
		if _, err := w.tx.Exec(ctx, "LOCK TABLE kb_faqs IN SHARE MODE"); err != nil {
			return fmt.Errorf("pgstore: activate: %w", err)
		}
		var missing string
		err := w.tx.QueryRow(ctx, "SELECT f.id FROM kb_faqs f WHERE NOT EXISTS (SELECT 1 FROM kb_embeddings e WHERE e.model = $1 AND e.faq_id = f.id) LIMIT 1", version).Scan(&missing)
		if err == nil {
			return tandem.Errorf(tandem.ECONFLICT, "FAQ %s has no vectors for encoder %s yet", missing, version)
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("pgstore: activate: %w", err)
		}
		if _, err := w.tx.Exec(ctx, "UPDATE kb_models SET active = (version = $1)", version); err != nil {
			return fmt.Errorf("pgstore: activate: %w", err)
		}
		return nil
	})
}

// DropModel implements knowledge.Store.
func (s *Store) DropModel(ctx context.Context, version string) error {
	var active bool
	err := s.pool.QueryRow(ctx, "SELECT active FROM kb_models WHERE version = $1", version).Scan(&active)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("pgstore: drop model: %w", err)
	}
	if active {
		return tandem.Errorf(tandem.ECONFLICT, "encoder %s is active", version)
	}
	if _, err := s.pool.Exec(ctx, "DROP INDEX IF EXISTS "+indexName(version)); err != nil {
		return fmt.Errorf("pgstore: drop index: %w", err)
	}
	if _, err := s.pool.Exec(ctx, "DELETE FROM kb_models WHERE version = $1 AND NOT active", version); err != nil {
		return fmt.Errorf("pgstore: drop model: %w", err)
	}
	return nil
}

// SetEmbedding implements knowledge.Store.
func (s *Store) SetEmbedding(ctx context.Context, id string, version int64, e knowledge.Embedding) error {
	return s.inTx(ctx, func(w *txw) error {
		f, ok, err := w.lock(ctx, false, id)
		if err != nil {
			return err
		}
		if !ok {
			return notFound(id)
		}
		if f.Version != version {
			return conflict(id, f.Version, version)
		}
		if err := w.checkEmbeddings(ctx, f, []knowledge.Embedding{e}); err != nil {
			return err
		}
		if _, err := w.tx.Exec(ctx, "DELETE FROM kb_embeddings WHERE model = $1 AND faq_id = $2", e.Model, id); err != nil {
			return fmt.Errorf("pgstore: replace vectors: %w", err)
		}
		return w.insertVectors(ctx, f, e)
	})
}

// MissingEmbeddings implements knowledge.Store.
func (s *Store) MissingEmbeddings(ctx context.Context, model string, limit int) ([]tandem.FAQ, error) {
	rows, err := s.pool.Query(ctx, "SELECT "+prefixed("f.", faqColumns)+" FROM kb_faqs f WHERE NOT EXISTS (SELECT 1 FROM kb_embeddings e WHERE e.model = $1 AND e.faq_id = f.id) ORDER BY f.id LIMIT $2", model, limit)
	if err != nil {
		return nil, fmt.Errorf("pgstore: missing vectors: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (tandem.FAQ, error) { return scanFAQ(r) })
	if err != nil {
		return nil, fmt.Errorf("pgstore: missing vectors: %w", err)
	}
	return out, nil
}

// VectorSQL returns the nearest-phrasing query VectorSearch runs for a
// model of dimension dim (exported for the EXPLAIN test and diagnostics).
// $1 is the query vector, $2 the row limit; filters add $3...
func VectorSQL(model string, dim int, fl knowledge.Filter) (string, []string) {
	var conds []string
	var params []string
	conds = append(conds, "e.model = '"+model+"'")
	if fl.Locales() != nil { // a blank locale is no filter, as in where()
		params = append(params, "locale")
		conds = append(conds, fmt.Sprintf("e.locale = ANY($%d)", 2+len(params)))
	}
	if fl.PublishedOnly {
		conds = append(conds, "e.published")
	}
	if len(fl.Tags) > 0 {
		params = append(params, "tags")
		conds = append(conds, fmt.Sprintf("e.tags @> $%d::text[]", 2+len(params)))
	}
	dist := fmt.Sprintf("(e.embedding::vector(%d) <=> $1::vector(%d))", dim, dim)
	return `WITH nn AS MATERIALIZED (
  SELECT e.faq_id, e.ord, ` + dist + ` AS d FROM kb_embeddings e
  WHERE ` + strings.Join(conds, " AND ") + `
  ORDER BY ` + dist + ` LIMIT $2)
SELECT faq_id, ord, d FROM nn ORDER BY d`, params
}

// VectorSearch implements knowledge.Store.
func (s *Store) VectorSearch(ctx context.Context, model string, vec []float32, fl knowledge.Filter, k int) ([]knowledge.Scored, error) {
	if !versionRE.MatchString(model) {
		return nil, tandem.Errorf(tandem.EINVALID, "bad encoder version %q", model)
	}
	var dim int
	err := s.pool.QueryRow(ctx, "SELECT dim FROM kb_models WHERE version = $1", model).Scan(&dim)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, tandem.Errorf(tandem.ENOTFOUND, "no vectors for encoder %s", model)
	}
	if err != nil {
		return nil, fmt.Errorf("pgstore: vector search: %w", err)
	}
	if len(vec) != dim {
		return nil, tandem.Errorf(tandem.EINVALID, "query vector has %d dimensions, encoder %s has %d", len(vec), model, dim)
	}
	if k <= 0 || !knowledge.Searchable(vec) {
		// A zero (or non-finite) query has no direction: pgvector's cosine
		// distance to it is NaN. It finds nothing, as in memstore.
		return nil, nil
	}
	sql, params := VectorSQL(model, dim, fl)
	type best struct {
		ord int
		sim float64
	}
	var order []string
	var found map[string]best
	for limit := max(4*k, 40); ; limit *= 4 {
		args := []any{pgvector.NewVector(vec), limit}
		for _, p := range params {
			if p == "locale" {
				args = append(args, fl.Locales())
			} else {
				args = append(args, fl.Tags)
			}
		}
		rows, err := s.pool.Query(ctx, sql, args...)
		if err != nil {
			return nil, fmt.Errorf("pgstore: vector search: %w", err)
		}
		order, found = order[:0], map[string]best{}
		nrows := 0
		for rows.Next() {
			var id string
			var ord int
			var d float64
			if err := rows.Scan(&id, &ord, &d); err != nil {
				rows.Close()
				return nil, fmt.Errorf("pgstore: vector search: %w", err)
			}
			nrows++
			if math.IsNaN(d) || math.IsInf(d, 0) {
				continue // a stored zero vector: no direction, never a match
			}
			if _, ok := found[id]; !ok {
				order = append(order, id)
				found[id] = best{ord: ord, sim: 1 - d}
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("pgstore: vector search: %w", err)
		}
		if len(order) >= k || nrows < limit || limit >= 4000 {
			break
		}
	}
	if len(order) > k {
		order = order[:k]
	}
	if len(order) == 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, "SELECT "+prefixed("", faqColumns)+" FROM kb_faqs WHERE id = ANY($1)", order)
	if err != nil {
		return nil, fmt.Errorf("pgstore: vector search: %w", err)
	}
	faqs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (tandem.FAQ, error) { return scanFAQ(r) })
	if err != nil {
		return nil, fmt.Errorf("pgstore: vector search: %w", err)
	}
	byID := map[string]tandem.FAQ{}
	for _, f := range faqs {
		byID[f.ID] = f
	}
	out := make([]knowledge.Scored, 0, len(order))
	for _, id := range order {
		f, ok := byID[id]
		if !ok || !fl.Match(f) {
			continue // deleted, or changed out of the filter (e.g. unpublished), between the two queries
		}
		b := found[id]
		out = append(out, knowledge.Scored{FAQ: &f, Score: b.sim, Matched: b.ord})
	}
	// Rank by the raw cosine, then report it clamped to [0, 1].
	sort.SliceStable(out, func(i, j int) bool { return out[i].Score > out[j].Score })
	for i := range out {
		out[i].Score, _ = knowledge.Similarity(out[i].Score)
	}
	return out, nil
}
