package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/spoolq/spool/engine/internal/store"
)

// waitUntil retries f until it returns nil, failing the test with its last error after 20s.
func waitUntil(t *testing.T, f func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sumQueues adds up the queues' own statistics, as a caller without Summarize would.
func sumQueues(ctx context.Context, e *Engine, names ...string) (*Summary, error) {
	var s Summary
	for _, n := range names {
		qi, err := e.Queue(ctx, n)
		if err != nil {
			return nil, err
		}
		d, err := e.QueueDetailCounts(ctx, n, 1024)
		if err != nil {
			return nil, err
		}
		st := qi.Stats
		s.Queues++
		if qi.Paused {
			s.Paused++
		}
		s.Ready, s.Reserved, s.Delayed, s.Buried = s.Ready+st.Ready, s.Reserved+st.Reserved, s.Delayed+st.Delayed, s.Buried+st.Buried
		s.Urgent, s.ReservedByID = s.Urgent+d.Urgent, s.ReservedByID+d.ReservedByID
		s.Enqueued, s.Reserves, s.Succeeded, s.Failed = s.Enqueued+st.Enqueued, s.Reserves+st.Reserves, s.Succeeded+st.Succeeded, s.Failed+st.Failed
		s.BuriedTot, s.Cancelled, s.Timeouts = s.BuriedTot+st.BuriedTot, s.Cancelled+st.Cancelled, s.Timeouts+st.Timeouts
	}
	return &s, nil
}

// The summary's counts are those of the queues added up, in every state and in every way a
// job is counted: a level with and without its consumer, reserved, reserved by id, delayed,
// buried, paused; for all queues and for some.
func TestSummaryAgreesWithQueues(t *testing.T) {
	t.Parallel()
	e, _, ctx := internalEngine(t, Config{ConsumerIdle: time.Hour})
	enq := func(q string, pri uint32, n int, delay time.Duration) []*Job {
		var out []*Job
		for range n {
			out = append(out, enqueueOne(t, e, ctx, EnqueueRequest{Queue: q, Priority: pri, Delay: delay}))
		}
		return out
	}
	// a: levels with consumers, two jobs reserved.
	enq("a", 10, 3, 0)
	enq("a", 2000, 2, 0)
	if r, err := e.Reserve(ctx, ReserveRequest{Queues: []string{"a"}, Max: 2}); err != nil || len(r.Jobs) != 2 {
		t.Fatalf("reserve a: %+v %v", r, err)
	}
	// b: delayed, buried, and a job reserved by id.
	enq("b", 0, 2, time.Hour)
	enq("b", 5, 1, 0)
	r, err := e.Reserve(ctx, ReserveRequest{Queues: []string{"b"}})
	if err != nil || len(r.Jobs) != 1 {
		t.Fatalf("reserve b: %+v %v", r, err)
	}
	if _, err := e.Bury(ctx, r.Jobs[0].Job.ID, r.Jobs[0].Token, BuryRequest{}); err != nil {
		t.Fatal(err)
	}
	byID := enq("b", 7, 2, 0)
	if _, err := e.ReserveByID(ctx, byID[0].ID, "w"); err != nil {
		t.Fatal(err)
	}
	// c: never reserved from, so its level has no consumer; paused.
	enq("c", 3, 2, 0)
	if _, err := e.Pause(ctx, "c", time.Time{}); err != nil {
		t.Fatal(err)
	}
	// old: a queue made before shards, in a stream of its own: one ready, one reserved, one
	// delayed.
	legacyQueue(t, e, ctx, "old")
	enq("old", 2000, 2, 0)
	enq("old", 0, 1, time.Hour)
	if r, err := e.Reserve(ctx, ReserveRequest{Queues: []string{"old"}}); err != nil || len(r.Jobs) != 1 {
		t.Fatalf("reserve old: %+v %v", r, err)
	}

	want := Summary{Queues: 4, Paused: 1, Ready: 3 + 1 + 2 + 1, Urgent: 1 + 1 + 2, Reserved: 2 + 1, ReservedByID: 1, Delayed: 2 + 1, Buried: 1,
		Enqueued: 12 + 3, Reserves: 4 + 1, BuriedTot: 1}
	waitUntil(t, func() error {
		got, err := e.Summarize(ctx, SummaryRequest{UrgentBelow: 1024})
		if err != nil {
			return err
		}
		sum, err := sumQueues(ctx, e, "a", "b", "c", "old")
		if err != nil {
			return err
		}
		got.EnqueueRate, got.CompleteRate = 0, 0
		if *got != want || *sum != want {
			return fmt.Errorf("summary %+v\nqueues  %+v\nwant    %+v", *got, *sum, want)
		}
		return nil
	})
	// Some queues: those only.
	got, err := e.Summarize(ctx, SummaryRequest{UrgentBelow: 1024, Keep: func(n string) bool { return n != "a" }})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := sumQueues(ctx, e, "b", "c", "old")
	if err != nil {
		t.Fatal(err)
	}
	if got.EnqueueRate <= 0 {
		t.Errorf("enqueue rate %v, want > 0", got.EnqueueRate)
	}
	got.EnqueueRate, got.CompleteRate = 0, 0
	if *got != *sum {
		t.Errorf("summary of b, c and old %+v\nqueues %+v", *got, *sum)
	}
}

// The totals of all queues keep a deleted queue's jobs: they are the cluster's.
func TestSummaryTotalsKeepDeletedQueues(t *testing.T) {
	t.Parallel()
	e, _, ctx := internalEngine(t)
	for range 3 {
		enqueueOne(t, e, ctx, EnqueueRequest{Queue: "gone"})
	}
	enqueueOne(t, e, ctx, EnqueueRequest{Queue: "kept"})
	if err := e.DeleteQueue(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() error {
		s, err := e.Summarize(ctx, SummaryRequest{})
		if err != nil {
			return err
		}
		if s.Queues != 1 || s.Enqueued != 4 || s.Ready != 1 {
			return fmt.Errorf("summary %+v, want 1 queue, 4 enqueued, 1 ready", *s)
		}
		return nil
	})
	kept, err := e.Summarize(ctx, SummaryRequest{Keep: func(n string) bool { return true }})
	if err != nil {
		t.Fatal(err)
	}
	if kept.Enqueued != 1 {
		t.Errorf("queues' own totals: %d enqueued, want 1", kept.Enqueued)
	}
}

// Counts from before the cluster-wide counters (an earlier version's) are in the totals'
// base, and only those: increments stored after the first cluster-wide one are not
// counted twice.
func TestSummaryTotalsBase(t *testing.T) {
	t.Parallel()
	e, _, ctx := internalEngine(t)
	// The engine takes its base at its first flush: wait for it, then start over as a
	// cluster whose counters came before this version would.
	waitUntil(t, func() error { _, err := e.st.Last(ctx, jobsStream, totalsSubject); return err })
	purge := func(stream, subject string) {
		t.Helper()
		s, err := e.js.Stream(ctx, stream)
		if err == nil {
			err = s.Purge(ctx, jetstream.WithPurgeSubject(subject))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	purge(jobsStream, totalsSubject)
	purge(statsStream, statsPrefix+allEsc+".>")
	if _, err := e.PutQueue(ctx, "old", QueueSettings{}); err != nil {
		t.Fatal(err)
	}
	old := nats.NewMsg(statsPrefix + e.lookupQueue("old").names.esc + "." + cEnqueued)
	old.Header.Set("Nats-Incr", "5")
	if _, err := e.st.PublishSync(ctx, old); err != nil {
		t.Fatal(err)
	}
	e.stats.bmu.Lock()
	e.stats.base = nil
	e.stats.bmu.Unlock()
	// Two more, counted by this version in the queue's counter and in the cluster's.
	enqueueOne(t, e, ctx, EnqueueRequest{Queue: "old"})
	enqueueOne(t, e, ctx, EnqueueRequest{Queue: "old"})
	waitUntil(t, func() error {
		s, err := e.stats.totals(ctx, e.lookupQueue("old").names.esc)
		if err != nil {
			return err
		}
		if n := s[e.lookupQueue("old").names.esc][cEnqueued]; n != 7 {
			return fmt.Errorf("queue counter %d, want 7", n)
		}
		return nil
	})
	e.stats.flush(ctx) // the base is taken from what is stored
	s, err := e.Summarize(ctx, SummaryRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Enqueued != 7 {
		t.Errorf("all queues: %d enqueued, want 7 (5 before the cluster's counters, 2 after)", s.Enqueued)
	}
	stored, err := e.st.Last(ctx, jobsStream, totalsSubject)
	if err != nil || !strings.Contains(string(stored.Data), `"enqueued":5`) {
		t.Fatalf("stored base %+v, %v; want enqueued 5", stored, err)
	}
	// Taken once: a second node's try loses to the stored one.
	again, err := e.st.PublishSync(ctx, &nats.Msg{Subject: totalsSubject, Data: []byte(`{}`)}, jetstream.WithExpectLastSequencePerSubject(0))
	if !store.CASLost(err) {
		t.Errorf("a second base was stored: %+v %v", again, err)
	}
	// Another node reads the stored base rather than taking its own.
	e.stats.bmu.Lock()
	e.stats.base = nil
	e.stats.bmu.Unlock()
	if base, err := e.stats.baseTotals(ctx); err != nil || base[cEnqueued] != 5 {
		t.Errorf("base read back %v, %v", base, err)
	}
}

// In a shard whose consumers mostly count nothing (levels drained a moment ago), the
// summary asks the few that count instead of listing them all, with the same result.
func TestSummaryAsksWhenFewConsumersCount(t *testing.T) {
	t.Parallel()
	e, _, ctx := internalEngine(t, Config{ConsumerIdle: time.Hour})
	shard := shardOf(escapeName("busy"))
	var names []string
	for i := 0; len(names) < 4*3+1; i++ {
		if n := fmt.Sprint("idle", i); shardOf(escapeName(n)) == shard {
			names = append(names, n)
		}
	}
	for _, n := range names {
		j := enqueueOne(t, e, ctx, EnqueueRequest{Queue: n})
		r, err := e.Reserve(ctx, ReserveRequest{Queues: []string{n}})
		if err != nil || len(r.Jobs) != 1 {
			t.Fatalf("reserve %s: %+v %v", n, r, err)
		}
		if _, err := e.Ack(ctx, j.ID, r.Jobs[0].Token, nil); err != nil {
			t.Fatal(err)
		}
	}
	// One level holding jobs, one of them reserved, and a delayed job: 3 consumers count,
	// 13 more do not.
	for range 3 {
		enqueueOne(t, e, ctx, EnqueueRequest{Queue: "busy", Priority: 9})
	}
	enqueueOne(t, e, ctx, EnqueueRequest{Queue: "busy", Delay: time.Hour})
	if r, err := e.Reserve(ctx, ReserveRequest{Queues: []string{"busy"}}); err != nil || len(r.Jobs) != 1 {
		t.Fatalf("reserve busy: %+v %v", r, err)
	}
	all := append([]string{"busy"}, names...)
	// The two ways of reading the consumers agree, and Summarize takes the one that asks.
	qs := map[string]*queue{}
	held := map[level]int64{}
	var counted []counterOfQueue
	for _, n := range all {
		q := e.lookupQueue(n)
		qs[q.names.esc] = q
	}
	busy := e.lookupQueue("busy")
	held[level{busy.names.esc, 9}] = 3
	counted = append(counted, counterOfQueue{busy, StateDelayed})
	waitUntil(t, func() error {
		s, err := e.js.Stream(ctx, busy.names.stream())
		if err != nil {
			return err
		}
		listed, err := e.listShardConsumers(ctx, s, busy.names.tok, qs, held, counted)
		if err != nil {
			return err
		}
		asked := newShardCounts()
		if err := e.askShardConsumers(ctx, asked, qs, held, counted); err != nil {
			return err
		}
		wantLevels := map[level]levelCount{{busy.names.esc, 9}: {2, 1}}
		for name, c := range map[string]*shardCounts{"listed": listed, "asked": asked} {
			if !maps.Equal(c.levels, wantLevels) || c.delayed != 1 || c.buried != 0 {
				return fmt.Errorf("%s: levels %v, delayed %d, buried %d; want %v, 1, 0", name, c.levels, c.delayed, c.buried, wantLevels)
			}
		}
		if n := s.CachedInfo().State.Consumers; n <= listPerRequest*(len(held)+len(counted)) {
			return fmt.Errorf("the shard has %d consumers: Summarize would list them", n)
		}
		return nil
	})
	waitUntil(t, func() error {
		got, err := e.Summarize(ctx, SummaryRequest{UrgentBelow: 1024})
		if err != nil {
			return err
		}
		sum, err := sumQueues(ctx, e, all...)
		if err != nil {
			return err
		}
		got.EnqueueRate, got.CompleteRate = 0, 0
		want := Summary{Queues: len(all), Ready: 2, Urgent: 2, Reserved: 1, Delayed: 1, Enqueued: int64(len(names) + 4),
			Reserves: int64(len(names) + 1), Succeeded: int64(len(names))}
		if *got != want || *sum != want {
			return fmt.Errorf("summary %+v\nqueues  %+v\nwant    %+v", *got, *sum, want)
		}
		return nil
	})
}

// A flush stores the cluster's totals before the queues' counters: when the former fail,
// the latter wait for the next flush, so that no queue increment is stored before its
// total's (the totals' base relies on it).
func TestFlushStoresTotalsFirst(t *testing.T) {
	t.Parallel()
	e, _, ctx := internalEngine(t)
	enqueueOne(t, e, ctx, EnqueueRequest{Queue: "f"})
	esc := e.lookupQueue("f").names.esc
	e.st.SetFaults(func(op store.Op, subject string) error {
		if op == store.OpPublish && strings.HasPrefix(subject, statsPrefix+allEsc+".") {
			return errors.New("injected failure")
		}
		return nil
	})
	e.stats.flush(ctx)
	st, err := e.stats.stored(ctx, []string{esc, allEsc}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if st[esc][cEnqueued] != 0 {
		t.Errorf("the queue's counter was stored (%d) while the total's failed", st[esc][cEnqueued])
	}
	// Counted all the same, from the increments kept for the next flush.
	if tot, err := e.stats.totals(ctx, esc); err != nil || tot[esc][cEnqueued] != 1 {
		t.Errorf("queue totals %v, %v; want 1 enqueued", tot, err)
	}
	e.st.SetFaults(nil)
	e.stats.flush(ctx)
	st, err = e.stats.stored(ctx, []string{esc, allEsc}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if st[esc][cEnqueued] != 1 || st[allEsc][cEnqueued] < 1 {
		t.Errorf("after the next flush: %v, want the queue's 1 and the total's", st)
	}
}
