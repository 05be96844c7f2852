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

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/spoolq/spool/engine/internal/store"
)

// forever stands in for "until resumed" in JetStream's consumer pause, which needs a time.
const forever = 100 * 365 * 24 * time.Hour

// getQueue returns the queue, reading the bucket when this node has not seen it yet.
// With create it makes the queue with the default settings.
func (e *Engine) getQueue(ctx context.Context, name string, create bool) (*queue, error) {
	return e.findQueue(ctx, name, create)
}

// queueAt returns the queue a job of priority p goes to, making it if need be with the
// default settings and p's level (one write less than adding the level after).
func (e *Engine) queueAt(ctx context.Context, name string, p uint32) (*queue, error) {
	return e.findQueue(ctx, name, true, p)
}

func (e *Engine) findQueue(ctx context.Context, name string, create bool, levels ...uint32) (*queue, error) {
	if q := e.lookupQueue(name); q != nil {
		return q, nil
	}
	if err := ValidateQueueName(name); err != nil {
		return nil, err
	}
	esc := escapeName(name)
	if create {
		q, _, err := e.makeOrFind(ctx, name, e.cfg.Defaults, levels...)
		return q, err
	}
	ent, err := e.kv.Get(ctx, esc)
	switch {
	case err == nil:
		return e.cacheEntry(ent)
	case !errors.Is(err, jetstream.ErrKeyNotFound):
		return nil, fmt.Errorf("read queue %q: %w", name, err)
	}
	return nil, ErrQueueNotFound
}

// makeOrFind makes a queue missing from this node's view with settings s, or takes the
// one another node made. This node's view holds every queue of the bucket (watchQueues) but
// those made on other nodes that its watch has not delivered yet: a queue missing from it
// is most likely new, and the create-only write of its entry tells when it is not
// (makeQueue then takes the entry made first). A read first would cost every new queue a
// round trip. made tells whether this call made the queue.
func (e *Engine) makeOrFind(ctx context.Context, name string, s QueueSettings, levels ...uint32) (q *queue, made bool, err error) {
	q, made, err = e.createQueue(ctx, name, s, levels...)
	if err == nil {
		return q, made, nil
	}
	// This node could not make the queue (the store full, too few nodes for the
	// replicas): one that exists is served all the same.
	if ent, gerr := e.kv.Get(ctx, escapeName(name)); gerr == nil {
		q, err = e.cacheEntry(ent)
		return q, false, err
	}
	return nil, false, err
}

func (e *Engine) cacheEntry(ent jetstream.KeyValueEntry) (*queue, error) {
	var cfg queueConfig
	if err := json.Unmarshal(ent.Value(), &cfg); err != nil {
		return nil, fmt.Errorf("queue entry %s: %w", ent.Key(), err)
	}
	return e.cacheQueue(cfg, ent.Revision()), nil
}

// createQueue makes the queue: its number, then its bucket entry; its place in its shard
// stream is a subject prefix and needs no write. Two nodes racing agree on the first entry.
// The last sequence on the queue's subjects before it existed is its trust mark
// (trustedAfter, shardMark).
func (e *Engine) createQueue(ctx context.Context, name string, s QueueSettings, levels ...uint32) (q *queue, made bool, err error) {
	if err := e.storeFull(); err != nil {
		return nil, false, err
	}
	rc := e.nc.Stats().Reconnects
	q, made, mark, marked, err := e.makeQueue(ctx, name, s, levels)
	if err != nil {
		return nil, false, err
	}
	if marked && q.names.shared {
		// (A queue that another node made first in a stream of its own, an older
		// version's layout, takes its mark at its first reservation.)
		q.trust.CompareAndSwap(nil, &trustMark{mark, rc})
	}
	return q, made, nil
}

