package spool

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Queue is a queue's settings, pause state and statistics.
type Queue struct {
	Name        string
	Lease       time.Duration // default lease of a reservation
	MaxAttempts int           // default attempts before a job is buried
	BackoffBase time.Duration // first retry delay; doubles each attempt
	BackoffMax  time.Duration // cap of the retry delay
	Paused      bool
	PausedUntil time.Time // zero when paused indefinitely or not paused
	CreatedAt   time.Time
	Events      bool          // lifecycle events are stored (QueueSettings.Events)
	Replicas    int           // copies of the queue's jobs in the cluster
	Retention   time.Duration // how long a finished job stays readable by id; 0: not at all
	Stats       QueueStats
}

// StateCounts counts jobs by state. The counts can lag a fresh write by a moment.
type StateCounts struct {
	Ready    int64 `json:"ready"`
	Reserved int64 `json:"reserved"`
	Delayed  int64 `json:"delayed"`
	Buried   int64 `json:"buried"`
}

// Totals are cluster-wide counters of job events.
type Totals struct {
	Enqueued    int64 `json:"enqueued"`
	Reserves    int64 `json:"reserves"`
	Succeeded   int64 `json:"succeeded"`
	Failed      int64 `json:"failed"`       // failed attempts, retried or buried
	BuriedTotal int64 `json:"buried_total"` // jobs buried
	Cancelled   int64 `json:"cancelled"`
	Timeouts    int64 `json:"timeouts"` // leases that expired
}

// QueueStats are a queue's statistics: its jobs by state, its totals since it was
// created, and its recent activity.
type QueueStats struct {
	StateCounts
	Totals

	OldestReadyAge time.Duration // age of the oldest ready job; 0 when none is ready
	EnqueueRate    float64       // jobs/s over the last minute
	CompleteRate   float64       // succeeded jobs/s over the last minute
}

type queueStatsJSON struct {
	StateCounts
	Totals
	OldestReadyAge jsonDuration `json:"oldest_ready_age"`
	EnqueueRate    float64      `json:"enqueue_rate"`
	CompleteRate   float64      `json:"complete_rate"`
}

type queueJSON struct {
	Name        string         `json:"name"`
	Lease       jsonDuration   `json:"lease"`
	MaxAttempts int            `json:"max_attempts"`
	BackoffBase jsonDuration   `json:"backoff_base"`
	BackoffMax  jsonDuration   `json:"backoff_max"`
	Paused      bool           `json:"paused"`
	PausedUntil time.Time      `json:"paused_until,omitzero"`
	CreatedAt   time.Time      `json:"created_at,omitzero"`
	Events      *bool          `json:"events,omitempty"` // absent: on
	Replicas    int            `json:"replicas,omitempty"`
	Retention   jsonDuration   `json:"retention"`
	Stats       queueStatsJSON `json:"stats"`
}

// MarshalJSON encodes the queue in the wire format of the HTTP API.
func (q Queue) MarshalJSON() ([]byte, error) {
	w := queueJSON{
		Name:        q.Name,
		Lease:       jsonDuration(q.Lease),
		MaxAttempts: q.MaxAttempts,
		BackoffBase: jsonDuration(q.BackoffBase),
		BackoffMax:  jsonDuration(q.BackoffMax),
		Paused:      q.Paused,
		PausedUntil: utc(q.PausedUntil),
		CreatedAt:   utc(q.CreatedAt),
		Events:      &q.Events,
		Replicas:    q.Replicas,
		Retention:   jsonDuration(q.Retention),
		Stats:       q.Stats.wire(),
	}
	return json.Marshal(&w)
}

// UnmarshalJSON decodes the wire format of the HTTP API.
func (q *Queue) UnmarshalJSON(data []byte) error {
	var w queueJSON
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	*q = Queue{
		Name:        w.Name,
		Lease:       time.Duration(w.Lease),
		MaxAttempts: w.MaxAttempts,
		BackoffBase: time.Duration(w.BackoffBase),
		BackoffMax:  time.Duration(w.BackoffMax),
		Paused:      w.Paused,
		PausedUntil: w.PausedUntil,
		CreatedAt:   w.CreatedAt,
		Events:      w.Events == nil || *w.Events,
		Replicas:    w.Replicas,
		Retention:   time.Duration(w.Retention),
		Stats:       w.Stats.stats(),
	}
	return nil
}

