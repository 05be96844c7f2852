package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/spoolq/spool/engine/internal/store"
)

// MaxReserveQueues is the most queues one reservation may name.
const MaxReserveQueues = 100

// Reserve hands out up to req.Max ready jobs from req.Queues, most urgent priority band first
// across all of them, FIFO within a band, waiting up to req.Wait for one to arrive. Queues
// that do not exist yet are watched as empty ones; paused queues hand out nothing and are
// listed in the result.
func (e *Engine) Reserve(ctx context.Context, req ReserveRequest) (*ReserveResult, error) {
	if len(req.Queues) == 0 || len(req.Queues) > MaxReserveQueues {
		return nil, invalid("queues", "name 1 to %d queues", MaxReserveQueues)
	}
	for _, n := range req.Queues {
		if err := ValidateQueueName(n); err != nil {
			return nil, err
		}
	}
	if req.Max < 0 || req.Max > MaxBatch {
		return nil, invalid("max", "must be between 1 and %d", MaxBatch)
	}
	if req.Max == 0 {
		req.Max = 1
	}
	if req.Wait < 0 {
		return nil, invalid("wait", "must not be negative")
	}
	if req.PollID != "" {
		if err := ValidatePollID(req.PollID); err != nil {
			return nil, err
		}
		pctx, done, ok := e.polls.start(ctx, req.PollID)
		if !ok {
			return &ReserveResult{}, nil // ended already
		}
		defer done()
		ctx = pctx
	}
	// ended: the caller ended this poll (EndPoll) and waits for its answer.
	ended := func() bool { return errors.Is(context.Cause(ctx), errPollEnded) }
	deadline := e.now().Add(req.Wait)
	refreshed := false
	// The reservation parks on its queues while it looks and waits, so that an enqueue
	// meanwhile wakes it; one that leaves with a wake-up unused passes it on.
	w := newWaiter()
	var parked []*queue
	unpark := func() {
		for _, q := range parked {
			q.unpark(w)
		}
	}
	defer func() {
		unpark()
		if w.woken() {
			for _, q := range parked {
				q.wakeJobs(1)
			}
		}
	}()
	for {
		if e.closed() {
			return nil, ErrClosed
		}
		res := &ReserveResult{}
		var active []*queue
		wakes := []<-chan struct{}{w.ch}
		now := e.now()
		unpark()
		parked = parked[:0]
		for _, n := range req.Queues {
			q, wake := e.watchQueue(n)
			wakes = append(wakes, wake)
			if q == nil {
				continue
			}
			if cfg, _ := q.config(); cfg.pausedAt(now) {
				res.Paused = append(res.Paused, n)
				continue
			}
			q.park(w)
			parked = append(parked, q)
			active = append(active, q)
		}
		jobs, err := e.tryReserve(ctx, active, req.Max, req.Worker)
		if ctx.Err() != nil && ended() {
			res.Jobs = jobs
			return res, nil
		}
		if ctx.Err() != nil {
			// The caller left while jobs were being reserved for it: give them back now
			// rather than at the end of their leases.
			e.GiveBack(jobs)
			return nil, ctx.Err()
		}
		if err != nil {
			if len(jobs) == 0 {
				return nil, err
			}
			// Jobs are reserved already: hand them out; the next call meets the error.
			e.log.Warn("reserve: a band failed after others gave jobs", "err", err)
		}
		res.Jobs = jobs
		left := deadline.Sub(e.now())
		if len(jobs) == 0 && err == nil && left <= 0 && !refreshed && !req.Glance {
			// About to answer "nothing": this node may not know yet of a queue or a
			// priority level made on another node (its watch of the bucket lags by a
			// moment), nor of jobs enqueued through another node (their wake-up is on
			// its way). A job whose enqueue was answered must be found: look at the
			// bucket and the streams themselves, and again at once if they say more.
			// (A reservation that waits is woken by the watch and the wake-ups.)
			if e.refreshQueues(ctx, req.Queues) {
				continue // the next look comes here again, with the new view
			}
			refreshed = true
			if e.noteUnseen(ctx, active) {
				continue
			}
		}
		if len(jobs) > 0 || left <= 0 {
			return res, nil
		}
		if err := e.wait(ctx, wakes, min(left, e.cfg.PollInterval)); err != nil {
			if ended() {
				return res, nil
			}
			return nil, err
		}
	}
}

