package models

import (
	"context"
	"errors"
	"fmt"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// MaxPoolSessions bounds the distinct sessions of a SessionPool: each
// session holds its own copy of the model's constant-folded (float)
// tables, so beyond this many the pool's slots share sessions (ONNX Runtime
// accepts concurrent runs on one session) instead of multiplying memory.
const MaxPoolSessions = 4

// SessionPool runs one model from at most Size() goroutines at once.
// Safe for concurrent use; Close after the last Run has returned.
type SessionPool struct {
	slots     chan *Session
	sessions  []*Session
	closeOnce sync.Once
}

// NewSessionPool creates a pool of n slots (n >= 1) over at most
// MaxPoolSessions sessions of model.
func (r *Runtime) NewSessionPool(model []byte, inputs, outputs []string, n int) (*SessionPool, error) {
	if n < 1 {
		return nil, fmt.Errorf("models: session pool of %d slots", n)
	}
	p := &SessionPool{slots: make(chan *Session, n)}
	for i := range n {
		if i >= MaxPoolSessions {
			p.slots <- p.sessions[i%MaxPoolSessions]
			continue
		}
		s, err := r.NewSession(model, inputs, outputs)
		if err != nil {
			_ = p.Close()
			return nil, err
		}
		p.sessions = append(p.sessions, s)
		p.slots <- s
	}
	return p, nil
}

// Size returns the number of slots: the most concurrent runs.
func (p *SessionPool) Size() int { return cap(p.slots) }

// Acquire waits for a free slot and returns its session, or ctx's error;
// the caller must Release it.
func (p *SessionPool) Acquire(ctx context.Context) (*Session, error) {
	select {
	case s := <-p.slots:
		return s, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Release returns a slot taken by Acquire.
func (p *SessionPool) Release(s *Session) { p.slots <- s }

// Run waits for a free slot (returning ctx's error if ctx ends first) and
// runs the model (see Session.Run).
func (p *SessionPool) Run(ctx context.Context, inputs, outputs []ort.Value) error {
	s, err := p.Acquire(ctx)
	if err != nil {
		return err
	}
	defer p.Release(s)
	return s.Run(inputs, outputs)
}

// Close destroys the sessions.
func (p *SessionPool) Close() error {
	var errs []error
	p.closeOnce.Do(func() {
		for _, s := range p.sessions {
			errs = append(errs, s.Close())
		}
	})
	return errors.Join(errs...)
}

// RunChunks cuts the items [0, n) into consecutive chunks of size items
// (the last may be shorter) and calls run(lo, hi) for each chunk, each call
// in its own goroutine with at most limit calls in flight (size and limit
// below 1 count as 1); callers batching over a SessionPool pass its Size.
// Chunks are launched in order, each once a slot is free. When ctx ends
// before every chunk has been launched, RunChunks launches no more, waits
// for the launched calls to return and returns ctx's error (the calls'
// errors are dropped). Otherwise it waits for all calls and returns their
// errors joined (errors.Join, in completion order), nil when none failed.
// run is not given ctx: it should watch the same context itself.
func RunChunks(ctx context.Context, n, size, limit int, run func(lo, hi int) error) error {
	size, limit = max(size, 1), max(limit, 1)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs error
	)
	sem := make(chan struct{}, limit)
	for lo := 0; lo < n; lo += size {
		hi := min(lo+size, n)
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := run(lo, hi); err != nil {
				mu.Lock()
				errs = errors.Join(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errs
}
