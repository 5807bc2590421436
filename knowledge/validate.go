package knowledge

import (
	"fmt"
	"math"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/tandem-chat/tandem"
)

// Limits on FAQ fields. Longer input is rejected with EINVALID, never
// truncated.
const (
	MaxExternalIDLen = 200   // bytes
	MaxQuestionLen   = 500   // characters, also per phrasing
	MaxPhrasings     = 50    // alternatives per item
	MaxAnswerLen     = 20000 // characters
	MaxCategoryLen   = 100
	MaxTags          = 32
	MaxTagLen        = 64
	MaxIntentLen     = 100
	MaxLocaleLen     = 35
	MaxActorLen      = 200
)

var localeRE = regexp.MustCompile(`^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$`)

// Normalize validates f and returns the canonical form that stores keep:
// trimmed and whitespace-collapsed question and phrasings (blank and
// duplicate phrasings dropped), a trimmed answer whose line breaks are
// "\n" ("\r\n" and "\r" converted), lower-cased unique tags, locale "en"
// and status draft by default. Invalid input is a *tandem.Error with code
// EINVALID naming the field.
func Normalize(f tandem.FAQ) (tandem.FAQ, error) {
	bad := func(field, format string, args ...any) (tandem.FAQ, error) {
		return tandem.FAQ{}, tandem.Errorf(tandem.EINVALID, "%s: %s", field, fmt.Sprintf(format, args...))
	}
	for name, s := range map[string]string{"id": f.ID, "external_id": f.ExternalID, "question": f.Question, "answer": f.Answer,
		"category": f.Category, "locale": f.Locale, "intent": f.Intent, "status": string(f.Status), "updated_by": f.UpdatedBy} {
		if !utf8.ValidString(s) {
			return bad(name, "not valid UTF-8")
		}
	}
	for i, s := range f.Phrasings {
		if !utf8.ValidString(s) {
			return bad(fmt.Sprintf("phrasings[%d]", i), "not valid UTF-8")
		}
	}
	for i, s := range f.Tags {
		if !utf8.ValidString(s) {
			return bad(fmt.Sprintf("tags[%d]", i), "not valid UTF-8")
		}
	}
	out := f
	out.ExternalID = strings.TrimSpace(f.ExternalID)
	if len(out.ExternalID) > MaxExternalIDLen {
		return bad("external_id", "longer than %d bytes", MaxExternalIDLen)
	}
	if hasControl(out.ExternalID, false) {
		return bad("external_id", "contains control characters")
	}
	out.Question = collapse(f.Question)
	if out.Question == "" {
		return bad("question", "must not be empty")
	}
	if tandem.Blank(out.Question) {
		return bad("question", "has no visible characters")
	}
	if n := utf8.RuneCountInString(out.Question); n > MaxQuestionLen {
		return bad("question", "%d characters, more than %d", n, MaxQuestionLen)
	}
	if hasControl(out.Question, false) {
		return bad("question", "contains control characters")
	}
	if len(f.Phrasings) > MaxPhrasings {
		return bad("phrasings", "%d phrasings, more than %d", len(f.Phrasings), MaxPhrasings)
	}
	seen := map[string]bool{strings.ToLower(out.Question): true}
	out.Phrasings = nil
	for i, p := range f.Phrasings {
		p = collapse(p)
		if n := utf8.RuneCountInString(p); n > MaxQuestionLen {
			return bad(fmt.Sprintf("phrasings[%d]", i), "%d characters, more than %d", n, MaxQuestionLen)
		}
		if hasControl(p, false) {
			return bad(fmt.Sprintf("phrasings[%d]", i), "contains control characters")
		}
		if tandem.Blank(p) || seen[strings.ToLower(p)] {
			continue
		}
		seen[strings.ToLower(p)] = true
		out.Phrasings = append(out.Phrasings, p)
	}
	// Line breaks are stored as "\n": CSV readers turn "\r\n" into "\n", so
	// text holding "\r" could not survive an export and re-import.
	out.Answer = strings.TrimSpace(crlf.Replace(f.Answer))
	if out.Answer == "" {
		return bad("answer", "must not be empty")
	}
	if tandem.Blank(out.Answer) {
		return bad("answer", "has no visible characters")
	}
	if n := utf8.RuneCountInString(out.Answer); n > MaxAnswerLen {
		return bad("answer", "%d characters, more than %d", n, MaxAnswerLen)
	}
	if hasControl(out.Answer, true) {
		return bad("answer", "contains control characters")
	}
	out.Category = collapse(f.Category)
	if utf8.RuneCountInString(out.Category) > MaxCategoryLen {
		return bad("category", "longer than %d characters", MaxCategoryLen)
	}
	if hasControl(out.Category, false) {
		return bad("category", "contains control characters")
	}
	if len(f.Tags) > MaxTags {
		return bad("tags", "%d tags, more than %d", len(f.Tags), MaxTags)
	}
	out.Tags = nil
	seenTag := map[string]bool{}
	for i, t := range f.Tags {
		t = strings.ToLower(collapse(t))
		if t == "" {
			return bad(fmt.Sprintf("tags[%d]", i), "must not be empty")
		}
		if utf8.RuneCountInString(t) > MaxTagLen {
			return bad(fmt.Sprintf("tags[%d]", i), "longer than %d characters", MaxTagLen)
		}
		if hasControl(t, false) || strings.ContainsAny(t, ",|") {
			return bad(fmt.Sprintf("tags[%d]", i), "contains control characters, ',' or '|'")
		}
		if !seenTag[t] {
			seenTag[t] = true
			out.Tags = append(out.Tags, t)
		}
	}
	out.Locale = CanonicalLocale(f.Locale)
	if out.Locale == "" {
		out.Locale = "en"
	}
	if len(out.Locale) > MaxLocaleLen || !localeRE.MatchString(out.Locale) {
		return bad("locale", "%q is not a locale like \"en\" or \"pt-BR\"", out.Locale)
	}
	switch out.Status {
	case "":
		out.Status = tandem.FAQDraft
	case tandem.FAQDraft, tandem.FAQPublished:
	default:
		return bad("status", "%q is neither %q nor %q", out.Status, tandem.FAQDraft, tandem.FAQPublished)
	}
	out.Intent = strings.TrimSpace(f.Intent)
	if utf8.RuneCountInString(out.Intent) > MaxIntentLen {
		return bad("intent", "longer than %d characters", MaxIntentLen)
	}
	if hasControl(out.Intent, false) {
		return bad("intent", "contains control characters")
	}
	if math.IsNaN(f.Threshold) || f.Threshold < 0 || f.Threshold > 1 {
		return bad("threshold", "must be between 0 and 1")
	}
	if out.Threshold == 0 {
		out.Threshold = 0 // -0 too (it was exported as "-0")
	}
	if len(f.ID) > MaxExternalIDLen || hasControl(f.ID, false) || strings.ContainsAny(f.ID, "/ ?#%") || f.ID != "" && strings.Trim(f.ID, ".") == "" {
		// Ids go into URL paths: "..", "?x=1" or "#frag" were stored and
		// could not be addressed (clients normalise or cut them).
		return bad("id", "not a valid id (no / space ? # %%, not only dots)")
	}
	return out, nil
}

