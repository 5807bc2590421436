package gateway_test

import (
	"bufio"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandem-chat/tandem/gateway"
)

// TestLoadServerProcess is the server side of TestIdleConnectionsAndRoundTrip,
// run in a child process so its memory is measured alone. It answers "mem"
// on stdin with "rss heap goroutines".
func TestLoadServerProcess(t *testing.T) {
	if os.Getenv("TANDEM_GW_LOAD_SERVER") != "1" {
		t.Skip("child process of TestIdleConnectionsAndRoundTrip")
	}
	auth, _ := gateway.NewAuth([]byte(testSecret), testAdmin, 0)
	srv := gateway.New(gateway.Config{}, slog.New(slog.DiscardHandler))
	chat, err := gateway.NewChat(gateway.ChatConfig{IPRate: 1e6, IPBurst: 1e6, MaxConnsPerIP: 1e6, ConvRate: 1e6, ConvBurst: 1e6},
		gateway.ChatDeps{Log: gateway.NewMemLog(), Bus: gateway.NewLocalBus(), Auth: auth, Bot: echoBot{},
			Sites: gateway.StaticSites{testSite: {Key: testSite, AllowedOrigins: []string{"*"}}}})
	if err != nil {
		t.Fatal(err)
	}
	chat.Mount(srv.Router())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	fmt.Println("ADDR", ln.Addr().String())
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		runtime.GC()
		debug.FreeOSMemory()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		fmt.Println("MEM", rssBytes(), ms.HeapInuse, runtime.NumGoroutine(), chat.Connections())
	}
}

func rssBytes() int64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// TestIdleConnectionsAndRoundTrip holds TANDEM_GW_CONNS idle widget
// connections (each with its own conversation, hello done, subscribed) to
// a server in a child process, reports its memory per connection, then
// measures the message round trip (send -> ack, send -> bot answer)
// while 200 of them chat. Run by hand, see docs/benchmarks.md.
func TestIdleConnectionsAndRoundTrip(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("TANDEM_GW_CONNS"))
	if n == 0 {
		t.Skip("set TANDEM_GW_CONNS (e.g. 19000) to run the connection load test")
	}
	server := startChild(t, "TestLoadServerProcess", "TANDEM_GW_LOAD_SERVER=1")
	addr := server.next(t, "ADDR")[0]
	mem := func() (rss, heap, goroutines, conns int64) {
		v := server.mem(t)
		return v[0], v[1], v[2], v[3]
	}
	rss0, heap0, g0, _ := mem()

	start := time.Now()
	conns, err := openIdle(addr, n)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("opened %d connections in %s", n, time.Since(start).Round(time.Millisecond))
	// Idle clients keep reading so they answer the server's pings.
	frames := make([]chan frame, n)
	for i, ws := range conns {
		frames[i] = make(chan frame, 64)
		go func() {
			for {
				var f frame
				if err := ws.ReadJSON(&f); err != nil {
					close(frames[i])
					return
				}
				select {
				case frames[i] <- f:
				default:
				}
			}
		}()
	}
	rss1, heap1, g1, open := mem()
	if open != int64(n) {
		t.Fatalf("server holds %d connections, want %d", open, n)
	}
	t.Logf("idle: %d connections; server RSS %.1f MiB (baseline %.1f MiB), %.1f KiB RSS/conn, %.1f KiB heap/conn, %.2f goroutines/conn",
		n, float64(rss1)/(1<<20), float64(rss0)/(1<<20), float64(rss1-rss0)/float64(n)/1024, float64(heap1-heap0)/float64(n)/1024, float64(g1-g0)/float64(n))

	// Round trips under load: 200 active customers, 25 messages each, one at a time.
	const active, each = 200, 25
	var mu sync.Mutex
	var acks, answers []time.Duration
	var awg sync.WaitGroup
	for a := 0; a < active; a++ {
		awg.Add(1)
		go func() {
			defer awg.Done()
			i := a * (n / active)
			ws, ch := conns[i], frames[i]
			for k := 0; k < each; k++ {
				id := fmt.Sprintf("r%d", k)
				sent := time.Now()
				if err := ws.WriteJSON(map[string]any{"type": "message", "client_id": id, "text": "round trip " + id}); err != nil {
					t.Error(err)
					return
				}
				var ack, answer time.Duration
				for answer == 0 {
					f, ok := <-ch
					if !ok {
						t.Error("connection closed during the round trip test")
						return
					}
					switch {
					case f.Type == "ack" && f.ClientID == id:
						ack = time.Since(sent)
					case f.Type == "message" && strings.Contains(string(f.Message), `"author":"bot"`):
						answer = time.Since(sent)
					}
				}
				mu.Lock()
				acks, answers = append(acks, ack), append(answers, answer)
				mu.Unlock()
			}
		}()
	}
	rtStart := time.Now()
	awg.Wait()
	el := time.Since(rtStart)
	pct := func(d []time.Duration, p float64) time.Duration {
		slices.Sort(d)
		return d[int(float64(len(d)-1)*p)]
	}
	t.Logf("round trip with %d idle connections, %d active customers x %d messages (%.0f messages/s in, %.0f/s out): ack p50 %s p99 %s; bot answer p50 %s p99 %s",
		n-active, active, each, float64(len(acks))/el.Seconds(), 2*float64(len(acks))/el.Seconds(),
		pct(acks, 0.5), pct(acks, 0.99), pct(answers, 0.5), pct(answers, 0.99))
	for _, ws := range conns {
		ws.Close()
	}

}
