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
	type acc struct {
		hit     tandem.Hit
		matched int
	}
	byID := map[string]*acc{}
	var order []string
	names := make([]string, 0, len(lists))
	for name := range lists {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		w := f.LexicalWeight
		if name == RetrieverVector {
			w = f.VectorWeight
		}
		for i, s := range lists[name] {
			a := byID[s.FAQ.ID]
			if a == nil {
				a = &acc{hit: tandem.Hit{FAQ: s.FAQ, Retrievers: map[string]float64{}}, matched: -1}
				byID[s.FAQ.ID] = a
				order = append(order, s.FAQ.ID)
			}
			a.hit.Score += w / (f.K + float64(i+1))
			a.hit.Retrievers[name] = s.Score
			if name == RetrieverVector && s.Matched >= 0 {
				a.matched = s.Matched
			}
		}
	}
	hits := make([]tandem.Hit, 0, len(order))
	for _, id := range order {
		a := byID[id]
		texts := Texts(a.hit.FAQ)
		if a.matched >= 0 && a.matched < len(texts) {
			a.hit.Matched = texts[a.matched]
		} else {
			a.hit.Matched = a.hit.FAQ.Question
		}
		hits = append(hits, a.hit)
	}
	sort.SliceStable(hits, func(i, j int) bool {
		if hits[i].Score != hits[j].Score {
			return hits[i].Score > hits[j].Score
		}
		return hits[i].FAQ.ID < hits[j].FAQ.ID
	})
	if k > 0 && len(hits) > k {
		hits = hits[:k]
	}
	return hits
}
