package spool

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// State is where a job is in its lifecycle:
//
//	delayed → ready → reserved → succeeded
//	                           → delayed (retry after a failure)
//	                           → buried  (attempts exhausted, or buried by the worker)
//	buried  → ready (kick)
//	any state but succeeded → cancelled
type State string

// Job states.
const (
	StateDelayed   State = "delayed"   // waiting for its run-at time (delay or retry backoff)
	StateReady     State = "ready"     // waiting for a worker
	StateReserved  State = "reserved"  // held by a worker under a lease
	StateBuried    State = "buried"    // failed for good; waits for a kick
	StateSucceeded State = "succeeded" // acknowledged by a worker (final)
	StateCancelled State = "cancelled" // deleted before it finished (final)
)

// Final reports whether no further transition is possible: the job succeeded or was
// cancelled. A buried job is not final: a kick makes it ready again.
func (s State) Final() bool { return s == StateSucceeded || s == StateCancelled }

// Job is a job as the server reports it.
type Job struct {
	ID       uint64 // stable for the life of the job; a decimal string in JSON
	Queue    string
	Type     string // the handler name, e.g. "email.send"
	State    State
	Priority uint32 // lower is more urgent; default 1024
	// Payload holds the job's payload bytes. A payload enqueued as a JSON value comes back
	// as its JSON text, compacted (see DecodePayload); a binary payload (payload_base64 on
	// the wire) as the raw bytes. It is nil once the job has finished.
	Payload     []byte
	Attempts    int // reservations made so far, including the current one
	MaxAttempts int
	Lease       time.Duration // lease granted on each reservation
	Timeout     time.Duration // how long one attempt may run; 0: no limit (see the Timeout option)
	UniqueKey   string
	Metadata    map[string]string
	CallbackURL string // told of the job's outcome (see the CallbackURL option)

	CreatedAt      time.Time
	RunAt          time.Time // when a delayed job becomes ready
	ReservedAt     time.Time // start of the current or last reservation
	LeaseExpiresAt time.Time // end of the current lease while reserved
	FinishedAt     time.Time
	LastError      string
	Result         json.RawMessage // the result given with the acknowledgement, if any

	Releases int // times released by a worker
	Buries   int // times buried
	Kicks    int // times kicked
	Timeouts int // leases that expired without an answer

	// Duplicate is set by Client.Enqueue when the unique key matched an unfinished job:
	// that job is returned and nothing was enqueued.
	Duplicate bool
}

// DecodePayload unmarshals the job's JSON payload into v.
func (j *Job) DecodePayload(v any) error {
	if err := json.Unmarshal(j.Payload, v); err != nil {
		return fmt.Errorf("spool: job %d: decode payload: %w", j.ID, err)
	}
	return nil
}

// ReservedJob is a job handed out by Client.Reserve. The LeaseToken proves that the caller
// holds the job: pass it to Ack, Fail, Touch, Release and Bury. Job.LeaseExpiresAt is the
// end of the lease.
type ReservedJob struct {
	Job
	LeaseToken string
}

// jobJSON is the wire form of a job (and, with lease_token, of a reserved job).
type jobJSON struct {
	ID             jsonID            `json:"id"`
	Queue          string            `json:"queue,omitempty"`
	Type           string            `json:"type"`
	State          State             `json:"state,omitempty"`
	Priority       uint32            `json:"priority"`
	Payload        json.RawMessage   `json:"payload,omitempty"`
	PayloadBase64  []byte            `json:"payload_base64,omitempty"`
	Attempts       int               `json:"attempts"`
	MaxAttempts    int               `json:"max_attempts"`
	Lease          jsonDuration      `json:"lease,omitzero"`
	Timeout        jsonDuration      `json:"timeout,omitzero"`
	UniqueKey      string            `json:"unique_key,omitempty"`
	Metadata       map[string]string `json:"metadata,omitempty"`
	CallbackURL    string            `json:"callback_url,omitempty"`
	CreatedAt      time.Time         `json:"created_at,omitzero"`
	RunAt          time.Time         `json:"run_at,omitzero"`
	ReservedAt     time.Time         `json:"reserved_at,omitzero"`
	LeaseExpiresAt time.Time         `json:"lease_expires_at,omitzero"`
	FinishedAt     time.Time         `json:"finished_at,omitzero"`
	LastError      string            `json:"last_error,omitempty"`
	Result         json.RawMessage   `json:"result,omitempty"`
	Releases       int               `json:"releases"`
	Buries         int               `json:"buries"`
	Kicks          int               `json:"kicks"`
	Timeouts       int               `json:"timeouts"`
	Duplicate      bool              `json:"duplicate,omitempty"`
	LeaseToken     string            `json:"lease_token,omitempty"`
}

func (w *jobJSON) job() Job {
	j := Job{
		ID:             uint64(w.ID),
		Queue:          w.Queue,
		Type:           w.Type,
		State:          w.State,
		Priority:       w.Priority,
		Payload:        []byte(w.Payload),
		Attempts:       w.Attempts,
		MaxAttempts:    w.MaxAttempts,
		Lease:          time.Duration(w.Lease),
		Timeout:        time.Duration(w.Timeout),
		UniqueKey:      w.UniqueKey,
		CallbackURL:    w.CallbackURL,
		Metadata:       w.Metadata,
		CreatedAt:      w.CreatedAt,
		RunAt:          w.RunAt,
		ReservedAt:     w.ReservedAt,
		LeaseExpiresAt: w.LeaseExpiresAt,
		FinishedAt:     w.FinishedAt,
		LastError:      w.LastError,
		Result:         w.Result,
		Releases:       w.Releases,
		Buries:         w.Buries,
		Kicks:          w.Kicks,
		Timeouts:       w.Timeouts,
		Duplicate:      w.Duplicate,
	}
	if w.Payload == nil && w.PayloadBase64 != nil {
		j.Payload = w.PayloadBase64
	}
	return j
}

