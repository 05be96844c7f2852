package webhook

import (
	"cmp"
	"context"
	"encoding/json"
	"hash/fnv"
	"slices"
	"strconv"
	"time"

	"github.com/spoolq/spool/engine"
)

// delivery is a delivery job's payload.
type delivery struct {
	Key   string       `json:"key"`  // idempotency key: <event pos>-<hook id or "callback">
	Hook  string       `json:"hook"` // hook id; "" for the job's callback URL
	URL   string       `json:"url"`
	Event engine.Event `json:"event"`
}

// dispatch turns matching events into delivery jobs, through the consumer shared by every
// node. The consumer's filter follows the hooks: with none, it sees only the events of jobs
// with a callback URL.
func (s *Service) dispatch() {
	for s.ctx.Err() == nil {
		s.mu.RLock()
		changed, f := s.changed, s.filterLocked()
		s.mu.RUnlock()
		ctx, cancel := context.WithCancel(s.ctx)
		go func() {
			select {
			case <-changed: // hooks changed: consume again with the new filter
			case <-ctx.Done():
			}
			cancel()
		}()
		err := s.eng.ConsumeEvents(ctx, consumerName, f, redeliverAfter, s.onEvents)
		cancel()
		if err != nil && s.ctx.Err() == nil && ctx.Err() == nil {
			s.log.Warn("webhook dispatcher", "err", err)
			select {
			case <-s.ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

// redeliverAfter is when a batch of events whose deliveries could not be enqueued (or
// whose node died) comes back to the dispatchers.
const redeliverAfter = 30 * time.Second

// filterLocked is the dispatchers' consumer filter: with hooks, every event (their queues,
// types and kinds are matched on the events: a batch message holds many); without, the
// events of jobs with a callback URL only.
func (s *Service) filterLocked() engine.EventFilter {
	return engine.EventFilter{Callback: len(s.hooks) == 0}
}

// prepare sets the shared consumer's filter for the hooks as they are now: a hook made
// here sees the events stored once Create returns.
func (s *Service) prepare(ctx context.Context) error {
	s.mu.RLock()
	f := s.filterLocked()
	s.mu.RUnlock()
	return s.eng.PrepareEventConsumer(ctx, consumerName, f, redeliverAfter)
}

// onEvents enqueues the deliveries of a stored batch of events in one write: for each event,
// one per matching hook, and one to the job's callback URL for an outcome. A delivery's job
// id derives from its event and target, so a batch handed out twice enqueues each delivery
// once.
func (s *Service) onEvents(ctx context.Context, evs []engine.Event) error {
	var reqs []engine.EnqueueRequest
	add := func(ev *engine.Event, hook, url string) {
		key := strconv.FormatUint(ev.Pos, 10) + "-" + cmp.Or(hook, "callback")
		b, _ := json.Marshal(delivery{Key: key, Hook: hook, URL: url, Event: *ev})
		reqs = append(reqs, engine.EnqueueRequest{Queue: Queue, Type: "webhook." + string(ev.Kind), Payload: b, ID: deliveryID(key)})
	}
	s.mu.RLock()
	for i := range evs {
		ev := &evs[i]
		if ev.Queue == Queue {
			continue
		}
		if ev.Callback != "" && slices.Contains(CallbackKinds, ev.Kind) {
			add(ev, "", ev.Callback)
		}
		for _, h := range s.hooks {
			if h.matches(ev) {
				add(ev, h.ID, h.URL)
			}
		}
	}
	s.mu.RUnlock()
	if len(reqs) == 0 {
		return nil
	}
	// Not the consumer's context: a change of the hooks restarts the consumer, and the
	// enqueue under way should finish all the same.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err := s.ensureQueue(ctx); err != nil {
		s.log.Warn("webhook deliveries", "events", len(evs), "err", err)
		return err
	}
	for chunk := range slices.Chunk(reqs, engine.MaxBatch) {
		res, err := s.eng.Enqueue(ctx, chunk)
		if err != nil {
			s.log.Warn("enqueue webhook deliveries", "events", len(evs), "err", err)
			return err
		}
		for _, r := range res {
			if r.Err != nil {
				s.log.Warn("enqueue webhook delivery", "err", r.Err)
				return r.Err
			}
		}
	}
	s.poke()
	return nil
}

// deliveryID is a delivery's job id: a hash of its key below 2^52 (chosen ids' limit).
func deliveryID(key string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(key))
	return max(h.Sum64()&(1<<52-1), 1)
}
