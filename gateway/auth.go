package gateway

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tandem-chat/tandem"
)

// Roles carried by tokens.
const (
	RoleCustomer = "customer"
	RoleAgent    = "agent"
	RoleAdmin    = "admin"
)

// Site is a website that embeds the widget.
type Site struct {
	Key  string // public site key, in the widget's data-site-key
	Name string
	// Secret signs verified identities: the site's backend computes
	// hex(HMAC-SHA256(Secret, user id)) and hands it to the widget.
	Secret []byte
	// AllowedOrigins lists the origins (scheme://host[:port]) allowed to
	// open the widget. "*" allows any origin; "self" allows the gateway's
	// own origin (the demo page).
	AllowedOrigins []string
}

// SiteStore finds sites by key.
type SiteStore interface {
	// Site returns the site or an ENOTFOUND error.
	Site(ctx context.Context, key string) (Site, error)
}

// StaticSites is a SiteStore over a fixed set of sites (from configuration).
type StaticSites map[string]Site

// Site implements SiteStore.
func (s StaticSites) Site(_ context.Context, key string) (Site, error) {
	site, ok := s[key]
	if !ok {
		return Site{}, tandem.Errorf(tandem.ENOTFOUND, "unknown site key")
	}
	return site, nil
}

// OriginAllowed reports whether the request's Origin may use the site. A
// request without an Origin header (not a browser) is allowed only for "*".
func (s Site) OriginAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	for _, a := range s.AllowedOrigins {
		switch {
		case a == "*":
			return true
		case origin == "":
			continue
		case a == "self":
			if u, err := url.Parse(origin); err == nil && strings.EqualFold(u.Host, r.Host) {
				return true
			}
		case strings.EqualFold(strings.TrimRight(a, "/"), origin):
			return true
		}
	}
	return false
}

// SignIdentity returns the signature a site's back end gives the widget
// for a signed-in customer: hex(HMAC-SHA256(site secret, user_id)).
func SignIdentity(secret []byte, userID string) string {
	return hex.EncodeToString(identityMAC(secret, userID, ""))
}

// SignIdentityTier is SignIdentity for a customer with a tier (e.g. "vip"):
// the HMAC covers user_id + "\n" + tier, so a customer cannot give
// themselves a tier. (A user id holds no control characters, so the two
// forms cannot be confused.)
func SignIdentityTier(secret []byte, userID, tier string) string {
	return hex.EncodeToString(identityMAC(secret, userID, tier))
}

func identityMAC(secret []byte, userID, tier string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(userID))
	if tier != "" {
		m.Write([]byte{'\n'})
		m.Write([]byte(tier))
	}
	return m.Sum(nil)
}

// VerifyIdentity checks, in constant time, a signature made by SignIdentity
// (tier "") or SignIdentityTier.
func VerifyIdentity(secret []byte, userID, tier, signature string) bool {
	if len(secret) == 0 || userID == "" {
		return false
	}
	got, err := hex.DecodeString(signature)
	if err != nil {
		return false
	}
	return hmac.Equal(got, identityMAC(secret, userID, tier))
}

// Claims are the claims of every Tandem token (HS256 JWT).
type Claims struct {
	Role           string `json:"role"`
	Name           string `json:"name,omitempty"`
	ConversationID string `json:"cid,omitempty"`  // customer tokens
	SiteKey        string `json:"site,omitempty"` // customer tokens
	Verified       bool   `json:"ver,omitempty"`  // customer tokens: identity signed by the site
	Stamp          string `json:"stm,omitempty"`  // staff tokens: the credential stamp of the password they were issued for
	jwt.RegisteredClaims
}

// Principal is an authenticated caller.
type Principal struct {
	Role           string // RoleCustomer, RoleAgent or RoleAdmin
	ID             string // customer id, agent id, or "admin" for the admin token
	Name           string
	ConversationID string // customers: the only conversation they may use
	SiteKey        string
	Verified       bool
	Stamp          string // staff: the credential stamp the token was issued for
	Expires        time.Time
}

// Expired reports whether p's token has expired since it was parsed (a
// connection opened with it stays open past its expiry otherwise).
func (a *Auth) Expired(p Principal) bool {
	return !p.Expires.IsZero() && !a.now().Before(p.Expires)
}

// CheckStamp refuses a staff token issued for another password than the
// account's current one (stamp; "" = the account has none to compare).
func (p Principal) CheckStamp(stamp string) error {
	if stamp != "" && p.Stamp != stamp {
		return tandem.Errorf(tandem.EUNAUTHORIZED, "this token was ended (password or role changed, or account disabled, since it was issued); log in again")
	}
	return nil
}

// Auth issues and verifies tokens. It is safe for concurrent use.
type Auth struct {
	secret      []byte
	adminToken  string
	customerTTL time.Duration
	now         func() time.Time
	staff       atomic.Pointer[StaffLookup]
}

// StaffLookup returns the current role and credential stamp of the agent or
// admin with the given id, or an error when the account is disabled or gone
// (any error with code EUNAUTHORIZED, EFORBIDDEN or ENOTFOUND refuses the
// token; other errors, such as an unavailable store, are returned as they
// are). A non-empty stamp that differs from the token's refuses it: the
// password changed after the token was issued.
type StaffLookup func(ctx context.Context, id string) (role, stamp string, err error)

