package schedule

import (
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/spoolq/spool/engine"
)

// maxSleep bounds the scheduler's wait, so that a step of the system clock (the timer
// counts monotonic time, ticks are wall-clock times) delays a tick by at most this long.
const maxSleep = time.Minute

// maxRetryDelay caps the wait before a failed fire is tried again.
const maxRetryDelay = 30 * time.Second

// entry is this node's view of a schedule: its definition, its tick plan and where it
// stands in the heap of next fires.
type entry struct {
	def  stored
	rev  uint64 // revision of def in the definitions bucket
	plan *plan  // nil when the definition cannot be planned here (logged)
	gen  uint64 // bumped at every change of def, to drop retries of an older one

	pending time.Time // the next tick to fire; zero when none (not queued)
	at      time.Time // when to act: pending, or later when retrying a failed fire
	retries int
	idx     int // index in the heap, -1 when not queued

	// What this node knows of the fires key: its last revision (the base of the next
	// compare-and-set) and the latest scheduled tick recorded for generation lastTickGen.
	fireRev     uint64
	lastTick    int64
	lastTickGen int64
}

func (e *entry) lastTickOf(gen int64) int64 {
	if e.lastTickGen != gen {
		return 0
	}
	return e.lastTick
}

// tickHeap orders the queued entries by the time to act.
type tickHeap []*entry

func (h tickHeap) Len() int           { return len(h) }
func (h tickHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h tickHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *tickHeap) Push(x any) {
	e := x.(*entry)
	e.idx = len(*h)
	*h = append(*h, e)
}
func (h *tickHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.idx = -1
	return e
}

func (h *tickHeap) upsert(e *entry) {
	if e.idx < 0 {
		heap.Push(h, e)
	} else {
		heap.Fix(h, e.idx)
	}
}

func (h *tickHeap) remove(e *entry) {
	if e.idx >= 0 {
		heap.Remove(h, e.idx)
	}
}

// entry returns the entry of name, creating an empty one.
func (s *Service) entry(name string) *entry {
	e := s.entries[name]
	if e == nil {
		e = &entry{idx: -1}
		s.entries[name] = e
	}
	return e
}

// applyLocked applies an entry of the definitions bucket.
func (s *Service) applyLocked(ent jetstream.KeyValueEntry) {
	if ent.Operation() != jetstream.KeyValuePut {
		if e := s.entries[ent.Key()]; e != nil && ent.Revision() > e.rev {
			s.removeLocked(ent.Key(), ent.Revision())
		}
		return
	}
	var d stored
	if err := json.Unmarshal(ent.Value(), &d); err != nil {
		s.log.Error("bad schedule entry", "schedule", ent.Key(), "err", err)
		return
	}
	s.setDefLocked(&d, ent.Revision())
}

// applyOwn applies a definition this node wrote, without waiting for the watch.
func (s *Service) applyOwn(d *stored, rev uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setDefLocked(d, rev)
}

func (s *Service) setDefLocked(d *stored, rev uint64) {
	e := s.entries[d.Name]
	if e != nil && e.def.Name != "" && rev <= e.rev {
		return // older than what this node applied already
	}
	if gone, ok := s.gone[d.Name]; ok {
		if rev <= gone {
			return // the put of a schedule deleted since
		}
		delete(s.gone, d.Name)
	}
	e = s.entry(d.Name)
	e.def, e.rev = *d, rev
	e.gen++
	p, err := d.plan(&s.zones)
	if err != nil {
		// Validated when written; a node whose time zone database lacks the zone ends here.
		s.log.Error("schedule cannot be planned on this node: it does not fire here", "schedule", d.Name, "err", err)
		p = nil
	}
	e.plan = p
	s.planLocked(e)
}

// planLocked queues the entry for its next tick after its last recorded fire.
func (s *Service) planLocked(e *entry) {
	e.retries = 0
	if e.plan == nil || e.def.Paused {
		s.queue.remove(e)
		e.pending = time.Time{}
		return
	}
	e.pending = e.plan.after(nsTime(max(e.lastTickOf(e.def.Created), e.def.Since)))
	if e.pending.IsZero() {
		s.queue.remove(e)
		return
	}
	e.at = e.pending
	s.queue.upsert(e)
	s.signal()
}

// removeLocked forgets a deleted schedule. Its last revision is kept, so that a late watch
// delivery of an older put does not bring it back.
func (s *Service) removeLocked(name string, rev uint64) {
	if e := s.entries[name]; e != nil {
		s.queue.remove(e)
		delete(s.entries, name)
		rev = max(rev, e.rev)
	}
	if s.gone == nil {
		s.gone = make(map[string]uint64)
	}
	s.gone[name] = max(s.gone[name], rev)
}

// noteFire records what this node learnt of a schedule's fires key.
func (s *Service) noteFire(name string, gen int64, rev uint64, lastTick int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[name]
	if e == nil {
		return
	}
	e.fireRev = max(e.fireRev, rev)
	if e.lastTickGen != gen {
		e.lastTickGen, e.lastTick = gen, 0
	}
	e.lastTick = max(e.lastTick, lastTick)
}

