package engine

import (
	"context"
	"errors"
	"maps"
	"slices"
	"time"
	"unicode/utf8"
)

// Limits of a queue's free-form attributes (SetQueueAttributes).
const (
	MaxQueueAttrs     = 128
	MaxQueueAttrValue = 32 << 10
)

// SetDeadLetter makes target the dead-letter queue of the queue name: a job of name whose
// attempts are used up moves to target, ready, with its id, payload and metadata and a fresh
// count of attempts (target's), instead of being buried; its unique key, if any, is released. It moves at the reservation that
// finds it out of attempts (a failure of its last attempt makes it ready for that). An empty
// target turns the dead-letter queue off. target must exist and differ from name; should it
// be deleted later, jobs out of attempts are buried in place again. It returns the queue's
// settings without statistics, as QueueConfig.
func (e *Engine) SetDeadLetter(ctx context.Context, name, target string) (*QueueInfo, error) {
	q, err := e.getQueue(ctx, name, false)
	if err != nil {
		return nil, err
	}
	if target != "" {
		if target == name {
			return nil, invalid("dead_letter", "a queue cannot be its own dead-letter queue")
		}
		if _, err := e.getQueue(ctx, target, false); err != nil {
			if errors.Is(err, ErrQueueNotFound) {
				return nil, invalid("dead_letter", "queue %q does not exist", target)
			}
			return nil, err
		}
	}
	cfg, err := e.updateConfig(ctx, q, func(c *queueConfig) { c.DeadLetter = target })
	if err != nil {
		return nil, err
	}
	return e.info(cfg), nil
}

// DeadLetterSources lists, sorted, the queues known to this node whose dead-letter queue is
// name.
func (e *Engine) DeadLetterSources(name string) []string {
	e.mu.RLock()
	var out []string
	for n, q := range e.queues {
		if cfg, _ := q.config(); cfg.DeadLetter == name {
			out = append(out, n)
		}
	}
	e.mu.RUnlock()
	slices.Sort(out)
	return out
}

// SetQueueAttributes sets and removes free-form attributes of a queue: values that fronts
// keep with it (tags, settings of their protocol) and that the engine does not interpret.
// Keys are 1 to MaxMetaKey bytes of printable UTF-8, values UTF-8 up to MaxQueueAttrValue
// bytes, at most MaxQueueAttrs of them. It returns the queue's settings without statistics,
// as QueueConfig.
func (e *Engine) SetQueueAttributes(ctx context.Context, name string, set map[string]string, remove []string) (*QueueInfo, error) {
	for k, v := range set {
		if k == "" || len(k) > MaxMetaKey || !printable(k) {
			return nil, invalid("attributes", "keys must be 1 to %d bytes of printable UTF-8", MaxMetaKey)
		}
		if len(v) > MaxQueueAttrValue || !utf8.ValidString(v) {
			return nil, invalid("attributes", "value of %q must be at most %d bytes of UTF-8", k, MaxQueueAttrValue)
		}
	}
	q, err := e.getQueue(ctx, name, false)
	if err != nil {
		return nil, err
	}
	var bad error
	cfg, err := e.updateConfig(ctx, q, func(c *queueConfig) {
		attrs := maps.Clone(c.Attrs)
		if attrs == nil {
			attrs = make(map[string]string, len(set))
		}
		maps.Copy(attrs, set)
		for _, k := range remove {
			delete(attrs, k)
		}
		bad = nil
		if len(attrs) > MaxQueueAttrs {
			bad = invalid("attributes", "more than %d attributes", MaxQueueAttrs)
			return
		}
		c.Attrs = attrs
	})
	if err == nil {
		err = bad
	}
	if err != nil {
		return nil, err
	}
	return e.info(cfg), nil
}

// moveToDeadLetter moves a delivered job out of attempts to the dead-letter queue dl:
// a ready message there, the record's compare-and-set, then the delivery's ack. It reports
// whether it moved the job (ok) and whether it is done with the delivery: not done, having
// done nothing, when dl is gone or the move failed before the record changed (the caller
// then buries the job in place); done without moving it when the job changed meanwhile.
func (e *Engine) moveToDeadLetter(ctx context.Context, q *queue, dl string, c *cand, next *record) (ok, done bool) {
	dq, err := e.getQueue(ctx, dl, false)
	if err != nil {
		e.log.Warn("dead-letter queue unavailable: burying in place", "queue", q.names.esc, "dead_letter", dl, "err", err)
		return false, false
	}
	dcfg, _ := dq.config()
	moved := *next
	moved.Queue = dl
	moved.Attempts, moved.MaxAttempts = 0, dcfg.MaxAttempts
	moved.UniqueKey = "" // a unique key holds in its queue: the job leaves it
	if _, err := e.moveTo(ctx, dq, c.id, &moved, c.curSeq, c.payload, StateReady, time.Time{}, c.msg.Reply); err != nil {
		if casLost(err) || errors.Is(err, ErrLeaseLost) {
			e.st.Nak(c.msg.Reply) // changed meanwhile: the next reservation sees the new record
			return false, true
		}
		e.log.Warn("move to dead-letter queue", "job", c.id, "dead_letter", dl, "err", err)
		return false, false
	}
	e.releaseUnique(ctx, c.id, next)
	e.stats.add(q.names.esc, cBuried, 1)
	e.log.Debug("job out of attempts moved to its dead-letter queue", "job", c.id, "dead_letter", dl)
	return true, true
}
