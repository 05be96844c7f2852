// Package beanstalk serves the beanstalkd text protocol (beanstalkd 1.12's protocol.txt)
// over spool's job engine, so that existing beanstalkd clients work against spool unchanged.
//
// The front only translates: a tube is a spool queue, a job put here is an engine job that
// the HTTP API sees and works, and the reverse. Per connection it keeps what beanstalkd keeps
// per connection: the tube in use (initially "default"), the watch list (initially
// ["default"]) and the jobs the connection has reserved, each with the engine lease token that
// proves it holds it. Only the reserving connection may delete, release, bury or touch a
// reserved job; when it disconnects, every job it holds is released back to ready.
//
// Mapping of beanstalkd's job parameters to the engine:
//   - pri is the engine's uint32 priority. The engine orders reservations by priority band
//     (the bit length of the priority) and FIFO within a band, where beanstalkd orders by exact
//     priority then id.
//   - ttr is the job's lease; 0 means 1s as in beanstalkd, and a ttr above engine.MaxLease
//     (12h) is clamped to it.
//   - delay is the engine's delay, clamped to engine.MaxDelay (100 years; beanstalkd allows
//     2^32-1 seconds, about 136 years).
//   - jobs put here may be reserved up to engine.MaxMaxAttempts times without being deleted
//     or released before the engine buries them; beanstalkd has no such limit.
//
// docs/beanstalkd.md lists every command and each difference from beanstalkd.
package beanstalk

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spoolq/spool/engine"
	"github.com/spoolq/spool/internal/budget"
	"github.com/spoolq/spool/internal/connlimit"
)

// Defaults of Options.
const (
	DefaultMaxJobSize  = 65535
	DefaultMaxConns    = 4096
	DefaultReadTimeout = time.Minute
	DefaultMaxWatched  = 1000
	DefaultMaxHeld     = 100000
	DefaultOpTimeout   = 30 * time.Second
)

// ProtocolVersion is the beanstalkd release whose protocol the front implements, reported as
// the stats field version. Clients parse it to decide which commands the server has (kick-job
// needs 1.8 or later), so it must read as a beanstalkd version, not as spool's.
const ProtocolVersion = "1.12"

// MaxJobSizeLimit is the largest MaxJobSize, as beanstalkd's -z (1 GiB).
const MaxJobSizeLimit = 1 << 30

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("beanstalk: server closed")

// Options configures a Server. Zero values take the defaults noted.
type Options struct {
	// MaxJobSize is the largest job body in bytes (beanstalkd -z). Default 65535; at most
	// MaxJobSizeLimit. Bodies the engine refuses (engine.Config.MaxPayload) are too big too.
	MaxJobSize int
	// MaxConns bounds the open connections; a connection over the bound is sent
	// OUT_OF_MEMORY and closed at once. Default 4096.
	MaxConns int
	// IdleTimeout closes a connection that sends nothing for this long between commands.
	// Default 0: never, as beanstalkd (dead peers are still found by TCP keep-alive).
	IdleTimeout time.Duration
	// ReadTimeout bounds the time from the first byte of a command to the end of its line
	// and job body; a slower client is disconnected. Default 1m.
	ReadTimeout time.Duration
	// WriteTimeout bounds each write of replies to the socket, whether flushed between
	// commands or pushed out by a full buffer while the client pipelines: a client that stops
	// reading is cut after it, and the jobs it holds go back to ready. Default: ReadTimeout.
	WriteTimeout time.Duration
	// MaxWatched bounds a connection's watch list; a watch over it is answered
	// OUT_OF_MEMORY. Default 1000.
	MaxWatched int
	// MaxHeld bounds the jobs one connection may hold reserved at once; a reserve over it is
	// answered OUT_OF_MEMORY. Default 100000.
	MaxHeld int
	// OpTimeout bounds each engine call. Default 30s.
	OpTimeout time.Duration
	// Budget bounds the memory that job bodies being put hold at once, shared with the
	// other fronts: a put whose body does not fit is answered OUT_OF_MEMORY (its body read
	// away unstored). Nil: no bound but MaxJobSize per connection.
	Budget *budget.Budget
	// Version is spool's own version, reported by the stats command as spool-version. The
	// stats field version is always ProtocolVersion. Default "unknown".
	Version string
	// Logger receives the front's logs. Default slog.Default().
	Logger *slog.Logger
}

