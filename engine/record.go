package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spoolq/spool/engine/internal/store"
)

// record is a job's status document, kept in the SPOOL_JOBS stream under spool.j.<id>, one
// message per job (the stream keeps only the last per subject). A fresh job has none until
// its first change creates it (readJob stands its message in meanwhile). Every transition
// rewrites it with a compare-and-set on the subject's last sequence, which is what makes a
// transition atomic across spool nodes and refuses a stale lease holder.
//
// The job's message in its queue stream carries the same document followed by the payload,
// so a reservation has the job without another read.
type record struct {
	Queue       string `json:"q"`
	Type        string `json:"t,omitempty"`
	State       State  `json:"s"`
	Priority    uint32 `json:"p,omitempty"`
	Attempts    int    `json:"a,omitempty"`
	MaxAttempts int    `json:"ma"`
	LeaseMS     int64  `json:"l"`
	// OwnLease: the job was given its own lease; otherwise each reservation takes the
	// queue's lease as it is then (LeaseMS shows the last one).
	OwnLease  bool              `json:"ol,omitempty"`
	TimeoutMS int64             `json:"to,omitempty"`
	UniqueKey string            `json:"u,omitempty"`
	Metadata  map[string]string `json:"m,omitempty"`
	Callback  string            `json:"cb,omitempty"` // URL told of the job's outcome

	Created    int64 `json:"ct"`           // unix ns
	RunAt      int64 `json:"ra,omitempty"` // unix ns
	ReservedAt int64 `json:"rt,omitempty"`
	FirstRes   int64 `json:"fr,omitempty"` // start of the first reservation
	LeaseExp   int64 `json:"le,omitempty"`
	Finished   int64 `json:"ft,omitempty"`

	LastError string          `json:"e,omitempty"`
	Result    json.RawMessage `json:"r,omitempty"`
	Worker    string          `json:"w,omitempty"`

	Releases int `json:"nr,omitempty"`
	Buries   int `json:"nb,omitempty"`
	Kicks    int `json:"nk,omitempty"`
	Timeouts int `json:"nt,omitempty"`

	// The current lease, while reserved: its token and the JetStream delivery it is.
	LeaseID uint64 `json:"li,omitempty"`
	Seq     uint64 `json:"sq,omitempty"` // sequence of the job's message in its queue stream
	Ack     string `json:"ak,omitempty"` // the delivery's ack subject
	Band    int    `json:"b,omitempty"`

	// RecSeq, in a queue message only, is the sequence of the job's record when the message
	// was stored; 0 when unknown. While the record is unchanged a reservation needs no read.
	RecSeq uint64 `json:"rs,omitempty"`
	// ID, in a queue message only, is the job's id: a ready subject does not carry it.
	ID uint64 `json:"id,omitempty"`
}

func marshalRecord(r *record) ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode job record: %w", err)
	}
	return b, nil
}

func unmarshalRecord(b []byte) (*record, error) {
	r := new(record)
	if err := json.Unmarshal(b, r); err != nil {
		return nil, fmt.Errorf("decode job record: %w", err)
	}
	return r, nil
}

func nsTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

// job converts a record to the public view. now derives states that JetStream changes on its
// own: a delayed job whose time has come is ready, a reservation whose lease ran out is ready.
func (r *record) job(id uint64, payload []byte, now time.Time) *Job {
	j := &Job{
		ID: id, Queue: r.Queue, Type: r.Type, State: r.State, Priority: r.Priority,
		Payload: payload, Attempts: r.Attempts, MaxAttempts: r.MaxAttempts,
		Lease: time.Duration(r.LeaseMS) * time.Millisecond, Timeout: time.Duration(r.TimeoutMS) * time.Millisecond,
		UniqueKey: r.UniqueKey, Metadata: r.Metadata,
		CreatedAt: nsTime(r.Created), RunAt: nsTime(r.RunAt), ReservedAt: nsTime(r.ReservedAt),
		FirstReservedAt: nsTime(r.FirstRes),
		LeaseExpiresAt:  nsTime(r.LeaseExp), FinishedAt: nsTime(r.Finished),
		LastError: r.LastError, Result: r.Result, Worker: r.Worker, CallbackURL: r.Callback,
		Releases: r.Releases, Buries: r.Buries, Kicks: r.Kicks, Timeouts: r.Timeouts,
	}
	switch {
	case r.State == StateDelayed && r.RunAt <= now.UnixNano():
		j.State = StateReady
	case r.State == StateReserved && r.LeaseExp <= now.UnixNano():
		j.State = StateReady
	}
	if j.State != StateReserved {
		j.LeaseExpiresAt = time.Time{}
	}
	return j
}

func (r *record) lease() time.Duration { return time.Duration(r.LeaseMS) * time.Millisecond }

// encodeMsg builds job id's queue message body: the record as JSON, a newline, the raw
// payload. JSON never contains a raw newline, so the first one ends the record.
func encodeMsg(id uint64, r *record, payload []byte) ([]byte, error) {
	env := *r
	env.ID = id
	head, err := json.Marshal(&env)
	if err != nil {
		return nil, fmt.Errorf("encode job: %w", err)
	}
	buf := make([]byte, 0, len(head)+1+len(payload))
	buf = append(buf, head...)
	buf = append(buf, '\n')
	return append(buf, payload...), nil
}

var errBadMsg = errors.New("malformed job message")

// envelope returns the JSON head of a queue message body (all of it when malformed).
func envelope(body []byte) []byte {
	if i := bytes.IndexByte(body, '\n'); i >= 0 {
		return body[:i]
	}
	return body
}

func decodeMsg(body []byte) (*record, []byte, error) {
	i := bytes.IndexByte(body, '\n')
	if i < 0 {
		return nil, nil, errBadMsg
	}
	r := new(record)
	if err := json.Unmarshal(body[:i], r); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", errBadMsg, err)
	}
	return r, body[i+1:], nil
}

// msgJobID returns the id of the job that a stored message of q's stream holds: from its
// subject, from its envelope, or for a fresh job from the message's sequence (q nil: not
// a fresh job's message).
func (e *Engine) msgJobID(ctx context.Context, m *store.Msg, q *queue) (uint64, error) {
	if id, ok := subjectID(m.Subject); ok {
		return id, nil
	}
	env, _, err := decodeMsg(m.Data)
	if err != nil {
		return 0, err
	}
	if env.ID != 0 {
		return env.ID, nil
	}
	if q == nil {
		return 0, fmt.Errorf("%w: no job id", errBadMsg)
	}
	return e.deriveID(ctx, q, m.Seq)
}

// msgHolds reports whether m, a message of q's stream, is a message of job id. The queue
// matters for a fresh job's message, which has no id of its own: a queue deleted and made
// again has a new number, and its sequences start over.
func (e *Engine) msgHolds(ctx context.Context, m *store.Msg, id uint64, q *queue) bool {
	got, err := e.msgJobID(ctx, m, q)
	return err == nil && got == id
}
