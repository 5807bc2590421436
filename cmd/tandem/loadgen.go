package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/eval"
	"github.com/tandem-chat/tandem/knowledge"
	"github.com/tandem-chat/tandem/knowledge/demo"
	"github.com/tandem-chat/tandem/models"
	"github.com/tandem-chat/tandem/nlp/data"
	"github.com/tandem-chat/tandem/pipeline"
)

// loadResult is one load run.
type loadResult struct {
	Concurrency int              `json:"concurrency"`
	Batching    bool             `json:"batching"`
	Cache       bool             `json:"cache"`
	Turns       int              `json:"turns"`
	Errors      int64            `json:"errors"`
	Overloaded  int64            `json:"overloaded"`
	Seconds     float64          `json:"seconds"`
	TurnsPerSec float64          `json:"turns_per_s"`
	Latency     eval.Latency     `json:"latency"`
	Kinds       map[string]int64 `json:"kinds"`
	CacheHits   int64            `json:"cache_hits"`
	OfferedRate float64          `json:"offered_rate,omitempty"` // open loop: arrivals per second
	CPUPerTurn  float64          `json:"cpu_us_per_turn"`        // process CPU time (all threads) per turn, µs; steadier than turns/s on a shared machine
}

// tally collects the outcome of every turn of one run.
type tally struct {
	lat                  []time.Duration // by turn index
	errs, overload, hits atomic.Int64
	mu                   sync.Mutex
	kinds                map[string]int64
}

func newTally(total int) *tally {
	return &tally{lat: make([]time.Duration, total), kinds: map[string]int64{}}
}

// conversation answers the turns it is handed, in order, as conversation
// conv, and records them; next returns the index of the next turn, its
// arrival time (latency counts from there) and false when there are none.
func (t *tally) conversation(ctx context.Context, b *bot, conv string, texts []string, offset int, next func() (int, time.Time, bool)) {
	local := map[string]int64{}
	for seq := int64(1); ; seq++ {
		i, at, ok := next()
		if !ok {
			break
		}
		r, err := b.Respond(ctx, tandem.Turn{ConversationID: conv, MessageSeq: seq, Text: texts[(i*7919+offset)%len(texts)], Time: at})
		t.lat[i] = time.Since(at)
		switch {
		case tandem.ErrorCode(err) == tandem.EOVERLOADED:
			t.overload.Add(1)
		case err != nil:
			t.errs.Add(1)
		default:
			local[string(r.Kind)]++
			if r.Cached {
				t.hits.Add(1)
			}
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, v := range local {
		t.kinds[k] += v
	}
}

func (t *tally) result(conc int, elapsed time.Duration) loadResult {
	n := len(t.lat)
	return loadResult{Concurrency: conc, Turns: n, Errors: t.errs.Load(), Overloaded: t.overload.Load(),
		Seconds: elapsed.Seconds(), TurnsPerSec: float64(n) / elapsed.Seconds(), Latency: eval.Percentiles(t.lat),
		Kinds: t.kinds, CacheHits: t.hits.Load()}
}

// measureLoad runs total turns through b from conc concurrent
// conversations (closed loop): each conversation sends its next turn when
// the previous one is answered, taking texts round-robin from an offset of
// its own so that conversations do not move in lockstep.
func measureLoad(ctx context.Context, b *bot, texts []string, conc, total int) loadResult {
	t := newTally(total)
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.conversation(ctx, b, fmt.Sprintf("load-%d-%d", conc, w), texts, w, func() (int, time.Time, bool) {
				i := next.Add(1) - 1
				return int(i), time.Now(), i < int64(total)
			})
		}()
	}
	wg.Wait()
	return t.result(conc, time.Since(start))
}

