package httpapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spoolq/spool/engine"
)

// duration is a JSON duration on input: a Go duration string ("1h30m", also in the long form
// "1h30m0s" that Go prints) or a number of seconds.
type duration time.Duration

func (d *duration) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("not a duration: %q", s)
		}
		*d = duration(v)
		return nil
	}
	var secs float64
	if err := json.Unmarshal(b, &secs); err != nil {
		return errors.New("want a duration string such as \"30s\" or a number of seconds")
	}
	if secs > float64(1<<62)/1e9 || secs < -float64(1<<62)/1e9 {
		return errors.New("duration out of range")
	}
	*d = duration(time.Duration(secs * float64(time.Second)))
	return nil
}

func (d *duration) value() time.Duration {
	if d == nil {
		return 0
	}
	return time.Duration(*d)
}

// fmtDuration writes a duration in its shortest Go form, with no zero units: "1h", "1h30m",
// "5m", "1h5s", "2.5s" (Go's String gives "1h0m0s", "5m0s"). ParseDuration reads both.
func fmtDuration(d time.Duration) string {
	s := d.String()
	if t, ok := strings.CutSuffix(s, "m0s"); ok {
		s = t + "m" // "5m0s" -> "5m", "1h0m0s" -> "1h0m"
	}
	return strings.Replace(s, "h0m", "h", 1) // "1h0m" -> "1h", "1h0m5s" -> "1h5s"
}

