package schedule

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/spoolq/spool/engine"
)

// CatchUp says what a schedule does about ticks that no node fired in time, because no
// spool node was running (or none could reach JetStream).
type CatchUp string

const (
	// CatchUpOnce fires once, for the latest missed tick, as soon as a node runs again. The
	// default: a daily job runs late rather than not at all.
	CatchUpOnce CatchUp = "once"
	// CatchUpSkip drops missed ticks: the schedule resumes with its next tick. A tick is
	// missed when it is more than the grace period (1 minute by default) old.
	CatchUpSkip CatchUp = "skip"
)

// Metadata keys that every fired job carries, besides the template's own.
const (
	MetaSchedule = "spool.schedule" // the schedule's name
	MetaTick     = "spool.tick"     // the tick (RFC 3339, UTC) the job was fired for
	MetaTrigger  = "spool.trigger"  // "true" on jobs fired by Trigger
)

// DefaultPriority is the priority of a template that gives none, as for an enqueue.
const DefaultPriority = 1024

// MaxNameLen bounds a schedule's name.
const MaxNameLen = 128

// ErrNotFound: no schedule with that name.
var ErrNotFound = errors.New("schedule not found")

// Definition is a schedule as a user declares it.
type Definition struct {
	// Name identifies the schedule: 1 to 128 bytes of letters, digits, '-', '_' and '.',
	// starting with a letter or digit, without ".." and not ending with '.'.
	Name string
	// Spec says when it fires: a cron expression of 5 fields (minute hour day-of-month
	// month day-of-week) or 6 (seconds first); a descriptor (@yearly, @monthly, @weekly,
	// @daily, @hourly); @every DURATION (whole seconds); or @at TIME (once).
	Spec string
	// TimeZone is the IANA zone the spec is read in, e.g. "Europe/Paris". Default UTC.
	TimeZone string
	// Queue receives the jobs. It is created on the first fire, as by an enqueue.
	Queue string
	// Job is the template of the jobs enqueued.
	Job JobTemplate
	// StartAt and EndAt, when set, bound the ticks: none before StartAt, none after EndAt.
	StartAt, EndAt time.Time
	// CatchUp is the policy for missed ticks. Default CatchUpOnce.
	CatchUp CatchUp
	// Paused, when not nil, pauses or resumes the schedule. nil keeps the schedule's state
	// (a new schedule is not paused).
	Paused *bool
}

// JobTemplate describes the jobs a schedule enqueues.
type JobTemplate struct {
	Type        string
	Payload     []byte
	Priority    uint32        // lower is more urgent; set DefaultPriority for the usual default
	Lease       time.Duration // 0: the queue's
	MaxAttempts int           // 0: the queue's
	// UniqueKey, when set, makes a tick enqueue nothing while a job of the queue with this
	// key is unfinished: a slow run is not overlapped by the next one.
	UniqueKey string
	Metadata  map[string]string
}

// Schedule is a stored schedule with its state.
type Schedule struct {
	Name      string
	Spec      string
	TimeZone  string // "" for UTC
	Queue     string
	Job       JobTemplate
	StartAt   time.Time
	EndAt     time.Time
	CatchUp   CatchUp
	Paused    bool
	CreatedAt time.Time
	UpdatedAt time.Time
	// LastFire is the latest fire (scheduled or triggered); nil when it never fired.
	LastFire *Fire
	// NextFireAt is the next tick to come; zero when paused, past EndAt, or a spent @at.
	NextFireAt time.Time
	// RecentFires are the latest fires, newest first (Service.Get only).
	RecentFires []Fire
}

// Fire is one job enqueued by a schedule.
type Fire struct {
	Tick    time.Time // the tick it was fired for; for a trigger, the time of the request
	JobID   uint64
	FiredAt time.Time // when it was enqueued
	Trigger bool      // fired by Trigger, not by the spec
	// Skipped: the template's unique key was held by an unfinished job (JobID), so the
	// tick enqueued nothing.
	Skipped bool
}

// TickID is the id of the job enqueued for a schedule's tick: 52 bits of SHA-256 over the
// schedule's name and the tick's time. Every node computes the same id for the same tick,
// and the engine stores a job with a given id at most once: that is what makes a tick
// fire exactly one job however many nodes fire it.
func TickID(name string, tick time.Time) uint64 {
	h := sha256.New()
	h.Write([]byte("spool.schedule.tick\x00"))
	h.Write([]byte(name))
	var b [9]byte
	binary.BigEndian.PutUint64(b[1:], uint64(tick.UnixNano()))
	h.Write(b[:])
	id := binary.BigEndian.Uint64(h.Sum(nil)) >> 12 // below 2^52: a chosen id (engine.MaxChosenID)
	if id == 0 {
		id = 1
	}
	return id
}

