package spool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Handler processes jobs of one type for a Worker.
//
// Work returns nil when the job succeeded: the worker acknowledges it. Any other error
// fails the attempt: the server retries the job after its backoff, or buries it once its
// attempts are used up. Wrap the error with Permanent to bury the job at once, with
// RetryAfter to choose the delay before the retry, or return Snooze to put the job back
// without using up an attempt. A panic is recovered and fails the attempt as a
// *PanicError.
//
// ctx is cancelled when the job's timeout passes (context.Cause is ErrJobTimeout), when
// the worker loses the job's lease (ErrLeaseLost) and when the worker stops without
// waiting any longer (ErrWorkerShutdown). Work must then return promptly: after a short
// grace the worker reports the job as failed (timeout) or releases it (shutdown) without
// waiting for Work, which would then run on while another worker may run the job again.
type Handler interface {
	Work(ctx context.Context, job *Job) error
}

// HandlerFunc adapts a function to a Handler.
type HandlerFunc func(ctx context.Context, job *Job) error

// Work calls f(ctx, job).
func (f HandlerFunc) Work(ctx context.Context, job *Job) error { return f(ctx, job) }

// TypedHandler returns a Handler that decodes each job's JSON payload into a new T and
// calls fn with it. A payload that does not decode buries the job (retrying would not
// help) with the decoding error; an empty payload leaves T at its zero value.
//
//	type Email struct{ To, Subject string }
//	w.Handle("email.send", spool.TypedHandler(func(ctx context.Context, job *spool.Job, e Email) error {
//		return send(ctx, e.To, e.Subject)
//	}))
func TypedHandler[T any](fn func(ctx context.Context, job *Job, payload T) error) Handler {
	return HandlerFunc(func(ctx context.Context, job *Job) error {
		var p T
		if len(job.Payload) > 0 {
			if err := json.Unmarshal(job.Payload, &p); err != nil {
				return Permanent(fmt.Errorf("spool: job %d (%s): decode payload into %T: %w", job.ID, job.Type, p, err))
			}
		}
		return fn(ctx, job, p)
	})
}

// Errors a job's context is cancelled with; read them with context.Cause(ctx).
var (
	// ErrJobTimeout: the job ran longer than the worker's JobTimeout.
	ErrJobTimeout = errors.New("spool: job timed out")
	// ErrWorkerShutdown: the worker stopped before the job finished (its drain timeout
	// passed, or it was told to stop at once); the job is released back to its queue.
	ErrWorkerShutdown = errors.New("spool: worker shut down")
	// ErrNoHandler matches the error of a job whose type has no handler on the worker.
	ErrNoHandler = errors.New("spool: no handler for the job type")
)

// PermanentError makes a Worker bury the job now instead of retrying it. Create it with
// Permanent.
type PermanentError struct {
	Err error
}

// Permanent wraps err so that the worker buries the job at once (it stays buried, with
// err as its last error, until an operator kicks it). Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// RetryAfterError makes a Worker fail the attempt and retry the job after Delay instead
// of the queue's backoff. Create it with RetryAfter.
type RetryAfterError struct {
	Delay time.Duration
	Err   error
}

// RetryAfter wraps err so that the job is retried after d (for example the delay a rate
// limited API asked for). The attempt still counts: a job whose attempts are used up is
// buried. A nil err is replaced by a generic one.
func RetryAfter(d time.Duration, err error) error {
	if err == nil {
		err = errors.New("retry requested")
	}
	return &RetryAfterError{Delay: d, Err: err}
}

func (e *RetryAfterError) Error() string { return e.Err.Error() }
func (e *RetryAfterError) Unwrap() error { return e.Err }

// SnoozeError makes a Worker release the job, ready again after Delay, without counting
// the attempt as a failure. Create it with Snooze.
type SnoozeError struct {
	Delay time.Duration
}

// Snooze returns an error that puts the job back in its queue, ready again after d
// (at once when d is 0), and gives back its attempt: for work that cannot start yet.
func Snooze(d time.Duration) error { return &SnoozeError{Delay: d} }

func (e *SnoozeError) Error() string { return fmt.Sprintf("snoozed for %s", e.Delay) }

// PanicError is the error of a handler that panicked: the worker recovers the panic and
// fails the attempt with the panic value and the goroutine's stack as the job's error.
type PanicError struct {
	Value any    // the value passed to panic
	Stack []byte // the stack of the panicking goroutine
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("panic: %v\n\n%s", e.Value, e.Stack)
}

// Unwrap returns the panic value when it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// noHandlerError is the error of a job whose type has no handler.
type noHandlerError struct{ jobType string }

func (e *noHandlerError) Error() string {
	return fmt.Sprintf("spool: no handler for job type %q on this worker", e.jobType)
}

func (e *noHandlerError) Is(target error) bool { return target == ErrNoHandler }

// maxResult is the largest result the server keeps with an acknowledgement.
const maxResult = 64 << 10

// jobState is what a handler may tell the worker about its job through its context.
type jobState struct {
	mu     sync.Mutex
	result json.RawMessage
}

type jobStateKey struct{}

// SetResult records v (any value encoding/json can marshal, at most 64 KiB encoded) as
// the result of the job whose context is ctx; the worker sends it with the job's
// acknowledgement, and Client.Job and WaitJob return it. A later call replaces it. It
// fails when ctx is not a job's context given by a Worker.
func SetResult(ctx context.Context, v any) error {
	st, _ := ctx.Value(jobStateKey{}).(*jobState)
	if st == nil {
		return errors.New("spool: SetResult: the context is not a job's context from a Worker")
	}
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("spool: SetResult: %w", err)
	}
	if len(data) > maxResult {
		return fmt.Errorf("spool: SetResult: result of %d bytes is over the limit of %d", len(data), maxResult)
	}
	st.mu.Lock()
	st.result = data
	st.mu.Unlock()
	return nil
}

func (st *jobState) resultJSON() json.RawMessage {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.result
}