// refreshQueues reads the bucket entries of the named queues and takes in those newer than
// this node's view. It reports whether any was.
func (e *Engine) refreshQueues(ctx context.Context, names []string) bool {
	changed := false
	for _, n := range names {
		ent, err := e.kv.Get(ctx, escapeName(n))
		if err != nil {
			continue // none (yet), or unreadable: the view stays
		}
		q := e.lookupQueue(n)
		var rev uint64
		if q != nil {
			_, rev = q.config()
		}
		if q == nil || ent.Revision() > rev {
			if _, err := e.cacheEntry(ent); err == nil {
				changed = true
			}
		}
	}
	return changed
}

// noteUnseen looks in the streams of qs for ready jobs past those this node pulled, which
// the level consumers may not count yet (jobs enqueued through another node, whose wake-up
// has not arrived): their levels are noted as published to, so that the next pull waits
// for the consumer's count (lagWait). It reports whether any level was.
func (e *Engine) noteUnseen(ctx context.Context, qs []*queue) bool {
	found := false
	for _, q := range qs {
		cfg, _ := q.config()
		for _, b := range cfg.levels() {
			if q.mayLag(b) {
				found = true // a wake-up came meanwhile: the next pull checks for it
				continue
			}
			msgs, err := e.st.Batch(ctx, q.names.stream(), store.Request{Seq: q.seen(b) + 1, NextFor: q.names.ready(b), Batch: 1})
			if err == nil && len(msgs) > 0 {
				q.notePublished(b, msgs[0].Seq)
				found = true
			}
		}
	}
	return found
}

// undelivered reports whether level b of q's stream holds a message its consumer has not
// delivered yet, as the stream and the consumer's delivered position say (not the
// consumer's count of pending messages, which lags).
func (e *Engine) undelivered(ctx context.Context, q *queue, b int) bool {
	c, err := e.js.Consumer(ctx, q.names.stream(), q.names.consumer(b))
	if err != nil {
		return true // unknown: wait for the count rather than miss a job
	}
	delivered := c.CachedInfo().Delivered.Stream
	msgs, err := e.st.Batch(ctx, q.names.stream(), store.Request{Seq: delivered + 1, NextFor: q.names.ready(b), Batch: 1})
	if err != nil {
		return true
	}
	if len(msgs) == 0 {
		q.noteSeen(b, delivered) // all of it handed out: no need to look again before a new job
		return false
	}
	return true
}

// lagWait bounds how long a pull waits for messages its consumer has not counted yet. A
// JetStream consumer learns of new messages asynchronously and refuses a no-wait pull while
// its count is 0, for a moment after a publish (longer on a loaded machine); a no-wait pull
// with an expiry waits for them instead. It is paid only on a level that got jobs since this
// node last found it empty and whose stream holds a job its consumer has not delivered
// (undelivered), and it ends as soon as the consumer counts it.
const lagWait = 20 * time.Millisecond

// waitAny returns when a channel closes, d passes or ctx is done.
func waitAny(ctx context.Context, chs []<-chan struct{}, d time.Duration, stop <-chan struct{}) error {
	t := time.NewTimer(d)
	defer t.Stop()
	done := make(chan struct{})
	defer close(done)
	wake := make(chan struct{}, 1)
	for _, ch := range chs {
		go func() {
			select {
			case <-ch:
				select {
				case wake <- struct{}{}:
				default:
				}
			case <-done:
			}
		}()
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-stop:
		return ErrClosed
	case <-t.C:
	case <-wake:
	}
	return nil
}

type bandRef struct {
	q *queue
	b int
}

