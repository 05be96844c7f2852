package engine

import (
	"sync"
	"time"
)

// leaseGrace is how long a lease whose record is stored stays in its node's table after its
// end, should giving its job back have failed (expireLeases): a safety net, not a promise.
const leaseGrace = time.Minute

// leaseCache is the table of the leases this node handed out. While the node lives it is
// the truth about them: a reservation answers once its lease is in the table, and the
// record that says "reserved" is written behind (leaseWriter), so that a job finished
// within the write-behind delay never has its reservation stored at all. A lease is
// pending while the table holds a newer version of its record than JetStream (a
// reservation or a touch not written yet); seq is the stored record's sequence (0: none),
// the key of the next compare-and-set. Whatever changes the job elsewhere (a delete, a
// redelivery reserved on another node) changes the stored record, so the holder's next
// compare-and-set, or the write-behind's, fails and the lease is dropped: a stale holder
// is refused.
type leaseCache struct {
	mu sync.Mutex
	m  map[uint64]*cachedLease
}

type cachedLease struct {
	rec     *record
	seq     uint64
	pending bool      // rec is not stored yet
	since   time.Time // when rec became pending
	ver     uint64    // bumped at every change of rec
	// writing: a write of rec is in flight (the writer's, or one another node asked for).
	writing bool
	// sent: a write of the lease's record was sent once; its outcome may be unknown (a
	// timeout), so the lease is never finished without a record (finish).
	sent bool
	// finishing is closed once an ack without a record (finish) has ended; nil otherwise.
	finishing chan struct{}
}

func newLeaseCache() *leaseCache { return &leaseCache{m: make(map[uint64]*cachedLease)} }

// put records a lease whose record is stored at seq.
func (c *leaseCache) put(id uint64, rec *record, seq uint64) {
	c.mu.Lock()
	c.m[id] = &cachedLease{rec: rec, seq: seq}
	c.mu.Unlock()
}

// putPending records a lease whose record is to be written behind over seq.
func (c *leaseCache) putPending(id uint64, rec *record, seq uint64, now time.Time) {
	c.mu.Lock()
	c.m[id] = &cachedLease{rec: rec, seq: seq, pending: true, since: now}
	c.mu.Unlock()
}

// get returns the record of id when it is the lease lid, and its stored sequence.
func (c *leaseCache) get(id, lid uint64) (*record, uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.m[id]
	if !ok || l.rec.LeaseID != lid {
		return nil, 0, false
	}
	return l.rec, l.seq, true
}

// lookup returns the lease this node holds on id, if any.
func (c *leaseCache) lookup(id uint64) (*record, uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.m[id]
	if !ok {
		return nil, 0, false
	}
	return l.rec, l.seq, true
}

// update replaces the record of lease lid of id with rec, to be written behind. It reports
// false when the table no longer holds that lease.
func (c *leaseCache) update(id, lid uint64, rec *record, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.m[id]
	if !ok || l.rec.LeaseID != lid {
		return false
	}
	l.rec, l.ver = rec, l.ver+1
	if !l.pending {
		l.pending, l.since = true, now
	}
	return true
}

func (c *leaseCache) drop(id uint64) {
	c.mu.Lock()
	delete(c.m, id)
	c.mu.Unlock()
}

// dropLease removes lease lid of id, not a newer lease of the same job.
func (c *leaseCache) dropLease(id, lid uint64) {
	c.mu.Lock()
	if l, ok := c.m[id]; ok && l.rec.LeaseID == lid {
		delete(c.m, id)
	}
	c.mu.Unlock()
}

// dueWrite is a pending lease to write: its record as of version ver, over seq.
type dueWrite struct {
	id  uint64
	rec *record
	seq uint64
	ver uint64
}

// due returns the pending leases that became pending before t (all of them when t is
// zero).
func (c *leaseCache) due(t time.Time) []dueWrite {
	due, _ := c.sweep(t, time.Time{})
	return due
}

