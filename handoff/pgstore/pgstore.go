// Package pgstore is the PostgreSQL handoff.Store (pgx/v5), shared by all
// server nodes. Open applies the embedded migrations under an advisory lock.
//
// How several nodes stay consistent:
//
//   - Route locks a batch of routable queued tickets with SELECT ... FOR
//     UPDATE SKIP LOCKED, so concurrent passes on other nodes take other
//     tickets instead of waiting; it then raises each chosen agent's load
//     with a conditional UPDATE (load < max_chats) and marks the ticket
//     offered in the same statement, so an agent that filled up meanwhile
//     is simply not offered the ticket.
//   - Apply locks the ticket row (FOR UPDATE), checks the change's
//     conditions on the locked row, then moves load between agents with the
//     same conditional UPDATE. Capacity is therefore enforced by the agent
//     row lock plus the condition, in the database, whatever the number of
//     nodes.
//   - Lock order is always tickets first, then agents in ID order, so
//     transactions cannot deadlock on each other; serialization failures
//     and deadlocks (should any arise) are retried.
//   - Every transition is inserted after the locks it depends on are held,
//     so handoff_transitions.seq orders the changes of one ticket, and of
//     one agent's load, in commit order.
//
// Contract: a Store may be used concurrently, by any number of processes.
package pgstore

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/handoff"
	"github.com/tandem-chat/tandem/internal/pgmigrate"
)

var _ handoff.Store = (*Store)(nil)

//go:embed migrations/*.sql
var migrations embed.FS

// Options tune the store. Zero values take the defaults.
type Options struct {
	MaxConns int32 // pool size, default 10
}

// Store is the PostgreSQL store.
type Store struct {
	pool *pgxpool.Pool
}

// Open connects to the database at url, applies the embedded migrations and
// returns a store with its own pool.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	if opts.MaxConns <= 0 {
		opts.MaxConns = 10
	}
	set := pgmigrate.Set{FS: migrations, Dir: "migrations", Table: "handoff_schema_migrations", Lock: 7262011307}
	pool, err := pgmigrate.Open(ctx, url, set, opts.MaxConns, nil)
	if err != nil {
		return nil, fmt.Errorf("handoff/pgstore: %w", err)
	}
	return &Store{pool: pool}, nil
}

// Pool returns the store's pool (for tests and diagnostics).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Close closes the pool.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// tx runs fn in a transaction, retrying serialization failures and
// deadlocks. An error returned by fn rolls back.
func (s *Store) tx(ctx context.Context, fn func(pgx.Tx) error) error {
	for attempt := 0; ; attempt++ {
		err := pgx.BeginFunc(ctx, s.pool, fn)
		var pe *pgconn.PgError
		if errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01") && attempt < 5 {
			continue
		}
		return err
	}
}

func isUnique(err error, constraint string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505" && (constraint == "" || pe.ConstraintName == constraint)
}

func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var te *tandem.Error
	if errors.As(err, &te) {
		return err
	}
	return fmt.Errorf("handoff/pgstore: %s: %w", op, err)
}

// nt maps the zero time to NULL.
func nt(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return handoff.UTC(t)
}

func tv(p *time.Time) time.Time {
	if p == nil {
		return time.Time{}
	}
	return handoff.UTC(*p)
}

func tags(ss []string) []string {
	if ss == nil {
		return []string{}
	}
	return ss
}

func nilIfEmpty(ss []string) []string {
	if len(ss) == 0 {
		return nil
	}
	return ss
}

// ---- agents ----

const agentCols = "id, email, display_name, password_hash, role, skills, languages, max_chats, disabled, created_at"

func scanAgent(row pgx.Row) (tandem.Agent, error) {
	var a tandem.Agent
	err := row.Scan(&a.ID, &a.Email, &a.DisplayName, &a.PasswordHash, &a.Role, &a.Skills, &a.Languages, &a.MaxChats, &a.Disabled, &a.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return a, handoff.ErrAgentNotFound
	}
	a.CreatedAt = handoff.UTC(a.CreatedAt)
	a.Skills, a.Languages = nilIfEmpty(a.Skills), nilIfEmpty(a.Languages)
	if len(a.PasswordHash) == 0 {
		a.PasswordHash = nil
	}
	return a, err
}

