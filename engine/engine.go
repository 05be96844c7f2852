// Package engine implements spool's job semantics on NATS JetStream: queues, the job
// lifecycle (enqueue, reserve with leases, ack, fail with backoff, release, bury, kick,
// cancel), lookups by id and statistics. Every job fact lives in JetStream, so any number of
// engines over one JetStream serve the same jobs; a node keeps in memory only caches and the
// leases it granted (their records written behind; JetStream's delivery deadline is the
// backstop should the node die). Every lifecycle step reaches JetStream through the storage
// layer (internal/store).
//
// Layout in JetStream:
//   - eight shard streams (SPOOL_QS<k>), work-queue retention, that the queues share by
//     subject: spool.q<k>.<queue>.ready.<priority> for ready jobs and
//     spool.q<k>.<queue>.<state>.<priority>.<id> for delayed, buried and held ones (the job
//     id is in the message's envelope, or for a fresh job's first message derived from the
//     message's chunk and sequence); a queue made with replicas other than the node's
//     default is in the shard set of that many (SPOOL_QS<k>_R<n>, subjects
//     spool.q<k>r<n>.<queue>..., each stream made with the first queue it holds); a queue
//     made before shards keeps a stream of its own (SPOOL_Q_<queue>, subjects
//     spool.q.<queue>...);
//   - one durable pull consumer per priority in use (up to 64 per queue), deleted once idle
//     and made again by the next reservation; a reservation is a pending delivery of that
//     consumer and its lease is the delivery's ack deadline; counting consumers for delayed
//     and buried jobs, made with a queue's first such job;
//   - delayed jobs are @at message schedules whose target is the job's ready subject;
//   - SPOOL_JOBS keeps one record per job (spool.j.<id>): its status, created by the job's
//     first change (at enqueue for delayed, unique and chosen-id jobs), rewritten with a
//     compare-and-set at every transition and kept for the retention once finished;
//   - SPOOL_STATS holds cluster-wide counters; the spool_queues KV bucket the queue settings,
//     queue numbers and chunk numbers.
package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/spoolq/spool/engine/internal/store"
	"github.com/spoolq/spool/internal/jsasset"
)

// Config configures an Engine. Zero values take the defaults noted.
type Config struct {
	// Replicas of every stream spool creates: 1 on a single node, 3 on a cluster. Default 1.
	// A queue made with other replicas (QueueSettings.Replicas) lives in shard streams of
	// that many.
	Replicas int
	// Peers reports how many JetStream servers the cluster has (1 alone), to refuse at
	// once a queue of more replicas than that; nil, or 0 returned: not known, and the
	// refusal comes from JetStream's answer when the queue's streams are made.
	Peers func() int
	// Retention keeps a finished job's record queryable this long, and at least until its
	// last lease has ended plus a minute (JetStream's minimum TTL is 1s), in queues that
	// set none of their own (QueueSettings.Retention). Default 1h: JetStream keeps an index
	// entry in memory for every record. NoRetention keeps none: see QueueSettings.Retention.
	Retention time.Duration
	// MaxPayload limits a job's payload in bytes. Default 1 MiB.
	MaxPayload int
	// Defaults are the settings of a queue created implicitly by an enqueue.
	// Default lease 30s, 25 attempts, backoff from 1s doubling up to 1h.
	Defaults QueueSettings
	// Logger receives the engine's logs. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// LeaseWriteDelay is how long a lease lives only in the memory of the node that
	// granted it before its record (state reserved, holder, lease end) is stored: status
	// reads on other nodes lag by at most about 1.5 times this. A job finished sooner
	// costs no reservation write. Default 250ms.
	LeaseWriteDelay time.Duration
	// RequestTimeout bounds each JetStream step whose caller set no deadline: past it
	// the step fails with an error for which Transient is true. Default 10s.
	RequestTimeout time.Duration
	// StoreErr, when set, reports a store that cannot take new data (its disk full or
	// failing). While it returns an error, Enqueue and the creation of a queue fail at once
	// with an error wrapping ErrNoSpace, rather than each waiting RequestTimeout for a store
	// that answers nothing; reads and the other steps, which need little space, go on.
	StoreErr func() error
	// PollInterval bounds how long a waiting reservation goes without looking for jobs:
	// jobs also become ready without a wake-up (a delayed job's time comes, a lease
	// expires). Default 250ms.
	PollInterval time.Duration
	// ConsumerIdle is how long a queue's priority level goes without a job or a
	// reservation before its JetStream consumer is deleted (made again by the next
	// reservation): an idle queue then costs no goroutine. Default 2m.
	ConsumerIdle time.Duration
	// Node names this node in lifecycle events. Default the host name.
	Node string
	// EventsMaxAge and EventsMaxBytes bound the lifecycle events stream: older events, and
	// the oldest past the size, are removed. Default 24h and 1 GiB.
	EventsMaxAge   time.Duration
	EventsMaxBytes int64
}

