package engine

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// An enqueue that names a queue another node made, which this node's watch has not
// delivered yet, lands in that queue: the create-only write of the entry tells that the
// queue exists (no read comes first), the queue keeps its settings and number, and the
// number this node took meanwhile names no queue.
func TestEnqueueToQueueNotSeenYet(t *testing.T) {
	t.Parallel()
	a, nc, ctx := internalEngine(t)
	b := secondEngine(t, ctx, nc, a)
	if _, err := a.PutQueue(ctx, "shared", QueueSettings{MaxAttempts: 7}); err != nil {
		t.Fatal(err)
	}
	qa, err := a.getQueue(ctx, "shared", false)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := qa.config()
	for start := time.Now(); b.lookupQueue("shared") == nil; time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > 5*time.Second {
			t.Fatal("the second engine never saw the queue")
		}
	}
	b.mu.Lock()
	b.forgetQueueLocked(b.queues["shared"]) // as if b's watch lagged
	b.mu.Unlock()

	j := enqueueOne(t, b, ctx, EnqueueRequest{Queue: "shared", Payload: []byte("p")})
	qb := b.lookupQueue("shared")
	if qb == nil {
		t.Fatal("the enqueue left no queue in the node's view")
	}
	got, _ := qb.config()
	if got.Num != want.Num || got.MaxAttempts != 7 || got.Created != want.Created {
		t.Fatalf("queue seen by the enqueuing node: %+v, want the one made first: %+v", got, want)
	}
	if j.MaxAttempts != 7 {
		t.Fatalf("job max attempts %d, want the queue's 7", j.MaxAttempts)
	}
	// The number b took for a queue of its own was given back to no one: its entry is gone.
	b.qnums.mu.Lock()
	taken := b.qnums.next - 1
	b.qnums.mu.Unlock()
	if taken != 0 {
		if uint32(taken) == want.Num {
			t.Fatalf("the second node took the queue's number %d", taken)
		}
		if ent, err := b.kv.Get(ctx, numKey(uint32(taken))); !errors.Is(err, jetstream.ErrKeyNotFound) {
			t.Fatalf("number %d still names a queue: %v %v", taken, ent, err)
		}
	}
	// Both nodes find the job by its id, and the first one hands it out.
	for _, e := range []*Engine{a, b} {
		if got, err := e.Job(ctx, j.ID); err != nil || string(got.Payload) != "p" || got.Queue != "shared" {
			t.Fatalf("job %d: %+v %v", j.ID, got, err)
		}
	}
	r, err := a.Reserve(ctx, ReserveRequest{Queues: []string{"shared"}})
	if err != nil || len(r.Jobs) != 1 || r.Jobs[0].Job.ID != j.ID {
		t.Fatalf("reserve: %+v %v", r, err)
	}
}

// A new queue's trust mark is the last message on its own subjects, not the shard's: a
// copy that a deleted queue of the same name left behind is marked (checked at
// reservation), another queue's messages in the same shard are not.
func TestTrustMarkOfNewQueue(t *testing.T) {
	t.Parallel()
	e, _, ctx := internalEngine(t)
	// Three queue names in one shard.
	var names []string
	for i := 0; len(names) < 3; i++ {
		n := "m" + strconv.Itoa(i)
		if shardOf(escapeName(n)) == 0 {
			names = append(names, n)
		}
	}
	other, left, fresh := names[0], names[1], names[2]
	if err := e.ensureShard(ctx, 0, 0); err != nil {
		t.Fatal(err)
	}
	nl := shardNames(left, 0, 0)
	if m, err := e.shardMark(ctx, nl); err != nil || m != 0 {
		t.Fatalf("mark of a queue in an empty shard: %d %v", m, err)
	}
	enqueueOne(t, e, ctx, EnqueueRequest{Queue: other})
	// What a deleted queue called left may have left on its subjects.
	ack, err := e.js.PublishMsg(ctx, &nats.Msg{Subject: nl.ready(0), Data: []byte("left behind")})
	if err != nil {
		t.Fatal(err)
	}
	enqueueOne(t, e, ctx, EnqueueRequest{Queue: other})
	if m, err := e.shardMark(ctx, nl); err != nil || m != ack.Sequence {
		t.Fatalf("mark of a queue with a copy left behind at %d: %d %v", ack.Sequence, m, err)
	}
	if m, err := e.shardMark(ctx, shardNames(fresh, 0, 0)); err != nil || m != 0 {
		t.Fatalf("mark of a new queue beside another queue's jobs: %d %v", m, err)
	}
}
