package engine

import (
	"time"
)

// State is where a job is in its lifecycle.
type State string

// Job states. Succeeded and Cancelled are final; a buried job waits for a kick.
const (
	StateDelayed   State = "delayed"
	StateReady     State = "ready"
	StateReserved  State = "reserved"
	StateBuried    State = "buried"
	StateSucceeded State = "succeeded"
	StateCancelled State = "cancelled"
)

// Final reports whether no further transition is possible.
func (s State) Final() bool { return s == StateSucceeded || s == StateCancelled }

// Job is a job as the engine reports it.
type Job struct {
	ID          uint64
	Queue       string
	Type        string
	State       State
	Priority    uint32
	Payload     []byte // nil once the job has finished
	Attempts    int    // reservations that have been made, including the current one
	MaxAttempts int
	Lease       time.Duration // lease granted on each reservation
	Timeout     time.Duration // how long one attempt may run, enforced by the worker; 0: no limit
	UniqueKey   string
	Metadata    map[string]string
	CallbackURL string // told of the job's outcome (webhook)

	CreatedAt       time.Time
	RunAt           time.Time // when a delayed job becomes ready
	ReservedAt      time.Time // start of the current or last reservation
	FirstReservedAt time.Time // start of the first reservation
	LeaseExpiresAt  time.Time // end of the current lease while reserved
	FinishedAt      time.Time
	LastError       string
	Result          []byte
	// Worker names who reserved the job last (ReserveRequest.Worker): while reserved, its
	// holder.
	Worker string

	Releases int // times released by a worker (beanstalkd "releases")
	Buries   int // times buried
	Kicks    int // times kicked
	Timeouts int // leases that expired without an answer
}

// EnqueueRequest describes one job to enqueue. Zero values take the queue's defaults.
type EnqueueRequest struct {
	Queue       string
	Type        string
	Payload     []byte
	Priority    uint32
	Delay       time.Duration // relative delay; ignored when RunAt is set
	RunAt       time.Time     // absolute time at which the job becomes ready
	Lease       time.Duration // 0: the queue's default lease
	MaxAttempts int           // 0: the queue's default
	Timeout     time.Duration // how long one attempt may run (the worker enforces it); 0: no limit
	UniqueKey   string        // while a job with this key is not finished, enqueue returns it instead
	Metadata    map[string]string
	// Buried stores the job buried, as if it had failed for good: it waits for a kick. For
	// jobs carried over from another system in that state; exclusive with Delay and RunAt.
	Buried bool
	// CallbackURL, when set, is sent the job's outcome (succeeded, failed, buried,
	// cancelled) by the webhook dispatcher: an http or https URL of at most MaxURLLen bytes.
	CallbackURL string
	// ID, when not 0, is the job's id (at most MaxChosenID, 2^52-1) instead of one the
	// engine makes. An enqueue whose id exists already stores nothing and returns that job
	// as a duplicate: callers that derive the id from an event (a schedule's tick) get
	// that event enqueued exactly once.
	ID uint64
}

// EnqueueResult is the outcome of one enqueue of a batch.
type EnqueueResult struct {
	Job       *Job
	Duplicate bool  // UniqueKey matched an unfinished job, which is returned instead
	Err       error // per-item failure (the other items of the batch may have succeeded)
}

// Reserved is a job handed to a worker, with the lease token that proves it holds it.
type Reserved struct {
	Job   *Job
	Token string // pass back to Ack, Fail, Touch, Release and Bury
}

// ReserveRequest asks for up to Max jobs from Queues, most urgent first.
type ReserveRequest struct {
	Queues []string
	Max    int           // 1 when 0
	Wait   time.Duration // long-poll time; 0 returns at once
	Worker string        // free-form identity of the worker, for job status
	// PollID names the reservation so that its caller can end it early with EndPoll;
	// optional, letters, digits, '-' and '_'.
	PollID string
	// Glance: the caller waits by itself after an empty answer (a first look without
	// waiting). The engine then skips what makes an empty answer final: rereading the
	// queue bucket and the streams for jobs enqueued through another node that this node
	// has not heard of yet.
	Glance bool
}

