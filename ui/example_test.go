package ui_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/spoolq/spool/ui"
)

// Mount serves the dashboard under /ui/ (the page shell for any page path, the pages route
// in the browser), redirects a browser's / there, and hands every other request to the API.
func ExampleMount() {
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "api: ", r.URL.Path)
	})
	h := ui.Mount(api, ui.Options{Version: "v1.0.0"})
	for _, path := range []string{"/ui/queues/email", "/v1/queues", "/"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		fmt.Println(path, rec.Code, rec.Header().Get("Content-Type"))
	}
	// Output:
	// /ui/queues/email 200 text/html; charset=utf-8
	// /v1/queues 200 text/plain; charset=utf-8
	// / 302 text/html; charset=utf-8
}
