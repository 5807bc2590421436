package data

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/tandem-chat/tandem/nlp/text"
)

func parseYAML(path string) (*yaml.Node, error) {
	b, err := readFile(path)
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		// yaml.v3 errors read "yaml: line N: reason".
		msg := err.Error()
		var line int
		if _, scanErr := fmt.Sscanf(msg, "yaml: line %d:", &line); scanErr == nil {
			if i := strings.Index(msg, ": "); i >= 0 {
				msg = msg[i+2:]
				if j := strings.Index(msg, ": "); j >= 0 {
					msg = msg[j+2:]
				}
			}
			return nil, fileErr(path, line, "invalid YAML: %s", msg)
		}
		return nil, fileErr(path, 0, "invalid YAML: %s", msg)
	}
	if len(doc.Content) == 0 {
		return nil, fileErr(path, 0, "empty file")
	}
	// Only one document is read: a second one ("---") with data in it
	// would be dropped without a word, so it is refused (an empty one, a
	// trailing "---" or "--- ~", holds nothing to drop).
	for {
		var next yaml.Node
		err := dec.Decode(&next)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fileErr(path, 0, "invalid YAML after the first document: %v", err)
		}
		if len(next.Content) == 0 || next.Content[0].Kind == yaml.ScalarNode && next.Content[0].ShortTag() == "!!null" {
			continue
		}
		return nil, fileErr(path, next.Content[0].Line, "a second YAML document (after ---) is not read; put everything in one document")
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fileErr(path, root.Line, "top level must be a mapping")
	}
	// YAML forbids a key twice in one mapping, but the node tree keeps
	// both: refuse it everywhere (a second "examples:" or "nlu:" would
	// otherwise replace the first without a word).
	if err := uniqueKeysDeep(path, root); err != nil {
		return nil, err
	}
	return root, nil
}

// uniqueKeysDeep runs uniqueKeys on every mapping under n.
func uniqueKeysDeep(path string, n *yaml.Node) error {
	if n.Kind == yaml.MappingNode {
		if err := uniqueKeys(path, n); err != nil {
			return err
		}
	}
	for _, c := range n.Content {
		if err := uniqueKeysDeep(path, c); err != nil {
			return err
		}
	}
	return nil
}

// addSynonym maps variant (normalised) to canonical; a variant already
// mapped to another canonical value is an error (synonyms are shared by
// every entity type, and the last one would win without a word).
func addSynonym(path string, line int, syn map[string]string, variant, canonical string) error {
	k := text.Normalize(variant)
	if old, ok := syn[k]; ok && old != canonical {
		return fileErr(path, line, "synonym %q maps to both %q and %q (synonyms are shared by every entity type)", variant, old, canonical)
	}
	syn[k] = canonical
	return nil
}

// line is one example with its source line.
type line struct {
	text string
	line int
}

// exampleLines reads examples given as a Rasa-style block string
// ("- one\n- two") or as a YAML sequence of strings (or of {text: ...}).
func exampleLines(path string, n *yaml.Node) ([]line, error) {
	switch n.Kind {
	case yaml.ScalarNode:
		var out []line
		// Only a literal block ("|") keeps one value line per file line,
		// starting on the line after the indicator; in a quoted or folded
		// string the value's lines do not map to the file's, so errors
		// name the string's own line.
		lineOf := func(int) int { return n.Line }
		if n.Style == yaml.FoldedStyle {
			return nil, fileErr(path, n.Line, "a folded block (>) joins the examples into one line; use a literal block (|) or a list")
		}
		if n.Style == yaml.LiteralStyle {
			lineOf = func(i int) int { return n.Line + 1 + i }
		}
		for i, l := range strings.Split(n.Value, "\n") {
			t := strings.TrimSpace(l)
			if t == "" {
				continue
			}
			if !strings.HasPrefix(t, "- ") && t != "-" {
				return nil, fileErr(path, lineOf(i), "example must start with \"- \", got %q", t)
			}
			out = append(out, line{text: strings.TrimSpace(strings.TrimPrefix(t, "-")), line: lineOf(i)})
		}
		return out, nil
	case yaml.SequenceNode:
		var out []line
		for _, it := range n.Content {
			switch it.Kind {
			case yaml.ScalarNode:
				out = append(out, line{text: it.Value, line: it.Line})
			case yaml.MappingNode:
				found := false
				for i := 0; i+1 < len(it.Content); i += 2 {
					if it.Content[i].Value == "text" {
						out = append(out, line{text: it.Content[i+1].Value, line: it.Content[i+1].Line})
						found = true
					}
				}
				if !found {
					return nil, fileErr(path, it.Line, "example mapping without \"text\"")
				}
			default:
				return nil, fileErr(path, it.Line, "example must be a string")
			}
		}
		return out, nil
	}
	return nil, fileErr(path, n.Line, "examples must be a list or a block string of \"- \" lines")
}

