// Package baseurl lets an OpenAI-compatible client (go-openai) use a base
// URL that carries a query string, such as Azure-style
// "https://host/openai/deployments/x?api-version=2024-06-01" or a gateway
// key "?key=...": go-openai appends the endpoint's path to the base URL as
// a string, which put "/embeddings" after the query. Split takes the query
// off the base URL, and Transport adds it to every request instead, so the
// query (which may hold a secret) is also left out of the URL that
// net/http's errors print.
package baseurl

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Split returns base without its query and trailing slashes, and the
// query's values (nil when there is none).
func Split(base string) (string, url.Values, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", nil, fmt.Errorf("baseurl: %w", err)
	}
	if u.RawQuery == "" && !u.ForceQuery {
		return strings.TrimRight(base, "/"), nil, nil
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return "", nil, fmt.Errorf("baseurl: query: %w", err)
	}
	u.RawQuery, u.ForceQuery, u.Fragment = "", false, ""
	return strings.TrimRight(u.String(), "/"), q, nil
}

// Transport returns rt adding q's values to every request's query (rt
// itself when q is empty; http.DefaultTransport when rt is nil).
func Transport(rt http.RoundTripper, q url.Values) http.RoundTripper {
	if rt == nil {
		rt = http.DefaultTransport
	}
	if len(q) == 0 {
		return rt
	}
	return &queryTransport{rt: rt, q: q}
}

type queryTransport struct {
	rt http.RoundTripper
	q  url.Values
}

func (t *queryTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r2 := r.Clone(r.Context())
	q := r2.URL.Query()
	for k, vs := range t.q {
		for _, v := range vs {
			q.Add(k, v)
		}
	}
	r2.URL.RawQuery = q.Encode()
	return t.rt.RoundTrip(r2)
}
