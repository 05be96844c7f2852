package spool

// Unit tests of the client's encoding, decoding, error mapping and failover against a
// fake HTTP server. The client against a real server is tested in e2e_test.go and in
// cmd/spool.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// recorded is one request seen by a fake server.
type recorded struct {
	Method, Path, RawQuery, ContentType, UserAgent string
	Body                                           map[string]any
}

// fake is an httptest server that records requests and answers with handler.
type fake struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []recorded
}

func newFake(t *testing.T, handler func(w http.ResponseWriter, r *http.Request)) *fake {
	t.Helper()
	f := &fake{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		rec := recorded{
			Method: r.Method, Path: r.URL.EscapedPath(), RawQuery: r.URL.RawQuery,
			ContentType: r.Header.Get("Content-Type"), UserAgent: r.Header.Get("User-Agent"),
		}
		if len(data) > 0 {
			if err := json.Unmarshal(data, &rec.Body); err != nil {
				t.Errorf("request body is not a JSON object: %q", data)
			}
		}
		f.mu.Lock()
		f.reqs = append(f.reqs, rec)
		f.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(data))
		handler(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fake) requests() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recorded(nil), f.reqs...)
}

func (f *fake) last(t *testing.T) recorded {
	t.Helper()
	reqs := f.requests()
	if len(reqs) == 0 {
		t.Fatal("the fake server got no request")
	}
	return reqs[len(reqs)-1]
}