// NoRetention, as a retention, keeps no record of a finished job.
const NoRetention time.Duration = -1

// requestTimeout bounds a JetStream request that has no deadline of its own.
const requestTimeout = 10 * time.Second

// Limits of the values an engine accepts.
const (
	MinLease       = time.Second
	MaxLease       = 12 * time.Hour
	MaxMaxAttempts = 1000
	MaxTimeout     = 7 * 24 * time.Hour
	MaxDelay       = 100 * 365 * 24 * time.Hour
	MaxTypeLen     = 256
	MaxUniqueKey   = 256
	MaxMetadata    = 64
	MaxMetaKey     = 128
	MaxMetaValue   = 1024
	MaxErrorLen    = 4096
	MaxResultLen   = 64 << 10
	MaxBatch       = 1000
	MaxRetention   = 90 * 24 * time.Hour
)

func (c *Config) setDefaults() {
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.Retention == 0 {
		c.Retention = time.Hour
	}
	if c.MaxPayload == 0 {
		c.MaxPayload = 1 << 20
	}
	d := &c.Defaults
	if d.Lease == 0 {
		d.Lease = 30 * time.Second
	}
	if d.MaxAttempts == 0 {
		d.MaxAttempts = 25
	}
	if d.BackoffBase == 0 {
		d.BackoffBase = time.Second
	}
	if d.BackoffMax == 0 {
		d.BackoffMax = time.Hour
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.LeaseWriteDelay <= 0 {
		c.LeaseWriteDelay = 250 * time.Millisecond
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = requestTimeout
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 250 * time.Millisecond
	}
	if c.ConsumerIdle <= 0 {
		c.ConsumerIdle = 2 * time.Minute
	}
	if c.Node == "" {
		c.Node, _ = os.Hostname()
	}
	if c.EventsMaxAge <= 0 {
		c.EventsMaxAge = 24 * time.Hour
	}
	if c.EventsMaxBytes <= 0 {
		c.EventsMaxBytes = 1 << 30
	}
}

// Engine is spool's job engine over one JetStream connection. It is safe for concurrent use.
type Engine struct {
	cfg    Config
	log    *slog.Logger
	nc     *nats.Conn
	js     jetstream.JetStream
	st     *store.Store // every step of the job lifecycle goes through it
	kv     jetstream.KeyValue
	ids    *idGen
	chunks *chunks
	tag    uint32 // this node's lease tag: the high half of the lease ids it grants
	// tagText is tag in hex: how the node signs its wake-ups.
	tagText string

	mu     sync.RWMutex
	queues map[string]*queue // by name
	byEsc  map[string]*queue // by escaped name
	byNum  map[uint32]*queue // by queue number (derived job ids)
	// added is closed (and replaced) when a queue joins the local view: it wakes the
	// reservations waiting for a queue that did not exist yet.
	added chan struct{}

	qnums numbers // queue numbers
	cnums numbers // chunk numbers
	// madeShards holds the names of the shard streams of sets other than the default that
	// this node made or found (ensureShard).
	madeShards sync.Map

	stats  *counters
	opened time.Time // when Open began: the start of this node's rates over all queues
	leases *leaseCache
	lw     *leaseWriter
	events *eventLog
	// waiting counts the reservations of this node waiting for jobs (Waiting).
	waiting atomic.Int64

	stop     chan struct{}
	wg       sync.WaitGroup
	sub      *nats.Subscription
	pollSub  *nats.Subscription
	leaseSub *nats.Subscription
	polls    *polls
}

// Open prepares the JetStream assets spool needs (idempotently) and starts the engine's
// background work: the queue registry watch, wake-ups of waiting reservations and the
// counter flusher. nc must stay open until Close returns.
func Open(ctx context.Context, nc *nats.Conn, cfg Config) (*Engine, error) {
	cfg.setDefaults()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(cfg.RequestTimeout), jetstream.WithDefaultTimeout(cfg.RequestTimeout))
	if err != nil {
		return nil, fmt.Errorf("engine: jetstream: %w", err)
	}
	tag := rand.Uint32() | 1
	e := &Engine{
		cfg: cfg, log: cfg.Logger, nc: nc, js: js, st: store.New(nc, js, cfg.RequestTimeout),
		ids:     newIDGen(cfg.Now),
		chunks:  newChunks(),
		qnums:   numbers{subject: queueNumSubject, max: queueNumMax},
		cnums:   numbers{subject: chunkSubject, max: chunkMax},
		leases:  newLeaseCache(),
		polls:   newPolls(),
		queues:  make(map[string]*queue),
		byEsc:   make(map[string]*queue),
		byNum:   make(map[uint32]*queue),
		added:   make(chan struct{}),
		stop:    make(chan struct{}),
		tag:     tag,
		tagText: strconv.FormatUint(uint64(tag), 16),
		opened:  cfg.Now(),
	}
	e.events = newEventLog(e, cfg.Node)
	if err := e.setup(ctx); err != nil {
		return nil, err
	}
	// Subscriptions, undone if a later step fails.
	var subs []*nats.Subscription
	fail := func(err error) (*Engine, error) {
		for _, s := range subs {
			s.Unsubscribe()
		}
		return nil, err
	}
	if e.stats, err = newCounters(e); err != nil {
		return fail(fmt.Errorf("engine: subscribe: %w", err))
	}
	subs = append(subs, e.stats.sub)
	for _, s := range []struct {
		to  **nats.Subscription
		sub string
		cb  nats.MsgHandler
	}{
		{&e.sub, notifyPrefix + ">", e.onNotify},
		{&e.pollSub, pollPrefix + "*", e.onPollEnd},
		{&e.leaseSub, leaseSubject(e.tag), e.onLeaseSync},
	} {
		if *s.to, err = nc.Subscribe(s.sub, s.cb); err != nil {
			return fail(fmt.Errorf("engine: subscribe: %w", err))
		}
		subs = append(subs, *s.to)
	}
	if err := e.watchQueues(ctx); err != nil {
		return fail(err)
	}
	e.lw = &leaseWriter{e: e, delay: cfg.LeaseWriteDelay}
	e.wg.Go(func() { e.stats.run(e.stop) })
	e.wg.Go(func() { e.lw.run(e.stop) })
	e.wg.Go(func() { e.runIdleSweep(e.stop) })
	e.wg.Go(func() { e.events.run(e.stop) })
	return e, nil
}

