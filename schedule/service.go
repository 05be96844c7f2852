// Package schedule fires jobs on a schedule: cron expressions, fixed intervals and one-off
// times, each enqueueing a job from a template into a queue of the engine.
//
// Schedules live in JetStream KV buckets, so that every spool node sees them:
// spool_schedules holds the definitions (one key per schedule), spool_schedule_fires the
// fires (the latest ones kept as the key's history). Every node runs one scheduler: a
// goroutine with one timer over a min-heap of next fire times, kept current by a watch of
// the definitions. When a tick comes, every node enqueues its job with an id derived from
// the schedule's name and the tick (TickID); the engine stores a given id once, so the
// tick enqueues exactly one job. The fire is then recorded with a compare-and-set.
//
// While no node runs nothing fires. When one starts, a schedule whose latest tick was
// missed fires once for it (CatchUpOnce) or waits for its next tick (CatchUpSkip). A tick
// that comes due while a node runs fires its own job, late if its enqueue must be retried,
// as long as it is at most Grace old.
package schedule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/spoolq/spool/engine"
	"github.com/spoolq/spool/internal/jsasset"
)

// Bucket names.
const (
	DefsBucket  = "spool_schedules"
	FiresBucket = "spool_schedule_fires"
)

// Config configures a Service. Zero values take the defaults noted.
type Config struct {
	// Replicas of the buckets: 1 on a single node, 3 on a cluster. Default 1.
	Replicas int
	// Clock drives the scheduler. Default SystemClock.
	Clock Clock
	// Logger receives the scheduler's logs. Default slog.Default().
	Logger *slog.Logger
	// Grace is how late a tick may fire and still be on time: an older tick is "missed"
	// and fires only under CatchUpOnce. Default 1 minute.
	Grace time.Duration
	// History is how many recent fires each schedule keeps, 1 to 64. Default 20.
	History int
}

