package engine_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/spoolq/spool/engine"

	"github.com/spoolq/spool/internal/testlog"
)

// Pause and queue deletion log what happened, never a zero time.
func TestPauseAndDeleteLogs(t *testing.T) {
	t.Parallel()
	var logs testlog.Buffer
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
