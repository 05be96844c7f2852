package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

// noopArgs is the River job: the payload is a JSON value kept as it is.
type noopArgs struct {
	Data json.RawMessage `json:"d"`
}

func (noopArgs) Kind() string { return "noop" }

type noopWorker struct {
	river.WorkerDefaults[noopArgs]
}

func (noopWorker) Work(context.Context, *river.Job[noopArgs]) error { return nil }

// riverSystem drives River on PostgreSQL: InsertMany in batches and a client working one
// queue with MaxWorkers = concurrency and the FetchCooldown of -river-fetch-cooldown,
// River's other settings at their defaults.
type riverSystem struct {
	c      config
	queue  string
	pool   *pgxpool.Pool
	client *river.Client[pgx.Tx]
}

func newRiver(ctx context.Context, c config, queue string, log *slog.Logger) (*riverSystem, error) {
	pool, err := pgxpool.New(ctx, c.pg)
	if err != nil {
		return nil, fmt.Errorf("postgres %s: %w", c.pg, err)
	}
	driver := riverpgxv5.New(pool)
	// River's schema: applied here (idempotent) so the run needs no separate step.
	migrator, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: log})
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("river migrator: %w", err)
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		pool.Close()
		return nil, fmt.Errorf("river migrate up: %w", err)
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, noopWorker{})
	client, err := river.NewClient(driver, &river.Config{
		Queues:        map[string]river.QueueConfig{queue: {MaxWorkers: c.concurrency}},
		Workers:       workers,
		FetchCooldown: c.riverFetchCD, // 0: River's default
		Logger:        log,
	})
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("river client: %w", err)
	}
	return &riverSystem{c: c, queue: queue, pool: pool, client: client}, nil
}

func (s *riverSystem) start(ctx context.Context) error {
	return s.client.Start(context.WithoutCancel(ctx))
}

func (s *riverSystem) enqueue(ctx context.Context, payloads [][]byte) error {
	params := make([]river.InsertManyParams, len(payloads))
	for i, p := range payloads {
		params[i] = river.InsertManyParams{Args: noopArgs{Data: p}, InsertOpts: &river.InsertOpts{Queue: s.queue}}
	}
	_, err := s.client.InsertMany(ctx, params)
	return err
}

// completed counts the run's jobs in state completed: River marks a job completed in its
// row once the worker returned (its completer batches these updates).
func (s *riverSystem) completed(ctx context.Context) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE queue = $1 AND state = 'completed'`, s.queue).Scan(&n)
	return n, err
}

func (s *riverSystem) stop(ctx context.Context) error {
	err := s.client.Stop(ctx)
	s.pool.Close()
	return err
}

func (s *riverSystem) describe() string {
	cd := cmp.Or(s.c.riverFetchCD, river.FetchCooldownDefault)
	return fmt.Sprintf("River: Client.InsertMany of %d, one queue with MaxWorkers %d, FetchCooldown %s (default %s), FetchPollInterval %s (default); completion = rows in state completed",
		s.c.batch, s.c.concurrency, cd, river.FetchCooldownDefault, river.FetchPollIntervalDefault)
}
