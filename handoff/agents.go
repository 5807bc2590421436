package handoff

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/mail"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"golang.org/x/text/unicode/norm"

	"github.com/tandem-chat/tandem"
)

// Agent roles.
const (
	RoleAgent = "agent"
	RoleAdmin = "admin"
)

// Limits on agent accounts.
const (
	MaxChatsLimit     = 100
	MinPasswordLength = 8  // in characters
	MaxPasswordLength = 72 // bcrypt's limit, in bytes
	maxNameLength     = 100
	maxTags           = 50
)

// Actor is who performs an agent action: the agent's ID (the JWT subject)
// and whether they are an admin. Admins may act on tickets held by others.
type Actor struct {
	AgentID string
	Admin   bool
}

// CreateAgent creates an agent account. The ID is generated; CreatedAt is
// the clock's time; an empty Role means agent, MaxChats 0 means
// Config.DefaultMaxChats, an empty DisplayName the email's local part. An
// empty password creates an account that cannot log in until SetPassword.
// The returned agent has no password hash.
func (e *Engine) CreateAgent(ctx context.Context, a tandem.Agent, password string) (tandem.Agent, error) {
	a.ID = newID("agt_")
	a.CreatedAt = e.now()
	if a.MaxChats == 0 {
		a.MaxChats = e.cfg.DefaultMaxChats
	}
	a, err := validateAgent(a)
	if err != nil {
		return tandem.Agent{}, err
	}
	a.PasswordHash = nil
	if password != "" {
		if a.PasswordHash, err = e.hash(password); err != nil {
			return tandem.Agent{}, err
		}
	}
	if err := e.store.CreateAgent(ctx, a); err != nil {
		return tandem.Agent{}, fmt.Errorf("handoff: create agent: %w", err)
	}
	a.PasswordHash = nil
	return a, nil
}

// UpdateAgent replaces an agent's profile (email, display name, role,
// skills, languages, max chats, disabled) and returns the stored agent.
// Disabling an agent withdraws their pending offers at once and emits
// EventPresence with the disabled agent, on which consoles end the agent's
// sessions; the next Heartbeat refuses them anyway (EFORBIDDEN: the gateway
// closes the socket), so their assigned chats are re-queued after DisconnectGrace
// unless an admin transfers them first.
func (e *Engine) UpdateAgent(ctx context.Context, a tandem.Agent) (tandem.Agent, error) {
	old, err := e.store.Agent(ctx, a.ID)
	if err != nil {
		return tandem.Agent{}, err
	}
	a.CreatedAt = old.CreatedAt
	if a.MaxChats == 0 {
		a.MaxChats = old.MaxChats
	}
	if a, err = validateAgent(a); err != nil {
		return tandem.Agent{}, err
	}
	if err := e.store.UpdateAgent(ctx, a); err != nil {
		return tandem.Agent{}, fmt.Errorf("handoff: update agent: %w", err)
	}
	return e.agentUpdated(ctx, a)
}

// SetDisabled disables or enables an agent account; disabling does what
// UpdateAgent does on it. The rest of the profile stays as stored, even if
// it predates today's validation rules, so that any account can be locked
// out. The flag is set by compare-and-swap on the profile, so a profile
// change (PatchAgent) made at the same moment cannot put back the old
// flag.
func (e *Engine) SetDisabled(ctx context.Context, agentID string, disabled bool) (tandem.Agent, error) {
	return e.swapProfile(ctx, agentID, func(a tandem.Agent) (tandem.Agent, error) {
		if disabled {
			// Disabling ends the account's tokens for good, also once it
			// is enabled again (a compromised account's stolen token must
			// not come back).
			cur := a
			if err := e.revokeTokens(ctx, &cur); err != nil {
				return tandem.Agent{}, err
			}
		}
		a.Disabled = disabled
		return a, nil
	})
}