func (o *Options) setDefaults() {
	if o.MaxJobSize <= 0 {
		o.MaxJobSize = DefaultMaxJobSize
	}
	o.MaxJobSize = min(o.MaxJobSize, MaxJobSizeLimit)
	if o.MaxConns <= 0 {
		o.MaxConns = DefaultMaxConns
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = DefaultReadTimeout
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = o.ReadTimeout
	}
	if o.MaxWatched <= 0 {
		o.MaxWatched = DefaultMaxWatched
	}
	if o.MaxHeld <= 0 {
		o.MaxHeld = DefaultMaxHeld
	}
	if o.OpTimeout <= 0 {
		o.OpTimeout = DefaultOpTimeout
	}
	if o.Version == "" {
		o.Version = "unknown"
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Server serves the beanstalkd protocol over an engine. It is safe for concurrent use.
type Server struct {
	eng *engine.Engine
	opt Options
	log *slog.Logger

	started  time.Time
	instance string // random id of this server, beanstalkd's "id"

	// base is the context of every connection: cancelled by Close, or by Shutdown once its
	// grace runs out. stopping is closed by Shutdown and Close: waiting reserves end at once.
	base       context.Context
	cancel     context.CancelFunc
	stopCtx    context.Context // cancelled when the server stops
	stopCancel context.CancelFunc
	stopping   chan struct{}
	stopOnce   sync.Once
	draining   atomic.Bool
	// writeCut, when not 0, is the latest write deadline (unix ns) of every connection:
	// set by a stop, so that a client that does not read its replies delays no shutdown.
	writeCut  atomic.Int64
	refuser   chan struct{}
	refusedAt atomic.Int64 // unix ns of the last logged refusal

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}    // until each has ended and given its jobs back
	open      int                   // connections not yet ended: stats' current-connections
	tubes     map[string]*tubeRefs  // tubes named by open connections
	counters  map[string]*tubeTotal // per-tube command counts
	producers int
	workers   int
	waiting   int
	wg        sync.WaitGroup

	totalConns atomic.Uint64
	ops        [numOps]atomic.Uint64

	puts *batcher[engine.EnqueueRequest, uint64]
	acks *batcher[engine.AckRequest, *engine.Job]
	rsvs *batcher[reserveReq, *engine.Reserved]
}

// tubeRefs counts the connections of this server that use, watch or wait on a tube.
type tubeRefs struct {
	using, watching, waiting int
}

// tubeTotal holds a tube's command counts since this server started.
type tubeTotal struct {
	deletes, pauses uint64
	pause           uint32 // seconds of the last pause-tube
}

// New returns a server over eng. Serve it on a listener.
func New(eng *engine.Engine, opt Options) *Server {
	opt.setDefaults()
	var id [8]byte
	rand.Read(id[:])
	base, cancel := context.WithCancel(context.Background())
	stopCtx, stopCancel := context.WithCancel(base)
	s := &Server{
		eng: eng, opt: opt, log: opt.Logger,
		started: time.Now(), instance: hex.EncodeToString(id[:]),
		base: base, cancel: cancel, stopCtx: stopCtx, stopCancel: stopCancel,
		stopping:  make(chan struct{}),
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[*conn]struct{}),
		tubes:     make(map[string]*tubeRefs),
		counters:  make(map[string]*tubeTotal),
		refuser:   connlimit.NewRefuser(),
	}
	s.puts = newBatcher(base, s.enqueueBatch)
	s.acks = newBatcher(base, s.ackBatch)
	s.rsvs = newBatcher(base, s.reserveBatch)
	return s
}

