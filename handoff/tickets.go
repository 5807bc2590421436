package handoff

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tandem-chat/tandem"
)

// Escalate creates a queued ticket for a conversation the bot hands off,
// and returns it with its place in the queue. The ticket carries the
// escalation's reason, detail, skills, language (esc.Language, else the
// conversation's locale, else the detected language) and NLU summary, the
// customer's ID and tier, and the conversation ID (the link to the
// transcript). Its priority is esc.Priority plus Config.ReasonPriority of
// the reason plus Config.VIPBoost for VIP customers.
//
// Escalate is idempotent per conversation: if the conversation already has
// an open ticket, that ticket is returned unchanged. It emits EventQueued
// and, when no agent is online, EventNobodyOnline; routing follows
// asynchronously (Run) or at the next Tick.
func (e *Engine) Escalate(ctx context.Context, conv tandem.Conversation, esc tandem.Escalation) (tandem.Ticket, QueueInfo, error) {
	if strings.TrimSpace(conv.ID) == "" {
		return tandem.Ticket{}, QueueInfo{}, tandem.Errorf(tandem.EINVALID, "escalation without a conversation")
	}
	if esc.Reason == "" {
		return tandem.Ticket{}, QueueInfo{}, tandem.Errorf(tandem.EINVALID, "escalation without a reason")
	}
	lang := firstNonEmpty(esc.Language, conv.Locale, esc.Summary.Language)
	customerID := conv.Customer.ID
	if customerID == "" {
		customerID = "anonymous:" + conv.ID
	}
	now := e.now()
	t := tandem.Ticket{
		ID:             newID("tkt_"),
		ConversationID: conv.ID,
		CustomerID:     customerID,
		Reason:         esc.Reason,
		Detail:         esc.Detail,
		Priority:       e.priority(esc, conv.Customer),
		Skills:         NormalizeTags(esc.Skills),
		Language:       NormalizeLanguage(lang), // en_US -> en-us
		Tier:           conv.Customer.Tier,
		Summary:        esc.Summary,
		State:          tandem.TicketQueued,
		CreatedAt:      now,
		QueuedAt:       now,
	}
	e.order.RLock()
	defer e.order.RUnlock()
	var out tandem.Ticket
	var err error
	for attempt := 0; ; attempt++ {
		out, err = e.store.CreateTicket(ctx, t, e.cfg.Node)
		if tandem.ErrorCode(err) != tandem.ECONFLICT {
			break
		}
		// Already open (or a concurrent Escalate won): that ticket.
		open, oerr := e.store.OpenTicket(ctx, conv.ID)
		if oerr == nil {
			q, err := e.Position(ctx, open.ID)
			if err != nil {
				// The ticket exists: the escalation stands; only its place
				// in the queue is unknown until the next position sweep.
				e.log.Warn("escalate: queue position", "ticket", open.ID, "err", err)
				return open, QueueInfo{}, nil
			}
			return open, q, nil
		}
		if tandem.ErrorCode(oerr) != tandem.ENOTFOUND || attempt >= 2 {
			break
		}
		// It closed in between (returned, resolved): open a new one.
	}
	if err != nil {
		return tandem.Ticket{}, QueueInfo{}, fmt.Errorf("handoff: escalate: %w", err)
	}
	e.m.transitions.WithLabelValues(ReasonEscalated).Inc()
	// Route only after EventQueued is out, so that subscribers never see
	// the offer of a ticket before the ticket itself.
	defer e.requestRoute()
	q, err := e.position(ctx, out, true)
	if err != nil {
		// The ticket is committed and will be routed: the escalation
		// succeeded; only its place in the queue is unknown until the next
		// position sweep.
		e.log.Warn("escalate: queue position", "ticket", out.ID, "err", err)
		e.emit(Event{Type: EventQueued, At: now, Ticket: ptr(out), Reason: ReasonEscalated})
		return out, QueueInfo{}, nil
	}
	e.mu.Lock()
	e.positions[out.ID] = q
	e.mu.Unlock()
	e.emit(Event{Type: EventQueued, At: now, Ticket: ptr(out), Queue: ptr(q), Reason: ReasonEscalated})
	if q.NobodyOnline {
		e.emit(Event{Type: EventNobodyOnline, At: now, Ticket: ptr(out), Queue: ptr(q)})
	}
	return out, q, nil
}

