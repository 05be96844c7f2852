package engine

import (
	"context"
	"errors"
	"fmt"
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
	// eventsPerRound is how many events one flush publishes before awaiting their acks
	// (below nats.go's default of 4,000 unacknowledged async publishes).
	eventsPerRound = 2048
)

// eventLog stores lifecycle events off the transitions' path: emit appends to a buffer under
// a mutex; one goroutine publishes what accumulated (async publishes awaited together), so
// a burst of transitions costs one round trip per batch and none to the transitions
// themselves. Events are not "answered means stored": a crash loses those still buffered.
type eventLog struct {
	e    *Engine
	node string

	mu   sync.Mutex
	buf  []Event
	kick chan struct{}

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
		next := make(map[string]bool, len(*cur)+1)
		for k, v := range *cur {
			next[k] = v
		}
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
			l.flush(context.Background())
		}
	}
}

// flush publishes the buffered events, eventsPerRound at a time, until the buffer is empty.
func (l *eventLog) flush(ctx context.Context) {
	for {
		l.mu.Lock()
		n := min(len(l.buf), eventsPerRound)
		batch := make([]Event, n)
		copy(batch, l.buf)
		l.buf = append(l.buf[:0], l.buf[n:]...)
		l.mu.Unlock()
		if n == 0 {
			return
		}
		futs := make([]jetstream.PubAckFuture, 0, n)
		var errs int64
		for i := range batch {
			ev := &batch[i]
			body, err := encodeEvent(ev)
			if err != nil {
				errs++
				continue
			}
			m := &nats.Msg{Subject: eventSubject(escapeName(ev.Queue), ev.Kind, ev.JobID, ev.Callback != ""), Data: body}
			fut, err := l.e.st.Publish(m)
			if err != nil {
				errs++
				continue
			}
			futs = append(futs, fut)
		}
		wctx, cancel := context.WithTimeout(ctx, l.e.cfg.RequestTimeout)
		_, werrs := store.Wait(wctx, futs)
		cancel()
		for _, err := range werrs {
			if err != nil {
				errs++
			}
		}
		if errs > 0 {
			l.failed.Add(errs)
			l.e.log.Warn("lifecycle events not stored", "count", errs)
		}
	}
}

// EventStats reports events this node could not store: dropped (its buffer was full) and
// failed (JetStream refused or did not answer).
func (e *Engine) EventStats() (dropped, failed int64) {
	return e.events.dropped.Load(), e.events.failed.Load()
}

func (e *Engine) setupEvents(ctx context.Context) error {
	_, err := e.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        eventsStream,
		Description: "spool lifecycle events: one message per job transition",
		Subjects:    []string{eventsPrefix + ">", eventsCallbackPrefix + ">"},
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      e.cfg.EventsMaxAge,
		MaxBytes:    e.cfg.EventsMaxBytes,
		Discard:     jetstream.DiscardOld,
		AllowDirect: true,
		Storage:     jetstream.FileStorage,
		Replicas:    e.cfg.Replicas,
	})
	if err != nil {
		return fmt.Errorf("engine: create %s stream: %w", eventsStream, err)
	}
	return nil
}

// MaxJobEvents bounds a job's timeline (JobEvents).
const MaxJobEvents = 10 * store.MaxBatch

// JobEvents returns the stored events of job id, oldest first (at most MaxJobEvents). A job
// unknown to the events stream (never existed, its events aged out, or turned off) has
// none: the result is empty, not an error.
func (e *Engine) JobEvents(ctx context.Context, id uint64) ([]Event, error) {
	if e.closed() {
		return nil, ErrClosed
	}
	filter := "spool.*.*.*." + strconv.FormatUint(id, 10)
	var out []Event
	for from := uint64(1); len(out) < MaxJobEvents; {
		msgs, err := e.st.Batch(ctx, eventsStream, store.Request{Seq: from, NextFor: filter, Batch: store.MaxBatch})
		if err != nil {
			return nil, fmt.Errorf("read job events: %w", err)
		}
		for _, m := range msgs {
			ev, err := decodeEvent(m.Seq, m.Data)
			if err != nil {
				e.log.Warn("bad event", "seq", m.Seq, "err", err)
				continue
			}
			out = append(out, ev)
			from = m.Seq + 1
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
	filter EventFilter
	cons   jetstream.Consumer
	it     jetstream.MessagesContext
	stop   sync.Once
}

// FollowEvents opens a feed of the events matching f stored after sequence after (0: only
// events stored from now on). Close it when done.
func (e *Engine) FollowEvents(ctx context.Context, f EventFilter, after uint64) (*EventFeed, error) {
	if e.closed() {
		return nil, ErrClosed
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: f.subjects(), DeliverPolicy: jetstream.DeliverNewPolicy}
	if after > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, after+1
	}
	cons, err := e.js.OrderedConsumer(ctx, eventsStream, cfg)
	if err != nil {
		return nil, fmt.Errorf("follow events: %w", err)
	}
	it, err := cons.Messages()
	if err != nil {
		return nil, fmt.Errorf("follow events: %w", err)
	}
	return &EventFeed{filter: f, cons: cons, it: it}, nil
}

// Next returns the next matching event.
func (f *EventFeed) Next(ctx context.Context) (Event, error) {
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			f.Close()
		case <-done:
		}
	}()
	for {
		m, err := f.it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return Event{}, ctx.Err()
			}
			return Event{}, fmt.Errorf("follow events: %w", err)
		}
		md, err := m.Metadata()
		if err != nil {
			continue
		}
		ev, err := decodeEvent(md.Sequence.Stream, m.Data())
		if err != nil || !f.filter.matchType(ev.Type) {
			continue
		}
		return ev, nil
	}
}

// Close ends the feed.
func (f *EventFeed) Close() { f.stop.Do(f.it.Stop) }

// ConsumeEvents hands the events matching f to fn through the durable consumer named
// durable, shared by every engine that calls it with that name: each event goes to one of
// them, at least once (an event whose fn failed, or whose engine died, comes back after
// redeliver). A new consumer starts with the events stored from then on; a changed filter
// updates the consumer. It returns when ctx ends.
func (e *Engine) ConsumeEvents(ctx context.Context, durable string, f EventFilter, redeliver time.Duration, fn func(context.Context, Event) error) error {
	cons, err := e.js.CreateOrUpdateConsumer(ctx, eventsStream, jetstream.ConsumerConfig{
		Durable:        durable,
		FilterSubjects: f.subjects(),
		DeliverPolicy:  jetstream.DeliverNewPolicy,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        redeliver,
		MaxAckPending:  1000,
	})
	if err != nil {
		return fmt.Errorf("consume events: %w", err)
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
			ev, err := decodeEvent(md.Sequence.Stream, m.Data())
			if err != nil || !f.matchType(ev.Type) {
				m.Ack()
				continue
			}
			if err := fn(ctx, ev); err != nil {
				m.NakWithDelay(redeliver)
				continue
			}
			m.Ack()
		}
	}
	return ctx.Err()
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
