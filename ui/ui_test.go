package ui_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/spoolq/spool/internal/spooltest"
	"github.com/spoolq/spool/server"
	"github.com/spoolq/spool/ui"
)

// TestMount checks the routing of the dashboard beside the API: the shell for every page
// path, the assets with their types and the page's security headers, redirects to /ui/ for
// a browser, and everything else passed to the API unchanged.
func TestMount(t *testing.T) {
	t.Parallel()
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-From", "api")
		io.WriteString(w, r.Method+" "+r.URL.EscapedPath())
	})
	srv := httptest.NewServer(ui.Mount(api, ui.Options{Version: "v9.9.9"}))
	t.Cleanup(srv.Close)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(method, path string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}

	for _, p := range []string{"/ui/", "/ui/queues/a%2Fb", "/ui/jobs/42", "/ui/schedules", "/ui/workers"} {
		resp, body := get("GET", p)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
			!strings.Contains(body, `src="/ui/assets/app.js"`) || !strings.Contains(body, "v9.9.9") {
			t.Errorf("GET %s: %d %s\n%.300s", p, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("GET %s: CSP %q", p, csp)
		}
	}
	for path, ctype := range map[string]string{"/ui/assets/app.js": "javascript", "/ui/assets/app.css": "text/css", "/ui/assets/favicon.svg": "image/svg+xml"} {
		resp, body := get("GET", path)
		if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), ctype) || len(body) < 100 {
			t.Errorf("GET %s: %d %q, %d bytes", path, resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
		}
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
		again, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		again.Body.Close()
		if again.StatusCode != http.StatusNotModified {
			t.Errorf("GET %s with its ETag: %d, want 304", path, again.StatusCode)
		}
	}
	for _, p := range []string{"/ui/assets/nothing.js", "/ui/assets/.", "/ui/assets/x/../."} {
		if resp, body := get("GET", p); resp.StatusCode != 404 || strings.Contains(body, "app.js") {
			t.Errorf("GET %s: %d %.100s, want 404", p, resp.StatusCode, body)
		}
	}
	if resp, _ := get("POST", "/ui/"); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /ui/: %d", resp.StatusCode)
	}
	for _, p := range []string{"/", "/ui"} {
		if resp, _ := get("GET", p); resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/ui/" {
			t.Errorf("GET %s: %d to %q, want a redirect to /ui/", p, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	for _, c := range []struct{ method, path string }{{"GET", "/v1/queues/%2F"}, {"POST", "/"}, {"GET", "/uix"}, {"GET", "/metrics"}} {
		resp, body := get(c.method, c.path)
		if resp.Header.Get("X-From") != "api" || body != c.method+" "+c.path {
			t.Errorf("%s %s: %q, want it passed to the API as it is", c.method, c.path, body)
		}
	}
}

// TestServe checks that a node serves the dashboard by default and not with NoUI
// (spool serve --ui=false), where /ui/ is the API's JSON 404.
func TestServe(t *testing.T) {
	t.Parallel()
	for _, off := range []bool{false, true} {
		srv := spooltest.Start(t, func(c *server.Config) { c.NoUI = off })
		resp, err := http.Get(srv.URL + "/ui/queues/email")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		served := resp.StatusCode == 200 && strings.Contains(string(body), "app.js")
		if served == off || off && !strings.Contains(string(body), `"not_found"`) {
			t.Errorf("NoUI %v: GET /ui/queues/email %d %.200s", off, resp.StatusCode, body)
		}
	}
}
