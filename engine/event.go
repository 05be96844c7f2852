package engine

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// EventKind names a lifecycle transition of a job.
type EventKind string

// Event kinds: one event per transition.
const (
	EventEnqueued  EventKind = "enqueued"
	EventReserved  EventKind = "reserved"
	EventTouched   EventKind = "touched"
	EventSucceeded EventKind = "succeeded"
	// EventFailed is a failed attempt that will be retried (State ready, or delayed until
	// RunAt); a failure that buries the job is EventBuried with its Error.
	EventFailed    EventKind = "failed"
	EventBuried    EventKind = "buried"
	EventKicked    EventKind = "kicked"
	EventReleased  EventKind = "released"
	EventExpired   EventKind = "expired" // a lease ran out without an answer
	EventCancelled EventKind = "cancelled"
)

// EventKinds lists every kind, in lifecycle order.
var EventKinds = []EventKind{EventEnqueued, EventReserved, EventTouched, EventSucceeded, EventFailed,
	EventBuried, EventKicked, EventReleased, EventExpired, EventCancelled}

// ParseEventKinds parses a comma-separated list of kinds ("" is none).
func ParseEventKinds(s string) ([]EventKind, error) {
	var out []EventKind
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		k := EventKind(f)
		if !k.valid() {
			return nil, invalid("kinds", "unknown event kind %q", f)
		}
		out = append(out, k)
	}
	return out, nil
}

func (k EventKind) valid() bool {
	for _, x := range EventKinds {
		if x == k {
			return true
		}
	}
	return false
}

// Event is one transition of one job, as stored in the events stream.
type Event struct {
	// Seq is the event's position in the events stream: resume a feed after it.
	Seq     uint64
	Time    time.Time
	Kind    EventKind
	JobID   uint64
	Queue   string
	Type    string
	Node    string // the spool node that made the transition
	Worker  string // the lease holder's name, when known
	Attempt int    // attempts made so far, the current one included
	State   State  // the job's state after the transition
	// Error is the attempt's error (failed, buried by a failure) or the bury reason.
	Error string
	// RunAt is when a delayed job becomes ready (failed with a backoff, released with a
	// delay).
	RunAt time.Time
	// Callback is the job's callback URL (EnqueueRequest.CallbackURL).
	Callback string
}

// wireEvent is an event's stored form: short keys, as job records.
type wireEvent struct {
	T  int64     `json:"t"`
	K  EventKind `json:"k"`
	ID uint64    `json:"id"`
	Q  string    `json:"q"`
	Ty string    `json:"ty,omitempty"`
	N  string    `json:"n,omitempty"`
	W  string    `json:"w,omitempty"`
	A  int       `json:"a,omitempty"`
	S  State     `json:"s"`
	E  string    `json:"e,omitempty"`
	R  int64     `json:"ra,omitempty"`
	CB string    `json:"cb,omitempty"`
}

func encodeEvent(ev *Event) ([]byte, error) {
	w := wireEvent{T: ev.Time.UnixNano(), K: ev.Kind, ID: ev.JobID, Q: ev.Queue, Ty: ev.Type, N: ev.Node,
		W: ev.Worker, A: ev.Attempt, S: ev.State, E: ev.Error, CB: ev.Callback}
	if !ev.RunAt.IsZero() {
		w.R = ev.RunAt.UnixNano()
	}
	b, err := json.Marshal(&w)
	if err != nil {
		return nil, fmt.Errorf("encode event: %w", err)
	}
	return b, nil
}

func decodeEvent(seq uint64, b []byte) (Event, error) {
	var w wireEvent
	if err := json.Unmarshal(b, &w); err != nil {
		return Event{}, fmt.Errorf("decode event %d: %w", seq, err)
	}
	return Event{Seq: seq, Time: nsTime(w.T), Kind: w.K, JobID: w.ID, Queue: w.Q, Type: w.Ty, Node: w.N,
		Worker: w.W, Attempt: w.A, State: w.S, Error: w.E, RunAt: nsTime(w.R), Callback: w.CB}, nil
}

// eventSubject is where an event is stored: spool.e.<queue>.<kind>.<id>, or under
// spool.ec. for a job with a callback URL, so that the webhook dispatcher's consumer sees
// only the events it may deliver.
func eventSubject(esc string, k EventKind, id uint64, callback bool) string {
	p := eventsPrefix
	if callback {
		p = eventsCallbackPrefix
	}
	return p + esc + "." + string(k) + "." + strconv.FormatUint(id, 10)
}

// EventFilter selects events of a feed. Zero fields select all.
type EventFilter struct {
	Queues []string
	Types  []string // matched in the feed, not by subject
	Kinds  []EventKind
	// Callback selects only events of jobs with a callback URL.
	Callback bool
}

// subjects are the stream subject filters of f (types are not in subjects).
func (f EventFilter) subjects() []string {
	qs := []string{"*"}
	if len(f.Queues) > 0 {
		qs = qs[:0]
		for _, q := range f.Queues {
			qs = append(qs, escapeName(q))
		}
	}
	ks := []string{"*"}
	if len(f.Kinds) > 0 {
		ks = ks[:0]
		for _, k := range f.Kinds {
			ks = append(ks, string(k))
		}
	}
	prefixes := []string{eventsPrefix, eventsCallbackPrefix}
	if f.Callback {
		prefixes = prefixes[1:]
	}
	var out []string
	for _, p := range prefixes {
		for _, q := range qs {
			for _, k := range ks {
				out = append(out, p+q+"."+k+".*")
			}
		}
	}
	return out
}

func (f EventFilter) matchType(t string) bool {
	if len(f.Types) == 0 {
		return true
	}
	for _, x := range f.Types {
		if x == t {
			return true
		}
	}
	return false
}

// MaxURLLen bounds a callback or webhook URL.
const MaxURLLen = 2048

// ValidateURL checks a callback or webhook URL: absolute http or https, with a host, at
// most MaxURLLen bytes.
func ValidateURL(s string) error {
	if len(s) > MaxURLLen {
		return fmt.Errorf("longer than %d bytes", MaxURLLen)
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("not a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("scheme must be http or https")
	}
	if u.Host == "" {
		return fmt.Errorf("no host")
	}
	if u.User != nil {
		return fmt.Errorf("must not carry credentials")
	}
	return nil
}
