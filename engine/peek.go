package engine

// Peeks in reservation order, and counts beyond QueueStats.

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/spoolq/spool/engine/internal/store"
)

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
			msgs, err := e.st.Batch(ctx, q.names.stream(), store.Request{Seq: seq, NextFor: q.names.ready(b), Batch: 256})
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
func (e *Engine) firstUnreserved(ctx context.Context, q *queue, msgs []store.Msg) (*Job, error) {
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
		msgs, err := e.st.Batch(ctx, q.names.stream(), store.Request{Seq: seq, NextFor: q.names.state(StateDelayed), Batch: store.MaxBatch})
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

// DetailCounts are counts of a queue that QueueStats does not have.
type DetailCounts struct {
	// Urgent is the number of ready jobs with a priority below the threshold asked for
	// (beanstalkd's "urgent" jobs are those below 1024). Exact while the queue has at most
	// maxLevels priorities in use.
	Urgent int64
	// ReservedByID is the number of jobs reserved with ReserveByID, which QueueStats.Reserved
	// does not include (they are no consumer's pending deliveries).
	ReservedByID int64
}

// QueueDetailCounts reads a queue's DetailCounts, with Urgent counting the ready jobs of
// priorities below urgentBelow. Like QueueStats, the counts come from JetStream's consumer
// and stream state and may lag a fresh write by a moment.
func (e *Engine) QueueDetailCounts(ctx context.Context, queueName string, urgentBelow uint32) (*DetailCounts, error) {
	q, err := e.getQueue(ctx, queueName, false)
	if err != nil {
		return nil, err
	}
	cfg, _ := q.config()
	out := &DetailCounts{}
	var urgent []int
	for _, b := range cfg.levels() {
		if b < int(urgentBelow) {
			urgent = append(urgent, b)
		}
	}
	if len(urgent) > 0 {
		ready, _, _, err := e.levelCounts(ctx, q, urgent)
		if err != nil {
			return nil, fmt.Errorf("queue %q: %w", queueName, err)
		}
		for _, n := range ready {
			out.Urgent += n
		}
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
