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

// TestEvalWithoutLabelledExamplesFails: `tandem eval` on data without a
// single labelled example printed all-zero metrics and exited 0.
func TestEvalWithoutLabelledExamplesFails(t *testing.T) {
	p := filepath.Join(t.TempDir(), "empty.csv")
	if err := os.WriteFile(p, []byte("text,intent\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"eval", "--model", testenv.ModelDir(t), "--onnxruntime-lib", testenv.ONNXRuntimeLib(t), "--data", "csv:" + p}, func(string) string { return "" }, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "no labelled examples") {
		t.Fatalf("err = %v (stdout %q), want an error saying there is nothing to evaluate", err, out.String())
	}
}
