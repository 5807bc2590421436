// Command retrieval-eval measures knowledge-base retrieval quality on FAQ
// sets built from public datasets (see package evalret): it trains the
// local sentence encoder on the dataset's training split, exports it as
// int8 ONNX and runs it in ONNX Runtime, loads the FAQ set into a real store
// (memory or PostgreSQL + pgvector), tunes fusion weights on the dev split,
// and prints Recall@1, Recall@5 and MRR@10 on the test queries for
// lexical-only, vector-only and hybrid retrieval, next to a TF-IDF
// nearest-phrasing peer (scikit-learn, scripts/peers/retrieval_tfidf.py)
// run in the same invocation on the same FAQ set.
//
//	go run ./knowledge/cmd/retrieval-eval -dataset all
//	go run ./knowledge/cmd/retrieval-eval -dataset clinc150 -store postgres -database-url postgres://...
//
// It exits non-zero when hybrid is worse than the better single retriever
// or does not beat the peer (the gate of issue 4).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"time"

	"github.com/tandem-chat/tandem/knowledge"
	"github.com/tandem-chat/tandem/knowledge/embed"
	"github.com/tandem-chat/tandem/knowledge/evalret"
	"github.com/tandem-chat/tandem/knowledge/internal/cmdutil"
	"github.com/tandem-chat/tandem/knowledge/memstore"
	"github.com/tandem-chat/tandem/knowledge/pgstore"
	"github.com/tandem-chat/tandem/models"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "retrieval-eval:", err)
		os.Exit(1)
	}
}

// Result is the outcome on one dataset.
type Result struct {
	Dataset   string            `json:"dataset"`
	Store     string            `json:"store"`
	FAQs      int               `json:"faqs"`
	Encoder   string            `json:"encoder"`
	Fusion    knowledge.Fusion  `json:"fusion"`
	Lexical   evalret.Metrics   `json:"lexical"`
	Vector    evalret.Metrics   `json:"vector"`
	HybridRRF evalret.Metrics   `json:"hybrid_plain_rrf"`
	Hybrid    evalret.Metrics   `json:"hybrid"`
	Peer      *evalret.Metrics  `json:"peer_tfidf,omitempty"`
	Seconds   map[string]string `json:"seconds"`
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("retrieval-eval", flag.ContinueOnError)
	fs.SetOutput(stderr)
	root := cmdutil.Root()
	dataset := fs.String("dataset", "all", "clinc150, bitext or all")
	dataDir := fs.String("data", cmdutil.Datasets(root), "datasets directory")
	store := fs.String("store", "memory", "memory or postgres")
	dbURL := fs.String("database-url", os.Getenv("DATABASE_URL"), "PostgreSQL URL for -store postgres (an empty database, or one the tool may fill)")
	lib := fs.String("onnxruntime-lib", cmdutil.ONNXRuntimeLib(root), "ONNX Runtime shared library")
	peer := fs.String("peer", filepath.Join(root, "scripts", "peers", "retrieval_tfidf.py"), "TF-IDF peer script (empty to skip)")
	python := fs.String("python", "/usr/bin/python3", "Python with scikit-learn")
	epochs := fs.Int("epochs", 12, "encoder training epochs")
	dim := fs.Int("dim", 128, "encoder dimension")
	jsonOut := fs.String("json", "", "also write results as JSON to this file")
	saveModel := fs.String("save-encoder", "", "write each trained encoder into DIR/<dataset>/")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var names []string
	switch *dataset {
	case "all":
		names = []string{"clinc150", "bitext"}
	case "clinc150", "bitext":
		names = []string{*dataset}
	default:
		return fmt.Errorf("unknown -dataset %q", *dataset)
	}
	rt, err := models.OpenRuntime(*lib)
	if err != nil {
		return err
	}
	defer rt.Close()
	var results []Result
	failed := false
	for _, name := range names {
		var d *evalret.Dataset
		if name == "clinc150" {
			d, err = evalret.LoadCLINC150(filepath.Join(*dataDir, "clinc150", "data_full.json"))
		} else {
			d, err = evalret.LoadBitext(filepath.Join(*dataDir, "bitext-customer-support", "bitext_customer_support_20k.csv"))
		}
		if err != nil {
			return err
		}
		res, err := evalDataset(ctx, rt, d, *store, *dbURL, *epochs, *dim, *peer, *python, *saveModel, stderr)
		if err != nil {
			return fmt.Errorf("%s: %w", d.Name, err)
		}
		results = append(results, res)
		fmt.Fprintf(stdout, "\n%s (%d FAQs x %d phrasings, %d test queries, store %s, encoder %s)\n", res.Dataset, res.FAQs, evalret.PhrasingsPerFAQ, res.Hybrid.Queries, res.Store, res.Encoder)
		fmt.Fprintf(stdout, "  %-22s %s\n", "lexical (BM25)", res.Lexical)
		fmt.Fprintf(stdout, "  %-22s %s\n", "vector (int8 ONNX)", res.Vector)
		fmt.Fprintf(stdout, "  %-22s %s\n", "hybrid, plain RRF", res.HybridRRF)
		fmt.Fprintf(stdout, "  %-22s %s   fusion K=%g lexical=%g vector=%g (tuned on dev)\n", "hybrid, tuned", res.Hybrid, res.Fusion.K, res.Fusion.LexicalWeight, res.Fusion.VectorWeight)
		if res.Peer != nil {
			fmt.Fprintf(stdout, "  %-22s %s\n", "peer TF-IDF (sklearn)", *res.Peer)
		}
		better := max(res.Lexical.R1, res.Vector.R1)
		if res.Hybrid.R1+1e-9 < better || res.Hybrid.MRR+1e-9 < max(res.Lexical.MRR, res.Vector.MRR) {
			fmt.Fprintf(stdout, "  FAIL: hybrid is worse than the better single retriever\n")
			failed = true
		}
		if res.Peer != nil && (res.Hybrid.R1 <= res.Peer.R1 || res.Hybrid.R5 <= res.Peer.R5) {
			fmt.Fprintf(stdout, "  FAIL: hybrid does not beat the TF-IDF peer\n")
			failed = true
		}
	}
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(results, "", "  ")
		if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	if failed {
		return errors.New("quality gate failed")
	}
	return nil
}

