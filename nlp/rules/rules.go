// Package rules extracts entities that deterministic rules recognise better
// than a statistical model: e-mail addresses, phone numbers, URLs, order and
// ticket ids, money amounts, dates and times relative to a reference time,
// values of a dataset's lookup tables (with its synonyms) and a dataset's
// regex entities.
//
// Entity types and normalised values (tandem.Entity.Value):
//
//	email      "Jane.Doe@Example.COM"          -> "jane.doe@example.com"
//	phone      "+44 20 7946 0958"              -> "+442079460958"
//	           "(415) 555-2671"                -> "4155552671" ("+14155552671" with DefaultCountryCode "1")
//	url        "www.example.com/a?b=1."        -> "http://www.example.com/a?b=1"
//	order_id   "ord 12345", "#123456", "order number is 48213" -> "ORD-12345", "123456", "48213"
//	ticket_id  "TCK-778"                        -> "TCK-778"
//	money      "$12.50", "12,50 €", "EUR 30", "30 dollars", "100元"
//	           -> "12.50 USD", "12.50 EUR", "30.00 EUR", "30.00 USD", "100.00 CNY"
//	date       "tomorrow", "next friday", "on 5 March", "2026-11-22", "5/3"
//	           -> "2026-03-06" (ISO 8601 calendar date);
//	           "last week", "next month", "this weekend"
//	           -> "2026-02-23/2026-03-01" (ISO 8601 interval of dates, both inclusive)
//	time       "at 3pm", "14:30", "noon"        -> "15:00", "14:30", "12:00"
//	datetime   "tomorrow at 3pm", "in 2 hours"  -> "2026-03-06T15:00:00+01:00" (RFC 3339, ref's zone)
//	<lookup>   a value of Config.Lookups[type] (or a synonym of one), matched
//	           case-insensitively on token boundaries -> the canonical value;
//	           Source "lookup"
//	<regex>    a match of Config.Regexes[type] -> the matched text
//
// Date conventions (documented so callers can rely on them): a bare weekday
// ("friday", "on friday", "this friday") is the first such day on or after
// the reference date — or, "friday" and "on friday" in a clause that speaks
// of the past ("I paid on Monday", "it arrived friday": a past cue such as
// was/paid/ordered/ago and no future cue such as will/can/next), the last
// such day on or before it; "next friday" the first strictly after it; "last
// friday" the last strictly before it. A day and month without a year take
// the year that puts the date nearest to the reference date. Numeric dates
// "5/3" follow Config.DateOrder (default day/month, "MDY" for month/day);
// "05.03.2026" is always day.month.year; "2026-11-22" is ISO. "at 3" without
// am/pm is read as 15:00 for hours 1-7 (business hours), else as given.
// Weeks start on Monday.
//
// Offsets (Start, End) are in runes of the input, End exclusive, like every
// tandem.Entity; invalid UTF-8 bytes count one rune each. Overlapping
// candidates are resolved by keeping the longest, then the earliest, then the
// more specific kind (datetime > date/time > money > email > url > ids >
// phone > lookup > regex); the result is sorted by Start.
//
// Concurrency: an Extractor is immutable after New and safe for concurrent
// use. Extract never panics on any input and runs in time linear in the
// input length (RE2 regular expressions, a token trie for lookups).
package rules

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/nlp/data"
	"github.com/tandem-chat/tandem/nlp/text"
)

// Entity types produced by the built-in rules.
const (
	TypeEmail    = "email"
	TypePhone    = "phone"
	TypeURL      = "url"
	TypeOrderID  = "order_id"
	TypeTicketID = "ticket_id"
	TypeMoney    = "money"
	TypeDate     = "date"
	TypeTime     = "time"
	TypeDateTime = "datetime"
)

// Sources of extracted entities.
const (
	SourceRule   = "rule"
	SourceLookup = "lookup"
)

// IDPattern recognises one kind of identifier. Expr is an RE2 expression;
// the optional named group "span" limits the entity span to part of the
// match (e.g. the number after "order number"), and the optional group "id"
// is the value's core; Value is Prefix + upper-cased id (or the upper-cased
// span without spaces when there is no "id" group).
type IDPattern struct {
	Type   string `json:"type" yaml:"type"`
	Expr   string `json:"expr" yaml:"expr"`
	Prefix string `json:"prefix,omitempty" yaml:"prefix,omitempty"`
	// RequireDigit drops matches whose id (the "id" group, else the span)
	// has no digit: free-form patterns such as "order number <id>" would
	// otherwise take the next word ("order number please").
	RequireDigit bool `json:"require_digit,omitempty" yaml:"require_digit,omitempty"`
}

