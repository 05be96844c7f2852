package spool

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// Job returns the job with the given id, in whatever state it is. A finished job stays
// queryable (without its payload) for the server's retention; after that, and for an
// unknown id, the error matches ErrJobNotFound.
func (c *Client) Job(ctx context.Context, id uint64) (*Job, error) {
	var job Job
	if err := c.do(ctx, request{method: http.MethodGet, path: pathJob(id, ""), out: &job}); err != nil {
		return nil, fmt.Errorf("spool: job %d: %w", id, err)
	}
	return &job, nil
}

// Cancel deletes an unfinished job and returns it in state cancelled. Cancelling a
// reserved job makes its holder's next Ack, Fail or Touch fail with ErrLeaseLost.
func (c *Client) Cancel(ctx context.Context, id uint64) (*Job, error) {
	var job Job
	if err := c.do(ctx, request{method: http.MethodDelete, path: pathJob(id, ""), out: &job}); err != nil {
		return nil, fmt.Errorf("spool: cancel job %d: %w", id, err)
	}
	return &job, nil
}

// Kick makes a buried or delayed job ready now (a buried job gets its attempts back).
// Another state fails with ErrWrongState.
func (c *Client) Kick(ctx context.Context, id uint64) (*Job, error) {
	var job Job
	if err := c.do(ctx, request{method: http.MethodPost, path: pathJob(id, "kick"), out: &job}); err != nil {
		return nil, fmt.Errorf("spool: kick job %d: %w", id, err)
	}
	return &job, nil
}

// DefaultPollInterval is the polling period of WaitJob when given 0.
const DefaultPollInterval = 500 * time.Millisecond

// WaitJob polls the job every pollInterval (DefaultPollInterval when 0) until it reaches a
// final state (succeeded or cancelled) and returns it, or until ctx is done. A buried job
// is not final: bound the wait with a context deadline when a job may be buried. In a queue
// that keeps no finished jobs (retention 0), a job acked without a result is gone once done,
// and WaitJob then answers ErrJobNotFound.
func (c *Client) WaitJob(ctx context.Context, id uint64, pollInterval time.Duration) (*Job, error) {
	if pollInterval <= 0 {
		pollInterval = DefaultPollInterval
	}
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		job, err := c.Job(ctx, id)
		if err != nil {
			return nil, err
		}
		if job.State.Final() {
			return job, nil
		}
		select {
		case <-ctx.Done():
			return job, fmt.Errorf("spool: wait for job %d (last seen %s): %w", id, job.State, ctx.Err())
		case <-t.C:
		}
	}
}

// ReserveOptions says which jobs to reserve.
type ReserveOptions struct {
	// Queues to reserve from; the most urgent ready jobs across them come first (FIFO
	// within a priority band). At least one.
	Queues []string
	// Max is the most jobs to return, 1 to 1000. Default 1.
	Max int
	// Wait long-polls up to this long (at most 60s) when no job is ready. 0 answers at once.
	Wait time.Duration
	// Worker identifies the caller in the jobs' status, e.g. "host-1/pid-42". Optional.
	Worker string
	// PollID names the reservation so that EndPoll can end its long poll early (1 to 64
	// letters, digits, '-' or '_'). Optional.
	PollID string
}

// ReserveResult holds the reserved jobs, and which of the queues asked for are paused
// (they hand out nothing until resumed).
type ReserveResult struct {
	Jobs   []*ReservedJob
	Paused []string
}

// Reserve leases up to opts.Max ready jobs to the caller. Each must then be finished with
// Ack, Fail, Release or Bury, using its LeaseToken, before its lease expires (extend it
// with Touch); otherwise it is offered again. An empty result (no error) means nothing
// was ready within opts.Wait.
func (c *Client) Reserve(ctx context.Context, opts ReserveOptions) (*ReserveResult, error) {
	if len(opts.Queues) == 0 {
		return nil, fmt.Errorf("spool: reserve: %w", &APIError{Code: CodeInvalidArgument, Message: "queues: at least one queue", Field: "queues"})
	}
	in := struct {
		Queues []string     `json:"queues"`
		Max    int          `json:"max,omitempty"`
		Wait   jsonDuration `json:"wait,omitzero"`
		Worker string       `json:"worker,omitempty"`
		PollID string       `json:"poll_id,omitempty"`
	}{opts.Queues, opts.Max, jsonDuration(opts.Wait), opts.Worker, opts.PollID}
	var out struct {
		Jobs   []*ReservedJob `json:"jobs"`
		Paused []string       `json:"paused"`
	}
	r := request{method: http.MethodPost, path: "/v1/reserve", body: &in, out: &out, extra: opts.Wait}
	if err := c.do(ctx, r); err != nil {
		return nil, fmt.Errorf("spool: reserve: %w", err)
	}
	return &ReserveResult{Jobs: out.Jobs, Paused: out.Paused}, nil
}