func (s QueueStats) wire() queueStatsJSON {
	return queueStatsJSON{s.StateCounts, s.Totals, jsonDuration(s.OldestReadyAge), s.EnqueueRate, s.CompleteRate}
}

func (w queueStatsJSON) stats() QueueStats {
	return QueueStats{w.StateCounts, w.Totals, time.Duration(w.OldestReadyAge), w.EnqueueRate, w.CompleteRate}
}

// MarshalJSON encodes the statistics in the wire format of the HTTP API.
func (s QueueStats) MarshalJSON() ([]byte, error) {
	w := s.wire()
	return json.Marshal(&w)
}

// UnmarshalJSON decodes the wire format of the HTTP API.
func (s *QueueStats) UnmarshalJSON(data []byte) error {
	var w queueStatsJSON
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	*s = w.stats()
	return nil
}

// QueueSettings are the settings UpdateQueue changes; a zero field is left as it is
// (or takes the server's default when the queue is created).
type QueueSettings struct {
	Lease       time.Duration // default lease of a reservation
	MaxAttempts int           // default attempts before a job is buried
	BackoffBase time.Duration // first retry delay
	BackoffMax  time.Duration // cap of the retry delay
	// Events turns the queue's lifecycle events on or off (docs/events.md); nil leaves
	// them as they are.
	Events *bool
	// Replicas is how many copies of the queue's jobs the cluster keeps: 1, 3 or 5, at
	// most its nodes (0: the server's --replicas). They are set when the queue is made:
	// more than the cluster's nodes fails with ErrReplicasUnavailable, other replicas for
	// an existing queue with ErrReplicasConflict (docs/cluster.md).
	Replicas int
	// Retention is how long a finished job (succeeded or cancelled) stays readable by id
	// (Job): whole seconds up to 90 days, or 0 to keep none, so that Job fails with
	// ErrJobNotFound once the job is done (docs/http-api.md says when exactly) and a prompt
	// ack costs one stored write less. nil leaves it as it is (a new queue takes the
	// server's --retention, 1h by default).
	Retention *time.Duration
}

// Queues returns all queues, sorted by name.
func (c *Client) Queues(ctx context.Context) ([]*Queue, error) {
	return c.QueueList(ctx, nil)
}

// QueueListParams narrow a listing of queues. The server selects them from its view in
// memory: a narrow listing costs what it returns, however many queues there are.
type QueueListParams struct {
	Prefix string // only the names that start with it
	Paused bool   // only the queues paused now
	Limit  int    // at most this many, the first by name (0: all)
}

// QueueList returns the queues p selects (all with a nil p), sorted by name.
func (c *Client) QueueList(ctx context.Context, p *QueueListParams) ([]*Queue, error) {
	if p == nil {
		p = &QueueListParams{}
	}
	if p.Limit < 0 {
		return nil, fmt.Errorf("spool: list queues: limit %d is negative", p.Limit)
	}
	var all []*Queue
	after := ""
	for {
		var out struct {
			Queues []*Queue `json:"queues"`
			Next   string   `json:"next"`
		}
		page := 1000
		if p.Limit > 0 {
			page = min(page, p.Limit-len(all))
		}
		q := url.Values{"limit": {strconv.Itoa(page)}}
		if after != "" {
			q.Set("after", after)
		}
		if p.Prefix != "" {
			q.Set("prefix", p.Prefix)
		}
		if p.Paused {
			q.Set("paused", "true")
		}
		if err := c.do(ctx, request{method: http.MethodGet, path: "/v1/queues", query: q, out: &out}); err != nil {
			return nil, fmt.Errorf("spool: list queues: %w", err)
		}
		all = append(all, out.Queues...)
		if out.Next == "" || p.Limit > 0 && len(all) >= p.Limit {
			return all, nil
		}
		after = out.Next
	}
}

// Queue returns one queue; an unknown name fails with ErrQueueNotFound.
func (c *Client) Queue(ctx context.Context, name string) (*Queue, error) {
	return c.queueCall(ctx, "queue", http.MethodGet, name, "", nil)
}

