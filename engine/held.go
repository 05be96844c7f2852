package engine

// Leases made by ReserveByID: the job's message waits as a held schedule instead of a
// consumer delivery.

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// stateHeld is the subject state of a job reserved by id (ReserveByID). No consumer reads
// it: the message is an @at schedule, due when the lease ends, whose target is the job's
// ready subject. A lease that is neither finished nor touched in time thus puts the job back
// in its ready band, where the band's consumer hands it out again (a timeout), exactly as an
// expired delivery is offered again.
const stateHeld State = "held"

// ReserveByID reserves one job by id, whatever ready, delayed or buried state it is in
// (beanstalkd's reserve-job): the job is taken out of that state and held under a new lease
// of the job's own length. A job that is reserved already, finished or unknown gives
// ErrJobNotFound or a *StateError.
//
// Such a lease is not a delivery of a band consumer: the job's message waits on a subject
// no consumer reads, as a schedule that puts the job back in its ready band when the lease
// ends. Ack, Release, Bury, Fail and Touch work on it as on any lease (they see its kind in
// the record), and so does Delete.
//
// A job that a band consumer is handing out at the very moment it is reserved by id may end
// up reserved twice; the later holder's lease wins and the job is not lost (at-least-once).
func (e *Engine) ReserveByID(ctx context.Context, id uint64, worker string) (*Reserved, error) {
	if e.closed() {
		return nil, ErrClosed
	}
	u, err := e.unreservedJob(ctx, id, "reserve", StateReady, StateDelayed, StateBuried)
	if err != nil {
		return nil, err
	}
	rec, seq, m, q, payload := u.rec, u.seq, u.msg, u.q, u.payload
	now := e.now()
	next := *rec
	if !next.OwnLease {
		cfg, _ := q.config()
		next.LeaseMS = cfg.LeaseMS
	}
	next.State = StateReserved
	next.Attempts++
	next.ReservedAt = now.UnixNano()
	next.LeaseExp = now.Add(next.lease()).UnixNano()
	next.LeaseID = e.newLeaseID()
	next.Worker = worker
	next.RunAt = 0
	next.Ack = ""
	if next.Band, err = e.levelFor(ctx, q, next.Priority); err != nil {
		return nil, err
	}
	if err := e.replaceHeld(ctx, q, id, &next, seq, payload, m.Seq); err != nil {
		return nil, err
	}
	e.stats.add(q.names.esc, cReserves, 1)
	e.emit(EventReserved, id, &next)
	return &Reserved{Job: next.job(id, payload, now), Token: formatToken(next.LeaseID)}, nil
}

// publishHeld stores a job reserved by id: a schedule due at the end of its lease whose
// target is the job's ready subject. The ready band's consumer must exist by then.
func (e *Engine) publishHeld(ctx context.Context, q *queue, id uint64, rec *record, payload []byte) (uint64, error) {
	body, err := encodeMsg(id, rec, payload)
	if err != nil {
		return 0, err
	}
	m := &nats.Msg{Subject: q.names.subject(stateHeld, rec.Band, id), Data: body}
	scheduleAt(m, time.Unix(0, rec.LeaseExp), q.names.subject(StateReady, rec.Band, id))
	ack, err := e.st.PublishSync(ctx, m, jetstream.WithExpectStream(q.names.stream()))
	if err != nil {
		return 0, fmt.Errorf("store job: %w", err)
	}
	return ack.Sequence, nil
}

// replaceHeld stores next as the job's held schedule, commits the record against curSeq,
// then deletes the job's previous message (oldSeq). On a lost commit the new schedule is
// removed again and ErrLeaseLost returned.
func (e *Engine) replaceHeld(ctx context.Context, q *queue, id uint64, next *record, curSeq uint64, payload []byte, oldSeq uint64) error {
	newSeq, err := e.publishHeld(ctx, q, id, next, payload)
	if err != nil {
		return err
	}
	next.Seq = newSeq
	if _, err := e.commitRecord(ctx, id, next, curSeq, 0); err != nil {
		if derr := e.st.Delete(ctx, q.names.stream(), newSeq); derr != nil {
			e.log.Error("remove the held message of a lost transition", "job", id, "err", derr)
		}
		return err
	}
	if err := e.st.Delete(ctx, q.names.stream(), oldSeq); err != nil {
		e.log.Warn("delete a job's previous message", "job", id, "err", err)
	}
	return nil
}

// dropFired removes the copy of a job that its held schedule put on the ready subject when
// the lease ran out, once the late holder's transition is committed: without it the job
// would be offered again although it is finished, or be there twice. keep is the sequence
// of the job's new message, which may be on the same subject. A copy that a reservation is
// taking at this moment is left to it: that reservation's compare-and-set fails against the
// committed record.
func (e *Engine) dropFired(ctx context.Context, rec *record, id uint64, keep uint64) {
	if rec.LeaseExp > e.now().UnixNano() {
		return // the schedule has not fired
	}
	n, err := e.namesOf(ctx, rec.Queue)
	if err != nil {
		return
	}
	m, err := e.findReady(ctx, n, rec.Band, id, rec.LeaseExp, keep)
	if err != nil {
		return
	}
	if err := e.st.Delete(ctx, n.stream(), m.Seq); err != nil {
		e.log.Warn("delete fired copy of a job reserved by id", "job", id, "err", err)
	}
}
