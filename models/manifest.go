package models

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// ManifestFile is the name of the manifest in a model directory.
const ManifestFile = "manifest.json"

// ManifestFormat is the manifest schema version written by this build.
const ManifestFormat = 1

// Manifest describes a model directory: which models it holds, their files
// with SHA-256 digests, labels, feature configuration, the data they were
// trained on, validation metrics and decision thresholds. It is JSON, written
// last (atomically) so a directory with a valid manifest is complete.
type Manifest struct {
	Format    int                   `json:"format"`
	Name      string                `json:"name"`
	Version   string                `json:"version"`
	Created   time.Time             `json:"created"`
	Producer  string                `json:"producer,omitempty"` // e.g. "tandem train (go1.26)"
	Precision string                `json:"precision"`          // "int8" or "fp32"
	Data      DataInfo              `json:"data"`
	Models    map[string]ModelEntry `json:"models"` // by role: "intent", "entity"
	// Rules names the file of the training data's lookup tables, entity
	// synonyms and regex entities (JSON), which the rule extractor serves;
	// empty when the data declared none.
	Rules string              `json:"rules,omitempty"`
	Files map[string]FileInfo `json:"files"` // every file of the directory but the manifest
}

// DataInfo identifies the training data.
type DataInfo struct {
	Sources  []string `json:"sources"`
	Digest   string   `json:"digest"` // SHA-256 of the examples (data.Dataset.Digest)
	Examples int      `json:"examples"`
}

// ModelEntry describes one model of the directory. Model-specific settings
// (feature configuration, training configuration, metrics) are JSON objects
// owned by the package that trains the model.
type ModelEntry struct {
	Kind        string             `json:"kind"` // e.g. "intent-bag-mlp", "entity-bio-cnn"
	File        string             `json:"file"` // the ONNX graph
	Inputs      []string           `json:"inputs"`
	Outputs     []string           `json:"outputs"`
	Labels      []string           `json:"labels"`
	Aux         map[string]string  `json:"aux,omitempty"` // other files by role, e.g. "vocab"
	Features    json.RawMessage    `json:"features,omitempty"`
	Training    json.RawMessage    `json:"training,omitempty"`
	Threshold   float64            `json:"threshold,omitempty"`
	Score       string             `json:"score,omitempty"` // what Threshold applies to (intent: "max_prob" when empty, "oos_log_ratio")
	Temperature float64            `json:"temperature,omitempty"`
	Validation  map[string]float64 `json:"validation,omitempty"`
}

// FileInfo is a file's size and SHA-256.
type FileInfo struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// HashFile returns the size and hex SHA-256 of a file.
func HashFile(path string) (FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return FileInfo{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return FileInfo{}, err
	}
	return FileInfo{Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// ReadFile reads the manifest's file name from dir and checks the bytes
// read against the manifest's size and sha256. Loaders build from these
// bytes, not from a second read: a directory replaced after ReadManifest
// (a retrain into it) fails here instead of pairing this manifest's labels
// and settings with another model's files.
func (m *Manifest) ReadFile(dir, name string) ([]byte, error) {
	want, ok := m.Files[name]
	if !ok || name != filepath.Base(name) {
		return nil, fmt.Errorf("models: %s: file %q is not in the manifest", dir, name)
	}
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return nil, fmt.Errorf("models: %w", err)
	}
	sum := sha256.Sum256(b)
	if got := (FileInfo{Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:])}); got != want {
		return nil, fmt.Errorf("models: %s: file %s changed since its manifest was read (the directory was replaced?)", dir, name)
	}
	return b, nil
}

