package engine

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/spoolq/spool/engine/internal/store"
)

// Job returns a job by id, in any state, with its payload while it is not finished.
func (e *Engine) Job(ctx context.Context, id uint64) (*Job, error) {
	rec, _, m, err := e.readJob(ctx, id)
	if err != nil {
		return nil, err
	}
	return e.jobOf(ctx, id, rec, m)
}

// jobOf returns job id as its record says, with the payload of its message m (looked up
// when nil).
func (e *Engine) jobOf(ctx context.Context, id uint64, rec *record, m *store.Msg) (*Job, error) {
	now := e.now()
	if rec.State.Final() {
		return rec.job(id, nil, now), nil
	}
	if m == nil {
		var err error
		if m, err = e.findMsg(ctx, rec, id); err != nil && !errors.Is(err, ErrJobNotFound) {
			return nil, err
		}
	}
	var payload []byte
	if m != nil {
		if _, p, err := decodeMsg(m.Data); err == nil {
			payload = p
		}
	}
	return rec.job(id, payload, now), nil
}

// JobQueue returns the name of the queue of job id, ErrJobNotFound when no queue holds it.
// A job enqueued ready is placed from memory (its id names its queue's chunk), and so is one
// this node holds a lease on (a worker's ack, touch or fail); another reads its record.
// Callers that allow a request by queue (authorization) ask it before acting.
func (e *Engine) JobQueue(ctx context.Context, id uint64) (string, error) {
	if rec, _, ok := e.leases.lookup(id); ok {
		return rec.Queue, nil
	}
	if id&derivedBit != 0 {
		q, _, err := e.locate(ctx, id)
		if err != nil {
			return "", err
		}
		return q.name, nil
	}
	rec, _, err := e.readRecord(ctx, id)
	if err != nil {
		return "", err
	}
	return rec.Queue, nil
}

// readJob reads a job's record and its sequence. A fresh job (enqueued ready with a derived
// id, untouched since) has no record yet: its message's envelope stands in for it, with the
// message, and sequence 0, so that a compare-and-set against it creates the record and
// fails should a reservation have created it meanwhile.
//
// A lease this node holds is answered from its table when the stored record is the one the
// lease knows (none, for a fresh job): its reservation and touches may not be stored yet.
func (e *Engine) readJob(ctx context.Context, id uint64) (*record, uint64, *store.Msg, error) {
	rec, seq, err := e.readRecord(ctx, id)
	if err == nil || errors.Is(err, ErrJobNotFound) {
		if lrec, lseq, ok := e.leases.over(id, rec, seq, err == nil); ok && lrec != rec {
			return lrec, lseq, nil, nil
		}
	}
	if !errors.Is(err, ErrJobNotFound) {
		return rec, seq, nil, err
	}
	q, first, err := e.locate(ctx, id)
	if err != nil {
		return nil, 0, nil, err
	}
	m, err := e.st.At(ctx, q.names.stream(), first)
	if errors.Is(err, store.ErrNoMsg) {
		// Gone since the record was read: reserved and finished meanwhile, or deleted.
		rec, seq, err := e.readRecord(ctx, id)
		return rec, seq, nil, err
	}
	if err != nil {
		return nil, 0, nil, err
	}
	env, _, err := decodeMsg(m.Data)
	if err != nil || env.ID != 0 || subjectState(m.Subject) != StateReady {
		return nil, 0, nil, ErrJobNotFound // the sequence holds another job's message
	}
	return env, 0, m, nil
}

// findMsg finds a job's message in its queue stream, whatever subject (state) it is on: at
// the sequence its record knows or its derived id names, on its own subject (delayed,
// buried, held), or else on its band's ready subject (one a schedule made ready).
func (e *Engine) findMsg(ctx context.Context, rec *record, id uint64) (*store.Msg, error) {
	q, err := e.getQueue(ctx, rec.Queue, false)
	if errors.Is(err, ErrQueueNotFound) {
		return nil, ErrJobNotFound
	}
	if err != nil {
		return nil, err
	}
	seq := rec.Seq
	if seq == 0 {
		if lq, first, err := e.locate(ctx, id); err == nil && lq == q {
			seq = first // a fresh job's message, if it is still the job's
		}
	}
	if seq != 0 {
		m, err := e.st.At(ctx, q.names.stream(), seq)
		if err == nil && e.msgHolds(ctx, m, id, q) {
			return m, nil
		}
		if err != nil && !errors.Is(err, store.ErrNoMsg) {
			return nil, err
		}
	}
	m, err := e.st.Last(ctx, q.names.stream(), q.names.anyState(id))
	if !errors.Is(err, store.ErrNoMsg) {
		return m, err
	}
	return e.findReady(ctx, q.names, rec.Band, id, rec.readySince(), 0)
}

