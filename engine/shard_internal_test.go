package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// legacyQueue makes a queue as spool made them before shards, in a stream of its own with
// its two counting consumers: the layout that a data folder of an older version holds.
func legacyQueue(t *testing.T, e *Engine, ctx context.Context, name string) *queue {
	t.Helper()
	n := queueNames(name)
	_, err := e.js.CreateStream(ctx, jetstream.StreamConfig{
		Name: n.stream(), Subjects: []string{n.all()}, Retention: jetstream.WorkQueuePolicy,
		Storage: jetstream.FileStorage, AllowMsgSchedules: true, AllowDirect: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range []State{StateDelayed, StateBuried} {
		if _, err := e.js.CreateConsumer(ctx, n.stream(), jetstream.ConsumerConfig{
			Durable: n.counter(st), FilterSubject: n.state(st), AckPolicy: jetstream.AckExplicitPolicy,
			MaxDeliver: -1, MaxAckPending: -1,
		}); err != nil {
			t.Fatal(err)
		}
	}
	num, err := e.nextQueueNum(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.kv.Create(ctx, numKey(num), []byte(name)); err != nil {
		t.Fatal(err)
	}
	d := e.cfg.Defaults
	val, _ := json.Marshal(queueConfig{
		Name: name, LeaseMS: d.Lease.Milliseconds(), MaxAttempts: d.MaxAttempts,
		BackoffMS: d.BackoffBase.Milliseconds(), BackoffMax: d.BackoffMax.Milliseconds(),
		Created: e.now().UnixNano(), Num: num,
	})
	if _, err := e.kv.Create(ctx, n.esc, val); err != nil {
		t.Fatal(err)
	}
	q, err := e.getQueue(ctx, name, false)
	if err != nil {
		t.Fatal(err)
	}
	if q.names.shared || q.names.stream() != n.stream() {
		t.Fatalf("queue made before shards has names %+v", q.names)
	}
	return q
}

// A queue made by an older version, in a stream of its own, keeps working there: jobs in
// every state, their counts, reservations, and its deletion with its stream.
func TestQueueMadeBeforeShards(t *testing.T) {
	t.Parallel()
	e, _, ctx := internalEngine(t)
	legacyQueue(t, e, ctx, "old")
	ready := enqueueOne(t, e, ctx, EnqueueRequest{Queue: "old", Priority: 5})
	enqueueOne(t, e, ctx, EnqueueRequest{Queue: "old", Delay: time.Hour})
	buried := enqueueOne(t, e, ctx, EnqueueRequest{Queue: "old", Priority: 9})
	r, err := e.Reserve(ctx, ReserveRequest{Queues: []string{"old"}})
	if err != nil || len(r.Jobs) != 1 || r.Jobs[0].Job.ID != ready.ID {
		t.Fatalf("reserve: %+v %v", r, err)
	}
	if _, err := e.Ack(ctx, ready.ID, r.Jobs[0].Token, nil); err != nil {
		t.Fatal(err)
	}
	r, err = e.Reserve(ctx, ReserveRequest{Queues: []string{"old"}})
	if err != nil || len(r.Jobs) != 1 || r.Jobs[0].Job.ID != buried.ID {
		t.Fatalf("reserve: %+v %v", r, err)
	}
	if _, err := e.Bury(ctx, buried.ID, r.Jobs[0].Token, BuryRequest{}); err != nil {
		t.Fatal(err)
	}
	qi, err := e.Queue(ctx, "old")
	if err != nil {
		t.Fatal(err)
	}
	if s := qi.Stats; s.Ready != 0 || s.Delayed != 1 || s.Buried != 1 || s.Succeeded != 1 {
		t.Fatalf("stats: %+v", s)
	}
	if err := e.DeleteQueue(ctx, "old"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.js.Stream(ctx, queueNames("old").stream()); err == nil {
		t.Fatal("the deleted queue's stream is still there")
	}
	// Made again, the queue goes to its shard.
	j := enqueueOne(t, e, ctx, EnqueueRequest{Queue: "old"})
	q, err := e.getQueue(ctx, "old", false)
	if err != nil || !q.names.shared {
		t.Fatalf("queue made again: %+v %v", q, err)
	}
	if got, err := e.Job(ctx, j.ID); err != nil || got.State != StateReady {
		t.Fatalf("job of the queue made again: %+v %v", got, err)
	}
}

// Queues in one shard are apart: a queue's counts, purge and deletion touch only its own
// jobs; and a queue costs no consumer until it has a delayed (or buried) job, or a
// reservation pulls from it.
func TestQueuesShareShards(t *testing.T) {
	t.Parallel()
	e, _, ctx := internalEngine(t)
	// Two queues of one shard.
	a, b := "a0", ""
	for i := 1; b == ""; i++ {
		if n := "a" + string(rune('0'+i%10)) + string(rune('a'+i/10)); shardOf(escapeName(n)) == shardOf(escapeName(a)) {
			b = n
		}
	}
	if _, err := e.PutQueue(ctx, a, QueueSettings{}); err != nil {
		t.Fatal(err)
	}
	qa, _ := e.getQueue(ctx, a, false)
	consumers := func() int {
		s, err := e.js.Stream(ctx, qa.names.stream())
		if err != nil {
			t.Fatal(err)
		}
		return s.CachedInfo().State.Consumers
	}
	if n := consumers(); n != 0 {
		t.Fatalf("an empty queue has %d consumers", n)
	}
	for _, q := range []string{a, b} {
		enqueueOne(t, e, ctx, EnqueueRequest{Queue: q})
		enqueueOne(t, e, ctx, EnqueueRequest{Queue: q, Delay: time.Hour})
		enqueueOne(t, e, ctx, EnqueueRequest{Queue: q, Delay: time.Hour})
	}
	// Their delayed counters; no level's consumer before a reservation pulls from it.
	if n := consumers(); n != 2 {
		t.Fatalf("two queues with ready and delayed jobs have %d consumers, want 2", n)
	}
	for _, q := range []string{a, b} {
		qi, err := e.Queue(ctx, q)
		if err != nil || qi.Stats.Ready != 1 || qi.Stats.Delayed != 2 || qi.Stats.Buried != 0 {
			t.Fatalf("queue %s: %+v %v", q, qi, err)
		}
	}
	if n, err := e.Purge(ctx, a, StateDelayed); err != nil || n != 2 {
		t.Fatalf("purge: %d %v", n, err)
	}
	if err := e.DeleteQueue(ctx, a); err != nil {
		t.Fatal(err)
	}
	if n := consumers(); n != 1 {
		t.Fatalf("after deleting one of two queues, %d consumers, want 1", n)
	}
	qi, err := e.Queue(ctx, b)
	if err != nil || qi.Stats.Ready != 1 || qi.Stats.Delayed != 2 {
		t.Fatalf("the other queue after the delete: %+v %v", qi, err)
	}
	r, err := e.Reserve(ctx, ReserveRequest{Queues: []string{b}})
	if err != nil || len(r.Jobs) != 1 {
		t.Fatalf("reserve from the other queue: %+v %v", r, err)
	}
	if n := consumers(); n != 2 {
		t.Fatalf("after a reservation, %d consumers, want 2", n)
	}
}

// A level's consumer goes once the level is idle, never while a job of it is reserved, and
// comes back with the next reservation, paused if the queue is; meanwhile the level's
// jobs are counted all the same.
func TestIdleConsumerDropped(t *testing.T) {
	t.Parallel()
	e, _, ctx := internalEngine(t)
	q, err := e.getQueue(ctx, "q", true)
	if err != nil {
		t.Fatal(err)
	}
	exists := func() bool {
		_, err := e.js.Consumer(ctx, q.names.stream(), q.names.consumer(0))
		if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			t.Fatal(err)
		}
		return err == nil
	}
	// The sweep finds the level idle once JetStream has the ack (not awaited).
	swept := func() bool {
		for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
			if e.sweepIdle(ctx, 0); !exists() {
				return true
			}
		}
		return false
	}
	reserveOne := func(want uint64) string {
		t.Helper()
		r, err := e.Reserve(ctx, ReserveRequest{Queues: []string{"q"}})
		if err != nil || len(r.Jobs) != 1 || r.Jobs[0].Job.ID != want {
			t.Fatalf("reserve: %+v %v", r, err)
		}
		return r.Jobs[0].Token
	}
	j := enqueueOne(t, e, ctx, EnqueueRequest{Queue: "q"})
	tok := reserveOne(j.ID)
	e.sweepIdle(ctx, 0)
	if !exists() {
		t.Fatal("the consumer went while its job was reserved")
	}
	if _, err := e.Ack(ctx, j.ID, tok, nil); err != nil {
		t.Fatal(err)
	}
	if !swept() {
		t.Fatal("the consumer of an idle level is still there")
	}

	// Counted without it; reserved through it made again.
	j = enqueueOne(t, e, ctx, EnqueueRequest{Queue: "q"})
	if qi, err := e.Queue(ctx, "q"); err != nil || qi.Stats.Ready != 1 || qi.Stats.Reserved != 0 {
		t.Fatalf("stats of an idle level with a job: %+v %v", qi, err)
	}
	if dc, err := e.QueueDetailCounts(ctx, "q", 1); err != nil || dc.Urgent != 1 {
		t.Fatalf("urgent count of an idle level with a job: %+v %v", dc, err)
	}
	tok = reserveOne(j.ID)
	if _, err := e.Ack(ctx, j.ID, tok, nil); err != nil {
		t.Fatal(err)
	}

	// A paused queue's consumer comes back paused.
	if _, err := e.Pause(ctx, "q", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if !swept() {
		t.Fatal("the consumer of an idle paused level is still there")
	}
	j = enqueueOne(t, e, ctx, EnqueueRequest{Queue: "q"})
	if r, err := e.Reserve(ctx, ReserveRequest{Queues: []string{"q"}}); err != nil || len(r.Jobs) != 0 || len(r.Paused) != 1 {
		t.Fatalf("reserve from the paused queue: %+v %v", r, err)
	}
	if _, err := e.Resume(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	reserveOne(j.ID)
}

// A sweep that finds a level in use once it paused its consumer leaves it as the queue
// says: running, or paused until the queue's pause ends.
func TestIdleSweepUndoesItsPause(t *testing.T) {
	t.Parallel()
	e, _, ctx := internalEngine(t)
	j := enqueueOne(t, e, ctx, EnqueueRequest{Queue: "q"})
	if r, err := e.Reserve(ctx, ReserveRequest{Queues: []string{"q"}}); err != nil || len(r.Jobs) != 1 || r.Jobs[0].Job.ID != j.ID {
		t.Fatalf("reserve: %+v %v", r, err)
	}
	q := e.lookupQueue("q")
	consumer := func() *jetstream.ConsumerInfo {
		t.Helper()
		c, err := e.js.Consumer(ctx, q.names.stream(), q.names.consumer(0))
		if err != nil {
			t.Fatal(err)
		}
		return c.CachedInfo()
	}
	drop := func() {
		t.Helper()
		c, err := e.js.Consumer(ctx, q.names.stream(), q.names.consumer(0))
		if err != nil {
			t.Fatal(err)
		}
		if gone, err := e.dropPaused(ctx, q, 0, c, 0); err != nil || gone {
			t.Fatalf("dropped a consumer in use: %v %v", gone, err)
		}
	}
	drop()
	if info := consumer(); info.Paused {
		t.Fatalf("the consumer of a running queue stays paused: %+v", info.Config.PauseUntil)
	}
	until := time.Now().Add(time.Hour).Truncate(time.Second)
	if _, err := e.Pause(ctx, "q", until); err != nil {
		t.Fatal(err)
	}
	drop()
	if info := consumer(); !info.Paused || info.Config.PauseUntil == nil || !info.Config.PauseUntil.Equal(until) {
		t.Fatalf("the consumer of a queue paused until %s: paused %v until %v", until, info.Paused, info.Config.PauseUntil)
	}
}

// A lease change reaches the consumers there are and makes none: a level without its
// consumer gets the new lease when a reservation makes it.
func TestLeaseChangeMakesNoConsumer(t *testing.T) {
	t.Parallel()
	e, _, ctx := internalEngine(t)
	j := enqueueOne(t, e, ctx, EnqueueRequest{Queue: "q"})
	if _, err := e.PutQueue(ctx, "q", QueueSettings{Lease: 45 * time.Second}); err != nil {
		t.Fatal(err)
	}
	q := e.lookupQueue("q")
	if _, err := e.js.Consumer(ctx, q.names.stream(), q.names.consumer(0)); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Fatalf("a lease change made the consumer of a level no one reserved from: %v", err)
	}
	if r, err := e.Reserve(ctx, ReserveRequest{Queues: []string{"q"}}); err != nil || len(r.Jobs) != 1 || r.Jobs[0].Job.ID != j.ID {
		t.Fatalf("reserve: %+v %v", r, err)
	}
	c, err := e.js.Consumer(ctx, q.names.stream(), q.names.consumer(0))
	if err != nil || c.CachedInfo().Config.AckWait != 45*time.Second {
		t.Fatalf("the consumer made by the reservation: %v", err)
	}
}

// Two nodes making queues at once give each a number of its own, though each takes its
// numbers in blocks.
func TestQueueNumbersAcrossNodes(t *testing.T) {
	t.Parallel()
	e1, nc, ctx := internalEngine(t)
	e2 := secondEngine(t, ctx, nc, e1)
	const n = 150 // more than two blocks each
	errs := make(chan error, 2*n)
	for i := range n {
		for _, e := range []*Engine{e1, e2} {
			go func() {
				_, err := e.getQueue(ctx, fmt.Sprintf("q%d-%p", i, e), true)
				errs <- err
			}()
		}
	}
	for range 2 * n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	seen := map[uint32]string{}
	for _, e := range []*Engine{e1, e2} {
		for _, q := range e.queueList() {
			cfg, _ := q.config()
			if !strings.HasSuffix(q.name, fmt.Sprintf("-%p", e)) {
				continue // the other node's, seen through the watch
			}
			if prev, dup := seen[cfg.Num]; dup || cfg.Num == 0 {
				t.Fatalf("queues %s and %s have number %d", prev, q.name, cfg.Num)
			}
			seen[cfg.Num] = q.name
		}
	}
	if len(seen) != 2*n {
		t.Fatalf("%d queues numbered, want %d", len(seen), 2*n)
	}
}

// A node's rates count the jobs enqueued and finished through another node: it sees their
// counters' increments flushed.
func TestRatesAcrossNodes(t *testing.T) {
	t.Parallel()
	e1, nc, ctx := internalEngine(t)
	e2 := secondEngine(t, ctx, nc, e1)
	for range 20 {
		enqueueOne(t, e1, ctx, EnqueueRequest{Queue: "q"})
	}
	// e2 has no increment of its own: all it counts came through the subscription.
	for end := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		qi, err := e2.Queue(ctx, "q")
		if err == nil && qi.Stats.EnqueueRate > 0 && qi.Stats.Enqueued == 20 {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("the other node's view: %+v %v", qi, err)
		}
	}
}

// A level consumer that exists when a node starts (made before a restart, or by a node
// that died) is swept once idle by the node that leads it, though that node never pulled
// from it.
func TestIdleConsumerOfEarlierRunDropped(t *testing.T) {
	t.Parallel()
	e, nc, ctx := internalEngine(t, Config{ConsumerIdle: time.Hour})
	j := enqueueOne(t, e, ctx, EnqueueRequest{Queue: "q"})
	r, err := e.Reserve(ctx, ReserveRequest{Queues: []string{"q"}})
	if err != nil || len(r.Jobs) != 1 {
		t.Fatalf("reserve: %+v %v", r, err)
	}
	if _, err := e.Ack(ctx, j.ID, r.Jobs[0].Token, nil); err != nil {
		t.Fatal(err)
	}
	later, err := Open(ctx, nc, Config{ConsumerIdle: time.Hour, Logger: e.log})
	if err != nil {
		t.Fatal(err)
	}
	defer later.Close()
	q, err := later.getQueue(ctx, "q", false)
	if err != nil {
		t.Fatal(err)
	}
	later.adoptConsumers(ctx)
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		later.sweepIdle(ctx, 0)
		_, err := later.js.Consumer(ctx, q.names.stream(), q.names.consumer(0))
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("the consumer made by the earlier engine is still there: %v", err)
		}
	}
	// The queue works on: the next reservation makes the consumer again.
	j = enqueueOne(t, later, ctx, EnqueueRequest{Queue: "q"})
	if r, err := later.Reserve(ctx, ReserveRequest{Queues: []string{"q"}}); err != nil || len(r.Jobs) != 1 || r.Jobs[0].Job.ID != j.ID {
		t.Fatalf("reserve after the sweep: %+v %v", r, err)
	}
}