// answer returns a handler that writes status and body.
func answer(status int, body string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

func newTestClient(t *testing.T, urls string, opts ...ClientOption) *Client {
	t.Helper()
	c, err := NewClient(urls, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// closedURL returns the URL of a port on which nothing listens.
func closedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

const jobAnswer = `{"id":"18446744073709551615","queue":"email","type":"email.send","state":"delayed",
 "priority":10,"payload":{"to":"a@example.com"},"attempts":0,"max_attempts":5,"lease":"5m0s",
 "unique_key":"welcome-42","metadata":{"tenant":"acme"},
 "created_at":"2026-11-22T19:30:00.123456789Z","run_at":"2026-11-22T19:40:00Z",
 "releases":1,"buries":2,"kicks":3,"timeouts":4}`

func TestEnqueueEncodesRequestAndDecodesJob(t *testing.T) {
	f := newFake(t, answer(201, jobAnswer))
	c := newTestClient(t, f.URL, WithUserAgent("test-agent"))
	job, err := c.Enqueue(context.Background(), "email", "email.send",
		map[string]string{"to": "a@example.com"},
		Priority(10), Delay(10*time.Minute), Lease(5*time.Minute), MaxAttempts(5),
		UniqueKey("welcome-42"), Metadata(map[string]string{"tenant": "acme"}))
	if err != nil {
		t.Fatal(err)
	}
	req := f.last(t)
	if req.Method != "POST" || req.Path != "/v1/queues/email/jobs" {
		t.Errorf("request = %s %s, want POST /v1/queues/email/jobs", req.Method, req.Path)
	}
	if req.ContentType != "application/json" || req.UserAgent != "test-agent" {
		t.Errorf("headers: Content-Type %q, User-Agent %q", req.ContentType, req.UserAgent)
	}
	want := map[string]any{
		"type": "email.send", "payload": map[string]any{"to": "a@example.com"},
		"priority": 10.0, "delay": "10m", "lease": "5m", "max_attempts": 5.0,
		"unique_key": "welcome-42", "metadata": map[string]any{"tenant": "acme"},
	}
	if !reflect.DeepEqual(req.Body, want) {
		t.Errorf("body = %v\nwant %v", req.Body, want)
	}

	if job.ID != 18446744073709551615 || job.Queue != "email" || job.Type != "email.send" ||
		job.State != StateDelayed || job.Priority != 10 || job.MaxAttempts != 5 ||
		job.Lease != 5*time.Minute || job.UniqueKey != "welcome-42" || job.Metadata["tenant"] != "acme" ||
		job.Releases != 1 || job.Buries != 2 || job.Kicks != 3 || job.Timeouts != 4 || job.Duplicate {
		t.Errorf("decoded job = %+v", job)
	}
	if want := time.Date(2026, 11, 22, 19, 30, 0, 123456789, time.UTC); !job.CreatedAt.Equal(want) {
		t.Errorf("CreatedAt = %v, want %v", job.CreatedAt, want)
	}
	if !job.ReservedAt.IsZero() || !job.FinishedAt.IsZero() {
		t.Errorf("absent times should be zero: %v %v", job.ReservedAt, job.FinishedAt)
	}
	var p struct{ To string }
	if err := job.DecodePayload(&p); err != nil || p.To != "a@example.com" {
		t.Errorf("DecodePayload = %+v, %v", p, err)
	}
}

func TestEnqueuePayloadKinds(t *testing.T) {
	f := newFake(t, answer(201, `{"id":"1","state":"ready"}`))
	c := newTestClient(t, f.URL)
	ctx := context.Background()
	runAt := time.Date(2027, 1, 1, 0, 0, 0, 0, time.FixedZone("x", 3600))

	cases := []struct {
		name    string
		payload any
		opts    []EnqueueOption
		want    map[string]any
	}{
		{"bytes", []byte{0xff, 0x00, 'a'}, nil, map[string]any{"type": "t", "payload_base64": "/wBh"}},
		{"empty bytes", []byte{}, nil, map[string]any{"type": "t"}},
		{"raw JSON", json.RawMessage(`[1,2]`), nil, map[string]any{"type": "t", "payload": []any{1.0, 2.0}}},
		{"string", "hi", nil, map[string]any{"type": "t", "payload": "hi"}},
		{"nil", nil, []EnqueueOption{Priority(0)}, map[string]any{"type": "t", "priority": 0.0}},
		{"run at", nil, []EnqueueOption{Delay(time.Second), RunAt(runAt)}, map[string]any{"type": "t", "run_at": "2026-12-31T23:00:00Z"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := c.Enqueue(ctx, "q", "t", tc.payload, tc.opts...); err != nil {
				t.Fatal(err)
			}
			if got := f.last(t).Body; !reflect.DeepEqual(got, tc.want) {
				t.Errorf("body = %v, want %v", got, tc.want)
			}
		})
	}

	if _, err := c.Enqueue(ctx, "q", "t", json.RawMessage(`{`)); err == nil {
		t.Error("invalid json.RawMessage: want an error")
	}
	if _, err := c.Enqueue(ctx, "q", "t", func() {}); err == nil {
		t.Error("unmarshalable payload: want an error")
	}
	if _, err := c.Enqueue(ctx, "", "t", nil); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("empty queue: err = %v, want ErrInvalidArgument", err)
	}
}

func TestEnqueueDuplicate(t *testing.T) {
	f := newFake(t, answer(200, `{"id":"7","state":"ready","duplicate":true}`))
	job, err := newTestClient(t, f.URL).Enqueue(context.Background(), "q", "t", nil, UniqueKey("k"))
	if err != nil {
		t.Fatal(err)
	}
	if !job.Duplicate || job.ID != 7 {
		t.Errorf("job = %+v, want duplicate id 7", job)
	}
}

func TestBinaryPayloadDecoded(t *testing.T) {
	f := newFake(t, answer(200, `{"id":"3","payload_base64":"/wBh"}`))
	job, err := newTestClient(t, f.URL).Job(context.Background(), 3)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(job.Payload, []byte{0xff, 0, 'a'}) {
		t.Errorf("payload = %q", job.Payload)
	}
	if r := f.last(t); r.Method != "GET" || r.Path != "/v1/jobs/3" {
		t.Errorf("request = %s %s", r.Method, r.Path)
	}
}

func TestEnqueueBatch(t *testing.T) {
	f := newFake(t, answer(200, `{"jobs":[{"id":"1","state":"ready","duplicate":false},
		{"id":"2","state":"ready","duplicate":true},
		{"error":{"code":"internal","message":"store failed"}}]}`))
	c := newTestClient(t, f.URL)
	res, err := c.EnqueueBatch(context.Background(), "q", []BatchJob{
		{Type: "a", Payload: 1},
		{Type: "b", Options: []EnqueueOption{UniqueKey("k")}},
		{Type: "c", Payload: []byte("x")},
	})
	if err != nil {
		t.Fatal(err)
	}
	body := f.last(t).Body
	want := map[string]any{"jobs": []any{
		map[string]any{"type": "a", "payload": 1.0},
		map[string]any{"type": "b", "unique_key": "k"},
		map[string]any{"type": "c", "payload_base64": "eA=="},
	}}
	if !reflect.DeepEqual(body, want) {
		t.Errorf("body = %v\nwant %v", body, want)
	}
	if len(res) != 3 || res[0].ID != 1 || res[0].Duplicate || res[1].ID != 2 || !res[1].Duplicate ||
		res[0].Err != nil || res[2].Err == nil {
		t.Fatalf("results = %+v", res)
	}
	var apiErr *APIError
	if !errors.As(res[2].Err, &apiErr) || apiErr.Code != "internal" || apiErr.Message != "store failed" {
		t.Errorf("item error = %#v", res[2].Err)
	}
	if _, err := c.EnqueueBatch(context.Background(), "q", nil); err == nil {
		t.Error("empty batch: want an error")
	}
}

func TestErrorMapping(t *testing.T) {
	cases := []struct {
		status   int
		body     string
		sentinel error
		code     string
	}{
		{404, `{"error":{"code":"job_not_found","message":"job not found"}}`, ErrJobNotFound, "job_not_found"},
		{404, `{"error":{"code":"queue_not_found","message":"queue not found"}}`, ErrQueueNotFound, "queue_not_found"},
		{409, `{"error":{"code":"lease_lost","message":"lease lost"}}`, ErrLeaseLost, "lease_lost"},
		{409, `{"error":{"code":"wrong_state","message":"cannot kick a ready job"}}`, ErrWrongState, "wrong_state"},
		{400, `{"error":{"code":"invalid_argument","message":"priority: bad","field":"priority"}}`, ErrInvalidArgument, "invalid_argument"},
		{400, `{"error":{"code":"invalid_json","message":"bad json"}}`, ErrInvalidArgument, "invalid_json"},
		{413, `{"error":{"code":"payload_too_large","message":"too big"}}`, ErrPayloadTooLarge, "payload_too_large"},
		{502, `<html>bad gateway</html>`, nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.code, func(t *testing.T) {
			f := newFake(t, answer(tc.status, tc.body))
			_, err := newTestClient(t, f.URL).Kick(context.Background(), 42)
			var apiErr *APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("err = %v, want an *APIError", err)
			}
			if apiErr.Status != tc.status || apiErr.Code != tc.code {
				t.Errorf("APIError = %+v", apiErr)
			}
			if tc.sentinel != nil && !errors.Is(err, tc.sentinel) {
				t.Errorf("errors.Is(%v, %v) = false", err, tc.sentinel)
			}
			for _, other := range []error{ErrJobNotFound, ErrQueueNotFound, ErrLeaseLost, ErrWrongState, ErrUnavailable} {
				if other != tc.sentinel && errors.Is(err, other) {
					t.Errorf("errors.Is(%v, %v) = true", err, other)
				}
			}
			if !strings.HasPrefix(err.Error(), "spool: kick job 42: ") {
				t.Errorf("error text %q lacks the operation's context", err)
			}
		})
	}
	f := newFake(t, answer(400, `{"error":{"code":"invalid_argument","message":"priority: bad","field":"priority"}}`))
	_, err := newTestClient(t, f.URL).Job(context.Background(), 1)
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Field != "priority" || apiErr.Message != "priority: bad" {
		t.Errorf("APIError = %+v", apiErr)
	}
}

func TestFailoverOnConnectionRefusedAndSticks(t *testing.T) {
	f := newFake(t, answer(201, `{"id":"1","state":"ready"}`))
	c := newTestClient(t, closedURL(t)+","+f.URL)
	for range 3 { // POST is retried on a dial error: the request surely did not arrive
		if _, err := c.Enqueue(context.Background(), "q", "t", nil); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(f.requests()); n != 3 {
		t.Errorf("second server got %d requests, want 3", n)
	}
	if got := c.current.Load(); got != 1 {
		t.Errorf("current server = %d, want 1 (the one that answered)", got)
	}
}

func TestFailoverOn503(t *testing.T) {
	down := newFake(t, answer(503, `{"error":{"code":"unavailable","message":"draining"}}`))
	up := newFake(t, answer(200, `{"id":"5","state":"ready"}`))
	c := newTestClient(t, down.URL+","+up.URL)
	job, err := c.Job(context.Background(), 5)
	if err != nil {
		t.Fatal(err)
	}
	if job.ID != 5 || len(down.requests()) != 1 || len(up.requests()) != 1 {
		t.Errorf("job %d; requests down=%d up=%d", job.ID, len(down.requests()), len(up.requests()))
	}
	// The next request starts at the server that answered.
	if _, err := c.Job(context.Background(), 5); err != nil {
		t.Fatal(err)
	}
	if len(down.requests()) != 1 || len(up.requests()) != 2 {
		t.Errorf("requests down=%d up=%d, want 1 and 2", len(down.requests()), len(up.requests()))
	}
}

func TestAllServersDown(t *testing.T) {
	t.Parallel()
	down := newFake(t, answer(503, `{"error":{"code":"unavailable","message":"draining"}}`))
	c := newTestClient(t, closedURL(t)+","+down.URL, WithRetryFor(200*time.Millisecond))
	_, err := c.Queues(context.Background())
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("err = %v, want ErrUnavailable", err)
	}
	c = newTestClient(t, closedURL(t), WithRetryFor(200*time.Millisecond))
	_, err = c.Stats(context.Background())
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("refused: err = %v, want ErrUnavailable", err)
	}
}

