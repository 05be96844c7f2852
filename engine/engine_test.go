package engine_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/spoolq/spool/engine"
	"github.com/spoolq/spool/internal/natsd"
	"github.com/spoolq/spool/internal/spooltest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// startNATS runs a real embedded JetStream server in a temporary directory.
func startNATS(t *testing.T) *server.Server {
	t.Helper()
	ns, err := natsd.Start(context.Background(), natsd.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns
}

func openEngine(t *testing.T, ns *server.Server, cfg engine.Config) *engine.Engine {
	t.Helper()
	nc, err := natsd.Connect(ns, "test")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := engine.Open(ctx, nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(); nc.Close() })
	return e
}

func newEngine(t *testing.T) *engine.Engine {
	return openEngine(t, startNATS(t), engine.Config{})
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func enqueue(t *testing.T, e *engine.Engine, r engine.EnqueueRequest) *engine.Job {
	t.Helper()
	res, err := e.Enqueue(ctxT(t), []engine.EnqueueRequest{r})
	if err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	if res[0].Err != nil {
		t.Fatalf("enqueue: %v", res[0].Err)
	}
	return res[0].Job
}

func reserve(t *testing.T, e *engine.Engine, max int, wait time.Duration, queues ...string) []engine.Reserved {
	t.Helper()
	res, err := e.Reserve(ctxT(t), engine.ReserveRequest{Queues: queues, Max: max, Wait: wait, Worker: "t"})
	if err != nil {
		t.Fatalf("reserve: %v", err)
	}
	return res.Jobs
}

func reserveOne(t *testing.T, e *engine.Engine, wait time.Duration, queues ...string) engine.Reserved {
	t.Helper()
	got := reserve(t, e, 1, wait, queues...)
	if len(got) != 1 {
		t.Fatalf("reserve from %v: got %d jobs, want 1", queues, len(got))
	}
	return got[0]
}

// waitingReservations waits until n reservations of e wait for jobs: then a job that becomes
// ready can reach them only through a wake-up or their next poll.
func waitingReservations(t *testing.T, e *engine.Engine, n int) {
	t.Helper()
	spooltest.Eventually(t, 10*time.Second, func() error {
		if w := e.Waiting(); w != n {
			return fmt.Errorf("%d reservations waiting, want %d", w, n)
		}
		return nil
	})
}

func wantState(t *testing.T, e *engine.Engine, id uint64, want engine.State) *engine.Job {
	t.Helper()
	j, err := e.Job(ctxT(t), id)
	if err != nil {
		t.Fatalf("job %d: %v", id, err)
	}
	if j.State != want {
		t.Fatalf("job %d: state %s, want %s", id, j.State, want)
	}
	return j
}

func TestLifecycleAck(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	ctx := ctxT(t)
	j := enqueue(t, e, engine.EnqueueRequest{Queue: "email", Type: "email.send", Payload: []byte(`{"to":"a@b"}`),
		Metadata: map[string]string{"tenant": "acme"}})
	if j.ID == 0 || j.State != engine.StateReady || j.Priority != 0 {
		t.Fatalf("enqueued job: %+v", j)
	}
	got := wantState(t, e, j.ID, engine.StateReady)
	if string(got.Payload) != `{"to":"a@b"}` || got.Metadata["tenant"] != "acme" || got.Type != "email.send" {
		t.Fatalf("lookup: %+v", got)
	}
	r := reserveOne(t, e, 0, "email")
	if r.Job.ID != j.ID || r.Job.State != engine.StateReserved || r.Job.Attempts != 1 || string(r.Job.Payload) != `{"to":"a@b"}` {
		t.Fatalf("reserved: %+v", r.Job)
	}
	if time.Until(r.Job.LeaseExpiresAt) < 25*time.Second {
		t.Fatalf("lease expires at %v, want ~30s from now", r.Job.LeaseExpiresAt)
	}
	wantState(t, e, j.ID, engine.StateReserved)
	if _, err := e.Ack(ctx, j.ID, "12345", nil); !errors.Is(err, engine.ErrLeaseLost) {
		t.Fatalf("ack with a wrong token: %v, want ErrLeaseLost", err)
	}
	done, err := e.Ack(ctx, j.ID, r.Token, []byte(`{"ok":true}`))
	if err != nil {
		t.Fatal(err)
	}
	if done.State != engine.StateSucceeded || string(done.Result) != `{"ok":true}` || done.FinishedAt.IsZero() {
		t.Fatalf("acked: %+v", done)
	}
	got = wantState(t, e, j.ID, engine.StateSucceeded)
	if string(got.Result) != `{"ok":true}` || got.Payload != nil {
		t.Fatalf("after ack: %+v", got)
	}
	if _, err := e.Ack(ctx, j.ID, r.Token, nil); !errors.Is(err, engine.ErrLeaseLost) {
		t.Fatalf("second ack: %v, want ErrLeaseLost", err)
	}
	if jobs := reserve(t, e, 10, 0, "email"); len(jobs) != 0 {
		t.Fatalf("reserved %d jobs after ack, want 0", len(jobs))
	}
	spooltest.Eventually(t, 5*time.Second, func() error {
		qi, err := e.Queue(ctx, "email")
		if err != nil {
			return err
		}
		s := qi.Stats
		if s.Ready != 0 || s.Reserved != 0 || s.Enqueued != 1 || s.Succeeded != 1 || s.Reserves != 1 {
			return fmt.Errorf("stats: %+v", s)
		}
		return nil
	})
	if _, err := e.Job(ctx, 424242); !errors.Is(err, engine.ErrJobNotFound) {
		t.Fatalf("unknown id: %v", err)
	}
}

func TestPriorityOrderAcrossQueues(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	var ids []uint64
	// Enqueued in an order unlike the expected reservation order.
	for _, p := range []struct {
		q   string
		pri uint32
	}{{"a", 1024}, {"b", 5}, {"a", 0}, {"b", 1024}, {"a", 5}, {"a", 1 << 31}} {
		ids = append(ids, enqueue(t, e, engine.EnqueueRequest{Queue: p.q, Priority: p.pri}).ID)
	}
	// Priorities strictly first; equal priorities in the order they were enqueued, whatever
	// the order the queues are named in (as beanstalkd: priority, then id).
	want := []uint64{ids[2], ids[1], ids[4], ids[0], ids[3], ids[5]}
	var got []uint64
	for range want {
		got = append(got, reserveOne(t, e, 0, "a", "b").Job.ID)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("reservation order %v, want %v", got, want)
	}
}

func TestFIFOWithinBandAndBatchReserve(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	reqs := make([]engine.EnqueueRequest, 50)
	for i := range reqs {
		reqs[i] = engine.EnqueueRequest{Queue: "q", Priority: 1024, Payload: []byte(fmt.Sprint(i))}
	}
	res, err := e.Enqueue(ctxT(t), reqs)
	if err != nil {
		t.Fatal(err)
	}
	got := reserve(t, e, 50, 0, "q")
	if len(got) != 50 {
		t.Fatalf("reserved %d, want 50", len(got))
	}
	for i, r := range got {
		if r.Job.ID != res[i].Job.ID || string(r.Job.Payload) != fmt.Sprint(i) {
			t.Fatalf("position %d: job %d payload %q, want job %d", i, r.Job.ID, r.Job.Payload, res[i].Job.ID)
		}
	}
}

func TestDelayedJob(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	enqueued := time.Now()
	j := enqueue(t, e, engine.EnqueueRequest{Queue: "q", Delay: 1500 * time.Millisecond})
	if j.State != engine.StateDelayed {
		t.Fatalf("state %s, want delayed", j.State)
	}
	wantState(t, e, j.ID, engine.StateDelayed)
	if got := reserve(t, e, 1, 0, "q"); len(got) != 0 {
		t.Fatal("a delayed job was reserved before its time")
	}
	spooltest.Eventually(t, 5*time.Second, func() error {
		qi, err := e.Queue(ctxT(t), "q")
		if err != nil || qi.Stats.Delayed != 1 {
			return fmt.Errorf("delayed count %+v %v", qi, err)
		}
		return nil
	})
	start := time.Now()
	r := reserveOne(t, e, 10*time.Second, "q")
	if r.Job.ID != j.ID {
		t.Fatalf("got job %d", r.Job.ID)
	}
	if waited := time.Since(start); waited > 4*time.Second {
		t.Fatalf("delayed job came %v late", waited)
	}
	if early := time.Since(enqueued); early < 1500*time.Millisecond {
		t.Fatalf("a job delayed 1.5s was ready after %v", early)
	}
}

func TestLeaseExpiryAndStaleHolder(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	ctx := ctxT(t)
	j := enqueue(t, e, engine.EnqueueRequest{Queue: "q", Lease: time.Second})
	first := reserveOne(t, e, 0, "q")
	// Not acked: after the 1s lease the job is offered again.
	second := reserveOne(t, e, 5*time.Second, "q")
	if second.Job.ID != j.ID || second.Job.Attempts != 2 || second.Job.Timeouts != 1 {
		t.Fatalf("redelivered: %+v", second.Job)
	}
	if first.Token == second.Token {
		t.Fatal("a new reservation kept the old lease token")
	}
	if _, err := e.Ack(ctx, j.ID, first.Token, nil); !errors.Is(err, engine.ErrLeaseLost) {
		t.Fatalf("stale holder's ack: %v, want ErrLeaseLost", err)
	}
	if _, err := e.Touch(ctx, j.ID, first.Token, 0); !errors.Is(err, engine.ErrLeaseLost) {
		t.Fatalf("stale holder's touch: %v, want ErrLeaseLost", err)
	}
	if _, err := e.Ack(ctx, j.ID, second.Token, nil); err != nil {
		t.Fatalf("current holder's ack: %v", err)
	}
}

func TestTouchKeepsJobPastLease(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	ctx := ctxT(t)
	j := enqueue(t, e, engine.EnqueueRequest{Queue: "q", Lease: time.Second})
	r := reserveOne(t, e, 0, "q")
	// Heartbeat for 3.5 leases; nobody else may get the job meanwhile. The time passing is
	// what is tested, not a wait for something.
	for i := 0; i < 7; i++ {
		time.Sleep(500 * time.Millisecond)
		if _, err := e.Touch(ctx, j.ID, r.Token, 0); err != nil {
			t.Fatalf("touch %d: %v", i, err)
		}
		if got := reserve(t, e, 1, 0, "q"); len(got) != 0 {
			t.Fatalf("job handed out again while touched (after %d touches)", i+1)
		}
	}
	wantState(t, e, j.ID, engine.StateReserved)
	if _, err := e.Ack(ctx, j.ID, r.Token, nil); err != nil {
		t.Fatal(err)
	}
}

func TestFailRetryBuryKick(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	ctx := ctxT(t)
	if _, err := e.PutQueue(ctx, "q", engine.QueueSettings{BackoffBase: 100 * time.Millisecond, BackoffMax: 200 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	j := enqueue(t, e, engine.EnqueueRequest{Queue: "q", MaxAttempts: 2})
	r := reserveOne(t, e, 0, "q")
	failed, err := e.Fail(ctx, j.ID, r.Token, engine.FailRequest{Error: "boom"})
	if err != nil {
		t.Fatal(err)
	}
	if failed.State != engine.StateDelayed || failed.LastError != "boom" {
		t.Fatalf("after first failure: %+v", failed)
	}
	r = reserveOne(t, e, 5*time.Second, "q")
	if r.Job.Attempts != 2 || r.Job.LastError != "boom" {
		t.Fatalf("retry: %+v", r.Job)
	}
	buried, err := e.Fail(ctx, j.ID, r.Token, engine.FailRequest{Error: "boom again"})
	if err != nil {
		t.Fatal(err)
	}
	if buried.State != engine.StateBuried || buried.Buries != 1 {
		t.Fatalf("after last attempt: %+v", buried)
	}
	if got := reserve(t, e, 1, 300*time.Millisecond, "q"); len(got) != 0 {
		t.Fatal("a buried job was reserved")
	}
	page, err := e.Peek(ctx, engine.PeekRequest{Queue: "q", State: engine.StateBuried})
	if err != nil || len(page.Jobs) != 1 || page.Jobs[0].ID != j.ID {
		t.Fatalf("peek buried: %+v %v", page, err)
	}
	if _, err := e.Kick(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	r = reserveOne(t, e, time.Second, "q")
	if r.Job.Attempts != 1 || r.Job.Kicks != 1 {
		t.Fatalf("kicked job: %+v", r.Job)
	}
	if _, err := e.Kick(ctx, j.ID); !errors.Is(err, engine.ErrWrongState) {
		t.Fatalf("kick of a reserved job: %v, want ErrWrongState", err)
	}
	if _, err := e.Fail(ctx, j.ID, r.Token, engine.FailRequest{Error: "fatal", Bury: true}); err != nil {
		t.Fatal(err)
	}
	wantState(t, e, j.ID, engine.StateBuried)
	n, err := e.KickQueue(ctx, "q", engine.StateBuried, 0)
	if err != nil || n != 1 {
		t.Fatalf("kick queue: %d %v", n, err)
	}
	wantState(t, e, j.ID, engine.StateReady)
}

func TestExhaustedByTimeoutsIsBuried(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	j := enqueue(t, e, engine.EnqueueRequest{Queue: "q", Lease: time.Second, MaxAttempts: 1})
	reserveOne(t, e, 0, "q")
	// The lease runs out; the next reservation finds no attempt left and buries the job.
	if got := reserve(t, e, 1, 2500*time.Millisecond, "q"); len(got) != 0 {
		t.Fatalf("job out of attempts handed out again: %+v", got[0].Job)
	}
	got := wantState(t, e, j.ID, engine.StateBuried)
	if got.Timeouts != 1 {
		t.Fatalf("timeouts %d, want 1", got.Timeouts)
	}
}

func TestReleaseWithPriorityAndDelay(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	ctx := ctxT(t)
	a := enqueue(t, e, engine.EnqueueRequest{Queue: "q", Priority: 100})
	b := enqueue(t, e, engine.EnqueueRequest{Queue: "q", Priority: 100})
	r := reserveOne(t, e, 0, "q")
	if r.Job.ID != a.ID {
		t.Fatal("FIFO broken")
	}
	pri := uint32(0)
	rel, err := e.Release(ctx, a.ID, r.Token, engine.ReleaseRequest{Priority: &pri})
	if err != nil {
		t.Fatal(err)
	}
	if rel.State != engine.StateReady || rel.Priority != 0 || rel.Releases != 1 || rel.Attempts != 0 {
		t.Fatalf("released: %+v", rel)
	}
	// Now more urgent than b.
	r = reserveOne(t, e, 0, "q")
	if r.Job.ID != a.ID {
		t.Fatalf("got %d, want the released, now urgent job %d", r.Job.ID, a.ID)
	}
	if _, err := e.Release(ctx, a.ID, r.Token, engine.ReleaseRequest{Delay: time.Hour}); err != nil {
		t.Fatal(err)
	}
	wantState(t, e, a.ID, engine.StateDelayed)
	if r := reserveOne(t, e, 0, "q"); r.Job.ID != b.ID {
		t.Fatalf("got %d, want %d", r.Job.ID, b.ID)
	}
	if _, err := e.Kick(ctx, a.ID); err != nil {
		t.Fatalf("kick a delayed job: %v", err)
	}
	if r := reserveOne(t, e, time.Second, "q"); r.Job.ID != a.ID {
		t.Fatalf("got %d, want the kicked job", r.Job.ID)
	}
}

func TestDeleteInEveryState(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	ctx := ctxT(t)
	ready := enqueue(t, e, engine.EnqueueRequest{Queue: "q"})
	delayed := enqueue(t, e, engine.EnqueueRequest{Queue: "q", Delay: time.Hour})
	for _, id := range []uint64{ready.ID, delayed.ID} {
		if _, err := e.Delete(ctx, id); err != nil {
			t.Fatalf("delete %d: %v", id, err)
		}
		wantState(t, e, id, engine.StateCancelled)
	}
	if got := reserve(t, e, 5, 0, "q"); len(got) != 0 {
		t.Fatal("a cancelled job was reserved")
	}
	held := enqueue(t, e, engine.EnqueueRequest{Queue: "q"})
	r := reserveOne(t, e, 0, "q")
	if _, err := e.Delete(ctx, held.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Ack(ctx, held.ID, r.Token, nil); !errors.Is(err, engine.ErrLeaseLost) {
		t.Fatalf("ack of a cancelled job: %v, want ErrLeaseLost", err)
	}
	if _, err := e.Delete(ctx, held.ID); !errors.Is(err, engine.ErrWrongState) {
		t.Fatalf("second delete: %v, want ErrWrongState", err)
	}
	spooltest.Eventually(t, 5*time.Second, func() error {
		qi, err := e.Queue(ctx, "q")
		if err != nil {
			return err
		}
		if s := qi.Stats; s.Ready+s.Delayed+s.Reserved != 0 || s.Cancelled != 3 {
			return fmt.Errorf("stats after deletes: %+v", s)
		}
		return nil
	})
}

func TestUniqueKey(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	ctx := ctxT(t)
	first := enqueue(t, e, engine.EnqueueRequest{Queue: "q", UniqueKey: "welcome-42"})
	res, err := e.Enqueue(ctx, []engine.EnqueueRequest{{Queue: "q", UniqueKey: "welcome-42"}})
	if err != nil || res[0].Err != nil {
		t.Fatal(err, res[0].Err)
	}
	if !res[0].Duplicate || res[0].Job.ID != first.ID {
		t.Fatalf("second enqueue: duplicate=%v id=%d, want the first job %d", res[0].Duplicate, res[0].Job.ID, first.ID)
	}
	other := enqueue(t, e, engine.EnqueueRequest{Queue: "q", UniqueKey: "welcome-43"})
	if other.ID == first.ID {
		t.Fatal("another key matched")
	}
	r := reserveOne(t, e, 0, "q")
	if _, err := e.Ack(ctx, r.Job.ID, r.Token, nil); err != nil {
		t.Fatal(err)
	}
	// Finished: the key is free again.
	again := enqueue(t, e, engine.EnqueueRequest{Queue: "q", UniqueKey: "welcome-42"})
	if again.ID == first.ID {
		t.Fatal("a finished job still holds its unique key")
	}
}

func TestPauseResume(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	ctx := ctxT(t)
	j := enqueue(t, e, engine.EnqueueRequest{Queue: "q"})
	qi, err := e.Pause(ctx, "q", time.Time{})
	if err != nil || !qi.Paused {
		t.Fatalf("pause: %+v %v", qi, err)
	}
	enqueue(t, e, engine.EnqueueRequest{Queue: "q"}) // still accepted
	res, err := e.Reserve(ctx, engine.ReserveRequest{Queues: []string{"q"}, Wait: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Jobs) != 0 || len(res.Paused) != 1 || res.Paused[0] != "q" {
		t.Fatalf("reserve on a paused queue: %+v", res)
	}
	// A waiting reservation gets the job as soon as the queue resumes.
	done := make(chan engine.Reserved, 1)
	go func() {
		res, err := e.Reserve(ctx, engine.ReserveRequest{Queues: []string{"q"}, Wait: 10 * time.Second})
		if err == nil && len(res.Jobs) == 1 {
			done <- res.Jobs[0]
		}
		close(done)
	}()
	waitingReservations(t, e, 1)
	if _, err := e.Resume(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	select {
	case r, ok := <-done:
		if !ok || r.Job.ID != j.ID {
			t.Fatalf("after resume: %+v %v", r.Job, ok)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("reservation not served after resume")
	}
	// A timed pause ends by itself.
	if _, err := e.Pause(ctx, "q", time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := reserve(t, e, 1, 0, "q"); len(got) != 0 {
		t.Fatal("reserved during a timed pause")
	}
	reserveOne(t, e, 5*time.Second, "q")
}

// A waiting reservation gets a new job at once: the enqueue wakes it. Its poll is an hour
// apart, so without the wake-up it would get the job only at the end of its wait.
func TestLongPollWakesOnEnqueue(t *testing.T) {
	t.Parallel()
	e := openEngine(t, startNATS(t), engine.Config{PollInterval: time.Hour})
	enqueue(t, e, engine.EnqueueRequest{Queue: "q"}) // create the queue
	reserveOne(t, e, 0, "q")
	const wait = 30 * time.Second
	ctx := ctxT(t)
	got := make(chan []engine.Reserved, 1)
	go func() {
		res, err := e.Reserve(ctx, engine.ReserveRequest{Queues: []string{"q"}, Wait: wait})
		if err != nil {
			t.Error(err)
			res = &engine.ReserveResult{}
		}
		got <- res.Jobs
	}()
	waitingReservations(t, e, 1)
	sent := time.Now()
	j := enqueue(t, e, engine.EnqueueRequest{Queue: "q"})
	jobs := <-got
	if len(jobs) != 1 || jobs[0].Job.ID != j.ID {
		t.Fatalf("the waiting reservation got %v after %v, want job %d", jobs, time.Since(sent), j.ID)
	}
	if d := time.Since(sent); d > wait/2 {
		t.Fatalf("the job reached the waiting reservation after %v: not woken by the enqueue", d)
	}
	t.Logf("enqueue to waiting reservation: %v", time.Since(sent))
}

func TestPeekAndPurge(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	ctx := ctxT(t)
	var ids []uint64
	for i := 0; i < 5; i++ {
		ids = append(ids, enqueue(t, e, engine.EnqueueRequest{Queue: "q", Payload: []byte{byte('a' + i)}}).ID)
	}
	enqueue(t, e, engine.EnqueueRequest{Queue: "q", Delay: time.Hour})
	reserveOne(t, e, 0, "q") // ids[0] is reserved: not listed as ready
	page, err := e.Peek(ctx, engine.PeekRequest{Queue: "q", State: engine.StateReady, Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	var seen []uint64
	for page != nil {
		for _, j := range page.Jobs {
			seen = append(seen, j.ID)
		}
		if page.Next == 0 {
			break
		}
		page, err = e.Peek(ctx, engine.PeekRequest{Queue: "q", State: engine.StateReady, Limit: 2, After: page.Next})
		if err != nil {
			t.Fatal(err)
		}
	}
	if fmt.Sprint(seen) != fmt.Sprint(ids[1:]) {
		t.Fatalf("peek ready pages: %v, want %v", seen, ids[1:])
	}
	n, err := e.Purge(ctx, "q", "")
	if err != nil || n != 5 {
		t.Fatalf("purge: %d %v, want 5 (the reserved job stays)", n, err)
	}
	wantState(t, e, ids[1], engine.StateCancelled)
	wantState(t, e, ids[0], engine.StateReserved)
}

// TestPeekReserved lists the reserved jobs of a queue with their holders, across pages,
// by consumer delivery and by id, and leaves out the others.
func TestPeekReserved(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	ctx := ctxT(t)
	for i := 0; i < 4; i++ {
		enqueue(t, e, engine.EnqueueRequest{Queue: "q", Priority: uint32(i % 2)})
	}
	delayed := enqueue(t, e, engine.EnqueueRequest{Queue: "q", Delay: time.Hour})
	r := reserveOne(t, e, 0, "q") // the most urgent, oldest, by worker "t"
	byID, err := e.ReserveByID(ctx, delayed.ID, "by-id")
	if err != nil {
		t.Fatal(err)
	}
	got := map[uint64]string{}
	var after uint64
	for {
		page, err := e.Peek(ctx, engine.PeekRequest{Queue: "q", State: engine.StateReserved, Limit: 2, After: after})
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range page.Jobs {
			if j.State != engine.StateReserved || j.LeaseExpiresAt.IsZero() {
				t.Fatalf("job %d: state %s, lease expires %v", j.ID, j.State, j.LeaseExpiresAt)
			}
			if _, dup := got[j.ID]; dup {
				t.Fatalf("job %d listed twice", j.ID)
			}
			got[j.ID] = j.Worker
		}
		if page.Next == 0 {
			break
		}
		after = page.Next
	}
	want := map[uint64]string{r.Job.ID: "t", byID.Job.ID: "by-id"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("reserved jobs and workers: %v, want %v", got, want)
	}
	if _, err := e.Peek(ctx, engine.PeekRequest{Queue: "q", State: engine.StateSucceeded}); err == nil {
		t.Fatal("peek of succeeded jobs: no error")
	}
}

func TestTwoEnginesShareJobs(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	a := openEngine(t, ns, engine.Config{})
	b := openEngine(t, ns, engine.Config{})
	ctx := ctxT(t)
	j := enqueue(t, a, engine.EnqueueRequest{Queue: "shared", Payload: []byte("x")})
	r := reserveOne(t, b, 5*time.Second, "shared")
	if r.Job.ID != j.ID {
		t.Fatal("engine b did not get engine a's job")
	}
	if _, err := a.Ack(ctx, j.ID, r.Token, nil); err != nil {
		t.Fatalf("ack on a of b's reservation: %v", err)
	}
	wantState(t, b, j.ID, engine.StateSucceeded)
	// A pause made on one engine stops dispatch on the other.
	if _, err := a.Pause(ctx, "shared", time.Time{}); err != nil {
		t.Fatal(err)
	}
	enqueue(t, a, engine.EnqueueRequest{Queue: "shared"})
	spooltest.Eventually(t, 5*time.Second, func() error {
		res, err := b.Reserve(ctx, engine.ReserveRequest{Queues: []string{"shared"}})
		if err != nil {
			return err
		}
		if len(res.Jobs) != 0 || len(res.Paused) != 1 {
			return fmt.Errorf("engine b on a queue paused by a: %+v", res)
		}
		return nil
	})
}

// A lease lives in the memory of the node that granted it; its record is written behind.
// Other nodes see it within the write-behind bound, a call on it through another node is
// served (the holder stores it on request), and a change made elsewhere refuses the holder.
func TestLeaseHeldInMemoryAcrossNodes(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	a := openEngine(t, ns, engine.Config{})
	b := openEngine(t, ns, engine.Config{LeaseWriteDelay: time.Hour}) // never written behind here
	c := openEngine(t, ns, engine.Config{LeaseWriteDelay: 100 * time.Millisecond})
	ctx := ctxT(t)

	// Seen by other nodes once written behind (the holder's own status read is exact at once).
	j := enqueue(t, c, engine.EnqueueRequest{Queue: "mem"})
	r := reserveOne(t, c, 5*time.Second, "mem")
	wantState(t, c, j.ID, engine.StateReserved)
	spooltest.Eventually(t, 5*time.Second, func() error {
		got, err := a.Job(ctx, j.ID)
		if err != nil || got.State != engine.StateReserved {
			return fmt.Errorf("job reserved on c, read on a: %+v %v", got, err)
		}
		return nil
	})
	if _, err := a.Ack(ctx, j.ID, r.Token, nil); err != nil {
		t.Fatal(err)
	}

	// A touch and an ack through another node, on a lease never written behind.
	j = enqueue(t, a, engine.EnqueueRequest{Queue: "mem"})
	r = reserveOne(t, b, 5*time.Second, "mem")
	if _, err := a.Touch(ctx, j.ID, r.Token, time.Minute); err != nil {
		t.Fatalf("touch on a of b's lease: %v", err)
	}
	if _, err := a.Ack(ctx, j.ID, r.Token, nil); err != nil {
		t.Fatalf("ack on a of b's lease: %v", err)
	}
	wantState(t, b, j.ID, engine.StateSucceeded)
	if _, err := b.Ack(ctx, j.ID, r.Token, nil); !errors.Is(err, engine.ErrLeaseLost) {
		t.Fatalf("second ack on b: %v, want ErrLeaseLost", err)
	}

	// Deleted on a while b holds it in memory: b's holder is refused.
	j = enqueue(t, a, engine.EnqueueRequest{Queue: "mem"})
	r = reserveOne(t, b, 5*time.Second, "mem")
	if _, err := a.Delete(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	wantState(t, b, j.ID, engine.StateCancelled)
	if _, err := b.Fail(ctx, j.ID, r.Token, engine.FailRequest{Error: "x"}); !errors.Is(err, engine.ErrLeaseLost) {
		t.Fatalf("fail on b of a job deleted on a: %v, want ErrLeaseLost", err)
	}
	if _, err := b.Ack(ctx, j.ID, r.Token, nil); !errors.Is(err, engine.ErrLeaseLost) {
		t.Fatalf("ack on b of a job deleted on a: %v, want ErrLeaseLost", err)
	}
}

// Jobs are reserved in beanstalkd's order: lowest priority first, then the order they were
// enqueued in, within a queue and across the queues a reservation names.
func TestExactPriorityOrder(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	// Priorities that shared a power-of-two band before (64..127), and far ones.
	pris := []uint32{100, 64, 65, 1<<31 + 5, 0, 100, 1023, 1 << 31, 64, 99}
	var want []struct {
		pri uint32
		id  uint64
	}
	for _, p := range pris {
		j := enqueue(t, e, engine.EnqueueRequest{Queue: "exact", Priority: p})
		want = append(want, struct {
			pri uint32
			id  uint64
		}{p, j.ID})
	}
	slices.SortStableFunc(want, func(a, b struct {
		pri uint32
		id  uint64
	}) int {
		return cmp.Compare(a.pri, b.pri)
	})
	for i, w := range want {
		got := reserveOne(t, e, time.Second, "exact")
		if got.Job.ID != w.id || got.Job.Priority != w.pri {
			t.Fatalf("reservation %d: job %d priority %d, want job %d priority %d", i, got.Job.ID, got.Job.Priority, w.id, w.pri)
		}
	}

	// Across queues: the lower priority first, whatever the order the queues are named in.
	low := enqueue(t, e, engine.EnqueueRequest{Queue: "second", Priority: 3})
	high := enqueue(t, e, engine.EnqueueRequest{Queue: "first", Priority: 5})
	for _, w := range []*engine.Job{low, high} {
		if got := reserveOne(t, e, time.Second, "first", "second"); got.Job.ID != w.ID {
			t.Fatalf("across queues: job %d (priority %d), want %d (priority %d)", got.Job.ID, got.Job.Priority, w.ID, w.Priority)
		}
	}

	// One reservation of many: in order too.
	for _, p := range []uint32{9, 7, 8} {
		enqueue(t, e, engine.EnqueueRequest{Queue: "batch", Priority: p})
	}
	var got []uint32
	for _, r := range reserve(t, e, 3, time.Second, "batch") {
		got = append(got, r.Job.Priority)
	}
	if !slices.Equal(got, []uint32{7, 8, 9}) {
		t.Fatalf("one reservation of three: priorities %v, want [7 8 9]", got)
	}
}

// Past 64 distinct priorities in a queue, a new priority shares the level of the nearest
// lower one in use (FIFO with it): documented, and still ahead of every higher level.
func TestPriorityLevelsBeyondTheLimit(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	for p := range uint32(64) {
		enqueue(t, e, engine.EnqueueRequest{Queue: "many", Priority: 10 * (p + 1)}) // 10 .. 640
	}
	extra := enqueue(t, e, engine.EnqueueRequest{Queue: "many", Priority: 15}) // shares level 10, after its job
	for i, want := range []uint32{10, 15, 20} {
		got := reserveOne(t, e, time.Second, "many")
		if got.Job.Priority != want {
			t.Fatalf("reservation %d: priority %d, want %d", i, got.Job.Priority, want)
		}
		if want == 15 && got.Job.ID != extra.ID {
			t.Fatalf("got job %d, want %d", got.Job.ID, extra.ID)
		}
	}
}

// A job enqueued without a lease of its own takes the queue's lease as it is at each
// reservation (as SQS's visibility timeout); a job with its own keeps it.
func TestQueueLeaseAppliesAtReservation(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	ctx := ctxT(t)
	plain := enqueue(t, e, engine.EnqueueRequest{Queue: "lease", Priority: 1})
	own := enqueue(t, e, engine.EnqueueRequest{Queue: "lease", Priority: 2, Lease: 5 * time.Minute})
	if _, err := e.PutQueue(ctx, "lease", engine.QueueSettings{Lease: 2 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct {
		id    uint64
		lease time.Duration
	}{{plain.ID, 2 * time.Hour}, {own.ID, 5 * time.Minute}} {
		r := reserveOne(t, e, time.Second, "lease")
		if r.Job.ID != want.id || r.Job.Lease != want.lease {
			t.Fatalf("job %d reserved with lease %s, want job %d with %s", r.Job.ID, r.Job.Lease, want.id, want.lease)
		}
		if left := time.Until(r.Job.LeaseExpiresAt); left < want.lease-time.Minute {
			t.Fatalf("job %d: lease ends in %s, want about %s", r.Job.ID, left, want.lease)
		}
	}
}

// A lease that runs out gives its job back at once, counted as ready (not reserved) with
// no reservation needed to notice, and the late holder is refused.
func TestExpiredLeaseIsReadyAgain(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	ctx := ctxT(t)
	j := enqueue(t, e, engine.EnqueueRequest{Queue: "expire", Lease: time.Second})
	r := reserveOne(t, e, time.Second, "expire")
	spooltest.Eventually(t, 10*time.Second, func() error {
		info, err := e.Queue(ctx, "expire")
		if err != nil {
			return err
		}
		if st := info.Stats; st.Ready != 1 || st.Reserved != 0 || st.Timeouts != 1 {
			return fmt.Errorf("after the lease: ready %d reserved %d timeouts %d", st.Ready, st.Reserved, st.Timeouts)
		}
		return nil
	})
	got := wantState(t, e, j.ID, engine.StateReady)
	if got.Timeouts != 1 {
		t.Fatalf("timeouts %d, want 1", got.Timeouts)
	}
	if _, err := e.Ack(ctx, j.ID, r.Token, nil); !errors.Is(err, engine.ErrLeaseLost) {
		t.Fatalf("late ack: %v, want ErrLeaseLost", err)
	}
	again := reserveOne(t, e, time.Second, "expire")
	if again.Job.ID != j.ID || again.Job.Attempts != 2 || again.Job.Timeouts != 1 {
		t.Fatalf("reserved again: %+v", again.Job)
	}
	if _, err := e.Ack(ctx, j.ID, again.Token, nil); err != nil {
		t.Fatal(err)
	}
	// Nothing else comes back: the expired delivery's message was acked with the move.
	if late := reserve(t, e, 1, 2*time.Second, "expire"); len(late) != 0 {
		t.Fatalf("after the ack: %+v", late[0].Job)
	}
}

// Jobs reserved for a caller that left are given back: ready at once, their attempt
// returned.
func TestGiveBack(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	ctx := ctxT(t)
	for range 20 {
		enqueue(t, e, engine.EnqueueRequest{Queue: "back"})
	}
	got := reserve(t, e, 20, time.Second, "back")
	if len(got) != 20 {
		t.Fatalf("reserved %d, want 20", len(got))
	}
	e.GiveBack(got)
	for _, r := range got {
		if j := wantState(t, e, r.Job.ID, engine.StateReady); j.Attempts != 0 {
			t.Fatalf("job %d given back with %d attempts, want 0", j.ID, j.Attempts)
		}
		if _, err := e.Ack(ctx, r.Job.ID, r.Token, nil); !errors.Is(err, engine.ErrLeaseLost) {
			t.Fatalf("ack of a job given back: %v, want ErrLeaseLost", err)
		}
	}
	if again := reserve(t, e, 20, time.Second, "back"); len(again) != 20 {
		t.Fatalf("reserved %d again, want 20", len(again))
	}
}

func TestValidation(t *testing.T) {
	t.Parallel()
	e := openEngine(t, startNATS(t), engine.Config{MaxPayload: 10})
	ctx := ctxT(t)
	bad := []engine.EnqueueRequest{
		{Queue: ""},
		{Queue: "-x"},
		{Queue: "a b"},
		{Queue: "q", Payload: make([]byte, 11)},
		{Queue: "q", Lease: time.Millisecond},
		{Queue: "q", MaxAttempts: 5000},
		{Queue: "q", Delay: -time.Second},
		{Queue: "q", Delay: time.Second, RunAt: time.Now().Add(time.Hour)},
		{Queue: "q", Type: "a\nb"},
		{Queue: "q", Metadata: map[string]string{"": "x"}},
	}
	for _, r := range bad {
		if _, err := e.Enqueue(ctx, []engine.EnqueueRequest{r}); err == nil {
			t.Errorf("enqueue %+v: no error", r)
		}
	}
	_, err := e.Enqueue(ctx, []engine.EnqueueRequest{{Queue: "q"}, {Queue: "q", Priority: 1, Lease: time.Hour * 100}})
	var ve *engine.ValidationError
	if !errors.As(err, &ve) || ve.Field != "jobs[1].lease" {
		t.Fatalf("batch validation: %v", err)
	}
	if _, err := e.Queue(ctx, "q"); !errors.Is(err, engine.ErrQueueNotFound) {
		t.Fatalf("a failed batch created the queue or stored jobs: %v", err)
	}
	if _, err := e.Ack(ctx, 1, "zz", nil); err == nil {
		t.Fatal("malformed token accepted")
	}
}

func TestAckBatchMixedOutcomes(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	ctx := ctxT(t)
	for i := 0; i < 3; i++ {
		enqueue(t, e, engine.EnqueueRequest{Queue: "q"})
	}
	got := reserve(t, e, 3, 0, "q")
	if len(got) != 3 {
		t.Fatalf("reserved %d", len(got))
	}
	res, err := e.AckBatch(ctx, []engine.AckRequest{
		{ID: got[0].Job.ID, Token: got[0].Token, Result: []byte(`1`)},
		{ID: got[1].Job.ID, Token: "abc"}, // not its lease
		{ID: 999, Token: got[2].Token},    // no such job
		{ID: got[2].Job.ID, Token: got[2].Token, Result: []byte(`{bad`)},
		{ID: got[2].Job.ID, Token: got[2].Token},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil || res[0].Job.State != engine.StateSucceeded || string(res[0].Job.Result) != "1" {
		t.Errorf("ack 0: %+v", res[0])
	}
	if !errors.Is(res[1].Err, engine.ErrLeaseLost) {
		t.Errorf("ack 1: %v, want ErrLeaseLost", res[1].Err)
	}
	if !errors.Is(res[2].Err, engine.ErrJobNotFound) {
		t.Errorf("ack 2: %v, want ErrJobNotFound", res[2].Err)
	}
	var ve *engine.ValidationError
	if !errors.As(res[3].Err, &ve) {
		t.Errorf("ack 3: %v, want a validation error", res[3].Err)
	}
	if res[4].Err != nil {
		t.Errorf("ack 4: %v", res[4].Err)
	}
	wantState(t, e, got[1].Job.ID, engine.StateReserved)
	wantState(t, e, got[2].Job.ID, engine.StateSucceeded)
}

func TestEnqueueWithChosenIDIsIdempotent(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	ctx := ctxT(t)
	const id = 4242424242
	first := enqueue(t, e, engine.EnqueueRequest{Queue: "q", ID: id, Payload: []byte(`"a"`)})
	if first.ID != id {
		t.Fatalf("id %d, want %d", first.ID, id)
	}
	res, err := e.Enqueue(ctx, []engine.EnqueueRequest{{Queue: "q", ID: id, Payload: []byte(`"b"`)}})
	if err != nil || res[0].Err != nil {
		t.Fatal(err, res[0].Err)
	}
	if !res[0].Duplicate || res[0].Job.ID != id || string(res[0].Job.Payload) != `"a"` {
		t.Fatalf("second enqueue with the same id: %+v", res[0])
	}
	if got := reserve(t, e, 10, 0, "q"); len(got) != 1 {
		t.Fatalf("%d jobs stored, want 1", len(got))
	}
}

func TestPutQueueRefusesContradictorySettings(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	ctx := ctxT(t)
	if _, err := e.PutQueue(ctx, "q", engine.QueueSettings{BackoffBase: time.Second, BackoffMax: time.Minute}); err != nil {
		t.Fatal(err)
	}
	_, err := e.PutQueue(ctx, "q", engine.QueueSettings{BackoffBase: time.Hour})
	var ve *engine.ValidationError
	if !errors.As(err, &ve) || ve.Field != "backoff_base" {
		t.Fatalf("backoff_base above the queue's backoff_max: %v, want the field sent named", err)
	}
	_, err = e.PutQueue(ctx, "q", engine.QueueSettings{BackoffMax: 500 * time.Millisecond})
	if !errors.As(err, &ve) || ve.Field != "backoff_max" {
		t.Fatalf("backoff_max below the queue's backoff_base: %v", err)
	}
	if _, err := e.PutQueue(ctx, "q", engine.QueueSettings{BackoffBase: 100 * time.Microsecond}); err == nil {
		t.Fatal("a sub-millisecond backoff was accepted")
	}
	qi, err := e.Queue(ctx, "q")
	if err != nil || qi.Settings.BackoffBase != time.Second || qi.Settings.BackoffMax != time.Minute {
		t.Fatalf("settings after refused updates: %+v %v", qi.Settings, err)
	}
}

// A new queue made by PutQueue has every setting given in its first entry, and a setting
// that contradicts a default makes no queue.
func TestPutQueueMakesQueueWithItsSettings(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	ctx := ctxT(t)
	s := engine.QueueSettings{Lease: 90 * time.Second, MaxAttempts: 4, BackoffBase: 2 * time.Second,
		BackoffMax: time.Minute, Events: new(false), Retention: new(time.Duration(0))}
	qi, err := e.PutQueue(ctx, "new", s)
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.Queue(ctx, "new")
	if err != nil {
		t.Fatal(err)
	}
	for _, got := range []*engine.QueueInfo{qi, again} {
		g := got.Settings
		if g.Lease != s.Lease || g.MaxAttempts != 4 || g.BackoffBase != s.BackoffBase || g.BackoffMax != s.BackoffMax ||
			g.Events == nil || *g.Events || g.Retention == nil || *g.Retention != 0 || g.Replicas != 1 {
			t.Fatalf("settings of the new queue: %+v", g)
		}
	}
	if j := enqueue(t, e, engine.EnqueueRequest{Queue: "new"}); j.MaxAttempts != 4 || j.Lease != s.Lease {
		t.Fatalf("job of the new queue: %+v", j)
	}
	// Default backoff_max is an hour.
	_, err = e.PutQueue(ctx, "contradicted", engine.QueueSettings{BackoffBase: 2 * time.Hour})
	var ve *engine.ValidationError
	if !errors.As(err, &ve) || ve.Field != "backoff_base" {
		t.Fatalf("backoff_base above the default backoff_max: %v", err)
	}
	if _, err := e.Queue(ctx, "contradicted"); !errors.Is(err, engine.ErrQueueNotFound) {
		t.Fatalf("a refused new queue exists: %v", err)
	}
	// An existing queue keeps what an update leaves out.
	if qi, err = e.PutQueue(ctx, "new", engine.QueueSettings{MaxAttempts: 9}); err != nil {
		t.Fatal(err)
	}
	if g := qi.Settings; g.MaxAttempts != 9 || g.Lease != s.Lease || *g.Events || *g.Retention != 0 {
		t.Fatalf("settings after an update: %+v", g)
	}
}

func TestTimeoutIsKept(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	j := enqueue(t, e, engine.EnqueueRequest{Queue: "q", Timeout: 90 * time.Second})
	if j.Timeout != 90*time.Second {
		t.Fatalf("enqueued timeout %v", j.Timeout)
	}
	if r := reserveOne(t, e, 0, "q"); r.Job.Timeout != 90*time.Second {
		t.Fatalf("reserved timeout %v", r.Job.Timeout)
	}
	if _, err := e.Enqueue(ctxT(t), []engine.EnqueueRequest{{Queue: "q", Timeout: -time.Second}}); err == nil {
		t.Fatal("negative timeout accepted")
	}
}

// A reservation whose caller has gone strands nothing: the job is offered again at once, not
// at the end of a lease.
func TestCancelledReserveStrandsNothing(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	j := enqueue(t, e, engine.EnqueueRequest{Queue: "q", Lease: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if res, err := e.Reserve(ctx, engine.ReserveRequest{Queues: []string{"q"}}); err == nil && len(res.Jobs) > 0 {
		t.Fatalf("a cancelled reservation handed out %d jobs", len(res.Jobs))
	}
	if r := reserveOne(t, e, 2*time.Second, "q"); r.Job.ID != j.ID {
		t.Fatalf("got job %d", r.Job.ID)
	}
}

func TestEndPollFromAnotherEngine(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	a := openEngine(t, ns, engine.Config{})
	b := openEngine(t, ns, engine.Config{})
	ctx := ctxT(t)
	enqueue(t, a, engine.EnqueueRequest{Queue: "q"})
	reserveOne(t, a, 0, "q") // the queue is empty now
	type result struct {
		res *engine.ReserveResult
		err error
		at  time.Time
	}
	done := make(chan result, 1)
	go func() {
		res, err := a.Reserve(ctx, engine.ReserveRequest{Queues: []string{"q"}, Wait: 30 * time.Second, PollID: "worker-1"})
		done <- result{res, err, time.Now()}
	}()
	waitingReservations(t, a, 1)
	ended := time.Now()
	if err := b.EndPoll(ctx, "worker-1"); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.err != nil || len(r.res.Jobs) != 0 {
			t.Fatalf("ended poll: %+v %v", r.res, r.err)
		}
		t.Logf("poll ended %v after EndPoll", r.at.Sub(ended))
	case <-time.After(10 * time.Second):
		t.Fatal("the poll did not end")
	}
	// Ended before it reached its node: the poll returns at once.
	start := time.Now()
	res, err := b.Reserve(ctx, engine.ReserveRequest{Queues: []string{"q"}, Wait: 30 * time.Second, PollID: "worker-1"})
	if err != nil || len(res.Jobs) != 0 || time.Since(start) > 5*time.Second {
		t.Fatalf("a poll whose id was ended: %+v %v after %v", res, err, time.Since(start))
	}
	if err := a.EndPoll(ctx, "bad id"); err == nil {
		t.Fatal("a malformed poll id was accepted")
	}
	// A context without a deadline, as an HTTP request's: the end is still sent.
	if err := a.EndPoll(context.Background(), "worker-2"); err != nil {
		t.Fatalf("EndPoll without a deadline: %v", err)
	}
}

// Ready jobs share their band's subject: the engine finds one by id through its record and
// a scan by time, with a full scan when the writer's clock is ahead of JetStream's.
func TestReadyJobFoundByIDAmongMany(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	e := openEngine(t, ns, engine.Config{})
	ahead := openEngine(t, ns, engine.Config{Now: func() time.Time { return time.Now().Add(10 * time.Second) }})
	ctx := ctxT(t)
	var ids []uint64
	for b := range 6 {
		reqs := make([]engine.EnqueueRequest, 100)
		for i := range reqs {
			reqs[i] = engine.EnqueueRequest{Queue: "q", Payload: fmt.Appendf(nil, "job %d", b*100+i)}
		}
		res, err := e.Enqueue(ctx, reqs)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			ids = append(ids, r.Job.ID)
		}
	}
	skewed := enqueue(t, ahead, engine.EnqueueRequest{Queue: "q", Payload: []byte("skewed")})
	fired := enqueue(t, e, engine.EnqueueRequest{Queue: "q", Payload: []byte("fired"), Delay: 50 * time.Millisecond})
	spooltest.Eventually(t, 10*time.Second, func() error {
		j, err := e.Job(ctx, fired.ID)
		if err == nil && j.State != engine.StateReady {
			err = fmt.Errorf("delayed job %d still %s", fired.ID, j.State)
		}
		return err
	})

	for _, c := range []struct {
		e       *engine.Engine
		id      uint64
		payload string
	}{
		{e, ids[0], "job 0"}, {e, ids[299], "job 299"}, {e, ids[599], "job 599"},
		{ahead, ids[450], "job 450"}, {e, skewed.ID, "skewed"}, {ahead, skewed.ID, "skewed"},
		{e, fired.ID, "fired"},
	} {
		j := wantState(t, c.e, c.id, engine.StateReady)
		if string(j.Payload) != c.payload {
			t.Fatalf("job %d: payload %q, want %q", c.id, j.Payload, c.payload)
		}
	}
	deleted := map[uint64]bool{ids[299]: true, skewed.ID: true, fired.ID: true}
	for id := range deleted {
		if _, err := e.Delete(ctx, id); err != nil {
			t.Fatalf("delete %d: %v", id, err)
		}
	}
	spooltest.Eventually(t, 5*time.Second, func() error {
		qi, err := e.Queue(ctx, "q")
		if err != nil {
			return err
		}
		if qi.Stats.Ready != 599 {
			return fmt.Errorf("ready after deletes: %d, want 599", qi.Stats.Ready)
		}
		return nil
	})
	got := 0
	for got < 599 {
		rs := reserve(t, e, 100, 0, "q")
		if len(rs) == 0 {
			t.Fatalf("reserved %d jobs, want 599", got)
		}
		for _, r := range rs {
			if deleted[r.Job.ID] {
				t.Fatalf("deleted job %d was reserved", r.Job.ID)
			}
		}
		got += len(rs)
	}
}

// A reservation waiting on a queue that does not exist yet wakes when the queue is created
// by an enqueue, not at its next poll.
func TestReserveWakesWhenQueueIsCreated(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	e := openEngine(t, ns, engine.Config{PollInterval: time.Hour})
	other := openEngine(t, ns, engine.Config{PollInterval: time.Hour})
	for _, producer := range []*engine.Engine{e, other} {
		queue := fmt.Sprintf("new-%p", producer)
		got := make(chan []engine.Reserved, 1)
		const wait = 20 * time.Second
		go func() {
			res, err := e.Reserve(ctxT(t), engine.ReserveRequest{Queues: []string{queue}, Wait: wait})
			if err != nil {
				t.Error(err)
				res = &engine.ReserveResult{}
			}
			got <- res.Jobs
		}()
		waitingReservations(t, e, 1) // it found no queue
		job := enqueue(t, producer, engine.EnqueueRequest{Queue: queue})
		enqueued := time.Now()
		if jobs := <-got; len(jobs) != 1 || jobs[0].Job.ID != job.ID {
			t.Fatalf("reservation waiting for a new queue got %v, want job %d", jobs, job.ID)
		}
		// Not woken, it would have looked again only at the end of its wait.
		if d := time.Since(enqueued); d > wait/2 {
			t.Fatalf("the job reached the waiting reservation after %v: not woken by the new queue", d)
		}
	}
}

// A node's counters include its own increments before they are flushed to the cluster-wide
// counters (once a second); other nodes see them after the flush.
func TestCountersReadOwnWrites(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	e := openEngine(t, ns, engine.Config{})
	other := openEngine(t, ns, engine.Config{})
	ctx := ctxT(t)
	for range 3 {
		enqueue(t, e, engine.EnqueueRequest{Queue: "q"})
	}
	qi, err := e.Queue(ctx, "q")
	if err != nil {
		t.Fatal(err)
	}
	if qi.Stats.Enqueued != 3 {
		t.Fatalf("enqueued on the writing node: %d, want 3 at once", qi.Stats.Enqueued)
	}
	spooltest.Eventually(t, 5*time.Second, func() error {
		qi, err := other.Queue(ctx, "q")
		if err != nil {
			return err
		}
		if qi.Stats.Enqueued != 3 {
			return fmt.Errorf("enqueued on another node: %d, want 3", qi.Stats.Enqueued)
		}
		return nil
	})
	// After the flush the writing node counts each job once.
	if qi, err := e.Queue(ctx, "q"); err != nil || qi.Stats.Enqueued != 3 {
		t.Fatalf("enqueued after the flush: %+v, %v; want 3", qi, err)
	}
}

// Rates count from a new queue's creation: a burst before the first sample (every 5s) showed
// 0/s for the whole minute.
func TestRatesCountABurstOfANewQueue(t *testing.T) {
	t.Parallel()
	var offset atomic.Int64 // the clock, ahead of the real one
	now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	e := openEngine(t, startNATS(t), engine.Config{Now: now})
	ctx := ctxT(t)
	const n = 200
	reqs := make([]engine.EnqueueRequest, n)
	for i := range reqs {
		reqs[i] = engine.EnqueueRequest{Queue: "burst"}
	}
	if _, err := e.Enqueue(ctx, reqs); err != nil {
		t.Fatal(err)
	}
	var acks []engine.AckRequest
	for len(acks) < n {
		rs := reserve(t, e, n, 0, "burst")
		if len(rs) == 0 {
			t.Fatalf("reserved %d jobs, want %d", len(acks), n)
		}
		for _, r := range rs {
			acks = append(acks, engine.AckRequest{ID: r.Job.ID, Token: r.Token})
		}
	}
	if _, err := e.AckBatch(ctx, acks); err != nil {
		t.Fatal(err)
	}
	offset.Store(int64(40 * time.Second))
	qi, err := e.Queue(ctx, "burst")
	if err != nil {
		t.Fatal(err)
	}
	// n jobs over the 40s (and the test's own seconds, 20 at most) since the queue was created.
	lo, hi := float64(n)/60, float64(n)/40
	if r := qi.Stats.EnqueueRate; r < lo || r > hi {
		t.Errorf("enqueue rate %.2f/s, want %d jobs over 40s: %.2f/s", r, n, float64(n)/40)
	}
	if r := qi.Stats.CompleteRate; r < lo || r > hi {
		t.Errorf("completion rate %.2f/s, want %d jobs over 40s: %.2f/s", r, n, float64(n)/40)
	}
}

func TestEnqueueBuried(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	ctx := ctxT(t)
	j := enqueue(t, e, engine.EnqueueRequest{Queue: "q", Payload: []byte("dead"), Priority: 7, Buried: true, UniqueKey: "k"})
	if j.State != engine.StateBuried || j.Buries != 1 {
		t.Fatalf("enqueued buried: %+v", j)
	}
	wantState(t, e, j.ID, engine.StateBuried)
	if got := reserve(t, e, 1, 300*time.Millisecond, "q"); len(got) != 0 {
		t.Fatal("a job enqueued buried was reserved")
	}
	// Unfinished: its unique key holds.
	res, err := e.Enqueue(ctx, []engine.EnqueueRequest{{Queue: "q", Buried: true, UniqueKey: "k"}})
	if err != nil || res[0].Err != nil || !res[0].Duplicate || res[0].Job.ID != j.ID {
		t.Fatalf("second enqueue with the key: %+v %v", res, err)
	}
	if _, err := e.Kick(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	r := reserveOne(t, e, time.Second, "q")
	if r.Job.ID != j.ID || string(r.Job.Payload) != "dead" || r.Job.Priority != 7 {
		t.Fatalf("kicked job: %+v", r.Job)
	}
	_, err = e.Enqueue(ctx, []engine.EnqueueRequest{{Queue: "q", Buried: true, Delay: time.Second}})
	var ve *engine.ValidationError
	if !errors.As(err, &ve) || ve.Field != "buried" {
		t.Fatalf("buried with a delay: %v, want a validation error on buried", err)
	}
}
