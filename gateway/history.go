package gateway

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/tandem-chat/tandem"
)

// MessagesPage is the body of GET /v1/conversations/{id}/messages.
type MessagesPage struct {
	ConversationID string           `json:"conversation_id"`
	Messages       []tandem.Message `json:"messages"`
	// NextAfter is the value of `after` for the next page; 0 when this
	// page reached the end of the log.
	NextAfter int64 `json:"next_after"`
}

// authorizeConversation checks that the caller may read the conversation:
// its owner (customer token), the assigned agent (or one AgentAccess
// allows), or an admin.
func (c *Chat) authorizeConversation(r *http.Request, id string) (tandem.Conversation, Principal, error) {
	p, err := c.auth.Authenticate(r)
	if err != nil {
		return tandem.Conversation{}, p, err
	}
	conv, err := c.authorizeFor(r, p, id)
	return conv, p, err
}

func (c *Chat) authorizeFor(r *http.Request, p Principal, id string) (tandem.Conversation, error) {
	if !ValidID(id, 64) {
		return tandem.Conversation{}, tandem.Errorf(tandem.ENOTFOUND, "conversation not found")
	}
	// Customers learn nothing about conversations that are not theirs.
	if p.Role == RoleCustomer && p.ConversationID != id {
		return tandem.Conversation{}, tandem.Errorf(tandem.EFORBIDDEN, "not your conversation")
	}
	conv, err := c.log.Conversation(r.Context(), id)
	if err != nil {
		if p.Role != RoleAdmin && tandem.ErrorCode(err) == tandem.ENOTFOUND {
			return conv, tandem.Errorf(tandem.EFORBIDDEN, "not your conversation")
		}
		return conv, err
	}
	switch p.Role {
	case RoleAdmin:
		return conv, nil
	case RoleCustomer:
		if conv.Customer.ID == p.ID && conv.SiteKey == p.SiteKey {
			return conv, nil
		}
	case RoleAgent:
		if conv.AgentID == p.ID || c.access != nil && c.access(r.Context(), p.ID, id) {
			return conv, nil
		}
	}
	return tandem.Conversation{}, tandem.Errorf(tandem.EFORBIDDEN, "not your conversation")
}

func (c *Chat) handleConversation(w http.ResponseWriter, r *http.Request) {
	conv, p, err := c.authorizeConversation(r, chi.URLParam(r, "id"))
	if err != nil {
		WriteError(w, r, c.logger, err)
		return
	}
	if p.Role == RoleCustomer {
		conv.AgentID = "" // agent ids are never sent to customers
	}
	WriteJSON(w, http.StatusOK, conv)
}

// authenticateAdmin authenticates the caller and requires an admin: others
// are forbidden to do what ("only an admin can <what>").
func (c *Chat) authenticateAdmin(r *http.Request, what string) (Principal, error) {
	p, err := c.auth.Authenticate(r)
	if err == nil && p.Role != RoleAdmin {
		err = tandem.Errorf(tandem.EFORBIDDEN, "only an admin can %s", what)
	}
	return p, err
}

// handleErase deletes a conversation for good (admins only): the
// customer's right to erasure. 204 when done; 409 while it has an open
// ticket.
func (c *Chat) handleErase(w http.ResponseWriter, r *http.Request) {
	p, err := c.authenticateAdmin(r, "erase a conversation")
	if err != nil {
		WriteError(w, r, c.logger, err)
		return
	}
	id := chi.URLParam(r, "id")
	if !ValidID(id, 64) {
		WriteError(w, r, c.logger, tandem.Errorf(tandem.ENOTFOUND, "conversation not found"))
		return
	}
	if err := c.EraseConversation(r.Context(), id); err != nil {
		WriteError(w, r, c.logger, err)
		return
	}
	c.logger.Info("conversation erased", "conversation", id, "by", p.ID)
	w.WriteHeader(http.StatusNoContent)
}

func (c *Chat) handleMessages(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	conv, p, err := c.authorizeConversation(r, id)
	if err != nil {
		WriteError(w, r, c.logger, err)
		return
	}
	after, limit := int64(0), 100
	q := r.URL.Query()
	if v := q.Get("after"); v != "" {
		if after, err = strconv.ParseInt(v, 10, 64); err != nil || after < 0 {
			WriteError(w, r, c.logger, tandem.Errorf(tandem.EINVALID, "after must be a seq >= 0"))
			return
		}
	}
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > 500 {
			WriteError(w, r, c.logger, tandem.Errorf(tandem.EINVALID, "limit must be between 1 and 500"))
			return
		}
	}
	msgs, err := c.log.Messages(r.Context(), conv.ID, after, limit)
	if err != nil {
		WriteError(w, r, c.logger, err)
		return
	}
	if p.Role == RoleCustomer {
		for i := range msgs {
			msgs[i] = wireMessage(msgs[i])
		}
	}
	page := MessagesPage{ConversationID: conv.ID, Messages: msgs}
	if len(msgs) == limit && msgs[len(msgs)-1].Seq < conv.LastSeq {
		page.NextAfter = msgs[len(msgs)-1].Seq
	}
	WriteJSON(w, http.StatusOK, page)
}

func jsonRoundTrip(in any, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}
