// Package pgconvlog is the PostgreSQL gateway.ConvLog: the system of record
// for conversations and messages, shared by every gateway node.
//
// Contract: New applies the embedded migrations (serialised across nodes by
// an advisory lock) and returns a Log that satisfies gateway.ConvLog, as
// checked by gateway/convlogtest. Append is one statement: it locks the
// conversation row while taking the next seq, so concurrent appends from
// any number of nodes get gapless seqs; the unique constraint on
// (conversation_id, client_id) makes a repeated client id a no-op that
// returns the stored message. All methods may be called concurrently.
package pgconvlog

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/gateway"
	"github.com/tandem-chat/tandem/internal/pgmigrate"
)

//go:embed migrations/*.sql
var migrations embed.FS

// migrationLock is the advisory lock key serialising migrations across nodes.
const migrationLock = 0x7461_6e64_6777 // "tandgw"

// Log is the Postgres conversation log.
type Log struct {
	pool *pgxpool.Pool
	now  func() time.Time
}

var _ gateway.ConvLog = (*Log)(nil)

// New migrates the database and returns the log. The pool stays owned by
// the caller.
func New(ctx context.Context, pool *pgxpool.Pool) (*Log, error) {
	if err := Migrate(ctx, pool); err != nil {
		return nil, err
	}
	return &Log{pool: pool, now: time.Now}, nil
}

// Migrate applies the embedded migrations that are not applied yet.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	if err := pgmigrate.Apply(ctx, pool, pgmigrate.Set{FS: migrations, Dir: "migrations", Table: "gateway_migrations", Lock: migrationLock}); err != nil {
		return fmt.Errorf("pgconvlog: %w", err)
	}
	return nil
}

// Ping checks the database (for readiness checks).
func (l *Log) Ping(ctx context.Context) error { return l.pool.Ping(ctx) }

const convColumns = `id, site_key, customer, mode, agent_id, locale, last_seq, created_at, updated_at`

func scanConv(row pgx.Row) (tandem.Conversation, error) {
	var c tandem.Conversation
	var customer []byte
	if err := row.Scan(&c.ID, &c.SiteKey, &customer, &c.Mode, &c.AgentID, &c.Locale, &c.LastSeq, &c.CreatedAt, &c.UpdatedAt); err != nil {
		return c, err
	}
	if err := json.Unmarshal(customer, &c.Customer); err != nil {
		return c, fmt.Errorf("decode customer: %w", err)
	}
	c.CreatedAt, c.UpdatedAt = c.CreatedAt.UTC(), c.UpdatedAt.UTC()
	return c, nil
}

func notFound(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return tandem.Errorf(tandem.ENOTFOUND, "conversation not found")
	}
	return err
}

// CreateConversation implements gateway.ConvLog.
func (l *Log) CreateConversation(ctx context.Context, c tandem.Conversation) (tandem.Conversation, error) {
	if c.ID == "" {
		return c, tandem.Errorf(tandem.EINVALID, "conversation id is empty")
	}
	if c.CreatedAt.IsZero() {
		c.CreatedAt = l.now()
	}
	c.CreatedAt = c.CreatedAt.UTC().Truncate(time.Microsecond)
	c.UpdatedAt, c.LastSeq = c.CreatedAt, 0
	if c.Mode == "" {
		c.Mode = tandem.ModeBot
	}
	customer, err := json.Marshal(c.Customer)
	if err != nil {
		return c, fmt.Errorf("pgconvlog: encode customer: %w", err)
	}
	_, err = l.pool.Exec(ctx, `INSERT INTO chat_conversations (id, site_key, customer_id, customer, mode, agent_id, locale, last_seq, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $8)`,
		c.ID, c.SiteKey, c.Customer.ID, customer, string(c.Mode), c.AgentID, c.Locale, c.CreatedAt)
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23505" {
			return c, tandem.Errorf(tandem.ECONFLICT, "conversation %s exists", c.ID)
		}
		return c, fmt.Errorf("pgconvlog: create conversation: %w", err)
	}
	return c, nil
}

// Conversation implements gateway.ConvLog.
func (l *Log) Conversation(ctx context.Context, id string) (tandem.Conversation, error) {
	c, err := scanConv(l.pool.QueryRow(ctx, `SELECT `+convColumns+` FROM chat_conversations WHERE id = $1`, id))
	if err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return c, notFound(err)
		}
		return c, fmt.Errorf("pgconvlog: conversation: %w", err)
	}
	return c, nil
}

