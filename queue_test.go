package spool_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/spoolq/spool"
)

// TestUpdateQueueRetention sets a queue's retention through the client against the real
// server and reads it back: a new queue takes the server's, nil leaves it, bad values are
// refused naming the field.
func TestUpdateQueueRetention(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := testClient(t)
	name := wq(t, "q")
	dur := func(d time.Duration) *time.Duration { return &d }

	q, err := c.UpdateQueue(ctx, name, spool.QueueSettings{})
	if err != nil || q.Retention != time.Hour {
		t.Fatalf("new queue = %+v, %v; want the server's retention, 1h", q, err)
	}
	for _, step := range []struct {
		s    spool.QueueSettings
		want time.Duration
	}{
		{spool.QueueSettings{Retention: dur(0)}, 0},
		{spool.QueueSettings{Lease: time.Minute}, 0}, // nil: unchanged
		{spool.QueueSettings{Retention: dur(90 * time.Minute)}, 90 * time.Minute},
		{spool.QueueSettings{Retention: dur(90 * 24 * time.Hour)}, 90 * 24 * time.Hour},
	} {
		q, err := c.UpdateQueue(ctx, name, step.s)
		if err != nil {
			t.Fatalf("update %+v: %v", step.s, err)
		}
		got, err := c.Queue(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if q.Retention != step.want || got.Retention != step.want {
			t.Errorf("update %+v: retention %s, read back %s, want %s", step.s, q.Retention, got.Retention, step.want)
		}
		// The report's JSON form (spool queue --json) keeps it.
		b, _ := json.Marshal(got)
		var back spool.Queue
		if err := json.Unmarshal(b, &back); err != nil || back.Retention != step.want {
			t.Errorf("queue JSON %s: retention %s, %v", b, back.Retention, err)
		}
	}
	for _, bad := range []time.Duration{1500 * time.Millisecond, -time.Second, 90*24*time.Hour + time.Second} {
		_, err := c.UpdateQueue(ctx, name, spool.QueueSettings{Retention: &bad})
		var ae *spool.APIError
		if !errors.Is(err, spool.ErrInvalidArgument) || !errors.As(err, &ae) || ae.Field != "retention" {
			t.Errorf("retention %s: %v, want invalid_argument on field retention", bad, err)
		}
	}
	if q, err := c.Queue(ctx, name); err != nil || q.Retention != 90*24*time.Hour {
		t.Errorf("after refused updates: %+v, %v; want retention 2160h", q, err)
	}
}

// TestQueueEventsReported reads a queue's events setting back through the client: on for a
// new queue, off once turned off, and kept by the report's JSON form.
func TestQueueEventsReported(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := testClient(t)
	name := wq(t, "q")
	q, err := c.UpdateQueue(ctx, name, spool.QueueSettings{})
	if err != nil || !q.Events {
		t.Fatalf("new queue = %+v, %v; want events on", q, err)
	}
	off := false
	if _, err := c.UpdateQueue(ctx, name, spool.QueueSettings{Events: &off}); err != nil {
		t.Fatal(err)
	}
	got, err := c.Queue(ctx, name)
	if err != nil || got.Events {
		t.Fatalf("after turning events off: %+v, %v", got, err)
	}
	b, _ := json.Marshal(got)
	var back spool.Queue
	if err := json.Unmarshal(b, &back); err != nil || back.Events {
		t.Fatalf("queue JSON %s: events %v, %v", b, back.Events, err)
	}
}
