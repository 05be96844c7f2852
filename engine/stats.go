package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/spoolq/spool/engine/internal/store"
)

// Counter names, the last token of spool.c.<queue>.<name>.
const (
	cEnqueued  = "enqueued"
	cReserves  = "reserves"
	cSucceeded = "succeeded"
	cFailed    = "failed"
	cBuried    = "buried"
	cCancelled = "cancelled"
	cTimeouts  = "timeouts"
)

const (
	flushEvery = time.Second
	rateWindow = time.Minute
)

// counters batches this node's increments and adds them to the cluster-wide JetStream
// counters once a second, so statistics cost a few writes per second, not one per job.
type counters struct {
	e *Engine

	mu    sync.Mutex
	delta map[string]map[string]int64 // escaped queue, and allEsc -> counter -> increment

	// fmu is held by a flush and by a read of the totals, which adds this node's increments
	// not flushed yet: the node reads its own writes, and never counts one twice.
	fmu sync.Mutex

	bmu  sync.Mutex
	base map[string]int64 // the totals' base once known (allTotals)

	// The rates come from the increments as they are flushed, this node's own and, through
	// a subscription, the other nodes': a cost per active queue, none per idle one.
	smu    sync.Mutex
	recent map[string][]tally // escaped queue -> increments of the last rateWindow, oldest first
	sub    *nats.Subscription
}

// tally is the enqueues and completions of a queue flushed in one second.
type tally struct {
	sec                 int64 // unix seconds
	enqueued, succeeded int64
}

// nodeHeader marks a counter increment with the node that flushed it.
const nodeHeader = "Spool-Node"

func newCounters(e *Engine) (*counters, error) {
	c := &counters{e: e, delta: make(map[string]map[string]int64), recent: make(map[string][]tally)}
	sub, err := e.nc.Subscribe(statsPrefix+">", c.onFlushed)
	if err != nil {
		return nil, err
	}
	c.sub = sub
	return c, nil
}

// onFlushed takes in another node's increment.
func (c *counters) onFlushed(m *nats.Msg) {
	if m.Header.Get(nodeHeader) == c.e.tagText {
		return // counted at its flush
	}
	n, err := strconv.ParseInt(m.Header.Get("Nats-Incr"), 10, 64)
	esc, name, ok := counterOf(m.Subject)
	if err != nil || !ok {
		return
	}
	c.note(esc, name, n)
}

// counterOf parses a counter's subject, spool.c.<queue>.<name>.
func counterOf(subject string) (esc, name string, ok bool) {
	rest, ok := strings.CutPrefix(subject, statsPrefix)
	i := strings.LastIndexByte(rest, '.')
	if !ok || i < 0 {
		return "", "", false
	}
	return rest[:i], rest[i+1:], true
}

// note adds a flushed increment to the queue's recent tallies.
func (c *counters) note(esc, name string, n int64) {
	if name != cEnqueued && name != cSucceeded {
		return
	}
	sec := c.e.now().Unix()
	c.smu.Lock()
	defer c.smu.Unlock()
	ts := c.recent[esc]
	if len(ts) == 0 || ts[len(ts)-1].sec != sec {
		ts = append(ts, tally{sec: sec})
	}
	t := &ts[len(ts)-1]
	if name == cEnqueued {
		t.enqueued += n
	} else {
		t.succeeded += n
	}
	c.recent[esc] = ts
}

// prune drops the tallies older than the rate window.
func (c *counters) prune() {
	from := c.e.now().Add(-rateWindow).Unix()
	c.smu.Lock()
	defer c.smu.Unlock()
	for esc, ts := range c.recent {
		i := 0
		for i < len(ts) && ts[i].sec < from {
			i++
		}
		if i == len(ts) {
			delete(c.recent, esc)
		} else if i > 0 {
			c.recent[esc] = slices.Clone(ts[i:])
		}
	}
}

func (c *counters) add(esc, name string, n int64) {
	if n == 0 {
		return
	}
	c.mu.Lock()
	c.addLocked(esc, name, n)
	c.addLocked(allEsc, name, n)
	c.mu.Unlock()
}

func (c *counters) addLocked(esc, name string, n int64) {
	m := c.delta[esc]
	if m == nil {
		m = make(map[string]int64)
		c.delta[esc] = m
	}
	m[name] += n
}

// putBack returns increments whose flush failed, to be flushed again.
func (c *counters) putBack(delta map[string]map[string]int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for esc, m := range delta {
		for name, n := range m {
			c.addLocked(esc, name, n)
		}
	}
}

func (c *counters) run(stop <-chan struct{}) {
	flush := time.NewTicker(flushEvery)
	defer flush.Stop()
	defer c.sub.Unsubscribe()
	based := false
	for {
		select {
		case <-stop:
			return
		case <-flush.C:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			c.flush(ctx)
			cancel()
			c.prune()
			if !based {
				// Taken early, while the queues whose counters it adds up are all there.
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				_, err := c.baseTotals(ctx)
				cancel()
				if based = err == nil; !based {
					c.e.log.Warn("totals before cluster counters", "err", err)
				}
			}
		}
	}
}

