package data

import (
	"bytes"
	"encoding/csv"
	"errors"
	"io"
	"strings"
)

// readCSV parses a CSV file (readFile skips an optional UTF-8 byte-order mark)
// and calls row with each record and its line.
func readCSV(path string, row func(rec []string, line int) error) error {
	b, err := readFile(path)
	if err != nil {
		return err
	}
	r := csv.NewReader(bytes.NewReader(b))
	r.FieldsPerRecord = -1
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				if pe.StartLine > 0 && pe.StartLine != pe.Line {
					// An unterminated quote is found where the file ends:
					// name the record's first line, where it opened.
					return fileErr(path, pe.StartLine, "invalid CSV: %v (in the record that starts here, found at line %d)", pe.Err, pe.Line)
				}
				return fileErr(path, pe.Line, "invalid CSV: %v", pe.Err)
			}
			return fileErr(path, 0, "invalid CSV: %v", err)
		}
		line, _ := r.FieldPos(0)
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		if err := row(rec, line); err != nil {
			return err
		}
	}
}

// loadCSV reads plain CSV: two columns, text and intent. A first row naming
// them (text,intent or intent,text, any case) is a header; a first row that
// looks like another header (utterance,label, ...) is an error rather than
// an example, and so is a row with more or fewer than two fields (a text
// with a comma must be quoted).
func loadCSV(s Spec) (*Dataset, error) {
	if err := s.noSplits(); err != nil {
		return nil, err
	}
	ds := &Dataset{}
	first := true
	textCol, intentCol := 0, 1
	err := readCSV(s.Path, func(rec []string, line int) error {
		if len(rec) != 2 {
			return fileErr(s.Path, line, "want 2 columns text,intent, got %d (quote a text that contains a comma)", len(rec))
		}
		if first {
			first = false
			a, b := strings.ToLower(strings.TrimSpace(rec[0])), strings.ToLower(strings.TrimSpace(rec[1]))
			switch {
			case a == "text" && b == "intent":
				return nil
			case a == "intent" && b == "text":
				textCol, intentCol = 1, 0
				return nil
			case csvTextHeaders[a] && csvLabelHeaders[b], csvLabelHeaders[a] && csvTextHeaders[b]:
				return fileErr(s.Path, line, "header %q: name the columns text and intent (in either order)", rec)
			}
		}
		ex := Example{Text: rec[textCol], Intent: strings.TrimSpace(rec[intentCol])}
		if ex.Intent == "" {
			return fileErr(s.Path, line, "empty intent")
		}
		if err := checkExample(&ex); err != nil {
			return fileErr(s.Path, line, "%v", err)
		}
		ds.Examples = append(ds.Examples, ex)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(ds.Examples) == 0 {
		return nil, fileErr(s.Path, 0, "no examples")
	}
	return ds, nil
}

// Column names that make a first CSV row a header other than text,intent.
var (
	csvTextHeaders  = map[string]bool{"text": true, "utterance": true, "sentence": true, "example": true, "query": true, "question": true, "input": true, "instruction": true}
	csvLabelHeaders = map[string]bool{"intent": true, "label": true, "labels": true, "class": true, "category": true, "target": true}
)

// loadBitext reads the Bitext customer-support CSV: a header naming at least
// the columns utterance and intent (flags and category are ignored).
func loadBitext(s Spec) (*Dataset, error) {
	if err := s.noSplits(); err != nil {
		return nil, err
	}
	ds := &Dataset{}
	textCol, intentCol := -1, -1
	err := readCSV(s.Path, func(rec []string, line int) error {
		if textCol < 0 {
			for i, h := range rec {
				switch strings.ToLower(strings.TrimSpace(h)) {
				case "utterance", "instruction":
					textCol = i
				case "intent":
					intentCol = i
				}
			}
			if textCol < 0 || intentCol < 0 {
				return fileErr(s.Path, line, "header must name the columns utterance and intent, got %q", rec)
			}
			return nil
		}
		if len(rec) <= textCol || len(rec) <= intentCol {
			return fileErr(s.Path, line, "want at least %d columns, got %d", max(textCol, intentCol)+1, len(rec))
		}
		ex := Example{Text: rec[textCol], Intent: strings.TrimSpace(rec[intentCol])}
		if ex.Intent == "" {
			return fileErr(s.Path, line, "empty intent")
		}
		if err := checkExample(&ex); err != nil {
			return fileErr(s.Path, line, "%v", err)
		}
		ds.Examples = append(ds.Examples, ex)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if textCol < 0 {
		return nil, fileErr(s.Path, 0, "empty file")
	}
	if len(ds.Examples) == 0 {
		return nil, fileErr(s.Path, 0, "no examples (only the header)")
	}
	return ds, nil
}
