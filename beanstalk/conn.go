package beanstalk

import (
	"bufio"
	"context"
	"errors"
	"io"
	"maps"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/spoolq/spool/engine"
)

const defaultTube = "default"

// Reply words.
const (
	msgBadFormat      = "BAD_FORMAT"
	msgUnknownCommand = "UNKNOWN_COMMAND"
	msgExpectedCRLF   = "EXPECTED_CRLF"
	msgJobTooBig      = "JOB_TOO_BIG"
	msgDraining       = "DRAINING"
	msgOutOfMemory    = "OUT_OF_MEMORY"
	msgInternalError  = "INTERNAL_ERROR"
	msgNotFound       = "NOT_FOUND"
	msgDeleted        = "DELETED"
	msgReleased       = "RELEASED"
	msgBuried         = "BURIED"
	msgTouched        = "TOUCHED"
	msgKicked         = "KICKED"
	msgNotIgnored     = "NOT_IGNORED"
	msgTimedOut       = "TIMED_OUT"
	msgDeadlineSoon   = "DEADLINE_SOON"
	msgPaused         = "PAUSED"
)

// smallBody is the size up to which a connection reuses its job body buffer; larger bodies
// are allocated per job, so an idle connection holds at most this much.
const smallBody = 4096

// lease is a job the connection holds reserved.
type lease struct {
	token string
	tube  string
	exp   time.Time // end of the lease
}

// conn is one client connection. Its goroutine runs the commands one after the other, in
// the order received, as beanstalkd does.
type conn struct {
	s    *Server
	nc   net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	lr   lineReader
	name string // worker identity recorded on reserved jobs

	use      string
	watch    []string
	watchKey string // the watch list joined, "" when it changed
	held     map[uint64]*lease
	producer bool
	worker   bool

	body    []byte // reused buffer for small job bodies
	scratch []byte // reply line buffer
	werr    error  // the first failed write: the connection ends
}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{
		s: s, nc: nc,
		br:    bufio.NewReaderSize(nc, 4096),
		name:  "beanstalkd " + nc.RemoteAddr().String(),
		use:   defaultTube,
		watch: []string{defaultTube},
		held:  make(map[uint64]*lease),
	}
	c.bw = bufio.NewWriterSize(c, 4096)
	c.lr.r = c.br
	return c
}

// Write writes replies to the socket, each write with its own deadline (WriteTimeout, or
// the stop's cut when sooner): the buffer of replies is written here both when flushed
// between commands and when it fills while the client pipelines.
func (c *conn) Write(p []byte) (int, error) {
	if c.werr != nil {
		return 0, c.werr
	}
	d := time.Now().Add(c.s.opt.WriteTimeout).UnixNano()
	cut := c.s.writeCut.Load()
	if cut != 0 && cut < d {
		d = cut
	}
	c.nc.SetWriteDeadline(time.Unix(0, d))
	if cut == 0 {
		// A stop that set writeCut after the load above also sets this socket's deadline,
		// but maybe before the line above: set it again.
		if cut = c.s.writeCut.Load(); cut != 0 && cut < d {
			c.nc.SetWriteDeadline(time.Unix(0, cut))
		}
	}
	n, err := c.nc.Write(p)
	if err != nil {
		c.werr = err
	}
	return n, err
}

// interrupt makes a blocked read return so that the connection sees the server stopping.
// Called with s.mu held.
func (c *conn) interrupt() {
	c.nc.SetReadDeadline(time.Unix(1, 0))
}

func (c *conn) serve() {
	defer c.finish()
	for {
		if !c.awaitCommand() {
			return
		}
		line, tooLong, err := c.lr.next()
		if err != nil {
			return
		}
		if tooLong {
			c.word(msgBadFormat)
			continue
		}
		if !c.dispatch(line) {
			return
		}
	}
}

