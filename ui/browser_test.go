package ui_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/spoolq/spool/internal/spooltest"

	"github.com/spoolq/spool/internal/testdep"
)

// The browser tests drive Debian's chromium (headless) through the DevTools protocol
// against a real spool server. TestScreenshots (screenshot_test.go) makes the pictures of
// the docs.

// chromium returns the browser to run: $SPOOL_CHROMIUM, or chromium on the PATH. Without
// one the test fails under CI=true (CI installs it) and skips otherwise.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("SPOOL_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	testdep.Missing(t, "chromium not found (apt-get install chromium; .ci/run installs it): the dashboard's browser tests need it")
	return ""
}

// browser starts a headless chromium with a fresh profile, ended with the test.
func browser(t *testing.T, width, height int) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("lang", "en-US"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	t.Cleanup(cancel2)
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// api is a minimal client of the HTTP API for the tests' setup and checks.
type api struct {
	t    *testing.T
	base string
}

func (a api) do(method, path string, body any) (int, map[string]any) {
	a.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, a.base+path, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	data, _ := io.ReadAll(resp.Body)
	if len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, &out); err != nil {
			a.t.Fatalf("%s %s: %d %q", method, path, resp.StatusCode, data)
		}
	}
	return resp.StatusCode, out
}

func (a api) must(method, path string, body any) map[string]any {
	a.t.Helper()
	st, out := a.do(method, path, body)
	if st/100 != 2 {
		a.t.Fatalf("%s %s: %d %v", method, path, st, out)
	}
	return out
}

func (a api) enqueue(queue string, body map[string]any) string {
	a.t.Helper()
	return a.must("POST", "/v1/queues/"+url.PathEscape(queue)+"/jobs", body)["id"].(string)
}

// reserve takes n jobs of queue for worker and returns their ids and lease tokens.
func (a api) reserve(queue, worker string, n int) [][2]string {
	a.t.Helper()
	out := a.must("POST", "/v1/reserve", map[string]any{"queues": []string{queue}, "max": n, "worker": worker, "wait": "5s"})
	var held [][2]string
	for _, j := range out["jobs"].([]any) {
		m := j.(map[string]any)
		held = append(held, [2]string{m["id"].(string), m["lease_token"].(string)})
	}
	if len(held) != n {
		a.t.Fatalf("reserved %d jobs of %s, want %d", len(held), queue, n)
	}
	return held
}

func (a api) queue(name string) map[string]any {
	a.t.Helper()
	return a.must("GET", "/v1/queues/"+url.PathEscape(name), nil)
}

func (a api) ids(queue, state string) []string {
	a.t.Helper()
	out := a.must("GET", "/v1/queues/"+url.PathEscape(queue)+"/jobs?limit=1000&state="+state, nil)
	var ids []string
	for _, j := range out["jobs"].([]any) {
		ids = append(ids, j.(map[string]any)["id"].(string))
	}
	slices.Sort(ids)
	return ids
}

func stat(q map[string]any, key string) int {
	return int(q["stats"].(map[string]any)[key].(float64))
}

// page wraps a browser tab on the dashboard.
type page struct {
	t     *testing.T
	ctx   context.Context
	base  string
	shots string
}

// run runs the steps. A live refresh that redraws an element between a step finding it and
// acting on it leaves a stale node ("Could not find node"): the steps run again, the
// element found anew.
func (p page) run(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	for try := 1; ; try++ {
		ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
		err := chromedp.Do(ctx, steps...)
		cancel()
		if err == nil {
			return
		}
		if try == 5 || !strings.Contains(err.Error(), "Could not find node") {
			p.t.Fatalf("%s: %v", what, err)
		}
	}
}

// open loads a dashboard path and waits for its first data.
func (p page) open(path string) {
	p.t.Helper()
	p.run("open "+path, chromedp.Navigate(p.base+"/ui/"+path), chromedp.WaitVisible(chromedp.CSS(`main[data-loaded="true"]`)))
}

// eval returns the value of a JavaScript expression on the page.
func eval[T any](p page, expr string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		p.t.Fatalf("eval %s: %v", expr, err)
	}
	return v
}