// Close stops the background work and flushes the counters. It does not close the connection.
func (e *Engine) Close() error {
	select {
	case <-e.stop:
		return nil
	default:
	}
	close(e.stop)
	e.wg.Wait()
	e.sub.Unsubscribe()
	e.pollSub.Unsubscribe()
	e.leaseSub.Unsubscribe()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// The leases held here outlive this engine until JetStream offers their jobs again:
	// other nodes should see them reserved meanwhile.
	e.lw.write(ctx, time.Time{})
	e.stats.flush(ctx)
	e.events.flush(ctx)
	return e.nc.FlushWithContext(ctx)
}

func (e *Engine) setup(ctx context.Context) error {
	_, err := e.ensureStream(ctx, jetstream.StreamConfig{
		Name:              jobsStream,
		Description:       "spool job records: one status document per job",
		Subjects:          []string{jobsPrefix + "*", uniquePrefix + ">"},
		MaxMsgsPerSubject: 1,
		AllowMsgTTL:       true,
		AllowDirect:       true,
		Storage:           jetstream.FileStorage,
		Replicas:          e.cfg.Replicas,
		Discard:           jetstream.DiscardOld,
		Duplicates:        time.Minute,
	})
	if err != nil {
		return fmt.Errorf("engine: create %s stream: %w", jobsStream, err)
	}
	_, err = e.ensureStream(ctx, jetstream.StreamConfig{
		Name:            statsStream,
		Description:     "spool cluster-wide counters",
		Subjects:        []string{statsPrefix + ">"},
		AllowMsgCounter: true,
		AllowDirect:     true,
		Storage:         jetstream.FileStorage,
		Replicas:        e.cfg.Replicas,
	})
	if err != nil {
		return fmt.Errorf("engine: create %s stream: %w", statsStream, err)
	}
	e.kv, err = e.ensureKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      queuesBucket,
		Description: "spool queue settings",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    e.cfg.Replicas,
	})
	if err != nil {
		return fmt.Errorf("engine: create %s bucket: %w", queuesBucket, err)
	}
	if err := e.setupShards(ctx); err != nil {
		return err
	}
	return e.setupEvents(ctx)
}

