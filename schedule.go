package spool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// Catch-up policies of a schedule: what it does about ticks that no server fired because
// none was running.
const (
	CatchUpOnce = "once" // fire once, for the latest missed tick (the default)
	CatchUpSkip = "skip" // wait for the next tick
)

// CodeScheduleNotFound is the error code of an unknown schedule.
const CodeScheduleNotFound = "schedule_not_found"

// ErrScheduleNotFound: no schedule with that name (code schedule_not_found).
var ErrScheduleNotFound = errors.New("spool: schedule not found")

// ScheduleDefinition declares a schedule. PutSchedule creates the schedule or replaces its
// definition with this one.
type ScheduleDefinition struct {
	// Spec says when the schedule fires: a cron expression of 5 fields (minute hour
	// day-of-month month day-of-week) or 6 (seconds first), a descriptor (@hourly, @daily,
	// @weekly, @monthly, @yearly), @every DURATION (whole seconds) or @at TIME (once).
	Spec string
	// TimeZone is the IANA time zone the spec is read in, e.g. "Europe/Paris". Default UTC.
	TimeZone string
	// Queue receives the jobs; it is created on the first fire if need be.
	Queue string
	// Job is the template of the jobs enqueued.
	Job ScheduleJob
	// StartAt and EndAt, when not zero, bound the ticks.
	StartAt, EndAt time.Time
	// CatchUp is CatchUpOnce (default) or CatchUpSkip.
	CatchUp string
	// Paused, when not nil, pauses or resumes the schedule; nil keeps its current state
	// (a new schedule is not paused).
	Paused *bool
}

// ScheduleJob is the template of the jobs a schedule enqueues.
type ScheduleJob struct {
	Type string
	// Payload holds the payload bytes: valid JSON is sent (and comes back) as JSON, any
	// other bytes as payload_base64.
	Payload []byte
	// Priority: lower is more urgent. nil means 1024 when putting a schedule.
	Priority    *uint32
	Lease       time.Duration // 0: the queue's
	MaxAttempts int           // 0: the queue's
	// UniqueKey, when set, makes a tick enqueue nothing while a job of the queue with this
	// key is unfinished (a slow run is not overlapped by the next).
	UniqueKey string
	Metadata  map[string]string
}

// Schedule is a schedule as the server reports it.
type Schedule struct {
	Name      string
	Spec      string
	TimeZone  string // "UTC" when none was given
	Queue     string
	Job       ScheduleJob
	StartAt   time.Time
	EndAt     time.Time
	CatchUp   string
	Paused    bool
	CreatedAt time.Time
	UpdatedAt time.Time
	// LastFire is the latest fire, nil when the schedule never fired.
	LastFire *ScheduleFire
	// NextFireAt is the next tick to come; zero when paused, ended or a spent @at.
	NextFireAt time.Time
	// RecentFires are the latest fires, newest first (Client.Schedule only).
	RecentFires []ScheduleFire
}

// ScheduleFire is one job enqueued by a schedule.
type ScheduleFire struct {
	Tick    time.Time // the tick it was fired for (for a trigger: the time of the request)
	JobID   uint64
	FiredAt time.Time // when it was enqueued
	Trigger bool      // fired by TriggerSchedule
	// Skipped: the template's unique key was held by an unfinished job (JobID), so the
	// tick enqueued nothing.
	Skipped bool
}

// Wire forms.

type scheduleJobJSON struct {
	Type          string            `json:"type,omitempty"`
	Payload       json.RawMessage   `json:"payload,omitempty"`
	PayloadBase64 []byte            `json:"payload_base64,omitempty"`
	Priority      *uint32           `json:"priority,omitempty"`
	Lease         jsonDuration      `json:"lease,omitzero"`
	MaxAttempts   int               `json:"max_attempts,omitempty"`
	UniqueKey     string            `json:"unique_key,omitempty"`
	Metadata      map[string]string `json:"metadata,omitempty"`
}

func (j *ScheduleJob) wire() scheduleJobJSON {
	w := scheduleJobJSON{Type: j.Type, Priority: j.Priority, Lease: jsonDuration(j.Lease), MaxAttempts: j.MaxAttempts,
		UniqueKey: j.UniqueKey, Metadata: j.Metadata}
	if len(j.Payload) > 0 {
		w.Payload, w.PayloadBase64 = encodePayload(j.Payload)
	}
	return w
}

