package spool

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Sentinel errors for the error codes callers branch on. Every error returned by a Client
// method that comes from the server is an *APIError; match it against these with errors.Is:
//
//	job, err := client.Job(ctx, id)
//	if errors.Is(err, spool.ErrJobNotFound) {
//		// the id is unknown, or the job finished longer ago than the server's retention
//	}
var (
	// ErrJobNotFound: no job with that id, or its record expired after the retention
	// (code job_not_found).
	ErrJobNotFound = errors.New("spool: job not found")
	// ErrQueueNotFound: no such queue (code queue_not_found).
	ErrQueueNotFound = errors.New("spool: queue not found")
	// ErrLeaseLost: the lease token is not the job's current lease: the lease expired and
	// the job was reserved again, or it was finished or cancelled meanwhile (code lease_lost).
	ErrLeaseLost = errors.New("spool: lease lost")
	// ErrWrongState: the operation does not apply to the job's state, for example a kick of
	// a ready job (code wrong_state).
	ErrWrongState = errors.New("spool: operation not allowed in the job's state")
	// ErrInvalidArgument: the request was rejected as malformed or out of range
	// (codes invalid_argument and invalid_json). APIError.Field names the culprit.
	ErrInvalidArgument = errors.New("spool: invalid argument")
	// ErrPayloadTooLarge: the payload or the request body is over the server's limit
	// (code payload_too_large).
	ErrPayloadTooLarge = errors.New("spool: payload too large")
	// ErrUnavailable: no server could serve the request: every server answered 503
	// (code unavailable: shutting down, or its engine is unreachable; overloaded: over its
	// memory budget; too_many_connections: at its connection cap) or could not be reached
	// at all. Retrying later may succeed.
	ErrUnavailable = errors.New("spool: server unavailable")
	// ErrReplicasUnavailable: a new queue's replicas are more than the cluster's nodes
	// (code replicas_unavailable).
	ErrReplicasUnavailable = errors.New("spool: replicas unavailable")
	// ErrReplicasConflict: the queue exists with other replicas, set when it was made
	// (code replicas_conflict).
	ErrReplicasConflict = errors.New("spool: queue has other replicas")
)

// Error codes of the HTTP API, as found in APIError.Code.
const (
	CodeInvalidJSON          = "invalid_json"
	CodeInvalidArgument      = "invalid_argument"
	CodeJobNotFound          = "job_not_found"
	CodeQueueNotFound        = "queue_not_found"
	CodeNotFound             = "not_found"
	CodeMethodNotAllowed     = "method_not_allowed"
	CodeLeaseLost            = "lease_lost"
	CodeWrongState           = "wrong_state"
	CodePayloadTooLarge      = "payload_too_large"
	CodeUnsupportedMediaType = "unsupported_media_type"
	CodeInternal             = "internal"
	CodeUnavailable          = "unavailable"
	CodeUnauthenticated      = "unauthenticated" // 401: no token, or an unknown or revoked one
	CodeForbidden            = "forbidden"       // 403: the token lacks the permission
	CodeTokenNotFound        = "token_not_found"
	CodeOverloaded           = "overloaded"
	CodeTooManyConnections   = "too_many_connections"
	CodeReplicasUnavailable  = "replicas_unavailable"
	CodeReplicasConflict     = "replicas_conflict"
)

// APIError is an error answer of the server: a non-2xx status with the body
// {"error": {"code": ..., "message": ..., "field": ...}}. In the result of a batch
// enqueue, Status is 0 (the batch as a whole succeeded).
type APIError struct {
	Status  int    // HTTP status, e.g. 404
	Code    string // machine-readable code, e.g. "job_not_found"
	Message string // human-readable message
	Field   string // the offending request field for invalid_argument, e.g. "jobs[3].priority"

	// partial is the body of a batch's 5xx answer that carries per-item results (some
	// items stored, some not): the batch methods resend only the items not stored.
	partial []byte
}

func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	if e.Code == "" {
		return msg
	}
	return fmt.Sprintf("%s (%s)", msg, e.Code)
}

// Is makes errors.Is(err, ErrJobNotFound) and the other sentinel errors work on an
// *APIError according to its Code.
func (e *APIError) Is(target error) bool {
	switch e.Code {
	case CodeJobNotFound:
		return target == ErrJobNotFound
	case CodeQueueNotFound:
		return target == ErrQueueNotFound
	case CodeLeaseLost:
		return target == ErrLeaseLost
	case CodeWrongState:
		return target == ErrWrongState
	case CodeInvalidArgument, CodeInvalidJSON:
		return target == ErrInvalidArgument
	case CodePayloadTooLarge:
		return target == ErrPayloadTooLarge
	case CodeUnavailable, CodeOverloaded, CodeTooManyConnections:
		return target == ErrUnavailable
	case CodeReplicasUnavailable:
		return target == ErrReplicasUnavailable
	case CodeReplicasConflict:
		return target == ErrReplicasConflict
	}
	return false
}

// errorBody is the wire form of an error answer.
type errorBody struct {
	Error *errorJSON `json:"error"`
	// A batch's 5xx answer also carries its items' results.
	Jobs    json.RawMessage `json:"jobs"`
	Results json.RawMessage `json:"results"`
}

// errorJSON is the wire form of an error: of an answer, or of one item of a batch.
type errorJSON struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field"`
}

// transportError is a failure to get any answer from a server (refused connection,
// reset, timeout). It matches ErrUnavailable.
type transportError struct {
	err error
}

func (e *transportError) Error() string        { return e.err.Error() }
func (e *transportError) Unwrap() error        { return e.err }
func (e *transportError) Is(target error) bool { return target == ErrUnavailable }
