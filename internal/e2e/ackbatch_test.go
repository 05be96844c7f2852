package e2e

import (
	"errors"
	"testing"
	"time"

	"github.com/spoolq/spool"
)

func TestAckBatch(t *testing.T) {
	c := newClient(t)
	queue := queueName(t)
	ctx := ctxT(t)
	for i := range 3 {
		if _, err := c.Enqueue(ctx, queue, "t", map[string]int{"i": i}); err != nil {
			t.Fatal(err)
		}
	}
	res, err := c.Reserve(ctx, spool.ReserveOptions{Queues: []string{queue}, Max: 3, Wait: 5 * time.Second})
	if err != nil || len(res.Jobs) != 3 {
		t.Fatalf("reserve: %d jobs, %v", len(res.Jobs), err)
	}
	j := res.Jobs
	// The second job's lease is taken away by a cancel: its ack alone is refused.
	if _, err := c.Cancel(ctx, j[1].ID); err != nil {
		t.Fatal(err)
	}
	out, err := c.AckBatch(ctx, []spool.BatchAck{
		{ID: j[0].ID, LeaseToken: j[0].LeaseToken, Result: map[string]bool{"ok": true}},
		{ID: j[1].ID, LeaseToken: j[1].LeaseToken},
		{ID: j[2].ID, LeaseToken: j[2].LeaseToken},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 3 {
		t.Fatalf("%d results for 3 acks", len(out))
	}
	for i, want := range []bool{true, false, true} {
		if out[i].ID != j[i].ID {
			t.Errorf("result %d is for job %d, want %d", i, out[i].ID, j[i].ID)
		}
		if ok := out[i].Err == nil && out[i].State == spool.StateSucceeded; ok != want {
			t.Errorf("result %d: state %q, err %v", i, out[i].State, out[i].Err)
		}
	}
	if !errors.Is(out[1].Err, spool.ErrLeaseLost) {
		t.Errorf("ack of the cancelled job: %v, want ErrLeaseLost", out[1].Err)
	}
	got, err := c.Job(ctx, j[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != spool.StateSucceeded || string(got.Result) != `{"ok":true}` {
		t.Errorf("acked job: %s, result %s", got.State, got.Result)
	}

	// Malformed batches fail as a whole, before any request.
	if _, err := c.AckBatch(ctx, nil); err == nil {
		t.Error("empty batch: no error")
	}
	if _, err := c.AckBatch(ctx, make([]spool.BatchAck, spool.MaxBatch+1)); err == nil {
		t.Error("oversized batch: no error")
	}
	// A batch the server rejects as invalid: an *APIError naming the field.
	_, err = c.AckBatch(ctx, []spool.BatchAck{{ID: j[2].ID}})
	var ae *spool.APIError
	if !errors.As(err, &ae) || !errors.Is(err, spool.ErrInvalidArgument) || ae.Field != "acks[0].lease_token" {
		t.Errorf("ack without a token: %v", err)
	}
}
