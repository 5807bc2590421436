package rules

import (
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
)

const (
	reMonth = `(january|jan|february|feb|march|mar|april|apr|may|june|jun|july|jul|august|aug|september|sept|sep|october|oct|november|nov|december|dec)`
	reNum   = `(\d{1,3}|a|an|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|ninety|a\s+couple\s+of|couple\s+of|a\s+couple)`
	reUnit  = `(minutes?|mins?|hours?|hrs?|days?|weeks?|fortnights?|months?|years?)`
)

var (
	reDayMonth = regexp.MustCompile(`(?i)\b(?:on\s+)?(?:the\s+)?(\d{1,2})(?:st|nd|rd|th)?(?:\s+of)?\s+` + reMonth + `\b\.?(?:,?\s+(\d{4})\b)?`)
	reMonthDay = regexp.MustCompile(`(?i)\b(?:on\s+)?` + reMonth + `\b\.?\s+(?:the\s+)?(\d{1,2})(?:st|nd|rd|th)?\b(?:,?\s+(\d{4})\b)?`)
	reISODate  = regexp.MustCompile(`\b(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?([Zz]|[+-]\d{2}:?\d{2})?)?\b`)
	reSlash    = regexp.MustCompile(`\b(\d{1,2})/(\d{1,2})(?:/(\d{4}|\d{2}))?\b`)
	reDotted   = regexp.MustCompile(`\b(\d{1,2})\.(\d{1,2})\.(\d{4}|\d{2})\b`)
	reRelDay   = regexp.MustCompile(`(?i)\b(today|tonight|tomorrow|tmrw|yesterday|(?:the\s+)?day\s+after\s+tomorrow|(?:the\s+)?day\s+before\s+yesterday)\b`)
	reWeekday  = regexp.MustCompile(`(?i)\b(?:(next|last|this|coming|on|past|previous)\s+)?(monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b`)
	reInOffset = regexp.MustCompile(`(?i)\b(?:in|within|after)\s+` + reNum + `\s+` + reUnit + `\b`)
	reAgo      = regexp.MustCompile(`(?i)\b` + reNum + `\s+` + reUnit + `\s+(ago|from\s+now|later|before|earlier)\b`)
	rePeriod   = regexp.MustCompile(`(?i)\b(last|this|next|past|previous|coming|the)\s+(week|month|year|weekend)\b`)
	reAMPM     = regexp.MustCompile(`(?i)\b(?:at\s+)?(\d{1,2})(?:[:.](\d{2}))?\s*(a\.m\.|p\.m\.|am\b|pm\b)`)
	reTime24   = regexp.MustCompile(`\b(?:at\s+)?([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?\b`)
	reAtHour   = regexp.MustCompile(`(?i)\b(?:at|@)\s+(\d{1,2})(?:\s*o'?clock)?\b|\b(\d{1,2})\s*o'?clock\b`)
	reNamedT   = regexp.MustCompile(`(?i)\b(?:at\s+)?(noon|midday|midnight)\b`)
	reJoinDT   = regexp.MustCompile(`(?i)^(?:\s*,?\s*(?:at|@|around)?\s*|\s+)$`)
	reJoinTD   = regexp.MustCompile(`(?i)^\s+(?:on\s+)?$`)
)

var monthNum = map[string]time.Month{
	"january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "mar": 3, "april": 4, "apr": 4,
	"may": 5, "june": 6, "jun": 6, "july": 7, "jul": 7, "august": 8, "aug": 8, "september": 9,
	"sept": 9, "sep": 9, "october": 10, "oct": 10, "november": 11, "nov": 11, "december": 12, "dec": 12,
}

var numWords = map[string]int{
	"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
	"eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
	"fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20,
	"thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "ninety": 90,
	"a couple of": 2, "couple of": 2, "a couple": 2,
}

