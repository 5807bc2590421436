package console

import (
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/gateway"
	"github.com/tandem-chat/tandem/handoff"
)

// Client frame types of the console protocol (docs/protocol.md, "Agent
// console"). hello, ping, message, typing and read have the same names as
// the widget's.
const (
	FrameHello    = "hello"
	FramePing     = "ping"
	FramePresence = "presence"
	FrameAccept   = "accept"
	FrameDecline  = "decline"
	FrameClaim    = "claim"
	FrameTransfer = "transfer"
	FrameResolve  = "resolve"
	FrameReturn   = "return"
	FrameOpen     = "open"
	FrameMessage  = "message"
	FrameTyping   = "typing"
	FrameRead     = "read"
	FrameSuggest  = "suggest"
	FrameQueue    = "queue"
	FrameAgents   = "agents"
	FrameSignOut  = "sign_out"
)

// Server frame types (besides the conversation frames message, typing,
// read, delta and handoff, which are relayed as the widget gets them).
const (
	FrameWelcome     = "welcome"
	FrameTicket      = "ticket"
	FrameQueueView   = "queue"
	FrameAgentsView  = "agents"
	FrameMyPresence  = "presence"
	FrameSuggestions = "suggestions"
	FrameOK          = "ok"
	FrameAck         = "ack"
	FrameError       = "error"
	FramePong        = "pong"
)

// Limits of the console protocol.
const (
	MaxTextRunes   = 4000 // an agent message
	maxTokenLen    = 4096
	maxRefLen      = 64
	maxQueryRunes  = 500
	maxSkills      = 20
	maxSkillLength = 64
)

// ClientFrame is one decoded console frame; which fields are set depends on
// Type (DecodeClientFrame validates them).
type ClientFrame struct {
	Type           string   `json:"type"`
	Ref            string   `json:"ref,omitempty"` // echoed in ok/error answers to actions
	Token          string   `json:"token,omitempty"`
	ID             string   `json:"id,omitempty"` // ping
	Status         string   `json:"status,omitempty"`
	TicketID       string   `json:"ticket_id,omitempty"`
	ToAgentID      string   `json:"to_agent_id,omitempty"`
	Skills         []string `json:"skills,omitempty"`
	ConversationID string   `json:"conversation_id,omitempty"`
	ClientID       string   `json:"client_id,omitempty"`
	Text           string   `json:"text,omitempty"`
	Query          string   `json:"query,omitempty"`
	On             *bool    `json:"on,omitempty"`
	Seq            int64    `json:"seq,omitempty"`
}

// DecodeClientFrame parses and validates one console frame. Failures are
// *tandem.Error with code invalid and a client-safe message.
func DecodeClientFrame(data []byte) (ClientFrame, error) {
	var f ClientFrame
	if err := gateway.DecodeStrict(data, &f); err != nil {
		return ClientFrame{}, err
	}
	if err := f.validate(); err != nil {
		return ClientFrame{}, err
	}
	return f, nil
}

