package pipeline

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tandem-chat/tandem"
)

// BatchFunc processes many inputs in one call (one ONNX Runtime Run) and
// returns one output per input, in order.
type BatchFunc[In, Out any] func(ctx context.Context, in []In) ([]Out, error)

// BatchConfig bounds a Batcher. Zero values take the defaults.
type BatchConfig struct {
	MaxBatch  int           // most inputs per call (default 16; see docs/benchmarks.md, Pipeline)
	MaxWait   time.Duration // longest a batch waits for company (default 500µs, at most 1ms)
	QueueSize int           // pending inputs before Submit answers "overloaded" (default 4096)
	Workers   int           // concurrent batch calls (default 2)
	Disabled  bool          // call the function once per input, no batching (for comparison)
}

func (c BatchConfig) withDefaults() BatchConfig {
	if c.MaxBatch <= 0 {
		c.MaxBatch = 16
	}
	if c.MaxWait <= 0 {
		c.MaxWait = 500 * time.Microsecond
	}
	if c.MaxWait > time.Millisecond {
		c.MaxWait = time.Millisecond
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 4096
	}
	if c.Workers <= 0 {
		c.Workers = 2
	}
	return c
}

type batchItem[In, Out any] struct {
	ctx  context.Context
	in   In
	done chan batchResult[Out] // buffered(1): the worker never blocks on a gone caller
}

type batchResult[Out any] struct {
	out Out
	err error
}

// Batcher groups concurrent Submit calls into batched calls of a BatchFunc.
// A lone caller is not delayed: a worker waits up to MaxWait for more
// inputs only while other callers are known to be on their way (Expect).
// A full queue makes Submit fail with tandem.EOVERLOADED instead of growing.
//
// Submit, Expect and Close may be called from any goroutine.
type Batcher[In, Out any] struct {
	cfg    BatchConfig
	fn     BatchFunc[In, Out]
	queue  chan batchItem[In, Out]
	expect atomic.Int64 // callers announced but not yet submitted
	stop   chan struct{}
	wg     sync.WaitGroup
	// mu orders Submit's enqueue before Close's stop: an input accepted
	// while open is in the queue when the workers drain it.
	mu      sync.RWMutex
	closed  bool
	observe func(size int) // batch size observer, may be nil
}

// NewBatcher starts the workers; Close stops them.
func NewBatcher[In, Out any](cfg BatchConfig, fn BatchFunc[In, Out], observe func(size int)) *Batcher[In, Out] {
	cfg = cfg.withDefaults()
	b := &Batcher[In, Out]{cfg: cfg, fn: fn, queue: make(chan batchItem[In, Out], cfg.QueueSize), stop: make(chan struct{}), observe: observe}
	if !cfg.Disabled {
		for range cfg.Workers {
			b.wg.Add(1)
			go b.work()
		}
	}
	return b
}

// Expect announces that n callers are about to Submit (n may be negative to
// withdraw), so a worker holding a partial batch knows waiting is worth it.
func (b *Batcher[In, Out]) Expect(n int) { b.expect.Add(int64(n)) }

// Submit processes one input as part of a batch.
func (b *Batcher[In, Out]) Submit(ctx context.Context, in In) (Out, error) {
	var zero Out
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		return zero, tandem.Errorf(tandem.EUNAVAILABLE, "the bot is shutting down")
	}
	if b.cfg.Disabled {
		b.mu.RUnlock()
		out, err := b.fn(ctx, []In{in})
		if err != nil {
			return zero, err
		}
		if b.observe != nil {
			b.observe(1)
		}
		if len(out) != 1 {
			return zero, tandem.Errorf(tandem.EINTERNAL, "batch returned %d results for 1 input", len(out))
		}
		return out[0], nil
	}
	item := batchItem[In, Out]{ctx: ctx, in: in, done: make(chan batchResult[Out], 1)}
	select {
	case b.queue <- item:
		b.mu.RUnlock()
	default:
		b.mu.RUnlock()
		return zero, tandem.Errorf(tandem.EOVERLOADED, "the bot is overloaded, please retry")
	}
	select {
	case r := <-item.done:
		return r.out, r.err
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// Close stops the workers after the queued inputs are processed.
func (b *Batcher[In, Out]) Close() {
	b.mu.Lock()
	already := b.closed
	b.closed = true
	b.mu.Unlock()
	if already {
		return
	}
	close(b.stop)
	b.wg.Wait()
}

func (b *Batcher[In, Out]) work() {
	defer b.wg.Done()
	batch := make([]batchItem[In, Out], 0, b.cfg.MaxBatch)
	ins := make([]In, 0, b.cfg.MaxBatch)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		batch = batch[:0]
		select {
		case it := <-b.queue:
			batch = append(batch, it)
		case <-b.stop:
			// Drain what is left so no caller waits forever.
			for {
				select {
				case it := <-b.queue:
					b.run([]batchItem[In, Out]{it}, ins[:0])
				default:
					return
				}
			}
		}
		// Take whatever is already queued.
	fill:
		for len(batch) < b.cfg.MaxBatch {
			select {
			case it := <-b.queue:
				batch = append(batch, it)
			default:
				break fill
			}
		}
		// Wait briefly for announced callers, never for nobody.
		if len(batch) < b.cfg.MaxBatch && b.expect.Load() > 0 {
			timer.Reset(b.cfg.MaxWait)
		wait:
			for len(batch) < b.cfg.MaxBatch {
				select {
				case it := <-b.queue:
					batch = append(batch, it)
					if b.expect.Load() <= 0 {
						break wait
					}
				case <-timer.C:
					break wait
				}
			}
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		}
		b.run(batch, ins[:0])
	}
}

func (b *Batcher[In, Out]) run(batch []batchItem[In, Out], ins []In) {
	// Drop callers that gave up; they are not waiting for an answer.
	live := batch[:0]
	for _, it := range batch {
		if it.ctx.Err() == nil {
			live = append(live, it)
		}
	}
	if len(live) == 0 {
		return
	}
	for _, it := range live {
		ins = append(ins, it.in)
	}
	// The batch runs on behalf of several callers: it is bounded by the
	// latest deadline among them, not cancelled by one caller leaving.
	ctx := context.Background()
	var cancel context.CancelFunc = func() {}
	var latest time.Time
	for _, it := range live {
		if d, ok := it.ctx.Deadline(); ok && d.After(latest) {
			latest = d
		}
	}
	if !latest.IsZero() {
		ctx, cancel = context.WithDeadline(ctx, latest)
	}
	outs, err := b.fn(ctx, ins)
	cancel()
	if b.observe != nil {
		b.observe(len(live))
	}
	if err == nil && len(outs) != len(live) {
		err = tandem.Errorf(tandem.EINTERNAL, "batch returned %d results for %d inputs", len(outs), len(live))
	}
	for i, it := range live {
		if err != nil {
			it.done <- batchResult[Out]{err: err}
			continue
		}
		it.done <- batchResult[Out]{out: outs[i]}
	}
}
