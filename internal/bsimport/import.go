// Package bsimport moves the jobs of a running beanstalkd (1.12) into spool, tube by tube,
// over spool's HTTP API: ready jobs, delayed jobs with their remaining delay, buried jobs as
// buried, and a tube's pause. Reserved jobs are left to their workers.
//
// Every job is stored in spool before it is deleted from beanstalkd, so a crash of either
// side or of the import leaves a copy, never none. The spool job carries a unique key made
// of beanstalkd's process id and the job id (UniqueKey): a job that an interrupted run
// stored but did not delete is found in spool by the next run and only deleted.
//
// How each state is taken, and the windows that remain (docs/migration.md says the same):
//
//   - ready: peek-ready, then reserve-job: the importer holds the job while it stores it,
//     so no worker of beanstalkd gets it meanwhile; then delete. If the importer dies
//     holding it, beanstalkd makes it ready again; if a worker takes it before the next run,
//     it runs on both sides (at least once).
//   - delayed: peek-delayed and stats-job (time-left), store it delayed, delete it. The job
//     stays delayed in beanstalkd all along, never ready early. A job whose delay ends
//     within a second is reserved first (reserve-job), so that no worker takes it during
//     the store; if the importer dies then, it is ready at most a second early.
//   - buried: peek-buried, store it buried (spool.Buried), delete it.
//
// A job that spool refuses (a payload over its limit) stays in beanstalkd and is counted
// as failed; for delayed and buried jobs, which are read from the head of their queue, it
// ends the pass over that state of its tube (the jobs behind it are counted as left).
package bsimport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/beanstalkd/go-beanstalk"
	"golang.org/x/time/rate"

	"github.com/spoolq/spool"
	"github.com/spoolq/spool/engine"
)

// Target is the spool side of an import; *spool.Client implements it.
type Target interface {
	Enqueue(ctx context.Context, queue, jobType string, payload any, opts ...spool.EnqueueOption) (*spool.Job, error)
	UpdateQueue(ctx context.Context, name string, s spool.QueueSettings) (*spool.Queue, error)
	Pause(ctx context.Context, name string, d time.Duration) (*spool.Queue, error)
}

// Options configure an import.
type Options struct {
	From   string   // beanstalkd's address, host:port
	Tubes  []string // the tubes to move; none: every tube (list-tubes)
	DryRun bool     // count the jobs of each tube, move nothing
	// Rate bounds the jobs moved per second, to spare a production beanstalkd; 0: no bound.
	Rate float64
	// Progress, when set, is called after each job and at the end of each tube, on the
	// importer's goroutine.
	Progress func(*TubeReport)
	// Timeout bounds each beanstalkd command. Default 30s.
	Timeout time.Duration
	// Attempts bounds the tries of one store when spool is unavailable (a 503, no answer).
	// Default 8: about 11s of backoff in all.
	Attempts int
}

// Metadata keys set on every imported job.
const (
	MetaJob    = "beanstalkd.job"    // the job's id in beanstalkd
	MetaServer = "beanstalkd.server" // beanstalkd's process id (stats "id")
	MetaState  = "beanstalkd.state"  // ready, delayed or buried
)

// UniqueKey is the spool unique key of the beanstalkd job id of the beanstalkd process
// serverID (its stats "id"). The process id changes when beanstalkd restarts: a job that a
// restart from the binlog brings back after it was stored (and not deleted) is stored again.
func UniqueKey(serverID string, id uint64) string {
	return "beanstalkd:" + serverID + ":" + strconv.FormatUint(id, 10)
}