// annotated parses one example line into an Example, checking span types
// against declared (nil = undeclared).
func annotated(path string, l line, intent string, declared map[string]bool) (Example, error) {
	plain, spans, err := ParseAnnotated(l.text)
	if err != nil {
		return Example{}, fileErr(path, l.line, "%v", err)
	}
	for _, sp := range spans {
		if declared != nil && !declared[sp.Type] {
			return Example{}, fileErr(path, l.line, "unknown entity type %q in span %q (declare it under entities:)", sp.Type, text.Slice(plain, sp.Start, sp.End))
		}
	}
	ex := Example{Text: plain, Intent: intent, Entities: spans}
	if err := checkExample(&ex); err != nil {
		return Example{}, fileErr(path, l.line, "%v", err)
	}
	return ex, nil
}

// --- Rasa -------------------------------------------------------------------

// loadRasa reads Rasa NLU YAML (nlu: intent / synonym / regex / lookup
// items). Rasa declares entity types in its domain file, not here, so span
// types are not checked.
func loadRasa(s Spec) (*Dataset, error) {
	if err := s.noSplits(); err != nil {
		return nil, err
	}
	root, err := parseYAML(s.Path)
	if err != nil {
		return nil, err
	}
	ds := &Dataset{}
	var nlu *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "nlu" {
			nlu = root.Content[i+1]
		}
	}
	if nlu == nil {
		return nil, fileErr(s.Path, root.Line, "no \"nlu:\" section")
	}
	if nlu.Kind != yaml.SequenceNode {
		return nil, fileErr(s.Path, nlu.Line, "\"nlu:\" must be a list")
	}
	for _, item := range nlu.Content {
		if item.Kind != yaml.MappingNode {
			return nil, fileErr(s.Path, item.Line, "nlu item must be a mapping")
		}
		var kind, name string
		var kindLine int
		var examples *yaml.Node
		for i := 0; i+1 < len(item.Content); i += 2 {
			k, v := item.Content[i], item.Content[i+1]
			switch k.Value {
			case "intent", "synonym", "regex", "lookup":
				if kind != "" {
					return nil, fileErr(s.Path, k.Line, "item has both %q and %q", kind, k.Value)
				}
				kind, name, kindLine = k.Value, strings.TrimSpace(v.Value), k.Line
			case "examples":
				examples = v
			case "metadata":
			default:
				return nil, fileErr(s.Path, k.Line, "unknown key %q in nlu item", k.Value)
			}
		}
		if kind == "" {
			return nil, fileErr(s.Path, item.Line, "nlu item needs one of intent, synonym, regex, lookup")
		}
		if name == "" {
			if kind == "intent" {
				return nil, fileErr(s.Path, kindLine, "empty intent")
			}
			return nil, fileErr(s.Path, kindLine, "empty %s name", kind)
		}
		if examples == nil {
			return nil, fileErr(s.Path, item.Line, "%s %q has no examples", kind, name)
		}
		lines, err := exampleLines(s.Path, examples)
		if err != nil {
			return nil, err
		}
		if len(lines) == 0 {
			return nil, fileErr(s.Path, examples.Line, "%s %q has no examples", kind, name)
		}
		switch kind {
		case "intent":
			for _, l := range lines {
				ex, err := annotated(s.Path, l, name, nil)
				if err != nil {
					return nil, err
				}
				ds.Examples = append(ds.Examples, ex)
			}
		case "synonym":
			for _, l := range lines {
				if ds.Synonyms == nil {
					ds.Synonyms = map[string]string{}
				}
				if err := addSynonym(s.Path, l.line, ds.Synonyms, l.text, name); err != nil {
					return nil, err
				}
			}
		case "regex":
			for _, l := range lines {
				if _, err := regexp.Compile(l.text); err != nil {
					return nil, fileErr(s.Path, l.line, "invalid regex for %s: %v", name, err)
				}
				if ds.Regexes == nil {
					ds.Regexes = map[string]string{}
				}
				if old, ok := ds.Regexes[name]; ok {
					ds.Regexes[name] = old + "|(?:" + l.text + ")"
				} else {
					ds.Regexes[name] = "(?:" + l.text + ")"
				}
			}
		case "lookup":
			for _, l := range lines {
				if ds.Lookups == nil {
					ds.Lookups = map[string][]string{}
				}
				ds.Lookups[name] = append(ds.Lookups[name], l.text)
			}
		}
	}
	if len(ds.Examples)+len(ds.Synonyms)+len(ds.Regexes)+len(ds.Lookups) == 0 {
		return nil, fileErr(s.Path, nlu.Line, "no examples (\"nlu:\" is empty)")
	}
	return ds, nil
}