// LatestConversation implements gateway.ConvLog.
func (l *Log) LatestConversation(ctx context.Context, siteKey, customerID string) (tandem.Conversation, error) {
	c, err := scanConv(l.pool.QueryRow(ctx, `SELECT `+convColumns+` FROM chat_conversations
		WHERE site_key = $1 AND customer_id = $2 AND mode <> 'closed' ORDER BY updated_at DESC, id DESC LIMIT 1`, siteKey, customerID))
	if err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return c, notFound(err)
		}
		return c, fmt.Errorf("pgconvlog: latest conversation: %w", err)
	}
	return c, nil
}

// appendSQL takes the next seq under the conversation's row lock and
// inserts the message, unless the client id is already stored (then it
// returns no row). A concurrent insert of the same client id that the
// statement's snapshot cannot see fails with a unique violation instead.
const appendSQL = `
WITH dup AS (
    SELECT 1 FROM chat_messages WHERE conversation_id = $1 AND client_id = $2
), bump AS (
    UPDATE chat_conversations SET last_seq = last_seq + 1, updated_at = $9
    WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM dup)
    RETURNING last_seq
)
INSERT INTO chat_messages (conversation_id, seq, client_id, author, author_id, author_name, text, kind, data, created_at)
SELECT $1, bump.last_seq, $2, $3, $4, $5, $6, $7, $8, $9 FROM bump
RETURNING seq`

// Append implements gateway.ConvLog.
func (l *Log) Append(ctx context.Context, m tandem.Message) (tandem.Message, bool, error) {
	if m.CreatedAt.IsZero() {
		m.CreatedAt = l.now()
	}
	m.CreatedAt = m.CreatedAt.UTC().Truncate(time.Microsecond)
	if m.Kind == "" {
		m.Kind = "text"
	}
	var data []byte
	if len(m.Data) > 0 {
		var err error
		if data, err = json.Marshal(m.Data); err != nil {
			return m, false, fmt.Errorf("pgconvlog: encode message data: %w", err)
		}
	}
	var clientID *string
	if m.ClientID != "" {
		clientID = &m.ClientID
	}
	err := l.pool.QueryRow(ctx, appendSQL, m.ConversationID, clientID, string(m.Author), m.AuthorID, m.AuthorName,
		m.Text, m.Kind, data, m.CreatedAt).Scan(&m.Seq)
	if err == nil {
		return m, false, nil
	}
	var pe *pgconn.PgError
	if !errors.Is(err, pgx.ErrNoRows) && !(errors.As(err, &pe) && pe.Code == "23505") {
		return m, false, fmt.Errorf("pgconvlog: append: %w", err)
	}
	// Either the client id is stored already or the conversation is unknown.
	if m.ClientID != "" {
		rows, err := l.pool.Query(ctx, `SELECT `+msgColumns+` FROM chat_messages WHERE conversation_id = $1 AND client_id = $2`, m.ConversationID, m.ClientID)
		if err != nil {
			return m, false, fmt.Errorf("pgconvlog: append: read duplicate: %w", err)
		}
		stored, err := collectMessages(rows)
		if err != nil {
			return m, false, fmt.Errorf("pgconvlog: append: read duplicate: %w", err)
		}
		if len(stored) == 1 {
			return stored[0], true, nil
		}
	}
	if _, err := l.Conversation(ctx, m.ConversationID); err != nil {
		return m, false, err
	}
	return m, false, fmt.Errorf("pgconvlog: append to %s stored nothing", m.ConversationID)
}

const msgColumns = `conversation_id, seq, client_id, author, author_id, author_name, text, kind, data, created_at`

func collectMessages(rows pgx.Rows) ([]tandem.Message, error) {
	defer rows.Close()
	out := []tandem.Message{}
	for rows.Next() {
		var m tandem.Message
		var clientID *string
		var data []byte
		if err := rows.Scan(&m.ConversationID, &m.Seq, &clientID, &m.Author, &m.AuthorID, &m.AuthorName, &m.Text, &m.Kind, &data, &m.CreatedAt); err != nil {
			return nil, err
		}
		if clientID != nil {
			m.ClientID = *clientID
		}
		if len(data) > 0 {
			if err := json.Unmarshal(data, &m.Data); err != nil {
				return nil, fmt.Errorf("decode data of seq %d: %w", m.Seq, err)
			}
		}
		m.CreatedAt = m.CreatedAt.UTC()
		out = append(out, m)
	}
	return out, rows.Err()
}

