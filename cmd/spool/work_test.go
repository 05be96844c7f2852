package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spoolq/spool"
	"github.com/spoolq/spool/internal/spooltest"

	"github.com/spoolq/spool/internal/testlog"
)

// workScript is the command 'spool work' runs in the tests; it acts by job type.
const workScript = `
case "$SPOOL_JOB_TYPE" in
json) cat ;;
text) printf 'id=%s type=%s queue=%s attempt=%s/%s prio=%s tenant=%s md=%s\n' \
        "$SPOOL_JOB_ID" "$SPOOL_JOB_TYPE" "$SPOOL_JOB_QUEUE" "$SPOOL_JOB_ATTEMPT" \
        "$SPOOL_JOB_MAX_ATTEMPTS" "$SPOOL_JOB_PRIORITY" "$SPOOL_JOB_META_TENANT" "$SPOOL_JOB_METADATA" ;;
fail) echo "some output"; echo "boom: bad input" >&2; exit 3 ;;
hang) echo "hanging" >&2; sleep 30 ;;
deadline) printf '%s' "$SPOOL_JOB_DEADLINE" ;;
slow) : > "$SPOOL_JOB_META_STARTED"; sleep 0.5; echo '{"slow":"done"}' ;;
*) exit 99 ;;
esac
`

// startWork runs 'spool work' in-process until the returned stop is called; stop
// returns its exit status and standard error.
func startWork(t *testing.T, args ...string) (stop func() (int, string)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr testlog.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"work"}, args...), strings.NewReader(""), &stdout, &stderr, func(string) string { return "" })
	}()
	stopped := false
	var code int
	stop = func() (int, string) {
		if !stopped {
			stopped = true
			cancel()
			select {
			case code = <-done:
			case <-time.After(30 * time.Second):
				t.Fatalf("spool work did not stop within 30s:\n%s", stderr.String())
			}
		}
		return code, stderr.String()
	}
	t.Cleanup(func() { stop() })
	return stop
}

