package pipeline

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// normalise folds text for keyword matching and cache keys: valid UTF-8,
// NFKC, lower case, typographic apostrophes as ', punctuation dropped,
// whitespace collapsed.
func normalise(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = norm.NFKC.String(s)
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range s {
		switch r {
		case '\u2019', '\u2018', '\u02bc': // typographic apostrophes (phone keyboards type ’ for ')
			r = '\''
		}
		switch {
		case unicode.IsLetter(r) || unicode.IsNumber(r) || r == '\'' || r == '@' || r == '-' || r == '#':
			if space && b.Len() > 0 {
				b.WriteByte(' ')
			}
			space = false
			b.WriteRune(unicode.ToLower(r))
		default:
			space = true
		}
	}
	return b.String()
}

// truncateRunes cuts s to at most n runes.
func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i := 0
	for pos := range s {
		if i == n {
			return s[:pos]
		}
		i++
	}
	return s
}

func isCJK(r rune) bool {
	return unicode.Is(unicode.Han, r) || unicode.Is(unicode.Hiragana, r) || unicode.Is(unicode.Katakana, r) || unicode.Is(unicode.Hangul, r)
}

// containsPhrase reports whether the normalised text contains the phrase:
// as a substring for CJK phrases (no spaces between words), on word
// boundaries otherwise.
func containsPhrase(text, phrase string) bool {
	return containsNormalised(text, normalise(phrase))
}

// containsNormalised is containsPhrase for an already normalised phrase.
func containsNormalised(text, phrase string) bool { return findPhrase(text, phrase, false) }

// containsAffirmed is containsNormalised for a request: a match that a
// declining phrase comes right before ("i don't want to talk to a person",
// "no need for a human agent", 不要转人工) does not count. Only a negation
// followed by want/need/wish/like is declining: "this is not working talk
// to a human" asks for one.
func containsAffirmed(text, phrase string) bool { return findPhrase(text, phrase, true) }

// findPhrase reports whether text holds the normalised phrase: CJK as a
// substring, other scripts on word boundaries; with skipDeclined, a match
// after a declining phrase does not count.
func findPhrase(text, phrase string, skipDeclined bool) bool {
	var skip func(before, after string, cjk bool) bool
	if skipDeclined {
		skip = func(before, after string, cjk bool) bool {
			if cjk {
				return cjkDeclined(before, phrase) || cjkDeclinedAfter(after)
			}
			return declined(before, cjk)
		}
	}
	return findPhraseUnless(text, phrase, skip)
}

// findPhraseUnless is findPhrase with a match that skip (given the text
// before and after it) refuses not counting; skip may be nil.
func findPhraseUnless(text, phrase string, skip func(before, after string, cjk bool) bool) bool {
	if phrase == "" {
		return false
	}
	r, _ := utf8.DecodeRuneInString(phrase)
	cjk := isCJK(r)
	for i := 0; i < len(text); {
		j := strings.Index(text[i:], phrase)
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(phrase)
		if (cjk || wordEdge(text[:start], true) && wordEdge(text[end:], false)) && (skip == nil || !skip(text[:start], text[end:], cjk)) {
			return true
		}
		i = start + 1
	}
	return false
}

// selfDirected reports whether an abuse word between before and after (a
// normalised text) is the customer speaking of themselves or of their own
// question, not insulting anyone: "this may be a stupid question", "I'm
// such an idiot", "I feel stupid", "my stupid mistake".
func selfDirected(before, after string, cjk bool) bool {
	if cjk {
		return false
	}
	if next, _, _ := strings.Cut(strings.TrimSpace(after), " "); selfObjects[next] {
		return true
	}
	// Back from the word: a second-person word first makes it an insult
	// ("I think you're stupid", "give me my money you bastard").
	w := strings.Fields(before)
	for k := len(w) - 1; k >= max(0, len(w)-3); k-- {
		switch {
		case secondPerson[w[k]]:
			return false
		case selfSubjects[w[k]]:
			return true
		}
	}
	return false
}

