// Package evalret measures retrieval quality of the knowledge base on FAQ
// sets built from public intent datasets, as issue 4 specifies: one FAQ per
// intent whose phrasings are the intent's first 5 training utterances;
// queries are the in-scope test utterances (CLINC150 `test`; Bitext: a
// shuffled 80/20 split with a fixed seed). It reports Recall@1, Recall@5
// and MRR@10 for lexical-only, vector-only and hybrid retrieval through a
// real knowledge.Store, and tunes fusion weights on a development split
// that is disjoint from the test queries.
//
// Contract: loaders are deterministic (fixed seeds); Evaluate only reads
// the store.
package evalret

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sort"
	"strings"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/knowledge"
	"github.com/tandem-chat/tandem/knowledge/embed"
)

// Query is one labelled query: its text and the external id of the right FAQ.
type Query struct {
	Text string `json:"text"`
	FAQ  string `json:"faq"`
}

// Dataset is an FAQ set with its queries and training data.
type Dataset struct {
	Name  string
	FAQs  []tandem.FAQ // ExternalID = intent
	Train []embed.Example
	Dev   []Query // for tuning fusion; disjoint from Test
	Test  []Query
}

// PhrasingsPerFAQ is the number of training utterances per FAQ.
const PhrasingsPerFAQ = 5

func buildFAQs(train [][2]string) []tandem.FAQ {
	by := map[string][]string{}
	var order []string
	for _, ex := range train {
		text, intent := ex[0], ex[1]
		if _, ok := by[intent]; !ok {
			order = append(order, intent)
		}
		if len(by[intent]) < PhrasingsPerFAQ {
			by[intent] = append(by[intent], text)
		}
	}
	sort.Strings(order)
	faqs := make([]tandem.FAQ, 0, len(order))
	for i, intent := range order {
		p := by[intent]
		faqs = append(faqs, tandem.FAQ{ExternalID: intent, Question: p[0], Phrasings: p[1:],
			Answer: fmt.Sprintf("Answer %d.", i+1), Locale: "en", Status: tandem.FAQPublished})
	}
	return faqs
}

// LoadCLINC150 reads data_full.json: FAQs and encoder training from
// `train`, fusion tuning on `val`, queries from `test` (all in scope).
func LoadCLINC150(path string) (*Dataset, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("evalret: %w", err)
	}
	var raw map[string][][2]string
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("evalret: parse %s: %w", path, err)
	}
	d := &Dataset{Name: "CLINC150", FAQs: buildFAQs(raw["train"])}
	for _, ex := range raw["train"] {
		d.Train = append(d.Train, embed.Example{Text: ex[0], Label: ex[1]})
	}
	for _, ex := range raw["val"] {
		d.Dev = append(d.Dev, Query{Text: ex[0], FAQ: ex[1]})
	}
	for _, ex := range raw["test"] {
		d.Test = append(d.Test, Query{Text: ex[0], FAQ: ex[1]})
	}
	return d, nil
}

// BitextSeed fixes the shuffle of the Bitext split.
const BitextSeed = 20240601

// LoadBitext reads the Bitext customer-support CSV, shuffles it with
// BitextSeed and splits 80/20 into train and test. FAQs come from the
// train split; the last 10% of the train split is held out as the dev set
// for fusion tuning and not used to train the encoder.
func LoadBitext(path string) (*Dataset, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("evalret: %w", err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("evalret: %s header: %w", path, err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.TrimPrefix(strings.TrimSpace(h), "\ufeff")] = i
	}
	ui, ok1 := col["utterance"]
	ii, ok2 := col["intent"]
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("evalret: %s lacks utterance/intent columns", path)
	}
	var rows [][2]string
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("evalret: %s: %w", path, err)
		}
		rows = append(rows, [2]string{rec[ui], rec[ii]})
	}
	rng := rand.New(rand.NewPCG(BitextSeed, 0))
	rng.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
	cut := len(rows) * 8 / 10
	train, test := rows[:cut], rows[cut:]
	d := &Dataset{Name: "Bitext", FAQs: buildFAQs(train)}
	devCut := len(train) * 9 / 10
	for i, ex := range train {
		if i < devCut {
			d.Train = append(d.Train, embed.Example{Text: ex[0], Label: ex[1]})
		} else {
			d.Dev = append(d.Dev, Query{Text: ex[0], FAQ: ex[1]})
		}
	}
	for _, ex := range test {
		d.Test = append(d.Test, Query{Text: ex[0], FAQ: ex[1]})
	}
	return d, nil
}

// Metrics are ranking quality figures over a query set.
type Metrics struct {
	Queries int     `json:"queries"`
	R1      float64 `json:"recall_at_1"`
	R5      float64 `json:"recall_at_5"`
	MRR     float64 `json:"mrr_at_10"`
}

func (m Metrics) String() string {
	return fmt.Sprintf("R@1 %.3f  R@5 %.3f  MRR@10 %.3f  (n=%d)", m.R1, m.R5, m.MRR, m.Queries)
}

