package console

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"golang.org/x/text/unicode/norm"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/gateway"
	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/internal/jsonx"
)

// maxAgentBody bounds agents API request bodies.
const maxAgentBody = 16 << 10

// LoginRequest is the body of POST /api/v1/agents/login.
type LoginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

// LoginResponse answers a successful login.
type LoginResponse struct {
	Token     string       `json:"token"`
	ExpiresAt time.Time    `json:"expires_at"`
	Agent     tandem.Agent `json:"agent"`
}

// CreateAgentRequest is the body of POST /api/v1/agents.
type CreateAgentRequest struct {
	Email       string   `json:"email"`
	DisplayName string   `json:"display_name"`
	Password    string   `json:"password"`
	Role        string   `json:"role,omitempty"` // agent (default) or admin
	Skills      []string `json:"skills,omitempty"`
	Languages   []string `json:"languages,omitempty"`
	MaxChats    int      `json:"max_chats,omitempty"`
}

// PatchAgentRequest is the body of PATCH /api/v1/agents/{id}: the profile
// fields to change; an absent field is kept (null is refused: [] clears
// skills or languages).
type PatchAgentRequest struct {
	Email       *string   `json:"email,omitempty"`
	DisplayName *string   `json:"display_name,omitempty"`
	Role        *string   `json:"role,omitempty"`
	Skills      *[]string `json:"skills,omitempty"`
	Languages   *[]string `json:"languages,omitempty"`
	MaxChats    *int      `json:"max_chats,omitempty"`
}

// PasswordRequest is the body of POST /api/v1/agents/{id}/password.
type PasswordRequest struct {
	Password string `json:"password"`
}

// AgentsPage is the body of GET /api/v1/agents.
type AgentsPage struct {
	Agents []handoff.AgentStatus `json:"agents"`
}

func (c *Console) agentsAPI() http.Handler {
	r := chi.NewRouter()
	r.Post("/login", c.login)
	// Without this, GET /login would be GET /{id} for the id "login": 401
	// or 404 instead of 405.
	loginOnly := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", http.MethodPost)
		var body gateway.ErrorBody
		body.Error.Code, body.Error.Message = tandem.EINVALID, "method not allowed: log in with POST"
		gateway.WriteJSON(w, http.StatusMethodNotAllowed, body)
	}
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		r.MethodFunc(m, "/login", loginOnly)
	}
	r.Group(func(r chi.Router) {
		r.Use(c.requireAdmin)
		r.Get("/", c.listAgents)
		r.Post("/", c.createAgent)
		r.Get("/{id}", c.getAgent)
		r.Patch("/{id}", c.patchAgent)
		r.Post("/{id}/disable", c.setDisabled(true))
		r.Post("/{id}/enable", c.setDisabled(false))
		r.Post("/{id}/password", c.setPassword)
	})
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		gateway.WriteError(w, r, c.log, tandem.Errorf(tandem.ENOTFOUND, "no such agents API route"))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		gateway.SetAllow(w, req, r)
		var body gateway.ErrorBody
		body.Error.Code, body.Error.Message = tandem.EINVALID, "method not allowed"
		gateway.WriteJSON(w, http.StatusMethodNotAllowed, body)
	})
	return r
}

// requireAdmin lets through the static admin token and admin JWTs.
func (c *Console) requireAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := c.auth.Authenticate(r)
		if err != nil {
			gateway.WriteError(w, r, c.log, err)
			return
		}
		if p.Role != gateway.RoleAdmin {
			gateway.WriteError(w, r, c.log, tandem.Errorf(tandem.EFORBIDDEN, "admin only"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func decodeBody(r *http.Request, v any) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	return decodeBytes(body, v)
}

// readBody reads a request body of at most maxAgentBody bytes.
func readBody(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxAgentBody+1))
	if err != nil {
		return nil, tandem.Errorf(tandem.EINVALID, "request body unreadable")
	}
	if len(body) > maxAgentBody {
		return nil, gateway.TooLargeError{Limit: maxAgentBody}
	}
	return body, nil
}

