package engine

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spoolq/spool/engine/internal/store"
)

// faultAfter fails the first storage step for which fail says so, once armed by a step for
// which arm says so: a crash between two steps of a transition, as the engine sees it.
func faultAfter(arm, fail func(op store.Op, subject string) bool) store.Faults {
	var mu sync.Mutex
	armed, done := false, false
	return func(op store.Op, subject string) error {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case done:
		case armed && fail(op, subject):
			done = true
			return errors.New("injected failure")
		case arm(op, subject):
			armed = true
		}
		return nil
	}
}

// reservedJob opens an engine with a queue of the given lease and one job reserved in it.
func reservedJob(t *testing.T, queue string, lease time.Duration) (*Engine, context.Context, *Job, *ReserveResult) {
	t.Helper()
	return reservedJobIn(t, Config{}, queue, QueueSettings{Lease: lease})
}

// reservedJobIn opens an engine of cfg with a queue of settings s and one job reserved in
// it.
func reservedJobIn(t *testing.T, cfg Config, queue string, s QueueSettings) (*Engine, context.Context, *Job, *ReserveResult) {
	t.Helper()
	e, _, ctx := internalEngine(t, cfg)
	if _, err := e.PutQueue(ctx, queue, s); err != nil {
		t.Fatal(err)
	}
	j := enqueueOne(t, e, ctx, EnqueueRequest{Queue: queue})
	r, err := e.Reserve(ctx, ReserveRequest{Queues: []string{queue}})
	if err != nil || len(r.Jobs) != 1 || r.Jobs[0].Job.ID != j.ID {
		t.Fatalf("reserve: %+v %v", r, err)
	}
	return e, ctx, j, r
}

// A release whose record cannot be stored after its new message was: the new message is
// removed again, the job stays with its holder, who can still finish it, and it runs once.
func TestReleaseRecordFailsAfterNewMessage(t *testing.T) {
	t.Parallel()
	e, ctx, j, r := reservedJob(t, "crash", 30*time.Second)
	e.st.SetFaults(faultAfter(
		func(op store.Op, s string) bool { return op == store.OpPublish && strings.HasPrefix(s, "spool.q") },
		func(op store.Op, s string) bool { return op == store.OpPublish && s == jobSubject(j.ID) },
	))
	if _, err := e.Release(ctx, j.ID, r.Jobs[0].Token, ReleaseRequest{}); err == nil {
		t.Fatal("release succeeded though its record was not stored")
	}
	e.st.SetFaults(nil)
	info, err := e.js.Stream(ctx, e.lookupQueue("crash").names.stream())
	if err != nil || info.CachedInfo().State.Msgs != 1 {
		t.Fatalf("messages of the job after the failed release: %+v %v", info.CachedInfo().State, err)
	}
	if got, err := e.Job(ctx, j.ID); err != nil || got.State != StateReserved {
		t.Fatalf("after the failed release: %+v %v", got, err)
	}
	if _, err := e.Ack(ctx, j.ID, r.Jobs[0].Token, nil); err != nil {
		t.Fatalf("the holder's ack after the failed release: %v", err)
	}
	if again, err := e.Reserve(ctx, ReserveRequest{Queues: []string{"crash"}, Wait: 300 * time.Millisecond}); err != nil || len(again.Jobs) != 0 {
		t.Fatalf("after the ack: %+v %v", again, err)
	}
}

// A release whose ack of the old delivery is lost: JetStream offers the old message again
// when its lease ends; reservation drops it (the record, ready, names the new message), so
// the job runs once more only through its new message.
func TestReleaseWithLostAckRunsOnce(t *testing.T) {
	t.Parallel()
	e, ctx, j, r := reservedJob(t, "lost", time.Second)
	e.st.SetFaults(faultAfter(
		func(op store.Op, s string) bool { return op == store.OpPublish && s == jobSubject(j.ID) },
		func(op store.Op, s string) bool { return op == store.OpReply },
	))
	if _, err := e.Release(ctx, j.ID, r.Jobs[0].Token, ReleaseRequest{}); err != nil {
		t.Fatal(err)
	}
	e.st.SetFaults(nil)
	again, err := e.Reserve(ctx, ReserveRequest{Queues: []string{"lost"}, Wait: time.Second})
	if err != nil || len(again.Jobs) != 1 || again.Jobs[0].Job.ID != j.ID || again.Jobs[0].Job.Releases != 1 {
		t.Fatalf("reserve after the release: %+v %v", again, err)
	}
	if _, err := e.Ack(ctx, j.ID, again.Jobs[0].Token, nil); err != nil {
		t.Fatal(err)
	}
	// The old delivery comes back after its 1 s lease: dropped, never handed out.
	if late, err := e.Reserve(ctx, ReserveRequest{Queues: []string{"lost"}, Wait: 3 * time.Second}); err != nil || len(late.Jobs) != 0 {
		t.Fatalf("the old message was handed out again: %+v %v", late, err)
	}
	if got, err := e.Job(ctx, j.ID); err != nil || got.State != StateSucceeded {
		t.Fatalf("after all: %+v %v", got, err)
	}
}

// A bury whose ack of the job's delivery is lost: JetStream offers the old ready message
// again when its lease ends; reservation drops it (the record says buried), so a buried job
// is never handed out. (Seen after kill -9 under load before the check existed.)
func TestBuryWithLostAckStaysBuried(t *testing.T) {
	t.Parallel()
	e, ctx, j, r := reservedJob(t, "buried", time.Second)
	e.st.SetFaults(faultAfter(
		func(op store.Op, s string) bool { return op == store.OpPublish && strings.HasPrefix(s, "spool.q") },
		func(op store.Op, s string) bool { return op == store.OpReply },
	))
	if _, err := e.Bury(ctx, j.ID, r.Jobs[0].Token, BuryRequest{Reason: "x"}); err != nil {
		t.Fatal(err)
	}
	e.st.SetFaults(nil)
	if late, err := e.Reserve(ctx, ReserveRequest{Queues: []string{"buried"}, Wait: 3 * time.Second}); err != nil || len(late.Jobs) != 0 {
		t.Fatalf("a buried job was handed out: %+v %v", late, err)
	}
	if got, err := e.Job(ctx, j.ID); err != nil || got.State != StateBuried {
		t.Fatalf("after all: %+v %v", got, err)
	}
}