// swapProfile replaces an agent's stored profile with change's result by
// compare-and-swap against the profile change was given, reading it again
// and retrying (five attempts) when another change lands in between, and
// then does what follows a profile change (agentUpdated).
func (e *Engine) swapProfile(ctx context.Context, agentID string, change func(tandem.Agent) (tandem.Agent, error)) (tandem.Agent, error) {
	for attempt := 0; ; attempt++ {
		old, err := e.store.Agent(ctx, agentID)
		if err != nil {
			return tandem.Agent{}, err
		}
		next, err := change(old)
		if err != nil {
			return tandem.Agent{}, err
		}
		ok, err := e.store.SwapAgent(ctx, old, next)
		if err != nil {
			return tandem.Agent{}, fmt.Errorf("handoff: update agent: %w", err)
		}
		if ok {
			return e.agentUpdated(ctx, next)
		}
		if attempt == 4 {
			return tandem.Agent{}, tandem.Errorf(tandem.ECONFLICT, "the account keeps changing; retry")
		}
	}
}

// revokeTokens ends every token issued to agent a (read from the store):
// a new revocation nonce changes the credential stamp, not the password.
// Compare-and-swap on the hash, so that a password changed at the same
// moment is not put back; a is updated to the stored agent.
func (e *Engine) revokeTokens(ctx context.Context, a *tandem.Agent) error {
	for attempt := 0; len(a.PasswordHash) > 0; attempt++ {
		nonce := make([]byte, 8)
		if _, err := rand.Read(nonce); err != nil {
			return fmt.Errorf("handoff: revoke tokens: %w", err)
		}
		h := append(append(slices.Clone(bcryptPart(a.PasswordHash)), revokeSep), hex.EncodeToString(nonce)...)
		ok, err := e.store.SwapPasswordHash(ctx, a.ID, a.PasswordHash, h)
		if err != nil {
			return fmt.Errorf("handoff: revoke tokens: %w", err)
		}
		if ok {
			a.PasswordHash = h
			return nil
		}
		if attempt == 4 {
			return tandem.Errorf(tandem.ECONFLICT, "the account's password keeps changing; retry")
		}
		if *a, err = e.store.Agent(ctx, a.ID); err != nil {
			return err
		}
	}
	return nil
}

// AgentPatch changes part of an agent's profile; nil fields are kept.
type AgentPatch struct {
	Email       *string
	DisplayName *string
	Role        *string
	Skills      *[]string
	Languages   *[]string
	MaxChats    *int
}

// Empty reports whether the patch changes nothing.
func (p AgentPatch) Empty() bool {
	return p.Email == nil && p.DisplayName == nil && p.Role == nil && p.Skills == nil && p.Languages == nil && p.MaxChats == nil
}

// PatchAgent applies p to an agent's stored profile and returns the stored
// agent. The result is validated as a whole (as CreateAgent validates). It
// is applied by compare-and-swap on the profile, read again and retried
// when another change lands in between, so concurrent patches and
// SetDisabled never undo each other. A role change ends the agent's tokens
// first (as disabling does): the agent logs in again with the new role,
// and an open console closes at once on the EventPresence that follows (at
// its next heartbeat, should the event be lost) instead of keeping the old
// role's powers. The name, skills, languages and max chats apply to
// routing at once; an open console shows a new display name to customers
// from its next login.
func (e *Engine) PatchAgent(ctx context.Context, agentID string, p AgentPatch) (tandem.Agent, error) {
	if p.Empty() {
		return tandem.Agent{}, tandem.Errorf(tandem.EINVALID, "nothing to change: give at least one of email, display_name, role, skills, languages, max_chats")
	}
	return e.swapProfile(ctx, agentID, func(old tandem.Agent) (tandem.Agent, error) {
		a := cloneAgentProfile(old)
		if p.Email != nil {
			a.Email = *p.Email
		}
		if p.DisplayName != nil {
			a.DisplayName = *p.DisplayName
		}
		if p.Role != nil {
			a.Role = *p.Role
			if a.Role == "" {
				return tandem.Agent{}, tandem.Errorf(tandem.EINVALID, "role must be %q or %q", RoleAgent, RoleAdmin)
			}
		}
		if p.Skills != nil {
			a.Skills = slices.Clone(*p.Skills)
		}
		if p.Languages != nil {
			a.Languages = slices.Clone(*p.Languages)
		}
		if p.MaxChats != nil {
			a.MaxChats = *p.MaxChats
		}
		a, err := validateAgent(a)
		if err != nil {
			return tandem.Agent{}, err
		}
		if a.Role != old.Role {
			// On a copy: revokeTokens reads the agent again when the hash
			// changed meanwhile, and the swap must still compare against
			// the profile a was built from (a disable in between, which
			// changes the hash too, then fails the swap: read again).
			cur := old
			if err := e.revokeTokens(ctx, &cur); err != nil {
				return tandem.Agent{}, err
			}
		}
		return a, nil
	})
}

