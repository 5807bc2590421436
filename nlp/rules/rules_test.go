package rules

import (
	"fmt"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // America/New_York on a machine without a zone database
	"unicode/utf8"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/nlp/data"
)

// ref is Wednesday 4 March 2026, 10:00 at UTC+1.
var ref = time.Date(2026, 3, 4, 10, 0, 0, 0, time.FixedZone("CET", 3600))

// want is "type:text=value" for each entity, in order.
func summary(es []tandem.Entity) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = fmt.Sprintf("%s:%s=%s", e.Type, e.Text, e.Value)
	}
	return out
}

func check(t *testing.T, x *Extractor, in string, want ...string) {
	t.Helper()
	got := x.Extract(in, ref)
	if strings.Join(summary(got), " | ") != strings.Join(want, " | ") {
		t.Errorf("Extract(%q)\n got: %q\nwant: %q", in, summary(got), want)
	}
	checkOffsets(t, in, got)
}

func checkOffsets(t *testing.T, in string, es []tandem.Entity) {
	t.Helper()
	rs := []rune(in)
	prevEnd := 0
	for _, e := range es {
		if e.Start < prevEnd || e.End <= e.Start || e.End > len(rs) {
			t.Fatalf("Extract(%q): bad or overlapping offsets %+v", in, e)
		}
		if got := string(rs[e.Start:e.End]); got != e.Text {
			t.Fatalf("Extract(%q): Text %q but runes [%d,%d) are %q", in, e.Text, e.Start, e.End, got)
		}
		if e.Source != SourceRule && e.Source != SourceLookup {
			t.Fatalf("Extract(%q): source %q", in, e.Source)
		}
		prevEnd = e.End
	}
}

func TestEmailURL(t *testing.T) {
	x := Default()
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"mail me at Jane.Doe@Example.COM please", []string{"email:Jane.Doe@Example.COM=jane.doe@example.com"}},
		{"a+b@mail.co.uk.", []string{"email:a+b@mail.co.uk=a+b@mail.co.uk"}},
		{"not an email: foo@bar", nil},
		{"see www.example.com/a?b=1.", []string{"url:www.example.com/a?b=1=http://www.example.com/a?b=1"}},
		{"(https://Shop.Example.org/x)", []string{"url:https://Shop.Example.org/x=https://shop.example.org/x"}},
		{"go to example.com now", []string{"url:example.com=http://example.com"}},
		{"HTTP://EXAMPLE.COM/Path", []string{"url:HTTP://EXAMPLE.COM/Path=http://example.com/Path"}},
	} {
		check(t, x, c.in, c.want...)
	}
}