// queueConfig is a queue's entry in the spool_queues bucket.
type queueConfig struct {
	Name        string `json:"name"`
	LeaseMS     int64  `json:"lease_ms"`
	MaxAttempts int    `json:"max_attempts"`
	BackoffMS   int64  `json:"backoff_base_ms"`
	BackoffMax  int64  `json:"backoff_max_ms"`
	Paused      bool   `json:"paused,omitempty"`
	PausedUntil int64  `json:"paused_until,omitempty"` // unix ns; 0: until resumed
	Created     int64  `json:"created"`
	// Levels are the priorities that have a ready level (consumer ready-<p> on subject
	// ready.<p>), sorted; at most maxLevels.
	Levels []uint32 `json:"levels,omitempty"`
	// Num is the queue's number, unique in the cluster and never reused: derived job ids
	// start with it. 0: the queue has none (numbers ran out) and its jobs get generated ids.
	Num uint32 `json:"num,omitempty"`
	// Shard is 1 + the number of the shard stream that holds the queue; 0 for a queue made
	// before shards, in a stream of its own.
	Shard int `json:"shard,omitempty"`
	// Set is the shard set that holds the queue: 0 the default set (the node's Replicas),
	// else the set of that many replicas.
	Set int `json:"set,omitempty"`
	// Counted has a bit (counterBit) for each counting consumer made for the queue; a
	// queue in its own stream has both.
	Counted uint32 `json:"counted,omitempty"`
	// DeadLetter names the queue that a job out of attempts moves to instead of being
	// buried; empty: buried in place.
	DeadLetter string `json:"dead_letter,omitempty"`
	// Attrs are free-form attributes that fronts keep with the queue (SetQueueAttributes).
	Attrs map[string]string `json:"attrs,omitempty"`
	// NoEvents turns the queue's lifecycle events off.
	NoEvents bool `json:"no_events,omitempty"`
	// RetentionS is how many seconds a finished job's record is kept, 0 none; nil: the
	// node's Config.Retention.
	RetentionS *int64 `json:"retention_s,omitempty"`
}

// retention is how long the queue keeps a finished job's record (none when not positive),
// def when it sets nothing.
func (c *queueConfig) retention(def time.Duration) time.Duration {
	if c.RetentionS == nil {
		return def
	}
	return time.Duration(*c.RetentionS) * time.Second
}

func (c *queueConfig) settings() QueueSettings {
	return QueueSettings{
		Lease:       time.Duration(c.LeaseMS) * time.Millisecond,
		MaxAttempts: c.MaxAttempts,
		BackoffBase: time.Duration(c.BackoffMS) * time.Millisecond,
		BackoffMax:  time.Duration(c.BackoffMax) * time.Millisecond,
		Events:      new(!c.NoEvents),
	}
}

func (c *queueConfig) pausedAt(now time.Time) bool {
	return c.Paused && (c.PausedUntil == 0 || now.UnixNano() < c.PausedUntil)
}

// queue is this node's view of a queue: its settings as last seen in the bucket, the
// consumer handles it has opened and the wake-up channel of reservations waiting on it.
type queue struct {
	name  string // immutable
	names names

	mu   sync.Mutex
	cfg  queueConfig
	rev  uint64
	wake chan struct{} // closed at a change of the queue's entry
	// waiters are the reservations parked on the queue for jobs, first come first.
	waiters []*waiter

	// Per level, stream sequences: the highest of a job this node knows was published to
	// it (stored here, or announced by another node), and the highest this node knows the
	// level's consumer delivered (pulled here, or read from the consumer); under mu. While
	// the first is ahead, the consumer may hold a job it does not count yet (mayLag).
	pubSeq, seenSeq map[int]uint64
	// pulled is when this node last pulled from each level (unix ns), under mu.
	pulled map[int]int64
	// chunksUsedUp: chunk numbers ran out (chunk.go), new jobs get generated ids.
	chunksUsedUp atomic.Bool
	// madeHere: this node made the queue and has not taken a chunk for it yet, so its first
	// chunk is most likely known nowhere.
	madeHere atomic.Bool
	// trust: messages of the queue's stream after this sequence were stored while this
	// engine's connection was up (see Engine.firstTrusted).
	trust atomic.Pointer[trustMark]
}

