package engine

import (
	"math/rand/v2"
	"sync"
	"time"
)

// idEpoch is the origin of the time part of job ids.
var idEpoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// Job ids are below 2^63, so that they fit a signed 64-bit integer (the beanstalkd clients
// of most languages parse ids as such), and come in two kinds told apart by bit 62.
//
// A generated id (bit 62 clear) is 41 bits of milliseconds since idEpoch (69 years), 9 bits
// of node and 12 bits of sequence within the millisecond. Jobs that are delayed, unique or
// given an id by their caller have one, and a record from their enqueue on.
//
// A derived id (bit 62 set) is a queue number (20 bits) and the stream sequence (42 bits) of
// the job's first message in that queue's stream. A job enqueued ready gets one: its id is
// known from the stored message alone, so the enqueue is one write, and the job's record is
// only created when something happens to it (its reservation, a delete, a kick...).
const (
	idSeqBits  = 12
	idNodeBits = 9
	idSeqMask  = 1<<idSeqBits - 1
	idNodeMask = 1<<idNodeBits - 1

	derivedBit  = uint64(1) << 62
	queueNumMax = 1<<20 - 1 // highest queue number
	msgSeqBits  = 42
	// msgSeqLimit is the highest stream sequence a derived id is made from. It stays 2^32
	// short of the 42 bits, so that the jobs in flight when a node notices the limit still
	// get valid ids; later jobs of the queue get generated ids.
	msgSeqLimit = 1<<msgSeqBits - 1<<32
)

// derivedID is the id of the job whose first message is seq in the stream of queue num.
func derivedID(num uint32, seq uint64) (uint64, bool) {
	if num == 0 || num > queueNumMax || seq == 0 || seq >= 1<<msgSeqBits {
		return 0, false
	}
	return derivedBit | uint64(num)<<msgSeqBits | seq, true
}

// splitDerived returns the queue number and first message sequence of a derived id.
func splitDerived(id uint64) (num uint32, seq uint64, ok bool) {
	if id&derivedBit == 0 || id>>63 != 0 {
		return 0, 0, false
	}
	return uint32(id>>msgSeqBits) & queueNumMax, id & (1<<msgSeqBits - 1), true
}

// idGen makes ids that are unique without coordination in practice: the node part is drawn
// at random per process, and the rare collision of two nodes with the same draw in the same
// millisecond is caught by the create-only write of the job record, which then retries with
// a fresh id.
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
		// 4096 ids in one millisecond: borrow the next one, so ids stay increasing even
		// under bursts or a clock that steps back.
		g.last, g.seq = g.last+1, 0
	}
	return g.last<<(idSeqBits+idNodeBits) | g.node<<idSeqBits | g.seq
}
