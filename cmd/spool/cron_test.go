package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spoolq/spool"
	"github.com/spoolq/spool/internal/spooltest"
)

// compact removes the indentation --json adds to a payload.
func compact(b []byte) string {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return string(b)
	}
	return buf.String()
}

func TestCronUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"cron", "bogus"},
		{"cron", "show"},
		{"cron", "set", "x", "--queue", "q"},
		{"cron", "set", "x", "--spec", "@daily"},
		{"cron", "set", "x", "--spec", "@daily", "--queue", "q", "--catch-up", "all"},
		{"cron", "set", "x", "--spec", "@daily", "--queue", "q", "--start-at", "tomorrow"},
		{"cron", "set", "x", "--spec", "@daily", "--queue", "q", "--payload", "{"},
		{"cron", "set", "x", "--spec", "@daily", "--queue", "q", "--meta", "novalue"},
		{"cron", "trigger", "a", "b"},
	} {
		r := spoolCmd(t, "", args...)
		if r.code != 2 {
			t.Errorf("spool %s: exit %d, want 2 (stderr %q)", strings.Join(args, " "), r.code, r.stderr)
		}
	}
}

// TestCronCommands drives every cron command and the client's schedule methods against a
// real server.
func TestCronCommands(t *testing.T) {
	srv := spooltest.Start(t, nil)
	s := "--server=" + srv.URL

	r := ok(t, "cron", "set", "nightly", s, "--spec", "0 2 * * *", "--tz", "Europe/Paris", "--queue", "reports",
		"--type", "report.build", "--payload", `{"kind":"daily"}`, "--priority", "10", "--lease", "5m",
		"--meta", "team=bi", "--catch-up", "skip")
	if !strings.HasPrefix(r.stdout, "schedule nightly saved; next fire: ") {
		t.Errorf("set: %q", r.stdout)
	}
	var sch spool.Schedule
	okJSON(t, &sch, "cron", "show", "nightly", s)
	if sch.Spec != "0 2 * * *" || sch.TimeZone != "Europe/Paris" || sch.Queue != "reports" || sch.CatchUp != "skip" ||
		sch.Job.Type != "report.build" || compact(sch.Job.Payload) != `{"kind":"daily"}` || *sch.Job.Priority != 10 ||
		sch.Job.Lease != 5*time.Minute || sch.Job.Metadata["team"] != "bi" || sch.NextFireAt.IsZero() {
		t.Errorf("show --json: %+v", sch)
	}
	if paris, _ := time.LoadLocation("Europe/Paris"); sch.NextFireAt.In(paris).Hour() != 2 {
		t.Errorf("next fire %s: want 02:00 in Paris", sch.NextFireAt)
	}

	ok(t, "cron", "set", "every", s, "--spec", "@every 1s", "--queue", "ticks", "--type", "tick")
	r = ok(t, "cron", "list", s)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "SCHEDULE") || !strings.HasPrefix(lines[1], "every") ||
		!strings.Contains(lines[2], "Europe/Paris") {
		t.Errorf("list:\n%s", r.stdout)
	}
	var list struct {
		Schedules []spool.Schedule `json:"schedules"`
	}
	okJSON(t, &list, "cron", "list", s)
	if len(list.Schedules) != 2 {
		t.Errorf("list --json: %+v", list)
	}

	// The @every 1s schedule fires on its own; show lists its fires.
	deadline := time.Now().Add(10 * time.Second)
	for {
		okJSON(t, &sch, "cron", "show", "every", s)
		if len(sch.RecentFires) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("@every 1s did not fire twice: %+v", sch)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if f := sch.RecentFires[0]; f.JobID == 0 || !f.Tick.After(sch.RecentFires[1].Tick) {
		t.Errorf("fires %+v", sch.RecentFires)
	}
	r = ok(t, "cron", "show", "every", s)
	if !strings.Contains(r.stdout, "TICK") || !strings.Contains(r.stdout, strconv.FormatUint(sch.RecentFires[1].JobID, 10)) {
		t.Errorf("show:\n%s", r.stdout)
	}

	r = ok(t, "cron", "pause", "every", s)
	if r.stdout != "paused schedule every\n" {
		t.Errorf("pause: %q", r.stdout)
	}
	r = ok(t, "cron", "trigger", "every", s)
	if !strings.HasPrefix(r.stdout, "enqueued job ") || !strings.Contains(r.stdout, "(ready) on ticks") {
		t.Errorf("trigger: %q", r.stdout)
	}
	var j spool.Job
	okJSON(t, &j, "cron", "trigger", "every", s)
	if j.Metadata["spool.trigger"] != "true" || j.Metadata["spool.schedule"] != "every" {
		t.Errorf("trigger --json: %+v", j)
	}
	r = ok(t, "cron", "resume", "every", s)
	if !strings.HasPrefix(r.stdout, "resumed schedule every; next fire: ") {
		t.Errorf("resume: %q", r.stdout)
	}
	ok(t, "cron", "set", "every", s, "--spec", "@every 1s", "--queue", "ticks", "--paused")
	okJSON(t, &sch, "cron", "show", "every", s)
	if !sch.Paused {
		t.Error("set --paused did not pause")
	}

	r = ok(t, "cron", "delete", "every", s)
	if r.stdout != "deleted schedule every\n" {
		t.Errorf("delete: %q", r.stdout)
	}
	for _, args := range [][]string{{"show", "every"}, {"delete", "every"}, {"pause", "every"}, {"trigger", "every"}} {
		r := spoolCmd(t, "", append([]string{"cron", s}, args...)...)
		if r.code != 1 || !strings.Contains(r.stderr, "schedule_not_found") {
			t.Errorf("cron %v of a deleted schedule: exit %d, %q", args, r.code, r.stderr)
		}
	}
	r = spoolCmd(t, "", "cron", "set", "bad", s, "--spec", "0 25 * * *", "--queue", "q")
	if r.code != 1 || !strings.Contains(r.stderr, "spec: ") || !strings.Contains(r.stderr, "invalid_argument") {
		t.Errorf("set with a bad spec: exit %d, %q", r.code, r.stderr)
	}

	// The client's errors match the sentinels.
	cl, err := spool.NewClient(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	_, err = cl.Schedule(t.Context(), "every")
	var ae *spool.APIError
	if !errors.Is(err, spool.ErrScheduleNotFound) || !errors.As(err, &ae) || ae.Status != 404 {
		t.Errorf("client: unknown schedule: %v", err)
	}
	_, err = cl.PutSchedule(t.Context(), "bad", spool.ScheduleDefinition{Spec: "@daily", Queue: "q", TimeZone: "Mars/Olympus"})
	if !errors.Is(err, spool.ErrInvalidArgument) || !errors.As(err, &ae) || ae.Field != "time_zone" {
		t.Errorf("client: bad time zone: %v", err)
	}
	if _, err := cl.Schedule(t.Context(), ""); !errors.Is(err, spool.ErrInvalidArgument) {
		t.Errorf("client: empty name: %v", err)
	}
	bin := []byte{0, 1, 2, 255}
	got, err := cl.PutSchedule(t.Context(), "bin", spool.ScheduleDefinition{Spec: "@daily", Queue: "q", Job: spool.ScheduleJob{Payload: bin}})
	if err != nil || string(got.Job.Payload) != string(bin) || got.Job.Priority == nil || *got.Job.Priority != 1024 {
		t.Errorf("client: binary payload: %+v %v", got, err)
	}
}
