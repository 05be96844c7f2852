package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/spoolq/spool/internal/spooltest"
)

// TestWebapp signs up through the application's HTTP API and follows the job its own
// worker runs, against a real spool server.
func TestWebapp(t *testing.T) {
	srv := spooltest.Start(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-listen", "127.0.0.1:0", "-server", srv.URL}, func(string) string { return "" },
			slog.New(slog.DiscardHandler), func(a string) { addrc <- a })
	}()
	var base string
	select {
	case a := <-addrc:
		base = "http://" + a
	case err := <-done:
		t.Fatalf("run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("webapp not serving after 30s")
	}

	call := func(method, path string, form url.Values) (int, map[string]any) {
		t.Helper()
		var resp *http.Response
		var err error
		if method == http.MethodPost {
			resp, err = http.PostForm(base+path, form)
		} else {
			resp, err = http.Get(base + path)
		}
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, body)
		}
		return resp.StatusCode, m
	}

	code, m := call(http.MethodPost, "/signup", url.Values{"email": {"a@example.com"}})
	if code != http.StatusAccepted || m["job_id"] == "" {
		t.Fatalf("signup: %d %v", code, m)
	}
	status := m["status_url"].(string)
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, m = call(http.MethodGet, status, nil)
		if code != http.StatusOK {
			t.Fatalf("status: %d %v", code, m)
		}
		if m["state"] == "succeeded" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job not done after 20s: %v", m)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if res, _ := m["result"].(map[string]any); res["sent_to"] != "a@example.com" {
		t.Errorf("result %v", m["result"])
	}

	if code, m := call(http.MethodPost, "/signup", url.Values{"email": {"not an address"}}); code != http.StatusBadRequest {
		t.Errorf("bad email: %d %v", code, m)
	}
	if code, _ := call(http.MethodGet, "/jobs/1", nil); code != http.StatusNotFound {
		t.Errorf("unknown job: %d", code)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run after the interrupt: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("webapp did not stop within 30s")
	}
}