// SetStaffLookup makes Authenticate check every agent or admin JWT against
// the account store, so that disabling an account, changing its role or
// its password takes effect at once instead of when its token expires.
func (a *Auth) SetStaffLookup(f StaffLookup) { a.staff.Store(&f) }

const tokenIssuer = "tandem"

// NewAuth returns an Auth signing with secret (at least 32 bytes). An empty
// adminToken disables the static admin token (JWTs still work).
func NewAuth(secret []byte, adminToken string, customerTTL time.Duration) (*Auth, error) {
	if len(secret) < 32 {
		return nil, errors.New("gateway: token secret must be at least 32 bytes")
	}
	if customerTTL <= 0 {
		customerTTL = 30 * 24 * time.Hour
	}
	return &Auth{secret: secret, adminToken: adminToken, customerTTL: customerTTL, now: time.Now}, nil
}

func (a *Auth) sign(c Claims, ttl time.Duration) (string, error) {
	now := a.now()
	c.Issuer = tokenIssuer
	c.IssuedAt = jwt.NewNumericDate(now)
	c.ExpiresAt = jwt.NewNumericDate(now.Add(ttl))
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(a.secret)
	if err != nil {
		return "", tandem.WrapError(tandem.EINTERNAL, err, "cannot sign token")
	}
	return s, nil
}

// IssueCustomer returns a token that lets its holder use one conversation.
func (a *Auth) IssueCustomer(c tandem.Conversation) (string, error) {
	return a.sign(Claims{Role: RoleCustomer, Name: c.Customer.Name, ConversationID: c.ID, SiteKey: c.SiteKey,
		Verified: c.Customer.Verified, RegisteredClaims: jwt.RegisteredClaims{Subject: c.Customer.ID}}, a.customerTTL)
}

// IssueStaff returns an agent or admin token (the handoff login uses it);
// stamp is the credential stamp of the password it is issued for.
func (a *Auth) IssueStaff(id, name, role, stamp string, ttl time.Duration) (string, error) {
	if role != RoleAgent && role != RoleAdmin {
		return "", tandem.Errorf(tandem.EINVALID, "role must be agent or admin")
	}
	return a.sign(Claims{Role: role, Name: name, Stamp: stamp, RegisteredClaims: jwt.RegisteredClaims{Subject: id}}, ttl)
}

// Parse verifies a token (HS256 only, issuer, expiry) and returns its principal.
func (a *Auth) Parse(token string) (Principal, error) {
	var c Claims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return a.secret, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithIssuer(tokenIssuer), jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(a.now))
	if err != nil {
		return Principal{}, tandem.WrapError(tandem.EUNAUTHORIZED, err, "invalid or expired token")
	}
	p := Principal{Role: c.Role, ID: c.Subject, Name: c.Name, ConversationID: c.ConversationID, SiteKey: c.SiteKey, Verified: c.Verified, Stamp: c.Stamp}
	if c.ExpiresAt != nil {
		p.Expires = c.ExpiresAt.Time
	}
	switch {
	case p.ID == "":
		return Principal{}, tandem.Errorf(tandem.EUNAUTHORIZED, "invalid token")
	case p.Role == RoleCustomer && (p.ConversationID == "" || p.SiteKey == ""):
		return Principal{}, tandem.Errorf(tandem.EUNAUTHORIZED, "invalid token")
	case p.Role != RoleCustomer && p.Role != RoleAgent && p.Role != RoleAdmin:
		return Principal{}, tandem.Errorf(tandem.EUNAUTHORIZED, "invalid token")
	}
	return p, nil
}

// Authenticate reads "Authorization: Bearer <token>": the static admin
// token or a JWT. With a StaffLookup set, an agent or admin JWT counts only
// while its account is enabled, and with the account's current role.
func (a *Auth) Authenticate(r *http.Request) (Principal, error) {
	// The scheme name is case-insensitive (RFC 9110, 11.1).
	scheme, token, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return Principal{}, tandem.Errorf(tandem.EUNAUTHORIZED, "missing bearer token")
	}
	if a.adminToken != "" && subtle.ConstantTimeCompare([]byte(token), []byte(a.adminToken)) == 1 {
		return Principal{Role: RoleAdmin, ID: "admin", Name: "admin"}, nil
	}
	p, err := a.Parse(token)
	if err != nil || (p.Role != RoleAgent && p.Role != RoleAdmin) {
		return p, err
	}
	if f := a.staff.Load(); f != nil {
		role, stamp, err := (*f)(r.Context(), p.ID)
		switch tandem.ErrorCode(err) {
		case "":
		case tandem.EUNAUTHORIZED, tandem.EFORBIDDEN, tandem.ENOTFOUND:
			return Principal{}, tandem.Errorf(tandem.EUNAUTHORIZED, "this account is disabled or no longer exists")
		default:
			return Principal{}, err
		}
		if role != RoleAgent && role != RoleAdmin {
			return Principal{}, tandem.Errorf(tandem.EUNAUTHORIZED, "invalid token")
		}
		if err := p.CheckStamp(stamp); err != nil {
			return Principal{}, err
		}
		p.Role = role
	}
	return p, nil
}
