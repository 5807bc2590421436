// Command kb-bench measures knowledge search latency at 1k, 10k and 100k
// FAQs on the memory and PostgreSQL + pgvector stores, the cache-hit path,
// and HNSW recall@10 against exact search.
//
// FAQs are synthetic but realistic: each has a question and one
// alternative phrasing drawn from the pool of CLINC150 and Bitext
// utterances (so vectors come from the trained encoder, not random
// noise); queries are CLINC150 test utterances. The encoder is trained on
// the CLINC150 training split (or loaded with -encoder), exported as int8
// ONNX and run in ONNX Runtime; searches go through knowledge.Service
// (hybrid, cache bypassed) exactly as the bot's would.
//
//	go run ./knowledge/cmd/kb-bench -sizes 1000,10000,100000 -database-url postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable
//
// -database-url is an admin URL: the tool creates (and drops) one database
// per size.
package main

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tandem-chat/tandem"
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
		fmt.Fprintln(os.Stderr, "kb-bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kb-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	root := cmdutil.Root()
	sizesFlag := fs.String("sizes", "1000,10000,100000", "FAQ counts")
	stores := fs.String("stores", "memory,postgres", "stores to measure")
	dbURL := fs.String("database-url", os.Getenv("TEST_DATABASE_URL"), "admin PostgreSQL URL (databases are created per size)")
	dataDir := fs.String("data", cmdutil.Datasets(root), "datasets directory")
	lib := fs.String("onnxruntime-lib", cmdutil.ONNXRuntimeLib(root), "ONNX Runtime library")
	encDir := fs.String("encoder", "", "directory with kb-encoder.onnx/json (default: train one on CLINC150)")
	nq := fs.Int("queries", 300, "queries per measurement")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var sizes []int
	for _, s := range strings.Split(*sizesFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			return fmt.Errorf("bad size %q", s)
		}
		sizes = append(sizes, n)
	}
	clinc, err := evalret.LoadCLINC150(filepath.Join(*dataDir, "clinc150", "data_full.json"))
	if err != nil {
		return err
	}
	bitext, err := evalret.LoadBitext(filepath.Join(*dataDir, "bitext-customer-support", "bitext_customer_support_20k.csv"))
	if err != nil {
		return err
	}
	rt, err := models.OpenRuntime(*lib)
	if err != nil {
		return err
	}
	defer rt.Close()
	var enc *embed.Local
	if *encDir != "" {
		enc, err = embed.OpenLocal(rt, *encDir)
	} else {
		fmt.Fprintln(stderr, "training the encoder on CLINC150 train (6 epochs)...")
		var e *embed.Encoder
		e, err = embed.Train(ctx, clinc.Train, embed.TrainConfig{Epochs: 6})
		if err == nil {
			model, man := e.Export("kb-bench")
			enc, err = embed.NewLocal(rt, model, man)
		}
	}
	if err != nil {
		return err
	}
	defer enc.Close()

	var pool []string
	seen := map[string]bool{}
	for _, ex := range append(append([]embed.Example{}, clinc.Train...), bitext.Train...) {
		if !seen[ex.Text] {
			seen[ex.Text] = true
			pool = append(pool, ex.Text)
		}
	}
	var queries []string
	for i, q := range clinc.Test {
		if i%(len(clinc.Test)/(*nq)) == 0 && len(queries) < *nq {
			queries = append(queries, q.Text)
		}
	}
	fmt.Fprintf(stdout, "encoder %s (dim %d); %d pool utterances; %d queries; sizes %v\n\n", enc.Version(), enc.Dim(), len(pool), len(queries), sizes)
	fmt.Fprintf(stdout, "| FAQs | store | load | hybrid p50 | hybrid p99 | lexical p50 | vector p50 | cache hit p50 | cache hit p99 | HNSW recall@10 |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, n := range sizes {
		faqs := synth(pool, n)
		ws, err := writes(ctx, enc, faqs)
		if err != nil {
			return err
		}
		mem := memstore.New()
		t0 := time.Now()
		if err := load(ctx, mem, enc, ws); err != nil {
			return err
		}
		memLoad := time.Since(t0)
		if strings.Contains(*stores, "memory") {
			r, err := measure(ctx, mem, enc, queries)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "| %d | memory (exact) | %s | %s | %s | %s | %s | %s | %s | 1 (exact) |\n", n, memLoad.Round(time.Millisecond), r.hybrid.p(50), r.hybrid.p(99), r.lexical.p(50), r.vector.p(50), r.cache.p(50), r.cache.p(99))
		}
		if strings.Contains(*stores, "postgres") {
			if *dbURL == "" {
				return fmt.Errorf("-database-url is required for the postgres store")
			}
			dbu, drop, err := createDB(ctx, *dbURL)
			if err != nil {
				return err
			}
			pg, err := pgstore.Open(ctx, dbu, pgstore.Options{})
			if err != nil {
				drop()
				return err
			}
			t1 := time.Now()
			if err := load(ctx, pg, enc, ws); err != nil {
				pg.Close()
				drop()
				return err
			}
			pgLoad := time.Since(t1)
			if _, err := pg.Pool().Exec(ctx, "VACUUM ANALYZE"); err != nil {
				return err
			}
			r, err := measure(ctx, pg, enc, queries)
			if err != nil {
				return err
			}
			recall, err := hnswRecall(ctx, pg, mem, enc, queries)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "| %d | postgres (HNSW) | %s | %s | %s | %s | %s | %s | %s | %.3f |\n", n, pgLoad.Round(time.Millisecond), r.hybrid.p(50), r.hybrid.p(99), r.lexical.p(50), r.vector.p(50), r.cache.p(50), r.cache.p(99), recall)
			pg.Close()
			drop()
		}
	}
	return nil
}