// --- Tandem native YAML ---------------------------------------------------------

// uniqueKeys refuses a mapping that names a key twice (the YAML node tree
// keeps both, and a second intent or entity section under the same name
// would be merged or overwritten without a word). parseYAML runs it on
// every mapping of a file.
func uniqueKeys(path string, m *yaml.Node) error {
	first := map[string]int{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := m.Content[i]
		name := strings.TrimSpace(k.Value)
		if at, ok := first[name]; ok {
			return fileErr(path, k.Line, "duplicate key %q (first at line %d)", name, at)
		}
		first[name] = k.Line
	}
	return nil
}

// loadTandem reads Tandem's native YAML (docs/nlu.md):
//
//	version: 1
//	intents:
//	  track_order:
//	    - where is my order [ORD-123456](order_id)
//	entities:
//	  order_id: {regex: '\bORD-\d{6}\b'}
//	  city:
//	    lookup: [Berlin, Paris]
//	    synonyms: {New York: [NYC, big apple]}
//
// When an entities section is present, every annotated span must use a
// declared type.
func loadTandem(s Spec) (*Dataset, error) {
	if err := s.noSplits(); err != nil {
		return nil, err
	}
	root, err := parseYAML(s.Path)
	if err != nil {
		return nil, err
	}
	ds := &Dataset{}
	var intents, entities *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		switch k.Value {
		case "version":
			if v.Value != "1" {
				return nil, fileErr(s.Path, v.Line, "unsupported version %q (want 1)", v.Value)
			}
		case "intents":
			intents = v
		case "entities":
			entities = v
		case "language", "description":
		default:
			return nil, fileErr(s.Path, k.Line, "unknown key %q (want version, language, description, intents, entities)", k.Value)
		}
	}
	var declared map[string]bool
	if entities != nil {
		declared = map[string]bool{}
		if entities.Kind != yaml.MappingNode {
			return nil, fileErr(s.Path, entities.Line, "entities must be a mapping of entity type to its definition")
		}
		for i := 0; i+1 < len(entities.Content); i += 2 {
			k, v := entities.Content[i], entities.Content[i+1]
			typ := strings.TrimSpace(k.Value)
			if typ == "" || strings.ContainsAny(typ, " \t[](){}:") {
				return nil, fileErr(s.Path, k.Line, "invalid entity type %q", k.Value)
			}
			declared[typ] = true
			if err := tandemEntity(s.Path, ds, typ, v); err != nil {
				return nil, err
			}
		}
		ds.EntityTypes = sortedKeys(declared)
	}
	if intents == nil {
		if entities == nil {
			return nil, fileErr(s.Path, root.Line, "no intents or entities section")
		}
		return ds, nil
	}
	if intents.Kind != yaml.MappingNode {
		return nil, fileErr(s.Path, intents.Line, "intents must be a mapping of intent name to examples")
	}
	for i := 0; i+1 < len(intents.Content); i += 2 {
		k, v := intents.Content[i], intents.Content[i+1]
		name := strings.TrimSpace(k.Value)
		if name == "" {
			return nil, fileErr(s.Path, k.Line, "empty intent")
		}
		if v.Kind == yaml.MappingNode { // {examples: [...], description: ...}
			var ex *yaml.Node
			for j := 0; j+1 < len(v.Content); j += 2 {
				switch v.Content[j].Value {
				case "examples":
					ex = v.Content[j+1]
				case "description":
				default:
					return nil, fileErr(s.Path, v.Content[j].Line, "unknown key %q in intent %s (want examples, description)", v.Content[j].Value, name)
				}
			}
			if ex == nil {
				return nil, fileErr(s.Path, v.Line, "intent %s has no examples", name)
			}
			v = ex
		}
		lines, err := exampleLines(s.Path, v)
		if err != nil {
			return nil, err
		}
		if len(lines) == 0 {
			return nil, fileErr(s.Path, k.Line, "intent %s has no examples", name)
		}
		for _, l := range lines {
			ex, err := annotated(s.Path, l, name, declared)
			if err != nil {
				return nil, err
			}
			ds.Examples = append(ds.Examples, ex)
		}
	}
	return ds, nil
}

