package embed

import (
	"hash/fnv"
	"testing"
)

// TestFeaturesGolden pins the featurisation of a fixed set of texts (Latin,
// accents, CJK, emoji, invalid UTF-8, more features than MaxFeatures), so a
// change that would silently invalidate trained encoders and stored vectors
// fails here. The digest was computed with the earlier implementation
// (hash/fnv over built strings) that the allocation-free one replaced.
func TestFeaturesGolden(t *testing.T) {
	texts := []string{
		"How do I track my order #12345 to Berlin?",
		"où est ma commande ? Ça fait 3 jours",
		"我想退货，订单号是 A-778812",
		"ok 👍👍 thanks!!",
		"refund\xffbroken\xc3 utf8",
		"",
		"word " + "supercalifragilisticexpialidocious antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis floccinaucinihilipilification hippopotomonstrosesquippedaliophobia",
	}
	h := fnv.New64a()
	var b [12]byte
	for _, s := range texts {
		ids, wts := DefaultFeatures.Features(s)
		for i := range ids {
			for j := range 8 {
				b[j] = byte(uint64(ids[i]) >> (8 * j))
			}
			w := int32(wts[i] * 1000)
			for j := range 4 {
				b[8+j] = byte(uint32(w) >> (8 * j))
			}
			h.Write(b[:])
		}
		h.Write([]byte{0xff})
	}
	const want = 0x3acad144bc23f599
	if got := h.Sum64(); got != want {
		t.Fatalf("feature digest %#x, want %#x: the featurisation changed (retrain the encoder and re-embed, and update the digest, only if that is intended)", got, want)
	}
}
