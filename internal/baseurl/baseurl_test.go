package baseurl

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestQueryMovesToEveryRequest: a base URL's query is taken off the base
// (so a path appended to it lands in the path) and sent with every
// request, and it is not in the URL an error prints.
func TestQueryMovesToEveryRequest(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.URL.Path + "?" + r.URL.RawQuery
	}))
	defer srv.Close()
	base, q, err := Split(srv.URL + "/v1/?api-version=2024-06-01&key=SEKRET")
	if err != nil || base != srv.URL+"/v1" || q.Get("key") != "SEKRET" {
		t.Fatalf("Split = %q %v %v", base, q, err)
	}
	c := &http.Client{Transport: Transport(nil, q)}
	resp, err := c.Post(base+"/embeddings?x=1", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if got != "/v1/embeddings?api-version=2024-06-01&key=SEKRET&x=1" {
		t.Fatalf("server saw %q", got)
	}
	_, err = c.Get("http://127.0.0.1:1/v1/embeddings") // nothing listens
	if err == nil || strings.Contains(err.Error(), "SEKRET") {
		t.Fatalf("error %v shows the query", err)
	}
	if b, q, _ := Split("https://api.example.com/v1/"); b != "https://api.example.com/v1" || q != nil {
		t.Fatalf("plain base: %q %v", b, q)
	}
}
