package rules

import (
	"regexp"
	"strings"
)

// Amount: digits with optional thousands separators and decimals; parsed by
// parseAmount, which decides which separator is the decimal one. Thousands
// may also be grouped by spaces, no-break spaces or narrow no-break spaces
// ("1 234,56 €", French and Nordic style): then every group has 3 digits.
const amt = `(?:\d{1,3}(?:[ \x{a0}\x{202f}]\d{3})+(?:[.,]\d+)?|\d+(?:[.,']\d+)*)`

var (
	reMoneySymBefore = regexp.MustCompile(`(US\$|USD\$|A\$|AU\$|C\$|CA\$|NZ\$|HK\$|S\$|R\$|\$|€|£|¥|₹|₩|₽|₺|₪|CHF)[\s\x{a0}\x{202f}]?(` + amt + `)`)
	reMoneySymAfter  = regexp.MustCompile(`(` + amt + `)[\s\x{a0}\x{202f}]?(€|£|¥|₹|₩|₽|₺|₪|\$|元|块|円)`)
	reMoneyCodeFirst = regexp.MustCompile(`(?i)\b(USD|EUR|GBP|JPY|CHF|CAD|AUD|NZD|INR|CNY|RMB|SEK|NOK|DKK|PLN|CZK|HUF|MXN|BRL|HKD|SGD|KRW|TRY|ZAR|RUB)[\s\x{a0}\x{202f}]?(` + amt + `)`)
	reMoneyCodeAfter = regexp.MustCompile(`(?i)(` + amt + `)[\s\x{a0}\x{202f}]?(USD|EUR|GBP|JPY|CHF|CAD|AUD|NZD|INR|CNY|RMB|SEK|NOK|DKK|PLN|CZK|HUF|MXN|BRL|HKD|SGD|KRW|TRY|ZAR|RUB)\b`)
	reMoneyWords     = regexp.MustCompile(`(?i)(` + amt + `)[\s\x{a0}\x{202f}]*(us dollars?|dollars?|bucks|euros?|eur|pounds? sterling|pounds?|quid|yen|cents?|pence|p\b|francs?|rupees?|yuan|renminbi|kronor|kroner|zloty)\b`)
)

var symbolCurrency = map[string]string{
	"US$": "USD", "USD$": "USD", "A$": "AUD", "AU$": "AUD", "C$": "CAD", "CA$": "CAD", "NZ$": "NZD",
	"HK$": "HKD", "S$": "SGD", "R$": "BRL", "€": "EUR", "£": "GBP", "¥": "JPY", "₹": "INR",
	"₩": "KRW", "₽": "RUB", "₺": "TRY", "₪": "ILS", "CHF": "CHF", "元": "CNY", "块": "CNY", "円": "JPY",
}

var wordCurrency = map[string]string{
	"us dollar": "USD", "us dollars": "USD", "dollar": "$", "dollars": "$", "bucks": "$",
	"euro": "EUR", "euros": "EUR", "eur": "EUR", "pound sterling": "GBP", "pounds sterling": "GBP",
	"pound": "GBP", "pounds": "GBP", "quid": "GBP", "yen": "JPY", "franc": "CHF", "francs": "CHF",
	"rupee": "INR", "rupees": "INR", "yuan": "CNY", "renminbi": "CNY", "kronor": "SEK", "kroner": "NOK",
	"zloty": "PLN",
}

// minorDigits is the number of decimals of a currency's minor unit where
// it is not 2.
var minorDigits = map[string]int{"JPY": 0, "KRW": 0, "HUF": 0}