// makeQueue makes the queue's number and entry (made), or takes the entry another node
// made first. marked tells whether mark is the queue's trust mark: a replicated queue
// trusts no delivery (trustedAfter) and needs none.
func (e *Engine) makeQueue(ctx context.Context, name string, s QueueSettings, levels []uint32) (q *queue, made bool, mark uint64, marked bool, err error) {
	k, set := shardOf(escapeName(name)), e.shardSet(s.Replicas)
	n := shardNames(name, k, set)
	if err := e.ensureShard(ctx, k, set); err != nil {
		return nil, false, 0, false, fmt.Errorf("create queue %q: %w", name, err)
	}
	cfg := queueConfig{
		Name: name, LeaseMS: s.Lease.Milliseconds(), MaxAttempts: s.MaxAttempts,
		BackoffMS: s.BackoffBase.Milliseconds(), BackoffMax: s.BackoffMax.Milliseconds(),
		Created: e.now().UnixNano(), Shard: k + 1, Set: set, Levels: levels,
	}
	if s.Events != nil {
		cfg.NoEvents = !*s.Events
	}
	if s.Retention != nil {
		cfg.RetentionS = new(int64(*s.Retention / time.Second))
	}
	if e.replicasOf(cfg) == 1 {
		// The queue's trust mark, taken before the queue exists.
		if mark, err = e.shardMark(ctx, n); err != nil {
			return nil, false, 0, false, fmt.Errorf("create queue %q: %w", name, err)
		}
		marked = true
	}
	if cfg.Num, err = e.nextQueueNum(ctx); err != nil {
		return nil, false, 0, false, fmt.Errorf("create queue %q: %w", name, err)
	}
	num := cfg.Num
	if num != 0 {
		// Before the queue is visible, so that a node whose watch lags finds the queue
		// of a derived id all the same.
		if _, err := e.kv.Create(ctx, numKey(num), []byte(name)); err != nil {
			return nil, false, 0, false, fmt.Errorf("create queue %q: number: %w", name, err)
		}
	}
	val, _ := json.Marshal(cfg)
	rev, err := e.kv.Create(ctx, n.esc, val)
	if errors.Is(err, jetstream.ErrKeyExists) {
		if num != 0 {
			e.kv.Delete(ctx, numKey(num)) // another node made the queue: its number stands
		}
		ent, err := e.getKnown(ctx, n.esc)
		if err != nil {
			return nil, false, 0, false, fmt.Errorf("read queue %q: %w", name, err)
		}
		q, err := e.cacheEntry(ent)
		if err != nil {
			return nil, false, 0, false, err
		}
		// The mark holds for the queue made first only if it is in the same place.
		cfg, _ := q.config()
		return q, false, mark, marked && q.names == n && e.replicasOf(cfg) == 1, nil
	}
	if err != nil {
		return nil, false, 0, false, fmt.Errorf("create queue %q: %w", name, err)
	}
	e.log.Info("queue created", "queue", name)
	q = e.cacheQueue(cfg, rev)
	q.madeHere.Store(true)
	return q, true, mark, marked, nil
}

// numKeyPrefix starts the bucket keys that map a queue number to its queue's name. No
// escaped queue name starts with it (an escape is '_' and two hex digits).
const numKeyPrefix = "_n"

func numKey(num uint32) string { return numKeyPrefix + strconv.FormatUint(uint64(num), 10) }

// queueOfNum returns the queue numbered num: from the local view, else (a queue created on
// another node that this node's watch has not delivered yet) through the bucket.
func (e *Engine) queueOfNum(ctx context.Context, num uint32) (*queue, error) {
	if q := e.queueByNum(num); q != nil {
		if cfg, _ := q.config(); cfg.Num == num {
			return q, nil
		}
	}
	ent, err := e.kv.Get(ctx, numKey(num))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, ErrQueueNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read queue number: %w", err)
	}
	q, err := e.getQueue(ctx, string(ent.Value()), false)
	if err != nil {
		return nil, err
	}
	if cfg, _ := q.config(); cfg.Num != num {
		return nil, ErrQueueNotFound // deleted and made again since
	}
	return q, nil
}

// queueNumSubject holds the last queue number given out, in the records stream.
const queueNumSubject = jobsPrefix + "queues"

// queueNumMax is the highest queue number.
const queueNumMax = 1<<32 - 1

// numBlock is how many queue or chunk numbers a node takes at once: each counter is a
// compare-and-set (two round trips) that nodes creating queues at once contend for, and a
// new queue takes a number of each. Numbers a node took and did not use when it stops are
// never used (2^32 of each).
const numBlock = 64

// numbers is a block of a counter's numbers this node took and has not used yet.
type numbers struct {
	subject string // the counter, in the records stream
	max     uint64

	mu        sync.Mutex
	next, end uint64 // next to give; end: past the block
}

