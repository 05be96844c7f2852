package engine

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/spoolq/spool/engine/internal/store"
)

// Derived job ids name their job's first message through chunks, so that they stay below
// 2^53 (JavaScript's safe integers) however many jobs a queue sees. A queue stream's
// sequences are cut in chunks of 2^chunkBits; each (queue, chunk index) pair that holds
// jobs gets a chunk number, unique in the cluster and never reused, the first time a job
// lands in it: a compare-and-set on a counter, then two bucket entries, one write per
// 2^chunkBits jobs. A derived id is the derived bit, the chunk number and the offset of the
// message in its chunk; its message is found at sequence index·2^chunkBits + offset of
// the chunk's queue. Every node learns chunks from the queue bucket it watches, and reads
// the bucket for one it has not seen yet.
const (
	chunkBits   = 20
	chunkMax    = 1<<32 - 1 // highest chunk number
	chunkPrefix = "_c"      // _c<chunk> → "<queue number>.<index>"
	chunkKeyPre = "_k"      // _k<queue number>.<index> → chunk number
)

// chunkSubject holds the last chunk number given out, in the records stream.
const chunkSubject = jobsPrefix + "chunks"

// chunkRef is what a chunk number stands for: a chunk of a queue's stream.
type chunkRef struct {
	num uint32 // the queue's number
	idx uint64 // the chunk's index in the stream: sequences idx<<chunkBits ...
}

// chunks is a node's map of chunk numbers, both ways.
type chunks struct {
	mu      sync.RWMutex
	refs    map[uint32]chunkRef
	byRef   map[chunkRef]uint32
	pending map[chunkRef]bool // being taken in the background
}

func newChunks() *chunks {
	return &chunks{refs: make(map[uint32]chunkRef), byRef: make(map[chunkRef]uint32), pending: make(map[chunkRef]bool)}
}

func (c *chunks) claim(r chunkRef) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending[r] {
		return false
	}
	c.pending[r] = true
	return true
}

func (c *chunks) unclaim(r chunkRef) {
	c.mu.Lock()
	delete(c.pending, r)
	c.mu.Unlock()
}

func (c *chunks) add(chunk uint32, r chunkRef) {
	c.mu.Lock()
	c.refs[chunk] = r
	c.mu.Unlock()
}

// setWinner records the chunk number of r. Two nodes may have drawn a number for the same
// chunk: only the bucket's create-only entry _k<r> says which one ids use.
func (c *chunks) setWinner(r chunkRef, chunk uint32) {
	c.mu.Lock()
	c.byRef[r] = chunk
	c.mu.Unlock()
}

func (c *chunks) ref(chunk uint32) (chunkRef, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	r, ok := c.refs[chunk]
	return r, ok
}

func chunkKey(r chunkRef) string {
	return chunkKeyPre + strconv.FormatUint(uint64(r.num), 10) + "." + strconv.FormatUint(r.idx, 10)
}

func chunkRefKey(chunk uint32) string { return chunkPrefix + strconv.FormatUint(uint64(chunk), 10) }

func parseChunkRef(s string) (chunkRef, bool) {
	a, b, ok := strings.Cut(s, ".")
	if !ok {
		return chunkRef{}, false
	}
	num, err1 := strconv.ParseUint(a, 10, 32)
	idx, err2 := strconv.ParseUint(b, 10, 64)
	return chunkRef{uint32(num), idx}, err1 == nil && err2 == nil
}

// applyChunkEntry learns a chunk from the queue bucket's watch; it reports whether the key
// was a chunk's.
func (e *Engine) applyChunkEntry(ent jetstream.KeyValueEntry) bool {
	key := ent.Key()
	switch {
	case strings.HasPrefix(key, chunkPrefix):
		chunk, err := strconv.ParseUint(key[len(chunkPrefix):], 10, 32)
		r, ok := parseChunkRef(string(ent.Value()))
		if err == nil && ok && ent.Operation() == jetstream.KeyValuePut {
			e.chunks.add(uint32(chunk), r)
		}
		return true
	case strings.HasPrefix(key, chunkKeyPre):
		r, ok := parseChunkRef(key[len(chunkKeyPre):])
		chunk, err := strconv.ParseUint(string(ent.Value()), 10, 32)
		if ok && err == nil && ent.Operation() == jetstream.KeyValuePut {
			e.chunks.add(uint32(chunk), r)
			e.chunks.setWinner(r, uint32(chunk))
		}
		return true
	}
	return false
}

// errNoChunk: chunk numbers have run out; the queue's new jobs get generated ids.
var errNoChunk = errors.New("chunk numbers used up")

// deriveID returns the derived id of the job whose first message is at seq in q's stream,
// taking a chunk number for the message's chunk if it has none yet.
func (e *Engine) deriveID(ctx context.Context, q *queue, seq uint64) (uint64, error) {
	cfg, _ := q.config()
	if cfg.Num == 0 || seq == 0 {
		return 0, fmt.Errorf("%w: no job id", errBadMsg)
	}
	r := chunkRef{cfg.Num, seq >> chunkBits}
	e.chunks.mu.RLock()
	chunk, ok := e.chunks.byRef[r]
	e.chunks.mu.RUnlock()
	if !ok {
		var err error
		if chunk, err = e.takeChunk(ctx, r, q.madeHere.CompareAndSwap(true, false)); err != nil {
			return 0, err
		}
	}
	return derivedID(chunk, seq), nil
}

