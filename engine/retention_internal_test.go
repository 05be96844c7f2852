package engine

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spoolq/spool/engine/internal/store"
)

// retentionEngine opens an engine whose leases stay unwritten for the test's length, with
// one queue of the given retention and one job reserved in it.
func retentionEngine(t *testing.T, retention *time.Duration) (*Engine, context.Context, *Job, string) {
	t.Helper()
	e, _, ctx := internalEngine(t, Config{LeaseWriteDelay: time.Hour})
	if _, err := e.PutQueue(ctx, "kept", QueueSettings{Retention: retention}); err != nil {
		t.Fatal(err)
	}
	j := enqueueOne(t, e, ctx, EnqueueRequest{Queue: "kept"})
	r, err := e.Reserve(ctx, ReserveRequest{Queues: []string{"kept"}})
	if err != nil || len(r.Jobs) != 1 || r.Jobs[0].Job.ID != j.ID {
		t.Fatalf("reserve: %+v %v", r, err)
	}
	return e, ctx, j, r.Jobs[0].Token
}

// countRecordWrites counts the publishes of job records from now on.
func countRecordWrites(e *Engine) *atomic.Int64 {
	var n atomic.Int64
	e.st.SetFaults(func(op store.Op, subject string) error {
		if op == store.OpPublish && strings.HasPrefix(subject, "spool.j.") {
			n.Add(1)
		}
		return nil
	})
	return &n
}

// In a queue that keeps no finished jobs, acking a fresh job writes no record: the ack
// alone removes its message, the job is gone, and it is not offered again.
func TestAckWithoutRetentionWritesNoRecord(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name      string
		retention *time.Duration
		writes    int64
	}{{"none", new(time.Duration(0)), 0}, {"default", nil, 1}} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e, ctx, j, token := retentionEngine(t, c.retention)
			writes := countRecordWrites(e)
			acked, err := e.Ack(ctx, j.ID, token, nil)
			if err != nil || acked.State != StateSucceeded {
				t.Fatalf("ack: %+v %v", acked, err)
			}
			if n := writes.Load(); n != c.writes {
				t.Fatalf("%d record writes for the ack, want %d", n, c.writes)
			}
			got, err := e.Job(ctx, j.ID)
			switch {
			case c.writes == 0 && !errors.Is(err, ErrJobNotFound):
				t.Fatalf("job after the ack: %+v %v, want not found", got, err)
			case c.writes != 0 && (err != nil || got.State != StateSucceeded):
				t.Fatalf("job after the ack: %+v %v, want succeeded", got, err)
			}
			if _, err := e.Ack(ctx, j.ID, token, nil); err == nil {
				t.Fatal("a second ack of the same lease succeeded")
			}
			again, err := e.Reserve(ctx, ReserveRequest{Queues: []string{"kept"}, Wait: 300 * time.Millisecond})
			if err != nil || len(again.Jobs) != 0 {
				t.Fatalf("reserve after the ack: %+v %v", again, err)
			}
			info, err := e.js.Stream(ctx, e.lookupQueue("kept").names.stream())
			if err != nil || info.CachedInfo().State.Msgs != 0 {
				t.Fatalf("messages left after the ack: %+v %v", info.CachedInfo().State, err)
			}
		})
	}
}

// An ack with a result keeps the job, for its result's readers (webhooks), even in a queue
// that keeps no finished jobs.
func TestAckWithoutRetentionKeepsResult(t *testing.T) {
	t.Parallel()
	e, ctx, j, token := retentionEngine(t, new(time.Duration(0)))
	if _, err := e.Ack(ctx, j.ID, token, []byte(`{"ok":true}`)); err != nil {
		t.Fatal(err)
	}
	got, err := e.Job(ctx, j.ID)
	if err != nil || got.State != StateSucceeded || string(got.Result) != `{"ok":true}` {
		t.Fatalf("job after an ack with a result: %+v %v", got, err)
	}
}

// A lease whose record the writer is storing when the ack comes is acked through the
// record's compare-and-set: the ack must not leave the writer's "reserved" record behind a
// job that is done.
func TestAckWithoutRetentionWhileLeaseWritten(t *testing.T) {
	t.Parallel()
	e, ctx, j, token := retentionEngine(t, new(time.Duration(0)))
	due := e.leases.due(time.Time{}) // the writer took the lease, its write not stored yet
	if len(due) != 1 {
		t.Fatalf("pending leases: %d", len(due))
	}
	if _, err := e.Ack(ctx, j.ID, token, nil); err != nil {
		t.Fatal(err)
	}
	e.lw.store(ctx, due) // the writer's write lands after the ack
	got, err := e.Job(ctx, j.ID)
	if err != nil || got.State != StateSucceeded {
		t.Fatalf("job after the ack and the late lease write: %+v %v, want succeeded", got, err)
	}
}

// An ack that JetStream does not take fails, and leaves the lease to its holder, who can
// ack again.
func TestAckWithoutRetentionFailedAck(t *testing.T) {
	t.Parallel()
	e, ctx, j, token := retentionEngine(t, new(time.Duration(0)))
	var failed atomic.Bool
	e.st.SetFaults(func(op store.Op, _ string) error {
		if op == store.OpReply && failed.CompareAndSwap(false, true) {
			return errors.New("injected failure")
		}
		return nil
	})
	if _, err := e.Ack(ctx, j.ID, token, nil); err == nil {
		t.Fatal("ack succeeded though JetStream did not take it")
	}
	e.st.SetFaults(nil)
	if got, err := e.Job(ctx, j.ID); err != nil || got.State != StateReserved {
		t.Fatalf("job after the failed ack: %+v %v, want reserved", got, err)
	}
	if _, err := e.Ack(ctx, j.ID, token, nil); err != nil {
		t.Fatalf("the holder's ack after the failed one: %v", err)
	}
	if _, err := e.Job(ctx, j.ID); !errors.Is(err, ErrJobNotFound) {
		t.Fatalf("job after the ack: %v, want not found", err)
	}
}

// A queue's retention: set, reported, refused out of range; the node's for a queue that
// sets none.
func TestQueueRetentionSetting(t *testing.T) {
	t.Parallel()
	e, _, ctx := internalEngine(t, Config{Retention: 2 * time.Hour})
	qi, err := e.PutQueue(ctx, "plain", QueueSettings{})
	if err != nil || qi.Settings.Retention == nil || *qi.Settings.Retention != 2*time.Hour {
		t.Fatalf("queue without its own retention: %+v %v", qi, err)
	}
	qi, err = e.PutQueue(ctx, "plain", QueueSettings{Retention: new(time.Duration(0))})
	if err != nil || *qi.Settings.Retention != 0 {
		t.Fatalf("retention 0: %+v %v", qi, err)
	}
	qi, err = e.PutQueue(ctx, "plain", QueueSettings{Lease: time.Minute})
	if err != nil || *qi.Settings.Retention != 0 {
		t.Fatalf("retention after another setting changed: %+v %v", qi, err)
	}
	for _, bad := range []time.Duration{-time.Second, 1500 * time.Millisecond, MaxRetention + time.Second} {
		var inv *ValidationError
		if _, err := e.PutQueue(ctx, "plain", QueueSettings{Retention: &bad}); !errors.As(err, &inv) || inv.Field != "retention" {
			t.Fatalf("retention %s: %v, want invalid retention", bad, err)
		}
	}
}