// DefaultIDPatterns are the order and ticket id patterns used when
// Config.IDPatterns is nil.
func DefaultIDPatterns() []IDPattern {
	return []IDPattern{
		{Type: TypeOrderID, Expr: `(?i)\bORD(?:ER)?[-_ ]?(?P<id>\d{4,12})\b`, Prefix: "ORD-"},
		{Type: TypeOrderID, Expr: `(?i)\border\s+(?:number|no\.?|nr\.?|id|#)\s*(?:(?:is|was)\b\s*)?:?\s*(?P<span>#?(?P<id>[A-Z0-9][A-Z0-9-]{3,19}))\b`, RequireDigit: true},
		{Type: TypeOrderID, Expr: `(?:^|[^\w&])(?P<span>#(?P<id>\d{4,12}))\b`},
		{Type: TypeTicketID, Expr: `(?i)\b(?:TCK|TKT|TICKET)[-_ ]?(?P<id>\d{3,12})\b`, Prefix: "TCK-"},
		{Type: TypeTicketID, Expr: `(?i)\b(?:ticket|case)\s+(?:number|no\.?|nr\.?|id|#)\s*(?:(?:is|was)\b\s*)?:?\s*(?P<span>#?(?P<id>[A-Z0-9][A-Z0-9-]{2,19}))\b`, Prefix: "TCK-", RequireDigit: true},
	}
}

// Config configures an Extractor. The zero value enables every built-in
// rule with the default id patterns, day/month numeric dates and no country
// code for national phone numbers.
type Config struct {
	// Disable lists built-in types not to extract (e.g. "phone", "date").
	// Disabling "date" or "time" also disables "datetime".
	Disable []string `json:"disable,omitempty" yaml:"disable,omitempty"`
	// IDPatterns replaces DefaultIDPatterns when non-nil (an empty non-nil
	// slice disables id extraction).
	IDPatterns []IDPattern `json:"id_patterns,omitempty" yaml:"id_patterns,omitempty"`
	// DateOrder is "DMY" (default) or "MDY"; it decides how "5/3" reads.
	DateOrder string `json:"date_order,omitempty" yaml:"date_order,omitempty"`
	// DefaultCountryCode (digits, e.g. "44") turns national phone numbers
	// into international ones: the trunk 0 is dropped and "+CC" prefixed.
	DefaultCountryCode string `json:"default_country_code,omitempty" yaml:"default_country_code,omitempty"`
	// DollarCurrency is the ISO code of a bare "$" (default "USD").
	DollarCurrency string `json:"dollar_currency,omitempty" yaml:"dollar_currency,omitempty"`
	// Lookups maps an entity type to its known values (a gazetteer).
	Lookups map[string][]string `json:"lookups,omitempty" yaml:"lookups,omitempty"`
	// Synonyms maps a normalised surface form (text.Normalize) to its
	// canonical value; synonyms of lookup values are matched too.
	Synonyms map[string]string `json:"synonyms,omitempty" yaml:"synonyms,omitempty"`
	// Regexes maps an entity type to an RE2 expression.
	Regexes map[string]string `json:"regexes,omitempty" yaml:"regexes,omitempty"`
}

// WithDataset returns a copy of c with the lookup tables, synonyms and regex
// entities of ds added.
func (c Config) WithDataset(ds *data.Dataset) Config {
	if ds == nil {
		return c
	}
	lk := make(map[string][]string, len(c.Lookups)+len(ds.Lookups))
	for k, v := range c.Lookups {
		lk[k] = append([]string(nil), v...)
	}
	for k, vs := range ds.Lookups {
		// Each value once: the same data may come twice.
		seen := make(map[string]bool, len(lk[k])+len(vs))
		for _, v := range lk[k] {
			seen[v] = true
		}
		for _, v := range vs {
			if !seen[v] {
				seen[v] = true
				lk[k] = append(lk[k], v)
			}
		}
	}
	syn := make(map[string]string, len(c.Synonyms)+len(ds.Synonyms))
	for k, v := range c.Synonyms {
		syn[k] = v
	}
	for k, v := range ds.Synonyms {
		syn[k] = v
	}
	rx := make(map[string]string, len(c.Regexes)+len(ds.Regexes))
	for k, v := range c.Regexes {
		rx[k] = v
	}
	for k, v := range ds.Regexes {
		if old, ok := rx[k]; ok && old != v {
			v = "(?:" + old + ")|(?:" + v + ")"
		}
		rx[k] = v
	}
	c.Lookups, c.Synonyms, c.Regexes = lk, syn, rx
	return c
}

// Extractor runs the configured rules. Build it with New.
type Extractor struct {
	enabled  map[string]bool
	ids      []idRule
	mdy      bool
	cc       string
	dollar   string
	lookups  *trie
	synonyms map[string]string
	regexes  []regexRule
	// idsNeedDigits: every id pattern needs a digit (the defaults), so
	// texts without digits skip them.
	idsNeedDigits bool
}

type idRule struct {
	typ    string
	re     *regexp.Regexp
	prefix string
	span   int // submatch index of "span", -1 if none
	id     int // submatch index of "id", -1 if none
	digit  bool
}

type regexRule struct {
	typ string
	re  *regexp.Regexp
}

// New validates cfg and builds an Extractor.
func New(cfg Config) (*Extractor, error) {
	e := &Extractor{enabled: map[string]bool{}, cc: cfg.DefaultCountryCode, dollar: "USD"}
	for _, t := range []string{TypeEmail, TypePhone, TypeURL, TypeOrderID, TypeTicketID, TypeMoney, TypeDate, TypeTime, TypeDateTime} {
		e.enabled[t] = true
	}
	for _, t := range cfg.Disable {
		if _, ok := e.enabled[t]; !ok {
			return nil, fmt.Errorf("rules: disable: unknown built-in type %q", t)
		}
		e.enabled[t] = false
	}
	if !e.enabled[TypeDate] || !e.enabled[TypeTime] {
		e.enabled[TypeDateTime] = false
	}
	switch strings.ToUpper(cfg.DateOrder) {
	case "", "DMY":
	case "MDY":
		e.mdy = true
	default:
		return nil, fmt.Errorf("rules: date_order %q: want DMY or MDY", cfg.DateOrder)
	}
	for _, r := range cfg.DefaultCountryCode {
		if r < '0' || r > '9' {
			return nil, fmt.Errorf("rules: default_country_code %q: want digits only", cfg.DefaultCountryCode)
		}
	}
	if len(cfg.DefaultCountryCode) > 3 {
		return nil, fmt.Errorf("rules: default_country_code %q: at most 3 digits", cfg.DefaultCountryCode)
	}
	if cfg.DollarCurrency != "" {
		if len(cfg.DollarCurrency) != 3 {
			return nil, fmt.Errorf("rules: dollar_currency %q: want an ISO 4217 code", cfg.DollarCurrency)
		}
		e.dollar = strings.ToUpper(cfg.DollarCurrency)
	}
	pats := cfg.IDPatterns
	if pats == nil {
		pats = DefaultIDPatterns()
		e.idsNeedDigits = true // every default pattern needs a digit
	}
	for i, p := range pats {
		if p.Type == "" {
			return nil, fmt.Errorf("rules: id pattern %d: empty type", i)
		}
		re, err := regexp.Compile(p.Expr)
		if err != nil {
			return nil, fmt.Errorf("rules: id pattern %d (%s): %w", i, p.Type, err)
		}
		e.ids = append(e.ids, idRule{typ: p.Type, re: re, prefix: p.Prefix, span: re.SubexpIndex("span"), id: re.SubexpIndex("id"), digit: p.RequireDigit})
	}
	types := make([]string, 0, len(cfg.Regexes))
	for t := range cfg.Regexes {
		types = append(types, t)
	}
	sort.Strings(types)
	for _, t := range types {
		re, err := regexp.Compile(cfg.Regexes[t])
		if err != nil {
			return nil, fmt.Errorf("rules: regex entity %s: %w", t, err)
		}
		e.regexes = append(e.regexes, regexRule{typ: t, re: re})
	}
	e.synonyms = make(map[string]string, len(cfg.Synonyms))
	for k, v := range cfg.Synonyms {
		e.synonyms[text.Normalize(k)] = v
	}
	e.lookups = buildTrie(cfg.Lookups, e.synonyms)
	return e, nil
}

var defaultExtractor = func() *Extractor {
	e, err := New(Config{})
	if err != nil {
		panic(err) // the default configuration is valid by construction (tested)
	}
	return e
}()

// Default returns the Extractor of the zero Config (shared, immutable).
func Default() *Extractor { return defaultExtractor }

// Extract runs the default rules on s relative to ref.
func Extract(s string, ref time.Time) []tandem.Entity { return defaultExtractor.Extract(s, ref) }

// candidate is a match in byte offsets before overlap resolution.
type candidate struct {
	start, end int // bytes
	typ, value string
	source     string
	prio       int // higher wins ties
}

// Priorities of candidate kinds (ties of equal length and start).
const (
	prioRegex = iota
	prioLookup
	prioPhone
	prioID
	prioURL
	prioEmail
	prioMoney
	prioDate
	prioDateTime
)

// Extract returns the entities in s, resolved for overlaps and sorted by
// Start. ref is the reference time of relative dates ("tomorrow"); its
// location is the time zone of datetime values.
func (e *Extractor) Extract(s string, ref time.Time) []tandem.Entity {
	if s == "" {
		return nil
	}
	var cs []candidate
	h := newHints(s)
	if e.enabled[TypeEmail] {
		cs = e.emails(s, cs)
	}
	if e.enabled[TypeURL] && h.has(".") {
		cs = e.urls(s, cs)
	}
	if e.enabled[TypePhone] && h.ndigits >= 7 {
		cs = e.phones(s, cs)
	}
	if h.digits || !e.idsNeedDigits {
		cs = e.idents(s, cs)
	}
	if e.enabled[TypeMoney] {
		cs = e.money(s, h, cs)
	}
	if e.enabled[TypeDate] || e.enabled[TypeTime] {
		cs = e.dates(s, h, ref, cs)
	}
	for _, r := range e.regexes {
		for _, m := range r.re.FindAllStringIndex(s, -1) {
			if m[1] > m[0] {
				cs = append(cs, candidate{start: m[0], end: m[1], typ: r.typ, value: s[m[0]:m[1]], source: SourceRule, prio: prioRegex})
			}
		}
	}
	cs = e.lookupMatches(s, cs)
	if len(cs) == 0 {
		return nil
	}
	return resolve(s, cs)
}

// resolve keeps non-overlapping candidates (longest in runes, then
// earliest, then highest priority) and converts byte to rune offsets.
func resolve(s string, cs []candidate) []tandem.Entity {
	runeAt := runeOffsets(s)
	type rc struct {
		candidate
		rs, re int
	}
	rcs := make([]rc, 0, len(cs))
	for _, c := range cs {
		if c.start < 0 || c.end > len(s) || c.start >= c.end {
			continue
		}
		rcs = append(rcs, rc{c, runeAt[c.start], runeAt[c.end]})
	}
	sort.SliceStable(rcs, func(i, j int) bool {
		a, b := rcs[i], rcs[j]
		if la, lb := a.re-a.rs, b.re-b.rs; la != lb {
			return la > lb
		}
		if a.rs != b.rs {
			return a.rs < b.rs
		}
		if a.prio != b.prio {
			return a.prio > b.prio
		}
		if a.typ != b.typ {
			return a.typ < b.typ
		}
		return a.value < b.value
	})
	var kept []rc
	used := make([]bool, runeAt[len(s)]) // runes covered by kept entities
	for _, c := range rcs {
		if used[c.rs] || used[c.re-1] {
			continue
		}
		free := true
		for r := c.rs; r < c.re; r++ {
			if used[r] {
				free = false
				break
			}
		}
		if !free {
			continue
		}
		for r := c.rs; r < c.re; r++ {
			used[r] = true
		}
		kept = append(kept, c)
	}
	sort.Slice(kept, func(i, j int) bool { return kept[i].rs < kept[j].rs })
	out := make([]tandem.Entity, len(kept))
	for i, k := range kept {
		txt := s[k.start:k.end]
		if !utf8.ValidString(txt) {
			txt = string([]rune(txt))
		}
		out[i] = tandem.Entity{Type: k.typ, Text: txt, Value: k.value, Start: k.rs, End: k.re, Source: k.source, Confidence: 1}
	}
	return out
}

// runeOffsets maps every byte offset at a rune boundary (and len(s)) to its
// rune offset, counting invalid bytes as one rune each. Offsets inside a
// multi-byte rune map to the rune's index.
func runeOffsets(s string) []int {
	out := make([]int, len(s)+1)
	r := 0
	for i := 0; i < len(s); {
		_, w := utf8.DecodeRuneInString(s[i:])
		for k := 0; k < w; k++ {
			out[i+k] = r
		}
		i += w
		r++
	}
	out[len(s)] = r
	return out
}