func (e *Engine) priority(esc tandem.Escalation, c tandem.Customer) int {
	p := esc.Priority + e.cfg.ReasonPriority[esc.Reason]
	if c.VIP() {
		p += e.cfg.VIPBoost
	}
	return p
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if strings.TrimSpace(s) != "" {
			return s
		}
	}
	return ""
}

// LeaveContact stores a contact address (an email address or a phone
// number) on the conversation's open ticket, typically when nobody is
// online. The ticket stays queued. It emits EventContact.
func (e *Engine) LeaveContact(ctx context.Context, conversationID, address string) (tandem.Ticket, error) {
	address = strings.TrimSpace(address)
	if !validContact(address) {
		return tandem.Ticket{}, tandem.Errorf(tandem.EINVALID, "enter an email address or a phone number")
	}
	t, err := e.store.OpenTicket(ctx, conversationID)
	if err != nil {
		return tandem.Ticket{}, err
	}
	out, err := e.store.SetContact(ctx, t.ID, address)
	if err != nil {
		return tandem.Ticket{}, err
	}
	e.emit(Event{Type: EventContact, Ticket: ptr(out)})
	return out, nil
}

func validContact(s string) bool {
	if s == "" || len(s) > 254 || strings.IndexFunc(s, unicode.IsControl) >= 0 || !utf8.ValidString(s) {
		return false
	}
	if at := strings.LastIndexByte(s, '@'); at > 0 {
		domain := s[at+1:]
		return !strings.ContainsAny(s, " <>,;") && strings.Contains(domain, ".") && !strings.HasPrefix(domain, ".") && !strings.HasSuffix(domain, ".")
	}
	digits := 0
	for i, r := range s {
		switch {
		case unicode.IsDigit(r) && r < 128:
			digits++
		case r == '+' && i == 0, r == ' ', r == '-', r == '(', r == ')', r == '.':
		default:
			return false
		}
	}
	return digits >= 6 && digits <= 15
}

// Cancel closes a conversation's open ticket on the customer's side: state
// TicketReturned when the customer goes back to the bot, TicketAbandoned
// when they leave. An agent holding the ticket loses it (EventReturned or
// EventClosed tells them).
func (e *Engine) Cancel(ctx context.Context, conversationID string, state tandem.TicketState) (tandem.Ticket, error) {
	if state != tandem.TicketReturned && state != tandem.TicketAbandoned {
		return tandem.Ticket{}, tandem.Errorf(tandem.EINVALID, "cancel state must be returned or abandoned")
	}
	for attempt := 0; ; attempt++ {
		t, err := e.store.OpenTicket(ctx, conversationID)
		if err != nil {
			return tandem.Ticket{}, err
		}
		out, err := e.close(ctx, t.ID, state, ReasonCustomer, Change{
			From: []tandem.TicketState{tandem.TicketQueued, tandem.TicketOffered, tandem.TicketAssigned}, AnyHolder: true, Version: t.Version,
		})
		if tandem.ErrorCode(err) == tandem.ECONFLICT && attempt < 3 {
			continue // changed under us (offered, accepted): retry on the new version
		}
		return out, err
	}
}

