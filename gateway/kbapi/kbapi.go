// Package kbapi is the knowledge-base admin REST API, an http.Handler the
// server mounts at /api/v1/knowledge (chi). It offers CRUD on FAQs with
// optimistic concurrency (ETag = the item's version; If-Match on PUT, and
// optionally on DELETE and publish/unpublish; 409 on a mismatch), the audit
// trail, bulk import (JSON, JSONL, CSV; dry run; atomic or partial;
// per-row errors; idempotent upserts by external id) and export, search
// preview with scores and the retrievers behind each hit, reindexing and
// publish/unpublish. docs/openapi-knowledge.yaml describes it.
//
// Every route needs an admin: the Authenticator's principal must have role
// "admin" (the gateway's static admin token or the console token of an
// admin account). Errors are {"error": {"code", "message"}}; bodies are bounded
// (1 MiB per FAQ, 10 MiB per import). Handlers may be called concurrently.
package kbapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/gateway"
	"github.com/tandem-chat/tandem/knowledge"
)

// Service is what the API needs from the knowledge base; *knowledge.Service
// implements it.
type Service interface {
	List(ctx context.Context, f knowledge.ListFilter) (knowledge.Page, error)
	Get(ctx context.Context, id string) (tandem.FAQ, error)
	Create(ctx context.Context, actor string, f tandem.FAQ) (tandem.FAQ, error)
	Update(ctx context.Context, actor string, f tandem.FAQ, expectedVersion int64, keep knowledge.Keep) (tandem.FAQ, error)
	Delete(ctx context.Context, actor, id string, expectedVersion int64) error
	SetStatus(ctx context.Context, actor, id string, status tandem.FAQStatus, expectedVersion int64) (tandem.FAQ, error)
	Versions(ctx context.Context, id string, after int64, limit int) ([]knowledge.Revision, error)
	Import(ctx context.Context, actor string, recs []knowledge.Record, opts knowledge.ImportOptions) (knowledge.ImportReport, error)
	Export(ctx context.Context, f knowledge.ListFilter, e *knowledge.Exporter) error
	Search(ctx context.Context, req knowledge.SearchRequest) (knowledge.SearchResult, error)
	Reindex(ctx context.Context, force bool) (knowledge.ReindexStatus, error)
	ReindexStatus() knowledge.ReindexStatus
}

var _ Service = (*knowledge.Service)(nil)

// Authenticator identifies the caller; *gateway.Auth implements it.
type Authenticator interface {
	Authenticate(r *http.Request) (gateway.Principal, error)
}

// Limits on request bodies.
const (
	MaxBodyBytes   = 1 << 20  // one FAQ
	MaxImportBytes = 10 << 20 // one import
)

// Config configures the handler.
type Config struct {
	Service Service       // required
	Auth    Authenticator // required
	Logger  *slog.Logger  // default slog.Default()
	// MaxImportBytes overrides the import body limit (default 10 MiB).
	MaxImportBytes int64
	// ExportBuffer is how much of an export is held before the response
	// starts (default 4 MiB): an export that fails within it is answered
	// with a JSON error; a longer one streams, and a failure then cuts the
	// connection.
	ExportBuffer int
	// ExportWriteTimeout bounds each write of a streaming export (default
	// 30 s): a client that stops reading ends the export, which would
	// otherwise hold its database snapshot and pooled connection for as
	// long as the client waits.
	ExportWriteTimeout time.Duration
}

type api struct {
	svc          Service
	auth         Authenticator
	log          *slog.Logger
	maxImport    int64
	exportBuffer int
	exportWrite  time.Duration
}