// CreateAgent implements handoff.Store.
func (s *Store) CreateAgent(ctx context.Context, a tandem.Agent) error {
	if a.ID == "" {
		return tandem.Errorf(tandem.EINVALID, "agent without an ID")
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO handoff_agents (id, email, display_name, password_hash, role, skills, languages, max_chats, disabled, idle_since, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)`,
		a.ID, a.Email, a.DisplayName, a.PasswordHash, a.Role, tags(a.Skills), tags(a.Languages), a.MaxChats, a.Disabled, handoff.UTC(a.CreatedAt))
	if isUnique(err, "") {
		return handoff.ErrAgentConflict
	}
	return wrap("create agent", err)
}

// UpdateAgent implements handoff.Store.
func (s *Store) UpdateAgent(ctx context.Context, a tandem.Agent) error {
	tag, err := s.pool.Exec(ctx, `UPDATE handoff_agents SET email = $2, display_name = $3, role = $4, skills = $5, languages = $6, max_chats = $7, disabled = $8
		WHERE id = $1`, a.ID, a.Email, a.DisplayName, a.Role, tags(a.Skills), tags(a.Languages), a.MaxChats, a.Disabled)
	if isUnique(err, "") {
		return handoff.ErrAgentConflict
	}
	if err == nil && tag.RowsAffected() == 0 {
		return handoff.ErrAgentNotFound
	}
	return wrap("update agent", err)
}

// SwapAgent implements handoff.Store.
func (s *Store) SwapAgent(ctx context.Context, old, a tandem.Agent) (bool, error) {
	if old.ID != a.ID {
		return false, tandem.Errorf(tandem.EINTERNAL, "pgstore: swap agent: ids %q and %q differ", old.ID, a.ID)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE handoff_agents SET email = $2, display_name = $3, role = $4, skills = $5, languages = $6, max_chats = $7, disabled = $8
		WHERE id = $1 AND email = $9 AND display_name = $10 AND role = $11 AND skills = $12 AND languages = $13 AND max_chats = $14 AND disabled = $15`,
		a.ID, a.Email, a.DisplayName, a.Role, tags(a.Skills), tags(a.Languages), a.MaxChats, a.Disabled,
		old.Email, old.DisplayName, old.Role, tags(old.Skills), tags(old.Languages), old.MaxChats, old.Disabled)
	if isUnique(err, "") {
		return false, handoff.ErrAgentConflict
	}
	if err != nil {
		return false, wrap("swap agent", err)
	}
	if tag.RowsAffected() == 1 {
		return true, nil
	}
	if _, err := s.Agent(ctx, a.ID); err != nil {
		return false, err
	}
	return false, nil
}

// SetPasswordHash implements handoff.Store.
func (s *Store) SetPasswordHash(ctx context.Context, agentID string, hash []byte) error {
	tag, err := s.pool.Exec(ctx, `UPDATE handoff_agents SET password_hash = $2 WHERE id = $1`, agentID, hash)
	if err == nil && tag.RowsAffected() == 0 {
		return handoff.ErrAgentNotFound
	}
	return wrap("set password", err)
}

// SwapPasswordHash implements handoff.Store.
func (s *Store) SwapPasswordHash(ctx context.Context, agentID string, old, hash []byte) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE handoff_agents SET password_hash = $3 WHERE id = $1 AND password_hash IS NOT DISTINCT FROM $2`, agentID, old, hash)
	if err != nil {
		return false, wrap("swap password", err)
	}
	if tag.RowsAffected() == 1 {
		return true, nil
	}
	if _, err := s.Agent(ctx, agentID); err != nil {
		return false, err
	}
	return false, nil
}

// Agent implements handoff.Store.
func (s *Store) Agent(ctx context.Context, id string) (tandem.Agent, error) {
	a, err := scanAgent(s.pool.QueryRow(ctx, `SELECT `+agentCols+` FROM handoff_agents WHERE id = $1`, id))
	return a, wrap("agent", err)
}

// AgentByEmail implements handoff.Store.
func (s *Store) AgentByEmail(ctx context.Context, email string) (tandem.Agent, error) {
	a, err := scanAgent(s.pool.QueryRow(ctx, `SELECT `+agentCols+` FROM handoff_agents WHERE lower(email) = lower($1)`, email))
	return a, wrap("agent by email", err)
}

// Agents implements handoff.Store.
func (s *Store) Agents(ctx context.Context) ([]tandem.Agent, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+agentCols+` FROM handoff_agents ORDER BY id`)
	if err != nil {
		return nil, wrap("agents", err)
	}
	defer rows.Close()
	var out []tandem.Agent
	for rows.Next() {
		a, err := scanAgent(rows)
		if err != nil {
			return nil, wrap("agents", err)
		}
		out = append(out, a)
	}
	return out, wrap("agents", rows.Err())
}

// ---- presence ----

// OpenSession implements handoff.Store. It locks the agent row, so it
// serialises with Apply's HolderGone check.
func (s *Store) OpenSession(ctx context.Context, agentID, sessionID, node string, now time.Time) error {
	now = handoff.UTC(now)
	return wrap("open session", s.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE handoff_agents a SET last_seen_at = greatest(last_seen_at, $2),
				idle_since = CASE WHEN EXISTS (SELECT 1 FROM handoff_sessions s WHERE s.agent_id = a.id) THEN idle_since ELSE $2 END
			WHERE id = $1`, agentID, now)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return handoff.ErrAgentNotFound
		}
		tag, err = tx.Exec(ctx, `INSERT INTO handoff_sessions (id, agent_id, node, last_seen) VALUES ($1, $2, $3, $4)
			ON CONFLICT (id) DO UPDATE SET last_seen = greatest(handoff_sessions.last_seen, excluded.last_seen), node = excluded.node
			WHERE handoff_sessions.agent_id = excluded.agent_id`, sessionID, agentID, node, now)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return tandem.Errorf(tandem.ECONFLICT, "session belongs to another agent")
		}
		return nil
	}))
}

