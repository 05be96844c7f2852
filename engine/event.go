package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
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
		if !k.Valid() {
			return nil, invalid("kinds", "unknown event kind %q", f)
		}
		out = append(out, k)
	}
	return out, nil
}

// Valid reports whether k is one of EventKinds.
func (k EventKind) Valid() bool { return slices.Contains(EventKinds, k) }

// Event is one transition of one job, as stored in the events stream.
type Event struct {
	// Pos is the event's position in the events stream: resume a feed after it. Events
	// are stored in batches: Pos is the batch's stream sequence times EventsPerBatch plus
	// the event's index in it.
	Pos     uint64
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

// appendEvent appends ev's stored form (wireEvent's JSON) to b. Written by hand: it runs
// for every transition, and json.Marshal was most of an event's cost.
func appendEvent(b []byte, ev *Event) []byte {
	b = append(b, `{"t":`...)
	b = strconv.AppendInt(b, ev.Time.UnixNano(), 10)
	b = append(b, `,"k":"`...)
	b = append(b, ev.Kind...)
	b = append(b, `","id":`...)
	b = strconv.AppendUint(b, ev.JobID, 10)
	b = appendField(b, "q", ev.Queue, true)
	b = appendField(b, "ty", ev.Type, false)
	b = appendField(b, "n", ev.Node, false)
	b = appendField(b, "w", ev.Worker, false)
	if ev.Attempt != 0 {
		b = append(b, `,"a":`...)
		b = strconv.AppendInt(b, int64(ev.Attempt), 10)
	}
	b = appendField(b, "s", string(ev.State), true)
	b = appendField(b, "e", ev.Error, false)
	if !ev.RunAt.IsZero() {
		b = append(b, `,"ra":`...)
		b = strconv.AppendInt(b, ev.RunAt.UnixNano(), 10)
	}
	b = appendField(b, "cb", ev.Callback, false)
	return append(b, '}')
}

// appendField appends ,"key":"value" (not when value is empty, unless always).
func appendField(b []byte, key, v string, always bool) []byte {
	if v == "" && !always {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			q, _ := json.Marshal(v) // the rare string that needs escaping
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, v...)
	return append(b, '"')
}

// decodeBatch decodes a stored batch of events (JSON lines) stored at stream sequence seq.
func decodeBatch(seq uint64, b []byte) ([]Event, error) {
	var out []Event
	for i := 0; len(b) > 0; i++ {
		line := b
		if n := bytes.IndexByte(b, '\n'); n >= 0 {
			line, b = b[:n], b[n+1:]
		} else {
			b = nil
		}
		ev, err := decodeEvent(seq*EventsPerBatch+uint64(i), line)
		if err != nil {
			return out, err
		}
		out = append(out, ev)
	}
	return out, nil
}

func decodeEvent(pos uint64, b []byte) (Event, error) {
	var w wireEvent
	if err := json.Unmarshal(b, &w); err != nil {
		return Event{}, fmt.Errorf("decode event %d: %w", pos, err)
	}
	return Event{Pos: pos, Time: nsTime(w.T), Kind: w.K, JobID: w.ID, Queue: w.Q, Type: w.Ty, Node: w.N,
		Worker: w.W, Attempt: w.A, State: w.S, Error: w.E, RunAt: nsTime(w.R), Callback: w.CB}, nil
}

// eventShards spreads a queue's events over this many subjects by job id, so that a job's
// timeline reads a quarter of its queue's events. More shards would make smaller batches.
const eventShards = 4

// eventSubject is the subject of a batch of events of one queue and shard:
// spool.e.<queue>.<shard>, or spool.ec.<queue>.<shard> for jobs with a callback URL (the
// webhook dispatcher's consumer needs to see only those, and the hooks' queues).
func eventSubject(esc string, id uint64, callback bool) string {
	p := eventsPrefix
	if callback {
		p = eventsCallbackPrefix
	}
	return p + esc + "." + strconv.FormatUint(id%eventShards, 16)
}

// EventFilter selects events of a feed. Zero fields select all.
type EventFilter struct {
	Queues []string
	Types  []string
	Kinds  []EventKind
	// Callback selects only events of jobs with a callback URL.
	Callback bool
}

// subjects are the stream subject filters of f: queues and callback are in subjects; kinds
// and types are matched on the events.
func (f EventFilter) subjects() []string {
	prefixes := []string{eventsPrefix, eventsCallbackPrefix}
	if f.Callback {
		prefixes = prefixes[1:]
	}
	var out []string
	for _, p := range prefixes {
		if len(f.Queues) == 0 {
			out = append(out, p+">")
			continue
		}
		for _, q := range f.Queues {
			out = append(out, p+escapeName(q)+".*")
		}
	}
	return out
}

func (f EventFilter) match(ev *Event) bool {
	if len(f.Kinds) > 0 && !slices.Contains(f.Kinds, ev.Kind) {
		return false
	}
	if len(f.Queues) > 0 && !slices.Contains(f.Queues, ev.Queue) {
		return false
	}
	return len(f.Types) == 0 || slices.Contains(f.Types, ev.Type)
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
