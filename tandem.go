// Package tandem holds the domain types shared by every Tandem package:
// conversations and messages, the NLU result of a customer turn, FAQ items and
// search hits, the bot's reply, escalation tickets and agents, and the small
// set of error codes that every adapter maps to HTTP statuses and WebSocket
// close codes.
//
// Contract: this package imports only the standard library and holds no
// mutable package state. Interfaces are declared where they are used, not
// here; adapters assert them with `var _ X = (*T)(nil)`.
package tandem

import (
	"strings"
	"time"
)

// Author says who wrote a message.
type Author string

// Authors of messages.
const (
	AuthorCustomer Author = "customer"
	AuthorBot      Author = "bot"
	AuthorAgent    Author = "agent"
	AuthorSystem   Author = "system"
)

// Mode is who answers a conversation right now.
type Mode string

// Conversation modes.
const (
	ModeBot    Mode = "bot"    // the bot answers
	ModeQueued Mode = "queued" // escalated, waiting for an agent; the bot keeps answering until an agent has joined (after a transfer or re-queue, messages wait for the next agent; docs/handoff.md)
	ModeHuman  Mode = "human"  // an agent is assigned
	ModeClosed Mode = "closed"
)

// Customer describes the person behind a conversation, as far as the site
// told us (verified identity) or we made up (anonymous visitor).
type Customer struct {
	ID       string `json:"id"`
	Verified bool   `json:"verified"`
	Name     string `json:"name,omitempty"`
	Email    string `json:"email,omitempty"`
	Tier     string `json:"tier,omitempty"` // e.g. "vip"; empty for the default tier
}

// VIP reports whether the customer is in the VIP tier ("vip", in any case).
func (c Customer) VIP() bool { return strings.EqualFold(c.Tier, "vip") }

// Conversation is one customer's chat with the bot and, after handoff, agents.
type Conversation struct {
	ID        string    `json:"id"`
	SiteKey   string    `json:"site_key"`
	Customer  Customer  `json:"customer"`
	Mode      Mode      `json:"mode"`
	AgentID   string    `json:"agent_id,omitempty"`
	Locale    string    `json:"locale,omitempty"`
	LastSeq   int64     `json:"last_seq"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Message is one entry of a conversation log. Seq is assigned by the log,
// starts at 1 and has no gaps within a conversation. ClientID is the
// client's idempotency key: a message with a ClientID already in the log is
// not stored twice.
type Message struct {
	ConversationID string         `json:"conversation_id"`
	Seq            int64          `json:"seq"`
	ClientID       string         `json:"client_id,omitempty"`
	Author         Author         `json:"author"`
	AuthorID       string         `json:"author_id,omitempty"`
	AuthorName     string         `json:"author_name,omitempty"`
	Text           string         `json:"text"`
	Kind           string         `json:"kind,omitempty"` // "text" by default; "event" for system notes
	Data           map[string]any `json:"data,omitempty"` // structured payload: sources, quick replies, NLU summary
	CreatedAt      time.Time      `json:"created_at"`
}

// IntentScore is one ranked intent with a calibrated confidence in [0, 1].
type IntentScore struct {
	Name       string  `json:"name"`
	Confidence float64 `json:"confidence"`
}

// Entity is a typed span of a text. Start and End are offsets in Unicode code
// points (characters), End exclusive, so they match the span conventions of
// the public datasets; in a pipeline reply they index the turn's text as
// sent, white space around it included. Value is the normalised value (an
// ISO date, an amount in minor units with currency, a canonical synonym), or
// the span text.
type Entity struct {
	Type       string  `json:"type"`
	Text       string  `json:"text"`
	Value      string  `json:"value"`
	Start      int     `json:"start"`
	End        int     `json:"end"`
	Source     string  `json:"source"` // "model", "rule" or "lookup"; "dialogue" in an escalation's summary: a value an earlier turn gave (Start and End are 0)
	Confidence float64 `json:"confidence,omitempty"`
}

// OutOfScope is the intent label of texts that belong to no known intent.
const OutOfScope = "oos"

// NLU is what the models understood of one text.
type NLU struct {
	Intent     IntentScore   `json:"intent"`
	Ranking    []IntentScore `json:"ranking,omitempty"` // top-k, best first
	OutOfScope bool          `json:"out_of_scope"`
	Entities   []Entity      `json:"entities,omitempty"`
	Language   string        `json:"language,omitempty"`
	Sentiment  float64       `json:"sentiment,omitempty"` // -1 (very negative) .. 1
}

// FAQStatus is the publication state of an FAQ item.
type FAQStatus string

// FAQ statuses.
const (
	FAQDraft     FAQStatus = "draft"
	FAQPublished FAQStatus = "published"
)

// FAQ is one curated question with its answer.
type FAQ struct {
	ID         string    `json:"id"`
	ExternalID string    `json:"external_id,omitempty"`
	Question   string    `json:"question"`
	Phrasings  []string  `json:"phrasings,omitempty"` // alternative ways to ask
	Answer     string    `json:"answer"`              // Markdown
	Category   string    `json:"category,omitempty"`
	Tags       []string  `json:"tags,omitempty"`
	Locale     string    `json:"locale"`
	Status     FAQStatus `json:"status"`
	Intent     string    `json:"intent,omitempty"`    // linked intent, if any
	Threshold  float64   `json:"threshold,omitempty"` // per-item confidence threshold; 0 = use the global one
	Version    int64     `json:"version"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
	UpdatedBy  string    `json:"updated_by,omitempty"`
}

// Hit is one search result: an FAQ, its fused score, and which retrievers
// found it (e.g. "lexical", "vector") with their own scores.
type Hit struct {
	FAQ        FAQ                `json:"faq"`
	Score      float64            `json:"score"`
	Matched    string             `json:"matched,omitempty"` // the phrasing that matched best
	Retrievers map[string]float64 `json:"retrievers"`
}

