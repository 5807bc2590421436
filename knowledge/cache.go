package knowledge

import (
	"container/list"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// CacheConfig bounds a Cache. Zero values take the defaults.
type CacheConfig struct {
	MaxEntries int           // default 10000
	MaxBytes   int64         // approximate payload bytes, default 32 MiB
	TTL        time.Duration // default 10 minutes
	// Now returns the current time; tests replace it. Default time.Now.
	Now func() time.Time
}

// Defaults returns c with zero values replaced.
func (c CacheConfig) Defaults() CacheConfig {
	if c.MaxEntries <= 0 {
		c.MaxEntries = 10000
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = 32 << 20
	}
	if c.TTL <= 0 {
		c.TTL = 10 * time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Cache is the hot answer cache: an LRU from a normalised query key to a
// value, bounded by entry count and approximate bytes, with a TTL, and a
// generation counter. Invalidate bumps the generation and empties the cache;
// a value computed before an invalidation is refused by Put (the caller
// passes the generation it read before computing), so a search racing a KB
// change never caches stale hits. All methods may be called concurrently.
type Cache[V any] struct {
	cfg    CacheConfig
	sizeOf func(V) int64

	mu    sync.Mutex // guards gen, ll, items, bytes
	gen   uint64
	ll    *list.List // front = most recently used; elements hold *cacheEntry[V]
	items map[string]*list.Element
	bytes int64

	hits, misses, evictions prometheus.Counter
	invalidations           prometheus.Counter
	entries, size           prometheus.GaugeFunc
}

type cacheEntry[V any] struct {
	key     string
	val     V
	size    int64
	expires time.Time
}

// NewCache returns a cache whose values weigh sizeOf(v) bytes (plus the key
// and a fixed overhead). Its metrics (tandem_knowledge_cache_{hits,misses,
// evictions,invalidations}_total, _entries, _bytes, labelled cache=name)
// are registered on reg when reg is not nil.
func NewCache[V any](cfg CacheConfig, sizeOf func(V) int64, reg prometheus.Registerer, name string) (*Cache[V], error) {
	c := &Cache[V]{cfg: cfg.Defaults(), sizeOf: sizeOf, ll: list.New(), items: map[string]*list.Element{}}
	labels := prometheus.Labels{"cache": name}
	counter := func(n, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "tandem", Subsystem: "knowledge_cache", Name: n, Help: help, ConstLabels: labels})
	}
	c.hits = counter("hits_total", "Lookups answered from the hot answer cache.")
	c.misses = counter("misses_total", "Lookups not in the hot answer cache (absent, expired or invalidated).")
	c.evictions = counter("evictions_total", "Entries evicted to respect the entry and byte bounds.")
	c.invalidations = counter("invalidations_total", "Invalidations (knowledge base changes).")
	c.entries = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "tandem", Subsystem: "knowledge_cache", Name: "entries", Help: "Entries in the hot answer cache.", ConstLabels: labels},
		func() float64 { n, _ := c.Len(); return float64(n) })
	c.size = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "tandem", Subsystem: "knowledge_cache", Name: "bytes", Help: "Approximate bytes held by the hot answer cache.", ConstLabels: labels},
		func() float64 { _, b := c.Len(); return float64(b) })
	if reg != nil {
		for _, col := range []prometheus.Collector{c.hits, c.misses, c.evictions, c.invalidations, c.entries, c.size} {
			if err := reg.Register(col); err != nil {
				return nil, err
			}
		}
	}
	return c, nil
}

const entryOverhead = 96

// Generation returns the current generation; pass it to Put.
func (c *Cache[V]) Generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// Get returns the live value for key.
func (c *Cache[V]) Get(key string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var zero V
	el, ok := c.items[key]
	if !ok {
		c.misses.Inc()
		return zero, false
	}
	e := el.Value.(*cacheEntry[V])
	if !c.cfg.Now().Before(e.expires) {
		c.remove(el)
		c.misses.Inc()
		return zero, false
	}
	c.ll.MoveToFront(el)
	c.hits.Inc()
	return e.val, true
}

// Put stores v under key if gen is still the current generation and the
// entry fits the byte bound; it evicts least recently used entries as
// needed. It reports whether v was stored.
func (c *Cache[V]) Put(key string, v V, gen uint64) bool {
	size := int64(len(key)) + entryOverhead
	if c.sizeOf != nil {
		size += c.sizeOf(v)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen || size > c.cfg.MaxBytes {
		return false
	}
	if el, ok := c.items[key]; ok {
		c.remove(el)
	}
	e := &cacheEntry[V]{key: key, val: v, size: size, expires: c.cfg.Now().Add(c.cfg.TTL)}
	c.items[key] = c.ll.PushFront(e)
	c.bytes += size
	for c.ll.Len() > c.cfg.MaxEntries || c.bytes > c.cfg.MaxBytes {
		c.remove(c.ll.Back())
		c.evictions.Inc()
	}
	return true
}

// Invalidate empties the cache and bumps the generation. It is the hook the
// gateway calls when another node reports a knowledge base change.
func (c *Cache[V]) Invalidate() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.ll.Init()
	clear(c.items)
	c.bytes = 0
	c.invalidations.Inc()
	return c.gen
}

// Len returns the number of entries and their approximate bytes.
func (c *Cache[V]) Len() (int, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len(), c.bytes
}

func (c *Cache[V]) remove(el *list.Element) {
	e := el.Value.(*cacheEntry[V])
	c.ll.Remove(el)
	delete(c.items, e.key)
	c.bytes -= e.size
}
