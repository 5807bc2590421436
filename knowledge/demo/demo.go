// Package demo is the demo knowledge pack: 45 FAQs for Pinecone Market, a
// fictional online store (orders, shipping, returns, refunds, payments,
// account, privacy, contact), written for Tandem and embedded in the
// binary. The server loads it at start when the demo is enabled.
//
// Contract: Load is idempotent — every item has a stable external id
// ("demo-..."), so loading again leaves unchanged items untouched and does
// not overwrite content teams' edits unless they are in the pack itself.
package demo

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/knowledge"
)

//go:embed faqs.json
var faqsJSON []byte

// Actor is the audit name of demo writes.
const Actor = "demo-pack"

// FAQs returns the parsed, validated pack.
func FAQs() ([]tandem.FAQ, error) {
	recs, err := knowledge.ParseImport(bytes.NewReader(faqsJSON), knowledge.FormatJSON)
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	out := make([]tandem.FAQ, 0, len(recs))
	for _, r := range recs {
		if r.Err != nil {
			return nil, fmt.Errorf("demo: row %d: %w", r.Row, r.Err)
		}
		out = append(out, r.FAQ)
	}
	return out, nil
}

// Importer is what Load needs; *knowledge.Service implements it.
type Importer interface {
	Import(ctx context.Context, actor string, recs []knowledge.Record, opts knowledge.ImportOptions) (knowledge.ImportReport, error)
}

// Load upserts the pack through the service (one transaction) and returns
// the report.
func Load(ctx context.Context, svc Importer) (knowledge.ImportReport, error) {
	recs, err := knowledge.ParseImport(bytes.NewReader(faqsJSON), knowledge.FormatJSON)
	if err != nil {
		return knowledge.ImportReport{}, fmt.Errorf("demo: %w", err)
	}
	rep, err := svc.Import(ctx, Actor, recs, knowledge.ImportOptions{})
	if err != nil {
		return rep, fmt.Errorf("demo: load: %w", err)
	}
	if rep.Failed > 0 {
		return rep, fmt.Errorf("demo: %d invalid rows in the embedded pack", rep.Failed)
	}
	return rep, nil
}