// readMsgRecords reads the records of the jobs of msgs in one batch: ids[i] is msgs[i]'s
// job (0 for a malformed message) and subjects[i] its record's subject, the key of recs.
func (e *Engine) readMsgRecords(ctx context.Context, q *queue, msgs []store.Msg) (ids []uint64, subjects []string, recs map[string]seqRecord, err error) {
	ids, subjects = make([]uint64, len(msgs)), make([]string, len(msgs))
	for i := range msgs {
		ids[i], _ = e.msgJobID(ctx, &msgs[i], q)
		subjects[i] = jobSubject(ids[i])
	}
	recs, err = e.readRecords(ctx, subjects)
	if err != nil {
		return nil, nil, nil, err
	}
	for i, id := range ids {
		sr, found := recs[subjects[i]]
		if rec, seq, ok := e.leases.over(id, sr.rec, sr.seq, found); ok {
			recs[subjects[i]] = seqRecord{rec, seq}
		}
	}
	return ids, subjects, recs, nil
}

// readySince is the earliest time the job's current ready message, if it has one that its
// record does not locate, can have been stored: its creation, the end of its delay, or the
// end of a lease made by ReserveByID (whose schedule then fired).
func (r *record) readySince() int64 {
	t := max(r.Created, r.RunAt)
	if r.State == StateReserved && r.byID() {
		t = max(t, r.LeaseExp)
	}
	return t
}

// clockSkew is how far a stream leader's clock (which stamps messages) may be behind the
// clock of the node that wrote a job's record, for findReady's scan by time; a message
// stamped earlier still is found by the slower full scan.
const clockSkew = 50 * time.Millisecond

// findReady scans band b's ready subject for job id's message, skipping sequence skip: from
// a little before since, where it is, then from the start (a clock further off). It costs
// one batched read per 1,024 jobs stored on the subject since then.
func (e *Engine) findReady(ctx context.Context, n names, b int, id uint64, since int64, skip uint64) (*store.Msg, error) {
	from := time.Unix(0, since).Add(-clockSkew)
	m, err := e.scanReady(ctx, n, b, id, skip, store.Request{StartTime: &from})
	if m != nil || err != nil {
		return m, err
	}
	m, err = e.scanReady(ctx, n, b, id, skip, store.Request{Seq: 1, UpToTime: &from})
	if m != nil || err != nil {
		return m, err
	}
	return nil, ErrJobNotFound
}

func (e *Engine) scanReady(ctx context.Context, n names, b int, id uint64, skip uint64, req store.Request) (*store.Msg, error) {
	req.NextFor, req.Batch = n.ready(b), store.MaxBatch
	// The envelope is JSON with the id as a plain number: messages without that text are
	// passed over without being decoded.
	mark := []byte(`"id":` + strconv.FormatUint(id, 10))
	for {
		msgs, err := e.st.Batch(ctx, n.stream(), req)
		if err != nil {
			return nil, err
		}
		if len(msgs) == 0 {
			return nil, nil
		}
		for i := range msgs {
			// (The mark means the envelope has the id: the queue number plays no part.)
			if msgs[i].Seq != skip && bytes.Contains(envelope(msgs[i].Data), mark) && e.msgHolds(ctx, &msgs[i], id, nil) {
				return &msgs[i], nil
			}
		}
		req.Seq, req.StartTime = msgs[len(msgs)-1].Seq+1, nil
	}
}

