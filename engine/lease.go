package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/spoolq/spool/engine/internal/store"
)

// withLease runs op on the record of the lease that token names. A lease whose time ran out
// still holds until the job is reserved again: late work is accepted while nobody else has
// the job. op starts from this node's cached copy of the record when it has one; if that
// copy is stale op loses its compare-and-set, and runs once more on the record read back.
func (e *Engine) withLease(ctx context.Context, id uint64, token string, op func(rec *record, seq uint64) (*Job, error)) (*Job, error) {
	lid, err := parseToken(token)
	if err != nil {
		return nil, err
	}
	if rec, seq, ok := e.leases.get(id, lid); ok {
		j, err := op(rec, seq)
		if !errors.Is(err, ErrLeaseLost) {
			return j, err
		}
		e.leases.drop(id)
	}
	rec, seq, err := e.held(ctx, id, token)
	if err != nil {
		return nil, err
	}
	return op(rec, seq)
}

// held reads a job's record and checks that token is its current lease.
func (e *Engine) held(ctx context.Context, id uint64, token string) (*record, uint64, error) {
	lid, err := parseToken(token)
	if err != nil {
		return nil, 0, err
	}
	e.syncLeases(ctx, []leaseRef{{id, lid}})
	rec, seq, err := e.readRecord(ctx, id)
	if errors.Is(err, ErrJobNotFound) {
		return nil, 0, e.notHeld(ctx, id)
	}
	if err != nil {
		return nil, 0, err
	}
	if rec.State != StateReserved || rec.LeaseID != lid {
		return nil, 0, ErrLeaseLost
	}
	return rec, seq, nil
}

// notHeld is the error for a lease call on a job without a stored record (nor a lease in
// this node's table): ErrLeaseLost if the job exists (a fresh job, ready), else
// ErrJobNotFound.
func (e *Engine) notHeld(ctx context.Context, id uint64) error {
	if _, _, _, err := e.readJob(ctx, id); err != nil {
		return err
	}
	return ErrLeaseLost
}

// commitRecord writes next over the record at curSeq and waits for it. A failed
// compare-and-set means the job changed under the caller: ErrLeaseLost.
func (e *Engine) commitRecord(ctx context.Context, id uint64, next *record, curSeq uint64, ttl time.Duration) (uint64, error) {
	fut, err := e.publishRecord(id, next, curSeq, ttl, true)
	if err != nil {
		return 0, err
	}
	seqs, errs := store.Wait(ctx, []jetstream.PubAckFuture{fut})
	if casLost(errs[0]) {
		return 0, ErrLeaseLost
	}
	if errs[0] != nil {
		return 0, fmt.Errorf("store job record: %w", errs[0])
	}
	return seqs[0], nil
}

// Ack completes a reserved job. result, if any, must be JSON and is kept in the record.
func (e *Engine) Ack(ctx context.Context, id uint64, token string, result []byte) (*Job, error) {
	res, err := e.AckBatch(ctx, []AckRequest{{ID: id, Token: token, Result: result}})
	if err != nil {
		return nil, err
	}
	return res[0].Job, res[0].Err
}

// AckRequest completes one reserved job of a batch.
type AckRequest struct {
	ID     uint64
	Token  string
	Result []byte // optional JSON
}

// AckResult is the outcome of one ack of a batch.
type AckResult struct {
	Job *Job
	Err error
}

