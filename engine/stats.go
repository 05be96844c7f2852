package engine

import (
	"context"
	"encoding/json"
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
	flushEvery  = time.Second
	sampleEvery = 5 * time.Second
	rateWindow  = time.Minute
)

// counters batches this node's increments and adds them to the cluster-wide JetStream
// counters once a second, so statistics cost a few writes per second, not one per job.
type counters struct {
	e *Engine

	mu    sync.Mutex
	delta map[string]map[string]int64 // escaped queue -> counter -> increment

	// fmu is held by a flush and by a read of the totals, which adds this node's increments
	// not flushed yet: the node reads its own writes, and never counts one twice.
	fmu sync.Mutex

	smu     sync.Mutex
	samples map[string][]sample // escaped queue -> recent totals, oldest first
}

type sample struct {
	at                  time.Time
	enqueued, succeeded int64
}

func newCounters(e *Engine) *counters {
	return &counters{e: e, delta: make(map[string]map[string]int64), samples: make(map[string][]sample)}
}

func (c *counters) add(esc, name string, n int64) {
	if n == 0 {
		return
	}
	c.mu.Lock()
	m := c.delta[esc]
	if m == nil {
		m = make(map[string]int64)
		c.delta[esc] = m
	}
	m[name] += n
	c.mu.Unlock()
}

func (c *counters) run(stop <-chan struct{}) {
	flush := time.NewTicker(flushEvery)
	defer flush.Stop()
	samp := time.NewTicker(sampleEvery)
	defer samp.Stop()
	for {
		select {
		case <-stop:
			return
		case <-flush.C:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			c.flush(ctx)
			cancel()
		case <-samp.C:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			c.sample(ctx)
			cancel()
		}
	}
}

// flush publishes the pending increments. On failure they are put back for the next flush.
func (c *counters) flush(ctx context.Context) {
	c.fmu.Lock()
	defer c.fmu.Unlock()
	c.mu.Lock()
	pending := c.delta
	c.delta = make(map[string]map[string]int64)
	c.mu.Unlock()
	type inflight struct {
		esc, name string
		n         int64
		fut       jetstream.PubAckFuture
	}
	var sent []inflight
	for esc, m := range pending {
		for name, n := range m {
			msg := nats.NewMsg(statsPrefix + esc + "." + name)
			msg.Header.Set("Nats-Incr", strconv.FormatInt(n, 10))
			fut, err := c.e.st.Publish(msg)
			if err != nil {
				c.add(esc, name, n)
				continue
			}
			sent = append(sent, inflight{esc, name, n, fut})
		}
	}
	for _, s := range sent {
		select {
		case <-s.fut.Ok():
		case err := <-s.fut.Err():
			c.e.log.Warn("flush counter", "counter", s.name, "err", err)
			c.add(s.esc, s.name, s.n)
		case <-ctx.Done():
			c.add(s.esc, s.name, s.n)
		}
	}
}

// totals reads a queue's cluster-wide counters, with this node's increments not flushed yet.
func (c *counters) totals(ctx context.Context, esc string) (map[string]int64, error) {
	c.fmu.Lock()
	defer c.fmu.Unlock()
	msgs, err := c.e.st.Batch(ctx, statsStream, store.Request{MultiLast: []string{statsPrefix + esc + ".*"}, Batch: store.MaxBatch})
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(msgs))
	c.mu.Lock()
	for name, n := range c.delta[esc] {
		out[name] += n
	}
	c.mu.Unlock()
	for _, m := range msgs {
		var v struct {
			Val string `json:"val"`
		}
		if json.Unmarshal(m.Data, &v) != nil {
			continue
		}
		n, _ := strconv.ParseInt(v.Val, 10, 64)
		out[m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]] += n
	}
	return out, nil
}

// sample records every known queue's totals, from which rates over the last minute come.
func (c *counters) sample(ctx context.Context) {
	c.e.mu.RLock()
	escs := make([]string, 0, len(c.e.byEsc))
	for esc := range c.e.byEsc {
		escs = append(escs, esc)
	}
	c.e.mu.RUnlock()
	now := c.e.now()
	c.smu.Lock()
	for esc := range c.samples {
		if !slices.Contains(escs, esc) {
			delete(c.samples, esc) // the queue was deleted
		}
	}
	c.smu.Unlock()
	for _, esc := range escs {
		t, err := c.totals(ctx, esc)
		if err != nil {
			return
		}
		c.smu.Lock()
		s := append(c.samples[esc], sample{at: now, enqueued: t[cEnqueued], succeeded: t[cSucceeded]})
		for len(s) > 1 && now.Sub(s[0].at) > rateWindow {
			s = s[1:]
		}
		c.samples[esc] = s
		c.smu.Unlock()
	}
}

// minRateSpan is the shortest span a rate is taken over: a burst read a moment after it
// would otherwise show as thousands of jobs a second.
const minRateSpan = time.Second

// rates returns the enqueue and completion rates in jobs/s over the last minute, from its
// oldest sample to the totals t read now. A queue created within the minute counts from
// zero at its creation: its counters started there, and a burst before its first sample
// (taken every 5s) would otherwise never show.
func (c *counters) rates(esc string, created time.Time, t map[string]int64) (enq, done float64) {
	now := c.e.now()
	var from sample
	if now.Sub(created) <= rateWindow {
		from = sample{at: created}
	} else {
		c.smu.Lock()
		s := c.samples[esc]
		if len(s) > 0 {
			from = s[0]
		}
		c.smu.Unlock()
		if from.at.IsZero() || from.at.Before(created) {
			return 0, 0 // nothing sampled of this queue yet
		}
	}
	dt := max(now.Sub(from.at), minRateSpan).Seconds()
	return float64(max(t[cEnqueued]-from.enqueued, 0)) / dt, float64(max(t[cSucceeded]-from.succeeded, 0)) / dt
}