func TestPhone(t *testing.T) {
	x := Default()
	cc, err := New(Config{DefaultCountryCode: "44"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		x    *Extractor
		in   string
		want []string
	}{
		{x, "call +44 20 7946 0958 now", []string{"phone:+44 20 7946 0958=+442079460958"}},
		{x, "call +1 (415) 555-2671", []string{"phone:+1 (415) 555-2671=+14155552671"}},
		{x, "my number is (415) 555-2671", []string{"phone:(415) 555-2671=4155552671"}},
		{x, "415-555-2671", []string{"phone:415-555-2671=4155552671"}},
		{x, "0044 20 7946 0958", []string{"phone:0044 20 7946 0958=+442079460958"}},
		{x, "07911123456", []string{"phone:07911123456=07911123456"}},
		{cc, "07911 123456", []string{"phone:07911 123456=+447911123456"}},
		{cc, "+33 6 12 34 56 78", []string{"phone:+33 6 12 34 56 78=+33612345678"}},
		{x, "we shipped 12345678 units", nil},                         // bare digits are not a phone
		{x, "it costs 1,234,567.89", nil},                             // not a phone
		{x, "+1 555", nil},                                            // too short
		{x, "version 10.2.3.4", nil},                                  // dotted numbers
		{x, "+12345678901234567890", nil},                             // too long
		{x, "call 555 1234 today", []string{"date:today=2026-03-04"}}, // too short without area code
	} {
		check(t, c.x, c.in, c.want...)
	}
}

func TestIDs(t *testing.T) {
	x := Default()
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"where is ORD-12345?", []string{"order_id:ORD-12345=ORD-12345"}},
		{"order ord 4444 please", []string{"order_id:ord 4444=ORD-4444"}},
		{"my order #123456 is late", []string{"order_id:#123456=123456"}},
		{"order number: AB-9921X", []string{"order_id:AB-9921X=AB-9921X"}},
		// "is"/"was" between the words and the id, as people write it.
		{"my order number is 48213, where is it", []string{"order_id:48213=48213"}},
		{"the order no. was AB-9921X", []string{"order_id:AB-9921X=AB-9921X"}},
		{"Order ID is: 5521-77", []string{"order_id:5521-77=5521-77"}},
		{"my case number is 4521", []string{"ticket_id:4521=TCK-4521"}},
		{"order number is missing, 2 items", nil},
		{"ticket TCK-778 and ticket no. 4521", []string{"ticket_id:TCK-778=TCK-778", "ticket_id:4521=TCK-4521"}},
		{"issue #12", nil}, // too short for an order id
		// Free-form ids need a digit: the next word is not an id (a digit
		// elsewhere in the text used to let it through).
		{"order number please, I ordered 2 items", nil},
		{"case number unknown, 3 items", nil},
		{"case id ab-12", []string{"ticket_id:ab-12=TCK-AB-12"}},
		{"a&#123456;b", nil},
	} {
		check(t, x, c.in, c.want...)
	}
	custom, err := New(Config{IDPatterns: []IDPattern{{Type: "invoice_id", Expr: `\bINV(?P<id>\d{6})\b`, Prefix: "INV/"}}})
	if err != nil {
		t.Fatal(err)
	}
	check(t, custom, "INV123456 and ORD-12345", "invoice_id:INV123456=INV/123456")
	if _, err := New(Config{IDPatterns: []IDPattern{{Type: "x", Expr: `(`}}}); err == nil {
		t.Fatal("bad id pattern accepted")
	}
}

func TestMoney(t *testing.T) {
	x := Default()
	eur, _ := New(Config{DollarCurrency: "cad"})
	for _, c := range []struct {
		x    *Extractor
		in   string
		want []string
	}{
		{x, "refund $12.50 please", []string{"money:$12.50=12.50 USD"}},
		{x, "it was 12,50 €", []string{"money:12,50 €=12.50 EUR"}},
		{x, "EUR 30", []string{"money:EUR 30=30.00 EUR"}},
		{x, "30 dollars", []string{"money:30 dollars=30.00 USD"}},
		{x, "I paid 1.234,56€ and £5", []string{"money:1.234,56€=1234.56 EUR", "money:£5=5.00 GBP"}},
		{x, "$1,200 or 1,200.5 usd", []string{"money:$1,200=1200.00 USD", "money:1,200.5 usd=1200.50 USD"}},
		{x, "50 cents", []string{"money:50 cents=0.50 USD"}},
		{x, "¥1000", []string{"money:¥1000=1000 JPY"}},
		{x, "退款100元", []string{"money:100元=100.00 CNY"}},
		{x, "CHF 1'250.50", []string{"money:CHF 1'250.50=1250.50 CHF"}},
		{x, "20 bucks", []string{"money:20 bucks=20.00 USD"}},
		{x, "US$ 5", []string{"money:US$ 5=5.00 USD"}},
		{x, "12.345.678,9 eur", []string{"money:12.345.678,9 eur=12345678.90 EUR"}},
		{x, "3 apples for 1,2,3 dollars", nil}, // malformed grouping
		{eur, "$5", []string{"money:$5=5.00 CAD"}},
	} {
		check(t, c.x, c.in, c.want...)
	}
}

