package spool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Defaults of WorkerOptions.
const (
	DefaultConcurrency     = 10
	DefaultPollWait        = 20 * time.Second
	DefaultShutdownTimeout = 30 * time.Second
)

// cancelGrace is how long a worker waits for a handler to return once its context is
// cancelled (timeout, hard shutdown) before it reports the job without it.
const cancelGrace = 2 * time.Second

// WorkerOptions configure a Worker. Only Queues is required.
type WorkerOptions struct {
	// Queues to take jobs from, at least one. By default the worker shares its capacity
	// among them by Weights (weighted round-robin): every queue that has ready jobs gets
	// its share, none is starved, whatever the priorities of their jobs.
	Queues []string
	// Weights gives a queue a larger share of the worker: with {"critical": 6,
	// "default": 3, "low": 1} and all three busy, about 60% of the jobs come from
	// critical. A queue not listed weighs 1. Ignored with StrictOrder.
	Weights map[string]int
	// StrictOrder takes jobs from the queues in the order of Queues: a queue is served only
	// while the queues before it have no ready job (it may starve).
	StrictOrder bool

	// Concurrency is how many jobs run at once. Default DefaultConcurrency.
	Concurrency int
	// JobTimeout bounds each job: its context is cancelled after this long (context.Cause
	// is ErrJobTimeout) and the attempt fails. A job enqueued with the Timeout option has
	// its own instead. 0: no limit (the job's lease is extended by heartbeats for as long
	// as the handler runs).
	JobTimeout time.Duration
	// ShutdownTimeout is how long Run, and Start's context's cancellation, let in-flight
	// jobs finish after the worker stops taking new ones; unfinished jobs are then
	// cancelled and released back to their queues. Default DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// PollWait is how long one reservation request waits on the server for a job when
	// the queues are empty (at most 60s). Default DefaultPollWait.
	PollWait time.Duration

	// Name identifies the worker in the jobs' status. Default "hostname/pid".
	Name string
	// Logger receives the worker's own events: start and stop, paused and resumed queues,
	// lost leases, panics, server errors. Default slog.Default(). Use the Logging
	// middleware to log every job.
	Logger *slog.Logger
}

// Worker runs jobs: it reserves jobs from its queues, runs the handler registered for
// each job's type, extends the job's lease while the handler runs, and reports the outcome.
//
// Register handlers with Handle, HandleFunc and HandleDefault, and middleware with Use,
// then call Run (or Start and Shutdown). A Worker runs once: it cannot be started again
// after it stopped.
//
// Throughput: the worker reserves as many jobs as it has free slots in one request, and
// acknowledges successful jobs in batches; it never holds more jobs than it runs, so that
// a paused queue, or another worker, is not kept waiting behind a local buffer.
type Worker struct {
	client *Client
	opts   WorkerOptions
	log    *slog.Logger

	mu       sync.Mutex
	handlers map[string]Handler
	fallback Handler
	mws      []Middleware
	started  bool
	handler  Handler // the dispatcher wrapped in the middleware, fixed at Start

	picker *picker
	slots  chan struct{} // a token per running handler
	jobs   sync.WaitGroup
	acks   *acker

	baseCtx    context.Context // values of Start's context; cancelled at a hard stop
	hardCancel context.CancelCauseFunc
	stopFetch  context.CancelFunc
	abortFetch context.CancelFunc // cancels the in-flight reservation request itself
	pollID     string             // names this worker's long polls, to end them at shutdown
	fetchDone  chan struct{}
	drained    chan struct{} // fetching stopped and every reserved job reported
	stopped    chan struct{} // drained and the last acknowledgements sent

	stopOnce    sync.Once
	hardOnce    sync.Once
	interrupted atomic.Int64 // jobs cut short by a hard stop
	fatalMu     sync.Mutex
	fatal       error
}

