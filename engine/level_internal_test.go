package engine

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/spoolq/spool/internal/natsd"
)

// A shard queue's level consumer keeps its state in memory.
func TestLevelConsumerInMemory(t *testing.T) {
	t.Parallel()
	e, _, ctx := internalEngine(t)
	enqueueOne(t, e, ctx, EnqueueRequest{Queue: "q"})
	if r, err := e.Reserve(ctx, ReserveRequest{Queues: []string{"q"}}); err != nil || len(r.Jobs) != 1 {
		t.Fatalf("reserve: %+v %v", r, err)
	}
	q := e.lookupQueue("q")
	c, err := e.js.Consumer(ctx, q.names.stream(), q.names.consumer(0))
	if err != nil || !c.CachedInfo().Config.MemoryStorage {
		t.Fatalf("level consumer: %+v %v, want memory storage", c.CachedInfo().Config, err)
	}
}

// A level consumer an earlier version made on disk is used as it is (JetStream cannot
// change a consumer's storage): reservations and a lease change work on.
func TestLevelConsumerOnDiskKept(t *testing.T) {
	t.Parallel()
	e, _, ctx := internalEngine(t)
	j := enqueueOne(t, e, ctx, EnqueueRequest{Queue: "q"})
	q := e.lookupQueue("q")
	cfg, _ := q.config()
	old := e.bandConsumerConfig(q, cfg, 0)
	old.MemoryStorage = false
	if _, err := e.js.CreateConsumer(ctx, q.names.stream(), old); err != nil {
		t.Fatal(err)
	}
	if r, err := e.Reserve(ctx, ReserveRequest{Queues: []string{"q"}}); err != nil || len(r.Jobs) != 1 || r.Jobs[0].Job.ID != j.ID {
		t.Fatalf("reserve through the consumer on disk: %+v %v", r, err)
	}
	if _, err := e.PutQueue(ctx, "q", QueueSettings{Lease: time.Minute}); err != nil {
		t.Fatalf("lease change with the consumer on disk: %v", err)
	}
	c, err := e.js.Consumer(ctx, q.names.stream(), q.names.consumer(0))
	if err != nil || c.CachedInfo().Config.MemoryStorage || c.CachedInfo().Config.AckWait != time.Minute {
		t.Fatalf("consumer after the lease change: %+v %v", c.CachedInfo().Config, err)
	}
}

// Level consumers go with a restart of JetStream. Made again by the first reservation, the
// new one offers at once what the old one had delivered: a job whose lease was written is
// kept by its holder, who acks it after the restart; one whose lease was not (it died with
// the node) is reserved again.
func TestLevelConsumerLostWithRestart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	open := restartable(t, ctx, Config{LeaseWriteDelay: time.Hour})
	e, stop := open()
	if _, err := e.PutQueue(ctx, "q", QueueSettings{Lease: time.Minute}); err != nil {
		t.Fatal(err)
	}
	kept := enqueueOne(t, e, ctx, EnqueueRequest{Queue: "q"})
	lost := enqueueOne(t, e, ctx, EnqueueRequest{Queue: "q"})
	r1, err := e.Reserve(ctx, ReserveRequest{Queues: []string{"q"}})
	if err != nil || len(r1.Jobs) != 1 || r1.Jobs[0].Job.ID != kept.ID {
		t.Fatalf("reserve: %+v %v", r1, err)
	}
	e.lw.write(ctx, time.Time{}) // the first lease is stored
	r2, err := e.Reserve(ctx, ReserveRequest{Queues: []string{"q"}})
	if err != nil || len(r2.Jobs) != 1 || r2.Jobs[0].Job.ID != lost.ID {
		t.Fatalf("reserve: %+v %v", r2, err)
	}
	e.leases.drop(lost.ID) // as if the node died: its unwritten lease is not stored at Close
	stop()

	e, stop = open()
	defer stop()
	q, err := e.getQueue(ctx, "q", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.js.Consumer(ctx, q.names.stream(), q.names.consumer(0)); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Fatalf("level consumer after the restart: %v, want none", err)
	}
	again, err := e.Reserve(ctx, ReserveRequest{Queues: []string{"q"}, Max: 10, Wait: time.Second})
	if err != nil || len(again.Jobs) != 1 || again.Jobs[0].Job.ID != lost.ID {
		t.Fatalf("reserve after the restart: %+v %v, want only the job whose lease died", again, err)
	}
	if j, err := e.Ack(ctx, kept.ID, r1.Jobs[0].Token, nil); err != nil || j.State != StateSucceeded {
		t.Fatalf("the holder's ack after the restart: %+v %v", j, err)
	}
	if _, err := e.Ack(ctx, lost.ID, again.Jobs[0].Token, nil); err != nil {
		t.Fatal(err)
	}
	if r, err := e.Reserve(ctx, ReserveRequest{Queues: []string{"q"}, Wait: 300 * time.Millisecond}); err != nil || len(r.Jobs) != 0 {
		t.Fatalf("reserve after both acks: %+v %v", r, err)
	}
}

// restartable returns a function that opens an engine of cfg on a JetStream server over the
// same data each time, and the function that closes both: a restart.
func restartable(t *testing.T, ctx context.Context, cfg Config) func() (*Engine, func()) {
	dir := t.TempDir()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	return func() (*Engine, func()) {
		ns, err := natsd.Start(ctx, natsd.Options{StoreDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		nc, err := natsd.Connect(ns, "test")
		if err != nil {
			t.Fatal(err)
		}
		e, err := Open(ctx, nc, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return e, func() { e.Close(); nc.Close(); ns.Shutdown(); ns.WaitForShutdown() }
	}
}

// A queue's counters of delayed and buried jobs keep their state in memory; lost with a
// restart, they are made again when the counts are read, and count the jobs there are.
func TestCountersLostWithRestart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	open := restartable(t, ctx, Config{})
	e, stop := open()
	enqueueOne(t, e, ctx, EnqueueRequest{Queue: "c", Delay: time.Hour})
	enqueueOne(t, e, ctx, EnqueueRequest{Queue: "c", Buried: true})
	q := e.lookupQueue("c")
	for _, st := range []State{StateDelayed, StateBuried} {
		c, err := e.js.Consumer(ctx, q.names.stream(), q.names.counter(st))
		if err != nil || !c.CachedInfo().Config.MemoryStorage {
			t.Fatalf("%s counter: %+v, %v; want it in memory", st, c, err)
		}
	}
	stop()

	e, stop = open()
	defer stop()
	q = e.lookupQueue("c")
	if _, err := e.js.Consumer(ctx, q.names.stream(), q.names.counter(StateDelayed)); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Fatalf("delayed counter after the restart: %v, want none", err)
	}
	s, err := e.Summarize(ctx, SummaryRequest{})
	if err != nil || s.Delayed != 1 || s.Buried != 1 {
		t.Fatalf("summary after the restart: %+v, %v; want 1 delayed, 1 buried", s, err)
	}
	qi, err := e.Queue(ctx, "c")
	if err != nil || qi.Stats.Delayed != 1 || qi.Stats.Buried != 1 {
		t.Fatalf("queue after the restart: %+v, %v", qi, err)
	}
}
