package browsertest

import (
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// HoleProxy is a TCP proxy in front of a test server whose current
// connections can be turned into black holes (bytes are read and dropped,
// nothing is closed), as a dead link or a stalled middlebox looks to a
// browser. New connections work. It stops when the test ends.
type HoleProxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []*holeConn
	total atomic.Int64
}

type holeConn struct {
	up, down atomic.Bool // drop browser->server, server->browser
	a, b     net.Conn
}

// NewHoleProxy proxies to serverURL ("http://host:port" or "host:port").
func NewHoleProxy(tb testing.TB, serverURL string) *HoleProxy {
	tb.Helper()
	target := strings.TrimPrefix(serverURL, "http://")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &HoleProxy{ln: ln}
	go func() {
		for {
			a, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", target)
			if err != nil {
				a.Close()
				continue
			}
			c := &holeConn{a: a, b: b}
			p.mu.Lock()
			p.conns = append(p.conns, c)
			p.mu.Unlock()
			p.total.Add(1)
			go pump(b, a, &c.up)
			go pump(a, b, &c.down)
		}
	}()
	tb.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			c.a.Close()
			c.b.Close()
		}
	})
	return p
}

func pump(dst, src net.Conn, drop *atomic.Bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !drop.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	if !drop.Load() {
		dst.Close()
	}
}

// URL is the proxy's base URL.
func (p *HoleProxy) URL() string { return "http://" + p.ln.Addr().String() }

// Connections is how many connections the proxy has accepted so far.
func (p *HoleProxy) Connections() int64 { return p.total.Load() }

// Blackhole silences every current connection: the server's replies, and
// with upToo the browser's frames as well.
func (p *HoleProxy) Blackhole(upToo bool) { p.silence(upToo, true) }

// BlackholeUp silences the browser's frames on every current connection
// while the server's still arrive: a half-dead link, on which only an
// answer to the browser's own frame proves the way there works.
func (p *HoleProxy) BlackholeUp() { p.silence(true, false) }

// silence drops the chosen directions of every current connection.
func (p *HoleProxy) silence(up, down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		if up {
			c.up.Store(true)
		}
		if down {
			c.down.Store(true)
		}
	}
}