// TouchSession implements handoff.Store.
func (s *Store) TouchSession(ctx context.Context, agentID, sessionID string, now time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE handoff_sessions SET last_seen = greatest(last_seen, $3) WHERE id = $1 AND agent_id = $2`, sessionID, agentID, handoff.UTC(now))
	if err == nil && tag.RowsAffected() == 0 {
		return handoff.ErrNoSession
	}
	return wrap("touch session", err)
}

// CloseSession implements handoff.Store.
func (s *Store) CloseSession(ctx context.Context, agentID, sessionID string, now time.Time) error {
	now = handoff.UTC(now)
	return wrap("close session", s.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE handoff_agents SET last_seen_at = greatest(last_seen_at, $2) WHERE id = $1`, agentID, now)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return handoff.ErrAgentNotFound
		}
		_, err = tx.Exec(ctx, `DELETE FROM handoff_sessions WHERE id = $1 AND agent_id = $2`, sessionID, agentID)
		return err
	}))
}

// SetPresence implements handoff.Store.
func (s *Store) SetPresence(ctx context.Context, agentID string, p tandem.Presence, now time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE handoff_agents SET
			idle_since = CASE WHEN $2 = 'online' AND presence <> 'online' THEN $3 ELSE idle_since END,
			presence = $2
		WHERE id = $1`, agentID, string(p), handoff.UTC(now))
	if err == nil && tag.RowsAffected() == 0 {
		return handoff.ErrAgentNotFound
	}
	return wrap("set presence", err)
}

// PruneSessions implements handoff.Store.
func (s *Store) PruneSessions(ctx context.Context, cutoff time.Time) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM handoff_sessions WHERE last_seen < $1`, handoff.UTC(cutoff))
	return wrap("prune sessions", err)
}

const stateQuery = `SELECT a.id, a.email, a.display_name, a.role, a.skills, a.languages, a.max_chats, a.disabled, a.created_at,
	a.presence, a.load, a.idle_since,
	(SELECT count(*) FROM handoff_sessions s WHERE s.agent_id = a.id AND s.last_seen >= $1),
	greatest(a.last_seen_at, (SELECT max(s.last_seen) FROM handoff_sessions s WHERE s.agent_id = a.id))
	FROM handoff_agents a`

func scanState(row pgx.Row) (handoff.AgentState, error) {
	var st handoff.AgentState
	var presence string
	var sessions int64
	var last *time.Time
	a := &st.Agent
	err := row.Scan(&a.ID, &a.Email, &a.DisplayName, &a.Role, &a.Skills, &a.Languages, &a.MaxChats, &a.Disabled, &a.CreatedAt,
		&presence, &st.Load, &st.IdleSince, &sessions, &last)
	if errors.Is(err, pgx.ErrNoRows) {
		return st, handoff.ErrAgentNotFound
	}
	a.CreatedAt = handoff.UTC(a.CreatedAt)
	a.Skills, a.Languages = nilIfEmpty(a.Skills), nilIfEmpty(a.Languages)
	st.Presence = tandem.Presence(presence)
	st.Sessions = int(sessions)
	st.IdleSince = handoff.UTC(st.IdleSince)
	st.LastSeen = tv(last)
	return st, err
}

