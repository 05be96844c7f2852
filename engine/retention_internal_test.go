package engine

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spoolq/spool/engine/internal/store"
)

// retentionEngine opens an engine whose leases stay unwritten for the test's length, with
// one queue of the given retention and one job reserved in it.
func retentionEngine(t *testing.T, retention *time.Duration) (*Engine, context.Context, *Job, string) {
	t.Helper()
	e, ctx, j, r := reservedJobIn(t, Config{LeaseWriteDelay: time.Hour}, "kept", QueueSettings{Retention: retention})
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

// An ack that JetStream does not confirm fails, and drops the lease whatever became of it:
// here it was not taken, so the job is offered again at the end of its lease (at least
// once), and no record of the dropped lease is ever written.
func TestAckWithoutRetentionFailedAck(t *testing.T) {
	t.Parallel()
	e, ctx, j, r := reservedJobIn(t, Config{LeaseWriteDelay: time.Hour}, "kept",
		QueueSettings{Retention: new(time.Duration(0)), Lease: 2 * time.Second})
	var failed atomic.Bool
	e.st.SetFaults(func(op store.Op, _ string) error {
		if op == store.OpReply && failed.CompareAndSwap(false, true) {
			return errors.New("injected failure")
		}
		return nil
	})
	if _, err := e.Ack(ctx, j.ID, r.Jobs[0].Token, nil); err == nil {
		t.Fatal("ack succeeded though JetStream did not take it")
	}
	e.st.SetFaults(nil)
	if _, err := e.Ack(ctx, j.ID, r.Jobs[0].Token, nil); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("the holder's ack after the failed one: %v, want lease lost", err)
	}
	e.lw.write(ctx, time.Time{})
	if _, _, err := e.readRecord(ctx, j.ID); !errors.Is(err, ErrJobNotFound) {
		t.Fatalf("record after the failed ack: %v, want none", err)
	}
	again, err := e.Reserve(ctx, ReserveRequest{Queues: []string{"kept"}, Wait: 10 * time.Second})
	if err != nil || len(again.Jobs) != 1 || again.Jobs[0].Job.ID != j.ID {
		t.Fatalf("reserve after the lease's end: %+v %v, want the job again", again, err)
	}
}

// A lease whose record write was sent once, with an outcome unknown (here: failed), is
// never acked without a record: the write may have landed.
func TestAckWithoutRetentionAfterFailedLeaseWrite(t *testing.T) {
	t.Parallel()
	e, ctx, j, token := retentionEngine(t, new(time.Duration(0)))
	due := e.leases.due(time.Time{})
	if len(due) != 1 {
		t.Fatalf("pending leases: %d", len(due))
	}
	e.leases.unwritten(due[0].id, due[0].rec.LeaseID) // the writer's failure path
	writes := countRecordWrites(e)
	if _, err := e.Ack(ctx, j.ID, token, nil); err != nil {
		t.Fatal(err)
	}
	if n := writes.Load(); n != 1 {
		t.Fatalf("%d record writes for the ack, want 1 (the compare-and-set)", n)
	}
}

// A delete that meets an ack without a record under way waits for it: then the job is
// gone, and only one of the two succeeds. (Without the wait, the delete's create-only
// record and the ack would both succeed.)
func TestDeleteDuringAckWithoutRetention(t *testing.T) {
	t.Parallel()
	e, ctx, j, token := retentionEngine(t, new(time.Duration(0)))
	type outcome struct {
		job *Job
		err error
	}
	deleted := make(chan outcome, 1)
	var once sync.Once
	e.st.SetFaults(func(op store.Op, _ string) error {
		if op == store.OpReply {
			once.Do(func() {
				// The ack is under way: a delete now, given time to finish should it not wait.
				go func() {
					d, err := e.Delete(ctx, j.ID)
					deleted <- outcome{d, err}
				}()
				select {
				case o := <-deleted:
					deleted <- o
				case <-time.After(500 * time.Millisecond):
				}
			})
		}
		return nil
	})
	acked, ackErr := e.Ack(ctx, j.ID, token, nil)
	d := <-deleted
	if ackErr == nil && d.err == nil {
		t.Fatalf("both the ack (%+v) and the delete (%+v) succeeded", acked, d.job)
	}
	if ackErr != nil || !errors.Is(d.err, ErrJobNotFound) {
		t.Fatalf("ack: %v; delete: %+v %v; want the ack, then the job gone", ackErr, d.job, d.err)
	}
}