// take gives the next number of the counter, unique in the cluster. It returns 0 once
// numbers run out.
func (b *numbers) take(ctx context.Context, e *Engine) (uint64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.next == b.end {
		first, last, err := e.takeCounter(ctx, b.subject, numBlock, b.max)
		if err != nil || first == 0 {
			return 0, err
		}
		b.next, b.end = first, last+1
	}
	b.next++
	return b.next - 1, nil
}

// nextQueueNum takes the next queue number, so that two nodes creating queues at once get
// different numbers. It returns 0 once numbers run out: the queue then works with generated
// job ids only.
func (e *Engine) nextQueueNum(ctx context.Context) (uint32, error) {
	n, err := e.qnums.take(ctx, e)
	if err != nil {
		return 0, fmt.Errorf("take queue number: %w", err)
	}
	return uint32(n), nil
}

// updateConfig applies fn to the queue's bucket entry with a compare-and-set, retrying on
// concurrent updates from other nodes.
func (e *Engine) updateConfig(ctx context.Context, q *queue, fn func(*queueConfig)) (queueConfig, error) {
	for try := range 20 {
		ent, err := e.getKnown(ctx, q.names.esc)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return queueConfig{}, ErrQueueNotFound
		}
		if err != nil {
			return queueConfig{}, fmt.Errorf("read queue: %w", err)
		}
		var cfg queueConfig
		if err := json.Unmarshal(ent.Value(), &cfg); err != nil {
			return queueConfig{}, fmt.Errorf("queue entry: %w", err)
		}
		fn(&cfg)
		val, _ := json.Marshal(cfg)
		rev, err := e.kv.Update(ctx, q.names.esc, val, ent.Revision())
		if err == nil {
			e.cacheQueue(cfg, rev)
			return cfg, nil
		}
		if !casLost(err) && !errors.Is(err, jetstream.ErrKeyExists) {
			return queueConfig{}, fmt.Errorf("update queue: %w", err)
		}
		if err := casBackoff(ctx, try); err != nil {
			return queueConfig{}, err
		}
	}
	return queueConfig{}, errors.New("update queue: too much contention")
}

// getKnown reads a bucket key known to exist (made here, or refused as made by another node).
// In a cluster a read may come from a replica a moment behind the key's creation (Direct
// Get): a miss is read again, for up to half a second, before it stands.
func (e *Engine) getKnown(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	return readKnown(ctx, jetstream.ErrKeyNotFound, func() (jetstream.KeyValueEntry, error) { return e.kv.Get(ctx, key) })
}

// readKnown calls read, again while it fails with missing, for up to half a second: a read
// of something known to exist, which a replica a moment behind its write may not have yet.
func readKnown[T any](ctx context.Context, missing error, read func() (T, error)) (T, error) {
	for try := 0; ; try++ {
		v, err := read()
		if !errors.Is(err, missing) || try == 10 {
			return v, err
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			var zero T
			return zero, err
		}
	}
}

// bandConsumerConfig is the configuration of level b's consumer. In a shard it keeps its
// state in memory: a level's consumer is made again by the next reservation whenever it is
// missing (idle sweep), so one lost with a restart costs nothing but the early offer of its
// pending deliveries, which reservation handles as any offer before a lease's end (a
// written lease is kept by its holder; an unwritten one died with its node). On disk, each
// consumer cost a state file written at creation and at every stop (a SIGTERM of a node
// with 5,000 consumers took 54 s), and one goroutine more.
func (e *Engine) bandConsumerConfig(q *queue, cfg queueConfig, b int) jetstream.ConsumerConfig {
	cc := jetstream.ConsumerConfig{
		Durable:       q.names.consumer(b),
		FilterSubject: q.names.ready(b),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       time.Duration(cfg.LeaseMS) * time.Millisecond,
		MaxDeliver:    -1,
		MaxAckPending: -1,
		MaxWaiting:    4096,
		MemoryStorage: q.names.shared,
	}
	if cfg.pausedAt(e.now()) {
		until := e.now().Add(forever)
		if cfg.PausedUntil != 0 {
			until = time.Unix(0, cfg.PausedUntil)
		}
		cc.PauseUntil = &until
	}
	return cc
}

