package engine

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/spoolq/spool/engine/internal/store"
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
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
	)
	sem := make(chan struct{}, infoReaders)
	for stream, qs := range streams {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			var part Summary
			err := e.summarizeStream(ctx, stream, qs, r.UrgentBelow, &part)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				out.add(&part)
			case errors.Is(err, jetstream.ErrStreamNotFound) && len(qs) == 1 && !oneOf(qs).names.shared:
				// a queue of its own stream, deleted meanwhile
			default:
				first = cmp.Or(first, fmt.Errorf("summary of %s: %w", stream, err))
			}
		})
	}
	wg.Wait()
	if first != nil {
		return nil, first
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
	var c shardCounts
	if consumers <= listPerRequest*(len(held)+len(counted)) {
		c, err = e.listShardConsumers(ctx, s, tok, qs, held, counted)
	} else {
		c, err = e.askShardConsumers(ctx, held, qs, counted)
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
	levels          map[level]struct{ ready, reserved int64 }
	delayed, buried int64
}

// listShardConsumers reads the counts of a shard's queues from the list of its consumers. A
// counter the list lacks (kept in memory and lost with a restart) is asked for, which makes
// it again.
func (e *Engine) listShardConsumers(ctx context.Context, s jetstream.Stream, tok string, qs map[string]*queue, held map[level]int64, counted []counterOfQueue) (shardCounts, error) {
	c := shardCounts{levels: map[level]struct{ ready, reserved int64 }{}}
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
				c.levels[lv] = struct{ ready, reserved int64 }{int64(ci.NumPending), int64(ci.NumAckPending)}
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
		return c, err
	}
	for _, k := range counted {
		if !listed[k] {
			n, err := e.counted(ctx, k.q, k.state)
			if err != nil && !errors.Is(err, ErrQueueNotFound) {
				return c, err
			}
			c.add(k.state, n)
		}
	}
	return c, nil
}

// askShardConsumers reads the counts of a shard's queues from the consumers that count,
// several at a time.
func (e *Engine) askShardConsumers(ctx context.Context, held map[level]int64, qs map[string]*queue, counted []counterOfQueue) (shardCounts, error) {
	c := shardCounts{levels: map[level]struct{ ready, reserved int64 }{}}
	var (
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
	)
	sem := make(chan struct{}, infoReaders)
	run := func(f func() error) {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := f(); err != nil {
				mu.Lock()
				first = cmp.Or(first, err)
				mu.Unlock()
			}
		})
	}
	for lv := range held {
		q := qs[lv.esc]
		run(func() error {
			ci, err := e.js.Consumer(ctx, q.names.stream(), q.names.consumer(lv.b))
			if errors.Is(err, jetstream.ErrConsumerNotFound) {
				return nil // idle, swept: every job on the subject is ready
			}
			if err != nil {
				return err
			}
			info := ci.CachedInfo()
			mu.Lock()
			c.levels[lv] = struct{ ready, reserved int64 }{int64(info.NumPending), int64(info.NumAckPending)}
			mu.Unlock()
			return nil
		})
	}
	for _, k := range counted {
		run(func() error {
			n, err := e.counted(ctx, k.q, k.state)
			if errors.Is(err, ErrQueueNotFound) {
				return nil // deleted meanwhile
			}
			mu.Lock()
			c.add(k.state, n)
			mu.Unlock()
			return err
		})
	}
	wg.Wait()
	return c, first
}

func (c *shardCounts) add(s State, n int64) {
	if s == StateDelayed {
		c.delayed += n
	} else {
		c.buried += n
	}
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

// The cluster's totals. Every flush adds its increments to the counters spool.c._all.<name>
// as well as to the queues' own, so that the totals of all queues are one read. A cluster
// that counted before these existed has its earlier counts in a base, taken once and kept in
// the records stream: the queues' counters as they stood before the first _all increment.
// A flush stores its _all increments before its queues' ones, so every queue increment
// stored before the first _all one is in the base, and every later one in _all. (A node of
// an earlier version, during a rolling upgrade, adds to its queues only: what it counts
// between the first _all increment and its own upgrade is in no total.)

// allEsc stands for all queues in counter subjects: no escaped queue name is "_all" (an
// escape is '_' and two upper-case hex digits).
const allEsc = "_all"

// totalsSubject holds the totals' base (see above), in the records stream: written once,
// create-only.
const totalsSubject = jobsPrefix + "totals"

// allTotals returns the cluster's totals, with this node's increments not flushed yet.
func (c *counters) allTotals(ctx context.Context) (map[string]int64, error) {
	base, err := c.baseTotals(ctx)
	if err != nil {
		return nil, err
	}
	t, err := c.totals(ctx, allEsc)
	if err != nil {
		return nil, err
	}
	out := maps.Clone(base)
	for name, n := range t[allEsc] {
		out[name] += n
	}
	return out, nil
}

// counterValue parses a JetStream counter's value.
func counterValue(data []byte) (int64, error) {
	var v struct {
		Val string `json:"val"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return 0, err
	}
	return strconv.ParseInt(v.Val, 10, 64)
}

// baseTotals returns the totals' base, taking it if no node has yet.
func (c *counters) baseTotals(ctx context.Context) (map[string]int64, error) {
	c.bmu.Lock()
	defer c.bmu.Unlock()
	if c.base != nil {
		return c.base, nil
	}
	m, err := c.e.st.Last(ctx, jobsStream, totalsSubject)
	if errors.Is(err, store.ErrNoMsg) {
		base, terr := c.takeBase(ctx)
		if terr != nil {
			return nil, fmt.Errorf("totals before %s counters: %w", allEsc, terr)
		}
		enc, _ := json.Marshal(base)
		_, err = c.e.st.PublishSync(ctx, &nats.Msg{Subject: totalsSubject, Data: enc}, jetstream.WithExpectLastSequencePerSubject(0))
		if err == nil {
			c.base = base
			return base, nil
		}
		if store.CASLost(err) {
			m, err = c.e.st.Last(ctx, jobsStream, totalsSubject) // another node's, taken first
		}
	}
	if err != nil {
		return nil, fmt.Errorf("totals base: %w", err)
	}
	base := map[string]int64{}
	if err := json.Unmarshal(m.Data, &base); err != nil {
		return nil, fmt.Errorf("bad totals base: %w", err)
	}
	c.base = base
	return base, nil
}

// takeBase adds up the queues' counters as they stood before the first _all increment.
func (c *counters) takeBase(ctx context.Context) (map[string]int64, error) {
	// An _all increment of 0, so that there is a first one to end the base at.
	zero := nats.NewMsg(statsPrefix + allEsc + "." + cEnqueued)
	zero.Header.Set("Nats-Incr", "0")
	if _, err := c.e.st.PublishSync(ctx, zero); err != nil {
		return nil, err
	}
	// A replica that has any _all increment has the first: they are stored in order.
	first, err := c.e.st.Batch(ctx, statsStream, store.Request{Seq: 1, NextFor: statsPrefix + allEsc + ".*", Batch: 1})
	if err != nil {
		return nil, err
	}
	if len(first) != 1 {
		return nil, errBehind
	}
	var escs []string
	for _, q := range c.e.queueList() {
		escs = append(escs, q.names.esc)
	}
	st, err := c.stored(ctx, escs, first[0].Seq)
	if err != nil {
		return nil, err
	}
	base := map[string]int64{}
	for _, m := range st {
		for name, n := range m {
			base[name] += n
		}
	}
	return base, nil
}
