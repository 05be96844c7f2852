package engine

import "sync"

// leaseCacheMax bounds the leases a node remembers (a few hundred bytes each).
const leaseCacheMax = 100_000

// leaseCache remembers the records of the leases this node handed out, so that the holder's
// ack, fail or touch can compare-and-set without reading the record first. It is a hint: a
// stale entry (the job changed through another node) loses its compare-and-set, and the
// operation falls back to reading the record.
type leaseCache struct {
	mu sync.Mutex
	m  map[uint64]cachedLease
}

type cachedLease struct {
	rec *record
	seq uint64
}

func newLeaseCache() *leaseCache { return &leaseCache{m: make(map[uint64]cachedLease)} }

func (c *leaseCache) put(id uint64, rec *record, seq uint64) {
	c.mu.Lock()
	if len(c.m) < leaseCacheMax {
		c.m[id] = cachedLease{rec, seq}
	}
	c.mu.Unlock()
}

// get returns the cached record of id when it is the lease lid.
func (c *leaseCache) get(id, lid uint64) (*record, uint64, bool) {
	c.mu.Lock()
	l, ok := c.m[id]
	c.mu.Unlock()
	if !ok || l.rec.LeaseID != lid {
		return nil, 0, false
	}
	return l.rec, l.seq, true
}

func (c *leaseCache) drop(id uint64) {
	c.mu.Lock()
	delete(c.m, id)
	c.mu.Unlock()
}
