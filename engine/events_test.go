package engine_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/spoolq/spool/engine"
	"github.com/spoolq/spool/internal/spooltest"
)

func kindsOf(evs []engine.Event) []engine.EventKind {
	var out []engine.EventKind
	for _, ev := range evs {
		out = append(out, ev.Kind)
	}
	return out
}

// waitTimeline waits until job id's timeline holds want, in order.
func waitTimeline(t *testing.T, e *engine.Engine, id uint64, want ...engine.EventKind) []engine.Event {
	t.Helper()
	var evs []engine.Event
	spooltest.Eventually(t, 10*time.Second, func() error {
		var err error
		if evs, err = e.JobEvents(ctxT(t), id); err != nil {
			return err
		}
		if got := kindsOf(evs); !slices.Equal(got, want) {
			return fmt.Errorf("timeline %v, want %v", got, want)
		}
		return nil
	})
	return evs
}

// Every transition of a job's life is one event of its timeline, with the worker, the
// attempt, the error and the state after it.
func TestJobTimeline(t *testing.T) {
	t.Parallel()
	e := openEngine(t, startNATS(t), engine.Config{Node: "node-a"})
	ctx := ctxT(t)
	res, err := e.Enqueue(ctx, []engine.EnqueueRequest{{Queue: "tl", Type: "email", CallbackURL: "http://127.0.0.1:1/cb"}})
	if err != nil || res[0].Err != nil {
		t.Fatal(err, res[0].Err)
	}
	id := res[0].Job.ID
	r := reserveAs(t, e, "tl", "w1")
	if _, err := e.Touch(ctx, id, r.Token, 0); err != nil {
		t.Fatal(err)
	}
	retry := time.Duration(0)
	if _, err := e.Fail(ctx, id, r.Token, engine.FailRequest{Error: "boom", RetryIn: &retry}); err != nil {
		t.Fatal(err)
	}
	r = reserveAs(t, e, "tl", "w2")
	if _, err := e.Release(ctx, id, r.Token, engine.ReleaseRequest{}); err != nil {
		t.Fatal(err)
	}
	r = reserveAs(t, e, "tl", "w3")
	if _, err := e.Bury(ctx, id, r.Token, engine.BuryRequest{Reason: "bad input"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Kick(ctx, id); err != nil {
		t.Fatal(err)
	}
	r = reserveAs(t, e, "tl", "w4")
	if _, err := e.Ack(ctx, id, r.Token, []byte(`{"ok":true}`)); err != nil {
		t.Fatal(err)
	}
	evs := waitTimeline(t, e, id, engine.EventEnqueued, engine.EventReserved, engine.EventTouched,
		engine.EventFailed, engine.EventReserved, engine.EventReleased, engine.EventReserved,
		engine.EventBuried, engine.EventKicked, engine.EventReserved, engine.EventSucceeded)
	for i, ev := range evs {
		if ev.JobID != id || ev.Queue != "tl" || ev.Type != "email" || ev.Node != "node-a" || ev.Pos == 0 || ev.Time.IsZero() {
			t.Errorf("event %d: %+v", i, ev)
		}
		if ev.Callback != "http://127.0.0.1:1/cb" {
			t.Errorf("event %d: callback %q", i, ev.Callback)
		}
		if i > 0 && ev.Pos <= evs[i-1].Pos {
			t.Errorf("event %d: pos %d after %d", i, ev.Pos, evs[i-1].Pos)
		}
	}
	if ev := evs[1]; ev.Worker != "w1" || ev.Attempt != 1 || ev.State != engine.StateReserved {
		t.Errorf("reserved: %+v", ev)
	}
	if ev := evs[3]; ev.Error != "boom" || ev.State != engine.StateReady || ev.Worker != "w1" {
		t.Errorf("failed: %+v", ev)
	}
	if ev := evs[7]; ev.Error != "bad input" || ev.State != engine.StateBuried || ev.Worker != "w3" {
		t.Errorf("buried: %+v", ev)
	}
	if ev := evs[10]; ev.State != engine.StateSucceeded || ev.Worker != "w4" {
		t.Errorf("succeeded: %+v", ev)
	}
}

// A retry with a backoff carries when the job becomes ready; a delete is a cancelled
// event; an expired lease is an event of its own.
func TestEventsRetryExpiryCancel(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	ctx := ctxT(t)
	lease := time.Second
	res, _ := e.Enqueue(ctx, []engine.EnqueueRequest{{Queue: "ev2", Lease: lease}})
	id := res[0].Job.ID
	r := reserveAs(t, e, "ev2", "w")
	in := time.Hour
	if _, err := e.Fail(ctx, id, r.Token, engine.FailRequest{Error: "later", RetryIn: &in}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Kick(ctx, id); err != nil {
		t.Fatal(err)
	}
	reserveAs(t, e, "ev2", "w") // and let the lease run out
	evs := waitTimeline(t, e, id, engine.EventEnqueued, engine.EventReserved, engine.EventFailed,
		engine.EventKicked, engine.EventReserved, engine.EventExpired)
	if ev := evs[2]; ev.State != engine.StateDelayed || ev.RunAt.Before(time.Now().Add(50*time.Minute)) {
		t.Errorf("failed with a delay: %+v", ev)
	}
	if _, err := e.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	waitTimeline(t, e, id, engine.EventEnqueued, engine.EventReserved, engine.EventFailed,
		engine.EventKicked, engine.EventReserved, engine.EventExpired, engine.EventCancelled)
}

// A queue with events off stores none; turned on again, it does.
func TestEventsOffPerQueue(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	ctx := ctxT(t)
	if _, err := e.PutQueue(ctx, "quiet", engine.QueueSettings{Events: new(false)}); err != nil {
		t.Fatal(err)
	}
	qi, err := e.Queue(ctx, "quiet")
	if err != nil || qi.Settings.Events == nil || *qi.Settings.Events {
		t.Fatalf("settings %+v %v", qi, err)
	}
	spooltest.Eventually(t, 5*time.Second, func() error { // the watch applies the entry
		res, _ := e.Enqueue(ctx, []engine.EnqueueRequest{{Queue: "quiet"}})
		off := res[0].Job.ID
		res, _ = e.Enqueue(ctx, []engine.EnqueueRequest{{Queue: "loud"}})
		waitTimeline(t, e, res[0].Job.ID, engine.EventEnqueued) // stored after off's, if any
		evs, err := e.JobEvents(ctx, off)
		if err != nil || len(evs) != 0 {
			return fmt.Errorf("events of a quiet queue: %v %v", evs, err)
		}
		return nil
	})
	if _, err := e.PutQueue(ctx, "quiet", engine.QueueSettings{Events: new(true)}); err != nil {
		t.Fatal(err)
	}
	var tried []uint64 // jobs enqueued since; events are on once the watch applied the entry
	spooltest.Eventually(t, 10*time.Second, func() error {
		res, _ := e.Enqueue(ctx, []engine.EnqueueRequest{{Queue: "quiet"}})
		tried = append(tried, res[0].Job.ID)
		for _, id := range tried { // an event is stored a moment after its transition
			if evs, err := e.JobEvents(ctx, id); err != nil || len(evs) == 1 {
				return err
			}
		}
		return fmt.Errorf("no events for %d jobs of a queue turned on", len(tried))
	})
}

// A feed resumes after a position and filters by queue, kind and type.
func TestFollowEvents(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	ctx := ctxT(t)
	var ids []uint64
	for i := range 4 {
		q := []string{"fa", "fb"}[i%2]
		res, _ := e.Enqueue(ctx, []engine.EnqueueRequest{{Queue: q, Type: fmt.Sprint("t", i%2)}})
		ids = append(ids, res[0].Job.ID)
	}
	evs := waitTimeline(t, e, ids[3], engine.EventEnqueued)
	feed, err := e.FollowEvents(ctx, engine.EventFilter{Queues: []string{"fa"}, Kinds: []engine.EventKind{engine.EventEnqueued}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer feed.Close()
	res, _ := e.Enqueue(ctx, []engine.EnqueueRequest{{Queue: "fb"}, {Queue: "fa"}})
	ev, err := feed.Next(ctx)
	if err != nil || ev.JobID != res[1].Job.ID || ev.Queue != "fa" {
		t.Fatalf("live event %+v %v, want job %d", ev, err, res[1].Job.ID)
	}
	// Resumed from the start: everything of type t1 (queue fb), in order.
	all, err := e.FollowEvents(ctx, engine.EventFilter{Types: []string{"t1"}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	all.Close()
	from, err := e.FollowEvents(ctx, engine.EventFilter{Types: []string{"t1"}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer from.Close()
	for _, want := range []uint64{ids[1], ids[3]} {
		ev, err := from.Next(ctx)
		if err != nil || ev.JobID != want || ev.Type != "t1" || ev.Pos <= 1 {
			t.Fatalf("resumed event %+v %v, want job %d", ev, err, want)
		}
	}
	_ = evs
	// Next ends with its context.
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := from.Next(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next after the end: %v", err)
	}
}

func TestCallbackURLValidation(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	for _, u := range []string{"ftp://x/y", "/relative", "http://", "http://u:p@h/", "http://h/" + string(make([]byte, engine.MaxURLLen))} {
		_, err := e.Enqueue(ctxT(t), []engine.EnqueueRequest{{Queue: "cbv", CallbackURL: u}})
		var ve *engine.ValidationError
		if !errors.As(err, &ve) || ve.Field != "callback_url" {
			t.Errorf("%.40q: %v", u, err)
		}
	}
}

// reserveAs reserves one job of queue as worker.
func reserveAs(t *testing.T, e *engine.Engine, queue, worker string) engine.Reserved {
	t.Helper()
	res, err := e.Reserve(ctxT(t), engine.ReserveRequest{Queues: []string{queue}, Max: 1, Wait: 5 * time.Second, Worker: worker})
	if err != nil || len(res.Jobs) != 1 {
		t.Fatalf("reserve from %s: %v %v", queue, res, err)
	}
	return res.Jobs[0]
}
