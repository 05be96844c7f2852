// Package spooltest starts real spool servers in-process for the tests of the client and
// of the spool command. It is imported by tests only.
package spooltest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/spoolq/spool/server"
)

// Server is a running spool server.
type Server struct {
	URL   string // base URL of the HTTP API, e.g. "http://127.0.0.1:39155" (https:// with TLS)
	Addrs server.Addrs

	cancel context.CancelFunc
	done   chan error
}

// startTimeout bounds how long a server may take to become ready.
const startTimeout = 60 * time.Second

// Run starts a server storing under dataDir, listening on a free loopback port, and
// returns once it serves requests. The caller must Stop it. configure, if not nil,
// adjusts the configuration before the start. Set SPOOL_TEST_LOG=1 to see its logs.
func Run(dataDir string, configure func(*server.Config)) (*Server, error) {
	logger := slog.New(slog.DiscardHandler)
	if os.Getenv("SPOOL_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ready := make(chan server.Addrs, 1)
	cfg := server.Config{
		DataDir:         dataDir,
		HTTPAddr:        "127.0.0.1:0",
		Logger:          logger,
		Version:         "test",
		ShutdownTimeout: 10 * time.Second,
		Ready:           func(a server.Addrs) { ready <- a },
	}
	if configure != nil {
		configure(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- server.Run(ctx, cfg) }()
	select {
	case s.Addrs = <-ready:
		s.URL = "http://" + s.Addrs.HTTP
		if cfg.TLSCert != "" {
			s.URL = "https://" + s.Addrs.HTTP
		}
		return s, nil
	case err := <-s.done:
		cancel()
		if err == nil {
			err = errors.New("server.Run returned before it was ready")
		}
		return nil, fmt.Errorf("spooltest: start server: %w", err)
	case <-time.After(startTimeout):
		cancel()
		return nil, fmt.Errorf("spooltest: server not ready after %s", startTimeout)
	}
}

// Stop shuts the server down gracefully and returns the error of server.Run.
func (s *Server) Stop() error {
	s.cancel()
	select {
	case err := <-s.done:
		if errors.Is(err, context.Canceled) {
			err = nil
		}
		return err
	case <-time.After(startTimeout):
		return fmt.Errorf("spooltest: server did not stop within %s", startTimeout)
	}
}

// Start runs a server with a temporary data directory for the test, and stops it when
// the test ends (failing the test if the shutdown fails).
func Start(tb testing.TB, configure func(*server.Config)) *Server {
	tb.Helper()
	s, err := Run(tb.TempDir(), configure)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Stop(); err != nil {
			tb.Errorf("stop server: %v", err)
		}
	})
	return s
}

// Main runs a test package's tests against one server shared by all of them: it starts the
// server in a temporary directory, sets *url and $SPOOL_SERVER to its base URL (runnable
// examples read the variable as a user's program would), runs m and stops the server.
// It returns the exit code for os.Exit; a failure to start or stop the server fails the run.
func Main(m *testing.M, url *string) int {
	dir, err := os.MkdirTemp("", "spool-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	srv, err := Run(dir, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	*url = srv.URL
	if err := os.Setenv("SPOOL_SERVER", srv.URL); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	if err := srv.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop server:", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// Eventually retries f every 20 ms until it returns nil, and fails the test with f's last
// error once d has passed. JetStream's consumer counts can lag a write by a moment.
func Eventually(t testing.TB, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Resources are the process's goroutines and open file descriptors at one moment.
type Resources struct{ Goroutines, FDs int }

// TakeResources counts the process's goroutines and open file descriptors (-1 where
// /proc/self/fd cannot be read).
func TakeResources() Resources {
	fds := -1
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		fds = len(ents)
	}
	return Resources{Goroutines: runtime.NumGoroutine(), FDs: fds}
}

// SettleTo waits until the goroutines and descriptors are back to at most base plus slack
// (background timers come and go), and fails the test if they do not within d: a leak.
// Call it from a test that does not run in parallel with others.
func SettleTo(t testing.TB, base Resources, slack int, d time.Duration) {
	t.Helper()
	Eventually(t, d, func() error {
		now := TakeResources()
		if now.Goroutines > base.Goroutines+slack || now.FDs > base.FDs+slack {
			buf := make([]byte, 1<<20)
			return fmt.Errorf("leak: %d goroutines and %d descriptors, baseline %d and %d; goroutines:\n%s",
				now.Goroutines, now.FDs, base.Goroutines, base.FDs, buf[:runtime.Stack(buf, true)])
		}
		return nil
	})
}