func (w *scheduleJobJSON) job() ScheduleJob {
	j := ScheduleJob{Type: w.Type, Priority: w.Priority, Lease: time.Duration(w.Lease), MaxAttempts: w.MaxAttempts,
		UniqueKey: w.UniqueKey, Metadata: w.Metadata, Payload: []byte(w.Payload)}
	if w.PayloadBase64 != nil {
		j.Payload = w.PayloadBase64
	}
	return j
}

type scheduleFireJSON struct {
	Tick    time.Time `json:"tick"`
	JobID   jsonID    `json:"job_id"`
	FiredAt time.Time `json:"fired_at"`
	Trigger bool      `json:"trigger,omitempty"`
	Skipped bool      `json:"skipped,omitempty"`
}

type scheduleJSON struct {
	Name        string             `json:"name"`
	Spec        string             `json:"spec"`
	TimeZone    string             `json:"time_zone"`
	Queue       string             `json:"queue"`
	Job         scheduleJobJSON    `json:"job"`
	StartAt     time.Time          `json:"start_at,omitzero"`
	EndAt       time.Time          `json:"end_at,omitzero"`
	CatchUp     string             `json:"catch_up"`
	Paused      bool               `json:"paused"`
	CreatedAt   time.Time          `json:"created_at,omitzero"`
	UpdatedAt   time.Time          `json:"updated_at,omitzero"`
	LastFire    *scheduleFireJSON  `json:"last_fire,omitempty"`
	NextFireAt  time.Time          `json:"next_fire_at,omitzero"`
	RecentFires []scheduleFireJSON `json:"recent_fires,omitempty"`
}

func fireWire(f *ScheduleFire) scheduleFireJSON {
	return scheduleFireJSON{Tick: utc(f.Tick), JobID: jsonID(f.JobID), FiredAt: utc(f.FiredAt), Trigger: f.Trigger, Skipped: f.Skipped}
}

func (w *scheduleFireJSON) fire() ScheduleFire {
	return ScheduleFire{Tick: w.Tick, JobID: uint64(w.JobID), FiredAt: w.FiredAt, Trigger: w.Trigger, Skipped: w.Skipped}
}

// MarshalJSON encodes the schedule in the wire format of the HTTP API.
func (s Schedule) MarshalJSON() ([]byte, error) {
	w := scheduleJSON{
		Name: s.Name, Spec: s.Spec, TimeZone: s.TimeZone, Queue: s.Queue, Job: s.Job.wire(),
		StartAt: utc(s.StartAt), EndAt: utc(s.EndAt), CatchUp: s.CatchUp, Paused: s.Paused,
		CreatedAt: utc(s.CreatedAt), UpdatedAt: utc(s.UpdatedAt), NextFireAt: utc(s.NextFireAt),
	}
	if s.LastFire != nil {
		f := fireWire(s.LastFire)
		w.LastFire = &f
	}
	for i := range s.RecentFires {
		w.RecentFires = append(w.RecentFires, fireWire(&s.RecentFires[i]))
	}
	return json.Marshal(&w)
}

// UnmarshalJSON decodes the wire format of the HTTP API.
func (s *Schedule) UnmarshalJSON(data []byte) error {
	var w scheduleJSON
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	*s = Schedule{
		Name: w.Name, Spec: w.Spec, TimeZone: w.TimeZone, Queue: w.Queue, Job: w.Job.job(),
		StartAt: w.StartAt, EndAt: w.EndAt, CatchUp: w.CatchUp, Paused: w.Paused,
		CreatedAt: w.CreatedAt, UpdatedAt: w.UpdatedAt, NextFireAt: w.NextFireAt,
	}
	if w.LastFire != nil {
		f := w.LastFire.fire()
		s.LastFire = &f
	}
	for i := range w.RecentFires {
		s.RecentFires = append(s.RecentFires, w.RecentFires[i].fire())
	}
	return nil
}

// scheduleNotFound makes an APIError with code schedule_not_found match
// ErrScheduleNotFound.
type scheduleNotFound struct{ *APIError }

func (e *scheduleNotFound) Is(target error) bool { return target == ErrScheduleNotFound }
func (e *scheduleNotFound) Unwrap() error        { return e.APIError }

func scheduleErr(err error) error {
	var ae *APIError
	if errors.As(err, &ae) && ae.Code == CodeScheduleNotFound {
		return &scheduleNotFound{ae}
	}
	return err
}

func pathSchedule(name, action string) string {
	p := "/v1/schedules/" + url.PathEscape(name)
	if action != "" {
		p += "/" + action
	}
	return p
}

// checkScheduleName rejects an empty name before it turns into another route.
func checkScheduleName(name string) error {
	if name == "" {
		return &APIError{Code: CodeInvalidArgument, Message: "name: must not be empty", Field: "name"}
	}
	return nil
}

