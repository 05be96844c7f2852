package engine_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/spoolq/spool/engine"
	"github.com/spoolq/spool/internal/spooltest"
)

func TestDeadLetterQueue(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	ctx := ctxT(t)
	for _, q := range []string{"work", "work-dlq"} {
		if _, err := e.PutQueue(ctx, q, engine.QueueSettings{MaxAttempts: 5}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.SetDeadLetter(ctx, "work", "work"); err == nil {
		t.Fatal("a queue accepted itself as its dead-letter queue")
	}
	if _, err := e.SetDeadLetter(ctx, "work", "nope"); err == nil {
		t.Fatal("a missing dead-letter queue was accepted")
	}
	qi, err := e.SetDeadLetter(ctx, "work", "work-dlq")
	if err != nil || qi.DeadLetter != "work-dlq" {
		t.Fatalf("set dead letter: %+v %v", qi, err)
	}
	if got := e.DeadLetterSources("work-dlq"); len(got) != 1 || got[0] != "work" {
		t.Fatalf("dead-letter sources: %v", got)
	}

	// Out of attempts by a failure: made ready, moved at its next reservation.
	failed := enqueue(t, e, engine.EnqueueRequest{Queue: "work", Payload: []byte("f"), MaxAttempts: 2, Metadata: map[string]string{"k": "v"}})
	for range 2 {
		r := reserveOne(t, e, 5*time.Second, "work")
		zero := time.Duration(0)
		if _, err := e.Fail(ctx, failed.ID, r.Token, engine.FailRequest{Error: "boom", RetryIn: &zero}); err != nil {
			t.Fatal(err)
		}
	}
	// Out of attempts by an expired lease; its unique key is released when it moves. The
	// node gives the job back when the lease runs out: ready, not buried, for the next
	// reservation to move it.
	expired := enqueue(t, e, engine.EnqueueRequest{Queue: "work", Payload: []byte("x"), MaxAttempts: 1, Lease: time.Second, UniqueKey: "u"})
	reserveOne(t, e, 5*time.Second, "work")
	spooltest.Eventually(t, 30*time.Second, func() error {
		if j, err := e.Job(ctx, expired.ID); err != nil || j.Timeouts != 1 {
			return fmt.Errorf("job with an expired lease: %+v %v", j, err)
		}
		return nil
	})
	if j := wantState(t, e, expired.ID, engine.StateReady); j.Queue != "work" {
		t.Fatalf("job given back at the end of its lease: queue %s", j.Queue)
	}

	// Reservations move both and hand out neither. (Each waits a little: the bound is the
	// whole loop's, for a loaded machine.)
	spooltest.Eventually(t, 30*time.Second, func() error {
		if got := reserve(t, e, 1, 250*time.Millisecond, "work"); len(got) != 0 {
			t.Fatalf("a job out of attempts was handed out: %+v", got[0].Job)
		}
		for _, id := range []uint64{failed.ID, expired.ID} {
			if j, err := e.Job(ctx, id); err != nil || j.Queue != "work-dlq" {
				return fmt.Errorf("job %d not moved yet: %+v %v", id, j, err)
			}
		}
		return nil
	})
	for _, id := range []uint64{failed.ID, expired.ID} {
		j := wantState(t, e, id, engine.StateReady)
		if j.Queue != "work-dlq" || j.Attempts != 0 || j.MaxAttempts != 5 {
			t.Fatalf("job %d after the move: queue %s attempts %d/%d", id, j.Queue, j.Attempts, j.MaxAttempts)
		}
	}
	if again := enqueue(t, e, engine.EnqueueRequest{Queue: "work", UniqueKey: "u"}); again.ID == expired.ID {
		t.Fatal("the unique key of a job moved to its dead-letter queue still holds")
	} else if _, err := e.Delete(ctx, again.ID); err != nil {
		t.Fatal(err)
	}
	got := reserve(t, e, 2, 5*time.Second, "work-dlq")
	if len(got) != 2 {
		t.Fatalf("reserved %d jobs from the dead-letter queue, want 2", len(got))
	}
	for _, r := range got {
		if r.Job.ID == failed.ID && (string(r.Job.Payload) != "f" || r.Job.Metadata["k"] != "v" || r.Job.LastError != "boom") {
			t.Fatalf("moved job: %+v", r.Job)
		}
		if r.Job.FirstReservedAt.IsZero() || r.Job.FirstReservedAt.After(r.Job.ReservedAt) {
			t.Fatalf("first reservation %v, reservation %v", r.Job.FirstReservedAt, r.Job.ReservedAt)
		}
		if _, err := e.Ack(ctx, r.Job.ID, r.Token, nil); err != nil {
			t.Fatal(err)
		}
	}

	// Off again: a job out of attempts is buried in place.
	if _, err := e.SetDeadLetter(ctx, "work", ""); err != nil {
		t.Fatal(err)
	}
	j := enqueue(t, e, engine.EnqueueRequest{Queue: "work", MaxAttempts: 1})
	r := reserveOne(t, e, 5*time.Second, "work")
	if _, err := e.Fail(ctx, j.ID, r.Token, engine.FailRequest{Error: "boom"}); err != nil {
		t.Fatal(err)
	}
	if b := wantState(t, e, j.ID, engine.StateBuried); b.Queue != "work" {
		t.Fatalf("buried in %s", b.Queue)
	}
}

func TestQueueAttributes(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	ctx := ctxT(t)
	if _, err := e.SetQueueAttributes(ctx, "none", map[string]string{"a": "1"}, nil); !errors.Is(err, engine.ErrQueueNotFound) {
		t.Fatalf("attributes of a missing queue: %v", err)
	}
	if _, err := e.PutQueue(ctx, "q", engine.QueueSettings{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.SetQueueAttributes(ctx, "q", map[string]string{"": "1"}, nil); err == nil {
		t.Fatal("empty key accepted")
	}
	if _, err := e.SetQueueAttributes(ctx, "q", map[string]string{"a": "1", "b": "2"}, nil); err != nil {
		t.Fatal(err)
	}
	qi, err := e.SetQueueAttributes(ctx, "q", map[string]string{"c": "3"}, []string{"a"})
	if err != nil {
		t.Fatal(err)
	}
	if len(qi.Attributes) != 2 || qi.Attributes["b"] != "2" || qi.Attributes["c"] != "3" {
		t.Fatalf("attributes %v", qi.Attributes)
	}
	if cfg, err := e.QueueConfig(ctx, "q"); err != nil || len(cfg.Attributes) != 2 || cfg.Attributes["c"] != "3" {
		t.Fatalf("QueueConfig: %+v %v", cfg, err)
	}
	many := map[string]string{}
	for i := range engine.MaxQueueAttrs {
		many[string(rune('A'+i%26))+string(rune('a'+i/26))] = "x"
	}
	if _, err := e.SetQueueAttributes(ctx, "q", many, nil); err == nil {
		t.Fatal("more than MaxQueueAttrs attributes accepted")
	}
}
