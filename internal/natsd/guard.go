package natsd

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// DefaultMinFree is the free space under which Guard reports the store as low on space.
const DefaultMinFree = 64 << 20

// guardTick is how often Guard looks at the filesystem's free space.
const guardTick = time.Second

// Guard watches the embedded store's health and recovers it from a full disk.
//
// nats-server (2.15) keeps a write error of a stream's file store (ENOSPC, an I/O error) for
// good: the stream answers no publish again (its publishers time out) until JetStream
// restarts. So Guard notes the write errors the server logs, reports the store as failed,
// and once the filesystem has MinFree bytes free again restarts JetStream in place (its
// streams are recovered from disk, as at a start; clients stay connected). It also reports
// the store as low on space while less than MinFree is free, before writes fail.
type Guard struct {
	dir     string
	minFree uint64
	log     *slog.Logger

	failed  atomic.Pointer[string] // the write error logged, until JetStream restarts
	low     atomic.Bool            // less than minFree free at the last look
	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	closing sync.Once

	restarts atomic.Int64
	// A store that fails again soon after a restart (an I/O error rather than a full disk)
	// is restarted after a growing pause, not every tick.
	backoff time.Duration
	nextTry time.Time
	lastRun time.Time
}

// Backoff bounds of the restarts.
const (
	minBackoff = time.Second
	maxBackoff = time.Minute
)

// ErrStoreFailed is wrapped by Guard.Err while the store cannot write.
var ErrStoreFailed = errors.New("store cannot write")

// NewGuard returns a guard of the store under dir, for Options.Guard. minFree <= 0 takes
// DefaultMinFree.
func NewGuard(dir string, minFree int64, log *slog.Logger) *Guard {
	if minFree <= 0 {
		minFree = DefaultMinFree
	}
	if log == nil {
		log = slog.Default()
	}
	return &Guard{dir: dir, minFree: uint64(minFree), log: log, kick: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{})}
}

// Err is nil while the store can write; otherwise it wraps ErrStoreFailed with the reason.
func (g *Guard) Err() error {
	if r := g.failed.Load(); r != nil {
		return fmt.Errorf("%w: %s (recovering once %d MiB are free)", ErrStoreFailed, *r, g.minFree>>20)
	}
	if g.low.Load() {
		return fmt.Errorf("%w: less than %d MiB free in %s", ErrStoreFailed, g.minFree>>20, g.dir)
	}
	return nil
}

// Restarts is the number of JetStream restarts the guard has done.
func (g *Guard) Restarts() int64 { return g.restarts.Load() }

// noteLog looks at an error the server logs for a store write failure.
func (g *Guard) noteLog(msg string) {
	if !strings.Contains(msg, "ritical write error") && !strings.Contains(msg, "JetStream failed to store a msg") {
		return
	}
	if g.failed.CompareAndSwap(nil, &msg) {
		g.log.Error("store write failed: writes to the stream fail until JetStream restarts, which happens once space is free", "err", msg)
	}
	select {
	case g.kick <- struct{}{}:
	default:
	}
}

// start runs the guard over ns until Close.
func (g *Guard) start(ns *server.Server) {
	go func() {
		defer close(g.done)
		t := time.NewTicker(guardTick)
		defer t.Stop()
		for {
			g.check(ns)
			select {
			case <-g.stop:
				return
			case <-t.C:
			case <-g.kick:
			}
		}
	}()
}

func (g *Guard) check(ns *server.Server) {
	free, ok := freeSpace(g.dir)
	if !ok {
		return
	}
	if low := free < g.minFree; low != g.low.Swap(low) {
		if low {
			g.log.Warn("store low on space: new jobs are refused", "dir", g.dir, "free_mib", free>>20, "min_free_mib", g.minFree>>20)
		} else {
			g.log.Info("store has space again", "dir", g.dir, "free_mib", free>>20)
		}
	}
	if g.failed.Load() == nil || free < g.minFree || time.Now().Before(g.nextTry) {
		return
	}
	if ns.JetStreamIsClustered() {
		// A clustered node hands a failed replicated stream to its peers (nats-server puts
		// it in observer mode); restarting JetStream here would leave and rejoin the
		// cluster. The guard only reports.
		return
	}
	if time.Since(g.lastRun) > maxBackoff {
		g.backoff = minBackoff
	} else {
		g.backoff = min(2*g.backoff, maxBackoff)
	}
	g.lastRun, g.nextTry = time.Now(), time.Now().Add(g.backoff)
	g.log.Warn("restarting JetStream to recover the store from its write error", "free_mib", free>>20)
	start := time.Now()
	if err := ns.ShutdownJetStream(); err != nil {
		g.log.Error("JetStream shutdown", "err", err)
		return
	}
	g.failed.Store(nil) // errors logged from here on are new ones
	if err := ns.EnableJetStream(&server.JetStreamConfig{StoreDir: g.dir}); err != nil {
		reason := "restart JetStream: " + err.Error()
		g.failed.Store(&reason)
		g.log.Error("JetStream restart failed; trying again", "err", err)
		return
	}
	g.restarts.Add(1)
	g.log.Info("JetStream restarted: the store writes again", "took", time.Since(start).Round(time.Millisecond))
}

// Close stops the guard.
func (g *Guard) Close() {
	g.closing.Do(func() { close(g.stop) })
	<-g.done
}
