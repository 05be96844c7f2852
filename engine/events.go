package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/spoolq/spool/engine/internal/store"
)

// The lifecycle events stream.
const (
	eventsStream         = "SPOOL_EVENTS"
	eventsPrefix         = "spool.e."
	eventsCallbackPrefix = "spool.ec."
)

const (
	// maxBufferedEvents bounds the events waiting to be stored: past it new ones are
	// dropped (and counted), so that a JetStream slower than the job traffic never holds up a
	// transition.
	maxBufferedEvents = 1 << 16
	// EventsPerBatch is the most events one stored message holds (see Event.Pos).
	EventsPerBatch = 1000
	// eventsLinger is how long the first event of a round waits for others.
	eventsLinger = 5 * time.Millisecond
)

// eventLog stores lifecycle events off the transitions' path: emit appends to a buffer under
// a mutex; one goroutine publishes what accumulated (async publishes awaited together), so
// a burst of transitions costs one round trip per batch and none to the transitions
// themselves. Events are not "answered means stored": a crash loses those still buffered.
type eventLog struct {
	e    *Engine
	node string

	mu    sync.Mutex
	buf   []Event
	spare []Event // the buffer of the last flush, reused (flush's only)
	kick  chan struct{}

	// off names the queues whose events are turned off (queueConfig.NoEvents); replaced,
	// never changed in place.
	off     atomic.Pointer[map[string]bool]
	dropped atomic.Int64
	failed  atomic.Int64
}

func newEventLog(e *Engine, node string) *eventLog {
	l := &eventLog{e: e, node: node, kick: make(chan struct{}, 1)}
	l.off.Store(&map[string]bool{})
	return l
}

// emit records the transition of job id to rec (the record after it). It never blocks.
func (e *Engine) emit(k EventKind, id uint64, rec *record) {
	l := e.events
	if (*l.off.Load())[rec.Queue] {
		return
	}
	ev := Event{Time: e.now(), Kind: k, JobID: id, Queue: rec.Queue, Type: rec.Type, Node: l.node,
		Worker: rec.Worker, Attempt: rec.Attempts, State: rec.State, Callback: rec.Callback}
	if k == EventFailed || k == EventBuried {
		ev.Error = rec.LastError
	}
	if rec.State == StateDelayed {
		ev.RunAt = nsTime(rec.RunAt)
	}
	l.mu.Lock()
	if len(l.buf) >= maxBufferedEvents {
		l.mu.Unlock()
		l.dropped.Add(1)
		return
	}
	l.buf = append(l.buf, ev)
	first := len(l.buf) == 1
	l.mu.Unlock()
	if first {
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
}

// setOff turns a queue's events off or on.
func (l *eventLog) setOff(queue string, off bool) {
	for {
		cur := l.off.Load()
		if (*cur)[queue] == off {
			return
		}
		next := maps.Clone(*cur)
		if off {
			next[queue] = true
		} else {
			delete(next, queue)
		}
		if l.off.CompareAndSwap(cur, &next) {
			return
		}
	}
}

func (l *eventLog) run(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-l.kick:
			// Each round waits for others to gather first: transitions made one at a
			// time (the beanstalkd front) would otherwise make a message or two each.
			for more := true; more; {
				select {
				case <-stop:
				case <-time.After(eventsLinger):
				}
				more = l.flushRound(context.Background())
			}
		}
	}
}

// flush publishes the buffered events until the buffer is empty (at Close).
func (l *eventLog) flush(ctx context.Context) {
	for l.flushRound(ctx) {
	}
}

// flushRound publishes the buffered events and reports whether more came meanwhile: it
// takes what accumulated, packs it into one message per queue and shard (JSON lines, up to
// EventsPerBatch), publishes them together and awaits their acks. Under load a round holds
// many events, so an event costs a fraction of a stored message.
func (l *eventLog) flushRound(ctx context.Context) (more bool) {
	l.mu.Lock()
	batch := l.buf
	l.buf = l.spare[:0]
	l.mu.Unlock()
	if len(batch) == 0 {
		l.spare = batch
		return false
	}
	type group struct {
		subject string
		body    []byte
		n       int
	}
	var groups []*group
	open := make(map[string]*group)
	escs := make(map[string]string)
	var futs []jetstream.PubAckFuture
	var errs int64
	publish := func(g *group) {
		fut, err := l.e.st.Publish(&nats.Msg{Subject: g.subject, Data: g.body})
		if err != nil {
			errs += int64(g.n)
			return
		}
		futs = append(futs, fut)
	}
	for i := range batch {
		ev := &batch[i]
		esc, ok := escs[ev.Queue]
		if !ok {
			esc = escapeName(ev.Queue)
			escs[ev.Queue] = esc
		}
		subj := eventSubject(esc, ev.JobID, ev.Callback != "")
		g := open[subj]
		if g == nil {
			g = &group{subject: subj}
			open[subj] = g
			groups = append(groups, g)
		}
		if g.n > 0 {
			g.body = append(g.body, '\n')
		}
		g.body = appendEvent(g.body, ev)
		if g.n++; g.n == EventsPerBatch {
			publish(g)
			delete(open, subj)
		}
	}
	for _, g := range groups {
		if open[g.subject] == g && g.n > 0 {
			publish(g)
		}
	}
	l.spare = batch
	wctx, cancel := context.WithTimeout(ctx, l.e.cfg.RequestTimeout)
	_, werrs := store.Wait(wctx, futs)
	cancel()
	for _, err := range werrs {
		if err != nil {
			errs++ // a batch: counted once
		}
	}
	if errs > 0 {
		l.failed.Add(errs)
		l.e.log.Warn("lifecycle events not stored", "count", errs)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buf) > 0
}