type trustMark struct {
	seq        uint64 // the stream's last sequence when measured
	reconnects uint64 // the connection's reconnects then
}

// derives reports whether a job enqueued ready now gets a derived id (one write).
func (q *queue) derives() bool {
	cfg, _ := q.config()
	return cfg.Num != 0 && !q.chunksUsedUp.Load()
}

// notePublished records that a job was stored at seq in level b (0: at some sequence
// not known, past any seen).
func (q *queue) notePublished(b int, seq uint64) {
	q.mu.Lock()
	if seq == 0 {
		seq = q.seenSeq[b] + 1
	}
	q.pubSeq[b] = max(q.pubSeq[b], seq)
	q.mu.Unlock()
}

// noteSeen records that level b's consumer delivered up to seq.
func (q *queue) noteSeen(b int, seq uint64) {
	q.mu.Lock()
	q.seenSeq[b] = max(q.seenSeq[b], seq)
	q.mu.Unlock()
}

// notePull records a pull from level b at now.
func (q *queue) notePull(b int, now time.Time) {
	q.mu.Lock()
	if q.pulled == nil {
		q.pulled = make(map[int]int64)
	}
	q.pulled[b] = now.UnixNano()
	q.mu.Unlock()
}

// adoptPull notes level b as pulled from at now unless this node pulled from it already,
// and reports whether it did note it.
func (q *queue) adoptPull(b int, now time.Time) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, ok := q.pulled[b]; ok {
		return false
	}
	if q.pulled == nil {
		q.pulled = make(map[int]int64)
	}
	q.pulled[b] = now.UnixNano()
	return true
}

// pulledBefore reports whether this node pulled from level b since the level last lost its
// consumer here, and last before t.
func (q *queue) pulledBefore(b int, t time.Time) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	at, ok := q.pulled[b]
	return ok && at < t.UnixNano()
}

// forgetPull notes that level b's consumer is gone (notePull notes it is there again).
func (q *queue) forgetPull(b int) {
	q.mu.Lock()
	delete(q.pulled, b)
	q.mu.Unlock()
}

// seen is the highest stream sequence this node knows level b's consumer delivered.
func (q *queue) seen(b int) uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.seenSeq[b]
}

// mayLag reports whether level b may hold a job its consumer does not count yet: one was
// published past all this node knows was delivered.
func (q *queue) mayLag(b int) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.pubSeq[b] > q.seenSeq[b]
}

func (q *queue) config() (queueConfig, uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.cfg, q.rev
}

// waitCh returns a channel closed at the next wake-up of this queue.
func (q *queue) waitCh() <-chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.wake
}

// signal wakes every reservation waiting on the queue: its settings, pause or levels
// changed.
func (q *queue) signal() {
	q.mu.Lock()
	close(q.wake)
	q.wake = make(chan struct{})
	for _, w := range q.waiters {
		w.wake()
	}
	q.waiters = q.waiters[:0]
	q.mu.Unlock()
}

// waiter is a reservation waiting for jobs, parked on the queues it names. A wake-up for n
// new jobs wakes n waiters, not every one (they would all pull, and all but n find
// nothing).
type waiter struct{ ch chan struct{} }

func newWaiter() *waiter { return &waiter{ch: make(chan struct{}, 1)} }

// wake gives the waiter a wake-up; false when it holds one already.
func (w *waiter) wake() bool {
	select {
	case w.ch <- struct{}{}:
		return true
	default:
		return false
	}
}

// woken takes the waiter's wake-up if it holds one.
func (w *waiter) woken() bool {
	select {
	case <-w.ch:
		return true
	default:
		return false
	}
}

func (q *queue) park(w *waiter) {
	q.mu.Lock()
	q.waiters = append(q.waiters, w)
	q.mu.Unlock()
}

func (q *queue) unpark(w *waiter) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, x := range q.waiters {
		if x == w {
			q.waiters = append(q.waiters[:i], q.waiters[i+1:]...)
			return
		}
	}
}

