package tandem

import (
	"context"
	"strings"
	"unicode"
)

type slotReleaseKey struct{}

// WithSlotRelease returns a copy of ctx that carries release. A caller
// that runs turns in a bounded pool (the gateway's turn slots) passes it,
// so that the bot can give its slot back before it waits on a remote
// server — a generative answer streamed for seconds needs no local CPU —
// and the pool starts another conversation's turn meanwhile. release must
// be safe to call more than once and from any goroutine.
func WithSlotRelease(ctx context.Context, release func()) context.Context {
	return context.WithValue(ctx, slotReleaseKey{}, release)
}

// ReleaseSlot calls the release function ctx carries (WithSlotRelease), if
// any. Code that calls it must not rely on the caller's pool bound
// afterwards: what it does next should bound itself.
func ReleaseSlot(ctx context.Context) {
	if f, ok := ctx.Value(slotReleaseKey{}).(func()); ok {
		f()
	}
}

// Blank reports whether s shows nothing: only white space, format
// characters (zero-width spaces, joiners, direction marks), combining
// marks with nothing to combine with (variation selectors among them), and
// the blank letters of Hangul and Braille (U+3164 HANGUL FILLER, U+2800
// BRAILLE PATTERN BLANK…). A customer message or an FAQ text that is Blank
// counts as empty. (Marks after a letter are kept: "é" as e + U+0301 is
// text.)
func Blank(s string) bool {
	return strings.TrimFunc(s, invisible) == ""
}

func invisible(r rune) bool {
	switch r {
	case '\u115F', '\u1160', '\u3164', '\uFFA0', '\u2800':
		return true
	}
	return unicode.IsSpace(r) || unicode.In(r, unicode.Cf, unicode.Mn, unicode.Me)
}