// AckBatch completes reserved jobs in few round trips whatever their number: the records of
// leases this node handed out are in its cache, the others are read in one batched read; the
// compare-and-sets are published together; then the deliveries are acked.
func (e *Engine) AckBatch(ctx context.Context, reqs []AckRequest) ([]AckResult, error) {
	if len(reqs) == 0 || len(reqs) > MaxBatch {
		return nil, invalid("acks", "a batch holds 1 to %d acks", MaxBatch)
	}
	out := make([]AckResult, len(reqs))
	var cached, toRead []*ackItem
	for i, r := range reqs {
		var lid uint64
		switch {
		case len(r.Result) > MaxResultLen:
			out[i].Err = invalid("result", "larger than %d bytes", MaxResultLen)
		case len(r.Result) > 0 && !json.Valid(r.Result):
			out[i].Err = invalid("result", "must be JSON")
		default:
			lid, out[i].Err = parseToken(r.Token)
		}
		if out[i].Err != nil {
			continue
		}
		it := &ackItem{i: i, lid: lid}
		if rec, seq, ok := e.leases.get(r.ID, lid); ok {
			it.rec, it.seq = rec, seq
			cached = append(cached, it)
		} else {
			toRead = append(toRead, it)
		}
	}
	stale := e.commitAcks(ctx, reqs, out, cached)
	for _, it := range stale {
		e.leases.drop(reqs[it.i].ID)
	}
	toRead = append(toRead, stale...)
	if len(toRead) > 0 {
		subjects := make([]string, len(toRead))
		refs := make([]leaseRef, len(toRead))
		for k, it := range toRead {
			subjects[k] = jobSubject(reqs[it.i].ID)
			refs[k] = leaseRef{reqs[it.i].ID, it.lid}
		}
		e.syncLeases(ctx, refs)
		recs, err := e.readRecords(ctx, subjects)
		if err != nil {
			return nil, err
		}
		var known []*ackItem
		for _, it := range toRead {
			sr, ok := recs[jobSubject(reqs[it.i].ID)]
			switch {
			case !ok:
				out[it.i].Err = e.notHeld(ctx, reqs[it.i].ID)
			case sr.rec.State != StateReserved || sr.rec.LeaseID != it.lid:
				out[it.i].Err = ErrLeaseLost
			default:
				it.rec, it.seq = sr.rec, sr.seq
				known = append(known, it)
			}
		}
		for _, it := range e.commitAcks(ctx, reqs, out, known) {
			out[it.i].Err = ErrLeaseLost
		}
	}
	return out, nil
}

type ackItem struct {
	i   int     // index in the batch
	lid uint64  // lease id of the token
	rec *record // the record as believed current
	seq uint64
}

// commitAcks compare-and-sets the items' records to succeeded, acks their deliveries and
// fills out. It returns the items that lost the compare-and-set.
func (e *Engine) commitAcks(ctx context.Context, reqs []AckRequest, out []AckResult, items []*ackItem) (lost []*ackItem) {
	items = e.ackUnrecorded(ctx, reqs, out, items)
	now := e.now()
	var sent []*ackItem
	var nexts []*record
	var futs []jetstream.PubAckFuture
	for _, it := range items {
		next := succeededRecord(it.rec, reqs[it.i].Result, now)
		fut, err := e.publishRecord(reqs[it.i].ID, next, it.seq, e.keepFinished(it.rec), true)
		if err != nil {
			out[it.i].Err = err
			continue
		}
		sent, nexts, futs = append(sent, it), append(nexts, next), append(futs, fut)
	}
	for k, err := range waitAll(ctx, futs) {
		it, id := sent[k], reqs[sent[k].i].ID
		switch {
		case casLost(err):
			lost = append(lost, it)
			continue
		case err != nil:
			out[it.i].Err = fmt.Errorf("store job record: %w", err)
			continue
		}
		e.endLease(ctx, id, it.rec)
		e.leases.drop(id)
		e.releaseUnique(ctx, id, nexts[k])
		out[it.i].Job = e.reportSucceeded(id, nexts[k], now)
	}
	return lost
}

// succeededRecord is the record rec of a reserved job once succeeded now, with result.
func succeededRecord(rec *record, result []byte, now time.Time) *record {
	next := *rec
	next.State, next.Finished, next.Result = StateSucceeded, now.UnixNano(), result
	next.clearLease()
	return &next
}

// reportSucceeded counts and tells the success of job id, next being its record as it
// ends, and returns the job.
func (e *Engine) reportSucceeded(id uint64, next *record, now time.Time) *Job {
	e.stats.add(escapeName(next.Queue), cSucceeded, 1)
	e.emit(EventSucceeded, id, next)
	return next.job(id, nil, now)
}

// ackMargin is the least time a lease must have left for its job to be acked without a
// record write: JetStream may offer a delivery again (to another node) once its ack wait
// is over, and an ack that arrives by then must find it still this lease's.
const ackMargin = 500 * time.Millisecond

