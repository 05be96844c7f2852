package spool

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// Middleware wraps a Handler with behaviour shared by all job types: logging, metrics,
// tracing, authorisation of tenants, ... Worker.Use installs it around every handler,
// including the answer to jobs of unknown types.
type Middleware func(Handler) Handler

// Hooks observe the jobs a Worker runs, for metrics and tracing; Middleware turns them
// into a Middleware. Either function may be nil.
type Hooks struct {
	// Start is called before the handler runs; the context it returns (for example with a
	// tracing span) is given to the handler and to Finish. Returning nil keeps ctx.
	Start func(ctx context.Context, job *Job) context.Context
	// Finish is called when the handler returned, with its error (nil on success; a
	// *PanicError after a panic) and how long it ran.
	Finish func(ctx context.Context, job *Job, err error, elapsed time.Duration)
}

// Middleware returns a Middleware calling the hooks around each job.
func (h Hooks) Middleware() Middleware {
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, job *Job) (err error) {
			if h.Start != nil {
				if c := h.Start(ctx, job); c != nil {
					ctx = c
				}
			}
			start := time.Now()
			if h.Finish != nil {
				// Deferred so that Finish also sees a panic of next (re-raised afterwards
				// for the worker to recover and report).
				defer func() {
					if v := recover(); v != nil {
						h.Finish(ctx, job, &PanicError{Value: v}, time.Since(start))
						panic(v)
					}
					h.Finish(ctx, job, err, time.Since(start))
				}()
			}
			return next.Work(ctx, job)
		})
	}
}

// Logging returns a Middleware that logs every job the worker runs with its id, type,
// queue, attempt and duration, by what becomes of it: "job succeeded" (Info), "job failed"
// when it will be retried (Warn), "job buried" when it failed for good: a Permanent error
// or its attempts used up (Error), "job snoozed" (Info), "job released" when a hard
// shutdown interrupted it (Warn), "job abandoned" when its lease was lost (Warn).
func Logging(logger *slog.Logger) Middleware {
	return Hooks{Finish: func(ctx context.Context, job *Job, err error, elapsed time.Duration) {
		attrs := []slog.Attr{
			slog.Uint64("job", job.ID),
			slog.String("type", job.Type),
			slog.String("queue", job.Queue),
			slog.Int("attempt", job.Attempts),
			slog.Duration("elapsed", elapsed),
		}
		var cause error
		if ctx.Err() != nil {
			cause = context.Cause(ctx)
		}
		if err != nil {
			var pe *PanicError
			if errors.As(err, &pe) {
				// The stack is logged by the worker; the value is enough here.
				attrs = append(attrs, slog.Any("panic", pe.Value))
			} else {
				attrs = append(attrs, slog.String("err", err.Error()))
			}
		}
		// The same decisions as the worker's report of the outcome (executor.go).
		var (
			snooze *SnoozeError
			perm   *PermanentError
		)
		level, msg := slog.LevelWarn, "job failed"
		switch {
		case errors.Is(cause, ErrLeaseLost):
			msg = "job abandoned"
			attrs = append(attrs, slog.String("reason", "lease lost: the outcome is not reported"))
		case err == nil:
			level, msg = slog.LevelInfo, "job succeeded"
		case errors.Is(cause, ErrWorkerShutdown):
			msg = "job released"
			attrs = append(attrs, slog.String("reason", "interrupted by the worker's shutdown"))
		case errors.As(err, &snooze):
			level, msg = slog.LevelInfo, "job snoozed"
			attrs = append(attrs, slog.Duration("delay", snooze.Delay))
		case errors.As(err, &perm) || job.MaxAttempts > 0 && job.Attempts >= job.MaxAttempts:
			level, msg = slog.LevelError, "job buried"
			attrs = append(attrs, slog.Int("max_attempts", job.MaxAttempts))
		default:
			attrs = append(attrs, slog.Int("max_attempts", job.MaxAttempts))
		}
		logger.LogAttrs(ctx, level, msg, attrs...)
	}}.Middleware()
}