func jobToJSON(j *Job) jobJSON {
	w := jobJSON{
		ID:             jsonID(j.ID),
		Queue:          j.Queue,
		Type:           j.Type,
		State:          j.State,
		Priority:       j.Priority,
		Attempts:       j.Attempts,
		MaxAttempts:    j.MaxAttempts,
		Lease:          jsonDuration(j.Lease),
		Timeout:        jsonDuration(j.Timeout),
		UniqueKey:      j.UniqueKey,
		Metadata:       j.Metadata,
		CallbackURL:    j.CallbackURL,
		CreatedAt:      utc(j.CreatedAt),
		RunAt:          utc(j.RunAt),
		ReservedAt:     utc(j.ReservedAt),
		LeaseExpiresAt: utc(j.LeaseExpiresAt),
		FinishedAt:     utc(j.FinishedAt),
		LastError:      j.LastError,
		Result:         j.Result,
		Releases:       j.Releases,
		Buries:         j.Buries,
		Kicks:          j.Kicks,
		Timeouts:       j.Timeouts,
		Duplicate:      j.Duplicate,
	}
	w.Payload, w.PayloadBase64 = encodePayload(j.Payload)
	return w
}

// encodePayload chooses the wire field for payload bytes as the server does: valid JSON
// (which is also valid UTF-8) goes in payload, anything else in payload_base64.
func encodePayload(p []byte) (json.RawMessage, []byte) {
	if p == nil {
		return nil, nil
	}
	if json.Valid(p) {
		return json.RawMessage(p), nil
	}
	return nil, p
}

// MarshalJSON encodes the job in the wire format of the HTTP API.
func (j Job) MarshalJSON() ([]byte, error) {
	w := jobToJSON(&j)
	return json.Marshal(&w)
}

// UnmarshalJSON decodes the wire format of the HTTP API.
func (j *Job) UnmarshalJSON(data []byte) error {
	var w jobJSON
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	*j = w.job()
	return nil
}

// MarshalJSON encodes the reserved job in the wire format of the HTTP API.
func (r ReservedJob) MarshalJSON() ([]byte, error) {
	w := jobToJSON(&r.Job)
	w.LeaseToken = r.LeaseToken
	return json.Marshal(&w)
}

// UnmarshalJSON decodes the wire format of the HTTP API.
func (r *ReservedJob) UnmarshalJSON(data []byte) error {
	var w jobJSON
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	r.Job = w.job()
	r.LeaseToken = w.LeaseToken
	return nil
}

func utc(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}

// jsonID is a job id: an unsigned 64-bit integer written as a decimal string.
type jsonID uint64

func (id jsonID) MarshalJSON() ([]byte, error) {
	return strconv.AppendQuote(nil, strconv.FormatUint(uint64(id), 10)), nil
}

func (id *jsonID) UnmarshalJSON(data []byte) error {
	s := string(data)
	if uq, err := strconv.Unquote(s); err == nil {
		s = uq
	}
	if s == "" || s == "null" {
		*id = 0
		return nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return fmt.Errorf("job id %s: not an unsigned 64-bit integer", data)
	}
	*id = jsonID(n)
	return nil
}

// jsonDuration is a duration as a Go duration string in its shortest form ("1h", "1h30m",
// "5m"). On input Go's long form ("1h0m0s", servers before this form) is read too, and a
// JSON number, which means seconds, as the server accepts it.
type jsonDuration time.Duration

func (d jsonDuration) MarshalJSON() ([]byte, error) {
	return strconv.AppendQuote(nil, formatDuration(time.Duration(d))), nil
}

// formatDuration writes a duration in its shortest Go form, with no zero units: "1h",
// "1h30m", "5m", "1h5s", "2.5s" (Go's String gives "1h0m0s", "5m0s").
func formatDuration(d time.Duration) string {
	s := d.String()
	if t, ok := strings.CutSuffix(s, "m0s"); ok {
		s = t + "m" // "5m0s" -> "5m", "1h0m0s" -> "1h0m"
	}
	return strings.Replace(s, "h0m", "h", 1) // "1h0m" -> "1h", "1h0m5s" -> "1h5s"
}

func (d *jsonDuration) UnmarshalJSON(data []byte) error {
	if string(data) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		var secs float64
		if err := json.Unmarshal(data, &secs); err != nil {
			return fmt.Errorf("duration %s: want a string such as \"30s\" or a number of seconds", data)
		}
		*d = jsonDuration(secs * float64(time.Second))
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = jsonDuration(v)
	return nil
}

// ParseJobID parses a job id as printed by the server and the CLI (a decimal string).
func ParseJobID(s string) (uint64, error) {
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("spool: invalid job id %q: want an unsigned 64-bit decimal integer", s)
	}
	return id, nil
}
