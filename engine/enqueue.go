package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/spoolq/spool/engine/internal/store"
)

// uniqueHold is how long a unique key stays held past the job's run time at most, in case
// the job never finishes (it is released early when the job finishes).
const uniqueHold = 7 * 24 * time.Hour

// ValidateEnqueue checks one enqueue request against the engine's limits.
func (e *Engine) ValidateEnqueue(r *EnqueueRequest) error {
	if err := ValidateQueueName(r.Queue); err != nil {
		return err
	}
	if len(r.Type) > MaxTypeLen || !printable(r.Type) {
		return invalid("type", "must be at most %d bytes of printable UTF-8", MaxTypeLen)
	}
	if len(r.Payload) > e.cfg.MaxPayload {
		return &PayloadTooLargeError{Size: len(r.Payload), Limit: e.cfg.MaxPayload}
	}
	if r.Delay < 0 || r.Delay > MaxDelay {
		return invalid("delay", "must be between 0 and %s", MaxDelay)
	}
	if !r.RunAt.IsZero() {
		if r.Delay != 0 {
			return invalid("run_at", "delay and run_at are exclusive")
		}
		if r.RunAt.After(e.now().Add(MaxDelay)) {
			return invalid("run_at", "more than 100 years ahead")
		}
	}
	if r.Buried && (r.Delay != 0 || !r.RunAt.IsZero()) {
		return invalid("buried", "a buried job takes no delay or run_at")
	}
	if r.Lease != 0 && (r.Lease < MinLease || r.Lease > MaxLease) {
		return invalid("lease", "must be between %s and %s", MinLease, MaxLease)
	}
	if r.MaxAttempts < 0 || r.MaxAttempts > MaxMaxAttempts {
		return invalid("max_attempts", "must be between 1 and %d", MaxMaxAttempts)
	}
	if r.Timeout < 0 || r.Timeout > MaxTimeout || r.Timeout%time.Millisecond != 0 {
		return invalid("timeout", "must be whole milliseconds between 0 (no limit) and %s", MaxTimeout)
	}
	if r.ID&^(derivedBit-1) != 0 {
		return invalid("id", "must be below 2^52 (larger ids are spool's own)")
	}
	if len(r.UniqueKey) > MaxUniqueKey {
		return invalid("unique_key", "longer than %d bytes", MaxUniqueKey)
	}
	if len(r.Metadata) > MaxMetadata {
		return invalid("metadata", "more than %d entries", MaxMetadata)
	}
	if r.CallbackURL != "" {
		if err := ValidateURL(r.CallbackURL); err != nil {
			return invalid("callback_url", "%s", err)
		}
	}
	for k, v := range r.Metadata {
		if k == "" || len(k) > MaxMetaKey || !printable(k) {
			return invalid("metadata", "keys must be 1 to %d bytes of printable UTF-8", MaxMetaKey)
		}
		if len(v) > MaxMetaValue || !utf8.ValidString(v) {
			return invalid("metadata", "value of %q must be at most %d bytes of UTF-8", k, MaxMetaValue)
		}
	}
	return nil
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// pending is one job of an enqueue batch on its way into JetStream.
type pending struct {
	req  *EnqueueRequest
	q    *queue
	id   uint64
	rec  *record
	res  *EnqueueResult
	done bool
	// fixedID: the caller chose the id; an existing record means a duplicate, not a collision.
	fixedID bool
	// fresh: no record is written; the id is derived from the message's sequence.
	fresh bool
	seq   uint64 // the message's stream sequence, once stored
	// again: a duplicate of a chosen id whose message may never have been stored; its
	// message is published again under the enqueue's message id (mayLackMessage).
	again bool
}

// Enqueue stores jobs. The whole batch is validated first: an invalid item fails the call
// with a *ValidationError (or *PayloadTooLargeError) naming the item, and nothing is stored.
// Then each job is acknowledged only once JetStream has stored it; a storage failure of one
// item is reported in its result and does not stop the others.
func (e *Engine) Enqueue(ctx context.Context, reqs []EnqueueRequest) ([]EnqueueResult, error) {
	if e.closed() {
		return nil, ErrClosed
	}
	if len(reqs) == 0 || len(reqs) > MaxBatch {
		return nil, invalid("jobs", "a batch holds 1 to %d jobs", MaxBatch)
	}
	for i := range reqs {
		if err := e.ValidateEnqueue(&reqs[i]); err != nil {
			if len(reqs) > 1 {
				var ve *ValidationError
				if errors.As(err, &ve) {
					return nil, &ValidationError{Field: fmt.Sprintf("jobs[%d].%s", i, ve.Field), Reason: ve.Reason}
				}
				return nil, fmt.Errorf("jobs[%d]: %w", i, err)
			}
			return nil, err
		}
	}
	if err := e.storeFull(); err != nil {
		return nil, err
	}
	now := e.now()
	results := make([]EnqueueResult, len(reqs))
	items := make([]*pending, len(reqs))
	for i := range reqs {
		r := &reqs[i]
		q, err := e.queueAt(ctx, r.Queue, r.Priority)
		if err != nil {
			return nil, err
		}
		cfg, _ := q.config()
		rec := &record{
			Queue: r.Queue, Type: r.Type, State: StateReady, Priority: r.Priority,
			MaxAttempts: cmpOr(r.MaxAttempts, cfg.MaxAttempts),
			LeaseMS:     cmpOr(r.Lease, time.Duration(cfg.LeaseMS)*time.Millisecond).Milliseconds(),
			OwnLease:    r.Lease != 0,
			TimeoutMS:   r.Timeout.Milliseconds(),
			UniqueKey:   r.UniqueKey, Metadata: r.Metadata, Created: now.UnixNano(),
			Callback: r.CallbackURL,
		}
		runAt := r.RunAt
		if runAt.IsZero() && r.Delay > 0 {
			runAt = now.Add(r.Delay)
		}
		switch {
		case r.Buried:
			rec.State, rec.Buries = StateBuried, 1
		case runAt.After(now):
			rec.State, rec.RunAt = StateDelayed, runAt.UnixNano()
		}
		if rec.Band, err = e.levelFor(ctx, q, r.Priority); err != nil {
			return nil, err
		}
		items[i] = &pending{req: r, q: q, rec: rec, res: &results[i], id: r.ID, fixedID: r.ID != 0}
		items[i].fresh = r.ID == 0 && r.UniqueKey == "" && rec.State == StateReady && q.derives()
	}

	// Unique keys first, one by one: they are rare and need a read-check-write each.
	for _, it := range items {
		if it.req.UniqueKey == "" {
			continue
		}
		dup, err := e.claimUnique(ctx, it)
		switch {
		case err != nil:
			it.res.Err, it.done = err, true
		case dup != nil:
			it.res.Job, it.res.Duplicate, it.done = dup, true, true
		}
	}

	// Records, then messages: a reservation never sees a job whose record is not stored
	// (fresh jobs have none: the reservation creates it).
	e.writeRecords(ctx, items)
	e.writeMessages(ctx, items)

	type qband struct {
		q *queue
		b int
	}
	ready := make(map[qband]int)
	last := make(map[qband]uint64)
	var order []qband
	for _, it := range items {
		if it.done {
			continue
		}
		if it.again {
			// The job as stored (its first payload, if its message was stored after all).
			// Counted and told by the enqueue that made the record, if its message was
			// stored; else not at all (a rare loss of a count, never of the job).
			if it.res.Job, it.res.Err = e.jobOf(ctx, it.id, it.rec, nil); it.res.Err == nil && it.rec.State == StateReady {
				e.notify(it.q, it.rec.Band, 1, it.seq)
			}
			continue
		}
		it.res.Job = it.rec.job(it.id, it.req.Payload, now)
		e.stats.add(it.q.names.esc, cEnqueued, 1)
		if it.rec.State == StateBuried {
			e.stats.add(it.q.names.esc, cBuried, 1)
		}
		e.emit(EventEnqueued, it.id, it.rec)
		if k := (qband{it.q, it.rec.Band}); it.rec.State == StateReady {
			if ready[k] == 0 {
				order = append(order, k)
			}
			ready[k]++
			last[k] = max(last[k], it.seq)
		}
	}
	for _, k := range order {
		e.notify(k.q, k.b, ready[k], last[k])
	}
	return results, nil
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// writeRecords creates the job records. The create-only write also catches the unlikely id
// collision between two nodes, which is retried with a fresh id.
func (e *Engine) writeRecords(ctx context.Context, items []*pending) {
	var todo []*pending
	for _, it := range items {
		if !it.done && !it.fresh {
			todo = append(todo, it)
		}
	}
	for attempt := 0; len(todo) > 0; attempt++ {
		var sent []*pending
		var futs []jetstream.PubAckFuture
		for _, it := range todo {
			if it.id == 0 || attempt > 0 && !it.fixedID {
				it.id = e.ids.next()
			}
			fut, err := e.publishRecord(it.id, it.rec, 0, 0, true)
			if err != nil {
				it.res.Err, it.done = fmt.Errorf("store job record: %w", err), true
				continue
			}
			sent, futs = append(sent, it), append(futs, fut)
		}
		todo = nil
		seqs, errs := store.Wait(ctx, futs)
		for i, err := range errs {
			it := sent[i]
			switch {
			case err == nil:
				// The message carries its record's sequence: reservation can then
				// compare-and-set without reading the record first.
				it.rec.RecSeq = seqs[i]
			case casLost(err) && it.fixedID:
				it.res.Duplicate = true
				rec, seq, err := e.readKnownRecord(ctx, it.id)
				switch {
				case err != nil:
					it.res.Err, it.done = err, true
				case mayLackMessage(rec, it.q.name, e.now()):
					rec.RecSeq = seq
					it.rec, it.again = rec, true
				default:
					it.done = true
					it.res.Job, it.res.Err = e.jobOf(ctx, it.id, rec, nil)
				}
			case casLost(err) && attempt < 3:
				todo = append(todo, it)
			default:
				it.res.Err, it.done = fmt.Errorf("store job record: %w", err), true
			}
		}
	}
}

// enqueueMsgWindow is how long after its record was made an enqueue with a chosen id is
// published again when it meets that record unchanged: below JetStream's default duplicate
// window (2 min) of the queue streams, which drops the second message if the first exists.
const enqueueMsgWindow = time.Minute

// mayLackMessage reports whether the record of a chosen id, met by an enqueue of that id,
// may have no message: made by an enqueue whose record write failed for want of an answer
// (a cluster without a majority) and was stored later, after that enqueue had given up,
// without its message. Nothing happened to it since, and it is recent enough for the
// duplicate window to drop the message published again if it was stored after all.
func mayLackMessage(rec *record, queue string, now time.Time) bool {
	return rec.Queue == queue && rec.FirstRes == 0 && rec.Seq == 0 && rec.Kicks == 0 && rec.Releases == 0 &&
		(rec.State == StateReady || rec.State == StateDelayed || rec.State == StateBuried) &&
		now.Sub(time.Unix(0, rec.Created)) < enqueueMsgWindow
}

// enqueueMsgID is the JetStream message id of the message of a job with a chosen id whose
// record was made at created: the same for the enqueue that made the record and one that
// publishes its message again, another for a job of the same id made after the first one's
// record expired.
func enqueueMsgID(id uint64, created int64) string {
	return "spool-enqueue-" + strconv.FormatUint(id, 10) + "-" + strconv.FormatInt(created, 36)
}

// writeMessages stores the jobs in their queue streams: ready jobs on their band's ready
// subject, delayed ones as @at schedules that JetStream moves to the ready subject on time.
func (e *Engine) writeMessages(ctx context.Context, items []*pending) {
	var batch []*pending
	var futs []jetstream.PubAckFuture
	for _, it := range items {
		if it.done {
			continue
		}
		body, err := encodeMsg(it.id, it.rec, it.req.Payload) // a fresh job's id is 0 here
		if err != nil {
			it.res.Err, it.done = err, true
			continue
		}
		var opts []jetstream.PublishOpt
		if it.fixedID {
			opts = append(opts, jetstream.WithMsgID(enqueueMsgID(it.id, it.rec.Created)))
		}
		fut, err := e.publishJob(ctx, it.q, it.rec, it.id, body, opts...)
		if err != nil {
			it.res.Err, it.done = err, true
			continue
		}
		batch, futs = append(batch, it), append(futs, fut)
	}
	seqs, errs := store.Wait(ctx, futs)
	for i, err := range errs {
		it := batch[i]
		if err == nil {
			it.seq = seqs[i]
		}
		if err == nil && it.fresh {
			if it.id, err = e.deriveID(ctx, it.q, seqs[i]); err != nil {
				if errors.Is(err, errNoChunk) {
					it.q.chunksUsedUp.Store(true)
				}
				// Stored, but with no id to give its caller: removed again, so that
				// the job is not both refused and run.
				if derr := e.st.Delete(context.WithoutCancel(ctx), it.q.names.stream(), seqs[i]); derr != nil {
					e.log.Error("remove a job that got no id", "err", derr)
				}
			} else {
				e.prepareChunk(it.q, seqs[i])
			}
		}
		if err == nil {
			continue
		}
		it.res.Err, it.done = fmt.Errorf("store job: %w", err), true
		if it.fresh || it.again {
			continue // no record of its own
		}
		// The job does not exist: remove its record, so that a retry with the same id (a
		// schedule's tick) is not taken for a duplicate.
		if derr := e.st.Delete(context.WithoutCancel(ctx), jobsStream, it.rec.RecSeq); derr != nil {
			e.log.Error("remove the record of a job that failed to store", "job", it.id, "err", derr)
		}
	}
}

// publishJob publishes a job's message in the state its record says: ready, delayed (as a
// schedule) or buried, making the queue's counter of that state first if need be.
func (e *Engine) publishJob(ctx context.Context, q *queue, rec *record, id uint64, body []byte, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	if err := e.ensureCounter(ctx, q, rec.State); err != nil {
		return nil, err
	}
	m := &nats.Msg{Data: body}
	switch rec.State {
	case StateDelayed:
		m.Subject = q.names.subject(StateDelayed, rec.Band, id)
		scheduleAt(m, time.Unix(0, rec.RunAt), q.names.subject(StateReady, rec.Band, id))
	case StateBuried:
		m.Subject = q.names.subject(StateBuried, rec.Band, id)
	default:
		m.Subject = q.names.subject(StateReady, rec.Band, id)
	}
	opts = append(opts, jetstream.WithExpectStream(q.names.stream()))
	return e.st.Publish(m, opts...)
}

// scheduleAt makes m an @at message schedule that JetStream publishes to target at t. The
// headers are set by hand: nats.go's WithScheduleAt writes whole seconds, which made a job
// ready up to a second early; the server parses fractions of a second.
func scheduleAt(m *nats.Msg, t time.Time, target string) {
	if m.Header == nil {
		m.Header = nats.Header{}
	}
	m.Header.Set("Nats-Schedule", "@at "+t.UTC().Format(time.RFC3339Nano))
	m.Header.Set("Nats-Schedule-Target", target)
}

// publishRecord writes a job record. With cas it is a compare-and-set against lastSeq (0:
// the record must not exist). A ttl makes the record expire (finished jobs).
func (e *Engine) publishRecord(id uint64, rec *record, lastSeq uint64, ttl time.Duration, cas bool) (jetstream.PubAckFuture, error) {
	data, err := marshalRecord(rec)
	if err != nil {
		return nil, err
	}
	opts := []jetstream.PublishOpt{jetstream.WithExpectStream(jobsStream)}
	if cas {
		opts = append(opts, jetstream.WithExpectLastSequencePerSubject(lastSeq))
	}
	if ttl > 0 {
		opts = append(opts, jetstream.WithMsgTTL(ttl))
	}
	return e.st.Publish(&nats.Msg{Subject: jobSubject(id), Data: data}, opts...)
}

// waitAll waits for every publish acknowledgement; errs[i] is the outcome of futs[i].
func waitAll(ctx context.Context, futs []jetstream.PubAckFuture) []error {
	_, errs := store.Wait(ctx, futs)
	return errs
}

// claimUnique takes the queue's unique key for the job about to be enqueued. When an
// unfinished job holds the key, that job is returned and nothing is enqueued.
func (e *Engine) claimUnique(ctx context.Context, it *pending) (*Job, error) {
	sum := sha256.Sum256([]byte(it.req.UniqueKey))
	subj := uniquePrefix + it.q.names.esc + "." + hex.EncodeToString(sum[:16])
	if it.id == 0 {
		it.id = e.ids.next()
	}
	hold := uniqueHold
	if it.rec.RunAt != 0 {
		hold += time.Until(time.Unix(0, it.rec.RunAt))
	}
	for try := range 5 {
		var last uint64
		cur, err := e.st.Last(ctx, jobsStream, subj)
		switch {
		case errors.Is(err, store.ErrNoMsg):
		case err != nil:
			return nil, err
		default:
			last = cur.Seq
			holder, perr := strconv.ParseUint(string(cur.Data), 10, 64)
			if perr == nil {
				if j, err := e.Job(ctx, holder); err == nil && !j.State.Final() {
					return j, nil
				}
			}
		}
		_, err = e.st.PublishSync(ctx, &nats.Msg{Subject: subj, Data: strconv.AppendUint(nil, it.id, 10)},
			jetstream.WithExpectLastSequencePerSubject(last), jetstream.WithMsgTTL(hold))
		if err == nil {
			return nil, nil
		}
		if !casLost(err) {
			return nil, fmt.Errorf("claim unique key: %w", err)
		}
		if err := casBackoff(ctx, try); err != nil {
			return nil, err
		}
	}
	return nil, errors.New("claim unique key: too much contention")
}

// releaseUnique frees a finished job's unique key, unless another job holds it by now.
func (e *Engine) releaseUnique(ctx context.Context, id uint64, rec *record) {
	if rec.UniqueKey == "" {
		return
	}
	sum := sha256.Sum256([]byte(rec.UniqueKey))
	subj := uniquePrefix + escapeName(rec.Queue) + "." + hex.EncodeToString(sum[:16])
	cur, err := e.st.Last(ctx, jobsStream, subj)
	if err != nil || string(cur.Data) != strconv.FormatUint(id, 10) {
		return
	}
	// A short-lived tombstone in place of the lock: compare-and-set, so a newer holder stays.
	_, err = e.st.PublishSync(ctx, &nats.Msg{Subject: subj, Data: nil},
		jetstream.WithExpectLastSequencePerSubject(cur.Seq), jetstream.WithMsgTTL(time.Second))
	if err != nil && !casLost(err) {
		e.log.Debug("release unique key", "job", id, "err", err)
	}
}