// UpdateQueue creates the queue, or changes the settings given (the non-zero fields).
func (c *Client) UpdateQueue(ctx context.Context, name string, s QueueSettings) (*Queue, error) {
	in := struct {
		Lease       jsonDuration  `json:"lease,omitzero"`
		MaxAttempts int           `json:"max_attempts,omitempty"`
		BackoffBase jsonDuration  `json:"backoff_base,omitzero"`
		BackoffMax  jsonDuration  `json:"backoff_max,omitzero"`
		Events      *bool         `json:"events,omitempty"`
		Replicas    int           `json:"replicas,omitempty"`
		Retention   *jsonDuration `json:"retention,omitempty"`
	}{jsonDuration(s.Lease), s.MaxAttempts, jsonDuration(s.BackoffBase), jsonDuration(s.BackoffMax), s.Events, s.Replicas,
		(*jsonDuration)(s.Retention)}
	return c.queueCall(ctx, "update queue", http.MethodPut, name, "", &in)
}

// DeleteQueue deletes the queue and all its jobs.
func (c *Client) DeleteQueue(ctx context.Context, name string) error {
	if err := checkQueue(name); err != nil {
		return fmt.Errorf("spool: delete queue: %w", err)
	}
	if err := c.do(ctx, request{method: http.MethodDelete, path: pathQueue(name, "")}); err != nil {
		return fmt.Errorf("spool: delete queue %q: %w", name, err)
	}
	return nil
}

// Pause stops the queue from handing out jobs for d, or until Resume when d is 0.
// Enqueues are still accepted.
func (c *Client) Pause(ctx context.Context, name string, d time.Duration) (*Queue, error) {
	in := struct {
		For jsonDuration `json:"for,omitzero"`
	}{jsonDuration(d)}
	return c.queueCall(ctx, "pause queue", http.MethodPost, name, "pause", &in)
}

// Resume makes a paused queue hand out jobs again.
func (c *Client) Resume(ctx context.Context, name string) (*Queue, error) {
	return c.queueCall(ctx, "resume queue", http.MethodPost, name, "resume", nil)
}

func (c *Client) queueCall(ctx context.Context, op, method, name, action string, in any) (*Queue, error) {
	if err := checkQueue(name); err != nil {
		return nil, fmt.Errorf("spool: %s: %w", op, err)
	}
	var q Queue
	if err := c.do(ctx, request{method: method, path: pathQueue(name, action), body: in, out: &q}); err != nil {
		return nil, fmt.Errorf("spool: %s %q: %w", op, name, err)
	}
	return &q, nil
}

// KickQueue makes up to maxJobs buried jobs of the queue ready again (all of them when maxJobs
// is 0) and returns how many it kicked.
func (c *Client) KickQueue(ctx context.Context, name string, maxJobs int) (int, error) {
	if err := checkQueue(name); err != nil {
		return 0, fmt.Errorf("spool: kick queue: %w", err)
	}
	in := struct {
		Max int `json:"max,omitempty"`
	}{maxJobs}
	var out struct {
		Kicked int `json:"kicked"`
	}
	if err := c.do(ctx, request{method: http.MethodPost, path: pathQueue(name, "kick"), body: &in, out: &out}); err != nil {
		return 0, fmt.Errorf("spool: kick queue %q: %w", name, err)
	}
	return out.Kicked, nil
}

// JobPage is one page of ListJobs.
type JobPage struct {
	Jobs []*Job
	// NextCursor continues the listing; empty at the end.
	NextCursor string
}