// timeOut is an optional time on output: absent when zero.
func timeOut(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// jobOut is a job on the wire.
type jobOut struct {
	ID             string            `json:"id"`
	Queue          string            `json:"queue"`
	Type           string            `json:"type"`
	State          engine.State      `json:"state"`
	Priority       uint32            `json:"priority"`
	Payload        json.RawMessage   `json:"payload,omitempty"`
	PayloadBase64  string            `json:"payload_base64,omitempty"`
	Attempts       int               `json:"attempts"`
	MaxAttempts    int               `json:"max_attempts"`
	Lease          string            `json:"lease"`
	Timeout        string            `json:"timeout,omitempty"`
	UniqueKey      string            `json:"unique_key,omitempty"`
	Metadata       map[string]string `json:"metadata,omitempty"`
	CallbackURL    string            `json:"callback_url,omitempty"`
	CreatedAt      *time.Time        `json:"created_at,omitempty"`
	RunAt          *time.Time        `json:"run_at,omitempty"`
	ReservedAt     *time.Time        `json:"reserved_at,omitempty"`
	LeaseExpiresAt *time.Time        `json:"lease_expires_at,omitempty"`
	FinishedAt     *time.Time        `json:"finished_at,omitempty"`
	LastError      string            `json:"last_error,omitempty"`
	Result         json.RawMessage   `json:"result,omitempty"`
	Worker         string            `json:"worker,omitempty"`
	Releases       int               `json:"releases"`
	Buries         int               `json:"buries"`
	Kicks          int               `json:"kicks"`
	Timeouts       int               `json:"timeouts"`
	LeaseToken     string            `json:"lease_token,omitempty"`
	Duplicate      bool              `json:"duplicate,omitempty"`
}

func toJob(j *engine.Job) *jobOut {
	o := &jobOut{
		ID: strconv.FormatUint(j.ID, 10), Queue: j.Queue, Type: j.Type, State: j.State, Priority: j.Priority,
		Attempts: j.Attempts, MaxAttempts: j.MaxAttempts, Lease: fmtDuration(j.Lease),
		UniqueKey: j.UniqueKey, Metadata: j.Metadata, CallbackURL: j.CallbackURL,
		CreatedAt: timeOut(j.CreatedAt), RunAt: timeOut(j.RunAt), ReservedAt: timeOut(j.ReservedAt),
		LeaseExpiresAt: timeOut(j.LeaseExpiresAt), FinishedAt: timeOut(j.FinishedAt),
		LastError: j.LastError, Result: j.Result, Worker: j.Worker,
		Releases: j.Releases, Buries: j.Buries, Kicks: j.Kicks, Timeouts: j.Timeouts,
	}
	if j.State != engine.StateDelayed {
		o.RunAt = nil
	}
	if j.Timeout > 0 {
		o.Timeout = fmtDuration(j.Timeout)
	}
	if len(j.Payload) > 0 {
		// Only bytes that are already compact JSON go out as "payload": the encoder would
		// compact anything else, and a payload must come back byte for byte.
		if utf8.Valid(j.Payload) && bytes.Equal(compactJSON(j.Payload), j.Payload) && json.Valid(j.Payload) {
			o.Payload = j.Payload
		} else {
			o.PayloadBase64 = base64.StdEncoding.EncodeToString(j.Payload)
		}
	}
	return o
}

// enqueueIn is one job to enqueue, or a batch when Jobs is set.
type enqueueIn struct {
	Type          string            `json:"type"`
	Payload       json.RawMessage   `json:"payload"`
	PayloadBase64 *string           `json:"payload_base64"`
	Priority      *int64            `json:"priority"`
	Delay         *duration         `json:"delay"`
	RunAt         *time.Time        `json:"run_at"`
	Lease         *duration         `json:"lease"`
	MaxAttempts   *int64            `json:"max_attempts"`
	Timeout       *duration         `json:"timeout"`
	UniqueKey     string            `json:"unique_key"`
	Metadata      map[string]string `json:"metadata"`
	Buried        bool              `json:"buried"`
	CallbackURL   string            `json:"callback_url"`

	Jobs []json.RawMessage `json:"jobs"` // decoded one by one, so that errors name the item
}

// DefaultPriority is the priority of a job enqueued without one, as in beanstalkd clients.
const DefaultPriority = 1024

func (in *enqueueIn) request(queue string) (engine.EnqueueRequest, error) {
	r := engine.EnqueueRequest{Queue: queue, Type: in.Type, Priority: DefaultPriority, UniqueKey: in.UniqueKey, Metadata: in.Metadata, Buried: in.Buried, CallbackURL: in.CallbackURL}
	switch {
	case in.Payload != nil && in.PayloadBase64 != nil:
		return r, fieldErr("payload_base64", "payload and payload_base64 are exclusive")
	case in.PayloadBase64 != nil:
		b, err := base64.StdEncoding.DecodeString(*in.PayloadBase64)
		if err != nil {
			return r, fieldErr("payload_base64", "not valid standard base64")
		}
		r.Payload = b
	case in.Payload != nil && !bytes.Equal(in.Payload, []byte("null")):
		r.Payload = compactJSON(in.Payload)
	}
	if in.Priority != nil {
		if *in.Priority < 0 || *in.Priority > 1<<32-1 {
			return r, fieldErr("priority", "must be between 0 and 4294967295")
		}
		r.Priority = uint32(*in.Priority)
	}
	if in.Delay != nil && in.RunAt != nil {
		return r, fieldErr("delay", "delay and run_at are exclusive")
	}
	r.Delay = in.Delay.value()
	if in.RunAt != nil {
		r.RunAt = *in.RunAt
	}
	if in.Lease != nil {
		if in.Lease.value() < engine.MinLease || in.Lease.value() > engine.MaxLease {
			return r, fieldErr("lease", fmt.Sprintf("must be between %s and %s", engine.MinLease, engine.MaxLease))
		}
		r.Lease = in.Lease.value()
	}
	if in.MaxAttempts != nil {
		if *in.MaxAttempts < 1 || *in.MaxAttempts > engine.MaxMaxAttempts {
			return r, fieldErr("max_attempts", fmt.Sprintf("must be between 1 and %d", engine.MaxMaxAttempts))
		}
		r.MaxAttempts = int(*in.MaxAttempts)
	}
	if in.Timeout != nil {
		if v := in.Timeout.value(); v <= 0 || v > engine.MaxTimeout || v%time.Millisecond != 0 {
			return r, fieldErr("timeout", fmt.Sprintf("must be whole milliseconds between 1ms and %s", engine.MaxTimeout))
		}
		r.Timeout = in.Timeout.value()
	}
	return r, nil
}

// compactJSON returns b without insignificant white space (b itself when not JSON). JSON
// payloads are stored compact, so that they are returned as JSON, unchanged.
func compactJSON(b []byte) []byte {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return b
	}
	return buf.Bytes()
}

