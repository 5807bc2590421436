package pipeline

import (
	"strings"
	"unicode"
)

// Reasoning models served by llama.cpp, Ollama or vLLM may open their
// answer with their reasoning between <think> and </think> (matched in
// any case). It is the
// model's scratch pad — guesses, the prompt's wording, things the sources
// do not say — and never reaches the customer.
const (
	thinkOpen  = "<think>"
	thinkClose = "</think>"
)

// stripThink removes a leading <think>…</think> block (after optional
// white space) from a whole answer. An unclosed block leaves nothing.
func stripThink(s string) string {
	rest := strings.TrimLeftFunc(s, unicode.IsSpace)
	if !strings.HasPrefix(asciiLower(rest), thinkOpen) {
		return s
	}
	body := rest[len(thinkOpen):]
	i := strings.Index(asciiLower(body), thinkClose)
	if i < 0 {
		return ""
	}
	return body[i+len(thinkClose):]
}

// asciiLower lower-cases ASCII letters only, so byte offsets into the
// result are offsets into s (tags match in any case: <Think>).
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// thinkFilter removes a leading <think>…</think> block from a stream of
// deltas, whatever the chunking: feed returns what may be shown.
type thinkFilter struct {
	state   int // 0: deciding whether the answer opens with <think>; 1: inside it; 2: passing; 3: after it, skipping white space
	pending string
}

func (f *thinkFilter) feed(d string) string {
	switch f.state {
	case 2:
		return d
	case 3:
		if d = strings.TrimLeftFunc(d, unicode.IsSpace); d != "" {
			f.state = 2
		}
		return d
	case 0:
		f.pending += d
		rest := strings.TrimLeftFunc(f.pending, unicode.IsSpace)
		if rest == "" || len(rest) < len(thinkOpen) && strings.HasPrefix(thinkOpen, asciiLower(rest)) {
			return "" // could still open a block
		}
		if !strings.HasPrefix(asciiLower(rest), thinkOpen) {
			f.state = 2
			out := f.pending
			f.pending = ""
			return out
		}
		f.state, f.pending = 1, rest[len(thinkOpen):]
		return f.feed("")
	default: // inside the block
		f.pending += d
		if i := strings.Index(asciiLower(f.pending), thinkClose); i >= 0 {
			after := f.pending[i+len(thinkClose):]
			f.state, f.pending = 3, ""
			return f.feed(after)
		}
		// Keep only what could begin the closing tag.
		if k := len(f.pending) - (len(thinkClose) - 1); k > 0 {
			f.pending = f.pending[k:]
		}
		return ""
	}
}

// flush returns what is held at the end of the stream: text that only
// looked as if it might open a block ("<th"), or nothing from inside an
// unclosed one.
func (f *thinkFilter) flush() string {
	if f.state == 0 {
		out := f.pending
		f.pending = ""
		return out
	}
	return ""
}