// until polls a JavaScript condition on the page until it holds.
func (p page) until(what, expr string) {
	p.t.Helper()
	spooltest.Eventually(p.t, 20*time.Second, func() error {
		ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
		defer cancel()
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("page: %s: not so (%s)", what, expr)
		}
		return nil
	})
}

// typeIn empties an input and types text into it, as a user does (input events).
func (p page) typeIn(sel, text string) {
	p.t.Helper()
	eval[any](p, `(el => { el.value = ''; el.dispatchEvent(new Event('input', {bubbles: true})) })(document.querySelector(`+js(sel)+`))`)
	if text != "" {
		p.run("type in "+sel, chromedp.SendKeys(chromedp.CSS(sel), text))
	}
}

func (p page) click(sel string) {
	p.t.Helper()
	p.run("click "+sel, chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.Click(chromedp.CSS(sel)))
}

// labelled checks that every control of the page has an accessible name (a label, an
// aria-label or its text), so that a screen reader user knows what it does.
func (p page) labelled() {
	p.t.Helper()
	missing := eval[[]string](p, `[...document.querySelectorAll('input, select, textarea, button')].filter(el =>
		!(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.textContent.trim() && el.type !== 'hidden'
	).map(el => el.outerHTML.slice(0, 120))`)
	if len(missing) > 0 {
		p.t.Errorf("controls without a name: %q", missing)
	}
}

// shot saves a screenshot of the whole page as name.png under the screenshot folder.
func (p page) shot(name string) {
	p.t.Helper()
	eval[any](p, `document.querySelectorAll('.toast').forEach(t => t.remove())`)
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Fatalf("screenshot %s: %v", name, err)
	}
	if len(png) < 1000 || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		p.t.Fatalf("screenshot %s: %d bytes, not a PNG", name, len(png))
	}
	if err := os.WriteFile(filepath.Join(p.shots, name+".png"), png, 0o644); err != nil {
		p.t.Fatal(err)
	}
}

func js(s string) string { b, _ := json.Marshal(s); return string(b) }