var (
	// selfObjects follow an abuse word that qualifies the customer's own
	// words or deeds.
	selfObjects = map[string]bool{"question": true, "questions": true, "mistake": true, "mistakes": true, "me": true, "thing": true, "typo": true}
	// selfSubjects come shortly before an abuse word the customer says of
	// themselves.
	selfSubjects = map[string]bool{"i'm": true, "im": true, "am": true, "i": true, "me": true, "myself": true, "my": true, "i've": true, "i'd": true, "feel": true, "felt": true}
	// secondPerson words aim an abuse word at someone.
	secondPerson = map[string]bool{"you": true, "you're": true, "youre": true, "your": true, "yours": true, "yourself": true, "u": true, "ur": true, "y'all": true, "ya": true}
)

var (
	declineNegations = map[string]bool{"not": true, "no": true, "never": true, "don't": true, "dont": true, "doesn't": true, "didn't": true}
	declineVerbs     = map[string]bool{"want": true, "wanna": true, "need": true, "needed": true, "wish": true, "like": true}
	cjkDeclines      = []string{"不要", "不用", "不想", "不需要", "没必要", "別", "别", "いらない", "不要です", "は不要"}
)

// declined reports whether before (the normalised text before a keyword)
// ends with a declining phrase.
func declined(before string, cjk bool) bool {
	if cjk {
		return cjkDeclined(before, "")
	}
	w := strings.Fields(before)
	if asksIdentity(w) {
		return true
	}
	// A negation right before the request, across a few of its own words
	// ("ich möchte nicht mit einem Menschen sprechen", "no quiero hablar
	// con una persona", "je ne veux pas parler à un humain", "please
	// don't connect me to a person").
	for k := len(w) - 1; k >= max(0, len(w)-5); k-- {
		// "no" only with words of its own after it ("no quiero hablar
		// con…", "no need to talk to…"): "no, talk to a person" (its comma
		// gone) answers the bot and asks for one.
		if requestNegations[w[k]] && (w[k] != "no" || k < len(w)-1) {
			return true
		}
		if !requestFiller[w[k]] {
			break
		}
	}
	// A negation and want/need/wish/like, with only the request's own
	// words after them: "I don't want to talk to a person", "no need for a
	// human agent" — not "I don't want to wait, talk to a person".
	w = w[max(0, len(w)-6):]
	for k := 0; k+1 < len(w); k++ {
		if declineNegations[w[k]] && declineVerbs[w[k+1]] && allFiller(w[k+2:]) {
			return true
		}
	}
	return false
}

// personWords name a person the customer could ask for.
var personWords = map[string]bool{"human": true, "humans": true, "person": true, "people": true, "agent": true, "agents": true, "someone": true,
	"somebody": true, "representative": true, "operator": true, "staff": true}

// declinesPerson reports whether the normalised text names a person only
// to decline one ("never mind, no need for a human", "I don't need an agent
// any more"): every person word in it comes after a declining phrase
// (declined), and there is at least one.
func declinesPerson(norm string) bool {
	w := strings.Fields(norm)
	seen := false
	for i, x := range w {
		if !personWords[x] {
			continue
		}
		if !declined(strings.Join(w[:i], " "), false) {
			return false
		}
		seen = true
	}
	return seen
}

// allFiller reports whether every word is a requestFiller.
func allFiller(w []string) bool {
	for _, x := range w {
		if !requestFiller[x] {
			return false
		}
	}
	return true
}

// cjkDeclined reports whether a declining phrase ends in before or runs
// into the keyword (phrase): in 我不需要人工客服 the keyword 要人工 starts
// inside 不需要.
func cjkDeclined(before, phrase string) bool {
	t := strings.TrimSpace(before)
	tail := t[max(0, len(t)-12):]
	for len(tail) > 0 && !utf8.RuneStart(tail[0]) {
		tail = tail[1:]
	}
	window := tail + phrase
	for _, d := range cjkDeclines {
		if strings.HasSuffix(t, d) {
			return true
		}
		if i := strings.LastIndex(window, d); i >= 0 && i < len(tail) {
			return true
		}
	}
	return false
}

