package engine_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/spoolq/spool/engine"
	"github.com/spoolq/spool/internal/natsd"
)

// On a server alone, a queue may ask for 1 replica, its only choice; 3 is refused, whether
// the engine knows the size of its cluster (Config.Peers) or learns it from JetStream, and
// the queue refused is not made. An existing queue asked for other replicas refuses too,
// and a value other than 1, 3 or 5 is a bad argument.
func TestQueueReplicasOnOneNode(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	for _, peers := range []func() int{nil, func() int { return natsd.ClusterSize(ns) }} {
		e := openEngine(t, ns, engine.Config{Peers: peers})
		ctx := ctxT(t)
		qi, err := e.PutQueue(ctx, "one", engine.QueueSettings{Replicas: 1})
		if err != nil || qi.Settings.Replicas != 1 {
			t.Fatalf("queue of 1 replica: %+v %v", qi, err)
		}
		if s, err := e.QueueStream(ctx, "one"); err != nil || len(s) != len("SPOOL_QS0") || !strings.HasPrefix(s, "SPOOL_QS") {
			t.Fatalf("queue of the default replicas in stream %q (%v), want the default set's", s, err)
		}
		if qi, err := e.PutQueue(ctx, "implicit", engine.QueueSettings{}); err != nil || qi.Settings.Replicas != 1 {
			t.Fatalf("queue of the default replicas: %+v %v", qi, err)
		}

		_, err = e.PutQueue(ctx, "three", engine.QueueSettings{Replicas: 3})
		var ru *engine.ReplicasUnavailableError
		if !errors.As(err, &ru) || ru.Replicas != 3 || ru.Nodes != 1 {
			t.Fatalf("queue of 3 replicas on a server alone (peers known: %v): %v", peers != nil, err)
		}
		if _, err := e.Queue(ctx, "three"); !errors.Is(err, engine.ErrQueueNotFound) {
			t.Fatalf("the refused queue: %v", err)
		}
		// A job enqueued to it makes it as the default has it.
		enqueue(t, e, engine.EnqueueRequest{Queue: "three"})
		if qi, err := e.Queue(ctx, "three"); err != nil || qi.Settings.Replicas != 1 || qi.Stats.Ready != 1 {
			t.Fatalf("queue made by an enqueue: %+v %v", qi, err)
		}

		var rc *engine.ReplicasConflictError
		if _, err := e.PutQueue(ctx, "one", engine.QueueSettings{Replicas: 5, MaxAttempts: 3}); !errors.As(err, &rc) || rc.Have != 1 || rc.Want != 5 {
			t.Fatalf("replicas 5 for a queue of 1: %v", err)
		}
		var ve *engine.ValidationError
		if _, err := e.PutQueue(ctx, "one", engine.QueueSettings{Replicas: 2}); !errors.As(err, &ve) || ve.Field != "replicas" {
			t.Fatalf("replicas 2: %v", err)
		}
		for _, q := range []string{"one", "implicit", "three"} {
			if err := e.DeleteQueue(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// On a cluster of three nodes whose default is 3 replicas, a queue of 1 replica and one of
// 3 live side by side, each in a stream of its replicas: jobs flow through both, enqueued
// on one node and reserved on another, and 5 replicas are refused.
func TestQueueReplicasOnACluster(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs a three-node cluster")
	}
	nodes := startCluster(t)
	engines := make([]*engine.Engine, len(nodes))
	for i, ns := range nodes {
		engines[i] = openEngine(t, ns, engine.Config{Replicas: 3, Peers: func() int { return natsd.ClusterSize(ns) }})
	}
	ctx := ctxT(t)
	if n := natsd.ClusterSize(nodes[1]); n != 3 {
		t.Fatalf("cluster size %d, want 3", n)
	}
	for q, r := range map[string]int{"r1": 1, "r3": 3} {
		qi, err := engines[0].PutQueue(ctx, q, engine.QueueSettings{Replicas: r})
		if err != nil || qi.Settings.Replicas != r {
			t.Fatalf("queue %s: %+v %v", q, qi, err)
		}
	}
	_, err := engines[1].PutQueue(ctx, "r5", engine.QueueSettings{Replicas: 5})
	var ru *engine.ReplicasUnavailableError
	if !errors.As(err, &ru) || ru.Replicas != 5 || ru.Nodes != 3 {
		t.Fatalf("queue of 5 replicas on three nodes: %v", err)
	}
	var rc *engine.ReplicasConflictError
	if _, err := engines[2].PutQueue(ctx, "r1", engine.QueueSettings{Replicas: 3}); !errors.As(err, &rc) || rc.Have != 1 {
		t.Fatalf("replicas 3 for the queue of 1, on another node: %v", err)
	}
	// A node that counts five nodes when JetStream has fewer up (two of five down, as it
	// were): the placement fails for now, a transient failure, not a refusal; nothing is made.
	five := openEngine(t, nodes[0], engine.Config{Replicas: 3, Peers: func() int { return 5 }})
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	_, err = five.PutQueue(pctx, "r5", engine.QueueSettings{Replicas: 5})
	cancel()
	if !engine.Transient(err) || errors.As(err, &ru) || !strings.Contains(err.Error(), "not enough nodes up") {
		t.Fatalf("queue of 5 replicas with three nodes up: %v", err)
	}
	if _, err := five.Queue(ctx, "r5"); !errors.Is(err, engine.ErrQueueNotFound) {
		t.Fatalf("the queue refused for now: %v", err)
	}

	// Each queue's stream has its replicas, as every node names it.
	nc, err := natsd.Connect(nodes[2], "test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	for q, r := range map[string]int{"r1": 1, "r3": 3} {
		var stream string
		for i, e := range engines {
			// (A node reads a queue it has not seen yet from a replica of the bucket, which
			// may be a moment behind.)
			eventually(t, func() error {
				s, err := e.QueueStream(ctx, q)
				if err != nil || stream != "" && s != stream {
					return fmt.Errorf("node %d: queue %s in %q (%v), node 0 says %q", i, q, s, err, stream)
				}
				stream = s
				return nil
			})
		}
		st, err := js.Stream(ctx, stream)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.CachedInfo().Config.Replicas; got != r {
			t.Fatalf("queue %s: stream %s has %d replicas, want %d", q, stream, got, r)
		}
		if wantR1 := r == 1; strings.HasSuffix(stream, "_R1") != wantR1 || !strings.HasPrefix(stream, "SPOOL_QS") {
			t.Fatalf("queue %s in %s, want a shard of the set of 1 replica: %v", q, stream, wantR1)
		}
		t.Logf("queue %s: stream %s, %d replicas", q, stream, r)
	}

	// Jobs flow in both: enqueued on one node, reserved and acked on another.
	const jobs = 20
	for _, q := range []string{"r1", "r3"} {
		for i := range jobs {
			enqueue(t, engines[i%3], engine.EnqueueRequest{Queue: q, Priority: uint32(i % 2)})
		}
	}
	for _, q := range []string{"r1", "r3"} {
		done := 0
		for deadline := time.Now().Add(30 * time.Second); done < jobs; {
			if time.Now().After(deadline) {
				t.Fatalf("queue %s: %d of %d jobs done", q, done, jobs)
			}
			e := engines[(done+1)%3]
			res, err := e.Reserve(ctx, engine.ReserveRequest{Queues: []string{q}, Max: 5, Wait: time.Second, Worker: "t"})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range res.Jobs {
				if _, err := e.Ack(ctx, r.Job.ID, r.Token, nil); err != nil {
					t.Fatal(err)
				}
				done++
			}
		}
		eventually(t, func() error {
			qi, err := engines[2].Queue(ctx, q)
			if err == nil && (qi.Stats.Ready != 0 || qi.Stats.Reserved != 0) {
				err = fmt.Errorf("%+v", qi.Stats)
			}
			return err
		})
	}

	// A fresh job's first delivery from a replicated stream is confirmed by a write of its
	// record at once: a consumer's deliveries are not exact across a change of its leader
	// (a former leader, frozen, hands out what it believes undelivered). From a stream of
	// one replica its lease lives in memory, the record written behind (here: an hour).
	held := openEngine(t, nodes[0], engine.Config{Replicas: 3, LeaseWriteDelay: time.Hour})
	records := func() uint64 {
		st, err := js.Stream(ctx, "SPOOL_JOBS")
		if err != nil {
			t.Fatal(err)
		}
		return st.CachedInfo().State.LastSeq
	}
	for q, want := range map[string]uint64{"r1": 0, "r3": 1} {
		// (The node's first reservation from a queue marks what was stored before it
		// opened: those jobs' first deliveries are confirmed by a write anyway.)
		for i := range 2 {
			j := enqueue(t, held, engine.EnqueueRequest{Queue: q})
			before := records()
			res, err := held.Reserve(ctx, engine.ReserveRequest{Queues: []string{q}, Wait: 5 * time.Second})
			if err != nil || len(res.Jobs) != 1 || res.Jobs[0].Job.ID != j.ID {
				t.Fatalf("queue %s: reserve %+v %v", q, res, err)
			}
			if n := records() - before; i == 1 && n != want {
				t.Fatalf("queue %s: %d records written by the reservation of a fresh job, want %d", q, n, want)
			}
			if _, err := held.Ack(ctx, j.ID, res.Jobs[0].Token, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// eventually waits up to 10 s for f to return nil.
func eventually(t *testing.T, f func() error) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if err = f(); err == nil {
			return
		}
	}
	t.Fatal(err)
}
