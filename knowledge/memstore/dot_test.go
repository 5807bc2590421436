package memstore

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestDotMatchesPortable: the (possibly SIMD) dot equals the portable loop
// up to rounding, for every length around the 8- and 32-wide steps, and
// does not read past len(a) (b is longer).
func TestDotMatchesPortable(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for n := 0; n <= 300; n++ {
		a := make([]float32, n)
		b := make([]float32, n+5)
		var mag float64
		for i := range b {
			b[i] = r.Float32()*2 - 1
		}
		for i := range a {
			a[i] = r.Float32()*2 - 1
			mag += math.Abs(float64(a[i] * b[i]))
		}
		b[n] = float32(math.NaN()) // beyond len(a): must not be read
		got, want := dot(a, b), dotGo(a, b)
		if math.IsNaN(float64(got)) || math.Abs(float64(got-want)) > 1e-5*(mag+1) {
			t.Fatalf("n=%d: dot %g, portable %g", n, got, want)
		}
	}
}

func BenchmarkDot(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	q := make([]float32, 128)
	m := make([]float32, 250*128)
	for i := range q {
		q[i] = r.Float32()
	}
	for i := range m {
		m[i] = r.Float32()
	}
	var sink float32
	for _, c := range []struct {
		name string
		f    func(a, b []float32) float32
	}{{"dot", dot}, {"portable", dotGo}} {
		b.Run(c.name+"/250x128", func(b *testing.B) {
			for b.Loop() {
				for row := range 250 {
					sink += c.f(q, m[row*128:(row+1)*128])
				}
			}
		})
	}
	_ = sink
}