// ackUnrecorded acks, with one awaited JetStream ack and no record write, the items whose
// job leaves nothing to store: a delivery lease of this node whose record was never
// written, in a queue that keeps no finished jobs (retention 0), acked without a result,
// its job without a callback URL or unique key, and with time left on the lease (past its
// end, another node may have reserved the job again, and only the record's compare-and-set
// tells). The job's message is then gone for good: JetStream removes it at the ack, so no
// copy is offered again. It fills out for those and returns the other items.
//
// An ack that fails may have been taken all the same: the lease is dropped either way, the
// caller gets the error, and the job is done or, its message still there, offered again at
// the end of its lease (at least once), but never left with a record of a lease that no
// longer exists.
func (e *Engine) ackUnrecorded(ctx context.Context, reqs []AckRequest, out []AckResult, items []*ackItem) (rest []*ackItem) {
	now := e.now()
	var taken []*ackItem
	var subjects []string
	for _, it := range items {
		rec, r := it.rec, reqs[it.i]
		if rec.byID() || len(r.Result) > 0 || rec.Callback != "" || rec.UniqueKey != "" ||
			rec.LeaseExp-now.UnixNano() < int64(ackMargin) || e.retention(rec.Queue) > 0 ||
			!e.leases.finish(r.ID, it.lid) { // a write of its record was sent: the CAS decides
			rest = append(rest, it)
			continue
		}
		taken, subjects = append(taken, it), append(subjects, rec.Ack)
	}
	for k, err := range e.st.AckSync(ctx, subjects) {
		it, id := taken[k], reqs[taken[k].i].ID
		e.leases.finished(id, it.lid)
		if err != nil {
			out[it.i].Err = fmt.Errorf("ack delivery: %w", err)
			continue
		}
		out[it.i].Job = e.reportSucceeded(id, succeededRecord(it.rec, nil, now), now)
	}
	return rest
}

// keepFinished is how long the record of a job finishing now is kept: its queue's
// retention, and at least until a delivery whose ack was lost comes back at the end of its
// lease (with a minute for a consumer to pull it). A fresh job's message without a record
// is taken for a job never started, so the record must outlive any copy of the message
// that may be offered again.
func (e *Engine) keepFinished(prev *record) time.Duration {
	keep := e.retention(prev.Queue)
	if prev.State == StateReserved {
		keep = max(keep, time.Duration(prev.LeaseExp-e.now().UnixNano())+time.Minute)
	}
	return max(keep.Round(time.Second), time.Second) // JetStream takes whole seconds, at least 1
}

// retention is how long queue keeps a finished job's record: none when not positive.
func (e *Engine) retention(queue string) time.Duration {
	if q := e.lookupQueue(queue); q != nil {
		q.mu.Lock() // (not q.config(): this is on every ack's path)
		defer q.mu.Unlock()
		return q.cfg.retention(e.cfg.Retention)
	}
	return e.cfg.Retention
}

func (r *record) clearLease() {
	r.LeaseID, r.LeaseExp, r.Ack, r.Seq = 0, 0, "", 0
}

// moveLeased is moveTo for a reserved job, whichever kind its lease is: the old delivery is
// acked, or the old held schedule deleted (with its fired copy, should the lease have ended).
func (e *Engine) moveLeased(ctx context.Context, q *queue, id uint64, next, rec *record, curSeq uint64, payload []byte, st State, runAt time.Time) (*Job, error) {
	if curSeq == 0 {
		// A lease whose record is not written yet: written first. A reservation that
		// meets the job's new message before the move's record must find the job
		// reserved (and leave the message be), not without a record (a stale copy).
		seq, err := e.commitRecord(ctx, id, rec, 0, 0)
		if err != nil {
			return nil, err
		}
		curSeq = seq
	}
	return rec.kind().move(ctx, e, q, id, next, rec, curSeq, payload, st, runAt)
}

// endLease removes the message of a finished job's lease: acks the delivery, or deletes
// the held schedule (and its fired copy).
func (e *Engine) endLease(ctx context.Context, id uint64, rec *record) {
	rec.kind().end(ctx, e, id, rec)
}

