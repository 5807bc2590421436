package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tandem-chat/tandem"
)

// Subprotocol is the WebSocket subprotocol of the widget and console
// protocol (docs/protocol.md). Clients offer it in Sec-WebSocket-Protocol;
// the server selects it. A future incompatible version gets a new name.
const Subprotocol = "tandem.v1"

// Client frame types (client to server).
const (
	FrameHello          = "hello"
	FrameMessage        = "message"
	FrameHandoffRequest = "handoff_request"
	FrameTyping         = "typing"
	FrameRead           = "read"
	FramePing           = "ping"
	FrameContact        = "contact"
	FrameHandoffCancel  = "handoff_cancel"
	FrameRating         = "rating"
)

// Server frame types (server to client). FrameMessage, FrameTyping and
// FrameRead are used in both directions.
const (
	FrameWelcome = "welcome"
	FrameAck     = "ack"
	FrameDelta   = "delta"
	FrameHandoff = "handoff"
	FrameError   = "error"
	FramePong    = "pong"
)

// Protocol limits. MaxTextRunes bounds a message's text; MaxClientIDLen
// bounds client message ids.
const (
	MaxTextRunes   = 4000
	MaxClientIDLen = 64
	maxTokenLen    = 4096
	// MaxContactBytes bounds a contact address (an email address is at
	// most 254 bytes; the handoff engine validates the rest).
	MaxContactBytes = 254
)

// ClientFrame is one decoded client frame. Which fields are set depends on
// Type; DecodeClientFrame validates them.
type ClientFrame struct {
	Type           string `json:"type"`
	ClientID       string `json:"client_id,omitempty"`       // message, handoff_request
	Text           string `json:"text,omitempty"`            // message, handoff_request (optional)
	Token          string `json:"token,omitempty"`           // hello
	LastSeq        int64  `json:"last_seq,omitempty"`        // hello: last seq the client has seen
	Seq            int64  `json:"seq,omitempty"`             // read: last seq read
	On             *bool  `json:"on,omitempty"`              // typing
	ID             string `json:"id,omitempty"`              // ping: echoed in pong
	Address        string `json:"address,omitempty"`         // contact: an email address or phone number
	Score          string `json:"score,omitempty"`           // rating: good or bad
	ConversationID string `json:"conversation_id,omitempty"` // optional; must be the connection's conversation
}

// DecodeClientFrame parses and validates one client frame. Every failure
// is a *tandem.Error with code invalid and a client-safe message; it never
// panics, whatever the input.
func DecodeClientFrame(data []byte) (ClientFrame, error) {
	var f ClientFrame
	if err := DecodeStrict(data, &f); err != nil {
		return ClientFrame{}, err
	}
	if err := f.validate(); err != nil {
		return ClientFrame{}, err
	}
	return f, nil
}

// DecodeStrict decodes one WebSocket text frame into v: valid UTF-8, one
// JSON object and nothing after it. Failures are *tandem.Error with code
// invalid and a message safe to show the client (the customer widget's
// and the agent console's decoders share it).
func DecodeStrict(data []byte, v any) error {
	if !utf8.Valid(data) {
		return tandem.Errorf(tandem.EINVALID, "frame is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		if fe := FieldError(err); fe != nil {
			return fe
		}
		return tandem.Errorf(tandem.EINVALID, "frame is not a JSON object")
	}
	if _, err := dec.Token(); err == nil || dec.More() {
		return tandem.Errorf(tandem.EINVALID, "frame has trailing data")
	}
	return nil
}

// FieldError returns the client-safe error (invalid) naming the field a
// JSON decoding error is about — a value of the wrong type, or an unknown
// field (json.Decoder.DisallowUnknownFields) — or nil when it names none.
func FieldError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return tandem.Errorf(tandem.EINVALID, "field %q has the wrong type", te.Field)
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		if len(name) > 66 {
			name = strings.ToValidUTF8(name[:64], "") + "…"
		}
		return tandem.Errorf(tandem.EINVALID, "unknown field %s", name)
	}
	return nil
}