func (f *ClientFrame) validate() error {
	if f.Ref != "" && !gateway.ValidID(f.Ref, maxRefLen) {
		return tandem.Errorf(tandem.EINVALID, "ref must be 1-%d characters of A-Z a-z 0-9 _ - : .", maxRefLen)
	}
	needTicket := func() error {
		if !gateway.ValidID(f.TicketID, 64) {
			return tandem.Errorf(tandem.EINVALID, "%s needs a ticket_id", f.Type)
		}
		return nil
	}
	needConv := func() error {
		if !gateway.ValidID(f.ConversationID, 64) {
			return tandem.Errorf(tandem.EINVALID, "%s needs a conversation_id", f.Type)
		}
		return nil
	}
	switch f.Type {
	case FrameHello:
		if f.Token == "" || len(f.Token) > maxTokenLen {
			return tandem.Errorf(tandem.EINVALID, "hello needs a token")
		}
	case FramePing:
		if len(f.ID) > 64 {
			return tandem.Errorf(tandem.EINVALID, "ping id is longer than 64 bytes")
		}
	case FramePresence:
		if f.Status != string(tandem.PresenceOnline) && f.Status != string(tandem.PresenceAway) {
			return tandem.Errorf(tandem.EINVALID, "presence status must be online or away")
		}
	case FrameAccept, FrameDecline, FrameClaim, FrameResolve, FrameReturn:
		return needTicket()
	case FrameTransfer:
		if err := needTicket(); err != nil {
			return err
		}
		switch {
		case f.ToAgentID != "" && len(f.Skills) > 0:
			return tandem.Errorf(tandem.EINVALID, "transfer to an agent or to skills, not both")
		case f.ToAgentID != "":
			if !gateway.ValidID(f.ToAgentID, 64) {
				return tandem.Errorf(tandem.EINVALID, "to_agent_id is malformed")
			}
		case len(f.Skills) > 0:
			if len(f.Skills) > maxSkills {
				return tandem.Errorf(tandem.EINVALID, "at most %d skills", maxSkills)
			}
			for _, s := range f.Skills {
				if s = strings.TrimSpace(s); s == "" || len(s) > maxSkillLength || strings.IndexFunc(s, unicode.IsControl) >= 0 {
					return tandem.Errorf(tandem.EINVALID, "skills must be 1-%d characters, no control characters", maxSkillLength)
				}
			}
		default:
			return tandem.Errorf(tandem.EINVALID, "transfer needs to_agent_id or skills")
		}
	case FrameOpen:
		return needConv()
	case FrameMessage:
		if err := needConv(); err != nil {
			return err
		}
		if !gateway.ValidID(f.ClientID, 64) {
			return tandem.Errorf(tandem.EINVALID, "client_id must be 1-64 characters of A-Z a-z 0-9 _ - : .")
		}
		f.Text = strings.TrimSpace(f.Text)
		switch {
		case f.Text == "":
			return tandem.Errorf(tandem.EINVALID, "message text is empty")
		case utf8.RuneCountInString(f.Text) > MaxTextRunes:
			return tandem.Errorf(tandem.EINVALID, "message text is longer than %d characters", MaxTextRunes)
		case strings.ContainsRune(f.Text, 0):
			return tandem.Errorf(tandem.EINVALID, "message text contains NUL")
		}
	case FrameTyping:
		if err := needConv(); err != nil {
			return err
		}
		if f.On == nil {
			return tandem.Errorf(tandem.EINVALID, "typing needs on: true or false")
		}
	case FrameRead:
		if err := needConv(); err != nil {
			return err
		}
		if f.Seq <= 0 {
			return tandem.Errorf(tandem.EINVALID, "read needs seq > 0")
		}
	case FrameSuggest:
		if err := needConv(); err != nil {
			return err
		}
		if utf8.RuneCountInString(f.Query) > maxQueryRunes {
			return tandem.Errorf(tandem.EINVALID, "query is longer than %d characters", maxQueryRunes)
		}
	case FrameQueue, FrameAgents, FrameSignOut:
	case "":
		return tandem.Errorf(tandem.EINVALID, "frame has no type")
	default:
		t := f.Type
		if len(t) > 32 {
			t = t[:32]
		}
		return tandem.Errorf(tandem.EINVALID, "unknown frame type %q", strings.ToValidUTF8(t, ""))
	}
	return nil
}

// Server frames.

// AgentView is an agent as consoles see it (no password hash, no email of
// colleagues in team views).
type AgentView struct {
	ID          string          `json:"id"`
	DisplayName string          `json:"display_name"`
	Email       string          `json:"email,omitempty"`
	Role        string          `json:"role"`
	Skills      []string        `json:"skills,omitempty"`
	Languages   []string        `json:"languages,omitempty"`
	MaxChats    int             `json:"max_chats"`
	Presence    tandem.Presence `json:"presence"` // effective presence
	Chosen      tandem.Presence `json:"chosen_presence,omitempty"`
	Connected   bool            `json:"connected"`
	Load        int             `json:"load"`
}

func agentView(st handoff.AgentStatus, withEmail bool) AgentView {
	v := AgentView{ID: st.Agent.ID, DisplayName: st.Agent.DisplayName, Role: st.Agent.Role, Skills: st.Agent.Skills,
		Languages: st.Agent.Languages, MaxChats: st.Agent.MaxChats, Presence: st.Presence, Chosen: st.Chosen,
		Connected: st.Connected, Load: st.Load}
	if withEmail {
		v.Email = st.Agent.Email
	}
	return v
}

