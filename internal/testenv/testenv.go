// Package testenv locates the real components that tests need (the ONNX
// Runtime library, the test PostgreSQL server, Chromium, the shared datasets)
// and decides whether a missing one is a skip or a failure.
//
// Contract: when TANDEM_REQUIRE_REAL=1 (set by `make test` and CI) a missing
// component fails the test; otherwise the test is skipped with the reason.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// RepoRoot returns the directory holding go.mod, searching upward from the
// working directory.
func RepoRoot(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatalf("testenv: getwd: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatalf("testenv: no go.mod above the working directory")
		}
		dir = parent
	}
}

// Required reports whether missing real components must fail tests.
func Required() bool { return os.Getenv("TANDEM_REQUIRE_REAL") == "1" }

// Missing fails the test when real components are required, else skips it.
func Missing(tb testing.TB, format string, args ...any) {
	tb.Helper()
	if Required() {
		tb.Fatalf("required component missing (TANDEM_REQUIRE_REAL=1): "+format, args...)
	}
	tb.Skipf("skipping: "+format+" (run `make deps` or `make test`)", args...)
}

// ONNXRuntimeLib returns the path of the ONNX Runtime shared library:
// $ONNXRUNTIME_LIB, else .deps/onnxruntime/libonnxruntime.so.1 in the repo.
func ONNXRuntimeLib(tb testing.TB) string {
	tb.Helper()
	p := os.Getenv("ONNXRUNTIME_LIB")
	if p == "" {
		p = filepath.Join(RepoRoot(tb), ".deps", "onnxruntime", "libonnxruntime.so.1")
	}
	if _, err := os.Stat(p); err != nil {
		Missing(tb, "ONNX Runtime library not found at %s", p)
	}
	return p
}

// DatabaseURL returns the URL of the test PostgreSQL server (an admin
// connection, used to create per-test databases): $TEST_DATABASE_URL, else
// the URL written by `make deps` to .deps/test-database-url, else the local
// default.
func DatabaseURL(tb testing.TB) string {
	tb.Helper()
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	if b, err := os.ReadFile(filepath.Join(RepoRoot(tb), ".deps", "test-database-url")); err == nil {
		if u := string(trimSpace(b)); u != "" {
			return u
		}
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// Dataset returns the path of a dataset under ../shared/datasets (relative to
// the repo), skipping the test with a clear message when it is absent.
// Datasets are optional inputs: their absence is a skip even in CI.
func Dataset(tb testing.TB, rel string) string {
	tb.Helper()
	p := filepath.Join(datasetsDir(RepoRoot(tb)), rel)
	if _, err := os.Stat(p); err != nil {
		tb.Skipf("skipping: dataset %s not present (expected in $TANDEM_DATASETS or beside the repo in ../shared/datasets)", rel)
	}
	return p
}

// Chromium returns the path of a headless-capable Chromium binary.
func Chromium(tb testing.TB) string {
	tb.Helper()
	for _, name := range []string{os.Getenv("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	Missing(tb, "chromium not found on PATH")
	return ""
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}

// ModelDir returns the trained default model directory: $TANDEM_MODEL_DIR,
// else models/default in the repo (built by `make models`).
func ModelDir(tb testing.TB) string {
	tb.Helper()
	p := os.Getenv("TANDEM_MODEL_DIR")
	if p == "" {
		p = filepath.Join(RepoRoot(tb), "models", "default")
	}
	if _, err := os.Stat(filepath.Join(p, "manifest.json")); err != nil {
		Missing(tb, "no trained models in %s (run `make models`)", p)
	}
	return p
}

// datasetsDir is $TANDEM_DATASETS (set by the Makefile from
// scripts/datasets-dir.sh), else ../shared/datasets beside the repo.
func datasetsDir(root string) string {
	if dir := os.Getenv("TANDEM_DATASETS"); dir != "" {
		return dir
	}
	return filepath.Join(root, "..", "shared", "datasets")
}

// HasDataset reports whether the public dataset rel is present (the
// default models were then trained with it where scripts/models.sh uses
// it). Tests use it to hold optional quality checks.
func HasDataset(tb testing.TB, rel string) bool {
	tb.Helper()
	_, err := os.Stat(filepath.Join(datasetsDir(RepoRoot(tb)), rel))
	return err == nil
}