// measureOpenLoop offers total turns at a fixed arrival rate (turns/s)
// spread round-robin over conc conversations, like real traffic that does
// not wait for the bot. A conversation's turns are answered in order; a
// turn that arrives while its conversation is busy waits, and its latency
// counts from its scheduled arrival (no coordinated omission).
func measureOpenLoop(ctx context.Context, b *bot, texts []string, conc, total int, rate float64) loadResult {
	type arrival struct {
		i  int
		at time.Time
	}
	t := newTally(total)
	var wg sync.WaitGroup
	queues := make([]chan arrival, conc)
	for c := range conc {
		queues[c] = make(chan arrival, total/conc+1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.conversation(ctx, b, fmt.Sprintf("open-%d-%d", conc, c), texts, c, func() (int, time.Time, bool) {
				a, ok := <-queues[c]
				return a.i, a.at, ok
			})
		}()
	}
	start := time.Now()
	interval := time.Duration(float64(time.Second) / rate)
	for i := 0; i < total && ctx.Err() == nil; {
		now := time.Now()
		for ; i < total; i++ {
			at := start.Add(time.Duration(i) * interval)
			if at.After(now) {
				pause(min(at.Sub(now), time.Millisecond))
				break
			}
			queues[i%conc] <- arrival{i, at}
		}
	}
	for _, q := range queues {
		close(q)
	}
	wg.Wait()
	r := t.result(conc, time.Since(start))
	r.OfferedRate = rate
	return r
}

