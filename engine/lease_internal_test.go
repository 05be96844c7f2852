package engine

import (
	"testing"
	"time"
)

// JetStream may offer a job again before its lease ends: its pending delivery lost in a crash
// of its server, or a lease extension that did not reach it. The lease stays with its holder.
func TestEarlyRedeliveryKeepsTheLease(t *testing.T) {
	t.Parallel()
	e, nc, ctx := internalEngine(t)

	res, err := e.Enqueue(ctx, []EnqueueRequest{{Queue: "q", Lease: time.Minute}})
	if err != nil || res[0].Err != nil {
		t.Fatal(err, res[0].Err)
	}
	id := res[0].Job.ID
	got, err := e.Reserve(ctx, ReserveRequest{Queues: []string{"q"}})
	if err != nil || len(got.Jobs) != 1 {
		t.Fatalf("reserve: %+v %v", got, err)
	}
	held := got.Jobs[0]
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
