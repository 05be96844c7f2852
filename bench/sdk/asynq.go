package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"

	"github.com/hibiken/asynq"
)

// asynqSystem drives Asynq on Redis: a Client enqueuing one task per call (Asynq has no
// batch enqueue) and a Server with a no-op handler.
type asynqSystem struct {
	c         config
	queue     string
	client    *asynq.Client
	server    *asynq.Server
	inspector *asynq.Inspector
}

func newAsynq(c config, queue string, log *slog.Logger) *asynqSystem {
	opt := asynq.RedisClientOpt{Addr: c.redis}
	return &asynqSystem{
		c:      c,
		queue:  queue,
		client: asynq.NewClient(opt),
		server: asynq.NewServer(opt, asynq.Config{
			Concurrency:       c.concurrency,
			Queues:            map[string]int{queue: 1},
			TaskCheckInterval: c.asynqCheck,
			Logger:            asynqLogger{log},
			LogLevel:          asynq.WarnLevel,
		}),
		inspector: asynq.NewInspector(opt),
	}
}

func (s *asynqSystem) start(ctx context.Context) error {
	if err := s.client.Ping(); err != nil {
		return fmt.Errorf("redis at %s: %w", s.c.redis, err)
	}
	return s.server.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil }))
}

func (s *asynqSystem) enqueue(ctx context.Context, payloads [][]byte) error {
	for _, p := range payloads {
		if _, err := s.client.EnqueueContext(ctx, asynq.NewTask("noop", p), asynq.Queue(s.queue)); err != nil {
			return err
		}
	}
	return nil
}

// completed is the queue's processed total: tasks whose handler returned, succeeded or
// failed (a no-op handler does not fail), counted by the server once it removed the task.
func (s *asynqSystem) completed(context.Context) (int64, error) {
	info, err := s.inspector.GetQueueInfo(s.queue)
	if err != nil {
		// The queue exists in Redis from the first enqueue on.
		if qs, qerr := s.inspector.Queues(); qerr == nil && !slices.Contains(qs, s.queue) {
			return 0, nil
		}
		return 0, err
	}
	return int64(info.ProcessedTotal), nil
}

func (s *asynqSystem) stop(context.Context) error {
	s.server.Shutdown()
	return errors.Join(s.client.Close(), s.inspector.Close())
}

func (s *asynqSystem) describe() string {
	check := "1s (default)"
	if s.c.asynqCheck > 0 {
		check = s.c.asynqCheck.String()
	}
	return fmt.Sprintf("Asynq: Client.EnqueueContext, one task per call (Asynq has no batch enqueue; -batch only groups the calls), Server with Concurrency %d, TaskCheckInterval %s; completion = the queue's processed total", s.c.concurrency, check)
}

// asynqLogger passes Asynq's log lines to slog.
type asynqLogger struct{ log *slog.Logger }

func (l asynqLogger) Debug(args ...any) { l.log.Debug(fmt.Sprint(args...)) }
func (l asynqLogger) Info(args ...any)  { l.log.Info(fmt.Sprint(args...)) }
func (l asynqLogger) Warn(args ...any)  { l.log.Warn(fmt.Sprint(args...)) }
func (l asynqLogger) Error(args ...any) { l.log.Error(fmt.Sprint(args...)) }

// Fatal exits, as Asynq's Logger contract asks.
func (l asynqLogger) Fatal(args ...any) {
	l.log.Error(fmt.Sprint(args...))
	os.Exit(1)
}