func TestDates(t *testing.T) {
	x := Default()
	mdy, err := New(Config{DateOrder: "MDY"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		x    *Extractor
		in   string
		want []string
	}{
		{x, "today", []string{"date:today=2026-03-04"}},
		{x, "Tomorrow please", []string{"date:Tomorrow=2026-03-05"}},
		{x, "it came yesterday", []string{"date:yesterday=2026-03-03"}},
		{x, "the day after tomorrow", []string{"date:day after tomorrow=2026-03-06"}},
		{x, "next friday", []string{"date:next friday=2026-03-06"}},
		{x, "next wednesday", []string{"date:next wednesday=2026-03-11"}},
		{x, "on wednesday", []string{"date:wednesday=2026-03-04"}},
		{x, "last friday", []string{"date:last friday=2026-02-27"}},
		{x, "last wednesday", []string{"date:last wednesday=2026-02-25"}},
		{x, "I paid on Monday and nothing happened", []string{"date:Monday=2026-03-02"}},
		{x, "my parcel arrived friday", []string{"date:friday=2026-02-27"}},
		{x, "it was supposed to arrive on wednesday", []string{"date:wednesday=2026-03-04"}},
		{x, "can you deliver on Monday?", []string{"date:Monday=2026-03-09"}},
		{x, "I ordered it last week, will it arrive on friday?", []string{"date:last week=2026-02-23/2026-03-01", "date:friday=2026-03-06"}},
		{x, "in 3 days", []string{"date:in 3 days=2026-03-07"}},
		{x, "in two weeks", []string{"date:in two weeks=2026-03-18"}},
		{x, "a month ago", []string{"date:a month ago=2026-02-04"}},
		{x, "last week", []string{"date:last week=2026-02-23/2026-03-01"}},
		{x, "this week", []string{"date:this week=2026-03-02/2026-03-08"}},
		{x, "next month", []string{"date:next month=2026-04-01/2026-04-30"}},
		{x, "last year", []string{"date:last year=2025-01-01/2025-12-31"}},
		{x, "this weekend", []string{"date:this weekend=2026-03-07/2026-03-08"}},
		{x, "on 5 March", []string{"date:5 March=2026-03-05"}},
		{x, "on the 2nd of May", []string{"date:2nd of May=2026-05-02"}},
		{x, "December 20", []string{"date:December 20=2025-12-20"}}, // nearer than 2026-12-20
		{x, "March 5th, 2027", []string{"date:March 5th, 2027=2027-03-05"}},
		{x, "5 March 2026-11-22", []string{"date:5 March=2026-03-05", "date:2026-11-22=2026-11-22"}},
		{x, "2026-11-22", []string{"date:2026-11-22=2026-11-22"}},
		{x, "5/3", []string{"date:5/3=2026-03-05"}},
		{mdy, "5/3", []string{"date:5/3=2026-05-03"}},
		{x, "05.03.2026", []string{"date:05.03.2026=2026-03-05"}},
		{x, "1/2/25", []string{"date:1/2/25=2025-02-01"}},
		{x, "31/2", nil}, // no such date
		{x, "30 febuary", nil},
		{x, "at 3pm", []string{"time:3pm=15:00"}},
		{x, "at 3:30 p.m.", []string{"time:3:30 p.m.=15:30"}},
		{x, "12am", []string{"time:12am=00:00"}},
		{x, "14:30", []string{"time:14:30=14:30"}},
		{x, "at 9", []string{"time:9=09:00"}},
		{x, "at 5 o'clock", []string{"time:5 o'clock=17:00"}},
		{x, "noon", []string{"time:noon=12:00"}},
		{x, "25:00 or 3.5 stars", nil},
		{x, "tomorrow at 3pm", []string{"datetime:tomorrow at 3pm=2026-03-05T15:00:00+01:00"}},
		{x, "3:30 pm on monday", []string{"datetime:3:30 pm on monday=2026-03-09T15:30:00+01:00"}},
		{x, "friday at noon, 3 days ago", []string{"datetime:friday at noon=2026-03-06T12:00:00+01:00", "date:3 days ago=2026-03-01"}},
		{x, "tonight at 8", []string{"datetime:tonight at 8=2026-03-04T20:00:00+01:00"}},
		{x, "in 2 hours", []string{"datetime:in 2 hours=2026-03-04T12:00:00+01:00"}},
		{x, "2026-11-22T10:30", []string{"datetime:2026-11-22T10:30=2026-11-22T10:30:00+01:00"}},
	} {
		check(t, c.x, c.in, c.want...)
	}
	if _, err := New(Config{DateOrder: "YMD"}); err == nil {
		t.Fatal("bad date order accepted")
	}
	noDates, _ := New(Config{Disable: []string{TypeDate}})
	check(t, noDates, "tomorrow at 3pm", "time:3pm=15:00")
}

func TestLookupsAndRegexes(t *testing.T) {
	ds := &data.Dataset{
		Lookups:  map[string][]string{"city": {"New York", "Berlin", "São Paulo"}, "product": {"iPhone 15"}},
		Synonyms: map[string]string{"nyc": "New York", "big apple": "New York"},
		Regexes:  map[string]string{"zip": `\b\d{5}\b`},
	}
	x, err := New(Config{}.WithDataset(ds))
	if err != nil {
		t.Fatal(err)
	}
	check(t, x, "ship my IPHONE 15 to the big apple or NYC, or new york 10001",
		"product:IPHONE 15=iPhone 15", "city:big apple=New York", "city:NYC=New York", "city:new york=New York", "zip:10001=10001")
	check(t, x, "from são paulo", "city:são paulo=São Paulo")
	check(t, x, "newyork", nil...)
	es := x.Extract("to Berlin", ref)
	if len(es) != 1 || es[0].Source != SourceLookup {
		t.Fatalf("lookup source: %+v", es)
	}
	if _, err := New(Config{Regexes: map[string]string{"x": `(`}}); err == nil {
		t.Fatal("bad regex accepted")
	}
	if _, err := New(Config{Disable: []string{"nope"}}); err == nil {
		t.Fatal("unknown disable type accepted")
	}
}

func TestOverlapResolution(t *testing.T) {
	x := Default()
	// A date inside a longer datetime, an e-mail that contains a URL-like
	// domain, and a phone-like date: the longest wins.
	check(t, x, "write to help@shop.com by 2026-11-22 at 14:30",
		"email:help@shop.com=help@shop.com", "datetime:2026-11-22 at 14:30=2026-11-22T14:30:00+01:00")
	// Equal length and start: priority decides (a date over a phone).
	check(t, x, "05.03.2026", "date:05.03.2026=2026-03-05")
}

func TestOffsetsNonASCII(t *testing.T) {
	in := "Grüße! Bestellung ORD-12345 über 12,50 € am 5. März? 明天 email: ü@x.de"
	es := Extract(in, ref)
	checkOffsets(t, in, es)
	got := summary(es)
	want := []string{"order_id:ORD-12345=ORD-12345", "money:12,50 €=12.50 EUR"}
	if strings.Join(got[:2], "|") != strings.Join(want, "|") {
		t.Fatalf("got %q", got)
	}
	if es[0].Start != 18 {
		t.Fatalf("rune offset of ORD-12345 = %d, want 18", es[0].Start)
	}
}

func TestZeroRefUsesNow(t *testing.T) {
	es := Extract("today", time.Time{})
	if len(es) != 1 || es[0].Value != time.Now().Format("2006-01-02") && es[0].Value != time.Now().Add(-time.Minute).Format("2006-01-02") {
		t.Fatalf("zero ref: %+v", es)
	}
}

func FuzzExtract(f *testing.F) {
	for _, s := range []string{
		"call +44 20 7946 0958 tomorrow at 3pm", "ORD-12345 $12.50 12,50 € 5/3 14:30",
		"jane@example.com www.example.com", "\xff\xfe 5 March \xc3", "退款100元 #882211",
		"in 3 days last week next friday on 5 March 2026-11-22", "(((((1)))))-1-1-1-1-1-1",
	} {
		f.Add(s)
	}
	ds := &data.Dataset{Lookups: map[string][]string{"city": {"New York", "berlin"}}, Synonyms: map[string]string{"nyc": "New York"}}
	x, err := New(Config{}.WithDataset(ds))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		es := x.Extract(s, ref)
		n := utf8.RuneCountInString(s)
		rs := []rune(s)
		prev := 0
		for _, e := range es {
			if e.Start < prev || e.End <= e.Start || e.End > n {
				t.Fatalf("bad offsets %+v in %q", e, s)
			}
			if string(rs[e.Start:e.End]) != e.Text {
				t.Fatalf("text %q != runes %q", e.Text, string(rs[e.Start:e.End]))
			}
			if e.Value == "" || e.Type == "" {
				t.Fatalf("empty value/type %+v", e)
			}
			prev = e.End
		}
		// Deterministic.
		if again := x.Extract(s, ref); fmt.Sprint(again) != fmt.Sprint(es) {
			t.Fatalf("not deterministic on %q", s)
		}
	})
}