func TestPostNotResentAfterLostAnswer(t *testing.T) {
	// The first server reads the request and drops the connection without answering: the
	// job may have been stored, so the client must not enqueue it again elsewhere.
	var hits atomic.Int32
	lost := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = io.ReadAll(r.Body)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	defer lost.Close()
	up := newFake(t, answer(201, `{"id":"1","state":"ready"}`))
	c := newTestClient(t, lost.URL+","+up.URL)

	if _, err := c.Enqueue(context.Background(), "q", "t", nil); err == nil {
		t.Fatal("enqueue: want an error for a lost answer")
	} else if !errors.Is(err, ErrUnavailable) {
		t.Errorf("err = %v, want ErrUnavailable", err)
	}
	if len(up.requests()) != 0 {
		t.Errorf("the POST was sent again to the second server")
	}
	// The requests after it start at the next server.
	hitsBefore := hits.Load()
	if _, err := c.Job(context.Background(), 1); err != nil {
		t.Fatalf("GET after the lost answer: %v", err)
	}
	if hits.Load() != hitsBefore || len(up.requests()) != 1 {
		t.Errorf("after the lost answer: hits lost=%d up=%d, want 0 and 1", hits.Load()-hitsBefore, len(up.requests()))
	}
	// A GET is idempotent: it fails over at once.
	c = newTestClient(t, lost.URL+","+up.URL)
	hitsBefore = hits.Load()
	if _, err := c.Job(context.Background(), 1); err != nil {
		t.Fatalf("GET did not fail over: %v", err)
	}
	if hits.Load() != hitsBefore+1 || len(up.requests()) != 2 {
		t.Errorf("hits lost=%d up=%d, want 1 and 2", hits.Load()-hitsBefore, len(up.requests()))
	}
}

