package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
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
	"github.com/spoolq/spool/schedule"
)

// schedServer is an HTTP API with a scheduler over a real embedded JetStream.
func schedServer(t *testing.T, withSchedules bool) string {
	t.Helper()
	ns, err := natsd.Start(context.Background(), natsd.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	nc, err := natsd.Connect(ns, "sched-test")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	eng, err := engine.Open(ctx, nc, engine.Config{MaxPayload: 1000, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close(); nc.Close() })
	opts := httpapi.Options{MaxPayload: 1000, Logger: log}
	if withSchedules {
		svc, err := schedule.Open(ctx, nc, eng, schedule.Config{Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { svc.Close() })
		opts.Schedules = svc
	}
	srv := httptest.NewServer(httpapi.New(eng, opts))
	t.Cleanup(srv.Close)
	return srv.URL
}

// schedCall does one request and returns the status and the decoded JSON body.
func schedCall(t *testing.T, method, url string, body string) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, url, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, &out); err != nil {
			t.Fatalf("%s %s: %d %q is not a JSON object", method, url, resp.StatusCode, data)
		}
	}
	return resp.StatusCode, out
}

func wantAPIError(t *testing.T, status int, body map[string]any, wantStatus int, code, field string) {
	t.Helper()
	e, _ := body["error"].(map[string]any)
	if status != wantStatus || e["code"] != code || field != "" && e["field"] != field {
		t.Errorf("got %d %v, want %d %s field %q", status, body, wantStatus, code, field)
	}
}

