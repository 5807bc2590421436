package knowledge_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tandem-chat/tandem/knowledge"
)

func TestCacheBoundsTTLAndGeneration(t *testing.T) {
	now := time.Unix(1000, 0)
	clock := func() time.Time { return now }
	reg := prometheus.NewRegistry()
	c, err := knowledge.NewCache(knowledge.CacheConfig{MaxEntries: 3, MaxBytes: 1 << 20, TTL: time.Minute, Now: clock},
		func(s string) int64 { return int64(len(s)) }, reg, "test")
	if err != nil {
		t.Fatal(err)
	}
	gen := c.Generation()
	for i := range 4 {
		if !c.Put(fmt.Sprint(i), "v", gen) {
			t.Fatalf("put %d refused", i)
		}
	}
	if n, _ := c.Len(); n != 3 {
		t.Fatalf("%d entries, bound 3", n)
	}
	if _, ok := c.Get("0"); ok {
		t.Fatal("least recently used entry not evicted")
	}
	if _, ok := c.Get("3"); !ok {
		t.Fatal("newest entry missing")
	}
	now = now.Add(2 * time.Minute)
	if _, ok := c.Get("3"); ok {
		t.Fatal("expired entry served")
	}
	// A value computed before an invalidation is refused.
	old := c.Generation()
	c.Invalidate()
	if c.Put("late", "stale", old) {
		t.Fatal("stale put accepted after invalidation")
	}
	if n, b := c.Len(); n != 0 || b != 0 {
		t.Fatalf("invalidate left %d entries, %d bytes", n, b)
	}
	// Byte bound.
	small, _ := knowledge.NewCache(knowledge.CacheConfig{MaxEntries: 100, MaxBytes: 1000, Now: clock}, func(s string) int64 { return int64(len(s)) }, nil, "small")
	g := small.Generation()
	for i := range 10 {
		small.Put(fmt.Sprint(i), string(make([]byte, 300)), g)
	}
	if _, b := small.Len(); b > 1000 {
		t.Fatalf("%d bytes, bound 1000", b)
	}
	if small.Put("huge", string(make([]byte, 5000)), g) {
		t.Fatal("entry larger than the byte bound accepted")
	}
	// Metrics are registered on the given registry only.
	mfs, _ := reg.Gather()
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{"tandem_knowledge_cache_hits_total", "tandem_knowledge_cache_misses_total", "tandem_knowledge_cache_evictions_total", "tandem_knowledge_cache_entries", "tandem_knowledge_cache_bytes"} {
		if !names[n] {
			t.Errorf("metric %s not registered", n)
		}
	}
}

func TestCacheConcurrent(t *testing.T) {
	c, _ := knowledge.NewCache(knowledge.CacheConfig{MaxEntries: 50}, func(s string) int64 { return int64(len(s)) }, nil, "c")
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				k := fmt.Sprint((w*31 + i) % 80)
				if _, ok := c.Get(k); !ok {
					c.Put(k, k, c.Generation())
				}
				if i%97 == 0 {
					c.Invalidate()
				}
			}
		}()
	}
	wg.Wait()
	if n, _ := c.Len(); n > 50 {
		t.Fatalf("%d entries, bound 50", n)
	}
}