// close applies a closing transition prepared in c (conditions) and emits
// its event.
func (e *Engine) close(ctx context.Context, ticketID string, state tandem.TicketState, reason string, c Change) (tandem.Ticket, error) {
	now := e.now()
	c.TicketID, c.Now, c.Node, c.Reason, c.To = ticketID, now, e.cfg.Node, reason, state
	out, err := e.store.Apply(ctx, c)
	if err != nil {
		return tandem.Ticket{}, err
	}
	e.m.transitions.WithLabelValues(reason).Inc()
	if !out.AssignedAt.IsZero() {
		e.m.handle.WithLabelValues(string(state)).Observe(out.ClosedAt.Sub(out.AssignedAt).Seconds())
	}
	typ := EventClosed
	if state == tandem.TicketReturned {
		typ = EventReturned
	}
	ev := Event{Type: typ, At: now, Ticket: ptr(out), Reason: reason}
	if out.AgentID != "" && (!out.AssignedAt.IsZero() || !out.OfferedAt.IsZero()) {
		ev.PrevAgentID = out.AgentID
		e.requestRoute() // capacity freed
	}
	e.emit(ev)
	return out, nil
}

// heldBy returns the conditions of a change to a ticket assigned to the
// actor (any holder for admins).
func heldBy(a Actor) Change {
	return Change{From: []tandem.TicketState{tandem.TicketAssigned}, Holder: a.AgentID, AnyHolder: a.Admin}
}

// explainHeld turns a failed change to a ticket that had to be assigned to
// the actor into the error the actor should see, after reading the ticket.
func (e *Engine) explainHeld(ctx context.Context, a Actor, ticketID string, err error) error {
	if code := tandem.ErrorCode(err); code != tandem.ECONFLICT && code != tandem.ENOTFOUND {
		return err
	}
	t, rerr := e.store.Ticket(ctx, ticketID)
	switch {
	case rerr != nil:
		return rerr
	case !a.Admin && t.AgentID != a.AgentID:
		return tandem.Errorf(tandem.EFORBIDDEN, "ticket %s is not assigned to you", t.ID)
	case t.State != tandem.TicketAssigned:
		return tandem.Errorf(tandem.ECONFLICT, "ticket %s is %s, not assigned", t.ID, t.State)
	}
	return err
}

// ticketFor loads a ticket for an agent action that needs it assigned to
// the actor (or any holder for admins).
func (e *Engine) ticketFor(ctx context.Context, a Actor, ticketID string) (tandem.Ticket, error) {
	t, err := e.store.Ticket(ctx, ticketID)
	if err != nil {
		return tandem.Ticket{}, err
	}
	if !a.Admin && t.AgentID != a.AgentID {
		return tandem.Ticket{}, tandem.Errorf(tandem.EFORBIDDEN, "ticket %s is not assigned to you", t.ID)
	}
	if t.State != tandem.TicketAssigned {
		return tandem.Ticket{}, tandem.Errorf(tandem.ECONFLICT, "ticket %s is %s, not assigned", t.ID, t.State)
	}
	return t, nil
}

// Accept turns an offer to the actor into an assignment. Accepting twice,
// after the offer expired or after it went to someone else is ECONFLICT
// with a message saying which, and changes nothing.
func (e *Engine) Accept(ctx context.Context, a Actor, ticketID string) (tandem.Ticket, error) {
	now := e.now()
	out, err := e.store.Apply(ctx, Change{
		TicketID: ticketID, Now: now, Node: e.cfg.Node, Reason: ReasonAccept,
		From: []tandem.TicketState{tandem.TicketOffered}, Holder: a.AgentID, OfferLive: true, HolderEnabled: true,
		To: tandem.TicketAssigned, Agent: a.AgentID,
	})
	if tandem.ErrorCode(err) == tandem.ECONFLICT {
		t, rerr := e.store.Ticket(ctx, ticketID)
		switch {
		case rerr != nil:
			return tandem.Ticket{}, rerr
		case t.State == tandem.TicketAssigned && t.AgentID == a.AgentID:
			return tandem.Ticket{}, tandem.Errorf(tandem.ECONFLICT, "you have already accepted ticket %s", t.ID)
		case t.State == tandem.TicketOffered && t.AgentID == a.AgentID && !now.Before(t.OfferExpiresAt):
			return tandem.Ticket{}, tandem.Errorf(tandem.ECONFLICT, "the offer of ticket %s has expired", t.ID)
		default:
			return tandem.Ticket{}, tandem.Errorf(tandem.ECONFLICT, "the offer of ticket %s is no longer available to you (it expired, was withdrawn or went to another agent)", t.ID)
		}
	}
	if err != nil {
		return tandem.Ticket{}, err
	}
	e.assigned(ctx, out, ReasonAccept)
	return out, nil
}

