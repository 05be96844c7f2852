package beanstalk

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spoolq/spool/engine"
)

// safetyMargin is beanstalkd's last second of a lease: a reserve that would wait into it
// is answered DEADLINE_SOON instead.
const safetyMargin = time.Second

// waitSlice bounds one engine long poll of a waiting reserve.
const waitSlice = 10 * time.Second

// chunkPoll is how often a reserve over more watched tubes than one engine reservation
// takes looks at the tubes past the first engine.MaxReserveQueues.
const chunkPoll = 250 * time.Millisecond

// reserve runs reserve (timeout < 0) and reserve-with-timeout.
func (c *conn) reserve(timeout int32) bool {
	c.setWorker()
	if len(c.held) >= c.s.opt.MaxHeld {
		return c.word(msgOutOfMemory)
	}
	// A look without waiting first: a job that is ready goes out even in the safety margin
	// (beanstalkd answers DEADLINE_SOON only when no watched tube has a ready job). The
	// looks of connections watching the same tubes share engine calls (see batch.go).
	var r *engine.Reserved
	var err error
	if len(c.watch) <= engine.MaxReserveQueues {
		if c.watchKey == "" {
			c.watchKey = strings.Join(c.watch, " ")
		}
		r, err = c.s.rsvs.do(c.s.base, reserveReq{queues: c.watch, key: c.watchKey, worker: c.name, glance: timeout != 0})
	} else {
		ctx, cancel := c.s.opCtx()
		r, err = c.tryReserve(ctx, 0)
		cancel()
	}
	if err != nil {
		return c.fail("reserve", err)
	}
	if r != nil {
		return c.hold(r)
	}
	now := time.Now()
	soon := c.soonestDeadline(now)
	if !soon.IsZero() && !now.Before(soon) {
		return c.word(msgDeadlineSoon)
	}
	if timeout == 0 {
		return c.word(msgTimedOut)
	}
	var deadline time.Time
	if timeout > 0 {
		deadline = now.Add(time.Duration(timeout) * time.Second)
	}

	// Wait. The replies so far go out first; meanwhile a watcher notices a client that
	// hangs up (beanstalkd answers a half-closed client TIMED_OUT).
	if !c.flush() {
		return false
	}
	rctx, rcancel := context.WithCancel(c.s.stopCtx)
	defer rcancel()
	stopWatch := c.watchHangup(rcancel)
	c.s.setWaiting(c.watch, 1)
	word := ""
	for {
		now = time.Now()
		wait := waitSlice
		if !deadline.IsZero() {
			if !now.Before(deadline) {
				word = msgTimedOut
				break
			}
			wait = min(wait, deadline.Sub(now))
		}
		if !soon.IsZero() {
			if !now.Before(soon) {
				word = msgDeadlineSoon
				break
			}
			wait = min(wait, soon.Sub(now))
		}
		cctx, ccancel := context.WithTimeout(rctx, wait+c.s.opt.OpTimeout)
		r, err = c.tryReserve(cctx, wait)
		ccancel()
		if r != nil || err != nil || rctx.Err() != nil {
			break
		}
	}
	c.s.setWaiting(c.watch, -1)
	hungUp := stopWatch()
	switch {
	case r != nil:
		return c.hold(r)
	case c.s.isStopping():
		return false // the server is going away: the connection closes without a reply
	case hungUp:
		return c.word(msgTimedOut)
	case err != nil:
		return c.fail("reserve", err)
	default:
		return c.word(word)
	}
}

// soonestDeadline is the start of the safety margin of the held job whose lease ends
// first, or zero. Leases that have ended are forgotten on the way.
func (c *conn) soonestDeadline(now time.Time) time.Time {
	var soon time.Time
	for id, l := range c.held {
		if !now.Before(l.exp) {
			delete(c.held, id)
			continue
		}
		if soon.IsZero() || l.exp.Before(soon) {
			soon = l.exp
		}
	}
	if soon.IsZero() {
		return soon
	}
	return soon.Add(-safetyMargin)
}

// tryReserve reserves one job of the watched tubes, waiting up to wait. The engine takes
// at most engine.MaxReserveQueues queues at once: past that, the watch list is tried in
// chunks and only the first chunk is waited on, the others polled every chunkPoll.
func (c *conn) tryReserve(ctx context.Context, wait time.Duration) (*engine.Reserved, error) {
	req := engine.ReserveRequest{Max: 1, Worker: c.name}
	if len(c.watch) <= engine.MaxReserveQueues {
		req.Queues, req.Wait = c.watch, wait
		return c.reserveOnce(ctx, req)
	}
	for i := 0; i < len(c.watch); i += engine.MaxReserveQueues {
		req.Queues = c.watch[i:min(i+engine.MaxReserveQueues, len(c.watch))]
		if r, err := c.reserveOnce(ctx, req); r != nil || err != nil {
			return r, err
		}
	}
	if wait <= 0 {
		return nil, nil
	}
	req.Queues, req.Wait = c.watch[:engine.MaxReserveQueues], min(wait, chunkPoll)
	return c.reserveOnce(ctx, req)
}

func (c *conn) reserveOnce(ctx context.Context, req engine.ReserveRequest) (*engine.Reserved, error) {
	res, err := c.s.eng.Reserve(ctx, req)
	if err != nil {
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			return nil, nil // hang-up or shutdown: the caller looks at why
		}
		return nil, err
	}
	if len(res.Jobs) == 0 {
		return nil, nil
	}
	return &res.Jobs[0], nil
}

// watchHangup watches the connection for end of input while a reserve waits, and calls
// cancel when it comes. The returned stop ends the watch and reports whether the client hung
// up. Input that arrives meanwhile (pipelined commands) stays buffered for after the reserve.
func (c *conn) watchHangup(cancel context.CancelFunc) (stop func() bool) {
	var hung atomic.Bool
	done := make(chan struct{})
	c.nc.SetReadDeadline(time.Time{})
	go func() {
		defer close(done)
		for {
			n := c.br.Buffered()
			if n >= c.br.Size() {
				return // the buffer is full: nothing more can be seen until the reserve ends
			}
			if _, err := c.br.Peek(n + 1); err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					return // stopped
				}
				hung.Store(true)
				cancel()
				return
			}
		}
	}()
	return func() bool {
		c.nc.SetReadDeadline(time.Unix(1, 0))
		<-done
		return hung.Load()
	}
}

// setWaiting counts the connection as waiting on its watched tubes (d = 1) or not (d = -1).
func (s *Server) setWaiting(watch []string, d int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.waiting += d
	for _, t := range watch {
		if r := s.tubes[t]; r != nil {
			r.waiting += d
		}
	}
}
