// Command sdk-bench runs one workload through three job systems' Go libraries, side by
// side: spool's Go SDK (Client.EnqueueBatch and a Worker) against a spool server, Asynq on
// Redis and River on PostgreSQL.
//
// P producers enqueue N jobs of S bytes in batches of B (Asynq has no batch enqueue: one
// Enqueue per job), while one worker (a spool Worker, an Asynq server, a River client) runs
// them with concurrency C and a no-op handler. The clock runs from the first enqueue until
// the system has stored all N completions, read back from the system itself: the queue's
// succeeded total (spool), the queue's processed total (Asynq), the completed rows (River).
//
//	sdk-bench -mode spool -url http://127.0.0.1:7420 -jobs 50000
//	sdk-bench -mode asynq -redis 127.0.0.1:6379 -jobs 50000
//	sdk-bench -mode river -pg postgres://bench@127.0.0.1:5432/bench -jobs 50000
//
// It lives in its own module so that spool's module does not depend on Asynq, River or
// their drivers. scripts/bench.sh builds it and runs the three modes in one go.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type config struct {
	mode        string
	jobs        int
	producers   int
	concurrency int
	size        int
	batch       int
	poll        time.Duration
	stall       time.Duration
	quiet       bool

	spoolURL string
	redis    string
	pg       string

	asynqCheck   time.Duration // Asynq's TaskCheckInterval; 0: Asynq's default
	riverFetchCD time.Duration // River's FetchCooldown; 0: River's default
}

// system is one job system driven through its Go library.
type system interface {
	// start starts the worker side: concurrency handlers running a no-op.
	start(ctx context.Context) error
	// enqueue stores the jobs of payloads, in one call where the library has a batch call.
	enqueue(ctx context.Context, payloads [][]byte) error
	// completed returns how many jobs of this run the system has stored as completed.
	completed(ctx context.Context) (int64, error)
	// stop stops the worker side and closes the connections.
	stop(ctx context.Context) error
	// describe says how the workload runs on this system (batching, settings).
	describe() string
}

