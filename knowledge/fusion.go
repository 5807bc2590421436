package knowledge

import (
	"slices"
	"strings"

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
		found   [2]found // the usual case: lexical and vector
		more    []found  // any further retrievers
		nfound  int
		matched int
	}
	var nameBuf [2]string
	names := nameBuf[:0]
	n := 0
	for name, l := range lists {
		names = append(names, name)
		n += len(l)
	}
	slices.Sort(names)
	// Accumulate without copying FAQs; only the k hits returned are
	// materialised. Candidate lists are usually short (tens), where a linear
	// scan by id is cheaper than a map.
	accs := make([]acc, 0, n)
	var byID map[string]int
	if n > 64 {
		byID = make(map[string]int, n)
	}
	for _, name := range names {
		w := f.LexicalWeight
		if name == RetrieverVector {
			w = f.VectorWeight
		}
		l := lists[name]
		for i := range l {
			s := &l[i]
			j := -1
			if byID != nil {
				if x, ok := byID[s.FAQ.ID]; ok {
					j = x
				}
			} else {
				for x := range accs {
					if accs[x].faq.ID == s.FAQ.ID {
						j = x
						break
					}
				}
			}
			if j < 0 {
				j = len(accs)
				accs = append(accs, acc{faq: s.FAQ, matched: -1})
				if byID != nil {
					byID[s.FAQ.ID] = j
				}
			}
			a := &accs[j]
			a.score += w / (f.K + float64(i+1))
			if a.nfound < len(a.found) {
				a.found[a.nfound] = found{name, s.Score}
			} else {
				a.more = append(a.more, found{name, s.Score})
			}
			a.nfound++
			if name == RetrieverVector && s.Matched >= 0 {
				a.matched = s.Matched
			}
		}
	}
	rank := func(a, b *acc) int { // < 0: a ranks before b
		if a.score != b.score {
			if a.score > b.score {
				return -1
			}
			return 1
		}
		return strings.Compare(a.faq.ID, b.faq.ID)
	}
	if k > 0 && len(accs) > k {
		// Partial selection: the k best to the front, in order (k is small,
		// the candidates tens; cheaper than sorting them all).
		for i := range k {
			best := i
			for j := i + 1; j < len(accs); j++ {
				if rank(&accs[j], &accs[best]) < 0 {
					best = j
				}
			}
			accs[i], accs[best] = accs[best], accs[i]
		}
		accs = accs[:k]
	} else {
		slices.SortFunc(accs, func(a, b acc) int { return rank(&a, &b) })
	}
	hits := make([]tandem.Hit, len(accs))
	for i := range accs {
		a := &accs[i]
		h := tandem.Hit{FAQ: *a.faq, Score: a.score, Retrievers: make(map[string]float64, a.nfound), Matched: a.faq.Question}
		for _, fd := range a.found[:min(a.nfound, len(a.found))] {
			h.Retrievers[fd.name] = fd.score
		}
		for _, fd := range a.more {
			h.Retrievers[fd.name] = fd.score
		}
		if m := a.matched; m > 0 && m <= len(a.faq.Phrasings) { // 0 is the question (see Texts)
			h.Matched = a.faq.Phrasings[m-1]
		}
		hits[i] = h
	}
	return hits
}