// Limits on lookup and filter values (ids, cursors, locale, category and
// tag filters): longer values cannot match anything stored.
const (
	MaxFilterLen  = 200 // characters per locale, category or tag filter
	MaxFilterTags = MaxTags
)

// ValidID checks an FAQ id given by a caller (a path segment, a cursor): no
// stored FAQ has an id that is not valid UTF-8, has control characters,
// '/' or spaces, or is longer than MaxExternalIDLen bytes, and PostgreSQL
// cannot even compare such text, so it is EINVALID rather than looked up.
func ValidID(field, id string) error {
	switch {
	case !utf8.ValidString(id):
		return tandem.Errorf(tandem.EINVALID, "%s: not valid UTF-8", field)
	case hasControl(id, false):
		return tandem.Errorf(tandem.EINVALID, "%s: contains control characters", field)
	case len(id) > MaxExternalIDLen:
		return tandem.Errorf(tandem.EINVALID, "%s: longer than %d bytes", field, MaxExternalIDLen)
	case strings.ContainsAny(id, "/ "):
		return tandem.Errorf(tandem.EINVALID, "%s: %q is not a valid FAQ id", field, id)
	}
	return nil
}

// validFilterValue checks one filter value: valid UTF-8, no control
// characters, at most MaxFilterLen characters.
func validFilterValue(field, v string) error {
	switch {
	case !utf8.ValidString(v):
		return tandem.Errorf(tandem.EINVALID, "%s: not valid UTF-8", field)
	case hasControl(v, false):
		return tandem.Errorf(tandem.EINVALID, "%s: contains control characters", field)
	case utf8.RuneCountInString(v) > MaxFilterLen:
		return tandem.Errorf(tandem.EINVALID, "%s: longer than %d characters", field, MaxFilterLen)
	}
	return nil
}

// Validate checks the filter's values (EINVALID naming the field).
func (fl Filter) Validate() error {
	if err := validFilterValue("locale", fl.Locale); err != nil {
		return err
	}
	if len(fl.Tags) > MaxFilterTags {
		return tandem.Errorf(tandem.EINVALID, "tag: %d tag filters, more than %d", len(fl.Tags), MaxFilterTags)
	}
	for _, t := range fl.Tags {
		if err := validFilterValue("tag", t); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks the list filter's values (EINVALID naming the field).
func (lf ListFilter) Validate() error {
	if err := lf.Filter.Validate(); err != nil {
		return err
	}
	if err := validFilterValue("category", lf.Category); err != nil {
		return err
	}
	if lf.After != "" {
		if err := ValidID("after", lf.After); err != nil {
			return err
		}
	}
	return nil
}

// ValidActor checks an audit actor name.
func ValidActor(actor string) error {
	if !utf8.ValidString(actor) || len(actor) > MaxActorLen || hasControl(actor, false) {
		return tandem.Errorf(tandem.EINVALID, "actor: not a valid name")
	}
	return nil
}

var crlf = strings.NewReplacer("\r\n", "\n", "\r", "\n")

// collapse trims s and replaces runs of white space with one space.
func collapse(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func hasControl(s string, allowNewlines bool) bool {
	for _, r := range s {
		if allowNewlines && (r == '\n' || r == '\t' || r == '\r') {
			continue
		}
		if unicode.IsControl(r) {
			return true
		}
	}
	return false
}
