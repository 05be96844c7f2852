package sqs

import (
	"context"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spoolq/spool/engine"
)

// A message move task (StartMessageMoveTask) redrives the messages of a dead-letter queue:
// it reserves them a batch at a time, enqueues each as a new job in the destination (body,
// attributes, priority) and deletes the original. Tasks run on the node that started them
// and their status lives in its memory: ListMessageMoveTasks on another node does not see
// them, and a restart forgets finished ones.

const maxMoveRate = 500

type moveTask struct {
	handle              string
	source, destination string
	rate                int
	started             time.Time
	toMove              int64

	mu     sync.Mutex
	status string // RUNNING, COMPLETED, CANCELLING, CANCELLED, FAILED
	moved  int64
	reason string
	cancel context.CancelFunc
}

type moveTasks struct {
	h     *Handler
	ctx   context.Context
	stop  context.CancelFunc
	wg    sync.WaitGroup
	mu    sync.Mutex
	tasks map[string][]*moveTask // by source queue, oldest first
	n     int
}

func newMoveTasks(h *Handler) *moveTasks {
	ctx, stop := context.WithCancel(context.Background())
	return &moveTasks{h: h, ctx: ctx, stop: stop, tasks: map[string][]*moveTask{}}
}

func (m *moveTasks) close() {
	m.stop()
	m.wg.Wait()
}

type moveTaskResult struct {
	TaskHandle                        string `json:"TaskHandle,omitempty"`
	Status                            string `json:"Status"`
	SourceArn                         string `json:"SourceArn"`
	DestinationArn                    string `json:"DestinationArn,omitempty"`
	MaxNumberOfMessagesPerSecond      int    `json:"MaxNumberOfMessagesPerSecond,omitempty"`
	ApproximateNumberOfMessagesMoved  int64  `json:"ApproximateNumberOfMessagesMoved"`
	ApproximateNumberOfMessagesToMove int64  `json:"ApproximateNumberOfMessagesToMove"`
	FailureReason                     string `json:"FailureReason,omitempty"`
	StartedTimestamp                  int64  `json:"StartedTimestamp"`
}

func (h *Handler) startMessageMoveTask(ctx context.Context, req *request) (any, error) {
	if req.SourceArn == "" {
		return nil, errorf(errMissingParam, "the request must contain the parameter SourceArn")
	}
	src, err := arnQueue(req.SourceArn)
	if err != nil {
		return nil, err
	}
	sqi, err := h.eng.Queue(ctx, src)
	if errors.Is(err, engine.ErrQueueNotFound) {
		return nil, errorf(errResourceNotFound, "the source queue %s does not exist", src)
	}
	if err != nil {
		return nil, err
	}
	dst := ""
	if req.DestinationArn != "" {
		if dst, err = arnQueue(req.DestinationArn); err != nil {
			return nil, err
		}
	} else {
		sources := h.eng.DeadLetterSources(src)
		if len(sources) != 1 {
			return nil, errorf(errInvalidParam, "%s is the dead-letter queue of %d queues: name the DestinationArn (spool does not keep each message's source queue)", src, len(sources))
		}
		dst = sources[0]
	}
	if dst == src {
		return nil, errorf(errInvalidParam, "the destination is the source")
	}
	if _, err := h.eng.QueueConfig(ctx, dst); err != nil {
		if errors.Is(err, engine.ErrQueueNotFound) {
			return nil, errorf(errResourceNotFound, "the destination queue %s does not exist", dst)
		}
		return nil, err
	}
	rate := int(req.MaxNumberOfMessagesPerSec.intOr(0))
	if rate < 0 || rate > maxMoveRate {
		return nil, errorf(errInvalidParam, "MaxNumberOfMessagesPerSecond must be from 1 to %d", maxMoveRate)
	}
	m := h.move
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, t := range m.tasks[src] {
		t.mu.Lock()
		running := t.status == "RUNNING" || t.status == "CANCELLING"
		t.mu.Unlock()
		if running {
			return nil, errorf(errUnsupported, "a message move task is running on %s already", src)
		}
	}
	if m.ctx.Err() != nil {
		return nil, errorf(errUnavailable, "shutting down")
	}
	m.n++
	t := &moveTask{
		handle: base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(m.n) + ":" + src)),
		source: src, destination: dst, rate: rate, started: h.opt.Now(), status: "RUNNING",
		toMove: sqi.Stats.Ready + sqi.Stats.Delayed,
	}
	tctx, cancel := context.WithCancel(m.ctx)
	t.cancel = cancel
	m.tasks[src] = append(m.tasks[src], t)
	if l := m.tasks[src]; len(l) > 10 {
		m.tasks[src] = l[len(l)-10:]
	}
	m.wg.Go(func() {
		defer cancel()
		h.runMove(tctx, t)
	})
	return struct {
		TaskHandle string `json:"TaskHandle"`
	}{t.handle}, nil
}