// ListJobs lists a queue's jobs in one state (ready, delayed or buried; "" lets the
// server choose), oldest first, limit at a time (1 to 1000; 0: the server's default of
// 50). Pass the previous page's NextCursor to continue, "" to start.
func (c *Client) ListJobs(ctx context.Context, queue string, state State, limit int, cursor string) (*JobPage, error) {
	if err := checkQueue(queue); err != nil {
		return nil, fmt.Errorf("spool: list jobs: %w", err)
	}
	q := url.Values{}
	if state != "" {
		q.Set("state", string(state))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	var out struct {
		Jobs       []*Job `json:"jobs"`
		NextCursor string `json:"next_cursor"`
	}
	if err := c.do(ctx, request{method: http.MethodGet, path: pathQueue(queue, "jobs"), query: q, out: &out}); err != nil {
		return nil, fmt.Errorf("spool: list jobs of %q: %w", queue, err)
	}
	return &JobPage{Jobs: out.Jobs, NextCursor: out.NextCursor}, nil
}

// Purge deletes the queue's jobs in the given state (ready, delayed or buried), or every
// unreserved job when state is "", and returns how many it deleted. Reserved jobs are
// not purged.
func (c *Client) Purge(ctx context.Context, queue string, state State) (int, error) {
	if err := checkQueue(queue); err != nil {
		return 0, fmt.Errorf("spool: purge: %w", err)
	}
	in := struct {
		State State `json:"state,omitempty"`
	}{state}
	var out struct {
		Purged int `json:"purged"`
	}
	if err := c.do(ctx, request{method: http.MethodPost, path: pathQueue(queue, "purge"), body: &in, out: &out}); err != nil {
		return 0, fmt.Errorf("spool: purge %q: %w", queue, err)
	}
	return out.Purged, nil
}

// ServerStats describes a server and the jobs of all queues. Its JSON form is the wire
// format of GET /v1/stats: the server encodes it with this type and the client decodes it
// with the same, so the two cannot disagree.
type ServerStats struct {
	Version string
	Uptime  time.Duration
	Queues  int         // number of queues
	Paused  int         // number of queues paused now
	Jobs    StateCounts // jobs by state over all queues
	Totals  Totals      // the queues' counters added up
	// EnqueueRate and CompleteRate are jobs/s over the last minute, over all queues, as
	// seen by the answering server.
	EnqueueRate, CompleteRate float64
}

// serverStatsJSON is the wire form of ServerStats.
type serverStatsJSON struct {
	Version string           `json:"version"`
	Uptime  jsonDuration     `json:"uptime"`
	Queues  int              `json:"queues"`
	Paused  int              `json:"paused"`
	Jobs    StateCounts      `json:"jobs"`
	Totals  serverTotalsJSON `json:"totals"`
	Enqueue float64          `json:"enqueue_rate"`
	Done    float64          `json:"complete_rate"`
}

// serverTotalsJSON are the totals of /v1/stats. Beside "jobs" there is no current count
// to tell apart, so the number of jobs buried is "buried", not the queue's "buried_total".
type serverTotalsJSON struct {
	Enqueued  int64 `json:"enqueued"`
	Reserves  int64 `json:"reserves"`
	Succeeded int64 `json:"succeeded"`
	Failed    int64 `json:"failed"`
	Buried    int64 `json:"buried"`
	Cancelled int64 `json:"cancelled"`
	Timeouts  int64 `json:"timeouts"`
}

// MarshalJSON encodes the statistics in the wire format of the HTTP API.
func (s ServerStats) MarshalJSON() ([]byte, error) {
	t := s.Totals
	return json.Marshal(&serverStatsJSON{s.Version, jsonDuration(s.Uptime), s.Queues, s.Paused, s.Jobs,
		serverTotalsJSON{t.Enqueued, t.Reserves, t.Succeeded, t.Failed, t.BuriedTotal, t.Cancelled, t.Timeouts},
		s.EnqueueRate, s.CompleteRate})
}

// UnmarshalJSON decodes the wire format of the HTTP API.
func (s *ServerStats) UnmarshalJSON(data []byte) error {
	var w serverStatsJSON
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	t := w.Totals
	*s = ServerStats{w.Version, time.Duration(w.Uptime), w.Queues, w.Paused, w.Jobs,
		Totals{t.Enqueued, t.Reserves, t.Succeeded, t.Failed, t.Buried, t.Cancelled, t.Timeouts},
		w.Enqueue, w.Done}
	return nil
}

// Stats returns the server's statistics, as seen by the server that answers.
func (c *Client) Stats(ctx context.Context) (*ServerStats, error) {
	var s ServerStats
	if err := c.do(ctx, request{method: http.MethodGet, path: "/v1/stats", out: &s}); err != nil {
		return nil, fmt.Errorf("spool: stats: %w", err)
	}
	return &s, nil
}