func TestQueueNameEscaped(t *testing.T) {
	f := newFake(t, answer(200, `{"name":"a/b;c"}`))
	q, err := newTestClient(t, f.URL).Queue(context.Background(), "a/b;c")
	if err != nil {
		t.Fatal(err)
	}
	if got := f.last(t).Path; got != "/v1/queues/a%2Fb%3Bc" {
		t.Errorf("path = %q", got)
	}
	if q.Name != "a/b;c" {
		t.Errorf("name = %q", q.Name)
	}
}

func TestReserveAndFinish(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/reserve":
			answer(200, `{"jobs":[{"id":"9","queue":"email","type":"t","state":"reserved","attempts":1,
				"lease_token":"3601932bb92351e9","lease_expires_at":"2026-11-22T19:30:30Z"}],"paused":["sms"]}`)(w, r)
		case "/v1/jobs/9/touch":
			answer(200, `{"lease_expires_at":"2026-11-22T19:32:30Z"}`)(w, r)
		default:
			answer(200, `{"id":"9","state":"succeeded","result":{"ok":true}}`)(w, r)
		}
	})
	c := newTestClient(t, f.URL)
	ctx := context.Background()
	res, err := c.Reserve(ctx, ReserveOptions{Queues: []string{"email", "sms"}, Max: 10, Wait: 20 * time.Second, Worker: "w1"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := f.last(t).Body, map[string]any{"queues": []any{"email", "sms"}, "max": 10.0, "wait": "20s", "worker": "w1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("reserve body = %v, want %v", got, want)
	}
	if len(res.Jobs) != 1 || res.Jobs[0].ID != 9 || res.Jobs[0].LeaseToken != "3601932bb92351e9" ||
		res.Jobs[0].Attempts != 1 || res.Jobs[0].LeaseExpiresAt.IsZero() || !reflect.DeepEqual(res.Paused, []string{"sms"}) {
		t.Fatalf("reserve result = %+v %+v", res, res.Jobs)
	}

	exp, err := c.Touch(ctx, 9, "3601932bb92351e9", 2*time.Minute)
	if err != nil || exp.Minute() != 32 {
		t.Errorf("touch = %v, %v", exp, err)
	}
	job, err := c.Ack(ctx, 9, "3601932bb92351e9", map[string]bool{"ok": true})
	if err != nil || job.State != StateSucceeded || string(job.Result) != `{"ok":true}` {
		t.Errorf("ack = %+v, %v", job, err)
	}
	prio := uint32(0)
	if _, err := c.Release(ctx, 9, "3601932bb92351e9", ReleaseOptions{Priority: &prio, Delay: time.Second}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Fail(ctx, 9, "3601932bb92351e9", FailOptions{Error: "boom", RetryIn: 30 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Bury(ctx, 9, "3601932bb92351e9", "poison"); err != nil {
		t.Fatal(err)
	}
	reqs := f.requests()
	want := []recorded{
		{Method: "POST", Path: "/v1/jobs/9/touch", Body: map[string]any{"lease_token": "3601932bb92351e9", "lease": "2m"}},
		{Method: "POST", Path: "/v1/jobs/9/ack", Body: map[string]any{"lease_token": "3601932bb92351e9", "result": map[string]any{"ok": true}}},
		{Method: "POST", Path: "/v1/jobs/9/release", Body: map[string]any{"lease_token": "3601932bb92351e9", "priority": 0.0, "delay": "1s"}},
		{Method: "POST", Path: "/v1/jobs/9/fail", Body: map[string]any{"lease_token": "3601932bb92351e9", "error": "boom", "retry_in": "30s"}},
		{Method: "POST", Path: "/v1/jobs/9/bury", Body: map[string]any{"lease_token": "3601932bb92351e9", "reason": "poison"}},
	}
	for i, w := range want {
		got := reqs[i+1]
		if got.Method != w.Method || got.Path != w.Path || !reflect.DeepEqual(got.Body, w.Body) {
			t.Errorf("request %d = %s %s %v\nwant %s %s %v", i, got.Method, got.Path, got.Body, w.Method, w.Path, w.Body)
		}
	}
	if _, err := c.Reserve(ctx, ReserveOptions{}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("reserve without queues: err = %v", err)
	}
}

func TestReserveWaitLengthensTimeout(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(300 * time.Millisecond) // a long poll
		answer(200, `{"jobs":[]}`)(w, r)
	})
	c := newTestClient(t, f.URL, WithTimeout(100*time.Millisecond))
	if _, err := c.Reserve(context.Background(), ReserveOptions{Queues: []string{"q"}, Wait: time.Second}); err != nil {
		t.Errorf("reserve with a wait beyond the timeout: %v", err)
	}
	if _, err := c.Reserve(context.Background(), ReserveOptions{Queues: []string{"q"}}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("reserve without a wait over the timeout: err = %v, want a timeout (ErrUnavailable)", err)
	}
}

func TestQueueOperations(t *testing.T) {
	const queueAnswer = `{"name":"email","lease":"30s","max_attempts":25,"backoff_base":"1s","backoff_max":"1h0m0s",
		"paused":true,"paused_until":"2026-11-22T19:40:00Z","created_at":"2026-11-22T19:30:00Z","replicas":3,"retention":"30m",
		"stats":{"ready":10,"reserved":2,"delayed":5,"buried":1,"enqueued":1000,"reserves":990,"succeeded":980,
		"failed":12,"buried_total":1,"cancelled":0,"timeouts":3,"oldest_ready_age":"2.5s","enqueue_rate":12.5,"complete_rate":11}}`
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v1/queues":
			answer(200, `{"queues":[`+queueAnswer+`]}`)(w, r)
		case strings.HasSuffix(r.URL.Path, "/kick"):
			answer(200, `{"kicked":12}`)(w, r)
		case strings.HasSuffix(r.URL.Path, "/purge"):
			answer(200, `{"purged":120}`)(w, r)
		case strings.HasSuffix(r.URL.Path, "/jobs"):
			answer(200, `{"jobs":[{"id":"1"},{"id":"2"}],"next_cursor":"c2"}`)(w, r)
		case r.Method == "DELETE":
			w.WriteHeader(204)
		default:
			answer(200, queueAnswer)(w, r)
		}
	})
	c := newTestClient(t, f.URL)
	ctx := context.Background()

	qs, err := c.Queues(ctx)
	if err != nil || len(qs) != 1 {
		t.Fatalf("queues = %v, %v", qs, err)
	}
	q := qs[0]
	wantStats := QueueStats{
		StateCounts:    StateCounts{Ready: 10, Reserved: 2, Delayed: 5, Buried: 1},
		Totals:         Totals{Enqueued: 1000, Reserves: 990, Succeeded: 980, Failed: 12, BuriedTotal: 1, Timeouts: 3},
		OldestReadyAge: 2500 * time.Millisecond, EnqueueRate: 12.5, CompleteRate: 11,
	}
	if q.Name != "email" || q.Lease != 30*time.Second || q.MaxAttempts != 25 || q.BackoffBase != time.Second ||
		q.BackoffMax != time.Hour || !q.Paused || q.PausedUntil.IsZero() || q.CreatedAt.IsZero() || q.Replicas != 3 || q.Retention != 30*time.Minute || q.Stats != wantStats {
		t.Errorf("queue = %+v", q)
	}

	if _, err := c.UpdateQueue(ctx, "email", QueueSettings{Lease: time.Minute, BackoffMax: time.Hour, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	none := time.Duration(0)
	if _, err := c.UpdateQueue(ctx, "email", QueueSettings{Retention: &none}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Pause(ctx, "email", 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Pause(ctx, "email", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Resume(ctx, "email"); err != nil {
		t.Fatal(err)
	}
	if n, err := c.KickQueue(ctx, "email", 0); err != nil || n != 12 {
		t.Errorf("kick queue = %d, %v", n, err)
	}
	if _, err := c.KickQueue(ctx, "email", 5); err != nil {
		t.Fatal(err)
	}
	page, err := c.ListJobs(ctx, "email", StateBuried, 2, "c1")
	if err != nil || len(page.Jobs) != 2 || page.Jobs[1].ID != 2 || page.NextCursor != "c2" {
		t.Errorf("list jobs = %+v, %v", page, err)
	}
	if n, err := c.Purge(ctx, "email", StateBuried); err != nil || n != 120 {
		t.Errorf("purge = %d, %v", n, err)
	}
	if _, err := c.Purge(ctx, "email", ""); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteQueue(ctx, "email"); err != nil {
		t.Fatal(err)
	}

	want := []recorded{
		{Method: "GET", Path: "/v1/queues", RawQuery: "limit=1000"},
		{Method: "PUT", Path: "/v1/queues/email", Body: map[string]any{"lease": "1m", "backoff_max": "1h", "replicas": 3.0}},
		{Method: "PUT", Path: "/v1/queues/email", Body: map[string]any{"retention": "0s"}}, // 0 is sent: keep none
		{Method: "POST", Path: "/v1/queues/email/pause", Body: map[string]any{"for": "10m"}},
		{Method: "POST", Path: "/v1/queues/email/pause", Body: map[string]any{}},
		{Method: "POST", Path: "/v1/queues/email/resume", Body: map[string]any{}},
		{Method: "POST", Path: "/v1/queues/email/kick", Body: map[string]any{}},
		{Method: "POST", Path: "/v1/queues/email/kick", Body: map[string]any{"max": 5.0}},
		{Method: "GET", Path: "/v1/queues/email/jobs", RawQuery: "cursor=c1&limit=2&state=buried"},
		{Method: "POST", Path: "/v1/queues/email/purge", Body: map[string]any{"state": "buried"}},
		{Method: "POST", Path: "/v1/queues/email/purge", Body: map[string]any{}},
		{Method: "DELETE", Path: "/v1/queues/email"},
	}
	reqs := f.requests()
	if len(reqs) != len(want) {
		t.Fatalf("%d requests, want %d", len(reqs), len(want))
	}
	for i, w := range want {
		got := reqs[i]
		if got.Method != w.Method || got.Path != w.Path || got.RawQuery != w.RawQuery || !reflect.DeepEqual(got.Body, w.Body) {
			t.Errorf("request %d = %s %s?%s %v\nwant %s %s?%s %v", i, got.Method, got.Path, got.RawQuery, got.Body,
				w.Method, w.Path, w.RawQuery, w.Body)
		}
	}
}

func TestStats(t *testing.T) {
	body := `{"version":"1.2.3","uptime":"1h2m3s","queues":4,"paused":1,"jobs":{"ready":1,"reserved":2,"delayed":3,"buried":4},` +
		`"totals":{"enqueued":100,"reserves":95,"succeeded":90,"failed":7,"buried":5,"cancelled":1,"timeouts":2},` +
		`"enqueue_rate":1.5,"complete_rate":0.25}`
	f := newFake(t, answer(200, body))
	s, err := newTestClient(t, f.URL).Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := ServerStats{Version: "1.2.3", Uptime: time.Hour + 2*time.Minute + 3*time.Second, Queues: 4, Paused: 1,
		Jobs:        StateCounts{Ready: 1, Reserved: 2, Delayed: 3, Buried: 4},
		Totals:      Totals{Enqueued: 100, Reserves: 95, Succeeded: 90, Failed: 7, BuriedTotal: 5, Cancelled: 1, Timeouts: 2},
		EnqueueRate: 1.5, CompleteRate: 0.25}
	if *s != want {
		t.Errorf("stats = %+v\nwant %+v", *s, want)
	}
	// Encoding gives the wire format back, field for field: the server encodes with it.
	got, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != body {
		t.Errorf("encoded stats:\n%s\nwant\n%s", got, body)
	}
}

func TestDurationAcceptsSeconds(t *testing.T) {
	var j Job
	if err := json.Unmarshal([]byte(`{"id":"1","lease":1.5}`), &j); err != nil {
		t.Fatal(err)
	}
	if j.Lease != 1500*time.Millisecond {
		t.Errorf("lease = %v", j.Lease)
	}
	if err := json.Unmarshal([]byte(`{"id":"1","lease":"soon"}`), &j); err == nil {
		t.Error("bad duration: want an error")
	}
	if err := json.Unmarshal([]byte(`{"id":"-1"}`), &j); err == nil {
		t.Error("negative id: want an error")
	}
}

func TestJobJSONRoundTrip(t *testing.T) {
	in := ReservedJob{
		Job: Job{ID: 1 << 63, Queue: "q", Type: "t", State: StateReserved, Priority: 3,
			Payload: []byte{0xff}, Attempts: 1, MaxAttempts: 2, Lease: time.Minute,
			Metadata: map[string]string{"a": "b"}, CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC),
			Result: json.RawMessage(`{"x":1}`), Kicks: 2},
		LeaseToken: "tok",
	}
	data, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, frag := range []string{`"id":"9223372036854775808"`, `"payload_base64":"/w=="`, `"lease":"1m"`, `"lease_token":"tok"`, `"created_at":"2026-01-02T03:04:05.000000006Z"`} {
		if !strings.Contains(string(data), frag) {
			t.Errorf("%s lacks %s", data, frag)
		}
	}
	if strings.Contains(string(data), "finished_at") {
		t.Errorf("%s has an unset time", data)
	}
	var out ReservedJob
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Errorf("round trip:\n in %+v\nout %+v", in, out)
	}
	// A JSON payload comes back as JSON, not base64.
	data, _ = json.Marshal(Job{ID: 1, Payload: []byte(`{"a":1}`)})
	if !strings.Contains(string(data), `"payload":{"a":1}`) {
		t.Errorf("JSON payload encoded as %s", data)
	}
}

func TestWaitJob(t *testing.T) {
	var calls atomic.Int32
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 3 {
			answer(200, `{"id":"4","state":"reserved"}`)(w, r)
			return
		}
		answer(200, `{"id":"4","state":"succeeded"}`)(w, r)
	})
	c := newTestClient(t, f.URL)
	job, err := c.WaitJob(context.Background(), 4, time.Millisecond)
	if err != nil || job.State != StateSucceeded || calls.Load() != 3 {
		t.Errorf("WaitJob = %+v, %v after %d calls", job, err, calls.Load())
	}

	calls.Store(-1000) // never final within the deadline
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	job, err = c.WaitJob(ctx, 4, 5*time.Millisecond)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitJob past the deadline: err = %v", err)
	}
	if job != nil && job.State != StateReserved {
		t.Errorf("last seen job = %+v", job)
	}
}