// Fail reports a failed attempt: the job is retried after a backoff, or buried when its
// attempts are used up or req.Bury is set.
func (e *Engine) Fail(ctx context.Context, id uint64, token string, req FailRequest) (*Job, error) {
	if req.RetryIn != nil && (*req.RetryIn < 0 || *req.RetryIn > MaxDelay) {
		return nil, invalid("retry_in", "must be between 0 and %s", MaxDelay)
	}
	return e.withLease(ctx, id, token, func(rec *record, seq uint64) (*Job, error) {
		q, payload, err := e.reservedPayload(ctx, rec)
		if err != nil {
			return nil, err
		}
		next := *rec
		next.LastError = truncate(req.Error, MaxErrorLen)
		st, at := StateBuried, time.Time{}
		cfg, _ := q.config()
		// With a dead-letter queue, a job out of attempts is made ready: its next
		// reservation moves it there.
		if !req.Bury && (rec.Attempts < rec.MaxAttempts || cfg.DeadLetter != "") {
			var delay time.Duration
			if req.RetryIn != nil {
				delay = *req.RetryIn
			} else {
				delay = backoff(rec.Attempts, time.Duration(cfg.BackoffMS)*time.Millisecond, time.Duration(cfg.BackoffMax)*time.Millisecond)
			}
			st = StateReady
			if delay > 0 {
				st, at = StateDelayed, e.now().Add(delay)
			}
		}
		j, err := e.moveLeased(ctx, q, id, &next, rec, seq, payload, st, at)
		if err == nil {
			e.stats.add(q.names.esc, cFailed, 1)
			e.emit(failKind(st), id, &next)
		}
		return j, err
	})
}