// decodeBytes decodes a body that must be one JSON object of v's fields.
func decodeBytes(body []byte, v any) error {
	if !utf8.Valid(body) {
		// encoding/json would replace the bad bytes with U+FFFD: a name
		// customers see, or a password, changed without a word.
		return tandem.Errorf(tandem.EINVALID, "body is not valid UTF-8")
	}
	if t := bytes.TrimSpace(body); len(t) == 0 || t[0] != '{' {
		return tandem.Errorf(tandem.EINVALID, "body must be a JSON object with the documented fields")
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if fe := gateway.FieldError(err); fe != nil {
			return fe
		}
		return tandem.Errorf(tandem.EINVALID, "body must be a JSON object with the documented fields")
	}
	if _, err := dec.Token(); err != io.EOF {
		return tandem.Errorf(tandem.EINVALID, "body must hold one JSON object and nothing after it")
	}
	// Field names as documented, in their case: encoding/json alone took
	// {"Display_Name": …} and, of {"email": a, "EMAIL": b}, the last.
	if _, err := jsonx.ExactKeys(body, v); err != nil {
		return tandem.Errorf(tandem.EINVALID, "%v", err)
	}
	return nil
}

// login checks an agent's email and password (bcrypt) and issues an agent
// (or admin) JWT.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	ip := gateway.ClientIP(r)
	// The body is read first: a refusal by the address's limit names the
	// account's wait too (its limit may outlast the address's).
	var req LoginRequest
	bodyErr := decodeBody(r, &req)
	account := ""
	if bodyErr == nil {
		account = accountKey(req.Email)
	}
	if !c.logins.allow(ip, now) {
		c.refuseLogin(w, r, ip, account, "too many login attempts; retry later", now)
		return
	}
	if bodyErr != nil {
		gateway.WriteError(w, r, c.log, bodyErr)
		return
	}
	// Per account too (known or not, so the answer reveals nothing):
	// guesses spread over many addresses still get a few per minute.
	if !c.accountLogins.allow(account, now) {
		c.refuseLogin(w, r, ip, account, "too many login attempts for this account; retry later", now)
		return
	}
	a, stamp, err := c.eng.Login(r.Context(), req.Email, req.Password)
	if err != nil {
		gateway.WriteError(w, r, c.log, err)
		return
	}
	role := gateway.RoleAgent
	if a.Role == handoff.RoleAdmin {
		role = gateway.RoleAdmin
	}
	tok, err := c.auth.IssueStaff(a.ID, a.DisplayName, role, stamp, c.cfg.TokenTTL)
	if err != nil {
		gateway.WriteError(w, r, c.log, err)
		return
	}
	a.PasswordHash = nil
	gateway.WriteJSON(w, http.StatusOK, LoginResponse{Token: tok, ExpiresAt: time.Now().Add(c.cfg.TokenTTL).UTC().Truncate(time.Second), Agent: a})
}

// accountKey is the per-account login limiter's key for an email: no
// account has an email beyond 254 bytes (Authenticate refuses them), so
// longer ones share their first 254 bytes and a bucket costs no more than
// that, whatever the body size.
func accountKey(email string) string {
	k := norm.NFC.String(strings.ToLower(strings.TrimSpace(email)))
	if len(k) > 254 {
		k = strings.Clone(k[:254])
	}
	return k
}

func (c *Console) listAgents(w http.ResponseWriter, r *http.Request) {
	sts, err := c.eng.AgentStatuses(r.Context())
	if err != nil {
		gateway.WriteError(w, r, c.log, err)
		return
	}
	if sts == nil {
		sts = []handoff.AgentStatus{}
	}
	gateway.WriteJSON(w, http.StatusOK, AgentsPage{Agents: sts})
}

func (c *Console) getAgent(w http.ResponseWriter, r *http.Request) {
	id, ok := c.agentID(w, r)
	if !ok {
		return
	}
	st, err := c.eng.AgentStatus(r.Context(), id)
	if err != nil {
		gateway.WriteError(w, r, c.log, err)
		return
	}
	gateway.WriteJSON(w, http.StatusOK, st)
}

func (c *Console) createAgent(w http.ResponseWriter, r *http.Request) {
	var req CreateAgentRequest
	if err := decodeBody(r, &req); err != nil {
		gateway.WriteError(w, r, c.log, err)
		return
	}
	if err := handoff.CheckPassword(req.Password); err != nil {
		gateway.WriteError(w, r, c.log, err)
		return
	}
	a, err := c.eng.CreateAgent(r.Context(), tandem.Agent{Email: req.Email, DisplayName: req.DisplayName, Role: req.Role,
		Skills: req.Skills, Languages: req.Languages, MaxChats: req.MaxChats}, req.Password)
	if err != nil {
		gateway.WriteError(w, r, c.log, err)
		return
	}
	w.Header().Set("Location", "/api/v1/agents/"+a.ID)
	gateway.WriteJSON(w, http.StatusCreated, a)
}