// NewWorker returns a Worker taking jobs through client. It checks the options; see
// WorkerOptions for the defaults.
func NewWorker(client *Client, opts WorkerOptions) (*Worker, error) {
	if client == nil {
		return nil, errors.New("spool: NewWorker: nil client")
	}
	if len(opts.Queues) == 0 {
		return nil, errors.New("spool: NewWorker: no queue: set WorkerOptions.Queues")
	}
	seen := make(map[string]bool, len(opts.Queues))
	for _, q := range opts.Queues {
		if q == "" {
			return nil, errors.New("spool: NewWorker: empty queue name")
		}
		if seen[q] {
			return nil, fmt.Errorf("spool: NewWorker: queue %q listed twice", q)
		}
		seen[q] = true
	}
	for q, wt := range opts.Weights {
		if !seen[q] {
			return nil, fmt.Errorf("spool: NewWorker: weight for queue %q, which is not in Queues", q)
		}
		if wt < 1 {
			return nil, fmt.Errorf("spool: NewWorker: weight %d of queue %q: want at least 1", wt, q)
		}
	}
	switch {
	case opts.Concurrency < 0:
		return nil, fmt.Errorf("spool: NewWorker: concurrency %d: want at least 1", opts.Concurrency)
	case opts.Concurrency == 0:
		opts.Concurrency = DefaultConcurrency
	}
	if opts.JobTimeout < 0 || opts.ShutdownTimeout < 0 || opts.PollWait < 0 {
		return nil, errors.New("spool: NewWorker: negative duration in the options")
	}
	if opts.ShutdownTimeout == 0 {
		opts.ShutdownTimeout = DefaultShutdownTimeout
	}
	if opts.PollWait == 0 {
		opts.PollWait = DefaultPollWait
	}
	opts.PollWait = min(opts.PollWait, 60*time.Second)
	if opts.Name == "" {
		host, _ := os.Hostname()
		opts.Name = host + "/" + strconv.Itoa(os.Getpid())
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	opts.Queues = append([]string(nil), opts.Queues...)
	w := &Worker{
		client:   client,
		opts:     opts,
		log:      logger.With("worker", opts.Name),
		handlers: make(map[string]Handler),
	}
	weights := make([]int, len(opts.Queues))
	for i, q := range opts.Queues {
		weights[i] = max(opts.Weights[q], 1)
	}
	w.picker = newPicker(w, opts.Queues, weights, opts.StrictOrder)
	return w, nil
}

// Handle registers the handler for jobs of type jobType. It panics when jobType is
// empty, already has a handler, or the worker has started.
func (w *Worker) Handle(jobType string, h Handler) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.started:
		panic("spool: Worker.Handle after Start")
	case jobType == "":
		panic("spool: Worker.Handle: empty job type (use HandleDefault)")
	case h == nil:
		panic("spool: Worker.Handle: nil handler")
	case w.handlers[jobType] != nil:
		panic(fmt.Sprintf("spool: Worker.Handle: job type %q registered twice", jobType))
	}
	w.handlers[jobType] = h
}

// HandleFunc registers fn as the handler for jobs of type jobType; see Handle.
func (w *Worker) HandleFunc(jobType string, fn func(ctx context.Context, job *Job) error) {
	w.Handle(jobType, HandlerFunc(fn))
}

// HandleDefault registers the handler of the jobs whose type has no handler of its own
// (including jobs without a type). Without it such jobs fail with an error matching
// ErrNoHandler, and are retried as usual: another worker may know them.
func (w *Worker) HandleDefault(h Handler) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started {
		panic("spool: Worker.HandleDefault after Start")
	}
	w.fallback = h
}

// Use adds middleware around every handler. The first added is the outermost. It panics
// once the worker has started.
func (w *Worker) Use(mw ...Middleware) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started {
		panic("spool: Worker.Use after Start")
	}
	w.mws = append(w.mws, mw...)
}

// dispatch runs the handler of the job's type, turning a panic into a *PanicError.
func (w *Worker) dispatch(ctx context.Context, job *Job) (err error) {
	h := w.handlers[job.Type]
	if h == nil {
		h = w.fallback
	}
	if h == nil {
		return &noHandlerError{jobType: job.Type}
	}
	defer recoverPanic(&err)
	return h.Work(ctx, job)
}

// recoverPanic turns a panic into a *PanicError stored in *err. It must be deferred
// directly.
func recoverPanic(err *error) {
	if v := recover(); v != nil {
		*err = &PanicError{Value: v, Stack: stack()}
	}
}

// Start starts the worker in the background and returns at once. ctx's values are given
// to the handlers' contexts; when ctx is done the worker shuts down as Shutdown does,
// letting in-flight jobs finish for up to WorkerOptions.ShutdownTimeout. Call Shutdown to
// stop it and wait for it.
func (w *Worker) Start(ctx context.Context) error {
	w.mu.Lock()
	if w.started {
		w.mu.Unlock()
		return errors.New("spool: Worker.Start: already started")
	}
	if len(w.handlers) == 0 && w.fallback == nil {
		w.mu.Unlock()
		return errors.New("spool: Worker.Start: no handler registered")
	}
	w.started = true
	var h Handler = HandlerFunc(w.dispatch)
	for i := len(w.mws) - 1; i >= 0; i-- {
		h = w.mws[i](h)
	}
	w.handler = h
	w.mu.Unlock()

	w.slots = make(chan struct{}, w.opts.Concurrency)
	w.acks = newAcker(w)
	w.baseCtx, w.hardCancel = context.WithCancelCause(context.WithoutCancel(ctx))
	fetchCtx, stopFetch := context.WithCancel(context.Background())
	// Reservation requests run on a context of their own: a shutdown ends the server-side
	// long poll (EndPoll) and lets the request answer, rather than cancelling it and losing
	// an answer that is on its way.
	reqCtx, abortFetch := context.WithCancel(context.Background())
	w.stopFetch, w.abortFetch = stopFetch, abortFetch
	w.pollID = fmt.Sprintf("w-%016x", rand.Uint64())
	w.fetchDone = make(chan struct{})
	w.drained = make(chan struct{})
	w.stopped = make(chan struct{})

	w.log.Info("worker started", "queues", w.opts.Queues, "concurrency", w.opts.Concurrency)
	go w.acks.run()
	go w.fetchLoop(fetchCtx, reqCtx)
	go func() {
		<-w.fetchDone
		abortFetch()
		w.jobs.Wait()
		close(w.drained)
		w.acks.close()
		close(w.stopped)
	}()
	go func() {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.opts.ShutdownTimeout)
			defer cancel()
			_ = w.Shutdown(sctx)
		case <-w.stopped:
		}
	}()
	return nil
}