// EndPoll ends the long-polling reservations made with this poll id (ReserveOptions.PollID),
// on whichever server holds them: they answer at once with the jobs they hold. Ending a poll
// rather than cancelling its request keeps an answer that is on its way.
func (c *Client) EndPoll(ctx context.Context, pollID string) error {
	if err := c.do(ctx, request{method: http.MethodDelete, path: "/v1/reserve/" + url.PathEscape(pollID)}); err != nil {
		return fmt.Errorf("spool: end poll: %w", err)
	}
	return nil
}

// Ack reports that the reserved job succeeded, with an optional result: any value
// encoding/json can marshal (at most 64 KiB encoded), or nil. It returns the job in state
// succeeded. ErrLeaseLost means the lease was no longer the caller's.
func (c *Client) Ack(ctx context.Context, id uint64, leaseToken string, result any) (*Job, error) {
	in := struct {
		LeaseToken string          `json:"lease_token"`
		Result     json.RawMessage `json:"result,omitempty"`
	}{LeaseToken: leaseToken}
	if result != nil {
		data, err := json.Marshal(result)
		if err != nil {
			return nil, fmt.Errorf("spool: ack job %d: result: %w", id, err)
		}
		in.Result = data
	}
	return c.finish(ctx, id, "ack", &in)
}

// FailOptions describe a failed attempt.
type FailOptions struct {
	// Error is the failure's description (at most 4 KiB), kept as the job's LastError.
	Error string
	// RetryIn sets the delay before the retry instead of the queue's backoff
	// (base × 2^(attempts-1), capped, ±20%). 0 uses the backoff.
	RetryIn time.Duration
	// Bury buries the job now instead of retrying it.
	Bury bool
}

// Fail reports that an attempt of the reserved job failed. It returns the job: delayed
// until its retry, or buried when its attempts are exhausted or opts.Bury is set.
func (c *Client) Fail(ctx context.Context, id uint64, leaseToken string, opts FailOptions) (*Job, error) {
	in := struct {
		LeaseToken string       `json:"lease_token"`
		Error      string       `json:"error,omitempty"`
		RetryIn    jsonDuration `json:"retry_in,omitzero"`
		Bury       bool         `json:"bury,omitempty"`
	}{leaseToken, opts.Error, jsonDuration(opts.RetryIn), opts.Bury}
	return c.finish(ctx, id, "fail", &in)
}

// Touch extends the lease of a reserved job by lease from now (0: the job's own lease)
// and returns the new expiry. A job may run for hours if it keeps touching.
func (c *Client) Touch(ctx context.Context, id uint64, leaseToken string, lease time.Duration) (time.Time, error) {
	in := struct {
		LeaseToken string       `json:"lease_token"`
		Lease      jsonDuration `json:"lease,omitzero"`
	}{leaseToken, jsonDuration(lease)}
	var out struct {
		LeaseExpiresAt time.Time `json:"lease_expires_at"`
	}
	if err := c.do(ctx, request{method: http.MethodPost, path: pathJob(id, "touch"), body: &in, out: &out}); err != nil {
		return time.Time{}, fmt.Errorf("spool: touch job %d: %w", id, err)
	}
	return out.LeaseExpiresAt, nil
}

// ReleaseOptions describe how a reserved job is given back.
type ReleaseOptions struct {
	// Priority, when not nil, replaces the job's priority.
	Priority *uint32
	// Delay makes the job ready only after this long. 0: ready now.
	Delay time.Duration
}

