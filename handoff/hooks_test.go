package handoff_test

import "sync"

// onceHook is a function a test sets and a wrapping test store runs once,
// at the point of interest (after a read, after a refused write): the
// interleaving the test needs.
type onceHook struct {
	mu sync.Mutex
	f  func()
}

// set arms the hook.
func (h *onceHook) set(f func()) {
	h.mu.Lock()
	h.f = f
	h.mu.Unlock()
}

// fire runs the armed function, if any, and disarms it.
func (h *onceHook) fire() {
	h.mu.Lock()
	f := h.f
	h.f = nil
	h.mu.Unlock()
	if f != nil {
		f()
	}
}