// Ranked holds the candidate lists of each retriever for every query, so
// several fusions can be scored without searching again.
type Ranked struct {
	Queries []Query
	Lexical [][]knowledge.Scored
	Vector  [][]knowledge.Scored
}

// Candidates is the depth of each retriever's list.
const Candidates = 50

// Retrieve runs both retrievers for every query against the store.
func Retrieve(ctx context.Context, s knowledge.Store, enc knowledge.Embedder, qs []Query) (*Ranked, error) {
	r := &Ranked{Queries: qs, Lexical: make([][]knowledge.Scored, len(qs)), Vector: make([][]knowledge.Scored, len(qs))}
	for i := 0; i < len(qs); i += 256 {
		j := min(i+256, len(qs))
		texts := make([]string, 0, j-i)
		for _, q := range qs[i:j] {
			texts = append(texts, q.Text)
		}
		vecs, err := enc.Embed(ctx, texts)
		if err != nil {
			return nil, err
		}
		for k := i; k < j; k++ {
			lex, err := s.LexicalSearch(ctx, qs[k].Text, knowledge.Filter{PublishedOnly: true}, Candidates)
			if err != nil {
				return nil, err
			}
			vec, err := s.VectorSearch(ctx, enc.Version(), vecs[k-i], knowledge.Filter{PublishedOnly: true}, Candidates)
			if err != nil {
				return nil, err
			}
			r.Lexical[k], r.Vector[k] = lex, vec
		}
	}
	return r, nil
}

func score(qs []Query, ranked func(i int) []string) Metrics {
	m := Metrics{Queries: len(qs)}
	for i, q := range qs {
		for rank, ext := range ranked(i) {
			if ext != q.FAQ {
				continue
			}
			if rank == 0 {
				m.R1++
			}
			if rank < 5 {
				m.R5++
			}
			if rank < 10 {
				m.MRR += 1 / float64(rank+1)
			}
			break
		}
	}
	n := float64(len(qs))
	m.R1, m.R5, m.MRR = m.R1/n, m.R5/n, m.MRR/n
	return m
}

func exts(xs []knowledge.Scored) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = x.FAQ.ExternalID
	}
	return out
}

// Lexical scores the lexical lists alone.
func (r *Ranked) LexicalMetrics() Metrics {
	return score(r.Queries, func(i int) []string { return exts(r.Lexical[i]) })
}

// VectorMetrics scores the vector lists alone.
func (r *Ranked) VectorMetrics() Metrics {
	return score(r.Queries, func(i int) []string { return exts(r.Vector[i]) })
}

// HybridMetrics scores the fusion of both lists.
func (r *Ranked) HybridMetrics(f knowledge.Fusion) Metrics {
	return score(r.Queries, func(i int) []string {
		hits := f.Fuse(map[string][]knowledge.Scored{knowledge.RetrieverLexical: r.Lexical[i], knowledge.RetrieverVector: r.Vector[i]}, 10)
		out := make([]string, len(hits))
		for j, h := range hits {
			out[j] = h.FAQ.ExternalID
		}
		return out
	})
}

// TuneFusion picks the fusion (K and the lexical weight, vector weight 1)
// with the best MRR on r, which must be a development set.
func TuneFusion(r *Ranked) (knowledge.Fusion, Metrics) {
	best := knowledge.Fusion{K: 60, LexicalWeight: 1, VectorWeight: 1}
	bestM := r.HybridMetrics(best)
	for _, k := range []float64{1, 5, 10, 20, 60} {
		for _, lw := range []float64{0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1, 1.25, 1.5, 2} {
			f := knowledge.Fusion{K: k, LexicalWeight: lw, VectorWeight: 1}
			m := r.HybridMetrics(f)
			if m.MRR > bestM.MRR+1e-9 || (m.MRR > bestM.MRR-1e-9 && m.R1 > bestM.R1) {
				best, bestM = f, m
			}
		}
	}
	return best, bestM
}

// Load stores the dataset's FAQs with vectors from enc.
func Load(ctx context.Context, s knowledge.Store, enc knowledge.Embedder, faqs []tandem.FAQ) error {
	if err := s.RegisterModel(ctx, enc.Version(), enc.Dim()); err != nil {
		return err
	}
	var ws []knowledge.Write
	for _, f := range faqs {
		n, err := knowledge.Normalize(f)
		if err != nil {
			return fmt.Errorf("evalret: FAQ %s: %w", f.ExternalID, err)
		}
		vecs, err := enc.Embed(ctx, knowledge.Texts(n))
		if err != nil {
			return err
		}
		ws = append(ws, knowledge.Write{FAQ: n, Actor: "evalret", Embeddings: []knowledge.Embedding{{Model: enc.Version(), Vectors: vecs}}})
	}
	for i := 0; i < len(ws); i += 500 {
		if _, err := s.Import(ctx, ws[i:min(i+500, len(ws))], false); err != nil {
			return err
		}
	}
	return s.ActivateModel(ctx, enc.Version())
}
