package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/spoolq/spool/internal/spooltest"
)

func TestFmtAge(t *testing.T) {
	t.Parallel()
	now := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	for d, want := range map[time.Duration]string{
		618*time.Hour + 20*time.Minute + 3*time.Second: "in 25d18h",
		48 * time.Hour: "in 2d",
		5*time.Hour + 20*time.Minute + 29*time.Second: "in 5h20m",
		time.Hour:                         "in 1h",
		-(12*time.Minute + 3*time.Second): "12m3s ago",
		-2500 * time.Millisecond:          "2.5s ago",
	} {
		if got := fmtAge(now.Add(d), now); got != want {
			t.Errorf("fmtAge(now%+v) = %q, want %q", d, got, want)
		}
	}
}

func TestServeHelpHasNoClientFlags(t *testing.T) {
	t.Parallel()
	r := ok(t, "serve", "--help")
	for _, flag := range []string{"--json", "--server", "--timeout"} {
		if strings.Contains(r.stdout, flag) {
			t.Errorf("serve --help lists %s:\n%s", flag, r.stdout)
		}
	}
	if !strings.Contains(r.stdout, "--data") {
		t.Errorf("serve --help:\n%s", r.stdout)
	}
	// The other commands still show them.
	if r := ok(t, "stats", "--help"); !strings.Contains(r.stdout, "--server") || !strings.Contains(r.stdout, "--json") {
		t.Errorf("stats --help:\n%s", r.stdout)
	}
}

// With --json an error is the API's error object on stderr; the exit status is unchanged.
func TestJSONErrors(t *testing.T) {
	t.Parallel()
	srv := spooltest.Start(t, nil)
	s := "--server=" + srv.URL
	for _, c := range []struct {
		args       []string
		code       int
		errCode    string
		inMessage  string
		errorField string
	}{
		{[]string{"job", "12345", s, "--json"}, 1, "job_not_found", "job 12345", ""},
		{[]string{"job", "x1", "--json"}, 2, "invalid_argument", `job id "x1"`, ""},
		{[]string{"enqueue", "bad q", s, "--json"}, 1, "invalid_argument", `enqueue to "bad q"`, "queue"},
		{[]string{"stats", "--server", "http://127.0.0.1:1", "--json", "--retry-for", "0"}, 1, "unavailable", "stats", ""},
		{[]string{"enqueue", "q", "--max-attempts", "0", "--json"}, 2, "invalid_argument", "--max-attempts 0: want 1 to 1000", ""},
	} {
		r := spoolCmd(t, "", c.args...)
		var e struct {
			Error struct{ Code, Message, Field string } `json:"error"`
		}
		if err := json.Unmarshal([]byte(r.stderr), &e); err != nil {
			t.Errorf("spool %s: stderr is not JSON (%v): %q", strings.Join(c.args, " "), err, r.stderr)
			continue
		}
		if r.code != c.code || e.Error.Code != c.errCode || !strings.Contains(e.Error.Message, c.inMessage) || e.Error.Field != c.errorField || r.stdout != "" {
			t.Errorf("spool %s: exit %d, stdout %q, error %+v; want exit %d, code %s, message with %q, field %q",
				strings.Join(c.args, " "), r.code, r.stdout, e.Error, c.code, c.errCode, c.inMessage, c.errorField)
		}
	}
	// Without --json, the same errors are text, names quoted.
	r := spoolCmd(t, "", "enqueue", "bad q", s)
	if r.code != 1 || !strings.HasPrefix(r.stderr, `error: spool: enqueue to "bad q": `) {
		t.Errorf("enqueue to a bad name: %+v", r)
	}
}

// 'spool work' refuses a queue name the server refuses, at once.
func TestWorkRefusesBadQueueAtOnce(t *testing.T) {
	t.Parallel()
	srv := spooltest.Start(t, nil)
	done := make(chan result, 1)
	go func() {
		done <- spoolCmd(t, "", "work", "--server", srv.URL, "-q", "good", "-q", "bad q", "--", "true")
	}()
	select {
	case r := <-done:
		if r.code != 2 || !strings.Contains(r.stderr, `--queue "bad q": `) {
			t.Errorf("work -q 'bad q': %+v", r)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("work -q 'bad q' is still running")
	}
}

func TestBuildInfoString(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		b    buildInfo
		want string
	}{
		{buildInfo{Version: "dev", Go: "go1.26.8"}, "dev (go1.26.8)"},
		{buildInfo{Version: "v1.2.0", Revision: "81e8027e1a2b3c4d5e6f", Time: "2026-12-06T08:00:00Z", Go: "go1.26.8"},
			"v1.2.0 (rev 81e8027e1a2b, 2026-12-06T08:00:00Z, go1.26.8)"},
		{buildInfo{Version: "dev", Revision: "81e8027e1a2b3c4d5e6f", Modified: true, Go: "go1.26.8"},
			"dev (rev 81e8027e1a2b+modified, go1.26.8)"},
	} {
		if got := c.b.String(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.b, got, c.want)
		}
	}
}