func (c *Config) setDefaults() {
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.Clock == nil {
		c.Clock = SystemClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Grace == 0 {
		c.Grace = time.Minute
	}
	if c.History == 0 {
		c.History = 20
	}
	c.History = min(max(c.History, 1), jetstream.KeyValueMaxHistory)
}

// Service manages schedules and fires them. It is safe for concurrent use.
type Service struct {
	cfg         Config
	log         *slog.Logger
	clock       Clock
	eng         *engine.Engine
	js          jetstream.JetStream
	defs        jetstream.KeyValue
	fires       jetstream.KeyValue
	firesStream jetstream.Stream
	zones       zones
	started     time.Time // when Open ran: ticks due from then on fire one by one

	mu      sync.Mutex
	entries map[string]*entry
	queue   tickHeap
	gone    map[string]uint64 // deleted schedules: revision of their last definition

	wake    chan struct{}
	records chan recordBatch // fired, to record
	ctx     context.Context  // cancelled by Close
	cancel  context.CancelFunc
	watch   jetstream.KeyWatcher
	wg      sync.WaitGroup // watchDefs and run
	recWG   sync.WaitGroup // recorder
	once    sync.Once

	fired, duplicates, skipped, missed, coalesced, failed atomic.Int64
}

// Stats counts what this node's scheduler did since Open.
type Stats struct {
	Fired      int64 // jobs enqueued for ticks
	Duplicates int64 // ticks whose job another node had enqueued already
	Skipped    int64 // ticks that enqueued nothing: the template's unique key was held
	Missed     int64 // ticks dropped under CatchUpSkip
	// Coalesced counts the times a schedule had due ticks older than Grace, or from before
	// the node started, and did not fire them one by one (fireDue).
	Coalesced int64
	Failed    int64 // enqueues that failed (and were retried)
}

// Stats returns this node's counts.
func (s *Service) Stats() Stats {
	return Stats{Fired: s.fired.Load(), Duplicates: s.duplicates.Load(), Skipped: s.skipped.Load(),
		Missed: s.missed.Load(), Coalesced: s.coalesced.Load(), Failed: s.failed.Load()}
}

// Open prepares the buckets (idempotently), loads the schedules and starts the scheduler.
// nc and eng must stay open until Close returns.
func Open(ctx context.Context, nc *nats.Conn, eng *engine.Engine, cfg Config) (*Service, error) {
	cfg.setDefaults()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("schedule: jetstream: %w", err)
	}
	s := &Service{
		cfg: cfg, log: cfg.Logger, clock: cfg.Clock, eng: eng, js: js,
		entries: make(map[string]*entry),
		wake:    make(chan struct{}, 1),
		records: make(chan recordBatch, 4),
	}
	// Retried and race-free across nodes, never lowering replicas (jsasset).
	s.defs, err = jsasset.KeyValue(ctx, js, s.log, jetstream.KeyValueConfig{
		Bucket: DefsBucket, Description: "spool schedules", History: 1,
		Storage: jetstream.FileStorage, Replicas: cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("schedule: create %s bucket: %w", DefsBucket, err)
	}
	s.fires, err = jsasset.KeyValue(ctx, js, s.log, jetstream.KeyValueConfig{
		Bucket: FiresBucket, Description: "spool schedule fires: the recent ones per schedule", History: uint8(cfg.History),
		Storage: jetstream.FileStorage, Replicas: cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("schedule: create %s bucket: %w", FiresBucket, err)
	}
	if s.firesStream, err = js.Stream(ctx, "KV_"+FiresBucket); err != nil {
		return nil, fmt.Errorf("schedule: %s stream: %w", FiresBucket, err)
	}
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	s.started = s.clock.Now()
	if err := s.load(ctx); err != nil {
		s.cancel()
		return nil, err
	}
	s.wg.Add(2)
	s.recWG.Add(1)
	go s.watchDefs()
	go s.run()
	go s.recorder()
	return s, nil
}

// Close stops the scheduler. The fires made are recorded first, within seconds.
func (s *Service) Close() error {
	s.once.Do(func() {
		s.cancel()
		s.watch.Stop()
		s.wg.Wait()
		close(s.records) // the scheduler stopped: record what it fired, then stop
		s.recWG.Wait()
	})
	return nil
}

// load reads every definition and the latest fire of each, and plans the next ticks.
// The definitions watch it starts carries on in watchDefs.
func (s *Service) load(ctx context.Context) error {
	w, err := s.defs.WatchAll(s.ctx)
	if err != nil {
		return fmt.Errorf("schedule: watch %s: %w", DefsBucket, err)
	}
	s.watch = w
	var initial []jetstream.KeyValueEntry
	for done := false; !done; {
		select {
		case ent, ok := <-w.Updates():
			if !ok {
				return errors.New("schedule: definitions watch closed")
			}
			if ent == nil {
				done = true
				continue
			}
			initial = append(initial, ent)
		case <-ctx.Done():
			w.Stop()
			return fmt.Errorf("schedule: load definitions: %w", ctx.Err())
		}
	}
	latest, err := s.latestFires(ctx)
	if err != nil {
		w.Stop()
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ent := range initial {
		f := latest[ent.Key()]
		if f.rec != nil || f.rev != 0 {
			e := s.entry(ent.Key())
			e.fireRev = f.rev
			if f.rec != nil {
				e.lastTickGen, e.lastTick = f.rec.Gen, f.rec.LastTick
			}
		}
		s.applyLocked(ent)
	}
	return nil
}

// watchDefs applies the definitions written by any node.
func (s *Service) watchDefs() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case ent, ok := <-s.watch.Updates():
			if !ok {
				if s.ctx.Err() == nil {
					s.log.Error("schedule definitions watch closed: schedules changed on other nodes are not seen")
				}
				return
			}
			if ent != nil {
				s.mu.Lock()
				s.applyLocked(ent)
				s.mu.Unlock()
			}
		}
	}
}

// latestFire is the newest record of a schedule's fires key and its revision. rec is nil
// when the key is empty or deleted (rev is then the deletion's, or 0).
type latestFire struct {
	rec *fireRecord
	rev uint64
}

// latestFires reads the newest fire record of every schedule.
func (s *Service) latestFires(ctx context.Context) (map[string]latestFire, error) {
	w, err := s.fires.WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("schedule: read fires: %w", err)
	}
	defer w.Stop()
	out := make(map[string]latestFire)
	for {
		select {
		case ent, ok := <-w.Updates():
			if !ok {
				return nil, errors.New("schedule: read fires: watch closed")
			}
			if ent == nil {
				return out, nil
			}
			lf := latestFire{rev: ent.Revision()}
			if ent.Operation() == jetstream.KeyValuePut {
				var rec fireRecord
				if err := json.Unmarshal(ent.Value(), &rec); err == nil {
					lf.rec = &rec
				}
			}
			out[ent.Key()] = lf
		case <-ctx.Done():
			return nil, fmt.Errorf("schedule: read fires: %w", ctx.Err())
		}
	}
}