// Shutdown stops the worker gracefully: it takes no more jobs, lets the in-flight jobs
// finish until ctx is done, then cancels their contexts (context.Cause is
// ErrWorkerShutdown) and releases the unfinished ones back to their queues, ready at once
// for another worker. It returns when every job is reported and the last acknowledgements
// are sent: nil when all jobs finished in time, an error wrapping ctx's error when some
// were interrupted, or the error that stopped the worker on its own. It may be called
// several times, and from several goroutines.
func (w *Worker) Shutdown(ctx context.Context) error {
	w.mu.Lock()
	started := w.started
	w.mu.Unlock()
	if !started {
		return errors.New("spool: Worker.Shutdown: not started")
	}
	w.beginStop()
	select {
	case <-w.drained:
	case <-ctx.Done():
		w.hardStop()
	}
	<-w.stopped
	var errs []error
	if n := w.interrupted.Load(); n > 0 {
		errs = append(errs, fmt.Errorf("spool: worker shutdown: %d job(s) interrupted and released: %w", n, context.Cause(ctx)))
	}
	if err := w.fatalErr(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Run starts the worker and blocks until ctx is done, then shuts it down gracefully
// (see Shutdown) within WorkerOptions.ShutdownTimeout. It returns nil after a shutdown
// caused by ctx, even when jobs had to be interrupted (they are released and logged), and
// an error when the worker could not start or stopped on its own: the server refused its
// requests as invalid (a malformed queue name, a URL that is not a spool server).
func (w *Worker) Run(ctx context.Context) error {
	if err := w.Start(ctx); err != nil {
		return err
	}
	<-w.stopped // Start's context watcher shuts the worker down when ctx is done
	return w.fatalErr()
}

// RunUntilSignal is Run until ctx is done or one of the signals arrives (SIGINT and
// SIGTERM when none is given): the first signal starts a graceful shutdown; a second one
// stops the worker at once, releasing the unfinished jobs.
func (w *Worker) RunUntilSignal(ctx context.Context, sigs ...os.Signal) error {
	if len(sigs) == 0 {
		sigs = []os.Signal{os.Interrupt, syscall.SIGTERM}
	}
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, sigs...)
	defer signal.Stop(ch)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := w.Start(runCtx); err != nil {
		return err
	}
	go func() {
		select {
		case s := <-ch:
			w.log.Info("signal: shutting down; a second signal stops at once", "signal", s.String(), "drain", w.opts.ShutdownTimeout)
			cancel()
		case <-w.stopped:
			return
		}
		select {
		case s := <-ch:
			w.log.Warn("second signal: stopping now", "signal", s.String())
			w.hardStop()
		case <-w.stopped:
		}
	}()
	<-w.stopped
	return w.fatalErr()
}

// beginStop makes the worker take no more jobs.
func (w *Worker) beginStop() {
	w.stopOnce.Do(func() {
		w.log.Info("worker stopping: no new jobs; waiting for the running ones")
		w.stopFetch()
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := w.client.EndPoll(ctx, w.pollID); err != nil {
				w.log.Warn("could not end the reservation's long poll; cancelling it", "err", err)
				w.abortFetch()
			}
		}()
	})
}

// hardStop cancels the contexts of the running jobs: they are released once their
// handler returns, or after cancelGrace.
func (w *Worker) hardStop() {
	w.beginStop()
	w.hardOnce.Do(func() {
		w.abortFetch()
		w.log.Warn("worker stopping now: cancelling the running jobs")
		w.hardCancel(ErrWorkerShutdown)
	})
}

// stopWithError stops the worker on its own after an error it cannot recover from.
func (w *Worker) stopWithError(err error) {
	w.fatalMu.Lock()
	if w.fatal == nil {
		w.fatal = err
	}
	w.fatalMu.Unlock()
	w.log.Error("worker stopping on an error", "err", err)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), w.opts.ShutdownTimeout)
		defer cancel()
		_ = w.Shutdown(ctx)
	}()
}

func (w *Worker) fatalErr() error {
	w.fatalMu.Lock()
	defer w.fatalMu.Unlock()
	return w.fatal
}