// tryReserve pulls what is ready now, band by band.
func (e *Engine) tryReserve(ctx context.Context, qs []*queue, need int, worker string) ([]Reserved, error) {
	var refs []bandRef
	for _, q := range qs {
		cfg, _ := q.config()
		for _, b := range cfg.levels() {
			refs = append(refs, bandRef{q, b})
		}
	}
	slices.SortStableFunc(refs, func(a, b bandRef) int { return cmp.Compare(a.b, b.b) })
	if len(qs) > 1 {
		refs = e.byHeadAge(ctx, refs)
	}
	var out []Reserved
	for _, r := range refs {
		if len(out) >= need {
			break
		}
		msgs, err := e.pull(ctx, r.q, r.b, need-len(out), 0)
		if err == nil && len(msgs) == 0 && r.q.mayLag(r.b) && e.undelivered(ctx, r.q, r.b) {
			// The consumer does not count those jobs yet (it learns of new messages
			// a moment after they are stored), and a more urgent level must not be
			// skipped for that: a pull with an expiry waits for the count.
			msgs, err = e.pull(ctx, r.q, r.b, need-len(out), lagWait)
		}
		if err != nil {
			return out, err
		}
		for _, m := range msgs {
			if md, err := m.Metadata(); err == nil {
				r.q.noteSeen(r.b, md.Sequence.Stream)
			}
		}
		if len(msgs) > 0 {
			// Whatever the caller does meanwhile, activation learns the outcome of its
			// writes: a record left reserved by a write whose answer was not awaited would
			// hold the job for a whole lease.
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), requestTimeout)
			out = append(out, e.activate(actx, r.q, r.b, msgs, worker)...)
			cancel()
		}
	}
	return out, nil
}

// byHeadAge orders the levels of equal priority of several queues by the age of the job
// each would hand out next, oldest first, as beanstalkd orders equal priorities by put
// order. The next job is the first message of the level past the last one this node
// pulled from it: exact on one node; with several nodes pulling, a queue may look older
// than it is. A level found empty goes last (its consumer may count new jobs late).
func (e *Engine) byHeadAge(ctx context.Context, refs []bandRef) []bandRef {
	for i := 0; i < len(refs); {
		j := i + 1
		for j < len(refs) && refs[j].b == refs[i].b {
			j++
		}
		if j-i > 1 {
			heads := make(map[*queue]int64, j-i)
			for _, r := range refs[i:j] {
				heads[r.q] = math.MaxInt64
				msgs, err := e.st.Batch(ctx, r.q.names.stream(), store.Request{Seq: r.q.seen(r.b) + 1, NextFor: r.q.names.ready(r.b), Batch: 1})
				if err == nil && len(msgs) > 0 {
					heads[r.q] = msgs[0].Time.UnixNano()
				}
			}
			slices.SortStableFunc(refs[i:j], func(a, b bandRef) int { return cmp.Compare(heads[a.q], heads[b.q]) })
		}
		i = j
	}
	return refs
}

// pull asks a band's consumer for up to n messages without waiting for more than are there.
// With expires > 0 the request waits that long when the consumer counts none yet, and
// returns as soon as it has any.
// A level whose consumer was deleted as idle gets it made again.
func (e *Engine) pull(ctx context.Context, q *queue, b, n int, expires time.Duration) ([]*nats.Msg, error) {
	q.notePull(b, e.now())
	warn := func() { e.log.Warn("pull: no answer from JetStream", "stream", q.names.stream()) }
	msgs, err := e.st.Pull(q.names.stream(), q.names.consumer(b), n, expires, warn)
	if errors.Is(err, store.ErrNoConsumer) && q.names.shared {
		if err := e.ensureLevel(ctx, q, b); err != nil {
			return nil, err
		}
		msgs, err = e.st.Pull(q.names.stream(), q.names.consumer(b), n, expires, warn)
	}
	if errors.Is(err, store.ErrNoConsumer) {
		err = nil // the queue was deleted
	}
	return msgs, err
}

