package engine

import (
	"math/rand/v2"
	"sync"
	"time"
)

// idEpoch is the origin of the time part of job ids.
var idEpoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// ID layout: 41 bits of milliseconds since idEpoch (69 years), 10 bits of node, 12 bits of
// sequence within the millisecond. The top bit stays 0, so ids fit a signed 64-bit integer
// (the beanstalkd clients of most languages parse ids as such).
const (
	idSeqBits  = 12
	idNodeBits = 10
	idSeqMask  = 1<<idSeqBits - 1
	idNodeMask = 1<<idNodeBits - 1
)

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