// cjkDeclinedAfter reports whether a CJK keyword is followed by a
// declining phrase (オペレーターは不要です, 人工客服不需要).
func cjkDeclinedAfter(after string) bool {
	t := strings.TrimSpace(after)
	for _, d := range []string{"は不要", "不要", "はいらない", "いらない", "は要らない", "不需要", "不用"} {
		if strings.HasPrefix(t, d) {
			return true
		}
	}
	return false
}

// asksIdentity reports whether the words before a keyword ask whether the
// customer is talking to a person ("am I talking to a real person?", "are
// you a human?"): a question for the bot, not a request for a person.
func asksIdentity(w []string) bool {
	for len(w) > 0 && identityFiller[w[len(w)-1]] {
		w = w[:len(w)-1]
	}
	s := " " + strings.Join(w[max(0, len(w)-4):], " ")
	for _, q := range []string{" am i talking to", " am i chatting with", " am i speaking to", " am i speaking with", " are you", " is this", " is it"} {
		if strings.HasSuffix(s, q) {
			return true
		}
	}
	return false
}

// identityFiller may stand between an identity question and the person
// word: "am I talking to a real person".
var identityFiller = map[string]bool{"a": true, "an": true, "the": true, "real": true, "actual": true, "live": true, "really": true}

var (
	// requestNegations negate a request for a person that follows them.
	requestNegations = map[string]bool{"not": true, "don't": true, "dont": true, "never": true, "nicht": true, "kein": true, "keinen": true,
		"keine": true, "pas": true, "jamais": true, "no": true, "nunca": true}
	// requestFiller may stand between such a negation and the request.
	requestFiller = map[string]bool{"please": true, "want": true, "need": true, "to": true, "me": true, "quiero": true, "necesito": true,
		"deseo": true, "veux": true, "voudrais": true, "besoin": true, "de": true, "d'": true, "möchte": true, "will": true, "brauche": true,
		"mit": true, "einem": true, "einen": true, "einer": true, "con": true, "un": true, "una": true, "une": true, "avec": true, "à": true, "a": true,
		"hablar": true, "parler": true, "sprechen": true, "reden": true, "talk": true, "speak": true, "for": true, "an": true, "the": true,
		"with": true, "be": true, "connected": true, "put": true, "through": true, "really": true, "actually": true, "any": true,
		"transfer": true, "connect": true, "forward": true, "pass": true, "hand": true, "over": true, "send": true}
)

// wordEdge reports whether a phrase that ends where side begins (before,
// false) or begins where side ends (before, true) is on a word boundary
// there: at the text's edge, a space, or a CJK character (mixed-script
// text has no spaces between a CJK word and a Latin one: "我要real person").
func wordEdge(side string, before bool) bool {
	if side == "" {
		return true
	}
	var r rune
	if before {
		r, _ = utf8.DecodeLastRuneInString(side)
	} else {
		r, _ = utf8.DecodeRuneInString(side)
	}
	return r == ' ' || isCJK(r)
}

// detectLanguage guesses the language from the script; Latin text returns
// the fallback (the widget's locale, or "en").
func detectLanguage(s, fallback string) string {
	var han, kana, hangul, latin int
	for _, r := range s {
		switch {
		case unicode.Is(unicode.Hiragana, r) || unicode.Is(unicode.Katakana, r):
			kana++
		case unicode.Is(unicode.Han, r):
			han++
		case unicode.Is(unicode.Hangul, r):
			hangul++
		case unicode.Is(unicode.Latin, r):
			latin++
		}
	}
	switch {
	case kana > 0 && kana+han >= latin:
		return "ja"
	case han > 0 && han >= latin:
		return "zh"
	case hangul > 0 && hangul >= latin:
		return "ko"
	}
	if l := latinLanguage(s); l != "" {
		return l
	}
	if fallback != "" {
		return fallback
	}
	return "en"
}