func BenchmarkExtract(b *testing.B) {
	x := Default()
	s := "Hi, my order ORD-123456 from last friday was charged $49.99 twice; call me at +44 20 7946 0958 or mail jane@example.com"
	b.ReportAllocs()
	for b.Loop() {
		x.Extract(s, ref)
	}
}

// TestLargeInput runs adversarial, repetitive inputs (many overlapping
// candidates); it guards against super-linear blow-ups by finishing at all
// under the package test timeout.
func TestLargeInput(t *testing.T) {
	for _, unit := range []string{"today 3pm tomorrow at 14:30 ", "(1)-(2)-(3)-", "$1,2", "5/3/5/3/", "a@b.co.", "#1234 ORD-1234 ", "in 3 days ago "} {
		s := strings.Repeat(unit, 20000/len(unit))
		es := Extract(s, ref)
		checkOffsets(t, s, es)
	}
}

// BenchmarkExtractPlain is a typical message with no digits.
func BenchmarkExtractPlain(b *testing.B) {
	x := Default()
	s := "I'd like to add this song to my Classical Relaxations playlist on Spotify, can you do that please"
	b.ReportAllocs()
	for b.Loop() {
		x.Extract(s, ref)
	}
}

// TestDateTimesAcrossDST: a time of day on the day daylight saving time
// starts or ends is that wall-clock time, not midnight plus so many hours.
func TestDateTimesAcrossDST(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatalf("time zone database: %v", err)
	}
	x := Default()
	for _, c := range []struct {
		ref  time.Time
		in   string
		want string
	}{
		// 2026-03-08: clocks go from 02:00 EST to 03:00 EDT.
		{time.Date(2026, 3, 7, 18, 0, 0, 0, ny), "tomorrow at 10am", "datetime:tomorrow at 10am=2026-03-08T10:00:00-04:00"},
		{time.Date(2026, 3, 7, 18, 0, 0, 0, ny), "2026-03-08 10:30", "datetime:2026-03-08 10:30=2026-03-08T10:30:00-04:00"},
		// 2026-11-01: clocks go from 02:00 EDT back to 01:00 EST.
		{time.Date(2026, 10, 31, 18, 0, 0, 0, ny), "tomorrow at 3pm", "datetime:tomorrow at 3pm=2026-11-01T15:00:00-05:00"},
	} {
		got := summary(x.Extract(c.in, c.ref))
		if strings.Join(got, " | ") != c.want {
			t.Errorf("Extract(%q) at %s\n got: %q\nwant: %q", c.in, c.ref, got, c.want)
		}
	}
}

