// Package knowledge is Tandem's FAQ knowledge base: the Store contract that
// the in-memory (knowledge/memstore) and PostgreSQL + pgvector
// (knowledge/pgstore) adapters implement, hybrid lexical + vector search fused
// with weighted reciprocal rank fusion, the Embedder contract (local ONNX and
// OpenAI-compatible encoders live in knowledge/embed), the hot answer cache,
// background re-embedding when the encoder changes, bulk import/export and the
// admin Service that the REST API (gateway/kbapi) and the bot pipeline use.
//
// Contract:
//   - Every FAQ write goes through a Store method that bumps the item's
//     version, stamps updated_at/updated_by and appends a Revision (the full
//     snapshot), so every previous version stays retrievable with Versions.
//   - Update and Delete take the version the caller last read; a mismatch is
//     a *tandem.Error with code ECONFLICT and changes nothing.
//   - Import applies a batch in one transaction: all rows or none.
//   - Each phrasing of an FAQ (Texts: the question first, then the
//     alternatives) has one vector per encoder version ("model"); Update
//     replaces all vectors of the item, so vectors never describe stale text.
//   - Store methods may be called concurrently. Service methods may be called
//     concurrently; Service.Close stops its background work.
package knowledge

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tandem-chat/tandem"
)

// ErrUnknownEncoder is the cause (errors.Is) of a store's refusal (EINVALID)
// of vectors from an encoder it has not registered: in a rolling deploy,
// another node activated a new encoder and dropped this node's.
var ErrUnknownEncoder = errors.New("unknown encoder")

// Retriever names used in tandem.Hit.Retrievers.
const (
	RetrieverLexical = "lexical"
	RetrieverVector  = "vector"
)

// Filter restricts searches. Zero value: every locale, any tags, drafts
// included.
type Filter struct {
	Locale        string   `json:"locale,omitempty"`         // the customer's locale; see Locales. Empty = any
	Tags          []string `json:"tags,omitempty"`           // the item must carry all of these tags
	PublishedOnly bool     `json:"published_only,omitempty"` // skip drafts
}

// ListFilter selects a page of FAQs ordered by id.
type ListFilter struct {
	Filter
	Status   tandem.FAQStatus // "" = any
	Category string           // "" = any
	After    string           // return ids greater than this (keyset cursor)
	Limit    int              // 0 = 100; capped at 1000
}

// Page is one page of List.
type Page struct {
	Items []tandem.FAQ `json:"items"`
	Next  string       `json:"next,omitempty"` // cursor for the next page; empty at the end
}

// Embedding is the vectors of one FAQ's Texts under one encoder version.
type Embedding struct {
	Model   string      // encoder version (Embedder.Version)
	Vectors [][]float32 // Vectors[i] embeds Texts(faq)[i]
}

// Write is a change to one FAQ.
type Write struct {
	FAQ             tandem.FAQ
	Embeddings      []Embedding // vectors for the new text, per model; may be empty
	Actor           string      // who makes the change (audit trail)
	ExpectedVersion int64       // Update/Delete: the version the caller last saw
}

// Action says what an upsert did.
type Action string

// Upsert actions.
const (
	ActionCreated   Action = "created"
	ActionUpdated   Action = "updated"
	ActionUnchanged Action = "unchanged"
)

// Outcome is the result of one upserted row.
type Outcome struct {
	Row    int        `json:"row"` // index in the batch (0-based)
	Action Action     `json:"action"`
	FAQ    tandem.FAQ `json:"faq"`
}

// Op is the kind of change a Revision records.
type Op string

// Revision operations.
const (
	OpCreate Op = "create"
	OpUpdate Op = "update"
	OpDelete Op = "delete"
)

// Revision is one entry of an FAQ's audit trail: the full snapshot after the
// change (for deletes, the last content), who made it and when.
type Revision struct {
	FAQ   tandem.FAQ `json:"faq"`
	Op    Op         `json:"op"`
	Actor string     `json:"actor"`
	At    time.Time  `json:"at"`
}

// Scored is one retriever result: the FAQ, the retriever's own score (BM25 or
// ts_rank for lexical, cosine similarity for vector) and, for vector search,
// the index into Texts(FAQ) of the best-matching phrasing (-1 if unknown).
// FAQ may be shared with the store and with other results: treat it, and
// its slices, as read-only (stores never modify a stored FAQ in place, so a
// result stays a consistent snapshot).
type Scored struct {
	FAQ     *tandem.FAQ
	Score   float64
	Matched int
}

// ModelInfo describes the vectors of one encoder version held by a store.
type ModelInfo struct {
	Version string `json:"version"`
	Dim     int    `json:"dim"`
	Active  bool   `json:"active"` // the version searches use
}

