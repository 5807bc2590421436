package trainer

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/tandem-chat/tandem/knowledge/embed"
)

// TestEmptyBitextFile: an empty (or header-less) Bitext CSV in the data
// directory is no data, not a panic (rows[1:] of no rows).
func TestEmptyBitextFile(t *testing.T) {
	data, out := t.TempDir(), t.TempDir()
	dir := filepath.Join(data, "bitext-customer-support")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bitext_customer_support_20k.csv"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	err := Run(context.Background(), []string{"-data", data, "-out", out, "-epochs", "1", "-dim", "8", "-onnxruntime-lib", ""}, &log)
	if err != nil {
		t.Fatalf("train: %v\n%s", err, log.String())
	}
	if _, err := os.Stat(filepath.Join(out, embed.ManifestFile)); err != nil {
		t.Fatal(err)
	}
}
