package gateway_test

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/gateway"
)

type countSub struct{ n atomic.Int64 }

func (c *countSub) Deliver(*gateway.Event) { c.n.Add(1) }

// BenchmarkHubPublish: one event fanned out to 10 subscribers of a
// conversation through the in-process bus (frame encoding included).
func BenchmarkHubPublish(b *testing.B) {
	hub := gateway.NewHub(gateway.NewLocalBus(), nil)
	subs := make([]*countSub, 10)
	for i := range subs {
		subs[i] = &countSub{}
		if _, err := hub.Subscribe("c1", subs[i]); err != nil {
			b.Fatal(err)
		}
	}
	frame := []byte(`{"type":"message","conversation_id":"c1","message":{"seq":1,"author":"bot","text":"hello there"}}`)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := hub.Publish(ctx, &gateway.Event{ConversationID: "c1", Seq: int64(i + 1), Frame: frame}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	if subs[0].n.Load() != int64(b.N) {
		b.Fatalf("delivered %d of %d", subs[0].n.Load(), b.N)
	}
}

// BenchmarkPostMessageToSocket: the whole server-to-customer path — log
// append (memory), hub, connection writer, WebSocket — until the client
// has read the message.
func BenchmarkPostMessageToSocket(b *testing.B) {
	ts := startServer(b, serverOpts{noBot: true})
	s := ts.session(b, nil)
	c := ts.connect(b, s.Token, 0)
	ctx := context.Background()
	done := make(chan error, 1)
	var got atomic.Int64
	go func() {
		for i := 0; i < b.N; i++ {
			f, err := c.read(30e9)
			if err != nil {
				done <- err
				return
			}
			if f.Type != "message" {
				i--
				continue
			}
			got.Add(1)
		}
		done <- nil
	}()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := ts.Chat.PostMessage(ctx, tandem.Message{ConversationID: s.ConversationID, Author: tandem.AuthorAgent, Text: fmt.Sprint("message ", i)}); err != nil {
			b.Fatal(err)
		}
		// Stay within the connection's send queue (64), as chat traffic
		// does; a faster producer gets the consumer dropped as slow.
		for int64(i)-got.Load() >= 48 {
			runtime.Gosched()
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