// wakeJobs wakes n of the queue's waiters, first parked first (all when n is 0): n jobs
// became ready. Waiters holding a wake-up already (from another queue) are passed over.
// The woken leave the queue; they park again if they wait again.
func (q *queue) wakeJobs(n int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	i := 0
	for woken := 0; i < len(q.waiters) && (n == 0 || woken < n); i++ {
		if q.waiters[i].wake() {
			woken++
		}
	}
	q.waiters = append(q.waiters[:0], q.waiters[i:]...)
}

// watchQueues keeps e.queues current with the bucket, so that settings, pauses and new
// priority bands made on any node reach this one. It returns once the initial values are in.
func (e *Engine) watchQueues(ctx context.Context) error {
	// The watch lives as long as the engine, not as the caller's ctx.
	w, err := e.kv.WatchAll(context.WithoutCancel(ctx), jetstream.IncludeHistory())
	if err != nil {
		return fmt.Errorf("engine: watch queues: %w", err)
	}
	ready := make(chan struct{})
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		jsasset.Follow(e.stop, w, ready, e.applyQueueEntry)
	}()
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		w.Stop()
		return fmt.Errorf("engine: watch queues: %w", ctx.Err())
	}
}

// A queue that appears after the initial values was made while the watch ran: its stream
// holds nothing stored before this engine's connection (trustedAfter).
func (e *Engine) applyQueueEntry(ent jetstream.KeyValueEntry, initial bool) {
	if strings.HasPrefix(ent.Key(), numKeyPrefix) || e.applyChunkEntry(ent) {
		return // a queue number's or a chunk's entry, not a queue's
	}
	if ent.Operation() != jetstream.KeyValuePut {
		e.mu.Lock()
		if q := e.byEsc[ent.Key()]; q != nil {
			e.forgetQueueLocked(q)
		}
		e.mu.Unlock()
		return
	}
	var cfg queueConfig
	if err := json.Unmarshal(ent.Value(), &cfg); err != nil {
		e.log.Warn("bad queue entry", "key", ent.Key(), "err", err)
		return
	}
	rc := e.nc.Stats().Reconnects
	isNew := e.lookupQueue(cfg.Name) == nil
	q := e.cacheQueue(cfg, ent.Revision())
	if !initial && isNew {
		q.trust.CompareAndSwap(nil, &trustMark{0, rc})
	}
	q.signal() // a resume or a new band may let waiting reservations through
}

// cacheQueue stores a queue's settings in the local view unless a newer revision is there.
func (e *Engine) cacheQueue(cfg queueConfig, rev uint64) *queue {
	e.mu.Lock()
	defer e.mu.Unlock()
	q := e.queues[cfg.Name]
	if q != nil && q.names != namesFor(cfg) && rev >= q.rev {
		// Deleted and made again elsewhere, in another layout, while this node missed it.
		e.forgetQueueLocked(q)
		q = nil
	}
	if q == nil {
		q = &queue{name: cfg.Name, names: namesFor(cfg), wake: make(chan struct{}),
			pubSeq: make(map[int]uint64), seenSeq: make(map[int]uint64)}
		e.queues[cfg.Name] = q
		e.byEsc[q.names.esc] = q
		close(e.added)
		e.added = make(chan struct{})
	}
	q.mu.Lock()
	old, accepted := q.cfg.Num, rev >= q.rev
	if accepted {
		q.cfg, q.rev = cfg, rev
	}
	q.mu.Unlock()
	if accepted {
		e.events.setOff(cfg.Name, cfg.NoEvents)
		// A new number (the queue was deleted and made again while this node missed it):
		// the old number must not name the new queue.
		if old != cfg.Num && e.byNum[old] == q {
			delete(e.byNum, old)
		}
		if cfg.Num != 0 {
			e.byNum[cfg.Num] = q
		}
	}
	return q
}

// forgetQueueLocked removes a deleted queue from the local view; e.mu is held.
func (e *Engine) forgetQueueLocked(q *queue) {
	if e.queues[q.name] == q {
		delete(e.queues, q.name)
		delete(e.byEsc, q.names.esc)
		e.events.setOff(q.name, false)
	}
	if cfg, _ := q.config(); e.byNum[cfg.Num] == q {
		delete(e.byNum, cfg.Num)
	}
}

// queueByNum returns the queue numbered num in the local view, or nil.
func (e *Engine) queueByNum(num uint32) *queue {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.byNum[num]
}

