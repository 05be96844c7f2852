package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/spoolq/spool"
)

// spoolSystem drives a spool server through the Go SDK: Client.EnqueueBatch and a Worker.
type spoolSystem struct {
	c      config
	queue  string
	client *spool.Client
	worker *spool.Worker
}

func newSpool(c config, queue string, log *slog.Logger) (*spoolSystem, error) {
	client, err := spool.NewClient(c.spoolURL)
	if err != nil {
		return nil, err
	}
	w, err := spool.NewWorker(client, spool.WorkerOptions{
		Queues:      []string{queue},
		Concurrency: c.concurrency,
		Logger:      log,
	})
	if err != nil {
		return nil, err
	}
	w.HandleFunc("noop", func(context.Context, *spool.Job) error { return nil })
	return &spoolSystem{c: c, queue: queue, client: client, worker: w}, nil
}

func (s *spoolSystem) start(ctx context.Context) error {
	// The queue is created before the worker asks for it, as an application would have it.
	if _, err := s.client.UpdateQueue(ctx, s.queue, spool.QueueSettings{}); err != nil {
		return fmt.Errorf("create queue %s: %w", s.queue, err)
	}
	return s.worker.Start(context.WithoutCancel(ctx))
}

func (s *spoolSystem) enqueue(ctx context.Context, payloads [][]byte) error {
	jobs := make([]spool.BatchJob, len(payloads))
	for i, p := range payloads {
		jobs[i] = spool.BatchJob{Type: "noop", Payload: json.RawMessage(p)}
	}
	res, err := s.client.EnqueueBatch(ctx, s.queue, jobs)
	if err != nil {
		return err
	}
	for i, r := range res {
		if r.Err != nil {
			return fmt.Errorf("job %d of the batch: %w", i, r.Err)
		}
	}
	return nil
}

func (s *spoolSystem) completed(ctx context.Context) (int64, error) {
	q, err := s.client.Queue(ctx, s.queue)
	if err != nil {
		return 0, err
	}
	return q.Stats.Succeeded, nil
}

func (s *spoolSystem) stop(ctx context.Context) error {
	return s.worker.Shutdown(ctx)
}

func (s *spoolSystem) describe() string {
	return fmt.Sprintf("spool Go SDK: Client.EnqueueBatch of %d, Worker with Concurrency %d; completion = the queue's succeeded total", s.c.batch, s.c.concurrency)
}