func (e *Engine) assigned(ctx context.Context, t tandem.Ticket, reason string) {
	e.m.transitions.WithLabelValues(reason).Inc()
	e.m.wait.Observe(t.AssignedAt.Sub(t.QueuedAt).Seconds())
	e.emit(Event{Type: EventAssigned, At: t.AssignedAt, Ticket: ptr(t), AgentID: t.AgentID, AgentName: e.displayName(ctx, t.AgentID), Reason: reason})
}

// displayName returns an agent's display name, cached for a minute.
func (e *Engine) displayName(ctx context.Context, agentID string) string {
	now := e.now()
	e.mu.Lock()
	n, ok := e.names[agentID]
	e.mu.Unlock()
	if ok && now.Sub(n.at) < time.Minute {
		return n.name
	}
	ag, err := e.store.Agent(ctx, agentID)
	if err != nil {
		return ""
	}
	e.mu.Lock()
	if len(e.names) > 10000 {
		clear(e.names)
	}
	e.names[agentID] = cachedName{ag.DisplayName, now}
	e.mu.Unlock()
	return ag.DisplayName
}

// Decline refuses an offer: the ticket is queued again and routing skips
// the actor for it for Config.SkipFor.
func (e *Engine) Decline(ctx context.Context, a Actor, ticketID string) (tandem.Ticket, error) {
	now := e.now()
	out, err := e.store.Apply(ctx, Change{
		TicketID: ticketID, Now: now, Node: e.cfg.Node, Reason: ReasonDecline,
		From: []tandem.TicketState{tandem.TicketOffered}, Holder: a.AgentID,
		To: tandem.TicketQueued, Skip: a.AgentID, SkipUntil: now.Add(e.cfg.SkipFor),
	})
	if tandem.ErrorCode(err) == tandem.ECONFLICT {
		return tandem.Ticket{}, tandem.Errorf(tandem.ECONFLICT, "ticket %s has no pending offer to you", ticketID)
	}
	if err != nil {
		return tandem.Ticket{}, err
	}
	e.m.transitions.WithLabelValues(ReasonDecline).Inc()
	e.emit(Event{Type: EventOfferDeclined, At: now, Ticket: ptr(out), AgentID: a.AgentID, PrevAgentID: a.AgentID, Reason: ReasonDecline})
	e.requestRoute()
	return out, nil
}

// claimConflict is the error of agentID's claim of t, which is not queued;
// raced: it was queued when the claim began and another agent (or routing)
// took it meanwhile.
func claimConflict(t tandem.Ticket, agentID string, raced bool) error {
	switch {
	case t.AgentID == agentID && Holds(t.State):
		return tandem.Errorf(tandem.ECONFLICT, "ticket %s is already %s to you", t.ID, t.State)
	case raced && Holds(t.State):
		return tandem.Errorf(tandem.ECONFLICT, "ticket %s was just taken by another agent", t.ID)
	}
	return tandem.Errorf(tandem.ECONFLICT, "ticket %s is %s, not queued", t.ID, t.State)
}

// Claim assigns a queued ticket to the actor directly (the queue view's
// "take"), regardless of skills, language and skips, but within capacity
// and only while the actor is connected.
func (e *Engine) Claim(ctx context.Context, a Actor, ticketID string) (tandem.Ticket, error) {
	t, err := e.store.Ticket(ctx, ticketID)
	if err != nil {
		return tandem.Ticket{}, err
	}
	if t.State != tandem.TicketQueued {
		return tandem.Ticket{}, claimConflict(t, a.AgentID, false)
	}
	now := e.now()
	out, err := e.store.Apply(ctx, Change{
		TicketID: t.ID, Now: now, Node: e.cfg.Node, Reason: ReasonClaim,
		From: []tandem.TicketState{tandem.TicketQueued}, Version: t.Version,
		To: tandem.TicketAssigned, Agent: a.AgentID, LiveAfter: e.liveAfter(now),
	})
	if tandem.ErrorCode(err) == tandem.ECONFLICT {
		// Lost a race (another claim, routing, the customer leaving): say
		// what happened rather than "reload and retry", which can only fail.
		if cur, rerr := e.store.Ticket(ctx, ticketID); rerr == nil && cur.State != tandem.TicketQueued {
			return tandem.Ticket{}, claimConflict(cur, a.AgentID, true)
		}
	}
	if err != nil {
		return tandem.Ticket{}, err
	}
	e.assigned(ctx, out, ReasonClaim)
	return out, nil
}

