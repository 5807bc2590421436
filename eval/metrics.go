// Package eval measures Tandem's quality on labelled data: classification
// metrics for intents (with out-of-scope), ranking metrics for retrieval,
// latency percentiles, and an end-to-end bot run that checks answers and
// escalations. Reports render as JSON and Markdown, and Gates turn them
// into a pass/fail result for CI.
//
// Contract: metric functions are pure; RunBot calls the bot concurrently
// (bounded by Options.Concurrency) and is deterministic in its results
// for a deterministic bot. Nothing here reads test data during training:
// callers pass held-out examples.
package eval

import (
	"maps"
	"math"
	"slices"
	"time"
)

// ClassReport holds per-class counts and scores.
type ClassReport struct {
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	F1        float64 `json:"f1"`
	Support   int     `json:"support"`
}

// Classification is the result of comparing predicted to gold labels.
type Classification struct {
	Examples        int                    `json:"examples"`
	Accuracy        float64                `json:"accuracy"`
	InScopeAccuracy float64                `json:"in_scope_accuracy"`
	OOSPrecision    float64                `json:"oos_precision"`
	OOSRecall       float64                `json:"oos_recall"`
	MacroF1         float64                `json:"macro_f1"`
	PerClass        map[string]ClassReport `json:"per_class,omitempty"`
}

// Classify scores predictions against gold labels; oos names the
// out-of-scope label (in-scope accuracy and OOS precision/recall use it).
func Classify(gold, pred []string, oos string) Classification {
	n := min(len(gold), len(pred))
	c := Classification{Examples: n, PerClass: map[string]ClassReport{}}
	tp, fp, fn := map[string]int{}, map[string]int{}, map[string]int{}
	var correct, inScope, inScopeCorrect, oosTP, oosPred, oosGold int
	for i := range n {
		g, p := gold[i], pred[i]
		if g == p {
			correct++
			tp[g]++
		} else {
			fp[p]++
			fn[g]++
		}
		if g != oos {
			inScope++
			if g == p {
				inScopeCorrect++
			}
		} else {
			oosGold++
		}
		if p == oos {
			oosPred++
			if g == oos {
				oosTP++
			}
		}
	}
	// Macro F1 over gold ∪ predicted labels (as intent.Score, which
	// `tandem eval` reports), summed in sorted order so that the same input
	// gives the same figure to the last digit.
	seen := map[string]bool{}
	for _, g := range gold[:n] {
		seen[g] = true
	}
	for _, p := range pred[:n] {
		seen[p] = true
	}
	labels := slices.Sorted(maps.Keys(seen))
	var f1sum float64
	for _, l := range labels {
		pr := ratio(tp[l], tp[l]+fp[l])
		rc := ratio(tp[l], tp[l]+fn[l])
		r := ClassReport{Precision: pr, Recall: rc, F1: harmonic(pr, rc), Support: tp[l] + fn[l]}
		c.PerClass[l] = r
		f1sum += r.F1
	}
	c.Accuracy = ratio(correct, n)
	c.InScopeAccuracy = ratio(inScopeCorrect, inScope)
	c.OOSPrecision = ratio(oosTP, oosPred)
	c.OOSRecall = ratio(oosTP, oosGold)
	if len(labels) > 0 {
		c.MacroF1 = f1sum / float64(len(labels))
	}
	return c
}

// Ranking holds retrieval quality.
type Ranking struct {
	Queries  int             `json:"queries"`
	RecallAt map[int]float64 `json:"recall_at"`
	MRR      float64         `json:"mrr"`
}

// Rank scores ranked result lists: ranks[i] is the 1-based rank of the
// right answer for query i, or 0 when it was not returned.
func Rank(ranks []int, ks ...int) Ranking {
	r := Ranking{Queries: len(ranks), RecallAt: map[int]float64{}}
	for _, k := range ks {
		hit := 0
		for _, rk := range ranks {
			if rk > 0 && rk <= k {
				hit++
			}
		}
		r.RecallAt[k] = ratio(hit, len(ranks))
	}
	var s float64
	for _, rk := range ranks {
		if rk > 0 {
			s += 1 / float64(rk)
		}
	}
	if len(ranks) > 0 {
		r.MRR = s / float64(len(ranks))
	}
	return r
}

// Latency summarises durations.
type Latency struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
	Mean  float64 `json:"mean_ms"`
}

// Percentiles summarises ds (which it sorts).
func Percentiles(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	slices.Sort(ds)
	at := func(q float64) float64 {
		i := int(math.Ceil(q*float64(len(ds)))) - 1
		i = max(0, min(i, len(ds)-1))
		return float64(ds[i]) / 1e6
	}
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return Latency{Count: len(ds), P50: at(0.5), P90: at(0.9), P99: at(0.99), Max: at(1),
		Mean: float64(sum) / float64(len(ds)) / 1e6}
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func harmonic(p, r float64) float64 {
	if p+r == 0 {
		return 0
	}
	return 2 * p * r / (p + r)
}
