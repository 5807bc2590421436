package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/knowledge"
	"github.com/tandem-chat/tandem/knowledge/demo"
)

// benchTexts are the demo FAQs' questions and phrasings.
func benchTexts(b *testing.B) []string {
	faqs, err := demo.FAQs()
	if err != nil {
		b.Fatal(err)
	}
	var texts []string
	for _, f := range faqs {
		texts = append(texts, knowledge.Texts(f)...)
	}
	return texts
}

// BenchmarkServedTurn measures whole turns through the served bot (real
// models in ONNX Runtime, demo knowledge, cache off) from parallel
// conversations, with and without micro-batching; -cpu sets the cores.
// Cached is the hot-cache path.
func BenchmarkServedTurn(b *testing.B) {
	texts := benchTexts(b)
	for _, c := range []struct {
		name string
		opt  botOptions
	}{
		{"batching", botOptions{NoCache: true}},
		{"no-batching", botOptions{NoCache: true, NoBatching: true}},
		{"cached", botOptions{}},
	} {
		b.Run(c.name, func(b *testing.B) {
			bt := newTestBot(b, c.opt)
			ctx := context.Background()
			var conv atomic.Int64
			b.SetParallelism(8) // 8 × GOMAXPROCS concurrent conversations
			b.ResetTimer()
			cpu0 := processCPU()
			defer func() {
				// Process CPU (all threads, ONNX Runtime's included) per
				// turn: steadier than ns/op on a shared machine.
				b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/1e3/float64(b.N), "cpu-µs/turn")
			}()
			b.RunParallel(func(pb *testing.PB) {
				id := fmt.Sprintf("bench-%d", conv.Add(1))
				i := 0
				for pb.Next() {
					i++
					if _, err := bt.Respond(ctx, tandem.Turn{ConversationID: id, MessageSeq: int64(i), Text: texts[i%len(texts)], Time: time.Now()}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
