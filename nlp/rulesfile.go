package nlp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tandem-chat/tandem/models"
	"github.com/tandem-chat/tandem/nlp/data"
	"github.com/tandem-chat/tandem/nlp/rules"
)

// FileRules is the model directory's file of the training data's lookup
// tables, entity synonyms and regex entities (manifest field "rules").
const FileRules = "rules.json"

// datasetRules returns the lookup tables, synonyms and regex entities the
// training data declares (ds, and eds when it is other data), and whether
// there are any.
func datasetRules(ds, eds *data.Dataset) (rules.Config, bool) {
	var c rules.Config
	c = c.WithDataset(ds)
	if eds != nil && eds != ds {
		c = c.WithDataset(eds)
	}
	return c, len(c.Lookups)+len(c.Synonyms)+len(c.Regexes) > 0
}

// writeRules writes c into dir as FileRules, after checking the rule
// extractor accepts it (a regex entity that does not compile fails here,
// not when the server starts).
func writeRules(dir string, c rules.Config) error {
	if _, err := rules.New(c); err != nil {
		return fmt.Errorf("nlp: the training data's rule entities: %w", err)
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("nlp: encode rules: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, FileRules), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("nlp: %w", err)
	}
	return nil
}

// LoadRules returns base with the lookup tables, entity synonyms and regex
// entities of the model directory's training data added (base unchanged
// when the directory has none, as directories trained before this file
// existed). man is the directory's manifest as the models were loaded with
// (Classifier.Manifest: it is not read and verified again); the file is
// checked against it.
func LoadRules(dir string, man *models.Manifest, base rules.Config) (rules.Config, error) {
	if man.Rules == "" {
		return base, nil
	}
	b, err := man.ReadFile(dir, man.Rules)
	if err != nil {
		return base, fmt.Errorf("nlp: %w", err)
	}
	var c rules.Config
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return base, fmt.Errorf("nlp: %s: %w", filepath.Join(dir, man.Rules), err)
	}
	return base.WithDataset(&data.Dataset{Lookups: c.Lookups, Synonyms: c.Synonyms, Regexes: c.Regexes}), nil
}
