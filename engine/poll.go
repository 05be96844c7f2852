package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// A long-polling reservation may carry a poll id chosen by its caller, so that the caller can
// end it early through any node (EndPoll): the poll then returns at once, with the jobs it
// reserved so far. This is how a worker shuts down without abandoning a reservation whose
// answer is on its way (cancelling the request would lose that answer, and the jobs would
// wait for their leases).

const (
	pollPrefix = "spool.poll."
	// endedMemory is how long an ended poll id is remembered, for a reservation that reaches
	// its node after the end did.
	endedMemory = 30 * time.Second
	// MaxPollID is the longest poll id.
	MaxPollID = 64
	// endPollTimeout bounds the flush of an end whose caller set no deadline.
	endPollTimeout = 5 * time.Second
)

var errPollEnded = errors.New("poll ended")

type polls struct {
	mu    sync.Mutex
	next  uint64
	live  map[string]map[uint64]context.CancelCauseFunc
	ended map[string]time.Time
}

func newPolls() *polls {
	return &polls{live: make(map[string]map[uint64]context.CancelCauseFunc), ended: make(map[string]time.Time)}
}

// ValidatePollID checks a poll id: 1 to 64 letters, digits, '-' or '_'.
func ValidatePollID(id string) error {
	if id == "" || len(id) > MaxPollID {
		return invalid("poll_id", "must be 1 to %d bytes", MaxPollID)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c == '-' || c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return invalid("poll_id", "letters, digits, '-' and '_' only")
		}
	}
	return nil
}

// start registers a poll; its context ends with errPollEnded when the poll is ended. It
// reports false when the poll was ended before it started.
func (p *polls) start(ctx context.Context, id string) (context.Context, func(), bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if at, ok := p.ended[id]; ok && time.Since(at) < endedMemory {
		return ctx, func() {}, false
	}
	pctx, cancel := context.WithCancelCause(ctx)
	p.next++
	key := p.next
	if p.live[id] == nil {
		p.live[id] = make(map[uint64]context.CancelCauseFunc)
	}
	p.live[id][key] = cancel
	return pctx, func() {
		p.mu.Lock()
		delete(p.live[id], key)
		if len(p.live[id]) == 0 {
			delete(p.live, id)
		}
		p.mu.Unlock()
		cancel(nil)
	}, true
}

// end ends the polls of this node with the id, and remembers it for a while.
func (p *polls) end(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	for old, at := range p.ended {
		if now.Sub(at) >= endedMemory {
			delete(p.ended, old)
		}
	}
	p.ended[id] = now
	for _, cancel := range p.live[id] {
		cancel(errPollEnded)
	}
}

// EndPoll ends the long-polling reservations made with this poll id, on every node: they
// return at once with the jobs they hold. A reservation with the id that starts within 30s
// returns at once too.
func (e *Engine) EndPoll(ctx context.Context, id string) error {
	if err := ValidatePollID(id); err != nil {
		return err
	}
	e.polls.end(id)
	if err := e.nc.Publish(pollPrefix+id, nil); err != nil {
		return fmt.Errorf("end poll %s: %w", id, err)
	}
	// FlushWithContext refuses a context without a deadline, such as an HTTP request's.
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, endPollTimeout)
		defer cancel()
	}
	if err := e.nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("end poll %s: %w", id, err)
	}
	return nil
}

func (e *Engine) onPollEnd(m *nats.Msg) { e.polls.end(m.Subject[len(pollPrefix):]) }