// Messages implements gateway.ConvLog.
func (l *Log) Messages(ctx context.Context, id string, after int64, limit int) ([]tandem.Message, error) {
	if limit <= 0 {
		return []tandem.Message{}, nil
	}
	rows, err := l.pool.Query(ctx, `SELECT `+msgColumns+` FROM chat_messages WHERE conversation_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, id, after, limit)
	if err != nil {
		return nil, fmt.Errorf("pgconvlog: messages: %w", err)
	}
	out, err := collectMessages(rows)
	if err != nil {
		return nil, fmt.Errorf("pgconvlog: messages: %w", err)
	}
	if len(out) == 0 {
		if _, err := l.Conversation(ctx, id); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// SetMode implements gateway.ConvLog.
func (l *Log) SetMode(ctx context.Context, id string, mode tandem.Mode, agentID string) (tandem.Conversation, error) {
	c, err := scanConv(l.pool.QueryRow(ctx, `UPDATE chat_conversations SET mode = $2, agent_id = $3, updated_at = $4 WHERE id = $1 RETURNING `+convColumns,
		id, string(mode), agentID, l.now().UTC().Truncate(time.Microsecond)))
	if err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return c, notFound(err)
		}
		return c, fmt.Errorf("pgconvlog: set mode: %w", err)
	}
	return c, nil
}

// Erase implements gateway.ConvLog.
func (l *Log) Erase(ctx context.Context, id string) error {
	// The messages go with it (ON DELETE CASCADE), in one statement.
	tag, err := l.pool.Exec(ctx, `DELETE FROM chat_conversations WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("pgconvlog: erase: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return tandem.Errorf(tandem.ENOTFOUND, "conversation not found")
	}
	return nil
}

// CustomerConversations implements gateway.ConvLog (index
// chat_conversations_customer).
func (l *Log) CustomerConversations(ctx context.Context, siteKey, customerID string, limit int) ([]tandem.Conversation, error) {
	if limit <= 0 {
		return nil, tandem.Errorf(tandem.EINVALID, "limit must be positive")
	}
	return l.queryConvs(ctx, "customer conversations", `SELECT `+convColumns+` FROM chat_conversations
		WHERE site_key = $1 AND customer_id = $2 ORDER BY updated_at DESC, id DESC LIMIT $3`, siteKey, customerID, limit)
}

// queryConvs runs a query of conversations (convColumns).
func (l *Log) queryConvs(ctx context.Context, what, sql string, args ...any) ([]tandem.Conversation, error) {
	rows, err := l.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("pgconvlog: %s: %w", what, err)
	}
	defer rows.Close()
	var out []tandem.Conversation
	for rows.Next() {
		c, err := scanConv(rows)
		if err != nil {
			return nil, fmt.Errorf("pgconvlog: %s: %w", what, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pgconvlog: %s: %w", what, err)
	}
	return out, nil
}

// IdleConversations implements gateway.ConvLog (index
// chat_conversations_idle).
func (l *Log) IdleConversations(ctx context.Context, before time.Time, after gateway.IdleCursor, limit int) ([]tandem.Conversation, error) {
	if limit <= 0 {
		return nil, tandem.Errorf(tandem.EINVALID, "limit must be positive")
	}
	return l.queryConvs(ctx, "idle conversations", `SELECT `+convColumns+` FROM chat_conversations
		WHERE updated_at < $1 AND (updated_at, id) > ($2, $3)
		ORDER BY updated_at, id LIMIT $4`, before.UTC(), after.UpdatedAt.UTC(), after.ID, limit)
}

// EraseIdle implements gateway.ConvLog: one statement, so an Append that
// commits first (it locks the row and moves updated_at) keeps the
// conversation, and one that comes after finds it gone.
func (l *Log) EraseIdle(ctx context.Context, id string, before time.Time) (bool, error) {
	tag, err := l.pool.Exec(ctx, `DELETE FROM chat_conversations WHERE id = $1 AND updated_at < $2`, id, before.UTC())
	if err != nil {
		return false, fmt.Errorf("pgconvlog: erase idle: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// SwapMode implements gateway.ConvLog.
func (l *Log) SwapMode(ctx context.Context, id string, from, to tandem.Mode, agentID string) (tandem.Conversation, bool, error) {
	c, err := scanConv(l.pool.QueryRow(ctx, `UPDATE chat_conversations SET mode = $3, agent_id = $4, updated_at = $5 WHERE id = $1 AND mode = $2 RETURNING `+convColumns,
		id, string(from), string(to), agentID, l.now().UTC().Truncate(time.Microsecond)))
	if err == nil {
		return c, true, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return c, false, fmt.Errorf("pgconvlog: swap mode: %w", err)
	}
	// Not swapped: the conversation is in another mode, or does not exist.
	c, err = l.Conversation(ctx, id)
	if err != nil {
		return c, false, err
	}
	return c, false, nil
}