// functionWords are frequent words of one language and rare in the
// others: a text with at least two of one language, and more than of any
// other, is in it ("ich möchte mit einem Mitarbeiter sprechen" is German
// whatever the widget's locale says, and its ticket goes to an agent who
// speaks it).
var functionWords = map[string]map[string]bool{
	"en": set("the", "is", "are", "my", "i", "you", "your", "to", "and", "of", "it", "for", "how", "what", "where", "do", "does", "can", "with", "have", "want", "please", "this", "when", "why", "order", "not", "was"),
	"de": set("ich", "der", "die", "das", "und", "ist", "nicht", "mit", "meine", "mein", "meinen", "einem", "einen", "eine", "wie", "wo", "bitte", "sie", "auf", "für", "möchte", "kann", "habe", "bestellung", "warum", "wann", "noch", "keine", "sprechen", "mir"),
	"es": set("el", "los", "las", "que", "y", "es", "mi", "mis", "por", "con", "una", "dónde", "donde", "cómo", "está", "quiero", "puedo", "pedido", "para", "hablar", "tengo", "cuándo", "qué", "gracias", "necesito"),
	"fr": set("le", "les", "des", "et", "est", "je", "mon", "ma", "mes", "pas", "une", "pour", "avec", "où", "comment", "veux", "commande", "vous", "ne", "suis", "j'ai", "quand", "pourquoi", "parler", "merci", "mais", "voudrais"),
}

func set(words ...string) map[string]bool {
	m := make(map[string]bool, len(words))
	for _, w := range words {
		m[w] = true
	}
	return m
}

// latinLanguage names the language of a text in Latin script by its
// function words, or "" when they do not say.
func latinLanguage(s string) string {
	counts := map[string]int{}
	for _, w := range strings.Fields(normalise(s)) {
		for lang, ws := range functionWords {
			if ws[w] {
				counts[lang]++
			}
		}
	}
	best, bestN, secondN := "", 0, 0
	for _, lang := range []string{"en", "de", "es", "fr"} {
		if n := counts[lang]; n > bestN {
			best, bestN, secondN = lang, n, bestN
		} else if n > secondN {
			secondN = n
		}
	}
	if bestN >= 2 && bestN > secondN {
		return best
	}
	return ""
}

// sentimentLexicon scores words from -1 (very negative) to 1.
var sentimentLexicon = map[string]float64{
	"terrible": -0.9, "horrible": -0.9, "awful": -0.9, "worst": -1, "hate": -0.9, "disgusting": -0.9,
	"furious": -1, "angry": -0.8, "outraged": -1, "ridiculous": -0.7, "unacceptable": -0.9,
	"scam": -0.5, "fraud": -0.5, "useless": -0.8, "pathetic": -0.9, "disappointed": -0.6,
	"disappointing": -0.6, "annoyed": -0.5, "frustrated": -0.6, "frustrating": -0.6, "bad": -0.5,
	"poor": -0.4, "broken": -0.4, "never": -0.2, "incompetent": -0.9, "lousy": -0.7, "sucks": -0.8,
	"rubbish": -0.7, "garbage": -0.8, "nightmare": -0.8, "fed": -0.3, "sick": -0.3, "lied": -0.7,
	"good": 0.5, "great": 0.7, "excellent": 0.9, "thanks": 0.4, "thank": 0.4, "love": 0.7,
	"happy": 0.6, "perfect": 0.8, "awesome": 0.8, "helpful": 0.6, "nice": 0.4, "wonderful": 0.8,
	"糟糕": -0.8, "垃圾": -0.9, "生气": -0.8, "愤怒": -1, "失望": -0.6, "太差": -0.8, "骗子": -0.9,
	"谢谢": 0.4, "很好": 0.6,
}

// cjkSentimentTerms are the lexicon's CJK entries, matched as substrings.
var cjkSentimentTerms = func() []string {
	var out []string
	for term := range sentimentLexicon {
		if r, _ := utf8.DecodeRuneInString(term); isCJK(r) {
			out = append(out, term)
		}
	}
	return out
}()