// cloneAgentProfile copies a's profile with its own slices.
func cloneAgentProfile(a tandem.Agent) tandem.Agent {
	a.Skills, a.Languages = slices.Clone(a.Skills), slices.Clone(a.Languages)
	return a
}

// revokeSep separates a stored bcrypt hash from the revocation nonce that
// disabling an account appends (bcrypt's alphabet has no '~').
const revokeSep = '~'

// bcryptPart is the bcrypt hash of a stored password hash, without a
// revocation nonce.
func bcryptPart(h []byte) []byte {
	if i := bytes.IndexByte(h, revokeSep); i >= 0 {
		return h[:i]
	}
	return h
}

// agentUpdated does what follows a change of agent a's profile. A
// disabled agent's offers are withdrawn and consoles told every time, not
// only when it becomes disabled: a retry after a failure half-way (the
// account stored as disabled, the rest not done) finishes the job.
func (e *Engine) agentUpdated(ctx context.Context, a tandem.Agent) (tandem.Agent, error) {
	// The change is stored: finish what follows even if the caller goes
	// away now (bounded, as a request would be).
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if a.Disabled {
		if err := e.withdrawOffers(ctx, a.ID, e.now()); err != nil {
			return tandem.Agent{}, err
		}
	}
	// Consoles show the new profile; they end the agent's sessions at once
	// when the account is disabled or its role changed (the next Heartbeat
	// refuses them anyway, should the event be lost).
	if st, err := e.AgentStatus(ctx, a.ID); err == nil {
		e.emit(Event{Type: EventPresence, AgentID: a.ID, Agent: ptr(st)})
	}
	e.requestRoute() // more capacity or skills may make routing possible
	e.mu.Lock()
	delete(e.names, a.ID)
	e.capAt = time.Time{}
	e.mu.Unlock()
	return e.Agent(ctx, a.ID)
}

// SetPassword sets an agent's password (MinPasswordLength to
// MaxPasswordLength bytes).
func (e *Engine) SetPassword(ctx context.Context, agentID, password string) error {
	h, err := e.hash(password)
	if err != nil {
		return err
	}
	if err := e.store.SetPasswordHash(ctx, agentID, h); err != nil {
		return fmt.Errorf("handoff: set password: %w", err)
	}
	return nil
}

// CheckPassword checks a new password: valid UTF-8, at least
// MinPasswordLength characters and at most MaxPasswordLength bytes (bcrypt
// reads no more).
func CheckPassword(password string) error {
	switch {
	case !utf8.ValidString(password):
		return tandem.Errorf(tandem.EINVALID, "password is not valid UTF-8")
	case utf8.RuneCountInString(password) < MinPasswordLength:
		return tandem.Errorf(tandem.EINVALID, "password must be at least %d characters", MinPasswordLength)
	case len(password) > MaxPasswordLength:
		return tandem.Errorf(tandem.EINVALID, "password must be at most %d bytes (UTF-8)", MaxPasswordLength)
	}
	return nil
}

func (e *Engine) hash(password string) ([]byte, error) {
	if err := CheckPassword(password); err != nil {
		return nil, err
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), e.cfg.BcryptCost)
	if err != nil {
		return nil, fmt.Errorf("handoff: bcrypt: %w", err)
	}
	return h, nil
}

// Authenticate checks an email and password and returns the agent (without
// its hash). Any mismatch, unknown email, disabled account or account
// without a password is EUNAUTHORIZED with the same message, and costs one bcrypt comparison, so
// responses do not reveal which emails exist. Issuing the session token
// (JWT) is the gateway's job (gateway.Auth.IssueStaff).
func (e *Engine) Authenticate(ctx context.Context, email, password string) (tandem.Agent, error) {
	a, _, err := e.Login(ctx, email, password)
	return a, err
}

