package knowledge

import "math"

// Norm returns the Euclidean length of v, or NaN when a component is NaN
// or infinite.
func Norm(v []float32) float64 {
	var ss float64
	for _, x := range v {
		f := float64(x)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return math.NaN()
		}
		ss += f * f
	}
	return math.Sqrt(ss)
}

// Searchable reports whether a query vector can be compared by cosine: its
// components are finite and it is not all zeros. An encoder returns the zero
// vector for a text it has no features for (e.g. a script it never saw);
// such a query has no direction, so vector search finds nothing for it
// (pgvector's cosine distance would be NaN).
func Searchable(v []float32) bool {
	n := Norm(v)
	return n > 0 && !math.IsInf(n, 0) // NaN > 0 is false
}

// Similarity turns a cosine similarity into the score vector retrievers
// report: clamped to [0, 1] (rounding can stray past 1; opposite vectors
// score 0). ok is false for NaN or an infinity, which callers drop.
func Similarity(cos float64) (score float64, ok bool) {
	if math.IsNaN(cos) || math.IsInf(cos, 0) {
		return 0, false
	}
	return min(max(cos, 0), 1), true
}