func hasCJK(s string) bool {
	for _, r := range s {
		if r >= 0x2E80 && isCJK(r) {
			return true
		}
	}
	return false
}

// cjkNegations negate the CJK lexicon term they precede.
var cjkNegations = map[rune]bool{'不': true, '没': true, '沒': true, '别': true, '別': true}

var negations = map[string]bool{"not": true, "no": true, "never": true, "isn't": true, "don't": true, "didn't": true, "wasn't": true, "can't": true, "won't": true}
var intensifiers = map[string]float64{"very": 1.5, "so": 1.4, "really": 1.4, "extremely": 1.8, "absolutely": 1.7, "totally": 1.5, "completely": 1.5}

// emojiSentiment scores the emoji that carry a feeling inside a message
// of words ("ok 😡", "still nothing 👎"); normalise drops them, so
// sentiment reads them from the text before it. A message of emoji alone
// reaches sentiment as words (glossEmoji).
var emojiSentiment = map[rune]float64{
	'😡': -1, '🤬': -1, '😠': -0.8, '😤': -0.6, '👎': -0.5, '💩': -0.7, '🖕': -1,
	'😒': -0.4, '🙄': -0.4, '😞': -0.4, '😩': -0.5, '😫': -0.5, '😖': -0.5, '😣': -0.4,
	'👍': 0.4, '🙂': 0.3, '😊': 0.5, '😀': 0.5, '😃': 0.5, '😄': 0.5, '🙏': 0.4, '❤': 0.5, '🥰': 0.6, '😍': 0.6,
}

// sentiment returns a score in [-1, 1] for a message, from its normalised
// words (a small lexicon with negation and intensifiers; CJK terms match
// as substrings) and the emoji of its text (emojiSentiment).
func sentiment(text, normText string) float64 {
	words := strings.Fields(normText)
	var sum float64
	var hits int
	emoji := 0
	for b, r := range text {
		if r < 0x2700 {
			continue
		}
		v, ok := emojiSentiment[r]
		if !ok {
			continue
		}
		// "not 😡" is negated as "not angry" is (the three words before).
		before := strings.Fields(normalise(text[:b]))
		for j := max(0, len(before)-3); j < len(before); j++ {
			if negations[before[j]] {
				v = -v * 0.5
				break
			}
		}
		sum += v
		hits++
		emoji++
	}
	for i, w := range words {
		v, ok := sentimentLexicon[w]
		if !ok || idiom(words, i) {
			continue
		}
		if i > 0 {
			if m, ok := intensifiers[words[i-1]]; ok {
				v *= m
			}
		}
		for j := max(0, i-3); j < i; j++ {
			if negations[words[j]] && w != "never" {
				v = -v * 0.5
				break
			}
		}
		sum += v
		hits++
	}
	if hasCJK(normText) {
		for _, term := range cjkSentimentTerms {
			if i := strings.Index(normText, term); i >= 0 {
				v := sentimentLexicon[term]
				// 不/没/别 right before the term negates it, as "not"
				// does an English word: 我不生气 is "I'm not angry".
				if r, _ := utf8.DecodeLastRuneInString(normText[:i]); cjkNegations[r] {
					v = -v * 0.5
				}
				sum += v
				hits++
			}
		}
	}
	if hits == 0 {
		return 0
	}
	score := sum / float64(hits)
	if hits > 1 {
		score *= 1 + 0.15*float64(min(hits-1, 3))
	}
	if hits == 1 && emoji == 0 && len(words) > 1 && (questionWords[words[0]] || strings.Contains(text, "?")) {
		// One charged word in a question asks about something bad more
		// often than it vents ("what is the worst that can happen if I
		// return late", "how do you protect me against fraud"); an
		// intensified one still counts ("why is your service so terrible").
		// An emoji is a feeling, not a topic: it is not halved. A question
		// later in the message counts too ("I hate these shoes, how do I
		// return them?" asks how to return them).
		score *= 0.5
	}
	return max(-1, min(1, score))
}