// Transfer hands an assigned ticket to another agent as an offer (with the
// usual timeout). The target must exist, differ from the holder, be online
// and connected and have free capacity, else ENOTFOUND, EINVALID or
// ECONFLICT and nothing changes. If the target declines or lets the offer
// expire, the ticket is queued and routing skips the former holder.
func (e *Engine) Transfer(ctx context.Context, a Actor, ticketID, toAgentID string) (tandem.Ticket, error) {
	t, err := e.ticketFor(ctx, a, ticketID)
	if err != nil {
		return tandem.Ticket{}, err
	}
	if toAgentID == t.AgentID {
		return tandem.Ticket{}, tandem.Errorf(tandem.EINVALID, "ticket %s is already with that agent", t.ID)
	}
	if _, err := e.store.Agent(ctx, toAgentID); err != nil {
		return tandem.Ticket{}, err
	}
	now := e.now()
	out, err := e.store.Apply(ctx, Change{
		TicketID: t.ID, Now: now, Node: e.cfg.Node, Reason: ReasonTransfer,
		From: []tandem.TicketState{tandem.TicketAssigned}, Holder: t.AgentID, Version: t.Version,
		To: tandem.TicketOffered, Agent: toAgentID, RequireOnline: true, LiveAfter: e.liveAfter(now),
		OfferExpires: now.Add(e.cfg.OfferTimeout), Skip: t.AgentID, SkipUntil: now.Add(e.cfg.SkipFor),
	})
	if err != nil {
		return tandem.Ticket{}, err
	}
	e.m.transitions.WithLabelValues(ReasonTransfer).Inc()
	e.emit(Event{Type: EventTransferred, At: now, Ticket: ptr(out), AgentID: toAgentID, PrevAgentID: t.AgentID, Reason: ReasonTransfer})
	e.emit(Event{Type: EventOffered, At: now, Ticket: ptr(out), AgentID: toAgentID, PrevAgentID: t.AgentID, Reason: ReasonTransfer})
	return out, nil
}

// TransferToGroup sends an assigned ticket back to the queue requiring the
// given skills (a skill group); routing skips the former holder.
func (e *Engine) TransferToGroup(ctx context.Context, a Actor, ticketID string, skills []string) (tandem.Ticket, error) {
	skills = NormalizeTags(skills)
	if len(skills) == 0 {
		return tandem.Ticket{}, tandem.Errorf(tandem.EINVALID, "transfer to a group needs at least one skill")
	}
	if err := checkSkills(skills); err != nil {
		return tandem.Ticket{}, err
	}
	t, err := e.ticketFor(ctx, a, ticketID)
	if err != nil {
		return tandem.Ticket{}, err
	}
	now := e.now()
	out, err := e.store.Apply(ctx, Change{
		TicketID: t.ID, Now: now, Node: e.cfg.Node, Reason: ReasonTransferGroup,
		From: []tandem.TicketState{tandem.TicketAssigned}, Holder: t.AgentID, Version: t.Version,
		To: tandem.TicketQueued, SetSkills: true, Skills: skills, Skip: t.AgentID, SkipUntil: now.Add(e.cfg.SkipFor),
	})
	if err != nil {
		return tandem.Ticket{}, err
	}
	e.m.transitions.WithLabelValues(ReasonTransferGroup).Inc()
	e.emit(Event{Type: EventTransferred, At: now, Ticket: ptr(out), PrevAgentID: t.AgentID, Reason: ReasonTransferGroup})
	e.requestRoute()
	return out, nil
}

