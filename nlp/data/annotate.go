package data

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ParseAnnotated parses an example with inline entity annotations, the
// syntax shared by Tandem YAML and Rasa NLU YAML:
//
//	ship it to [Berlin](city)                     type city, value "Berlin"
//	fly to [NYC](city:New York)                   type city, value "New York"
//	[NYC]{"entity": "city", "value": "New York"}  JSON form (role/group ignored)
//
// A backslash escapes a literal [ ] ( ) { or \. It returns the plain text
// and the spans (rune offsets into the plain text). The error of a malformed
// annotation names the column (in characters, 1-based) where it starts.
func ParseAnnotated(s string) (string, []Span, error) {
	if !strings.ContainsAny(s, `[]\`) {
		return s, nil, nil
	}
	var (
		out   strings.Builder
		spans []Span
		runes int // runes written to out
	)
	col := func(byteOff int) int { return utf8.RuneCountInString(s[:byteOff]) + 1 }
	for i := 0; i < len(s); {
		c := s[i]
		switch c {
		case '\\':
			if i+1 < len(s) && strings.IndexByte(`[](){}\`, s[i+1]) >= 0 {
				out.WriteByte(s[i+1])
				runes++
				i += 2
				continue
			}
			out.WriteByte(c)
			runes++
			i++
		case ']':
			return "", nil, fmt.Errorf("malformed annotation at column %d: ']' without a matching '[' (escape it as \\])", col(i))
		case '[':
			start := i
			// Surface text up to the matching ']' (no nesting).
			var surf strings.Builder
			j := i + 1
			closed := false
			for j < len(s) {
				// Only the documented escapes, as outside brackets: any
				// other backslash is text (a Windows path, say).
				if s[j] == '\\' && j+1 < len(s) && strings.IndexByte(`[](){}\\`, s[j+1]) >= 0 {
					surf.WriteByte(s[j+1])
					j += 2
					continue
				}
				if s[j] == '[' {
					return "", nil, fmt.Errorf("malformed annotation at column %d: nested '['", col(start))
				}
				if s[j] == ']' {
					closed = true
					break
				}
				surf.WriteByte(s[j])
				j++
			}
			if !closed {
				return "", nil, fmt.Errorf("malformed annotation at column %d: '[' without a closing ']'", col(start))
			}
			surface := surf.String()
			if strings.TrimSpace(surface) == "" {
				return "", nil, fmt.Errorf("malformed annotation at column %d: empty entity text", col(start))
			}
			j++ // past ']'
			var typ, val string
			switch {
			case j < len(s) && s[j] == '(':
				// The body ends at the first unescaped ')'; "\)" and "\("
				// put parentheses in a value, and the other escapes work
				// as in the text ("\[", "\}", "\\").
				var body strings.Builder
				k := j + 1
				for ; k < len(s) && s[k] != ')'; k++ {
					if s[k] == '\\' && k+1 < len(s) && strings.IndexByte(`[](){}\\`, s[k+1]) >= 0 {
						k++
					} else if s[k] == '(' {
						return "", nil, fmt.Errorf("malformed annotation at column %d: '(' inside an entity's (type:value); escape it as \\(", col(k))
					}
					body.WriteByte(s[k])
				}
				if k >= len(s) {
					return "", nil, fmt.Errorf("malformed annotation at column %d: '(' without a closing ')'", col(j))
				}
				typ, val, _ = strings.Cut(body.String(), ":")
				typ = strings.TrimSpace(typ)
				val = strings.TrimSpace(val)
				j = k + 1
			case j < len(s) && s[j] == '{':
				k := matchBrace(s, j)
				if k < 0 {
					return "", nil, fmt.Errorf("malformed annotation at column %d: '{' without a closing '}'", col(j))
				}
				var obj struct {
					Entity string `json:"entity"`
					Value  any    `json:"value"`
				}
				if err := json.Unmarshal([]byte(s[j:k+1]), &obj); err != nil {
					return "", nil, fmt.Errorf("malformed annotation at column %d: invalid JSON %s: %v", col(j), s[j:k+1], err)
				}
				typ = strings.TrimSpace(obj.Entity)
				switch v := obj.Value.(type) {
				case nil:
				case string:
					val = v
				default:
					b, _ := json.Marshal(v)
					val = string(b)
				}
				j = k + 1
			default:
				return "", nil, fmt.Errorf("malformed annotation at column %d: [%s] must be followed by (type) or {\"entity\": ...}", col(start), surface)
			}
			if typ == "" || strings.ContainsAny(typ, " \t[](){}") {
				return "", nil, fmt.Errorf("malformed annotation at column %d: invalid entity type %q", col(start), typ)
			}
			if val == "" {
				val = surface
			}
			n := utf8.RuneCountInString(surface)
			spans = append(spans, Span{Type: typ, Value: val, Start: runes, End: runes + n})
			out.WriteString(surface)
			runes += n
			i = j
		default:
			r, w := utf8.DecodeRuneInString(s[i:])
			out.WriteRune(r)
			runes++
			i += w
		}
	}
	return out.String(), trimSpans(out.String(), spans), nil
}

// matchBrace returns the index of the '}' closing the '{' at i, honouring
// JSON strings, or -1.
func matchBrace(s string, i int) int {
	depth, inStr := 0, false
	for j := i; j < len(s); j++ {
		c := s[j]
		if inStr {
			if c == '\\' {
				j++
			} else if c == '"' {
				inStr = false
			}
			continue
		}
		switch c {
		case '"':
			inStr = true
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				return j
			}
		}
	}
	return -1
}

// trimSpans shrinks spans so they neither start nor end with white space
// (annotators often include a neighbouring blank); empty spans are dropped.
func trimSpans(text string, spans []Span) []Span {
	if len(spans) == 0 {
		return spans
	}
	rs := []rune(text)
	out := spans[:0]
	for _, sp := range spans {
		for sp.Start < sp.End && isBlank(rs[sp.Start]) {
			sp.Start++
		}
		for sp.End > sp.Start && isBlank(rs[sp.End-1]) {
			sp.End--
		}
		if sp.Start < sp.End {
			if strings.TrimSpace(sp.Value) != sp.Value && strings.TrimSpace(sp.Value) == string(rs[sp.Start:sp.End]) {
				sp.Value = strings.TrimSpace(sp.Value)
			}
			out = append(out, sp)
		}
	}
	return out
}

func isBlank(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\u00a0' }