// runMove moves the source's ready messages until none is left or the task is cancelled.
func (h *Handler) runMove(ctx context.Context, t *moveTask) {
	finish := func(status, reason string) {
		t.mu.Lock()
		t.status, t.reason = status, reason
		t.mu.Unlock()
		h.log.Info("sqs message move task ended", "source", t.source, "destination", t.destination, "status", status, "moved", t.moved, "reason", reason)
	}
	batch := maxBatch
	if t.rate > 0 {
		batch = min(batch, t.rate)
	}
	for {
		start := time.Now()
		res, err := h.eng.Reserve(ctx, engine.ReserveRequest{Queues: []string{t.source}, Max: batch, Worker: "sqs-move"})
		if ctx.Err() != nil {
			finish("CANCELLED", "")
			return
		}
		if err != nil {
			finish("FAILED", err.Error())
			return
		}
		if len(res.Jobs) == 0 {
			finish("COMPLETED", "")
			return
		}
		reqs := make([]engine.EnqueueRequest, len(res.Jobs))
		for i, r := range res.Jobs {
			j := r.Job
			reqs[i] = engine.EnqueueRequest{Queue: t.destination, Type: j.Type, Payload: j.Payload, Priority: j.Priority, Metadata: j.Metadata}
		}
		out, err := h.eng.Enqueue(context.WithoutCancel(ctx), reqs)
		var acks []engine.AckRequest
		for i, r := range res.Jobs {
			if err == nil && out[i].Err == nil {
				acks = append(acks, engine.AckRequest{ID: r.Job.ID, Token: r.Token})
			} else if _, ferr := h.eng.Fail(context.WithoutCancel(ctx), r.Job.ID, r.Token, engine.FailRequest{Error: "message move failed", RetryIn: new(time.Duration)}); ferr != nil {
				h.log.Warn("sqs move: give back", "job", r.Job.ID, "err", ferr)
			}
		}
		if len(acks) > 0 {
			if _, aerr := h.eng.AckBatch(context.WithoutCancel(ctx), acks); aerr != nil {
				h.log.Warn("sqs move: delete moved messages", "err", aerr)
			}
		}
		t.mu.Lock()
		t.moved += int64(len(acks))
		t.mu.Unlock()
		if err == nil {
			for _, o := range out {
				if o.Err != nil {
					err = o.Err
				}
			}
		}
		if err != nil {
			finish("FAILED", err.Error())
			return
		}
		if t.rate > 0 {
			// batch messages per batch/rate seconds.
			d := time.Duration(len(res.Jobs))*time.Second/time.Duration(t.rate) - time.Since(start)
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
		}
	}
}

func (h *Handler) listMessageMoveTasks(_ context.Context, req *request) (any, error) {
	if req.SourceArn == "" {
		return nil, errorf(errMissingParam, "the request must contain the parameter SourceArn")
	}
	src, err := arnQueue(req.SourceArn)
	if err != nil {
		return nil, err
	}
	limit := req.MaxResults.intOr(1)
	if limit < 1 || limit > 10 {
		return nil, errorf(errInvalidParam, "MaxResults must be from 1 to 10")
	}
	h.move.mu.Lock()
	tasks := h.move.tasks[src]
	h.move.mu.Unlock()
	out := struct {
		Results []moveTaskResult `json:"Results"`
	}{Results: []moveTaskResult{}}
	for i := len(tasks) - 1; i >= 0 && len(out.Results) < int(limit); i-- {
		t := tasks[i]
		t.mu.Lock()
		r := moveTaskResult{
			Status: t.status, SourceArn: h.queueArn(t.source), DestinationArn: h.queueArn(t.destination),
			MaxNumberOfMessagesPerSecond: t.rate, ApproximateNumberOfMessagesMoved: t.moved,
			ApproximateNumberOfMessagesToMove: t.toMove, FailureReason: t.reason, StartedTimestamp: t.started.UnixMilli(),
		}
		if t.status == "RUNNING" {
			r.TaskHandle = t.handle
		}
		t.mu.Unlock()
		out.Results = append(out.Results, r)
	}
	return out, nil
}

func (h *Handler) cancelMessageMoveTask(_ context.Context, req *request) (any, error) {
	b, err := base64.RawURLEncoding.DecodeString(req.TaskHandle)
	_, src, ok := strings.Cut(string(b), ":")
	if req.TaskHandle == "" || err != nil || !ok {
		return nil, errorf(errResourceNotFound, "no message move task %q", req.TaskHandle)
	}
	h.move.mu.Lock()
	tasks := h.move.tasks[src]
	h.move.mu.Unlock()
	for _, t := range tasks {
		if t.handle != req.TaskHandle {
			continue
		}
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.status != "RUNNING" {
			return nil, errorf(errUnsupported, "the task is %s", t.status)
		}
		t.status = "CANCELLING"
		t.cancel()
		return struct {
			ApproximateNumberOfMessagesMoved int64 `json:"ApproximateNumberOfMessagesMoved"`
		}{t.moved}, nil
	}
	return nil, errorf(errResourceNotFound, "no message move task %q", req.TaskHandle)
}