// --- email, URL, phone, ids --------------------------------------------------

var (
	reEmail = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,24}\b`)
	reURL   = regexp.MustCompile(`(?i)\b(?:https?://[^\s<>"']+|www\.[^\s<>"']+|[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*\.(?:com|org|net|io|co|de|fr|uk|eu|info|biz|app|dev|shop|store|cn|es|it|nl|ch|at|be|us|ca|au|jp)\b(?:/[^\s<>"']*)?)`)
	// Phone: optional + or 00 country prefix, digit groups separated by
	// single spaces, dots, hyphens, optional parentheses around one group.
	rePhone = regexp.MustCompile(`(?:\+|\b00)?\(?\d{1,4}\)?(?:[ .\-]?\(?\d{1,5}\)?){1,6}`)
)

func (e *Extractor) emails(s string, cs []candidate) []candidate {
	if strings.IndexByte(s, '@') < 0 {
		return cs
	}
	for _, m := range reEmail.FindAllStringIndex(s, -1) {
		st, en := m[0], m[1]
		for st < en && s[st] == '.' {
			st++
		}
		if st >= en || strings.HasPrefix(s[st:en], "@") {
			continue
		}
		cs = append(cs, candidate{start: st, end: en, typ: TypeEmail, value: strings.ToLower(s[st:en]), source: SourceRule, prio: prioEmail})
	}
	return cs
}

func (e *Extractor) urls(s string, cs []candidate) []candidate {
	for _, m := range reURL.FindAllStringIndex(s, -1) {
		st, en := m[0], m[1]
		// Strip trailing punctuation that ends the sentence, and a closing
		// parenthesis without an opening one in the URL.
		for en > st {
			c := s[en-1]
			if strings.IndexByte(".,;:!?'\"", c) >= 0 || (c == ')' && !strings.Contains(s[st:en-1], "(")) {
				en--
				continue
			}
			break
		}
		if en <= st {
			continue
		}
		if st > 0 && s[st-1] == '@' { // the domain of an e-mail address
			continue
		}
		u := s[st:en]
		low := strings.ToLower(u)
		scheme := ""
		switch {
		case strings.HasPrefix(low, "https://"):
			scheme, u = "https://", u[8:]
		case strings.HasPrefix(low, "http://"):
			scheme, u = "http://", u[7:]
		default:
			scheme = "http://"
		}
		host, rest := u, ""
		if i := strings.IndexAny(u, "/?#"); i >= 0 {
			host, rest = u[:i], u[i:]
		}
		if host == "" {
			continue
		}
		cs = append(cs, candidate{start: st, end: en, typ: TypeURL, value: scheme + strings.ToLower(host) + rest, source: SourceRule, prio: prioURL})
	}
	return cs
}

func (e *Extractor) phones(s string, cs []candidate) []candidate {
	for _, m := range rePhone.FindAllStringIndex(s, -1) {
		st, en := m[0], m[1]
		// Trim unbalanced parentheses at the ends.
		for en > st && s[en-1] == ')' && strings.Count(s[st:en], "(") < strings.Count(s[st:en], ")") {
			en--
		}
		for st < en && s[st] == '(' && strings.Count(s[st:en], "(") > strings.Count(s[st:en], ")") {
			st++
		}
		// Not part of a longer token (letters, digits, decimal parts).
		if st > 0 {
			if c := s[st-1]; isAlnum(c) || c == '#' || c == '-' || c == '/' || c == '.' || c == ',' || c == ':' || c == '$' {
				continue
			}
		}
		if en < len(s) {
			if c := s[en]; isAlnum(c) || c == '/' || c == '%' || c == '@' || c == ':' || (c == '.' || c == ',') && en+1 < len(s) && isDigit(s[en+1]) {
				continue
			}
		}
		raw := s[st:en]
		intl := strings.HasPrefix(raw, "+") || strings.HasPrefix(raw, "00")
		num := raw
		if intl {
			// "+44 (0)20 7946 0958": the parenthesised trunk 0 is dialled
			// only from inside the country; it is not part of the number.
			num = strings.Replace(num, "(0)", "", 1)
		}
		digits := make([]byte, 0, len(num))
		for i := 0; i < len(num); i++ {
			if isDigit(num[i]) {
				digits = append(digits, num[i])
			}
		}
		if strings.HasPrefix(raw, "00") {
			digits = digits[2:]
		}
		separated := strings.ContainsAny(raw, " .-()")
		n := len(digits)
		switch {
		case n < 7 || n > 15:
			continue
		case intl:
			if digits[0] == '0' {
				continue
			}
		case !separated:
			// A bare digit run is a phone number only in the national
			// format with a trunk prefix (e.g. 07911123456, 0612345678).
			if raw[0] != '0' || n < 10 || n > 11 {
				continue
			}
		default:
			// Separated groups: reject date-like and decimal-like shapes
			// (those belong to the date and money rules) by asking for at
			// least 9 digits or a parenthesised area code.
			if n < 9 && !strings.Contains(raw, "(") {
				continue
			}
			if strings.Contains(raw, " ") && !strings.ContainsAny(raw, "-.()") && n < 10 {
				continue
			}
		}
		var value string
		switch {
		case intl:
			value = "+" + string(digits)
		case e.cc != "":
			value = "+" + e.cc + strings.TrimPrefix(string(digits), "0")
		default:
			value = string(digits)
		}
		cs = append(cs, candidate{start: st, end: en, typ: TypePhone, value: value, source: SourceRule, prio: prioPhone})
	}
	return cs
}