// PutSchedule creates the schedule name, or replaces its definition, and returns it.
// Putting the definition a schedule has already changes nothing. A change of spec, time
// zone or start time starts the new ticks from now (none from before is caught up).
// An invalid definition fails with ErrInvalidArgument; APIError.Field names the field
// (e.g. "spec", "time_zone", "job.lease").
func (c *Client) PutSchedule(ctx context.Context, name string, def ScheduleDefinition) (*Schedule, error) {
	if err := checkScheduleName(name); err != nil {
		return nil, fmt.Errorf("spool: put schedule: %w", err)
	}
	in := struct {
		Spec     string          `json:"spec"`
		TimeZone string          `json:"time_zone,omitempty"`
		Queue    string          `json:"queue"`
		Job      scheduleJobJSON `json:"job"`
		StartAt  time.Time       `json:"start_at,omitzero"`
		EndAt    time.Time       `json:"end_at,omitzero"`
		CatchUp  string          `json:"catch_up,omitempty"`
		Paused   *bool           `json:"paused,omitempty"`
	}{def.Spec, def.TimeZone, def.Queue, def.Job.wire(), utc(def.StartAt), utc(def.EndAt), def.CatchUp, def.Paused}
	var out Schedule
	if err := c.do(ctx, request{method: http.MethodPut, path: pathSchedule(name, ""), body: &in, out: &out}); err != nil {
		return nil, fmt.Errorf("spool: put schedule %q: %w", name, scheduleErr(err))
	}
	return &out, nil
}

// Schedules returns every schedule, sorted by name, with its last and next fire.
func (c *Client) Schedules(ctx context.Context) ([]*Schedule, error) {
	var out struct {
		Schedules []*Schedule `json:"schedules"`
	}
	if err := c.do(ctx, request{method: http.MethodGet, path: "/v1/schedules", out: &out}); err != nil {
		return nil, fmt.Errorf("spool: schedules: %w", err)
	}
	return out.Schedules, nil
}

// Schedule returns a schedule with its last and next fire and its recent fires. An
// unknown name fails with ErrScheduleNotFound.
func (c *Client) Schedule(ctx context.Context, name string) (*Schedule, error) {
	return c.scheduleOp(ctx, http.MethodGet, name, "")
}

// DeleteSchedule deletes a schedule (the jobs it enqueued stay).
func (c *Client) DeleteSchedule(ctx context.Context, name string) error {
	if err := checkScheduleName(name); err != nil {
		return fmt.Errorf("spool: delete schedule: %w", err)
	}
	if err := c.do(ctx, request{method: http.MethodDelete, path: pathSchedule(name, "")}); err != nil {
		return fmt.Errorf("spool: delete schedule %q: %w", name, scheduleErr(err))
	}
	return nil
}

// PauseSchedule stops a schedule from firing until ResumeSchedule.
func (c *Client) PauseSchedule(ctx context.Context, name string) (*Schedule, error) {
	return c.scheduleOp(ctx, http.MethodPost, name, "pause")
}

// ResumeSchedule lets a paused schedule fire again from its next tick; the ticks skipped
// while paused are not caught up.
func (c *Client) ResumeSchedule(ctx context.Context, name string) (*Schedule, error) {
	return c.scheduleOp(ctx, http.MethodPost, name, "resume")
}

// TriggerSchedule fires a schedule now, once, outside its spec (a paused one too), and
// returns the job enqueued: a job of its own id, with the metadata spool.trigger=true.
func (c *Client) TriggerSchedule(ctx context.Context, name string) (*Job, error) {
	if err := checkScheduleName(name); err != nil {
		return nil, fmt.Errorf("spool: trigger schedule: %w", err)
	}
	var job Job
	if err := c.do(ctx, request{method: http.MethodPost, path: pathSchedule(name, "trigger"), out: &job}); err != nil {
		return nil, fmt.Errorf("spool: trigger schedule %q: %w", name, scheduleErr(err))
	}
	return &job, nil
}

func (c *Client) scheduleOp(ctx context.Context, method, name, action string) (*Schedule, error) {
	what := "schedule"
	if action != "" {
		what = action + " schedule"
	}
	if err := checkScheduleName(name); err != nil {
		return nil, fmt.Errorf("spool: %s: %w", what, err)
	}
	var out Schedule
	if err := c.do(ctx, request{method: method, path: pathSchedule(name, action), out: &out}); err != nil {
		return nil, fmt.Errorf("spool: %s %q: %w", what, name, scheduleErr(err))
	}
	return &out, nil
}
