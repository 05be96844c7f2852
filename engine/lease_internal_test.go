package engine

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/spoolq/spool/engine/internal/store"
)

// JetStream may offer a job again before its lease ends: its pending delivery lost in a crash
// of its server, or a lease extension that did not reach it. The lease stays with its holder.
func TestEarlyRedeliveryKeepsTheLease(t *testing.T) {
	t.Parallel()
	e, nc, ctx := internalEngine(t)

	id, held := enqueueReserved(t, e, ctx, EnqueueRequest{Queue: "q", Lease: time.Minute})
	e.lw.write(ctx, time.Time{})
	rec, _, err := e.readRecord(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	// Offer the delivery again now, behind the engine's back.
	if err := nc.Publish(rec.Ack, []byte("-NAK")); err != nil {
		t.Fatal(err)
	}
	again, err := e.Reserve(ctx, ReserveRequest{Queues: []string{"q"}, Wait: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Jobs) != 0 {
		t.Fatalf("job handed to a second worker while its lease runs: %+v", again.Jobs[0].Job)
	}
	moved, _, err := e.readRecord(ctx, id)
	if err != nil || moved.Ack == rec.Ack || moved.LeaseID != rec.LeaseID || moved.Timeouts != 0 {
		t.Fatalf("record after the early redelivery: %+v %v (ack before %s)", moved, err, rec.Ack)
	}
	if _, err := e.Ack(ctx, id, held.Token, nil); err != nil {
		t.Fatalf("the holder's ack after the early redelivery: %v", err)
	}
	// The new delivery was acked: nothing is offered again, now or after the lease.
	if late, err := e.Reserve(ctx, ReserveRequest{Queues: []string{"q"}, Wait: time.Second}); err != nil || len(late.Jobs) != 0 {
		t.Fatalf("after the ack: %+v %v", late, err)
	}
}

// A status read that meets the write-behind's record stored but not yet answered (a loaded
// machine widens that moment) must leave the lease in the table: the node gives its job
// back when the lease runs out only while it holds it. Dropping it left the job reserved,
// shown ready with no timeout, until a reservation happened to pull it again.
func TestStatusReadDuringWriteBehindKeepsTheLease(t *testing.T) {
	t.Parallel()
	var ahead atomic.Int64 // the engine's clock, ahead of the real one
	clock := func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }
	e, _, ctx := internalEngine(t, Config{Now: clock, LeaseWriteDelay: time.Hour}) // the test writes behind
	id, held := enqueueReserved(t, e, ctx, EnqueueRequest{Queue: "q", Lease: time.Minute})
	lid, _ := parseToken(held.Token)

	// The write-behind stores the lease's record; its answer has not reached the table.
	d, ok := e.leases.pendingOne(id, lid)
	if !ok {
		t.Fatal("the lease is not pending in the table")
	}
	fut, err := e.publishRecord(id, d.rec, d.seq, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	seqs, errs := store.Wait(ctx, []jetstream.PubAckFuture{fut})
	if errs[0] != nil {
		t.Fatal(errs[0])
	}
	if j, err := e.Job(ctx, id); err != nil || j.State != StateReserved {
		t.Fatalf("status during the write-behind: %+v %v", j, err)
	}
	if _, _, ok := e.leases.get(id, lid); !ok {
		t.Fatal("a status read dropped the lease whose record was being written")
	}
	e.leases.written(id, lid, d.ver, seqs[0]) // the answer arrives

	// The lease runs out: the node gives the job back.
	ahead.Store(int64(90 * time.Second))
	now := e.now()
	_, expired := e.leases.sweep(now, now)
	e.expireLeases(ctx, expired)
	if j, err := e.Job(ctx, id); err != nil || j.State != StateReady || j.Timeouts != 1 {
		t.Fatalf("after the lease ran out: %+v %v", j, err)
	}
}

// A lease that runs out is given back by its node while a reservation of the delivery that
// JetStream offers again finds it expired: whichever stores its record first counts the
// timeout, once. (The reservation counted it before its compare-and-set, lost or not.)
func TestExpiryRacingAReservationCountsOneTimeout(t *testing.T) {
	t.Parallel()
	var ahead atomic.Int64 // the engine's clock, ahead of the real one
	clock := func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }
	e, _, ctx := internalEngine(t, Config{Now: clock})
	// The consumer's ack wait is the queue's lease: JetStream offers the job again a
	// second after its delivery.
	if _, err := e.PutQueue(ctx, "race", QueueSettings{Lease: time.Second}); err != nil {
		t.Fatal(err)
	}
	id, _ := enqueueReserved(t, e, ctx, EnqueueRequest{Queue: "race"})
	e.lw.write(ctx, time.Time{})

	// The order: the node's expiry waits before its first write until the reservation is
	// about to store its record; that one waits until the expiry stored its own.
	reserving, release, expiring := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var once, onceExp sync.Once
	var mu sync.Mutex
	seen := false
	e.st.SetFaults(func(op store.Op, subject string) error {
		if op != store.OpPublish {
			return nil
		}
		switch {
		case strings.Contains(subject, ".race.ready."): // the expiry's new message
			onceExp.Do(func() {
				close(expiring)
				waitCh(reserving)
			})
		case subject == jobSubject(id):
			mu.Lock()
			first := !seen
			seen = true
			mu.Unlock()
			if first { // the reservation's compare-and-set
				once.Do(func() { close(reserving) })
				waitCh(release)
			}
		}
		return nil
	})
	ahead.Store(int64(5 * time.Second)) // the lease has run out

	type answer struct {
		r   *ReserveResult
		err error
	}
	got := make(chan answer, 1)
	go func() {
		r, err := e.Reserve(ctx, ReserveRequest{Queues: []string{"race"}, Wait: 20 * time.Second})
		got <- answer{r, err}
	}()
	waitCh(expiring)
	waitCh(reserving)
	// The expiry stores the job ready; then the reservation's compare-and-set is let go.
	for {
		rec, _, err := e.readRecord(ctx, id)
		if err == nil && rec.State == StateReady {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the expiry did not give the job back: %+v %v", rec, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(release)
	a := <-got
	if a.err != nil || len(a.r.Jobs) != 1 || a.r.Jobs[0].Job.Timeouts != 1 || a.r.Jobs[0].Job.Attempts != 2 {
		t.Fatalf("reservation: %+v %v", a.r, a.err)
	}
	info, err := e.Queue(ctx, "race")
	if err != nil {
		t.Fatal(err)
	}
	if info.Stats.Timeouts != 1 {
		t.Fatalf("%d timeouts counted, want 1", info.Stats.Timeouts)
	}
}

// enqueueReserved enqueues one job and reserves it.
func enqueueReserved(t *testing.T, e *Engine, ctx context.Context, r EnqueueRequest) (uint64, Reserved) {
	t.Helper()
	j := enqueueOne(t, e, ctx, r)
	got, err := e.Reserve(ctx, ReserveRequest{Queues: []string{r.Queue}})
	if err != nil || len(got.Jobs) != 1 || got.Jobs[0].Job.ID != j.ID {
		t.Fatalf("reserve: %+v %v", got, err)
	}
	return j.ID, got.Jobs[0]
}

// waitCh waits for ch to close, for at most half a minute (a test that goes wrong then
// fails on what it finds instead of hanging).
func waitCh(ch <-chan struct{}) {
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
	}
}

// A lease write whose answer was lost (a timeout) but that landed: its retry loses the
// compare-and-set to that very write, and the lease holds on this node over the stored
// record instead of being dropped.
func TestLeaseWriteRetryAfterLostAnswer(t *testing.T) {
	t.Parallel()
	e, ctx, j, r := reservedJobIn(t, Config{LeaseWriteDelay: time.Hour}, "q", QueueSettings{})
	due := e.leases.due(time.Time{})
	if len(due) != 1 {
		t.Fatalf("pending leases: %d", len(due))
	}
	// The write lands; its answer does not come back (the writer's timeout path).
	seq, err := e.commitRecord(ctx, j.ID, due[0].rec, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	e.leases.unwritten(due[0].id, due[0].rec.LeaseID)
	e.lw.store(ctx, e.leases.due(time.Time{})) // the retry
	rec, got, ok := e.leases.lookup(j.ID)
	if !ok || got != seq || rec.LeaseID != due[0].rec.LeaseID {
		t.Fatalf("lease after the retry: %+v at %d (held %v), want it held over the stored record at %d", rec, got, ok, seq)
	}
	if _, err := e.Ack(ctx, j.ID, r.Jobs[0].Token, nil); err != nil {
		t.Fatalf("the holder's ack: %v", err)
	}
}

// A release whose new message a reservation meets before the release's record is stored:
// the reservation leaves the message be (it is the job's next message, not a redelivery of
// the lease's own) and the release goes through. Before, the reservation took the message
// into the old lease ("kept by its holder") and re-timed it to that lease's end: the
// release failed with lease lost and the job sat out the whole lease.
func TestReleaseMetByReservation(t *testing.T) {
	t.Parallel()
	e, ctx, j, r := reservedJobIn(t, Config{}, "met", QueueSettings{Lease: 10 * time.Minute})
	e.lw.write(ctx, time.Time{}) // the lease's record stored: the reservation reads it
	var newMsg, met atomic.Bool
	var during *ReserveResult
	var derr error
	e.st.SetFaults(func(op store.Op, subject string) error {
		switch {
		case op == store.OpPublish && strings.Contains(subject, ".ready."):
			newMsg.Store(true)
		case op == store.OpPublish && subject == jobSubject(j.ID) && newMsg.Load() && met.CompareAndSwap(false, true):
			// The release's record, about to be stored: a reservation comes first.
			during, derr = e.Reserve(ctx, ReserveRequest{Queues: []string{"met"}})
		}
		return nil
	})
	if _, err := e.Unreserve(ctx, j.ID, r.Jobs[0].Token); err != nil {
		t.Fatalf("release: %v", err)
	}
	e.st.SetFaults(nil)
	if !met.Load() || derr != nil || len(during.Jobs) != 0 {
		t.Fatalf("reservation between the release's message and record: met %v, %+v, %v", met.Load(), during, derr)
	}
	after, err := e.Reserve(ctx, ReserveRequest{Queues: []string{"met"}, Wait: 10 * time.Second})
	if err != nil || len(after.Jobs) != 1 || after.Jobs[0].Job.ID != j.ID {
		t.Fatalf("after the release: %+v, %v; want the job", after, err)
	}
}
