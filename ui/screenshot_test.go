package ui_test

import (
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/spoolq/spool/internal/spooltest"
)

// TestScreenshots makes the screenshots of docs/dashboard.md: a server with a few busy
// queues, producers and workers running for SPOOL_SCREENSHOTS_LOAD (default 2m) while the
// overview samples them, then every page. It runs only when SPOOL_SCREENSHOTS names the
// folder to write to:
//
//	SPOOL_SCREENSHOTS=../docs go test -run TestScreenshots ./ui/
func TestScreenshots(t *testing.T) {
	dir := os.Getenv("SPOOL_SCREENSHOTS")
	if dir == "" {
		t.Skip("SPOOL_SCREENSHOTS not set: no screenshots to make")
	}
	dir, _ = filepath.Abs(dir)
	load := 2 * time.Minute
	if v := os.Getenv("SPOOL_SCREENSHOTS_LOAD"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatal(err)
		}
		load = d
	}
	ctx := browser(t, 1280, 860)
	srv := spooltest.Start(t, nil)
	a := api{t, srv.URL}
	p := page{t: t, ctx: ctx, base: srv.URL, shots: dir}

	queues := []string{"email", "sms", "webhooks.deliver", "images.resize", "search.index", "notifications.push", "billing.invoices", "reports"}
	for _, q := range queues {
		a.must("PUT", "/v1/queues/"+q, map[string]any{"lease": "1m"})
	}
	a.must("PUT", "/v1/queues/images.resize", map[string]any{"max_attempts": 2, "backoff_base": "1s"})
	for i := range 6 {
		a.enqueue("reports", map[string]any{"type": "report.build", "delay": strconv.Itoa(10+i*7) + "m", "payload": map[string]any{"kind": "daily", "team": i}})
	}
	for _, s := range []map[string]any{
		{"name": "nightly-report", "spec": "0 2 * * *", "time_zone": "Europe/Paris", "queue": "reports", "job": map[string]any{"type": "report.build", "payload": map[string]any{"kind": "daily"}}},
		{"name": "invoice-run", "spec": "30 6 1 * *", "time_zone": "America/New_York", "queue": "billing.invoices", "job": map[string]any{"type": "invoice.batch"}},
		{"name": "search-reindex", "spec": "@every 15m", "queue": "search.index", "job": map[string]any{"type": "index.refresh"}},
		{"name": "weekly-digest", "spec": "0 9 * * 1", "time_zone": "Asia/Tokyo", "queue": "email", "job": map[string]any{"type": "digest.send"}, "paused": true},
	} {
		name := s["name"].(string)
		delete(s, "name")
		a.must("PUT", "/v1/schedules/"+name, s)
	}
	a.must("POST", "/v1/schedules/nightly-report/trigger", nil)

	// Producers at rates that vary over time, workers a little slower, a few failures.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	rate := map[string]float64{"email": 40, "sms": 15, "webhooks.deliver": 30, "images.resize": 8, "search.index": 20, "notifications.push": 25, "billing.invoices": 3}
	for q, r := range rate {
		wg.Go(func() {
			tick := time.NewTicker(250 * time.Millisecond)
			defer tick.Stop()
			n := 0
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				el := time.Since(start).Seconds()
				k := int(r / 4 * (1 + 0.6*math.Sin(el/20+float64(len(q)))))
				var jobs []any
				for range k {
					n++
					jobs = append(jobs, map[string]any{"type": q + ".job", "payload": map[string]any{"n": n, "to": fmt.Sprintf("user%d@example.com", n%977)},
						"metadata": map[string]any{"tenant": []string{"acme", "globex", "initech"}[n%3]}})
				}
				if len(jobs) > 0 {
					a.do("POST", "/v1/queues/"+q+"/jobs", map[string]any{"jobs": jobs})
				}
			}
		})
	}
	for i, q := range []string{"email", "sms", "webhooks.deliver", "images.resize", "search.index", "notifications.push"} {
		worker := fmt.Sprintf("worker-%d.prod/pid-%d", i%3+1, 3100+i)
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				st, out := a.do("POST", "/v1/reserve", map[string]any{"queues": []string{q}, "max": 8, "wait": "1s", "worker": worker})
				if st != http.StatusOK {
					continue
				}
				var acks []any
				for _, j := range out["jobs"].([]any) {
					m := j.(map[string]any)
					if q == "images.resize" && m["id"].(string)[len(m["id"].(string))-1]%3 == 0 {
						a.do("POST", "/v1/jobs/"+m["id"].(string)+"/fail", map[string]any{"lease_token": m["lease_token"],
							"error": "resize: source image too large (12000x9000 px, limit 8192x8192)"})
						continue
					}
					acks = append(acks, map[string]any{"id": m["id"], "lease_token": m["lease_token"]})
				}
				if len(acks) > 0 {
					a.do("POST", "/v1/ack", map[string]any{"acks": acks})
				}
				time.Sleep(time.Duration(150+i*40) * time.Millisecond)
			}
		})
	}

	p.run("first load", chromedp.Navigate(srv.URL+"/ui/"))
	eval[any](p, `sessionStorage.setItem('spool.poll', '2000')`)
	p.open("")
	time.Sleep(load)
	close(stop)
	wg.Wait()
	a.must("POST", "/v1/queues/billing.invoices/pause", map[string]any{"for": "30m"})
	// Jobs in flight, held by named workers.
	for i, q := range []string{"email", "webhooks.deliver", "notifications.push", "email"} {
		for n := range 10 {
			a.enqueue(q, map[string]any{"type": q + ".job", "payload": map[string]any{"n": n}})
		}
		a.reserve(q, fmt.Sprintf("worker-%d.prod/pid-%d", i%3+1, 3200+i), 3+i)
	}
	time.Sleep(3 * time.Second) // two refreshes of the overview

	p.open("")
	p.until("chart drawn", `document.querySelectorAll('#main svg.chart path.line').length === 3`)
	p.shot("dashboard-overview")
	p.open("queues/email")
	p.shot("dashboard-queue")
	p.open("queues/images.resize?state=buried")
	p.until("buried rows", `document.querySelectorAll('#jobs-panel tr[data-job]').length > 0`)
	id := eval[string](p, `document.querySelector('#jobs-panel tr[data-job]').dataset.job`)
	p.shot("dashboard-buried")
	p.open("jobs/" + id)
	p.shot("dashboard-job")
	p.open("schedules")
	p.shot("dashboard-schedules")
	p.click(`tr[data-schedule="nightly-report"] button[data-action="edit"]`)
	p.until("preview", `document.querySelector('#sched-preview').textContent.includes('Next fire')`)
	p.shot("dashboard-schedule-form")
	p.run("close", chromedp.Click(chromedp.CSS(`#schedule-dialog button[value="cancel"]`)))
	p.open("workers")
	p.shot("dashboard-workers")

	phone := page{t: t, ctx: ctx, base: srv.URL, shots: dir}
	phone.run("phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(1.5)))
	phone.open("")
	phone.shot("dashboard-phone")
}