// loadTexts returns the customer messages of the load: the in-scope and
// out-of-scope utterances of a dataset SPEC, or, by default, the Bitext
// customer-support utterances (from $TANDEM_DATASETS or ../shared/datasets,
// when there) plus the
// demo FAQ questions and phrasings.
func loadTexts(spec string) ([]string, string, error) {
	var texts []string
	if spec != "" {
		ds, err := data.Load(spec)
		if err != nil {
			return nil, "", err
		}
		for _, e := range ds.Examples {
			texts = append(texts, e.Text)
		}
		return texts, spec, nil
	}
	desc := "demo FAQ questions and phrasings"
	faqs, err := demo.FAQs()
	if err != nil {
		return nil, "", err
	}
	for _, f := range faqs {
		texts = append(texts, knowledge.Texts(f)...)
	}
	dir := os.Getenv("TANDEM_DATASETS")
	if dir == "" {
		dir = filepath.Join("..", "shared", "datasets")
	}
	bitext := filepath.Join(dir, "bitext-customer-support", "bitext_customer_support_20k.csv")
	if _, err := os.Stat(bitext); err == nil {
		ds, err := data.Load("bitext:" + bitext)
		if err != nil {
			return nil, "", err
		}
		for _, e := range ds.Examples {
			texts = append(texts, e.Text)
		}
		desc = "Bitext customer-support utterances + " + desc
	}
	return texts, desc, nil
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a positive integer", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// runLoadgen measures whole-turn latency and throughput of the configured
// bot in process (no sockets): the figures of docs/benchmarks.md,
// "Pipeline".
//
//	tandem loadgen [serve flags] [--concurrency 1,16,256] [--turns N]
//	               [--rate R,...] [--data SPEC] [--no-batching | --compare-batching]
//	               [--cache] [--unique N] [--json]
func runLoadgen(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var (
		concS, spec, rateS, cpuProfile *string
		turns, unique                  *int
		noBatch, both, cache, asJSON   *bool
	)
	cfg, fs, err := parseOfflineFlags("loadgen", args, getenv, stderr, func(fs *flag.FlagSet) {
		concS = fs.String("concurrency", "1,16,256", "concurrent conversations, comma-separated")
		turns = fs.Int("turns", 20000, "turns per concurrency level")
		spec = fs.String("data", "", "dataset SPEC for the messages (default: Bitext utterances + demo FAQ phrasings)")
		noBatch = fs.Bool("no-batching", false, "one model call per turn (no micro-batching)")
		both = fs.Bool("compare-batching", false, "run every level with and without micro-batching")
		cache = fs.Bool("cache", false, "keep the hot answer cache on (repeated texts are served from it)")
		rateS = fs.String("rate", "", "open loop: offered turns/s, comma-separated (default: closed loop, each conversation sends its next turn after the answer)")
		unique = fs.Int("unique", 0, "use only the first N distinct messages (with --cache: mostly cache hits)")
		asJSON = fs.Bool("json", false, "print one JSON object per run")
		cpuProfile = fs.String("cpuprofile", "", "write a CPU profile of the measured runs to this file")
	})
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("loadgen: unexpected argument %q (levels go in --concurrency 1,16,256)", fs.Arg(0))
	}
	if *unique < 0 {
		return fmt.Errorf("loadgen: --unique must be 0 (every message) or positive")
	}
	levels, err := parseInts(*concS)
	if err != nil {
		return fmt.Errorf("loadgen: --concurrency: %w", err)
	}
	var rates []int
	if *rateS != "" {
		if rates, err = parseInts(*rateS); err != nil {
			return fmt.Errorf("loadgen: --rate: %w", err)
		}
	}
	if *turns <= 0 {
		return fmt.Errorf("loadgen: --turns must be positive")
	}
	cfg.LLM.BaseURL = "" // the figures are the pipeline's, without an LLM
	texts, desc, err := loadTexts(*spec)
	if err != nil {
		return fmt.Errorf("loadgen: %w", err)
	}
	if len(texts) == 0 {
		return fmt.Errorf("loadgen: %s has no messages", desc)
	}
	if *unique > 0 && *unique < len(texts) {
		texts = texts[:*unique]
		desc = fmt.Sprintf("first %d of %s", *unique, desc)
	}
	rt, err := models.OpenRuntime(cfg.ONNXRuntimeLib)
	if err != nil {
		return fmt.Errorf("loadgen: %w", err)
	}
	defer rt.Close()
	modes := []bool{!*noBatch}
	if *both {
		modes = []bool{true, false}
	}
	active := fmt.Sprint(cfg.MaxActiveTurns)
	switch {
	case cfg.MaxActiveTurns == 0:
		active = fmt.Sprintf("%d (the default)", pipeline.DefaultMaxActiveTurns())
	case cfg.MaxActiveTurns < 0:
		active = "no bound"
	}
	fmt.Fprintf(stderr, "loadgen: %d messages (%s), GOMAXPROCS=%d, cache=%t, max active turns %s\n", len(texts), desc, runtime.GOMAXPROCS(0), *cache, active)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	if !*asJSON {
		fmt.Fprintln(tw, "concurrency\tbatching\toffered/s\tturns\tturns/s\tcpu µs/turn\tp50 ms\tp90 ms\tp99 ms\tmax ms\terrors\toverloaded\tcache hits\t")
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("loadgen: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("loadgen: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	for _, batching := range modes {
		b, err := buildBot(ctx, rt, cfg, botOptions{NoBatching: !batching, NoCache: !*cache})
		if err != nil {
			return err
		}
		// Warm up: every text once (models, pools, allocator).
		_ = measureLoad(ctx, b, texts, 16, min(len(texts), 2000))
		var runs []func() loadResult
		for _, c := range levels {
			if len(rates) == 0 {
				runs = append(runs, func() loadResult { return measureLoad(ctx, b, texts, c, *turns) })
			}
			for _, rate := range rates {
				runs = append(runs, func() loadResult { return measureOpenLoop(ctx, b, texts, c, *turns, float64(rate)) })
			}
		}
		for _, run := range runs {
			cpu0 := processCPU()
			r := run()
			if err := ctx.Err(); err != nil {
				// Interrupted: the figures are partial (cancelled turns
				// count as errors), so none is printed.
				_ = b.Close()
				return fmt.Errorf("loadgen: interrupted: %w", err)
			}
			if r.Turns > 0 {
				r.CPUPerTurn = float64((processCPU() - cpu0).Microseconds()) / float64(r.Turns)
			}
			r.Batching, r.Cache = batching, *cache
			if *asJSON {
				if err := json.NewEncoder(stdout).Encode(r); err != nil {
					return err
				}
				continue
			}
			offered := "closed"
			if r.OfferedRate > 0 {
				offered = fmt.Sprintf("%.0f", r.OfferedRate)
			}
			fmt.Fprintf(tw, "%d\t%t\t%s\t%d\t%.0f\t%.1f\t%.3f\t%.3f\t%.3f\t%.3f\t%d\t%d\t%d\t\n", r.Concurrency, batching, offered, r.Turns, r.TurnsPerSec, r.CPUPerTurn,
				r.Latency.P50, r.Latency.P90, r.Latency.P99, r.Latency.Max, r.Errors, r.Overloaded, r.CacheHits)
		}
		_ = b.Close()
	}
	return tw.Flush()
}