func (s *Service) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// run is the scheduler: one timer set to the earliest next fire of all schedules.
func (s *Service) run() {
	defer s.wg.Done()
	t := s.clock.NewTimer(s.nextWake())
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C():
		case <-s.wake:
		}
		s.fireDue()
		t.Reset(s.nextWake())
	}
}

func (s *Service) nextWake() time.Time {
	at := s.clock.Now().Add(maxSleep)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) > 0 && s.queue[0].at.Before(at) {
		at = s.queue[0].at
	}
	return at
}

// fire is one tick being fired.
type fire struct {
	def  stored
	gen  uint64
	tick time.Time
	// outcome
	err     error
	jobID   uint64
	skipped bool // a unique key held by an unfinished job: nothing enqueued
}

// maxBacklog bounds the on-time ticks of one schedule fired at once; older ones are
// coalesced. Only a grace period far longer than the schedule's interval gets near it.
const maxBacklog = 1000

// fireDue fires the ticks that are due. Every tick that came due while this node ran and is
// at most Grace old fires, each with its own job: a tick whose enqueue failed (JetStream
// electing a stream leader after a node loss) is retried, and the ticks that came due
// meanwhile fire with it, late but not lost. Ticks that came due before this node started
// (while no node ran) or that are older than Grace are coalesced: when no newer tick is on
// time, the latest of them fires if it is at most Grace old or under CatchUpOnce; under
// CatchUpSkip an older one is skipped.
func (s *Service) fireDue() {
	now := s.clock.Now()
	cutoff := now.Add(-s.cfg.Grace) // ticks from cutoff on are fired one by one
	if s.started.After(cutoff) {
		cutoff = s.started
	}
	var due []*fire
	s.mu.Lock()
	for len(s.queue) > 0 && !s.queue[0].at.After(now) {
		e := s.queue[0]
		var ticks []time.Time
		t := e.pending
		if t.Before(cutoff) {
			t = e.plan.after(cutoff.Add(-time.Nanosecond))
		}
		for ; !t.IsZero() && !t.After(now); t = e.plan.after(t) {
			ticks = append(ticks, t)
		}
		if len(ticks) > maxBacklog {
			ticks = ticks[len(ticks)-maxBacklog:]
		}
		if len(ticks) > 0 {
			if e.pending.Before(ticks[0]) {
				s.coalesced.Add(1)
			}
			for _, tick := range ticks {
				due = append(due, &fire{def: e.def, gen: e.gen, tick: tick})
			}
		} else {
			tick := e.plan.latest(e.pending, now)
			if !tick.Equal(e.pending) {
				s.coalesced.Add(1)
			}
			switch late := now.Sub(tick); {
			case late <= s.cfg.Grace:
				due = append(due, &fire{def: e.def, gen: e.gen, tick: tick})
			case e.def.CatchUp == CatchUpOnce:
				s.log.Info("schedule catches up a missed tick", "schedule", e.def.Name, "tick", tick, "late", late.Round(time.Second))
				due = append(due, &fire{def: e.def, gen: e.gen, tick: tick})
			default:
				s.missed.Add(1)
				s.log.Info("schedule skips a missed tick", "schedule", e.def.Name, "tick", tick, "late", late.Round(time.Second))
			}
		}
		e.pending = e.plan.after(now)
		if e.pending.IsZero() {
			s.queue.remove(e)
			continue
		}
		e.at = e.pending
		heap.Fix(&s.queue, e.idx)
	}
	s.mu.Unlock()
	if len(due) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	for chunk := range chunks(due, engine.MaxBatch) {
		s.enqueue(ctx, chunk)
	}
	// A schedule's ticks are in order in due: its first failed one is retried, with the
	// ticks after it.
	retried := make(map[string]bool)
	for _, f := range due {
		if f.err != nil && !retried[f.def.Name] {
			retried[f.def.Name] = true
			s.retryLater(f)
		}
	}
	// The recorder records them, so that the next due ticks need not wait.
	s.records <- recordBatch{due, now}
}

// recordBatch is the fires of one fireDue to record.
type recordBatch struct {
	fires []*fire
	now   time.Time
}

// recorder records fires in the order they were fired: one goroutine, so that the records
// of a schedule chain their compare-and-sets. It records what the scheduler fired until Close
// closes the channel, after the scheduler stopped; each batch gets a bounded time.
func (s *Service) recorder() {
	defer s.recWG.Done()
	for b := range s.records {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), 10*time.Second)
		for chunk := range chunks(b.fires, engine.MaxBatch) {
			s.record(ctx, chunk, b.now)
		}
		cancel()
	}
}

// chunks yields s in pieces of at most n.
func chunks[T any](s []T, n int) func(func([]T) bool) {
	return func(yield func([]T) bool) {
		for len(s) > 0 {
			k := min(n, len(s))
			if !yield(s[:k]) {
				return
			}
			s = s[k:]
		}
	}
}