// TestDashboard runs an operator's session in chromium: the overview of several queues,
// pause and resume, buried jobs and a kick, a job by id, a schedule created and deleted,
// the workers; after each action the page shows what the API says.
func TestDashboard(t *testing.T) {
	t.Parallel()
	ctx := browser(t, 1280, 900)
	srv := spooltest.Start(t, nil)
	a := api{t, srv.URL}
	p := page{t: t, ctx: ctx, base: srv.URL}

	// Several queues in every state. The jobs reserved here stay reserved for the whole
	// session, however long a loaded machine makes it: their lease is an hour.
	want := map[string][4]int{} // ready, reserved, delayed, buried
	for i, q := range []string{"email", "sms", "reports", "webhooks", "billing.invoices"} {
		for k := 0; k < 3+i*2; k++ {
			a.enqueue(q, map[string]any{"type": q + ".send", "lease": "1h", "payload": map[string]any{"n": k, "to": fmt.Sprintf("user%d@example.com", k)}})
		}
		want[q] = [4]int{3 + i*2, 0, 0, 0}
	}
	for k := 0; k < 2; k++ {
		a.enqueue("reports", map[string]any{"type": "report.build", "delay": "1h", "payload": map[string]any{"kind": "daily"}})
	}
	for k := 0; k < 4; k++ {
		a.enqueue("images", map[string]any{"type": "image.resize", "max_attempts": 1, "lease": "1h",
			"payload":  map[string]any{"url": fmt.Sprintf("https://example.com/%d.png", k), "sizes": []int{64, 256, 1024}},
			"metadata": map[string]any{"tenant": "acme", "request_id": fmt.Sprintf("req-%04d", k)}})
	}
	held := a.reserve("images", "host-a/pid-4242", 3)
	for _, h := range held[:2] {
		a.must("POST", "/v1/jobs/"+h[0]+"/fail", map[string]any{"lease_token": h[1], "error": "resize: image too large (12000x9000 px, max 8192)"})
	}
	a.reserve("email", "host-b/pid-7", 1)
	want["reports"] = [4]int{want["reports"][0], 0, 2, 0}
	want["images"] = [4]int{1, 1, 0, 2}
	want["email"] = [4]int{want["email"][0] - 1, 1, 0, 0}

	// The API's counts settle (JetStream's consumer counts lag a moment), then the page
	// must show them.
	spooltest.Eventually(t, 20*time.Second, func() error {
		for q, w := range want {
			s := a.queue(q)
			got := [4]int{stat(s, "ready"), stat(s, "reserved"), stat(s, "delayed"), stat(s, "buried")}
			if got != w {
				return fmt.Errorf("API: queue %s counts %v, want %v", q, got, w)
			}
		}
		return nil
	})

	// Pages of this tab refresh every second (the default is 5s).
	p.run("first load", chromedp.Navigate(srv.URL+"/ui/"))
	eval[any](p, `sessionStorage.setItem('spool.poll', '1000')`)

	t.Run("overview", func(t *testing.T) {
		p.t = t
		p.open("")
		type row struct {
			Name                             string
			Ready, Reserved, Delayed, Buried string
			Paused                           bool
		}
		rows := eval[[]row](p, `[...document.querySelectorAll('#queue-table tbody tr[data-queue]')].map(tr => ({
			name: tr.dataset.queue, paused: !!tr.querySelector('.b-paused'),
			ready: tr.querySelector('[data-col=ready]').textContent, reserved: tr.querySelector('[data-col=reserved]').textContent,
			delayed: tr.querySelector('[data-col=delayed]').textContent, buried: tr.querySelector('[data-col=buried]').textContent}))`)
		var names []string
		for _, r := range rows {
			names = append(names, r.Name)
			w := want[r.Name]
			if got := [4]string{r.Ready, r.Reserved, r.Delayed, r.Buried}; got != [4]string{fmt.Sprint(w[0]), fmt.Sprint(w[1]), fmt.Sprint(w[2]), fmt.Sprint(w[3])} || r.Paused {
				t.Errorf("overview row %s: %v paused %v, API says %v", r.Name, got, r.Paused, w)
			}
		}
		if !slices.Equal(names, []string{"billing.invoices", "email", "images", "reports", "sms", "webhooks"}) {
			t.Errorf("overview lists %v, sorted by name", names)
		}
		// The totals are /v1/stats's: the sums of the queues' counts.
		var sum [4]int
		for _, w := range want {
			for i := range sum {
				sum[i] += w[i]
			}
		}
		totals := fmt.Sprintf("%d %d %d %d", sum[0], sum[1], sum[2], sum[3])
		spooltest.Eventually(t, 20*time.Second, func() error {
			j := a.must("GET", "/v1/stats", nil)["jobs"].(map[string]any)
			if got := fmt.Sprintf("%v %v %v %v", j["ready"], j["reserved"], j["delayed"], j["buried"]); got != totals {
				return fmt.Errorf("API: /v1/stats jobs %s, the queues' sums %s", got, totals)
			}
			return nil
		})
		p.until("totals of /v1/stats", `['ready', 'reserved', 'delayed', 'buried'].map(k => document.querySelector('#total-' + k + ' .value').textContent).join(' ') === `+js(totals)+` &&
			document.querySelector('#overview-sub').textContent.startsWith('6 queues · ')`)
		p.labelled()

		// Filter by name, sort by ready count.
		p.run("filter", chromedp.SendKeys(chromedp.CSS("#queue-filter"), "e"))
		p.until("filter applied", `document.querySelectorAll('#queue-table tbody tr[data-queue]').length === 5`)
		p.typeIn("#queue-filter", "rep")
		p.until("only reports", `[...document.querySelectorAll('#queue-table tbody tr[data-queue]')].map(tr => tr.dataset.queue).join() === 'reports'`)
		p.typeIn("#queue-filter", "")
		p.until("filter cleared", `document.querySelectorAll('#queue-table tbody tr[data-queue]').length === 6`)
		p.click(`button[data-key="sort-ready"]`)
		p.until("sorted by ready, most first", `document.querySelector('#queue-table tbody tr').dataset.queue === 'billing.invoices' &&
			document.querySelector('th[aria-sort=descending] button[data-key=sort-ready]') !== null`)
	})

	t.Run("pause and resume", func(t *testing.T) {
		p.t = t
		p.open("")
		p.click(`a[data-key="link-queues/email"]`)
		p.until("queue page", `location.pathname === '/ui/queues/email' && document.querySelector('main[data-loaded="true"] #pause') !== null`)
		p.click("#pause")
		spooltest.Eventually(t, 10*time.Second, func() error {
			if a.queue("email")["paused"] != true {
				return fmt.Errorf("API: email not paused")
			}
			return nil
		})
		p.until("paused badge and resume button", `document.querySelector('#paused-badge') !== null && !document.querySelector('#resume').closest('[hidden]')`)
		p.labelled()
		p.click("#resume")
		spooltest.Eventually(t, 10*time.Second, func() error {
			if a.queue("email")["paused"] != false {
				return fmt.Errorf("API: email still paused")
			}
			return nil
		})
		p.until("no paused badge, pause button back", `document.querySelector('#paused-badge') === null && !document.querySelector('#pause').closest('[hidden]')`)
		// The settings shown are the API's.
		lease := eval[string](p, `document.querySelector('#set-lease').value`)
		retention := eval[string](p, `document.querySelector('#set-retention').value`)
		if q := a.queue("email"); lease != q["lease"] || retention != q["retention"] {
			t.Errorf("settings show lease %q, retention %q; API %q, %q", lease, retention, q["lease"], q["retention"])
		}
	})

	t.Run("retention none", func(t *testing.T) {
		p.t = t
		p.open("queues/sms")
		p.until("the server's retention", `document.querySelector('#set-retention').value === '1h'`)
		p.typeIn("#set-retention", "none")
		p.click("#settings-form button[type=submit]")
		spooltest.Eventually(t, 10*time.Second, func() error {
			if r := a.queue("sms")["retention"]; r != "0s" {
				return fmt.Errorf("API: sms retention %v, want 0s (none)", r)
			}
			return nil
		})
		p.open("queues/sms")
		p.until("retention 0 shown as none", `document.querySelector('#set-retention').value === 'none'`)
	})

	t.Run("buried and kick", func(t *testing.T) {
		p.t = t
		p.open("queues/images?state=buried")
		buried := a.ids("images", "buried")
		if len(buried) != 2 {
			t.Fatalf("API: %d buried jobs in images", len(buried))
		}
		p.until("buried rows", `document.querySelectorAll('#jobs-panel tr[data-job]').length === 2`)
		shown := eval[[]string](p, `[...document.querySelectorAll('#jobs-panel tr[data-job]')].map(tr => tr.dataset.job).sort()`)
		if !slices.Equal(shown, buried) {
			t.Errorf("buried tab shows %v, API %v", shown, buried)
		}
		errText := eval[string](p, `document.querySelector('#jobs-panel tr[data-job] .err').textContent`)
		if !strings.Contains(errText, "image too large") {
			t.Errorf("last error shown: %q", errText)
		}
		kicked := buried[0]
		p.click(`tr[data-job="` + kicked + `"] button[data-action="kick"]`)
		spooltest.Eventually(t, 10*time.Second, func() error {
			if st := a.must("GET", "/v1/jobs/"+kicked, nil)["state"]; st != "ready" {
				return fmt.Errorf("API: kicked job is %v", st)
			}
			return nil
		})
		p.until("kicked row gone, one left", `document.querySelector('#jobs-panel tr[data-job=`+js(kicked)+`]') === null &&
			document.querySelectorAll('#jobs-panel tr[data-job]').length === 1`)
		if got := a.ids("images", "buried"); !slices.Equal(got, buried[1:]) {
			t.Errorf("API buried after the kick: %v, want %v", got, buried[1:])
		}
		// The tabs follow the keyboard (arrow keys), and the reserved tab names the holder.
		p.run("keyboard", chromedp.Focus(chromedp.CSS("#tab-buried")), chromedp.KeyEvent(kb.ArrowLeft))
		p.until("delayed tab selected by the keyboard", `document.activeElement.id === 'tab-delayed' && document.querySelector('#tab-delayed').getAttribute('aria-selected') === 'true' && location.search === '?state=delayed'`)
		p.click("#tab-reserved")
		p.until("reserved row with its worker", `[...document.querySelectorAll('#jobs-panel tr[data-job]')].some(tr => tr.textContent.includes('host-a/pid-4242'))`)
	})

	t.Run("job by id", func(t *testing.T) {
		p.t = t
		p.open("")
		id := a.ids("images", "buried")[0]
		p.run("search", chromedp.SendKeys(chromedp.CSS("#job-id"), id+"\r"))
		p.until("job page", `location.pathname === '/ui/jobs/`+id+`' && document.querySelector('#job-title-id')?.textContent === `+js(id))
		j := a.must("GET", "/v1/jobs/"+id, nil)
		state := eval[string](p, `document.querySelector('#job-state').textContent`)
		errText := eval[string](p, `document.querySelector('#job-error').textContent`)
		payload := eval[string](p, `document.querySelector('#payload').textContent`)
		if state != j["state"] || errText != j["last_error"] || !strings.Contains(payload, `"sizes": [`) {
			t.Errorf("job page: state %q error %q payload %q; API %v", state, errText, payload, j)
		}
		p.labelled()
		p.click("#job-kick")
		spooltest.Eventually(t, 10*time.Second, func() error {
			if st := a.must("GET", "/v1/jobs/"+id, nil)["state"]; st != "ready" {
				return fmt.Errorf("API: job is %v after the kick", st)
			}
			return nil
		})
		p.until("job shows ready", `document.querySelector('#job-state').textContent === 'ready' && document.querySelector('#job-kick') === null`)
		// A large payload is cut, with a download; binary bytes show as hex.
		big := a.enqueue("email", map[string]any{"type": "big", "payload": map[string]any{"blob": strings.Repeat("x", 200<<10)}})
		p.open("jobs/" + big)
		p.until("large payload cut", `document.querySelector('#payload').textContent.length <= 65536 &&
			document.querySelector('main').textContent.includes('Truncated') && document.querySelector('#payload-download') !== null`)
		bin := a.enqueue("email", map[string]any{"type": "bin", "payload_base64": "AAECA/9oaQ=="})
		p.open("jobs/" + bin)
		p.until("binary payload as hex", `document.querySelector('#payload').textContent.startsWith('00000000  00 01 02 03 ff 68 69')`)
		p.open("jobs/999999999")
		p.until("unknown job", `document.querySelector('#job-missing') !== null`)
	})

	t.Run("schedules", func(t *testing.T) {
		p.t = t
		p.open("schedules")
		p.click("#new-schedule")
		p.run("fill", chromedp.WaitVisible(chromedp.CSS("#schedule-dialog")),
			chromedp.SendKeys(chromedp.CSS("#sf-name"), "nightly-report"),
			chromedp.SendKeys(chromedp.CSS("#sf-queue"), "reports"),
			chromedp.SendKeys(chromedp.CSS("#sf-type"), "report.build"),
			chromedp.SendKeys(chromedp.CSS("#sf-spec"), "0 25 * * *"))
		p.typeIn("#sf-time_zone", "Europe/Paris")
		// The spec is checked as typed: hour 25 is refused by the server, on the spec field.
		p.until("bad spec flagged", `document.querySelector('#sf-spec').getAttribute('aria-invalid') === 'true' && document.querySelector('#sh-spec').classList.contains('bad')`)
		p.typeIn("#sf-spec", "0 2 * * *")
		p.until("valid, next fire shown", `document.querySelector('#sched-preview').textContent.includes('Next fire') && !document.querySelector('#sf-spec').hasAttribute('aria-invalid')`)
		if st, _ := a.do("GET", "/v1/schedules/nightly-report", nil); st != http.StatusNotFound {
			t.Errorf("the check stored the schedule: GET %d", st)
		}
		p.labelled()
		p.click("#sched-save")
		var s map[string]any
		spooltest.Eventually(t, 10*time.Second, func() error {
			st, out := a.do("GET", "/v1/schedules/nightly-report", nil)
			if st != 200 {
				return fmt.Errorf("API: schedule not created: %d", st)
			}
			s = out
			return nil
		})
		if s["spec"] != "0 2 * * *" || s["time_zone"] != "Europe/Paris" || s["queue"] != "reports" {
			t.Errorf("created %v", s)
		}
		p.until("schedule row", `document.querySelector('tr[data-schedule="nightly-report"]') !== null && document.querySelector('dialog[open]') === null`)
		next := eval[string](p, `document.querySelector('tr[data-schedule="nightly-report"] [data-col=next]').textContent`)
		if !strings.Contains(next, "02:00:00") {
			t.Errorf("next fire shown %q: want 02:00 in the schedule's zone (API %v)", next, s["next_fire_at"])
		}
		a.must("PUT", "/v1/schedules/hourly-sync", map[string]any{"spec": "@every 1h", "queue": "webhooks", "job": map[string]any{"type": "sync"}, "paused": true})
		p.until("second schedule shown by the refresh", `document.querySelector('tr[data-schedule="hourly-sync"] .b-paused') !== null`)
		p.click(`tr[data-schedule="nightly-report"] button[data-action="delete"]`)
		p.click(`dialog[open] button[value="ok"]`)
		spooltest.Eventually(t, 10*time.Second, func() error {
			if st, _ := a.do("GET", "/v1/schedules/nightly-report", nil); st != http.StatusNotFound {
				return fmt.Errorf("API: schedule still there: %d", st)
			}
			return nil
		})
		p.until("row gone", `document.querySelector('tr[data-schedule="nightly-report"]') === null && document.querySelector('tr[data-schedule="hourly-sync"]') !== null`)
	})

	t.Run("workers", func(t *testing.T) {
		p.t = t
		p.open("workers")
		p.until("workers listed", `document.querySelector('tr[data-worker="host-a/pid-4242"]') !== null && document.querySelector('tr[data-worker="host-b/pid-7"]') !== null`)
	})
}

