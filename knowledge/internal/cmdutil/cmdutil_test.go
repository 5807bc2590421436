package cmdutil

import (
	"os"
	"path/filepath"
	"testing"
)

func TestRoot(t *testing.T) {
	root := Root()
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("Root() = %s, no go.mod there: %v", root, err)
	}
	if want, _ := filepath.Abs("../../.."); root != want {
		t.Fatalf("Root() = %s, want %s", root, want)
	}
	t.Chdir(t.TempDir())
	wd, _ := os.Getwd()
	if got := Root(); got != wd {
		t.Fatalf("outside the repo Root() = %s, want the working directory %s", got, wd)
	}
}

func TestDefaults(t *testing.T) {
	t.Setenv("ONNXRUNTIME_LIB", "")
	if got, want := ONNXRuntimeLib("/r"), "/r/.deps/onnxruntime/libonnxruntime.so.1"; got != want {
		t.Fatalf("ONNXRuntimeLib = %s, want %s", got, want)
	}
	t.Setenv("ONNXRUNTIME_LIB", "/opt/ort.so")
	if got := ONNXRuntimeLib("/r"); got != "/opt/ort.so" {
		t.Fatalf("ONNXRuntimeLib with $ONNXRUNTIME_LIB = %s", got)
	}
	if got, want := Datasets("/w/main"), "/w/shared/datasets"; got != want {
		t.Fatalf("Datasets = %s, want %s", got, want)
	}
}
