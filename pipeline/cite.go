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
	for _, m := range citeRe.FindAllStringSubmatch(text, -1) {
		for _, part := range strings.Split(m[1], ",") {
			k, err := strconv.Atoi(strings.TrimSpace(part))
			if err != nil || k < 1 || k > len(hits) {
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
func groundLinks(text string, sources []tandem.FAQ) string {
	return mdLinkRe.ReplaceAllStringFunc(text, func(link string) string {
		m := mdLinkRe.FindStringSubmatch(link)
		for _, s := range sources {
			if strings.Contains(s.Answer, m[2]) || strings.Contains(s.Question, m[2]) {
				return link
			}
		}
		return m[1]
	})
}