// Login is Authenticate that also returns the CredentialStamp of the
// password checked, for the session token to carry.
func (e *Engine) Login(ctx context.Context, email, password string) (tandem.Agent, string, error) {
	a, err := e.authenticate(ctx, email, password)
	stamp := CredentialStamp(a.PasswordHash)
	a.PasswordHash = nil
	return a, stamp, err
}

func (e *Engine) authenticate(ctx context.Context, email, password string) (tandem.Agent, error) {
	deny := tandem.Errorf(tandem.EUNAUTHORIZED, "invalid email or password")
	email = strings.TrimSpace(email)
	if !utf8.ValidString(email) || strings.IndexFunc(email, unicode.IsControl) >= 0 || len(email) > 254 {
		// No such account can exist (PostgreSQL cannot even compare NUL):
		// answer as for an unknown email, at the same cost.
		_ = bcrypt.CompareHashAndPassword(e.dummy, []byte(password))
		return tandem.Agent{}, deny
	}
	a, err := e.store.AgentByEmail(ctx, norm.NFC.String(email))
	if tandem.ErrorCode(err) == tandem.ENOTFOUND && norm.NFC.String(email) != email {
		// An account stored before emails were kept in NFC, under the
		// spelling typed now.
		a, err = e.store.AgentByEmail(ctx, email)
	}
	switch {
	case tandem.ErrorCode(err) == tandem.ENOTFOUND || (err == nil && len(a.PasswordHash) == 0):
		_ = bcrypt.CompareHashAndPassword(e.dummy, []byte(password))
		return tandem.Agent{}, deny
	case err != nil:
		return tandem.Agent{}, fmt.Errorf("handoff: authenticate: %w", err)
	}
	if bcrypt.CompareHashAndPassword(bcryptPart(a.PasswordHash), []byte(password)) != nil {
		return tandem.Agent{}, deny
	}
	if a.Disabled {
		// The same answer as a wrong password: a different one would
		// confirm to whoever tries it that the password is right.
		return tandem.Agent{}, deny
	}
	return a, nil
}

// Agent returns an agent without its password hash.
func (e *Engine) Agent(ctx context.Context, id string) (tandem.Agent, error) {
	a, err := e.store.Agent(ctx, id)
	a.PasswordHash = nil
	return a, err
}

// AgentWithStamp returns an agent (without the password hash) and the
// CredentialStamp of its password.
func (e *Engine) AgentWithStamp(ctx context.Context, id string) (tandem.Agent, string, error) {
	a, err := e.store.Agent(ctx, id)
	stamp := CredentialStamp(a.PasswordHash)
	a.PasswordHash = nil
	return a, stamp, err
}

// CredentialStamp is a short fingerprint of a password hash ("" for none).
// Staff tokens carry the stamp of the password they were issued for, so a
// token is refused once the password changes (a fingerprint of the salted
// bcrypt hash, it tells nothing about the password).
func CredentialStamp(hash []byte) string {
	if len(hash) == 0 {
		return ""
	}
	sum := sha256.Sum256(hash)
	return base64.RawURLEncoding.EncodeToString(sum[:9])
}

// Agents lists all agents (without password hashes) ordered by ID.
func (e *Engine) Agents(ctx context.Context) ([]tandem.Agent, error) {
	as, err := e.store.Agents(ctx)
	for i := range as {
		as[i].PasswordHash = nil
	}
	return as, err
}