// backoff is base·2^(attempt-1), capped at max, with ±20% jitter so that jobs failed together
// do not come back together.
func backoff(attempt int, base, max time.Duration) time.Duration {
	d := base
	for i := 1; i < attempt && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// Release gives a reserved job back, ready now or after req.Delay, optionally with a new
// priority. A release does not use up an attempt.
func (e *Engine) Release(ctx context.Context, id uint64, token string, req ReleaseRequest) (*Job, error) {
	if req.Delay < 0 || req.Delay > MaxDelay {
		return nil, invalid("delay", "must be between 0 and %s", MaxDelay)
	}
	return e.withLease(ctx, id, token, func(rec *record, seq uint64) (*Job, error) {
		q, payload, err := e.reservedPayload(ctx, rec)
		if err != nil {
			return nil, err
		}
		next := *rec
		next.Releases++
		next.Attempts = max(next.Attempts-1, 0)
		if req.Priority != nil {
			next.Priority = *req.Priority
		}
		st, at := StateReady, time.Time{}
		if req.Delay > 0 {
			st, at = StateDelayed, e.now().Add(req.Delay)
		}
		return e.emitted(EventReleased, id, &next)(e.moveLeased(ctx, q, id, &next, rec, seq, payload, st, at))
	})
}

// Bury sets a reserved job aside until it is kicked.
func (e *Engine) Bury(ctx context.Context, id uint64, token string, req BuryRequest) (*Job, error) {
	return e.withLease(ctx, id, token, func(rec *record, seq uint64) (*Job, error) {
		q, payload, err := e.reservedPayload(ctx, rec)
		if err != nil {
			return nil, err
		}
		next := *rec
		if req.Reason != "" {
			next.LastError = truncate(req.Reason, MaxErrorLen)
		}
		if req.Priority != nil {
			next.Priority = *req.Priority
		}
		return e.emitted(EventBuried, id, &next)(e.moveLeased(ctx, q, id, &next, rec, seq, payload, StateBuried, time.Time{}))
	})
}

// Touch extends a reserved job's lease to lease from now (the job's own lease when 0).
// There is no upper bound on how often: a job may run for hours with a short lease.
func (e *Engine) Touch(ctx context.Context, id uint64, token string, lease time.Duration) (*Job, error) {
	if lease != 0 && (lease < MinLease || lease > MaxLease) {
		return nil, invalid("lease", "must be between %s and %s", MinLease, MaxLease)
	}
	if j, ok := e.touchHere(id, token, lease); ok {
		return j, nil
	}
	return e.withLease(ctx, id, token, func(rec *record, seq uint64) (*Job, error) {
		d := lease
		if d == 0 {
			d = rec.lease()
		}
		return e.emitted(EventTouched, id, rec)(rec.kind().extend(ctx, e, id, rec, seq, d))
	})
}

// touchHere extends a live delivery lease held in this node's table without a write: the
// new lease end is written behind with the lease's record. A lease that has run out, or
// that this node does not hold, takes the stored path.
func (e *Engine) touchHere(id uint64, token string, lease time.Duration) (*Job, bool) {
	lid, err := parseToken(token)
	if err != nil {
		return nil, false
	}
	rec, _, ok := e.leases.get(id, lid)
	now := e.now()
	if !ok || rec.byID() || rec.LeaseExp <= now.UnixNano() {
		return nil, false
	}
	d := cmpOr(lease, rec.lease())
	next := *rec
	next.LeaseExp = now.Add(d).UnixNano()
	if !e.leases.update(id, lid, &next, now) {
		return nil, false
	}
	e.extendLease(rec.Ack, d)
	e.emit(EventTouched, id, &next)
	return next.job(id, nil, now), true
}

// reservedPayload reads a reserved job's message back for a transition that republishes it.
func (e *Engine) reservedPayload(ctx context.Context, rec *record) (*queue, []byte, error) {
	q, err := e.getQueue(ctx, rec.Queue, false)
	if err != nil {
		return nil, nil, err
	}
	m, err := e.st.At(ctx, q.names.stream(), rec.Seq)
	if errors.Is(err, store.ErrNoMsg) {
		return nil, nil, ErrLeaseLost // removed meanwhile (queue purged or deleted)
	}
	if err != nil {
		return nil, nil, err
	}
	_, payload, err := decodeMsg(m.Data)
	return q, payload, err
}

// moveTo moves a job to state st (ready, delayed until runAt, or buried): it stores the new
// message, commits the record with a compare-and-set against curSeq, then removes the old
// message: oldAck acknowledges a reserved delivery, oldSeq deletes an unreserved message.
// On a lost compare-and-set the new message is removed again and ErrLeaseLost returned.
func (e *Engine) moveTo(ctx context.Context, q *queue, id uint64, next *record, curSeq uint64, payload []byte, st State, runAt time.Time, oldAck string) (*Job, error) {
	return e.move(ctx, q, id, next, curSeq, payload, st, runAt, oldAck, 0)
}

func (e *Engine) move(ctx context.Context, q *queue, id uint64, next *record, curSeq uint64, payload []byte, st State, runAt time.Time, oldAck string, oldSeq uint64) (*Job, error) {
	now := e.now()
	next.State, next.RunAt, next.RecSeq = st, 0, 0
	if st == StateDelayed {
		next.RunAt = runAt.UnixNano()
	}
	if st == StateBuried {
		next.Buries++
	}
	next.clearLease()
	lvl, err := e.levelFor(ctx, q, next.Priority)
	if err != nil {
		return nil, err
	}
	next.Band = lvl
	body, err := encodeMsg(id, next, payload)
	if err != nil {
		return nil, err
	}
	fut, err := e.publishJob(ctx, q, next, id, body)
	if err != nil {
		return nil, fmt.Errorf("store job: %w", err)
	}
	var newSeq uint64
	select {
	case ack := <-fut.Ok():
		newSeq = ack.Sequence
	case err := <-fut.Err():
		return nil, fmt.Errorf("store job: %w", err)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	next.Seq = newSeq
	if _, err := e.commitRecord(ctx, id, next, curSeq, 0); err != nil {
		if derr := e.st.Delete(ctx, q.names.stream(), newSeq); derr != nil {
			e.log.Error("remove message of a lost transition", "job", id, "err", derr)
		}
		return nil, err
	}
	e.leases.drop(id)
	switch {
	case oldAck != "":
		if err := e.st.Ack(oldAck); err != nil {
			e.log.Warn("ack delivery", "job", id, "err", err)
		}
	case oldSeq != 0:
		if err := e.st.Delete(ctx, q.names.stream(), oldSeq); err != nil {
			e.log.Warn("delete old message", "job", id, "err", err)
		}
	}
	if st == StateBuried {
		e.stats.add(q.names.esc, cBuried, 1)
	}
	if st == StateReady {
		e.notify(q, next.Band, 1, newSeq)
	}
	return next.job(id, payload, now), nil
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
		return e.emitted(EventReleased, id, &next)(e.moveLeased(ctx, q, id, &next, rec, seq, payload, StateReady, time.Time{}))
	})
}
