package spool_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spoolq/spool"
	"github.com/spoolq/spool/internal/spooltest"

	"github.com/spoolq/spool/internal/testlog"
)

// The worker tests run against the real server TestMain starts (serverURL); each test
// uses queues of its own.

var workerQueueSeq atomic.Int64

// wq returns a queue name of the test's own, new on each run.
func wq(t testing.TB, name string) string {
	safe := strings.Map(func(r rune) rune {
		if 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' {
			return r
		}
		return '_'
	}, t.Name())
	return fmt.Sprintf("wt-%s-%s-%d", safe, name, workerQueueSeq.Add(1))
}

func testClient(t testing.TB) *spool.Client {
	t.Helper()
	c, err := spool.NewClient(serverURL)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// testLogger discards the worker's logs unless SPOOL_TEST_LOG is set.
func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("SPOOL_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

func newWorker(t testing.TB, c *spool.Client, opts spool.WorkerOptions) *spool.Worker {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	if opts.PollWait == 0 {
		opts.PollWait = 2 * time.Second
	}
	w, err := spool.NewWorker(c, opts)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// start starts w and shuts it down (5s drain) when the test ends.
func start(t testing.TB, w *spool.Worker) {
	t.Helper()
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = w.Shutdown(ctx)
	})
}

func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// eventually polls cond every 20ms until it holds, failing the test after d.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func enqueueN(t testing.TB, c *spool.Client, queue, jobType string, n int, opts ...spool.EnqueueOption) []uint64 {
	t.Helper()
	ids := make([]uint64, 0, n)
	for len(ids) < n {
		k := min(n-len(ids), spool.MaxBatch)
		batch := make([]spool.BatchJob, k)
		for i := range batch {
			batch[i] = spool.BatchJob{Type: jobType, Payload: map[string]int{"n": len(ids) + i}, Options: opts}
		}
		res, err := c.EnqueueBatch(context.Background(), queue, batch)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			ids = append(ids, r.ID)
		}
	}
	return ids
}