// activate turns fetched deliveries into reservations: each job's record is rewritten, with
// a compare-and-set, to reserved with a new lease id. A fresh job's message carries its
// record's sequence, so the compare-and-set needs no read; the others, and those whose
// record changed meanwhile, are read first. Deliveries of jobs already finished (a stale
// duplicate) are dropped; jobs out of attempts are buried instead of handed out.
func (e *Engine) activate(ctx context.Context, q *queue, b int, msgs []*nats.Msg, worker string) []Reserved {
	now := e.now()
	trusted := e.trustedAfter(ctx, q)
	var fast, slow []*cand
	for _, m := range msgs {
		md, err := m.Metadata()
		env, payload, derr := decodeMsg(m.Data)
		var id uint64
		var perr error
		if err == nil && derr == nil {
			id = env.ID
			if id == 0 {
				// A fresh job: its id is its queue's number and this first message's
				// sequence; its record does not exist yet.
				id, perr = e.deriveID(ctx, q, md.Sequence.Stream)
			}
		}
		if err != nil || perr != nil || derr != nil {
			e.log.Error("dropping malformed job message", "subject", m.Subject, "err", errors.Join(err, perr, derr))
			e.st.Term(m.Reply)
			continue
		}
		c := &cand{msg: m, id: id, sseq: md.Sequence.Stream, payload: payload}
		switch {
		case env.ID == 0 && md.NumDelivered <= 1 && md.Sequence.Stream > trusted:
			// A fresh job's first delivery: its one message, offered once. The lease
			// goes into this node's table and its record is written behind
			// (leaseWriter): whatever changes the job meanwhile creates the record,
			// which the holder's next compare-and-set (against sequence 0) then meets.
			c.cur, c.curSeq, c.behind = env, 0, true
			fast = append(fast, c)
		case env.ID == 0 && md.NumDelivered <= 1:
			// Stored before this engine could watch its consumer: JetStream may have
			// lost the consumer's state in a crash and offer a job it handed out (even
			// finished) as new. The compare-and-set against sequence 0 tells.
			c.cur, c.curSeq = env, 0
			fast = append(fast, c)
		case env.ID == 0:
			// Offered again: an earlier lease ran out. Its record is read first; if
			// there is none (its node died before writing it), every delivery was an
			// attempt, the last one timed out.
			env.State, env.LeaseExp = StateReserved, 0
			env.Attempts = max(env.Attempts, int(md.NumDelivered)-1)
			c.fresh = env
			slow = append(slow, c)
		case env.RecSeq != 0:
			c.cur, c.curSeq = env, env.RecSeq
			fast = append(fast, c)
		default:
			slow = append(slow, c)
		}
	}
	out := make([]Reserved, 0, len(msgs))
	slow = append(slow, e.reserveCands(ctx, q, b, fast, worker, now, &out)...)
	if len(slow) == 0 {
		return out
	}
	subjects := make([]string, len(slow))
	for i, c := range slow {
		subjects[i] = jobSubject(c.id)
	}
	recs, err := e.readRecords(ctx, subjects)
	if err != nil {
		e.log.Warn("reserve: read records", "err", err)
		for _, c := range slow {
			e.st.Nak(c.msg.Reply)
		}
		return out
	}
	known := slow[:0]
	for _, c := range slow {
		sr, ok := recs[jobSubject(c.id)]
		if !ok && c.fresh != nil {
			sr, ok = seqRecord{c.fresh, 0}, true
		}
		if !ok || sr.rec.State.Final() || sr.rec.Queue != "" && sr.rec.Queue != q.name {
			// Finished (its record may have expired), or moved to another queue (a
			// dead-letter queue): this is a stale copy.
			e.st.Term(c.msg.Reply)
			continue
		}
		if sr.rec.State == StateBuried || sr.rec.State == StateReady && sr.rec.Seq != 0 && sr.rec.Seq != c.sseq {
			// Buried (its message waits on the buried subject), or made ready again by a
			// move (release, kick, an expired lease given back) whose new message is
			// another: this is the job's old message, offered again because the ack of
			// its delivery did not reach JetStream (lost in a crash). (A delayed record
			// with a ready message is a schedule that fired: that one is the job's.)
			e.st.Term(c.msg.Reply)
			continue
		}
		c.cur, c.curSeq = sr.rec, sr.seq
		known = append(known, c)
	}
	for _, c := range e.reserveCands(ctx, q, b, known, worker, now, &out) {
		// Changed again meanwhile (a cancel, a late ack): offer it again; the next
		// reservation sees the new record.
		e.st.Nak(c.msg.Reply)
	}
	return out
}

