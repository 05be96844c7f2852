// Package connlimit caps the open connections of a front. A connection over the cap is not
// queued (as golang.org/x/net/netutil.LimitListener does, which leaves the client waiting
// without a word): it is sent a refusal it can read, such as an HTTP 503, and closed.
package connlimit

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// refusers bounds the refusals under way at once; past it a connection is closed without a
// word, so that a flood of connections costs no more than this many goroutines.
const refusers = 64

// refuseTime bounds the sending of a refusal and the reading of what the client sent.
const refuseTime = time.Second

// Listener is a net.Listener that holds at most Max connections open. Accept returns only
// connections under the cap; the others are refused with the Refusal bytes.
type Listener struct {
	net.Listener
	max     int64
	refusal []byte
	open    atomic.Int64
	refused atomic.Uint64
	sem     chan struct{}
}

// NewListener wraps ln so that at most max connections are open at once; over it, a new
// connection is sent refusal and closed.
func NewListener(ln net.Listener, max int, refusal []byte) *Listener {
	return &Listener{Listener: ln, max: int64(max), refusal: refusal, sem: NewRefuser()}
}

// Accept waits for a connection under the cap, refusing those over it meanwhile.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) <= l.max {
			return &conn{Conn: c, l: l}, nil
		}
		l.open.Add(-1)
		l.refused.Add(1)
		Refuse(l.sem, c, l.refusal)
	}
}

// Open is the number of connections accepted and not yet closed.
func (l *Listener) Open() int { return int(l.open.Load()) }

// Refused is the number of connections refused since the start.
func (l *Listener) Refused() uint64 { return l.refused.Load() }

// NewRefuser returns the semaphore that bounds the refusals in flight, for Refuse.
func NewRefuser() chan struct{} { return make(chan struct{}, refusers) }

// Refuse sends msg to c and closes it, in the background when sem (from NewRefuser) has room,
// at once without a word otherwise. msg answers the client's first request: it is sent once
// the request starts to arrive (an HTTP client takes an answer before its request for a
// protocol error), or after a second of silence. The write side is then shut and the rest
// of the request read away for a moment, so that the client reads msg, not a reset.
func Refuse(sem chan struct{}, c net.Conn, msg []byte) {
	select {
	case sem <- struct{}{}:
	default:
		c.Close()
		return
	}
	go func() {
		defer func() { <-sem }()
		defer c.Close()
		c.SetDeadline(time.Now().Add(refuseTime))
		var first [512]byte
		if _, err := c.Read(first[:]); err != nil && !isTimeout(err) {
			return
		}
		c.SetDeadline(time.Now().Add(refuseTime))
		if _, err := c.Write(msg); err != nil {
			return
		}
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		io.Copy(io.Discard, io.LimitReader(c, 64<<10))
	}()
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

type conn struct {
	net.Conn
	l    *Listener
	once sync.Once
}

// CloseWrite shuts the write side when the connection has one (net/http uses it to end a
// connection cleanly).
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.open.Add(-1) })
	return err
}