// New returns the API handler; mount it at /api/v1/knowledge (routes are
// relative: /faqs, /faqs/{id}, /import, /export, /search, /reindex).
func New(cfg Config) (http.Handler, error) {
	if cfg.Service == nil || cfg.Auth == nil {
		return nil, errors.New("kbapi: Service and Auth are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxImportBytes <= 0 {
		cfg.MaxImportBytes = MaxImportBytes
	}
	if cfg.ExportBuffer <= 0 {
		cfg.ExportBuffer = 4 << 20
	}
	if cfg.ExportWriteTimeout <= 0 {
		cfg.ExportWriteTimeout = 30 * time.Second
	}
	a := &api{svc: cfg.Service, auth: cfg.Auth, log: cfg.Logger, maxImport: cfg.MaxImportBytes, exportBuffer: cfg.ExportBuffer, exportWrite: cfg.ExportWriteTimeout}
	r := chi.NewRouter()
	r.Use(a.admin)
	r.Get("/faqs", a.list)
	r.Post("/faqs", a.create)
	r.Get("/faqs/{id}", a.get)
	r.Put("/faqs/{id}", a.update)
	r.Delete("/faqs/{id}", a.delete)
	r.Get("/faqs/{id}/versions", a.versions)
	r.Get("/faqs/{id}/versions/{version}", a.version)
	r.Post("/faqs/{id}/publish", a.status(tandem.FAQPublished))
	r.Post("/faqs/{id}/unpublish", a.status(tandem.FAQDraft))
	r.Post("/import", a.importHandler)
	r.Get("/export", a.export)
	r.Get("/search", a.search)
	r.Post("/reindex", a.reindex)
	r.Get("/reindex", a.reindexStatus)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		a.fail(w, r, tandem.Errorf(tandem.ENOTFOUND, "no such knowledge API route"))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		gateway.SetAllow(w, req, r)
		writeStatus(w, http.StatusMethodNotAllowed, tandem.EINVALID, "method not allowed")
	})
	return r, nil
}

type ctxKey struct{}

func (a *api) admin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := a.auth.Authenticate(r)
		if err != nil {
			if tandem.ErrorCode(err) != tandem.EUNAUTHORIZED {
				err = tandem.WrapError(tandem.EUNAUTHORIZED, err, "authentication failed")
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="tandem"`)
			a.fail(w, r, err)
			return
		}
		if p.Role != gateway.RoleAdmin {
			a.fail(w, r, tandem.Errorf(tandem.EFORBIDDEN, "the knowledge base API needs the admin role"))
			return
		}
		actor := actorName(p.Name, p.ID)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, actor)))
	})
}

// actorName is the audit name of a principal: "Name <id>" (or the id),
// without control characters, at most knowledge.MaxActorLen bytes, cut on
// a character boundary (the name is shortened first so the id stays).
func actorName(name, id string) string {
	clean := func(s string) string {
		return strings.Map(func(r rune) rune {
			if unicode.IsControl(r) {
				return -1
			}
			return r
		}, strings.ToValidUTF8(s, "\uFFFD"))
	}
	name, id = strings.TrimSpace(clean(name)), clean(id)
	if name == "" || name == id {
		return truncate(id, knowledge.MaxActorLen)
	}
	suffix := " <" + id + ">"
	if room := knowledge.MaxActorLen - len(suffix); room > 0 {
		if n := strings.TrimSpace(truncate(name, room)); n != "" {
			return n + suffix
		}
	}
	return truncate(id, knowledge.MaxActorLen)
}

// truncate cuts s to at most n bytes on a character boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func actor(r *http.Request) string {
	s, _ := r.Context().Value(ctxKey{}).(string)
	return s
}

func (a *api) fail(w http.ResponseWriter, r *http.Request, err error) {
	gateway.WriteError(w, r, a.log, err)
}

func writeStatus(w http.ResponseWriter, status int, code, msg string) {
	var body gateway.ErrorBody
	body.Error.Code, body.Error.Message = code, msg
	gateway.WriteJSON(w, status, body)
}

func etag(f tandem.FAQ) string { return `"` + strconv.FormatInt(f.Version, 10) + `"` }

// ifMatch parses If-Match ("3", "\"3\"", W/"3"). ok is false when absent;
// "*" (any current version) is ok with version 0.
func ifMatch(r *http.Request) (int64, bool, error) {
	h := strings.TrimSpace(r.Header.Get("If-Match"))
	if h == "" {
		return 0, false, nil
	}
	if h == "*" {
		return 0, true, nil
	}
	h = strings.Trim(strings.TrimPrefix(h, "W/"), `"`)
	v, err := strconv.ParseInt(h, 10, 64)
	if err != nil || v <= 0 {
		return 0, false, tandem.Errorf(tandem.EINVALID, "If-Match must be the ETag of the item (its version), e.g. \"3\"")
	}
	return v, true, nil
}

func (a *api) writeFAQ(w http.ResponseWriter, status int, f tandem.FAQ) {
	w.Header().Set("ETag", etag(f))
	gateway.WriteJSON(w, status, f)
}

func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, gateway.TooLargeError{Limit: limit}
	}
	if err != nil {
		return nil, tandem.WrapError(tandem.EINVALID, err, "cannot read the request body")
	}
	return b, nil
}

// tagParams are the query's tag filters; an empty one (tag=) filters
// nothing, as an empty locale or category does (it used to require a tag
// "", which no FAQ has: an export answered 200 with nothing in it).
func tagParams(q url.Values) []string {
	var out []string
	for _, t := range q["tag"] {
		if strings.TrimSpace(t) != "" {
			out = append(out, t)
		}
	}
	return out
}

