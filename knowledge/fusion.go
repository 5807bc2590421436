package knowledge

import (
	"sort"

	"github.com/tandem-chat/tandem"
)

// Fusion configures weighted reciprocal rank fusion: an FAQ ranked r
// (1-based) by retriever i contributes Weights[i] / (K + r) to its score.
// Plain RRF is K = 60 and equal weights. Zero values take those defaults.
type Fusion struct {
	K             float64 `json:"k"`
	LexicalWeight float64 `json:"lexical_weight"`
	VectorWeight  float64 `json:"vector_weight"`
}

// Defaults returns f with zero values replaced by plain RRF settings.
func (f Fusion) Defaults() Fusion {
	if f.K <= 0 {
		f.K = 60
	}
	if f.LexicalWeight == 0 && f.VectorWeight == 0 {
		f.LexicalWeight, f.VectorWeight = 1, 1
	}
	return f
}

// Fuse merges ranked lists from named retrievers into at most k hits, best
// first. Each hit records every retriever that found it with that
// retriever's own score; Matched is the best vector phrasing when known,
// else the question. Ties break by FAQ id for determinism.
func (f Fusion) Fuse(lists map[string][]Scored, k int) []tandem.Hit {
	f = f.Defaults()
	type found struct {
		name  string
		score float64
	}
	type acc struct {
		faq     *tandem.FAQ
		score   float64
		found   []found
		matched int
	}
	names := make([]string, 0, len(lists))
	n := 0
	for name, l := range lists {
		names = append(names, name)
		n += len(l)
	}
	sort.Strings(names)
	// Accumulate without copying FAQs or allocating per candidate; only the
	// k hits returned are materialised.
	accs := make([]acc, 0, n)
	byID := make(map[string]int, n)
	for _, name := range names {
		w := f.LexicalWeight
		if name == RetrieverVector {
			w = f.VectorWeight
		}
		l := lists[name]
		for i := range l {
			s := &l[i]
			j, ok := byID[s.FAQ.ID]
			if !ok {
				j = len(accs)
				accs = append(accs, acc{faq: &s.FAQ, matched: -1})
				byID[s.FAQ.ID] = j
			}
			a := &accs[j]
			a.score += w / (f.K + float64(i+1))
			a.found = append(a.found, found{name, s.Score})
			if name == RetrieverVector && s.Matched >= 0 {
				a.matched = s.Matched
			}
		}
	}
	sort.SliceStable(accs, func(i, j int) bool {
		if accs[i].score != accs[j].score {
			return accs[i].score > accs[j].score
		}
		return accs[i].faq.ID < accs[j].faq.ID
	})
	if k > 0 && len(accs) > k {
		accs = accs[:k]
	}
	hits := make([]tandem.Hit, len(accs))
	for i := range accs {
		a := &accs[i]
		h := tandem.Hit{FAQ: *a.faq, Score: a.score, Retrievers: make(map[string]float64, len(a.found)), Matched: a.faq.Question}
		for _, fd := range a.found {
			h.Retrievers[fd.name] = fd.score
		}
		if m := a.matched; m > 0 && m <= len(a.faq.Phrasings) { // 0 is the question (see Texts)
			h.Matched = a.faq.Phrasings[m-1]
		}
		hits[i] = h
	}
	return hits
}