// putConsumer creates or updates (update: only if it exists) a consumer of a stream. One
// that an earlier version kept on disk keeps its storage, which JetStream cannot change (a
// level's is removed by the idle sweep in time, and the level's next one is in memory).
func (e *Engine) putConsumer(ctx context.Context, stream string, cc jetstream.ConsumerConfig, update bool) error {
	put := func() error {
		var err error
		if update {
			_, err = e.js.UpdateConsumer(ctx, stream, cc)
		} else {
			_, err = e.ensureConsumer(ctx, stream, cc)
		}
		return err
	}
	err := put()
	if err != nil && cc.MemoryStorage && strings.Contains(err.Error(), "storage type can not be updated") {
		cc.MemoryStorage = false
		err = put()
	}
	return err
}

// levelFor returns the ready level of priority p in q, making it (its place in the queue's
// entry) if p is new and the queue has fewer than maxLevels.
func (e *Engine) levelFor(ctx context.Context, q *queue, p uint32) (int, error) {
	cfg, _ := q.config()
	if l, ok := cfg.level(p); ok {
		return l, nil
	}
	// A level in a shard gets its consumer from the first reservation that pulls from it
	// (pull): jobs enqueued to a queue no one reserves from cost none.
	if !q.names.shared {
		if _, err := e.ensureConsumer(ctx, q.names.stream(), e.bandConsumerConfig(q, cfg, int(p))); err != nil {
			return 0, fmt.Errorf("create priority %d consumer: %w", p, err)
		}
	}
	cfg, err := e.updateConfig(ctx, q, func(c *queueConfig) {
		if _, ok := c.level(p); !ok {
			c.Levels = append(c.Levels, p)
			slices.Sort(c.Levels)
		}
	})
	if err != nil {
		return 0, err
	}
	l, _ := cfg.level(p)
	return l, nil
}

// level returns the ready level of priority p: p itself if it has one, or else, once the
// queue has maxLevels, the nearest lower level (the lowest when none is lower). ok is false
// when p needs a level of its own, not made yet.
func (c *queueConfig) level(p uint32) (l int, ok bool) {
	i, found := slices.BinarySearch(c.Levels, p)
	switch {
	case found:
		return int(p), true
	case len(c.Levels) < maxLevels:
		return 0, false
	case i == 0:
		return int(c.Levels[0]), true
	default:
		return int(c.Levels[i-1]), true
	}
}

// levels are the queue's ready levels, most urgent first.
func (c *queueConfig) levels() []int {
	out := make([]int, len(c.Levels))
	for i, p := range c.Levels {
		out[i] = int(p)
	}
	return out
}

// ValidateSettings checks queue settings; zero fields mean "unchanged" and pass.
func ValidateSettings(s QueueSettings) error {
	if s.Lease != 0 && (s.Lease < MinLease || s.Lease > MaxLease) {
		return invalid("lease", "must be between %s and %s", MinLease, MaxLease)
	}
	if s.MaxAttempts < 0 || s.MaxAttempts > MaxMaxAttempts {
		return invalid("max_attempts", "must be between 1 and %d", MaxMaxAttempts)
	}
	if s.BackoffBase < 0 || s.BackoffBase > MaxLease || s.BackoffBase%time.Millisecond != 0 {
		return invalid("backoff_base", "must be a whole number of milliseconds between 1ms and %s", MaxLease)
	}
	if s.BackoffMax < 0 || s.BackoffMax > 30*24*time.Hour || s.BackoffMax%time.Millisecond != 0 {
		return invalid("backoff_max", "must be a whole number of milliseconds between 1ms and 720h")
	}
	if s.Lease%time.Millisecond != 0 {
		return invalid("lease", "must be a whole number of milliseconds")
	}
	if s.BackoffBase != 0 && s.BackoffMax != 0 && s.BackoffMax < s.BackoffBase {
		return invalid("backoff_max", "must not be less than backoff_base")
	}
	if r := s.Retention; r != nil && (*r < 0 || *r > MaxRetention || *r%time.Second != 0) {
		return invalid("retention", "must be whole seconds between 0 (keep none) and %s", MaxRetention)
	}
	switch s.Replicas {
	case 0, 1, 3, 5: // an even number tolerates no more lost nodes than the odd one below
	default:
		return invalid("replicas", "must be 1, 3 or 5")
	}
	return nil
}