// synth builds n FAQs, each a question and one alternative phrasing drawn
// from the pool with a fixed seed.
func synth(pool []string, n int) []tandem.FAQ {
	rng := rand.New(rand.NewPCG(42, uint64(n)))
	out := make([]tandem.FAQ, n)
	for i := range out {
		q := pool[rng.IntN(len(pool))]
		p := pool[rng.IntN(len(pool))]
		out[i] = tandem.FAQ{ExternalID: fmt.Sprintf("bench-%07d", i), Question: q, Phrasings: []string{p},
			Answer: fmt.Sprintf("Answer %d.", i), Locale: "en", Status: tandem.FAQPublished}
	}
	return out
}

func writes(ctx context.Context, enc knowledge.Embedder, faqs []tandem.FAQ) ([]knowledge.Write, error) {
	ws := make([]knowledge.Write, 0, len(faqs))
	var texts []string
	var norm []tandem.FAQ
	for _, f := range faqs {
		n, err := knowledge.Normalize(f)
		if err != nil {
			return nil, err
		}
		norm = append(norm, n)
		texts = append(texts, knowledge.Texts(n)...)
	}
	vecs, err := enc.Embed(ctx, texts)
	if err != nil {
		return nil, err
	}
	off := 0
	for _, n := range norm {
		k := len(knowledge.Texts(n))
		ws = append(ws, knowledge.Write{FAQ: n, Actor: "kb-bench", Embeddings: []knowledge.Embedding{{Model: enc.Version(), Vectors: vecs[off : off+k]}}})
		off += k
	}
	return ws, nil
}

func load(ctx context.Context, s knowledge.Store, enc knowledge.Embedder, ws []knowledge.Write) error {
	if err := s.RegisterModel(ctx, enc.Version(), enc.Dim()); err != nil {
		return err
	}
	for i := 0; i < len(ws); i += 1000 {
		if _, err := s.Import(ctx, ws[i:min(i+1000, len(ws))], false); err != nil {
			return err
		}
	}
	return s.ActivateModel(ctx, enc.Version())
}

