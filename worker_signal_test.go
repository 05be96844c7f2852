//go:build unix

package spool_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/spoolq/spool"
	"github.com/spoolq/spool/internal/spooltest"
	"github.com/spoolq/spool/internal/testlog"
)

// The first SIGTERM drains the running job; a second one releases it at once.
func TestWorkerRunUntilSignal(t *testing.T) {
	c := testClient(t)
	for _, signals := range []int{1, 2} {
		q := wq(t, "q")
		logs := &testlog.Buffer{}
		w := newWorker(t, c, spool.WorkerOptions{Queues: []string{q}, Concurrency: 1, ShutdownTimeout: time.Minute,
			Logger: slog.New(slog.NewTextHandler(logs, nil))})
		started := make(chan struct{})
		var finished atomic.Bool
		w.HandleFunc("t", func(ctx context.Context, job *spool.Job) error {
			close(started)
			if signals == 1 {
				time.Sleep(500 * time.Millisecond) // finishes during the drain
				finished.Store(true)
				return nil
			}
			<-ctx.Done() // only the second signal ends it
			return ctx.Err()
		})
		done := make(chan error, 1)
		go func() { done <- w.RunUntilSignal(context.Background(), syscall.SIGTERM) }()
		job, err := c.Enqueue(context.Background(), q, "t", nil)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			t.Fatal("job not started")
		}
		for i := range signals {
			if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if i+1 < signals {
				// A signal sent while the same one is still pending is merged into it (by
				// the kernel, and by the Go runtime until os/signal takes it): the next
				// one goes once the worker has taken this one.
				spooltest.Eventually(t, 10*time.Second, func() error {
					if !strings.Contains(logs.String(), "second signal stops at once") {
						return errors.New("the worker has not taken the first signal")
					}
					return nil
				})
			}
		}
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%d signal(s): RunUntilSignal = %v", signals, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%d signal(s): RunUntilSignal did not return", signals)
		}
		want := spool.StateSucceeded
		if signals == 2 {
			want = spool.StateReady
		}
		if j := jobOf(t, c, job.ID); j.State != want || (signals == 1 && !finished.Load()) {
			t.Errorf("%d signal(s): job %s, want %s", signals, j.State, want)
		}
	}
}
