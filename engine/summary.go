package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"
)

// Summary is the sum of many queues' statistics. Summarize reads it at a cost that follows
// the jobs and priority levels in use, not the number of queues: a node with 100,000 queues
// answers as fast as one with ten when most of them are idle.
type Summary struct {
	Queues int // queues summed
	Paused int // of them, paused now

	// Jobs by state, as QueueStats counts them.
	Ready, Reserved, Delayed, Buried int64
	// Urgent is the number of ready jobs with a priority below the threshold asked for.
	Urgent int64
	// ReservedByID is the number of jobs reserved with ReserveByID (not in Reserved).
	ReservedByID int64

	// Totals, as in QueueStats. Over all queues they are the cluster's totals, which keep
	// the jobs of deleted queues; over some queues, those queues' totals added up.
	Enqueued, Reserves, Succeeded, Failed, BuriedTot, Cancelled, Timeouts int64

	EnqueueRate, CompleteRate float64 // jobs/s over the last minute, as seen by this node
}

// SummaryRequest says which queues Summarize sums.
type SummaryRequest struct {
	// Keep accepts the names of the queues to sum; nil sums every queue.
	Keep func(name string) bool
	// UrgentBelow is the priority below which a ready job counts in Summary.Urgent.
	UrgentBelow uint32
}