// Release gives a reserved job back without using up an attempt; it returns the job,
// ready or delayed.
func (c *Client) Release(ctx context.Context, id uint64, leaseToken string, opts ReleaseOptions) (*Job, error) {
	in := struct {
		LeaseToken string       `json:"lease_token"`
		Priority   *uint32      `json:"priority,omitempty"`
		Delay      jsonDuration `json:"delay,omitzero"`
	}{leaseToken, opts.Priority, jsonDuration(opts.Delay)}
	return c.finish(ctx, id, "release", &in)
}

// Bury sets a reserved job aside (state buried) with an optional reason, until a kick.
func (c *Client) Bury(ctx context.Context, id uint64, leaseToken, reason string) (*Job, error) {
	in := struct {
		LeaseToken string `json:"lease_token"`
		Reason     string `json:"reason,omitempty"`
	}{leaseToken, reason}
	return c.finish(ctx, id, "bury", &in)
}

func (c *Client) finish(ctx context.Context, id uint64, action string, in any) (*Job, error) {
	var job Job
	if err := c.do(ctx, request{method: http.MethodPost, path: pathJob(id, action), body: in, out: &job}); err != nil {
		return nil, fmt.Errorf("spool: %s job %d: %w", action, id, err)
	}
	return &job, nil
}

// BatchAck is one acknowledgement of an AckBatch: a reserved job, its lease token and an
// optional result (as for Ack: any value encoding/json can marshal, at most 64 KiB
// encoded, or nil).
type BatchAck struct {
	ID         uint64
	LeaseToken string
	Result     any
}

// BatchAckResult is the outcome of one acknowledgement of an AckBatch.
type BatchAckResult struct {
	ID    uint64
	State State // StateSucceeded when Err is nil
	Err   error // non-nil (an *APIError, e.g. matching ErrLeaseLost) when this ack was refused
}

// AckBatch acknowledges up to MaxBatch reserved jobs in one request. The call fails as a
// whole only when the request is malformed or the server cannot be reached; otherwise the
// results are in the order of acks and each carries its own outcome: a job whose lease
// was lost has an Err matching ErrLeaseLost while the others succeeded.
func (c *Client) AckBatch(ctx context.Context, acks []BatchAck) ([]BatchAckResult, error) {
	if len(acks) == 0 || len(acks) > MaxBatch {
		return nil, fmt.Errorf("spool: ack batch: %d acks: want 1 to %d", len(acks), MaxBatch)
	}
	type ackJSON struct {
		ID         jsonID          `json:"id"`
		LeaseToken string          `json:"lease_token"`
		Result     json.RawMessage `json:"result,omitempty"`
	}
	in := struct {
		Acks []ackJSON `json:"acks"`
	}{Acks: make([]ackJSON, len(acks))}
	for i, a := range acks {
		in.Acks[i] = ackJSON{ID: jsonID(a.ID), LeaseToken: a.LeaseToken}
		if a.Result != nil {
			data, err := json.Marshal(a.Result)
			if err != nil {
				return nil, fmt.Errorf("spool: ack batch: acks[%d] (job %d): result: %w", i, a.ID, err)
			}
			in.Acks[i].Result = data
		}
	}
	out, err := sendBatch(ctx, c, len(acks), "results", func(idx []int, out *[]ackItemJSON) error {
		body := in
		if len(idx) < len(acks) {
			body.Acks = make([]ackJSON, len(idx))
			for k, i := range idx {
				body.Acks[k] = in.Acks[i]
			}
		}
		var o struct {
			Results []ackItemJSON `json:"results"`
		}
		err := c.do(ctx, request{method: http.MethodPost, path: "/v1/ack", body: &body, out: &o})
		*out = o.Results
		return err
	}, func(o ackItemJSON) bool { return o.Error != nil && o.Error.Code == CodeUnavailable })
	if err != nil {
		return nil, fmt.Errorf("spool: ack batch: %w", err)
	}
	res := make([]BatchAckResult, len(acks))
	for i, o := range out {
		res[i] = BatchAckResult{ID: acks[i].ID, State: o.State}
		if o.Error != nil {
			res[i].Err = &APIError{Code: o.Error.Code, Message: o.Error.Message, Field: o.Error.Field}
		}
	}
	return res, nil
}

// ackItemJSON is the wire form of one ack's result in a batch ack's answer.
type ackItemJSON struct {
	ID    jsonID     `json:"id"`
	State State      `json:"state"`
	Error *errorJSON `json:"error"`
}