// EventStats reports events this node could not store: dropped (its buffer was full) and
// failed (JetStream refused or did not answer).
func (e *Engine) EventStats() (dropped, failed int64) {
	return e.events.dropped.Load(), e.events.failed.Load()
}

func (e *Engine) setupEvents(ctx context.Context) error {
	maxBytes := e.cfg.EventsMaxBytes
	for {
		_, err := e.ensureStream(ctx, jetstream.StreamConfig{
			Name:        eventsStream,
			Description: "spool lifecycle events: batches of job transitions",
			Subjects:    []string{eventsPrefix + ">", eventsCallbackPrefix + ">"},
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      e.cfg.EventsMaxAge,
			MaxBytes:    maxBytes,
			Discard:     jetstream.DiscardOld,
			AllowDirect: true,
			Storage:     jetstream.FileStorage,
			Replicas:    e.cfg.Replicas,
		})
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeStorageExceeded && maxBytes > minEventsBytes {
			// JetStream reserves MaxBytes against the storage it has: on a small disk the
			// events get less room rather than the node not starting.
			maxBytes /= 2
			continue
		}
		if err != nil {
			return fmt.Errorf("engine: create %s stream: %w", eventsStream, err)
		}
		if maxBytes != e.cfg.EventsMaxBytes {
			e.log.Warn("lifecycle events get less room than configured: JetStream has not the storage", "max_bytes", maxBytes, "configured", e.cfg.EventsMaxBytes)
		}
		return nil
	}
}

const (
	// errCodeStorageExceeded is JetStream's "insufficient storage resources available".
	errCodeStorageExceeded jetstream.ErrorCode = 10047
	// minEventsBytes is the least room the events stream is given on a small disk.
	minEventsBytes = 1 << 20
)

// MaxJobEvents bounds a job's timeline (JobEvents).
const MaxJobEvents = 10000

// maxTimelineScan bounds the stored batches a timeline reads.
const maxTimelineScan = 64 * store.MaxBatch

// JobEvents returns the stored events of job id, oldest first (at most MaxJobEvents), for as
// long as its record is kept (ErrJobNotFound after). It reads the batches of the job's queue
// and shard from the job's creation to its end.
func (e *Engine) JobEvents(ctx context.Context, id uint64) ([]Event, error) {
	j, err := e.Job(ctx, id)
	if err != nil {
		return nil, err
	}
	// Either prefix (spool.e, spool.ec): only this stream's subjects are matched.
	filter := "spool.*." + escapeName(j.Queue) + "." + strconv.FormatUint(id%eventShards, 16)
	from := j.CreatedAt.Add(-time.Second) // another node's clock may be a little behind
	var end time.Time
	if !j.FinishedAt.IsZero() {
		end = j.FinishedAt.Add(5 * time.Second)
	}
	var out []Event
	req := store.Request{NextFor: filter, Batch: store.MaxBatch, StartTime: &from}
	for scanned := 0; scanned < maxTimelineScan && len(out) < MaxJobEvents; {
		msgs, err := e.st.Batch(ctx, eventsStream, req)
		if err != nil {
			return nil, fmt.Errorf("read job events: %w", err)
		}
		scanned += len(msgs)
		for _, m := range msgs {
			if !end.IsZero() && m.Time.After(end) {
				return out, nil
			}
			evs, err := decodeBatch(m.Seq, m.Data)
			if err != nil {
				e.log.Warn("bad events batch", "seq", m.Seq, "err", err)
			}
			for _, ev := range evs {
				if ev.JobID == id && len(out) < MaxJobEvents {
					out = append(out, ev)
				}
			}
			req = store.Request{Seq: m.Seq + 1, NextFor: filter, Batch: store.MaxBatch}
		}
		if len(msgs) < store.MaxBatch {
			break
		}
	}
	return out, nil
}

