package engine

import (
	"math/rand/v2"
	"sync"
	"time"
)

// idEpoch is the origin of the time part of generated job ids.
var idEpoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// Job ids are below 2^53, so that JavaScript clients, which hold numbers as doubles, keep
// them exact, and come in two kinds told apart by bit 52.
//
// A derived id (bit 52 set) is a chunk number (32 bits) and an offset (20 bits): the job's
// first message is that offset into that chunk of a queue's stream (chunk.go). A job
// enqueued ready gets one: its id is known from the stored message alone, so the enqueue is
// one write, and the job's record is only created when something happens to it.
//
// A generated id (bit 52 clear) is 41 bits of milliseconds since idEpoch (69 years), 3 bits
// of node and 8 bits of sequence within the millisecond. Jobs that are delayed, unique or
// given an id by their caller (below 2^52) have one, and a record from their enqueue on,
// whose create-only write catches the collision of two nodes that drew the same node bits
// in the same millisecond: the enqueue then retries with a fresh id.
const (
	idSeqBits  = 8
	idNodeBits = 3
	idSeqMask  = 1<<idSeqBits - 1
	idNodeMask = 1<<idNodeBits - 1

	// MaxJobID is the highest job id: ids fit a double exactly.
	MaxJobID = 1<<53 - 1
	// MaxChosenID is the highest id a caller may give a job (generated-id space).
	MaxChosenID = derivedBit - 1

	derivedBit = uint64(1) << 52
)

// derivedID is the id of the job whose first message is seq, in chunk (which holds seq).
func derivedID(chunk uint32, seq uint64) uint64 {
	return derivedBit | uint64(chunk)<<chunkBits | seq&(1<<chunkBits-1)
}

// splitDerived returns the chunk and the offset in it of a derived id.
func splitDerived(id uint64) (chunk uint32, off uint64, ok bool) {
	if id&derivedBit == 0 || id > MaxJobID {
		return 0, 0, false
	}
	return uint32(id>>chunkBits) & chunkMax, id & (1<<chunkBits - 1), true
}

// idGen makes generated ids: unique without coordination in practice (the node part is
// drawn at random per process; see above for collisions) and increasing per node.
type idGen struct {
	mu   sync.Mutex
	node uint64
	last uint64 // last millisecond used
	seq  uint64
	now  func() time.Time
}

func newIDGen(now func() time.Time) *idGen {
	return &idGen{node: rand.Uint64() & idNodeMask, now: now}
}

func (g *idGen) next() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	ms := uint64(g.now().Sub(idEpoch).Milliseconds())
	switch {
	case ms > g.last:
		g.last, g.seq = ms, 0
	case g.seq < idSeqMask:
		g.seq++
	default:
		// 256 ids in one millisecond: borrow the next one, so ids stay increasing even
		// under bursts or a clock that steps back.
		g.last, g.seq = g.last+1, 0
	}
	return g.last<<(idSeqBits+idNodeBits) | g.node<<idSeqBits | g.seq
}