// TestMonthOffsetsClampToMonthEnd: "in a month" on 31 January is the last
// day of February, not 3 March (time.AddDate's normalisation), and a year
// from 29 February is 28 February.
func TestMonthOffsetsClampToMonthEnd(t *testing.T) {
	x := Default()
	for _, c := range []struct {
		ref  time.Time
		in   string
		want string
	}{
		{time.Date(2026, 1, 31, 10, 0, 0, 0, time.UTC), "in a month", "date:in a month=2026-02-28"},
		{time.Date(2028, 1, 31, 10, 0, 0, 0, time.UTC), "in 1 month", "date:in 1 month=2028-02-29"},
		{time.Date(2026, 3, 31, 10, 0, 0, 0, time.UTC), "a month ago", "date:a month ago=2026-02-28"},
		{time.Date(2026, 5, 31, 10, 0, 0, 0, time.UTC), "in 3 months", "date:in 3 months=2026-08-31"},
		{time.Date(2026, 10, 31, 10, 0, 0, 0, time.UTC), "in 4 months", "date:in 4 months=2027-02-28"},
		{time.Date(2028, 2, 29, 10, 0, 0, 0, time.UTC), "in a year", "date:in a year=2029-02-28"},
		{time.Date(2028, 2, 29, 10, 0, 0, 0, time.UTC), "a year ago", "date:a year ago=2027-02-28"},
		{time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC), "2 months ago", "date:2 months ago=2026-01-04"},
	} {
		got := summary(x.Extract(c.in, c.ref))
		if len(got) != 1 || got[0] != c.want {
			t.Errorf("Extract(%q) at %s = %q, want %q", c.in, c.ref.Format("2006-01-02"), got, c.want)
		}
	}
}