// questionWords open a question.
var questionWords = map[string]bool{"what": true, "what's": true, "how": true, "why": true, "when": true, "where": true, "who": true, "which": true,
	"can": true, "could": true, "is": true, "are": true, "do": true, "does": true, "did": true, "will": true, "would": true, "should": true}

// idiom reports whether the lexicon word words[i] is part of a set phrase
// that carries no feeling about the service: "I hate to bother you",
// "worst case", "the worst that can happen".
func idiom(words []string, i int) bool {
	next := func(k int) string {
		if i+k < len(words) {
			return words[i+k]
		}
		return ""
	}
	switch words[i] {
	case "hate":
		return next(1) == "to" && hateTo[next(2)]
	case "worst":
		return next(1) == "case" || next(1) == "that" && (next(2) == "can" || next(2) == "could")
	}
	return false
}

// hateTo are the verbs of "I hate to …" that only soften a request.
var hateTo = map[string]bool{"bother": true, "ask": true, "say": true, "trouble": true, "disturb": true, "be": true, "admit": true, "complain": true}

// emojiWords are the emoji whose meaning as a whole message is plain: a
// customer's "👍" after an answer is "ok" and "👎" "not helpful", not a
// question the bot failed to understand (which would count towards
// escalation); "😡" is "furious", which the sentiment trigger escalates
// as it does the word.
var emojiWords = map[rune]string{
	'👍': "ok", '👌': "ok", '🆗': "ok", '✅': "ok", '✔': "ok", '☑': "ok",
	'🙂': "ok", '😊': "ok", '😀': "ok", '😃': "ok", '😄': "ok", '👏': "ok", '🤝': "ok",
	'🙏': "thanks", '❤': "thanks", '💙': "thanks", '💚': "thanks", '💛': "thanks",
	'💜': "thanks", '🧡': "thanks", '🤍': "thanks", '💯': "thanks", '🥰': "thanks", '😍': "thanks",
	'👎': "not helpful",
	'😡': "furious", '🤬': "furious", '😠': "angry",
}

// glossEmoji returns the words of a message made only of such emoji
// (skin tones, variation selectors, joiners, white space and punctuation
// aside): "👍🏽!" reads "ok", "👍 🙏" "ok thanks". Any other text, and a
// message with any emoji of no plain meaning, is returned as it is.
func glossEmoji(s string) string {
	var words []string
	for _, r := range s {
		switch {
		case r >= 0x1F3FB && r <= 0x1F3FF, r == 0xFE0F, r == 0xFE0E, r == 0x200D: // skin tone, variation selectors, ZWJ
		case unicode.IsSpace(r), unicode.IsPunct(r):
		default:
			w, ok := emojiWords[r]
			if !ok {
				return s
			}
			if len(words) == 0 || words[len(words)-1] != w {
				words = append(words, w)
			}
		}
	}
	if len(words) == 0 {
		return s
	}
	return strings.Join(words, " ")
}

// intentNegators are the words that negate an intent named a few words
// after them in the same clause ("this is not a complaint", "I don't want
// to delete my account"). "can't" and "cannot" are not among them: "why
// can't I delete my account" asks for the deletion.
var intentNegators = map[string]bool{"not": true, "no": true, "never": true, "don't": true, "dont": true, "doesn't": true, "didn't": true,
	"won't": true, "isn't": true, "wasn't": true, "aren't": true, "nor": true, "neither": true}

// negationFiller are the words that may stand between a negator and the
// intent word it negates.
var negationFiller = map[string]bool{"a": true, "an": true, "the": true, "my": true, "this": true, "that": true, "any": true, "to": true,
	"want": true, "wanna": true, "need": true, "wish": true, "like": true, "going": true, "gonna": true, "trying": true, "planning": true,
	"really": true, "even": true, "actually": true, "intend": true, "mean": true, "it": true, "be": true, "for": true}

// inabilityVerbs before "not" make it inability, not refusal: "I can not
// delete my account" asks for the deletion.
var inabilityVerbs = map[string]bool{"can": true, "could": true, "cannot": true}

