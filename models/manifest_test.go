package models_test

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tandem-chat/tandem/models"
)

func TestManifestSealAndVerify(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "intent.onnx"), []byte("graph"), 0o644)
	os.WriteFile(filepath.Join(dir, "intent.vocab"), []byte("vocab"), 0o644)
	m := &models.Manifest{Name: "demo", Version: "1", Precision: "int8", Models: map[string]models.ModelEntry{
		"intent": {Kind: "k", File: "intent.onnx", Inputs: []string{"ids"}, Outputs: []string{"probs"}, Labels: []string{"a", "b"}, Aux: map[string]string{"vocab": "intent.vocab"}, Threshold: 0.3},
	}}
	if err := m.Seal(dir); err != nil {
		t.Fatal(err)
	}
	got, err := models.ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Models["intent"].Threshold != 0.3 || got.Files["intent.onnx"].Size != 5 || len(got.Files["intent.vocab"].SHA256) != 64 {
		t.Fatalf("manifest = %+v", got)
	}
	// Loaders read through the manifest: the bytes they get are the ones
	// it describes, and a file replaced after ReadManifest (a retrain into
	// the directory) is refused rather than paired with this manifest.
	if b, err := got.ReadFile(dir, "intent.onnx"); err != nil || string(b) != "graph" {
		t.Fatalf("ReadFile = %q, %v", b, err)
	}
	os.WriteFile(filepath.Join(dir, "intent.onnx"), []byte("graf2"), 0o644)
	if _, err := got.ReadFile(dir, "intent.onnx"); err == nil || !strings.Contains(err.Error(), "changed") {
		t.Fatalf("replaced file: err = %v", err)
	}
	if _, err := got.ReadFile(dir, "../manifest.json"); err == nil {
		t.Fatal("read a file outside the manifest")
	}
	os.WriteFile(filepath.Join(dir, "intent.onnx"), []byte("graph"), 0o644)
	// Tampering with a file is detected.
	os.WriteFile(filepath.Join(dir, "intent.vocab"), []byte("VOCAB"), 0o644)
	if _, err := models.ReadManifest(dir); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("tampered file: err = %v", err)
	}
	// A model naming a missing file cannot be sealed.
	m.Models["intent"] = models.ModelEntry{Kind: "k", File: "missing.onnx", Inputs: []string{"x"}, Outputs: []string{"y"}}
	if err := m.Seal(dir); err == nil {
		t.Fatal("sealed a manifest naming a missing file")
	}
	// Path traversal in file names is rejected.
	m.Models["intent"] = models.ModelEntry{Kind: "k", File: "../x.onnx", Inputs: []string{"x"}, Outputs: []string{"y"}}
	if err := m.Seal(dir); err == nil {
		t.Fatal("sealed a manifest with a path outside the directory")
	}
	if _, err := models.ReadManifest(t.TempDir()); err == nil {
		t.Fatal("missing manifest accepted")
	}
}

func TestRegistrySwap(t *testing.T) {
	r := models.NewRegistry[*int]()
	if _, _, _, err := r.Acquire(); err != models.ErrRegistryEmpty {
		t.Fatalf("empty registry: %v", err)
	}
	var closed atomic.Int64
	closeFn := func(*int) error { closed.Add(1); return nil }
	one, two := 1, 2
	r.Swap(&one, "v1", closeFn)
	v, ver, release, err := r.Acquire()
	if err != nil || *v != 1 || ver != "v1" {
		t.Fatalf("Acquire = %v %q %v", v, ver, err)
	}
	r.Swap(&two, "v2", closeFn)
	if closed.Load() != 0 {
		t.Fatal("old value closed while still in use")
	}
	release()
	if closed.Load() != 1 {
		t.Fatal("old value not closed after its last release")
	}
	if r.Version() != "v2" {
		t.Fatalf("version %q", r.Version())
	}
	// Concurrent readers and swaps: every acquired value is open.
	var wg sync.WaitGroup
	var bad atomic.Int64
	type val struct{ closed atomic.Bool }
	r2 := models.NewRegistry[*val]()
	r2.Swap(&val{}, "0", func(v *val) error { v.closed.Store(true); return nil })
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				v, _, rel, err := r2.Acquire()
				if err != nil {
					continue
				}
				if v.closed.Load() {
					bad.Add(1)
				}
				rel()
			}
		}()
	}
	for i := 0; i < 200; i++ {
		r2.Swap(&val{}, "n", func(v *val) error { v.closed.Store(true); return nil })
	}
	wg.Wait()
	r2.Close()
	if bad.Load() > 0 {
		t.Fatalf("%d reads saw a closed value", bad.Load())
	}
	if _, _, _, err := r2.Acquire(); err == nil {
		t.Fatal("Acquire after Close succeeded")
	}
}