// PutQueue creates a queue or updates the non-zero settings of an existing one.
func (e *Engine) PutQueue(ctx context.Context, name string, s QueueSettings) (*QueueInfo, error) {
	if err := ValidateSettings(s); err != nil {
		return nil, err
	}
	q := e.lookupQueue(name)
	if q == nil {
		if err := ValidateQueueName(name); err != nil {
			return nil, err
		}
		// A new queue is made with its settings in its first entry: no update after.
		d := e.cfg.Defaults
		if s.Lease != 0 {
			d.Lease = s.Lease
		}
		if s.MaxAttempts != 0 {
			d.MaxAttempts = s.MaxAttempts
		}
		if s.BackoffBase != 0 {
			d.BackoffBase = s.BackoffBase
		}
		if s.BackoffMax != 0 {
			d.BackoffMax = s.BackoffMax
		}
		if s.Replicas != 0 {
			d.Replicas = s.Replicas
		}
		if s.Events != nil {
			d.Events = s.Events
		}
		if s.Retention != nil {
			d.Retention = s.Retention
		}
		if err := backoffConflict(d.BackoffBase, d.BackoffMax, s); err != nil {
			return nil, err // a setting given contradicts a default the queue would take
		}
		var made bool
		var err error
		if q, made, err = e.makeOrFind(ctx, name, d); err != nil {
			return nil, err
		}
		if made {
			return e.Queue(ctx, name)
		}
	}
	old, _ := q.config()
	// (Also when another node made the queue first, with other replicas.)
	if have := e.replicasOf(old); s.Replicas != 0 && s.Replicas != have {
		return nil, &ReplicasConflictError{Queue: name, Have: have, Want: s.Replicas}
	}
	var bad error
	cfg, err := e.updateConfig(ctx, q, func(c *queueConfig) {
		n := *c
		if s.Lease != 0 {
			n.LeaseMS = s.Lease.Milliseconds()
		}
		if s.MaxAttempts != 0 {
			n.MaxAttempts = s.MaxAttempts
		}
		if s.BackoffBase != 0 {
			n.BackoffMS = s.BackoffBase.Milliseconds()
		}
		if s.BackoffMax != 0 {
			n.BackoffMax = s.BackoffMax.Milliseconds()
		}
		if s.Events != nil {
			n.NoEvents = !*s.Events
		}
		if s.Retention != nil {
			n.RetentionS = new(int64(*s.Retention / time.Second))
		}
		// The queue's other setting may contradict this update: the entry then stays
		// as is.
		if bad = backoffConflict(time.Duration(n.BackoffMS)*time.Millisecond, time.Duration(n.BackoffMax)*time.Millisecond, s); bad == nil {
			*c = n
		}
	})
	if err == nil {
		err = bad
	}
	if err != nil {
		return nil, err
	}
	if cfg.LeaseMS != old.LeaseMS {
		// The default lease is the band consumers' ack wait.
		for _, b := range cfg.levels() {
			var err error
			if q.names.shared {
				// Only those there: an idle level's gets the lease when made again.
				err = e.putConsumer(ctx, q.names.stream(), e.bandConsumerConfig(q, cfg, b), true)
				if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrConsumerDoesNotExist) {
					err = nil
				}
			} else {
				_, err = e.ensureConsumer(ctx, q.names.stream(), e.bandConsumerConfig(q, cfg, b))
			}
			if err != nil {
				return nil, fmt.Errorf("update band %d consumer: %w", b, err)
			}
		}
	}
	return e.Queue(ctx, name)
}

// backoffConflict reports backoff settings of a queue (base and max, with the update s
// applied) that contradict each other, naming the field that s set.
func backoffConflict(base, max time.Duration, s QueueSettings) error {
	switch {
	case max >= base:
		return nil
	case s.BackoffMax != 0:
		return invalid("backoff_max", "must not be less than backoff_base (%s)", base)
	default:
		return invalid("backoff_base", "must not be more than backoff_max (%s)", max)
	}
}

