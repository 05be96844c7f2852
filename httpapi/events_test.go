package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

type eventView struct {
	Pos     string `json:"pos"`
	Kind    string `json:"kind"`
	JobID   string `json:"job_id"`
	Queue   string `json:"queue"`
	Type    string `json:"type"`
	Worker  string `json:"worker"`
	Attempt int    `json:"attempt"`
	State   string `json:"state"`
	Error   string `json:"error"`
}

func TestJobEventsHTTP(t *testing.T) {
	t.Parallel()
	s := newServer(t, 0)
	j := s.enqueue(t, "hist", map[string]any{"type": "report"})
	r := s.reserve(t, map[string]any{"queues": []string{"hist"}, "worker": "w-1"})
	s.must(t, http.StatusOK, "POST", "/v1/jobs/"+j.ID+"/fail", map[string]any{"lease_token": r.Jobs[0].LeaseToken, "error": "disk full", "retry_in": "0s"})
	r = s.reserve(t, map[string]any{"queues": []string{"hist"}, "worker": "w-2"})
	s.must(t, http.StatusOK, "POST", "/v1/jobs/"+j.ID+"/ack", map[string]any{"lease_token": r.Jobs[0].LeaseToken, "result": map[string]int{"pages": 3}})
	var got struct{ Events []eventView }
	eventually(t, 10*time.Second, func() error {
		s.must(t, http.StatusOK, "GET", "/v1/jobs/"+j.ID+"/events", nil).into(t, &got)
		var kinds []string
		for _, ev := range got.Events {
			kinds = append(kinds, ev.Kind)
		}
		if want := []string{"enqueued", "reserved", "failed", "reserved", "succeeded"}; !slices.Equal(kinds, want) {
			return fmt.Errorf("kinds %v, want %v", kinds, want)
		}
		return nil
	})
	if ev := got.Events[2]; ev.Error != "disk full" || ev.Worker != "w-1" || ev.Attempt != 1 || ev.JobID != j.ID || ev.Type != "report" {
		t.Errorf("failed event %+v", ev)
	}
	if ev := got.Events[4]; ev.Worker != "w-2" || ev.State != "succeeded" || ev.Attempt != 2 {
		t.Errorf("succeeded event %+v", ev)
	}
	s.wantErr(t, http.StatusNotFound, "job_not_found", "", "GET", "/v1/jobs/12345/events", nil)
	s.wantErr(t, http.StatusBadRequest, "invalid_argument", "id", "GET", "/v1/jobs/x/events", nil)
}

// sse is a client of GET /v1/events.
type sse struct {
	resp *http.Response
	sc   *bufio.Scanner
}

func (s *testServer) follow(t *testing.T, query, lastID string) *sse {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", s.srv.URL+"/v1/events?"+query, nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); resp.Body.Close() })
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET /v1/events?%s: %d %s", query, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return &sse{resp: resp, sc: bufio.NewScanner(resp.Body)}
}

// next reads the next event: its id, kind and data.
func (c *sse) next(t *testing.T) (id, kind, data string) {
	t.Helper()
	for c.sc.Scan() {
		line := c.sc.Text()
		switch {
		case line == "" && id != "":
			return id, kind, data
		case strings.HasPrefix(line, "id: "):
			id = line[4:]
		case strings.HasPrefix(line, "event: "):
			kind = line[7:]
		case strings.HasPrefix(line, "data: "):
			data = line[6:]
		}
	}
	t.Fatalf("feed ended: %v", c.sc.Err())
	return
}

// A feed filters by queue and kind, and a client that reconnects with Last-Event-ID gets
// what it missed, and nothing twice.
func TestEventsFeedResume(t *testing.T) {
	t.Parallel()
	s := newServer(t, 0)
	var ids []string
	for i := range 3 {
		ids = append(ids, s.enqueue(t, "feed", map[string]any{"type": fmt.Sprint("t", i)}).ID)
		s.enqueue(t, "other", nil)
	}
	// Events of one job come in order; events of jobs in different shards of a queue may
	// come in another order than they happened (docs/events.md): compare sets.
	c := s.follow(t, "queue=feed&kinds=enqueued,succeeded&after=0", "")
	var last uint64
	got := map[string]bool{}
	for range ids {
		id, kind, data := c.next(t)
		var ev eventView
		json.Unmarshal([]byte(data), &ev)
		pos, _ := strconv.ParseUint(id, 10, 64)
		if kind != "enqueued" || ev.Queue != "feed" || ev.Pos != id {
			t.Fatalf("event %s %s %s", id, kind, data)
		}
		got[ev.JobID] = true
		last = max(last, pos)
	}
	for _, want := range ids {
		if !got[want] {
			t.Fatalf("feed from the start: %v, want jobs %v", got, ids)
		}
	}
	c.resp.Body.Close()
	// Missed while away: a reservation (not asked for), an ack, an enqueue.
	r := s.reserve(t, map[string]any{"queues": []string{"feed"}})
	s.must(t, http.StatusOK, "POST", "/v1/jobs/"+r.Jobs[0].ID+"/ack", map[string]any{"lease_token": r.Jobs[0].LeaseToken})
	extra := s.enqueue(t, "feed", nil)
	c = s.follow(t, "queue=feed&kinds=enqueued,succeeded", strconv.FormatUint(last, 10))
	want := map[string]string{r.Jobs[0].ID: "succeeded", extra.ID: "enqueued"}
	for range want {
		id, kind, data := c.next(t)
		var ev eventView
		json.Unmarshal([]byte(data), &ev)
		pos, _ := strconv.ParseUint(id, 10, 64)
		if want[ev.JobID] != kind || pos <= last {
			t.Fatalf("resumed event %s %s %s, want one of %v after %d", id, kind, data, want, last)
		}
		delete(want, ev.JobID)
	}
	// Live events reach a feed opened without a position.
	live := s.follow(t, "type=live", "")
	s.enqueue(t, "feed", map[string]any{"type": "other"})
	lj := s.enqueue(t, "feed", map[string]any{"type": "live"})
	if _, kind, data := live.next(t); kind != "enqueued" || !strings.Contains(data, lj.ID) {
		t.Fatalf("live event %s %s", kind, data)
	}
	s.wantErr(t, http.StatusBadRequest, "invalid_argument", "kinds", "GET", "/v1/events?kinds=exploded", nil)
	s.wantErr(t, http.StatusBadRequest, "invalid_argument", "after", "GET", "/v1/events?after=x", nil)
}

func TestScaleEndpoint(t *testing.T) {
	t.Parallel()
	s := newServer(t, 0)
	jobs := make([]map[string]any, 25)
	for i := range jobs {
		jobs[i] = map[string]any{}
	}
	s.must(t, http.StatusOK, "POST", qpath("s1", "/jobs"), map[string]any{"jobs": jobs})
	s.enqueue(t, "s2", nil)
	var got struct {
		Desired, Messages, Needed int64
		Queues                    []struct {
			Queue    string
			Exists   bool
			Messages int64
		}
	}
	eventually(t, 10*time.Second, func() error {
		// ceil(25/10) + ceil(1/10) = 4; the missing queue counts as empty.
		s.must(t, http.StatusOK, "GET", "/v1/scale?queues=s1,s2,nope&targetMessagesPerWorker=10&max=10", nil).into(t, &got)
		if got.Desired != 4 || got.Messages != 26 || got.Needed != 4 {
			return fmt.Errorf("scale %+v, want desired 4 of 26 messages", got)
		}
		return nil
	})
	if len(got.Queues) != 3 || got.Queues[2].Exists || !got.Queues[0].Exists || got.Queues[0].Messages != 25 {
		t.Errorf("queues %+v", got.Queues)
	}
	// Capped by max; 10 workers running already, within 10% of 11 needed: stay.
	s.must(t, http.StatusOK, "GET", "/v1/scale?queues=s1&targetMessagesPerWorker=1&max=20", nil).into(t, &got)
	if got.Desired != 20 {
		t.Errorf("max: %+v", got)
	}
	for _, q := range []string{"queues=", "queues=s1&targetMessagesPerWorker=0", "queues=s1&min=5&max=2", "queues=s1&maxDisruption=x", "queues=s1&secondsToProcessOneJob=-1"} {
		a := s.do(t, "GET", "/v1/scale?"+q, nil)
		if a.status != http.StatusBadRequest {
			t.Errorf("%s: %v", q, a)
		}
	}
}
