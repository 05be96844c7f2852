package engine

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A priority level's consumer costs JetStream ~50 KiB and four goroutines for as long as it
// exists. A queue in a shard has it only while the level is in use: the idle-consumer
// sweep deletes it once the level has had no job and no reservation for Config.ConsumerIdle,
// and the next reservation makes it again (ensureLevel). Deleting a consumer that has a
// delivery pending would offer that job again as never delivered, so the sweep pauses the
// consumer first (it then hands out nothing, on any node) and deletes it only if, paused,
// it still has nothing pending, delivered or waiting.

// runIdleSweep sweeps idle consumers every quarter of Config.ConsumerIdle until stop.
func (e *Engine) runIdleSweep(stop <-chan struct{}) {
	t := time.NewTicker(e.cfg.ConsumerIdle / 4)
	defer t.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-stop
		cancel()
	}()
	e.adoptConsumers(ctx)
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			e.sweepIdle(ctx, e.cfg.ConsumerIdle)
		}
	}
}

// sweepIdle looks at the levels of shared queues that this node pulled from, last longer
// than idle ago: each node sweeps what it used, so that a sweep costs nothing per idle queue.
// (Consumers that exist at start, of an earlier run or of a node that died, are adopted by
// the node that leads them: adoptConsumers.)
func (e *Engine) sweepIdle(ctx context.Context, idle time.Duration) {
	now := e.now()
	for _, q := range e.queueList() {
		if !q.names.shared {
			continue
		}
		cfg, _ := q.config()
		for _, b := range cfg.levels() {
			if !q.pulledBefore(b, now.Add(-idle)) {
				continue
			}
			gone, err := e.dropIdleLevel(ctx, q, b, idle)
			if err != nil && ctx.Err() == nil {
				e.log.Warn("idle consumer", "queue", q.name, "priority", b, "err", err)
			}
			if gone {
				q.forgetPull(b)
			}
		}
	}
}

// adoptConsumers puts the level consumers that exist at start into this node's sweep, as if
// pulled from now: consumers made before a restart (or by a node that died) would else stay
// until a reservation pulls from them again, each costing memory and goroutines for good. In
// a cluster a node adopts the consumers it leads, so that each is swept by one node.
func (e *Engine) adoptConsumers(ctx context.Context) {
	type level struct {
		q *queue
		b int
	}
	byStream := map[string]map[string]level{}
	for _, q := range e.queueList() {
		if !q.names.shared {
			continue
		}
		cfg, _ := q.config()
		for _, b := range cfg.levels() {
			s := q.names.stream()
			if byStream[s] == nil {
				byStream[s] = map[string]level{}
			}
			byStream[s][q.names.consumer(b)] = level{q, b}
		}
	}
	self, now, adopted := e.nc.ConnectedServerName(), e.now(), 0
	for stream, levels := range byStream {
		s, err := e.js.Stream(ctx, stream)
		if err != nil {
			e.log.Warn("idle consumers: list", "stream", stream, "err", err)
			continue
		}
		l := s.ListConsumers(ctx)
		for info := range l.Info() {
			lv, ok := levels[info.Name]
			if !ok || info.Cluster != nil && info.Cluster.Leader != "" && info.Cluster.Leader != self {
				continue
			}
			if lv.q.adoptPull(lv.b, now) {
				adopted++
			}
		}
		if err := l.Err(); err != nil && ctx.Err() == nil {
			e.log.Warn("idle consumers: list", "stream", stream, "err", err)
		}
	}
	if adopted > 0 {
		e.log.Info("consumers found at start, swept once idle", "consumers", adopted)
	}
}

// dropIdleLevel deletes level b's consumer if it has been idle for idle. gone reports that
// the consumer is no more.
func (e *Engine) dropIdleLevel(ctx context.Context, q *queue, b int, idle time.Duration) (gone bool, err error) {
	name := q.names.consumer(b)
	c, err := e.js.Consumer(ctx, q.names.stream(), name)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return true, nil
	}
	if err != nil || !quiet(c.CachedInfo(), e.now(), idle) {
		return false, err
	}
	return e.dropPaused(ctx, q, b, c, idle)
}