func validateAgent(a tandem.Agent) (tandem.Agent, error) {
	// NFC: "ü" typed as one code point or as u + combining diaeresis is
	// the same address (two accounts could hold it).
	a.Email = norm.NFC.String(strings.ToLower(strings.TrimSpace(a.Email)))
	if addr, err := mail.ParseAddress(a.Email); err != nil || addr.Address != a.Email || addr.Name != "" {
		return a, tandem.Errorf(tandem.EINVALID, "invalid email address %q", a.Email)
	}
	a.DisplayName = strings.TrimSpace(a.DisplayName)
	if a.DisplayName == "" {
		// The email's local part, cut to the name's limit (it said
		// "display name longer than 100 characters" when none was sent).
		a.DisplayName, _, _ = strings.Cut(a.Email, "@")
		if r := []rune(a.DisplayName); len(r) > maxNameLength {
			a.DisplayName = string(r[:maxNameLength])
		}
	}
	if utf8.RuneCountInString(a.DisplayName) > maxNameLength {
		return a, tandem.Errorf(tandem.EINVALID, "display name longer than %d characters", maxNameLength)
	}
	switch a.Role {
	case "":
		a.Role = RoleAgent
	case RoleAgent, RoleAdmin:
	default:
		return a, tandem.Errorf(tandem.EINVALID, "role must be %q or %q", RoleAgent, RoleAdmin)
	}
	if a.MaxChats < 1 || a.MaxChats > MaxChatsLimit {
		return a, tandem.Errorf(tandem.EINVALID, "max chats must be between 1 and %d", MaxChatsLimit)
	}
	if strings.IndexFunc(a.DisplayName, unicode.IsControl) >= 0 {
		return a, tandem.Errorf(tandem.EINVALID, "display name contains control characters")
	}
	if len(a.Skills) > maxTags || len(a.Languages) > maxTags {
		// Counted as sent too: normalising thousands of copies first is
		// work the limit is there to bound.
		return a, tandem.Errorf(tandem.EINVALID, "at most %d skills and %d languages", maxTags, maxTags)
	}
	a.Skills = NormalizeTags(a.Skills)
	langs := make([]string, len(a.Languages))
	for i, l := range a.Languages {
		langs[i] = NormalizeLanguage(l)
	}
	a.Languages = NormalizeTags(langs)
	if len(a.Skills) > maxTags || len(a.Languages) > maxTags {
		return a, tandem.Errorf(tandem.EINVALID, "at most %d skills and %d languages", maxTags, maxTags)
	}
	if err := checkSkills(a.Skills); err != nil {
		return a, err
	}
	for _, l := range a.Languages {
		if len(l) > 35 || !languageRE.MatchString(l) {
			return a, tandem.Errorf(tandem.EINVALID, "invalid language %q: want a language tag like \"en\" or \"pt-br\"", l)
		}
	}
	return a, nil
}

// Connect records a new console connection of an agent and returns its
// session ID, which the gateway passes to Heartbeat and Disconnect. An
// agent may have several sessions (tabs, nodes); they are connected while
// any session is live. The agent's chosen presence is kept (new agents are
// online).
func (e *Engine) Connect(ctx context.Context, agentID string) (string, AgentStatus, error) {
	before, err := e.AgentStatus(ctx, agentID)
	if err != nil {
		return "", AgentStatus{}, err
	}
	if before.Agent.Disabled {
		return "", AgentStatus{}, errDisabled
	}
	sid := newID("ses_")
	if err := e.store.OpenSession(ctx, agentID, sid, e.cfg.Node, e.now()); err != nil {
		return "", AgentStatus{}, fmt.Errorf("handoff: connect: %w", err)
	}
	after, err := e.AgentStatus(ctx, agentID)
	if err != nil {
		// The caller gets no session id to close: do not leave a session
		// that makes the agent look connected (and routable) without a
		// console until it times out.
		if cerr := e.store.CloseSession(ctx, agentID, sid, e.now()); cerr != nil {
			e.log.Warn("connect: close the session after a failure", "agent", agentID, "session", sid, "err", cerr)
		}
		return "", AgentStatus{}, err
	}
	e.presenceChanged(before, after)
	e.requestRoute()
	return sid, after, nil
}

// Heartbeat keeps a session live. The gateway calls it on every pong (or at
// least every HeartbeatTimeout/3). A session unknown to the store (pruned
// after a long network outage) is recreated. For a disabled agent it
// returns EFORBIDDEN: close the console's socket.
func (e *Engine) Heartbeat(ctx context.Context, agentID, sessionID string) error {
	_, err := e.heartbeat(ctx, agentID, sessionID)
	return err
}

