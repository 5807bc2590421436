package kbapi_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/gateway"
	"github.com/tandem-chat/tandem/gateway/kbapi"
	"github.com/tandem-chat/tandem/knowledge"
	"github.com/tandem-chat/tandem/knowledge/memstore"
)

// failingExport writes the first n FAQs of the real export, then fails
// (a database lost midway); n < 0 exports normally.
type failingExport struct {
	kbapi.Service
	n int
}

func (s failingExport) Export(ctx context.Context, f knowledge.ListFilter, e *knowledge.Exporter) error {
	if s.n < 0 {
		return s.Service.Export(ctx, f, e)
	}
	page, err := s.Service.List(ctx, knowledge.ListFilter{Limit: s.n})
	if err != nil {
		return err
	}
	for _, item := range page.Items {
		if err := e.Write(item); err != nil {
			return err
		}
	}
	return errors.New("pq: connection reset by peer")
}

// exportEnv serves the API with a small export buffer over 40 FAQs, the
// export failing after n of them (n < 0: never).
func exportEnv(t *testing.T, n int) (url, token string) {
	t.Helper()
	auth, err := gateway.NewAuth([]byte(secret), "static-admin-token", 0)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := knowledge.NewService(knowledge.Config{Store: memstore.New(), Embedder: bagEmbedder{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	for i := range 40 {
		if _, err := svc.Create(context.Background(), "test", tandem.FAQ{Question: fmt.Sprintf("Question number %d?", i), Answer: "An answer long enough to matter."}); err != nil {
			t.Fatal(err)
		}
	}
	h, err := kbapi.New(kbapi.Config{Service: failingExport{Service: svc, n: n}, Auth: auth, ExportBuffer: 1024})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.StripPrefix("/api/v1/knowledge", h))
	t.Cleanup(srv.Close)
	tok, _ := auth.IssueStaff("u-1", "Ada", gateway.RoleAdmin, "", time.Hour)
	return srv.URL + "/api/v1/knowledge/export?format=jsonl", tok
}

func getExport(t *testing.T, url, token string) (*http.Response, []byte, error) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res, b, err
}

// TestExportStreams: an export larger than the buffer streams complete;
// one that fails within the buffer is a clean JSON error; one that fails
// after the response started ends in a failed download (the connection
// is cut before the end of the chunked body), never in a short file that
// looks whole.
func TestExportStreams(t *testing.T) {
	url, tok := exportEnv(t, -1)
	res, body, err := getExport(t, url, tok)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("whole export: %d, %v", res.StatusCode, err)
	}
	recs, err := knowledge.ParseImport(bytes.NewReader(body), knowledge.FormatJSONL)
	if err != nil || len(recs) != 40 || len(body) <= 1024 {
		t.Fatalf("whole export: %d rows in %d bytes, %v; want 40 rows in more than the 1,024-byte buffer", len(recs), len(body), err)
	}

	url, tok = exportEnv(t, 2)
	res, body, err = getExport(t, url, tok)
	if err != nil || res.StatusCode != 500 {
		t.Fatalf("export failing early: %d %s, %v; want a 500 JSON error", res.StatusCode, body, err)
	}

	url, tok = exportEnv(t, 30)
	res, body, err = getExport(t, url, tok)
	if res.StatusCode != 200 || err == nil {
		t.Fatalf("export failing after the response started: %d, %d bytes read, err %v; want the download to fail", res.StatusCode, len(body), err)
	}
}

// endlessExport writes FAQs until the exporter fails, then reports how the
// export ended.
type endlessExport struct {
	kbapi.Service
	ended chan error
}

func (s endlessExport) Export(ctx context.Context, f knowledge.ListFilter, e *knowledge.Exporter) error {
	item := tandem.FAQ{ID: "faq_x", Question: "A question that is long enough to fill the pipe?", Answer: strings.Repeat("An answer. ", 20)}
	for {
		if err := e.Write(item); err != nil {
			s.ended <- err
			return err
		}
	}
}

// TestExportEndsWhenClientStopsReading: a client that stops reading a
// streaming export ends it at the write timeout (the export held its
// database snapshot and pooled connection for as long as the client
// waited).
func TestExportEndsWhenClientStopsReading(t *testing.T) {
	auth, err := gateway.NewAuth([]byte(secret), "static-admin-token", 0)
	if err != nil {
		t.Fatal(err)
	}
	svc := endlessExport{ended: make(chan error, 1)}
	h, err := kbapi.New(kbapi.Config{Service: svc, Auth: auth, ExportBuffer: 1024, ExportWriteTimeout: 200 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.StripPrefix("/api/v1/knowledge", h))
	t.Cleanup(srv.Close)
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /api/v1/knowledge/export?format=jsonl HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer static-admin-token\r\n\r\n")
	// ... and never read.
	select {
	case err := <-svc.ended:
		if err == nil {
			t.Fatal("the export ended without an error")
		}
	case <-time.After(30 * time.Second): // a hang guard
		t.Fatal("the export to a client that stopped reading did not end")
	}
}
