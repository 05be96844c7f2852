package httpapi_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/spoolq/spool/engine"
	"github.com/spoolq/spool/httpapi"
	"github.com/spoolq/spool/internal/natsd"
)

// When JetStream is gone, requests that need it answer 503 unavailable with Retry-After, a
// retryable answer, not a 500.
func TestEngineUnavailableIs503(t *testing.T) {
	t.Parallel()
	ns, err := natsd.Start(context.Background(), natsd.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := natsd.Connect(ns, "unavailable-test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	eng, err := engine.Open(ctx, nc, engine.Config{Logger: log, RequestTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	srv := httptest.NewServer(httpapi.New(eng, httpapi.Options{Logger: log}))
	defer srv.Close()
	do := func(method, path, body string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	if resp, body := do("POST", "/v1/queues/q/jobs", `{"payload":1}`); resp.StatusCode != 201 {
		t.Fatalf("enqueue: %d %s", resp.StatusCode, body)
	}
	ns.Shutdown()
	ns.WaitForShutdown()
	for _, r := range []struct{ method, path, body string }{
		{"POST", "/v1/queues/q/jobs", `{"payload":2}`},
		{"GET", "/v1/jobs/4503599628419073", ""},
		// A batch whose items could not be stored is not a 200 with errors inside.
		{"POST", "/v1/queues/q/jobs", `{"jobs":[{"payload":3},{"payload":4}]}`},
		{"POST", "/v1/ack", `{"acks":[{"id":"4503599628419073","lease_token":"00000001000000ff"}]}`},
	} {
		start := time.Now()
		resp, body := do(r.method, r.path, r.body)
		t.Logf("%s %s: %d in %s", r.method, r.path, resp.StatusCode, time.Since(start).Round(time.Millisecond))
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, `"unavailable"`) || resp.Header.Get("Retry-After") == "" {
			t.Errorf("%s %s with JetStream gone: %d %q (Retry-After %q), want 503 unavailable with Retry-After",
				r.method, r.path, resp.StatusCode, body, resp.Header.Get("Retry-After"))
		}
	}
	nc.Close() // before the engine's Close: its last flushes need not wait for a dead server
}