func (f *ClientFrame) validate() error {
	if f.ConversationID != "" && !ValidID(f.ConversationID, 64) {
		return tandem.Errorf(tandem.EINVALID, "conversation_id is malformed")
	}
	switch f.Type {
	case FrameHello:
		if f.Token == "" || len(f.Token) > maxTokenLen {
			return tandem.Errorf(tandem.EINVALID, "hello needs a token")
		}
		if f.LastSeq < 0 {
			return tandem.Errorf(tandem.EINVALID, "last_seq must be >= 0")
		}
	case FrameMessage, FrameHandoffRequest:
		if !validClientID(f.ClientID) {
			return tandem.Errorf(tandem.EINVALID, "client_id must be 1-%d characters of A-Z a-z 0-9 _ - .", MaxClientIDLen)
		}
		f.Text = strings.TrimSpace(f.Text)
		if f.Type == FrameMessage && tandem.Blank(f.Text) {
			// Zero-width spaces and other format characters show nothing
			// either: "\u200b" is as empty as "".
			return tandem.Errorf(tandem.EINVALID, "message text is empty")
		}
		if n := utf8.RuneCountInString(f.Text); n > MaxTextRunes {
			return tandem.Errorf(tandem.EINVALID, "message text is longer than %d characters", MaxTextRunes)
		}
		if strings.ContainsRune(f.Text, 0) {
			return tandem.Errorf(tandem.EINVALID, "message text contains NUL")
		}
	case FrameRating:
		if !validClientID(f.ClientID) {
			return tandem.Errorf(tandem.EINVALID, "client_id must be 1-%d characters of A-Z a-z 0-9 _ - .", MaxClientIDLen)
		}
		if _, ok := ratingText[f.Score]; !ok {
			return tandem.Errorf(tandem.EINVALID, "rating needs score: good or bad")
		}
	case FrameHandoffCancel:
		if !validClientID(f.ClientID) {
			return tandem.Errorf(tandem.EINVALID, "client_id must be 1-%d characters of A-Z a-z 0-9 _ - .", MaxClientIDLen)
		}
	case FrameContact:
		if !validClientID(f.ClientID) {
			return tandem.Errorf(tandem.EINVALID, "client_id must be 1-%d characters of A-Z a-z 0-9 _ - .", MaxClientIDLen)
		}
		f.Address = strings.TrimSpace(f.Address)
		if f.Address == "" {
			return tandem.Errorf(tandem.EINVALID, "contact needs an address (an email address or a phone number)")
		}
		if len(f.Address) > MaxContactBytes {
			return tandem.Errorf(tandem.EINVALID, "contact address is longer than %d bytes", MaxContactBytes)
		}
		for _, r := range f.Address {
			if r < 0x20 || r == 0x7f {
				return tandem.Errorf(tandem.EINVALID, "contact address contains control characters")
			}
		}
	case FrameTyping:
		if f.On == nil {
			return tandem.Errorf(tandem.EINVALID, "typing needs on: true or false")
		}
	case FrameRead:
		if f.Seq <= 0 {
			return tandem.Errorf(tandem.EINVALID, "read needs seq > 0")
		}
	case FramePing:
		if len(f.ID) > 64 {
			return tandem.Errorf(tandem.EINVALID, "ping id is longer than 64 bytes")
		}
	case "":
		return tandem.Errorf(tandem.EINVALID, "frame has no type")
	default:
		return tandem.Errorf(tandem.EINVALID, "unknown frame type %q", truncate(f.Type, 32))
	}
	return nil
}

// ratingText is the logged text of each rating score.
var ratingText = map[string]string{
	"good": "Rated this conversation: 👍 Good",
	"bad":  "Rated this conversation: 👎 Not good",
}

// validClientID checks a customer's client id. Unlike ValidID it refuses
// ':', which the server reserves for the idempotency keys of the messages
// it writes itself ("bot:<seq>", "agent:<id>", "contact:<id>"), so a
// customer can never pre-empt (and so suppress) one of them.
func validClientID(s string) bool {
	return ValidID(s, MaxClientIDLen) && !strings.ContainsRune(s, ':')
}