// awaitCommand flushes the replies when no command is waiting, waits for the first byte of
// the next one (without limit, or IdleTimeout) and then gives the rest of it ReadTimeout.
// It reports false when the connection must end.
func (c *conn) awaitCommand() bool {
	if c.werr != nil {
		return false // the client does not read its replies, or is gone
	}
	if c.br.Buffered() == 0 {
		if !c.flush() {
			return false
		}
		var idle time.Time
		if c.s.opt.IdleTimeout > 0 {
			idle = time.Now().Add(c.s.opt.IdleTimeout)
		}
		c.nc.SetReadDeadline(idle)
		if c.s.isStopping() { // after setting the deadline: see Server.stop
			return false
		}
		if _, err := c.br.Peek(1); err != nil {
			return false
		}
	}
	c.nc.SetReadDeadline(time.Now().Add(c.s.opt.ReadTimeout))
	return !c.s.isStopping()
}

func (c *conn) flush() bool {
	if c.bw.Buffered() == 0 {
		return c.werr == nil
	}
	return c.bw.Flush() == nil
}

// finish ends the connection: it uncounts the connection and its tubes, closes the socket,
// releases the jobs the connection holds and forgets it. The counts go first: the connection
// is gone for stats as soon as the server has seen it end, not after the engine calls that
// give its jobs back (a client that reserves one of them must not see it counted). s.conns
// keeps it until the end, so that Shutdown and Close can still cut it.
func (c *conn) finish() {
	s := c.s
	s.mu.Lock()
	s.open--
	s.refTube(c.use, -1, 0)
	for _, t := range c.watch {
		s.refTube(t, 0, -1)
	}
	if c.producer {
		s.producers--
	}
	if c.worker {
		s.workers--
	}
	s.mu.Unlock()
	c.flush()
	c.nc.Close()
	c.releaseAll()
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// releaseAll gives every job the connection holds back to ready, a few at a time. Like
// beanstalkd it counts no release (engine.Unreserve, not engine.Release).
func (c *conn) releaseAll() {
	if len(c.held) == 0 || c.s.base.Err() != nil {
		return // nothing held, or the server was closed: the leases end on their own
	}
	type item struct {
		id uint64
		l  *lease
	}
	// In id order (the order of the puts), so that a few jobs come back in ready in the
	// order beanstalkd would hand them out (priority, then id); many go 8 at a time.
	ids := slices.Sorted(maps.Keys(c.held))
	work := make(chan item)
	var wg sync.WaitGroup
	workers := 1
	if len(ids) > 16 {
		workers = 8
	}
	for range workers {
		wg.Go(func() {
			for it := range work {
				ctx, cancel := c.s.opCtx()
				_, err := c.s.eng.Unreserve(ctx, it.id, it.l.token)
				cancel()
				if err != nil && !leaseGone(err) {
					c.s.log.Warn("beanstalk: release on disconnect", "job", it.id, "err", err)
				}
			}
		})
	}
	for _, id := range ids {
		work <- item{id, c.held[id]}
	}
	close(work)
	wg.Wait()
	clear(c.held)
}

// dispatch runs one command line. It reports false when the connection must end.
func (c *conn) dispatch(line []byte) bool {
	cmd := parseCommand(line)
	if cmd.counted {
		c.s.ops[cmd.op].Add(1)
	}
	if cmd.bad {
		return c.word(msgBadFormat)
	}
	switch cmd.op {
	case opPut:
		return c.put(&cmd)
	case opReserve, opReserveTimeout:
		return c.reserve(cmd.timeout)
	case opReserveJob:
		return c.reserveJob(cmd.id)
	case opDelete:
		return c.delete(cmd.id)
	case opRelease:
		return c.release(&cmd)
	case opBury:
		return c.bury(&cmd)
	case opTouch:
		return c.touch(cmd.id)
	case opUse:
		return c.useTube(cmd.tube)
	case opWatch:
		return c.watchTube(cmd.tube)
	case opIgnore:
		return c.ignoreTube(cmd.tube)
	case opPeekJob:
		return c.peekJob(cmd.id)
	case opPeekReady, opPeekDelayed, opPeekBuried:
		return c.peekState(cmd.op)
	case opKick:
		return c.kick(cmd.bound)
	case opKickJob:
		return c.kickJob(cmd.id)
	case opStats:
		return c.stats()
	case opStatsJob:
		return c.statsJob(cmd.id)
	case opStatsTube:
		return c.statsTube(cmd.tube)
	case opListTubes:
		return c.listTubes()
	case opListTubeUsed:
		return c.line("USING", c.use)
	case opListTubesWatched:
		return c.yamlList(c.watch)
	case opPauseTube:
		return c.pauseTube(cmd.tube, cmd.delay)
	case opQuit:
		return false
	default:
		return c.word(msgUnknownCommand)
	}
}

// word writes a one-word reply.
func (c *conn) word(w string) bool {
	c.bw.WriteString(w)
	c.bw.WriteString("\r\n")
	return true
}

// line writes "<w> <arg>\r\n".
func (c *conn) line(w, arg string) bool {
	c.bw.WriteString(w)
	c.bw.WriteByte(' ')
	c.bw.WriteString(arg)
	c.bw.WriteString("\r\n")
	return true
}

// number writes "<w> <n>\r\n".
func (c *conn) number(w string, n uint64) bool {
	b := append(c.scratch[:0], w...)
	b = append(b, ' ')
	b = strconv.AppendUint(b, n, 10)
	b = append(b, '\r', '\n')
	c.scratch = b
	c.bw.Write(b)
	return true
}

// chunk writes "<w> [<id> ]<len>\r\n<data>\r\n".
func (c *conn) chunk(w string, id uint64, withID bool, data []byte) bool {
	b := append(c.scratch[:0], w...)
	b = append(b, ' ')
	if withID {
		b = strconv.AppendUint(b, id, 10)
		b = append(b, ' ')
	}
	b = strconv.AppendInt(b, int64(len(data)), 10)
	b = append(b, '\r', '\n')
	c.scratch = b
	c.bw.Write(b)
	c.bw.Write(data)
	c.bw.WriteString("\r\n")
	return true
}

// fail answers an unexpected engine error. It reports false (end the connection) when the
// engine or the server is closing.
func (c *conn) fail(op string, err error) bool {
	if errors.Is(err, engine.ErrClosed) || c.s.isStopping() && errors.Is(err, context.Canceled) {
		return false
	}
	c.s.log.Warn("beanstalk: engine error", "op", op, "err", err)
	return c.word(msgInternalError)
}

func (c *conn) setProducer() {
	if c.producer {
		return
	}
	c.producer = true
	c.s.mu.Lock()
	c.s.producers++
	c.s.mu.Unlock()
}

func (c *conn) setWorker() {
	if c.worker {
		return
	}
	c.worker = true
	c.s.mu.Lock()
	c.s.workers++
	c.s.mu.Unlock()
}

func seconds(n uint32) time.Duration { return time.Duration(n) * time.Second }

// ttrLease maps a beanstalkd ttr to an engine lease: 0 is 1s as in beanstalkd, and the
// lease is at most engine.MaxLease.
func ttrLease(ttr uint32) time.Duration {
	return min(max(seconds(ttr), engine.MinLease), engine.MaxLease)
}

// delayOf maps a beanstalkd delay to an engine delay, at most engine.MaxDelay.
func delayOf(d uint32) time.Duration { return min(seconds(d), engine.MaxDelay) }

func (c *conn) put(cmd *command) bool {
	if int64(cmd.size) > int64(c.s.opt.MaxJobSize) {
		// Read the body and its "\r\n" away, as beanstalkd does, then answer.
		if _, err := c.br.Discard(int(cmd.size) + 2); err != nil {
			return false
		}
		return c.word(msgJobTooBig)
	}
	if cmd.garbage {
		return c.word(msgBadFormat)
	}
	c.setProducer()
	n := int(cmd.size) + 2
	// The body and the engine's copy of it are charged to the memory budget until stored.
	cost := 2 * int64(n)
	if !c.s.opt.Budget.TryAcquire(cost) {
		if _, err := c.br.Discard(n); err != nil {
			return false
		}
		return c.word(msgOutOfMemory)
	}
	defer c.s.opt.Budget.Release(cost)
	var body []byte
	if n <= smallBody {
		if c.body == nil {
			c.body = make([]byte, smallBody)
		}
		body = c.body[:n]
	} else {
		body = make([]byte, n)
	}
	if _, err := io.ReadFull(c.br, body); err != nil {
		return false
	}
	if body[n-2] != '\r' || body[n-1] != '\n' {
		return c.word(msgExpectedCRLF)
	}
	if c.s.draining.Load() {
		return c.word(msgDraining)
	}
	id, err := c.s.puts.do(c.s.base, engine.EnqueueRequest{
		Queue:       c.use,
		Payload:     body[:n-2],
		Priority:    cmd.pri,
		Delay:       delayOf(cmd.delay),
		Lease:       ttrLease(cmd.ttr),
		MaxAttempts: engine.MaxMaxAttempts,
	})
	var tooBig *engine.PayloadTooLargeError
	switch {
	case err == nil:
		return c.number("INSERTED", id)
	case errors.As(err, &tooBig):
		return c.word(msgJobTooBig)
	case errors.Is(err, engine.ErrClosed):
		return c.word(msgDraining)
	case errors.Is(err, engine.ErrNoSpace):
		return c.word(msgOutOfMemory) // as beanstalkd when its binlog has no room
	default:
		return c.fail("put", err)
	}
}

func (c *conn) useTube(name string) bool {
	if name != c.use {
		c.s.mu.Lock()
		c.s.refTube(name, 1, 0)
		c.s.refTube(c.use, -1, 0)
		c.s.mu.Unlock()
		c.use = name
	}
	return c.line("USING", name)
}

func (c *conn) watchTube(name string) bool {
	for _, t := range c.watch {
		if t == name {
			return c.number("WATCHING", uint64(len(c.watch)))
		}
	}
	if len(c.watch) >= c.s.opt.MaxWatched {
		return c.word(msgOutOfMemory)
	}
	c.watch = append(c.watch, name)
	c.watchKey = ""
	c.s.mu.Lock()
	c.s.refTube(name, 0, 1)
	c.s.mu.Unlock()
	return c.number("WATCHING", uint64(len(c.watch)))
}

func (c *conn) ignoreTube(name string) bool {
	for i, t := range c.watch {
		if t != name {
			continue
		}
		if len(c.watch) < 2 {
			return c.word(msgNotIgnored)
		}
		// beanstalkd moves the last tube into the hole, which list-tubes-watched shows.
		last := len(c.watch) - 1
		c.watch[i] = c.watch[last]
		c.watch = c.watch[:last]
		c.watchKey = ""
		c.s.mu.Lock()
		c.s.refTube(name, 0, -1)
		c.s.mu.Unlock()
		break
	}
	return c.number("WATCHING", uint64(len(c.watch)))
}

// hold records a job the connection has reserved and sends it.
func (c *conn) hold(r *engine.Reserved) bool {
	c.held[r.Job.ID] = &lease{token: r.Token, tube: r.Job.Queue, exp: r.Job.LeaseExpiresAt}
	return c.chunk("RESERVED", r.Job.ID, true, r.Job.Payload)
}

// lease returns the live lease of a held job, forgetting it when its time has run out: the
// engine then offers the job again, as beanstalkd puts a timed-out job back in ready.
func (c *conn) lease(id uint64) *lease {
	l := c.held[id]
	if l != nil && !time.Now().Before(l.exp) {
		delete(c.held, id)
		return nil
	}
	return l
}

func (c *conn) reserveJob(id uint64) bool {
	c.setWorker()
	if len(c.held) >= c.s.opt.MaxHeld {
		return c.word(msgOutOfMemory)
	}
	ctx, cancel := c.s.opCtx()
	defer cancel()
	r, err := c.s.eng.ReserveByID(ctx, id, c.name)
	switch {
	case err == nil:
		return c.hold(r)
	case notFound(err) || errors.Is(err, engine.ErrLeaseLost):
		return c.word(msgNotFound)
	default:
		return c.fail("reserve-job", err)
	}
}

// notFound reports the engine errors that beanstalkd calls NOT_FOUND.
func notFound(err error) bool {
	return errors.Is(err, engine.ErrJobNotFound) || errors.Is(err, engine.ErrWrongState) || errors.Is(err, engine.ErrQueueNotFound)
}

func (c *conn) countDelete(tube string) {
	c.s.mu.Lock()
	c.s.total(tube).deletes++
	c.s.mu.Unlock()
}

func (c *conn) delete(id uint64) bool {
	ctx, cancel := c.s.opCtx()
	defer cancel()
	if l := c.held[id]; l != nil {
		// Even past its lease: the engine accepts late work while nobody else has the job.
		delete(c.held, id)
		_, err := c.s.acks.do(ctx, engine.AckRequest{ID: id, Token: l.token})
		if err == nil {
			c.countDelete(l.tube)
			return c.word(msgDeleted)
		}
		if !leaseGone(err) {
			return c.fail("delete", err)
		}
		// Lost: deleted elsewhere or reserved by someone else; look at it as any job.
	}
	// A job this connection does not hold: ready, delayed and buried jobs may be deleted,
	// one reserved by another client may not.
	for attempt := 0; ; attempt++ {
		j, err := c.s.eng.Job(ctx, id)
		if err != nil {
			if notFound(err) {
				return c.word(msgNotFound)
			}
			return c.fail("delete", err)
		}
		if j.State == engine.StateReserved || j.State.Final() {
			return c.word(msgNotFound)
		}
		_, err = c.s.eng.Delete(ctx, id)
		switch {
		case err == nil:
			c.countDelete(j.Queue)
			return c.word(msgDeleted)
		case notFound(err):
			return c.word(msgNotFound)
		case attempt < 2 && ctx.Err() == nil:
			continue // the job changed meanwhile: look again
		default:
			return c.fail("delete", err)
		}
	}
}

func (c *conn) release(cmd *command) bool {
	pri := cmd.pri
	return c.giveUp(cmd.id, "release", msgReleased, func(ctx context.Context, token string) error {
		_, err := c.s.eng.Release(ctx, cmd.id, token, engine.ReleaseRequest{Priority: &pri, Delay: delayOf(cmd.delay)})
		return err
	})
}

func (c *conn) bury(cmd *command) bool {
	pri := cmd.pri
	return c.giveUp(cmd.id, "bury", msgBuried, func(ctx context.Context, token string) error {
		_, err := c.s.eng.Bury(ctx, cmd.id, token, engine.BuryRequest{Priority: &pri})
		return err
	})
}

// giveUp runs op (release or bury) on a job this connection holds, which it holds no more
// after: answered ok, or NOT_FOUND when the lease was lost meanwhile.
func (c *conn) giveUp(id uint64, op, ok string, fn func(ctx context.Context, token string) error) bool {
	l := c.lease(id)
	if l == nil {
		return c.word(msgNotFound)
	}
	ctx, cancel := c.s.opCtx()
	defer cancel()
	err := fn(ctx, l.token)
	if err != nil && !leaseGone(err) {
		return c.fail(op, err)
	}
	delete(c.held, id)
	if err != nil {
		return c.word(msgNotFound)
	}
	return c.word(ok)
}

// leaseGone reports an engine error meaning the job is no longer this holder's.
func leaseGone(err error) bool {
	return errors.Is(err, engine.ErrLeaseLost) || errors.Is(err, engine.ErrJobNotFound)
}

func (c *conn) touch(id uint64) bool {
	l := c.lease(id)
	if l == nil {
		return c.word(msgNotFound)
	}
	ctx, cancel := c.s.opCtx()
	defer cancel()
	j, err := c.s.eng.Touch(ctx, id, l.token, 0)
	switch {
	case err == nil:
		l.exp = j.LeaseExpiresAt
		return c.word(msgTouched)
	case leaseGone(err):
		delete(c.held, id)
		return c.word(msgNotFound)
	default:
		return c.fail("touch", err)
	}
}

func (c *conn) peekJob(id uint64) bool {
	ctx, cancel := c.s.opCtx()
	defer cancel()
	j, err := c.s.eng.Job(ctx, id)
	switch {
	case err == nil && !j.State.Final():
		return c.chunk("FOUND", j.ID, true, j.Payload)
	case err == nil || notFound(err):
		return c.word(msgNotFound)
	default:
		return c.fail("peek", err)
	}
}

func (c *conn) peekState(o op) bool {
	ctx, cancel := c.s.opCtx()
	defer cancel()
	var j *engine.Job
	var err error
	switch o {
	case opPeekReady:
		j, err = c.s.eng.PeekNextReady(ctx, c.use)
	case opPeekDelayed:
		j, err = c.s.eng.PeekSoonestDelayed(ctx, c.use)
	default:
		j, err = c.peekBuried(ctx)
	}
	switch {
	case err == nil:
		return c.chunk("FOUND", j.ID, true, j.Payload)
	case notFound(err):
		return c.word(msgNotFound)
	default:
		return c.fail("peek", err)
	}
}

// peekBuried returns the oldest buried job of the used tube: beanstalkd's buried list is
// FIFO, and a job is buried in stream order.
func (c *conn) peekBuried(ctx context.Context) (*engine.Job, error) {
	var after uint64
	for {
		page, err := c.s.eng.Peek(ctx, engine.PeekRequest{Queue: c.use, State: engine.StateBuried, Limit: 16, After: after})
		if err != nil {
			return nil, err
		}
		if len(page.Jobs) > 0 {
			return page.Jobs[0], nil
		}
		if page.Next == 0 {
			return nil, engine.ErrJobNotFound
		}
		after = page.Next
	}
}

func (c *conn) kick(bound uint32) bool {
	if bound == 0 {
		return c.number("KICKED", 0)
	}
	ctx, cancel := context.WithTimeout(c.s.base, max(c.s.opt.OpTimeout, 5*time.Minute))
	defer cancel()
	n, err := c.s.eng.KickQueue(ctx, c.use, engine.StateBuried, int(bound))
	if err == nil && n == 0 {
		n, err = c.s.eng.KickQueue(ctx, c.use, engine.StateDelayed, int(bound))
	}
	if err != nil && !errors.Is(err, engine.ErrQueueNotFound) {
		if n == 0 {
			return c.fail("kick", err)
		}
		c.s.log.Warn("beanstalk: kick stopped early", "tube", c.use, "kicked", n, "err", err)
	}
	return c.number("KICKED", uint64(n))
}

func (c *conn) kickJob(id uint64) bool {
	ctx, cancel := c.s.opCtx()
	defer cancel()
	_, err := c.s.eng.Kick(ctx, id)
	switch {
	case err == nil:
		return c.word(msgKicked)
	case notFound(err) || errors.Is(err, engine.ErrLeaseLost):
		return c.word(msgNotFound)
	default:
		return c.fail("kick-job", err)
	}
}

func (c *conn) pauseTube(name string, delay uint32) bool {
	ctx, cancel := c.s.opCtx()
	defer cancel()
	var err error
	if delay == 0 {
		// beanstalkd pauses for 1ns: the tube is unpaused at once.
		_, err = c.s.eng.Resume(ctx, name)
	} else {
		until := time.Now().Add(min(seconds(delay), engine.MaxDelay))
		_, err = c.s.eng.Pause(ctx, name, until)
		if errors.Is(err, engine.ErrQueueNotFound) && c.s.tubeReferenced(name) {
			// The tube exists for beanstalkd (a client uses or watches it) but holds no
			// job yet: make the queue so that the pause holds.
			if _, err = c.s.eng.PutQueue(ctx, name, engine.QueueSettings{}); err == nil {
				_, err = c.s.eng.Pause(ctx, name, until)
			}
		}
	}
	if errors.Is(err, engine.ErrQueueNotFound) {
		if !c.s.tubeReferenced(name) {
			return c.word(msgNotFound)
		}
		err = nil // resuming a tube that has no queue: nothing is paused
	}
	if err != nil {
		return c.fail("pause-tube", err)
	}
	c.s.mu.Lock()
	t := c.s.total(name)
	t.pauses++
	t.pause = delay
	c.s.mu.Unlock()
	return c.word(msgPaused)
}

// tubeReferenced reports whether a connection of this server uses or watches the tube.
func (s *Server) tubeReferenced(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return name == defaultTube || s.tubes[name] != nil
}