func jobOf(t testing.TB, c *spool.Client, id uint64) *spool.Job {
	t.Helper()
	j, err := c.Job(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func TestWorkerRunsJobsAndRecordsResults(t *testing.T) {
	t.Parallel()
	c := testClient(t)
	q := wq(t, "q")
	w := newWorker(t, c, spool.WorkerOptions{Queues: []string{q}, Concurrency: 8})
	var ran atomic.Int64
	w.HandleFunc("double", func(ctx context.Context, job *spool.Job) error {
		var p struct{ N int }
		if err := job.DecodePayload(&p); err != nil {
			return err
		}
		ran.Add(1)
		return spool.SetResult(ctx, map[string]int{"double": 2 * p.N})
	})
	start(t, w)
	ids := enqueueN(t, c, q, "double", 50)
	for i, id := range ids {
		j, err := c.WaitJob(ctxFor(t, 20*time.Second), id, 20*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if j.State != spool.StateSucceeded || string(j.Result) != fmt.Sprintf(`{"double":%d}`, 2*i) || j.Attempts != 1 {
			t.Errorf("job %d: state %s, result %s, attempts %d", i, j.State, j.Result, j.Attempts)
		}
	}
	if got := ran.Load(); got != 50 {
		t.Errorf("handler ran %d times for 50 jobs", got)
	}
	if err := spool.SetResult(context.Background(), 1); err == nil {
		t.Error("SetResult outside a job's context: no error")
	}
}

// A job with a 1s lease runs 4s: the worker's heartbeats keep it, nobody else gets it.
func TestWorkerHeartbeatKeepsJobPastItsLease(t *testing.T) {
	t.Parallel()
	c := testClient(t)
	q := wq(t, "q")
	var runs atomic.Int64
	handler := func(ctx context.Context, job *spool.Job) error {
		runs.Add(1)
		select {
		case <-time.After(4 * time.Second):
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	// Two workers on the queue: a lease that expired would hand the job to either.
	for range 2 {
		w := newWorker(t, c, spool.WorkerOptions{Queues: []string{q}, Concurrency: 2})
		w.HandleFunc("long", handler)
		start(t, w)
	}
	job, err := c.Enqueue(context.Background(), q, "long", nil, spool.Lease(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	done, err := c.WaitJob(ctxFor(t, 20*time.Second), job.ID, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if done.State != spool.StateSucceeded || done.Attempts != 1 || done.Timeouts != 0 {
		t.Errorf("job: state %s, attempts %d, timeouts %d; want succeeded, 1, 0", done.State, done.Attempts, done.Timeouts)
	}
	if d := done.FinishedAt.Sub(done.ReservedAt); d < 4*time.Second {
		t.Errorf("job ran %s, want at least 4s", d)
	}
	time.Sleep(1500 * time.Millisecond) // a redelivery, had the lease run out, would show now
	if n := runs.Load(); n != 1 {
		t.Errorf("handler ran %d times, want 1", n)
	}
}

// helperWorkerEnv makes the test binary a worker process for TestWorkerKilledMidJob:
// "serverURL queue".
const helperWorkerEnv = "SPOOL_TEST_HELPER_WORKER"

// TestHelperWorkerProcess is the child process of TestWorkerKilledMidJob: a worker whose
// handler announces the job on stdout and never returns.
func TestHelperWorkerProcess(t *testing.T) {
	arg := os.Getenv(helperWorkerEnv)
	if arg == "" {
		t.Skip("a helper process of TestWorkerKilledMidJob")
	}
	url, queue, _ := strings.Cut(arg, " ")
	c, err := spool.NewClient(url)
	if err != nil {
		t.Fatal(err)
	}
	w, err := spool.NewWorker(c, spool.WorkerOptions{Queues: []string{queue}, Concurrency: 1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	w.HandleFunc("stuck", func(ctx context.Context, job *spool.Job) error {
		fmt.Printf("started %d\n", job.ID)
		select {} // killed from outside
	})
	_ = w.Run(context.Background())
}

// A worker process killed mid-job (no release, no more heartbeats): the job is offered
// again once its lease runs out.
func TestWorkerKilledMidJob(t *testing.T) {
	t.Parallel()
	c := testClient(t)
	q := wq(t, "q")
	const lease = 2 * time.Second
	job, err := c.Enqueue(context.Background(), q, "stuck", nil, spool.Lease(lease))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperWorkerProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperWorkerEnv+"="+serverURL+" "+q)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	lines := bufio.NewScanner(stdout)
	started := make(chan string, 1)
	go func() {
		for lines.Scan() {
			if strings.HasPrefix(lines.Text(), "started ") {
				started <- lines.Text()
			}
		}
	}()
	select {
	case s := <-started:
		if s != fmt.Sprintf("started %d", job.ID) {
			t.Fatalf("child started %q, want job %d", s, job.ID)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the child worker did not start the job within 30s")
	}
	// The child heartbeats: well past its lease the job is still its own.
	time.Sleep(lease + lease/2)
	if j := jobOf(t, c, job.ID); j.State != spool.StateReserved || j.Attempts != 1 || j.Timeouts != 0 {
		t.Fatalf("before the kill: state %s, attempts %d, timeouts %d; want reserved, 1, 0", j.State, j.Attempts, j.Timeouts)
	}

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	killed = true
	killedAt := time.Now()

	res, err := c.Reserve(ctxFor(t, 30*time.Second), spool.ReserveOptions{Queues: []string{q}, Wait: 3 * lease})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Jobs) != 1 || res.Jobs[0].ID != job.ID {
		t.Fatalf("after the kill: reserved %d jobs, want job %d again", len(res.Jobs), job.ID)
	}
	after := time.Since(killedAt)
	r := res.Jobs[0]
	if r.Attempts != 2 || r.Timeouts != 1 {
		t.Errorf("redelivered job: attempts %d, timeouts %d; want 2, 1", r.Attempts, r.Timeouts)
	}
	// The last heartbeat was at most a third of the lease before the kill; allow for a
	// loaded machine above.
	if after < lease/2 || after > lease+3*time.Second {
		t.Errorf("redelivered %s after the kill; want about the lease (%s)", after.Round(time.Millisecond), lease)
	}
	if _, err := c.Ack(context.Background(), r.ID, r.LeaseToken, nil); err != nil {
		t.Error(err)
	}
}

// Pausing a queue on the server stops the worker from taking its jobs, within seconds and
// without a restart; its other queue keeps running; resuming starts it again.
func TestWorkerPauseResume(t *testing.T) {
	t.Parallel()
	c := testClient(t)
	qa, qb := wq(t, "a"), wq(t, "b")
	ctx := context.Background()
	// Create both queues, so that they can be paused.
	for _, q := range []string{qa, qb} {
		if _, err := c.UpdateQueue(ctx, q, spool.QueueSettings{}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	ran := map[string]int{}
	w := newWorker(t, c, spool.WorkerOptions{Queues: []string{qa, qb}, Concurrency: 4, PollWait: 10 * time.Second})
	w.HandleFunc("t", func(ctx context.Context, job *spool.Job) error {
		mu.Lock()
		ran[job.Queue]++
		mu.Unlock()
		return nil
	})
	start(t, w)
	count := func(q string) int {
		mu.Lock()
		defer mu.Unlock()
		return ran[q]
	}

	// The worker is running (long-polling both queues) when qa is paused.
	enqueueN(t, c, qa, "t", 3)
	eventually(t, 10*time.Second, "qa's first jobs run", func() bool { return count(qa) == 3 })
	if _, err := c.Pause(ctx, qa, 0); err != nil {
		t.Fatal(err)
	}
	enqueueN(t, c, qa, "t", 5)
	enqueueN(t, c, qb, "t", 5)
	eventually(t, 10*time.Second, "qb's jobs run while qa is paused", func() bool { return count(qb) == 5 })
	time.Sleep(2 * time.Second) // an absence: the paused queue's jobs would have run by now
	if n := count(qa); n != 3 {
		t.Fatalf("%d jobs of the paused queue ran", n-3)
	}
	if _, err := c.Resume(ctx, qa); err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()
	eventually(t, 5*time.Second, "qa's jobs run after the resume", func() bool { return count(qa) == 8 })
	t.Logf("paused queue's jobs ran %s after the resume", time.Since(resumed).Round(time.Millisecond))
}

// Shutdown lets in-flight jobs finish within its context, then cancels the others and
// releases them: they are ready again at once, with their attempt given back.
func TestWorkerShutdown(t *testing.T) {
	t.Parallel()
	c := testClient(t)
	t.Run("drain", func(t *testing.T) {
		q := wq(t, "q")
		w := newWorker(t, c, spool.WorkerOptions{Queues: []string{q}, Concurrency: 4})
		var started, finished atomic.Int64
		w.HandleFunc("t", func(ctx context.Context, job *spool.Job) error {
			started.Add(1)
			time.Sleep(700 * time.Millisecond)
			finished.Add(1)
			return nil
		})
		if err := w.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		ids := enqueueN(t, c, q, "t", 4)
		eventually(t, 10*time.Second, "4 jobs started", func() bool { return started.Load() == 4 })
		if err := w.Shutdown(ctxFor(t, 10*time.Second)); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		if finished.Load() != 4 {
			t.Errorf("%d of 4 jobs finished before Shutdown returned", finished.Load())
		}
		for _, id := range ids {
			if j := jobOf(t, c, id); j.State != spool.StateSucceeded {
				t.Errorf("job %d: %s after a drained shutdown, want succeeded", id, j.State)
			}
		}
		// Stopped: a new job stays ready.
		late := enqueueN(t, c, q, "t", 1)[0]
		time.Sleep(300 * time.Millisecond) // an absence: a running worker would have taken it by now
		if j := jobOf(t, c, late); j.State != spool.StateReady {
			t.Errorf("a job enqueued after the shutdown is %s", j.State)
		}
	})
	t.Run("release", func(t *testing.T) {
		q := wq(t, "q")
		w := newWorker(t, c, spool.WorkerOptions{Queues: []string{q}, Concurrency: 3})
		var started atomic.Int64
		causes := make(chan error, 3)
		w.HandleFunc("t", func(ctx context.Context, job *spool.Job) error {
			started.Add(1)
			<-ctx.Done()
			causes <- context.Cause(ctx)
			return ctx.Err()
		})
		if err := w.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		ids := enqueueN(t, c, q, "t", 3, spool.Lease(time.Minute))
		eventually(t, 10*time.Second, "3 jobs started", func() bool { return started.Load() == 3 })
		err := w.Shutdown(ctxFor(t, 300*time.Millisecond))
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(fmt.Sprint(err), "3 job(s) interrupted") {
			t.Errorf("Shutdown = %v, want 3 jobs interrupted by the deadline", err)
		}
		for range 3 {
			if cause := <-causes; !errors.Is(cause, spool.ErrWorkerShutdown) {
				t.Errorf("handler's context cause %v, want ErrWorkerShutdown", cause)
			}
		}
		// Ready at once, not after the one-minute lease.
		for _, id := range ids {
			if j := jobOf(t, c, id); j.State != spool.StateReady || j.Releases != 1 {
				t.Errorf("job %d after Shutdown: state %s, releases %d; want ready, 1", id, j.State, j.Releases)
			}
		}
		res, err := c.Reserve(ctxFor(t, 10*time.Second), spool.ReserveOptions{Queues: []string{q}, Max: 3})
		if err != nil || len(res.Jobs) != 3 {
			t.Fatalf("reserve after Shutdown: %v jobs, %v", len(res.Jobs), err)
		}
	})
}

// Many short jobs over two workers: each job runs once, never twice at the same time.
func TestWorkerNoConcurrentDuplicates(t *testing.T) {
	t.Parallel()
	c := testClient(t)
	q := wq(t, "q")
	const n = 600
	var (
		mu      sync.Mutex
		active  = map[uint64]int{}
		runs    = map[uint64]int{}
		overlap atomic.Int64
		done    atomic.Int64
	)
	handler := func(ctx context.Context, job *spool.Job) error {
		mu.Lock()
		active[job.ID]++
		runs[job.ID]++
		if active[job.ID] > 1 {
			overlap.Add(1)
		}
		mu.Unlock()
		time.Sleep(time.Duration(job.ID%5) * time.Millisecond)
		mu.Lock()
		active[job.ID]--
		mu.Unlock()
		done.Add(1)
		return nil
	}
	for range 2 {
		w := newWorker(t, c, spool.WorkerOptions{Queues: []string{q}, Concurrency: 16})
		w.HandleFunc("t", handler)
		start(t, w)
	}
	ids := enqueueN(t, c, q, "t", n, spool.Lease(5*time.Second))
	eventually(t, 60*time.Second, "all jobs ran", func() bool { return done.Load() >= n })
	time.Sleep(500 * time.Millisecond) // an absence: a late duplicate run would overlap within this
	if o := overlap.Load(); o != 0 {
		t.Errorf("%d overlapping runs of one job", o)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, id := range ids {
		if runs[id] != 1 {
			t.Errorf("job %d ran %d times", id, runs[id])
		}
	}
	if len(runs) != n {
		t.Errorf("%d distinct jobs ran, want %d", len(runs), n)
	}
}

func TestWorkerRecoversPanics(t *testing.T) {
	t.Parallel()
	c := testClient(t)
	q := wq(t, "q")
	w := newWorker(t, c, spool.WorkerOptions{Queues: []string{q}, Concurrency: 1})
	w.HandleFunc("boom", func(ctx context.Context, job *spool.Job) error { panic("kaboom") })
	w.HandleFunc("ok", func(ctx context.Context, job *spool.Job) error { return nil })
	start(t, w)
	boom, err := c.Enqueue(context.Background(), q, "boom", nil, spool.MaxAttempts(1))
	if err != nil {
		t.Fatal(err)
	}
	ok, err := c.Enqueue(context.Background(), q, "ok", nil)
	if err != nil {
		t.Fatal(err)
	}
	if j, err := c.WaitJob(ctxFor(t, 10*time.Second), ok.ID, 20*time.Millisecond); err != nil || j.State != spool.StateSucceeded {
		t.Fatalf("the job after the panic: %v, %v", j, err)
	}
	eventually(t, 10*time.Second, "the panicking job is buried", func() bool { return jobOf(t, c, boom.ID).State == spool.StateBuried })
	j := jobOf(t, c, boom.ID)
	if !strings.HasPrefix(j.LastError, "panic: kaboom\n") || !strings.Contains(j.LastError, "worker_test.go") {
		t.Errorf("last error of the panicking job lacks the panic and its stack:\n%s", j.LastError)
	}
}

func TestTypedHandler(t *testing.T) {
	t.Parallel()
	c := testClient(t)
	q := wq(t, "q")
	type email struct {
		To      string   `json:"to"`
		Subject string   `json:"subject"`
		Tags    []string `json:"tags"`
	}
	got := make(chan email, 2)
	w := newWorker(t, c, spool.WorkerOptions{Queues: []string{q}, Concurrency: 2})
	w.Handle("email.send", spool.TypedHandler(func(ctx context.Context, job *spool.Job, e email) error {
		got <- e
		return nil
	}))
	start(t, w)
	want := email{To: "a@example.com", Subject: "hi", Tags: []string{"x", "y"}}
	okJob, err := c.Enqueue(context.Background(), q, "email.send", want)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-got:
		if fmt.Sprint(e) != fmt.Sprint(want) {
			t.Errorf("decoded %+v, want %+v", e, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("typed handler not called")
	}
	if j, err := c.WaitJob(ctxFor(t, 10*time.Second), okJob.ID, 20*time.Millisecond); err != nil || j.State != spool.StateSucceeded {
		t.Fatalf("typed job: %v, %v", j, err)
	}
	// A payload that does not decode is buried at once (a retry would not help).
	bad, err := c.Enqueue(context.Background(), q, "email.send", []string{"not", "an", "object"})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the undecodable job is buried", func() bool { return jobOf(t, c, bad.ID).State == spool.StateBuried })
	if j := jobOf(t, c, bad.ID); !strings.Contains(j.LastError, "decode payload") || j.Attempts != 1 {
		t.Errorf("undecodable job: attempts %d, last error %q", j.Attempts, j.LastError)
	}
	select {
	case e := <-got:
		t.Errorf("handler called for an undecodable payload with %+v", e)
	default:
	}
}

// Every outcome a handler can choose, and a job of an unknown type.
func TestWorkerOutcomes(t *testing.T) {
	t.Parallel()
	c := testClient(t)
	q := wq(t, "q")
	w := newWorker(t, c, spool.WorkerOptions{Queues: []string{q}, Concurrency: 4})
	w.HandleFunc("fail", func(ctx context.Context, job *spool.Job) error { return errors.New("smtp: timeout") })
	w.HandleFunc("permanent", func(ctx context.Context, job *spool.Job) error {
		return spool.Permanent(errors.New("no such user"))
	})
	w.HandleFunc("retry", func(ctx context.Context, job *spool.Job) error {
		return spool.RetryAfter(time.Hour, errors.New("rate limited"))
	})
	w.HandleFunc("snooze", func(ctx context.Context, job *spool.Job) error { return spool.Snooze(time.Hour) })
	start(t, w)
	ctx := context.Background()
	enq := func(typ string) uint64 {
		j, err := c.Enqueue(ctx, q, typ, nil, spool.MaxAttempts(5))
		if err != nil {
			t.Fatal(err)
		}
		return j.ID
	}
	ids := map[string]uint64{}
	for _, typ := range []string{"fail", "permanent", "retry", "snooze", "unknown.type"} {
		ids[typ] = enq(typ)
	}
	settled := func(id uint64) *spool.Job {
		var j *spool.Job
		eventually(t, 10*time.Second, fmt.Sprintf("job %d leaves ready and reserved", id), func() bool {
			j = jobOf(t, c, id)
			return j.State != spool.StateReady && j.State != spool.StateReserved
		})
		return j
	}
	if j := settled(ids["fail"]); j.State != spool.StateDelayed || j.LastError != "smtp: timeout" || j.Attempts != 1 {
		t.Errorf("fail: state %s, attempts %d, last error %q", j.State, j.Attempts, j.LastError)
	}
	if j := settled(ids["permanent"]); j.State != spool.StateBuried || j.LastError != "no such user" {
		t.Errorf("permanent: state %s, last error %q", j.State, j.LastError)
	}
	if j := settled(ids["retry"]); j.State != spool.StateDelayed || j.LastError != "rate limited" ||
		j.RunAt.Before(time.Now().Add(59*time.Minute)) || j.RunAt.After(time.Now().Add(61*time.Minute)) {
		t.Errorf("retry after 1h: state %s, run at %s, last error %q", j.State, j.RunAt, j.LastError)
	}
	if j := settled(ids["snooze"]); j.State != spool.StateDelayed || j.Releases != 1 || j.RunAt.Before(time.Now().Add(59*time.Minute)) {
		t.Errorf("snooze 1h: state %s, releases %d, run at %s", j.State, j.Releases, j.RunAt)
	}
	j := settled(ids["unknown.type"])
	if j.State != spool.StateDelayed || !strings.Contains(j.LastError, `no handler for job type "unknown.type"`) {
		t.Errorf("unknown type: state %s, last error %q", j.State, j.LastError)
	}
}

func TestWorkerJobTimeout(t *testing.T) {
	t.Parallel()
	c := testClient(t)
	q := wq(t, "q")
	w := newWorker(t, c, spool.WorkerOptions{Queues: []string{q}, Concurrency: 2, JobTimeout: 300 * time.Millisecond})
	causes := make(chan error, 1)
	w.HandleFunc("slow", func(ctx context.Context, job *spool.Job) error {
		<-ctx.Done()
		causes <- context.Cause(ctx)
		return ctx.Err()
	})
	start(t, w)
	// The worker's timeout, and a job's own (the Timeout option).
	for _, c2 := range []struct {
		opts []spool.EnqueueOption
		want string
	}{
		{nil, "job timed out after 300ms: context deadline exceeded"},
		{[]spool.EnqueueOption{spool.Timeout(150 * time.Millisecond), spool.Metadata(map[string]string{"k": "v"})},
			"job timed out after 150ms: context deadline exceeded"},
	} {
		job, err := c.Enqueue(context.Background(), q, "slow", nil, append(c2.opts, spool.MaxAttempts(1))...)
		if err != nil {
			t.Fatal(err)
		}
		if c2.opts != nil && (job.Timeout != 150*time.Millisecond || job.Metadata["k"] != "v") {
			t.Errorf("enqueued with Timeout(150ms): timeout %s, metadata %v", job.Timeout, job.Metadata)
		}
		select {
		case cause := <-causes:
			if !errors.Is(cause, spool.ErrJobTimeout) {
				t.Errorf("cause %v, want ErrJobTimeout", cause)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the job's context was not cancelled at its timeout")
		}
		eventually(t, 10*time.Second, "the timed-out job is buried", func() bool { return jobOf(t, c, job.ID).State == spool.StateBuried })
		if j := jobOf(t, c, job.ID); !strings.HasPrefix(j.LastError, c2.want) {
			t.Errorf("last error %q, want %q", j.LastError, c2.want)
		}
	}
}

// A job cancelled while it runs: the next heartbeat finds the lease lost and cancels the
// handler's context.
func TestWorkerLeaseLostCancelsHandler(t *testing.T) {
	t.Parallel()
	c := testClient(t)
	q := wq(t, "q")
	w := newWorker(t, c, spool.WorkerOptions{Queues: []string{q}, Concurrency: 1})
	started := make(chan uint64, 1)
	causes := make(chan error, 1)
	w.HandleFunc("t", func(ctx context.Context, job *spool.Job) error {
		started <- job.ID
		<-ctx.Done()
		causes <- context.Cause(ctx)
		return nil
	})
	start(t, w)
	job, err := c.Enqueue(context.Background(), q, "t", nil, spool.Lease(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	<-started
	if _, err := c.Cancel(context.Background(), job.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case cause := <-causes:
		if !errors.Is(cause, spool.ErrLeaseLost) {
			t.Errorf("cause %v, want ErrLeaseLost", cause)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the handler of a cancelled job was not cancelled")
	}
	if j := jobOf(t, c, job.ID); j.State != spool.StateCancelled {
		t.Errorf("state %s, want cancelled", j.State)
	}
}

// Weighted queues share the worker by weight, whatever the priorities: the urgent jobs of
// one queue do not starve the other.
func TestWorkerWeightedQueues(t *testing.T) {
	t.Parallel()
	c := testClient(t)
	hi, lo := wq(t, "hi"), wq(t, "lo")
	enqueueN(t, c, hi, "t", 300, spool.Priority(0)) // most urgent band
	enqueueN(t, c, lo, "t", 300)                    // default priority 1024
	var mu sync.Mutex
	var order []string
	w := newWorker(t, c, spool.WorkerOptions{Queues: []string{hi, lo}, Weights: map[string]int{hi: 3}, Concurrency: 4})
	w.HandleFunc("t", func(ctx context.Context, job *spool.Job) error {
		mu.Lock()
		order = append(order, job.Queue)
		mu.Unlock()
		return nil
	})
	start(t, w)
	eventually(t, 30*time.Second, "200 jobs ran", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(order) >= 200
	})
	mu.Lock()
	first := append([]string(nil), order[:200]...)
	mu.Unlock()
	var nHi, nLo int
	for _, q := range first {
		if q == hi {
			nHi++
		} else {
			nLo++
		}
	}
	t.Logf("first 200 jobs: %d from hi (weight 3), %d from lo (weight 1)", nHi, nLo)
	if nLo < 30 || nLo > 70 {
		t.Errorf("lo gave %d of the first 200 jobs, want about 50 (weights 3:1)", nLo)
	}
}

// StrictOrder serves a queue only while the ones before it are empty.
func TestWorkerStrictOrder(t *testing.T) {
	t.Parallel()
	c := testClient(t)
	qa, qb := wq(t, "a"), wq(t, "b")
	enqueueN(t, c, qb, "t", 20, spool.Priority(0)) // more urgent, and enqueued first: still second
	enqueueN(t, c, qa, "t", 20)
	var mu sync.Mutex
	var order []string
	w := newWorker(t, c, spool.WorkerOptions{Queues: []string{qa, qb}, StrictOrder: true, Concurrency: 1})
	w.HandleFunc("t", func(ctx context.Context, job *spool.Job) error {
		mu.Lock()
		order = append(order, job.Queue)
		mu.Unlock()
		return nil
	})
	start(t, w)
	eventually(t, 30*time.Second, "40 jobs ran", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(order) == 40
	})
	mu.Lock()
	defer mu.Unlock()
	for i, q := range order {
		if (i < 20) != (q == qa) {
			t.Fatalf("job %d came from %s; want the 20 jobs of %s first", i, q, qa)
		}
	}
}

func TestWorkerMiddleware(t *testing.T) {
	t.Parallel()
	c := testClient(t)
	q := wq(t, "q")
	var logs bytes.Buffer
	var logMu sync.Mutex
	w := newWorker(t, c, spool.WorkerOptions{Queues: []string{q}, Concurrency: 1})
	var mu sync.Mutex
	var trail []string
	note := func(s string) {
		mu.Lock()
		trail = append(trail, s)
		mu.Unlock()
	}
	mw := func(name string) spool.Middleware {
		return func(next spool.Handler) spool.Handler {
			return spool.HandlerFunc(func(ctx context.Context, job *spool.Job) error {
				note(name + ">")
				err := next.Work(ctx, job)
				note("<" + name)
				return err
			})
		}
	}
	type spanKey struct{}
	finished := make(chan error, 3)
	w.Use(mw("outer"), mw("inner"))
	w.Use(spool.Logging(slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, nil))))
	w.Use(spool.Hooks{
		Start: func(ctx context.Context, job *spool.Job) context.Context {
			return context.WithValue(ctx, spanKey{}, "span-"+job.Type)
		},
		Finish: func(ctx context.Context, job *spool.Job, err error, elapsed time.Duration) {
			if ctx.Value(spanKey{}) != "span-"+job.Type {
				err = fmt.Errorf("Finish without the context of Start: %v", err)
			}
			finished <- err
		},
	}.Middleware())
	w.HandleFunc("ok", func(ctx context.Context, job *spool.Job) error {
		note("handler:" + fmt.Sprint(ctx.Value(spanKey{})))
		return nil
	})
	w.HandleFunc("panics", func(ctx context.Context, job *spool.Job) error { panic("oops") })
	start(t, w)
	if _, err := c.Enqueue(context.Background(), q, "ok", nil); err != nil {
		t.Fatal(err)
	}
	if err := <-finished; err != nil {
		t.Errorf("Finish of a successful job: %v", err)
	}
	// Finish runs in the innermost middleware: the outer ones note their exit after it.
	const want = "outer> inner> handler:span-ok <inner <outer"
	eventually(t, 5*time.Second, "the middleware trail "+want, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(trail) >= 5
	})
	mu.Lock()
	if got := strings.Join(trail, " "); got != want {
		t.Errorf("middleware order: %s", got)
	}
	mu.Unlock()
	if _, err := c.Enqueue(context.Background(), q, "panics", nil, spool.MaxAttempts(1)); err != nil {
		t.Fatal(err)
	}
	var pe *spool.PanicError
	if err := <-finished; !errors.As(err, &pe) || pe.Value != "oops" || len(pe.Stack) == 0 {
		t.Errorf("Finish of a panicking job: %v", err)
	}
	if _, err := c.Enqueue(context.Background(), q, "nobody.handles.this", nil, spool.MaxAttempts(1)); err != nil {
		t.Fatal(err)
	}
	if err := <-finished; !errors.Is(err, spool.ErrNoHandler) {
		t.Errorf("Finish of a job of unknown type: %v, want ErrNoHandler", err)
	}
	eventually(t, 5*time.Second, "three jobs logged", func() bool {
		logMu.Lock()
		defer logMu.Unlock()
		return strings.Count(logs.String(), "msg=") == 3
	})
	logMu.Lock()
	defer logMu.Unlock()
	for _, want := range []string{`msg="job succeeded"`, `type=ok`, `msg="job buried"`, `panic=oops`, `type=nobody.handles.this`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, logs.String())
		}
	}
}

// Logging says what becomes of each job: retried, buried, or released at a hard shutdown,
// not "failed" for all of them.
func TestWorkerLoggingOutcomes(t *testing.T) {
	t.Parallel()
	c := testClient(t)
	q := wq(t, "q")
	var (
		logs  bytes.Buffer
		logMu sync.Mutex
	)
	w := newWorker(t, c, spool.WorkerOptions{Queues: []string{q}, Concurrency: 2})
	w.Use(spool.Logging(slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, nil))))
	w.HandleFunc("fails", func(ctx context.Context, job *spool.Job) error {
		return spool.RetryAfter(10*time.Millisecond, errors.New("bad luck"))
	})
	w.HandleFunc("hangs", func(ctx context.Context, job *spool.Job) error {
		<-ctx.Done()
		return ctx.Err()
	})
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	logged := func(want string) func() bool {
		return func() bool {
			logMu.Lock()
			defer logMu.Unlock()
			return strings.Contains(logs.String(), want)
		}
	}
	// A failure with attempts left is retried; on the last attempt the job is buried.
	if _, err := c.Enqueue(context.Background(), q, "fails", nil, spool.MaxAttempts(2)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "a retry and a burial logged", logged(`level=ERROR msg="job buried"`))
	hung, err := c.Enqueue(context.Background(), q, "hangs", nil)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the hanging job reserved", func() bool {
		j, err := c.Job(context.Background(), hung.ID)
		return err == nil && j.State == spool.StateReserved
	})
	// A hard stop: the drain time is too short for the hanging job.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := w.Shutdown(ctx); err == nil {
		t.Error("Shutdown interrupted a job and returned nil")
	}
	logMu.Lock()
	defer logMu.Unlock()
	out := logs.String()
	for _, want := range []string{
		`level=WARN msg="job failed" job=`, `type=fails`, `attempt=1`, `err="bad luck"`, `max_attempts=2`,
		`level=ERROR msg="job buried" job=`, `attempt=2`,
		`level=WARN msg="job released" job=` + strconv.FormatUint(hung.ID, 10), `reason="interrupted by the worker's shutdown"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
	if strings.Count(out, `msg="job failed"`) != 1 {
		t.Errorf("want one retried failure logged:\n%s", out)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// The server refuses a malformed queue name: the worker stops and Run says why.
func TestWorkerStopsOnInvalidQueue(t *testing.T) {
	t.Parallel()
	c := testClient(t)
	w := newWorker(t, c, spool.WorkerOptions{Queues: []string{"no spaces allowed"}})
	w.HandleFunc("t", func(ctx context.Context, job *spool.Job) error { return nil })
	errc := make(chan error, 1)
	go func() { errc <- w.Run(context.Background()) }()
	select {
	case err := <-errc:
		if !errors.Is(err, spool.ErrInvalidArgument) {
			t.Errorf("Run = %v, want an error matching ErrInvalidArgument", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
}

func TestNewWorkerChecksOptions(t *testing.T) {
	t.Parallel()
	c := testClient(t)
	for _, opts := range []spool.WorkerOptions{
		{},
		{Queues: []string{""}},
		{Queues: []string{"a", "a"}},
		{Queues: []string{"a"}, Weights: map[string]int{"b": 2}},
		{Queues: []string{"a"}, Weights: map[string]int{"a": 0}},
		{Queues: []string{"a"}, Concurrency: -1},
		{Queues: []string{"a"}, JobTimeout: -time.Second},
	} {
		if _, err := spool.NewWorker(c, opts); err == nil {
			t.Errorf("NewWorker(%+v): no error", opts)
		}
	}
	if _, err := spool.NewWorker(nil, spool.WorkerOptions{Queues: []string{"a"}}); err == nil {
		t.Error("NewWorker(nil client): no error")
	}
	w, err := spool.NewWorker(c, spool.WorkerOptions{Queues: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); err == nil {
		t.Error("Start without a handler: no error")
	}
	w.HandleFunc("t", func(ctx context.Context, job *spool.Job) error { return nil })
	defer func() {
		if recover() == nil {
			t.Error("a second handler for one type did not panic")
		}
	}()
	w.HandleFunc("t", func(ctx context.Context, job *spool.Job) error { return nil })
}

// A shutdown ends the worker's long poll on the server instead of abandoning the request: an
// idle worker with a 20s poll stops at once, and nothing it reserved is left held. The end
// goes through DELETE /v1/reserve/{poll_id}, which answered 500 (the worker then logged a
// warning and cancelled its request). The test has a server of its own, so that the server's
// count of waiting reservations is this worker's.
func TestWorkerShutdownEndsItsLongPoll(t *testing.T) {
	t.Parallel()
	srv := spooltest.Start(t, nil)
	c, err := spool.NewClient(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	q := wq(t, "idle")
	logs := &testlog.Buffer{}
	w := newWorker(t, c, spool.WorkerOptions{Queues: []string{q}, Concurrency: 2, PollWait: 20 * time.Second,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	w.HandleFunc("t", func(ctx context.Context, job *spool.Job) error { return nil })
	start(t, w)
	waitingOn(t, srv.URL, 1) // the long poll is waiting on the server
	begin := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(begin); took > 5*time.Second {
		t.Fatalf("shutdown took %v: the long poll was not ended", took)
	}
	if l := logs.String(); l != "" {
		t.Errorf("the worker warned while shutting down:\n%s", l)
	}
	waitingOn(t, srv.URL, 0)
	// A job enqueued now is not held by the stopped worker's poll.
	j, err := c.Enqueue(context.Background(), q, "t", nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Job(context.Background(), j.ID)
	if err != nil || got.State != spool.StateReady {
		t.Fatalf("job after the worker stopped: %+v %v", got, err)
	}
}

// waitingOn waits until the server at url counts n reservations waiting for jobs.
func waitingOn(t testing.TB, url string, n int) {
	t.Helper()
	want := fmt.Sprintf("\nspool_reservations_waiting %d\n", n)
	eventually(t, 10*time.Second, fmt.Sprintf("%s/metrics shows %d waiting reservations", url, n), func() bool {
		resp, err := http.Get(url + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		m, _ := io.ReadAll(resp.Body)
		return bytes.Contains(m, []byte(want))
	})
}