// AgentStates implements handoff.Store.
func (s *Store) AgentStates(ctx context.Context, liveAfter time.Time) ([]handoff.AgentState, error) {
	rows, err := s.pool.Query(ctx, stateQuery+` ORDER BY a.id`, handoff.UTC(liveAfter))
	if err != nil {
		return nil, wrap("agent states", err)
	}
	defer rows.Close()
	var out []handoff.AgentState
	for rows.Next() {
		st, err := scanState(rows)
		if err != nil {
			return nil, wrap("agent states", err)
		}
		out = append(out, st)
	}
	return out, wrap("agent states", rows.Err())
}

// AgentState implements handoff.Store.
func (s *Store) AgentState(ctx context.Context, agentID string, liveAfter time.Time) (handoff.AgentState, error) {
	st, err := scanState(s.pool.QueryRow(ctx, stateQuery+` WHERE a.id = $2`, handoff.UTC(liveAfter), agentID))
	return st, wrap("agent state", err)
}

// ---- tickets ----

func ticketCols(p string) string {
	cols := []string{"id", "conversation_id", "customer_id", "reason", "detail", "priority", "skills", "language", "tier", "summary",
		"state", "coalesce(%agent_id, '')", "last_agent_id", "contact_address", "version", "created_at", "queued_at", "offered_at",
		"offer_expires_at", "assigned_at", "closed_at"}
	for i, c := range cols {
		if strings.Contains(c, "%") {
			cols[i] = strings.ReplaceAll(c, "%", p)
		} else {
			cols[i] = p + c
		}
	}
	return strings.Join(cols, ", ")
}

var allTicketCols = ticketCols("")

func scanTicket(row pgx.Row) (tandem.Ticket, error) {
	var t tandem.Ticket
	var reason, state string
	var summary []byte
	var queued, offered, expires, assigned, closed *time.Time
	err := row.Scan(&t.ID, &t.ConversationID, &t.CustomerID, &reason, &t.Detail, &t.Priority, &t.Skills, &t.Language, &t.Tier, &summary,
		&state, &t.AgentID, &t.LastAgentID, &t.ContactAddress, &t.Version, &t.CreatedAt, &queued, &offered, &expires, &assigned, &closed)
	if errors.Is(err, pgx.ErrNoRows) {
		return t, handoff.ErrTicketNotFound
	}
	if err != nil {
		return t, err
	}
	if err := json.Unmarshal(summary, &t.Summary); err != nil {
		return t, fmt.Errorf("ticket %s summary: %w", t.ID, err)
	}
	t.Reason, t.State = tandem.EscalationReason(reason), tandem.TicketState(state)
	t.Skills = nilIfEmpty(t.Skills)
	t.CreatedAt = handoff.UTC(t.CreatedAt)
	t.QueuedAt, t.OfferedAt, t.OfferExpiresAt, t.AssignedAt, t.ClosedAt = tv(queued), tv(offered), tv(expires), tv(assigned), tv(closed)
	return t, nil
}