func main() {
	var c config
	flag.StringVar(&c.mode, "mode", "spool", "system: spool, asynq or river")
	flag.IntVar(&c.jobs, "jobs", 50000, "jobs to run")
	flag.IntVar(&c.producers, "producers", 4, "concurrent producers")
	flag.IntVar(&c.concurrency, "concurrency", 16, "handlers running at once in the worker")
	flag.IntVar(&c.size, "size", 256, "payload bytes per job")
	flag.IntVar(&c.batch, "batch", 100, "jobs per enqueue call (spool: EnqueueBatch, river: InsertMany; asynq has none)")
	flag.DurationVar(&c.poll, "poll", 100*time.Millisecond, "how often the completed count is read")
	flag.DurationVar(&c.stall, "stall", time.Minute, "give up when no job completes for this long")
	flag.BoolVar(&c.quiet, "quiet", false, "no progress lines on stderr")
	flag.StringVar(&c.spoolURL, "url", "http://127.0.0.1:7420", "spool server URL (mode spool)")
	flag.StringVar(&c.redis, "redis", "127.0.0.1:6379", "Redis address (mode asynq)")
	flag.StringVar(&c.pg, "pg", "postgres://127.0.0.1:5432/postgres", "PostgreSQL URL (mode river)")
	// Both defaults favour the other systems: with their own defaults, Asynq's idle
	// processors sleep 0.5-1.5 s after finding the queue empty at start, and River fetches
	// at most once per 100 ms, at most 16 jobs with 16 workers: 160 jobs/s.
	flag.DurationVar(&c.asynqCheck, "asynq-task-check-interval", 10*time.Millisecond, "Asynq's TaskCheckInterval, its poll of empty queues (0: Asynq's default, 1s)")
	flag.DurationVar(&c.riverFetchCD, "river-fetch-cooldown", time.Millisecond, "River's FetchCooldown, the least time between two fetches (0: River's default, 100ms)")
	flag.Parse()
	if err := c.check(); err != nil {
		fmt.Fprintln(os.Stderr, "sdk-bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, c, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "sdk-bench:", err)
		os.Exit(1)
	}
}

func (c config) check() error {
	switch {
	case c.jobs < 1:
		return errors.New("-jobs must be at least 1")
	case c.producers < 1:
		return errors.New("-producers must be at least 1")
	case c.concurrency < 1:
		return errors.New("-concurrency must be at least 1")
	case c.size < 2:
		return errors.New("-size must be at least 2 (the payload is a JSON string)")
	case c.batch < 1 || c.batch > 1000:
		return errors.New("-batch must be 1 to 1000")
	case c.poll <= 0:
		return errors.New("-poll must be positive")
	case c.asynqCheck < 0 || c.riverFetchCD < 0:
		return errors.New("-asynq-task-check-interval and -river-fetch-cooldown must not be negative")
	}
	return nil
}

func newSystem(ctx context.Context, c config, queue string, log *slog.Logger) (system, error) {
	switch c.mode {
	case "spool":
		return newSpool(c, queue, log)
	case "asynq":
		return newAsynq(c, queue, log), nil
	case "river":
		return newRiver(ctx, c, queue, log)
	}
	return nil, fmt.Errorf("unknown -mode %q: want spool, asynq or river", c.mode)
}

// payload returns size bytes that are a JSON string, so that every system stores the same
// bytes as they are (spool and River keep JSON as JSON; Asynq stores bytes).
func payload(size int) []byte {
	return []byte(`"` + strings.Repeat("x", size-2) + `"`)
}

func run(ctx context.Context, c config, out, progress io.Writer) error {
	// The libraries' own logs go to stderr, warnings and errors only.
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// A fresh queue per run: the completed count of a previous run cannot leak into this one.
	queue := fmt.Sprintf("sdkbench_%d", time.Now().UnixNano())
	sys, err := newSystem(ctx, c, queue, log)
	if err != nil {
		return err
	}
	if err := sys.start(ctx); err != nil {
		_ = sys.stop(context.Background())
		return fmt.Errorf("%s: start the worker: %w", c.mode, err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := sys.stop(sctx); err != nil {
			fmt.Fprintf(progress, "sdk-bench: %s: stop: %v\n", c.mode, err)
		}
	}()

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var enqueued atomic.Int64
	var wg sync.WaitGroup
	p := payload(c.size)
	start := time.Now()
	var enqueueDone atomic.Int64 // nanoseconds after start when the last producer finished
	var producersLeft atomic.Int64
	producersLeft.Store(int64(c.producers))
	for i := range c.producers {
		n := c.jobs / c.producers
		if i < c.jobs%c.producers {
			n++
		}
		wg.Go(func() {
			defer func() {
				if producersLeft.Add(-1) == 0 {
					enqueueDone.Store(int64(time.Since(start)))
				}
			}()
			batch := make([][]byte, 0, c.batch)
			for n > 0 {
				batch = batch[:0]
				for range min(n, c.batch) {
					batch = append(batch, p)
				}
				if err := sys.enqueue(ctx, batch); err != nil {
					cancel(fmt.Errorf("enqueue: %w", err))
					return
				}
				n -= len(batch)
				enqueued.Add(int64(len(batch)))
			}
		})
	}

	done, err := waitCompleted(ctx, c, sys, start, &enqueued, progress)
	elapsed := time.Since(start)
	cancel(nil)
	wg.Wait()
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
			err = cause
		}
		return fmt.Errorf("%s: %w (%d enqueued, %d completed)", c.mode, err, enqueued.Load(), done)
	}
	fmt.Fprintf(out, "mode: %s\n", c.mode)
	fmt.Fprintf(out, "how: %s\n", sys.describe())
	fmt.Fprintf(out, "workload: %d jobs of %d B, %d producers, batch %d, concurrency %d, no-op handler\n",
		c.jobs, c.size, c.producers, c.batch, c.concurrency)
	fmt.Fprintf(out, "enqueue: all stored after %.2fs (%.0f jobs/s)\n",
		time.Duration(enqueueDone.Load()).Seconds(), float64(c.jobs)/time.Duration(enqueueDone.Load()).Seconds())
	fmt.Fprintf(out, "completed: %d in %.2fs\n", done, elapsed.Seconds())
	fmt.Fprintf(out, "throughput: %.0f jobs/s\n", float64(c.jobs)/elapsed.Seconds())
	return nil
}

// waitCompleted reads the system's completed count every c.poll until it reaches c.jobs,
// printing progress once a second. It fails when the count stops growing for c.stall.
func waitCompleted(ctx context.Context, c config, sys system, start time.Time, enqueued *atomic.Int64, progress io.Writer) (int64, error) {
	tick := time.NewTicker(c.poll)
	defer tick.Stop()
	var last int64
	lastChange, lastReport := time.Now(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-tick.C:
		}
		n, err := sys.completed(ctx)
		if err != nil {
			return last, fmt.Errorf("read the completed count: %w", err)
		}
		now := time.Now()
		if n != last {
			last, lastChange = n, now
		}
		if n >= int64(c.jobs) {
			return n, nil
		}
		if now.Sub(lastChange) > c.stall {
			return n, fmt.Errorf("no job completed for %s", c.stall)
		}
		if !c.quiet && now.Sub(lastReport) >= time.Second {
			lastReport = now
			el := now.Sub(start).Seconds()
			fmt.Fprintf(progress, "%s %5.1fs: enqueued %d, completed %d of %d (%.0f jobs/s)\n",
				c.mode, el, enqueued.Load(), n, c.jobs, float64(n)/el)
		}
	}
}
