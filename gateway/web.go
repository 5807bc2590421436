package gateway

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"html"
	"net/http"
	"strings"
)

//go:embed web/widget.js web/demo.html
var webFS embed.FS

var (
	widgetJS     = mustRead("web/widget.js")
	widgetJSETag = etag(widgetJS)
	demoHTML     = string(mustRead("web/demo.html"))
)

func mustRead(name string) []byte {
	b, err := webFS.ReadFile(name)
	if err != nil {
		panic("gateway: embedded asset missing: " + name)
	}
	return b
}

func etag(b []byte) string {
	sum := sha256.Sum256(b)
	return `"` + hex.EncodeToString(sum[:8]) + `"`
}

// serveWidgetJS serves the embeddable widget script.
func (c *Chat) serveWidgetJS(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/javascript; charset=utf-8")
	h.Set("Cache-Control", "public, max-age=300")
	h.Set("ETag", widgetJSETag)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Access-Control-Allow-Origin", "*")
	if r.Header.Get("If-None-Match") == widgetJSETag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	_, _ = w.Write(widgetJS)
}

// serveDemo serves the demo page with the demo site key.
func (c *Chat) serveDemo(w http.ResponseWriter, r *http.Request) {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	page := strings.NewReplacer("{{SITE_KEY}}", html.EscapeString(c.cfg.DemoSiteKey),
		"{{BASE}}", html.EscapeString(scheme+"://"+r.Host)).Replace(demoHTML)
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self' ws: wss:; img-src 'self' data:")
	_, _ = w.Write([]byte(page))
}