func collectTickets(rows pgx.Rows, err error) ([]tandem.Ticket, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []tandem.Ticket
	for rows.Next() {
		t, err := scanTicket(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

func strs(states []tandem.TicketState) []string {
	out := make([]string, len(states))
	for i, s := range states {
		out[i] = string(s)
	}
	return out
}

// CreateTicket implements handoff.Store.
func (s *Store) CreateTicket(ctx context.Context, t tandem.Ticket, node string) (tandem.Ticket, error) {
	if t.ID == "" || t.ConversationID == "" || t.State != tandem.TicketQueued {
		return tandem.Ticket{}, tandem.Errorf(tandem.EINVALID, "a new ticket needs an ID, a conversation and the queued state")
	}
	summary, err := json.Marshal(t.Summary)
	if err != nil {
		return tandem.Ticket{}, fmt.Errorf("handoff/pgstore: summary: %w", err)
	}
	var out tandem.Ticket
	err = s.tx(ctx, func(tx pgx.Tx) error {
		last := t.LastAgentID
		if last == "" {
			err := tx.QueryRow(ctx, `SELECT agent_id FROM handoff_tickets WHERE customer_id = $1 AND agent_id IS NOT NULL AND assigned_at IS NOT NULL
				ORDER BY assigned_at DESC LIMIT 1`, t.CustomerID).Scan(&last)
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
		}
		var err error
		out, err = scanTicket(tx.QueryRow(ctx, `INSERT INTO handoff_tickets (id, conversation_id, customer_id, reason, detail, priority, skills,
				language, tier, summary, state, last_agent_id, contact_address, version, created_at, queued_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'queued', $11, $12, 1, $13, $14) RETURNING `+allTicketCols,
			t.ID, t.ConversationID, t.CustomerID, string(t.Reason), t.Detail, t.Priority, tags(t.Skills), t.Language, t.Tier, summary,
			last, t.ContactAddress, handoff.UTC(t.CreatedAt), nt(t.QueuedAt)))
		if isUnique(err, "handoff_tickets_open_idx") {
			return handoff.ErrOpenTicket
		}
		if isUnique(err, "") {
			return tandem.Errorf(tandem.ECONFLICT, "ticket %s exists", t.ID)
		}
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO handoff_transitions (ticket_id, to_state, reason, node, at) VALUES ($1, 'queued', $2, $3, $4)`,
			out.ID, handoff.ReasonEscalated, node, out.CreatedAt)
		return err
	})
	if err != nil {
		return tandem.Ticket{}, wrap("create ticket", err)
	}
	return out, nil
}

// Ticket implements handoff.Store.
func (s *Store) Ticket(ctx context.Context, id string) (tandem.Ticket, error) {
	t, err := scanTicket(s.pool.QueryRow(ctx, `SELECT `+allTicketCols+` FROM handoff_tickets WHERE id = $1`, id))
	return t, wrap("ticket", err)
}

// OpenTicket implements handoff.Store.
func (s *Store) OpenTicket(ctx context.Context, conversationID string) (tandem.Ticket, error) {
	t, err := scanTicket(s.pool.QueryRow(ctx, `SELECT `+allTicketCols+` FROM handoff_tickets
		WHERE conversation_id = $1 AND state IN ('queued', 'offered', 'assigned')`, conversationID))
	return t, wrap("open ticket", err)
}

// Tickets implements handoff.Store.
func (s *Store) Tickets(ctx context.Context, f handoff.TicketFilter) ([]tandem.Ticket, error) {
	order := "created_at, id"
	if len(f.States) == 1 && f.States[0] == tandem.TicketQueued {
		order = "priority DESC, created_at, id"
	}
	var states any
	if len(f.States) > 0 {
		states = strs(f.States)
	}
	var limit any
	if f.Limit > 0 {
		limit = f.Limit
	}
	ts, err := collectTickets(s.pool.Query(ctx, `SELECT `+allTicketCols+` FROM handoff_tickets
		WHERE ($1::text[] IS NULL OR state = ANY($1)) AND ($2 = '' OR agent_id = $2)
		ORDER BY `+order+` LIMIT $3`, states, f.AgentID, limit))
	return ts, wrap("tickets", err)
}

// QueueAhead implements handoff.Store.
func (s *Store) QueueAhead(ctx context.Context, t tandem.Ticket) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM handoff_tickets WHERE state = 'queued' AND id <> $3
		AND (priority > $1 OR (priority = $1 AND (created_at < $2 OR (created_at = $2 AND id < $3))))`,
		t.Priority, handoff.UTC(t.CreatedAt), t.ID).Scan(&n)
	return n, wrap("queue ahead", err)
}

// EraseConversation implements handoff.Store. Skips and transitions go
// with their tickets (ON DELETE CASCADE).
func (s *Store) EraseConversation(ctx context.Context, conversationID string) (int, error) {
	var n int64
	err := s.tx(ctx, func(tx pgx.Tx) error {
		// Closed tickets only, whatever commits meanwhile; an open one
		// (also one an escalation committed after this delete's snapshot)
		// then rolls the deletion back.
		tag, err := tx.Exec(ctx, `DELETE FROM handoff_tickets WHERE conversation_id = $1
			AND state NOT IN ('queued', 'offered', 'assigned')`, conversationID)
		if err != nil {
			return err
		}
		n = tag.RowsAffected()
		var open bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM handoff_tickets WHERE conversation_id = $1
			AND state IN ('queued', 'offered', 'assigned'))`, conversationID).Scan(&open); err != nil {
			return err
		}
		if open {
			return handoff.ErrOpenTicket
		}
		return nil
	})
	if err != nil {
		return 0, wrap("erase conversation", err)
	}
	return int(n), nil
}

// Apply implements handoff.Store.
func (s *Store) Apply(ctx context.Context, c handoff.Change) (tandem.Ticket, error) {
	c.Now, c.OfferExpires, c.SkipUntil = handoff.UTC(c.Now), handoff.UTC(c.OfferExpires), handoff.UTC(c.SkipUntil)
	var out tandem.Ticket
	err := s.tx(ctx, func(tx pgx.Tx) error {
		cur, err := scanTicket(tx.QueryRow(ctx, `SELECT `+allTicketCols+` FROM handoff_tickets WHERE id = $1 FOR UPDATE`, c.TicketID))
		if err != nil {
			return err
		}
		if err := handoff.CheckChange(cur, c); err != nil {
			return err
		}
		o, prev, next := handoff.ApplyToTicket(cur, c)
		if c.HolderEnabled && next != "" {
			// FOR SHARE: a disabling in flight (UPDATE of the row) either
			// committed before and is seen, or waits for this change.
			var disabled bool
			err := tx.QueryRow(ctx, `SELECT disabled FROM handoff_agents WHERE id = $1 FOR SHARE`, next).Scan(&disabled)
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
			if disabled {
				return handoff.ErrAgentDisabled
			}
		}
		if c.HolderGone != nil && cur.AgentID != "" {
			// Lock the agent row: OpenSession takes it too, so a reconnect
			// either committed before (and is seen) or waits.
			if _, err := tx.Exec(ctx, `SELECT 1 FROM handoff_agents WHERE id = $1 FOR UPDATE`, cur.AgentID); err != nil {
				return err
			}
			var live int64
			var last *time.Time
			err := tx.QueryRow(ctx, `SELECT
				(SELECT count(*) FROM handoff_sessions s WHERE s.agent_id = a.id AND s.last_seen >= $2),
				greatest(a.last_seen_at, (SELECT max(s.last_seen) FROM handoff_sessions s WHERE s.agent_id = a.id))
				FROM handoff_agents a WHERE a.id = $1`, cur.AgentID, handoff.UTC(c.HolderGone.LiveAfter)).Scan(&live, &last)
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
			if err == nil && (live > 0 || !tv(last).Before(handoff.UTC(c.HolderGone.Cutoff))) {
				return handoff.ErrAgentReturned
			}
		}
		if prev != next {
			ids := []string{}
			for _, id := range []string{prev, next} {
				if id != "" {
					ids = append(ids, id)
				}
			}
			slices.Sort(ids) // lock order: agents by ID
			for _, id := range ids {
				if id == prev {
					if _, err := tx.Exec(ctx, `UPDATE handoff_agents SET load = load - 1, idle_since = $2 WHERE id = $1`, id, c.Now); err != nil {
						return err
					}
					continue
				}
				tag, err := tx.Exec(ctx, `UPDATE handoff_agents a SET load = load + 1, idle_since = $2
					WHERE id = $1 AND load < max_chats AND NOT disabled AND (NOT $3 OR presence = 'online')
					AND ($4::timestamptz IS NULL OR EXISTS (SELECT 1 FROM handoff_sessions s WHERE s.agent_id = a.id AND s.last_seen >= $4))`,
					id, c.Now, c.RequireOnline, nt(c.LiveAfter))
				if err != nil {
					return err
				}
				if tag.RowsAffected() == 0 {
					st, err := scanState(tx.QueryRow(ctx, stateQuery+` WHERE a.id = $2`, handoff.UTC(c.LiveAfter), id))
					if err != nil {
						return err
					}
					if err := handoff.AcquireError(st, c, st.Sessions > 0); err != nil {
						return err
					}
					return tandem.Errorf(tandem.ECONFLICT, "agent %s cannot take the ticket now", id)
				}
			}
		}
		out, err = scanTicket(tx.QueryRow(ctx, `UPDATE handoff_tickets SET state = $2, agent_id = $3, last_agent_id = $4, skills = $5,
				version = $6, queued_at = $7, offered_at = $8, offer_expires_at = $9, assigned_at = $10, closed_at = $11
			WHERE id = $1 RETURNING `+allTicketCols,
			o.ID, string(o.State), nullStr(o.AgentID), o.LastAgentID, tags(o.Skills), o.Version,
			nt(o.QueuedAt), nt(o.OfferedAt), nt(o.OfferExpiresAt), nt(o.AssignedAt), nt(o.ClosedAt)))
		if err != nil {
			return err
		}
		switch {
		case !handoff.Open(o.State):
			if _, err := tx.Exec(ctx, `DELETE FROM handoff_skips WHERE ticket_id = $1`, o.ID); err != nil {
				return err
			}
		case c.Skip != "":
			if _, err := tx.Exec(ctx, `INSERT INTO handoff_skips (ticket_id, agent_id, until) VALUES ($1, $2, $3)
				ON CONFLICT (ticket_id, agent_id) DO UPDATE SET until = excluded.until`, o.ID, c.Skip, c.SkipUntil); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, `INSERT INTO handoff_transitions (ticket_id, from_state, to_state, agent_id, prev_agent_id, reason, node, at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, o.ID, string(cur.State), string(o.State), o.AgentID, cur.AgentID, c.Reason, c.Node, c.Now)
		return err
	})
	if err != nil {
		return tandem.Ticket{}, wrap("apply", err)
	}
	return out, nil
}

func nullStr(s string) any {
	if s == "" {
		return nil
	}
	return s
}

const candidatesSQL = `SELECT a.id, a.skills, a.languages, a.load, a.max_chats, a.idle_since FROM handoff_agents a
	WHERE a.presence = 'online' AND a.load < a.max_chats AND NOT a.disabled
	AND EXISTS (SELECT 1 FROM handoff_sessions s WHERE s.agent_id = a.id AND s.last_seen >= $1)`

// Route implements handoff.Store.
func (s *Store) Route(ctx context.Context, r handoff.RouteRequest) ([]tandem.Ticket, error) {
	now, liveAfter, expires := handoff.UTC(r.Now), handoff.UTC(r.LiveAfter), handoff.UTC(r.OfferExpires)
	match := r.Match
	if match == nil {
		match = handoff.Match
	}
	var out []tandem.Ticket
	err := s.tx(ctx, func(tx pgx.Tx) error {
		out = out[:0]
		rows, err := tx.Query(ctx, candidatesSQL+` ORDER BY a.id`, liveAfter)
		if err != nil {
			return err
		}
		var cands []handoff.Candidate
		for rows.Next() {
			var c handoff.Candidate
			if err := rows.Scan(&c.AgentID, &c.Skills, &c.Languages, &c.Load, &c.MaxChats, &c.IdleSince); err != nil {
				rows.Close()
				return err
			}
			c.IdleSince = handoff.UTC(c.IdleSince)
			cands = append(cands, c)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(cands) == 0 {
			return nil
		}
		// Lock the first Limit routable tickets; other nodes skip them.
		batch, err := collectTickets(tx.Query(ctx, `WITH avail AS MATERIALIZED (`+candidatesSQL+`)
			SELECT `+ticketCols("t.")+` FROM handoff_tickets t
			WHERE t.state = 'queued' AND EXISTS (
				SELECT 1 FROM avail a
				WHERE t.skills <@ a.skills
				AND (t.language = '' OR t.language = ANY (a.languages) OR split_part(t.language, '-', 1) = ANY (a.languages))
				AND NOT EXISTS (SELECT 1 FROM handoff_skips k WHERE k.ticket_id = t.id AND k.agent_id = a.id AND k.until > $2))
			ORDER BY t.priority DESC, t.created_at, t.id
			LIMIT $3
			FOR UPDATE OF t SKIP LOCKED`, liveAfter, now, r.Limit))
		if err != nil {
			return err
		}
		if len(batch) == 0 {
			return nil
		}
		ids := make([]string, len(batch))
		for i, t := range batch {
			ids[i] = t.ID
		}
		skips := handoff.Skips{}
		rows, err = tx.Query(ctx, `SELECT ticket_id, agent_id FROM handoff_skips WHERE ticket_id = ANY ($1) AND until > $2`, ids, now)
		if err != nil {
			return err
		}
		for rows.Next() {
			var tid, aid string
			if err := rows.Scan(&tid, &aid); err != nil {
				rows.Close()
				return err
			}
			skips[tid] = append(skips[tid], aid)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		pairs := match(batch, cands, skips)
		slices.SortStableFunc(pairs, func(a, b handoff.Pair) int { return strings.Compare(a.AgentID, b.AgentID) }) // lock order
		b := &pgx.Batch{}
		for _, p := range pairs {
			if !slices.Contains(ids, p.TicketID) {
				continue
			}
			b.Queue(`WITH a AS (
					UPDATE handoff_agents SET load = load + 1, idle_since = $3
					WHERE id = $2 AND load < max_chats AND presence = 'online' AND NOT disabled
					RETURNING id),
				t AS (
					UPDATE handoff_tickets SET state = 'offered', agent_id = $2, offered_at = $3, offer_expires_at = $4,
						assigned_at = NULL, version = version + 1
					WHERE id = $1 AND state = 'queued' AND EXISTS (SELECT 1 FROM a)
					RETURNING `+allTicketCols+`),
				tr AS (
					INSERT INTO handoff_transitions (ticket_id, from_state, to_state, agent_id, reason, node, at)
					SELECT id, 'queued', 'offered', $2, $5, $6, $3 FROM t)
				SELECT * FROM t`, p.TicketID, p.AgentID, now, expires, handoff.ReasonRoute, r.Node)
		}
		if b.Len() == 0 {
			return nil
		}
		br := tx.SendBatch(ctx, b)
		for range b.Len() {
			t, err := scanTicket(br.QueryRow())
			if errors.Is(err, handoff.ErrTicketNotFound) {
				continue // the agent filled up meanwhile
			}
			if err != nil {
				br.Close()
				return err
			}
			out = append(out, t)
		}
		return br.Close()
	})
	if err != nil {
		return nil, wrap("route", err)
	}
	return out, nil
}

// ExpiredOffers implements handoff.Store.
func (s *Store) ExpiredOffers(ctx context.Context, now time.Time, limit int) ([]tandem.Ticket, error) {
	ts, err := collectTickets(s.pool.Query(ctx, `SELECT `+allTicketCols+` FROM handoff_tickets
		WHERE state = 'offered' AND offer_expires_at <= $1 ORDER BY offer_expires_at, id LIMIT $2`, handoff.UTC(now), limitArg(limit)))
	return ts, wrap("expired offers", err)
}

func limitArg(n int) any {
	if n <= 0 {
		return nil
	}
	return n
}

// Orphans implements handoff.Store.
func (s *Store) Orphans(ctx context.Context, liveAfter, cutoff time.Time, limit int) ([]tandem.Ticket, error) {
	ts, err := collectTickets(s.pool.Query(ctx, `SELECT `+ticketCols("t.")+` FROM handoff_tickets t JOIN handoff_agents a ON a.id = t.agent_id
		WHERE t.state IN ('offered', 'assigned')
		AND NOT EXISTS (SELECT 1 FROM handoff_sessions s WHERE s.agent_id = a.id AND s.last_seen >= $1)
		AND coalesce(greatest(a.last_seen_at, (SELECT max(s.last_seen) FROM handoff_sessions s WHERE s.agent_id = a.id)), '-infinity') < $2
		ORDER BY t.id LIMIT $3`, handoff.UTC(liveAfter), handoff.UTC(cutoff), limitArg(limit)))
	return ts, wrap("orphans", err)
}

// SetContact implements handoff.Store.
func (s *Store) SetContact(ctx context.Context, ticketID, address string) (tandem.Ticket, error) {
	t, err := scanTicket(s.pool.QueryRow(ctx, `UPDATE handoff_tickets SET contact_address = $2, version = version + 1
		WHERE id = $1 AND state IN ('queued', 'offered', 'assigned') RETURNING `+allTicketCols, ticketID, address))
	if errors.Is(err, handoff.ErrTicketNotFound) {
		cur, err := s.Ticket(ctx, ticketID)
		if err != nil {
			return tandem.Ticket{}, err
		}
		return tandem.Ticket{}, tandem.Errorf(tandem.ECONFLICT, "ticket %s is %s", cur.ID, cur.State)
	}
	return t, wrap("set contact", err)
}

// HandleTimes implements handoff.Store.
func (s *Store) HandleTimes(ctx context.Context, n int) ([]time.Duration, error) {
	rows, err := s.pool.Query(ctx, `SELECT (extract(epoch FROM closed_at - assigned_at) * 1000000)::bigint FROM handoff_tickets
		WHERE state IN ('resolved', 'returned') AND assigned_at IS NOT NULL ORDER BY closed_at DESC, id LIMIT $1`, n)
	if err != nil {
		return nil, wrap("handle times", err)
	}
	us, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, wrap("handle times", err)
	}
	out := make([]time.Duration, len(us))
	for i, u := range us {
		out[i] = time.Duration(u) * time.Microsecond
	}
	return out, nil
}

// Transitions implements handoff.Store.
func (s *Store) Transitions(ctx context.Context, f handoff.TransitionFilter) ([]handoff.Transition, error) {
	rows, err := s.pool.Query(ctx, `SELECT seq, ticket_id, from_state, to_state, agent_id, prev_agent_id, reason, node, at
		FROM handoff_transitions WHERE ($1 = '' OR ticket_id = $1) AND seq > $2 ORDER BY seq LIMIT $3`,
		f.TicketID, f.AfterSeq, limitArg(f.Limit))
	if err != nil {
		return nil, wrap("transitions", err)
	}
	defer rows.Close()
	var out []handoff.Transition
	for rows.Next() {
		var tr handoff.Transition
		var from, to string
		if err := rows.Scan(&tr.Seq, &tr.TicketID, &from, &to, &tr.AgentID, &tr.PrevAgent, &tr.Reason, &tr.Node, &tr.At); err != nil {
			return nil, wrap("transitions", err)
		}
		tr.From, tr.To, tr.At = tandem.TicketState(from), tandem.TicketState(to), handoff.UTC(tr.At)
		out = append(out, tr)
	}
	return out, wrap("transitions", rows.Err())
}