func TestScheduleRoutes(t *testing.T) {
	t.Parallel()
	base := schedServer(t, true) + "/v1/schedules"

	st, s := schedCall(t, "PUT", base+"/nightly", `{"spec": "0 2 * * *", "time_zone": "Europe/Paris", "queue": "reports",
		"job": {"type": "report.build", "payload": {"kind": "daily"}, "priority": 10, "lease": "5m", "max_attempts": 3,
		        "metadata": {"team": "bi"}},
		"catch_up": "skip"}`)
	if st != http.StatusCreated {
		t.Fatalf("create: %d %v", st, s)
	}
	job := s["job"].(map[string]any)
	if s["name"] != "nightly" || s["spec"] != "0 2 * * *" || s["time_zone"] != "Europe/Paris" || s["catch_up"] != "skip" ||
		s["paused"] != false || job["lease"] != "5m" || job["priority"] != 10.0 || job["max_attempts"] != 3.0 ||
		job["payload"].(map[string]any)["kind"] != "daily" || s["next_fire_at"] == nil || s["last_fire"] != nil {
		t.Errorf("created schedule %v", s)
	}
	next, _ := time.Parse(time.RFC3339Nano, s["next_fire_at"].(string))
	if paris, _ := time.LoadLocation("Europe/Paris"); next.In(paris).Hour() != 2 || next.Location() != time.UTC {
		t.Errorf("next_fire_at %s: want 02:00 in Paris, written in UTC", s["next_fire_at"])
	}

	// A dry run checks and previews, and stores nothing.
	st, p := schedCall(t, "PUT", base+"/preview?dry_run=true", `{"spec": "30 9 * * 1-5", "time_zone": "America/New_York", "queue": "q"}`)
	if st != http.StatusOK || p["name"] != "preview" || p["next_fire_at"] == nil {
		t.Errorf("dry run: %d %v", st, p)
	} else if at, _ := time.Parse(time.RFC3339Nano, p["next_fire_at"].(string)); at.Before(time.Now()) {
		t.Errorf("dry run: next fire %v is past", at)
	}
	st, p = schedCall(t, "GET", base+"/preview", "")
	wantAPIError(t, st, p, http.StatusNotFound, "schedule_not_found", "")
	st, p = schedCall(t, "PUT", base+"/preview?dry_run=true", `{"spec": "61 * * * *", "queue": "q"}`)
	wantAPIError(t, st, p, http.StatusBadRequest, "invalid_argument", "spec")
	st, p = schedCall(t, "PUT", base+"/preview?dry_run=maybe", `{"spec": "@hourly", "queue": "q"}`)
	wantAPIError(t, st, p, http.StatusBadRequest, "invalid_argument", "dry_run")

	// The same again: 200, unchanged. A change: 200.
	if st, s2 := schedCall(t, "PUT", base+"/nightly", `{"spec": "0 2 * * *", "time_zone": "Europe/Paris", "queue": "reports",
		"job": {"type": "report.build", "payload": {"kind": "daily"}, "priority": 10, "lease": "5m", "max_attempts": 3,
		        "metadata": {"team": "bi"}}, "catch_up": "skip"}`); st != 200 || s2["updated_at"] != s["updated_at"] {
		t.Errorf("same put: %d %v", st, s2)
	}
	st, s = schedCall(t, "PUT", base+"/nightly", `{"spec": "@every 1h", "queue": "reports", "job": {"payload_base64": "AAEC"}}`)
	if st != 200 || s["time_zone"] != "UTC" || s["job"].(map[string]any)["payload_base64"] != "AAEC" || s["job"].(map[string]any)["priority"] != 1024.0 {
		t.Errorf("update: %d %v", st, s)
	}

	st, l := schedCall(t, "GET", base, "")
	if st != 200 || len(l["schedules"].([]any)) != 1 {
		t.Errorf("list: %d %v", st, l)
	}
	st, s = schedCall(t, "GET", base+"/nightly", "")
	if st != 200 || s["recent_fires"] == nil || len(s["recent_fires"].([]any)) != 0 {
		t.Errorf("get: %d %v (want recent_fires: [])", st, s)
	}

	st, j := schedCall(t, "POST", base+"/nightly/trigger", "")
	if st != http.StatusCreated || j["queue"] != "reports" || j["metadata"].(map[string]any)["spool.trigger"] != "true" {
		t.Errorf("trigger: %d %v", st, j)
	}
	st, s = schedCall(t, "GET", base+"/nightly", "")
	fires := s["recent_fires"].([]any)
	if st != 200 || len(fires) != 1 || fires[0].(map[string]any)["job_id"] != j["id"] || fires[0].(map[string]any)["trigger"] != true ||
		s["last_fire"].(map[string]any)["job_id"] != j["id"] {
		t.Errorf("after trigger: %d %v", st, s)
	}

	if st, s = schedCall(t, "POST", base+"/nightly/pause", ""); st != 200 || s["paused"] != true || s["next_fire_at"] != nil {
		t.Errorf("pause: %d %v", st, s)
	}
	if st, s = schedCall(t, "POST", base+"/nightly/resume", "{}"); st != 200 || s["paused"] != false || s["next_fire_at"] == nil {
		t.Errorf("resume: %d %v", st, s)
	}
	if st, _ = schedCall(t, "DELETE", base+"/nightly", ""); st != http.StatusNoContent {
		t.Errorf("delete: %d", st)
	}
	for _, r := range [][2]string{{"GET", ""}, {"DELETE", ""}, {"POST", "/pause"}, {"POST", "/resume"}, {"POST", "/trigger"}} {
		st, e := schedCall(t, r[0], base+"/nightly"+r[1], "")
		wantAPIError(t, st, e, 404, "schedule_not_found", "")
	}
}