// Run moves the jobs. It returns the report so far with any error: a lost connection to
// beanstalkd, spool unavailable beyond Options.Attempts, ctx cancelled. Cancelling ctx lets
// the job in hand finish (stored and deleted) before Run returns. Running it again goes on
// where it stopped.
func Run(ctx context.Context, to Target, o Options) (*Report, error) {
	if o.From == "" {
		return nil, errors.New("bsimport: no beanstalkd address")
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.Attempts <= 0 {
		o.Attempts = 8
	}
	nc, err := (&net.Dialer{Timeout: o.Timeout}).DialContext(ctx, "tcp", o.From)
	if err != nil {
		return nil, fmt.Errorf("bsimport: connect to beanstalkd: %w", err)
	}
	bc := beanstalk.NewConn(deadlineConn{nc, o.Timeout})
	defer bc.Close()
	stats, err := bc.Stats()
	if err != nil {
		return nil, fmt.Errorf("bsimport: beanstalkd stats: %w", err)
	}
	im := &importer{to: to, o: o, bc: bc, server: stats["id"], limit: rate.NewLimiter(rate.Inf, 1)}
	if im.server == "" {
		return nil, fmt.Errorf("bsimport: %s: no process id in stats (not beanstalkd 1.10 or later?)", o.From)
	}
	if o.Rate > 0 {
		im.limit = rate.NewLimiter(rate.Limit(o.Rate), 1)
	}
	tubes := o.Tubes
	if len(tubes) == 0 {
		if tubes, err = bc.ListTubes(); err != nil {
			return nil, fmt.Errorf("bsimport: list tubes: %w", err)
		}
		slices.Sort(tubes)
	}
	rep := &Report{From: o.From, ServerID: im.server, DryRun: o.DryRun}
	defer rep.sum()
	for _, name := range tubes {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		rep.Tubes = append(rep.Tubes, TubeReport{Tube: name})
		t := &rep.Tubes[len(rep.Tubes)-1]
		err := im.tube(ctx, t)
		im.progress(t)
		if err != nil {
			t.LastError = err.Error()
			return rep, fmt.Errorf("bsimport: tube %q: %w", name, err)
		}
	}
	return rep, nil
}

type importer struct {
	to     Target
	o      Options
	bc     *beanstalk.Conn
	server string
	limit  *rate.Limiter
}

func (im *importer) progress(t *TubeReport) {
	if im.o.Progress != nil {
		im.o.Progress(t)
	}
}

// tube moves one tube's jobs: ready, delayed, buried, then ready again for the jobs that
// became ready meanwhile (delays that ended, workers' releases).
func (im *importer) tube(ctx context.Context, t *TubeReport) error {
	tb := beanstalk.NewTube(im.bc, t.Tube)
	st, err := tb.Stats()
	if errors.Is(err, beanstalk.ErrNotFound) {
		t.Done = true // no such tube (beanstalkd drops empty tubes nobody uses)
		return nil
	}
	if err != nil {
		return err
	}
	t.Found = Found{Ready: atoi(st["current-jobs-ready"]), Delayed: atoi(st["current-jobs-delayed"]),
		Buried: atoi(st["current-jobs-buried"]), Reserved: atoi(st["current-jobs-reserved"])}
	t.PausedSeconds = atoi(st["pause-time-left"])
	if im.o.DryRun {
		t.Reserved, t.Done = t.Found.Reserved, true
		return nil
	}
	if t.PausedSeconds > 0 {
		// Before any job: spool's workers must not get the tube's jobs before its time.
		// One second more: pause-time-left is rounded down.
		if err := im.pause(ctx, t.Tube, time.Duration(t.PausedSeconds+1)*time.Second); err != nil {
			return fmt.Errorf("pause the spool queue: %w", err)
		}
	}
	refused := map[uint64]uint32{}
	if err := im.ready(ctx, tb, t, refused); err != nil {
		return err
	}
	if err := im.fromHead(ctx, tb, t, "delayed", &t.Delayed); err != nil {
		return err
	}
	if err := im.fromHead(ctx, tb, t, "buried", &t.Buried); err != nil {
		return err
	}
	if err := im.ready(ctx, tb, t, refused); err != nil {
		return err
	}
	if st, err = tb.Stats(); err == nil {
		t.Reserved = atoi(st["current-jobs-reserved"])
	} else if !errors.Is(err, beanstalk.ErrNotFound) {
		return err
	}
	t.Done = true
	return nil
}

func (im *importer) pause(ctx context.Context, queue string, d time.Duration) error {
	return im.retry(ctx, func() error {
		if _, err := im.to.UpdateQueue(ctx, queue, spool.QueueSettings{}); err != nil {
			return err
		}
		_, err := im.to.Pause(ctx, queue, d)
		return err
	})
}

// job is a beanstalkd job on its way.
type job struct {
	id    uint64
	body  []byte
	state string // ready, delayed, buried
	pri   uint32
	ttr   time.Duration
	delay time.Duration // remaining delay of a delayed job
}

// ready moves the tube's ready jobs, most urgent first. A job spool refused (in refused,
// with its priority; this pass or an earlier one) is held reserved until the pass ends, so
// that peek-ready shows the next one.
func (im *importer) ready(ctx context.Context, tb *beanstalk.Tube, t *TubeReport, refused map[uint64]uint32) error {
	var held []uint64
	defer func() {
		for _, id := range held {
			im.bc.Release(id, refused[id], 0) // NOT_FOUND when its reservation ran out: ready anyway
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		id, _, err := tb.PeekReady()
		if errors.Is(err, beanstalk.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if _, ok := refused[id]; ok {
			// Refused before: hold it (again, if its reservation ran out).
			if _, err := im.bc.ReserveJob(id); err != nil && !errors.Is(err, beanstalk.ErrNotFound) {
				return err
			}
			held = append(held, id)
			continue
		}
		if err := im.limit.Wait(ctx); err != nil {
			return err
		}
		body, err := im.bc.ReserveJob(id)
		if errors.Is(err, beanstalk.ErrNotFound) {
			continue // a worker of beanstalkd took it first
		}
		if err != nil {
			return err
		}
		j, err := im.stats(id, body)
		if err != nil {
			return err
		}
		j.state = "ready"
		out, err := im.move(ctx, t.Tube, j)
		if out == refusedJob {
			refused[id] = j.pri
			held = append(held, id)
			t.Ready.Failed++
			t.LastError = err.Error()
		} else if err != nil {
			return err
		}
		out.count(&t.Ready)
		im.progress(t)
	}
}

// fromHead moves the tube's delayed or buried jobs, reading the head of their queue in
// beanstalkd (peek-delayed: the one whose delay ends first; peek-buried: the oldest).
func (im *importer) fromHead(ctx context.Context, tb *beanstalk.Tube, t *TubeReport, state string, c *Counts) error {
	peek := tb.PeekBuried
	if state == "delayed" {
		peek = tb.PeekDelayed
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		id, body, err := peek()
		if errors.Is(err, beanstalk.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		j, err := im.stats(id, body)
		if errors.Is(err, beanstalk.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return err
		}
		if j.state != state {
			continue // moved on meanwhile: a delay ended, a kick
		}
		if err := im.limit.Wait(ctx); err != nil {
			return err
		}
		reserved := false
		if state == "delayed" && j.delay <= 2*time.Second {
			// Its delay ends within a second (time-left 1 or 0): hold it, or a worker of
			// beanstalkd could take it while spool stores it.
			if _, err := im.bc.ReserveJob(id); errors.Is(err, beanstalk.ErrNotFound) {
				continue
			} else if err != nil {
				return err
			}
			reserved = true
		}
		out, err := im.move(ctx, t.Tube, j)
		if out == refusedJob {
			if reserved {
				im.bc.Release(id, j.pri, j.delay-time.Second)
			}
			c.Failed++
			t.LastError = err.Error()
			if st, err := tb.Stats(); err == nil {
				c.Left = max(atoi(st["current-jobs-"+state])-1, 0)
			}
			im.progress(t)
			return nil
		}
		if err != nil {
			return err
		}
		out.count(c)
		im.progress(t)
	}
}

// stats reads a job's priority, TTR, state and remaining delay (stats-job).
func (im *importer) stats(id uint64, body []byte) (job, error) {
	st, err := im.bc.StatsJob(id)
	if err != nil {
		return job{}, err
	}
	j := job{id: id, body: body, state: st["state"], ttr: time.Duration(atoi(st["ttr"])) * time.Second}
	pri, err := strconv.ParseUint(st["pri"], 10, 32)
	if err != nil {
		return job{}, fmt.Errorf("stats-job %d: pri %q: %w", id, st["pri"], err)
	}
	j.pri = uint32(pri)
	if j.state == "delayed" {
		// time-left is rounded down to the second: one more, so that the job is never
		// ready earlier in spool than it would have been in beanstalkd.
		// (beanstalkd's delays go to 2^32-1 seconds, spool's to engine.MaxDelay)
		j.delay = min(time.Duration(atoi(st["time-left"])+1)*time.Second, engine.MaxDelay)
	}
	return j, nil
}

// outcome is what became of one job.
type outcome int

const (
	moved outcome = iota + 1
	skipped
	raced
	refusedJob
)

func (o outcome) count(c *Counts) {
	switch o {
	case moved:
		c.Moved++
	case skipped:
		c.Skipped++
	case raced:
		c.Raced++
	}
}

// move stores the job in spool, then deletes it from beanstalkd. Once begun it is not
// cancelled: an interrupted import finishes the job in hand.
func (im *importer) move(ctx context.Context, queue string, j job) (outcome, error) {
	ctx = context.WithoutCancel(ctx)
	opts := []spool.EnqueueOption{
		spool.Priority(j.pri),
		spool.Lease(min(max(j.ttr, engine.MinLease), engine.MaxLease)),
		// As a job put through spool's beanstalkd front: beanstalkd has no limit.
		spool.MaxAttempts(engine.MaxMaxAttempts),
		spool.UniqueKey(UniqueKey(im.server, j.id)),
		spool.Metadata(map[string]string{
			MetaJob: strconv.FormatUint(j.id, 10), MetaServer: im.server, MetaState: j.state,
		}),
	}
	switch j.state {
	case "delayed":
		opts = append(opts, spool.Delay(j.delay))
	case "buried":
		opts = append(opts, spool.Buried())
	}
	var dup bool
	err := im.retry(ctx, func() error {
		sj, err := im.to.Enqueue(ctx, queue, "", j.body, opts...)
		if err == nil {
			dup = sj.Duplicate
		}
		return err
	})
	if errors.Is(err, spool.ErrInvalidArgument) || errors.Is(err, spool.ErrPayloadTooLarge) {
		return refusedJob, fmt.Errorf("job %d: %w", j.id, err)
	}
	if err != nil {
		return 0, fmt.Errorf("store job %d: %w", j.id, err)
	}
	if err := im.bc.Delete(j.id); errors.Is(err, beanstalk.ErrNotFound) {
		return raced, nil
	} else if err != nil {
		return 0, fmt.Errorf("delete job %d (stored in spool): %w", j.id, err)
	}
	if dup {
		return skipped, nil
	}
	return moved, nil
}

// retry runs f until it succeeds, fails otherwise than with spool unavailable, or has
// run Options.Attempts times. Retrying a store is safe: the unique key makes it idempotent.
func (im *importer) retry(ctx context.Context, f func() error) error {
	wait := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil || !errors.Is(err, spool.ErrUnavailable) || attempt >= im.o.Attempts {
			return err
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return err
		}
		wait = min(2*wait, 5*time.Second)
	}
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// deadlineConn bounds every read and write, so that a beanstalkd that stops answering
// fails the import instead of hanging it.
type deadlineConn struct {
	net.Conn
	d time.Duration
}

func (c deadlineConn) Read(p []byte) (int, error) {
	c.SetReadDeadline(time.Now().Add(c.d))
	return c.Conn.Read(p)
}

func (c deadlineConn) Write(p []byte) (int, error) {
	c.SetWriteDeadline(time.Now().Add(c.d))
	return c.Conn.Write(p)
}