// TestOverviewManyQueues shows 130 queues, first as one page of the listing (50 rows a
// page, filtered and sorted in the browser), then with pages of the listing of 40 queues
// (session storage spool.listPage), so that the listing no longer fits in one page: the
// server pages the table by name (Next, Previous), filters it by name prefix and paused
// state, and the workers page reads only the first pages of the listing. The totals come
// from /v1/stats either way. A proxy before the server records the listing requests.
func TestOverviewManyQueues(t *testing.T) {
	t.Parallel()
	ctx := browser(t, 1280, 900)
	srv := spooltest.Start(t, nil)
	a := api{t, srv.URL}
	const n = 130
	for i := range n {
		a.must("PUT", fmt.Sprintf("/v1/queues/q-%03d", i), map[string]any{})
	}
	for _, q := range []string{"q-003", "q-077", "q-128"} {
		a.must("POST", "/v1/queues/"+q+"/pause", nil)
	}
	for k := 0; k < 3; k++ {
		a.enqueue("q-005", map[string]any{"type": "t", "lease": "1h"})
		a.enqueue("q-125", map[string]any{"type": "t", "lease": "1h"})
	}
	a.reserve("q-005", "early/1", 1)
	a.reserve("q-125", "late/2", 1)
	spooltest.Eventually(t, 20*time.Second, func() error { // JetStream's counts lag a moment
		if j := a.must("GET", "/v1/stats", nil)["jobs"].(map[string]any); j["ready"] != 4.0 || j["reserved"] != 2.0 {
			return fmt.Errorf("API: stats jobs %v, want 4 ready and 2 reserved", j)
		}
		return nil
	})

	var (
		mu       sync.Mutex
		listings []url.Values // the queries of GET /v1/queues, in order
	)
	target, _ := url.Parse(srv.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ErrorLog = log.New(io.Discard, "", 0) // requests a navigation cancels
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "GET" && r.URL.Path == "/v1/queues" {
			mu.Lock()
			listings = append(listings, r.URL.Query())
			mu.Unlock()
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	// listed returns the listing queries since the last call.
	listed := func() []url.Values {
		mu.Lock()
		defer mu.Unlock()
		out := listings
		listings = nil
		return out
	}

	p := page{t: t, ctx: ctx, base: front.URL}
	p.run("first load", chromedp.Navigate(front.URL+"/ui/"))
	eval[any](p, `sessionStorage.setItem('spool.poll', '1000')`)
	rows := `[...document.querySelectorAll('#queue-table tbody tr[data-queue]')].map(tr => tr.dataset.queue)`
	names := func(from, to int) string {
		var out []string
		for i := from; i < to; i++ {
			out = append(out, fmt.Sprintf("q-%03d", i))
		}
		return js(strings.Join(out, ","))
	}
	totals := `['ready', 'reserved'].map(k => document.querySelector('#total-' + k + ' .value').textContent).join(' ') === '4 2'`

	t.Run("one page", func(t *testing.T) {
		p.t = t
		p.open("")
		if got := eval[[]string](p, rows); len(got) != 50 || got[0] != "q-000" || got[49] != "q-049" {
			t.Fatalf("first page: %v", got)
		}
		p.until("count and totals", `document.querySelector('#queue-count').textContent === '130 queues' && `+totals+` &&
			document.querySelector('#queue-note').hidden && document.querySelector('#overview-sub').textContent.startsWith('130 queues, 3 paused · ')`)
		p.click(`button[data-key="next"]`)
		p.click(`button[data-key="next"]`)
		p.until("last page", rows+`.join() === `+names(100, 130))
		p.typeIn("#queue-filter", "q-12")
		p.until("filtered", rows+`.join() === `+names(120, 130))
		if c := eval[string](p, `document.querySelector('#queue-count').textContent`); c != "10 of 130 queues" {
			t.Errorf("count %q", c)
		}
		p.typeIn("#queue-filter", "")
		p.click(`button[data-key="sort-ready"]`)
		p.until("sorted by ready, most first", rows+`.slice(0, 2).sort().join() === 'q-005,q-125'`)
		for _, q := range listed() {
			if q.Get("limit") != "1000" || q.Get("after") != "" {
				t.Errorf("listing read beyond its first page: %v", q)
			}
		}
		p.open("workers")
		p.until("both workers", `document.querySelector('tr[data-worker="early/1"]') !== null && document.querySelector('tr[data-worker="late/2"]') !== null`)
	})

	t.Run("paged by the server", func(t *testing.T) {
		p.t = t
		eval[any](p, `sessionStorage.setItem('spool.listPage', '40')`)
		p.open("")
		listed()
		p.until("first page of the server", rows+`.join() === `+names(0, 40)+` && `+totals+` &&
			document.querySelector('#queue-count').textContent === '130 queues' &&
			document.querySelector('#queue-note').textContent.startsWith('Sorted by name: more than 40 queues') &&
			document.querySelector('#queue-table button.sort') === null`)
		// A double click goes one page on: the second waits for the first's page.
		eval[any](p, `(b => { b.click(); b.click() })(document.querySelector('button[data-key="next"]'))`)
		p.until("second page", rows+`.join() === `+names(40, 80)+` && document.querySelector('.pager span').textContent === 'Page 2' &&
			!document.querySelector('button[data-key="next"]').disabled`)
		p.click(`button[data-key="next"]`)
		p.until("third page", rows+`.join() === `+names(80, 120))
		p.click(`button[data-key="next"]`)
		p.until("last page", rows+`.join() === `+names(120, 130)+` && document.querySelector('button[data-key="next"]').disabled`)
		p.click(`button[data-key="prev"]`)
		p.until("back a page", rows+`.join() === `+names(80, 120))
		// A refresh reads the page shown again, and only it.
		listed()
		before := eval[string](p, `document.querySelector('main').dataset.refreshed`)
		p.until("a refresh", `document.querySelector('main').dataset.refreshed !== `+js(before)+` && `+rows+`.join() === `+names(80, 120))
		refreshed := listed()
		if len(refreshed) == 0 {
			t.Error("a refresh read no page of the listing")
		}
		for _, q := range refreshed {
			if q.Get("after") != "q-079" || q.Get("limit") != "40" {
				t.Errorf("a refresh of the third page read %v", q)
			}
		}

		p.typeIn("#queue-filter", "q-12")
		p.until("prefix", rows+`.join() === `+names(120, 130)+` && document.querySelector('#queue-count').textContent === 'Queues starting with “q-12”, of 130'`)
		p.click("#paused-only")
		p.until("prefix and paused", rows+`.join() === 'q-128'`)
		p.typeIn("#queue-filter", "")
		p.until("paused", rows+`.join() === 'q-003,q-077,q-128'`)
		p.click("#paused-only")
		p.typeIn("#queue-filter", "q 1")
		p.until("bad prefix flagged", `document.querySelector('#queue-filter').getAttribute('aria-invalid') !== null &&
			document.querySelector('#queue-table tbody').textContent.includes('prefix:')`)
		p.typeIn("#queue-filter", "")
		p.until("all again", rows+`.join() === `+names(0, 40))
		p.labelled()

		seen := map[string]bool{}
		for _, q := range listed() {
			if q.Get("limit") != "40" {
				t.Errorf("paged overview read a listing page of %s queues: %v", q.Get("limit"), q)
			}
			seen["prefix="+q.Get("prefix")+" paused="+q.Get("paused")] = true
		}
		for _, w := range []string{"prefix=q-12 paused=", "prefix=q-12 paused=true", "prefix= paused=true", "prefix=q 1 paused="} {
			if !seen[w] {
				t.Errorf("no listing request with %s; saw %v", w, seen)
			}
		}

		// The workers page reads 3 pages of the listing at most: late/2's queue is beyond.
		listed()
		p.open("workers")
		p.until("the early worker only, and why", `document.querySelector('tr[data-worker="early/1"]') !== null &&
			document.querySelector('tr[data-worker="late/2"]') === null &&
			document.querySelector('main').textContent.includes('Showing queues among the first 120 by name, of 130: 1 more reserved job is in queues beyond them.')`)
		for _, q := range listed() {
			if q.Get("limit") != "40" || q.Get("after") > "q-079" {
				t.Errorf("workers page read beyond 3 pages of 40: %v", q)
			}
		}
	})
}

// TestForbiddenHidesButtons puts the dashboard behind a proxy that refuses changes to the
// queue "locked" (403, as a token without the admin right on it will get): after one
// refused change the page hides the buttons of that queue, and only of that queue.
func TestForbiddenHidesButtons(t *testing.T) {
	t.Parallel()
	ctx := browser(t, 1280, 900)
	srv := spooltest.Start(t, nil)
	a := api{t, srv.URL}
	a.enqueue("locked", map[string]any{"type": "x"})
	a.enqueue("open", map[string]any{"type": "x"})
	target, _ := url.Parse(srv.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "GET" && strings.HasPrefix(r.URL.Path, "/v1/queues/locked/") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `{"error":{"code":"forbidden","message":"this token may not change queue locked"}}`)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	p := page{t: t, ctx: ctx, base: front.URL}
	p.open("queues/locked")
	p.click("#pause")
	p.until("admin buttons hidden after the 403", `document.querySelector('#pause').closest('[hidden]') !== null &&
		document.querySelector('#purge').hidden && document.querySelector('.toast.bad')?.textContent.includes('may not change')`)
	if q := a.queue("locked"); q["paused"] != false {
		t.Errorf("locked queue paused: %v", q)
	}
	p.open("queues/open")
	p.until("buttons of another queue shown", `document.querySelector('#pause').closest('[hidden]') === null && !document.querySelector('#purge').hidden`)
	p.open("queues/locked")
	p.until("still hidden after a reload", `document.querySelector('#purge').hidden && document.querySelectorAll('#jobs-panel [data-action=delete]').length === 1 &&
		document.querySelector('#jobs-panel [data-action=delete]').closest('[hidden]') !== null`)
}