// TestMidnightTonight: "midnight tonight" is the midnight that ends the
// reference day, not the one that began it (already past).
func TestMidnightTonight(t *testing.T) {
	check(t, Default(), "by midnight tonight", "datetime:midnight tonight=2026-03-05T00:00:00+01:00")
	check(t, Default(), "tonight at midnight", "datetime:tonight at midnight=2026-03-05T00:00:00+01:00")
	check(t, Default(), "tonight at 12:30am", "datetime:tonight at 12:30am=2026-03-05T00:30:00+01:00")
	check(t, Default(), "tonight at 11pm", "datetime:tonight at 11pm=2026-03-04T23:00:00+01:00")
}

// TestPhoneTrunkZeroInParentheses: "+44 (0)20 7946 0958" is +442079460958,
// the "(0)" being the trunk prefix dialled only inside the country.
func TestPhoneTrunkZeroInParentheses(t *testing.T) {
	x := Default()
	check(t, x, "+44 (0)20 7946 0958", "phone:+44 (0)20 7946 0958=+442079460958")
	check(t, x, "call +49 (0)30 1234567", "phone:+49 (0)30 1234567=+49301234567")
	check(t, x, "0049 (0)30 1234567", "phone:0049 (0)30 1234567=+49301234567")
}

// TestISODateTimeWithOffset: an ISO 8601 date-time with "Z" or a UTC offset
// is that instant (shown in the reference time's zone), not the same
// wall-clock time in the reference zone; the offset is part of the entity.
func TestISODateTimeWithOffset(t *testing.T) {
	x := Default()
	check(t, x, "2026-11-22T10:30:00Z", "datetime:2026-11-22T10:30:00Z=2026-11-22T11:30:00+01:00")
	check(t, x, "at 2026-11-22T10:30:00+02:00 ok", "datetime:2026-11-22T10:30:00+02:00=2026-11-22T09:30:00+01:00")
	check(t, x, "2026-11-22T10:30-0500", "datetime:2026-11-22T10:30-0500=2026-11-22T16:30:00+01:00")
	check(t, x, "2026-11-22T23:30:00.123Z", "datetime:2026-11-22T23:30:00.123Z=2026-11-23T00:30:00+01:00")
	check(t, x, "2026-11-22T10:30", "datetime:2026-11-22T10:30=2026-11-22T10:30:00+01:00")
}

func TestISODateTimeRangeIsNotAnOffset(t *testing.T) {
	check(t, Default(), "2026-11-22 10:30-11:30", "datetime:2026-11-22 10:30=2026-11-22T10:30:00+01:00", "time:11:30=11:30")
	check(t, Default(), "2026-11-22 10:30:00+02:00", "datetime:2026-11-22 10:30:00+02:00=2026-11-22T09:30:00+01:00")
}

// TestMoneySpaceGroupedThousands: "1 234,56 €" (French, Nordic: space or
// no-break space between thousands) is 1234.56, not the 234.56 after the
// space.
func TestMoneySpaceGroupedThousands(t *testing.T) {
	x := Default()
	check(t, x, "it was 1 234,56 € in total", "money:1 234,56 €=1234.56 EUR")
	check(t, x, "1\u00a0234,56\u00a0€", "money:1\u00a0234,56\u00a0€=1234.56 EUR")
	check(t, x, "1\u202f000\u202f000 EUR", "money:1\u202f000\u202f000 EUR=1000000.00 EUR")
	check(t, x, "EUR 12 500", "money:EUR 12 500=12500.00 EUR")
	check(t, x, "2 500 kronor", "money:2 500 kronor=2500.00 SEK")
	check(t, x, "3 items for 100 €", "money:100 €=100.00 EUR")
	check(t, x, "order 12 and 1 234 €", "money:1 234 €=1234.00 EUR")
}

