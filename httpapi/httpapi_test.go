package httpapi_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/spoolq/spool"
	"github.com/spoolq/spool/engine"
	"github.com/spoolq/spool/httpapi"
	"github.com/spoolq/spool/internal/budget"
	"github.com/spoolq/spool/internal/natsd"
	"github.com/spoolq/spool/internal/spooltest"

	"github.com/spoolq/spool/internal/testlog"
)

// testServer is the HTTP API over a real engine on an embedded JetStream server.
type testServer struct {
	eng  *engine.Engine
	h    *httpapi.Handler
	srv  *httptest.Server
	hc   *http.Client
	doc  *apiDoc
	logs *testlog.Buffer
}

// newServer starts JetStream, the engine and the HTTP API; maxPayload 0 takes the default.
func newServer(tb testing.TB, maxPayload int) *testServer {
	tb.Helper()
	return newServerWith(tb, maxPayload, slog.LevelWarn, nil)
}

// newServerWith is newServer logging from level, with configure adjusting the options (it
// may open services on nc).
func newServerWith(tb testing.TB, maxPayload int, level slog.Level, configure func(*httpapi.Options, *nats.Conn)) *testServer {
	tb.Helper()
	return newServerOf(tb, engine.Config{MaxPayload: maxPayload}, level, configure)
}

