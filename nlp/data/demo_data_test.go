package data

import (
	"path/filepath"
	"testing"

	"github.com/tandem-chat/tandem/internal/testenv"
)

// TestDemoData loads the project's demo training data (models/data).
func TestDemoData(t *testing.T) {
	ds, err := Load("tandem:" + filepath.Join(testenv.RepoRoot(t), "models", "data", "demo.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Examples) < 100 || !ds.HasEntities() || ds.Regexes["order_id"] == "" {
		t.Fatalf("demo data: %d examples, entities %v", len(ds.Examples), ds.SpanTypes())
	}
	t.Logf("%d examples, labels %v, span types %v", len(ds.Examples), ds.Labels(), ds.SpanTypes())
}
