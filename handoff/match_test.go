package handoff_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/handoff"
)

var t0 = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)

func cand(id string, load, max int, idle int, skills, langs []string) handoff.Candidate {
	return handoff.Candidate{AgentID: id, Skills: skills, Languages: langs, Load: load, MaxChats: max, IdleSince: t0.Add(time.Duration(idle) * time.Second)}
}

func TestMatch(t *testing.T) {
	en := []string{"en"}
	tests := []struct {
		name    string
		tickets []tandem.Ticket
		agents  []handoff.Candidate
		skips   handoff.Skips
		want    string
	}{
		{"least loaded", []tandem.Ticket{{ID: "t1"}},
			[]handoff.Candidate{cand("a", 2, 5, 0, nil, en), cand("b", 1, 5, 9, nil, en)}, nil, "t1>b"},
		{"longest idle breaks ties", []tandem.Ticket{{ID: "t1"}},
			[]handoff.Candidate{cand("a", 1, 5, 5, nil, en), cand("b", 1, 5, 3, nil, en)}, nil, "t1>b"},
		{"ID breaks full ties", []tandem.Ticket{{ID: "t1"}},
			[]handoff.Candidate{cand("b", 0, 5, 0, nil, en), cand("a", 0, 5, 0, nil, en)}, nil, "t1>a"},
		{"skills must all match", []tandem.Ticket{{ID: "t1", Skills: []string{"billing", "tech"}}},
			[]handoff.Candidate{cand("a", 0, 5, 0, []string{"billing"}, en), cand("b", 3, 5, 0, []string{"billing", "legal", "tech"}, en)}, nil, "t1>b"},
		{"language and primary subtag", []tandem.Ticket{{ID: "t1", Language: "de-at"}, {ID: "t2", Language: "fr"}},
			[]handoff.Candidate{cand("a", 0, 5, 0, nil, en), cand("b", 3, 5, 0, nil, []string{"de"})}, nil, "t1>b"},
		{"no languages serves only language-less tickets", []tandem.Ticket{{ID: "t1", Language: "en"}, {ID: "t2"}},
			[]handoff.Candidate{cand("a", 0, 5, 0, nil, nil)}, nil, "t2>a"},
		{"capacity counts within the pass", []tandem.Ticket{{ID: "t1"}, {ID: "t2"}, {ID: "t3"}},
			[]handoff.Candidate{cand("a", 0, 2, 0, nil, en)}, nil, "t1>a t2>a"},
		{"spread over agents", []tandem.Ticket{{ID: "t1"}, {ID: "t2"}, {ID: "t3"}},
			[]handoff.Candidate{cand("a", 0, 3, 0, nil, en), cand("b", 0, 3, 1, nil, en)}, nil, "t1>a t2>b t3>a"},
		{"sticky beats least loaded", []tandem.Ticket{{ID: "t1", LastAgentID: "a"}},
			[]handoff.Candidate{cand("a", 2, 3, 9, nil, en), cand("b", 0, 3, 0, nil, en)}, nil, "t1>a"},
		{"sticky agent full falls back", []tandem.Ticket{{ID: "t1", LastAgentID: "a"}},
			[]handoff.Candidate{cand("a", 3, 3, 0, nil, en), cand("b", 0, 3, 0, nil, en)}, nil, "t1>b"},
		{"sticky agent lacking skills falls back", []tandem.Ticket{{ID: "t1", LastAgentID: "a", Skills: []string{"legal"}}},
			[]handoff.Candidate{cand("a", 0, 3, 0, nil, en), cand("b", 2, 3, 0, []string{"legal"}, en)}, nil, "t1>b"},
		{"skips", []tandem.Ticket{{ID: "t1"}, {ID: "t2"}},
			[]handoff.Candidate{cand("a", 0, 3, 0, nil, en), cand("b", 1, 3, 0, nil, en)}, handoff.Skips{"t1": {"a"}, "t2": {"a", "b"}}, "t1>b"},
		{"no head-of-line blocking", []tandem.Ticket{{ID: "t1", Skills: []string{"legal"}}, {ID: "t2"}},
			[]handoff.Candidate{cand("a", 0, 1, 0, nil, en)}, nil, "t2>a"},
		{"queue order decides who gets scarce capacity", []tandem.Ticket{{ID: "vip"}, {ID: "normal"}},
			[]handoff.Candidate{cand("a", 0, 1, 0, nil, en)}, nil, "vip>a"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ""
			for i, p := range handoff.Match(tc.tickets, tc.agents, tc.skips) {
				if i > 0 {
					got += " "
				}
				got += fmt.Sprintf("%s>%s", p.TicketID, p.AgentID)
			}
			if got != tc.want {
				t.Fatalf("Match = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestMatchDoesNotMutateInput(t *testing.T) {
	agents := []handoff.Candidate{cand("a", 0, 2, 0, nil, []string{"en"})}
	handoff.Match([]tandem.Ticket{{ID: "t1"}, {ID: "t2"}}, agents, nil)
	if agents[0].Load != 0 || !agents[0].IdleSince.Equal(t0) {
		t.Fatalf("Match changed its input: %+v", agents[0])
	}
}

func TestQueueLess(t *testing.T) {
	a := tandem.Ticket{ID: "a", Priority: 1, CreatedAt: t0.Add(time.Hour)}
	b := tandem.Ticket{ID: "b", Priority: 0, CreatedAt: t0}
	c := tandem.Ticket{ID: "c", Priority: 0, CreatedAt: t0}
	if !handoff.QueueLess(a, b) || handoff.QueueLess(b, a) || !handoff.QueueLess(b, c) || handoff.QueueLess(c, b) {
		t.Fatal("queue order: priority, then waiting time, then ID")
	}
}

func TestNormalizeTags(t *testing.T) {
	got := handoff.NormalizeTags([]string{" Tech", "billing", "", "TECH"})
	if fmt.Sprint(got) != "[billing tech]" {
		t.Fatalf("NormalizeTags = %v", got)
	}
	if handoff.NormalizeTags(nil) != nil {
		t.Fatal("empty input must give nil")
	}
}