// Summarize sums the statistics of the queues r names. Counts by state come from one pass
// over each stream (the shards, and the own streams of queues made before shards): the
// message counts of its ready and held subjects, and its consumers (a priority level's for
// ready and reserved jobs, a counting one for delayed and buried), so they agree with the
// queues' own statistics read at the same moment.
func (e *Engine) Summarize(ctx context.Context, r SummaryRequest) (*Summary, error) {
	var (
		out     Summary
		streams = map[string]map[string]*queue{} // stream -> escaped name -> queue
		kept    []*queue
	)
	now := e.now()
	for _, q := range e.queueList() {
		if r.Keep != nil && !r.Keep(q.name) {
			continue
		}
		cfg, _ := q.config()
		out.Queues++
		if cfg.pausedAt(now) {
			out.Paused++
		}
		kept = append(kept, q)
		if streams[q.names.stream()] == nil {
			streams[q.names.stream()] = map[string]*queue{}
		}
		streams[q.names.stream()][q.names.esc] = q
	}
	// A few streams at once: the shards, and a stream each of the queues made before shards.
	var (
		mu sync.Mutex
		g  errgroup.Group
	)
	g.SetLimit(infoReaders)
	for stream, qs := range streams {
		g.Go(func() error {
			var part Summary
			err := e.summarizeStream(ctx, stream, qs, r.UrgentBelow, &part)
			switch {
			case err == nil:
				mu.Lock()
				out.add(&part)
				mu.Unlock()
			case errors.Is(err, jetstream.ErrStreamNotFound) && len(qs) == 1 && !oneOf(qs).names.shared:
				// a queue of its own stream, deleted meanwhile
			default:
				return fmt.Errorf("summary of %s: %w", stream, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var t map[string]int64
	if r.Keep == nil {
		var err error
		if t, err = e.stats.allTotals(ctx); err != nil {
			return nil, fmt.Errorf("summary totals: %w", err)
		}
		out.EnqueueRate, out.CompleteRate = e.stats.rates(allEsc, e.opened)
	} else {
		escs := make([]string, len(kept))
		for i, q := range kept {
			escs[i] = q.names.esc
		}
		totals, err := e.stats.totals(ctx, escs...)
		if err != nil {
			return nil, fmt.Errorf("summary totals: %w", err)
		}
		t = map[string]int64{}
		for _, q := range kept {
			for name, n := range totals[q.names.esc] {
				t[name] += n
			}
			cfg, _ := q.config()
			enq, done := e.stats.rates(q.names.esc, nsTime(cfg.Created))
			out.EnqueueRate, out.CompleteRate = out.EnqueueRate+enq, out.CompleteRate+done
		}
	}
	out.Enqueued, out.Reserves, out.Succeeded = t[cEnqueued], t[cReserves], t[cSucceeded]
	out.Failed, out.BuriedTot, out.Cancelled, out.Timeouts = t[cFailed], t[cBuried], t[cCancelled], t[cTimeouts]
	return &out, nil
}

// summarizeStream adds the counts of the queues qs (by escaped name) of a stream: a shard's,
// or a queue's own (made before shards, with the same subjects under its token "q").
func (e *Engine) summarizeStream(ctx context.Context, stream string, qs map[string]*queue, urgentBelow uint32, out *Summary) error {
	tok := oneOf(qs).names.tok
	s, err := e.js.Stream(ctx, stream)
	if err != nil {
		return err
	}
	// Jobs on each level's ready subject: ready, or delivered and not acknowledged yet.
	held := map[level]int64{}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter("spool."+tok+".*."+string(StateReady)+".*"))
	if err != nil {
		return err
	}
	for subj, n := range info.State.Subjects {
		esc, rest, ok := splitShardSubject(subj, tok)
		b, err := strconv.Atoi(strings.TrimPrefix(rest, string(StateReady)+"."))
		if ok && err == nil && qs[esc] != nil {
			held[level{esc, b}] = int64(n)
		}
	}
	consumers := info.State.Consumers
	// Jobs reserved by id: a subject each.
	info, err = s.Info(ctx, jetstream.WithSubjectFilter("spool."+tok+".*."+string(stateHeld)+".>"))
	if err != nil {
		return err
	}
	for subj, n := range info.State.Subjects {
		if esc, _, ok := splitShardSubject(subj, tok); ok && qs[esc] != nil {
			out.ReservedByID += int64(n)
		}
	}
	// The consumers that count: the levels holding jobs, and the delayed and buried
	// counters. Listing every consumer of the stream costs what the stream has (levels
	// used in the last minutes included); asking for each costs a request each. Whichever
	// is less.
	var counted []counterOfQueue
	for _, q := range qs {
		for _, st := range []State{StateDelayed, StateBuried} {
			if q.hasCounter(counterBit(st)) {
				counted = append(counted, counterOfQueue{q, st})
			}
		}
	}
	var c *shardCounts
	if consumers <= listPerRequest*(len(held)+len(counted)) {
		c, err = e.listShardConsumers(ctx, s, tok, qs, held, counted)
	} else {
		c = newShardCounts()
		err = e.askShardConsumers(ctx, c, qs, held, counted)
	}
	if err != nil {
		return err
	}
	for l, n := range held {
		if lc, ok := c.levels[l]; ok {
			n = lc.ready
			out.Reserved += lc.reserved
		} // else no consumer (idle, swept): every job on the subject is ready
		out.Ready += n
		if l.b < int(urgentBelow) {
			out.Urgent += n
		}
	}
	out.Delayed, out.Buried = out.Delayed+c.delayed, out.Buried+c.buried
	return nil
}

// listPerRequest is about how many consumers one listing of a stream's consumers covers
// for the cost of one consumer info request.
const listPerRequest = 4

// level is a queue's priority level, by escaped queue name.
type level struct {
	esc string
	b   int
}

type counterOfQueue struct {
	q     *queue
	state State
}

// shardCounts are the consumer counts of a shard's queues: per level that has a consumer,
// and the delayed and buried counters' sums.
type shardCounts struct {
	mu              sync.Mutex // askShardConsumers fills it from several goroutines
	levels          map[level]levelCount
	delayed, buried int64
}

// levelCount is what a level's consumer counts: jobs not delivered, and delivered not acked.
type levelCount struct{ ready, reserved int64 }

func newShardCounts() *shardCounts { return &shardCounts{levels: map[level]levelCount{}} }

func (c *shardCounts) setLevel(l level, ready, reserved uint64) {
	c.mu.Lock()
	c.levels[l] = levelCount{int64(ready), int64(reserved)}
	c.mu.Unlock()
}

func (c *shardCounts) add(s State, n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s == StateDelayed {
		c.delayed += n
	} else {
		c.buried += n
	}
}

// listShardConsumers reads the counts of a shard's queues from the list of its consumers. A
// counter the list lacks (kept in memory and lost with a restart) is asked for, which makes
// it again.
func (e *Engine) listShardConsumers(ctx context.Context, s jetstream.Stream, tok string, qs map[string]*queue, held map[level]int64, counted []counterOfQueue) (*shardCounts, error) {
	c := newShardCounts()
	listed := map[counterOfQueue]bool{}
	l := s.ListConsumers(ctx)
	for ci := range l.Info() {
		esc, rest, ok := splitShardSubject(ci.Config.FilterSubject, tok)
		q := qs[esc]
		if !ok || q == nil {
			continue
		}
		switch state, tail, _ := strings.Cut(rest, "."); State(state) {
		case StateReady:
			b, err := strconv.Atoi(tail)
			if lv := (level{esc, b}); err == nil && held[lv] != 0 {
				// (Nothing on its subject: nothing pending, as levelCounts says.)
				c.setLevel(lv, ci.NumPending, uint64(ci.NumAckPending))
			}
		case StateDelayed, StateBuried:
			if !q.hasCounter(counterBit(State(state))) || tail != ">" {
				continue
			}
			listed[counterOfQueue{q, State(state)}] = true
			c.add(State(state), int64(ci.NumPending)+int64(ci.NumAckPending))
		}
	}
	if err := l.Err(); err != nil {
		return nil, err
	}
	lost := slices.DeleteFunc(slices.Clone(counted), func(k counterOfQueue) bool { return listed[k] })
	return c, e.askShardConsumers(ctx, c, qs, nil, lost)
}

// askShardConsumers adds to c the counts of the consumers that count, asked for several at
// a time: the levels of held (none when nil) and the counters of counted.
func (e *Engine) askShardConsumers(ctx context.Context, c *shardCounts, qs map[string]*queue, held map[level]int64, counted []counterOfQueue) error {
	var g errgroup.Group
	g.SetLimit(infoReaders)
	for lv := range held {
		g.Go(func() error {
			q := qs[lv.esc]
			ci, err := e.js.Consumer(ctx, q.names.stream(), q.names.consumer(lv.b))
			if errors.Is(err, jetstream.ErrConsumerNotFound) {
				return nil // idle, swept: every job on the subject is ready
			}
			if err != nil {
				return err
			}
			info := ci.CachedInfo()
			c.setLevel(lv, info.NumPending, uint64(info.NumAckPending))
			return nil
		})
	}
	for _, k := range counted {
		g.Go(func() error {
			n, err := e.counted(ctx, k.q, k.state)
			if errors.Is(err, ErrQueueNotFound) {
				return nil // deleted meanwhile
			}
			c.add(k.state, n)
			return err
		})
	}
	return g.Wait()
}

// splitShardSubject splits a subject of a shard whose subjects start spool.<tok>. into
// the queue's escaped name and the rest.
func splitShardSubject(subj, tok string) (esc, rest string, ok bool) {
	rest, ok = strings.CutPrefix(subj, "spool."+tok+".")
	if !ok {
		return "", "", false
	}
	return strings.Cut(rest, ".")
}

// oneOf returns one of the queues qs.
func oneOf(qs map[string]*queue) *queue {
	for _, q := range qs {
		return q
	}
	return nil
}

// add adds the counts by state of b to s.
func (s *Summary) add(b *Summary) {
	s.Ready, s.Reserved, s.Delayed, s.Buried = s.Ready+b.Ready, s.Reserved+b.Reserved, s.Delayed+b.Delayed, s.Buried+b.Buried
	s.Urgent, s.ReservedByID = s.Urgent+b.Urgent, s.ReservedByID+b.ReservedByID
}