// sweep returns, in one pass over the table, the pending leases that became pending before
// t (all of them when t is zero) and, unless now is zero, the delivery leases whose time ran
// out before now; it drops the stored leases that ended more than leaseGrace before now.
func (c *leaseCache) sweep(t, now time.Time) (due []dueWrite, expired []leaseRef) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, l := range c.m {
		if l.pending && !l.writing && l.finishing == nil && (t.IsZero() || l.since.Before(t)) {
			due = append(due, dueWrite{id, l.rec, l.seq, l.ver})
			l.writing, l.sent = true, true
		}
		if now.IsZero() {
			continue
		}
		switch {
		case !l.pending && l.rec.LeaseExp+int64(leaseGrace) < now.UnixNano():
			delete(c.m, id)
		case !l.rec.byID() && l.rec.State == StateReserved && l.rec.LeaseExp <= now.UnixNano():
			expired = append(expired, leaseRef{id, l.rec.LeaseID})
		}
	}
	return due, expired
}

// pendingOne returns lease lid of id if it is pending.
func (c *leaseCache) pendingOne(id, lid uint64) (dueWrite, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.m[id]
	if !ok || !l.pending || l.rec.LeaseID != lid || l.finishing != nil {
		return dueWrite{}, false
	}
	l.writing, l.sent = true, true
	return dueWrite{id, l.rec, l.seq, l.ver}, true
}

// settle prepares a change of id made elsewhere than through its lease (a delete): it
// returns a channel to wait on when an ack without a record is under way, or else the
// lease's record to store first when none was ever sent, so that such an ack can no longer
// start and the change's compare-and-set decides against the lease's.
func (c *leaseCache) settle(id uint64) (wait <-chan struct{}, write []dueWrite) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.m[id]
	switch {
	case !ok:
		return nil, nil
	case l.finishing != nil:
		return l.finishing, nil
	case l.seq == 0 && !l.sent:
		l.writing, l.sent = true, true
		return nil, []dueWrite{{id, l.rec, l.seq, l.ver}}
	}
	return nil, nil
}

// unwritten notes that a write of id's lease record failed: it is tried again.
func (c *leaseCache) unwritten(id, lid uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if l, ok := c.m[id]; ok && l.rec.LeaseID == lid {
		l.writing = false
	}
}

// finish marks lease lid of id as ending without a record, when no write of its record
// was ever sent: the writer then leaves it alone, and a delete waits for the outcome
// (settle). The caller calls finished once the ack is answered.
func (c *leaseCache) finish(id, lid uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.m[id]
	if !ok || l.rec.LeaseID != lid || l.seq != 0 || l.sent || l.finishing != nil {
		return false
	}
	l.finishing = make(chan struct{})
	return true
}

// finished ends what finish began: the lease leaves the table, whatever the ack's outcome
// (an ack that failed may have been taken).
func (c *leaseCache) finished(id, lid uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.m[id]
	if !ok || l.rec.LeaseID != lid || l.finishing == nil {
		return
	}
	close(l.finishing)
	delete(c.m, id)
}

// written notes that version ver of id's lease record is stored at seq.
func (c *leaseCache) written(id, lid, ver, seq uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.m[id]
	if !ok || l.rec.LeaseID != lid {
		return
	}
	l.seq, l.writing = seq, false
	if l.ver == ver {
		l.pending = false
	}
}

// over returns the record of id as this node knows it best, given what JetStream holds
// (stored, at seq; found false when there is no record): the lease this node holds when the
// stored record is the one that lease knows (none, for a lease not written yet), since its
// reservation and touches may not be stored yet. A stored record that changed since (a
// delete, another delivery reserved on another node) means the lease is gone: it is dropped.
// A stored record of the lease itself that the table does not know yet is the write-behind's,
// stored but not answered yet: the lease holds, with seq as the key of a compare-and-set.
func (c *leaseCache) over(id uint64, stored *record, seq uint64, found bool) (*record, uint64, bool) {
	lrec, lseq, ok := c.lookup(id)
	switch {
	case !ok:
		return stored, seq, found
	case !found && lseq == 0, found && seq == lseq:
		return lrec, lseq, true
	case found && stored.sameLease(lrec):
		return lrec, seq, true
	case found:
		c.dropLease(id, lrec.LeaseID)
	}
	return stored, seq, found
}

// sameLease reports whether r, a stored record, is a version of the delivery lease l: this
// lease, on the same delivery (a reservation elsewhere that kept the lease moved it onto
// another one).
func (r *record) sameLease(l *record) bool {
	return r.State == StateReserved && r.LeaseID == l.LeaseID && r.Ack == l.Ack
}
