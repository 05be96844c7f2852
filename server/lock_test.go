package server_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/spoolq/spool/server"
)

// runOnce runs a server that is expected to fail at start, and returns its logs and error.
func runOnce(t *testing.T, cfg server.Config) (logs string, err error) {
	t.Helper()
	var buf bytes.Buffer
	cfg.Logger = slog.New(slog.NewTextHandler(&buf, nil))
	cfg.Ready = func(server.Addrs) { t.Errorf("second server started serving on %+v", cfg) }
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = server.Run(ctx, cfg)
	return buf.String(), err
}

// A second server on a data folder in use fails at once, naming the process that holds it,
// before it starts an engine over the same files.
func TestDataDirLocked(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no flock(2): the data folder is not locked on Windows")
	}
	t.Parallel()
	data := t.TempDir()
	a := startNode(t, server.Config{DataDir: data})

	logs, err := runOnce(t, server.Config{DataDir: data, HTTPAddr: "127.0.0.1:0"})
	if err == nil {
		t.Fatal("a second server on the same data folder started")
	}
	want := fmt.Sprintf("data folder %s is in use by another spool server (pid %d)", data, os.Getpid())
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q, want it to contain %q", err, want)
	}
	if logs != "" {
		t.Fatalf("the second server did something before failing:\n%s", logs)
	}
	// The first server is unharmed.
	if st := call(t, "POST", "http://"+a.HTTP+"/v1/queues/locked/jobs", map[string]any{"payload": 1}, nil); st != 201 {
		t.Fatalf("enqueue on the first server: %d", st)
	}
	b, err := os.ReadFile(filepath.Join(data, "spool.lock"))
	if err != nil || strings.TrimSpace(string(b)) != fmt.Sprint(os.Getpid()) {
		t.Fatalf("lock file holds %q (%v), want the pid %d", b, err, os.Getpid())
	}
}

// Once the first server stops, its data folder can be opened again.
func TestDataDirLockReleased(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no flock(2)")
	}
	t.Parallel()
	data := t.TempDir()
	ready := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- server.Run(ctx, server.Config{DataDir: data, HTTPAddr: "127.0.0.1:0",
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Ready: func(server.Addrs) { close(ready) }})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("first server: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("first server: %v", err)
	}
	startNode(t, server.Config{DataDir: data})
}

// A busy HTTP port fails before the engine opens its store.
func TestBusyPortFailsBeforeEngine(t *testing.T) {
	t.Parallel()
	a := startNode(t, server.Config{})
	data := t.TempDir()
	logs, err := runOnce(t, server.Config{DataDir: data, HTTPAddr: a.HTTP})
	if err == nil || !strings.Contains(err.Error(), "http listen") {
		t.Fatalf("error %v, want an http listen error", err)
	}
	if logs != "" {
		t.Fatalf("the second server did something before failing:\n%s", logs)
	}
	if _, err := os.Stat(filepath.Join(data, "jetstream")); !os.IsNotExist(err) {
		t.Fatalf("the engine created its store before the port was checked: %v", err)
	}
}