func listFilter(r *http.Request) (knowledge.ListFilter, error) {
	q := r.URL.Query()
	f := knowledge.ListFilter{Filter: knowledge.Filter{Locale: q.Get("locale"), Tags: tagParams(q)}, Category: q.Get("category"), After: q.Get("after")}
	switch s := q.Get("status"); s {
	case "", string(tandem.FAQDraft), string(tandem.FAQPublished):
		f.Status = tandem.FAQStatus(s)
	default:
		return f, tandem.Errorf(tandem.EINVALID, "status must be draft or published")
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			return f, tandem.Errorf(tandem.EINVALID, "limit must be between 1 and 1000")
		}
		f.Limit = n
	}
	// Invalid UTF-8, control characters or absurd lengths are 400 on every
	// store (PostgreSQL cannot even compare such text).
	return f, f.Validate()
}

// pathID returns the {id} path segment; a malformed id (invalid UTF-8,
// control characters, '/', spaces, longer than 200 bytes) is 400, never
// looked up.
func pathID(r *http.Request) (string, error) {
	id := chi.URLParam(r, "id")
	return id, knowledge.ValidID("id", id)
}

func (a *api) list(w http.ResponseWriter, r *http.Request) {
	f, err := listFilter(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	page, err := a.svc.List(r.Context(), f)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	gateway.WriteJSON(w, http.StatusOK, page)
}

func (a *api) get(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	f, err := a.svc.Get(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if noneMatch(r.Header.Get("If-None-Match"), f.Version) {
		w.Header().Set("ETag", etag(f))
		w.WriteHeader(http.StatusNotModified)
		return
	}
	a.writeFAQ(w, http.StatusOK, f)
}

// noneMatch reports whether an If-None-Match value ("*" or a list of
// ETags, weak or strong) matches the version.
func noneMatch(h string, version int64) bool {
	h = strings.TrimSpace(h)
	if h == "*" {
		return true
	}
	v := strconv.FormatInt(version, 10)
	for _, tag := range strings.Split(h, ",") {
		if strings.Trim(strings.TrimPrefix(strings.TrimSpace(tag), "W/"), `"`) == v {
			return true
		}
	}
	return false
}

func (a *api) create(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r, MaxBodyBytes)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	f, _, err := knowledge.DecodeFAQ(body)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out, err := a.svc.Create(r.Context(), actor(r), f)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	base, _, _ := strings.Cut(r.RequestURI, "?") // the full path, also under a prefix-stripping mount
	w.Header().Set("Location", strings.TrimSuffix(base, "/")+"/"+out.ID)
	a.writeFAQ(w, http.StatusCreated, out)
}

func (a *api) update(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	expected, ok, err := ifMatch(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	body, err := readBody(w, r, MaxBodyBytes)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	f, sent, err := knowledge.DecodeFAQ(body)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	bodyVersion := sent.Version
	switch {
	case bodyVersion < 0:
		a.fail(w, r, tandem.Errorf(tandem.EINVALID, "version: %d is not a version (versions start at 1)", bodyVersion))
		return
	case ok && expected == 0 && bodyVersion == 0:
		a.fail(w, r, tandem.Errorf(tandem.EINVALID, "If-Match: * does not say which version you edited: send the item's ETag (or its \"version\" in the body) so concurrent edits are detected"))
		return
	case ok && expected == 0:
		expected = bodyVersion
	case ok && bodyVersion != 0 && bodyVersion != expected:
		a.fail(w, r, tandem.Errorf(tandem.EINVALID, "If-Match (%d) and the body's version (%d) disagree", expected, bodyVersion))
		return
	case !ok && bodyVersion == 0:
		a.fail(w, r, tandem.Errorf(tandem.EINVALID, "send If-Match with the item's ETag (or its \"version\" in the body) so concurrent edits are detected"))
		return
	case !ok:
		expected = bodyVersion
	}
	f.ID = id
	// Fields the body leaves out: a missing (or empty, or null) status
	// keeps the publication state, which has its own calls; a missing
	// external_id keeps the import key (one sent empty or null clears it).
	out, err := a.svc.Update(r.Context(), actor(r), f, expected, knowledge.Keep{Status: f.Status == "", ExternalID: !sent.Sent["external_id"]})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.writeFAQ(w, http.StatusOK, out)
}

func (a *api) delete(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	expected, _, err := ifMatch(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.svc.Delete(r.Context(), actor(r), id, expected); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *api) status(st tandem.FAQStatus) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := pathID(r)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		expected, _, err := ifMatch(r)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		out, err := a.svc.SetStatus(r.Context(), actor(r), id, st, expected)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		a.writeFAQ(w, http.StatusOK, out)
	}
}

func (a *api) versions(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	var after int64
	if s := q.Get("after"); s != "" {
		if after, err = strconv.ParseInt(s, 10, 64); err != nil || after < 0 {
			a.fail(w, r, tandem.Errorf(tandem.EINVALID, "after must be a version number (0 or more)"))
			return
		}
	}
	limit := defaultVersionsPage
	if s := q.Get("limit"); s != "" {
		if limit, err = strconv.Atoi(s); err != nil || limit < 1 || limit > knowledge.MaxVersionsPage {
			a.fail(w, r, tandem.Errorf(tandem.EINVALID, "limit must be between 1 and %d", knowledge.MaxVersionsPage))
			return
		}
	}
	// One more than asked tells whether another page follows.
	revs, err := a.svc.Versions(r.Context(), id, after, limit+1)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	page := map[string]any{"items": revs}
	if len(revs) > limit {
		revs = revs[:limit]
		page["items"] = revs
		page["next"] = revs[limit-1].FAQ.Version
	}
	gateway.WriteJSON(w, http.StatusOK, page)
}

// defaultVersionsPage is the page size of the audit trail when the request
// names none.
const defaultVersionsPage = 100

func (a *api) version(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	v, err := strconv.ParseInt(chi.URLParam(r, "version"), 10, 64)
	if err != nil || v <= 0 {
		a.fail(w, r, tandem.Errorf(tandem.EINVALID, "version must be a positive integer"))
		return
	}
	revs, err := a.svc.Versions(r.Context(), id, v-1, 1)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if len(revs) == 1 && revs[0].FAQ.Version == v {
		gateway.WriteJSON(w, http.StatusOK, revs[0])
		return
	}
	a.fail(w, r, tandem.Errorf(tandem.ENOTFOUND, "FAQ %s has no version %d", id, v))
}

func boolParam(r *http.Request, name string, def bool) (bool, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, tandem.Errorf(tandem.EINVALID, "%s must be true or false", name)
	}
	return b, nil
}