// ListenAndServe listens on addr ("host:port") and serves until Shutdown or Close.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("beanstalk: listen: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Serve accepts connections on ln until Shutdown or Close, or until ctx is cancelled, which
// closes the server as Close does. It always returns a non-nil error: ErrServerClosed after
// Shutdown or Close. It closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.mu.Lock()
	if s.isStopping() {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		ln.Close()
	}()
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	s.log.Info("beanstalkd protocol listening", "addr", ln.Addr().String(), "max_job_size", s.opt.MaxJobSize)
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.isStopping() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// Out of file descriptors or similar: back off as net/http does.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("beanstalk accept", "err", err, "retry_in", delay)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("beanstalk: accept: %w", err)
		}
		delay = 0
		s.accept(nc)
	}
}

func (s *Server) isStopping() bool {
	select {
	case <-s.stopping:
		return true
	default:
		return false
	}
}

func (s *Server) accept(nc net.Conn) {
	s.mu.Lock()
	if s.isStopping() {
		s.mu.Unlock()
		nc.Close()
		return
	}
	if len(s.conns) >= s.opt.MaxConns {
		s.mu.Unlock()
		if now := time.Now().UnixNano(); now-s.refusedAt.Load() > int64(time.Second) { // at most one log a second
			s.refusedAt.Store(now)
			s.log.Warn("beanstalk connection refused: too many connections", "remote", nc.RemoteAddr().String(), "max", s.opt.MaxConns)
		}
		connlimit.Refuse(s.refuser, nc, []byte(msgOutOfMemory+"\r\n"))
		return
	}
	c := newConn(s, nc)
	s.conns[c] = struct{}{}
	s.open++
	s.refTube(defaultTube, 1, 1)
	s.wg.Add(1)
	s.mu.Unlock()
	s.totalConns.Add(1)
	go func() {
		defer s.wg.Done()
		c.serve()
	}()
}

// Shutdown stops the server gracefully: it stops accepting connections, refuses new jobs
// (DRAINING), ends waiting reserves and closes every connection once its current command is
// answered. Each connection releases the jobs it holds on the way out, so Shutdown must
// return before the engine is closed. When ctx ends first, the remaining connections are cut
// and their engine calls cancelled; Shutdown then waits for them and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stop()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.cancel()
		s.mu.Lock()
		for c := range s.conns {
			c.nc.Close()
		}
		s.mu.Unlock()
		<-done
		return ctx.Err()
	}
}

// Close closes the server at once: listeners, connections and their engine calls. Held
// jobs are not released (their leases end on their own). It waits for the connections to end.
func (s *Server) Close() error {
	s.cancel()
	s.stop()
	s.mu.Lock()
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// stopWriteGrace is how long a stop leaves clients to read the replies they are sent.
const stopWriteGrace = time.Second

func (s *Server) stop() {
	s.stopOnce.Do(func() {
		s.draining.Store(true)
		cut := time.Now().Add(stopWriteGrace)
		s.writeCut.Store(cut.UnixNano())
		s.mu.Lock()
		close(s.stopping)
		s.stopCancel()
		for ln := range s.listeners {
			ln.Close()
		}
		for c := range s.conns {
			c.interrupt()
			c.nc.SetWriteDeadline(cut) // after writeCut is set: see conn.Write
		}
		s.mu.Unlock()
	})
}

// refTube adjusts the use and watch counts of a tube. Callers hold s.mu.
func (s *Server) refTube(name string, using, watching int) {
	r := s.tubes[name]
	if r == nil {
		r = &tubeRefs{}
		s.tubes[name] = r
	}
	r.using += using
	r.watching += watching
	if r.using == 0 && r.watching == 0 && r.waiting == 0 {
		delete(s.tubes, name)
	}
}

// total returns a tube's command counts, creating them. Callers hold s.mu.
func (s *Server) total(name string) *tubeTotal {
	t := s.counters[name]
	if t == nil {
		t = &tubeTotal{}
		s.counters[name] = t
	}
	return t
}

// opCtx is the context of one engine call.
func (s *Server) opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.base, s.opt.OpTimeout)
}