// flush publishes the pending increments: the cluster-wide totals first, then, once they
// are stored, the queues' (see baseTotals for why in that order). On failure they are put
// back for the next flush.
func (c *counters) flush(ctx context.Context) {
	c.fmu.Lock()
	defer c.fmu.Unlock()
	c.mu.Lock()
	pending := c.delta
	c.delta = make(map[string]map[string]int64)
	c.mu.Unlock()
	all := map[string]map[string]int64{allEsc: pending[allEsc]}
	delete(pending, allEsc)
	if failed := c.publish(ctx, all); len(failed) > 0 {
		// Not one queue's increment before its total's is stored.
		c.putBack(failed)
		c.putBack(pending)
		return
	}
	c.putBack(c.publish(ctx, pending))
}

// publish adds increments (escaped queue, or allEsc, -> counter -> n) to their counters
// and returns those that failed.
func (c *counters) publish(ctx context.Context, incs map[string]map[string]int64) (failed map[string]map[string]int64) {
	type inflight struct {
		esc, name string
		n         int64
		fut       jetstream.PubAckFuture
	}
	fail := func(esc, name string, n int64) {
		if failed == nil {
			failed = make(map[string]map[string]int64)
		}
		if failed[esc] == nil {
			failed[esc] = make(map[string]int64)
		}
		failed[esc][name] += n
	}
	var sent []inflight
	for esc, m := range incs {
		for name, n := range m {
			if n == 0 {
				continue
			}
			msg := nats.NewMsg(statsPrefix + esc + "." + name)
			msg.Header.Set("Nats-Incr", strconv.FormatInt(n, 10))
			msg.Header.Set(nodeHeader, c.e.tagText)
			fut, err := c.e.st.Publish(msg)
			if err != nil {
				fail(esc, name, n)
				continue
			}
			sent = append(sent, inflight{esc, name, n, fut})
		}
	}
	for _, s := range sent {
		select {
		case <-s.fut.Ok():
			c.note(s.esc, s.name, s.n)
		case err := <-s.fut.Err():
			c.e.log.Warn("flush counter", "counter", s.name, "err", err)
			fail(s.esc, s.name, s.n)
		case <-ctx.Done():
			fail(s.esc, s.name, s.n)
		}
	}
	return failed
}

// totals reads queues' cluster-wide counters (by escaped name, or allEsc), with this
// node's increments not flushed yet: a few requests for any number of queues.
func (c *counters) totals(ctx context.Context, escs ...string) (map[string]map[string]int64, error) {
	c.fmu.Lock()
	defer c.fmu.Unlock()
	out, err := c.stored(ctx, escs, 0)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	for _, esc := range escs {
		for name, n := range c.delta[esc] {
			out[esc][name] += n
		}
	}
	c.mu.Unlock()
	return out, nil
}

// errBehind: the replica that answered a read had not stored what the read must see yet.
var errBehind = errors.New("a replica of the counters is behind: try again")

// stored reads the counters of escs as stored. With upTo > 0, as they stood at that
// sequence of the stats stream, which must be an _all increment's: each request asks for it
// too, so that an answer from a replica that has not stored it yet is told apart (and
// fails with errBehind) rather than taken for counters without increments.
func (c *counters) stored(ctx context.Context, escs []string, upTo uint64) (map[string]map[string]int64, error) {
	out := make(map[string]map[string]int64, len(escs))
	for _, esc := range escs {
		out[esc] = make(map[string]int64)
	}
	// A queue has at most 7 counters: 128 queues a request stay within a batch's cap.
	for chunk := range slices.Chunk(escs, 128) {
		filters := make([]string, len(chunk), len(chunk)+1)
		for i, esc := range chunk {
			filters[i] = statsPrefix + esc + ".*"
		}
		if upTo > 0 {
			filters = append(filters, statsPrefix+allEsc+".*")
		}
		msgs, err := c.e.st.Batch(ctx, statsStream, store.Request{MultiLast: filters, UpToSeq: upTo, Batch: store.MaxBatch})
		if err != nil {
			return nil, err
		}
		if upTo > 0 && !slices.ContainsFunc(msgs, func(m store.Msg) bool { return m.Seq == upTo }) {
			return nil, errBehind
		}
		for _, m := range msgs {
			esc, name, ok := counterOf(m.Subject)
			if n, err := counterValue(m.Data); ok && err == nil && out[esc] != nil && (upTo == 0 || esc != allEsc) {
				out[esc][name] += n
			}
		}
	}
	return out, nil
}

// minRateSpan is the shortest span a rate is taken over: a burst read a moment after it
// would otherwise show as thousands of jobs a second.
const minRateSpan = time.Second

// rates returns the enqueue and completion rates in jobs/s over the last minute, or since
// the queue was created if that is sooner, with this node's increments not flushed yet.
func (c *counters) rates(esc string, created time.Time) (enq, done float64) {
	now := c.e.now()
	from := now.Add(-rateWindow)
	if created.After(from) {
		from = created
	}
	var en, sn int64
	c.smu.Lock()
	for _, t := range c.recent[esc] {
		// A tally's second counts if it ends after from: a burst in a queue's first
		// second is in the queue's rate.
		if t.sec+1 > from.Unix() {
			en, sn = en+t.enqueued, sn+t.succeeded
		}
	}
	c.smu.Unlock()
	c.mu.Lock()
	en, sn = en+c.delta[esc][cEnqueued], sn+c.delta[esc][cSucceeded]
	c.mu.Unlock()
	dt := max(now.Sub(from), minRateSpan).Seconds()
	return float64(en) / dt, float64(sn) / dt
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
