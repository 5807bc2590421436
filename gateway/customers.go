package gateway

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/tandem-chat/tandem"
)

// customerPage is how many of a customer's conversations one read takes.
const customerPage = 500

// CustomerConversations is the body of GET /v1/conversations?site_key=…&customer_id=….
type CustomerConversations struct {
	Conversations []tandem.Conversation `json:"conversations"`
	// More is true when the customer has more conversations than the
	// limit (the least recently updated are left out).
	More bool `json:"more"`
}

// CustomerErasure is the body of DELETE /v1/conversations?site_key=…&customer_id=….
type CustomerErasure struct {
	// Erased counts the conversations erased for good.
	Erased int `json:"erased"`
	// Kept lists the conversations left because a ticket of theirs is
	// open (resolve them, or return them to the bot, and call again).
	Kept []string `json:"kept"`
}

// EraseCustomer erases every conversation of a customer on a site, each
// as EraseConversation does (the customer's right to erasure when they
// ask by who they are rather than by conversation); the ones with an open
// ticket are kept and listed. A customer with no conversations is not an
// error: nothing is erased.
func (c *Chat) EraseCustomer(ctx context.Context, siteKey, customerID string) (CustomerErasure, error) {
	res := CustomerErasure{Kept: []string{}}
	for {
		convs, err := c.log.CustomerConversations(ctx, siteKey, customerID, customerPage)
		if err != nil {
			return res, err
		}
		progressed := false
		for _, cv := range convs {
			if slices.Contains(res.Kept, cv.ID) {
				continue
			}
			switch err := c.EraseConversation(ctx, cv.ID); tandem.ErrorCode(err) {
			case "":
				res.Erased++
				progressed = true
			case tandem.ECONFLICT:
				res.Kept = append(res.Kept, cv.ID)
			case tandem.ENOTFOUND: // erased meanwhile (another request, retention)
				progressed = true
			default:
				return res, err
			}
		}
		// A full page may hide more behind the kept ones; stop once a page
		// erased nothing new.
		if len(convs) < customerPage || !progressed {
			return res, nil
		}
	}
}

// customerQuery authenticates an admin and reads site_key and customer_id.
func (c *Chat) customerQuery(r *http.Request) (p Principal, siteKey, customerID string, err error) {
	if p, err = c.authenticateAdmin(r, "list or erase a customer's conversations"); err != nil {
		return p, "", "", err
	}
	q := r.URL.Query()
	siteKey, customerID = q.Get("site_key"), q.Get("customer_id")
	if !ValidID(siteKey, 64) {
		return p, "", "", tandem.Errorf(tandem.EINVALID, "site_key is required: 1-64 letters, digits, '_', '-', ':' or '.'")
	}
	// Customer ids are "u:" + a verified user id (up to 128 bytes) or the
	// "anon_…" id of an anonymous visitor.
	if customerID == "" || len(customerID) > 130 || !utf8.ValidString(customerID) || strings.IndexFunc(customerID, unicode.IsControl) >= 0 {
		return p, "", "", tandem.Errorf(tandem.EINVALID, `customer_id is required: the id conversations carry ("u:<user id>" or "anon_…"), at most 130 bytes of UTF-8 without control characters`)
	}
	return p, siteKey, customerID, nil
}

// handleCustomerConversations lists a customer's conversations (admins).
func (c *Chat) handleCustomerConversations(w http.ResponseWriter, r *http.Request) {
	_, site, customer, err := c.customerQuery(r)
	if err != nil {
		WriteError(w, r, c.logger, err)
		return
	}
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > customerPage {
			WriteError(w, r, c.logger, tandem.Errorf(tandem.EINVALID, "limit must be between 1 and %d", customerPage))
			return
		}
	}
	convs, err := c.log.CustomerConversations(r.Context(), site, customer, limit+1)
	if err != nil {
		WriteError(w, r, c.logger, err)
		return
	}
	page := CustomerConversations{Conversations: convs, More: len(convs) > limit}
	if page.More {
		page.Conversations = convs[:limit]
	}
	if page.Conversations == nil {
		page.Conversations = []tandem.Conversation{}
	}
	WriteJSON(w, http.StatusOK, page)
}

// handleEraseCustomer erases a customer's conversations (admins).
func (c *Chat) handleEraseCustomer(w http.ResponseWriter, r *http.Request) {
	p, site, customer, err := c.customerQuery(r)
	if err != nil {
		WriteError(w, r, c.logger, err)
		return
	}
	res, err := c.EraseCustomer(r.Context(), site, customer)
	if res.Erased > 0 || len(res.Kept) > 0 {
		// Not the customer id: it is personal data.
		c.logger.Info("customer's conversations erased", "site", site, "erased", res.Erased, "kept", len(res.Kept), "by", p.ID)
	}
	if err != nil {
		WriteError(w, r, c.logger, err)
		return
	}
	WriteJSON(w, http.StatusOK, res)
}