func (e *Extractor) money(s string, h *hints, cs []candidate) []candidate {
	add := func(st, en int, num, cur string, div int) {
		if st > 0 && (isAlnum(s[st-1]) || s[st-1] == '.' || s[st-1] == ',') && !strings.HasPrefix(s[st:en], "$") && s[st] >= '0' && s[st] <= '9' {
			return // inside a longer number or word
		}
		if en < len(s) && isAlnum(s[en]) {
			return // "$5k", "€2m": the amount goes on (a magnitude the rules do not read)
		}
		minor, ok := parseAmount(num)
		if !ok {
			return
		}
		switch cur {
		case "$":
			cur = e.dollar
		case "RMB":
			cur = "CNY"
		}
		cur = strings.ToUpper(cur)
		cs = append(cs, candidate{start: st, end: en, typ: TypeMoney, value: formatMoney(minor, div, cur), source: SourceRule, prio: prioMoney})
	}
	if !h.digits {
		return cs
	}
	for _, m := range find(reMoneySymBefore, s, h.currencySymbol || h.has("chf")) {
		sym := s[m[2]:m[3]]
		cur := symbolCurrency[sym]
		if sym == "$" {
			cur = "$"
		}
		add(m[0], m[1], s[m[4]:m[5]], cur, 1)
	}
	for _, m := range find(reMoneySymAfter, s, h.currencySymbol) {
		sym := s[m[4]:m[5]]
		cur := symbolCurrency[sym]
		if sym == "$" {
			cur = "$"
		}
		add(m[0], m[1], s[m[2]:m[3]], cur, 1)
	}
	for _, m := range find(reMoneyCodeFirst, s, h.code) {
		add(m[0], m[1], s[m[4]:m[5]], s[m[2]:m[3]], 1)
	}
	for _, m := range find(reMoneyCodeAfter, s, h.code) {
		add(m[0], m[1], s[m[2]:m[3]], s[m[4]:m[5]], 1)
	}
	for _, m := range find(reMoneyWords, s, true) {
		w := strings.ToLower(strings.Join(strings.Fields(s[m[4]:m[5]]), " "))
		switch w {
		case "cent", "cents":
			add(m[0], m[1], s[m[2]:m[3]], "$", 100)
		case "pence", "p":
			add(m[0], m[1], s[m[2]:m[3]], "GBP", 100)
		default:
			add(m[0], m[1], s[m[2]:m[3]], wordCurrency[w], 1)
		}
	}
	return cs
}

// parseAmount parses an amount with thousands and decimal separators into
// hundredths. When both '.' and ',' occur, the last one is the decimal
// separator; a single separator followed by exactly three digits is a
// thousands separator; otherwise a single separator is decimal. An
// apostrophe (Swiss style) or a space (French style, also no-break) is
// always a thousands separator.
func parseAmount(num string) (hundredths int64, ok bool) {
	num = strings.NewReplacer("'", "", " ", "", "\u00a0", "", "\u202f", "").Replace(num)
	lastDot, lastComma := strings.LastIndexByte(num, '.'), strings.LastIndexByte(num, ',')
	dec := -1
	switch {
	case lastDot >= 0 && lastComma >= 0:
		dec = max(lastDot, lastComma)
	case lastDot >= 0 || lastComma >= 0:
		sep := byte('.')
		p := lastDot
		if lastComma >= 0 {
			sep, p = ',', lastComma
		}
		if strings.Count(num, string(sep)) == 1 && len(num)-p-1 != 3 {
			dec = p
		}
	}
	intPart, frac := num, ""
	if dec >= 0 {
		intPart, frac = num[:dec], num[dec+1:]
		if len(frac) > 2 || strings.ContainsAny(frac, ".,") {
			return 0, false
		}
	}
	// Thousands groups must be well formed: 1-3 digits, then groups of 3.
	groups := strings.FieldsFunc(intPart, func(r rune) bool { return r == '.' || r == ',' })
	if len(groups) == 0 {
		return 0, false
	}
	for i, g := range groups {
		if i > 0 && len(g) != 3 || i == 0 && len(groups) > 1 && len(g) > 3 {
			return 0, false
		}
	}
	digits := strings.Join(groups, "")
	digits = strings.TrimLeft(digits, "0")
	if len(digits) > 15 {
		return 0, false
	}
	var v int64
	for i := 0; i < len(digits); i++ {
		v = v*10 + int64(digits[i]-'0')
	}
	v *= 100
	switch len(frac) {
	case 1:
		v += int64(frac[0]-'0') * 10
	case 2:
		v += int64(frac[0]-'0')*10 + int64(frac[1]-'0')
	}
	return v, true
}

// formatMoney formats hundredths/div in the currency's minor unit, e.g.
// "12.50 USD", "100 JPY".
func formatMoney(hundredths int64, div int, cur string) string {
	// value in units of 1/(100*div)
	scale := int64(100 * div)
	whole := hundredths / scale
	rem := hundredths % scale
	digits := 2
	if d, ok := minorDigits[cur]; ok {
		digits = d
	}
	// Fraction with `digits` decimals (rounded half up).
	pow := int64(1)
	for i := 0; i < digits; i++ {
		pow *= 10
	}
	frac := (rem*pow*2 + scale) / (2 * scale)
	if frac >= pow {
		whole++
		frac -= pow
	}
	var b strings.Builder
	b.WriteString(itoa(whole))
	if digits > 0 {
		b.WriteByte('.')
		f := itoa(frac)
		for i := len(f); i < digits; i++ {
			b.WriteByte('0')
		}
		b.WriteString(f)
	}
	b.WriteByte(' ')
	b.WriteString(cur)
	return b.String()
}

func itoa(v int64) string {
	if v == 0 {
		return "0"
	}
	var buf [20]byte
	i := len(buf)
	for v > 0 {
		i--
		buf[i] = byte('0' + v%10)
		v /= 10
	}
	return string(buf[i:])
}
