package spool_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/spoolq/spool"
)

// Run jobs with a Worker: a handler per job type, here a typed one that receives the
// decoded payload, and a result kept with the job.
func ExampleWorker() {
	ctx := context.Background()
	client, err := spool.NewClient(os.Getenv("SPOOL_SERVER")) // "" means http://127.0.0.1:7420
	if err != nil {
		log.Fatal(err)
	}
	worker, err := spool.NewWorker(client, spool.WorkerOptions{
		Queues:      []string{"example-mail"},
		Concurrency: 4,
		Logger:      slog.New(slog.DiscardHandler), // the example's output stays clean
	})
	if err != nil {
		log.Fatal(err)
	}

	type welcome struct {
		To string `json:"to"`
	}
	worker.Handle("email.welcome", spool.TypedHandler(func(ctx context.Context, job *spool.Job, w welcome) error {
		fmt.Println("sending a welcome email to", w.To)
		return spool.SetResult(ctx, map[string]string{"sent_to": w.To})
	}))
	if err := worker.Start(ctx); err != nil {
		log.Fatal(err)
	}

	job, err := client.Enqueue(ctx, "example-mail", "email.welcome", welcome{To: "a@example.com"})
	if err != nil {
		log.Fatal(err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	done, err := client.WaitJob(waitCtx, job.ID, 20*time.Millisecond)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(done.State, string(done.Result))

	// Stop taking jobs; let the running ones finish for up to 10 seconds.
	stopCtx, stop := context.WithTimeout(ctx, 10*time.Second)
	defer stop()
	if err := worker.Shutdown(stopCtx); err != nil {
		log.Fatal(err)
	}
	// Output:
	// sending a welcome email to a@example.com
	// succeeded {"sent_to":"a@example.com"}
}

// A worker process: several queues with weights, a timeout per job, logging of every job,
// and a graceful shutdown on SIGINT or SIGTERM (a second signal stops at once).
func ExampleWorker_RunUntilSignal() {
	client, err := spool.NewClient("http://127.0.0.1:7420")
	if err != nil {
		log.Fatal(err)
	}
	worker, err := spool.NewWorker(client, spool.WorkerOptions{
		Queues:          []string{"critical", "default", "low"},
		Weights:         map[string]int{"critical": 6, "default": 3, "low": 1},
		Concurrency:     50,
		JobTimeout:      10 * time.Minute,
		ShutdownTimeout: time.Minute,
	})
	if err != nil {
		log.Fatal(err)
	}
	worker.Use(spool.Logging(slog.Default()))
	worker.HandleFunc("report.build", func(ctx context.Context, job *spool.Job) error {
		// ... long work: the worker extends the job's lease while it runs ...
		return ctx.Err()
	})
	if err := worker.RunUntilSignal(context.Background()); err != nil {
		log.Fatal(err)
	}
}

// A handler chooses what happens to a job that did not succeed: a plain error retries it
// after the queue's backoff, RetryAfter after a given delay, Permanent buries it now.
func ExamplePermanent() {
	ctx := context.Background()
	client, err := spool.NewClient(os.Getenv("SPOOL_SERVER"))
	if err != nil {
		log.Fatal(err)
	}
	worker, err := spool.NewWorker(client, spool.WorkerOptions{
		Queues: []string{"example-charges"},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		log.Fatal(err)
	}
	errCardDeclined := errors.New("card declined")
	errRateLimited := errors.New("rate limited")
	worker.HandleFunc("charge", func(ctx context.Context, job *spool.Job) error {
		switch job.Metadata["case"] {
		case "declined":
			return spool.Permanent(errCardDeclined) // retrying will not help
		case "busy":
			return spool.RetryAfter(time.Hour, errRateLimited)
		}
		return nil
	})
	if err := worker.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer worker.Shutdown(ctx)

	for _, c := range []string{"declined", "busy", "fine"} {
		job, err := client.Enqueue(ctx, "example-charges", "charge", nil, spool.Metadata(map[string]string{"case": c}))
		if err != nil {
			log.Fatal(err)
		}
		// Poll until the worker has dealt with the job.
		for job.State == spool.StateReady || job.State == spool.StateReserved {
			time.Sleep(20 * time.Millisecond)
			if job, err = client.Job(ctx, job.ID); err != nil {
				log.Fatal(err)
			}
		}
		fmt.Printf("%s: %s %q\n", c, job.State, job.LastError)
		if job.State == spool.StateDelayed {
			_, _ = client.Cancel(ctx, job.ID) // keep the example's queue clean
		}
	}
	// Output:
	// declined: buried "card declined"
	// busy: delayed "rate limited"
	// fine: succeeded ""
}

// Hooks give metrics and tracing a place around every job.
func ExampleHooks() {
	ctx := context.Background()
	client, err := spool.NewClient(os.Getenv("SPOOL_SERVER"))
	if err != nil {
		log.Fatal(err)
	}
	worker, err := spool.NewWorker(client, spool.WorkerOptions{
		Queues: []string{"example-metrics"},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		log.Fatal(err)
	}
	var succeeded, failed atomic.Int64
	worker.Use(spool.Hooks{
		Start: func(ctx context.Context, job *spool.Job) context.Context {
			return ctx // e.g. start a tracing span named job.Type and return its context
		},
		Finish: func(ctx context.Context, job *spool.Job, err error, elapsed time.Duration) {
			if err != nil {
				failed.Add(1)
				return
			}
			succeeded.Add(1) // e.g. observe elapsed in a histogram labelled job.Type
		},
	}.Middleware())
	worker.HandleFunc("resize", func(ctx context.Context, job *spool.Job) error { return nil })
	if err := worker.Start(ctx); err != nil {
		log.Fatal(err)
	}
	for range 3 {
		if _, err := client.Enqueue(ctx, "example-metrics", "resize", nil); err != nil {
			log.Fatal(err)
		}
	}
	for succeeded.Load() < 3 {
		time.Sleep(10 * time.Millisecond)
	}
	if err := worker.Shutdown(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("succeeded:", succeeded.Load(), "failed:", failed.Load())
	// Output: succeeded: 3 failed: 0
}
