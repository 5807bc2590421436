package rules

import (
	"sort"

	"github.com/tandem-chat/tandem/nlp/text"
)

// trie matches sequences of normalised tokens (text.Tokenize's Norm).
type trie struct {
	next map[string]*trie
	// hits at this node: entity type -> canonical value (sorted by type
	// when read, so results are deterministic).
	hits map[string]string
}

func (t *trie) insert(toks []text.Token, typ, value string) {
	n := t
	for _, tk := range toks {
		if n.next == nil {
			n.next = map[string]*trie{}
		}
		c := n.next[tk.Norm]
		if c == nil {
			c = &trie{}
			n.next[tk.Norm] = c
		}
		n = c
	}
	if n.hits == nil {
		n.hits = map[string]string{}
	}
	if _, ok := n.hits[typ]; !ok { // first value wins on duplicates
		n.hits[typ] = value
	}
}

// buildTrie indexes every lookup value, and every synonym surface form whose
// canonical value is a lookup value, under its type.
func buildTrie(lookups map[string][]string, synonyms map[string]string) *trie {
	if len(lookups) == 0 {
		return nil
	}
	root := &trie{}
	types := make([]string, 0, len(lookups))
	for t := range lookups {
		types = append(types, t)
	}
	sort.Strings(types)
	canonType := map[string][]string{} // normalised canonical value -> types
	for _, typ := range types {
		for _, v := range lookups[typ] {
			toks := text.Tokenize(v)
			if len(toks) == 0 {
				continue
			}
			canon := v
			if c, ok := synonyms[text.Normalize(v)]; ok {
				canon = c
			}
			root.insert(toks, typ, canon)
			canonType[text.Normalize(canon)] = append(canonType[text.Normalize(canon)], typ)
			canonType[text.Normalize(v)] = append(canonType[text.Normalize(v)], typ)
		}
	}
	surfaces := make([]string, 0, len(synonyms))
	for s := range synonyms {
		surfaces = append(surfaces, s)
	}
	sort.Strings(surfaces)
	for _, surf := range surfaces {
		canon := synonyms[surf]
		toks := text.Tokenize(surf)
		if len(toks) == 0 {
			continue
		}
		for _, typ := range canonType[text.Normalize(canon)] {
			root.insert(toks, typ, canon)
		}
	}
	return root
}

// lookupMatches adds the longest lookup match starting at every token.
func (e *Extractor) lookupMatches(s string, cs []candidate) []candidate {
	if e.lookups == nil {
		return cs
	}
	toks := text.Tokenize(s)
	if len(toks) == 0 {
		return cs
	}
	byteAt := runeToByte(s)
	for i := range toks {
		n := e.lookups
		var best *trie
		bestEnd := -1
		for j := i; j < len(toks); j++ {
			n = n.next[toks[j].Norm]
			if n == nil {
				break
			}
			if n.hits != nil {
				best, bestEnd = n, j
			}
			if n.next == nil {
				break
			}
		}
		if best == nil {
			continue
		}
		types := make([]string, 0, len(best.hits))
		for t := range best.hits {
			types = append(types, t)
		}
		sort.Strings(types)
		st, en := byteAt[toks[i].Start], byteAt[toks[bestEnd].End]
		for _, t := range types {
			cs = append(cs, candidate{start: st, end: en, typ: t, value: best.hits[t], source: SourceLookup, prio: prioLookup})
		}
	}
	return cs
}

// runeToByte maps rune offsets (0..runeCount) to byte offsets.
func runeToByte(s string) []int {
	out := make([]int, 0, len(s)+1)
	for i := 0; i < len(s); {
		out = append(out, i)
		_, w := decodeRune(s[i:])
		i += w
	}
	return append(out, len(s))
}