// enqueue enqueues the jobs of a batch of fires, each with its tick's id.
func (s *Service) enqueue(ctx context.Context, fs []*fire) {
	reqs := make([]engine.EnqueueRequest, len(fs))
	for i, f := range fs {
		reqs[i] = f.def.request(f.tick, false)
		reqs[i].ID = TickID(f.def.Name, f.tick)
	}
	res, err := s.eng.Enqueue(ctx, reqs)
	if err != nil {
		var ve *engine.ValidationError
		var pe *engine.PayloadTooLargeError
		if len(fs) > 1 && (errors.As(err, &ve) || errors.As(err, &pe)) {
			// One template no longer valid here (a lower payload limit): the others fire.
			for _, f := range fs {
				s.enqueue(ctx, []*fire{f})
			}
			return
		}
		for _, f := range fs {
			f.err = err
		}
		return
	}
	for i, r := range res {
		f := fs[i]
		if f.err = r.Err; f.err != nil {
			continue
		}
		f.jobID = r.Job.ID
		f.skipped = r.Duplicate && r.Job.ID != reqs[i].ID
		switch {
		case f.skipped:
			s.skipped.Add(1)
		case r.Duplicate:
			s.duplicates.Add(1)
		default:
			s.fired.Add(1)
		}
	}
}

// retryLater queues a failed fire again, with a backoff. The tick fires then with the ticks
// due since, as long as it is at most Grace old; past that it is coalesced (fireDue).
func (s *Service) retryLater(f *fire) {
	s.failed.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[f.def.Name]
	if e == nil || e.gen != f.gen {
		return
	}
	e.retries++
	delay := min(time.Second<<min(e.retries-1, 6), maxRetryDelay)
	s.log.Warn("schedule fire failed; retrying", "schedule", f.def.Name, "tick", f.tick, "in", delay, "err", f.err)
	e.pending, e.at = f.tick, s.clock.Now().Add(delay)
	s.queue.upsert(e)
}

// record appends the fires to the schedules' fires keys, each with a compare-and-set on
// the revision this node knows. Losing it is normal: another node recorded the same tick,
// or a trigger came in between; the key is then read and the fire recorded unless there.
func (s *Service) record(ctx context.Context, fs []*fire, now time.Time) {
	type pub struct {
		f   *fire
		rec *fireRecord
		fut jetstream.PubAckFuture
	}
	var pubs []pub
	s.mu.Lock()
	for _, f := range fs {
		e := s.entries[f.def.Name]
		if f.err != nil || e == nil || e.def.Created != f.def.Created {
			continue // failed, or the schedule is gone
		}
		last := e.lastTickOf(f.def.Created)
		if last >= f.tick.UnixNano() {
			continue // recorded already
		}
		e.retries = 0
		rec := &fireRecord{Gen: f.def.Created, Tick: f.tick.UnixNano(), JobID: f.jobID, FiredAt: now.UnixNano(),
			Skipped: f.skipped, LastTick: max(last, f.tick.UnixNano())}
		pubs = append(pubs, pub{f: f, rec: rec})
		data, _ := json.Marshal(rec)
		fut, err := s.js.PublishMsgAsync(&nats.Msg{Subject: firesSubject(f.def.Name), Data: data},
			jetstream.WithExpectLastSequencePerSubject(e.fireRev))
		if err != nil {
			pubs[len(pubs)-1].fut = nil
			s.log.Warn("record schedule fire", "schedule", f.def.Name, "err", err)
		} else {
			pubs[len(pubs)-1].fut = fut
		}
	}
	s.mu.Unlock()
	for _, p := range pubs {
		if p.fut == nil {
			continue
		}
		var err error
		select {
		case ack := <-p.fut.Ok():
			s.noteFire(p.f.def.Name, p.rec.Gen, ack.Sequence, p.rec.LastTick)
			continue
		case err = <-p.fut.Err():
		case <-ctx.Done():
			err = ctx.Err()
		}
		if isWrongLastSeq(err) {
			err = s.recordAgain(ctx, p.f.def.Name, p.rec)
		}
		if err != nil {
			s.log.Warn("record schedule fire", "schedule", p.f.def.Name, "tick", p.f.tick, "job", p.f.jobID, "err", err)
		}
	}
}

// recordAgain records a fire after a lost compare-and-set: unless the key holds it already,
// it is appended on top of what the key holds.
func (s *Service) recordAgain(ctx context.Context, name string, rec *fireRecord) error {
	for range 10 {
		lf, err := s.readLatest(ctx, name)
		if err != nil {
			return err
		}
		var last int64
		if lf.rec != nil && lf.rec.Gen == rec.Gen {
			last = lf.rec.LastTick
		}
		if last >= rec.Tick {
			s.noteFire(name, rec.Gen, lf.rev, last)
			return nil // another node recorded it
		}
		rec.LastTick = max(last, rec.Tick)
		rev, err := s.publishFire(ctx, name, rec, lf.rev)
		if isWrongLastSeq(err) {
			continue
		}
		if err != nil {
			return err
		}
		s.noteFire(name, rec.Gen, rev, rec.LastTick)
		return nil
	}
	return errors.New("too many concurrent fires")
}
