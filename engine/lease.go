package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// held reads a job's record and checks that token is its current lease. A lease whose time
// ran out still holds until the job is reserved again: late work is accepted while nobody
// else has the job.
func (e *Engine) held(ctx context.Context, id uint64, token string) (*record, uint64, error) {
	lid, err := parseToken(token)
	if err != nil {
		return nil, 0, err
	}
	rec, seq, err := e.readRecord(ctx, id)
	if err != nil {
		return nil, 0, err
	}
	if rec.State != StateReserved || rec.LeaseID != lid {
		return nil, 0, ErrLeaseLost
	}
	return rec, seq, nil
}

// commitRecord writes next over the record at curSeq and waits for it. A failed
// compare-and-set means the job changed under the caller: ErrLeaseLost.
func (e *Engine) commitRecord(ctx context.Context, id uint64, next *record, curSeq uint64, ttl time.Duration) error {
	fut, err := e.publishRecord(id, next, curSeq, ttl, true)
	if err != nil {
		return err
	}
	err = waitAll(ctx, []jetstream.PubAckFuture{fut})[0]
	if apiCode(err) == errWrongLastSeq {
		return ErrLeaseLost
	}
	if err != nil {
		return fmt.Errorf("store job record: %w", err)
	}
	return nil
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

// AckBatch completes reserved jobs in three round trips whatever their number: one batched
// read of the records, their compare-and-sets published together, the deliveries' acks.
func (e *Engine) AckBatch(ctx context.Context, reqs []AckRequest) ([]AckResult, error) {
	if len(reqs) == 0 || len(reqs) > MaxBatch {
		return nil, invalid("acks", "a batch holds 1 to %d acks", MaxBatch)
	}
	out := make([]AckResult, len(reqs))
	lids := make([]uint64, len(reqs))
	subjects := make([]string, 0, len(reqs))
	for i, r := range reqs {
		switch {
		case len(r.Result) > MaxResultLen:
			out[i].Err = invalid("result", "larger than %d bytes", MaxResultLen)
		case len(r.Result) > 0 && !json.Valid(r.Result):
			out[i].Err = invalid("result", "must be JSON")
		default:
			lids[i], out[i].Err = parseToken(r.Token)
		}
		if out[i].Err == nil {
			subjects = append(subjects, jobSubject(r.ID))
		}
	}
	recs, err := e.readRecords(ctx, subjects)
	if err != nil {
		return nil, err
	}
	now := e.now()
	type inflight struct {
		i    int
		old  *record
		next *record
	}
	var sent []inflight
	var futs []jetstream.PubAckFuture
	for i, r := range reqs {
		if out[i].Err != nil {
			continue
		}
		sr, ok := recs[jobSubject(r.ID)]
		switch {
		case !ok:
			out[i].Err = ErrJobNotFound
			continue
		case sr.rec.State != StateReserved || sr.rec.LeaseID != lids[i]:
			out[i].Err = ErrLeaseLost
			continue
		}
		next := *sr.rec
		next.State, next.Finished, next.Result = StateSucceeded, now.UnixNano(), r.Result
		next.clearLease()
		fut, err := e.publishRecord(r.ID, &next, sr.seq, e.cfg.Retention, true)
		if err != nil {
			out[i].Err = err
			continue
		}
		sent, futs = append(sent, inflight{i, sr.rec, &next}), append(futs, fut)
	}
	for k, err := range waitAll(ctx, futs) {
		f := sent[k]
		switch {
		case apiCode(err) == errWrongLastSeq:
			out[f.i].Err = ErrLeaseLost
			continue
		case err != nil:
			out[f.i].Err = fmt.Errorf("store job record: %w", err)
			continue
		}
		// Removes the message (work-queue stream). Should this ack be lost, the job is
		// offered again at the end of its lease and reservation drops it, its record final.
		if err := e.nc.Publish(f.old.Ack, []byte("+ACK")); err != nil {
			e.log.Warn("ack delivery", "job", reqs[f.i].ID, "err", err)
		}
		e.stats.add(queueNames(f.old.Queue).esc, cSucceeded, 1)
		e.releaseUnique(ctx, reqs[f.i].ID, f.next)
		out[f.i].Job = f.next.job(reqs[f.i].ID, nil, now)
	}
	return out, nil
}

func (r *record) clearLease() {
	r.LeaseID, r.LeaseExp, r.Ack, r.Seq = 0, 0, "", 0
}

// Fail reports a failed attempt: the job is retried after a backoff, or buried when its
// attempts are used up or req.Bury is set.
func (e *Engine) Fail(ctx context.Context, id uint64, token string, req FailRequest) (*Job, error) {
	if req.RetryIn != nil && (*req.RetryIn < 0 || *req.RetryIn > MaxDelay) {
		return nil, invalid("retry_in", "must be between 0 and %s", MaxDelay)
	}
	rec, seq, err := e.held(ctx, id, token)
	if err != nil {
		return nil, err
	}
	q, payload, err := e.reservedPayload(ctx, rec)
	if err != nil {
		return nil, err
	}
	next := *rec
	next.LastError = truncate(req.Error, MaxErrorLen)
	e.stats.add(q.names.esc, cFailed, 1)
	if req.Bury || rec.Attempts >= rec.MaxAttempts {
		return e.moveTo(ctx, q, id, &next, seq, payload, StateBuried, time.Time{}, rec.Ack)
	}
	var delay time.Duration
	if req.RetryIn != nil {
		delay = *req.RetryIn
	} else {
		cfg, _ := q.config()
		delay = backoff(rec.Attempts, time.Duration(cfg.BackoffMS)*time.Millisecond, time.Duration(cfg.BackoffMax)*time.Millisecond)
	}
	if delay <= 0 {
		return e.moveTo(ctx, q, id, &next, seq, payload, StateReady, time.Time{}, rec.Ack)
	}
	return e.moveTo(ctx, q, id, &next, seq, payload, StateDelayed, e.now().Add(delay), rec.Ack)
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
	rec, seq, err := e.held(ctx, id, token)
	if err != nil {
		return nil, err
	}
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
	if req.Delay > 0 {
		return e.moveTo(ctx, q, id, &next, seq, payload, StateDelayed, e.now().Add(req.Delay), rec.Ack)
	}
	return e.moveTo(ctx, q, id, &next, seq, payload, StateReady, time.Time{}, rec.Ack)
}

// Bury sets a reserved job aside until it is kicked.
func (e *Engine) Bury(ctx context.Context, id uint64, token string, req BuryRequest) (*Job, error) {
	rec, seq, err := e.held(ctx, id, token)
	if err != nil {
		return nil, err
	}
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
	return e.moveTo(ctx, q, id, &next, seq, payload, StateBuried, time.Time{}, rec.Ack)
}

// Touch extends a reserved job's lease to lease from now (the job's own lease when 0).
// There is no upper bound on how often: a job may run for hours with a short lease.
func (e *Engine) Touch(ctx context.Context, id uint64, token string, lease time.Duration) (*Job, error) {
	if lease != 0 && (lease < MinLease || lease > MaxLease) {
		return nil, invalid("lease", "must be between %s and %s", MinLease, MaxLease)
	}
	rec, seq, err := e.held(ctx, id, token)
	if err != nil {
		return nil, err
	}
	if lease == 0 {
		lease = rec.lease()
	}
	now := e.now()
	next := *rec
	next.LeaseExp = now.Add(lease).UnixNano()
	if err := e.commitRecord(ctx, id, &next, seq, 0); err != nil {
		return nil, err
	}
	e.extendLease(rec.Ack, lease)
	return next.job(id, nil, now), nil
}

// reservedPayload reads a reserved job's message back for a transition that republishes it.
func (e *Engine) reservedPayload(ctx context.Context, rec *record) (*queue, []byte, error) {
	q, err := e.getQueue(ctx, rec.Queue, false)
	if err != nil {
		return nil, nil, err
	}
	m, err := e.directSeq(ctx, q.names.stream(), rec.Seq)
	if errors.Is(err, errNoMsg) {
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
	next.State, next.RunAt, next.Band = st, 0, band(next.Priority)
	if st == StateDelayed {
		next.RunAt = runAt.UnixNano()
	}
	if st == StateBuried {
		next.Buries++
	}
	next.clearLease()
	if st != StateBuried {
		if err := e.ensureBand(ctx, q, next.Band); err != nil {
			return nil, err
		}
	}
	body, err := encodeMsg(next, payload)
	if err != nil {
		return nil, err
	}
	fut, err := e.publishJob(q, next, id, body)
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
	if err := e.commitRecord(ctx, id, next, curSeq, 0); err != nil {
		if derr := e.deleteMsg(ctx, q.names.stream(), newSeq); derr != nil {
			e.log.Error("remove message of a lost transition", "job", id, "err", derr)
		}
		return nil, err
	}
	switch {
	case oldAck != "":
		if err := e.nc.Publish(oldAck, []byte("+ACK")); err != nil {
			e.log.Warn("ack delivery", "job", id, "err", err)
		}
	case oldSeq != 0:
		if err := e.deleteMsg(ctx, q.names.stream(), oldSeq); err != nil {
			e.log.Warn("delete old message", "job", id, "err", err)
		}
	}
	if st == StateBuried {
		e.stats.add(q.names.esc, cBuried, 1)
	}
	if st == StateReady {
		e.notify(q)
	}
	return next.job(id, payload, now), nil
}

// deleteMsg removes one message from a stream; a message already gone is not an error.
func (e *Engine) deleteMsg(ctx context.Context, stream string, seq uint64) error {
	body, _ := json.Marshal(struct {
		Seq     uint64 `json:"seq"`
		NoErase bool   `json:"no_erase"`
	}{seq, true})
	m, err := e.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.DELETE."+stream, body)
	if err != nil {
		return fmt.Errorf("delete message %d: %w", seq, err)
	}
	var resp struct {
		Success bool `json:"success"`
		Error   *struct {
			Code        int    `json:"code"`
			ErrCode     int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &resp); err != nil {
		return fmt.Errorf("delete message %d: %w", seq, err)
	}
	if resp.Error != nil && resp.Error.Code != 404 {
		return fmt.Errorf("delete message %d: %s", seq, resp.Error.Description)
	}
	return nil
}