var weekdays = map[string]time.Weekday{
	"sunday": time.Sunday, "monday": time.Monday, "tuesday": time.Tuesday, "wednesday": time.Wednesday,
	"thursday": time.Thursday, "friday": time.Friday, "saturday": time.Saturday,
}

// temporal is a date/time match before it becomes a candidate.
type temporal struct {
	st, en  int
	kind    int       // tDate, tRange, tTime, tDateTime
	day     time.Time // tDate, tDateTime (date part / full instant), tRange start
	last    time.Time // tRange end (inclusive)
	h, m, s int       // tTime
	tonight bool      // "tonight": a following bare hour reads as pm
}

const (
	tDate = iota
	tRange
	tTime
	tDateTime
)

// trimLead moves st past leading "on ", "at ", "@", "the " (the cue words
// are not part of the entity).
func trimLead(s string, st, en int) int {
	for {
		rest := strings.ToLower(s[st:en])
		moved := false
		for _, p := range []string{"on", "at", "the", "@"} {
			if strings.HasPrefix(rest, p) {
				k := len(p)
				j := k
				for j < len(rest) && (rest[j] == ' ' || rest[j] == '\t' || rest[j] == '\n') {
					j++
				}
				if (j > k || p == "@") && j < len(rest) {
					st += j
					moved = true
					break
				}
			}
		}
		if !moved {
			return st
		}
	}
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return n
}

// midnight returns t's calendar date. Dates are held at noon, not at
// 00:00: where daylight saving time starts at midnight (America/Santiago,
// America/Havana) 00:00 does not exist on that day and time.Date moves it
// to 23:00 of the day before, which made "today" yesterday and "tomorrow"
// today. Only the date of these values is ever used.
func midnight(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, dateHour, 0, 0, 0, t.Location())
}

// dateHour is the wall-clock hour at which calendar dates are held (see
// midnight).
const dateHour = 12

// mkDate returns the date if it exists.
func mkDate(y int, m time.Month, d int, loc *time.Location) (time.Time, bool) {
	if m < 1 || m > 12 || d < 1 || d > 31 || y < 1 || y > 9999 {
		return time.Time{}, false
	}
	t := time.Date(y, m, d, dateHour, 0, 0, 0, loc)
	if t.Day() != d || t.Month() != m {
		return time.Time{}, false
	}
	return t, true
}