// Store is the FAQ system of record. Errors are *tandem.Error for client
// faults: ENOTFOUND, ECONFLICT (version mismatch, duplicate external id),
// EINVALID (vector dimension mismatch).
type Store interface {
	List(ctx context.Context, f ListFilter) (Page, error)
	// Scan calls yield with every FAQ matching f (f.After and f.Limit are
	// ignored) in id order, all read from one consistent snapshot: writes
	// made while it runs, even by yield, are not seen. An error from yield
	// stops the scan and is returned.
	Scan(ctx context.Context, f ListFilter, yield func(tandem.FAQ) error) error
	Get(ctx context.Context, id string) (tandem.FAQ, error)
	GetByExternalID(ctx context.Context, externalID string) (tandem.FAQ, error)
	// Create stores a new FAQ (ID assigned when empty) at version 1 or,
	// when the id belonged to a deleted FAQ, at the version after the last
	// one of its surviving audit trail.
	Create(ctx context.Context, w Write) (tandem.FAQ, error)
	// Update replaces the content of w.FAQ.ID if its version is
	// w.ExpectedVersion, and replaces all its vectors with w.Embeddings.
	Update(ctx context.Context, w Write) (tandem.FAQ, error)
	// Delete removes the FAQ if its version is expectedVersion (0: any).
	Delete(ctx context.Context, id string, expectedVersion int64, actor string) error
	// UpsertByExternalID creates or updates the FAQ with w.FAQ.ExternalID;
	// an identical item is left untouched (ActionUnchanged).
	UpsertByExternalID(ctx context.Context, w Write) (Outcome, error)
	// Import upserts every write in one transaction, matched by external
	// id, or by id when the write has no external id (see ImportKey; a new
	// FAQ keyed by id is created with that id). With dryRun nothing is
	// stored but the outcomes are computed as if it were. A write that
	// cannot be applied fails the batch with an error carrying a *RowError
	// (see ImportRowError); so does a write that names the same FAQ as an
	// earlier one by the other key (its id, then its external id).
	Import(ctx context.Context, ws []Write, dryRun bool) ([]Outcome, error)
	// Versions returns the audit trail of an FAQ, oldest first: the
	// revisions with a version above after, at most limit of them (limit
	// <= 0: all). It survives deletion. An FAQ without any revision is
	// not_found; a page past the last revision is empty.
	Versions(ctx context.Context, id string, after int64, limit int) ([]Revision, error)

	// LexicalSearch ranks FAQs by full-text relevance of their question,
	// phrasings and tags (answer with a low weight), best first.
	LexicalSearch(ctx context.Context, query string, f Filter, k int) ([]Scored, error)
	// VectorSearch ranks FAQs by the best cosine similarity between vec and
	// any of their phrasing vectors under model, best first.
	VectorSearch(ctx context.Context, model string, vec []float32, f Filter, k int) ([]Scored, error)

	// RegisterModel records an encoder version and its dimension; it fails
	// with EINVALID when the version is known with another dimension.
	RegisterModel(ctx context.Context, version string, dim int) error
	// Models lists the registered encoder versions.
	Models(ctx context.Context) ([]ModelInfo, error)
	// ActivateModel makes version the one searches use. It fails with
	// ECONFLICT while some FAQ lacks vectors for it.
	ActivateModel(ctx context.Context, version string) error
	// DropModel deletes a non-active version and its vectors.
	DropModel(ctx context.Context, version string) error
	// SetEmbedding stores the vectors of one FAQ for one model if the FAQ is
	// still at faqVersion (ECONFLICT otherwise: the text changed).
	SetEmbedding(ctx context.Context, faqID string, faqVersion int64, e Embedding) error
	// MissingEmbeddings returns up to limit FAQs that have no vectors for
	// model, ordered by id.
	MissingEmbeddings(ctx context.Context, model string, limit int) ([]tandem.FAQ, error)

	Close() error
}

// Embedder turns texts into unit-length vectors. Implementations must be
// safe for concurrent use.
type Embedder interface {
	Embed(ctx context.Context, texts []string) ([][]float32, error)
	Dim() int
	Version() string // changes whenever vectors would change
}

// ImportKey returns how Store.Import matches an imported FAQ with a stored
// one: by its external id when it has one, else by its id (an exported FAQ
// that never had an external id; byID is true). A stored FAQ matched by id
// keeps its external id when the row has none. key describes the key for
// messages; it is "" when the row has neither.
func ImportKey(f tandem.FAQ) (key string, byID bool) {
	switch {
	case f.ExternalID != "":
		return fmt.Sprintf("external_id %q", f.ExternalID), false
	case f.ID != "":
		return fmt.Sprintf("id %q", f.ID), true
	}
	return "", false
}

