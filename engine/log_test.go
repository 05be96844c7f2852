package engine_test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spoolq/spool/engine"
)

// syncBuffer is a bytes.Buffer safe for the engine's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Pause and queue deletion log what happened, never a zero time.
func TestPauseAndDeleteLogs(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	e := openEngine(t, startNATS(t), engine.Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	ctx := ctxT(t)
	enqueue(t, e, engine.EnqueueRequest{Queue: "forever"})
	enqueue(t, e, engine.EnqueueRequest{Queue: "awhile"})
	if _, err := e.Pause(ctx, "forever", time.Time{}); err != nil {
		t.Fatal(err)
	}
	until := time.Now().Add(time.Hour)
	if _, err := e.Pause(ctx, "awhile", until); err != nil {
		t.Fatal(err)
	}
	if err := e.DeleteQueue(ctx, "awhile"); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if strings.Contains(out, "0001-01-01") {
		t.Errorf("a zero time in the log:\n%s", out)
	}
	for _, want := range []string{
		`msg="queue paused until resumed" queue=forever`,
		`msg="queue paused" queue=awhile until=` + until.Format("2006-01-02T15:04"),
		`msg="queue deleted" queue=awhile`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
	if n := strings.Count(out, `msg="queue paused"`); n != 1 {
		t.Errorf("%d pauses logged, want 1 (a deletion is no pause):\n%s", n, out)
	}
}