// negatesIntent reports whether text negates the intent named name: a word
// that starts like one of the name's words (its stem: up to six letters,
// one fewer than the word, for words of four letters or more) follows a
// negator in the same clause with at most four filler words between
// (negationFiller), and no other mention of it is affirmed.
// The configured-intent and human-intent escalations skip a negated
// intent: "this is not a complaint, just a question" is not a complaint.
func negatesIntent(text, name string) bool {
	var keys []string
	for _, part := range strings.FieldsFunc(strings.ToLower(name), func(r rune) bool { return r == '_' || r == '-' || r == ' ' }) {
		if n := utf8.RuneCountInString(part); n >= 4 {
			// A stem: complaint → "compla" (not "complete"), delete →
			// "delet", cancel → "cance", human → "huma".
			keys = append(keys, string([]rune(part)[:min(6, n-1)]))
		}
	}
	if len(keys) == 0 {
		return false
	}
	clauses := strings.FieldsFunc(strings.ToLower(strings.ToValidUTF8(text, "")), func(r rune) bool {
		return r == ',' || r == '.' || r == ';' || r == '!' || r == '?' || r == ':' || r == '\n' || r == '，' || r == '。'
	})
	// Negated only when no mention affirms it: "I do not want to cancel
	// the order, I want to cancel my subscription" cancels.
	negated, affirmed := false, false
	for _, clause := range clauses {
		words := strings.Fields(normalise(clause))
		last := -10 // the clause's last word naming the intent
		for i, w := range words {
			named := false
			for _, k := range keys {
				if strings.HasPrefix(w, k) {
					named = true
					break
				}
			}
			if !named {
				continue
			}
			near := i-last <= 3
			last = i
			if near {
				continue // one mention: "delete my account", "human agent"
			}
			// Back over filler words only: "not a complaint", "don't
			// want to delete", but not "not working so delete it".
			neg := false
			for j := i - 1; j >= max(0, i-4); j-- {
				if intentNegators[words[j]] {
					// "I can not delete my account" asks for it.
					neg = !(words[j] == "not" && j > 0 && inabilityVerbs[words[j-1]])
					break
				}
				if !negationFiller[words[j]] {
					break
				}
			}
			if neg {
				negated = true
			} else {
				affirmed = true
			}
		}
	}
	return negated && !affirmed
}

// greetingOpeners open a greeting; greetingWords may follow them in it.
var (
	greetingOpeners = set("hi", "hello", "hey", "hiya", "heya", "howdy", "greetings", "dear", "good", "hallo", "hola", "bonjour", "salut", "moin", "servus")
	greetingWords   = set("hi", "hello", "hey", "there", "all", "team", "support", "guys", "folks", "everyone", "good", "morning", "afternoon",
		"evening", "day", "dear", "quick", "question", "tag", "guten", "buenos", "buenas", "días", "dias", "tardes")
)

// stripGreeting returns s without a greeting that opens it ("hi there,
// quick question - can I pay with PayPal?") when at least three words of
// a message follow, and how many bytes it cut: the models read the
// question, not the greeting (they answered "Hi! I'm the assistant…" to
// it). A greeting alone, or with less after it, stays.
func stripGreeting(s string) (string, int) {
	cut, words, first := 0, 0, true
	i := 0
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		if !unicode.IsLetter(r) && r != '\'' && r != '\u2019' {
			i += size
			continue
		}
		j := i
		for j < len(s) {
			r, size := utf8.DecodeRuneInString(s[j:])
			if !unicode.IsLetter(r) && r != '\'' && r != '\u2019' {
				break
			}
			j += size
		}
		w := strings.ToLower(s[i:j])
		if first && !greetingOpeners[w] || !first && !greetingWords[w] {
			cut = i
			break
		}
		first = false
		i = j
	}
	if first || cut == 0 {
		return s, 0 // no greeting, or nothing after it
	}
	for _, w := range strings.Fields(s[cut:]) {
		if strings.IndexFunc(w, unicode.IsLetter) >= 0 {
			words++
		}
	}
	if words < 3 {
		return s, 0
	}
	return s[cut:], cut
}
