package schedule

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/spoolq/spool/engine"
)

func TestParseFile(t *testing.T) {
	defs, err := parseFile([]byte(`
schedules:
  - name: a
    spec: "0 2 * * *"
    time_zone: Europe/Paris
    queue: reports
    catch_up: skip
    start_at: 2027-01-01T00:00:00Z
    paused: true
    job:
      type: report.build
      payload: {kind: daily, n: 2, tags: [x, y]}
      priority: 0
      lease: 5m
      max_attempts: 3
      unique_key: k
      metadata: {team: bi}
  - name: b
    spec: "@every 30s"
    queue: ops
    job: {payload_base64: AAEC}
`))
	if err != nil {
		t.Fatal(err)
	}
	a, b := defs[0], defs[1]
	if a.Name != "a" || a.TimeZone != "Europe/Paris" || a.CatchUp != CatchUpSkip || a.Paused == nil || !*a.Paused ||
		!a.StartAt.Equal(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)) || a.Job.Priority != 0 || a.Job.Lease != 5*time.Minute ||
		a.Job.MaxAttempts != 3 || a.Job.UniqueKey != "k" || a.Job.Metadata["team"] != "bi" ||
		string(a.Job.Payload) != `{"kind":"daily","n":2,"tags":["x","y"]}` {
		t.Errorf("a: %+v", a)
	}
	if b.Paused != nil || b.Job.Priority != DefaultPriority || string(b.Job.Payload) != "\x00\x01\x02" {
		t.Errorf("b: %+v", b)
	}
	// JSON is YAML.
	defs, err = parseFile([]byte(`{"schedules": [{"name": "j", "spec": "@daily", "queue": "q", "job": {"payload": "text"}}]}`))
	if err != nil || len(defs) != 1 || string(defs[0].Job.Payload) != `"text"` {
		t.Errorf("json file: %+v %v", defs, err)
	}
	if defs, err := parseFile(nil); err != nil || len(defs) != 0 {
		t.Errorf("empty file: %v %v", defs, err)
	}
}

func TestParseFileErrors(t *testing.T) {
	for _, c := range []struct{ content, field, want string }{
		{"schedules:\n  - name: x\n    job: {lease: soon}\n", "job.lease", "duration"},
		{"schedules:\n  - name: x\n    start_at: tomorrow\n", "start_at", "RFC 3339"},
		{"schedules:\n  - name: x\n    job: {payload_base64: '!!'}\n", "job.payload_base64", "base64"},
		{"schedules:\n  - name: x\n    job: {payload: 1, payload_base64: AA==}\n", "job.payload_base64", "exclusive"},
		{"schedules:\n  - name: x\n    job: {payload: {1: a}}\n", "job.payload", "JSON"},
	} {
		_, err := parseFile([]byte(c.content))
		var ve *engine.ValidationError
		if !errors.As(err, &ve) || ve.Field != c.field || !strings.Contains(ve.Reason, c.want) || !strings.Contains(err.Error(), "schedules[0] (x)") {
			t.Errorf("%q: got %v, want field %s with %q", c.content, err, c.field, c.want)
		}
	}
	// Decoding errors speak of the file, not of Go types.
	for bad, want := range map[string]string{
		"schedules:\n  - nme: x\n":                     `line 2: unknown field "nme" in a schedule`,
		"schedules:\n  - name: x\n    job: {tpe: a}\n": `line 3: unknown field "tpe" in a schedule's job`,
		"schedules: {a: 1}\n":                          "line 1: cannot unmarshal a map into a list of schedules",
		"- a\n":                                        `line 1: cannot unmarshal a list into the file (want a "schedules" list)`,
	} {
		_, err := parseFile([]byte(bad))
		if err == nil || err.Error() != want {
			t.Errorf("%q: error %v, want %q", bad, err, want)
		}
	}
}
