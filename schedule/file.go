package schedule

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// fileSchedule is one schedule of a schedules file.
type fileSchedule struct {
	Name     string  `yaml:"name"`
	Spec     string  `yaml:"spec"`
	TimeZone string  `yaml:"time_zone"`
	Queue    string  `yaml:"queue"`
	CatchUp  string  `yaml:"catch_up"`
	StartAt  string  `yaml:"start_at"`
	EndAt    string  `yaml:"end_at"`
	Paused   *bool   `yaml:"paused"`
	Job      fileJob `yaml:"job"`
}

type fileJob struct {
	Type          string            `yaml:"type"`
	Payload       any               `yaml:"payload"`
	PayloadBase64 string            `yaml:"payload_base64"`
	Priority      *uint32           `yaml:"priority"`
	Lease         string            `yaml:"lease"`
	MaxAttempts   int               `yaml:"max_attempts"`
	UniqueKey     string            `yaml:"unique_key"`
	Metadata      map[string]string `yaml:"metadata"`
}

// LoadFile reads a schedules file: YAML (JSON, being YAML, too) of the form
//
//	schedules:
//	  - name: nightly-report
//	    spec: "0 2 * * *"
//	    time_zone: Europe/Paris
//	    queue: reports
//	    catch_up: once            # or skip
//	    job:
//	      type: report.build
//	      payload: {kind: daily}  # any value, sent as JSON; or payload_base64
//	      priority: 10
//	      lease: 5m
//
// The fields are those of the HTTP API's PUT /v1/schedules/{name}, plus name. Unknown
// fields are errors. The definitions are not validated here: Service.Apply does it.
func LoadFile(path string) ([]Definition, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("schedules file: %w", err)
	}
	defs, err := parseFile(data)
	if err != nil {
		return nil, fmt.Errorf("schedules file %s: %w", path, err)
	}
	return defs, nil
}

func parseFile(data []byte) ([]Definition, error) {
	var f struct {
		Schedules []fileSchedule `yaml:"schedules"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fileError(err)
	}
	defs := make([]Definition, len(f.Schedules))
	for i, fs := range f.Schedules {
		d, err := fs.definition()
		if err != nil {
			return nil, fmt.Errorf("schedules[%d] (%s): %w", i, fs.Name, err)
		}
		defs[i] = d
	}
	return defs, nil
}

// fileTypes names the file's Go types as a user knows them, in yaml's messages.
var fileTypes = strings.NewReplacer(
	"[]schedule.fileSchedule", "a list of schedules",
	"schedule.fileSchedule", "a schedule",
	"schedule.fileJob", "a schedule's job",
	"!!map", "a map", "!!seq", "a list", "!!str", "the string", "!!int", "the number", "!!bool", "the boolean",
	"struct { Schedules []schedule.fileSchedule \"yaml:\\\"schedules\\\"\" }", "the file (want a \"schedules\" list)",
)

var unknownField = regexp.MustCompile(`field (\S+) not found in type`)

// fileError rewrites yaml's decoding errors, which name Go types ("field queu not found in
// type schedule.fileSchedule"), in the file's own terms (`unknown field "queu" in a
// schedule`), joined on one line.
func fileError(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	msgs := make([]string, len(te.Errors))
	for i, m := range te.Errors {
		m = unknownField.ReplaceAllString(m, `unknown field "$1" in`)
		msgs[i] = fileTypes.Replace(strings.Replace(m, " in type ", " in ", 1))
	}
	return errors.New(strings.Join(msgs, "; "))
}

func (fs *fileSchedule) definition() (Definition, error) {
	d := Definition{
		Name: fs.Name, Spec: fs.Spec, TimeZone: fs.TimeZone, Queue: fs.Queue, CatchUp: CatchUp(fs.CatchUp),
		Paused: fs.Paused,
		Job: JobTemplate{
			Type: fs.Job.Type, Priority: DefaultPriority, MaxAttempts: fs.Job.MaxAttempts,
			UniqueKey: fs.Job.UniqueKey, Metadata: fs.Job.Metadata,
		},
	}
	var err error
	if d.StartAt, err = fileTime("start_at", fs.StartAt); err != nil {
		return d, err
	}
	if d.EndAt, err = fileTime("end_at", fs.EndAt); err != nil {
		return d, err
	}
	if fs.Job.Priority != nil {
		d.Job.Priority = *fs.Job.Priority
	}
	if fs.Job.Lease != "" {
		if d.Job.Lease, err = time.ParseDuration(fs.Job.Lease); err != nil {
			return d, invalid("job.lease", "%q: want a duration such as 30s or 5m", fs.Job.Lease)
		}
	}
	switch {
	case fs.Job.Payload != nil && fs.Job.PayloadBase64 != "":
		return d, invalid("job.payload_base64", "payload and payload_base64 are exclusive")
	case fs.Job.PayloadBase64 != "":
		if d.Job.Payload, err = base64.StdEncoding.DecodeString(fs.Job.PayloadBase64); err != nil {
			return d, invalid("job.payload_base64", "not valid standard base64")
		}
	case fs.Job.Payload != nil:
		if d.Job.Payload, err = json.Marshal(fs.Job.Payload); err != nil {
			return d, invalid("job.payload", "cannot be written as JSON: %v", err)
		}
	}
	return d, nil
}

func fileTime(field, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, invalid(field, "%q: want an RFC 3339 time such as 2027-01-01T09:00:00Z", s)
	}
	return t, nil
}