// prepareChunk takes, in the background, the chunk number of the chunk after seq's once
// seq is three quarters through its own, so that enqueues seldom wait for one.
func (e *Engine) prepareChunk(q *queue, seq uint64) {
	if seq&(1<<chunkBits-1) < 3<<(chunkBits-2) {
		return
	}
	cfg, _ := q.config()
	r := chunkRef{cfg.Num, seq>>chunkBits + 1}
	e.chunks.mu.RLock()
	_, known := e.chunks.byRef[r]
	e.chunks.mu.RUnlock()
	if known || e.closed() || !e.chunks.claim(r) {
		return
	}
	// Not in e.wg: an enqueue may still run while Close waits for the engine's loops.
	go func() {
		defer e.chunks.unclaim(r)
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		if _, err := e.takeChunk(ctx, r, q.madeHere.CompareAndSwap(true, false)); err != nil && !errors.Is(err, errNoChunk) && !e.closed() {
			e.log.Warn("take the next chunk number", "queue", q.name, "err", err)
		}
	}()
}

// takeChunk finds or gives out the chunk number of r. Several nodes may draw a number for
// the same chunk at once: the create-only entry _k<r> settles which one stands. Unless
// fresh (r's queue was made here: the chunk is most likely new), the entry is read first.
func (e *Engine) takeChunk(ctx context.Context, r chunkRef, fresh bool) (uint32, error) {
	if !fresh {
		ent, err := e.kv.Get(ctx, chunkKey(r))
		if err == nil {
			return e.learnChunkKey(r, ent)
		}
		if !errors.Is(err, jetstream.ErrKeyNotFound) {
			return 0, fmt.Errorf("read chunk: %w", err)
		}
	}
	n, err := e.cnums.take(ctx, e)
	if err != nil {
		return 0, fmt.Errorf("take chunk number: %w", err)
	}
	if n == 0 {
		return 0, errNoChunk
	}
	chunk := uint32(n)
	// The number's meaning first, so that no node meets an id it cannot resolve.
	val := strconv.FormatUint(uint64(r.num), 10) + "." + strconv.FormatUint(r.idx, 10)
	if _, err := e.kv.Create(ctx, chunkRefKey(chunk), []byte(val)); err != nil {
		return 0, fmt.Errorf("store chunk: %w", err)
	}
	if _, err := e.kv.Create(ctx, chunkKey(r), strconv.AppendUint(nil, n, 10)); errors.Is(err, jetstream.ErrKeyExists) {
		ent, err := e.getKnown(ctx, chunkKey(r))
		if err != nil {
			return 0, fmt.Errorf("read chunk: %w", err)
		}
		return e.learnChunkKey(r, ent)
	} else if err != nil {
		return 0, fmt.Errorf("store chunk: %w", err)
	}
	e.chunks.add(chunk, r)
	e.chunks.setWinner(r, chunk)
	return chunk, nil
}

func (e *Engine) learnChunkKey(r chunkRef, ent jetstream.KeyValueEntry) (uint32, error) {
	n, err := strconv.ParseUint(string(ent.Value()), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("chunk entry %s: %w", ent.Key(), err)
	}
	e.chunks.add(uint32(n), r)
	e.chunks.setWinner(r, uint32(n))
	return uint32(n), nil
}

// locate returns the queue and the stream sequence of the first message of the job with
// derived id id, ErrJobNotFound when no queue (any more) has that chunk.
func (e *Engine) locate(ctx context.Context, id uint64) (*queue, uint64, error) {
	chunk, off, ok := splitDerived(id)
	if !ok {
		return nil, 0, ErrJobNotFound
	}
	r, ok := e.chunks.ref(chunk)
	if !ok {
		ent, err := e.kv.Get(ctx, chunkRefKey(chunk))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, 0, ErrJobNotFound
		}
		if err != nil {
			return nil, 0, fmt.Errorf("read chunk: %w", err)
		}
		if r, ok = parseChunkRef(string(ent.Value())); !ok {
			return nil, 0, fmt.Errorf("chunk entry %s: malformed", ent.Key())
		}
		e.chunks.add(chunk, r)
	}
	q, err := e.queueOfNum(ctx, r.num)
	if errors.Is(err, ErrQueueNotFound) {
		return nil, 0, ErrJobNotFound
	}
	if err != nil {
		return nil, 0, err
	}
	return q, r.idx<<chunkBits | off, nil
}

// takeCounter takes the next n values of a counter (fewer if max comes first): first to
// last. first is 0 once the counter has reached max.
func (e *Engine) takeCounter(ctx context.Context, subject string, n, max uint64) (first, last uint64, err error) {
	for try := range 20 {
		var cur, seq uint64
		m, err := e.st.Last(ctx, jobsStream, subject)
		switch {
		case errors.Is(err, store.ErrNoMsg):
		case err != nil:
			return 0, 0, fmt.Errorf("read counter %s: %w", subject, err)
		default:
			seq = m.Seq
			if cur, err = strconv.ParseUint(string(m.Data), 10, 64); err != nil {
				return 0, 0, fmt.Errorf("read counter %s: %w", subject, err)
			}
		}
		if cur >= max {
			return 0, 0, nil
		}
		next := cur + min(n, max-cur)
		_, err = e.st.PublishSync(ctx, &nats.Msg{Subject: subject, Data: strconv.AppendUint(nil, next, 10)},
			jetstream.WithExpectLastSequencePerSubject(seq))
		if err == nil {
			return cur + 1, next, nil
		}
		if !casLost(err) {
			return 0, 0, fmt.Errorf("take %s: %w", subject, err)
		}
		if err := casBackoff(ctx, try); err != nil {
			return 0, 0, err
		}
	}
	return 0, 0, fmt.Errorf("take %s: too much contention", subject)
}