// trustedAfter returns the sequence after which a fresh job's first delivery from q's
// stream is its first delivery indeed. A JetStream server that crashed may have lost its
// consumers' latest state and offer again, as never delivered, messages it had handed out,
// whose jobs may have finished since: such a job's record exists, and only the
// reservation's compare-and-set (create-only) finds it. A message stored while this
// engine's connection has been up without a break was stored after any such crash, and
// its first delivery needs no such check: its lease can live in memory. The mark is taken
// anew after each reconnect. math.MaxUint64 (trust nothing) when the stream cannot be read.
//
// In a replicated stream nothing is trusted: a replicated consumer's deliveries are not
// exact across a change of its leader. A new leader offers again, as new, what the old one
// delivered but had not replicated yet; a former leader that was frozen or cut off
// delivers from its stale state until it learns of the new term, even jobs that finished
// meanwhile. Only a write, which needs the current leader and a majority, tells.
func (e *Engine) trustedAfter(ctx context.Context, q *queue) uint64 {
	if cfg, _ := q.config(); e.replicasOf(cfg) > 1 {
		return math.MaxUint64
	}
	rc := e.nc.Stats().Reconnects
	if m := q.trust.Load(); m != nil && m.reconnects == rc {
		return m.seq
	}
	s, err := e.js.Stream(ctx, q.names.stream())
	if err != nil {
		e.log.Warn("reserve: read stream state", "queue", q.name, "err", err)
		return math.MaxUint64
	}
	q.trust.Store(&trustMark{seq: s.CachedInfo().State.LastSeq, reconnects: rc})
	return s.CachedInfo().State.LastSeq
}

// cand is a delivery on its way to becoming a reservation.
type cand struct {
	msg     *nats.Msg
	id      uint64
	sseq    uint64
	payload []byte
	cur     *record // the record as believed current
	curSeq  uint64  // and its sequence: the compare-and-set key
	behind  bool    // its reservation's record may be written behind
	fresh   *record // a fresh job offered again: its record if none is stored
}