func waitFinal(t *testing.T, cl *spool.Client, id uint64, want spool.State) *spool.Job {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		j, err := cl.Job(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if j.State == want {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %d (%s) is %s after 20s, want %s (last error %q)", id, j.Type, j.State, want, j.LastError)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestWork(t *testing.T) {
	srv := spooltest.Start(t, nil)
	cl, err := spool.NewClient(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	enq := func(queue, typ string, payload any, opts ...spool.EnqueueOption) uint64 {
		t.Helper()
		j, err := cl.Enqueue(ctx, queue, typ, payload, opts...)
		if err != nil {
			t.Fatal(err)
		}
		return j.ID
	}
	stop := startWork(t, "--server", srv.URL, "-q", "w1:3", "--queue", "w2", "--concurrency", "4",
		"--timeout", "1500ms", "--log-level", "debug", "--", "sh", "-c", workScript)

	// JSON on stdout is the result as it is.
	id := enq("w1", "json", map[string]any{"to": "a@example.com", "n": 1})
	if j := waitFinal(t, cl, id, spool.StateSucceeded); string(output(t, j)) != `{"n":1,"to":"a@example.com"}` {
		t.Errorf("json: result %s", j.Result)
	}

	// Other output is kept as a JSON string; the job is in the environment.
	id = enq("w2", "text", nil, spool.Priority(7), spool.MaxAttempts(4), spool.Metadata(map[string]string{"tenant": "acme"}))
	j := waitFinal(t, cl, id, spool.StateSucceeded)
	var text string
	if err := json.Unmarshal(output(t, j), &text); err != nil {
		t.Fatalf("text: result %s is not a JSON string", j.Result)
	}
	want := "id=" + strconvU(id) + ` type=text queue=w2 attempt=1/4 prio=7 tenant=acme md={"tenant":"acme"}`
	if text != want {
		t.Errorf("text: result\n%q, want\n%q", text, want)
	}

	// A job's own timeout is the command's deadline.
	before := time.Now()
	id = enq("w1", "deadline", nil, spool.Timeout(time.Hour))
	j = waitFinal(t, cl, id, spool.StateSucceeded)
	var dl string
	if err := json.Unmarshal(output(t, j), &dl); err != nil {
		t.Fatalf("deadline: result %s", j.Result)
	}
	if d, err := time.Parse(time.RFC3339Nano, dl); err != nil || d.Before(before.Add(59*time.Minute)) || d.After(time.Now().Add(time.Hour)) {
		t.Errorf("deadline: SPOOL_JOB_DEADLINE=%q, want about an hour from now", dl)
	}

	// A non-zero exit status fails the attempt with the end of stderr.
	id = enq("w1", "fail", nil, spool.MaxAttempts(1))
	j = waitFinal(t, cl, id, spool.StateBuried)
	if host, _ := os.Hostname(); !strings.Contains(j.LastError, "exit status 3 (host "+host+", after ") {
		t.Errorf("fail: last error %q, want the exit status, host and run time", j.LastError)
	}
	if !strings.Contains(j.LastError, "exit status 3") || !strings.Contains(j.LastError, "boom: bad input") ||
		strings.Contains(j.LastError, "some output") {
		t.Errorf("fail: last error %q", j.LastError)
	}

	// A command over --timeout is terminated and its attempt fails.
	started := time.Now()
	id = enq("w2", "hang", nil, spool.MaxAttempts(1))
	j = waitFinal(t, cl, id, spool.StateBuried)
	if took := time.Since(started); took > 10*time.Second {
		t.Errorf("hang: took %s to fail with a 1.5s timeout", took)
	}
	if !strings.HasPrefix(j.LastError, "job timed out after 1.5s") || !strings.Contains(j.LastError, "hanging") {
		t.Errorf("hang: last error %q", j.LastError)
	}

	// Shutdown lets a running command finish (drain), then exits 0. The command marks its
	// start: "reserved" alone does not mean the worker has the job yet (a reservation's
	// answer may still be on its way, and a shutdown abandons it: a known gap).
	mark := filepath.Join(t.TempDir(), "started")
	id = enq("w1", "slow", nil, spool.Metadata(map[string]string{"started": mark}))
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(mark); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the slow job's command did not start within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	code, stderr := stop()
	if code != 0 {
		t.Errorf("spool work exited %d after the interrupt:\n%s", code, stderr)
	}
	if j := waitFinal(t, cl, id, spool.StateSucceeded); string(output(t, j)) != `{"slow":"done"}` {
		t.Errorf("slow: result %s", j.Result)
	}
	for _, s := range []string{`msg="worker started"`, `msg="job succeeded"`, `msg="job buried"`, "type=fail"} {
		if !strings.Contains(stderr, s) {
			t.Errorf("log lacks %s:\n%s", s, stderr)
		}
	}
}

// A hard stop (drain timeout) terminates the command and releases its job at once.
func TestWorkShutdownReleases(t *testing.T) {
	srv := spooltest.Start(t, nil)
	cl, err := spool.NewClient(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	job, err := cl.Enqueue(context.Background(), "wr", "hang", nil, spool.Lease(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	stop := startWork(t, "--server", srv.URL, "-q", "wr", "--shutdown-timeout", "200ms", "--", "sh", "-c", workScript)
	waitFinal(t, cl, job.ID, spool.StateReserved)
	time.Sleep(100 * time.Millisecond) // the command is running
	start := time.Now()
	code, stderr := stop()
	if code != 0 {
		t.Errorf("exit %d:\n%s", code, stderr)
	}
	// Logged as released, not as failed.
	if !strings.Contains(stderr, `msg="job released"`) || strings.Contains(stderr, `msg="job failed"`) {
		t.Errorf("log:\n%s", stderr)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("stopping took %s", took)
	}
	j := waitFinal(t, cl, job.ID, spool.StateReady) // at once, not after the one-minute lease
	if j.Releases != 1 {
		t.Errorf("releases %d, want 1", j.Releases)
	}
}

func TestWorkUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"work", "--", "true"},              // no queue
		{"work", "-q", "a:0", "--", "true"}, // bad weight
		{"work", "-q", "a:x", "--", "true"}, // bad weight
		{"work", "-q", "a"},                 // no command
		{"work", "-q", "a", "--concurrency", "0", "true"},
		{"work", "-q", "a", "--", "/no/such/command"},
	} {
		r := spoolCmd(t, "", args...)
		if r.code != 2 {
			t.Errorf("spool %s: exit %d, want 2 (stderr %q)", strings.Join(args, " "), r.code, r.stderr)
		}
	}
}

func TestParseWorkQueues(t *testing.T) {
	qs, ws, err := parseWorkQueues([]string{"a:3", "b", "c:1,d:2"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(qs, " ") != "a b c d" || ws["a"] != 3 || ws["b"] != 0 || ws["c"] != 1 || ws["d"] != 2 {
		t.Errorf("queues %v, weights %v", qs, ws)
	}
}

func TestCommandResult(t *testing.T) {
	for _, c := range []struct{ out, want string }{
		{"", ""},
		{"  \n", ""},
		{`{"a": 1}` + "\n", `{"a": 1}`},
		{"42\n", "42"},
		{"hello\n", `"hello"`},
		{"a\"b\n", `"a\"b"`},
	} {
		if got := string(commandResult([]byte(c.out))); got != c.want {
			t.Errorf("commandResult(%q) = %s, want %s", c.out, got, c.want)
		}
	}
	// Output that escapes to more than the limit is cut to fit.
	long := strings.Repeat("\x01", workStdoutTail)
	if got := commandResult([]byte(long)); len(got) > workStdoutTail || !json.Valid(got) {
		t.Errorf("escaped output: %d bytes, valid %v", len(got), json.Valid(got))
	}
	var tb tailBuffer
	tb.max = 4
	tb.Write([]byte("ab"))
	tb.Write([]byte("cdef"))
	if string(tb.Bytes()) != "cdef" || !tb.cut {
		t.Errorf("tail %q", tb.Bytes())
	}
}

// The README's sample worker script works with spool work as its comments say.
func TestExampleWorkerScript(t *testing.T) {
	t.Parallel()
	script, err := filepath.Abs("../../examples/worker/resize.sh")
	if err != nil {
		t.Fatal(err)
	}
	srv := spooltest.Start(t, nil)
	cl, err := spool.NewClient(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	good, err := cl.Enqueue(ctx, "images", "resize", map[string]any{"url": "https://example.com/a.png", "width": 128})
	if err != nil {
		t.Fatal(err)
	}
	bad, err := cl.Enqueue(ctx, "images", "resize", map[string]any{"width": 128}, spool.MaxAttempts(1))
	if err != nil {
		t.Fatal(err)
	}
	stop := startWork(t, "--server", srv.URL, "-q", "images", "--", script)
	j := waitFinal(t, cl, good.ID, spool.StateSucceeded)
	if want := fmt.Sprintf(`{"resized":true,"job":"%d"}`, good.ID); string(output(t, j)) != want {
		t.Errorf("result %s, want %s", j.Result, want)
	}
	if j := waitFinal(t, cl, bad.ID, spool.StateBuried); !strings.Contains(j.LastError, "payload has no url") {
		t.Errorf("last error %q", j.LastError)
	}
	if code, stderr := stop(); code != 0 {
		t.Errorf("exit %d:\n%s", code, stderr)
	}
}

// output checks a 'spool work' result (exit code 0, a duration, this host) and returns its
// output.
func output(t *testing.T, j *spool.Job) json.RawMessage {
	t.Helper()
	var st struct {
		Output     json.RawMessage `json:"output"`
		ExitCode   *int            `json:"exit_code"`
		DurationMS *int64          `json:"duration_ms"`
		Host       string          `json:"host"`
	}
	if err := json.Unmarshal(j.Result, &st); err != nil {
		t.Fatalf("result %s: %v", j.Result, err)
	}
	host, _ := os.Hostname()
	if st.ExitCode == nil || *st.ExitCode != 0 || st.DurationMS == nil || *st.DurationMS < 0 || st.Host != host {
		t.Errorf("result %s: want exit_code 0, duration_ms and host %q", j.Result, host)
	}
	return st.Output
}
