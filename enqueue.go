package spool

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// EnqueueOption sets a property of a job being enqueued. Unset properties take the
// server's defaults (priority 1024, no delay) or the queue's (lease, max attempts).
type EnqueueOption func(*enqueueJSON)

// Priority sets the job's priority: lower is more urgent, 0 the most urgent. Default 1024.
func Priority(p uint32) EnqueueOption {
	return func(e *enqueueJSON) { e.Priority = &p }
}

// Delay makes the job ready only after d. It replaces a RunAt given before it.
func Delay(d time.Duration) EnqueueOption {
	return func(e *enqueueJSON) { e.Delay, e.RunAt = jsonDuration(d), time.Time{} }
}

// RunAt makes the job ready at t. It replaces a Delay given before it.
func RunAt(t time.Time) EnqueueOption {
	return func(e *enqueueJSON) { e.RunAt, e.Delay = t.UTC(), 0 }
}

// Lease sets how long a worker holds the job on each reservation before it is offered
// again, unless the worker touches it (1s to 12h). Default: the queue's lease.
func Lease(d time.Duration) EnqueueOption {
	return func(e *enqueueJSON) { e.Lease = jsonDuration(d) }
}

// MaxAttempts sets how many reservations the job gets before it is buried (1 to 1000).
// Default: the queue's setting.
func MaxAttempts(n int) EnqueueOption {
	return func(e *enqueueJSON) { e.MaxAttempts = n }
}

// UniqueKey makes the enqueue a no-op while an unfinished job of the queue has the same
// key: that job is returned instead, with Job.Duplicate set.
func UniqueKey(key string) EnqueueOption {
	return func(e *enqueueJSON) { e.UniqueKey = key }
}

// Buried stores the job buried, as if it had failed for good: no worker gets it until it
// is kicked. It is for jobs carried over from another system in that state (spool import
// beanstalkd) and cannot be combined with Delay or RunAt.
func Buried() EnqueueOption {
	return func(e *enqueueJSON) { e.Buried = true }
}

// Metadata attaches free-form string pairs to the job (at most 64).
func Metadata(md map[string]string) EnqueueOption {
	return func(e *enqueueJSON) { e.Metadata = md }
}

// CallbackURL has the server POST the job's outcome (succeeded, failed, buried, cancelled)
// to url, an http or https URL, signed with the server's callback secret (VerifyWebhook;
// docs/events.md).
func CallbackURL(url string) EnqueueOption {
	return func(e *enqueueJSON) { e.CallbackURL = url }
}

// Timeout bounds how long one attempt of the job may run (whole milliseconds, 1ms to
// 168h). A Worker cancels the handler's context after d (context.Cause is ErrJobTimeout)
// and fails the attempt; it replaces the worker's WorkerOptions.JobTimeout for this job.
// Default: no limit.
func Timeout(d time.Duration) EnqueueOption {
	return func(e *enqueueJSON) { e.Timeout = jsonDuration(d) }
}

// enqueueJSON is the wire form of one job to enqueue.
type enqueueJSON struct {
	Type          string            `json:"type,omitempty"`
	Payload       json.RawMessage   `json:"payload,omitempty"`
	PayloadBase64 []byte            `json:"payload_base64,omitempty"`
	Priority      *uint32           `json:"priority,omitempty"`
	Delay         jsonDuration      `json:"delay,omitzero"`
	RunAt         time.Time         `json:"run_at,omitzero"`
	Lease         jsonDuration      `json:"lease,omitzero"`
	MaxAttempts   int               `json:"max_attempts,omitempty"`
	UniqueKey     string            `json:"unique_key,omitempty"`
	Metadata      map[string]string `json:"metadata,omitempty"`
	Timeout       jsonDuration      `json:"timeout,omitzero"`
	Buried        bool              `json:"buried,omitempty"`
	CallbackURL   string            `json:"callback_url,omitempty"`
}

// newEnqueueJSON encodes a job. A []byte payload is sent as bytes (payload_base64); a
// json.RawMessage is sent as the JSON it holds; any other non-nil value is marshalled to
// JSON; nil means no payload.
func newEnqueueJSON(jobType string, payload any, opts []EnqueueOption) (*enqueueJSON, error) {
	e := &enqueueJSON{Type: jobType}
	switch p := payload.(type) {
	case nil:
	case json.RawMessage:
		if !json.Valid(p) {
			return nil, fmt.Errorf("payload: json.RawMessage is not valid JSON")
		}
		e.Payload = p
	case []byte:
		e.PayloadBase64 = p // an empty payload is sent as none
	default:
		data, err := json.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("payload: %w", err)
		}
		e.Payload = data
	}
	for _, opt := range opts {
		opt(e)
	}
	return e, nil
}

