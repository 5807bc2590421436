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

// noExamples writes a data set that loads but has no examples: a Tandem
// YAML file with entities only (entities only is refused by
// the loader itself, naming the file).
func noExamples(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "entities.yml")
	if err := os.WriteFile(p, []byte("entities:\n  city:\n    lookup: [Berlin]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return "tandem:" + p
}

// TestEvalWithoutLabelledExamplesFails: `tandem eval` on data without a
// single labelled example printed all-zero metrics and exited 0.
func TestEvalWithoutLabelledExamplesFails(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"eval", "--model", testenv.ModelDir(t), "--onnxruntime-lib", testenv.ONNXRuntimeLib(t), "--data", noExamples(t)}, func(string) string { return "" }, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "no labelled examples") {
		t.Fatalf("err = %v (stdout %q), want an error saying there is nothing to evaluate", err, out.String())
	}
}

// TestLoadgenWithoutMessagesFails: a --data set without messages (a CSV
// with only its header) is an error, not a division by zero in the first
// run.
func TestLoadgenWithoutMessagesFails(t *testing.T) {
	env := map[string]string{"ONNXRUNTIME_LIB": testenv.ONNXRuntimeLib(t), "TANDEM_MODEL_DIR": testenv.ModelDir(t)}
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"loadgen", "--data", noExamples(t), "--concurrency", "1", "--turns", "5"}, testGetenv(env), &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "no messages") {
		t.Fatalf("err = %v, want an error saying the data has no messages", err)
	}
}
