package handoff

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/tandem-chat/tandem"
)

// Candidate is an agent that routing may offer work to: online, connected
// and below capacity when the routing pass started.
type Candidate struct {
	AgentID   string
	Skills    []string // normalised (NormalizeTags)
	Languages []string // normalised
	Load      int
	MaxChats  int
	IdleSince time.Time
}

// Pair is one routing decision: offer TicketID to AgentID.
type Pair struct {
	TicketID string
	AgentID  string
}

// Skips maps a ticket ID to the agents routing must not offer it to (they
// declined it, let the offer time out, or transferred it away).
type Skips map[string][]string

// MatchFunc is a routing policy: given queued tickets in queue order, the
// candidates and the active skips, it returns the offers to make. It must
// be pure and fast: stores call it while holding row locks.
type MatchFunc func(tickets []tandem.Ticket, agents []Candidate, skips Skips) []Pair

// Eligible reports whether agent a may be offered ticket t: a has every
// skill t requires, speaks t's language (see SpeaksLanguage), has free
// capacity and is not skipped for t.
func Eligible(t tandem.Ticket, a Candidate, skipped []string) bool {
	if a.Load >= a.MaxChats || slices.Contains(skipped, a.AgentID) {
		return false
	}
	for _, s := range t.Skills {
		if !slices.Contains(a.Skills, s) {
			return false
		}
	}
	return SpeaksLanguage(a.Languages, t.Language)
}

// SpeaksLanguage reports whether an agent with the given (normalised)
// languages can serve a ticket in language lang: lang is empty, or the
// agent lists lang itself or its primary subtag ("en" serves "en-gb").
// An agent listing no languages serves only tickets without a language.
func SpeaksLanguage(languages []string, lang string) bool {
	if lang == "" {
		return true
	}
	if slices.Contains(languages, lang) {
		return true
	}
	base, _, _ := strings.Cut(lang, "-")
	return slices.Contains(languages, base)
}

// Match is the default routing policy. Tickets are served in the order
// given (queue order: priority, then waiting time); a ticket with no
// eligible agent does not block the ones behind it. For each ticket:
//
//  1. sticky: if the ticket's LastAgentID is eligible, offer it to them;
//  2. otherwise the eligible agent with the fewest held tickets;
//  3. ties go to the agent idle longest (earliest IdleSince), then the
//     smallest ID, so the choice is deterministic.
//
// Each offer counts against the agent's capacity within the pass and
// resets its idle time.
func Match(tickets []tandem.Ticket, agents []Candidate, skips Skips) []Pair {
	pool := slices.Clone(agents)
	var pairs []Pair
	for _, t := range tickets {
		best := -1
		for i, a := range pool {
			if !Eligible(t, a, skips[t.ID]) {
				continue
			}
			if t.LastAgentID != "" && a.AgentID == t.LastAgentID {
				best = i
				break
			}
			if best < 0 || better(a, pool[best]) {
				best = i
			}
		}
		if best < 0 {
			continue
		}
		pool[best].Load++
		// Just received work: idle for less time than anyone who has not,
		// and less than anyone who received work earlier in this pass.
		pool[best].IdleSince = justBusy.Add(time.Duration(len(pairs)))
		pairs = append(pairs, Pair{TicketID: t.ID, AgentID: pool[best].AgentID})
	}
	return pairs
}

var justBusy = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

func better(a, b Candidate) bool {
	if c := cmp.Compare(a.Load, b.Load); c != 0 {
		return c < 0
	}
	if !a.IdleSince.Equal(b.IdleSince) {
		return a.IdleSince.Before(b.IdleSince)
	}
	return a.AgentID < b.AgentID
}
