package engine

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The shard sets' names: the default set's are the names spool always had, and no set's
// subjects overlap another's (a stream's subjects must not overlap any other stream's).
func TestShardSetNames(t *testing.T) {
	t.Parallel()
	if n := shardNames("email", 3, 0); n.stream() != "SPOOL_QS3" || n.ready(0) != "spool.q3.email.ready.0" {
		t.Fatalf("default set: %s %s", n.stream(), n.ready(0))
	}
	if n := shardNames("email", 3, 1); n.stream() != "SPOOL_QS3_R1" || n.ready(0) != "spool.q3r1.email.ready.0" ||
		n.prefixAll() != "spool.q3r1.>" || subjectState(n.subject(StateBuried, 0, 7)) != StateBuried {
		t.Fatalf("set of 1 replica: %s %s %s", n.stream(), n.ready(0), n.prefixAll())
	}
	seen := map[string]string{queueNames("x").prefixAll(): "own streams"}
	for _, set := range []int{0, 1, 3, 5} {
		for k := range shards {
			tok := shardNames("", k, set).prefixAll()
			if prev, ok := seen[tok]; ok {
				t.Fatalf("set %d shard %d shares subjects %s with %s", set, k, tok, prev)
			}
			seen[tok] = "set " + strconv.Itoa(set)
		}
	}
}

