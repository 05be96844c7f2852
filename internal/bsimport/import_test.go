package bsimport_test

// The import against the real beanstalkd 1.12 (a child process) and a real spool server
// (in-process): every job of every state must end in spool once, with its body, priority,
// state and remaining delay, also when beanstalkd is killed or the import interrupted.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beanstalkd/go-beanstalk"

	"github.com/spoolq/spool"
	"github.com/spoolq/spool/internal/beanstalkdtest"
	"github.com/spoolq/spool/internal/bsimport"
	"github.com/spoolq/spool/internal/spooltest"
	"github.com/spoolq/spool/server"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func dial(t testing.TB, addr string) *beanstalk.Conn {
	t.Helper()
	c, err := beanstalk.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func newClient(t testing.TB, configure func(*server.Config)) *spool.Client {
	t.Helper()
	c, err := spool.NewClient(spooltest.Start(t, configure).URL)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// start runs a beanstalkd and a spool server for the test; configure adjusts spool's.
func start(t testing.TB, configure func(*server.Config)) (*beanstalkdtest.Server, *beanstalk.Conn, *spool.Client) {
	t.Helper()
	bs := beanstalkdtest.Start(t, beanstalkdtest.Binary(t), "")
	return bs, dial(t, bs.Addr), newClient(t, configure)
}

// want is a job put in beanstalkd, as spool must hold it after the import.
type want struct {
	tube  string
	body  string
	pri   uint32
	state spool.State
	ready time.Time // delayed: when beanstalkd would make it ready
}

// fill puts jobs in every state in several tubes and returns them by body. Every body is
// distinct; some are not UTF-8.
func fill(t *testing.T, c *beanstalk.Conn, tubes []string, ready, delayed, buried int) map[string]want {
	t.Helper()
	jobs := map[string]want{}
	pris := []uint32{0, 1, 100, 1024, 1 << 31, 1<<32 - 1}
	for _, name := range tubes {
		tb := beanstalk.NewTube(c, name)
		put := func(kind string, i int, delay time.Duration) want {
			body := fmt.Sprintf("%s/%s/%d", name, kind, i)
			if i%3 == 0 {
				body += "\x00\xff" // not UTF-8: must come through byte for byte
			}
			w := want{tube: name, body: body, pri: pris[i%len(pris)], state: spool.StateReady}
			if _, err := tb.Put([]byte(body), w.pri, delay, 30*time.Second); err != nil {
				t.Fatal(err)
			}
			if delay > 0 {
				w.state, w.ready = spool.StateDelayed, time.Now().Add(delay)
			}
			jobs[body] = w
			return w
		}
		for i := range ready {
			put("ready", i, 0)
		}
		for i := range delayed {
			put("delayed", i, time.Duration(60+i*37)*time.Second)
		}
		for i := range buried {
			// Put ready; buried below (burying takes a reservation).
			w := put("buried", i, 0)
			w.state = spool.StateBuried
			jobs[w.body] = w
		}
	}
	// Bury the jobs to bury: reserve every ready job, bury those, release the others.
	ts := beanstalk.NewTubeSet(c, tubes...)
	var release []uint64
	for {
		id, body, err := ts.Reserve(0)
		if errors.Is(err, beanstalk.ErrTimeout) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		w := jobs[string(body)]
		if w.state == spool.StateBuried {
			if err := c.Bury(id, w.pri); err != nil {
				t.Fatal(err)
			}
			continue
		}
		release = append(release, id)
	}
	for _, id := range release {
		st, err := c.StatsJob(id)
		if err != nil {
			t.Fatal(err)
		}
		pri, _ := strconv.ParseUint(st["pri"], 10, 32)
		if err := c.Release(id, uint32(pri), 0); err != nil {
			t.Fatal(err)
		}
	}
	return jobs
}

// spoolJobs lists every ready, delayed and buried job of the queues, by body.
func spoolJobs(t *testing.T, c *spool.Client, queues []string) map[string][]*spool.Job {
	t.Helper()
	got := map[string][]*spool.Job{}
	for _, q := range queues {
		for _, st := range []spool.State{spool.StateReady, spool.StateDelayed, spool.StateBuried} {
			cursor := ""
			for {
				page, err := c.ListJobs(ctxT(t), q, st, 1000, cursor)
				if errors.Is(err, spool.ErrQueueNotFound) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				for _, j := range page.Jobs {
					got[string(j.Payload)] = append(got[string(j.Payload)], j)
				}
				if cursor = page.NextCursor; cursor == "" {
					break
				}
			}
		}
	}
	return got
}

// check compares spool's jobs with the jobs put in beanstalkd. Every job must be there,
// once, or up to dups times more in all.
func check(t *testing.T, jobs map[string]want, got map[string][]*spool.Job, dups int) {
	t.Helper()
	extra := 0
	for body, w := range jobs {
		js := got[body]
		if len(js) == 0 {
			t.Errorf("job %q (%s in tube %s) is not in spool", body, w.state, w.tube)
			continue
		}
		extra += len(js) - 1
		j := js[0]
		if j.Queue != w.tube || j.Priority != w.pri || j.State != w.state {
			t.Errorf("job %q: queue %s priority %d state %s, want %s %d %s", body, j.Queue, j.Priority, j.State, w.tube, w.pri, w.state)
		}
		if j.Metadata[bsimport.MetaState] != string(w.state) || j.Metadata[bsimport.MetaJob] == "" {
			t.Errorf("job %q: metadata %v", body, j.Metadata)
		}
		if j.Lease != 30*time.Second || j.MaxAttempts != 1000 {
			t.Errorf("job %q: lease %s, max attempts %d; want 30s, 1000", body, j.Lease, j.MaxAttempts)
		}
		// The remaining delay is kept to the second: never earlier, at most a second later
		// plus the time the store took (a loaded machine: a few seconds).
		if w.state == spool.StateDelayed && (j.RunAt.Before(w.ready.Add(-100*time.Millisecond)) || j.RunAt.After(w.ready.Add(5*time.Second))) {
			t.Errorf("job %q: ready at %s in spool, at %s in beanstalkd", body, j.RunAt, w.ready)
		}
	}
	for body := range got {
		if _, ok := jobs[body]; !ok {
			t.Errorf("spool holds a job %q that was not put", body)
		}
	}
	if extra > dups {
		t.Errorf("%d duplicate jobs in spool, want at most %d", extra, dups)
	}
}

// empty checks that beanstalkd holds no job but reserved in the tubes.
func empty(t *testing.T, c *beanstalk.Conn, tubes []string) {
	t.Helper()
	for _, name := range tubes {
		st, err := beanstalk.NewTube(c, name).Stats()
		if errors.Is(err, beanstalk.ErrNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"current-jobs-ready", "current-jobs-delayed", "current-jobs-buried"} {
			if st[k] != "0" {
				t.Errorf("tube %s: %s %s after the import", name, k, st[k])
			}
		}
	}
}

func TestImportEveryState(t *testing.T) {
	t.Parallel()
	bs, bc, sc := start(t, nil)
	ctx := ctxT(t)
	tubes := []string{"emails", "paused.tube", "reports"}
	jobs := fill(t, bc, tubes, 20, 6, 4)
	// A delay beyond spool's longest (100 years) gets the longest.
	if _, err := beanstalk.NewTube(bc, "emails").Put([]byte("emails/far"), 2, (1<<32-1)*time.Second, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	jobs["emails/far"] = want{tube: "emails", body: "emails/far", pri: 2, state: spool.StateDelayed, ready: time.Now().Add(100 * 365 * 24 * time.Hour)}

	// Two jobs held by a worker of beanstalkd: left to it, and reported.
	worker := dial(t, bs.Addr)
	wts := beanstalk.NewTubeSet(worker, "reports")
	for range 2 {
		_, body, err := wts.Reserve(time.Second)
		if err != nil {
			t.Fatal(err)
		}
		delete(jobs, string(body))
	}
	if err := beanstalk.NewTube(bc, "paused.tube").Pause(300 * time.Second); err != nil {
		t.Fatal(err)
	}

	dry, err := bsimport.Run(ctx, sc, bsimport.Options{From: bs.Addr, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bsimport.Found{}
	for _, tr := range dry.Tubes {
		found[tr.Tube] = tr.Found
	}
	if f := found["reports"]; f != (bsimport.Found{Ready: 18, Delayed: 6, Buried: 4, Reserved: 2}) {
		t.Errorf("dry run: reports found %+v", f)
	}
	if dry.Ready.Moved != 0 {
		t.Errorf("dry run moved %d jobs", dry.Ready.Moved)
	}
	if got := spoolJobs(t, sc, tubes); len(got) != 0 {
		t.Fatalf("dry run stored %d jobs", len(got))
	}

	var calls atomic.Int64
	rep, err := bsimport.Run(ctx, sc, bsimport.Options{From: bs.Addr, Tubes: tubes, Rate: 2000,
		Progress: func(*bsimport.TubeReport) { calls.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Ready.Moved != 58 || rep.Delayed.Moved != 19 || rep.Buried.Moved != 12 || rep.Reserved != 2 || !rep.Complete() {
		t.Errorf("report: ready %+v delayed %+v buried %+v reserved %d complete %v",
			rep.Ready, rep.Delayed, rep.Buried, rep.Reserved, rep.Complete())
	}
	if calls.Load() < 89 {
		t.Errorf("progress called %d times for 89 jobs", calls.Load())
	}
	check(t, jobs, spoolJobs(t, sc, tubes), 0)
	empty(t, bc, tubes)

	q, err := sc.Queue(ctx, "paused.tube")
	if err != nil {
		t.Fatal(err)
	}
	if !q.Paused || q.PausedUntil.Before(time.Now().Add(250*time.Second)) || q.PausedUntil.After(time.Now().Add(302*time.Second)) {
		t.Errorf("paused.tube in spool: paused %v until %s, want about 300s from now", q.Paused, q.PausedUntil)
	}
	for _, name := range []string{"emails", "reports"} {
		if q, err := sc.Queue(ctx, name); err != nil || q.Paused {
			t.Errorf("queue %s: paused %v %v", name, q != nil && q.Paused, err)
		}
	}

	// The worker gives its jobs back: a second run moves them, and nothing twice.
	worker.Close()
	rep, err = bsimport.Run(ctx, sc, bsimport.Options{From: bs.Addr, Tubes: tubes})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Ready.Moved != 2 || rep.Delayed.Moved+rep.Buried.Moved+rep.Ready.Skipped != 0 || rep.Reserved != 0 {
		t.Errorf("second run: ready %+v delayed %+v buried %+v reserved %d", rep.Ready, rep.Delayed, rep.Buried, rep.Reserved)
	}
}

// Jobs that spool refuses (over its payload limit) stay in beanstalkd and are reported; a
// refused ready job does not stop the others, a refused delayed or buried job ends the pass
// over its state (the jobs behind it are left).
func TestImportRefusedJobs(t *testing.T) {
	t.Parallel()
	bs, bc, sc := start(t, func(c *server.Config) { c.MaxPayload = 64 })
	ctx := ctxT(t)
	big := strings.Repeat("x", 100)
	tb := beanstalk.NewTube(bc, "t")
	put := func(body string, pri uint32, delay time.Duration) uint64 {
		id, err := tb.Put([]byte(body), pri, delay, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	bury := func(id uint64) {
		if _, err := bc.ReserveJob(id); err != nil {
			t.Fatal(err)
		}
		if err := bc.Bury(id, 1); err != nil {
			t.Fatal(err)
		}
	}
	put("ready-1", 1, 0)
	put("ready-big-"+big, 0, 0) // the most urgent: the head of the ready jobs
	put("ready-2", 2, 0)
	put("delayed-big-"+big, 1, time.Minute) // due first: the head of the delayed jobs
	put("delayed-1", 1, 2*time.Minute)
	bury(put("buried-1", 1, 0)) // buried first: the head of the buried jobs
	bury(put("buried-big-"+big, 1, 0))

	rep, err := bsimport.Run(ctx, sc, bsimport.Options{From: bs.Addr, Tubes: []string{"t"}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Ready != (bsimport.Counts{Moved: 2, Failed: 1}) || rep.Delayed != (bsimport.Counts{Failed: 1, Left: 1}) ||
		rep.Buried != (bsimport.Counts{Moved: 1, Failed: 1}) || rep.Complete() {
		t.Errorf("report: ready %+v delayed %+v buried %+v complete %v", rep.Ready, rep.Delayed, rep.Buried, rep.Complete())
	}
	if e := rep.Tubes[0].LastError; !strings.Contains(e, "payload_too_large") {
		t.Errorf("last error %q", e)
	}
	got := spoolJobs(t, sc, []string{"t"})
	if len(got) != 3 || got["ready-1"] == nil || got["ready-2"] == nil || got["buried-1"] == nil {
		t.Errorf("spool holds %d jobs: %v", len(got), got)
	}
	st, err := tb.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st["current-jobs-ready"] != "1" || st["current-jobs-delayed"] != "2" || st["current-jobs-buried"] != "1" || st["current-jobs-reserved"] != "0" {
		t.Errorf("beanstalkd after the import: %v", st)
	}
}

// A run that stored a job and stopped before deleting it: the next run finds the job in
// spool by its unique key, deletes it from beanstalkd and stores nothing.
func TestImportSkipsWhatAnEarlierRunStored(t *testing.T) {
	t.Parallel()
	bs, bc, sc := start(t, nil)
	ctx := ctxT(t)
	jobs := fill(t, bc, []string{"t"}, 3, 1, 1)
	stats, err := bc.Stats()
	if err != nil {
		t.Fatal(err)
	}
	tb := beanstalk.NewTube(bc, "t")
	for _, peek := range []func() (uint64, []byte, error){tb.PeekReady, tb.PeekDelayed, tb.PeekBuried} {
		id, body, err := peek()
		if err != nil {
			t.Fatal(err)
		}
		w := jobs[string(body)]
		opts := []spool.EnqueueOption{spool.Priority(w.pri), spool.Lease(30 * time.Second), spool.MaxAttempts(1000),
			spool.UniqueKey(bsimport.UniqueKey(stats["id"], id)),
			spool.Metadata(map[string]string{bsimport.MetaJob: strconv.FormatUint(id, 10), bsimport.MetaState: string(w.state)})}
		switch w.state {
		case spool.StateDelayed:
			opts = append(opts, spool.RunAt(w.ready.Add(time.Second)))
		case spool.StateBuried:
			opts = append(opts, spool.Buried())
		}
		if _, err := sc.Enqueue(ctx, "t", "", body, opts...); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := bsimport.Run(ctx, sc, bsimport.Options{From: bs.Addr, Tubes: []string{"t"}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Ready != (bsimport.Counts{Moved: 2, Skipped: 1}) || rep.Delayed != (bsimport.Counts{Skipped: 1}) || rep.Buried != (bsimport.Counts{Skipped: 1}) {
		t.Errorf("report: ready %+v delayed %+v buried %+v", rep.Ready, rep.Delayed, rep.Buried)
	}
	check(t, jobs, spoolJobs(t, sc, []string{"t"}), 0)
	empty(t, bc, []string{"t"})
}

// An import interrupted (ctx cancelled) and run again moves every job exactly once: the
// job in hand when the import is interrupted is finished first.
func TestImportInterruptedAndRestarted(t *testing.T) {
	t.Parallel()
	bs, bc, sc := start(t, nil)
	tubes := []string{"a", "b", "c"}
	jobs := fill(t, bc, tubes, 40, 5, 5)

	ctx, cancel := context.WithCancel(ctxT(t))
	moved := 0
	_, err := bsimport.Run(ctx, sc, bsimport.Options{From: bs.Addr, Tubes: tubes, Progress: func(tr *bsimport.TubeReport) {
		if moved++; moved == 60 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted import: %v, want context.Canceled", err)
	}
	if n := len(spoolJobs(t, sc, tubes)); n == 0 || n == len(jobs) {
		t.Fatalf("interrupted import stored %d of %d jobs", n, len(jobs))
	}
	rep, err := bsimport.Run(ctxT(t), sc, bsimport.Options{From: bs.Addr, Tubes: tubes})
	if err != nil || !rep.Complete() {
		t.Fatalf("second run: %v %+v", err, rep)
	}
	check(t, jobs, spoolJobs(t, sc, tubes), 0)
	empty(t, bc, tubes)
}

// beanstalkd killed (SIGKILL) in the middle of an import, restarted from its binlog, and
// the import run again: no job is lost. The job in flight at the kill may be stored twice
// (the restarted beanstalkd has a new process id, so the unique key differs).
func TestImportBeanstalkdKilled(t *testing.T) {
	t.Parallel()
	bin := beanstalkdtest.Binary(t)
	binlog := t.TempDir()
	bs := beanstalkdtest.Start(t, bin, binlog)
	bc := dial(t, bs.Addr)
	sc := newClient(t, nil)
	tubes := []string{"a", "b", "c"}
	jobs := fill(t, bc, tubes, 60, 5, 5)
	bc.Close()

	var moved atomic.Int64
	_, err := bsimport.Run(ctxT(t), sc, bsimport.Options{From: bs.Addr, Tubes: tubes, Timeout: 5 * time.Second,
		Progress: func(*bsimport.TubeReport) {
			if moved.Add(1) == 80 {
				go bs.Kill() // from another goroutine: the kill lands anywhere in a job's move
			}
		}})
	if err == nil {
		t.Fatal("the import went on with beanstalkd killed")
	}
	t.Logf("import with beanstalkd killed: %v", err)

	bs = beanstalkdtest.Start(t, bin, binlog)
	rep, err := bsimport.Run(ctxT(t), sc, bsimport.Options{From: bs.Addr, Tubes: tubes})
	if err != nil || !rep.Complete() {
		t.Fatalf("after the restart: %v %+v", err, rep)
	}
	check(t, jobs, spoolJobs(t, sc, tubes), 1)
	empty(t, dial(t, bs.Addr), tubes)
}

// beanstalkd's workers keep taking jobs during the import (step 2 of the cut-over plan):
// every job ends done by a worker or in spool, and in both only when the report counts a
// race.
func TestImportWhileWorkersRun(t *testing.T) {
	t.Parallel()
	bs, bc, sc := start(t, nil)
	tubes := []string{"a", "b"}
	jobs := fill(t, bc, tubes, 150, 0, 0)

	done := make(chan map[string]bool)
	stop := make(chan struct{})
	go func() {
		taken := map[string]bool{}
		defer func() { done <- taken }()
		w, err := beanstalk.Dial("tcp", bs.Addr)
		if err != nil {
			t.Error(err)
			return
		}
		defer w.Close()
		ts := beanstalk.NewTubeSet(w, tubes...)
		for {
			select {
			case <-stop:
				return
			default:
			}
			id, body, err := ts.Reserve(50 * time.Millisecond)
			if errors.Is(err, beanstalk.ErrTimeout) {
				continue
			}
			if err != nil {
				t.Error(err)
				return
			}
			if err := w.Delete(id); err != nil {
				t.Error(err)
				return
			}
			taken[string(body)] = true
		}
	}()
	rep, err := bsimport.Run(ctxT(t), sc, bsimport.Options{From: bs.Addr, Tubes: tubes})
	close(stop)
	taken := <-done
	if err != nil {
		t.Fatal(err)
	}
	got := spoolJobs(t, sc, tubes)
	both := 0
	for body := range jobs {
		switch n := len(got[body]); {
		case n == 0 && !taken[body]:
			t.Errorf("job %q lost: neither in spool nor done by the worker", body)
		case n > 1:
			t.Errorf("job %q is %d times in spool", body, n)
		case n == 1 && taken[body]:
			both++
		}
	}
	total := rep.Total()
	t.Logf("worker took %d jobs, the import moved %d (raced %d)", len(taken), total.Moved, total.Raced)
	if both > total.Raced {
		t.Errorf("%d jobs both in spool and done by the worker, the report counts %d races", both, total.Raced)
	}
	if total.Moved+total.Raced+len(taken)-both != len(jobs) {
		t.Errorf("moved %d + raced %d + taken %d - both %d != %d jobs", total.Moved, total.Raced, len(taken), both, len(jobs))
	}
	empty(t, bc, tubes)
}

// spool goes away in the middle of an import and comes back on the same data: the import
// stops with spool unavailable, and the next run moves every job exactly once (the job in
// hand, stored or not, is found by its unique key).
func TestImportSpoolStopped(t *testing.T) {
	t.Parallel()
	bs := beanstalkdtest.Start(t, beanstalkdtest.Binary(t), "")
	bc := dial(t, bs.Addr)
	tubes := []string{"a", "b"}
	jobs := fill(t, bc, tubes, 50, 3, 3)
	data := t.TempDir()
	srv, err := spooltest.Run(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := spool.NewClient(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	stopped := make(chan error, 1)
	var moved atomic.Int64
	_, err = bsimport.Run(ctxT(t), sc, bsimport.Options{From: bs.Addr, Tubes: tubes, Attempts: 2,
		Progress: func(*bsimport.TubeReport) {
			if moved.Add(1) == 40 {
				go func() { stopped <- srv.Stop() }()
			}
		}})
	if !errors.Is(err, spool.ErrUnavailable) {
		t.Fatalf("import with spool stopped: %v, want spool unavailable", err)
	}
	t.Logf("import with spool stopped: %v", err)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}

	srv, err = spooltest.Run(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })
	if sc, err = spool.NewClient(srv.URL); err != nil {
		t.Fatal(err)
	}
	rep, err := bsimport.Run(ctxT(t), sc, bsimport.Options{From: bs.Addr, Tubes: tubes})
	if err != nil || !rep.Complete() {
		t.Fatalf("after spool came back: %v %+v", err, rep)
	}
	t.Logf("after spool came back: ready %+v", rep.Ready)
	check(t, jobs, spoolJobs(t, sc, tubes), 0)
	empty(t, bc, tubes)
}
