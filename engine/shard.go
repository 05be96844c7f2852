package engine

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/spoolq/spool/engine/internal/store"
)

// shards is the number of shard streams that hold the queues. A stream of JetStream costs
// goroutines, timers and buffers whether or not it holds messages, and its recovery at start
// takes time: a stream per queue made each queue cost ~60 KiB and three goroutines before
// its first job, and a node with thousands of queues slow to restart. A queue in a shard is
// a subject prefix and costs nothing until it has jobs. Eight streams are enough to spread
// their leaders over a cluster's nodes.
const shards = 8

// shardOf picks the shard of the queue whose escaped name is esc.
func shardOf(esc string) int {
	h := fnv.New32a()
	h.Write([]byte(esc))
	return int(h.Sum32() % shards)
}

// namesFor returns the names of the queue an entry describes: in its shard of its set, or
// in a stream of its own for a queue made before shards.
func namesFor(cfg queueConfig) names {
	if cfg.Shard == 0 {
		return queueNames(cfg.Name)
	}
	return shardNames(cfg.Name, cfg.Shard-1, cfg.Set)
}

// Shard sets. The queues of the node's default replicas (Config.Replicas) share the default
// set, SPOOL_QS<k>, made at Open. A queue made with other replicas goes to the set of that
// many, SPOOL_QS<k>_R<n> (subjects spool.q<k>r<n>...), each of whose streams is made by the
// first queue that needs it: a cluster where every queue has the default replicas has no
// other stream, and a queue with its own replicas costs a subject prefix as any other.

// shardSet returns the set of a queue made with replicas r (0: the default).
func (e *Engine) shardSet(r int) int {
	if r == 0 || r == e.cfg.Replicas {
		return 0
	}
	return r
}

// replicasOf returns the replicas of the queue an entry describes.
func (e *Engine) replicasOf(cfg queueConfig) int {
	if cfg.Set != 0 {
		return cfg.Set
	}
	return e.cfg.Replicas // the default set, or (at most that) a stream of its own
}

// shardConfig is the configuration of shard k's stream in set.
func (e *Engine) shardConfig(k, set int) jetstream.StreamConfig {
	desc, r := "spool queues, shard "+strconv.Itoa(k), e.cfg.Replicas
	if set != 0 {
		desc, r = desc+" (replicas "+strconv.Itoa(set)+")", set
	}
	return jetstream.StreamConfig{
		Name:              shardStream(k, set),
		Description:       desc,
		Subjects:          []string{shardNames("", k, set).prefixAll()},
		Retention:         jetstream.WorkQueuePolicy,
		Storage:           jetstream.FileStorage,
		Replicas:          r,
		AllowMsgSchedules: true,
		AllowDirect:       true,
	}
}

// setupShards makes the default set's shard streams.
func (e *Engine) setupShards(ctx context.Context) error {
	for k := range shards {
		if _, err := e.ensureStream(ctx, e.shardConfig(k, 0)); err != nil {
			return fmt.Errorf("engine: create %s stream: %w", shardStream(k, 0), err)
		}
	}
	return nil
}

// ensureShard makes shard k's stream of set unless this node made or found it already
// (the default set's exist since Open). A set of more replicas than the cluster has nodes
// is refused with a *ReplicasUnavailableError, before JetStream is asked when the node
// knows its cluster's size (Config.Peers), else from JetStream's answer.
func (e *Engine) ensureShard(ctx context.Context, k, set int) error {
	if set == 0 {
		return nil
	}
	name := shardStream(k, set)
	if _, ok := e.madeShards.Load(name); ok {
		return nil
	}
	peers := 0
	if e.cfg.Peers != nil {
		peers = e.cfg.Peers()
	}
	if peers > 0 && set > peers {
		return &ReplicasUnavailableError{Replicas: set, Nodes: peers}
	}
	if _, err := e.ensureStream(ctx, e.shardConfig(k, set)); err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) {
			switch apiErr.ErrorCode {
			case errReplicasNotSupported:
				return &ReplicasUnavailableError{Replicas: set, Nodes: 1}
			case errNoPeers:
				if peers == 0 {
					return &ReplicasUnavailableError{Replicas: set}
				}
				// The cluster has the nodes, not enough of them up: try again later.
				return fmt.Errorf("create %s stream: %w: %w", name, errPlacement, err)
			}
		}
		return fmt.Errorf("create %s stream: %w", name, err)
	}
	e.madeShards.Store(name, struct{}{})
	return nil
}

// errPlacement: JetStream could not place a stream's replicas on nodes of a cluster that
// has enough of them, some being down. Transient is true for it.
var errPlacement = errors.New("not enough nodes up to place the replicas")

// nats-server's error codes for a stream it cannot place: more than one replica on a
// server that is not clustered; no suitable peers for placement (jsasset retries it for a
// while: a cluster starting may not know all its peers yet).
const (
	errReplicasNotSupported = 10074
	errNoPeers              = 10005
)

