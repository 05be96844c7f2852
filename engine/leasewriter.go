package engine

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/spoolq/spool/engine/internal/store"
)

// leaseWriter stores the records of the leases this node holds in memory (leaseCache) once
// they are older than Config.LeaseWriteDelay: a reservation and the touches of a lease are
// answered from the node's table, and other nodes see them within the delay plus one tick
// of the writer. A job finished within the delay costs no reservation write at all.
type leaseWriter struct {
	e     *Engine
	delay time.Duration
}

func (w *leaseWriter) run(stop <-chan struct{}) {
	t := time.NewTicker(max(w.delay/2, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
			now := w.e.now()
			due, expired := w.e.leases.sweep(now.Add(-w.delay), now)
			w.store(ctx, due)
			w.e.expireLeases(ctx, expired)
			cancel()
		}
	}
}

// write stores the pending leases that became pending before t (all of them when t is
// zero). A lost compare-and-set means the job changed under the lease (a delete, a
// reservation of another delivery on another node): the lease is gone, and dropped so that
// its holder's next call reads the record and is refused.
func (w *leaseWriter) write(ctx context.Context, t time.Time) {
	w.store(ctx, w.e.leases.due(t))
}

func (w *leaseWriter) store(ctx context.Context, due []dueWrite) {
	e := w.e
	for len(due) > 0 {
		batch := due[:min(len(due), MaxBatch)]
		due = due[len(batch):]
		futs := make([]jetstream.PubAckFuture, 0, len(batch))
		sent := batch[:0:0]
		for _, d := range batch {
			fut, err := e.publishRecord(d.id, d.rec, d.seq, 0, true)
			if err != nil {
				e.log.Warn("write lease record", "job", d.id, "err", err)
				e.leases.unwritten(d.id, d.rec.LeaseID)
				continue
			}
			futs, sent = append(futs, fut), append(sent, d)
		}
		seqs, errs := store.Wait(ctx, futs)
		for i, err := range errs {
			d := sent[i]
			switch {
			case casLost(err):
				w.lost(ctx, d)
			case err != nil:
				// Tried again at the next tick; the lease still holds on this node.
				e.log.Warn("write lease record", "job", d.id, "err", err)
				e.leases.unwritten(d.id, d.rec.LeaseID)
			default:
				e.leases.written(d.id, d.rec.LeaseID, d.ver, seqs[i])
			}
		}
	}
}

// lost handles a write of d that lost its compare-and-set. An earlier write of the same
// lease whose answer never came (a timeout) may have landed: then the lease holds, over
// the stored record. Anything else changed the job: the lease is gone.
func (w *leaseWriter) lost(ctx context.Context, d dueWrite) {
	e := w.e
	stored, seq, err := e.readRecord(ctx, d.id)
	if err != nil || !stored.sameLease(d.rec) {
		e.leases.dropLease(d.id, d.rec.LeaseID)
		return
	}
	ver := d.ver
	if stored.LeaseExp != d.rec.LeaseExp {
		ver = ^uint64(0) // an older version landed: d's is still to write, over seq
	}
	e.leases.written(d.id, d.rec.LeaseID, ver, seq)
}

// leasePrefix + a node's lease tag is the subject on which that node writes the records of
// leases it holds in memory, when another node needs them: a call on a lease arriving at a
// node that did not grant it reads the lease's record, which must be stored first.
const leasePrefix = "spool.l."

// leaseSubject is the subject of the node whose lease tag is tag.
func leaseSubject(tag uint32) string { return leasePrefix + strconv.FormatUint(uint64(tag), 16) }

// leaseRef names one lease: its job and lease id.
type leaseRef struct {
	ID  uint64 `json:"id"`
	LID uint64 `json:"lid"`
}

// leaseTag is the tag of the node that granted lease lid (the high 32 bits).
func leaseTag(lid uint64) uint32 { return uint32(lid >> 32) }

// newLeaseID makes a lease id of this node: its tag, then 32 random bits.
func (e *Engine) newLeaseID() uint64 { return uint64(e.tag)<<32 | uint64(rand.Uint32()|1) }

// syncLeases asks the nodes holding refs (those granted by other nodes) to store their
// records now, one request per node. A node that does not answer is gone, and its leases
// with it: the caller then reads records that do not show them, and refuses the call.
func (e *Engine) syncLeases(ctx context.Context, refs []leaseRef) {
	byTag := make(map[uint32][]leaseRef)
	for _, r := range refs {
		if t := leaseTag(r.LID); t != e.tag {
			byTag[t] = append(byTag[t], r)
		}
	}
	for tag, rs := range byTag {
		body, _ := json.Marshal(rs)
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := e.nc.RequestWithContext(rctx, leaseSubject(tag), body)
		cancel()
		if err != nil && !errors.Is(err, nats.ErrNoResponders) {
			e.log.Warn("ask a lease's node to store it", "node", tag, "err", err)
		}
	}
}

// onLeaseSync stores the records of the leases another node asks for.
func (e *Engine) onLeaseSync(m *nats.Msg) {
	var refs []leaseRef
	if err := json.Unmarshal(m.Data, &refs); err != nil {
		e.log.Warn("bad lease sync request", "err", err)
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		var due []dueWrite
		for _, r := range refs {
			if d, ok := e.leases.pendingOne(r.ID, r.LID); ok {
				due = append(due, d)
			}
		}
		e.lw.store(ctx, due)
		m.Respond(nil)
	}()
}

// errNotExpired: the lease was extended meanwhile.
var errNotExpired = errors.New("lease not expired")

// expireLeases gives back the jobs of the delivery leases this node granted whose time ran
// out: ready again at once (or buried when their attempts are used up and their queue has
// no dead-letter queue), with a timeout counted, as beanstalkd does at the end of a ttr.
// JetStream would offer such a job again only at the next pull of its level, and meanwhile
// count it as reserved: a queue whose workers all died would show its jobs reserved, and its
// oldest ready job would not age. The holder's late call is then refused (lease_lost).
// Leases of a node that died are JetStream's to offer again (at their level's next pull).
func (e *Engine) expireLeases(ctx context.Context, expired []leaseRef) {
	for _, l := range expired {
		_, err := e.withLease(ctx, l.ID, formatToken(l.LID), func(rec *record, seq uint64) (*Job, error) {
			if rec.LeaseExp > e.now().UnixNano() {
				return nil, errNotExpired
			}
			q, payload, err := e.reservedPayload(ctx, rec)
			if err != nil {
				return nil, err
			}
			next := *rec
			next.Timeouts++
			st := StateReady
			// Out of attempts: buried, or, with a dead-letter queue, made ready for the
			// next reservation to move it there (as Fail does).
			if cfg, _ := q.config(); next.Attempts >= next.MaxAttempts && cfg.DeadLetter == "" {
				st, next.LastError = StateBuried, cmpOr(next.LastError, "attempts exhausted")
			}
			j, err := e.moveLeased(ctx, q, l.ID, &next, rec, seq, payload, st, time.Time{})
			if err == nil {
				e.stats.add(q.names.esc, cTimeouts, 1)
				e.emit(EventExpired, l.ID, &next)
			}
			return j, err
		})
		switch {
		case err == nil, errors.Is(err, errNotExpired), errors.Is(err, ErrLeaseLost), errors.Is(err, ErrJobNotFound):
		default:
			e.log.Warn("give back a job whose lease ran out", "job", l.ID, "err", err)
		}
	}
}