// dropPaused pauses level b's consumer c, then deletes it if it is still quiet; else it
// undoes the pause.
func (e *Engine) dropPaused(ctx context.Context, q *queue, b int, c jetstream.Consumer, idle time.Duration) (gone bool, err error) {
	name := q.names.consumer(b)
	now := e.now()
	if _, err := e.js.PauseConsumer(ctx, q.names.stream(), name, now.Add(forever)); err != nil {
		return false, fmt.Errorf("pause: %w", err)
	}
	info, err := c.Info(ctx)
	if err == nil && quiet(info, now, idle) {
		if err := e.js.DeleteConsumer(ctx, q.names.stream(), name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return false, fmt.Errorf("delete: %w", err)
		}
		e.log.Debug("idle consumer deleted", "queue", q.name, "priority", b)
		return true, nil
	}
	// In use after all: as the queue says, running or paused until its time.
	var rerr error
	switch cfg, _ := q.config(); {
	case !cfg.pausedAt(e.now()):
		_, rerr = e.js.ResumeConsumer(ctx, q.names.stream(), name)
	case cfg.PausedUntil != 0:
		_, rerr = e.js.PauseConsumer(ctx, q.names.stream(), name, time.Unix(0, cfg.PausedUntil))
	}
	if rerr != nil {
		return false, fmt.Errorf("undo pause: %w", rerr)
	}
	return false, err
}

// quiet reports whether a consumer holds no job, pending, delivered or asked for, and has
// delivered none for idle.
func quiet(info *jetstream.ConsumerInfo, now time.Time, idle time.Duration) bool {
	if info.NumPending != 0 || info.NumAckPending != 0 || info.NumWaiting != 0 || info.NumRedelivered != 0 {
		return false
	}
	if now.Sub(info.Created) < idle {
		return false
	}
	return info.Delivered.Last == nil || now.Sub(*info.Delivered.Last) >= idle
}

// ensureLevel makes level b's consumer of q again.
func (e *Engine) ensureLevel(ctx context.Context, q *queue, b int) error {
	cfg, _ := q.config()
	if err := e.putConsumer(ctx, q.names.stream(), e.bandConsumerConfig(q, cfg, b), false); err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == jsMaxConsumers {
			err = fmt.Errorf("%w (%v)", errConsumerLimit, err)
		}
		return fmt.Errorf("make priority %d consumer: %w", b, err)
	}
	return nil
}

// jsMaxConsumers is JetStream's error code for a stream at its limit of consumers.
const jsMaxConsumers = 10026

// errConsumerLimit: JetStream refused a level's consumer, its stream has as many as its
// server allows. The embedded server allows any number; an external NATS server allows
// 1,000 a stream unless configured otherwise. Idle levels lose their consumers after
// Config.ConsumerIdle, so trying again later may pass: a transient failure.
var errConsumerLimit = errors.New("too many queues in use at once for JetStream's limit of consumers per stream (an external NATS server: set jetstream { limits { default_max_consumers: -1 } })")

// levelCounts returns the counts of q's ready levels: ready (not delivered) and reserved
// (delivered, not acknowledged), and the stream sequence each consumer delivered up to. In a
// shard, one read of the stream's ready subjects finds the levels that hold any job; only
// those need their consumer's counts, and one without its consumer (idle) has every job of
// its subject ready.
func (e *Engine) levelCounts(ctx context.Context, q *queue, levels []int) (ready, reserved map[int]int64, delivered map[int]uint64, err error) {
	ready, reserved, delivered = make(map[int]int64), make(map[int]int64), make(map[int]uint64)
	if len(levels) == 0 {
		// No ready level, so no ready job (a level is in the queue's entry before its
		// first job): a queue made by PutQueue, answered without two stream infos.
		return ready, reserved, delivered, nil
	}
	held := map[int]int64(nil) // jobs on each level's subject, when known
	if q.names.shared {
		s, err := e.js.Stream(ctx, q.names.stream())
		if err != nil {
			return nil, nil, nil, err
		}
		info, err := s.Info(ctx, jetstream.WithSubjectFilter(q.names.state(StateReady)))
		if err != nil {
			return nil, nil, nil, err
		}
		held = make(map[int]int64, len(info.State.Subjects))
		for subj, n := range info.State.Subjects {
			if b, err := strconv.Atoi(subj[strings.LastIndexByte(subj, '.')+1:]); err == nil {
				held[b] = int64(n)
			}
		}
	}
	for _, b := range levels {
		if held != nil && held[b] == 0 {
			continue
		}
		ci, err := e.js.Consumer(ctx, q.names.stream(), q.names.consumer(b))
		switch {
		case errors.Is(err, jetstream.ErrConsumerNotFound) && held != nil:
			ready[b] = held[b]
			continue
		case errors.Is(err, jetstream.ErrConsumerNotFound):
			continue // the queue was deleted
		case errors.Is(err, jetstream.ErrStreamNotFound):
			return nil, nil, nil, ErrQueueNotFound
		case err != nil:
			return nil, nil, nil, err
		}
		info := ci.CachedInfo()
		ready[b], reserved[b], delivered[b] = int64(info.NumPending), int64(info.NumAckPending), info.Delivered.Stream
	}
	return ready, reserved, delivered, nil
}