// HeartbeatWithStamp is Heartbeat that also returns the CredentialStamp of
// the agent's current password and their current role, so that a console
// opened with a token issued before a password change, or before a role
// change (made by any process: both come from the store), can end itself.
func (e *Engine) HeartbeatWithStamp(ctx context.Context, agentID, sessionID string) (stamp, role string, err error) {
	a, err := e.heartbeat(ctx, agentID, sessionID)
	if err != nil {
		return "", "", err
	}
	return CredentialStamp(a.PasswordHash), a.Role, nil
}

// heartbeat does Heartbeat's work and returns the stored agent.
func (e *Engine) heartbeat(ctx context.Context, agentID, sessionID string) (tandem.Agent, error) {
	now := e.now()
	a, err := e.store.Agent(ctx, agentID)
	if err != nil {
		return tandem.Agent{}, err
	}
	if a.Disabled {
		return tandem.Agent{}, errDisabled
	}
	err = e.store.TouchSession(ctx, agentID, sessionID, now)
	if tandem.ErrorCode(err) == tandem.ENOTFOUND {
		err = e.store.OpenSession(ctx, agentID, sessionID, e.cfg.Node, now)
	}
	if err != nil {
		return tandem.Agent{}, fmt.Errorf("handoff: heartbeat: %w", err)
	}
	return a, nil
}

// Disconnect ends a session. When it was the agent's last one, the agent
// is offline for routing at once, but keeps their tickets for
// DisconnectGrace; reconnecting within the grace period changes nothing
// else. After it, Tick queues their tickets again (nothing is lost: the
// conversation and its ticket stay, only the holder changes).
func (e *Engine) Disconnect(ctx context.Context, agentID, sessionID string) error {
	before, err := e.AgentStatus(ctx, agentID)
	if err != nil {
		return err
	}
	if err := e.store.CloseSession(ctx, agentID, sessionID, e.now()); err != nil {
		return fmt.Errorf("handoff: disconnect: %w", err)
	}
	after, err := e.AgentStatus(ctx, agentID)
	if err != nil {
		return err
	}
	e.presenceChanged(before, after)
	return nil
}

// SignOut ends a session the agent closed on purpose (the console's "Sign
// out"). When it was their last live session, their offers and chats go
// back to the queue at once instead of after DisconnectGrace, which is for
// connections that drop and come back: customers do not wait a minute on
// an agent who has left. It returns how many tickets were re-queued.
func (e *Engine) SignOut(ctx context.Context, agentID, sessionID string) (int, error) {
	if err := e.Disconnect(ctx, agentID, sessionID); err != nil {
		return 0, err
	}
	ts, err := e.AgentTickets(ctx, agentID)
	if err != nil {
		return 0, fmt.Errorf("handoff: sign out: %w", err)
	}
	now := e.now()
	// Gone with no grace: no live session, and no sign of life after this
	// instant (the session just closed counts as one at now).
	n, err := e.requeueHeld(ctx, ts, &Gone{LiveAfter: e.liveAfter(now), Cutoff: now.Add(time.Millisecond)}, now, ReasonSignOut)
	if err != nil {
		return n, fmt.Errorf("handoff: sign out: %w", err)
	}
	return n, nil
}

// SetPresence sets the presence an agent chose. Away and offline agents
// get no new offers; their pending offers go back to the queue at once
// (without skipping them), and their assigned chats stay with them.
func (e *Engine) SetPresence(ctx context.Context, agentID string, p tandem.Presence) (AgentStatus, error) {
	switch p {
	case tandem.PresenceOnline, tandem.PresenceAway, tandem.PresenceOffline:
	default:
		return AgentStatus{}, tandem.Errorf(tandem.EINVALID, "presence must be online, away or offline")
	}
	before, err := e.AgentStatus(ctx, agentID)
	if err != nil {
		return AgentStatus{}, err
	}
	now := e.now()
	if err := e.store.SetPresence(ctx, agentID, p, now); err != nil {
		return AgentStatus{}, fmt.Errorf("handoff: set presence: %w", err)
	}
	if p != tandem.PresenceOnline {
		if err := e.withdrawOffers(ctx, agentID, now); err != nil {
			// The presence is stored: consoles must show it even though
			// the call failed half-way (a retry finishes the withdrawal).
			if after, serr := e.AgentStatus(ctx, agentID); serr == nil {
				e.presenceChanged(before, after)
			}
			return AgentStatus{}, err
		}
	}
	after, err := e.AgentStatus(ctx, agentID)
	if err != nil {
		return AgentStatus{}, err
	}
	e.presenceChanged(before, after)
	e.requestRoute()
	return after, nil
}

