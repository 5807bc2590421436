// Package models owns Tandem's model artifacts and their execution: the ONNX
// Runtime environment and sessions (through github.com/yalue/onnxruntime_go),
// bounded session pools and RunChunks, which spreads a large batch's chunks
// over one, model manifests, and the registry of loaded models. The
// exporter that writes ONNX graphs lives in models/onnx.
//
// Contract: OpenRuntime may be called by any number of components; the ONNX
// Runtime environment is process-wide (a property of the C library), so it is
// reference-counted and destroyed when the last Runtime is closed. Sessions
// created here are configured for one intra-op thread: parallelism comes from
// Go goroutines and batching, not from ONNX Runtime's thread pool, and a
// Session's Run may be called from many goroutines at once.
package models

import (
	"errors"
	"fmt"
	"os"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// The ONNX Runtime environment is a process-wide singleton in the C library;
// envMu guards the reference count and library path that mirror it.
var (
	envMu   sync.Mutex
	envRefs int
	envLib  string
)

// Runtime is a handle on the process's ONNX Runtime environment.
type Runtime struct {
	once sync.Once
}

// OpenRuntime loads the ONNX Runtime shared library at libPath (the first
// caller's path wins for the life of the process) and initialises the
// environment.
func OpenRuntime(libPath string) (*Runtime, error) {
	envMu.Lock()
	defer envMu.Unlock()
	if envRefs == 0 {
		if libPath == "" {
			return nil, errors.New("models: ONNX Runtime library path is empty (set ONNXRUNTIME_LIB or run `make deps`)")
		}
		if _, err := os.Stat(libPath); err != nil {
			return nil, fmt.Errorf("models: ONNX Runtime library (ONNXRUNTIME_LIB, --onnxruntime-lib): %w (run `make deps`)", err)
		}
		ort.SetSharedLibraryPath(libPath)
		if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
			return nil, fmt.Errorf("models: initialise ONNX Runtime from %s: %w", libPath, err)
		}
		envLib = libPath
	}
	envRefs++
	return &Runtime{}, nil
}

// Version returns the ONNX Runtime library version.
func (r *Runtime) Version() string { return ort.GetVersion() }

// LibraryPath returns the path the environment was loaded from.
func (r *Runtime) LibraryPath() string {
	envMu.Lock()
	defer envMu.Unlock()
	return envLib
}

// Close releases this handle; the last one destroys the environment. Close
// all sessions first.
func (r *Runtime) Close() error {
	var err error
	r.once.Do(func() {
		envMu.Lock()
		defer envMu.Unlock()
		envRefs--
		if envRefs == 0 {
			err = ort.DestroyEnvironment()
		}
	})
	return err
}

// Session is an ONNX Runtime inference session safe for concurrent use.
type Session struct {
	s       *ort.DynamicAdvancedSession
	inputs  []string
	outputs []string
}

// NewSession creates a session from serialised ONNX bytes with the given
// input and output names, single-threaded intra-op.
func (r *Runtime) NewSession(model []byte, inputs, outputs []string) (*Session, error) {
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("models: session options: %w", err)
	}
	defer opts.Destroy()
	if err := opts.SetIntraOpNumThreads(1); err != nil {
		return nil, fmt.Errorf("models: intra-op threads: %w", err)
	}
	if err := opts.SetInterOpNumThreads(1); err != nil {
		return nil, fmt.Errorf("models: inter-op threads: %w", err)
	}
	s, err := ort.NewDynamicAdvancedSessionWithONNXData(model, inputs, outputs, opts)
	if err != nil {
		return nil, fmt.Errorf("models: create session: %w", err)
	}
	return &Session{s: s, inputs: inputs, outputs: outputs}, nil
}

// Run executes the model. inputs are in the order given to NewSession;
// outputs may hold nil entries, which ONNX Runtime allocates (the caller must
// Destroy them).
func (s *Session) Run(inputs, outputs []ort.Value) error {
	if err := s.s.Run(inputs, outputs); err != nil {
		return fmt.Errorf("models: run: %w", err)
	}
	return nil
}

// Close destroys the session.
func (s *Session) Close() error { return s.s.Destroy() }
