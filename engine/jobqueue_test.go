package engine_test

import (
	"errors"
	"slices"
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
		qs, next, err := e.QueuesPageOf(ctxT(t), after, 2, keep)
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
