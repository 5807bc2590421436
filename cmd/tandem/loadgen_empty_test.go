package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandem-chat/tandem/internal/testenv"
)

// TestLoadgenWithoutMessagesFails: a --data set without messages (a CSV
// with only its header) is an error, not a division by zero in the first
// run.
func TestLoadgenWithoutMessagesFails(t *testing.T) {
	p := filepath.Join(t.TempDir(), "empty.csv")
	if err := os.WriteFile(p, []byte("text,intent\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"ONNXRUNTIME_LIB": testenv.ONNXRuntimeLib(t), "TANDEM_MODEL_DIR": testenv.ModelDir(t)}
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"loadgen", "--data", "csv:" + p, "--concurrency", "1", "--turns", "5"}, testGetenv(env), &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "no messages") {
		t.Fatalf("err = %v, want an error saying the data has no messages", err)
	}
}
