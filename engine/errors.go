package engine

import (
	"errors"
	"fmt"
)

// Errors callers branch on. Fronts map them to protocol errors (HTTP status, beanstalkd words).
var (
	// ErrJobNotFound: no job with that id, or its record has expired after the retention.
	ErrJobNotFound = errors.New("job not found")
	// ErrQueueNotFound: the queue does not exist.
	ErrQueueNotFound = errors.New("queue not found")
	// ErrLeaseLost: the caller's lease token is not the job's current lease, because it
	// expired and the job was reserved again, or the job was finished or cancelled meanwhile.
	ErrLeaseLost = errors.New("lease lost: the job is no longer held with this token")
	// ErrWrongState: the operation does not apply to the job's current state
	// (for example kick of a ready job, or delete of a finished one).
	ErrWrongState = errors.New("operation not allowed in the job's state")
	// ErrClosed: the engine is shutting down.
	ErrClosed = errors.New("engine closed")
	// ErrNoSpace: the store takes no new jobs for now, its disk full or failing
	// (Config.StoreErr). Transient is true for it.
	ErrNoSpace = errors.New("store takes no new jobs")
)

// ValidationError reports a bad argument, naming the field.
type ValidationError struct {
	Field  string
	Reason string
}

func (e *ValidationError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return fmt.Sprintf("%s: %s", e.Field, e.Reason)
}

func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// StateError is ErrWrongState with the state the job was found in.
type StateError struct {
	Op    string
	State State
}

func (e *StateError) Error() string {
	return fmt.Sprintf("cannot %s a %s job", e.Op, e.State)
}

// Is makes errors.Is(err, ErrWrongState) true.
func (e *StateError) Is(target error) bool { return target == ErrWrongState }

// PayloadTooLargeError reports a payload over the configured limit.
type PayloadTooLargeError struct {
	Size, Limit int
}

func (e *PayloadTooLargeError) Error() string {
	return fmt.Sprintf("payload of %d bytes is over the limit of %d bytes", e.Size, e.Limit)
}

// ReplicasUnavailableError refuses a queue's replicas that the cluster cannot place: more
// copies than it has nodes (JetStream keeps each copy on a node of its own).
type ReplicasUnavailableError struct {
	Replicas int
	// Nodes is the number of nodes of the cluster: 1 for a server alone, 0 when not known.
	Nodes int
}

func (e *ReplicasUnavailableError) Error() string {
	switch {
	case e.Nodes == 1:
		return fmt.Sprintf("replicas %d needs a cluster of at least %d nodes, and this server runs alone: only replicas 1", e.Replicas, e.Replicas)
	case e.Nodes > 1:
		return fmt.Sprintf("replicas %d needs a cluster of at least %d nodes, and this one has %d", e.Replicas, e.Replicas, e.Nodes)
	}
	return fmt.Sprintf("replicas %d: JetStream found no %d nodes to place the copies on", e.Replicas, e.Replicas)
}

// ReplicasConflictError refuses a change of an existing queue's replicas: they are set
// when the queue is made. To change them, make a new queue with the replicas wanted and
// move the jobs to it.
type ReplicasConflictError struct {
	Queue      string
	Have, Want int
}

func (e *ReplicasConflictError) Error() string {
	return fmt.Sprintf("queue %q has %d replicas, set when it was made: to have %d, make a new queue with replicas %d and move the jobs to it",
		e.Queue, e.Have, e.Want, e.Want)
}