// Resolve closes an assigned ticket as resolved.
func (e *Engine) Resolve(ctx context.Context, a Actor, ticketID string) (tandem.Ticket, error) {
	out, err := e.close(ctx, ticketID, tandem.TicketResolved, ReasonResolve, heldBy(a))
	if err != nil {
		return tandem.Ticket{}, e.explainHeld(ctx, a, ticketID, err)
	}
	return out, nil
}

// ReturnToBot hands an assigned conversation back to the bot (the ticket
// becomes returned); the gateway switches the conversation to bot mode and
// posts a note on EventReturned.
func (e *Engine) ReturnToBot(ctx context.Context, a Actor, ticketID string) (tandem.Ticket, error) {
	out, err := e.close(ctx, ticketID, tandem.TicketReturned, ReasonReturn, heldBy(a))
	if err != nil {
		return tandem.Ticket{}, e.explainHeld(ctx, a, ticketID, err)
	}
	return out, nil
}

// Authorize returns the open ticket of a conversation if the actor may read
// it (write false: offered or assigned to them) or act on it (write true:
// assigned to them). Admins may do both on any open ticket. Otherwise it is
// EFORBIDDEN, also when the conversation has no open ticket, so agents
// cannot probe conversations.
func (e *Engine) Authorize(ctx context.Context, a Actor, conversationID string, write bool) (tandem.Ticket, error) {
	t, err := e.store.OpenTicket(ctx, conversationID)
	if tandem.ErrorCode(err) == tandem.ENOTFOUND {
		if a.Admin {
			return tandem.Ticket{}, err
		}
		return tandem.Ticket{}, tandem.Errorf(tandem.EFORBIDDEN, "conversation is not assigned to you")
	}
	if err != nil {
		return tandem.Ticket{}, err
	}
	if a.Admin {
		return t, nil
	}
	if t.AgentID == a.AgentID && (t.State == tandem.TicketAssigned || (!write && t.State == tandem.TicketOffered)) {
		return t, nil
	}
	return tandem.Ticket{}, tandem.Errorf(tandem.EFORBIDDEN, "conversation is not assigned to you")
}

// Ticket returns a ticket.
func (e *Engine) Ticket(ctx context.Context, id string) (tandem.Ticket, error) {
	return e.store.Ticket(ctx, id)
}

// OpenTicket returns a conversation's open ticket, or ENOTFOUND.
func (e *Engine) OpenTicket(ctx context.Context, conversationID string) (tandem.Ticket, error) {
	return e.store.OpenTicket(ctx, conversationID)
}

// AgentTickets returns the tickets offered or assigned to an agent (what
// the console shows after a reconnect).
func (e *Engine) AgentTickets(ctx context.Context, agentID string) ([]tandem.Ticket, error) {
	return e.store.Tickets(ctx, TicketFilter{States: []tandem.TicketState{tandem.TicketOffered, tandem.TicketAssigned}, AgentID: agentID})
}

// EraseConversation deletes every ticket of a conversation with their
// history (the customer's right to erasure) and returns how many. A
// conversation with an open ticket is a conflict: resolve or return it
// first.
func (e *Engine) EraseConversation(ctx context.Context, conversationID string) (int, error) {
	n, err := e.store.EraseConversation(ctx, conversationID)
	if errors.Is(err, ErrOpenTicket) {
		return 0, tandem.Errorf(tandem.ECONFLICT, "the conversation has an open ticket: resolve it or return it to the bot first")
	}
	if err != nil {
		return 0, fmt.Errorf("handoff: erase conversation: %w", err)
	}
	return n, nil
}

// Transitions returns a ticket's recorded transitions, oldest first.
func (e *Engine) Transitions(ctx context.Context, ticketID string) ([]Transition, error) {
	return e.store.Transitions(ctx, TransitionFilter{TicketID: ticketID})
}