// Delete cancels a job in any unfinished state. Cancelling a reserved job makes its holder's
// next operation fail with ErrLeaseLost.
func (e *Engine) Delete(ctx context.Context, id uint64) (*Job, error) {
	// The job may change under the delete (reserved, acked...): try again on the new record.
	for range 5 {
		j, err := e.tryDelete(ctx, id)
		if !errors.Is(err, ErrLeaseLost) {
			return j, err
		}
	}
	return nil, &StateError{Op: "delete", State: "changing"}
}

func (e *Engine) tryDelete(ctx context.Context, id uint64) (*Job, error) {
	// A lease of this node never written: written now, so that its ack cannot end it
	// without a record, and one compare-and-set of the two wins.
	wait, write := e.leases.settle(id)
	if wait != nil {
		select {
		case <-wait:
			return nil, ErrLeaseLost // the ack ended: read again
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	e.lw.store(ctx, write)
	rec, seq, m, err := e.readJob(ctx, id)
	if err != nil {
		return nil, err
	}
	if rec.State.Final() {
		return nil, &StateError{Op: "delete", State: rec.State}
	}
	if m == nil {
		m, err = e.findMsg(ctx, rec, id)
		if err != nil && !errors.Is(err, ErrJobNotFound) {
			return nil, err
		}
	}
	now := e.now()
	next := *rec
	next.State, next.Finished = StateCancelled, now.UnixNano()
	next.clearLease()
	if _, err := e.commitRecord(ctx, id, &next, seq, e.keepFinished(rec)); err != nil {
		return nil, err
	}
	e.leases.drop(id)
	if rec.State == StateReserved && rec.Ack != "" && m != nil {
		// Stop the delivery from being offered again; the message goes below. Only when
		// the message is the job's: the ack subject of a queue deleted and made again
		// names the same consumer and sequence in the new queue.
		e.st.Term(rec.Ack)
	}
	if m != nil {
		// Tried again on failure: a fresh job's message left behind would be taken for a
		// job never started once the cancelled record has expired.
		n, err := e.namesOf(ctx, rec.Queue)
		for pause := 100 * time.Millisecond; err == nil; pause *= 2 {
			if err = e.st.Delete(ctx, n.stream(), m.Seq); err == nil || pause > 400*time.Millisecond || sleepCtx(ctx, pause) != nil {
				break
			}
			err = nil // tried again
		}
		if err != nil {
			e.log.Error("delete cancelled job's message", "job", id, "err", err)
		}
	}
	e.stats.add(escapeName(rec.Queue), cCancelled, 1)
	e.emit(EventCancelled, id, &next)
	e.releaseUnique(ctx, id, &next)
	return next.job(id, nil, now), nil
}

// cancelAgain cancels a job whose record changed under a queue delete as Delete does, on
// the record read again (its message too, then: cancelled reports it); a job that finished
// meanwhile stays finished.
func (e *Engine) cancelAgain(ctx context.Context, id uint64) (cancelled bool, err error) {
	_, err = e.Delete(ctx, id)
	var se *StateError
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, ErrJobNotFound), errors.As(err, &se) && se.State.Final():
		return false, nil
	}
	return false, err
}