// EventFeed is a live feed of events (FollowEvents). Next blocks until an event, the end of
// ctx, or Close.
type EventFeed struct {
	filter  EventFilter
	after   uint64 // skip events at or before this position
	it      jetstream.MessagesContext
	pending []Event
	stop    sync.Once
}

// FollowEvents opens a feed of the events matching f after position after (0: only events
// stored from now on). Close it when done.
func (e *Engine) FollowEvents(ctx context.Context, f EventFilter, after uint64) (*EventFeed, error) {
	if e.closed() {
		return nil, ErrClosed
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: f.subjects(), DeliverPolicy: jetstream.DeliverNewPolicy}
	if after > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, max(after/EventsPerBatch, 1)
	}
	cons, err := e.js.OrderedConsumer(ctx, eventsStream, cfg)
	if err != nil {
		return nil, fmt.Errorf("follow events: %w", err)
	}
	it, err := cons.Messages()
	if err != nil {
		return nil, fmt.Errorf("follow events: %w", err)
	}
	return &EventFeed{filter: f, after: after, it: it}, nil
}

// Next returns the next matching event.
func (f *EventFeed) Next(ctx context.Context) (Event, error) {
	var done chan struct{}
	for {
		for len(f.pending) > 0 {
			ev := f.pending[0]
			f.pending = f.pending[1:]
			if ev.Pos > f.after && f.filter.match(&ev) {
				return ev, nil
			}
		}
		if done == nil {
			done = make(chan struct{})
			defer close(done)
			go func() {
				select {
				case <-ctx.Done():
					f.Close()
				case <-done:
				}
			}()
		}
		m, err := f.it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return Event{}, ctx.Err()
			}
			return Event{}, fmt.Errorf("follow events: %w", err)
		}
		if md, err := m.Metadata(); err == nil {
			f.pending, _ = decodeBatch(md.Sequence.Stream, m.Data())
		}
	}
}

// Close ends the feed.
func (f *EventFeed) Close() { f.stop.Do(f.it.Stop) }

// ConsumeEvents hands the events matching f to fn through the durable consumer named
// durable, shared by every engine that calls it with that name: each stored batch of events
// goes to one of them, at least once, and fn gets a batch's matching events at once (so
// that it can answer them with one write). When fn fails, the batch comes back a second
// later; the batch of an engine that died comes back after redeliver. A new consumer starts
// with the events stored from then on; a changed filter updates the consumer. It returns
// when ctx ends.
func (e *Engine) ConsumeEvents(ctx context.Context, durable string, f EventFilter, redeliver time.Duration, fn func(context.Context, []Event) error) error {
	cons, err := e.prepareEventConsumer(ctx, durable, f, redeliver)
	if err != nil {
		return err
	}
	for ctx.Err() == nil {
		batch, err := cons.Fetch(100, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
				return fmt.Errorf("consume events: %w", err)
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		for m := range batch.Messages() {
			md, err := m.Metadata()
			if err != nil {
				m.Term()
				continue
			}
			evs, _ := decodeBatch(md.Sequence.Stream, m.Data())
			evs = slices.DeleteFunc(evs, func(ev Event) bool { return !f.match(&ev) })
			if len(evs) > 0 {
				if err := fn(ctx, evs); err != nil {
					m.NakWithDelay(time.Second)
					continue
				}
			}
			m.Ack()
		}
	}
	return ctx.Err()
}

// PrepareEventConsumer creates or updates the durable consumer of ConsumeEvents now: the
// events stored from its creation on, or matching a new filter from the update on, are
// kept for it even before ConsumeEvents runs.
func (e *Engine) PrepareEventConsumer(ctx context.Context, durable string, f EventFilter, redeliver time.Duration) error {
	_, err := e.prepareEventConsumer(ctx, durable, f, redeliver)
	return err
}

func (e *Engine) prepareEventConsumer(ctx context.Context, durable string, f EventFilter, redeliver time.Duration) (jetstream.Consumer, error) {
	cons, err := e.ensureConsumer(ctx, eventsStream, jetstream.ConsumerConfig{
		Durable:        durable,
		FilterSubjects: f.subjects(),
		DeliverPolicy:  jetstream.DeliverNewPolicy,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        redeliver,
		MaxAckPending:  1000,
	})
	if err != nil {
		return nil, fmt.Errorf("consume events: %w", err)
	}
	return cons, nil
}

// emitted returns a pass-through for a transition's result that emits k for rec (the
// record after the transition) when it succeeded.
func (e *Engine) emitted(k EventKind, id uint64, rec *record) func(*Job, error) (*Job, error) {
	return func(j *Job, err error) (*Job, error) {
		if err == nil {
			e.emit(k, id, rec)
		}
		return j, err
	}
}

// failKind is the kind of a failed attempt's event: buried when it buries the job.
func failKind(st State) EventKind {
	if st == StateBuried {
		return EventBuried
	}
	return EventFailed
}