// ValidID reports whether s is 1..max bytes of [A-Za-z0-9_:.-], the
// alphabet of every id on the wire (conversations, tickets, client ids).
func ValidID(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == ':' || c == '.') {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// Server frames. Each is marshalled as one JSON text frame.

// WelcomeFrame answers a valid hello.
type WelcomeFrame struct {
	Type           string          `json:"type"` // "welcome"
	Protocol       string          `json:"protocol"`
	ConversationID string          `json:"conversation_id"`
	Customer       tandem.Customer `json:"customer"`
	Mode           tandem.Mode     `json:"mode"`
	LastSeq        int64           `json:"last_seq"` // the log's last seq at hello time
	HeartbeatMS    int64           `json:"heartbeat_ms"`
}

// AckFrame confirms that a client message is stored with Seq.
type AckFrame struct {
	Type      string `json:"type"` // "ack"
	ClientID  string `json:"client_id"`
	Seq       int64  `json:"seq"`
	Duplicate bool   `json:"duplicate,omitempty"`
}

// MessageFrame delivers one logged message, in seq order, exactly once per
// connection.
type MessageFrame struct {
	Type           string         `json:"type"` // "message"
	ConversationID string         `json:"conversation_id"`
	Message        tandem.Message `json:"message"`
}

// DeltaFrame carries a piece of a streamed bot answer; the final answer
// arrives later as a message frame with data.stream_id = StreamID.
type DeltaFrame struct {
	Type           string `json:"type"` // "delta"
	ConversationID string `json:"conversation_id"`
	StreamID       string `json:"stream_id"`
	ReplyTo        int64  `json:"reply_to"` // seq of the customer message answered
	Text           string `json:"text"`
}

// TypingFrame says someone started or stopped typing.
type TypingFrame struct {
	Type           string        `json:"type"` // "typing"
	ConversationID string        `json:"conversation_id"`
	Author         tandem.Author `json:"author"`
	Name           string        `json:"name,omitempty"`
	On             bool          `json:"on"`
}

// ReadFrame says a participant has read everything up to Seq.
type ReadFrame struct {
	Type           string        `json:"type"` // "read"
	ConversationID string        `json:"conversation_id"`
	Author         tandem.Author `json:"author"`
	Seq            int64         `json:"seq"`
}

// Handoff statuses sent to the customer.
const (
	HandoffQueued      = "queued"      // waiting for an agent; Position and EstimatedWait set
	HandoffAssigned    = "assigned"    // an agent took over; AgentName set
	HandoffReturned    = "returned"    // back to the bot
	HandoffUnavailable = "unavailable" // nobody can take the conversation now
	HandoffClosed      = "closed"      // the agent closed the conversation
)

// HandoffStatus is where a conversation stands in the handoff process, as
// the handoff engine reports it (see Chat.HandoffStatus).
type HandoffStatus struct {
	Status        string        // one of the Handoff* constants
	Position      int           // queue position, 1 = next (queued)
	EstimatedWait time.Duration // estimated wait (queued)
	AgentName     string        // the agent's display name (assigned)
	AgentID       string        // the agent's id (assigned; stored, never sent to the customer)
	Message       string        // optional human-readable note
	// LeaveContact invites the customer to leave a contact address (a
	// contact frame): nobody is online and the ticket stays queued.
	LeaveContact bool
	// NoteKey, when set, is the idempotency key (client_id) of the system
	// note: a change announced twice — by the action that made it, before
	// it answers, and by its event — is logged once.
	NoteKey string
}

// HandoffFrame carries a HandoffStatus to the customer.
type HandoffFrame struct {
	Type           string `json:"type"` // "handoff"
	ConversationID string `json:"conversation_id"`
	Status         string `json:"status"`
	Position       int    `json:"position,omitempty"`
	EstimatedWaitS int64  `json:"estimated_wait_s,omitempty"`
	AgentName      string `json:"agent_name,omitempty"`
	Message        string `json:"message,omitempty"`
	// LeaveContact: the customer may leave a contact address (contact frame).
	LeaveContact bool `json:"leave_contact,omitempty"`
}

func handoffFrame(convID string, st HandoffStatus) HandoffFrame {
	return HandoffFrame{Type: FrameHandoff, ConversationID: convID, Status: st.Status, Position: st.Position,
		EstimatedWaitS: int64((st.EstimatedWait + time.Second - 1) / time.Second), AgentName: st.AgentName, Message: st.Message,
		LeaveContact: st.LeaveContact}
}

// ErrorFrame reports a failed client frame. ClientID is set when the failed
// frame had one (the message was not stored unless Code is conflict).
type ErrorFrame struct {
	Type     string `json:"type"` // "error"
	Code     string `json:"code"`
	Message  string `json:"message"`
	ClientID string `json:"client_id,omitempty"`
	// RetryAfterMS is set for code overloaded: the earliest useful retry.
	RetryAfterMS int64 `json:"retry_after_ms,omitempty"`
}

// PongFrame answers a ping.
type PongFrame struct {
	Type string `json:"type"` // "pong"
	ID   string `json:"id,omitempty"`
}

// errorFrameFor builds the error frame of err: internal details never leave.
func errorFrameFor(err error, clientID string) ErrorFrame {
	return ErrorFrame{Type: FrameError, Code: tandem.ErrorCode(err), Message: tandem.ErrorMessage(err), ClientID: clientID}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("gateway: marshal %T: %v", v, err))
	}
	return b
}