// withdrawOffers puts the agent's pending offers back in the queue (not
// skipping the agent).
func (e *Engine) withdrawOffers(ctx context.Context, agentID string, now time.Time) error {
	offers, err := e.store.Tickets(ctx, TicketFilter{States: []tandem.TicketState{tandem.TicketOffered}, AgentID: agentID})
	if err != nil {
		return fmt.Errorf("handoff: withdraw offers: %w", err)
	}
	for _, t := range offers {
		out, err := e.store.Apply(ctx, Change{
			TicketID: t.ID, Now: now, Node: e.cfg.Node, Reason: ReasonPresence,
			From: []tandem.TicketState{tandem.TicketOffered}, Holder: agentID, Version: t.Version,
			To: tandem.TicketQueued,
		})
		if tandem.ErrorCode(err) == tandem.ECONFLICT {
			continue
		}
		if err != nil {
			return fmt.Errorf("handoff: withdraw offer %s: %w", t.ID, err)
		}
		e.m.transitions.WithLabelValues(ReasonPresence).Inc()
		e.emit(Event{Type: EventRequeued, At: now, Ticket: ptr(out), PrevAgentID: agentID, Reason: ReasonPresence})
	}
	if len(offers) > 0 {
		e.requestRoute()
	}
	return nil
}

var errDisabled = ErrAgentDisabled

// checkSkills checks normalised skills: at most 64 bytes of valid UTF-8
// each, without spaces, commas or control characters.
func checkSkills(skills []string) error {
	for _, s := range skills {
		if len(s) > 64 || strings.ContainsAny(s, " ,") || strings.IndexFunc(s, unicode.IsControl) >= 0 || !utf8.ValidString(s) {
			return tandem.Errorf(tandem.EINVALID, "invalid skill %q: at most 64 characters, no spaces, commas or control characters", s)
		}
	}
	return nil
}

func (e *Engine) presenceChanged(before, after AgentStatus) {
	if before.Presence == after.Presence && before.Connected == after.Connected && before.Chosen == after.Chosen {
		return
	}
	e.mu.Lock()
	e.lastPos = e.lastPos.Add(-e.cfg.PositionInterval) // agents online changed: refresh positions soon
	e.capAt = time.Time{}
	delete(e.names, after.Agent.ID)
	e.mu.Unlock()
	e.emit(Event{Type: EventPresence, AgentID: after.Agent.ID, Agent: ptr(after)})
}

// AgentStatus returns an agent's status.
func (e *Engine) AgentStatus(ctx context.Context, agentID string) (AgentStatus, error) {
	st, err := e.store.AgentState(ctx, agentID, e.liveAfter(e.now()))
	if err != nil {
		return AgentStatus{}, err
	}
	return status(st), nil
}

// AgentStatuses returns the status of every agent, ordered by ID.
func (e *Engine) AgentStatuses(ctx context.Context) ([]AgentStatus, error) {
	sts, err := e.store.AgentStates(ctx, e.liveAfter(e.now()))
	if err != nil {
		return nil, err
	}
	out := make([]AgentStatus, len(sts))
	for i, st := range sts {
		out[i] = status(st)
	}
	return out, nil
}

func status(st AgentState) AgentStatus {
	st.Agent.PasswordHash = nil
	return AgentStatus{
		Agent: st.Agent, Presence: st.Effective(), Chosen: st.Presence, Connected: st.Connected(),
		Load: st.Load, IdleSince: st.IdleSince, LastSeen: st.LastSeen,
	}
}

// languageRE is a language tag as NormalizeLanguage writes it.
var languageRE = regexp.MustCompile(`^[a-z]{2,3}(-[a-z0-9]{2,8})*$`)

// NormalizeLanguage writes a language tag the way tickets and agents store
// it, so that they match: trimmed, lower case, hyphens ("en_US" -> "en-us").
func NormalizeLanguage(s string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), "_", "-")
}
