package console

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"net/http"
)

//go:embed web/console.html web/console.js web/console.css
var webFS embed.FS

type asset struct {
	body []byte
	etag string
}

var assets = map[string]asset{}

func init() {
	for _, name := range []string{"console.html", "console.js", "console.css"} {
		b, err := webFS.ReadFile("web/" + name)
		if err != nil {
			panic("console: embedded asset missing: " + name)
		}
		sum := sha256.Sum256(b)
		assets[name] = asset{body: b, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
	}
}

// csp allows only the console's own script, style and socket.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func (c *Console) servePage(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	serveAsset(w, r, assets["console.html"], "text/html; charset=utf-8", "no-cache")
}

func (c *Console) serveAsset(name, contentType string) http.HandlerFunc {
	a := assets[name]
	return func(w http.ResponseWriter, r *http.Request) {
		serveAsset(w, r, a, contentType, "no-cache")
	}
}

func serveAsset(w http.ResponseWriter, r *http.Request, a asset, contentType, cache string) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Cache-Control", cache)
	h.Set("ETag", a.etag)
	h.Set("X-Content-Type-Options", "nosniff")
	if r.Header.Get("If-None-Match") == a.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	_, _ = w.Write(a.body)
}