// readLatest reads the newest fire record of one schedule.
func (s *Service) readLatest(ctx context.Context, name string) (latestFire, error) {
	m, err := s.firesStream.GetLastMsgForSubject(ctx, firesSubject(name))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return latestFire{}, nil
	}
	if err != nil {
		return latestFire{}, fmt.Errorf("read fires of %s: %w", name, err)
	}
	lf := latestFire{rev: m.Sequence}
	if m.Header.Get("KV-Operation") == "" {
		var rec fireRecord
		if err := json.Unmarshal(m.Data, &rec); err != nil {
			return latestFire{}, fmt.Errorf("fire record of %s: %w", name, err)
		}
		lf.rec = &rec
	}
	return lf, nil
}

func firesSubject(name string) string { return "$KV." + FiresBucket + "." + name }

// fireRecord is one fire in the fires bucket.
type fireRecord struct {
	Gen     int64  `json:"gen"` // the schedule's Created
	Tick    int64  `json:"tick"`
	JobID   uint64 `json:"job_id,string"`
	FiredAt int64  `json:"fired_at"`
	Trigger bool   `json:"trigger,omitempty"`
	Skipped bool   `json:"skipped,omitempty"`
	// LastTick is the latest scheduled tick fired so far (triggers carry it over), which
	// is what a node that starts needs to know.
	LastTick int64 `json:"last_tick"`
}

func (r *fireRecord) fire() *Fire {
	return &Fire{Tick: nsTime(r.Tick), JobID: r.JobID, FiredAt: nsTime(r.FiredAt), Trigger: r.Trigger, Skipped: r.Skipped}
}

// getDef reads a definition and its revision from the bucket.
func (s *Service) getDef(ctx context.Context, name string) (*stored, uint64, error) {
	if err := ValidateName(name); err != nil {
		return nil, 0, err
	}
	ent, err := s.defs.Get(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, ErrNotFound
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read schedule %s: %w", name, err)
	}
	var d stored
	if err := json.Unmarshal(ent.Value(), &d); err != nil {
		return nil, 0, fmt.Errorf("schedule %s: %w", name, err)
	}
	return &d, ent.Revision(), nil
}

// Validate checks a definition as Put would, without storing it.
func (s *Service) Validate(d *Definition) error {
	_, _, err := build(d, nil, s.clock.Now(), &s.zones, s.eng)
	return err
}

// Preview checks a definition as Put would and returns the schedule it would make as a new
// one, with its next fire time from now, without storing anything: what a form shows while
// a schedule is being typed.
func (s *Service) Preview(d *Definition) (*Schedule, error) {
	now := s.clock.Now()
	next, _, err := build(d, nil, now, &s.zones, s.eng)
	if err != nil {
		return nil, err
	}
	sch := next.schedule()
	sch.NextFireAt = s.nextFire(next, 0, now)
	return sch, nil
}

// Put creates the schedule d.Name or replaces its definition; created tells which. An
// invalid definition fails with an *engine.ValidationError naming the field (or an
// *engine.PayloadTooLargeError). Writing the definition it holds already changes nothing.
//
// A change of spec, time zone or start time starts the new ticks from now: no tick from
// before is caught up, and @every counts from now (or the start time).
func (s *Service) Put(ctx context.Context, d Definition) (sch *Schedule, created bool, err error) {
	if err := ValidateName(d.Name); err != nil {
		return nil, false, err
	}
	for range 20 {
		cur, rev, err := s.getDef(ctx, d.Name)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, false, err
		}
		next, changed, err := build(&d, cur, s.clock.Now(), &s.zones, s.eng)
		if err != nil {
			return nil, false, err
		}
		if !changed {
			return s.describe(ctx, cur, false)
		}
		data, err := json.Marshal(next)
		if err != nil {
			return nil, false, err
		}
		if cur == nil {
			rev, err = s.defs.Create(ctx, d.Name, data)
			if errors.Is(err, jetstream.ErrKeyExists) {
				continue // created meanwhile by another node
			}
		} else {
			rev, err = s.defs.Update(ctx, d.Name, data, rev)
			if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
				continue
			}
		}
		if err != nil {
			return nil, false, fmt.Errorf("store schedule %s: %w", d.Name, err)
		}
		s.applyOwn(next, rev)
		if cur == nil {
			s.log.Info("schedule created", "schedule", d.Name, "spec", next.Spec, "queue", next.Queue)
		}
		sch, _, err := s.describe(ctx, next, false)
		return sch, cur == nil, err
	}
	return nil, false, fmt.Errorf("store schedule %s: too many concurrent updates", d.Name)
}