// patchAgent changes part of an agent's profile (handoff.PatchAgent): 200
// with the agent.
func (c *Console) patchAgent(w http.ResponseWriter, r *http.Request) {
	id, ok := c.agentID(w, r)
	if !ok {
		return
	}
	var req PatchAgentRequest
	body, err := readBody(r)
	if err == nil {
		err = decodeBytes(body, &req)
	}
	if err == nil {
		err = refuseNulls(body)
	}
	if err != nil {
		gateway.WriteError(w, r, c.log, err)
		return
	}
	a, err := c.eng.PatchAgent(r.Context(), id, handoff.AgentPatch{Email: req.Email, DisplayName: req.DisplayName, Role: req.Role,
		Skills: req.Skills, Languages: req.Languages, MaxChats: req.MaxChats})
	if err != nil {
		gateway.WriteError(w, r, c.log, err)
		return
	}
	a.PasswordHash = nil
	gateway.WriteJSON(w, http.StatusOK, a)
}

// refuseNulls refuses a JSON object (already decoded) with a null member:
// for a patch, null would read as "keep", which is not what it says.
func refuseNulls(body []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return tandem.Errorf(tandem.EINVALID, "body must be a JSON object with the documented fields")
	}
	for k, v := range raw {
		if string(bytes.TrimSpace(v)) == "null" {
			return tandem.Errorf(tandem.EINVALID, "%s: null is not a value (leave the field out to keep it; [] clears skills or languages)", k)
		}
	}
	return nil
}

func (c *Console) setDisabled(disabled bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := c.agentID(w, r)
		if !ok {
			return
		}
		a, err := c.eng.SetDisabled(r.Context(), id, disabled)
		if err != nil {
			gateway.WriteError(w, r, c.log, err)
			return
		}
		a.PasswordHash = nil
		gateway.WriteJSON(w, http.StatusOK, a)
	}
}

// setPassword sets an agent's password: 204. The tokens issued before it
// stop working at once and the agent's open consoles close at their next
// heartbeat (their tokens carry the old password's stamp).
func (c *Console) setPassword(w http.ResponseWriter, r *http.Request) {
	id, ok := c.agentID(w, r)
	if !ok {
		return
	}
	var req PasswordRequest
	if err := decodeBody(r, &req); err != nil {
		gateway.WriteError(w, r, c.log, err)
		return
	}
	// SetPassword checks the password (handoff.CheckPassword) first.
	if err := c.eng.SetPassword(r.Context(), id, req.Password); err != nil {
		gateway.WriteError(w, r, c.log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// agentID returns the {id} path parameter, answering 404 for one that
// cannot be an agent id.
func (c *Console) agentID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := chi.URLParam(r, "id")
	if !gateway.ValidID(id, 64) {
		gateway.WriteError(w, r, c.log, tandem.Errorf(tandem.ENOTFOUND, "agent not found"))
		return "", false
	}
	return id, true
}

// limiter is a bounded set of per-key token buckets.
type limiter struct {
	rate  float64
	burst float64
	max   int

	mu      sync.Mutex // guards buckets
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(rate float64, burst, max int) *limiter {
	return &limiter{rate: rate, burst: float64(burst), max: max, buckets: map[string]*bucket{}}
}

func (l *limiter) allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= l.max {
			l.evict(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	b.tokens = math.Min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// retryAfter is how long until key's bucket holds a token again (0 when
// it does now).
func (l *limiter) retryAfter(key string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil || l.rate <= 0 {
		return 0
	}
	missing := 1 - math.Min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	if missing <= 0 {
		return 0
	}
	return time.Duration(missing / l.rate * float64(time.Second))
}

// refuseLogin answers 429 with Retry-After (whole seconds, rounded up):
// the longer wait of the address's and the account's (when known) limits,
// so that a client retrying then is not refused by the other.
func (c *Console) refuseLogin(w http.ResponseWriter, r *http.Request, ip, account, msg string, now time.Time) {
	wait := c.logins.retryAfter(ip, now)
	if account != "" {
		wait = max(wait, c.accountLogins.retryAfter(account, now))
	}
	secs := int64(math.Ceil(wait.Seconds()))
	w.Header().Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
	gateway.WriteError(w, r, c.log, tandem.Errorf(tandem.EOVERLOADED, "%s", msg))
}

// evict makes room when the limiter is full: it forgets the buckets that
// have refilled (no different from new ones), else the one with the most
// tokens now, so that the clients being limited stay limited.
func (l *limiter) evict(now time.Time) {
	var fullest string
	most := -1.0
	for k, b := range l.buckets {
		t := b.tokens + now.Sub(b.last).Seconds()*l.rate
		if t >= l.burst {
			delete(l.buckets, k)
			continue
		}
		if t > most {
			fullest, most = k, t
		}
	}
	if len(l.buckets) >= l.max {
		delete(l.buckets, fullest)
	}
}
