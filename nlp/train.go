package nlp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/tandem-chat/tandem/models"
	"github.com/tandem-chat/tandem/nlp/data"
	"github.com/tandem-chat/tandem/nlp/entity"
	"github.com/tandem-chat/tandem/nlp/intent"
)

// Manifest roles and kinds of the entity tagger.
const (
	RoleEntity = "entity"
	EntityKind = "entity-crf-bio"
)

// TrainOptions configure TrainDir.
type TrainOptions struct {
	Data    *data.Dataset // training data (required)
	Valid   *data.Dataset // validation data; nil holds out a slice of Data
	Out     string        // model directory to write (int8 weights)
	FP32Out string        // optional second directory with the fp32 export
	Intent  intent.Config // intent trainer configuration
	// EntityData is the data the entity tagger learns from. Nil means
	// Data. The tagger is trained when this data has entity spans (and
	// NoEntity is false); `tandem train` passes only the data sets that
	// carry annotations, since a set without any annotation is unannotated
	// rather than entity-free.
	EntityData *data.Dataset
	Entity     entity.Config // entity trainer configuration (zero: defaults; Seed is taken from Intent.Seed when 0)
	NoEntity   bool          // never train an entity tagger
	Name       string        // manifest name (default: base name of Out)
	Version    string        // manifest version (default: created time + data digest prefix)
	Progress   intent.Progress
}

// TrainResult is what TrainDir produced.
type TrainResult struct {
	Manifest *models.Manifest
	Intent   *intent.Model
	Entity   *entity.Model // nil when no tagger was trained
	Elapsed  time.Duration
}

// TrainDir trains the models on opt.Data and writes a complete model
// directory at opt.Out: the ONNX graphs, their auxiliary files and a sealed
// manifest. The directory is assembled beside Out and renamed into place,
// so a reader never sees a half-written model directory.
func TrainDir(ctx context.Context, opt TrainOptions) (*TrainResult, error) {
	if opt.Data == nil || opt.Out == "" {
		return nil, errors.New("nlp: train needs data and an output directory")
	}
	if opt.Valid != nil && len(opt.Valid.Examples) == 0 {
		return nil, errors.New("nlp: the validation data has no examples")
	}
	// Settings are checked before minutes of training, not after.
	if err := opt.Intent.Validate(); err != nil {
		return nil, err
	}
	if !opt.NoEntity {
		if err := opt.Entity.Validate(); err != nil {
			return nil, err
		}
	}
	if opt.Valid != nil {
		// The threshold is chosen on the validation data: without one
		// example of an intent the model knows it would be chosen on
		// nothing (0) and the run would look successful.
		known := map[string]bool{}
		for _, ex := range opt.Data.Examples {
			known[ex.Intent] = true
		}
		usable := 0
		for _, ex := range opt.Valid.Examples {
			if ex.Intent != "" && known[ex.Intent] {
				usable++
			}
		}
		if usable == 0 {
			return nil, fmt.Errorf("nlp: none of the validation data's %d examples has an intent of the training data", len(opt.Valid.Examples))
		}
	}
	// Refuse an output that is not ours to replace before training, not
	// after minutes of it.
	if err := checkOutDir(opt.Out); err != nil {
		return nil, err
	}
	if opt.FP32Out != "" {
		if err := checkOutDir(opt.FP32Out); err != nil {
			return nil, err
		}
		a, errA := resolvePath(opt.Out)
		b, errB := resolvePath(opt.FP32Out)
		if err := errors.Join(errA, errB); err != nil {
			return nil, fmt.Errorf("nlp: %w", err)
		}
		if a == b || within(a, b) || within(b, a) {
			return nil, fmt.Errorf("nlp: the int8 and fp32 exports need two separate directories, neither inside the other (%s, %s)", opt.Out, opt.FP32Out)
		}
	}
	start := time.Now()
	m, err := intent.Train(ctx, opt.Data, opt.Valid, opt.Intent, opt.Progress)
	if err != nil {
		return nil, err
	}
	res := &TrainResult{Intent: m}
	eds := opt.EntityData
	if eds == nil {
		eds = opt.Data
	}
	if !opt.NoEntity && eds.HasEntities() {
		ecfg := opt.Entity
		if ecfg.Seed == 0 {
			ecfg.Seed = int64(opt.Intent.Seed)
		}
		var pw io.Writer
		if opt.Progress != nil {
			pw = progressWriter(opt.Progress)
		}
		if res.Entity, err = entity.Train(ctx, eds, ecfg, pw); err != nil {
			return nil, err
		}
	}
	name := opt.Name
	if name == "" {
		name = filepath.Base(filepath.Clean(opt.Out))
	}
	digest := opt.Data.Digest()
	created := time.Now().UTC().Truncate(time.Second)
	version := opt.Version
	if version == "" {
		version = created.Format("20060102T150405Z") + "-" + digest[:8]
	}
	sources := strings.Split(opt.Data.Source, " + ")
	write := func(dir string, int8 bool) (*models.Manifest, error) {
		return writeDir(dir, func(tmp string) (*models.Manifest, error) {
			entry, err := m.Save(tmp, int8)
			if err != nil {
				return nil, err
			}
			prec := intent.PrecisionFP32
			if int8 {
				prec = intent.PrecisionInt8
			}
			man := &models.Manifest{
				Name: name, Version: version, Created: created,
				Producer:  "tandem train (" + runtime.Version() + ")",
				Precision: prec,
				Data:      models.DataInfo{Sources: sources, Digest: digest, Examples: len(opt.Data.Examples)},
				Models:    map[string]models.ModelEntry{intent.RoleIntent: entry},
			}
			if res.Entity != nil {
				ee, err := saveEntity(res.Entity, tmp, int8)
				if err != nil {
					return nil, err
				}
				man.Models[RoleEntity] = ee
			}
			if rc, ok := datasetRules(opt.Data, opt.EntityData); ok {
				if err := writeRules(tmp, rc); err != nil {
					return nil, err
				}
				man.Rules = FileRules
			}
			return man, man.Seal(tmp)
		})
	}
	// The fp32 export first: a run that fails writing it leaves the int8
	// directory (the one served) as it was.
	if opt.FP32Out != "" {
		if _, err := write(opt.FP32Out, false); err != nil {
			return nil, err
		}
	}
	if res.Manifest, err = write(opt.Out, true); err != nil {
		return nil, err
	}
	res.Elapsed = time.Since(start)
	return res, nil
}

