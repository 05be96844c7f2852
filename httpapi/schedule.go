package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/spoolq/spool/engine"
	"github.com/spoolq/spool/schedule"
)

// schedules returns the schedule service, or the error answered when there is none.
func (h *Handler) schedules() (*schedule.Service, error) {
	if h.opts.Schedules == nil {
		return nil, &apiError{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "schedules are not enabled on this server"}
	}
	return h.opts.Schedules, nil
}

// scheduleIn is the body of PUT /v1/schedules/{name}.
type scheduleIn struct {
	Spec     string      `json:"spec"`
	TimeZone string      `json:"time_zone"`
	Queue    string      `json:"queue"`
	Job      *templateIn `json:"job"`
	StartAt  *time.Time  `json:"start_at"`
	EndAt    *time.Time  `json:"end_at"`
	CatchUp  string      `json:"catch_up"`
	Paused   *bool       `json:"paused"`
}

// templateIn is a schedule's job template: the fields of an enqueue that make sense for
// every tick.
type templateIn struct {
	Type          string            `json:"type"`
	Payload       json.RawMessage   `json:"payload"`
	PayloadBase64 *string           `json:"payload_base64"`
	Priority      *int64            `json:"priority"`
	Lease         *duration         `json:"lease"`
	MaxAttempts   *int64            `json:"max_attempts"`
	UniqueKey     string            `json:"unique_key"`
	Metadata      map[string]string `json:"metadata"`
}

func (in *scheduleIn) definition(name string) (schedule.Definition, error) {
	d := schedule.Definition{
		Name: name, Spec: in.Spec, TimeZone: in.TimeZone, Queue: in.Queue,
		CatchUp: schedule.CatchUp(in.CatchUp), Paused: in.Paused,
	}
	if in.StartAt != nil {
		d.StartAt = *in.StartAt
	}
	if in.EndAt != nil {
		d.EndAt = *in.EndAt
	}
	t := in.Job
	if t == nil {
		t = &templateIn{}
	}
	// The enqueue's own decoding checks payload, priority, lease and attempts alike.
	e := enqueueIn{Type: t.Type, Payload: t.Payload, PayloadBase64: t.PayloadBase64, Priority: t.Priority,
		Lease: t.Lease, MaxAttempts: t.MaxAttempts, UniqueKey: t.UniqueKey, Metadata: t.Metadata}
	req, err := e.request(in.Queue)
	if err != nil {
		return d, prefixField(err, "job.")
	}
	d.Job = schedule.JobTemplate{Type: req.Type, Payload: req.Payload, Priority: req.Priority, Lease: req.Lease,
		MaxAttempts: req.MaxAttempts, UniqueKey: req.UniqueKey, Metadata: req.Metadata}
	return d, nil
}

type scheduleOut struct {
	Name        string      `json:"name"`
	Spec        string      `json:"spec"`
	TimeZone    string      `json:"time_zone"`
	Queue       string      `json:"queue"`
	Job         templateOut `json:"job"`
	StartAt     *time.Time  `json:"start_at,omitempty"`
	EndAt       *time.Time  `json:"end_at,omitempty"`
	CatchUp     string      `json:"catch_up"`
	Paused      bool        `json:"paused"`
	CreatedAt   *time.Time  `json:"created_at,omitempty"`
	UpdatedAt   *time.Time  `json:"updated_at,omitempty"`
	LastFire    *fireOut    `json:"last_fire,omitempty"`
	NextFireAt  *time.Time  `json:"next_fire_at,omitempty"`
	RecentFires []fireOut   `json:"recent_fires,omitzero"`
}

type templateOut struct {
	Type          string            `json:"type"`
	Payload       json.RawMessage   `json:"payload,omitempty"`
	PayloadBase64 string            `json:"payload_base64,omitempty"`
	Priority      uint32            `json:"priority"`
	Lease         string            `json:"lease,omitempty"`
	MaxAttempts   int               `json:"max_attempts,omitempty"`
	UniqueKey     string            `json:"unique_key,omitempty"`
	Metadata      map[string]string `json:"metadata,omitempty"`
}

type fireOut struct {
	Tick    time.Time `json:"tick"`
	JobID   string    `json:"job_id"`
	FiredAt time.Time `json:"fired_at"`
	Trigger bool      `json:"trigger,omitempty"`
	Skipped bool      `json:"skipped,omitempty"`
}

func toFire(f *schedule.Fire) fireOut {
	return fireOut{Tick: f.Tick.UTC(), JobID: strconv.FormatUint(f.JobID, 10), FiredAt: f.FiredAt.UTC(), Trigger: f.Trigger, Skipped: f.Skipped}
}

// toSchedule renders a schedule; history adds recent_fires (an empty list when none).
func toSchedule(s *schedule.Schedule, history bool) *scheduleOut {
	o := &scheduleOut{
		Name: s.Name, Spec: s.Spec, TimeZone: s.TimeZone, Queue: s.Queue,
		StartAt: timeOut(s.StartAt), EndAt: timeOut(s.EndAt), CatchUp: string(s.CatchUp), Paused: s.Paused,
		CreatedAt: timeOut(s.CreatedAt), UpdatedAt: timeOut(s.UpdatedAt), NextFireAt: timeOut(s.NextFireAt),
		Job: templateOut{Type: s.Job.Type, Priority: s.Job.Priority, MaxAttempts: s.Job.MaxAttempts,
			UniqueKey: s.Job.UniqueKey, Metadata: s.Job.Metadata},
	}
	if o.TimeZone == "" {
		o.TimeZone = "UTC"
	}
	if s.Job.Lease != 0 {
		o.Job.Lease = fmtDuration(s.Job.Lease)
	}
	if len(s.Job.Payload) > 0 {
		// The same rule as a job's payload: compact JSON as JSON, other bytes in base64.
		j := toJob(&engine.Job{Payload: s.Job.Payload})
		o.Job.Payload, o.Job.PayloadBase64 = j.Payload, j.PayloadBase64
	}
	if s.LastFire != nil {
		f := toFire(s.LastFire)
		o.LastFire = &f
	}
	if history {
		o.RecentFires = make([]fireOut, len(s.RecentFires))
		for i := range s.RecentFires {
			o.RecentFires[i] = toFire(&s.RecentFires[i])
		}
	}
	return o
}

// scheduleErr gives schedule errors their API form.
func scheduleErr(err error) error {
	if errors.Is(err, schedule.ErrNotFound) {
		return &apiError{Status: http.StatusNotFound, Code: "schedule_not_found", Message: err.Error()}
	}
	return err
}

func (h *Handler) listSchedules(w http.ResponseWriter, r *http.Request) error {
	svc, err := h.schedules()
	if err != nil {
		return err
	}
	list, err := svc.List(r.Context())
	if err != nil {
		return scheduleErr(err)
	}
	out := make([]*scheduleOut, len(list))
	for i, s := range list {
		out[i] = toSchedule(s, false)
	}
	writeJSON(w, http.StatusOK, map[string]any{"schedules": out})
	return nil
}

func (h *Handler) getSchedule(w http.ResponseWriter, r *http.Request) error {
	svc, err := h.schedules()
	if err != nil {
		return err
	}
	s, err := svc.Get(r.Context(), r.PathValue("name"))
	if err != nil {
		return scheduleErr(err)
	}
	writeJSON(w, http.StatusOK, toSchedule(s, true))
	return nil
}

func (h *Handler) putSchedule(w http.ResponseWriter, r *http.Request) error {
	svc, err := h.schedules()
	if err != nil {
		return err
	}
	var in scheduleIn
	if err := decode(w, r, &in, h.bodyLimit(false)); err != nil {
		return err
	}
	d, err := in.definition(r.PathValue("name"))
	if err != nil {
		return err
	}
	if dry, err := boolParam(r, "dry_run"); err != nil {
		return err
	} else if dry {
		s, err := svc.Preview(&d)
		if err != nil {
			return scheduleErr(err)
		}
		writeJSON(w, http.StatusOK, toSchedule(s, false))
		return nil
	}
	s, created, err := svc.Put(r.Context(), d)
	if err != nil {
		return scheduleErr(err)
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, toSchedule(s, false))
	return nil
}

func (h *Handler) deleteSchedule(w http.ResponseWriter, r *http.Request) error {
	svc, err := h.schedules()
	if err != nil {
		return err
	}
	if err := svc.Delete(r.Context(), r.PathValue("name")); err != nil {
		return scheduleErr(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) pauseSchedule(w http.ResponseWriter, r *http.Request) error {
	svc, err := h.schedules()
	if err != nil {
		return err
	}
	if err := decode(w, r, &struct{}{}, 64<<10); err != nil {
		return err
	}
	s, err := svc.Pause(r.Context(), r.PathValue("name"))
	if err != nil {
		return scheduleErr(err)
	}
	writeJSON(w, http.StatusOK, toSchedule(s, false))
	return nil
}

func (h *Handler) resumeSchedule(w http.ResponseWriter, r *http.Request) error {
	svc, err := h.schedules()
	if err != nil {
		return err
	}
	if err := decode(w, r, &struct{}{}, 64<<10); err != nil {
		return err
	}
	s, err := svc.Resume(r.Context(), r.PathValue("name"))
	if err != nil {
		return scheduleErr(err)
	}
	writeJSON(w, http.StatusOK, toSchedule(s, false))
	return nil
}

func (h *Handler) triggerSchedule(w http.ResponseWriter, r *http.Request) error {
	svc, err := h.schedules()
	if err != nil {
		return err
	}
	if err := decode(w, r, &struct{}{}, 64<<10); err != nil {
		return err
	}
	j, err := svc.Trigger(r.Context(), r.PathValue("name"))
	if err != nil {
		return scheduleErr(err)
	}
	writeJSON(w, http.StatusCreated, toJob(j))
	return nil
}

// boolParam reads an optional boolean query parameter.
func boolParam(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fieldErr(name, "must be true or false")
	}
	return b, nil
}
