package engine_test

import (
	"errors"
	"sync/atomic"
	"testing"

	"github.com/spoolq/spool/engine"
)

// While Config.StoreErr reports a full store, new jobs and queues are refused at once with a
// transient ErrNoSpace; reads and acks go on; new jobs are taken again once it clears.
func TestStoreErrRefusesNewJobs(t *testing.T) {
	t.Parallel()
	var full atomic.Bool
	e := openEngine(t, startNATS(t), engine.Config{StoreErr: func() error {
		if full.Load() {
			return errors.New("disk full")
		}
		return nil
	}})
	j := enqueue(t, e, engine.EnqueueRequest{Queue: "q", Payload: []byte(`1`)})
	res, err := e.Reserve(ctxT(t), engine.ReserveRequest{Queues: []string{"q"}, Max: 1})
	if err != nil || len(res.Jobs) != 1 {
		t.Fatalf("reserve: %v %v", res, err)
	}
	full.Store(true)
	for _, q := range []string{"q", "new-queue"} {
		_, err := e.Enqueue(ctxT(t), []engine.EnqueueRequest{{Queue: q, Payload: []byte(`2`)}})
		if !errors.Is(err, engine.ErrNoSpace) || !engine.Transient(err) {
			t.Fatalf("enqueue to %s with the store full: %v, want a transient ErrNoSpace", q, err)
		}
	}
	if _, err := e.PutQueue(ctxT(t), "other", engine.QueueSettings{}); !errors.Is(err, engine.ErrNoSpace) {
		t.Fatalf("create a queue with the store full: %v", err)
	}
	var ve *engine.ValidationError
	if _, err := e.Enqueue(ctxT(t), []engine.EnqueueRequest{{Queue: "q", Payload: []byte(`4`), Lease: -1}}); !errors.As(err, &ve) {
		t.Fatalf("an invalid job is refused as invalid first, got %v", err)
	}
	if got, err := e.Job(ctxT(t), j.ID); err != nil || got.State != engine.StateReserved {
		t.Fatalf("read with the store full: %+v %v", got, err)
	}
	if _, err := e.Ack(ctxT(t), j.ID, res.Jobs[0].Token, nil); err != nil {
		t.Fatalf("ack with the store full: %v", err)
	}
	full.Store(false)
	enqueue(t, e, engine.EnqueueRequest{Queue: "new-queue", Payload: []byte(`3`)})
}
