package engine

import (
	"context"
	"time"
)

// leaseKind is how a reserved job is held, and so how its lease is extended and ended.
//
// A delivery lease (deliveryLease) is a pending delivery of a level consumer: JetStream's
// AckWait is its deadline, a NAK with a delay re-times it, an ack ends it, and the node that
// granted it keeps it in its lease table (leaseCache). A held lease (heldLease) is made by
// ReserveByID (beanstalkd's reserve-job): the job's message waits as an @at schedule due at
// the lease's end, on a subject no consumer reads; the record holds it from the start.
type leaseKind interface {
	// extend makes the lease end d from now; seq is the record's sequence.
	extend(ctx context.Context, e *Engine, id uint64, rec *record, seq uint64, d time.Duration) (*Job, error)
	// move stores the job in state st (ready, delayed until runAt, buried) with the record
	// next (a compare-and-set against curSeq), then ends the lease rec.
	move(ctx context.Context, e *Engine, q *queue, id uint64, next, rec *record, curSeq uint64, payload []byte, st State, runAt time.Time) (*Job, error)
	// end removes the lease's message once its job finished.
	end(ctx context.Context, e *Engine, id uint64, rec *record)
}

type (
	deliveryLease struct{}
	heldLease     struct{}
)

// kind is the kind of a reserved job's lease: held when the record has no ack subject.
func (r *record) kind() leaseKind {
	if r.byID() {
		return heldLease{}
	}
	return deliveryLease{}
}

// byID reports whether a reserved job's lease was made by ReserveByID: a held schedule in
// its queue stream (at Seq), not a consumer delivery with an ack subject.
func (r *record) byID() bool { return r.Ack == "" }

func (deliveryLease) extend(ctx context.Context, e *Engine, id uint64, rec *record, seq uint64, d time.Duration) (*Job, error) {
	now := e.now()
	next := *rec
	next.LeaseExp = now.Add(d).UnixNano()
	newSeq, err := e.commitRecord(ctx, id, &next, seq, 0)
	if err != nil {
		return nil, err
	}
	e.leases.put(id, &next, newSeq)
	e.extendLease(rec.Ack, d)
	return next.job(id, nil, now), nil
}

func (deliveryLease) move(ctx context.Context, e *Engine, q *queue, id uint64, next, rec *record, curSeq uint64, payload []byte, st State, runAt time.Time) (*Job, error) {
	return e.moveTo(ctx, q, id, next, curSeq, payload, st, runAt, rec.Ack)
}

func (deliveryLease) end(_ context.Context, e *Engine, id uint64, rec *record) {
	// Should this ack be lost, the job is offered again at the end of its lease and
	// reservation drops it, its record being final.
	if err := e.st.Ack(rec.Ack); err != nil {
		e.log.Warn("ack delivery", "job", id, "err", err)
	}
}

func (heldLease) extend(ctx context.Context, e *Engine, id uint64, rec *record, seq uint64, d time.Duration) (*Job, error) {
	q, payload, err := e.reservedPayload(ctx, rec)
	if err != nil {
		return nil, err
	}
	now := e.now()
	next := *rec
	next.LeaseExp = now.Add(d).UnixNano()
	if err := e.replaceHeld(ctx, q, id, &next, seq, payload, rec.Seq); err != nil {
		return nil, err
	}
	e.dropFired(ctx, rec, id, next.Seq)
	return next.job(id, nil, now), nil
}

func (heldLease) move(ctx context.Context, e *Engine, q *queue, id uint64, next, rec *record, curSeq uint64, payload []byte, st State, runAt time.Time) (*Job, error) {
	j, err := e.move(ctx, q, id, next, curSeq, payload, st, runAt, "", rec.Seq)
	if err == nil {
		e.dropFired(ctx, rec, id, next.Seq)
	}
	return j, err
}

func (heldLease) end(ctx context.Context, e *Engine, id uint64, rec *record) {
	n, err := e.namesOf(ctx, rec.Queue)
	if err == nil {
		err = e.st.Delete(ctx, n.stream(), rec.Seq)
	}
	if err != nil {
		// Should it stay, it turns ready at the end of the lease and reservation drops it.
		e.log.Warn("delete finished job's message", "job", id, "err", err)
	}
	e.dropFired(ctx, rec, id, 0)
}
