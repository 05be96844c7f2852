package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spoolq/spool"
	"github.com/spoolq/spool/internal/spooltest"
)

// serverURL is the address of the server shared by the tests of this package; each test
// uses queues of its own.
var serverURL string

func TestMain(m *testing.M) {
	os.Exit(spooltest.Main(m, &serverURL))
}

func newClient(t *testing.T) *spool.Client {
	t.Helper()
	c, err := spool.NewClient(serverURL)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// queueName returns a queue name of the test's own, new on each run (-count).
func queueName(t *testing.T) string {
	return fmt.Sprintf("e2e-%s-%d", t.Name(), queueSeq.Add(1))
}

var queueSeq atomic.Int64

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// reserveOne reserves one job from queue, failing the test if none comes.
func reserveOne(t *testing.T, c *spool.Client, queue string) *spool.ReservedJob {
	t.Helper()
	res, err := c.Reserve(ctxT(t), spool.ReserveOptions{Queues: []string{queue}, Wait: 5 * time.Second, Worker: "e2e"})
	if err != nil {
		t.Fatalf("reserve from %s: %v", queue, err)
	}
	if len(res.Jobs) != 1 {
		t.Fatalf("reserve from %s: %d jobs, want 1", queue, len(res.Jobs))
	}
	return res.Jobs[0]
}

func TestEnqueueReserveAck(t *testing.T) {
	c := newClient(t)
	queue := queueName(t)
	ctx := ctxT(t)
	type email struct {
		To string `json:"to"`
	}
	job, err := c.Enqueue(ctx, queue, "email.send", email{To: "a@example.com"},
		spool.Priority(5), spool.Lease(time.Minute), spool.MaxAttempts(3),
		spool.Metadata(map[string]string{"tenant": "acme"}))
	if err != nil {
		t.Fatal(err)
	}
	if job.ID == 0 || job.State != spool.StateReady || job.Queue != queue || job.Priority != 5 ||
		job.MaxAttempts != 3 || job.Lease != time.Minute || job.CreatedAt.IsZero() || job.Duplicate {
		t.Errorf("enqueued job = %+v", job)
	}

	r := reserveOne(t, c, queue)
	if r.ID != job.ID || r.LeaseToken == "" || r.State != spool.StateReserved || r.Attempts != 1 ||
		r.LeaseExpiresAt.Before(time.Now()) || r.Metadata["tenant"] != "acme" {
		t.Errorf("reserved job = %+v", r)
	}
	var got email
	if err := r.DecodePayload(&got); err != nil || got.To != "a@example.com" {
		t.Errorf("payload = %s (%v)", r.Payload, err)
	}

	exp, err := c.Touch(ctx, r.ID, r.LeaseToken, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if exp.Before(time.Now().Add(9 * time.Minute)) {
		t.Errorf("touch: lease expires at %v, want about 10m from now", exp)
	}

	acked, err := c.Ack(ctx, r.ID, r.LeaseToken, map[string]string{"message_id": "x"})
	if err != nil {
		t.Fatal(err)
	}
	if acked.State != spool.StateSucceeded || string(acked.Result) != `{"message_id":"x"}` || acked.FinishedAt.IsZero() {
		t.Errorf("acked job = %+v", acked)
	}
	done, err := c.WaitJob(ctx, job.ID, 10*time.Millisecond)
	if err != nil || done.State != spool.StateSucceeded {
		t.Errorf("WaitJob = %+v, %v", done, err)
	}

	// The lease is spent: a second ack is refused.
	if _, err := c.Ack(ctx, r.ID, r.LeaseToken, nil); !errors.Is(err, spool.ErrLeaseLost) {
		t.Errorf("second ack: err = %v, want ErrLeaseLost", err)
	}
}

func TestFailRetryAndBury(t *testing.T) {
	c := newClient(t)
	queue := queueName(t)
	ctx := ctxT(t)
	job, err := c.Enqueue(ctx, queue, "t", nil, spool.MaxAttempts(2))
	if err != nil {
		t.Fatal(err)
	}
	r := reserveOne(t, c, queue)
	failed, err := c.Fail(ctx, r.ID, r.LeaseToken, spool.FailOptions{Error: "boom", RetryIn: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if failed.State != spool.StateDelayed || failed.LastError != "boom" {
		t.Errorf("failed job = %+v, want delayed with last error boom", failed)
	}

	r = reserveOne(t, c, queue) // after the retry delay
	if r.ID != job.ID || r.Attempts != 2 {
		t.Errorf("retry: reserved %d attempt %d", r.ID, r.Attempts)
	}
	buried, err := c.Fail(ctx, r.ID, r.LeaseToken, spool.FailOptions{Error: "boom again"})
	if err != nil {
		t.Fatal(err)
	}
	if buried.State != spool.StateBuried {
		t.Errorf("attempts exhausted: state %s, want buried", buried.State)
	}

	page, err := c.ListJobs(ctx, queue, spool.StateBuried, 10, "")
	if err != nil || len(page.Jobs) != 1 || page.Jobs[0].ID != job.ID {
		t.Fatalf("buried jobs = %+v, %v", page, err)
	}
	n, err := c.KickQueue(ctx, queue, 0)
	if err != nil || n != 1 {
		t.Errorf("kick queue = %d, %v", n, err)
	}
	j, err := c.Job(ctx, job.ID)
	if err != nil || j.State != spool.StateReady || j.Kicks != 1 {
		t.Errorf("kicked job = %+v, %v", j, err)
	}

	// The counters reach the statistics within a few seconds.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		q, err := c.Queue(ctx, queue)
		if err != nil {
			t.Fatal(err)
		}
		st, err := c.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if q.Stats.Failed == 2 && q.Stats.BuriedTotal == 1 && st.Totals.BuriedTotal >= 1 && st.Totals.Failed >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue totals %+v, server totals %+v: want 2 failed and 1 buried", q.Stats.Totals, st.Totals)
		}
	}
}

func TestReleaseBuryKickCancel(t *testing.T) {
	c := newClient(t)
	queue := queueName(t)
	ctx := ctxT(t)
	job, err := c.Enqueue(ctx, queue, "t", []byte{0, 1, 2, 0xff})
	if err != nil {
		t.Fatal(err)
	}
	r := reserveOne(t, c, queue)
	if !bytes.Equal(r.Payload, []byte{0, 1, 2, 0xff}) {
		t.Errorf("binary payload = %v", r.Payload)
	}
	prio := uint32(1)
	rel, err := c.Release(ctx, r.ID, r.LeaseToken, spool.ReleaseOptions{Priority: &prio})
	if err != nil {
		t.Fatal(err)
	}
	if rel.State != spool.StateReady || rel.Priority != 1 || rel.Releases != 1 {
		t.Errorf("released job = %+v", rel)
	}

	r = reserveOne(t, c, queue)
	b, err := c.Bury(ctx, r.ID, r.LeaseToken, "poison")
	if err != nil || b.State != spool.StateBuried {
		t.Fatalf("bury = %+v, %v", b, err)
	}
	k, err := c.Kick(ctx, job.ID)
	if err != nil || k.State != spool.StateReady {
		t.Fatalf("kick = %+v, %v", k, err)
	}
	if _, err := c.Kick(ctx, job.ID); !errors.Is(err, spool.ErrWrongState) {
		t.Errorf("kick of a ready job: err = %v, want ErrWrongState", err)
	}

	// Cancelling a reserved job takes the lease from its holder.
	r = reserveOne(t, c, queue)
	cj, err := c.Cancel(ctx, r.ID)
	if err != nil || cj.State != spool.StateCancelled {
		t.Fatalf("cancel = %+v, %v", cj, err)
	}
	if _, err := c.Ack(ctx, r.ID, r.LeaseToken, nil); !errors.Is(err, spool.ErrLeaseLost) {
		t.Errorf("ack after cancel: err = %v, want ErrLeaseLost", err)
	}
	if j, err := c.WaitJob(ctx, job.ID, 0); err != nil || j.State != spool.StateCancelled {
		t.Errorf("WaitJob of a cancelled job = %+v, %v", j, err)
	}
}

func TestErrors(t *testing.T) {
	c := newClient(t)
	queue := queueName(t)
	ctx := ctxT(t)
	if _, err := c.Job(ctx, 1); !errors.Is(err, spool.ErrJobNotFound) {
		t.Errorf("unknown job: err = %v", err)
	}
	if _, err := c.Queue(ctx, "e2e-no-such-queue"); !errors.Is(err, spool.ErrQueueNotFound) {
		t.Errorf("unknown queue: err = %v", err)
	}
	_, err := c.Enqueue(ctx, queue, "t", nil, spool.Lease(time.Hour*100))
	var apiErr *spool.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 400 || apiErr.Field != "lease" || !errors.Is(err, spool.ErrInvalidArgument) {
		t.Errorf("lease of 100h: err = %#v", err)
	}
	if _, err := c.Enqueue(ctx, "-bad", "t", nil); !errors.Is(err, spool.ErrInvalidArgument) {
		t.Errorf("bad queue name: err = %v", err)
	}
	if _, err := c.Enqueue(ctx, queue, "t", make([]byte, 2<<20)); !errors.Is(err, spool.ErrPayloadTooLarge) {
		t.Errorf("payload of 2 MiB: err = %v", err)
	}
	if _, err := c.Ack(ctx, 1, "not-a-token", nil); err == nil {
		t.Error("ack of an unknown job: want an error")
	}
}

func TestUniqueAndBatch(t *testing.T) {
	c := newClient(t)
	queue := queueName(t)
	ctx := ctxT(t)
	first, err := c.Enqueue(ctx, queue, "t", 1, spool.UniqueKey("u1"))
	if err != nil {
		t.Fatal(err)
	}
	dup, err := c.Enqueue(ctx, queue, "t", 2, spool.UniqueKey("u1"))
	if err != nil {
		t.Fatal(err)
	}
	if !dup.Duplicate || dup.ID != first.ID {
		t.Errorf("duplicate enqueue = %+v, want duplicate of %d", dup, first.ID)
	}

	res, err := c.EnqueueBatch(ctx, queue, []spool.BatchJob{
		{Type: "a", Payload: map[string]int{"i": 1}},
		{Type: "b", Options: []spool.EnqueueOption{spool.UniqueKey("u1")}},
		{Type: "c", Options: []spool.EnqueueOption{spool.Delay(time.Hour)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 3 || res[0].Err != nil || res[0].State != spool.StateReady || res[0].Duplicate ||
		!res[1].Duplicate || res[1].ID != first.ID || res[2].State != spool.StateDelayed {
		t.Errorf("batch results = %+v", res)
	}

	_, err = c.EnqueueBatch(ctx, queue, []spool.BatchJob{{Type: "ok"}, {Type: "bad", Options: []spool.EnqueueOption{spool.MaxAttempts(5000)}}})
	var apiErr *spool.APIError
	if !errors.As(err, &apiErr) || apiErr.Field != "jobs[1].max_attempts" {
		t.Errorf("invalid batch: err = %#v", err)
	}
}

func TestQueueOperations(t *testing.T) {
	c := newClient(t)
	ctx := ctxT(t)
	name := queueName(t) + "/q;1" // '/' and ';' must be escaped in paths
	q, err := c.UpdateQueue(ctx, name, spool.QueueSettings{Lease: 2 * time.Minute, MaxAttempts: 7, BackoffBase: 3 * time.Second, BackoffMax: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if q.Name != name || q.Lease != 2*time.Minute || q.MaxAttempts != 7 || q.BackoffBase != 3*time.Second || q.BackoffMax != time.Hour {
		t.Errorf("queue = %+v", q)
	}
	if _, err := c.Enqueue(ctx, name, "t", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Enqueue(ctx, name, "t", nil, spool.Delay(time.Hour)); err != nil {
		t.Fatal(err)
	}
	job, err := c.Enqueue(ctx, name, "t", nil, spool.RunAt(time.Now().Add(time.Hour)))
	if err != nil || job.State != spool.StateDelayed || job.RunAt.Before(time.Now().Add(59*time.Minute)) {
		t.Errorf("run-at job = %+v, %v", job, err)
	}

	q, err = c.Pause(ctx, name, 0)
	if err != nil || !q.Paused || !q.PausedUntil.IsZero() {
		t.Errorf("pause = %+v, %v", q, err)
	}
	res, err := c.Reserve(ctx, spool.ReserveOptions{Queues: []string{name}})
	if err != nil || len(res.Jobs) != 0 || len(res.Paused) != 1 || res.Paused[0] != name {
		t.Errorf("reserve from a paused queue = %+v, %v", res, err)
	}
	if q, err = c.Resume(ctx, name); err != nil || q.Paused {
		t.Errorf("resume = %+v, %v", q, err)
	}

	qs, err := c.Queues(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, q := range qs {
		found = found || q.Name == name
	}
	if !found {
		t.Errorf("queue %q not listed", name)
	}

	// Statistics lag writes by a moment: poll.
	deadline := time.Now().Add(10 * time.Second)
	for {
		q, err = c.Queue(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if q.Stats.Ready == 1 && q.Stats.Delayed == 2 && q.Stats.Enqueued == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue stats = %+v, want ready 1, delayed 2, enqueued 3", q.Stats)
		}
		time.Sleep(100 * time.Millisecond)
	}

	page, err := c.ListJobs(ctx, name, spool.StateDelayed, 1, "")
	if err != nil || len(page.Jobs) != 1 || page.NextCursor == "" {
		t.Fatalf("first page = %+v, %v", page, err)
	}
	page2, err := c.ListJobs(ctx, name, spool.StateDelayed, 1, page.NextCursor)
	if err != nil || len(page2.Jobs) != 1 || page2.Jobs[0].ID == page.Jobs[0].ID {
		t.Fatalf("second page = %+v, %v", page2, err)
	}

	n, err := c.Purge(ctx, name, spool.StateDelayed)
	if err != nil || n != 2 {
		t.Errorf("purge delayed = %d, %v", n, err)
	}
	if err := c.DeleteQueue(ctx, name); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Queue(ctx, name); !errors.Is(err, spool.ErrQueueNotFound) {
		t.Errorf("deleted queue: err = %v", err)
	}

	st, err := c.Stats(ctx)
	// Uptime is whole seconds since the shared server started, in this test process.
	if err != nil || st.Version != "test" || st.Uptime < 0 || st.Uptime > time.Since(processStart)+time.Second {
		t.Errorf("stats = %+v, %v", st, err)
	}
}

var processStart = time.Now()

func TestReserveLongPoll(t *testing.T) {
	c := newClient(t)
	queue := queueName(t)
	ctx := ctxT(t)
	go func() {
		time.Sleep(300 * time.Millisecond)
		_, _ = c.Enqueue(context.Background(), queue, "t", nil)
	}()
	start := time.Now()
	res, err := c.Reserve(ctx, spool.ReserveOptions{Queues: []string{queue}, Wait: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Jobs) != 1 {
		t.Fatalf("long poll returned %d jobs after %v", len(res.Jobs), time.Since(start))
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 5*time.Second {
		t.Errorf("long poll returned after %v, want soon after the enqueue at 300ms", d)
	}
}

func TestPriorityOrder(t *testing.T) {
	c := newClient(t)
	queue := queueName(t)
	ctx := ctxT(t)
	for _, p := range []uint32{5000, 10, 1024, 0} {
		if _, err := c.Enqueue(ctx, queue, fmt.Sprint(p), nil, spool.Priority(p)); err != nil {
			t.Fatal(err)
		}
	}
	res, err := c.Reserve(ctx, spool.ReserveOptions{Queues: []string{queue}, Max: 10})
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, j := range res.Jobs {
		order = append(order, j.Type)
	}
	if fmt.Sprint(order) != "[0 10 1024 5000]" {
		t.Errorf("reserve order = %v, want most urgent first", order)
	}
}

func TestEnqueueBuried(t *testing.T) {
	c := newClient(t)
	queue := queueName(t)
	ctx := ctxT(t)
	j, err := c.Enqueue(ctx, queue, "t", []byte("dead"), spool.Buried(), spool.Metadata(map[string]string{"origin": "elsewhere"}))
	if err != nil {
		t.Fatal(err)
	}
	if j.State != spool.StateBuried || j.Buries != 1 {
		t.Fatalf("enqueued buried: %+v", j)
	}
	if _, err := c.Kick(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	r := reserveOne(t, c, queue)
	if r.ID != j.ID || string(r.Payload) != "dead" || r.Metadata["origin"] != "elsewhere" {
		t.Errorf("kicked job: %+v", r.Job)
	}
	_, err = c.Enqueue(ctx, queue, "t", nil, spool.Buried(), spool.Delay(time.Minute))
	var apiErr *spool.APIError
	if !errors.As(err, &apiErr) || apiErr.Field != "buried" {
		t.Errorf("buried with a delay: err = %#v, want an error on field buried", err)
	}
}