// nearestYear picks the year that puts day/month nearest to ref.
func nearestYear(m time.Month, d int, ref time.Time) (time.Time, bool) {
	base := midnight(ref)
	var best time.Time
	found := false
	for _, y := range []int{ref.Year() - 1, ref.Year(), ref.Year() + 1} {
		t, ok := mkDate(y, m, d, ref.Location())
		if !ok {
			continue
		}
		if !found || absDur(t.Sub(base)) < absDur(best.Sub(base)) {
			best, found = t, true
		}
	}
	return best, found
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

func year(s string) int {
	y := atoi(s)
	if len(s) == 2 {
		if y < 70 {
			return 2000 + y
		}
		return 1900 + y
	}
	return y
}

func (e *Extractor) dates(s string, h *hints, ref time.Time, cs []candidate) []candidate {
	if ref.IsZero() {
		ref = time.Now()
	}
	loc := ref.Location()
	today := midnight(ref)
	var ts []temporal
	addDate := func(st, en int, t time.Time) {
		ts = append(ts, temporal{st: trimLead(s, st, en), en: en, kind: tDate, day: t})
	}
	for _, m := range find(reDayMonth, s, h.digits && h.month) {
		d, mon := atoi(s[m[2]:m[3]]), monthNum[strings.ToLower(s[m[4]:m[5]])]
		var t time.Time
		var ok bool
		en := m[1]
		if m[6] >= 0 && m[7] < len(s) && (s[m[7]] == '-' || s[m[7]] == '/' || s[m[7]] == ':') {
			m[6], en = -1, m[5] // the "year" starts another expression (2026-11-22)
		}
		if m[6] >= 0 {
			t, ok = mkDate(atoi(s[m[6]:m[7]]), mon, d, loc)
		} else {
			t, ok = nearestYear(mon, d, ref)
		}
		if ok {
			addDate(m[0], en, t)
		}
	}
	for _, m := range find(reMonthDay, s, h.digits && h.month) {
		mon, d := monthNum[strings.ToLower(s[m[2]:m[3]])], atoi(s[m[4]:m[5]])
		var t time.Time
		var ok bool
		en := m[1]
		if m[6] >= 0 && m[7] < len(s) && (s[m[7]] == '-' || s[m[7]] == '/' || s[m[7]] == ':') {
			m[6], en = -1, m[5] // the "year" starts another expression (2026-11-22)
		}
		if m[6] >= 0 {
			t, ok = mkDate(atoi(s[m[6]:m[7]]), mon, d, loc)
		} else {
			t, ok = nearestYear(mon, d, ref)
		}
		if ok {
			addDate(m[0], en, t)
		}
	}
	for _, m := range find(reISODate, s, h.digits && h.has("-")) {
		t, ok := mkDate(atoi(s[m[2]:m[3]]), time.Month(atoi(s[m[4]:m[5]])), atoi(s[m[6]:m[7]]), loc)
		if !ok {
			continue
		}
		if m[8] >= 0 {
			h, mi, sec := atoi(s[m[8]:m[9]]), atoi(s[m[10]:m[11]]), 0
			if m[12] >= 0 {
				sec = atoi(s[m[12]:m[13]])
			}
			if h <= 23 && mi <= 59 && sec <= 59 {
				at := atClock(t, h, mi, sec)
				en := m[1]
				if m[14] >= 0 && s[m[14]] != 'Z' && s[m[14]] != 'z' && s[m[7]] == ' ' && m[12] < 0 {
					// "2026-11-22 10:30-11:30" is a range of times, not an
					// offset (which needs the T or seconds).
					m[14], en = -1, m[14]
				}
				if m[14] >= 0 { // an explicit UTC offset: that instant, shown in ref's zone
					off, ok := isoOffset(s[m[14]:m[15]])
					if !ok {
						continue
					}
					y, mo, d := t.Date()
					at = time.Date(y, mo, d, h, mi, sec, 0, time.FixedZone("", off)).In(loc)
				}
				ts = append(ts, temporal{st: m[0], en: en, kind: tDateTime, day: at})
				continue
			}
		}
		ts = append(ts, temporal{st: m[0], en: m[7], kind: tDate, day: t})
	}
	for _, m := range find(reSlash, s, h.digits && h.has("/")) {
		if m[0] > 0 && (s[m[0]-1] == '/' || s[m[0]-1] == '.' || isDigit(s[m[0]-1])) || m[1] < len(s) && s[m[1]] == '/' {
			continue
		}
		if m[6] < 0 && (s[m[2]:m[5]] == "24/7" || fractionOf(s[m[1]:])) { // "open 24/7": round the clock, not 24 July; "3/4 of my order": a share
			continue
		}
		a, b := atoi(s[m[2]:m[3]]), atoi(s[m[4]:m[5]])
		d, mon := a, b
		if e.mdy {
			d, mon = b, a
		}
		var t time.Time
		var ok bool
		if m[6] >= 0 {
			t, ok = mkDate(year(s[m[6]:m[7]]), time.Month(mon), d, loc)
		} else {
			t, ok = nearestYear(time.Month(mon), d, ref)
		}
		if ok {
			addDate(m[0], m[1], t)
		}
	}
	for _, m := range find(reDotted, s, h.digits && h.has(".")) {
		if m[0] > 0 && (s[m[0]-1] == '.' || isDigit(s[m[0]-1])) || m[1] < len(s) && s[m[1]] == '.' && m[1]+1 < len(s) && isDigit(s[m[1]+1]) {
			continue
		}
		if t, ok := mkDate(year(s[m[6]:m[7]]), time.Month(atoi(s[m[4]:m[5]])), atoi(s[m[2]:m[3]]), loc); ok {
			addDate(m[0], m[1], t)
		}
	}
	for _, m := range find(reRelDay, s, h.any("today", "tonight", "tomorrow", "tmrw", "yesterday")) {
		w := strings.Join(strings.Fields(strings.ToLower(s[m[2]:m[3]])), " ")
		w = strings.TrimPrefix(w, "the ")
		off := 0
		switch w {
		case "tomorrow", "tmrw":
			off = 1
		case "yesterday":
			off = -1
		case "day after tomorrow":
			off = 2
		case "day before yesterday":
			off = -2
		}
		ts = append(ts, temporal{st: trimLead(s, m[0], m[1]), en: m[1], kind: tDate, day: today.AddDate(0, 0, off), tonight: w == "tonight"})
	}
	for _, m := range find(reWeekday, s, h.has("day")) {
		q := ""
		if m[2] >= 0 {
			q = strings.ToLower(s[m[2]:m[3]])
		}
		wd := weekdays[strings.ToLower(s[m[4]:m[5]])]
		ahead := (int(wd) - int(ref.Weekday()) + 7) % 7
		var t time.Time
		switch q {
		case "next":
			if ahead == 0 {
				ahead = 7
			}
			t = today.AddDate(0, 0, ahead)
		case "last", "past", "previous":
			back := (int(ref.Weekday()) - int(wd) + 7) % 7
			if back == 0 {
				back = 7
			}
			t = today.AddDate(0, 0, -back)
		default: // "", this, coming, on
			if q == "coming" && ahead == 0 {
				ahead = 7
			}
			t = today.AddDate(0, 0, ahead)
			if (q == "" || q == "on") && pastClause(s, m[0], m[1]) {
				// "I paid on Monday and nothing happened": the Monday
				// that has been, not the next one.
				t = today.AddDate(0, 0, -((int(ref.Weekday()) - int(wd) + 7) % 7))
			}
		}
		addDate(m[0], m[1], t)
	}
	offset := func(st, en int, num, unit string, sign int) {
		n, ok := numWords[strings.Join(strings.Fields(strings.ToLower(num)), " ")]
		if !ok {
			n = atoi(num)
		}
		if n < 0 || n > 999 {
			return
		}
		n *= sign
		u := strings.ToLower(unit)
		switch {
		case strings.HasPrefix(u, "min"):
			ts = append(ts, temporal{st: st, en: en, kind: tDateTime, day: ref.Add(time.Duration(n) * time.Minute).Truncate(time.Minute)})
		case strings.HasPrefix(u, "h"):
			ts = append(ts, temporal{st: st, en: en, kind: tDateTime, day: ref.Add(time.Duration(n) * time.Hour).Truncate(time.Minute)})
		case strings.HasPrefix(u, "day"):
			ts = append(ts, temporal{st: st, en: en, kind: tDate, day: today.AddDate(0, 0, n)})
		case strings.HasPrefix(u, "week"):
			ts = append(ts, temporal{st: st, en: en, kind: tDate, day: today.AddDate(0, 0, 7*n)})
		case strings.HasPrefix(u, "fortnight"):
			ts = append(ts, temporal{st: st, en: en, kind: tDate, day: today.AddDate(0, 0, 14*n)})
		case strings.HasPrefix(u, "month"):
			ts = append(ts, temporal{st: st, en: en, kind: tDate, day: addMonths(today, n)})
		case strings.HasPrefix(u, "year"):
			ts = append(ts, temporal{st: st, en: en, kind: tDate, day: addMonths(today, 12*n)})
		}
	}
	for _, m := range find(reInOffset, s, h.unit && h.any("in", "within", "after")) {
		offset(m[0], m[1], s[m[2]:m[3]], s[m[4]:m[5]], 1)
	}
	for _, m := range find(reAgo, s, h.unit && h.any("ago", "from now", "later", "before", "earlier")) {
		sign := 1
		switch strings.ToLower(s[m[6]:m[7]]) {
		case "ago", "before", "earlier":
			sign = -1
		}
		offset(m[0], m[1], s[m[2]:m[3]], s[m[4]:m[5]], sign)
	}
	for _, m := range find(rePeriod, s, h.any("week", "month", "year")) {
		q, unit := strings.ToLower(s[m[2]:m[3]]), strings.ToLower(s[m[4]:m[5]])
		if q == "the" && unit != "weekend" {
			continue
		}
		dir := 0
		switch q {
		case "last", "past", "previous":
			dir = -1
		case "next", "coming":
			dir = 1
		}
		var from, to time.Time
		switch unit {
		case "week":
			monday := today.AddDate(0, 0, -((int(ref.Weekday()) + 6) % 7))
			from = monday.AddDate(0, 0, 7*dir)
			to = from.AddDate(0, 0, 6)
		case "weekend":
			sat := today.AddDate(0, 0, (int(time.Saturday)-int(ref.Weekday())+7)%7)
			if ref.Weekday() == time.Sunday {
				sat = today.AddDate(0, 0, -1) // "this weekend" on a Sunday is the current one
			}
			from = sat.AddDate(0, 0, 7*dir)
			to = from.AddDate(0, 0, 1)
		case "month":
			first := time.Date(ref.Year(), ref.Month(), 1, dateHour, 0, 0, 0, loc)
			from = first.AddDate(0, dir, 0)
			to = from.AddDate(0, 1, -1)
		case "year":
			from = time.Date(ref.Year()+dir, 1, 1, dateHour, 0, 0, 0, loc)
			to = time.Date(ref.Year()+dir, 12, 31, dateHour, 0, 0, 0, loc)
		}
		st := m[0]
		if q == "the" {
			st = m[4]
		}
		ts = append(ts, temporal{st: st, en: m[1], kind: tRange, day: from, last: to})
	}
	// Times of day.
	for _, m := range find(reAMPM, s, h.digits && h.any("am", "pm", "a.m", "p.m")) {
		if m[0] > 0 && (isDigit(s[m[0]-1]) || s[m[0]-1] == '.' || s[m[0]-1] == ':' || s[m[0]-1] == '$') {
			continue
		}
		h, mi := atoi(s[m[2]:m[3]]), 0
		if m[4] >= 0 {
			mi = atoi(s[m[4]:m[5]])
		}
		if h < 1 || h > 12 || mi > 59 {
			continue
		}
		pm := strings.HasPrefix(strings.ToLower(s[m[6]:m[7]]), "p")
		h %= 12
		if pm {
			h += 12
		}
		ts = append(ts, temporal{st: trimLead(s, m[0], m[1]), en: m[1], kind: tTime, h: h, m: mi})
	}
	for _, m := range find(reTime24, s, h.digits && h.has(":")) {
		if m[0] > 0 && (isDigit(s[m[0]-1]) || s[m[0]-1] == ':' || s[m[0]-1] == '.') || m[1] < len(s) && s[m[1]] == ':' {
			continue
		}
		sec := 0
		if m[6] >= 0 {
			sec = atoi(s[m[6]:m[7]])
		}
		ts = append(ts, temporal{st: trimLead(s, m[0], m[1]), en: m[1], kind: tTime, h: atoi(s[m[2]:m[3]]), m: atoi(s[m[4]:m[5]]), s: sec})
	}
	for _, m := range find(reAtHour, s, h.digits && h.any("at", "@", "clock")) {
		g := 2
		if m[2] < 0 {
			g = 4
		}
		if m[1] < len(s) && (s[m[1]] == ':' || s[m[1]] == '/' || s[m[1]] == '.' && m[1]+1 < len(s) && isDigit(s[m[1]+1]) || s[m[1]] == '%') {
			continue
		}
		h := atoi(s[m[g]:m[g+1]])
		if h > 23 {
			continue
		}
		if h >= 1 && h <= 7 {
			h += 12
		}
		ts = append(ts, temporal{st: trimLead(s, m[0], m[1]), en: m[1], kind: tTime, h: h})
	}
	for _, m := range find(reNamedT, s, h.any("noon", "midday", "midnight")) {
		h := 12
		if strings.EqualFold(s[m[2]:m[3]], "midnight") {
			h = 0
		}
		ts = append(ts, temporal{st: trimLead(s, m[0], m[1]), en: m[1], kind: tTime, h: h})
	}
	// Date + time (either order) -> datetime. Only short gaps can join, so
	// the pairs are found through maps keyed by the offsets near each end.
	n := len(ts)
	timesByStart := map[int][]int{}
	timesByEnd := map[int][]int{}
	for j := 0; j < n; j++ {
		if ts[j].kind == tTime {
			timesByStart[ts[j].st] = append(timesByStart[ts[j].st], j)
			timesByEnd[ts[j].en] = append(timesByEnd[ts[j].en], j)
		}
	}
	const maxGap = 12 // bytes between the parts: " at ", ", ", " on "
	for i := 0; i < n; i++ {
		d := ts[i]
		if d.kind != tDate {
			continue
		}
		join := func(t temporal, st, en int) {
			h, day := t.h, d.day
			if d.tonight && h < 12 && h >= 1 {
				h += 12
			} else if d.tonight && h == 12 {
				h = 0 // "tonight at 12": midnight, not noon
			}
			if d.tonight && h == 0 {
				// "midnight tonight", "tonight at 12am": the midnight that
				// ends today, not the one that began it.
				day = addDays(day, 1)
			}
			at := atClock(day, h, t.m, t.s)
			ts = append(ts, temporal{st: st, en: en, kind: tDateTime, day: at})
		}
		for g := 0; g <= maxGap && d.en+g <= len(s); g++ {
			for _, j := range timesByStart[d.en+g] {
				if reJoinDT.MatchString(s[d.en : d.en+g]) {
					join(ts[j], d.st, ts[j].en)
				}
			}
		}
		for g := 0; g <= maxGap && d.st-g >= 0; g++ {
			for _, j := range timesByEnd[d.st-g] {
				if reJoinTD.MatchString(s[d.st-g : d.st]) {
					join(ts[j], ts[j].st, d.en)
				}
			}
		}
	}
	for _, t := range ts {
		if t.en <= t.st {
			continue
		}
		c := candidate{start: t.st, end: t.en, source: SourceRule, prio: prioDate}
		switch t.kind {
		case tDate:
			c.typ, c.value = TypeDate, t.day.Format("2006-01-02")
		case tRange:
			c.typ, c.value = TypeDate, t.day.Format("2006-01-02")+"/"+t.last.Format("2006-01-02")
		case tTime:
			if t.s != 0 {
				c.typ, c.value = TypeTime, twoDigits(t.h)+":"+twoDigits(t.m)+":"+twoDigits(t.s)
			} else {
				c.typ, c.value = TypeTime, twoDigits(t.h)+":"+twoDigits(t.m)
			}
		case tDateTime:
			c.typ, c.value, c.prio = TypeDateTime, t.day.Format(time.RFC3339), prioDateTime
		}
		if !e.enabled[c.typ] {
			continue
		}
		cs = append(cs, c)
	}
	return cs
}

func twoDigits(n int) string {
	if n < 10 {
		return "0" + strconv.Itoa(n)
	}
	return strconv.Itoa(n)
}

// addMonths moves day by n calendar months, keeping the day of the month
// but clamping it to the target month's last day: "in a month" on 31
// January is 28 (or 29) February, not 3 March as time.AddDate normalises
// it, and "in a year" on 29 February is 28 February.
func addMonths(day time.Time, n int) time.Time {
	y, m, d := day.Date()
	first := time.Date(y, m+time.Month(n), 1, dateHour, 0, 0, 0, day.Location())
	if last := first.AddDate(0, 1, -1).Day(); d > last {
		d = last
	}
	return time.Date(first.Year(), first.Month(), d, dateHour, 0, 0, 0, day.Location())
}

// isoOffset parses an ISO 8601 UTC offset ("Z", "+02:00", "-0530") into
// seconds east of UTC.
func isoOffset(z string) (int, bool) {
	if z == "Z" || z == "z" {
		return 0, true
	}
	sign := 1
	if z[0] == '-' {
		sign = -1
	}
	digits := strings.ReplaceAll(z[1:], ":", "")
	hh, mm := atoi(digits[:2]), atoi(digits[2:])
	if hh > 14 || mm > 59 {
		return 0, false
	}
	return sign * (hh*3600 + mm*60), true
}

// addDays moves a date by n calendar days.
func addDays(day time.Time, n int) time.Time {
	y, m, d := day.Date()
	return time.Date(y, m, d+n, dateHour, 0, 0, 0, day.Location())
}

// atClock is the wall-clock time h:m:s on day's date in day's location.
// (Adding hours to midnight would be an hour off on the days daylight
// saving time starts or ends.)
//
// A time that does not exist on that day (skipped when daylight saving
// time starts: 02:30 on the spring-forward night in New York) is moved
// forward by the gap, to 03:30 — not back to 01:30, which is where
// time.Date puts it.
func atClock(day time.Time, h, m, s int) time.Time {
	y, mo, d := day.Date()
	loc := day.Location()
	t := time.Date(y, mo, d, h, m, s, 0, loc)
	if t.Hour() == h && t.Minute() == m && t.Second() == s {
		return t
	}
	_, before := t.Add(-12 * time.Hour).Zone() // the offset before the gap
	return time.Date(y, mo, d, h, m, s, 0, time.UTC).Add(-time.Duration(before) * time.Second).In(loc)
}

// fractionOf reports whether rest (the text after a day/month without a
// year) goes on with the word "of": "3/4 of my order" is a share of it.
func fractionOf(rest string) bool {
	if rest == "" || !unicode.IsSpace(rune(rest[0])) {
		return false
	}
	f := strings.Fields(rest)
	return len(f) > 0 && strings.EqualFold(f[0], "of")
}

// pastCues and futureCues are the words that put a clause in the past or
// the future, for a bare weekday in it.
var (
	pastCues = map[string]bool{"was": true, "were": true, "did": true, "had": true, "ago": true, "paid": true, "ordered": true, "placed": true,
		"bought": true, "purchased": true, "sent": true, "shipped": true, "received": true, "arrived": true, "delivered": true, "returned": true,
		"charged": true, "got": true, "made": true, "called": true, "emailed": true, "contacted": true, "tried": true, "submitted": true,
		"cancelled": true, "canceled": true, "refunded": true, "happened": true, "came": true, "wrote": true, "spoke": true, "told": true}
	futureCues = map[string]bool{"will": true, "won't": true, "wont": true, "gonna": true, "going": true, "should": true, "can": true,
		"could": true, "would": true, "tomorrow": true, "next": true, "until": true, "by": true, "before": true}
)

// pastClause reports whether the clause around s[st:en] (up to the nearest
// . , ; ! ? on either side) speaks of the past: a past cue and no future
// cue among its words.
func pastClause(s string, st, en int) bool {
	a := strings.LastIndexAny(s[:st], ".,;!?") + 1
	b := len(s)
	if i := strings.IndexAny(s[en:], ".,;!?"); i >= 0 {
		b = en + i
	}
	past := false
	for _, w := range strings.Fields(strings.ToLower(s[a:b])) {
		w = strings.Trim(w, "\"'()")
		if futureCues[w] {
			return false
		}
		past = past || pastCues[w]
	}
	return past
}
