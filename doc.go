// Package spool is the Go client and worker runtime of spool, a background-job server:
// durable named queues, jobs with leases and heartbeats, retries with backoff, delays,
// buried jobs and kicks, pause and resume, job status by id and per-queue statistics.
//
// The package talks to spool servers over their HTTP API only; it does not link the server.
// Start a server with the spool command:
//
//	spool serve --data ./spool-data --http 127.0.0.1:7420
//
// # Enqueueing
//
// A Client enqueues jobs: a queue name, a job type (the handler's name) and a payload,
// which may be any value encoding/json can marshal or raw bytes:
//
//	client, err := spool.NewClient("http://127.0.0.1:7420")
//	...
//	job, err := client.Enqueue(ctx, "email", "email.send", map[string]string{"to": "a@example.com"},
//		spool.Priority(10), spool.Delay(time.Minute), spool.UniqueKey("welcome-42"))
//
// A job is ready at once, or delayed until its run-at time (Delay, RunAt). Jobs are handed
// out most urgent first (a lower Priority is more urgent), first in first out within a
// priority band. EnqueueBatch enqueues up to 1000 jobs in one request.
//
// # Running jobs with a Worker
//
// A Worker reserves jobs from one or several queues and runs a handler per job type:
//
//	worker, err := spool.NewWorker(client, spool.WorkerOptions{
//		Queues:      []string{"critical", "default"},
//		Weights:     map[string]int{"critical": 3}, // weighted round-robin; or StrictOrder
//		Concurrency: 20,
//	})
//	...
//	worker.Use(spool.Logging(logger))
//	worker.Handle("email.send", spool.TypedHandler(func(ctx context.Context, job *spool.Job, e Email) error {
//		return send(ctx, e)
//	}))
//	err = worker.RunUntilSignal(ctx) // graceful shutdown on SIGINT or SIGTERM
//
// Returning nil acknowledges the job (with the result given to SetResult); an error fails
// the attempt, retried after the queue's backoff; Permanent buries the job at once,
// RetryAfter chooses the delay, Snooze puts the job back without using an attempt. A panic
// is recovered and reported with its stack. While a handler runs, the worker extends the
// job's lease (every third of the lease), so a job may run for hours with a short lease;
// if the worker dies, the job is offered again when its lease ends. The handler's context
// is cancelled at the job's timeout (the Timeout enqueue option, else the worker's
// JobTimeout), when the lease is lost and at a hard shutdown (context.Cause tells which).
//
// A queue paused on the server hands out nothing: the worker's other queues keep running,
// and it takes the queue's jobs again once it is resumed, without a restart. Shutdown (or
// the end of Run's context) stops taking jobs, lets the running ones finish within a drain
// timeout, then cancels them and releases them back to their queues. The worker reserves
// as many jobs as it has free slots in one request, and acknowledges in batches (AckBatch).
// Middleware (Use, Hooks, Logging) wraps every handler for logging, metrics and tracing.
//
// The spool command's "spool work" runs a program for each job on the same runtime.
//
// # Processing by hand
//
// Reserve leases ready jobs to the caller. Each reserved job carries a lease token; finish
// it with Ack (success), Fail (retry after a backoff, or bury once the attempts are used
// up), Release (give it back without using an attempt) or Bury, and extend a long job's
// lease with Touch. A lease that runs out makes the job ready again for another worker:
// delivery is at least once.
//
// # Job status and operations
//
// Job returns a job's state by id; WaitJob polls until it has succeeded or was cancelled.
// Cancel, Kick, Queues, Queue, UpdateQueue, Pause, Resume, KickQueue, ListJobs, Purge and
// Stats are the operator's actions, also available in the spool command.
//
// # Errors
//
// Errors from the server are *APIError values carrying the API's error code; test them with
// errors.Is against ErrJobNotFound, ErrQueueNotFound, ErrLeaseLost, ErrWrongState,
// ErrInvalidArgument, ErrPayloadTooLarge and ErrUnavailable.
//
// # High availability
//
// NewClient accepts several servers of one cluster, separated by commas. A request goes to
// the server that answered last and fails over to the next one when a server is unreachable
// or answers 503.
package spool