// QueuedTicket is a queued ticket with its place in the queue.
type QueuedTicket struct {
	Ticket tandem.Ticket `json:"ticket"`
	Queue  QueueInfo     `json:"queue"`
}

// Queue returns up to limit queued tickets (0 = Config.MaxPositions) in
// queue order with positions and estimated waits, for the console's queue
// view.
func (e *Engine) Queue(ctx context.Context, limit int) ([]QueuedTicket, error) {
	if limit <= 0 || limit > e.cfg.MaxPositions {
		limit = e.cfg.MaxPositions
	}
	ts, err := e.store.Tickets(ctx, TicketFilter{States: []tandem.TicketState{tandem.TicketQueued}, Limit: limit})
	if err != nil {
		return nil, err
	}
	ci, err := e.capacity(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]QueuedTicket, len(ts))
	for i, t := range ts {
		out[i] = QueuedTicket{Ticket: t, Queue: ci.info(i + 1)}
	}
	return out, nil
}

// Position returns where a queued ticket stands; ECONFLICT if it is not
// queued.
func (e *Engine) Position(ctx context.Context, ticketID string) (QueueInfo, error) {
	t, err := e.store.Ticket(ctx, ticketID)
	if err != nil {
		return QueueInfo{}, err
	}
	if t.State != tandem.TicketQueued {
		return QueueInfo{}, nil
	}
	return e.position(ctx, t, false)
}

// position computes a queued ticket's QueueInfo; cached allows capacity
// figures up to a second old (or older changes on other nodes), which
// spares Escalate a query per call under load.
func (e *Engine) position(ctx context.Context, t tandem.Ticket, cached bool) (QueueInfo, error) {
	ahead, err := e.store.QueueAhead(ctx, t)
	if err != nil {
		return QueueInfo{}, fmt.Errorf("handoff: position: %w", err)
	}
	var ci capacityInfo
	if cached {
		ci, err = e.cachedCapacity(ctx)
	} else {
		ci, err = e.capacity(ctx)
	}
	if err != nil {
		return QueueInfo{}, err
	}
	return ci.info(ahead + 1), nil
}

// capacityInfo is what wait estimates are made of.
type capacityInfo struct {
	online   int           // agents online and connected
	capacity int           // their MaxChats, summed
	free     int           // their free slots, summed
	handle   time.Duration // average recent handle time
}

func (e *Engine) capacity(ctx context.Context) (capacityInfo, error) {
	now := e.now()
	sts, err := e.store.AgentStates(ctx, e.liveAfter(now))
	if err != nil {
		return capacityInfo{}, fmt.Errorf("handoff: agent states: %w", err)
	}
	var c capacityInfo
	for _, st := range sts {
		if st.Connected() && st.Presence == tandem.PresenceOnline {
			c.online++
			c.capacity += st.Agent.MaxChats
			c.free += max(0, st.Agent.MaxChats-st.Load)
		}
	}
	if c.handle, err = e.handleTime(ctx, now); err != nil {
		return capacityInfo{}, err
	}
	return c, nil
}

func (e *Engine) cachedCapacity(ctx context.Context) (capacityInfo, error) {
	now := e.now()
	e.mu.Lock()
	if !e.capAt.IsZero() && now.Sub(e.capAt) < time.Second && !now.Before(e.capAt) {
		ci := e.capCache
		e.mu.Unlock()
		return ci, nil
	}
	e.mu.Unlock()
	ci, err := e.capacity(ctx)
	if err != nil {
		return ci, err
	}
	e.mu.Lock()
	e.capCache, e.capAt = ci, now
	e.mu.Unlock()
	return ci, nil
}