// shardMark returns the trust mark of a queue made now in the shard stream of n (see
// trustedAfter): the sequence of the last message on the queue's subjects (0: none), so
// that anything stored there before the queue (a copy that a deleted queue of the same
// name left behind) is checked at reservation. Messages on other queues' subjects never
// reach this queue's consumers, so the shard's own last sequence would mark nothing more;
// a Direct Get that finds no message costs JetStream a lookup in the shard's subject index,
// where the shard's stream info (which gave its last sequence) was a tenth of the server's
// CPU in making a queue.
func (e *Engine) shardMark(ctx context.Context, n names) (uint64, error) {
	m, err := e.st.Last(ctx, n.stream(), n.all())
	switch {
	case errors.Is(err, store.ErrNoMsg):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("read shard: %w", err)
	}
	return m.Seq, nil
}

// counterConfig is the configuration of the consumer that counts q's jobs in state s. In a
// shard it keeps its state in memory, as a level's consumer does: it is never pulled, so a
// consumer made again after a restart (counted) counts the same jobs from the start of the
// stream. On disk, each wrote a state file at every stop: a SIGTERM of a node with 2,000
// queues that had had a delayed job took 22 s.
func counterConfig(q *queue, s State) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       q.names.counter(s),
		FilterSubject: q.names.state(s),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxDeliver:    -1,
		MaxAckPending: -1,
		MemoryStorage: q.names.shared,
	}
}

// ensureCounter makes the consumer that counts q's jobs in state s (delayed or buried)
// before the queue's first such job: a queue in a shard has it only once it needs it. A
// consumer made after jobs are stored counts them all the same (it starts at the first).
func (e *Engine) ensureCounter(ctx context.Context, q *queue, s State) error {
	bit := counterBit(s)
	if bit == 0 || q.hasCounter(bit) {
		return nil
	}
	if err := e.putConsumer(ctx, q.names.stream(), counterConfig(q, s), false); err != nil {
		return fmt.Errorf("create %s counter: %w", s, err)
	}
	// Noted in the queue's entry, so that every node reads the count only where there is
	// one (updateConfig takes the entry into this node's view at once).
	if _, err := e.updateConfig(ctx, q, func(c *queueConfig) { c.Counted |= bit }); err != nil {
		return fmt.Errorf("create %s counter: %w", s, err)
	}
	return nil
}

// hasCounter reports whether q has the counting consumer of bit: a queue in its own stream
// has both, a queue in a shard those its entry names.
func (q *queue) hasCounter(bit uint32) bool {
	cfg, _ := q.config()
	return !q.names.shared || cfg.Counted&bit != 0
}

func counterBit(s State) uint32 {
	switch s {
	case StateDelayed:
		return 1
	case StateBuried:
		return 2
	}
	return 0
}

// counted returns the number of q's jobs in state s, from its counter consumer.
func (e *Engine) counted(ctx context.Context, q *queue, s State) (int64, error) {
	if !q.hasCounter(counterBit(s)) {
		return 0, nil // never had such a job
	}
	ci, err := e.js.Consumer(ctx, q.names.stream(), q.names.counter(s))
	if errors.Is(err, jetstream.ErrConsumerNotFound) && q.names.shared && e.lookupQueue(q.name) == q {
		// Kept in memory, and lost with a restart of its server: made again, it counts
		// the jobs there are.
		if err = e.putConsumer(ctx, q.names.stream(), counterConfig(q, s), false); err == nil {
			ci, err = e.js.Consumer(ctx, q.names.stream(), q.names.counter(s))
		}
	}
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound) && q.names.shared:
		return 0, nil // deleted meanwhile
	case errors.Is(err, jetstream.ErrStreamNotFound), errors.Is(err, jetstream.ErrConsumerNotFound):
		return 0, ErrQueueNotFound
	case err != nil:
		return 0, err
	}
	info := ci.CachedInfo()
	return int64(info.NumPending + uint64(info.NumAckPending)), nil
}

// dropShared removes a deleted queue's consumers and whatever messages are left of it from
// its shard.
func (e *Engine) dropShared(ctx context.Context, q *queue) error {
	cfg, _ := q.config()
	var cons []string
	for _, b := range cfg.levels() {
		cons = append(cons, q.names.consumer(b))
	}
	cons = append(cons, q.names.counter(StateDelayed), q.names.counter(StateBuried))
	for _, c := range cons {
		if err := e.js.DeleteConsumer(ctx, q.names.stream(), c); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return fmt.Errorf("delete consumer %s: %w", c, err)
		}
	}
	s, err := e.js.Stream(ctx, q.names.stream())
	if err == nil {
		err = s.Purge(ctx, jetstream.WithPurgeSubject(q.names.all()))
	}
	if err != nil {
		return fmt.Errorf("purge: %w", err)
	}
	return nil
}

// namesOf returns the names of the queue called name.
func (e *Engine) namesOf(ctx context.Context, name string) (names, error) {
	q, err := e.getQueue(ctx, name, false)
	if err != nil {
		return names{}, err
	}
	return q.names, nil
}