// Enqueue adds a job of type jobType to queue, creating the queue if needed, and returns
// it as stored (its ID, its state: ready or delayed). payload may be nil, a []byte
// (arbitrary bytes), a json.RawMessage, or any value encoding/json can marshal.
//
// The server stores JSON payloads compacted and returns as JSON any payload that is valid
// JSON: bytes that happen to be JSON with white space come back without it.
//
// When UniqueKey matched an unfinished job, that job is returned with Duplicate set and
// nothing is enqueued.
func (c *Client) Enqueue(ctx context.Context, queue, jobType string, payload any, opts ...EnqueueOption) (*Job, error) {
	if err := checkQueue(queue); err != nil {
		return nil, fmt.Errorf("spool: enqueue: %w", err)
	}
	e, err := newEnqueueJSON(jobType, payload, opts)
	if err != nil {
		return nil, fmt.Errorf("spool: enqueue: %w", err)
	}
	var job Job
	if err := c.do(ctx, request{method: http.MethodPost, path: pathQueue(queue, "jobs"), body: e, out: &job}); err != nil {
		return nil, fmt.Errorf("spool: enqueue to %q: %w", queue, err)
	}
	return &job, nil
}

// BatchJob is one job of an EnqueueBatch; Payload and Options are as for Enqueue.
type BatchJob struct {
	Type    string
	Payload any
	Options []EnqueueOption
}

// BatchResult is the outcome of one job of an EnqueueBatch.
type BatchResult struct {
	ID        uint64
	State     State
	Duplicate bool  // the unique key matched an unfinished job, whose ID this is
	Err       error // non-nil (an *APIError) when this job could not be stored
}

// MaxBatch is the largest number of jobs one EnqueueBatch call accepts.
const MaxBatch = 1000

// EnqueueBatch adds up to MaxBatch jobs to queue in one request. The request is
// validated as a whole: an invalid job fails the call with an *APIError whose Field
// names it ("jobs[3].priority"). Otherwise the results are in the order of jobs, and a
// job that could not be stored has its Err set while the others may have been stored.
func (c *Client) EnqueueBatch(ctx context.Context, queue string, jobs []BatchJob) ([]BatchResult, error) {
	if err := checkQueue(queue); err != nil {
		return nil, fmt.Errorf("spool: enqueue batch: %w", err)
	}
	if len(jobs) == 0 || len(jobs) > MaxBatch {
		return nil, fmt.Errorf("spool: enqueue batch: %d jobs: want 1 to %d", len(jobs), MaxBatch)
	}
	in := struct {
		Jobs []*enqueueJSON `json:"jobs"`
	}{Jobs: make([]*enqueueJSON, len(jobs))}
	for i, j := range jobs {
		e, err := newEnqueueJSON(j.Type, j.Payload, j.Options)
		if err != nil {
			return nil, fmt.Errorf("spool: enqueue batch: jobs[%d]: %w", i, err)
		}
		in.Jobs[i] = e
	}
	out, err := sendBatch(ctx, c, len(jobs), "jobs", func(idx []int, out *[]batchItemJSON) error {
		body := in
		if len(idx) < len(jobs) {
			body.Jobs = make([]*enqueueJSON, len(idx))
			for k, i := range idx {
				body.Jobs[k] = in.Jobs[i]
			}
		}
		var o struct {
			Jobs []batchItemJSON `json:"jobs"`
		}
		err := c.do(ctx, request{method: http.MethodPost, path: pathQueue(queue, "jobs"), body: &body, out: &o})
		*out = o.Jobs
		return err
	}, func(o batchItemJSON) bool { return o.Error != nil && o.Error.Code == CodeUnavailable })
	if err != nil {
		return nil, fmt.Errorf("spool: enqueue batch to %q: %w", queue, err)
	}
	res := make([]BatchResult, len(out))
	for i, o := range out {
		res[i] = BatchResult{ID: uint64(o.ID), State: o.State, Duplicate: o.Duplicate}
		if o.Error != nil {
			res[i].Err = &APIError{Code: o.Error.Code, Message: o.Error.Message, Field: o.Error.Field}
		}
	}
	return res, nil
}

// batchItemJSON is the wire form of one item's result in a batch enqueue's answer.
type batchItemJSON struct {
	ID        jsonID     `json:"id"`
	State     State      `json:"state"`
	Duplicate bool       `json:"duplicate"`
	Error     *errorJSON `json:"error"`
}