// Apply validates every definition, then puts them one by one. It is how a schedules
// file is loaded: a definition already stored as declared is left untouched.
func (s *Service) Apply(ctx context.Context, defs []Definition) error {
	seen := make(map[string]bool, len(defs))
	for i := range defs {
		if err := s.Validate(&defs[i]); err != nil {
			return fmt.Errorf("schedules[%d] (%s): %w", i, defs[i].Name, err)
		}
		if seen[defs[i].Name] {
			return fmt.Errorf("schedules[%d]: %s is declared twice", i, defs[i].Name)
		}
		seen[defs[i].Name] = true
	}
	for i := range defs {
		if _, _, err := s.Put(ctx, defs[i]); err != nil {
			return fmt.Errorf("schedules[%d] (%s): %w", i, defs[i].Name, err)
		}
	}
	return nil
}

// update applies fn to a stored definition with a compare-and-set.
func (s *Service) update(ctx context.Context, name string, fn func(d *stored, now time.Time) bool) (*stored, error) {
	for range 20 {
		cur, rev, err := s.getDef(ctx, name)
		if err != nil {
			return nil, err
		}
		if !fn(cur, s.clock.Now()) {
			return cur, nil
		}
		data, err := json.Marshal(cur)
		if err != nil {
			return nil, err
		}
		rev, err = s.defs.Update(ctx, name, data, rev)
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("store schedule %s: %w", name, err)
		}
		s.applyOwn(cur, rev)
		return cur, nil
	}
	return nil, fmt.Errorf("store schedule %s: too many concurrent updates", name)
}

// Pause stops a schedule from firing until Resume. Pausing a paused schedule does nothing.
func (s *Service) Pause(ctx context.Context, name string) (*Schedule, error) {
	d, err := s.update(ctx, name, func(d *stored, now time.Time) bool {
		if d.Paused {
			return false
		}
		d.Paused, d.Updated = true, now.UnixNano()
		return true
	})
	if err != nil {
		return nil, err
	}
	sch, _, err := s.describe(ctx, d, false)
	return sch, err
}

// Resume lets a paused schedule fire again from its next tick; the ticks it skipped while
// paused are not caught up.
func (s *Service) Resume(ctx context.Context, name string) (*Schedule, error) {
	d, err := s.update(ctx, name, func(d *stored, now time.Time) bool {
		if !d.Paused {
			return false
		}
		d.Paused, d.Updated, d.Since = false, now.UnixNano(), now.UnixNano()
		return true
	})
	if err != nil {
		return nil, err
	}
	sch, _, err := s.describe(ctx, d, false)
	return sch, err
}

// Delete removes a schedule and its fires. The jobs it enqueued stay.
func (s *Service) Delete(ctx context.Context, name string) error {
	_, rev, err := s.getDef(ctx, name)
	if err != nil {
		return err
	}
	if err := s.defs.Purge(ctx, name); err != nil {
		return fmt.Errorf("delete schedule %s: %w", name, err)
	}
	s.mu.Lock()
	s.removeLocked(name, rev)
	s.mu.Unlock()
	if err := s.fires.Purge(ctx, name); err != nil {
		s.log.Warn("purge schedule fires", "schedule", name, "err", err)
	}
	s.log.Info("schedule deleted", "schedule", name)
	return nil
}

// Get returns a schedule with its last and next fire and its recent fires.
func (s *Service) Get(ctx context.Context, name string) (*Schedule, error) {
	d, _, err := s.getDef(ctx, name)
	if err != nil {
		return nil, err
	}
	sch, _, err := s.describe(ctx, d, true)
	return sch, err
}

// List returns every schedule, sorted by name, with its last and next fire.
func (s *Service) List(ctx context.Context) ([]*Schedule, error) {
	w, err := s.defs.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("list schedules: %w", err)
	}
	defer w.Stop()
	var defs []*stored
	for done := false; !done; {
		select {
		case ent, ok := <-w.Updates():
			if !ok {
				return nil, errors.New("list schedules: watch closed")
			}
			if ent == nil {
				done = true
				continue
			}
			var d stored
			if err := json.Unmarshal(ent.Value(), &d); err != nil {
				return nil, fmt.Errorf("schedule %s: %w", ent.Key(), err)
			}
			defs = append(defs, &d)
		case <-ctx.Done():
			return nil, fmt.Errorf("list schedules: %w", ctx.Err())
		}
	}
	latest, err := s.latestFires(ctx)
	if err != nil {
		return nil, err
	}
	now := s.clock.Now()
	out := make([]*Schedule, 0, len(defs))
	for _, d := range defs {
		sch := d.schedule()
		var lastTick int64
		if f := latest[d.Name]; f.rec != nil && f.rec.Gen == d.Created {
			sch.LastFire, lastTick = f.rec.fire(), f.rec.LastTick
		}
		sch.NextFireAt = s.nextFire(d, lastTick, now)
		out = append(out, sch)
	}
	slices.SortFunc(out, func(a, b *Schedule) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out, nil
}