// handleTime returns the average recent handle time, refreshed at most
// every PositionInterval.
func (e *Engine) handleTime(ctx context.Context, now time.Time) (time.Duration, error) {
	e.mu.Lock()
	if !e.handleAt.IsZero() && now.Sub(e.handleAt) < e.cfg.PositionInterval {
		h := e.handle
		e.mu.Unlock()
		return h, nil
	}
	e.mu.Unlock()
	ds, err := e.store.HandleTimes(ctx, e.cfg.HandleTimeSamples)
	if err != nil {
		return 0, fmt.Errorf("handoff: handle times: %w", err)
	}
	h := e.cfg.DefaultHandleTime
	if len(ds) > 0 {
		var sum time.Duration
		for _, d := range ds {
			sum += d
		}
		// Blend with the default while samples are few.
		n := len(ds)
		sum += time.Duration(max(0, e.cfg.HandleTimeSamples/5-n)) * e.cfg.DefaultHandleTime
		h = sum / time.Duration(n+max(0, e.cfg.HandleTimeSamples/5-n))
	}
	e.mu.Lock()
	e.handle, e.handleAt = h, now
	e.mu.Unlock()
	return h, nil
}

// info estimates the wait of the ticket at position pos (1-based): tickets
// up to the free slots are served now; beyond them, online capacity serves
// capacity tickets per average handle time.
func (c capacityInfo) info(pos int) QueueInfo {
	q := QueueInfo{Position: pos, AgentsOnline: c.online, NobodyOnline: c.online == 0}
	if c.online == 0 || c.capacity == 0 || pos <= c.free {
		return q
	}
	q.EstimatedWait = (c.handle * time.Duration(pos-c.free) / time.Duration(c.capacity)).Round(time.Second)
	return q
}

// updatePositions emits EventPosition for queued tickets whose QueueInfo
// changed since this engine last told, at most every PositionInterval
// unless force.
func (e *Engine) updatePositions(ctx context.Context, force bool) error {
	now := e.now()
	e.mu.Lock()
	due := force || e.lastPos.IsZero() || now.Sub(e.lastPos) >= e.cfg.PositionInterval
	if due {
		e.lastPos = now
	}
	e.mu.Unlock()
	if !due {
		return nil
	}
	// Positions read before a ticket's state change must not reach the
	// customer after that change's event.
	w := e.d.watch()
	defer e.d.unwatch(w)
	qs, err := e.Queue(ctx, 0)
	if err != nil {
		return err
	}
	depth := len(qs)
	if depth >= e.cfg.MaxPositions {
		// The view stops at MaxPositions: count the rest (everything ranks
		// before a ticket of the lowest priority, created last).
		end := tandem.Ticket{ID: "\U0010FFFF", Priority: math.MinInt32, CreatedAt: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)}
		if n, err := e.store.QueueAhead(ctx, end); err == nil {
			depth = max(depth, n)
		}
	}
	e.m.queueDepth.Set(float64(depth))
	next := make(map[string]QueueInfo, len(qs))
	var changed []QueuedTicket
	e.mu.Lock()
	for _, q := range qs {
		next[q.Ticket.ID] = q.Queue
		if old, ok := e.positions[q.Ticket.ID]; !ok || !sameInfo(old, q.Queue) {
			changed = append(changed, q)
		}
	}
	e.positions = next
	e.mu.Unlock()
	if len(qs) > 0 {
		e.m.agentsOnline.Set(float64(qs[0].Queue.AgentsOnline))
	} else if c, err := e.capacity(ctx); err == nil {
		e.m.agentsOnline.Set(float64(c.online))
	}
	for _, q := range changed {
		e.d.emitWatched(Event{Type: EventPosition, At: now, Node: e.cfg.Node, Ticket: ptr(q.Ticket), Queue: ptr(q.Queue)}, w)
	}
	return nil
}

// sameInfo treats estimates within 15 s (or 10 %) as unchanged, so
// customers are not flooded with jitter.
func sameInfo(a, b QueueInfo) bool {
	if a.Position != b.Position || a.NobodyOnline != b.NobodyOnline || a.AgentsOnline != b.AgentsOnline {
		return false
	}
	d := a.EstimatedWait - b.EstimatedWait
	if d < 0 {
		d = -d
	}
	return d < 15*time.Second || d < max(a.EstimatedWait, b.EstimatedWait)/10
}
