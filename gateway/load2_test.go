package gateway_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/tandem-chat/tandem/gateway"
)

// openIdle opens n widget connections to the server at addr (a session
// each, hello done, welcome received) with 16 dialers. The caller reads
// from them (a connection nobody reads does not answer pings).
func openIdle(addr string, n int) ([]*websocket.Conn, error) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	conns := make([]*websocket.Conn, n)
	var wg sync.WaitGroup
	var failed atomic.Int64
	var firstErr atomic.Value
	work := make(chan int)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := websocket.Dialer{Subprotocols: []string{gateway.Subprotocol}, ReadBufferSize: 512, WriteBufferSize: 512}
			fail := func(err error) { failed.Add(1); firstErr.CompareAndSwap(nil, err) }
			for i := range work {
				resp, err := client.Post("http://"+addr+"/v1/widget/session", "application/json", strings.NewReader(`{"site_key":"demo"}`))
				if err != nil {
					fail(err)
					continue
				}
				var s gateway.SessionResponse
				_ = json.NewDecoder(resp.Body).Decode(&s)
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				ws, _, err := d.Dial("ws://"+addr+s.WebSocketPath, nil)
				if err != nil {
					fail(err)
					continue
				}
				_ = ws.WriteJSON(map[string]any{"type": "hello", "token": s.Token})
				var f frame
				if err := ws.ReadJSON(&f); err != nil || f.Type != "welcome" {
					fail(fmt.Errorf("hello: %v %s", err, f.Type))
					continue
				}
				conns[i] = ws
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	if failed.Load() > 0 {
		return conns, fmt.Errorf("%d of %d connections failed, first: %v", failed.Load(), n, firstErr.Load())
	}
	return conns, nil
}

// TestLoadClientProcess is a client side of TestIdleConnectionsTwoNodes: it
// holds TANDEM_GW_CLIENT_N idle connections to TANDEM_GW_CLIENT_ADDR,
// prints "READY n", and keeps them until its stdin closes.
func TestLoadClientProcess(t *testing.T) {
	if os.Getenv("TANDEM_GW_LOAD_CLIENT") != "1" {
		t.Skip("child process of TestIdleConnectionsTwoNodes")
	}
	n, _ := strconv.Atoi(os.Getenv("TANDEM_GW_CLIENT_N"))
	conns, err := openIdle(os.Getenv("TANDEM_GW_CLIENT_ADDR"), n)
	if err != nil {
		fmt.Println("ERROR", strings.ReplaceAll(err.Error(), "\n", " "))
		return
	}
	for _, ws := range conns {
		go func() { // answer pings
			for {
				if _, _, err := ws.ReadMessage(); err != nil {
					return
				}
			}
		}()
	}
	fmt.Println("READY", len(conns))
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		c.Close()
	}
}

// child is a test binary child process speaking lines on stdin/stdout.
type child struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines *bufio.Scanner
}

func startChild(t *testing.T, run string, env ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+run+"$", "-test.v")
	cmd.Env = append(os.Environ(), env...)
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, in: in, lines: bufio.NewScanner(out)}
	t.Cleanup(func() { in.Close(); _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return c
}

// next returns the fields after the first line starting with prefix.
func (c *child) next(t *testing.T, prefix string) []string {
	t.Helper()
	for c.lines.Scan() {
		f := strings.Fields(c.lines.Text())
		if len(f) > 0 && f[0] == "ERROR" {
			t.Fatalf("child: %s", c.lines.Text())
		}
		if len(f) > 0 && f[0] == prefix {
			return f[1:]
		}
	}
	t.Fatalf("child process ended before %s: %v", prefix, c.lines.Err())
	return nil
}

// mem asks a server child for "rss heap goroutines connections".
func (c *child) mem(t *testing.T) [4]int64 {
	fmt.Fprintln(c.in, "mem")
	f := c.next(t, "MEM")
	var v [4]int64
	for i := range v {
		v[i], _ = strconv.ParseInt(f[i], 10, 64)
	}
	return v
}

// TestIdleConnectionsTwoNodes holds TANDEM_GW_CONNS_TOTAL idle widget
// connections (e.g. 20000) on two server processes on this machine, each
// fed by its own client process: the per-process file descriptor limit
// (20,000 here, not raisable) stops one process from holding 20,000
// sockets. It reports the servers' total RSS. Run by hand, see
// docs/benchmarks.md.
func TestIdleConnectionsTwoNodes(t *testing.T) {
	total, _ := strconv.Atoi(os.Getenv("TANDEM_GW_CONNS_TOTAL"))
	if total == 0 {
		t.Skip("set TANDEM_GW_CONNS_TOTAL (e.g. 20000) to run the two-node connection test")
	}
	per := total / 2
	var servers [2]*child
	var base [2][4]int64
	for i := range servers {
		servers[i] = startChild(t, "TestLoadServerProcess", "TANDEM_GW_LOAD_SERVER=1")
	}
	var addrs [2]string
	for i, s := range servers {
		addrs[i] = s.next(t, "ADDR")[0]
		base[i] = s.mem(t)
	}
	start := time.Now()
	var clients [2]*child
	for i := range clients {
		clients[i] = startChild(t, "TestLoadClientProcess", "TANDEM_GW_LOAD_CLIENT=1",
			"TANDEM_GW_CLIENT_ADDR="+addrs[i], "TANDEM_GW_CLIENT_N="+strconv.Itoa(per))
	}
	for _, c := range clients {
		if got := c.next(t, "READY"); got[0] != strconv.Itoa(per) {
			t.Fatalf("client ready with %s connections, want %d", got[0], per)
		}
	}
	t.Logf("opened %d connections on 2 nodes in %s", 2*per, time.Since(start).Round(time.Millisecond))
	var rss, rss0, heap, heap0, conns int64
	for i, s := range servers {
		m := s.mem(t)
		if m[3] != int64(per) {
			t.Fatalf("node %d holds %d connections, want %d", i, m[3], per)
		}
		t.Logf("node %d: %d connections, RSS %.1f MiB (baseline %.1f MiB), %.2f goroutines/conn",
			i, m[3], float64(m[0])/(1<<20), float64(base[i][0])/(1<<20), float64(m[2]-base[i][2])/float64(per))
		rss, rss0, heap, heap0, conns = rss+m[0], rss0+base[i][0], heap+m[1], heap0+base[i][1], conns+m[3]
	}
	t.Logf("total: %d idle connections on 2 nodes; servers' RSS %.1f MiB (baseline %.1f MiB), %.1f KiB RSS/conn, %.1f KiB heap/conn",
		conns, float64(rss)/(1<<20), float64(rss0)/(1<<20), float64(rss-rss0)/float64(conns)/1024, float64(heap-heap0)/float64(conns)/1024)
	if rss > 1<<30 {
		t.Errorf("servers' RSS %.1f MiB exceeds 1 GiB", float64(rss)/(1<<20))
	}
}
