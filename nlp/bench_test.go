package nlp

import (
	"bufio"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tandem-chat/tandem/internal/testenv"
	"github.com/tandem-chat/tandem/models"
	"github.com/tandem-chat/tandem/nlp/entity"
	"github.com/tandem-chat/tandem/nlp/intent"
)

// nluBench loads the intent classifier and the entity tagger of
// $TANDEM_MODEL_DIR (default models, `make bench`) or of a toy model
// trained on the spot; the tagger is nil when the directory has none.
// Texts come from $TANDEM_BENCH_TEXTS (one per line; scripts/peers/speed.sh
// uses the CLINC150 test file) or benchTexts.
func nluBench(b *testing.B) (*Classifier, *entity.Tagger, []string, func()) {
	rt, err := models.OpenRuntime(testenv.ONNXRuntimeLib(b))
	if err != nil {
		b.Fatal(err)
	}
	dir := os.Getenv("TANDEM_MODEL_DIR")
	if dir == "" {
		cfg := intent.DefaultConfig()
		cfg.Hidden, cfg.Members, cfg.Epochs, cfg.LinearEpochs = 16, 2, 4, 4
		cfg.Features.Buckets = 1 << 16
		dir = filepath.Join(b.TempDir(), "m")
		if _, err := TrainDir(context.Background(), TrainOptions{Data: annotatedToy(40, 1), Out: dir, Intent: cfg, Entity: entity.Config{Epochs: 3}}); err != nil {
			b.Fatal(err)
		}
	}
	var opt Options
	if v := os.Getenv("TANDEM_BENCH_MAXBATCH"); v != "" {
		opt.MaxBatch, _ = strconv.Atoi(v)
	}
	c, err := LoadClassifier(rt, dir, opt)
	if err != nil {
		b.Fatal(err)
	}
	var eopt entity.Options
	if v := os.Getenv("TANDEM_BENCH_ENTITY_MAXBATCH"); v != "" {
		eopt.MaxBatch, _ = strconv.Atoi(v)
	}
	tg, err := LoadEntityTaggerWith(rt, dir, eopt)
	if err != nil && !errors.Is(err, ErrNoEntityModel) {
		b.Fatal(err)
	}
	texts := benchTexts
	if p := os.Getenv("TANDEM_BENCH_TEXTS"); p != "" {
		f, err := os.Open(p)
		if err != nil {
			b.Fatal(err)
		}
		texts = nil
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			texts = append(texts, sc.Text())
		}
		f.Close()
	}
	return c, tg, texts, func() {
		c.Close()
		if tg != nil {
			tg.Close()
		}
		rt.Close()
	}
}

// BenchmarkNLUSingle is one message through the intent classifier and the
// entity tagger, one call each, on one goroutine (latency; p50-µs).
func BenchmarkNLUSingle(b *testing.B) {
	c, tg, texts, done := nluBench(b)
	defer done()
	ctx := context.Background()
	lat := make([]time.Duration, 0, 1<<16)
	i := 0
	cpu0 := cpuTime()
	for b.Loop() {
		t0 := time.Now()
		s := texts[i%len(texts)]
		if _, err := c.Classify(ctx, s); err != nil {
			b.Fatal(err)
		}
		if tg != nil {
			if _, err := tg.Tag(ctx, s); err != nil {
				b.Fatal(err)
			}
		}
		if len(lat) < cap(lat) {
			lat = append(lat, time.Since(t0))
		}
		i++
	}
	reportCPU(b, cpu0, int64(i))
	reportP50(b, lat)
}

// BenchmarkNLUBatch is batches of 64 messages through both models from
// every core (throughput; msgs/s).
func BenchmarkNLUBatch(b *testing.B) {
	c, tg, texts, done := nluBench(b)
	defer done()
	ctx := context.Background()
	start, cpu0 := time.Now(), cpuTime()
	var n atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			lo := (i * 64) % len(texts)
			batch := texts[lo:min(lo+64, len(texts))]
			i++
			n.Add(int64(len(batch)))
			if _, err := c.ClassifyBatch(ctx, batch); err != nil {
				b.Error(err)
				return
			}
			if tg != nil {
				if _, err := tg.TagBatch(ctx, batch); err != nil {
					b.Error(err)
					return
				}
			}
		}
	})
	b.ReportMetric(float64(n.Load())/time.Since(start).Seconds(), "msgs/s")
	reportCPU(b, cpu0, n.Load())
}

// cpuTime is the process's user+system CPU time (all threads, ONNX
// Runtime's included): on a shared machine, CPU time per message is a
// steadier measure than wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, start time.Duration, msgs int64) {
	if msgs > 0 {
		b.ReportMetric(float64((cpuTime()-start).Nanoseconds())/1e3/float64(msgs), "cpu-µs/msg")
	}
}