// Pause stops the queue's dispatch until Resume, or until the given time when it is not zero.
// Enqueues are still accepted.
func (e *Engine) Pause(ctx context.Context, name string, until time.Time) (*QueueInfo, error) {
	q, err := e.getQueue(ctx, name, false)
	if err != nil {
		return nil, err
	}
	if err := e.pause(ctx, q, until); err != nil {
		return nil, err
	}
	if until.IsZero() {
		e.log.Info("queue paused until resumed", "queue", name)
	} else {
		e.log.Info("queue paused", "queue", name, "until", until)
	}
	return e.Queue(ctx, name)
}

// pause marks the queue paused and pauses its band consumers, until the given time or, when
// it is zero, until resumed.
func (e *Engine) pause(ctx context.Context, q *queue, until time.Time) error {
	cfg, err := e.updateConfig(ctx, q, func(c *queueConfig) {
		c.Paused = true
		c.PausedUntil = 0
		if !until.IsZero() {
			c.PausedUntil = until.UnixNano()
		}
	})
	if err != nil {
		return err
	}
	pu := until
	if pu.IsZero() {
		pu = e.now().Add(forever)
	}
	for _, b := range cfg.levels() {
		// (A level without its consumer, idle, gets it made paused: bandConsumerConfig.)
		if _, err := e.js.PauseConsumer(ctx, q.names.stream(), q.names.consumer(b), pu); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return fmt.Errorf("pause band %d: %w", b, err)
		}
	}
	return nil
}

// Resume restarts a paused queue's dispatch.
func (e *Engine) Resume(ctx context.Context, name string) (*QueueInfo, error) {
	q, err := e.getQueue(ctx, name, false)
	if err != nil {
		return nil, err
	}
	cfg, err := e.updateConfig(ctx, q, func(c *queueConfig) { c.Paused, c.PausedUntil = false, 0 })
	if err != nil {
		return nil, err
	}
	for _, b := range cfg.levels() {
		if _, err := e.js.ResumeConsumer(ctx, q.names.stream(), q.names.consumer(b)); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil, fmt.Errorf("resume band %d: %w", b, err)
		}
	}
	for _, b := range cfg.levels() {
		e.notify(q, b, 0, 0)
	}
	e.log.Info("queue resumed", "queue", name)
	return e.Queue(ctx, name)
}

// QueueNames lists the queues known to this node, sorted.
func (e *Engine) QueueNames() []string {
	e.mu.RLock()
	names := make([]string, 0, len(e.queues))
	for n := range e.queues {
		names = append(names, n)
	}
	e.mu.RUnlock()
	slices.Sort(names)
	return names
}

// Queues returns every queue with its statistics, sorted by name.
func (e *Engine) Queues(ctx context.Context) ([]*QueueInfo, error) {
	return e.queueInfos(ctx, e.QueueNames())
}

// QueuesNamed returns the named queues that exist, in the order given, with their statistics:
// their counters read for all of them at once.
func (e *Engine) QueuesNamed(ctx context.Context, names []string) ([]*QueueInfo, error) {
	return e.queueInfos(ctx, names)
}

// MaxQueuePage is the most queues QueuesPage returns at once.
const MaxQueuePage = 1000

// QueuesPage returns up to limit queues (1 to MaxQueuePage) whose names sort after after,
// with their statistics, and the name to pass as after for the next page ("" when this is
// the last). Reading a queue's statistics costs JetStream requests: a page bounds them
// however many queues there are.
func (e *Engine) QueuesPage(ctx context.Context, after string, limit int) ([]*QueueInfo, string, error) {
	return e.QueuesPageOf(ctx, after, limit, QueueFilter{})
}

// QueueFilter selects the queues of a listing; the zero value selects every queue. It is
// applied to this node's view of the queues (names and settings in memory): only the
// queues of the page cost JetStream requests.
type QueueFilter struct {
	// Prefix keeps the names that start with it: a start of a valid queue name, or "".
	Prefix string
	// Paused keeps the queues paused now only.
	Paused bool
	// Keep, when set, keeps the names it accepts: a caller allowed to see some queues only
	// pages through those, and learns no other name.
	Keep func(name string) bool
}