// Turn is one customer message handed to the bot.
type Turn struct {
	ConversationID string    `json:"conversation_id"`
	MessageSeq     int64     `json:"message_seq,omitempty"`
	Text           string    `json:"text"`
	Locale         string    `json:"locale,omitempty"`
	Customer       Customer  `json:"customer"`
	RequestHuman   bool      `json:"request_human,omitempty"` // the widget's "talk to a person" button
	Queued         bool      `json:"queued,omitempty"`        // the conversation waits in the queue for a person
	Time           time.Time `json:"time"`
}

// ReplyKind says what the bot decided to do with a turn.
type ReplyKind string

// Reply kinds.
const (
	ReplyAnswer   ReplyKind = "answer"
	ReplyClarify  ReplyKind = "clarify"
	ReplyFallback ReplyKind = "fallback"
	ReplyEscalate ReplyKind = "escalate"
)

// Source is an FAQ an answer was drawn from.
type Source struct {
	FAQID    string  `json:"faq_id"`
	Question string  `json:"question"`
	Score    float64 `json:"score"`
	// N is the source's number in a generated answer's citations ("[2]");
	// 0 for an extractive answer's source.
	N int `json:"n,omitempty"`
}

// EscalationReason is a machine-readable reason for a handoff.
type EscalationReason string

// Escalation reasons.
const (
	EscalateRequested     EscalationReason = "customer_requested"
	EscalateButton        EscalationReason = "button"
	EscalateLowConfidence EscalationReason = "low_confidence"
	EscalateIntent        EscalationReason = "configured_intent"
	EscalateSentiment     EscalationReason = "negative_sentiment"
	EscalateAbuse         EscalationReason = "abuse"
	EscalateVIP           EscalationReason = "vip"
	EscalateBreakerOpen   EscalationReason = "llm_unavailable"
)

// Escalation describes why and how a conversation goes to a human.
type Escalation struct {
	Reason   EscalationReason `json:"reason"`
	Detail   string           `json:"detail,omitempty"`
	Priority int              `json:"priority"` // higher is more urgent
	Skills   []string         `json:"skills,omitempty"`
	Language string           `json:"language,omitempty"`
	Summary  NLU              `json:"summary"`
}

// Reply is the bot's answer to a turn.
type Reply struct {
	Kind         ReplyKind   `json:"kind"`
	Text         string      `json:"text"`
	Sources      []Source    `json:"sources,omitempty"`
	QuickReplies []string    `json:"quick_replies,omitempty"`
	NLU          NLU         `json:"nlu"`
	Escalation   *Escalation `json:"escalation,omitempty"`
	Cached       bool        `json:"cached,omitempty"`
	Generated    bool        `json:"generated,omitempty"` // written by the LLM
	// WithdrawHandoff: the customer of a queued conversation no longer
	// wants a person ("never mind, no need for a human"); the caller
	// withdraws the open request, as the widget's handoff_cancel does.
	WithdrawHandoff bool `json:"withdraw_handoff,omitempty"`
}

// TicketState is the state of an escalation ticket.
type TicketState string

// Ticket states: queued -> offered -> assigned -> resolved | returned | abandoned.
const (
	TicketQueued    TicketState = "queued"
	TicketOffered   TicketState = "offered"
	TicketAssigned  TicketState = "assigned"
	TicketResolved  TicketState = "resolved"
	TicketReturned  TicketState = "returned" // returned to the bot
	TicketAbandoned TicketState = "abandoned"
)

// Ticket is one escalation waiting for, or handled by, an agent.
type Ticket struct {
	ID             string           `json:"id"`
	ConversationID string           `json:"conversation_id"`
	CustomerID     string           `json:"customer_id"`
	Reason         EscalationReason `json:"reason"`
	Detail         string           `json:"detail,omitempty"` // Escalation.Detail
	Priority       int              `json:"priority"`
	Skills         []string         `json:"skills,omitempty"`
	Language       string           `json:"language,omitempty"`
	Tier           string           `json:"tier,omitempty"`
	Summary        NLU              `json:"summary"`
	State          TicketState      `json:"state"`
	AgentID        string           `json:"agent_id,omitempty"`
	LastAgentID    string           `json:"last_agent_id,omitempty"` // preferred (sticky) agent: who last helped this customer
	ContactAddress string           `json:"contact_address,omitempty"`
	Version        int64            `json:"version"`
	CreatedAt      time.Time        `json:"created_at"`
	QueuedAt       time.Time        `json:"queued_at,omitzero"` // when it last entered the queue
	OfferedAt      time.Time        `json:"offered_at,omitzero"`
	OfferExpiresAt time.Time        `json:"offer_expires_at,omitzero"`
	AssignedAt     time.Time        `json:"assigned_at,omitzero"`
	ClosedAt       time.Time        `json:"closed_at,omitzero"`
}

// Presence is an agent's availability.
type Presence string

// Presence states.
const (
	PresenceOnline  Presence = "online"
	PresenceAway    Presence = "away"
	PresenceOffline Presence = "offline"
)

// Agent is a human who takes over conversations.
type Agent struct {
	ID           string    `json:"id"`
	Email        string    `json:"email"`
	DisplayName  string    `json:"display_name"`
	PasswordHash []byte    `json:"-"`
	Role         string    `json:"role"` // "agent" or "admin"
	Skills       []string  `json:"skills,omitempty"`
	Languages    []string  `json:"languages,omitempty"`
	MaxChats     int       `json:"max_chats"`
	Disabled     bool      `json:"disabled,omitempty"` // cannot log in, connect or receive work
	CreatedAt    time.Time `json:"created_at"`
}