// ValidateName checks a schedule name.
func ValidateName(name string) error {
	switch {
	case name == "":
		return invalid("name", "must not be empty")
	case len(name) > MaxNameLen:
		return invalid("name", "longer than %d bytes", MaxNameLen)
	case !alnum(name[0]):
		return invalid("name", "must start with a letter or a digit")
	case strings.HasSuffix(name, "."):
		return invalid("name", "must not end with '.'")
	case strings.Contains(name, ".."):
		return invalid("name", "must not contain \"..\"")
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !alnum(c) && c != '-' && c != '_' && c != '.' {
			return invalid("name", "character %q not allowed (letters, digits, '-', '_' and '.')", c)
		}
	}
	return nil
}

func alnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func invalid(field, format string, args ...any) error {
	return &engine.ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// stored is a schedule's entry in the definitions bucket.
type stored struct {
	Name     string    `json:"name"`
	Spec     string    `json:"spec"`
	TimeZone string    `json:"time_zone,omitempty"`
	Queue    string    `json:"queue"`
	Job      storedJob `json:"job"`
	StartAt  int64     `json:"start_at,omitempty"` // unix ns
	EndAt    int64     `json:"end_at,omitempty"`
	CatchUp  CatchUp   `json:"catch_up"`
	Paused   bool      `json:"paused,omitempty"`
	// Created is also the schedule's generation: fire records of an earlier schedule of
	// the same name carry another and are ignored.
	Created int64 `json:"created"`
	Updated int64 `json:"updated"`
	// Anchor is the origin of @every ticks: the start time, or the time the spec was set.
	Anchor int64 `json:"anchor"`
	// Since: ticks at or before it are never fired. Set when the timing is (re)defined and
	// at a resume, so that neither catches up ticks from before.
	Since int64 `json:"since"`
}

type storedJob struct {
	Type        string            `json:"type,omitempty"`
	Payload     []byte            `json:"payload,omitempty"`
	Priority    uint32            `json:"priority"`
	Lease       time.Duration     `json:"lease_ns,omitempty"`
	MaxAttempts int               `json:"max_attempts,omitempty"`
	UniqueKey   string            `json:"unique_key,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
}

func nsTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

func unixNS(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// samePhase reports whether two definitions have the same ticks, end time aside.
func (d *stored) samePhase(o *stored) bool {
	return d.Spec == o.Spec && d.TimeZone == o.TimeZone && d.StartAt == o.StartAt
}

// sameContent reports whether two definitions declare the same schedule.
func (d *stored) sameContent(o *stored) bool {
	a, b := d.Job, o.Job
	return d.samePhase(o) && d.EndAt == o.EndAt && d.Queue == o.Queue && d.CatchUp == o.CatchUp && d.Paused == o.Paused &&
		a.Type == b.Type && string(a.Payload) == string(b.Payload) && a.Priority == b.Priority &&
		a.Lease == b.Lease && a.MaxAttempts == b.MaxAttempts && a.UniqueKey == b.UniqueKey &&
		maps.Equal(a.Metadata, b.Metadata)
}

// request is the enqueue of the job for a tick.
func (d *stored) request(tick time.Time, trigger bool) engine.EnqueueRequest {
	md := make(map[string]string, len(d.Job.Metadata)+3)
	maps.Copy(md, d.Job.Metadata)
	md[MetaSchedule] = d.Name
	md[MetaTick] = fmtTick(tick)
	if trigger {
		md[MetaTrigger] = "true"
	}
	return engine.EnqueueRequest{
		Queue: d.Queue, Type: d.Job.Type, Payload: d.Job.Payload, Priority: d.Job.Priority,
		Lease: d.Job.Lease, MaxAttempts: d.Job.MaxAttempts, UniqueKey: d.Job.UniqueKey, Metadata: md,
	}
}

// plan computes the schedule's tick set.
func (d *stored) plan(z *zones) (*plan, error) {
	loc, err := z.load(d.TimeZone)
	if err != nil {
		return nil, err
	}
	tk, err := parseSpec(d.Spec, loc, nsTime(d.Anchor))
	if err != nil {
		return nil, err
	}
	return &plan{tk: tk, start: nsTime(d.StartAt), end: nsTime(d.EndAt)}, nil
}

// build validates a definition and returns the entry to store: a new one when cur is nil,
// else cur updated. changed is false when the definition is what is stored already.
func build(d *Definition, cur *stored, now time.Time, z *zones, eng *engine.Engine) (next *stored, changed bool, err error) {
	if err := ValidateName(d.Name); err != nil {
		return nil, false, err
	}
	if _, err := z.load(d.TimeZone); err != nil {
		return nil, false, err
	}
	tz := d.TimeZone
	if tz == "UTC" {
		tz = ""
	}
	catchUp := d.CatchUp
	switch catchUp {
	case "":
		catchUp = CatchUpOnce
	case CatchUpOnce, CatchUpSkip:
	default:
		return nil, false, invalid("catch_up", "must be %q or %q", CatchUpOnce, CatchUpSkip)
	}
	if err := engine.ValidateQueueName(d.Queue); err != nil {
		return nil, false, err
	}
	if !d.StartAt.IsZero() && !d.EndAt.IsZero() && !d.EndAt.After(d.StartAt) {
		return nil, false, invalid("end_at", "must be after start_at")
	}
	for k := range d.Job.Metadata {
		if strings.HasPrefix(k, "spool.") {
			return nil, false, invalid("job.metadata", "key %q: the prefix \"spool.\" is reserved", k)
		}
	}
	n := &stored{
		Name: d.Name, Spec: strings.TrimSpace(d.Spec), TimeZone: tz, Queue: d.Queue,
		Job: storedJob{
			Type: d.Job.Type, Payload: d.Job.Payload, Priority: d.Job.Priority, Lease: d.Job.Lease,
			MaxAttempts: d.Job.MaxAttempts, UniqueKey: d.Job.UniqueKey, Metadata: d.Job.Metadata,
		},
		StartAt: unixNS(d.StartAt), EndAt: unixNS(d.EndAt), CatchUp: catchUp,
		Created: now.UnixNano(), Updated: now.UnixNano(), Since: now.UnixNano(),
	}
	if len(n.Job.Metadata) == 0 {
		n.Job.Metadata = nil
	}
	if len(n.Job.Payload) == 0 {
		n.Job.Payload = nil
	}
	if d.Paused != nil {
		n.Paused = *d.Paused
	}
	// The template must make a valid enqueue, metadata added by the scheduler included.
	req := n.request(now, true)
	if err := eng.ValidateEnqueue(&req); err != nil {
		var ve *engine.ValidationError
		if errors.As(err, &ve) {
			return nil, false, &engine.ValidationError{Field: "job." + ve.Field, Reason: ve.Reason}
		}
		return nil, false, err
	}
	if cur != nil {
		n.Created = cur.Created
		if d.Paused == nil {
			n.Paused = cur.Paused
		}
		if n.sameContent(cur) {
			return cur, false, nil
		}
		n.Anchor, n.Since = cur.Anchor, cur.Since
		if n.Paused != cur.Paused && !n.Paused {
			n.Since = now.UnixNano() // resumed: no catching up the ticks skipped while paused
		}
	}
	if cur == nil || !n.samePhase(cur) {
		// New ticks: @every counts from now (or the start), and no tick from before is
		// caught up.
		n.Anchor = now.Truncate(time.Second).UnixNano()
		if n.StartAt != 0 {
			n.Anchor = n.StartAt
		}
		n.Since = now.UnixNano()
	}
	if cur == nil || !n.samePhase(cur) || n.EndAt != cur.EndAt {
		p, err := n.plan(z)
		if err != nil {
			return nil, false, err
		}
		if first := p.after(now); first.IsZero() {
			switch {
			case strings.HasPrefix(n.Spec, "@at"):
				return nil, false, invalid("spec", "%s is not in the future", n.Spec)
			case n.EndAt != 0:
				return nil, false, invalid("end_at", "no tick between now and end_at")
			default:
				return nil, false, invalid("spec", "%q never fires (no match within 5 years)", n.Spec)
			}
		}
	}
	return n, true, nil
}

// schedule turns a stored entry into its public form, without state.
func (d *stored) schedule() *Schedule {
	return &Schedule{
		Name: d.Name, Spec: d.Spec, TimeZone: d.TimeZone, Queue: d.Queue,
		Job: JobTemplate{
			Type: d.Job.Type, Payload: d.Job.Payload, Priority: d.Job.Priority, Lease: d.Job.Lease,
			MaxAttempts: d.Job.MaxAttempts, UniqueKey: d.Job.UniqueKey, Metadata: d.Job.Metadata,
		},
		StartAt: nsTime(d.StartAt), EndAt: nsTime(d.EndAt), CatchUp: d.CatchUp, Paused: d.Paused,
		CreatedAt: nsTime(d.Created), UpdatedAt: nsTime(d.Updated),
	}
}
