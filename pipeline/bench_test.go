package pipeline

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
)

// BenchmarkRespondOverhead measures the pipeline's own cost per turn with a
// trivial model (no ONNX): pooling, stages, policy, state. The whole-turn
// figures with the real default models come from `tandem loadgen`.
func BenchmarkRespondOverhead(b *testing.B) {
	p := newTestPipeline(b, nil)
	ctx := context.Background()
	var n atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			if _, err := p.Respond(ctx, turn(fmt.Sprintf("c%d", i%256), "how do I track ORD-1 please")); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkCacheHit measures the hot-cache path: normalisation, cheap
// triggers, cache lookup and the state update.
func BenchmarkCacheHit(b *testing.B) {
	cache := newReplyCache(b)
	p := newTestPipeline(b, func(c *Config, d *Deps) { d.Cache = cache })
	ctx := context.Background()
	if _, err := p.Respond(ctx, turn("warm", "where can I track my parcel")); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, err := p.Respond(ctx, turn("c", "where can I track my parcel"))
		if err != nil || !r.Cached {
			b.Fatalf("%+v %v", r, err)
		}
	}
}
