// Package cmdutil holds the defaults the knowledge commands (kb-bench,
// retrieval-eval) share: where the repository, the ONNX Runtime library and
// the shared datasets are.
//
// Contract: nothing here fails; a path that cannot be found falls back as
// documented on each function, and the command reports the missing file
// when it opens it.
package cmdutil

import (
	"os"
	"path/filepath"
)

// Root returns the nearest directory holding go.mod at or above the working
// directory, or the working directory itself when there is none.
func Root() string {
	dir, _ := os.Getwd()
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return dir
		}
	}
}

// ONNXRuntimeLib returns $ONNXRUNTIME_LIB when set (non-empty), else
// .deps/onnxruntime/libonnxruntime.so.1 under root.
func ONNXRuntimeLib(root string) string {
	if v := os.Getenv("ONNXRUNTIME_LIB"); v != "" {
		return v
	}
	return filepath.Join(root, ".deps", "onnxruntime", "libonnxruntime.so.1")
}

// Datasets returns the shared datasets directory, ../shared/datasets
// relative to root.
func Datasets(root string) string {
	return filepath.Join(root, "..", "shared", "datasets")
}
