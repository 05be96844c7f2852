package spool_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spoolq/spool"
)

// BenchmarkWorkerNoop measures a worker running no-op jobs against the real server of
// TestMain: b.N jobs are enqueued first (not timed), then the worker reserves, runs and
// acknowledges them all. It reports jobs/s, end to end through the HTTP API.
//
//	go test -run '^$' -bench WorkerNoop -benchtime 5000x .
func BenchmarkWorkerNoop(b *testing.B) {
	for _, conc := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("concurrency-%d", conc), func(b *testing.B) {
			c := testClient(b)
			q := wq(b, "bench")
			enqueueN(b, c, q, "noop", b.N)
			var done atomic.Int64
			finished := make(chan struct{})
			w := newWorker(b, c, spool.WorkerOptions{Queues: []string{q}, Concurrency: conc})
			w.HandleFunc("noop", func(ctx context.Context, job *spool.Job) error {
				if done.Add(1) == int64(b.N) {
					close(finished)
				}
				return nil
			})
			b.ResetTimer()
			start := time.Now()
			if err := w.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
			select {
			case <-finished:
			case <-time.After(10 * time.Minute):
				b.Fatalf("%d of %d jobs ran in 10 minutes", done.Load(), b.N)
			}
			// Shutdown sends the last acknowledgements: the jobs are all succeeded after it.
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := w.Shutdown(ctx); err != nil {
				b.Fatal(err)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "jobs/s")
			st, err := c.Queue(context.Background(), q)
			if err != nil {
				b.Fatal(err)
			}
			if st.Stats.Ready+st.Stats.Reserved != 0 {
				// Counts can lag a moment; a leftover here would be a lost ack.
				time.Sleep(500 * time.Millisecond)
				if st, err = c.Queue(context.Background(), q); err == nil && st.Stats.Ready+st.Stats.Reserved != 0 {
					b.Errorf("after the run: %d ready, %d reserved", st.Stats.Ready, st.Stats.Reserved)
				}
			}
		})
	}
}
