package engine_test

import (
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spoolq/spool/engine"
)

// TestJobQueue: the queue of a job enqueued ready (derived id), of a delayed one (generated
// id) and of a job with a chosen id, as another node sees them; unknown ids are not found.
func TestJobQueue(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	a, b := openEngine(t, ns, engine.Config{}), openEngine(t, ns, engine.Config{})
	ready := enqueue(t, a, engine.EnqueueRequest{Queue: "jq.a", Type: "t"})
	delayed := enqueue(t, a, engine.EnqueueRequest{Queue: "jq/b", Type: "t", Delay: time.Hour})
	chosen := enqueue(t, a, engine.EnqueueRequest{Queue: "jq-c", Type: "t", ID: 777})
	for _, e := range []*engine.Engine{a, b} {
		for _, j := range []*engine.Job{ready, delayed, chosen} {
			q, err := e.JobQueue(ctxT(t), j.ID)
			if err != nil || q != j.Queue {
				t.Errorf("JobQueue(%d) = %q, %v; want %q", j.ID, q, err, j.Queue)
			}
		}
		for _, id := range []uint64{1, 778, ready.ID + 1<<32} {
			if q, err := e.JobQueue(ctxT(t), id); !errors.Is(err, engine.ErrJobNotFound) {
				t.Errorf("JobQueue(%d) of no job = %q, %v; want ErrJobNotFound", id, q, err)
			}
		}
	}
}

// TestQueuesPageOf: paging through the queues a filter keeps gives them all, once, and the
// next cursor is always one of them.
func TestQueuesPageOf(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	for _, q := range []string{"k1", "x1", "k2", "x2", "x3", "k3", "k4"} {
		enqueue(t, e, engine.EnqueueRequest{Queue: q, Type: "t"})
	}
	keep := func(n string) bool { return n[0] == 'k' }
	var got []string
	after := ""
	for {
		qs, next, err := e.QueuesPageOf(ctxT(t), after, 2, engine.QueueFilter{Keep: keep})
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range qs {
			got = append(got, q.Name)
		}
		if next == "" {
			break
		}
		if !keep(next) {
			t.Fatalf("next cursor %q is outside the filter", next)
		}
		after = next
	}
	if want := []string{"k1", "k2", "k3", "k4"}; !slices.Equal(got, want) {
		t.Errorf("pages: %v, want %v", got, want)
	}
}

// TestQueuesPageFilter: a prefix and the paused flag select the queues of a listing, paged
// with after as without a filter; a queue whose timed pause has passed is not paused; a bad
// prefix is refused on its field.
func TestQueuesPageFilter(t *testing.T) {
	t.Parallel()
	var skew atomic.Int64 // the engine's clock runs this far ahead of time.Now
	e := openEngine(t, startNATS(t), engine.Config{Now: func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }})
	for _, q := range []string{"a", "b.1", "b.2", "b.3", "b", "b/x", "ba", "c.1"} {
		enqueue(t, e, engine.EnqueueRequest{Queue: q, Type: "t"})
	}
	for _, q := range []string{"b.1", "b.3", "c.1"} {
		if _, err := e.Pause(ctxT(t), q, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.Pause(ctxT(t), "b.2", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	skew.Store(int64(2 * time.Hour)) // b.2's pause has ended
	pages := func(f engine.QueueFilter, after string, limit int) []string {
		t.Helper()
		var got []string
		for range 20 {
			qs, next, err := e.QueuesPageOf(ctxT(t), after, limit, f)
			if err != nil {
				t.Fatal(err)
			}
			for _, q := range qs {
				got = append(got, q.Name)
			}
			if next == "" {
				return got
			}
			after = next
		}
		t.Fatalf("no end to the pages of %+v: %v", f, got)
		return nil
	}
	for _, c := range []struct {
		f     engine.QueueFilter
		after string
		want  []string
	}{
		{engine.QueueFilter{Prefix: "b."}, "", []string{"b.1", "b.2", "b.3"}},
		{engine.QueueFilter{Prefix: "b"}, "", []string{"b", "b.1", "b.2", "b.3", "b/x", "ba"}},
		{engine.QueueFilter{Prefix: "b"}, "b.2", []string{"b.3", "b/x", "ba"}},
		{engine.QueueFilter{Prefix: "b."}, "a", []string{"b.1", "b.2", "b.3"}},
		{engine.QueueFilter{Prefix: "b."}, "c", nil},
		{engine.QueueFilter{Prefix: "zz"}, "", nil},
		{engine.QueueFilter{Paused: true}, "", []string{"b.1", "b.3", "c.1"}},
		{engine.QueueFilter{Paused: true, Prefix: "b"}, "", []string{"b.1", "b.3"}},
		{engine.QueueFilter{Paused: true, Keep: func(n string) bool { return n != "b.3" }}, "", []string{"b.1", "c.1"}},
	} {
		for _, limit := range []int{1, 2, 1000} {
			if got := pages(c.f, c.after, limit); !slices.Equal(got, c.want) {
				t.Errorf("prefix %q paused %v after %q, pages of %d: %v, want %v", c.f.Prefix, c.f.Paused, c.after, limit, got, c.want)
			}
		}
	}
	for _, bad := range []string{"-a", "a b", "é", strings.Repeat("q", engine.MaxQueueName+1)} {
		_, _, err := e.QueuesPageOf(ctxT(t), "", 10, engine.QueueFilter{Prefix: bad})
		if ve := (*engine.ValidationError)(nil); !errors.As(err, &ve) || ve.Field != "prefix" {
			t.Errorf("prefix %q: %v, want a validation error on prefix", bad, err)
		}
	}
}
