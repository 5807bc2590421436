package knowledge

import (
	"slices"
	"testing"

	"github.com/tandem-chat/tandem"
)

func TestCanonicalLocale(t *testing.T) {
	for in, want := range map[string]string{
		"en": "en", "EN": "en", "en-us": "en-US", "EN_us": "en-US", " pt_br ": "pt-BR",
		"zh-hant-tw": "zh-Hant-TW", "ZH_HANS": "zh-Hans", "es-419": "es-419", "de-CH-1996": "de-CH-1996", "": "",
	} {
		if got := CanonicalLocale(in); got != want {
			t.Errorf("CanonicalLocale(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestFilterLocaleCase: a client's locale matches FAQs whatever its case
// and separator, as the Filter documentation promises.
func TestFilterLocaleCase(t *testing.T) {
	us := tandem.FAQ{Locale: "en-US"}
	en := tandem.FAQ{Locale: "en"}
	for _, loc := range []string{"en-US", "en_us", "EN-US", "en-us"} {
		fl := Filter{Locale: loc}
		if !fl.Match(us) || !fl.Match(en) {
			t.Errorf("locale %q: en-US %t, en %t; want both", loc, fl.Match(us), fl.Match(en))
		}
		if got := fl.Locales(); !slices.Equal(got, []string{"en-US", "en"}) {
			t.Errorf("Locales(%q) = %v", loc, got)
		}
	}
	if (Filter{Locale: "fr"}).Match(us) {
		t.Error("fr matched en-US")
	}
}