type reserveIn struct {
	Queues []string  `json:"queues"`
	Max    *int64    `json:"max"`
	Wait   *duration `json:"wait"`
	Worker string    `json:"worker"`
	PollID string    `json:"poll_id"`
}

type leaseIn struct {
	LeaseToken string          `json:"lease_token"`
	Result     json.RawMessage `json:"result"`
	Error      string          `json:"error"`
	RetryIn    *duration       `json:"retry_in"`
	Bury       bool            `json:"bury"`
	Lease      *duration       `json:"lease"`
	Priority   *int64          `json:"priority"`
	Delay      *duration       `json:"delay"`
	Reason     string          `json:"reason"`
}

type queueSettingsIn struct {
	Lease       *duration `json:"lease"`
	MaxAttempts *int64    `json:"max_attempts"`
	BackoffBase *duration `json:"backoff_base"`
	BackoffMax  *duration `json:"backoff_max"`
	Events      *bool     `json:"events"`
	Replicas    *int64    `json:"replicas"`
	Retention   *duration `json:"retention"`
}

type queueOut struct {
	Name        string     `json:"name"`
	Lease       string     `json:"lease"`
	MaxAttempts int        `json:"max_attempts"`
	BackoffBase string     `json:"backoff_base"`
	BackoffMax  string     `json:"backoff_max"`
	Paused      bool       `json:"paused"`
	PausedUntil *time.Time `json:"paused_until,omitempty"`
	CreatedAt   *time.Time `json:"created_at,omitempty"`
	Events      bool       `json:"events"`
	Replicas    int        `json:"replicas"`
	Retention   string     `json:"retention"`
	Stats       statsOut   `json:"stats"`
}

type statsOut struct {
	Ready          int64   `json:"ready"`
	Reserved       int64   `json:"reserved"`
	Delayed        int64   `json:"delayed"`
	Buried         int64   `json:"buried"`
	Enqueued       int64   `json:"enqueued"`
	Reserves       int64   `json:"reserves"`
	Succeeded      int64   `json:"succeeded"`
	Failed         int64   `json:"failed"`
	BuriedTotal    int64   `json:"buried_total"`
	Cancelled      int64   `json:"cancelled"`
	Timeouts       int64   `json:"timeouts"`
	OldestReadyAge string  `json:"oldest_ready_age"`
	EnqueueRate    float64 `json:"enqueue_rate"`
	CompleteRate   float64 `json:"complete_rate"`
}

func toQueue(qi *engine.QueueInfo) *queueOut {
	s := qi.Stats
	return &queueOut{
		Name: qi.Name, Lease: fmtDuration(qi.Settings.Lease), MaxAttempts: qi.Settings.MaxAttempts,
		BackoffBase: fmtDuration(qi.Settings.BackoffBase), BackoffMax: fmtDuration(qi.Settings.BackoffMax),
		Paused: qi.Paused, PausedUntil: timeOut(qi.PausedUntil), CreatedAt: timeOut(qi.CreatedAt),
		Events:   qi.Settings.Events == nil || *qi.Settings.Events,
		Replicas: qi.Settings.Replicas,
		// A report always sets it (engine.QueueInfo).
		Retention: fmtDuration(*qi.Settings.Retention),
		Stats: statsOut{
			Ready: s.Ready, Reserved: s.Reserved, Delayed: s.Delayed, Buried: s.Buried,
			Enqueued: s.Enqueued, Reserves: s.Reserves, Succeeded: s.Succeeded, Failed: s.Failed,
			BuriedTotal: s.BuriedTot, Cancelled: s.Cancelled, Timeouts: s.Timeouts,
			OldestReadyAge: fmtDuration(s.OldestReadyAge.Round(time.Millisecond)),
			EnqueueRate:    round2(s.EnqueueRate), CompleteRate: round2(s.CompleteRate),
		},
	}
}

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }
