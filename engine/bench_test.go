package engine_test

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/spoolq/spool/engine"
	"github.com/spoolq/spool/internal/natsd"
)

// benchEngine opens an engine on a fresh embedded JetStream with the given sync policy;
// done closes both.
func benchEngine(b *testing.B, fsync string) (e *engine.Engine, done func()) {
	ns, err := natsd.Start(context.Background(), natsd.Options{StoreDir: b.TempDir(), Fsync: fsync})
	if err != nil {
		b.Fatal(err)
	}
	nc, _ := natsd.Connect(ns, "bench")
	e, err = engine.Open(context.Background(), nc, engine.Config{Logger: quiet})
	if err != nil {
		nc.Close()
		ns.Shutdown()
		b.Fatal(err)
	}
	return e, func() { e.Close(); nc.Close(); ns.Shutdown() }
}

// BenchmarkEnqueue measures stored enqueues per second, singly and in batches of 100, with
// JetStream's default sync policy and with an fsync on every write.
//
//	go test -run '^$' -bench Enqueue -benchtime 3s ./engine
func BenchmarkEnqueue(b *testing.B) {
	payload := make([]byte, 128)
	for _, fsync := range []string{"", "always"} {
		for _, batch := range []int{1, 100} {
			name := fmt.Sprintf("fsync=%s/batch=%d", cmpOr(fsync, "default"), batch)
			b.Run(name, func(b *testing.B) {
				e, done := benchEngine(b, fsync)
				defer done()
				reqs := make([]engine.EnqueueRequest, batch)
				for i := range reqs {
					reqs[i] = engine.EnqueueRequest{Queue: "bench", Payload: payload}
				}
				ctx := context.Background()
				b.ResetTimer()
				for i := 0; i < b.N; i += batch {
					if _, err := e.Enqueue(ctx, reqs); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
			})
		}
	}
}

// BenchmarkLifecycle measures enqueue + reserve + ack, each in batches of 100, with the
// queue's lifecycle events on (the default) and off:
//
//	go test -run '^$' -bench Lifecycle -count 5 ./engine
func BenchmarkLifecycle(b *testing.B) {
	for _, events := range []bool{true, false} {
		b.Run(fmt.Sprintf("events=%v", events), func(b *testing.B) { benchLifecycle(b, events) })
	}
}

func benchLifecycle(b *testing.B, events bool) {
	e, done := benchEngine(b, "")
	defer done()
	ctx := context.Background()
	if _, err := e.PutQueue(ctx, "bench", engine.QueueSettings{Events: &events}); err != nil {
		b.Fatal(err)
	}
	cpu0 := cpuTime()
	b.ResetTimer()
	lifecycle(b, e, "bench")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
	// CPU per job (engine and embedded JetStream, one process) is steadier than jobs/s on a
	// shared machine.
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/job")
}

// BenchmarkCreateQueue measures making queues, 8 at a time: each by the enqueue of one job
// (as spool-bench -mode queues does over HTTP), and each by PutQueue with a setting. CPU
// per queue (engine and embedded JetStream, one process) is steadier than queues/s on a
// shared machine.
//
//	go test -run '^$' -bench CreateQueue -benchtime 5000x -count 5 ./engine
func BenchmarkCreateQueue(b *testing.B) {
	makers := map[string]func(context.Context, *engine.Engine, string) error{
		"enqueue": func(ctx context.Context, e *engine.Engine, q string) error {
			res, err := e.Enqueue(ctx, []engine.EnqueueRequest{{Queue: q, Payload: make([]byte, 128)}})
			if err == nil {
				err = res[0].Err
			}
			return err
		},
		"put": func(ctx context.Context, e *engine.Engine, q string) error {
			_, err := e.PutQueue(ctx, q, engine.QueueSettings{MaxAttempts: 5})
			return err
		},
	}
	for _, how := range []string{"enqueue", "put"} {
		b.Run(how, func(b *testing.B) { benchCreateQueue(b, makers[how]) })
	}
}

func benchCreateQueue(b *testing.B, mk func(context.Context, *engine.Engine, string) error) {
	e, done := benchEngine(b, "")
	defer done()
	var next atomic.Int64
	b.SetParallelism(max(8/runtime.GOMAXPROCS(0), 1))
	cpu0 := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if err := mk(ctx, e, "q-"+strconv.FormatInt(next.Add(1), 10)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queues/s")
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/queue")
}

// BenchmarkQueueReplicas measures enqueue + reserve + ack, in batches of 100, on three
// in-process cluster nodes whose default is 3 replicas, for a queue of 3 (the default set)
// and one of 1 (the set of 1): what a queue's replicas cost per job. Three nodes on one
// machine measure the relative cost of replication, not a cluster's capacity.
//
//	go test -run '^$' -bench QueueReplicas ./engine
func BenchmarkQueueReplicas(b *testing.B) {
	nodes := startCluster(b)
	var e *engine.Engine
	for i, ns := range nodes {
		nc, err := natsd.Connect(ns, "bench")
		if err != nil {
			b.Fatal(err)
		}
		defer nc.Close()
		en, err := engine.Open(context.Background(), nc, engine.Config{Replicas: 3, Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		defer en.Close()
		if i == 0 {
			e = en
		}
	}
	for _, r := range []int{3, 1} {
		b.Run(fmt.Sprintf("replicas=%d", r), func(b *testing.B) {
			queue := fmt.Sprintf("bench-r%d", r)
			if _, err := e.PutQueue(context.Background(), queue, engine.QueueSettings{Replicas: r}); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			lifecycle(b, e, queue)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
		})
	}
}

// lifecycle enqueues, reserves and acks b.N jobs of queue, 100 at a time.
func lifecycle(b *testing.B, e *engine.Engine, queue string) {
	ctx := context.Background()
	reqs := make([]engine.EnqueueRequest, 100)
	for i := range reqs {
		reqs[i] = engine.EnqueueRequest{Queue: queue, Payload: make([]byte, 128)}
	}
	for i := 0; i < b.N; i += 100 {
		if _, err := e.Enqueue(ctx, reqs); err != nil {
			b.Fatal(err)
		}
		res, err := e.Reserve(ctx, engine.ReserveRequest{Queues: []string{queue}, Max: 100})
		if err != nil {
			b.Fatal(err)
		}
		acks := make([]engine.AckRequest, len(res.Jobs))
		for k, r := range res.Jobs {
			acks[k] = engine.AckRequest{ID: r.Job.ID, Token: r.Token}
		}
		out, err := e.AckBatch(ctx, acks)
		if err != nil {
			b.Fatal(err)
		}
		for _, a := range out {
			if a.Err != nil {
				b.Fatal(a.Err)
			}
		}
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
