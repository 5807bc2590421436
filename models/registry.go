package models

import (
	"errors"
	"sync"
	"sync/atomic"
)

// Registry holds the current value of a hot-swappable resource, typically a
// loaded model set, behind an atomic pointer: readers get the current value
// without locks; Swap installs a new one and closes the old one once its
// last reader has released it.
//
// Contract: all methods are safe for concurrent use. A value obtained with
// Acquire stays valid (not closed) until its release function is called,
// even across a Swap.
type Registry[T any] struct {
	cur    atomic.Pointer[entry[T]]
	mu     sync.Mutex // serialises Swap and Close
	closed bool       // mu guards closed
}

type entry[T any] struct {
	val     T
	version string
	refs    atomic.Int64 // readers + 1 while installed
	closeFn func(T) error
	once    sync.Once
	err     error
}

func (e *entry[T]) release() {
	if e.refs.Add(-1) == 0 {
		e.once.Do(func() {
			if e.closeFn != nil {
				e.err = e.closeFn(e.val)
			}
		})
	}
}

// ErrRegistryEmpty is returned by Acquire before the first Swap or after Close.
var ErrRegistryEmpty = errors.New("models: no model loaded")

// NewRegistry returns an empty registry.
func NewRegistry[T any]() *Registry[T] { return &Registry[T]{} }

// Acquire returns the current value, its version and a release function the
// caller must call when done with the value.
func (r *Registry[T]) Acquire() (T, string, func(), error) {
	for {
		e := r.cur.Load()
		if e == nil {
			var zero T
			return zero, "", func() {}, ErrRegistryEmpty
		}
		n := e.refs.Load()
		if n <= 0 {
			continue // being retired; reload the pointer
		}
		if e.refs.CompareAndSwap(n, n+1) {
			return e.val, e.version, e.release, nil
		}
	}
}

// Version returns the version of the current value ("" when empty).
func (r *Registry[T]) Version() string {
	if e := r.cur.Load(); e != nil {
		return e.version
	}
	return ""
}

// Swap installs val (with its version and the function that releases its
// resources) and retires the previous value, which is closed when its last
// reader releases it.
func (r *Registry[T]) Swap(val T, version string, closeFn func(T) error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		if closeFn != nil {
			_ = closeFn(val)
		}
		return errors.New("models: registry closed")
	}
	e := &entry[T]{val: val, version: version, closeFn: closeFn}
	e.refs.Store(1)
	if old := r.cur.Swap(e); old != nil {
		old.release()
	}
	return nil
}

// Close retires the current value; later Acquire calls fail.
func (r *Registry[T]) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	if old := r.cur.Swap(nil); old != nil {
		old.release()
	}
	return nil
}