func TestScheduleBadInput(t *testing.T) {
	t.Parallel()
	base := schedServer(t, true) + "/v1/schedules"
	for _, c := range []struct {
		name, body string
		status     int
		code       string
		field      string
	}{
		{"x", `{"spec": "0 25 * * *", "queue": "q"}`, 400, "invalid_argument", "spec"},
		{"x", `{"spec": "@every 100ms", "queue": "q"}`, 400, "invalid_argument", "spec"},
		{"x", `{"spec": "0 0 30 2 *", "queue": "q"}`, 400, "invalid_argument", "spec"},
		{"x", `{"spec": "@at 2001-01-01T00:00:00Z", "queue": "q"}`, 400, "invalid_argument", "spec"},
		{"x", `{"spec": "@daily", "queue": "q", "time_zone": "Mars/Olympus"}`, 400, "invalid_argument", "time_zone"},
		{"x", `{"spec": "@daily"}`, 400, "invalid_argument", "queue"},
		{"x", `{"spec": "@daily", "queue": "no spaces"}`, 400, "invalid_argument", "queue"},
		{"x", `{"spec": "@daily", "queue": "q", "catch_up": "all"}`, 400, "invalid_argument", "catch_up"},
		{"x", `{"spec": "@daily", "queue": "q", "start_at": "2030-01-02T00:00:00Z", "end_at": "2030-01-01T00:00:00Z"}`, 400, "invalid_argument", "end_at"},
		{"x", `{"spec": "@daily", "queue": "q", "job": {"lease": "1ms"}}`, 400, "invalid_argument", "job.lease"},
		{"x", `{"spec": "@daily", "queue": "q", "job": {"priority": -1}}`, 400, "invalid_argument", "job.priority"},
		{"x", `{"spec": "@daily", "queue": "q", "job": {"payload": 1, "payload_base64": "AA=="}}`, 400, "invalid_argument", "job.payload_base64"},
		{"x", `{"spec": "@daily", "queue": "q", "job": {"metadata": {"spool.tick": "1"}}}`, 400, "invalid_argument", "job.metadata"},
		{"x", `{"spec": "@daily", "queue": "q", "job": {"delay": "1m"}}`, 400, "invalid_json", "delay"}, // the decoder names no path
		{"x", `{"spec": "@daily", "queue": "q", "every": "1m"}`, 400, "invalid_json", "every"},
		{"x", `{"spec": "@daily", "queue": "q", "job": {"payload": "` + strings.Repeat("a", 1200) + `"}}`, 413, "payload_too_large", ""},
		{"a..b", `{"spec": "@daily", "queue": "q"}`, 400, "invalid_argument", "name"},
		{"-x", `{"spec": "@daily", "queue": "q"}`, 400, "invalid_argument", "name"},
		{strings.Repeat("n", 129), `{"spec": "@daily", "queue": "q"}`, 400, "invalid_argument", "name"},
	} {
		st, e := schedCall(t, "PUT", base+"/"+c.name, c.body)
		wantAPIError(t, st, e, c.status, c.code, c.field)
	}
	if st, e := schedCall(t, "GET", base+"/bad%2Fname", ""); st != 400 {
		wantAPIError(t, st, e, 400, "invalid_argument", "name")
	}
	if st, l := schedCall(t, "GET", base, ""); st != 200 || len(l["schedules"].([]any)) != 0 {
		t.Errorf("an invalid schedule was stored: %v", l)
	}
}

func TestSchedulesNotEnabled(t *testing.T) {
	t.Parallel()
	base := schedServer(t, false) + "/v1/schedules"
	st, e := schedCall(t, "GET", base, "")
	wantAPIError(t, st, e, 503, "unavailable", "")
	st, e = schedCall(t, "PUT", base+"/x", `{"spec": "@daily", "queue": "q"}`)
	wantAPIError(t, st, e, 503, "unavailable", "")
}

// The scheduler's tick counters are on /metrics.
func TestScheduleMetrics(t *testing.T) {
	t.Parallel()
	srv := schedServer(t, true)
	if st, s := schedCall(t, "PUT", srv+"/v1/schedules/tick", `{"spec": "@every 1s", "queue": "ticks"}`); st != http.StatusCreated {
		t.Fatalf("create: %d %v", st, s)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(srv + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, line := range strings.Split(string(body), "\n") {
			if v, ok := strings.CutPrefix(line, `spool_schedule_ticks_total{outcome="fired"} `); ok && v != "0" {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no fired tick counted on /metrics after 15s:\n%s", body)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