// ValidateQueuePrefix checks a prefix of queue names as QueueFilter takes it: "" (every
// name) or a string that ValidateQueueName accepts.
func ValidateQueuePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	err := ValidateQueueName(prefix)
	if ve := (*ValidationError)(nil); errors.As(err, &ve) {
		return invalid("prefix", "%s", ve.Reason)
	}
	return err
}

// QueuesPageOf is QueuesPage over the queues f selects. The next page's after is a name f
// selects too.
func (e *Engine) QueuesPageOf(ctx context.Context, after string, limit int, f QueueFilter) ([]*QueueInfo, string, error) {
	if limit < 1 || limit > MaxQueuePage {
		return nil, "", invalid("limit", "must be between 1 and %d", MaxQueuePage)
	}
	if err := ValidateQueuePrefix(f.Prefix); err != nil {
		return nil, "", err
	}
	names := e.QueueNames()
	// The names with the prefix follow one another from the first that sorts at or after it.
	i, found := slices.BinarySearch(names, max(after, f.Prefix))
	if found && names[i] == after {
		i++
	}
	now := e.now()
	page := make([]string, 0, min(limit, len(names)-i))
	next := ""
	for ; i < len(names) && strings.HasPrefix(names[i], f.Prefix); i++ {
		n := names[i]
		if f.Keep != nil && !f.Keep(n) || f.Paused && !e.pausedNow(n, now) {
			continue
		}
		if len(page) == limit {
			next = page[limit-1]
			break
		}
		page = append(page, n)
	}
	out, err := e.queueInfos(ctx, page)
	return out, next, err
}

// pausedNow tells whether this node knows the queue as paused at now.
func (e *Engine) pausedNow(name string, now time.Time) bool {
	q := e.lookupQueue(name)
	if q == nil {
		return false // deleted meanwhile
	}
	cfg, _ := q.config()
	return cfg.pausedAt(now)
}

func (e *Engine) queueInfos(ctx context.Context, names []string) ([]*QueueInfo, error) {
	qs := make([]*queue, 0, len(names))
	escs := make([]string, 0, len(names))
	for _, n := range names {
		q, err := e.getQueue(ctx, n, false)
		if errors.Is(err, ErrQueueNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		qs, escs = append(qs, q), append(escs, q.names.esc)
	}
	totals, err := e.stats.totals(ctx, escs...)
	if err != nil {
		return nil, fmt.Errorf("queue totals: %w", err)
	}
	// Each queue's statistics take a few JetStream requests, answered one after the other:
	// a page of queues reads several queues at once.
	infos := make([]*QueueInfo, len(qs))
	errs := make([]error, len(qs))
	var g errgroup.Group
	g.SetLimit(infoReaders)
	for i, q := range qs {
		g.Go(func() error {
			infos[i], errs[i] = e.queueInfo(ctx, q, totals[q.names.esc])
			return nil
		})
	}
	g.Wait()
	out := make([]*QueueInfo, 0, len(qs))
	for i, qi := range infos {
		switch {
		case errors.Is(errs[i], ErrQueueNotFound):
			// deleted meanwhile
		case errs[i] != nil:
			return nil, errs[i]
		default:
			out = append(out, qi)
		}
	}
	return out, nil
}

// infoReaders is how many queues' statistics (or streams' and consumers', Summarize) are
// read at once.
const infoReaders = 16

// QueueConfig returns a queue's settings, dead-letter queue and attributes without its
// statistics: no JetStream request when this node knows the queue already.
func (e *Engine) QueueConfig(ctx context.Context, name string) (*QueueInfo, error) {
	q, err := e.getQueue(ctx, name, false)
	if err != nil {
		return nil, err
	}
	cfg, _ := q.config()
	return e.info(cfg), nil
}

// info is the QueueInfo of the queue an entry describes, without statistics.
func (e *Engine) info(c queueConfig) *QueueInfo {
	now := e.now()
	qi := &QueueInfo{Name: c.Name, Settings: c.settings(), Paused: c.pausedAt(now), CreatedAt: nsTime(c.Created),
		DeadLetter: c.DeadLetter, Attributes: maps.Clone(c.Attrs)}
	qi.Settings.Replicas = e.replicasOf(c)
	qi.Settings.Retention = new(max(c.retention(e.cfg.Retention), 0))
	if qi.Paused && c.PausedUntil != 0 {
		qi.PausedUntil = nsTime(c.PausedUntil)
	}
	return qi
}

// Queue returns a queue's settings and statistics.
func (e *Engine) Queue(ctx context.Context, name string) (*QueueInfo, error) {
	qis, err := e.queueInfos(ctx, []string{name})
	if err != nil {
		return nil, err
	}
	if len(qis) == 0 {
		return nil, ErrQueueNotFound
	}
	return qis[0], nil
}

// queueInfo returns q's settings and statistics, with its counters' totals t.
func (e *Engine) queueInfo(ctx context.Context, q *queue, t map[string]int64) (*QueueInfo, error) {
	name := q.name
	cfg, _ := q.config()
	now := e.now()
	qi := e.info(cfg)
	st := &qi.Stats
	var oldest time.Time
	levels := cfg.levels()
	ready, reserved, delivered, err := e.levelCounts(ctx, q, levels)
	if err != nil {
		return nil, fmt.Errorf("queue %q stats: %w", name, err)
	}
	for _, b := range levels {
		st.Ready += ready[b]
		st.Reserved += reserved[b]
		if ready[b] > 0 {
			msgs, err := e.st.Batch(ctx, q.names.stream(), store.Request{Seq: delivered[b] + 1, NextFor: q.names.ready(b), Batch: 1})
			if err == nil && len(msgs) == 1 && (oldest.IsZero() || msgs[0].Time.Before(oldest)) {
				oldest = msgs[0].Time
			}
		}
	}
	if !oldest.IsZero() {
		st.OldestReadyAge = max(now.Sub(oldest), 0)
	}
	if st.Delayed, err = e.counted(ctx, q, StateDelayed); err == nil {
		st.Buried, err = e.counted(ctx, q, StateBuried)
	}
	if errors.Is(err, ErrQueueNotFound) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("queue %q stats: %w", name, err)
	}
	st.Enqueued, st.Reserves, st.Succeeded = t[cEnqueued], t[cReserves], t[cSucceeded]
	st.Failed, st.BuriedTot, st.Cancelled, st.Timeouts = t[cFailed], t[cBuried], t[cCancelled], t[cTimeouts]
	st.EnqueueRate, st.CompleteRate = e.stats.rates(q.names.esc, nsTime(cfg.Created))
	return qi, nil
}

