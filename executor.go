package spool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"
	"unicode/utf8"
)

// maxErrorText is the longest error text the server keeps with a failure.
const maxErrorText = 4096

// reportTimeout bounds each request reporting a job's outcome.
const reportTimeout = 30 * time.Second

// execute runs one reserved job: the handler in its own goroutine, heartbeats while it
// runs, then the report of its outcome. The caller took a slot and added to w.jobs.
func (w *Worker) execute(rj *ReservedJob) {
	defer w.jobs.Done()
	job := rj.Job // the handler's copy
	st := &jobState{}
	ctx, cancel := context.WithCancelCause(context.WithValue(w.baseCtx, jobStateKey{}, st))
	defer cancel(nil)
	timeout := w.jobTimeout(&job)
	if timeout > 0 {
		var cancelT context.CancelFunc
		ctx, cancelT = context.WithTimeoutCause(ctx, timeout, ErrJobTimeout)
		defer cancelT()
	}

	hbDone := make(chan struct{})
	hbStopped := make(chan struct{})
	go w.heartbeat(ctx, rj, cancel, hbDone, hbStopped)

	result := make(chan error, 1)
	go func() {
		defer func() { <-w.slots }() // the slot is busy until the handler returns
		result <- w.invoke(ctx, &job)
	}()

	var err error
	returned := false
	select {
	case err = <-result:
		returned = true
	case <-ctx.Done():
		t := time.NewTimer(cancelGrace)
		select {
		case err = <-result:
			returned = true
		case <-t.C:
		}
		t.Stop()
	}
	close(hbDone)
	<-hbStopped
	cause := context.Cause(ctx)
	if ctx.Err() == nil {
		cause = nil
	}
	w.report(rj, st, err, returned, cause, timeout)
}

// jobTimeout is the job's own timeout, else the worker's.
func (w *Worker) jobTimeout(job *Job) time.Duration {
	if job.Timeout > 0 {
		return job.Timeout
	}
	return w.opts.JobTimeout
}

// invoke calls the handler chain; a panic in a middleware is recovered too.
func (w *Worker) invoke(ctx context.Context, job *Job) (err error) {
	defer recoverPanic(&err)
	return w.handler.Work(ctx, job)
}

// heartbeat touches the job's lease every third of the lease until done is closed. When
// the lease is lost (expired and given to another worker, or the job was cancelled) it
// cancels the job's context with ErrLeaseLost.
func (w *Worker) heartbeat(ctx context.Context, rj *ReservedJob, cancel context.CancelCauseFunc, done <-chan struct{}, stopped chan<- struct{}) {
	defer close(stopped)
	lease := rj.Lease
	if lease <= 0 {
		lease = time.Until(rj.LeaseExpiresAt)
	}
	if lease <= 0 {
		lease = 30 * time.Second
	}
	interval := max(lease/3, 50*time.Millisecond)
	t := time.NewTimer(interval)
	defer t.Stop()
	rctx := context.WithoutCancel(ctx) // a hard stop ends heartbeats through done, not mid-request
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		tctx, tcancel := context.WithTimeout(rctx, max(interval, time.Second))
		_, err := w.client.Touch(tctx, rj.ID, rj.LeaseToken, 0)
		tcancel()
		switch {
		case err == nil:
			t.Reset(interval)
		case errors.Is(err, ErrLeaseLost) || errors.Is(err, ErrJobNotFound):
			w.log.Warn("lease lost while the job ran: cancelling it", "job", rj.ID, "type", rj.Type, "queue", rj.Queue, "err", err)
			cancel(ErrLeaseLost)
			return
		default:
			w.log.Warn("heartbeat failed; trying again", "job", rj.ID, "queue", rj.Queue, "err", err)
			t.Reset(max(interval/3, 50*time.Millisecond))
		}
	}
}

// report sends the outcome of a job to the server.
func (w *Worker) report(rj *ReservedJob, st *jobState, err error, returned bool, cause error, timeout time.Duration) {
	log := w.log.With("job", rj.ID, "type", rj.Type, "queue", rj.Queue, "attempt", rj.Attempts)
	var pe *PanicError
	if errors.As(err, &pe) {
		log.Error("handler panicked", "panic", pe.Value, "stack", string(pe.Stack))
	}
	switch {
	case errors.Is(cause, ErrLeaseLost):
		log.Debug("outcome dropped: the lease was lost", "err", err)
		return
	case errors.Is(cause, ErrWorkerShutdown) && (err != nil || !returned):
		w.interrupted.Add(1)
		w.release(log, rj, 0)
		return
	case !returned && errors.Is(cause, ErrJobTimeout):
		w.fail(log, rj, FailOptions{Error: fmt.Sprintf("job timed out after %s (the handler did not return)", timeout)})
		return
	case !returned:
		// Not reached: the context is only cancelled for the causes above.
		w.interrupted.Add(1)
		w.release(log, rj, 0)
		return
	case err == nil:
		w.acks.add(ackItem{id: rj.ID, token: rj.LeaseToken, result: st.resultJSON(), log: log})
		return
	}
	var (
		snooze *SnoozeError
		perm   *PermanentError
		retry  *RetryAfterError
	)
	msg := err.Error()
	if errors.Is(cause, ErrJobTimeout) {
		msg = fmt.Sprintf("job timed out after %s: %s", timeout, msg)
	}
	switch {
	case errors.As(err, &snooze):
		w.release(log, rj, snooze.Delay)
	case errors.As(err, &perm):
		w.fail(log, rj, FailOptions{Error: msg, Bury: true})
	case errors.As(err, &retry):
		w.fail(log, rj, FailOptions{Error: msg, RetryIn: max(retry.Delay, 0)})
	default:
		w.fail(log, rj, FailOptions{Error: msg})
	}
}

func (w *Worker) fail(log *slog.Logger, rj *ReservedJob, opts FailOptions) {
	opts.Error = truncateText(opts.Error, maxErrorText)
	ctx, cancel := context.WithTimeout(context.Background(), reportTimeout)
	defer cancel()
	job, err := w.client.Fail(ctx, rj.ID, rj.LeaseToken, opts)
	if err != nil {
		log.Warn("reporting the failure failed; the job is offered again when its lease ends", "err", err)
		return
	}
	log.Debug("job failed", "state", job.State, "err", opts.Error)
}

func (w *Worker) release(log *slog.Logger, rj *ReservedJob, delay time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), reportTimeout)
	defer cancel()
	job, err := w.client.Release(ctx, rj.ID, rj.LeaseToken, ReleaseOptions{Delay: delay})
	if err != nil {
		log.Warn("release failed; the job is offered again when its lease ends", "err", err)
		return
	}
	log.Debug("job released", "state", job.State, "delay", delay)
}

// truncateText shortens s to at most n bytes without cutting a UTF-8 sequence, marking
// the cut.
func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "\n[truncated]"
	cut := n - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}

// stack returns the stack of the calling goroutine.
func stack() []byte { return debug.Stack() }