// Seal hashes every regular file in dir (except the manifest itself) into
// m.Files and writes m as dir/manifest.json atomically (temp file + rename).
func (m *Manifest) Seal(dir string) error {
	if m.Format == 0 {
		m.Format = ManifestFormat
	}
	if err := m.validateEntries(); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("models: seal %s: %w", dir, err)
	}
	m.Files = map[string]FileInfo{}
	for _, e := range entries {
		if !e.Type().IsRegular() || e.Name() == ManifestFile || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		fi, err := HashFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return fmt.Errorf("models: seal %s: %w", dir, err)
		}
		m.Files[e.Name()] = fi
	}
	if m.Rules != "" {
		if _, ok := m.Files[m.Rules]; !ok {
			return fmt.Errorf("models: seal %s: the rules file %s is missing", dir, m.Rules)
		}
	}
	for role, me := range m.Models {
		for _, f := range me.files() {
			if _, ok := m.Files[f]; !ok {
				return fmt.Errorf("models: seal %s: model %s names missing file %s", dir, role, f)
			}
		}
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("models: encode manifest: %w", err)
	}
	return WriteFileAtomic(filepath.Join(dir, ManifestFile), append(b, '\n'))
}

func (me ModelEntry) files() []string {
	fs := []string{me.File}
	keys := make([]string, 0, len(me.Aux))
	for k := range me.Aux {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fs = append(fs, me.Aux[k])
	}
	return fs
}

func (m *Manifest) validateEntries() error {
	if m.Name == "" || m.Version == "" {
		return errors.New("models: manifest needs a name and a version")
	}
	if len(m.Models) == 0 {
		return errors.New("models: manifest lists no models")
	}
	if m.Rules != "" && (m.Rules != filepath.Base(m.Rules) || m.Rules == ManifestFile) {
		return fmt.Errorf("models: manifest: bad rules file name %q", m.Rules)
	}
	for role, me := range m.Models {
		if me.File == "" || len(me.Inputs) == 0 || len(me.Outputs) == 0 {
			return fmt.Errorf("models: manifest model %s needs a file, inputs and outputs", role)
		}
		for _, f := range me.files() {
			if f == "" || f != filepath.Base(f) || f == ManifestFile {
				return fmt.Errorf("models: manifest model %s: bad file name %q", role, f)
			}
		}
	}
	return nil
}

// ReadManifest reads dir/manifest.json and verifies the size and SHA-256 of
// every file it lists.
func ReadManifest(dir string) (*Manifest, error) {
	b, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return nil, fmt.Errorf("models: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("models: %s: %w", filepath.Join(dir, ManifestFile), err)
	}
	if m.Format != ManifestFormat {
		return nil, fmt.Errorf("models: %s: manifest format %d, this build reads %d", dir, m.Format, ManifestFormat)
	}
	if err := m.validateEntries(); err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, dir)
	}
	for role, me := range m.Models {
		for _, f := range me.files() {
			if _, ok := m.Files[f]; !ok {
				return nil, fmt.Errorf("models: %s: model %s file %s is not in the manifest's file list", dir, role, f)
			}
		}
	}
	if _, ok := m.Files[m.Rules]; m.Rules != "" && !ok {
		return nil, fmt.Errorf("models: %s: the rules file %s is not in the manifest's file list", dir, m.Rules)
	}
	names := make([]string, 0, len(m.Files))
	for n := range m.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if n != filepath.Base(n) {
			return nil, fmt.Errorf("models: %s: bad file name %q in manifest", dir, n)
		}
		got, err := HashFile(filepath.Join(dir, n))
		if err != nil {
			return nil, fmt.Errorf("models: %s: %w", dir, err)
		}
		if want := m.Files[n]; got != want {
			return nil, fmt.Errorf("models: %s: file %s does not match the manifest (size %d sha256 %s, want size %d sha256 %s)",
				dir, n, got.Size, got.SHA256[:12], want.Size, want.SHA256[:min(12, len(want.SHA256))])
		}
	}
	return &m, nil
}

// WriteFileAtomic writes data to path via a temporary file in the same
// directory and a rename, so readers see the old or the new file, never a
// partial one.
func WriteFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("models: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("models: write %s: %w", path, err)
	}
	return nil
}
