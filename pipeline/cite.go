package pipeline

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/tandem-chat/tandem"
)

// citeRe matches a generated answer's citations: [2], [1, 3], [1][2].
var citeRe = regexp.MustCompile(`\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]`)

// citedSources checks a generated answer's citations against the n
// sources of its prompt (numbered from 1) and returns the sources it
// cites, in number order, each with its number. ok is false when it cites
// a source the prompt did not have (an invented "[7]": the answer is not
// shown). An answer that cites nothing gets every source, as the prompt
// gave them.
func citedSources(text string, hits []tandem.Hit) (sources []tandem.Source, ok bool) {
	cited := make([]bool, len(hits)+1)
	any := false
	for _, loc := range citeRe.FindAllStringSubmatchIndex(text, -1) {
		if loc[1] < len(text) && text[loc[1]] == '(' {
			continue // a markdown link whose text is a number: [3](https://…)
		}
		for _, part := range strings.Split(text[loc[2]:loc[3]], ",") {
			k, err := strconv.Atoi(strings.TrimSpace(part))
			if err != nil || k == 0 {
				continue // "[0]" is no citation (a keypad key, a list index)
			}
			if k > len(hits) {
				return nil, false
			}
			cited[k], any = true, true
		}
	}
	for i, h := range hits {
		if !any || cited[i+1] {
			sources = append(sources, tandem.Source{FAQID: h.FAQ.ID, Question: h.FAQ.Question, Score: h.Score, N: i + 1})
		}
	}
	return sources, true
}

// mdLinkRe matches a markdown link to an http(s) address, as the widget
// renders them (an address may hold pairs of parentheses).
var mdLinkRe = regexp.MustCompile(`\[([^\]\n]{1,200})\]\((https?://(?:[^\s()]|\([^\s()]{0,200}\))+)\)`)

// groundLinks keeps a generated answer's markdown links only when their
// address appears in one of its sources; any other link becomes its plain
// text. The widget renders links as clickable elements, and an address
// the model made up (or was talked into) must not become one.
//
// The address must equal one of the sources' addresses (markdown links or
// bare http(s) addresses in their text), not merely be part of one:
// https://help.acme.co is a prefix of https://help.acme.com/reset and
// another domain.
func groundLinks(text string, sources []tandem.FAQ) string {
	known := map[string]bool{}
	for _, s := range sources {
		for _, t := range []string{s.Question, s.Answer} {
			for _, m := range mdLinkRe.FindAllStringSubmatch(t, -1) {
				known[m[2]] = true
			}
			for _, u := range bareURLRe.FindAllString(t, -1) {
				known[strings.TrimRight(u, ".,;:!?")] = true
			}
		}
	}
	return mdLinkRe.ReplaceAllStringFunc(text, func(link string) string {
		m := mdLinkRe.FindStringSubmatch(link)
		if known[m[2]] {
			return link
		}
		return m[1]
	})
}

// bareURLRe matches an http(s) address written out in a text.
var bareURLRe = regexp.MustCompile(`https?://(?:[^\s()<>\]\[]|\([^\s()]{0,200}\))+`)