// newServerOf is newServerWith over an engine of configuration ecfg (its Logger is the
// test's).
func newServerOf(tb testing.TB, ecfg engine.Config, level slog.Level, configure func(*httpapi.Options, *nats.Conn)) *testServer {
	tb.Helper()
	ns, err := natsd.Start(context.Background(), natsd.Options{StoreDir: tb.TempDir()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	nc, err := natsd.Connect(ns, "httpapi-test")
	if err != nil {
		tb.Fatal(err)
	}
	logs := &testlog.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: level}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ecfg.Logger = log
	eng, err := engine.Open(ctx, nc, ecfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { eng.Close(); nc.Close() })
	o := httpapi.Options{MaxPayload: ecfg.MaxPayload, Logger: log, Version: "test"}
	if configure != nil {
		configure(&o, nc)
	}
	h := httpapi.New(eng, o)
	srv := httptest.NewServer(h)
	tb.Cleanup(srv.Close)
	tb.Cleanup(func() {
		if tb.Failed() {
			if l := logs.String(); l != "" {
				tb.Logf("server log:\n%s", l)
			}
		}
	})
	return &testServer{
		eng: eng, h: h, srv: srv, doc: loadDoc(tb), logs: logs,
		hc: &http.Client{
			Timeout:       90 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// eventually is spooltest.Eventually.
func eventually(t testing.TB, d time.Duration, f func() error) { spooltest.Eventually(t, d, f) }

// reserveAsync sends POST /v1/reserve with body from another goroutine (not s.do: t.Fatal
// must not be called off the test goroutine); the answer comes on the channel, status -1 for
// a transport error.
func (s *testServer) reserveAsync(body string) <-chan *answer {
	got := make(chan *answer, 1)
	go func() {
		req, _ := http.NewRequest("POST", s.srv.URL+"/v1/reserve", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := s.hc.Do(req)
		if err != nil {
			got <- &answer{status: -1, raw: []byte(err.Error())}
			return
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		got <- &answer{method: "POST", path: "/v1/reserve", status: resp.StatusCode, header: resp.Header, raw: raw}
	}()
	return got
}

// waiting waits until n reservations wait for jobs on the server, as /metrics reports them.
func (s *testServer) waiting(t testing.TB, n int) {
	t.Helper()
	want := fmt.Sprintf("\nspool_reservations_waiting %d\n", n)
	eventually(t, 10*time.Second, func() error {
		m := s.must(t, http.StatusOK, "GET", "/metrics", nil)
		if !bytes.Contains(m.raw, []byte(want)) {
			return fmt.Errorf("/metrics: want %q", strings.TrimSpace(want))
		}
		return nil
	})
}

// answer is one HTTP answer.
type answer struct {
	method, path string
	status       int
	header       http.Header
	raw          []byte
}

func (a *answer) String() string {
	b := a.raw
	if len(b) > 600 {
		b = append(b[:600:600], "..."...)
	}
	return fmt.Sprintf("%s %s -> %d %s", a.method, a.path, a.status, bytes.TrimSpace(b))
}

// into decodes the answer's JSON body.
func (a *answer) into(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(a.raw, v); err != nil {
		t.Fatalf("%v: decode: %v", a, err)
	}
}

// apiErr is the error object of an answer ("" when there is none).
func (a *answer) apiErr() (code, field string) {
	var e struct {
		Error struct{ Code, Field string }
	}
	json.Unmarshal(a.raw, &e)
	return e.Error.Code, e.Error.Field
}

type reqOpt func(*http.Request)

func contentType(ct string) reqOpt {
	return func(r *http.Request) {
		if ct == "" {
			r.Header.Del("Content-Type")
		} else {
			r.Header.Set("Content-Type", ct)
		}
	}
}

// do sends a request: body nil sends none, a string or []byte is sent as is, anything else as
// JSON. Every answer is checked against openapi.yaml.
func (s *testServer) do(t testing.TB, method, path string, body any, opts ...reqOpt) *answer {
	t.Helper()
	a, probs := s.send(t, method, path, body, opts...)
	for _, p := range probs {
		t.Errorf("answer not as documented in openapi.yaml: %s\n\t(%v)", p, a)
	}
	return a
}

// send is do that returns the differences from openapi.yaml instead of reporting them.
func (s *testServer) send(t testing.TB, method, path string, body any, opts ...reqOpt) (*answer, []string) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, s.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, o := range opts {
		o(req)
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read: %v", method, path, err)
	}
	a := &answer{method: method, path: path, status: resp.StatusCode, header: resp.Header, raw: raw}
	return a, s.doc.checkAnswer(method, req.URL.EscapedPath(), resp.StatusCode, resp.Header, raw)
}

// must sends a request and fails the test unless the answer has the status.
func (s *testServer) must(t testing.TB, status int, method, path string, body any, opts ...reqOpt) *answer {
	t.Helper()
	a := s.do(t, method, path, body, opts...)
	if a.status != status {
		t.Fatalf("%v; want status %d", a, status)
	}
	return a
}

// wantErr sends a request and checks the error status, code and field.
func (s *testServer) wantErr(t testing.TB, status int, code, field, method, path string, body any, opts ...reqOpt) {
	t.Helper()
	a := s.do(t, method, path, body, opts...)
	c, f := a.apiErr()
	if a.status != status || c != code || f != field {
		t.Errorf("%v\n\twant %d %s field %q", a, status, code, field)
	}
}

// job is a job as the API shows it.
type job struct {
	ID             string            `json:"id"`
	Queue          string            `json:"queue"`
	Type           string            `json:"type"`
	State          string            `json:"state"`
	Priority       uint32            `json:"priority"`
	Payload        json.RawMessage   `json:"payload"`
	PayloadBase64  string            `json:"payload_base64"`
	Attempts       int               `json:"attempts"`
	MaxAttempts    int               `json:"max_attempts"`
	Lease          string            `json:"lease"`
	UniqueKey      string            `json:"unique_key"`
	Metadata       map[string]string `json:"metadata"`
	CreatedAt      *time.Time        `json:"created_at"`
	RunAt          *time.Time        `json:"run_at"`
	ReservedAt     *time.Time        `json:"reserved_at"`
	LeaseExpiresAt *time.Time        `json:"lease_expires_at"`
	FinishedAt     *time.Time        `json:"finished_at"`
	LastError      string            `json:"last_error"`
	Result         json.RawMessage   `json:"result"`
	Worker         string            `json:"worker"`
	Releases       int               `json:"releases"`
	Buries         int               `json:"buries"`
	Kicks          int               `json:"kicks"`
	Timeouts       int               `json:"timeouts"`
	LeaseToken     string            `json:"lease_token"`
	Duplicate      bool              `json:"duplicate"`
}

type queueView struct {
	Name        string     `json:"name"`
	Lease       string     `json:"lease"`
	MaxAttempts int        `json:"max_attempts"`
	BackoffBase string     `json:"backoff_base"`
	BackoffMax  string     `json:"backoff_max"`
	Paused      bool       `json:"paused"`
	PausedUntil *time.Time `json:"paused_until"`
	Replicas    int        `json:"replicas"`
	Stats       struct {
		Ready, Reserved, Delayed, Buried int64
		Enqueued                         int64
	} `json:"stats"`
}

type reserveView struct {
	Jobs   []job    `json:"jobs"`
	Paused []string `json:"paused"`
}

func qpath(queue string, rest ...string) string {
	return "/v1/queues/" + url.PathEscape(queue) + strings.Join(rest, "")
}

func (s *testServer) enqueue(t testing.TB, queue string, body any) job {
	t.Helper()
	var j job
	s.must(t, http.StatusCreated, "POST", qpath(queue, "/jobs"), body).into(t, &j)
	if j.ID == "" || j.Queue != queue {
		t.Fatalf("enqueue into %q: %+v", queue, j)
	}
	return j
}

func (s *testServer) getJob(t testing.TB, id string) job {
	t.Helper()
	var j job
	s.must(t, http.StatusOK, "GET", "/v1/jobs/"+id, nil).into(t, &j)
	return j
}

func (s *testServer) reserve(t testing.TB, body any) reserveView {
	t.Helper()
	var r reserveView
	s.must(t, http.StatusOK, "POST", "/v1/reserve", body).into(t, &r)
	return r
}

func jsonEq(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func ids(js []job) []string {
	out := make([]string, len(js))
	for i, j := range js {
		out[i] = j.ID
	}
	return out
}

// TestLifecycle walks jobs through every state over HTTP.
func TestLifecycle(t *testing.T) {
	t.Parallel()
	s := newServer(t, 0)

	// Enqueue one job with every setting.
	j1 := s.enqueue(t, "email", map[string]any{
		"type": "email.send", "payload": map[string]any{"to": "a@example.com"}, "priority": 10,
		"lease": "30s", "max_attempts": 3, "metadata": map[string]string{"tenant": "acme"},
	})
	if j1.Type != "email.send" || j1.State != "ready" || j1.Priority != 10 || j1.MaxAttempts != 3 ||
		j1.Lease != "30s" || j1.Metadata["tenant"] != "acme" || !jsonEq(j1.Payload, []byte(`{"to":"a@example.com"}`)) ||
		j1.CreatedAt == nil || j1.Attempts != 0 {
		t.Errorf("enqueued job: %+v", j1)
	}
	if got := s.getJob(t, j1.ID); !reflect.DeepEqual(got, j1) {
		t.Errorf("GET job:\n got %+v\nwant %+v", got, j1)
	}

	// A unique key: the second enqueue returns the first job.
	u := s.enqueue(t, "email", map[string]any{"type": "welcome", "unique_key": "welcome-42"})
	var dup job
	s.must(t, http.StatusOK, "POST", qpath("email", "/jobs"), map[string]any{"type": "welcome", "unique_key": "welcome-42"}).into(t, &dup)
	if !dup.Duplicate || dup.ID != u.ID {
		t.Errorf("duplicate enqueue: %+v, want job %s with duplicate", dup, u.ID)
	}

	// A batch: JSON and binary payloads, a delayed job and a duplicate.
	var batch struct {
		Jobs []struct {
			ID        string          `json:"id"`
			State     string          `json:"state"`
			Duplicate bool            `json:"duplicate"`
			Error     json.RawMessage `json:"error"`
		} `json:"jobs"`
	}
	s.must(t, http.StatusOK, "POST", qpath("email", "/jobs"), map[string]any{"jobs": []any{
		map[string]any{"type": "a", "payload": []int{1, 2}},
		map[string]any{"type": "b", "payload_base64": base64.StdEncoding.EncodeToString([]byte{0xff, 0, 1})},
		map[string]any{"type": "c", "delay": "1h"},
		map[string]any{"type": "welcome", "unique_key": "welcome-42"},
	}}).into(t, &batch)
	if len(batch.Jobs) != 4 {
		t.Fatalf("batch answer: %+v", batch)
	}
	for i, want := range []string{"ready", "ready", "delayed", "ready"} {
		if b := batch.Jobs[i]; b.ID == "" || b.State != want || b.Error != nil || b.Duplicate != (i == 3) {
			t.Errorf("batch item %d: %+v, want state %s", i, b, want)
		}
	}
	if batch.Jobs[3].ID != u.ID {
		t.Errorf("batch duplicate is job %s, want %s", batch.Jobs[3].ID, u.ID)
	}
	ja, jb, jc := s.getJob(t, batch.Jobs[0].ID), s.getJob(t, batch.Jobs[1].ID), s.getJob(t, batch.Jobs[2].ID)
	if !jsonEq(ja.Payload, []byte("[1,2]")) || ja.PayloadBase64 != "" {
		t.Errorf("JSON payload: %+v", ja)
	}
	if jb.PayloadBase64 != "/wAB" || jb.Payload != nil {
		t.Errorf("binary payload: %+v", jb)
	}
	if jc.State != "delayed" || jc.RunAt == nil || time.Until(*jc.RunAt) < 50*time.Minute {
		t.Errorf("delayed job: %+v", jc)
	}

	// Reserve: most urgent band first (priority 10), then FIFO; the delayed job stays.
	r := s.reserve(t, map[string]any{"queues": []string{"email"}, "max": 10, "wait": "1s", "worker": "w1"})
	if got, want := ids(r.Jobs), []string{j1.ID, u.ID, ja.ID, jb.ID}; !slices.Equal(got, want) {
		t.Fatalf("reserved %v, want %v", got, want)
	}
	held := map[string]job{}
	for _, j := range r.Jobs {
		if j.State != "reserved" || j.LeaseToken == "" || j.Attempts != 1 || j.LeaseExpiresAt == nil || j.ReservedAt == nil {
			t.Errorf("reserved job: %+v", j)
		}
		held[j.ID] = j
	}
	if got := s.getJob(t, j1.ID); got.State != "reserved" || got.LeaseToken != "" {
		t.Errorf("GET reserved job: %+v", got)
	}

	// Ack with a result.
	var acked job
	s.must(t, http.StatusOK, "POST", "/v1/jobs/"+j1.ID+"/ack", map[string]any{
		"lease_token": held[j1.ID].LeaseToken, "result": map[string]string{"message_id": "x"},
	}).into(t, &acked)
	if acked.State != "succeeded" || !jsonEq(acked.Result, []byte(`{"message_id":"x"}`)) || acked.FinishedAt == nil {
		t.Errorf("acked: %+v", acked)
	}
	if got := s.getJob(t, j1.ID); got.State != "succeeded" || got.Payload != nil || got.FinishedAt == nil || !jsonEq(got.Result, acked.Result) {
		t.Errorf("GET acked job: %+v", got)
	}
	s.wantErr(t, 409, "lease_lost", "", "POST", "/v1/jobs/"+j1.ID+"/ack", map[string]any{"lease_token": held[j1.ID].LeaseToken})

	// Fail with an explicit retry: delayed, with the error.
	var failed job
	s.must(t, http.StatusOK, "POST", "/v1/jobs/"+u.ID+"/fail", map[string]any{
		"lease_token": held[u.ID].LeaseToken, "error": "smtp: timeout", "retry_in": "1h",
	}).into(t, &failed)
	if failed.State != "delayed" || failed.LastError != "smtp: timeout" || failed.RunAt == nil || failed.Attempts != 1 {
		t.Errorf("failed: %+v", failed)
	}

	// Touch extends the lease.
	var touched struct {
		LeaseExpiresAt time.Time `json:"lease_expires_at"`
	}
	s.must(t, http.StatusOK, "POST", "/v1/jobs/"+ja.ID+"/touch", map[string]any{"lease_token": held[ja.ID].LeaseToken, "lease": "2m"}).into(t, &touched)
	if time.Until(touched.LeaseExpiresAt) < time.Minute {
		t.Errorf("touch: lease ends at %v", touched.LeaseExpiresAt)
	}
	if got := s.getJob(t, ja.ID); got.LeaseExpiresAt == nil || !got.LeaseExpiresAt.Equal(touched.LeaseExpiresAt) {
		t.Errorf("GET touched job: lease ends %v, touch said %v", got.LeaseExpiresAt, touched.LeaseExpiresAt)
	}

	// Release with a new priority: ready again, no attempt used.
	var released job
	s.must(t, http.StatusOK, "POST", "/v1/jobs/"+ja.ID+"/release", map[string]any{"lease_token": held[ja.ID].LeaseToken, "priority": 5}).into(t, &released)
	if released.State != "ready" || released.Priority != 5 || released.Releases != 1 || released.Attempts != 0 {
		t.Errorf("released: %+v", released)
	}

	// Bury, then kick: ready with the attempts given back.
	var buried, kicked job
	s.must(t, http.StatusOK, "POST", "/v1/jobs/"+jb.ID+"/bury", map[string]any{"lease_token": held[jb.ID].LeaseToken, "reason": "bad input"}).into(t, &buried)
	if buried.State != "buried" || buried.LastError != "bad input" || buried.Buries != 1 {
		t.Errorf("buried: %+v", buried)
	}
	s.must(t, http.StatusOK, "POST", "/v1/jobs/"+jb.ID+"/kick", nil).into(t, &kicked)
	if kicked.State != "ready" || kicked.Attempts != 0 || kicked.Kicks != 1 || kicked.PayloadBase64 != "/wAB" {
		t.Errorf("kicked: %+v", kicked)
	}
	// The old lease is gone.
	s.wantErr(t, 409, "lease_lost", "", "POST", "/v1/jobs/"+jb.ID+"/touch", map[string]any{"lease_token": held[jb.ID].LeaseToken})
	// Kick of a ready job does not apply.
	s.wantErr(t, 409, "wrong_state", "", "POST", "/v1/jobs/"+jb.ID+"/kick", nil)

	// A delayed job can be kicked too.
	s.must(t, http.StatusOK, "POST", "/v1/jobs/"+u.ID+"/kick", nil).into(t, &kicked)
	if kicked.State != "ready" || kicked.RunAt != nil {
		t.Errorf("kicked delayed job: %+v", kicked)
	}

	// Delete (cancel) a ready job; a second delete finds it finished.
	var cancelled job
	s.must(t, http.StatusOK, "DELETE", "/v1/jobs/"+jc.ID, nil).into(t, &cancelled)
	if cancelled.State != "cancelled" || cancelled.FinishedAt == nil {
		t.Errorf("cancelled: %+v", cancelled)
	}
	if got := s.getJob(t, jc.ID); got.State != "cancelled" {
		t.Errorf("GET cancelled job: %+v", got)
	}
	s.wantErr(t, 409, "wrong_state", "", "DELETE", "/v1/jobs/"+jc.ID, nil)

	// Cancel a reserved job: its holder loses the lease.
	r = s.reserve(t, map[string]any{"queues": []string{"email"}, "max": 1})
	if len(r.Jobs) != 1 {
		t.Fatalf("reserve: %+v", r)
	}
	x := r.Jobs[0]
	s.must(t, http.StatusOK, "DELETE", "/v1/jobs/"+x.ID, nil)
	s.wantErr(t, 409, "lease_lost", "", "POST", "/v1/jobs/"+x.ID+"/ack", map[string]any{"lease_token": x.LeaseToken})

	// Fail with bury: buried at once; kick the queue's buried jobs.
	var pathRes reserveView
	s.must(t, http.StatusOK, "POST", qpath("email", "/reserve"), map[string]any{"max": 1}).into(t, &pathRes)
	if len(pathRes.Jobs) != 1 {
		t.Fatalf("reserve by path: %+v", pathRes)
	}
	y := pathRes.Jobs[0]
	s.must(t, http.StatusOK, "POST", "/v1/jobs/"+y.ID+"/fail", map[string]any{"lease_token": y.LeaseToken, "error": "fatal", "bury": true}).into(t, &buried)
	if buried.State != "buried" || buried.LastError != "fatal" {
		t.Errorf("fail with bury: %+v", buried)
	}
	var listed struct {
		Jobs       []job  `json:"jobs"`
		NextCursor string `json:"next_cursor"`
	}
	s.must(t, http.StatusOK, "GET", qpath("email", "/jobs?state=buried"), nil).into(t, &listed)
	if got := ids(listed.Jobs); !slices.Equal(got, []string{y.ID}) {
		t.Errorf("buried jobs: %v, want [%s]", got, y.ID)
	}
	var k struct{ Kicked int }
	s.must(t, http.StatusOK, "POST", qpath("email", "/kick"), map[string]any{"max": 10}).into(t, &k)
	if k.Kicked != 1 {
		t.Errorf("kick queue: %d kicked, want 1", k.Kicked)
	}
	if got := s.getJob(t, y.ID); got.State != "ready" || got.Attempts != 0 {
		t.Errorf("job after queue kick: %+v", got)
	}

	// Queues: list, get, put (update and create), delete.
	var ql struct{ Queues []queueView }
	s.must(t, http.StatusOK, "GET", "/v1/queues", nil).into(t, &ql)
	if len(ql.Queues) != 1 || ql.Queues[0].Name != "email" {
		t.Errorf("queues: %+v", ql)
	}
	var q queueView
	s.must(t, http.StatusOK, "GET", qpath("email"), nil).into(t, &q)
	if q.Name != "email" || q.Lease != "30s" || q.MaxAttempts != 25 || q.BackoffBase != "1s" || q.BackoffMax != "1h" || q.Paused || q.Replicas != 1 {
		t.Errorf("queue: %+v", q)
	}
	s.must(t, http.StatusOK, "PUT", qpath("email"), map[string]any{"lease": "45s", "max_attempts": 7, "backoff_base": "2s", "backoff_max": 600}).into(t, &q)
	if q.Lease != "45s" || q.MaxAttempts != 7 || q.BackoffBase != "2s" || q.BackoffMax != "10m" {
		t.Errorf("updated queue: %+v", q)
	}
	// Durations are written in their shortest form; Go's long form is read too.
	s.must(t, http.StatusOK, "PUT", qpath("email"), map[string]any{"lease": "1h0m0s", "backoff_base": "1m30s", "backoff_max": "1h30m0s"}).into(t, &q)
	if q.Lease != "1h" || q.BackoffBase != "1m30s" || q.BackoffMax != "1h30m" {
		t.Errorf("queue updated with Go's long forms: %+v, want lease 1h, backoff 1m30s to 1h30m", q)
	}
	s.must(t, http.StatusOK, "PUT", qpath("email"), map[string]any{"lease": "45s", "backoff_base": "2s", "backoff_max": "10m"}).into(t, &q)
	if q.Lease != "45s" || q.BackoffBase != "2s" || q.BackoffMax != "10m" {
		t.Errorf("queue updated with short forms: %+v", q)
	}
	s.must(t, http.StatusOK, "PUT", qpath("fresh"), map[string]any{"max_attempts": 2, "replicas": 1}).into(t, &q)
	if q.Name != "fresh" || q.MaxAttempts != 2 || q.Lease != "30s" || q.Replicas != 1 {
		t.Errorf("created queue: %+v", q)
	}
	// The replicas it has already: no conflict.
	s.must(t, http.StatusOK, "PUT", qpath("fresh"), map[string]any{"replicas": 1, "max_attempts": 3}).into(t, &q)
	if q.MaxAttempts != 3 || q.Replicas != 1 {
		t.Errorf("queue updated with its own replicas: %+v", q)
	}
	s.must(t, http.StatusOK, "GET", "/v1/queues", nil).into(t, &ql)
	if len(ql.Queues) != 2 || ql.Queues[0].Name != "email" || ql.Queues[1].Name != "fresh" {
		t.Errorf("queues: %+v", ql)
	}
	s.enqueue(t, "fresh", nil)
	s.must(t, http.StatusNoContent, "DELETE", qpath("fresh"), nil)
	s.wantErr(t, 404, "queue_not_found", "", "GET", qpath("fresh"), nil)
	s.wantErr(t, 404, "queue_not_found", "", "DELETE", qpath("fresh"), nil)

	// Purge: one state, then everything unreserved; a reserved job stays.
	for _, b := range []any{nil, map[string]any{"delay": "1h"}, map[string]any{"delay": "1h"}, nil} {
		s.enqueue(t, "purge", b)
	}
	kept := s.reserve(t, map[string]any{"queues": []string{"purge"}}).Jobs
	var pr struct{ Purged int }
	s.must(t, http.StatusOK, "POST", qpath("purge", "/purge"), map[string]any{"state": "delayed"}).into(t, &pr)
	if pr.Purged != 2 {
		t.Errorf("purge delayed: %d, want 2", pr.Purged)
	}
	s.must(t, http.StatusOK, "POST", qpath("purge", "/purge"), nil).into(t, &pr)
	if pr.Purged != 1 {
		t.Errorf("purge all: %d, want 1 (the reserved job stays)", pr.Purged)
	}
	if len(kept) != 1 {
		t.Fatalf("reserve: %+v", kept)
	}
	s.must(t, http.StatusOK, "POST", "/v1/jobs/"+kept[0].ID+"/ack", map[string]any{"lease_token": kept[0].LeaseToken})
}

// TestReserveLongPoll checks that a waiting reservation is woken by an enqueue, for an
// existing queue and for one that the enqueue creates.
func TestReserveLongPoll(t *testing.T) {
	t.Parallel()
	s := newServer(t, 0)
	s.must(t, http.StatusOK, "PUT", qpath("poll"), nil)
	for _, queue := range []string{"poll", "created-later"} {
		t.Run(queue, func(t *testing.T) {
			got := s.reserveAsync(`{"queues":["` + queue + `"],"wait":"30s"}`)
			s.waiting(t, 1)
			j := s.enqueue(t, queue, map[string]any{"type": "wake"})
			a := <-got
			var r reserveView
			if a.status != http.StatusOK {
				t.Fatalf("long poll: %v", a)
			}
			for _, p := range s.doc.checkAnswer("POST", "/v1/reserve", a.status, a.header, a.raw) {
				t.Error(p)
			}
			a.into(t, &r)
			if len(r.Jobs) != 1 || r.Jobs[0].ID != j.ID || r.Jobs[0].LeaseToken == "" {
				t.Fatalf("long poll got %+v, want job %s", r, j.ID)
			}
		})
	}
	// Nothing ready and no wait: an empty answer at once.
	if r := s.reserve(t, map[string]any{"queues": []string{"poll"}}); r.Jobs == nil || len(r.Jobs) != 0 || r.Paused == nil {
		t.Errorf("empty reserve: %+v (want empty lists, not null)", r)
	}
}

// TestEndPoll ends a long poll through DELETE /v1/reserve/{poll_id}. The request's context has
// no deadline, which the engine's flush needs: the route answered 500 on every call.
func TestEndPoll(t *testing.T) {
	t.Parallel()
	s := newServer(t, 0)
	s.must(t, http.StatusOK, "PUT", qpath("ended"), nil)
	// The end is remembered, so the poll returns at once whether it starts before or after
	// the DELETE.
	got := s.reserveAsync(`{"queues":["ended"],"wait":"60s","poll_id":"w-1"}`)
	s.must(t, http.StatusNoContent, "DELETE", "/v1/reserve/w-1", nil)
	select {
	case a := <-got:
		var r reserveView
		if a.status != http.StatusOK {
			t.Fatalf("ended poll: %v", a)
		}
		a.into(t, &r)
		if r.Jobs == nil || len(r.Jobs) != 0 {
			t.Errorf("ended poll: %s", a.raw)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the poll did not end: it waits for its 60s")
	}
	s.wantErr(t, http.StatusBadRequest, "invalid_argument", "poll_id", "DELETE", "/v1/reserve/bad.id", nil)
	if l := s.logs.String(); strings.Contains(l, "end poll") {
		t.Errorf("server logged a failure: %s", l)
	}
}

// TestLeaseExpiry checks that an expired lease is lost once the job is reserved again, and
// still honoured while nobody else has the job.
func TestLeaseExpiry(t *testing.T) {
	t.Parallel()
	s := newServer(t, 0)
	a := s.enqueue(t, "lease", map[string]any{"lease": "1s"})
	b := s.enqueue(t, "lease", map[string]any{"lease": "1s"})
	r := s.reserve(t, map[string]any{"queues": []string{"lease"}, "max": 2})
	if len(r.Jobs) != 2 {
		t.Fatalf("reserve: %+v", r)
	}
	first := map[string]job{r.Jobs[0].ID: r.Jobs[0], r.Jobs[1].ID: r.Jobs[1]}
	if _, ok := first[a.ID]; !ok {
		t.Fatalf("reserved %v, want %s and %s", ids(r.Jobs), a.ID, b.ID)
	}
	// A lease that runs out gives its job back: ready again, with no reservation needed.
	eventually(t, 10*time.Second, func() error {
		for _, id := range []string{a.ID, b.ID} {
			if j := s.getJob(t, id); j.State != "ready" || j.LeaseExpiresAt != nil || j.Timeouts != 1 {
				return fmt.Errorf("job with an expired lease: %+v, want ready", j)
			}
		}
		return nil
	})
	// One of them is reserved again (the wait covers the redelivery).
	r = s.reserve(t, map[string]any{"queues": []string{"lease"}, "max": 1, "wait": "20s"})
	if len(r.Jobs) != 1 {
		t.Fatalf("second reservation: %+v", r)
	}
	again := r.Jobs[0]
	other := a.ID
	if again.ID == a.ID {
		other = b.ID
	}
	if again.Attempts != 2 || again.Timeouts != 1 || again.LeaseToken == first[again.ID].LeaseToken {
		t.Errorf("job reserved again: %+v", again)
	}
	// The stale token of the job reserved again is refused, for every lease operation.
	stale := first[again.ID].LeaseToken
	for _, op := range []string{"ack", "fail", "touch", "release", "bury"} {
		s.wantErr(t, 409, "lease_lost", "", "POST", "/v1/jobs/"+again.ID+"/"+op, map[string]any{"lease_token": stale})
	}
	// The other job's lease ran out too, and it was given back: its late ack is refused,
	// and it is still there to be reserved.
	s.wantErr(t, 409, "lease_lost", "", "POST", "/v1/jobs/"+other+"/ack", map[string]any{"lease_token": first[other].LeaseToken})
	if j := s.getJob(t, other); j.State != "ready" {
		t.Errorf("the other job after a late ack: %+v, want ready", j)
	}
	s.must(t, http.StatusOK, "POST", "/v1/jobs/"+again.ID+"/ack", map[string]any{"lease_token": again.LeaseToken})
}

// TestAckBatch completes several jobs in one request, each with its own outcome.
func TestAckBatch(t *testing.T) {
	t.Parallel()
	s := newServer(t, 0)
	for range 3 {
		s.enqueue(t, "acks", nil)
	}
	r := s.reserve(t, map[string]any{"queues": []string{"acks"}, "max": 3})
	if len(r.Jobs) != 3 {
		t.Fatalf("reserve: %+v", r)
	}
	j0, j1, j2 := r.Jobs[0], r.Jobs[1], r.Jobs[2]
	wrong := "1"
	if j1.LeaseToken == wrong {
		wrong = "2"
	}
	var res struct {
		Results []struct {
			ID    string `json:"id"`
			State string `json:"state"`
			Error *struct {
				Code, Field string
			} `json:"error"`
		} `json:"results"`
	}
	s.must(t, http.StatusOK, "POST", "/v1/ack", map[string]any{"acks": []any{
		map[string]any{"id": j0.ID, "lease_token": j0.LeaseToken},
		map[string]any{"id": j1.ID, "lease_token": wrong},
		map[string]any{"id": j2.ID, "lease_token": j2.LeaseToken, "result": map[string]int{"n": 2}},
		map[string]any{"id": "12345", "lease_token": "abc"},
		map[string]any{"id": j1.ID, "lease_token": "zz"},
		map[string]any{"id": j0.ID, "lease_token": j0.LeaseToken},
	}}).into(t, &res)
	type outcome struct{ id, state, code string }
	var got []outcome
	for _, x := range res.Results {
		o := outcome{id: x.ID, state: x.State}
		if x.Error != nil {
			o.code = x.Error.Code
		}
		got = append(got, o)
	}
	// The same job twice in one batch: one of the two acks takes.
	want := []outcome{{j0.ID, "succeeded", ""}, {j1.ID, "", "lease_lost"}, {j2.ID, "succeeded", ""},
		{"12345", "", "job_not_found"}, {j1.ID, "", "invalid_argument"}, {j0.ID, "", "lease_lost"}}
	if !slices.Equal(got, want) {
		t.Errorf("ack batch results:\n got %v\nwant %v", got, want)
	}
	if j := s.getJob(t, j2.ID); j.State != "succeeded" || !jsonEq(j.Result, []byte(`{"n":2}`)) {
		t.Errorf("acked job: %+v", j)
	}
	if j := s.getJob(t, j1.ID); j.State != "reserved" {
		t.Errorf("job whose ack failed: %+v", j)
	}
	s.must(t, http.StatusOK, "POST", "/v1/ack", map[string]any{"acks": []any{map[string]any{"id": j1.ID, "lease_token": j1.LeaseToken}}}).into(t, &res)
	if len(res.Results) != 1 || res.Results[0].State != "succeeded" {
		t.Errorf("ack batch of one: %+v", res)
	}
}

// TestPauseResume checks that a paused queue accepts jobs and hands out none.
func TestPauseResume(t *testing.T) {
	t.Parallel()
	s := newServer(t, 0)
	j := s.enqueue(t, "p", nil)
	var q queueView
	s.must(t, http.StatusOK, "POST", qpath("p", "/pause"), nil).into(t, &q)
	if !q.Paused || q.PausedUntil != nil {
		t.Errorf("paused queue: %+v", q)
	}
	s.enqueue(t, "p", nil)
	r := s.reserve(t, map[string]any{"queues": []string{"p", "other"}, "wait": "300ms"})
	if len(r.Jobs) != 0 || !slices.Equal(r.Paused, []string{"p"}) {
		t.Errorf("reserve from a paused queue: %+v", r)
	}
	s.must(t, http.StatusOK, "POST", qpath("p", "/resume"), nil).into(t, &q)
	if q.Paused {
		t.Errorf("resumed queue: %+v", q)
	}
	r = s.reserve(t, map[string]any{"queues": []string{"p"}, "wait": "5s"})
	if len(r.Jobs) != 1 || r.Jobs[0].ID != j.ID || len(r.Paused) != 0 {
		t.Errorf("reserve after resume: %+v", r)
	}
	s.must(t, http.StatusOK, "POST", qpath("p", "/pause"), map[string]any{"for": "1h"}).into(t, &q)
	if !q.Paused || q.PausedUntil == nil || time.Until(*q.PausedUntil) < 50*time.Minute {
		t.Errorf("queue paused for 1h: %+v", q)
	}
	s.must(t, http.StatusOK, "POST", qpath("p", "/resume"), nil)
	s.wantErr(t, 404, "queue_not_found", "", "POST", qpath("nope", "/pause"), nil)
	s.wantErr(t, 404, "queue_not_found", "", "POST", qpath("nope", "/resume"), nil)
}

// TestListJobsPaging pages through a queue's jobs with the cursor.
func TestListJobsPaging(t *testing.T) {
	t.Parallel()
	s := newServer(t, 0)
	var items []any
	for i := range 7 {
		items = append(items, map[string]any{"type": "t" + strconv.Itoa(i)})
	}
	var batch struct{ Jobs []job }
	s.must(t, http.StatusOK, "POST", qpath("page", "/jobs"), map[string]any{"jobs": items}).into(t, &batch)
	want := ids(batch.Jobs)
	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		path := qpath("page", "/jobs?limit=3")
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		var page struct {
			Jobs       []job  `json:"jobs"`
			NextCursor string `json:"next_cursor"`
		}
		s.must(t, http.StatusOK, "GET", path, nil).into(t, &page)
		for _, j := range page.Jobs {
			if j.State != "ready" || j.Queue != "page" {
				t.Errorf("listed job: %+v", j)
			}
		}
		got = append(got, ids(page.Jobs)...)
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	if !slices.Equal(got, want) {
		t.Errorf("paged through %v, want %v", got, want)
	}
	// Default state is ready, default limit 50; other states list nothing here.
	var all, delayed struct{ Jobs []job }
	s.must(t, http.StatusOK, "GET", qpath("page", "/jobs"), nil).into(t, &all)
	s.must(t, http.StatusOK, "GET", qpath("page", "/jobs?state=delayed"), nil).into(t, &delayed)
	if len(all.Jobs) != 7 || delayed.Jobs == nil || len(delayed.Jobs) != 0 {
		t.Errorf("list: %d ready, delayed %v", len(all.Jobs), delayed.Jobs)
	}
}

// TestListReserved lists the jobs held by workers, with who holds them.
func TestListReserved(t *testing.T) {
	t.Parallel()
	s := newServer(t, 0)
	s.enqueue(t, "held", map[string]any{"type": "a"})
	s.enqueue(t, "held", map[string]any{"type": "b"})
	r := s.reserve(t, map[string]any{"queues": []string{"held"}, "worker": "host-1/pid-42"})
	if len(r.Jobs) != 1 {
		t.Fatalf("reserved %d jobs", len(r.Jobs))
	}
	var page struct{ Jobs []job }
	s.must(t, http.StatusOK, "GET", qpath("held", "/jobs?state=reserved"), nil).into(t, &page)
	if len(page.Jobs) != 1 || page.Jobs[0].ID != r.Jobs[0].ID || page.Jobs[0].Worker != "host-1/pid-42" ||
		page.Jobs[0].State != "reserved" || page.Jobs[0].LeaseExpiresAt == nil {
		t.Fatalf("reserved jobs: %+v, want %s held by host-1/pid-42", page.Jobs, r.Jobs[0].ID)
	}
	if j := s.getJob(t, r.Jobs[0].ID); j.Worker != "host-1/pid-42" {
		t.Errorf("job's worker %q", j.Worker)
	}
	s.wantErr(t, http.StatusBadRequest, "invalid_argument", "state", "GET", qpath("held", "/jobs?state=succeeded"), nil)
}

// TestQueueNames checks names with the characters of the beanstalkd alphabet, '/' included
// (escaped as %2F in the path), on the routes that name a queue. A queue named "/" answered
// 404: ServeMux took its segment for a trailing slash.
func TestQueueNames(t *testing.T) {
	t.Parallel()
	s := newServer(t, 0)
	for _, name := range []string{"/", "//", "a/b", "/a", "A-z0+9;.$_()", "x/y/z", strings.Repeat("q", 200)} {
		j := s.enqueue(t, name, map[string]any{"type": "n"})
		var q queueView
		s.must(t, http.StatusOK, "GET", qpath(name), nil).into(t, &q)
		if q.Name != name {
			t.Errorf("queue %q: GET answered name %q", name, q.Name)
		}
		if got := s.getJob(t, j.ID); got.Queue != name {
			t.Errorf("job of queue %q: %+v", name, got)
		}
		r := s.reserve(t, map[string]any{"queues": []string{name}})
		if len(r.Jobs) != 1 || r.Jobs[0].ID != j.ID {
			t.Errorf("reserve from %q: %+v", name, r)
		}
		// Every other route that names a queue.
		s.must(t, http.StatusOK, "PUT", qpath(name), map[string]any{"max_attempts": 3})
		s.must(t, http.StatusOK, "GET", qpath(name, "/jobs?state=buried"), nil)
		s.must(t, http.StatusOK, "POST", qpath(name, "/pause"), nil)
		s.must(t, http.StatusOK, "POST", qpath(name, "/resume"), nil)
		s.must(t, http.StatusOK, "POST", qpath(name, "/kick"), nil)
		s.must(t, http.StatusOK, "POST", qpath(name, "/purge"), nil)
		s.must(t, http.StatusOK, "POST", qpath(name, "/reserve"), nil)
		s.must(t, http.StatusNoContent, "DELETE", qpath(name), nil)
		s.wantErr(t, http.StatusNotFound, "queue_not_found", "", "GET", qpath(name), nil)
	}
	if !strings.Contains(qpath("a/b"), "%2F") {
		t.Fatalf("qpath does not escape '/': %s", qpath("a/b"))
	}
}

// TestServerEndpoints covers /healthz, /v1/stats, /metrics and draining.
func TestServerEndpoints(t *testing.T) {
	t.Parallel()
	s := newServer(t, 0)
	var h map[string]string
	s.must(t, http.StatusOK, "GET", "/healthz", nil).into(t, &h)
	if h["status"] != "ok" || h["version"] != "test" {
		t.Errorf("healthz: %v", h)
	}
	for _, q := range []string{"s1", "s2"} {
		s.enqueue(t, q, nil)
		s.enqueue(t, q, map[string]any{"delay": "1h"})
	}
	res := s.reserve(t, map[string]any{"queues": []string{"s1"}})
	if len(res.Jobs) != 1 {
		t.Fatalf("reserve: %+v", res)
	}
	s.must(t, http.StatusOK, "POST", "/v1/jobs/"+res.Jobs[0].ID+"/bury", map[string]any{"lease_token": res.Jobs[0].LeaseToken})
	s.must(t, http.StatusOK, "POST", qpath("s2", "/pause"), nil)
	// Totals are flushed about every second: wait for them, state counts may lag too. The
	// answer is decoded with the client's type, which is the wire format.
	want := spool.ServerStats{Version: "test", Queues: 2, Paused: 1,
		Jobs:   spool.StateCounts{Ready: 1, Delayed: 2, Buried: 1},
		Totals: spool.Totals{Enqueued: 4, Reserves: 1, Failed: 0, BuriedTotal: 1}}
	eventually(t, 20*time.Second, func() error {
		var st spool.ServerStats
		s.must(t, http.StatusOK, "GET", "/v1/stats", nil).into(t, &st)
		if st.EnqueueRate <= 0 || st.CompleteRate != 0 {
			return fmt.Errorf("rates: enqueue %v, complete %v; want > 0 and 0", st.EnqueueRate, st.CompleteRate)
		}
		st.Uptime, st.EnqueueRate = 0, 0
		if st != want {
			return fmt.Errorf("stats: %+v\nwant %+v", st, want)
		}
		return nil
	})
	m := s.must(t, http.StatusOK, "GET", "/metrics", nil)
	for _, want := range []string{`spool_queue_jobs{queue="s1",state="ready"}`, "spool_http_requests_total{", `route="GET /v1/stats"`, "spool_engine_up 1",
		"\nspool_jobs{state=\"delayed\"} 2\n", "\nspool_events_total{event=\"enqueued\"} 4\n"} {
		if !bytes.Contains(m.raw, []byte(want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if !strings.HasPrefix(m.header.Get("Content-Type"), "text/plain") {
		t.Errorf("/metrics Content-Type %q", m.header.Get("Content-Type"))
	}
	// Capped: series of the first queues by name only, and how many there are.
	capped := httptest.NewServer(httpapi.New(s.eng, httpapi.Options{Version: "test", MetricsQueues: 1}))
	defer capped.Close()
	resp, err := s.hc.Get(capped.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for want, in := range map[string]bool{`queue="s1"`: true, `queue="s2"`: false, "\nspool_queues 2\n": true, "\nspool_metrics_queues 1\n": true} {
		if bytes.Contains(body, []byte(want)) != in {
			t.Errorf("/metrics capped at 1 queue: has %s: %v, want %v", want, !in, in)
		}
	}

	// Draining: a waiting reservation answers at once with nothing; /healthz says 503.
	done := make(chan *answer, 1)
	go func() {
		req, _ := http.NewRequest("POST", s.srv.URL+"/v1/reserve", strings.NewReader(`{"queues":["empty"],"wait":"60s"}`))
		resp, err := s.hc.Do(req)
		if err != nil {
			done <- &answer{status: -1, raw: []byte(err.Error())}
			return
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		done <- &answer{status: resp.StatusCode, header: resp.Header, raw: raw}
	}()
	s.waiting(t, 1)
	s.h.Drain()
	a := <-done
	var r reserveView
	if a.status != http.StatusOK {
		t.Fatalf("drained reservation: %v", a)
	}
	a.into(t, &r)
	if r.Jobs == nil || len(r.Jobs) != 0 {
		t.Errorf("drained reservation: %s", a.raw)
	}
	s.must(t, http.StatusServiceUnavailable, "GET", "/healthz", nil).into(t, &h)
	if h["status"] != "draining" {
		t.Errorf("healthz while draining: %v", h)
	}
}

// badCase is one bad request and the error it must get.
type badCase struct {
	name         string
	method, path string
	body         string // sent as is; "" sends no body
	ctype        string // Content-Type; default application/json when there is a body
	status       int
	code, field  string
	// bug, when set, marks a case that does not behave as documented yet: a mismatch skips
	// the case with the answer, a match fails it so that the mark is removed.
	bug string
}

// TestBadInput sends bad requests and checks each answer's status, code and field, and that
// the jobs stored before are all still there, unchanged.
func TestBadInput(t *testing.T) {
	t.Parallel()
	const maxPayload = 1000
	s := newServer(t, maxPayload)

	// Jobs that must survive: JSON and binary payloads, delayed, in a batch, reserved.
	keep := []job{
		s.enqueue(t, "keep", map[string]any{"type": "k1", "payload": map[string]any{"a": []int{1, 2, 3}}, "priority": 3, "metadata": map[string]string{"m": "v"}}),
		s.enqueue(t, "keep", map[string]any{"type": "k2", "payload_base64": "AAEC/w=="}),
		s.enqueue(t, "keep", map[string]any{"type": "k3", "delay": "1h", "unique_key": "kept"}),
	}
	var batch struct{ Jobs []job }
	s.must(t, http.StatusOK, "POST", qpath("keep", "/jobs"), `{"jobs":[{"type":"k4","payload":"x"},{"type":"k5","max_attempts":2}]}`).into(t, &batch)
	for _, b := range batch.Jobs {
		keep = append(keep, s.getJob(t, b.ID))
	}
	s.enqueue(t, "held", map[string]any{"type": "k6", "lease": "1h", "payload": true})
	r := s.reserve(t, map[string]any{"queues": []string{"held"}})
	if len(r.Jobs) != 1 {
		t.Fatalf("reserve: %+v", r)
	}
	heldJob := r.Jobs[0]
	token := heldJob.LeaseToken
	heldJob.LeaseToken = ""
	keep = append(keep, heldJob)
	before := map[string][]byte{}
	for _, j := range keep {
		before[j.ID] = s.must(t, http.StatusOK, "GET", "/v1/jobs/"+j.ID, nil).raw
	}
	ready := keep[0].ID
	otherToken := "1"
	if token == otherToken {
		otherToken = "2"
	}

	long := func(n int) string { return strings.Repeat("x", n) }
	js := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	meta65 := map[string]string{}
	for i := range 65 {
		meta65["k"+strconv.Itoa(i)] = "v"
	}
	items := func(n int) string { return `{"jobs":[` + strings.TrimSuffix(strings.Repeat(`{},`, n), ",") + `]}` }
	queues := func(n int) string {
		qs := make([]string, n)
		for i := range qs {
			qs[i] = "q" + strconv.Itoa(i)
		}
		return js(map[string]any{"queues": qs})
	}
	enq := "/v1/queues/bad/jobs"
	held := "/v1/jobs/" + heldJob.ID
	tok := `"lease_token":"` + token + `"`

	cases := []badCase{
		// Malformed bodies.
		{name: "truncated JSON", method: "POST", path: enq, body: `{"type":`, status: 400, code: "invalid_json"},
		{name: "not JSON", method: "POST", path: enq, body: `{type: "x"}`, status: 400, code: "invalid_json"},
		{name: "a second value", method: "POST", path: enq, body: `{} {}`, status: 400, code: "invalid_json"},
		{name: "trailing garbage", method: "POST", path: enq, body: `{"type":"a"}x`, status: 400, code: "invalid_json"},
		{name: "an array", method: "POST", path: enq, body: `[]`, status: 400, code: "invalid_json"},
		{name: "unknown field", method: "POST", path: enq, body: `{"prio":1}`, status: 400, code: "invalid_json", field: "prio"},
		{name: "unknown field in a batch item", method: "POST", path: enq, body: `{"jobs":[{},{"prio":1}]}`, status: 400, code: "invalid_json", field: "jobs[1].prio"},
		{name: "wrong type in a batch item", method: "POST", path: enq, body: `{"jobs":[{},{"priority":"x"}]}`, status: 400, code: "invalid_json", field: "jobs[1].priority"},
		{name: "type not a string", method: "POST", path: enq, body: `{"type":5}`, status: 400, code: "invalid_json", field: "type"},
		{name: "priority a string", method: "POST", path: enq, body: `{"priority":"high"}`, status: 400, code: "invalid_json", field: "priority"},
		{name: "priority a fraction", method: "POST", path: enq, body: `{"priority":1.5}`, status: 400, code: "invalid_json", field: "priority"},
		{name: "priority absurd", method: "POST", path: enq, body: `{"priority":99999999999999999999}`, status: 400, code: "invalid_json", field: "priority"},
		{name: "max_attempts a string", method: "POST", path: enq, body: `{"max_attempts":"3"}`, status: 400, code: "invalid_json", field: "max_attempts"},
		{name: "metadata value a number", method: "POST", path: enq, body: `{"metadata":{"a":1}}`, status: 400, code: "invalid_json", field: "metadata"},
		{name: "payload_base64 a number", method: "POST", path: enq, body: `{"payload_base64":5}`, status: 400, code: "invalid_json", field: "payload_base64"},
		{name: "jobs an object", method: "POST", path: enq, body: `{"jobs":{}}`, status: 400, code: "invalid_json", field: "jobs"},
		{name: "lease a boolean", method: "POST", path: enq, body: `{"lease":true}`, status: 400, code: "invalid_json"},
		{name: "lease not a duration", method: "POST", path: enq, body: `{"lease":"soon"}`, status: 400, code: "invalid_json"},
		{name: "delay beyond a duration", method: "POST", path: enq, body: `{"delay":1e300}`, status: 400, code: "invalid_json"},
		{name: "run_at not a time", method: "POST", path: enq, body: `{"run_at":"tomorrow"}`, status: 400, code: "invalid_json"},

		// Values out of range.
		{name: "priority negative", method: "POST", path: enq, body: `{"priority":-1}`, status: 400, code: "invalid_argument", field: "priority"},
		{name: "priority 2^32", method: "POST", path: enq, body: `{"priority":4294967296}`, status: 400, code: "invalid_argument", field: "priority"},
		{name: "lease 0", method: "POST", path: enq, body: `{"lease":0}`, status: 400, code: "invalid_argument", field: "lease"},
		{name: "lease 999ms", method: "POST", path: enq, body: `{"lease":"999ms"}`, status: 400, code: "invalid_argument", field: "lease"},
		{name: "lease 13h", method: "POST", path: enq, body: `{"lease":"13h"}`, status: 400, code: "invalid_argument", field: "lease"},
		{name: "max_attempts 0", method: "POST", path: enq, body: `{"max_attempts":0}`, status: 400, code: "invalid_argument", field: "max_attempts"},
		{name: "max_attempts 1001", method: "POST", path: enq, body: `{"max_attempts":1001}`, status: 400, code: "invalid_argument", field: "max_attempts"},
		{name: "delay and run_at", method: "POST", path: enq, body: `{"delay":"1s","run_at":"2030-01-01T00:00:00Z"}`, status: 400, code: "invalid_argument", field: "delay"},
		{name: "delay negative", method: "POST", path: enq, body: `{"delay":"-1s"}`, status: 400, code: "invalid_argument", field: "delay"},
		{name: "delay over 100 years", method: "POST", path: enq, body: `{"delay":"876001h"}`, status: 400, code: "invalid_argument", field: "delay"},
		{name: "run_at over 100 years ahead", method: "POST", path: enq, body: `{"run_at":"2200-01-01T00:00:00Z"}`, status: 400, code: "invalid_argument", field: "run_at"},
		{name: "type with a control character", method: "POST", path: enq, body: `{"type":"a\u0007"}`, status: 400, code: "invalid_argument", field: "type"},
		{name: "type of 257 bytes", method: "POST", path: enq, body: js(map[string]string{"type": long(257)}), status: 400, code: "invalid_argument", field: "type"},
		{name: "unique_key of 257 bytes", method: "POST", path: enq, body: js(map[string]string{"unique_key": long(257)}), status: 400, code: "invalid_argument", field: "unique_key"},
		{name: "metadata of 65 entries", method: "POST", path: enq, body: js(map[string]any{"metadata": meta65}), status: 400, code: "invalid_argument", field: "metadata"},
		{name: "metadata empty key", method: "POST", path: enq, body: `{"metadata":{"":"v"}}`, status: 400, code: "invalid_argument", field: "metadata"},
		{name: "metadata key of 129 bytes", method: "POST", path: enq, body: js(map[string]any{"metadata": map[string]string{long(129): "v"}}), status: 400, code: "invalid_argument", field: "metadata"},
		{name: "metadata value of 1025 bytes", method: "POST", path: enq, body: js(map[string]any{"metadata": map[string]string{"k": long(1025)}}), status: 400, code: "invalid_argument", field: "metadata"},

		// Payloads.
		{name: "payload and payload_base64", method: "POST", path: enq, body: `{"payload":1,"payload_base64":"AA=="}`, status: 400, code: "invalid_argument", field: "payload_base64"},
		{name: "payload_base64 not base64", method: "POST", path: enq, body: `{"payload_base64":"%%%"}`, status: 400, code: "invalid_argument", field: "payload_base64"},
		{name: "payload_base64 URL alphabet", method: "POST", path: enq, body: `{"payload_base64":"-_-_"}`, status: 400, code: "invalid_argument", field: "payload_base64"},
		{name: "payload_base64 unpadded", method: "POST", path: enq, body: `{"payload_base64":"AAE"}`, status: 400, code: "invalid_argument", field: "payload_base64"},
		{name: "payload over the limit", method: "POST", path: enq, body: js(map[string]string{"payload": long(maxPayload - 1)}), status: 413, code: "payload_too_large", field: "payload"},
		{name: "binary payload over the limit", method: "POST", path: enq, body: js(map[string][]byte{"payload_base64": make([]byte, maxPayload+1)}), status: 413, code: "payload_too_large", field: "payload"},
		{name: "payload over the limit in a batch", method: "POST", path: enq, body: `{"jobs":[{},` + js(map[string]string{"payload": long(maxPayload)}) + `]}`, status: 413, code: "payload_too_large", field: "jobs[1].payload"},
		{name: "enqueue body over 64 MiB", method: "POST", path: enq, body: `{"jobs":[` + strings.Repeat(" ", 64<<20) + `{}]}`, status: 413, code: "payload_too_large"},

		// Batches.
		{name: "empty batch", method: "POST", path: enq, body: `{"jobs":[]}`, status: 400, code: "invalid_argument", field: "jobs"},
		{name: "batch of 1001", method: "POST", path: enq, body: items(1001), status: 400, code: "invalid_argument", field: "jobs"},
		{name: "fields beside jobs", method: "POST", path: enq, body: `{"jobs":[{}],"type":"x"}`, status: 400, code: "invalid_argument", field: "jobs"},
		{name: "nested batch", method: "POST", path: enq, body: `{"jobs":[{"jobs":[{}]}]}`, status: 400, code: "invalid_argument", field: "jobs[0].jobs"},
		{name: "bad priority of item 1", method: "POST", path: enq, body: `{"jobs":[{},{"priority":-1}]}`, status: 400, code: "invalid_argument", field: "jobs[1].priority"},
		{name: "bad lease of item 2", method: "POST", path: enq, body: `{"jobs":[{},{},{"lease":"0s"}]}`, status: 400, code: "invalid_argument", field: "jobs[2].lease"},
		{name: "bad type of item 1 (engine check)", method: "POST", path: enq, body: `{"jobs":[{},{"type":"\u0000"}]}`, status: 400, code: "invalid_argument", field: "jobs[1].type"},

		// Queue names.
		{name: "queue name with a space", method: "POST", path: "/v1/queues/a%20b/jobs", body: `{}`, status: 400, code: "invalid_argument", field: "queue"},
		{name: "queue name starting with -", method: "POST", path: "/v1/queues/-a/jobs", body: `{}`, status: 400, code: "invalid_argument", field: "queue"},
		{name: "queue name of 201 bytes", method: "POST", path: "/v1/queues/" + strings.Repeat("q", 201) + "/jobs", body: `{}`, status: 400, code: "invalid_argument", field: "queue"},
		{name: "queue name not ASCII", method: "POST", path: "/v1/queues/%C3%A9/jobs", body: `{}`, status: 400, code: "invalid_argument", field: "queue"},
		{name: "queue name with a space (GET)", method: "GET", path: "/v1/queues/a%20b", status: 400, code: "invalid_argument", field: "queue"},
		{name: "queue name with a space (PUT)", method: "PUT", path: "/v1/queues/a%20b", body: `{}`, status: 400, code: "invalid_argument", field: "queue"},
		{name: "queue name in reserve", method: "POST", path: "/v1/reserve", body: `{"queues":["a b"]}`, status: 400, code: "invalid_argument", field: "queues[0]"},
		{name: "empty queue name in reserve", method: "POST", path: "/v1/reserve", body: `{"queues":[""]}`, status: 400, code: "invalid_argument", field: "queues[0]"},
		{name: "queue name of 200 bytes, 90 of them '$'", method: "POST", path: "/v1/queues/" + strings.Repeat("$", 90) + strings.Repeat("q", 110) + "/jobs", body: `{}`, status: 201},

		// Job ids.
		{name: "unknown job", method: "GET", path: "/v1/jobs/12345", status: 404, code: "job_not_found"},
		{name: "delete unknown job", method: "DELETE", path: "/v1/jobs/12345", status: 404, code: "job_not_found"},
		{name: "kick unknown job", method: "POST", path: "/v1/jobs/12345/kick", status: 404, code: "job_not_found"},
		{name: "ack unknown job", method: "POST", path: "/v1/jobs/12345/ack", body: `{"lease_token":"abc"}`, status: 404, code: "job_not_found"},
		{name: "non-numeric id", method: "GET", path: "/v1/jobs/abc", status: 400, code: "invalid_argument", field: "id"},
		{name: "negative id", method: "GET", path: "/v1/jobs/-1", status: 400, code: "invalid_argument", field: "id"},
		{name: "id 0", method: "DELETE", path: "/v1/jobs/0", status: 400, code: "invalid_argument", field: "id"},
		{name: "id over 64 bits", method: "POST", path: "/v1/jobs/18446744073709551616/kick", status: 400, code: "invalid_argument", field: "id"},
		{name: "non-numeric id in a lease operation", method: "POST", path: "/v1/jobs/x1/touch", body: `{` + tok + `}`, status: 400, code: "invalid_argument", field: "id"},

		// Media types.
		{name: "text/plain enqueue", method: "POST", path: enq, body: `{}`, ctype: "text/plain", status: 415, code: "unsupported_media_type"},
		{name: "form enqueue", method: "POST", path: enq, body: `type=x`, ctype: "application/x-www-form-urlencoded", status: 415, code: "unsupported_media_type"},
		{name: "malformed Content-Type", method: "POST", path: "/v1/reserve", body: `{"queues":["q"]}`, ctype: "application/json;;;", status: 415, code: "unsupported_media_type"},
		{name: "text/plain ack", method: "POST", path: held + "/ack", body: `{` + tok + `}`, ctype: "text/plain", status: 415, code: "unsupported_media_type"},
		{name: "text/plain queue settings", method: "PUT", path: "/v1/queues/keep", body: `{}`, ctype: "text/plain", status: 415, code: "unsupported_media_type"},
		{name: "text/plain pause", method: "POST", path: "/v1/queues/keep/pause", ctype: "text/plain", status: 415, code: "unsupported_media_type"},

		// Lease operations on the held job: none may change it.
		{name: "ack without token", method: "POST", path: held + "/ack", body: `{}`, status: 400, code: "invalid_argument", field: "lease_token"},
		{name: "ack with a malformed token", method: "POST", path: held + "/ack", body: `{"lease_token":"xyz"}`, status: 400, code: "invalid_argument", field: "lease_token"},
		{name: "ack with another token", method: "POST", path: held + "/ack", body: `{"lease_token":"` + otherToken + `"}`, status: 409, code: "lease_lost"},
		{name: "ack with a field of bury", method: "POST", path: held + "/ack", body: `{` + tok + `,"reason":"x"}`, status: 400, code: "invalid_argument", field: "reason"},
		{name: "ack with an unknown field", method: "POST", path: held + "/ack", body: `{` + tok + `,"results":1}`, status: 400, code: "invalid_json", field: "results"},
		{name: "ack result over 64 KiB", method: "POST", path: held + "/ack", body: `{` + tok + `,"result":"` + long(64<<10) + `"}`, status: 400, code: "invalid_argument", field: "result"},
		{name: "ack body over its limit", method: "POST", path: held + "/ack", body: `{` + tok + `,"result":"` + long(128<<10) + `"}`, status: 413, code: "payload_too_large"},
		{name: "fail with a result", method: "POST", path: held + "/fail", body: `{` + tok + `,"result":1}`, status: 400, code: "invalid_argument", field: "result"},
		{name: "fail error over 4 KiB", method: "POST", path: held + "/fail", body: `{` + tok + `,"error":"` + long(4097) + `"}`, status: 400, code: "invalid_argument", field: "error"},
		{name: "fail retry_in negative", method: "POST", path: held + "/fail", body: `{` + tok + `,"retry_in":"-1s"}`, status: 400, code: "invalid_argument", field: "retry_in"},
		{name: "fail bury a string", method: "POST", path: held + "/fail", body: `{` + tok + `,"bury":"yes"}`, status: 400, code: "invalid_json", field: "bury"},
		{name: "touch lease 13h", method: "POST", path: held + "/touch", body: `{` + tok + `,"lease":"13h"}`, status: 400, code: "invalid_argument", field: "lease"},
		{name: "touch lease 0.5s", method: "POST", path: held + "/touch", body: `{` + tok + `,"lease":0.5}`, status: 400, code: "invalid_argument", field: "lease"},
		{name: "touch with a delay", method: "POST", path: held + "/touch", body: `{` + tok + `,"delay":"1s"}`, status: 400, code: "invalid_argument", field: "delay"},
		{name: "release priority negative", method: "POST", path: held + "/release", body: `{` + tok + `,"priority":-1}`, status: 400, code: "invalid_argument", field: "priority"},
		{name: "release priority 2^32", method: "POST", path: held + "/release", body: `{` + tok + `,"priority":4294967296}`, status: 400, code: "invalid_argument", field: "priority"},
		{name: "release delay negative", method: "POST", path: held + "/release", body: `{` + tok + `,"delay":"-1s"}`, status: 400, code: "invalid_argument", field: "delay"},
		{name: "bury reason over 4 KiB", method: "POST", path: held + "/bury", body: `{` + tok + `,"reason":"` + long(4097) + `"}`, status: 400, code: "invalid_argument", field: "reason"},
		{name: "bury with retry_in", method: "POST", path: held + "/bury", body: `{` + tok + `,"retry_in":"1s"}`, status: 400, code: "invalid_argument", field: "retry_in"},
		{name: "kick a reserved job", method: "POST", path: held + "/kick", status: 409, code: "wrong_state"},
		{name: "kick a ready job", method: "POST", path: "/v1/jobs/" + ready + "/kick", status: 409, code: "wrong_state"},

		// Batched acks.
		{name: "ack batch empty", method: "POST", path: "/v1/ack", body: `{"acks":[]}`, status: 400, code: "invalid_argument", field: "acks"},
		{name: "ack batch without acks", method: "POST", path: "/v1/ack", body: `{}`, status: 400, code: "invalid_argument", field: "acks"},
		{name: "ack batch of 1001", method: "POST", path: "/v1/ack", body: `{"acks":[` + strings.TrimSuffix(strings.Repeat(`{"id":"1","lease_token":"1"},`, 1001), ",") + `]}`, status: 400, code: "invalid_argument", field: "acks"},
		{name: "ack batch bad id", method: "POST", path: "/v1/ack", body: `{"acks":[{"id":"` + heldJob.ID + `",` + tok + `},{"id":"x",` + tok + `}]}`, status: 400, code: "invalid_argument", field: "acks[1].id"},
		{name: "ack batch numeric id", method: "POST", path: "/v1/ack", body: `{"acks":[{"id":` + heldJob.ID + `,` + tok + `}]}`, status: 400, code: "invalid_json", field: "acks.id"},
		{name: "ack batch without token", method: "POST", path: "/v1/ack", body: `{"acks":[{"id":"` + heldJob.ID + `"}]}`, status: 400, code: "invalid_argument", field: "acks[0].lease_token"},
		{name: "ack batch unknown field", method: "POST", path: "/v1/ack", body: `{"acks":[{"id":"` + heldJob.ID + `",` + tok + `,"reason":"x"}]}`, status: 400, code: "invalid_json", field: "reason"},
		{name: "ack batch text/plain", method: "POST", path: "/v1/ack", body: `{"acks":[{"id":"` + heldJob.ID + `",` + tok + `}]}`, ctype: "text/plain", status: 415, code: "unsupported_media_type"},

		// Reservations.
		{name: "reserve without queues", method: "POST", path: "/v1/reserve", body: `{}`, status: 400, code: "invalid_argument", field: "queues"},
		{name: "reserve 101 queues", method: "POST", path: "/v1/reserve", body: queues(101), status: 400, code: "invalid_argument", field: "queues"},
		{name: "reserve max 0", method: "POST", path: "/v1/reserve", body: `{"queues":["q"],"max":0}`, status: 400, code: "invalid_argument", field: "max"},
		{name: "reserve max 1001", method: "POST", path: "/v1/reserve", body: `{"queues":["q"],"max":1001}`, status: 400, code: "invalid_argument", field: "max"},
		{name: "reserve wait 61s", method: "POST", path: "/v1/reserve", body: `{"queues":["q"],"wait":"61s"}`, status: 400, code: "invalid_argument", field: "wait"},
		{name: "reserve wait negative", method: "POST", path: "/v1/reserve", body: `{"queues":["q"],"wait":-1}`, status: 400, code: "invalid_argument", field: "wait"},
		{name: "reserve worker of 257 bytes", method: "POST", path: "/v1/reserve", body: js(map[string]any{"queues": []string{"q"}, "worker": long(257)}), status: 400, code: "invalid_argument", field: "worker"},
		{name: "reserve queues a string", method: "POST", path: "/v1/reserve", body: `{"queues":"q"}`, status: 400, code: "invalid_json", field: "queues"},
		{name: "reserve by path with queues", method: "POST", path: "/v1/queues/keep/reserve", body: `{"queues":["keep"]}`, status: 400, code: "invalid_argument", field: "queues"},
		{name: "reserve body over 64 KiB", method: "POST", path: "/v1/reserve", body: `{"worker":"` + long(64<<10) + `"}`, status: 413, code: "payload_too_large"},

		// Queue operations.
		{name: "queue lease 500ms", method: "PUT", path: "/v1/queues/keep", body: `{"lease":"500ms"}`, status: 400, code: "invalid_argument", field: "lease"},
		{name: "queue lease 0", method: "PUT", path: "/v1/queues/keep", body: `{"lease":0}`, status: 400, code: "invalid_argument", field: "lease"},
		{name: "queue max_attempts 0", method: "PUT", path: "/v1/queues/keep", body: `{"max_attempts":0}`, status: 400, code: "invalid_argument", field: "max_attempts"},
		{name: "queue max_attempts 1001", method: "PUT", path: "/v1/queues/keep", body: `{"max_attempts":1001}`, status: 400, code: "invalid_argument", field: "max_attempts"},
		{name: "queue backoff_max below backoff_base", method: "PUT", path: "/v1/queues/keep", body: `{"backoff_base":"2h","backoff_max":"1h"}`, status: 400, code: "invalid_argument", field: "backoff_max"},
		{name: "queue backoff_base over 12h", method: "PUT", path: "/v1/queues/keep", body: `{"backoff_base":"13h"}`, status: 400, code: "invalid_argument", field: "backoff_base"},
		{name: "queue backoff_base negative", method: "PUT", path: "/v1/queues/keep", body: `{"backoff_base":"-1s"}`, status: 400, code: "invalid_argument", field: "backoff_base"},
		{name: "queue backoff_max 0", method: "PUT", path: "/v1/queues/keep", body: `{"backoff_max":0}`, status: 400, code: "invalid_argument", field: "backoff_max"},
		{name: "queue backoff_base under 1ms", method: "PUT", path: "/v1/queues/keep", body: `{"backoff_base":"100us"}`, status: 400, code: "invalid_argument", field: "backoff_base"},
		{name: "queue backoff_base above the queue's backoff_max", method: "PUT", path: "/v1/queues/keep", body: `{"backoff_base":"719h"}`, status: 400, code: "invalid_argument", field: "backoff_base"},
		{name: "queue replicas 2", method: "PUT", path: "/v1/queues/keep", body: `{"replicas":2}`, status: 400, code: "invalid_argument", field: "replicas"},
		{name: "queue replicas 0", method: "PUT", path: "/v1/queues/keep", body: `{"replicas":0}`, status: 400, code: "invalid_argument", field: "replicas"},
		{name: "queue replicas a string", method: "PUT", path: "/v1/queues/keep", body: `{"replicas":"3"}`, status: 400, code: "invalid_json", field: "replicas"},
		{name: "queue retention 1.5s", method: "PUT", path: "/v1/queues/keep", body: `{"retention":"1.5s"}`, status: 400, code: "invalid_argument", field: "retention"},
		{name: "queue retention 1.5 seconds", method: "PUT", path: "/v1/queues/keep", body: `{"retention":1.5}`, status: 400, code: "invalid_argument", field: "retention"},
		{name: "queue retention negative", method: "PUT", path: "/v1/queues/keep", body: `{"retention":"-1s"}`, status: 400, code: "invalid_argument", field: "retention"},
		{name: "queue retention over 90 days", method: "PUT", path: "/v1/queues/keep", body: `{"retention":"2161h"}`, status: 400, code: "invalid_argument", field: "retention"},
		{name: "queue retention not a duration", method: "PUT", path: "/v1/queues/keep", body: `{"retention":"none"}`, status: 400, code: "invalid_json"},
		{name: "new queue of 3 replicas on a server alone", method: "PUT", path: "/v1/queues/r3", body: `{"replicas":3}`, status: 400, code: "replicas_unavailable", field: "replicas"},
		{name: "the queue refused is not made", method: "GET", path: "/v1/queues/r3", status: 404, code: "queue_not_found"},
		{name: "existing queue of 1 replica asked for 3", method: "PUT", path: "/v1/queues/keep", body: `{"replicas":3,"lease":"9m"}`, status: 409, code: "replicas_conflict", field: "replicas"},
		{name: "queue settings body over 64 KiB", method: "PUT", path: "/v1/queues/keep", body: `{"lease":"1s"` + strings.Repeat(" ", 64<<10) + `}`, status: 413, code: "payload_too_large"},
		{name: "pause for 0", method: "POST", path: "/v1/queues/keep/pause", body: `{"for":0}`, status: 400, code: "invalid_argument", field: "for"},
		{name: "pause for negative", method: "POST", path: "/v1/queues/keep/pause", body: `{"for":"-1m"}`, status: 400, code: "invalid_argument", field: "for"},
		{name: "pause unknown queue", method: "POST", path: "/v1/queues/nope/pause", status: 404, code: "queue_not_found"},
		{name: "kick queue max 0", method: "POST", path: "/v1/queues/keep/kick", body: `{"max":0}`, status: 400, code: "invalid_argument", field: "max"},
		{name: "kick queue ready jobs", method: "POST", path: "/v1/queues/keep/kick", body: `{"state":"ready"}`, status: 400, code: "invalid_argument", field: "state"},
		{name: "kick unknown queue", method: "POST", path: "/v1/queues/nope/kick", status: 404, code: "queue_not_found"},
		{name: "purge reserved jobs", method: "POST", path: "/v1/queues/keep/purge", body: `{"state":"reserved"}`, status: 400, code: "invalid_argument", field: "state"},
		{name: "purge with a max", method: "POST", path: "/v1/queues/keep/purge", body: `{"max":1}`, status: 400, code: "invalid_json", field: "max"},
		{name: "purge unknown queue", method: "POST", path: "/v1/queues/nope/purge", status: 404, code: "queue_not_found"},
		{name: "list succeeded jobs", method: "GET", path: "/v1/queues/keep/jobs?state=succeeded", status: 400, code: "invalid_argument", field: "state"},
		{name: "list limit 0", method: "GET", path: "/v1/queues/keep/jobs?limit=0", status: 400, code: "invalid_argument", field: "limit"},
		{name: "list limit 1001", method: "GET", path: "/v1/queues/keep/jobs?limit=1001", status: 400, code: "invalid_argument", field: "limit"},
		{name: "list limit not a number", method: "GET", path: "/v1/queues/keep/jobs?limit=ten", status: 400, code: "invalid_argument", field: "limit"},
		{name: "list bad cursor", method: "GET", path: "/v1/queues/keep/jobs?cursor=abc", status: 400, code: "invalid_argument", field: "cursor"},
		{name: "list unknown queue", method: "GET", path: "/v1/queues/nope/jobs", status: 404, code: "queue_not_found"},
		{name: "get unknown queue", method: "GET", path: "/v1/queues/nope", status: 404, code: "queue_not_found"},
		{name: "delete unknown queue", method: "DELETE", path: "/v1/queues/nope", status: 404, code: "queue_not_found"},

		// Routes and methods.
		{name: "unknown route", method: "GET", path: "/v1/nope", status: 404, code: "not_found"},
		{name: "unknown sub-route", method: "POST", path: "/v1/queues/keep/nope", body: `{}`, status: 404, code: "not_found"},
		{name: "root", method: "GET", path: "/", status: 404, code: "not_found"},
		{name: "trailing slash", method: "GET", path: "/v1/queues/", status: 404, code: "not_found"},
		{name: "PATCH a job", method: "PATCH", path: "/v1/jobs/1", status: 405, code: "method_not_allowed"},
		{name: "GET reserve", method: "GET", path: "/v1/reserve", status: 405, code: "method_not_allowed"},
		{name: "DELETE stats", method: "DELETE", path: "/v1/stats", status: 405, code: "method_not_allowed"},
		{name: "PUT ack", method: "PUT", path: held + "/ack", body: `{` + tok + `}`, status: 405, code: "method_not_allowed"},
		{name: "POST a queue", method: "POST", path: "/v1/queues/keep", body: `{}`, status: 405, code: "method_not_allowed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var body any
			var opts []reqOpt
			if c.body != "" {
				body = c.body
			}
			if c.ctype != "" {
				opts = append(opts, contentType(c.ctype))
			}
			a, probs := s.send(t, c.method, c.path, body, opts...)
			code, field := a.apiErr()
			ok := a.status == c.status && code == c.code && field == c.field && len(probs) == 0
			switch {
			case c.bug != "" && ok:
				t.Errorf("known bug no longer seen, remove its mark: %s", c.bug)
			case c.bug != "":
				t.Skipf("KNOWN BUG: %s\n\t%v %s", c.bug, a, strings.Join(probs, "; "))
			case !ok:
				t.Errorf("%v\n\twant %d %q field %q %s", a, c.status, c.code, c.field, strings.Join(probs, "; "))
			}
			if a.status == http.StatusMethodNotAllowed && a.header.Get("Allow") == "" {
				t.Errorf("405 without Allow header")
			}
		})
	}

	// Nothing stored before was lost or changed.
	for _, j := range keep {
		a := s.must(t, http.StatusOK, "GET", "/v1/jobs/"+j.ID, nil)
		if !jsonEq(a.raw, before[j.ID]) {
			t.Errorf("job %s changed:\n before %s\n  after %s", j.ID, before[j.ID], a.raw)
		}
	}
	var listed struct{ Jobs []job }
	s.must(t, http.StatusOK, "GET", qpath("keep", "/jobs"), nil).into(t, &listed)
	if got, want := ids(listed.Jobs), []string{keep[0].ID, keep[1].ID, keep[3].ID, keep[4].ID}; !slices.Equal(got, want) {
		t.Errorf("ready jobs of keep: %v, want %v", got, want)
	}
	var q queueView
	s.must(t, http.StatusOK, "GET", qpath("keep"), nil).into(t, &q)
	if q.Lease != "30s" || q.MaxAttempts != 25 || q.BackoffBase != "1s" || q.BackoffMax != "1h" || q.Paused {
		t.Errorf("queue keep changed: %+v", q)
	}
	// The held job's lease still works.
	s.must(t, http.StatusOK, "POST", held+"/ack", map[string]any{"lease_token": token})
}

// TestKnownIssues records behaviours that differ from what a client would expect; each
// skips while the issue is there and fails once it is gone, so that its mark is removed.
func TestKnownIssues(t *testing.T) {
	t.Parallel()
	s := newServer(t, 0)
	for _, c := range []struct{ name, path, bug string }{
		{".", "/v1/queues/.", "the queue named \".\" cannot be reached unless written %2E: /v1/queues/. answers 307"},
		{"..", "/v1/queues/..", "the queue named \"..\" cannot be reached unless written %2E%2E: /v1/queues/.. answers 307"},
	} {
		t.Run("queue named "+c.name, func(t *testing.T) {
			a, probs := s.send(t, "PUT", c.path, `{}`)
			var q queueView
			json.Unmarshal(a.raw, &q)
			if a.status != http.StatusOK || q.Name != c.name || len(probs) > 0 {
				t.Skipf("KNOWN BUG: %s\n\t%v %s", c.bug, a, strings.Join(probs, "; "))
			}
			t.Errorf("known bug no longer seen (%v): remove this case", a)
		})
	}
	t.Run("dots written %2E work", func(t *testing.T) {
		var q queueView
		s.must(t, http.StatusOK, "PUT", "/v1/queues/%2E%2E", `{}`).into(t, &q)
		if q.Name != ".." {
			t.Errorf("PUT /v1/queues/%%2E%%2E created %q", q.Name)
		}
	})
	t.Run("an unclean path is redirected, not answered with an error", func(t *testing.T) {
		req, _ := http.NewRequest("GET", s.srv.URL+"/v1/x/../queues", nil)
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("Location") != "/v1/queues" {
			t.Errorf("GET /v1/x/../queues: %d Location %q, want 307 to /v1/queues", resp.StatusCode, resp.Header.Get("Location"))
		}
	})
}

// TestQueuesPaged lists queues a page at a time: `limit` of them, and `next` to go on.
func TestQueuesPaged(t *testing.T) {
	t.Parallel()
	s := newServer(t, 0)
	for _, n := range []string{"pa", "pb", "pc", "pd", "pe"} {
		s.must(t, http.StatusOK, "PUT", qpath(n), nil)
	}
	type page struct {
		Queues []struct{ Name string }
		Next   string
	}
	var got []string
	after := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatalf("no end to the pages: %v", got)
		}
		var p page
		path := "/v1/queues?limit=2"
		if after != "" {
			path += "&after=" + url.QueryEscape(after)
		}
		s.must(t, http.StatusOK, "GET", path, nil).into(t, &p)
		if len(p.Queues) > 2 {
			t.Fatalf("page of %d queues, limit 2", len(p.Queues))
		}
		for _, q := range p.Queues {
			got = append(got, q.Name)
		}
		if p.Next == "" {
			break
		}
		after = p.Next
	}
	if want := []string{"pa", "pb", "pc", "pd", "pe"}; !slices.Equal(got, want) {
		t.Fatalf("pages gave %v, want %v", got, want)
	}
	s.wantErr(t, http.StatusBadRequest, "invalid_argument", "limit", "GET", "/v1/queues?limit=0", nil)
	s.wantErr(t, http.StatusBadRequest, "invalid_argument", "limit", "GET", "/v1/queues?limit=1001", nil)
}

// TestQueuesFiltered lists the queues whose names start with a prefix, the paused ones, or
// both, a page at a time; a bad prefix or paused value is refused on its field.
func TestQueuesFiltered(t *testing.T) {
	t.Parallel()
	s := newServer(t, 0)
	for _, n := range []string{"fa", "fb.1", "fb.2", "fb.3", "fb/x", "fc"} {
		s.must(t, http.StatusOK, "PUT", qpath(n), nil)
	}
	for _, n := range []string{"fb.1", "fb.3", "fc"} {
		s.must(t, http.StatusOK, "POST", qpath(n)+"/pause", nil)
	}
	list := func(query string) []string {
		t.Helper()
		var got []string
		after := ""
		for range 10 {
			var p struct {
				Queues []struct {
					Name   string
					Paused bool
				}
				Next string
			}
			s.must(t, http.StatusOK, "GET", "/v1/queues?limit=1&"+query+"&after="+url.QueryEscape(after), nil).into(t, &p)
			for _, q := range p.Queues {
				got = append(got, q.Name)
			}
			if p.Next == "" {
				return got
			}
			after = p.Next
		}
		t.Fatalf("%s: no end to the pages: %v", query, got)
		return nil
	}
	for query, want := range map[string][]string{
		"prefix=fb.":              {"fb.1", "fb.2", "fb.3"},
		"prefix=fb":               {"fb.1", "fb.2", "fb.3", "fb/x"},
		"prefix=fb%2F":            {"fb/x"},
		"prefix=zz":               nil,
		"prefix=":                 {"fa", "fb.1", "fb.2", "fb.3", "fb/x", "fc"},
		"paused=true":             {"fb.1", "fb.3", "fc"},
		"paused=true&prefix=fb":   {"fb.1", "fb.3"},
		"prefix=fb.2&paused=true": nil,
	} {
		if got := list(query); !slices.Equal(got, want) {
			t.Errorf("GET /v1/queues?%s: %v, want %v", query, got, want)
		}
	}
	for _, q := range []string{"prefix=-a", "prefix=a%20b", "prefix=%C3%A9", "prefix=" + strings.Repeat("q", 201)} {
		s.wantErr(t, http.StatusBadRequest, "invalid_argument", "prefix", "GET", "/v1/queues?"+q, nil)
	}
	for _, q := range []string{"paused=false", "paused=1", "paused=", "paused=TRUE", "paused"} {
		s.wantErr(t, http.StatusBadRequest, "invalid_argument", "paused", "GET", "/v1/queues?"+q, nil)
	}
}

// A reservation's answer is charged to the memory budget: the jobs that do not fit go back
// to ready at once (the next reservation has them), and when not one fits the caller gets
// 503 overloaded and the job stays ready.
func TestReserveAnswerWithinBudget(t *testing.T) {
	t.Parallel()
	payload := map[string]any{"payload": strings.Repeat("x", 3000)} // ~12 KiB charged a job
	b := budget.New(30 << 10)
	s := newServerWith(t, 0, slog.LevelWarn, func(o *httpapi.Options, _ *nats.Conn) { o.Budget = b })
	for range 4 {
		s.enqueue(t, "big", payload)
	}
	if r := s.reserve(t, map[string]any{"queues": []string{"big"}, "max": 3}); len(r.Jobs) != 2 {
		t.Fatalf("first reservation: %d jobs, want the 2 that fit", len(r.Jobs))
	}
	// Other requests hold most of the budget: not one job fits.
	if !b.TryAcquire(25 << 10) {
		t.Fatal("budget not given back after the answers")
	}
	a := s.must(t, http.StatusServiceUnavailable, "POST", "/v1/reserve", map[string]any{"queues": []string{"big"}})
	if !strings.Contains(string(a.raw), `"overloaded"`) || a.header.Get("Retry-After") == "" {
		t.Fatalf("answer over the budget: %v %s", a.header, a.raw)
	}
	b.Release(25 << 10)
	if r := s.reserve(t, map[string]any{"queues": []string{"big"}, "max": 3}); len(r.Jobs) != 2 {
		t.Fatalf("reservation after: %d jobs, want the 2 given back", len(r.Jobs))
	}
}
