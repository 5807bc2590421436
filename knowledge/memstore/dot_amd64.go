//go:build !purego

package memstore

import "golang.org/x/sys/cpu"

// dotAVX2 is implemented in dot_amd64.s; it needs AVX2 and FMA.
//
//go:noescape
func dotAVX2(a, b *float32, n int) float32

// hasAVX2FMA is fixed at start-up (a property of the machine).
var hasAVX2FMA = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// dot returns the inner product of a and b[:len(a)], with AVX2 FMA when
// the CPU has them (about 4x the portable loop; the sums differ from it
// only in rounding).
func dot(a, b []float32) float32 {
	b = b[:len(a)]
	if hasAVX2FMA && len(a) > 0 {
		return dotAVX2(&a[0], &b[0], len(a))
	}
	return dotGo(a, b)
}