// TestDatesWhereDSTStartsAtMidnight: in America/Santiago and
// America/Havana daylight saving time starts at 00:00, so that day has no
// midnight; "today" on it was the day before and "tomorrow" the day before
// it was the same day.
func TestDatesWhereDSTStartsAtMidnight(t *testing.T) {
	for _, c := range []struct {
		zone string
		day  time.Time // the day without a midnight, at noon UTC
	}{
		{"America/Santiago", time.Date(2026, 9, 6, 0, 0, 0, 0, time.UTC)},
		{"America/Havana", time.Date(2026, 3, 8, 0, 0, 0, 0, time.UTC)},
	} {
		loc, err := time.LoadLocation(c.zone)
		if err != nil {
			t.Fatal(err)
		}
		on := time.Date(c.day.Year(), c.day.Month(), c.day.Day(), 10, 0, 0, 0, loc)
		before := on.AddDate(0, 0, -1)
		want := on.Format("2006-01-02")
		for _, x := range []struct {
			in  string
			ref time.Time
		}{{"today", on}, {"tomorrow", before}, {"in 1 day", before}, {"this weekend", before}} {
			es := Default().Extract(x.in, x.ref)
			if len(es) != 1 || !strings.HasPrefix(es[0].Value, want) && !strings.Contains(es[0].Value, want) {
				t.Errorf("%s: %q at %s = %+v, want %s", c.zone, x.in, x.ref.Format(time.RFC3339), es, want)
			}
		}
		if es := Default().Extract("today at 3pm", on); len(es) != 1 || es[0].Value != want+"T15:00:00"+on.Format("-07:00") {
			t.Errorf("%s: today at 3pm = %+v", c.zone, es)
		}
	}
}

// TestTimeInTheSpringForwardGap: 2:30 on the night clocks jump from 2:00
// to 3:00 does not exist; it is read as 3:30 (forward by the gap), not
// 1:30, and times around the change keep their wall clock.
func TestTimeInTheSpringForwardGap(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	ref := time.Date(2026, 3, 7, 12, 0, 0, 0, ny)
	for in, want := range map[string]string{
		"tomorrow at 2:30am": "2026-03-08T03:30:00-04:00",
		"tomorrow at 1:30am": "2026-03-08T01:30:00-05:00",
		"tomorrow at 3:30am": "2026-03-08T03:30:00-04:00",
		"2026-03-08T02:15":   "2026-03-08T03:15:00-04:00",
		"2026-11-01T01:30":   "2026-11-01T01:30:00-04:00", // ambiguous: the first one
		"tomorrow at 3pm":    "2026-03-08T15:00:00-04:00",
	} {
		es := Default().Extract(in, ref)
		if len(es) != 1 || es[0].Value != want {
			t.Errorf("%q = %+v, want %s", in, es, want)
		}
	}
}

// TestMoneyWithMagnitudeSuffixIsNotTheBareNumber: "$5k" is not 5.00 USD;
// an amount run into letters is not taken.
func TestMoneyWithMagnitudeSuffixIsNotTheBareNumber(t *testing.T) {
	x := Default()
	for _, in := range []string{"a budget of $5k", "€2m raised", "USD 3bn deal", "£10K"} {
		for _, e := range x.Extract(in, ref) {
			if e.Type == TypeMoney {
				t.Errorf("Extract(%q) = %s %q -> %s", in, e.Type, e.Text, e.Value)
			}
		}
	}
	check(t, x, "$5 each", "money:$5=5.00 USD")
	check(t, x, "100元左右", "money:100元=100.00 CNY")
}

// TestRoundTheClockIsNotADate: "24/7" is not 24 July.
func TestRoundTheClockIsNotADate(t *testing.T) {
	check(t, Default(), "is support available 24/7?")
	check(t, Default(), "on 24/7/2026", "date:24/7/2026=2026-07-24")
}

// TestTonightAtTwelve: "tonight at 12" is the coming midnight, not noon.
func TestTonightAtTwelve(t *testing.T) {
	check(t, Default(), "tonight at 12", "datetime:tonight at 12=2026-03-05T00:00:00+01:00")
	check(t, Default(), "tonight at 12:30", "datetime:tonight at 12:30=2026-03-05T00:30:00+01:00")
	check(t, Default(), "tomorrow at 12", "datetime:tomorrow at 12=2026-03-05T12:00:00+01:00")
}

// TestFractionIsNotADate: "3/4 of my order" is a fraction, not a date.
func TestFractionIsNotADate(t *testing.T) {
	check(t, Default(), "only 3/4 of my order arrived")
	check(t, Default(), "1/2 OF the items are broken")
	check(t, Default(), "deliver on 3/4 please", "date:3/4=2026-04-03")
}
