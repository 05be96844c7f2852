package engine

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/spoolq/spool/internal/natsd"
)

// internalEngine opens an engine on a fresh embedded JetStream, for tests that look at the
// engine's storage.
func internalEngine(t *testing.T, cfg ...Config) (*Engine, *nats.Conn, context.Context) {
	t.Helper()
	ns, err := natsd.Start(context.Background(), natsd.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	nc, err := natsd.Connect(ns, "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	c := Config{}
	if len(cfg) > 0 {
		c = cfg[0]
	}
	c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	e, err := Open(ctx, nc, c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e, nc, ctx
}

// secondEngine opens another engine (another node) on first's JetStream.
func secondEngine(t *testing.T, ctx context.Context, nc *nats.Conn, first *Engine) *Engine {
	t.Helper()
	e, err := Open(ctx, nc, Config{Logger: first.log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func enqueueOne(t *testing.T, e *Engine, ctx context.Context, r EnqueueRequest) *Job {
	t.Helper()
	res, err := e.Enqueue(ctx, []EnqueueRequest{r})
	if err != nil || res[0].Err != nil {
		t.Fatalf("enqueue %+v: %v %v", r, err, res[0].Err)
	}
	return res[0].Job
}

func noRecord(t *testing.T, e *Engine, ctx context.Context, id uint64) {
	t.Helper()
	if rec, _, err := e.readRecord(ctx, id); !errors.Is(err, ErrJobNotFound) {
		t.Fatalf("job %d has a record: %+v %v", id, rec, err)
	}
}

func TestIDKinds(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		chunk uint32
		seq   uint64
	}{{1, 1}, {chunkMax, 1<<chunkBits - 1}, {77, 5<<chunkBits | 3}, {9, 1 << 50}} {
		id := derivedID(c.chunk, c.seq)
		if id > MaxJobID || id&derivedBit == 0 {
			t.Fatalf("derivedID(%d, %d) = %d: not a derived id below 2^53", c.chunk, c.seq, id)
		}
		if chunk, off, ok := splitDerived(id); !ok || chunk != c.chunk || off != c.seq&(1<<chunkBits-1) {
			t.Fatalf("splitDerived(%d) = %d %d %v, want %d %d", id, chunk, off, ok, c.chunk, c.seq)
		}
	}
	if _, _, ok := splitDerived(MaxJobID + 1); ok {
		t.Fatal("an id past 2^53 reads as derived")
	}
	// Generated ids stay below the derived ones for the 69 years of their time part.
	late := idEpoch.Add(69 * 365 * 24 * time.Hour)
	g := newIDGen(func() time.Time { return late })
	for range 5000 {
		if id := g.next(); id > MaxChosenID {
			t.Fatalf("generated id %d is past 2^52", id)
		}
	}
	if _, _, ok := splitDerived(g.next()); ok {
		t.Fatal("a generated id reads as derived")
	}
}

// A job enqueued ready is one message: no record until something happens to it. Its id
// names its queue and its message, so it is found by id all the same.
func TestFreshJobIsOneWriteAndFoundByID(t *testing.T) {
	t.Parallel()
	e, _, ctx := internalEngine(t)
	a := enqueueOne(t, e, ctx, EnqueueRequest{Queue: "a", Payload: []byte("one"), Priority: 5})
	b := enqueueOne(t, e, ctx, EnqueueRequest{Queue: "b", Payload: []byte("two")})
	delayed := enqueueOne(t, e, ctx, EnqueueRequest{Queue: "a", Delay: time.Hour})
	unique := enqueueOne(t, e, ctx, EnqueueRequest{Queue: "a", UniqueKey: "k", Priority: 10})
	for _, j := range []*Job{a, b} {
		if _, _, ok := splitDerived(j.ID); !ok {
			t.Fatalf("ready job %d has no derived id", j.ID)
		}
		noRecord(t, e, ctx, j.ID)
	}
	if a.ID == b.ID {
		t.Fatal("two queues gave the same id")
	}
	for _, j := range []*Job{delayed, unique} {
		if _, _, ok := splitDerived(j.ID); ok {
			t.Fatalf("job %d (delayed or unique) has a derived id", j.ID)
		}
		if _, _, err := e.readRecord(ctx, j.ID); err != nil {
			t.Fatalf("job %d (delayed or unique) has no record: %v", j.ID, err)
		}
	}
	got, err := e.Job(ctx, a.ID)
	if err != nil || got.State != StateReady || string(got.Payload) != "one" || got.Priority != 5 || got.Queue != "a" {
		t.Fatalf("fresh job by id: %+v %v", got, err)
	}
	if _, err := e.Job(ctx, a.ID+1); !errors.Is(err, ErrJobNotFound) {
		t.Fatalf("the id of the next message (the delayed job's) reads as a job: %v", err)
	}

	r, err := e.Reserve(ctx, ReserveRequest{Queues: []string{"a"}})
	if err != nil || len(r.Jobs) != 1 || r.Jobs[0].Job.ID != a.ID || r.Jobs[0].Job.Attempts != 1 {
		t.Fatalf("reserve: %+v %v", r, err)
	}
	// The reservation is answered from this node's lease table; its record comes behind.
	if j, err := e.Job(ctx, a.ID); err != nil || j.State != StateReserved {
		t.Fatalf("the holder's node reads the job: %+v %v", j, err)
	}
	e.lw.write(ctx, time.Time{})
	if rec, _, err := e.readRecord(ctx, a.ID); err != nil || rec.State != StateReserved || rec.LeaseID == 0 {
		t.Fatalf("record after the reservation's write-behind: %+v %v", rec, err)
	}
	if _, err := e.Release(ctx, a.ID, r.Jobs[0].Token, ReleaseRequest{}); err != nil {
		t.Fatal(err)
	}
	// Released: a new message, with the id in it.
	again, err := e.Reserve(ctx, ReserveRequest{Queues: []string{"a"}})
	if err != nil || len(again.Jobs) != 1 || again.Jobs[0].Job.ID != a.ID || again.Jobs[0].Job.Releases != 1 {
		t.Fatalf("reserve after release: %+v %v", again, err)
	}
	if _, err := e.Ack(ctx, a.ID, again.Jobs[0].Token, nil); err != nil {
		t.Fatal(err)
	}
	if j, err := e.Job(ctx, a.ID); err != nil || j.State != StateSucceeded {
		t.Fatalf("after ack: %+v %v", j, err)
	}
}

// A delete that comes between a fresh job's pull and its reservation's answer: the
// reservation, which took the job first (at the pull), may hand it out, but the delete
// stands: the holder is refused, the job reads cancelled on every node and is never
// offered again.
func TestDeleteBeatsReservationOfFreshJob(t *testing.T) {
	t.Parallel()
	e, _, ctx := internalEngine(t)
	j := enqueueOne(t, e, ctx, EnqueueRequest{Queue: "q"})
	q, err := e.getQueue(ctx, "q", false)
	if err != nil {
		t.Fatal(err)
	}
	b := int(j.Priority)
	msgs, err := e.pull(ctx, q, b, 1, time.Second)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("pull: %d %v", len(msgs), err)
	}
	if _, err := e.Delete(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	got := e.activate(ctx, q, b, msgs, "w")
	if got, err := e.Job(ctx, j.ID); err != nil || got.State != StateCancelled {
		t.Fatalf("after delete: %+v %v", got, err)
	}
	for _, r := range got {
		if _, err := e.Ack(ctx, r.Job.ID, r.Token, nil); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("ack of the deleted job: %v, want ErrLeaseLost", err)
		}
	}
	e.lw.write(ctx, time.Time{})
	if got, err := e.Job(ctx, j.ID); err != nil || got.State != StateCancelled {
		t.Fatalf("after the write-behind: %+v %v", got, err)
	}
	if r, err := e.Reserve(ctx, ReserveRequest{Queues: []string{"q"}, Wait: 300 * time.Millisecond}); err != nil || len(r.Jobs) != 0 {
		t.Fatalf("reserve after delete: %+v %v", r, err)
	}

	// The other way round: reserved first, then cancelled by a node that read the job
	// before the reservation (no record: its compare-and-set against sequence 0 creates
	// the cancelled record). The lease's write-behind loses and drops the lease; the
	// holder is refused.
	k := enqueueOne(t, e, ctx, EnqueueRequest{Queue: "q"})
	rec, seq, m, err := e.readJob(ctx, k.ID)
	if err != nil || seq != 0 || m == nil || rec.State != StateReady {
		t.Fatalf("readJob of a fresh job: %+v %d %v %v", rec, seq, m, err)
	}
	held, err := e.Reserve(ctx, ReserveRequest{Queues: []string{"q"}})
	if err != nil || len(held.Jobs) != 1 {
		t.Fatalf("reserve: %+v %v", held, err)
	}
	next := *rec
	next.State = StateCancelled
	if _, err := e.commitRecord(ctx, k.ID, &next, seq, 0); err != nil {
		t.Fatal(err)
	}
	e.lw.write(ctx, time.Time{})
	if _, _, ok := e.leases.lookup(k.ID); ok {
		t.Fatal("the lease survived a write-behind that lost its compare-and-set")
	}
	if j, err := e.Job(ctx, k.ID); err != nil || j.State != StateCancelled {
		t.Fatalf("the holder's node reads the cancelled job: %+v %v", j, err)
	}
	if _, err := e.Ack(ctx, k.ID, held.Jobs[0].Token, nil); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("ack of a deleted job: %v", err)
	}

	// Reserved, then deleted on the holder's node before the write-behind.
	k = enqueueOne(t, e, ctx, EnqueueRequest{Queue: "q"})
	held, err = e.Reserve(ctx, ReserveRequest{Queues: []string{"q"}})
	if err != nil || len(held.Jobs) != 1 || held.Jobs[0].Job.ID != k.ID {
		t.Fatalf("reserve: %+v %v", held, err)
	}
	if _, err := e.Delete(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Touch(ctx, k.ID, held.Jobs[0].Token, 0); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("touch of a deleted job: %v", err)
	}
	if _, err := e.Ack(ctx, k.ID, held.Jobs[0].Token, nil); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("ack of a deleted job: %v", err)
	}
}

// A job acked before its lease's write-behind costs one write of its record in all: the
// finished one.
func TestQuickJobWritesOneRecord(t *testing.T) {
	e, _, ctx := internalEngine(t, Config{LeaseWriteDelay: time.Hour})
	j := enqueueOne(t, e, ctx, EnqueueRequest{Queue: "q"})
	before, err := e.js.Stream(ctx, jobsStream)
	if err != nil {
		t.Fatal(err)
	}
	r, err := e.Reserve(ctx, ReserveRequest{Queues: []string{"q"}})
	if err != nil || len(r.Jobs) != 1 {
		t.Fatalf("reserve: %+v %v", r, err)
	}
	if _, err := e.Touch(ctx, j.ID, r.Jobs[0].Token, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Ack(ctx, j.ID, r.Jobs[0].Token, nil); err != nil {
		t.Fatal(err)
	}
	after, err := e.js.Stream(ctx, jobsStream)
	if err != nil {
		t.Fatal(err)
	}
	if n := after.CachedInfo().State.LastSeq - before.CachedInfo().State.LastSeq; n != 1 {
		t.Fatalf("%d record writes for a job reserved, touched and acked, want 1", n)
	}
	if got, err := e.Job(ctx, j.ID); err != nil || got.State != StateSucceeded {
		t.Fatalf("after the ack: %+v %v", got, err)
	}
}

// Purge, peek, reserve by id and kick work on fresh jobs; purged ones keep a record.
func TestAdminOnFreshJobs(t *testing.T) {
	t.Parallel()
	e, _, ctx := internalEngine(t)
	var ids []uint64
	for range 3 {
		ids = append(ids, enqueueOne(t, e, ctx, EnqueueRequest{Queue: "q"}).ID)
	}
	page, err := e.Peek(ctx, PeekRequest{Queue: "q", State: StateReady})
	if err != nil || len(page.Jobs) != 3 || page.Jobs[0].ID != ids[0] || page.Jobs[2].ID != ids[2] {
		t.Fatalf("peek: %+v %v", page, err)
	}
	if j, err := e.PeekNextReady(ctx, "q"); err != nil || j.ID != ids[0] {
		t.Fatalf("peek next ready: %+v %v", j, err)
	}
	if _, err := e.Kick(ctx, ids[0]); !errors.Is(err, ErrWrongState) {
		t.Fatalf("kick of a ready job: %v", err)
	}
	r, err := e.ReserveByID(ctx, ids[0], "w")
	if err != nil || r.Job.ID != ids[0] {
		t.Fatalf("reserve by id: %+v %v", r, err)
	}
	if _, err := e.Bury(ctx, ids[0], r.Token, BuryRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Kick(ctx, ids[0]); err != nil {
		t.Fatalf("kick of the buried job: %v", err)
	}
	n, err := e.Purge(ctx, "q", StateReady)
	if err != nil || n != 3 {
		t.Fatalf("purge: %d %v", n, err)
	}
	for _, id := range ids {
		if j, err := e.Job(ctx, id); err != nil || j.State != StateCancelled {
			t.Fatalf("job %d after purge: %+v %v", id, j, err)
		}
	}
	if page, err := e.Peek(ctx, PeekRequest{Queue: "q", State: StateReady}); err != nil || len(page.Jobs) != 0 {
		t.Fatalf("peek after purge: %+v %v", page, err)
	}
	if r, err := e.Reserve(ctx, ReserveRequest{Queues: []string{"q"}, Wait: 300 * time.Millisecond}); err != nil || len(r.Jobs) != 0 {
		t.Fatalf("reserve after purge: %+v %v", r, err)
	}
}

// A deleted and re-created queue gets a new number: the ids of the old queue's jobs do not
// name the new queue's messages, although the new stream's sequences start over (the old
// queue, made before shards, in a stream of its own; the new one in a fresh shard).
func TestRecreatedQueueDoesNotReuseIDs(t *testing.T) {
	t.Parallel()
	e, _, ctx := internalEngine(t)
	legacyQueue(t, e, ctx, "q")
	old := enqueueOne(t, e, ctx, EnqueueRequest{Queue: "q", Payload: []byte("old")})
	if err := e.DeleteQueue(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	fresh := enqueueOne(t, e, ctx, EnqueueRequest{Queue: "q", Payload: []byte("new")})
	_, oldSeq, _ := splitDerived(old.ID)
	_, newSeq, _ := splitDerived(fresh.ID)
	if oldSeq != newSeq || old.ID == fresh.ID {
		t.Fatalf("ids %d and %d (sequences %d and %d): the test needs equal sequences and wants different ids", old.ID, fresh.ID, oldSeq, newSeq)
	}
	// The queue's delete cancelled its jobs: their records say so.
	if j, err := e.Job(ctx, old.ID); err != nil || j.State != StateCancelled || len(j.Payload) != 0 {
		t.Fatalf("job of the deleted queue: %+v %v", j, err)
	}
	// Once that record has expired, the old id names nothing.
	st, err := e.js.Stream(ctx, jobsStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Purge(ctx, jetstream.WithPurgeSubject(jobSubject(old.ID))); err != nil {
		t.Fatal(err)
	}
	if j, err := e.Job(ctx, old.ID); !errors.Is(err, ErrJobNotFound) {
		t.Fatalf("job of the deleted queue, its record expired: %+v %v", j, err)
	}
	if j, err := e.Job(ctx, fresh.ID); err != nil || string(j.Payload) != "new" {
		t.Fatalf("job of the new queue: %+v %v", j, err)
	}
}

// Derived ids stay below 2^53 however far a queue's stream goes, across chunk ends; once
// chunk numbers run out, the queue's jobs get generated ids, and a job that got no id
// fails and is not left behind.
func TestIDsAcrossChunks(t *testing.T) {
	t.Parallel()
	e, _, ctx := internalEngine(t)
	enqueueOne(t, e, ctx, EnqueueRequest{Queue: "q"})
	st, err := e.js.Stream(ctx, e.lookupQueue("q").names.stream())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]bool{}
	// Purging up to a sequence makes it the stream's next one: jobs on both sides of a
	// chunk's end, then far into the stream (a queue that has seen 2^40 jobs).
	for _, next := range []uint64{3<<chunkBits - 2, 1 << 40} {
		if err := st.Purge(ctx, jetstream.WithPurgeSequence(next)); err != nil {
			t.Fatal(err)
		}
		var jobs []*Job
		for k := range 3 {
			jobs = append(jobs, enqueueOne(t, e, ctx, EnqueueRequest{Queue: "q", Payload: []byte{byte(next), byte(k)}}))
		}
		for _, want := range jobs {
			c, off, ok := splitDerived(want.ID)
			if !ok || want.ID > MaxJobID || seen[want.ID] {
				t.Fatalf("id %d: not derived, past 2^53 or given twice", want.ID)
			}
			seen[want.ID] = true
			noRecord(t, e, ctx, want.ID)
			if got, err := e.Job(ctx, want.ID); err != nil || string(got.Payload) != string(want.Payload) {
				t.Fatalf("by id %d (chunk %d offset %d): %+v %v", want.ID, c, off, got, err)
			}
		}
		// The reservations find the same ids.
		for _, want := range jobs {
			r, err := e.Reserve(ctx, ReserveRequest{Queues: []string{"q"}})
			if err != nil || len(r.Jobs) != 1 || r.Jobs[0].Job.ID != want.ID {
				t.Fatalf("reserve: %+v %v, want %d", r, err, want.ID)
			}
		}
	}

	// Chunk numbers used up: the first job of a new chunk fails and is removed; the
	// queue's later jobs get generated ids (and records).
	if _, err := e.js.Publish(ctx, chunkSubject, []byte(strconv.FormatUint(chunkMax, 10))); err != nil {
		t.Fatal(err)
	}
	e.cnums.mu.Lock()
	e.cnums.next = e.cnums.end // and the numbers this node took in advance used
	e.cnums.mu.Unlock()
	if err := st.Purge(ctx, jetstream.WithPurgeSequence(1<<41)); err != nil {
		t.Fatal(err)
	}
	res, err := e.Enqueue(ctx, []EnqueueRequest{{Queue: "q"}})
	if err != nil || res[0].Err == nil {
		t.Fatalf("enqueue with chunks used up: %+v %v", res, err)
	}
	info, err := st.Info(ctx)
	if err != nil || info.State.Msgs != 0 {
		t.Fatalf("the job that got no id is left in the stream: %+v %v", info.State, err)
	}
	j := enqueueOne(t, e, ctx, EnqueueRequest{Queue: "q", Payload: []byte("x")})
	if _, _, ok := splitDerived(j.ID); ok || j.ID > MaxChosenID {
		t.Fatalf("id %d after chunks ran out", j.ID)
	}
	if got, err := e.Job(ctx, j.ID); err != nil || string(got.Payload) != "x" {
		t.Fatalf("by id: %+v %v", got, err)
	}
}

// A node whose watch has not delivered a new queue yet still finds that queue's fresh jobs
// by id, through the queue number's entry in the bucket.
func TestDerivedIDOfQueueNotSeenYet(t *testing.T) {
	t.Parallel()
	a, nc, ctx := internalEngine(t)
	b := secondEngine(t, ctx, nc, a)
	j := enqueueOne(t, a, ctx, EnqueueRequest{Queue: "new", Payload: []byte("p")})
	qa, err := a.getQueue(ctx, "new", false)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := qa.config()
	num := cfg.Num
	// (spooltest.Eventually would be an import cycle here.)
	for start := time.Now(); b.queueByNum(num) == nil; time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > 5*time.Second {
			t.Fatal("the second engine never saw the queue")
		}
	}
	seen := b.queueByNum(num)
	b.mu.Lock()
	b.forgetQueueLocked(seen) // as if b's watch lagged
	b.mu.Unlock()
	b.chunks.mu.Lock() // as if b had not learned the chunk yet either
	b.chunks.refs, b.chunks.byRef = make(map[uint32]chunkRef), make(map[chunkRef]uint32)
	b.chunks.mu.Unlock()
	if got, err := b.Job(ctx, j.ID); err != nil || string(got.Payload) != "p" {
		t.Fatalf("lookup on the lagging node: %+v %v", got, err)
	}
	if _, err := b.Job(ctx, derivedBit|1000<<chunkBits|1); !errors.Is(err, ErrJobNotFound) {
		t.Fatalf("id of a chunk never given out: %v", err)
	}
}

// A job of a queue deleted while it was reserved (its cancel lost to the holder) keeps a
// live record; deleting it later must not touch the job that now sits at the same sequence
// of the queue made again.
func TestDeleteOfOldJobSparesRecreatedQueue(t *testing.T) {
	t.Parallel()
	e, _, ctx := internalEngine(t)
	legacyQueue(t, e, ctx, "q") // a stream of its own, whose sequences a fresh shard repeats
	old := enqueueOne(t, e, ctx, EnqueueRequest{Queue: "q"})
	if r, err := e.Reserve(ctx, ReserveRequest{Queues: []string{"q"}}); err != nil || len(r.Jobs) != 1 {
		t.Fatalf("reserve: %+v %v", r, err)
	}
	e.lw.write(ctx, time.Time{})
	held, _, err := e.readRecord(ctx, old.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.DeleteQueue(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	// As if the queue delete's cancel had lost to the holder: the record says reserved.
	_, seq, err := e.readRecord(ctx, old.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.commitRecord(ctx, old.ID, held, seq, 0); err != nil {
		t.Fatal(err)
	}
	fresh := enqueueOne(t, e, ctx, EnqueueRequest{Queue: "q", Payload: []byte("new")})
	if _, a, _ := splitDerived(old.ID); a != held.Seq {
		t.Fatalf("the old job's message was at %d, its record says %d", a, held.Seq)
	}
	if _, b, _ := splitDerived(fresh.ID); b != held.Seq {
		t.Fatalf("the new job is at sequence %d, the test needs %d", b, held.Seq)
	}
	e.Delete(ctx, old.ID) // whatever it answers, it must not touch the new job
	if j, err := e.Job(ctx, fresh.ID); err != nil || j.State != StateReady || string(j.Payload) != "new" {
		t.Fatalf("the new job after deleting the old one: %+v %v", j, err)
	}
	r, err := e.Reserve(ctx, ReserveRequest{Queues: []string{"q"}})
	if err != nil || len(r.Jobs) != 1 || r.Jobs[0].Job.ID != fresh.ID {
		t.Fatalf("reserve the new job: %+v %v", r, err)
	}
}

// A node that applies a queue's new entry over its old view (it missed the delete) must
// not keep the old number pointing at the new queue.
func TestNewQueueNumberReplacesOld(t *testing.T) {
	t.Parallel()
	e, _, ctx := internalEngine(t)
	q := e.cacheQueue(queueConfig{Name: "q", Num: 1000}, 1)
	if e.queueByNum(1000) != q {
		t.Fatal("number not mapped")
	}
	e.cacheQueue(queueConfig{Name: "q", Num: 1001}, 2)
	if got := e.queueByNum(1000); got != nil {
		t.Fatalf("old number still maps to %s", got.name)
	}
	if e.queueByNum(1001) != q {
		t.Fatal("new number not mapped")
	}
	e.cacheQueue(queueConfig{Name: "q", Num: 999}, 1) // an older revision changes nothing
	if e.queueByNum(999) != nil || e.queueByNum(1001) != q {
		t.Fatal("an older revision changed the mapping")
	}
	if _, err := e.queueOfNum(ctx, 1000); !errors.Is(err, ErrQueueNotFound) {
		t.Fatalf("old number: %v", err)
	}
}

// A finished job's record outlives its last lease, whatever the retention: a delivery whose
// ack was lost comes back at the end of the lease, and without the record a fresh job's
// message would be taken for a job never started.
func TestFinishedRecordOutlivesLease(t *testing.T) {
	t.Parallel()
	e, _, ctx := internalEngine(t, Config{Retention: time.Second})
	j := enqueueOne(t, e, ctx, EnqueueRequest{Queue: "q", Lease: 10 * time.Second})
	r, err := e.Reserve(ctx, ReserveRequest{Queues: []string{"q"}})
	if err != nil || len(r.Jobs) != 1 {
		t.Fatalf("reserve: %+v %v", r, err)
	}
	if _, err := e.Ack(ctx, j.ID, r.Jobs[0].Token, nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond) // past the retention, within the lease
	if got, err := e.Job(ctx, j.ID); err != nil || got.State != StateSucceeded {
		t.Fatalf("record 2.5s after the ack, retention 1s, lease 10s: %+v %v", got, err)
	}
	ready := &record{State: StateReady}
	if d := e.keepFinished(ready); d != time.Second {
		t.Fatalf("keepFinished of a job not reserved: %v, want the retention", d)
	}
}

// A queue delete whose cancel lost to a change of the job (a touch at that moment) cancels
// it again on the record read back; a job that finished meanwhile stays finished.
func TestCancelAgainAfterALostCancel(t *testing.T) {
	t.Parallel()
	e, _, ctx := internalEngine(t)
	a := enqueueOne(t, e, ctx, EnqueueRequest{Queue: "q"})
	b := enqueueOne(t, e, ctx, EnqueueRequest{Queue: "q"})
	r, err := e.Reserve(ctx, ReserveRequest{Queues: []string{"q"}, Max: 2})
	if err != nil || len(r.Jobs) != 2 {
		t.Fatalf("reserve: %+v %v", r, err)
	}
	if _, err := e.Touch(ctx, a.ID, r.Jobs[0].Token, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Ack(ctx, b.ID, r.Jobs[1].Token, nil); err != nil {
		t.Fatal(err)
	}
	for _, id := range []uint64{a.ID, b.ID} {
		if _, err := e.cancelAgain(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if j, err := e.Job(ctx, a.ID); err != nil || j.State != StateCancelled {
		t.Fatalf("touched job: %+v %v", j, err)
	}
	if j, err := e.Job(ctx, b.ID); err != nil || j.State != StateSucceeded {
		t.Fatalf("finished job: %+v %v", j, err)
	}
	if _, err := e.Ack(ctx, a.ID, r.Jobs[0].Token, nil); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("the old holder's ack after the cancel: %v", err)
	}
}

// An enqueue with a chosen id whose record write got no answer (a cluster without a
// majority) may have its record stored later, without a message. The retry of that enqueue
// meets the record: it publishes the message again (JetStream's duplicate window drops it
// if it was stored after all), so the job runs.
func TestChosenIDRecordWithoutMessage(t *testing.T) {
	t.Parallel()
	e, _, ctx := internalEngine(t)
	const id = 777
	if _, err := e.PutQueue(ctx, "q", QueueSettings{}); err != nil {
		t.Fatal(err)
	}
	rec := &record{Queue: "q", State: StateReady, MaxAttempts: 25, LeaseMS: 30000, Created: e.now().UnixNano()}
	fut, err := e.publishRecord(id, rec, 0, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	if errs := waitAll(ctx, []jetstream.PubAckFuture{fut}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	res, err := e.Enqueue(ctx, []EnqueueRequest{{Queue: "q", ID: id, Payload: []byte(`"p"`)}})
	if err != nil || res[0].Err != nil || !res[0].Duplicate {
		t.Fatalf("enqueue again: %+v %v", res, err)
	}
	r, err := e.Reserve(ctx, ReserveRequest{Queues: []string{"q"}, Max: 10})
	if err != nil || len(r.Jobs) != 1 || r.Jobs[0].Job.ID != id || string(r.Jobs[0].Job.Payload) != `"p"` {
		t.Fatalf("reserve: %+v %v", r, err)
	}
}
