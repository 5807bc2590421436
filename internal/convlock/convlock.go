// Package convlock serialises work per conversation without a lock per
// conversation: ids hash onto a fixed set of stripes (two conversations
// may share one, which only serialises them). Waiting for a stripe honours
// the caller's context, so a caller that left does not stay queued behind
// a holder stuck on a slow store. The zero Locks is ready to use and safe
// for concurrent use.
package convlock

import (
	"context"
	"hash/fnv"
	"sync"
)

// Locks is a striped set of per-conversation locks.
type Locks struct {
	once    sync.Once
	stripes [1024]chan struct{}
}

// Lock locks id's stripe and returns its unlock, or ctx's error if ctx
// ends first.
func (l *Locks) Lock(ctx context.Context, id string) (func(), error) {
	l.once.Do(func() {
		for i := range l.stripes {
			l.stripes[i] = make(chan struct{}, 1)
		}
	})
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	ch := l.stripes[h.Sum32()%uint32(len(l.stripes))]
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