// sleepCtx waits d or until ctx is done.
// casBackoff waits before compare-and-set attempt n+1 (n from 0) after a lost one: another
// node's write won, or the read was answered by a replica a moment behind (Direct Get may
// be), which retrying at once would read again. Jittered, from 5 ms doubling up to 250 ms.
func casBackoff(ctx context.Context, n int) error {
	d := min(5*time.Millisecond<<min(n, 6), 250*time.Millisecond)
	return sleepCtx(ctx, d/2+rand.N(d/2+1))
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// unreservedMsg reads the record and finds the message of a job that is not reserved, and
// whose message is in one of the states allowed for op (a *StateError otherwise).
func (e *Engine) unreservedMsg(ctx context.Context, id uint64, op string, allowed ...State) (*record, uint64, *store.Msg, error) {
	rec, seq, m, err := e.readJob(ctx, id)
	if err != nil {
		return nil, 0, nil, err
	}
	if rec.State.Final() || rec.State == StateReserved {
		return nil, 0, nil, &StateError{Op: op, State: rec.State}
	}
	if m == nil {
		if m, err = e.findMsg(ctx, rec, id); err != nil {
			return nil, 0, nil, err
		}
	}
	if st := subjectState(m.Subject); !slices.Contains(allowed, st) {
		return nil, 0, nil, &StateError{Op: op, State: st}
	}
	return rec, seq, m, nil
}

// unreserved is a job that is not reserved, as unreservedJob read it.
type unreserved struct {
	rec     *record
	seq     uint64 // the record's sequence (0: a fresh job without one)
	msg     *store.Msg
	q       *queue
	payload []byte
}

// unreservedJob is unreservedMsg with the job's queue and payload.
func (e *Engine) unreservedJob(ctx context.Context, id uint64, op string, allowed ...State) (*unreserved, error) {
	rec, seq, m, err := e.unreservedMsg(ctx, id, op, allowed...)
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
	return &unreserved{rec, seq, m, q, payload}, nil
}

// Kick makes a buried or delayed job ready now. A kicked buried job gets its attempts back.
func (e *Engine) Kick(ctx context.Context, id uint64) (*Job, error) {
	u, err := e.unreservedJob(ctx, id, "kick", StateBuried, StateDelayed)
	if err != nil {
		return nil, err
	}
	rec, seq, m, q, payload := u.rec, u.seq, u.msg, u.q, u.payload
	next := *rec
	next.Kicks++
	if subjectState(m.Subject) == StateBuried {
		next.Attempts = 0
	}
	return e.emitted(EventKicked, id, &next)(e.move(ctx, q, id, &next, seq, payload, StateReady, time.Time{}, "", m.Seq))
}

// KickQueue kicks up to max jobs of a queue in state st (buried or delayed), oldest first;
// max <= 0 kicks them all. It returns how many were kicked.
func (e *Engine) KickQueue(ctx context.Context, name string, st State, max int) (int, error) {
	if st != StateBuried && st != StateDelayed {
		return 0, invalid("state", "kick takes buried or delayed jobs")
	}
	q, err := e.getQueue(ctx, name, false)
	if err != nil {
		return 0, err
	}
	kicked := 0
	var seq uint64 = 1
	for max <= 0 || kicked < max {
		batch := store.MaxBatch
		if max > 0 {
			batch = min(batch, max-kicked)
		}
		msgs, err := e.st.Batch(ctx, q.names.stream(), store.Request{Seq: seq, NextFor: q.names.state(st), Batch: batch})
		if err != nil {
			return kicked, err
		}
		if len(msgs) == 0 {
			break
		}
		for _, m := range msgs {
			seq = m.Seq + 1
			id, err := e.msgJobID(ctx, &m, q)
			if err != nil {
				continue
			}
			if _, err := e.Kick(ctx, id); err != nil {
				if errors.Is(err, ErrWrongState) || errors.Is(err, ErrJobNotFound) || errors.Is(err, ErrLeaseLost) {
					continue // changed meanwhile
				}
				return kicked, err
			}
			kicked++
			if ctx.Err() != nil {
				return kicked, ctx.Err()
			}
		}
	}
	return kicked, nil
}

// Peek lists a queue's jobs in one state (ready, delayed, reserved or buried), oldest first.
// Ready jobs that are reserved at the moment are left out. Reserved jobs are found among all
// the queue's messages (a lease keeps its job's ready message), so a page of them reads
// Limit messages and may hold fewer jobs, or none, and still have a next page.
func (e *Engine) Peek(ctx context.Context, req PeekRequest) (*PeekPage, error) {
	if req.State != StateReady && req.State != StateDelayed && req.State != StateReserved && req.State != StateBuried {
		return nil, invalid("state", "must be ready, delayed, reserved or buried")
	}
	if req.Limit <= 0 {
		req.Limit = 50
	}
	if req.Limit > MaxBatch {
		return nil, invalid("limit", "must be between 1 and %d", MaxBatch)
	}
	q, err := e.getQueue(ctx, req.Queue, false)
	if err != nil {
		return nil, err
	}
	filter := q.names.state(req.State)
	if req.State == StateReserved {
		filter = q.names.all()
	}
	msgs, err := e.st.Batch(ctx, q.names.stream(), store.Request{Seq: req.After + 1, NextFor: filter, Batch: min(req.Limit, store.MaxBatch)})
	if err != nil {
		return nil, err
	}
	ids, subjects, recs, err := e.readMsgRecords(ctx, q, msgs)
	if err != nil {
		return nil, err
	}
	now := e.now()
	page := &PeekPage{}
	seen := make(map[uint64]bool)
	for i, m := range msgs {
		env, payload, err := decodeMsg(m.Data)
		if err != nil || seen[ids[i]] {
			continue
		}
		rec := env
		if sr, ok := recs[subjects[i]]; ok {
			rec = sr.rec
		}
		j := rec.job(ids[i], payload, now)
		if req.State == StateReserved {
			if j.State != StateReserved {
				continue
			}
		} else if rec.State == StateReserved && j.State == StateReserved || j.State.Final() {
			continue
		} else {
			j.State = req.State
		}
		seen[ids[i]] = true
		page.Jobs = append(page.Jobs, j)
	}
	if len(msgs) == req.Limit {
		page.Next = msgs[len(msgs)-1].Seq
	}
	return page, nil
}

// Purge cancels every unreserved job of a queue, or only those in state st when it is set.
func (e *Engine) Purge(ctx context.Context, name string, st State) (int, error) {
	q, err := e.getQueue(ctx, name, false)
	if err != nil {
		return 0, err
	}
	filter := q.names.all()
	switch st {
	case "":
	case StateReady, StateDelayed, StateBuried:
		filter = q.names.state(st)
	default:
		return 0, invalid("state", "must be ready, delayed or buried")
	}
	return e.cancelMessages(ctx, q, filter, false)
}

// cancelMessages cancels the jobs whose messages match filter: record first, then message.
// Reserved jobs are skipped unless all is set.
func (e *Engine) cancelMessages(ctx context.Context, q *queue, filter string, all bool) (int, error) {
	n := 0
	var seq uint64 = 1
	for {
		msgs, err := e.st.Batch(ctx, q.names.stream(), store.Request{Seq: seq, NextFor: filter, Batch: 256})
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return n, ErrQueueNotFound
		}
		if err != nil {
			return n, err
		}
		if len(msgs) == 0 {
			return n, nil
		}
		ids, subjects, recs, err := e.readMsgRecords(ctx, q, msgs)
		if err != nil {
			return n, err
		}
		now := e.now()
		var futs []jetstream.PubAckFuture
		var held []int // the message (index in msgs) of each compare-and-set of futs
		var dels []uint64
		for i, m := range msgs {
			seq = m.Seq + 1
			sr, ok := recs[subjects[i]]
			cur, curSeq := sr.rec, sr.seq
			if !ok {
				// A fresh job has no record yet: it is created, cancelled. Any other
				// message without one is a stale copy of a job finished long ago.
				env, _, err := decodeMsg(m.Data)
				if err != nil || env.ID != 0 || ids[i] == 0 {
					dels = append(dels, m.Seq)
					continue
				}
				cur, curSeq = env, 0
			}
			if cur.State == StateReserved && !all {
				continue
			}
			if cur.State.Final() {
				dels = append(dels, m.Seq)
				continue
			}
			next := *cur
			next.State, next.Finished, next.RecSeq, next.ID = StateCancelled, now.UnixNano(), 0, 0
			next.clearLease()
			fut, err := e.publishRecord(ids[i], &next, curSeq, e.keepFinished(cur), true)
			if err != nil {
				return n, err
			}
			futs, held = append(futs, fut), append(held, i)
		}
		for k, err := range waitAll(ctx, futs) {
			switch {
			case err == nil:
				dels = append(dels, msgs[held[k]].Seq)
			case casLost(err) && all:
				// Changed meanwhile (a touch, an ack): a queue delete cancels it all the
				// same, or a lease of the old queue would outlive it.
				cancelled, err := e.cancelAgain(ctx, ids[held[k]])
				if err != nil {
					return n, err
				}
				if !cancelled {
					dels = append(dels, msgs[held[k]].Seq)
				}
			case casLost(err):
				// Changed meanwhile (reserved, finished): no longer this purge's.
			default:
				return n, err
			}
		}
		for _, s := range dels {
			if err := e.st.Delete(ctx, q.names.stream(), s); err != nil {
				return n, err
			}
			n++
		}
		e.stats.add(q.names.esc, cCancelled, int64(len(dels)))
	}
}
