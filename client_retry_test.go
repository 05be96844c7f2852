package spool

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// A server that answers 503 for a while (a leader election) is tried again, backing off,
// until it answers; past the bound the 503 is the caller's.
func TestClientRetriesUnavailable(t *testing.T) {
	t.Parallel()
	var n atomic.Int64
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) <= 3 {
			answer(503, `{"error":{"code":"unavailable","message":"storage unavailable, try again"}}`)(w, r)
			return
		}
		answer(201, `{"id":"7","queue":"q","type":"t","state":"ready"}`)(w, r)
	})
	c, err := NewClient(f.URL)
	if err != nil {
		t.Fatal(err)
	}
	j, err := c.Enqueue(context.Background(), "q", "t", nil)
	if err != nil || j.ID != 7 || n.Load() != 4 {
		t.Fatalf("after 3 answers 503: job %v, err %v, %d requests", j, err, n.Load())
	}

	never := newFake(t, answer(503, `{"error":{"code":"unavailable","message":"no"}}`))
	c, _ = NewClient(never.URL, WithRetryFor(300*time.Millisecond))
	start := time.Now()
	_, err = c.Enqueue(context.Background(), "q", "t", nil)
	if !errors.Is(err, ErrUnavailable) || len(never.requests()) < 2 {
		t.Fatalf("always 503: %v after %d requests in %s", err, len(never.requests()), time.Since(start))
	}
}

// A batch answered 503 with per-item results (some stored, some not) is sent again with
// only the items not stored; the caller gets every item's result in order.
func TestEnqueueBatchResendsOnlyUnstoredItems(t *testing.T) {
	t.Parallel()
	var n atomic.Int64
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			answer(503, `{"error":{"code":"unavailable","message":"1 of 3 items failed"},"jobs":[`+
				`{"id":"1","state":"ready"},{"error":{"code":"unavailable","message":"x"}},{"error":{"code":"invalid_argument","message":"y"}}]}`)(w, r)
			return
		}
		answer(200, `{"jobs":[{"id":"2","state":"ready"}]}`)(w, r)
	})
	c, _ := NewClient(f.URL)
	res, err := c.EnqueueBatch(context.Background(), "q", []BatchJob{{Type: "a"}, {Type: "b"}, {Type: "c"}})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].ID != 1 || res[1].ID != 2 || res[1].Err != nil || res[2].Err == nil {
		t.Fatalf("results %+v", res)
	}
	reqs := f.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	second := reqs[1].Body["jobs"].([]any)
	if len(second) != 1 || second[0].(map[string]any)["type"] != "b" {
		t.Fatalf("second request sent %v, want only job b", second)
	}
}

// Acks answered 503 with per-ack results are sent again, only those not stored.
func TestAckBatchResendsOnlyUnstoredAcks(t *testing.T) {
	t.Parallel()
	var n atomic.Int64
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			answer(503, `{"error":{"code":"unavailable","message":"1 of 2 items failed"},"results":[`+
				`{"id":"1","state":"succeeded"},{"id":"2","error":{"code":"unavailable","message":"x"}}]}`)(w, r)
			return
		}
		answer(200, `{"results":[{"id":"2","state":"succeeded"}]}`)(w, r)
	})
	c, _ := NewClient(f.URL)
	res, err := c.AckBatch(context.Background(), []BatchAck{{ID: 1, LeaseToken: "a"}, {ID: 2, LeaseToken: "b"}})
	if err != nil || res[0].Err != nil || res[1].Err != nil || res[1].State != StateSucceeded {
		t.Fatalf("%+v %v", res, err)
	}
	if reqs := f.requests(); len(reqs) != 2 || len(reqs[1].Body["acks"].([]any)) != 1 {
		t.Fatalf("requests %+v", reqs)
	}
}

// A server that takes connections but never answers (a frozen process, a cut link that
// keeps its connection) costs one request its timeout; the requests after it go to the
// next server instead of waiting there too.
func TestClientLeavesServerThatDoesNotAnswer(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	hung := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) }) // before the fake closes: runs first
	ok := newFake(t, answer(201, `{"id":"7","queue":"q","type":"t","state":"ready"}`))
	c, err := NewClient(hung.URL+","+ok.URL, WithTimeout(300*time.Millisecond), WithRetryFor(0))
	if err != nil {
		t.Fatal(err)
	}
	// The enqueue that reached the hung server may have been stored there: it fails and is
	// not sent to the other server.
	if _, err := c.Enqueue(context.Background(), "q", "t", nil); err == nil || len(ok.requests()) != 0 {
		t.Fatalf("first enqueue: err %v, %d requests to the other server", err, len(ok.requests()))
	}
	for i := range 3 {
		if j, err := c.Enqueue(context.Background(), "q", "t", nil); err != nil || j.ID != 7 {
			t.Fatalf("enqueue %d after the timeout: %v %v", i, j, err)
		}
	}
	if n := len(hung.requests()); n != 1 {
		t.Fatalf("%d requests reached the hung server, want 1", n)
	}
	// An idempotent request tries the next server at once.
	c, _ = NewClient(hung.URL+","+ok.URL, WithTimeout(300*time.Millisecond), WithRetryFor(0))
	if _, err := c.Job(context.Background(), 7); err != nil {
		t.Fatalf("GET through a hung server first: %v", err)
	}
}