// queueList returns the queues of the local view.
func (e *Engine) queueList() []*queue {
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := make([]*queue, 0, len(e.queues))
	for _, q := range e.queues {
		out = append(out, q)
	}
	return out
}

func (e *Engine) lookupQueue(name string) *queue {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.queues[name]
}

// watchQueue returns a queue's wake-up channel, or when the queue does not exist (yet) one
// closed when a queue is added.
func (e *Engine) watchQueue(name string) (*queue, <-chan struct{}) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if q := e.queues[name]; q != nil {
		return q, q.waitCh()
	}
	return nil, e.added
}

// onNotify wakes this node's reservations waiting on a queue whose band got ready jobs
// (spool.n.<queue>.<band>).
func (e *Engine) onNotify(m *nats.Msg) {
	if tag, _, _ := strings.Cut(string(m.Data), " "); tag == e.tagText {
		// This node's own, noted when it was sent: noting it again at its return would
		// take jobs reserved meanwhile for new ones, and the next pull of the level
		// would wait for them (lagWait).
		return
	}
	rest := m.Subject[len(notifyPrefix):]
	i := strings.LastIndexByte(rest, '.')
	if i < 0 {
		return
	}
	b, err := strconv.Atoi(rest[i+1:])
	if err != nil {
		return
	}
	e.mu.RLock()
	q := e.byEsc[rest[:i]]
	e.mu.RUnlock()
	if q != nil {
		n, seq := 1, uint64(0)
		if f := strings.Fields(string(m.Data)); len(f) == 3 {
			if v, err := strconv.Atoi(f[1]); err == nil && v >= 0 {
				n = v
			}
			seq, _ = strconv.ParseUint(f[2], 10, 64)
		}
		q.notePublished(b, seq)
		q.wakeJobs(n)
	}
}

// notify tells every node, this one at once, that n jobs became ready at a queue's level,
// the last at stream sequence seq (n 0: an unknown number, wake every waiter; seq 0:
// unknown). It is a hint, not a guarantee: waiting reservations also poll. The body is the
// sender's tag, n and seq: each node wakes n of its waiters (with several nodes, up to n
// per node).
func (e *Engine) notify(q *queue, b, n int, seq uint64) {
	q.notePublished(b, seq)
	q.wakeJobs(n)
	body := e.tagText + " " + strconv.Itoa(n) + " " + strconv.FormatUint(seq, 10)
	if err := e.nc.Publish(q.names.notify(b), []byte(body)); err != nil {
		e.log.Debug("notify", "queue", q.name, "err", err)
	}
}

func (e *Engine) now() time.Time { return e.cfg.Now() }

// Waiting returns how many reservations of this node are waiting for jobs: the long polls
// that found none and sleep until a wake-up or their next look.
func (e *Engine) Waiting() int { return int(e.waiting.Load()) }

// wait is a waiting reservation's sleep (waitAny), counted in Waiting.
func (e *Engine) wait(ctx context.Context, chs []<-chan struct{}, d time.Duration) error {
	e.waiting.Add(1)
	defer e.waiting.Add(-1)
	return waitAny(ctx, chs, d, e.stop)
}

func (e *Engine) closed() bool {
	select {
	case <-e.stop:
		return true
	default:
		return false
	}
}

// Transient reports whether err is a failure to reach JetStream (or JetStream's temporary
// unavailability) rather than an answer about the job: the same call may succeed if tried
// again. Fronts answer it as a retryable error (HTTP 503).
func Transient(err error) bool {
	return errors.Is(err, ErrNoSpace) || errors.Is(err, errPlacement) || errors.Is(err, errConsumerLimit) || store.Transient(err)
}

// storeFull returns an error wrapping ErrNoSpace when Config.StoreErr reports the store
// cannot take new data.
func (e *Engine) storeFull() error {
	if e.cfg.StoreErr == nil {
		return nil
	}
	if err := e.cfg.StoreErr(); err != nil {
		return fmt.Errorf("%w: %v", ErrNoSpace, err)
	}
	return nil
}

// casLost reports a failed compare-and-set (store.CASLost).
func casLost(err error) bool { return store.CASLost(err) }

// Ping checks that JetStream answers.
func (e *Engine) Ping(ctx context.Context) error {
	if e.closed() {
		return ErrClosed
	}
	if _, err := e.js.AccountInfo(ctx); err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	return nil
}