// reserveCands compare-and-sets the candidates' records to reserved and appends the
// reservations to out. It returns the candidates whose compare-and-set failed.
func (e *Engine) reserveCands(ctx context.Context, q *queue, b int, cands []*cand, worker string, now time.Time, out *[]Reserved) (lost []*cand) {
	if len(cands) == 0 {
		return nil
	}
	cfg, _ := q.config()
	// got[k] is cands[k]'s reservation, if it gets one: the caller sees them in the
	// order they were pulled.
	got := make([]*Reserved, len(cands))
	var live []int
	var nexts []*record
	var futs []jetstream.PubAckFuture
	for k, c := range cands {
		next := *c.cur
		next.RecSeq, next.ID = 0, 0 // envelope fields, not the record's
		if c.cur.State == StateReserved && c.cur.LeaseExp > now.UnixNano() {
			switch {
			case c.sseq > c.cur.Seq:
				// Not the lease's delivery offered again but the job's next message: a
				// move (release, fail, give back) stored it and has yet to store the
				// record that says so. Left be a moment: offered again, it meets that
				// record. (Taken into the lease, it would be re-timed to the lease's end
				// and the move would fail. Should the mover's node die before the
				// record, the message comes back every moveSettle until the lease ends,
				// and is then taken as the job's, a timeout.)
				e.st.NakDelay(c.msg.Reply, moveSettle)
			case c.sseq < c.cur.Seq:
				// An earlier message of the job, which lives in the lease's own now (a
				// reservation by id deleting the ready message it replaced, or a copy
				// whose ack was lost): dropped, as stale copies are.
				e.st.Term(c.msg.Reply)
			default:
				e.keepLease(ctx, c, b, now)
			}
			continue
		}
		if c.cur.State == StateReserved {
			next.Timeouts++ // counted once the record that says so is stored (timedOut)
		}
		if c.cur.Attempts >= c.cur.MaxAttempts {
			next.LastError = cmpOr(next.LastError, "attempts exhausted")
			if cfg.DeadLetter != "" {
				if moved, done := e.moveToDeadLetter(ctx, q, cfg.DeadLetter, c, &next); done {
					if moved {
						e.timedOut(q, c)
					}
					continue
				}
			}
			if _, err := e.moveTo(ctx, q, c.id, &next, c.curSeq, c.payload, StateBuried, time.Time{}, c.msg.Reply); err != nil {
				e.log.Warn("bury exhausted job", "job", c.id, "err", err)
				e.st.Nak(c.msg.Reply)
			} else {
				e.timedOut(q, c)
				e.emit(EventBuried, c.id, &next)
			}
			continue
		}
		if !next.OwnLease {
			next.LeaseMS = cfg.LeaseMS // the queue's lease as it is now
		}
		next.State = StateReserved
		next.Attempts++
		next.ReservedAt = now.UnixNano()
		if next.FirstRes == 0 {
			next.FirstRes = next.ReservedAt
		}
		next.LeaseExp = now.Add(next.lease()).UnixNano()
		next.LeaseID = e.newLeaseID()
		next.Seq, next.Band, next.Ack, next.Worker = c.sseq, b, c.msg.Reply, worker
		next.RunAt = 0
		if c.behind {
			e.leases.putPending(c.id, &next, 0, now)
			e.startLease(&next, cfg)
			e.emit(EventReserved, c.id, &next)
			got[k] = &Reserved{Job: next.job(c.id, c.payload, now), Token: formatToken(next.LeaseID)}
			continue
		}
		fut, err := e.publishRecord(c.id, &next, c.curSeq, 0, true)
		if err != nil {
			e.st.Nak(c.msg.Reply)
			continue
		}
		live, nexts, futs = append(live, k), append(nexts, &next), append(futs, fut)
	}
	seqs, errs := store.Wait(ctx, futs)
	for i, err := range errs {
		c, next := cands[live[i]], nexts[i]
		switch {
		case casLost(err):
			lost = append(lost, c)
			continue
		case err != nil:
			e.log.Warn("reserve: store record", "job", c.id, "err", err)
			e.st.Nak(c.msg.Reply)
			continue
		}
		e.timedOut(q, c)
		e.startLease(next, cfg)
		e.leases.put(c.id, next, seqs[i])
		e.emit(EventReserved, c.id, next)
		got[live[i]] = &Reserved{Job: next.job(c.id, c.payload, now), Token: formatToken(next.LeaseID)}
	}
	n := 0
	for _, r := range got {
		if r != nil {
			*out = append(*out, *r)
			n++
		}
	}
	e.stats.add(q.names.esc, cReserves, int64(n))
	return lost
}

// timedOut counts the timeout of a delivery whose lease had run out (its record said
// reserved) once the reservation's new record is stored. A reservation that loses its
// compare-and-set counts nothing: what changed the job (the granting node giving it back
// at the end of its lease) counted it.
func (e *Engine) timedOut(q *queue, c *cand) {
	if c.cur.State == StateReserved {
		e.stats.add(q.names.esc, cTimeouts, 1)
		e.emit(EventExpired, c.id, c.cur)
	}
}

// moveSettle is how long a reservation leaves a job's new message be when it meets it before
// the record of the move that stored it (reserveCands): a move stores the record right after.
const moveSettle = 50 * time.Millisecond

// startLease times a new delivery lease: the consumer's ack wait is the queue's lease as
// it was when the consumer was made, so any other length re-times the delivery.
func (e *Engine) startLease(next *record, cfg queueConfig) {
	if next.LeaseMS != cfg.LeaseMS {
		e.extendLease(next.Ack, next.lease())
	}
}

