package engine

// This file holds what the beanstalkd protocol front needs beyond the engine's general API:
// peeks in the order beanstalkd defines them, a reservation of one job by id (beanstalkd's
// reserve-job) and the counts behind beanstalkd's statistics. It only builds on the engine's
// internals; it changes none of them.

import (
	"context"
	"errors"
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

// urgentPriority is beanstalkd's threshold of urgent jobs: priorities below it.
const urgentPriority = 1024

// PeekNextReady returns the ready job of a queue that the next reservation of that queue
// would get: the oldest job of the most urgent band that has one. Jobs reserved at the
// moment are skipped; a job whose lease has run out counts as ready (it is offered again).
// It returns ErrJobNotFound when nothing is ready. A paused queue still has its next job.
//
// The scan reads the band's messages from the start of the stream, so it costs one batched
// read per 256 jobs reserved at the moment in the bands ahead of the answer.
func (e *Engine) PeekNextReady(ctx context.Context, queueName string) (*Job, error) {
	q, err := e.getQueue(ctx, queueName, false)
	if err != nil {
		return nil, err
	}
	cfg, _ := q.config()
	for _, b := range cfg.levels() {
		var seq uint64 = 1
		for {
			msgs, err := e.directBatch(ctx, q.names.stream(), directRequest{Seq: seq, NextFor: q.names.ready(b), Batch: 256})
			if err != nil {
				return nil, err
			}
			if len(msgs) == 0 {
				break
			}
			j, err := e.firstUnreserved(ctx, q, msgs)
			if err != nil {
				return nil, err
			}
			if j != nil {
				j.State = StateReady
				return j, nil
			}
			seq = msgs[len(msgs)-1].Seq + 1
		}
	}
	return nil, ErrJobNotFound
}

// firstUnreserved returns the first job of msgs (ready messages) that is not reserved under
// a live lease nor finished, or nil.
func (e *Engine) firstUnreserved(ctx context.Context, q *queue, msgs []storedMsg) (*Job, error) {
	ids, subjects, recs, err := e.readMsgRecords(ctx, q, msgs)
	if err != nil {
		return nil, err
	}
	now := e.now()
	for i, m := range msgs {
		env, payload, err := decodeMsg(m.Data)
		if err != nil || ids[i] == 0 {
			continue
		}
		rec := env // a fresh job: no record yet
		if sr, ok := recs[subjects[i]]; ok {
			rec = sr.rec
		} else if env.ID != 0 {
			continue // finished and expired: a stale copy
		}
		j := rec.job(ids[i], payload, now)
		if j.State == StateReserved || j.State.Final() {
			continue
		}
		return j, nil
	}
	return nil, nil
}

// PeekSoonestDelayed returns the delayed job of a queue whose delay ends first (ties: the
// lower id), or ErrJobNotFound. It reads every delayed job of the queue: JetStream keeps
// schedules in stream order, not in due order.
func (e *Engine) PeekSoonestDelayed(ctx context.Context, queueName string) (*Job, error) {
	q, err := e.getQueue(ctx, queueName, false)
	if err != nil {
		return nil, err
	}
	var bestID uint64
	var bestAt int64
	var best []byte
	var seq uint64 = 1
	for {
		msgs, err := e.directBatch(ctx, q.names.stream(), directRequest{Seq: seq, NextFor: q.names.state(StateDelayed), Batch: maxDirectBatch})
		if err != nil {
			return nil, err
		}
		if len(msgs) == 0 {
			break
		}
		for _, m := range msgs {
			seq = m.Seq + 1
			id, ok := subjectID(m.Subject)
			if !ok {
				continue
			}
			env, payload, err := decodeMsg(m.Data)
			if err != nil {
				continue
			}
			if best == nil || env.RunAt < bestAt || env.RunAt == bestAt && id < bestID {
				bestID, bestAt, best = id, env.RunAt, append(payload[:0:0], payload...)
			}
		}
	}
	if best == nil {
		return nil, ErrJobNotFound
	}
	rec, _, err := e.readRecord(ctx, bestID)
	if err != nil {
		return nil, err
	}
	if rec.State.Final() {
		return nil, ErrJobNotFound
	}
	return rec.job(bestID, best, e.now()), nil
}

// BeanstalkCounts are the counts beanstalkd reports that QueueStats does not have.
type BeanstalkCounts struct {
	// Urgent is the number of ready jobs with a priority below 1024.
	Urgent int64
	// ReservedByID is the number of jobs reserved with ReserveByID, which QueueStats.Reserved
	// does not include (they are no consumer's pending deliveries).
	ReservedByID int64
}

// QueueBeanstalkCounts reads a queue's BeanstalkCounts. Like QueueStats, the counts come from
// JetStream's consumer and stream state and may lag a fresh write by a moment.
func (e *Engine) QueueBeanstalkCounts(ctx context.Context, queueName string) (*BeanstalkCounts, error) {
	q, err := e.getQueue(ctx, queueName, false)
	if err != nil {
		return nil, err
	}
	cfg, _ := q.config()
	out := &BeanstalkCounts{}
	for _, b := range cfg.levels() {
		if b >= urgentPriority {
			break
		}
		c, err := e.js.Consumer(ctx, q.names.stream(), consumerName(b))
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("queue %q band %d: %w", queueName, b, err)
		}
		out.Urgent += int64(c.CachedInfo().NumPending)
	}
	s, err := e.js.Stream(ctx, q.names.stream())
	if err != nil {
		return nil, fmt.Errorf("queue %q stream: %w", queueName, err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(q.names.state(stateHeld)))
	if err != nil {
		return nil, fmt.Errorf("queue %q stream info: %w", queueName, err)
	}
	for _, n := range info.State.Subjects {
		out.ReservedByID += int64(n)
	}
	return out, nil
}

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
	rec, seq, m, err := e.unreservedMsg(ctx, id, "reserve", StateReady, StateDelayed, StateBuried)
	if err != nil {
		return nil, err
	}
	q, err := e.getQueue(ctx, rec.Queue, false)
	if err != nil {
		return nil, err
	}
	_, payload, err := decodeMsg(m.Data)
	if err != nil {
		return nil, err
	}
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
	ack, err := e.js.PublishMsg(ctx, m, jetstream.WithExpectStream(q.names.stream()))
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
		if derr := e.deleteMsg(ctx, q.names.stream(), newSeq); derr != nil {
			e.log.Error("remove the held message of a lost transition", "job", id, "err", derr)
		}
		return err
	}
	if err := e.deleteMsg(ctx, q.names.stream(), oldSeq); err != nil {
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
	n := queueNames(rec.Queue)
	m, err := e.findReady(ctx, n, rec.Band, id, rec.LeaseExp, keep)
	if err != nil {
		return
	}
	if err := e.deleteMsg(ctx, n.stream(), m.Seq); err != nil {
		e.log.Warn("delete fired copy of a job reserved by id", "job", id, "err", err)
	}
}

// touchHeld extends a lease made by ReserveByID to d from now: its held schedule is
// replaced by one due at the new end.
func (e *Engine) touchHeld(ctx context.Context, id uint64, rec *record, seq uint64, d time.Duration) (*Job, error) {
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

// Unreserve puts a reserved job back in ready as it was, for a holder that went away
// (beanstalkd returns the jobs of a client that disconnects): unlike Release it counts no
// release and gives no attempt back. It takes leases of both kinds, from Reserve and from
// ReserveByID.
func (e *Engine) Unreserve(ctx context.Context, id uint64, token string) (*Job, error) {
	return e.withLease(ctx, id, token, func(rec *record, seq uint64) (*Job, error) {
		q, payload, err := e.reservedPayload(ctx, rec)
		if err != nil {
			return nil, err
		}
		next := *rec
		return e.moveLeased(ctx, q, id, &next, rec, seq, payload, StateReady, time.Time{})
	})
}