func (e *Extractor) idents(s string, cs []candidate) []candidate {
	for _, r := range e.ids {
		if !e.enabledID(r.typ) {
			continue
		}
		for _, m := range r.re.FindAllStringSubmatchIndex(s, -1) {
			st, en := m[0], m[1]
			if r.span >= 0 && m[2*r.span] >= 0 {
				st, en = m[2*r.span], m[2*r.span+1]
			}
			if en <= st {
				continue
			}
			raw := s[st:en]
			if r.id >= 0 && m[2*r.id] >= 0 {
				raw = s[m[2*r.id]:m[2*r.id+1]]
			}
			if r.digit && !strings.ContainsAny(raw, "0123456789") {
				continue
			}
			var value string
			if r.id >= 0 && m[2*r.id] >= 0 {
				value = r.prefix + strings.ToUpper(raw)
			} else {
				value = r.prefix + strings.ToUpper(strings.Join(strings.Fields(raw), ""))
			}
			cs = append(cs, candidate{start: st, end: en, typ: r.typ, value: value, source: SourceRule, prio: prioID})
		}
	}
	return cs
}

func (e *Extractor) enabledID(typ string) bool {
	if v, ok := e.enabled[typ]; ok {
		return v
	}
	return true // custom id types are enabled by configuration
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlnum(c byte) bool {
	return isDigit(c) || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
}

func decodeRune(s string) (rune, int) { return utf8.DecodeRuneInString(s) }

// hints are cheap facts about a text that let Extract skip regular
// expressions that cannot match (most messages have no digits, no '@', no
// month name), which makes extraction several times faster.
type hints struct {
	lower          string // ASCII-lower-cased text (for substring tests only)
	digits         bool
	ndigits        int
	month, unit    bool
	currencySymbol bool
	code           bool
}

var (
	monthStems    = []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}
	unitStems     = []string{"min", "hour", "hr", "day", "week", "fortnight", "month", "year"}
	currencyCodes = []string{"usd", "eur", "gbp", "jpy", "chf", "cad", "aud", "nzd", "inr", "cny", "rmb", "sek", "nok", "dkk", "pln", "czk", "huf", "mxn", "brl", "hkd", "sgd", "krw", "try", "zar", "rub"}
)

func newHints(s string) *hints {
	b := []byte(s)
	h := &hints{}
	for i, c := range b {
		switch {
		case c >= '0' && c <= '9':
			h.ndigits++
		case c >= 'A' && c <= 'Z':
			b[i] = c + 'a' - 'A'
		}
	}
	h.lower = string(b)
	h.digits = h.ndigits > 0
	h.month = h.any(monthStems...)
	h.unit = h.any(unitStems...)
	h.currencySymbol = strings.ContainsAny(s, "$€£¥₹₩₽₺₪元块円")
	h.code = h.any(currencyCodes...)
	return h
}

func (h *hints) has(sub string) bool { return strings.Contains(h.lower, sub) }

func (h *hints) any(subs ...string) bool {
	for _, s := range subs {
		if strings.Contains(h.lower, s) {
			return true
		}
	}
	return false
}

// find runs re only when the precondition holds.
func find(re *regexp.Regexp, s string, pre bool) [][]int {
	if !pre {
		return nil
	}
	return re.FindAllStringSubmatchIndex(s, -1)
}