// importFormat takes ?format= or, failing that, the Content-Type.
func importFormat(r *http.Request) (knowledge.Format, error) {
	if f := r.URL.Query().Get("format"); f != "" {
		return knowledge.ParseFormat(f)
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return "", tandem.Errorf(tandem.EINVALID, "say which format the import is in: ?format=json|jsonl|csv or a Content-Type")
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return "", tandem.Errorf(tandem.EINVALID, "bad Content-Type %q", ct)
	}
	return knowledge.ParseFormat(mt)
}

// importError is the body of a refused import: the error plus the report.
type importError struct {
	Error  knowledge.ErrorDetail  `json:"error"`
	Report knowledge.ImportReport `json:"report"`
}

func (a *api) importHandler(w http.ResponseWriter, r *http.Request) {
	format, err := importFormat(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	dry, err := boolParam(r, "dry_run", false)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	opts := knowledge.ImportOptions{DryRun: dry}
	switch m := r.URL.Query().Get("mode"); m {
	case "", "atomic":
	case "partial":
		opts.Partial = true
	default:
		a.fail(w, r, tandem.Errorf(tandem.EINVALID, "mode must be atomic or partial"))
		return
	}
	body, err := readBody(w, r, a.maxImport)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	recs, err := knowledge.ParseImport(bytes.NewReader(body), format)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if len(recs) == 0 {
		a.fail(w, r, tandem.Errorf(tandem.EINVALID, "the import has no rows"))
		return
	}
	rep, err := a.svc.Import(r.Context(), actor(r), recs, opts)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if rep.Failed > 0 && !opts.Partial {
		msg := fmt.Sprintf("%d of %d rows are invalid; nothing was applied (see report.rows; use mode=partial to apply the valid rows)", rep.Failed, rep.Total)
		if opts.DryRun {
			msg = fmt.Sprintf("%d of %d rows are invalid (dry run)", rep.Failed, rep.Total)
		}
		gateway.WriteJSON(w, http.StatusUnprocessableEntity, importError{Error: knowledge.ErrorDetail{Code: tandem.EINVALID, Message: msg}, Report: rep})
		return
	}
	gateway.WriteJSON(w, http.StatusOK, rep)
}

func (a *api) export(w http.ResponseWriter, r *http.Request) {
	format := knowledge.FormatJSON
	if f := r.URL.Query().Get("format"); f != "" {
		var err error
		if format, err = knowledge.ParseFormat(f); err != nil {
			a.fail(w, r, err)
			return
		}
	}
	f, err := listFilter(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := &spillWriter{w: w, rc: http.NewResponseController(w), timeout: a.exportWrite, limit: a.exportBuffer, start: func() {
		w.Header().Set("Content-Type", format.ContentType())
		w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="knowledge-%s.%s"`, time.Now().UTC().Format("20060102-150405"), format))
		w.WriteHeader(http.StatusOK)
	}}
	e, err := knowledge.NewExporter(out, format)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.svc.Export(r.Context(), f, e); err != nil {
		if !out.started {
			a.fail(w, r, err)
			return
		}
		// Part of the file is sent: the connection is cut without the
		// end of the chunked body, so the client sees a failed download,
		// not a complete-looking file with rows missing.
		a.log.Warn("export cut short after the first bytes were sent", "err", err)
		panic(http.ErrAbortHandler)
	}
	if err := out.flush(); err != nil {
		a.log.Warn("export: write", "err", err)
	}
}

// spillWriter holds what is written until limit bytes, so that an export
// that fails before then is still answered with a clean JSON error; beyond
// limit it starts the response (start) and streams, keeping memory
// bounded whatever the size of the knowledge base.
type spillWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration // bounds each write to the client
	limit   int
	start   func()
	buf     bytes.Buffer
	started bool
}

func (s *spillWriter) Write(p []byte) (int, error) {
	if !s.started && s.buf.Len()+len(p) <= s.limit {
		return s.buf.Write(p)
	}
	if err := s.flush(); err != nil {
		return 0, err
	}
	s.deadline()
	return s.w.Write(p)
}

// deadline gives the next write to the client its time.
func (s *spillWriter) deadline() {
	if s.rc != nil && s.timeout > 0 {
		_ = s.rc.SetWriteDeadline(time.Now().Add(s.timeout)) // not supported by every writer (tests' recorders)
	}
}

// flush starts the response if needed and sends what is held.
func (s *spillWriter) flush() error {
	if !s.started {
		s.started = true
		s.start()
	}
	if s.buf.Len() == 0 {
		return nil
	}
	s.deadline()
	_, err := s.w.Write(s.buf.Bytes())
	s.buf = bytes.Buffer{}
	return err
}

func (a *api) search(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	req := knowledge.SearchRequest{Query: q.Get("q"), Mode: knowledge.Mode(q.Get("mode")),
		Filter: knowledge.Filter{Locale: q.Get("locale"), Tags: tagParams(q)}}
	if !q.Has("q") {
		a.fail(w, r, tandem.Errorf(tandem.EINVALID, "q is required"))
		return
	}
	if err := req.Filter.Validate(); err != nil {
		a.fail(w, r, err)
		return
	}
	if k := q.Get("k"); k != "" {
		n, err := strconv.Atoi(k)
		if err != nil || n < 1 || n > knowledge.MaxK {
			// (0 would mean the service's default: not what was asked.)
			a.fail(w, r, tandem.Errorf(tandem.EINVALID, "k must be a number between 1 and %d", knowledge.MaxK))
			return
		}
		req.K = n
	}
	var err error
	if req.Filter.PublishedOnly, err = boolParam(r, "published", false); err != nil {
		a.fail(w, r, err)
		return
	}
	useCache, err := boolParam(r, "cache", false)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	req.NoCache = !useCache
	res, err := a.svc.Search(r.Context(), req)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	res.Hits = finiteHits(res.Hits)
	gateway.WriteJSON(w, http.StatusOK, res)
}

// finiteHits drops hits with a NaN or infinite score (JSON cannot encode
// them; the service does not produce them, this is a last guard).
func finiteHits(hits []tandem.Hit) []tandem.Hit {
	ok := func(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
	out := hits[:0:0]
	for _, h := range hits {
		good := ok(h.Score)
		for _, v := range h.Retrievers {
			good = good && ok(v)
		}
		if good {
			out = append(out, h)
		}
	}
	if len(out) == len(hits) {
		return hits
	}
	return out
}

func (a *api) reindex(w http.ResponseWriter, r *http.Request) {
	force, err := boolParam(r, "force", false)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	st, err := a.svc.Reindex(r.Context(), force)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	gateway.WriteJSON(w, http.StatusAccepted, st)
}

func (a *api) reindexStatus(w http.ResponseWriter, r *http.Request) {
	gateway.WriteJSON(w, http.StatusOK, a.svc.ReindexStatus())
}