// GiveBack releases reservations that nobody will receive (their caller left), so that the
// jobs are ready again at once, with their attempt given back, rather than after their leases.
func (e *Engine) GiveBack(jobs []Reserved) {
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	// A few at a time: a reservation of up to MaxBatch jobs comes back in as many moves.
	work := make(chan Reserved)
	var wg sync.WaitGroup
	for range min(len(jobs), giveBackWorkers) {
		wg.Go(func() {
			for r := range work {
				if _, err := e.Release(ctx, r.Job.ID, r.Token, ReleaseRequest{}); err != nil {
					e.log.Warn("give back an undelivered reservation", "job", r.Job.ID, "err", err)
				}
			}
		})
	}
	for _, r := range jobs {
		work <- r
	}
	close(work)
	wg.Wait()
}

// giveBackWorkers is how many releases GiveBack runs at once.
const giveBackWorkers = 8

// keepLease handles a delivery of a job whose lease has not ended: JetStream offered it early
// because it lost the pending delivery (a crash of its server) or missed a lease extension.
// The lease stays with its holder, moved onto this delivery: the record points at the new
// delivery, which is re-timed to expire with the lease.
func (e *Engine) keepLease(ctx context.Context, c *cand, b int, now time.Time) {
	next := *c.cur
	next.RecSeq, next.ID = 0, 0
	next.Ack, next.Seq, next.Band = c.msg.Reply, c.sseq, b
	if _, err := e.commitRecord(ctx, c.id, &next, c.curSeq, 0); err != nil {
		e.st.Nak(c.msg.Reply) // changed meanwhile: look again
		return
	}
	e.extendLease(next.Ack, time.Duration(next.LeaseExp-now.UnixNano()))
	e.log.Info("job offered again before its lease ended: lease kept by its holder", "job", c.id)
}

// extendLease sets a delivery's remaining lease to d: a NAK with a delay re-times the
// pending delivery to expire d from now, whatever the consumer's ack wait.
func (e *Engine) extendLease(ack string, d time.Duration) {
	if err := e.st.NakDelay(ack, d); err != nil {
		e.log.Warn("extend lease", "err", err)
	}
}

func formatToken(id uint64) string { return strconv.FormatUint(id, 16) }

func parseToken(tok string) (uint64, error) {
	id, err := strconv.ParseUint(tok, 16, 64)
	if err != nil || id == 0 {
		return 0, invalid("lease_token", "malformed")
	}
	return id, nil
}

type seqRecord struct {
	rec *record
	seq uint64
}

// readRecords reads job records by subject in one batched Direct Get.
func (e *Engine) readRecords(ctx context.Context, subjects []string) (map[string]seqRecord, error) {
	out := make(map[string]seqRecord, len(subjects))
	for len(subjects) > 0 {
		n := min(len(subjects), store.MaxBatch)
		msgs, err := e.st.Batch(ctx, jobsStream, store.Request{MultiLast: subjects[:n], Batch: n})
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			r, err := unmarshalRecord(m.Data)
			if err != nil {
				e.log.Error("malformed job record", "subject", m.Subject, "err", err)
				continue
			}
			out[m.Subject] = seqRecord{r, m.Seq}
		}
		subjects = subjects[n:]
	}
	return out, nil
}

// readKnownRecord reads the record of a job known to exist (a create-only write just met
// it), reading again for a moment while a replica behind the write says it does not.
func (e *Engine) readKnownRecord(ctx context.Context, id uint64) (*record, uint64, error) {
	sr, err := readKnown(ctx, ErrJobNotFound, func() (seqRecord, error) {
		rec, seq, err := e.readRecord(ctx, id)
		return seqRecord{rec, seq}, err
	})
	return sr.rec, sr.seq, err
}

// readRecord reads one job's record and its sequence (the compare-and-set key).
func (e *Engine) readRecord(ctx context.Context, id uint64) (*record, uint64, error) {
	m, err := e.st.Last(ctx, jobsStream, jobSubject(id))
	if errors.Is(err, store.ErrNoMsg) {
		return nil, 0, ErrJobNotFound
	}
	if err != nil {
		return nil, 0, err
	}
	r, err := unmarshalRecord(m.Data)
	if err != nil {
		return nil, 0, fmt.Errorf("job %d: %w", id, err)
	}
	return r, m.Seq, nil
}