// RowError says which write of a Store.Import batch failed. Stores return
// it inside a *tandem.Error (ImportRowError), so the error's code and
// message ("row N: ...") are those of the cause.
type RowError struct {
	Index int   // position of the write in the batch (0-based)
	Err   error // the cause
}

func (e *RowError) Error() string { return fmt.Sprintf("row %d: %v", e.Index+1, e.Err) }

// Unwrap returns the cause.
func (e *RowError) Unwrap() error { return e.Err }

// ImportRowError returns err as the failure of write i of an import batch:
// a *tandem.Error with err's code, the message "row i+1: <err's message>"
// and a *RowError as its cause.
func ImportRowError(i int, err error) error {
	return &tandem.Error{Code: tandem.ErrorCode(err), Message: fmt.Sprintf("row %d: %s", i+1, tandem.ErrorMessage(err)), Err: &RowError{Index: i, Err: err}}
}

// Texts returns the texts of an FAQ that get one vector each: the question
// first, then the alternative phrasings in order.
func Texts(f tandem.FAQ) []string {
	out := make([]string, 0, 1+len(f.Phrasings))
	out = append(out, f.Question)
	out = append(out, f.Phrasings...)
	return out
}

// SameContent reports whether two FAQs have the same curated content
// (everything but identity, version and audit stamps).
func SameContent(a, b tandem.FAQ) bool {
	return a.ExternalID == b.ExternalID && a.Question == b.Question && equalStrings(a.Phrasings, b.Phrasings) &&
		a.Answer == b.Answer && a.Category == b.Category && equalStrings(a.Tags, b.Tags) &&
		a.Locale == b.Locale && a.Status == b.Status && a.Intent == b.Intent && a.Threshold == b.Threshold
}

// SameText reports whether two FAQs have the same embedded texts.
func SameText(a, b tandem.FAQ) bool {
	return a.Question == b.Question && equalStrings(a.Phrasings, b.Phrasings)
}

func equalStrings(a, b []string) bool {
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

// HasTags reports whether have contains every tag of want.
func HasTags(have, want []string) bool {
	for _, w := range want {
		found := false
		for _, h := range have {
			if h == w {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// Locales returns the FAQ locales the filter accepts, canonical
// (CanonicalLocale): the locale itself and, for a regional locale, its
// primary language, so that a browser's "en-US" (or "en_us", "EN-us")
// finds FAQs written for "en-US" and for "en". nil when the filter has no
// locale (any locale).
func (fl Filter) Locales() []string {
	loc := CanonicalLocale(fl.Locale)
	if loc == "" {
		return nil
	}
	out := []string{loc}
	if base, _, ok := strings.Cut(loc, "-"); ok && base != "" {
		out = append(out, base)
	}
	return out
}

// CanonicalLocale writes a BCP 47 style locale the way FAQs store it:
// underscores become hyphens, the language is lower case, a four-letter
// script is title case, a two-letter region upper case and other subtags
// lower case ("EN_us" -> "en-US", "zh-hant-tw" -> "zh-Hant-TW").
func CanonicalLocale(s string) string {
	parts := strings.Split(strings.ReplaceAll(strings.TrimSpace(s), "_", "-"), "-")
	for i, p := range parts {
		switch {
		case i == 0:
			parts[i] = strings.ToLower(p)
		case len(p) == 2:
			parts[i] = strings.ToUpper(p)
		case len(p) == 4 && strings.IndexFunc(p, func(r rune) bool { return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z') }) < 0:
			parts[i] = strings.ToUpper(p[:1]) + strings.ToLower(p[1:])
		default:
			parts[i] = strings.ToLower(p)
		}
	}
	return strings.Join(parts, "-")
}

// Match reports whether f passes the filter.
func (fl Filter) Match(f tandem.FAQ) bool { return fl.Matcher()(f) }

// Matcher returns Match with the filter's locales worked out once, for
// loops over many FAQs (a search's candidates).
func (fl Filter) Matcher() func(tandem.FAQ) bool {
	locs := fl.Locales()
	return func(f tandem.FAQ) bool {
		if locs != nil && !slices.Contains(locs, f.Locale) {
			return false
		}
		if fl.PublishedOnly && f.Status != tandem.FAQPublished {
			return false
		}
		return HasTags(f.Tags, fl.Tags)
	}
}

// Clone returns a deep copy of f (slices are not shared).
func Clone(f tandem.FAQ) tandem.FAQ {
	if f.Phrasings != nil {
		f.Phrasings = append([]string(nil), f.Phrasings...)
	}
	if f.Tags != nil {
		f.Tags = append([]string(nil), f.Tags...)
	}
	return f
}

// NewID returns a random FAQ id ("faq_" and 20 base32 characters).
func NewID() string {
	var b [13]byte
	_, _ = rand.Read(b[:])
	return "faq_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))[:20]
}