func evalDataset(ctx context.Context, rt *models.Runtime, d *evalret.Dataset, storeKind, dbURL string, epochs, dim int, peer, python, saveDir string, log io.Writer) (Result, error) {
	res := Result{Dataset: d.Name, Store: storeKind, FAQs: len(d.FAQs), Seconds: map[string]string{}}
	t0 := time.Now()
	enc, err := embed.Train(ctx, d.Train, embed.TrainConfig{Epochs: epochs, Dim: dim, Logf: func(f string, a ...any) {
		fmt.Fprintf(log, "%s: "+f+"\n", append([]any{d.Name}, a...)...)
	}})
	if err != nil {
		return res, err
	}
	res.Seconds["train"] = fmt.Sprintf("%.1f", time.Since(t0).Seconds())
	model, man := enc.Export("kb-encoder-" + d.Name)
	if saveDir != "" {
		if err := embed.WriteFiles(filepath.Join(saveDir, d.Name), model, man); err != nil {
			return res, err
		}
	}
	local, err := embed.NewLocal(rt, model, man)
	if err != nil {
		return res, err
	}
	defer local.Close()
	res.Encoder = man.Version
	var s knowledge.Store
	switch storeKind {
	case "memory":
		s = memstore.New()
	case "postgres":
		if dbURL == "" {
			return res, errors.New("-store postgres needs -database-url or DATABASE_URL")
		}
		ps, err := pgstore.Open(ctx, dbURL, pgstore.Options{})
		if err != nil {
			return res, err
		}
		s = ps
	default:
		return res, fmt.Errorf("unknown -store %q", storeKind)
	}
	defer s.Close()
	t1 := time.Now()
	if err := evalret.Load(ctx, s, local, d.FAQs); err != nil {
		return res, err
	}
	res.Seconds["load"] = fmt.Sprintf("%.1f", time.Since(t1).Seconds())
	t2 := time.Now()
	dev, err := evalret.Retrieve(ctx, s, local, d.Dev)
	if err != nil {
		return res, err
	}
	fusion, _ := evalret.TuneFusion(dev)
	test, err := evalret.Retrieve(ctx, s, local, d.Test)
	if err != nil {
		return res, err
	}
	res.Seconds["search"] = fmt.Sprintf("%.1f", time.Since(t2).Seconds())
	res.Fusion = fusion
	res.Lexical, res.Vector = test.LexicalMetrics(), test.VectorMetrics()
	res.HybridRRF = test.HybridMetrics(knowledge.Fusion{}.Defaults())
	res.Hybrid = test.HybridMetrics(fusion)
	if peer != "" {
		m, err := runPeer(ctx, python, peer, d)
		if err != nil {
			return res, fmt.Errorf("peer: %w", err)
		}
		res.Peer = &m
	}
	return res, nil
}

// runPeer writes the FAQ set and test queries to a temporary JSON file and
// runs the TF-IDF peer on it.
func runPeer(ctx context.Context, python, script string, d *evalret.Dataset) (evalret.Metrics, error) {
	type faq struct {
		ID        string   `json:"id"`
		Phrasings []string `json:"phrasings"`
	}
	in := struct {
		FAQs    []faq           `json:"faqs"`
		Queries []evalret.Query `json:"queries"`
	}{Queries: d.Test}
	for _, f := range d.FAQs {
		n, err := knowledge.Normalize(f)
		if err != nil {
			return evalret.Metrics{}, err
		}
		in.FAQs = append(in.FAQs, faq{ID: n.ExternalID, Phrasings: knowledge.Texts(n)})
	}
	tmp, err := os.CreateTemp("", "retrieval-peer-*.json")
	if err != nil {
		return evalret.Metrics{}, err
	}
	defer os.Remove(tmp.Name())
	if err := json.NewEncoder(tmp).Encode(in); err != nil {
		return evalret.Metrics{}, err
	}
	tmp.Close()
	cmd := exec.CommandContext(ctx, python, script, tmp.Name())
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return evalret.Metrics{}, fmt.Errorf("%s %s: %w", python, script, err)
	}
	var m evalret.Metrics
	if err := json.Unmarshal(out, &m); err != nil {
		return evalret.Metrics{}, fmt.Errorf("peer output %q: %w", out, err)
	}
	return m, nil
}