type durations []time.Duration

func (d durations) p(q int) string {
	if len(d) == 0 {
		return "-"
	}
	s := append(durations(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := min(len(s)-1, (len(s)*q+99)/100-1)
	v := s[max(i, 0)]
	switch {
	case v < time.Millisecond:
		return fmt.Sprintf("%.0f µs", float64(v)/float64(time.Microsecond))
	default:
		return fmt.Sprintf("%.2f ms", float64(v)/float64(time.Millisecond))
	}
}

type timings struct{ hybrid, lexical, vector, cache durations }

func measure(ctx context.Context, s knowledge.Store, enc knowledge.Embedder, queries []string) (timings, error) {
	var t timings
	svc, err := knowledge.NewService(knowledge.Config{Store: s, Embedder: enc, Fusion: knowledge.Fusion{K: 5, LexicalWeight: 0.1, VectorWeight: 1}})
	if err != nil {
		return t, err
	}
	defer svc.Close()
	if err := svc.Start(ctx); err != nil {
		return t, err
	}
	// warm up
	for _, q := range queries[:min(20, len(queries))] {
		if _, err := svc.Search(ctx, knowledge.SearchRequest{Query: q, NoCache: true}); err != nil {
			return t, err
		}
	}
	for _, m := range []struct {
		mode knowledge.Mode
		dst  *durations
	}{{knowledge.ModeHybrid, &t.hybrid}, {knowledge.ModeLexical, &t.lexical}, {knowledge.ModeVector, &t.vector}} {
		for _, q := range queries {
			start := time.Now()
			if _, err := svc.Search(ctx, knowledge.SearchRequest{Query: q, Mode: m.mode, NoCache: true, Filter: knowledge.Filter{PublishedOnly: true}}); err != nil {
				return t, err
			}
			*m.dst = append(*m.dst, time.Since(start))
		}
	}
	for _, q := range queries {
		if _, err := svc.Search(ctx, knowledge.SearchRequest{Query: q}); err != nil {
			return t, err
		}
	}
	for _, q := range queries {
		start := time.Now()
		res, err := svc.Search(ctx, knowledge.SearchRequest{Query: q})
		if err != nil {
			return t, err
		}
		if !res.Cached {
			return t, fmt.Errorf("second search of %q was not a cache hit", q)
		}
		t.cache = append(t.cache, time.Since(start))
	}
	return t, nil
}

// hnswRecall compares the HNSW top-10 FAQs with the exact top-10 of the
// memory store holding the same vectors.
func hnswRecall(ctx context.Context, pg, exact knowledge.Store, enc knowledge.Embedder, queries []string) (float64, error) {
	vecs, err := enc.Embed(ctx, queries)
	if err != nil {
		return 0, err
	}
	var sum float64
	for _, v := range vecs {
		a, err := pg.VectorSearch(ctx, enc.Version(), v, knowledge.Filter{}, 10)
		if err != nil {
			return 0, err
		}
		b, err := exact.VectorSearch(ctx, enc.Version(), v, knowledge.Filter{}, 10)
		if err != nil {
			return 0, err
		}
		want := map[string]bool{}
		for _, h := range b {
			want[h.FAQ.ExternalID] = true
		}
		hit := 0
		for _, h := range a {
			if want[h.FAQ.ExternalID] {
				hit++
			}
		}
		sum += float64(hit) / float64(len(b))
	}
	return sum / float64(len(vecs)), nil
}

func createDB(ctx context.Context, adminURL string) (string, func(), error) {
	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", nil, err
	}
	var b [5]byte
	_, _ = crand.Read(b[:])
	name := "kbbench_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		admin.Close(ctx)
		return "", nil, err
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		return "", nil, err
	}
	u.Path = "/" + name
	drop := func() {
		_, _ = admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		admin.Close(context.Background())
	}
	return u.String(), drop, nil
}
