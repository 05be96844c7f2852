package spool

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"
)

// ackItem is a successful job waiting for its acknowledgement.
type ackItem struct {
	id     uint64
	token  string
	result json.RawMessage
	log    *slog.Logger
}

// acker sends the acknowledgements of successful jobs in batches: each request takes
// every acknowledgement that arrived while the previous one was in flight (up to
// MaxBatch), so a busy worker sends few requests and an idle one adds no delay.
type acker struct {
	w    *Worker
	ch   chan ackItem
	done chan struct{}
}

func newAcker(w *Worker) *acker {
	return &acker{w: w, ch: make(chan ackItem, MaxBatch), done: make(chan struct{})}
}

// add queues an acknowledgement. It must not be called after close.
func (a *acker) add(it ackItem) { a.ch <- it }

// close sends the acknowledgements queued so far and waits for them.
func (a *acker) close() {
	close(a.ch)
	<-a.done
}

func (a *acker) run() {
	defer close(a.done)
	batch := make([]ackItem, 0, MaxBatch)
	for it := range a.ch {
		batch = append(batch[:0], it)
	more:
		for len(batch) < MaxBatch {
			select {
			case it, ok := <-a.ch:
				if !ok {
					break more
				}
				batch = append(batch, it)
			default:
				break more
			}
		}
		a.send(batch)
	}
}

// ackTries is how many times a batch is sent when the server cannot be reached. Sending
// again is safe: a job already acknowledged answers lease_lost.
const ackTries = 4

func (a *acker) send(batch []ackItem) {
	acks := make([]BatchAck, len(batch))
	for i, it := range batch {
		acks[i] = BatchAck{ID: it.id, LeaseToken: it.token}
		if it.result != nil {
			acks[i].Result = it.result
		}
	}
	var (
		res []BatchAckResult
		err error
		try int
	)
	for try = 1; ; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), reportTimeout)
		res, err = a.w.client.AckBatch(ctx, acks)
		cancel()
		if err == nil || !errors.Is(err, ErrUnavailable) || try == ackTries {
			break
		}
		time.Sleep(retryDelay(try))
	}
	if err != nil {
		a.w.log.Error("acknowledgement failed; the jobs are offered again when their leases end",
			"jobs", len(batch), "err", err)
		return
	}
	for i, r := range res {
		switch {
		case r.Err != nil && try > 1 && errors.Is(r.Err, ErrLeaseLost):
			// An earlier try may have reached the server: the job is acknowledged already,
			// or its lease ended meanwhile.
			batch[i].log.Debug("acknowledgement sent again answered lease_lost", "err", r.Err)
		case r.Err != nil:
			batch[i].log.Warn("acknowledgement refused; the job may run again", "err", r.Err)
		default:
			batch[i].log.Debug("job succeeded")
		}
	}
}