// DeleteQueue removes a queue and all its jobs; their records are marked cancelled.
func (e *Engine) DeleteQueue(ctx context.Context, name string) error {
	q, err := e.getQueue(ctx, name, false)
	if err != nil {
		return err
	}
	// Stop dispatch first, quietly: the log says "queue deleted" at the end.
	if err := e.pause(ctx, q, time.Time{}); err != nil && !errors.Is(err, ErrQueueNotFound) {
		return err
	}
	if _, err := e.cancelMessages(ctx, q, q.names.all(), true); err != nil {
		return err
	}
	if q.names.shared {
		if err := e.dropShared(ctx, q); err != nil {
			return fmt.Errorf("delete queue %q: %w", name, err)
		}
	} else if err := e.js.DeleteStream(ctx, q.names.stream()); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("delete queue %q stream: %w", name, err)
	}
	if err := e.kv.Delete(ctx, q.names.esc); err != nil {
		return fmt.Errorf("delete queue %q: %w", name, err)
	}
	if q.names.shared {
		// Again: a reservation that looked at the queue before it was gone may have made
		// a level's consumer again meanwhile.
		if err := e.dropShared(ctx, q); err != nil {
			e.log.Warn("delete queue consumers", "queue", name, "err", err)
		}
	}
	if cfg, _ := q.config(); cfg.Num != 0 {
		if err := e.kv.Delete(ctx, numKey(cfg.Num)); err != nil {
			e.log.Warn("delete queue number", "queue", name, "err", err)
		}
	}
	stats, err := e.js.Stream(ctx, statsStream)
	if err == nil {
		err = stats.Purge(ctx, jetstream.WithPurgeSubject(statsPrefix+q.names.esc+".>"))
	}
	if err != nil {
		e.log.Warn("purge queue counters", "queue", name, "err", err)
	}
	e.mu.Lock()
	e.forgetQueueLocked(q)
	e.mu.Unlock()
	e.log.Info("queue deleted", "queue", name)
	return nil
}