func TestNewClientURLs(t *testing.T) {
	c, err := NewClient(" 127.0.0.1:7420/ , https://b.example:8443/base/ ")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Servers(), []string{"http://127.0.0.1:7420", "https://b.example:8443/base"}; !reflect.DeepEqual(got, want) {
		t.Errorf("servers = %v, want %v", got, want)
	}
	if c, err := NewClient(""); err != nil || c.Servers()[0] != DefaultURL {
		t.Errorf("empty: %v %v", c, err)
	}
	for _, bad := range []string{"ftp://x", "http://", "http://x/?a=1", ","} {
		if _, err := NewClient(bad); err == nil {
			t.Errorf("NewClient(%q): want an error", bad)
		}
	}
}

func TestParseJobID(t *testing.T) {
	if id, err := ParseJobID("18446744073709551615"); err != nil || id != 1<<64-1 {
		t.Errorf("ParseJobID = %d, %v", id, err)
	}
	for _, bad := range []string{"", "-1", "1x", "18446744073709551616"} {
		if _, err := ParseJobID(bad); err == nil {
			t.Errorf("ParseJobID(%q): want an error", bad)
		}
	}
}

// Durations are written in their shortest form; Go's long form, which servers wrote before,
// and numbers of seconds are read too.
func TestDurationForms(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"}, {time.Hour, "1h"}, {90 * time.Minute, "1h30m"}, {5 * time.Minute, "5m"},
		{90 * time.Second, "1m30s"}, {time.Hour + 5*time.Second, "1h5s"}, {2500 * time.Millisecond, "2.5s"},
		{250 * time.Millisecond, "250ms"}, {-time.Hour, "-1h"}, {10 * time.Hour, "10h"},
	} {
		b, err := json.Marshal(jsonDuration(c.d))
		if err != nil || string(b) != strconv.Quote(c.want) {
			t.Errorf("%v written as %s (%v), want %q", c.d, b, err, c.want)
		}
		var back jsonDuration
		if err := json.Unmarshal(b, &back); err != nil || time.Duration(back) != c.d {
			t.Errorf("%s read as %v (%v), want %v", b, time.Duration(back), err, c.d)
		}
	}
	for in, want := range map[string]time.Duration{`"1h0m0s"`: time.Hour, `"5m0s"`: 5 * time.Minute, `"1h30m0s"`: 90 * time.Minute, `1.5`: 1500 * time.Millisecond} {
		var d jsonDuration
		if err := json.Unmarshal([]byte(in), &d); err != nil || time.Duration(d) != want {
			t.Errorf("%s read as %v (%v), want %v", in, time.Duration(d), err, want)
		}
	}
}

// An event written in the API's form (job_id a decimal string) reads back the same.
func TestEventJSONRoundTrip(t *testing.T) {
	t.Parallel()
	want := Event{Pos: "42", Time: time.Unix(1796551200, 0).UTC(), Kind: "failed", JobID: 1<<60 + 7,
		Queue: "video", Type: "encode", Attempt: 2, State: StateDelayed, Error: "boom",
		RunAt: time.Unix(1796551260, 0).UTC()}
	b, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"job_id":"1152921504606846983"`) {
		t.Fatalf("job_id not a decimal string: %s", b)
	}
	var got Event
	if err := json.Unmarshal(b, &got); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("read back %+v %v, want %+v", got, err, want)
	}
}