func tandemEntity(path string, ds *Dataset, typ string, v *yaml.Node) error {
	if v.Kind == yaml.ScalarNode && (v.Value == "" || v.Tag == "!!null") {
		return nil // declared, model-only
	}
	if v.Kind != yaml.MappingNode {
		return fileErr(path, v.Line, "entity %s: definition must be a mapping (regex, lookup, synonyms) or empty", typ)
	}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := v.Content[i], v.Content[i+1]
		switch k.Value {
		case "regex":
			var pats []*yaml.Node
			if val.Kind == yaml.SequenceNode {
				pats = val.Content
			} else {
				pats = []*yaml.Node{val}
			}
			for _, p := range pats {
				if _, err := regexp.Compile(p.Value); err != nil {
					return fileErr(path, p.Line, "entity %s: invalid regex: %v", typ, err)
				}
				if ds.Regexes == nil {
					ds.Regexes = map[string]string{}
				}
				if old, ok := ds.Regexes[typ]; ok {
					ds.Regexes[typ] = old + "|(?:" + p.Value + ")"
				} else {
					ds.Regexes[typ] = "(?:" + p.Value + ")"
				}
			}
		case "lookup":
			if val.Kind != yaml.SequenceNode {
				return fileErr(path, val.Line, "entity %s: lookup must be a list of values", typ)
			}
			if ds.Lookups == nil {
				ds.Lookups = map[string][]string{}
			}
			for _, it := range val.Content {
				if strings.TrimSpace(it.Value) == "" {
					return fileErr(path, it.Line, "entity %s: empty lookup value", typ)
				}
				ds.Lookups[typ] = append(ds.Lookups[typ], it.Value)
			}
		case "synonyms":
			if val.Kind != yaml.MappingNode {
				return fileErr(path, val.Line, "entity %s: synonyms must map a canonical value to a list of variants", typ)
			}
			if ds.Synonyms == nil {
				ds.Synonyms = map[string]string{}
			}
			for j := 0; j+1 < len(val.Content); j += 2 {
				canon, vars := val.Content[j], val.Content[j+1]
				if vars.Kind != yaml.SequenceNode {
					return fileErr(path, vars.Line, "entity %s: synonyms of %q must be a list", typ, canon.Value)
				}
				if err := addSynonym(path, canon.Line, ds.Synonyms, canon.Value, canon.Value); err != nil {
					return err
				}
				for _, it := range vars.Content {
					if err := addSynonym(path, it.Line, ds.Synonyms, it.Value, canon.Value); err != nil {
						return err
					}
				}
			}
		default:
			return fileErr(path, k.Line, "entity %s: unknown key %q (want regex, lookup, synonyms)", typ, k.Value)
		}
	}
	return nil
}