// WelcomeFrame answers a valid hello.
type WelcomeFrame struct {
	Type          string          `json:"type"` // "welcome"
	Protocol      string          `json:"protocol"`
	Agent         AgentView       `json:"agent"`
	Tickets       []tandem.Ticket `json:"tickets"` // offered to or assigned to the agent
	Canned        []Canned        `json:"canned"`
	HeartbeatMS   int64           `json:"heartbeat_ms"`
	OfferTimeoutS int64           `json:"offer_timeout_s"`
}

// TicketFrame tells an agent that one of their tickets changed. Event is
// the handoff event type (e.g. "ticket.offered"); Ticket is the snapshot
// after the change. A ticket whose state is no longer offered or assigned
// to the agent is gone from their console.
type TicketFrame struct {
	Type        string        `json:"type"` // "ticket"
	Event       string        `json:"event"`
	Ticket      tandem.Ticket `json:"ticket"`
	AgentName   string        `json:"agent_name,omitempty"`
	PrevAgentID string        `json:"prev_agent_id,omitempty"`
	Reason      string        `json:"reason,omitempty"`
}

// QueueEntry is one queued ticket in the queue view.
type QueueEntry struct {
	Ticket         tandem.Ticket `json:"ticket"`
	Position       int           `json:"position"`
	EstimatedWaitS int64         `json:"estimated_wait_s"`
}

// QueueFrame is the queue view (first QueueViewLimit tickets in queue order).
type QueueFrame struct {
	Type    string       `json:"type"` // "queue"
	Tickets []QueueEntry `json:"tickets"`
	Total   int          `json:"total"` // entries sent (the view is capped)
}

// AgentsFrame is the team view (transfer targets).
type AgentsFrame struct {
	Type   string      `json:"type"` // "agents"
	Agents []AgentView `json:"agents"`
}

// PresenceFrame is the agent's own presence.
type PresenceFrame struct {
	Type  string    `json:"type"` // "presence"
	Agent AgentView `json:"agent"`
}

// Suggestion is an FAQ answer the agent may use.
type Suggestion struct {
	FAQID    string  `json:"faq_id"`
	Question string  `json:"question"`
	Answer   string  `json:"answer"`
	Score    float64 `json:"score"`
}

// SuggestionsFrame carries suggested FAQ answers for a conversation.
type SuggestionsFrame struct {
	Type           string       `json:"type"` // "suggestions"
	ConversationID string       `json:"conversation_id"`
	Query          string       `json:"query"`
	Items          []Suggestion `json:"items"`
}

// OKFrame answers a successful action frame (accept, decline, claim,
// transfer, resolve, return, presence, open).
type OKFrame struct {
	Type   string         `json:"type"` // "ok"
	Ref    string         `json:"ref,omitempty"`
	Action string         `json:"action"`
	Ticket *tandem.Ticket `json:"ticket,omitempty"`
}

// AckFrame confirms that an agent message is stored with Seq.
type AckFrame struct {
	Type           string `json:"type"` // "ack"
	ConversationID string `json:"conversation_id"`
	ClientID       string `json:"client_id"`
	Seq            int64  `json:"seq"`
	Duplicate      bool   `json:"duplicate,omitempty"`
}

// ErrorFrame reports a failed frame; Ref, ClientID, Action and TicketID
// identify it.
type ErrorFrame struct {
	Type     string `json:"type"` // "error"
	Code     string `json:"code"`
	Message  string `json:"message"`
	Ref      string `json:"ref,omitempty"`
	Action   string `json:"action,omitempty"`
	TicketID string `json:"ticket_id,omitempty"`
	ClientID string `json:"client_id,omitempty"`
	// RetryAfterMS: with overloaded, when to send again.
	RetryAfterMS int64 `json:"retry_after_ms,omitempty"`
}

// PongFrame answers a ping.
type PongFrame struct {
	Type string `json:"type"` // "pong"
	ID   string `json:"id,omitempty"`
}

func errorFrame(err error, f ClientFrame) ErrorFrame {
	return ErrorFrame{Type: FrameError, Code: tandem.ErrorCode(err), Message: tandem.ErrorMessage(err),
		Ref: f.Ref, Action: f.Type, TicketID: f.TicketID, ClientID: f.ClientID}
}

func seconds(d time.Duration) int64 { return int64((d + time.Second - 1) / time.Second) }