// ReserveResult holds the reserved jobs and the queues that are paused.
type ReserveResult struct {
	Jobs   []Reserved
	Paused []string
}

// FailRequest reports a failed attempt.
type FailRequest struct {
	Error   string
	RetryIn *time.Duration // overrides the backoff when set
	Bury    bool           // no retry: bury now
}

// ReleaseRequest gives a reserved job back.
type ReleaseRequest struct {
	Priority *uint32 // new priority when set
	Delay    time.Duration
}

// BuryRequest sets a reserved job aside.
type BuryRequest struct {
	Reason   string  // kept as the job's last error
	Priority *uint32 // new priority when set
}

// QueueSettings are a queue's defaults. Zero values leave a setting unchanged on update.
type QueueSettings struct {
	Lease       time.Duration // default lease (visibility timeout) of a reservation
	MaxAttempts int           // default attempts before a job is buried
	BackoffBase time.Duration // first retry delay; doubles each attempt
	BackoffMax  time.Duration // cap of the retry delay
	// Events turns the queue's lifecycle events on or off; nil leaves it unchanged (new
	// queues have them on). Reports always set it.
	Events *bool
	// Retention is how long a finished job (succeeded or cancelled) stays queryable by id:
	// whole seconds up to MaxRetention, or 0 to keep as little as possible. With 0, a job
	// of a one-replica queue acked within Config.LeaseWriteDelay of its reservation, without
	// a result and with no callback URL or unique key, is gone at once (Job answers
	// ErrJobNotFound) and its ack is one JetStream operation instead of two, with no memory
	// kept; a cancelled job goes a second later; any other finished job is kept until a
	// minute past its lease (a lost ack must find it final). nil leaves it unchanged, or for
	// a new queue takes Config.Retention. Reports always set it.
	Retention *time.Duration
	// Replicas is how many copies of the queue's jobs the cluster keeps: 1, 3 or 5, at
	// most the cluster's nodes; 0: the node's Config.Replicas. It is set when the queue
	// is made: asking an existing queue for others fails with a *ReplicasConflictError.
	// Reports always set it.
	Replicas int
}

// QueueInfo is a queue's settings, pause state and statistics.
type QueueInfo struct {
	Name        string
	Settings    QueueSettings
	Paused      bool
	PausedUntil time.Time // zero when paused indefinitely or not paused
	CreatedAt   time.Time
	// DeadLetter is the queue a job out of attempts moves to ("" : buried in place).
	DeadLetter string
	// Attributes are the free-form attributes set with SetQueueAttributes.
	Attributes map[string]string
	Stats      QueueStats
}

// QueueStats counts a queue's jobs. Counts by state come from JetStream consumer state and
// may lag a fresh write by a moment; totals are cluster-wide counters.
type QueueStats struct {
	Ready    int64
	Reserved int64
	Delayed  int64
	Buried   int64

	Enqueued  int64 // totals since the queue was created
	Reserves  int64
	Succeeded int64
	Failed    int64 // failed attempts, retried or buried
	BuriedTot int64 // jobs buried
	Cancelled int64
	Timeouts  int64

	OldestReadyAge time.Duration // 0 when nothing is ready
	EnqueueRate    float64       // jobs/s over the last minute, as seen by this node
	CompleteRate   float64       // succeeded jobs/s over the last minute, as seen by this node
}

// PeekRequest lists jobs of one state in a queue, oldest first.
type PeekRequest struct {
	Queue string
	State State // ready, delayed, reserved or buried
	Limit int
	After uint64 // engine cursor from a previous page; 0 from the start
}

// PeekPage is one page of jobs and the cursor of the next (0 at the end).
type PeekPage struct {
	Jobs []*Job
	Next uint64
}