// describe adds a definition's state: last fire, next fire and, with history, the recent
// fires. created is always false (the signature suits Put).
func (s *Service) describe(ctx context.Context, d *stored, history bool) (*Schedule, bool, error) {
	sch := d.schedule()
	var lastTick int64
	if history {
		ents, err := s.fires.History(ctx, d.Name)
		if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, false, fmt.Errorf("read fires of %s: %w", d.Name, err)
		}
		for i := len(ents) - 1; i >= 0; i-- {
			if ents[i].Operation() != jetstream.KeyValuePut {
				break // a purge: what comes before belongs to a deleted schedule
			}
			var rec fireRecord
			if json.Unmarshal(ents[i].Value(), &rec) != nil || rec.Gen != d.Created {
				continue
			}
			sch.RecentFires = append(sch.RecentFires, *rec.fire())
			lastTick = max(lastTick, rec.LastTick)
		}
		if len(sch.RecentFires) > 0 {
			sch.LastFire = &sch.RecentFires[0]
		}
	} else {
		lf, err := s.readLatest(ctx, d.Name)
		if err != nil {
			return nil, false, err
		}
		if lf.rec != nil && lf.rec.Gen == d.Created {
			sch.LastFire, lastTick = lf.rec.fire(), lf.rec.LastTick
		}
	}
	sch.NextFireAt = s.nextFire(d, lastTick, s.clock.Now())
	return sch, false, nil
}

// nextFire is the schedule's next tick still to come.
func (s *Service) nextFire(d *stored, lastTick int64, now time.Time) time.Time {
	if d.Paused {
		return time.Time{}
	}
	p, err := d.plan(&s.zones)
	if err != nil {
		return time.Time{}
	}
	from := nsTime(max(lastTick, d.Since))
	if now.After(from) {
		from = now
	}
	return p.after(from)
}

// Trigger fires the schedule now, once, outside its spec (a paused schedule too), and
// returns the job. The job gets a fresh id of its own and the metadata spool.trigger=true;
// the fire is recorded among the schedule's fires, and the ticks go on as planned.
func (s *Service) Trigger(ctx context.Context, name string) (*engine.Job, error) {
	d, _, err := s.getDef(ctx, name)
	if err != nil {
		return nil, err
	}
	now := s.clock.Now()
	res, err := s.eng.Enqueue(ctx, []engine.EnqueueRequest{d.request(now, true)})
	if err != nil {
		return nil, fmt.Errorf("trigger %s: %w", name, err)
	}
	if res[0].Err != nil {
		return nil, fmt.Errorf("trigger %s: %w", name, res[0].Err)
	}
	job := res[0].Job
	f := &fireRecord{Gen: d.Created, Tick: now.UnixNano(), JobID: job.ID, FiredAt: now.UnixNano(), Trigger: true,
		Skipped: res[0].Duplicate}
	for range 10 {
		lf, err := s.readLatest(ctx, name)
		if err != nil {
			return job, err
		}
		f.LastTick = 0
		if lf.rec != nil && lf.rec.Gen == d.Created {
			f.LastTick = lf.rec.LastTick
		}
		rev, err := s.publishFire(ctx, name, f, lf.rev)
		if isWrongLastSeq(err) {
			continue
		}
		if err != nil {
			return job, fmt.Errorf("record trigger of %s: %w", name, err)
		}
		s.noteFire(name, d.Created, rev, f.LastTick)
		return job, nil
	}
	return job, fmt.Errorf("record trigger of %s: too many concurrent fires", name)
}

// publishFire appends a fire record with a compare-and-set on the key's last revision.
func (s *Service) publishFire(ctx context.Context, name string, f *fireRecord, rev uint64) (uint64, error) {
	data, err := json.Marshal(f)
	if err != nil {
		return 0, err
	}
	ack, err := s.js.PublishMsg(ctx, &nats.Msg{Subject: firesSubject(name), Data: data}, jetstream.WithExpectLastSequencePerSubject(rev))
	if err != nil {
		return 0, err
	}
	return ack.Sequence, nil
}

// isWrongLastSeq tells a lost compare-and-set: 10071, or 10164 on a replicated stream
// when another write to the subject is in flight.
func isWrongLastSeq(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	return apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}