// checkOutDir returns an error unless dir may be written by writeDir: it does
// not exist, or it is an empty directory or a model directory (one with a
// manifest), which is replaced. Anything else (a file, a directory of other
// things such as the training data) is refused rather than deleted.
func checkOutDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if _, lerr := os.Lstat(dir); lerr == nil {
			return fmt.Errorf("nlp: output %s is a symbolic link to nothing usable: %w", dir, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("nlp: output %s: %w", dir, err)
	case !fi.IsDir():
		return fmt.Errorf("nlp: output %s exists and is not a directory; refusing to replace it", dir)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("nlp: output %s: %w", dir, err)
	}
	if len(ents) == 0 {
		return nil
	}
	if _, err := os.Stat(filepath.Join(dir, models.ManifestFile)); err != nil {
		return fmt.Errorf("nlp: output %s exists and is not a model directory (no %s); refusing to replace what is in it", dir, models.ManifestFile)
	}
	return nil
}

// resolvePath returns p absolute with the symbolic links of its longest
// existing prefix resolved, so two spellings of one place compare equal.
func resolvePath(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	rest := ""
	for cur := abs; ; {
		if r, err := filepath.EvalSymlinks(cur); err == nil {
			return filepath.Join(r, rest), nil
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return abs, nil
		}
		rest = filepath.Join(filepath.Base(cur), rest)
		cur = parent
	}
}

// within reports whether path p lies strictly inside directory dir (both
// resolved).
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// writeDir builds a directory with fill in a temporary sibling of dir and
// swaps it into place (the previous directory, if any, is removed after; it
// must pass checkOutDir).
func writeDir(dir string, fill func(tmp string) (*models.Manifest, error)) (*models.Manifest, error) {
	dir = filepath.Clean(dir)
	if err := checkOutDir(dir); err != nil {
		return nil, err
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("nlp: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".new-")
	if err != nil {
		return nil, fmt.Errorf("nlp: %w", err)
	}
	man, err := fill(tmp)
	if err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("nlp: %w", err)
	}
	var old string
	if _, err := os.Stat(dir); err == nil {
		old = filepath.Join(parent, "."+filepath.Base(dir)+".old-"+fmt.Sprint(time.Now().UnixNano()))
		if err := os.Rename(dir, old); err != nil {
			os.RemoveAll(tmp)
			return nil, fmt.Errorf("nlp: replace %s: %w", dir, err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		if old != "" {
			_ = os.Rename(old, dir)
		}
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("nlp: install %s: %w", dir, err)
	}
	if old != "" {
		os.RemoveAll(old)
	}
	return man, nil
}

// saveEntity writes the tagger's files into dir and returns its manifest
// entry. The fp32 directory serves entity.fp32.onnx (the int8 graph the
// entity package always writes is removed there).
func saveEntity(m *entity.Model, dir string, int8 bool) (models.ModelEntry, error) {
	m.SetExportFP32(!int8)
	_, err := m.Save(dir)
	m.SetExportFP32(false)
	if err != nil {
		return models.ModelEntry{}, err
	}
	file := entity.FileONNX
	if !int8 {
		file = entity.FileONNXFP32
		if err := os.Remove(filepath.Join(dir, entity.FileONNX)); err != nil {
			return models.ModelEntry{}, fmt.Errorf("nlp: %w", err)
		}
	}
	info := m.Info()
	feat, _ := json.Marshal(m.Features)
	train, _ := json.Marshal(info)
	return models.ModelEntry{
		Kind: EntityKind, File: file,
		Inputs: []string{entity.InputIDs, entity.InputWeights}, Outputs: []string{entity.OutputScores},
		Labels: m.Types, Aux: map[string]string{"vocab": entity.FileVocab, "crf": entity.FileManifest},
		Features: feat, Training: train,
	}, nil
}

// progressWriter adapts a Progress to an io.Writer (one call per line).
func progressWriter(p intent.Progress) io.Writer {
	return writerFunc(func(b []byte) (int, error) {
		for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
			p("%s", line)
		}
		return len(b), nil
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }
