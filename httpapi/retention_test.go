package httpapi_test

import (
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/spoolq/spool/engine"
)

type retentionView struct {
	Name      string `json:"name"`
	Lease     string `json:"lease"`
	Retention string `json:"retention"`
}

// TestQueueRetention sets a queue's retention, reads it back, refuses bad values without
// changing it, and checks what it means: with retention 0 a job acked is not found any
// more, with the default it is found succeeded.
func TestQueueRetention(t *testing.T) {
	t.Parallel()
	// Leases stay in memory for a minute: every ack below comes before its lease record is
	// written, as a prompt ack does, however slow the machine (a job acked after that is
	// kept until its lease would have ended plus a minute: see QueueSettings.Retention).
	s := newServerOf(t, engine.Config{LeaseWriteDelay: time.Minute}, slog.LevelWarn, nil)

	var q retentionView
	s.must(t, http.StatusOK, "PUT", qpath("kept"), nil).into(t, &q)
	if q.Retention != "1h" {
		t.Errorf("new queue: retention %q, want the server's 1h", q.Retention)
	}
	for _, c := range []struct {
		body map[string]any
		want string
	}{
		{map[string]any{"retention": "30m"}, "30m"},
		{map[string]any{"retention": 90}, "1m30s"}, // a number is seconds
		{map[string]any{"lease": "45s"}, "1m30s"},  // left out: unchanged
		{map[string]any{"retention": "2160h"}, "2160h"},
		{map[string]any{"retention": 0}, "0s"},
		{map[string]any{"retention": "1h"}, "1h"},
	} {
		s.must(t, http.StatusOK, "PUT", qpath("kept"), c.body).into(t, &q)
		var got retentionView
		s.must(t, http.StatusOK, "GET", qpath("kept"), nil).into(t, &got)
		if q.Retention != c.want || got.Retention != c.want {
			t.Errorf("PUT %v: retention %q, read back %q, want %q", c.body, q.Retention, got.Retention, c.want)
		}
	}
	// A refused value changes nothing.
	s.wantErr(t, http.StatusBadRequest, "invalid_argument", "retention", "PUT", qpath("kept"), map[string]any{"retention": "-1s", "lease": "1m"})
	s.must(t, http.StatusOK, "GET", qpath("kept"), nil).into(t, &q)
	if q.Retention != "1h" || q.Lease != "45s" {
		t.Errorf("after a refused update: %+v, want retention 1h, lease 45s", q)
	}

	s.must(t, http.StatusOK, "PUT", qpath("none"), map[string]any{"retention": 0}).into(t, &q)
	var list struct{ Queues []retentionView }
	s.must(t, http.StatusOK, "GET", "/v1/queues", nil).into(t, &list)
	if len(list.Queues) != 2 || list.Queues[0].Retention != "1h" || list.Queues[1].Retention != "0s" {
		t.Errorf("queue list: %+v, want kept 1h, none 0s", list.Queues)
	}

	for _, c := range []struct {
		queue string
		found bool
	}{{"none", false}, {"kept", true}} {
		j := s.enqueue(t, c.queue, map[string]any{"payload": "x"})
		r := s.reserve(t, map[string]any{"queues": []string{c.queue}})
		if len(r.Jobs) != 1 || r.Jobs[0].ID != j.ID {
			t.Fatalf("reserve from %s: %+v, want job %s", c.queue, r, j.ID)
		}
		s.must(t, http.StatusOK, "POST", "/v1/jobs/"+j.ID+"/ack", map[string]any{"lease_token": r.Jobs[0].LeaseToken})
		if !c.found {
			s.wantErr(t, http.StatusNotFound, "job_not_found", "", "GET", "/v1/jobs/"+j.ID, nil)
		} else if got := s.getJob(t, j.ID); got.State != "succeeded" {
			t.Errorf("job acked in %s: state %q, want succeeded", c.queue, got.State)
		}
	}
}