// A queue in a shard set other than the default (as a queue of 1 replica on a cluster whose
// default is 3) lives in its set's stream, made with the queue, and works as any other
// queue: priorities, delays, retries, burial, kicks, dead letters, statistics, peeks, the
// idle sweep, another node's view, deletion and a new queue of the same name elsewhere.
func TestQueueInAnotherShardSet(t *testing.T) {
	t.Parallel()
	e, nc, ctx := internalEngine(t)
	// As on a cluster whose default is 3 replicas: a queue of 1 goes to the set of 1,
	// which one server can hold.
	e.cfg.Replicas = 3
	qi, err := e.PutQueue(ctx, "one", QueueSettings{Replicas: 1, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	if qi.Settings.Replicas != 1 {
		t.Fatalf("queue of 1 replica reports %d", qi.Settings.Replicas)
	}
	k := shardOf(escapeName("one"))
	q, err := e.getQueue(ctx, "one", false)
	if err != nil || q.names.stream() != shardStream(k, 1) {
		t.Fatalf("queue of 1 replica in %q, want %q (%v)", q.names.stream(), shardStream(k, 1), err)
	}
	st, err := e.js.Stream(ctx, shardStream(k, 1))
	if err != nil {
		t.Fatal(err)
	}
	if c := st.CachedInfo().Config; c.Replicas != 1 || c.Subjects[0] != "spool.q"+strconv.Itoa(k)+"r1.>" {
		t.Fatalf("set stream: replicas %d, subjects %v", c.Replicas, c.Subjects)
	}
	// Other replicas for it now are refused, and change nothing.
	var rc *ReplicasConflictError
	if _, err := e.PutQueue(ctx, "one", QueueSettings{Replicas: 3, MaxAttempts: 9}); !errors.As(err, &rc) || rc.Have != 1 || rc.Want != 3 {
		t.Fatalf("replicas 3 for a queue of 1: %v", err)
	}
	if qi, err := e.Queue(ctx, "one"); err != nil || qi.Settings.MaxAttempts != 1 {
		t.Fatalf("queue after a refused change: %+v %v", qi, err)
	}

	// The lifecycle.
	if _, err := e.PutQueue(ctx, "one-dead", QueueSettings{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.SetDeadLetter(ctx, "one", "one-dead"); err != nil {
		t.Fatal(err)
	}
	low := enqueueOne(t, e, ctx, EnqueueRequest{Queue: "one", Priority: 9})
	high := enqueueOne(t, e, ctx, EnqueueRequest{Queue: "one", Priority: 1})
	enqueueOne(t, e, ctx, EnqueueRequest{Queue: "one", Delay: time.Hour})
	r, err := e.Reserve(ctx, ReserveRequest{Queues: []string{"one"}})
	if err != nil || len(r.Jobs) != 1 || r.Jobs[0].Job.ID != high.ID {
		t.Fatalf("reserve: %+v %v", r, err)
	}
	if _, err := e.Bury(ctx, high.ID, r.Jobs[0].Token, BuryRequest{}); err != nil {
		t.Fatal(err)
	}
	if qi, err := e.Queue(ctx, "one"); err != nil || qi.Stats.Ready != 1 || qi.Stats.Delayed != 1 || qi.Stats.Buried != 1 {
		t.Fatalf("stats: %+v %v", qi, err)
	}
	page, err := e.Peek(ctx, PeekRequest{Queue: "one", State: StateBuried, Limit: 10})
	if err != nil || len(page.Jobs) != 1 || page.Jobs[0].ID != high.ID {
		t.Fatalf("peek buried: %+v %v", page, err)
	}
	if _, err := e.Kick(ctx, high.ID); err != nil {
		t.Fatal(err)
	}
	r, err = e.Reserve(ctx, ReserveRequest{Queues: []string{"one"}})
	if err != nil || len(r.Jobs) != 1 || r.Jobs[0].Job.ID != high.ID {
		t.Fatalf("reserve the kicked job: %+v %v", r, err)
	}
	if _, err := e.Ack(ctx, high.ID, r.Jobs[0].Token, nil); err != nil {
		t.Fatal(err)
	}
	// Out of its one attempt, the other job moves to the dead-letter queue (in the default
	// set) at its next reservation.
	r, err = e.Reserve(ctx, ReserveRequest{Queues: []string{"one"}})
	if err != nil || len(r.Jobs) != 1 || r.Jobs[0].Job.ID != low.ID {
		t.Fatalf("reserve: %+v %v", r, err)
	}
	now := time.Duration(0)
	if _, err := e.Fail(ctx, low.ID, r.Jobs[0].Token, FailRequest{Error: "no", RetryIn: &now}); err != nil {
		t.Fatal(err)
	}
	// (Its next reservation moves it.)
	if r, err := e.Reserve(ctx, ReserveRequest{Queues: []string{"one"}}); err != nil || len(r.Jobs) != 0 {
		t.Fatalf("reserve a job out of attempts: %+v %v", r, err)
	}
	if j, err := e.Job(ctx, low.ID); err != nil || j.Queue != "one-dead" {
		t.Fatalf("job out of attempts: %+v %v", j, err)
	}
	if qi, err := e.Queue(ctx, "one-dead"); err != nil || qi.Settings.Replicas != 3 || qi.Stats.Ready != 1 {
		t.Fatalf("dead-letter queue: %+v %v", qi, err)
	}
	// Idle, the level's consumer goes, from the set's stream.
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		e.sweepIdle(ctx, 0)
		_, err := e.js.Consumer(ctx, shardStream(k, 1), q.names.consumer(1))
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("idle consumer of the set's stream still there: %v", err)
		}
	}

	// Another node finds the queue in its set from the queue's entry.
	e2 := secondEngine(t, ctx, nc, e)
	e2.cfg.Replicas = 3
	if s, err := e2.QueueStream(ctx, "one"); err != nil || s != shardStream(k, 1) {
		t.Fatalf("the other node's stream of the queue: %q %v", s, err)
	}
	if qi, err := e2.Queue(ctx, "one"); err != nil || qi.Settings.Replicas != 1 || qi.Stats.Delayed != 1 {
		t.Fatalf("the other node's view: %+v %v", qi, err)
	}

	// Deleted, the queue leaves nothing in the set's stream; made again with the default
	// replicas, it is in the default set, and the old one's jobs do not come back.
	if err := e.DeleteQueue(ctx, "one"); err != nil {
		t.Fatal(err)
	}
	if st, err = e.js.Stream(ctx, shardStream(k, 1)); err != nil || st.CachedInfo().State.Msgs != 0 || st.CachedInfo().State.Consumers != 0 {
		t.Fatalf("set stream after the delete: %+v %v", st.CachedInfo().State, err)
	}
	j := enqueueOne(t, e, ctx, EnqueueRequest{Queue: "one"})
	if qi, err := e.Queue(ctx, "one"); err != nil || qi.Settings.Replicas != 3 || qi.Stats.Ready != 1 || qi.Stats.Delayed != 0 {
		t.Fatalf("queue made again: %+v %v", qi, err)
	}
	for _, en := range []*Engine{e, e2} {
		for end := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			s, err := en.QueueStream(ctx, "one")
			if err == nil && s == shardStream(k, 0) {
				break
			}
			if time.Now().After(end) {
				t.Fatalf("queue made again in %q, want %q (%v)", s, shardStream(k, 0), err)
			}
		}
	}
	r, err = e2.Reserve(ctx, ReserveRequest{Queues: []string{"one"}, Wait: 5 * time.Second})
	if err != nil || len(r.Jobs) != 1 || r.Jobs[0].Job.ID != j.ID {
		t.Fatalf("reserve from the queue made again: %+v %v", r, err)
	}
}
