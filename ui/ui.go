// Package ui serves spool's web dashboard: an HTML shell, a style sheet and a script,
// embedded in the binary. The pages run in the browser and use only the public HTTP API
// (the same requests as any client, with the operator's bearer token when one is set), so
// the package holds no job logic and reaches no engine.
package ui

import (
	"bytes"
	"embed"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed assets
var assets embed.FS

// Prefix is the path the dashboard is served under.
const Prefix = "/ui/"

// Options configures the dashboard.
type Options struct {
	// Version is shown in the page footer.
	Version string
}

// Handler serves the dashboard under Prefix: the files of assets/ under Prefix+"assets/",
// and the page shell for every other path below Prefix (the script routes by path, so a
// reload or a shared link of /ui/queues/email opens that page).
type Handler struct {
	shell  []byte
	files  fs.FS
	static http.Handler
	etag   string
}

// New returns the dashboard handler.
func New(o Options) *Handler {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	var buf bytes.Buffer
	if err := shellTemplate.Execute(&buf, struct{ Prefix, Version string }{Prefix, o.Version}); err != nil {
		panic(err)
	}
	// The assets change only with the binary: the version (and start time, for builds
	// without one) names them in ETags.
	etag := `"` + o.Version + "-" + time.Now().UTC().Format("20060102150405") + `"`
	return &Handler{shell: buf.Bytes(), files: sub, static: http.StripPrefix(Prefix+"assets/", http.FileServerFS(sub)), etag: etag}
}

var shellTemplate = template.Must(template.ParseFS(assets, "assets/index.html"))

// Mount returns a handler that serves the dashboard under Prefix (and redirects "/" and
// "/ui" there for a browser) and passes every other request to api unchanged.
func Mount(api http.Handler, o Options) http.Handler {
	dash := New(o)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		switch {
		case strings.HasPrefix(p, Prefix):
			dash.ServeHTTP(w, r)
		case (p == "/" || p == strings.TrimSuffix(Prefix, "/")) && (r.Method == http.MethodGet || r.Method == http.MethodHead):
			http.Redirect(w, r, Prefix, http.StatusFound)
		default:
			api.ServeHTTP(w, r)
		}
	})
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	hd := w.Header()
	// The pages load nothing but their own files and talk to their own origin.
	hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	if rest, ok := strings.CutPrefix(r.URL.Path, Prefix+"assets/"); ok && rest != "" && path.Ext(rest) != "" {
		if info, err := fs.Stat(h.files, rest); err != nil || info.IsDir() {
			http.NotFound(w, r) // no directory listing either
			return
		}
		hd.Set("Cache-Control", "no-cache") // revalidated: cheap with the ETag
		hd.Set("ETag", h.etag)              // the file server answers If-None-Match against it
		h.static.ServeHTTP(w, r)
		return
	}
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	w.Write(h.shell)
}
