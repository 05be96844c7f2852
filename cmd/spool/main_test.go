package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spoolq/spool"
	"github.com/spoolq/spool/internal/spooltest"

	"github.com/spoolq/spool/internal/testlog"
)

// result is the outcome of one run of the program.
type result struct {
	stdout, stderr string
	code           int
}

// spoolCmd runs the program in-process with the given standard input and arguments.
func spoolCmd(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	env := func(string) string { return "" }
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errOut, env)
	return result{out.String(), errOut.String(), code}
}

// ok runs the program and fails the test unless it exits 0.
func ok(t *testing.T, args ...string) result {
	t.Helper()
	r := spoolCmd(t, "", args...)
	if r.code != 0 {
		t.Fatalf("spool %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// okJSON runs the program with --json and decodes its output into v.
func okJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	r := ok(t, append(args, "--json")...)
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		t.Fatalf("spool %s --json: output is not JSON: %v\n%s", strings.Join(args, " "), err, r.stdout)
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	cases := [][]string{
		{"bogus"},
		{"job"},
		{"job", "x1"},
		{"job", "1", "2"},
		{"enqueue"},
		{"enqueue", "q", "--payload", "{"},
		{"enqueue", "q", "--payload", "1", "--payload-file", "f"},
		{"enqueue", "q", "--delay", "1m", "--run-at", "2027-01-01T00:00:00Z"},
		{"enqueue", "q", "--run-at", "tomorrow"},
		{"enqueue", "q", "--meta", "novalue"},
		{"enqueue", "q", "--count", "0"},
		{"enqueue", "q", "--nope"},
		{"enqueue", "q", "--priority", "-1"},
		{"peek", "q", "--state", "reserved"},
		{"peek", "q", "--limit", "0"},
		{"kick"},
		{"kick", "q", "--max", "1", "--all"},
		{"kick", "q", "--job", "1"},
		{"purge", "q", "--state", "succeeded"},
		{"queues", "extra"},
		{"serve", "--log-format", "xml"},
		{"serve", "--log-level", "loud"},
		{"serve", "--fsync", "sometimes"},
		{"serve", "--retention", "500ms"},
		{"serve", "--retention", "1500ms"},
		{"stats", "--server", "ftp://x"},
		{"enqueue", "q", "--max-attempts", "0"},
		{"enqueue", "q", "--max-attempts", "1001"},
		{"queue", "set", "q", "--max-attempts", "0"},
		{"queue", "set", "q", "--replicas", "2"},
		{"queue", "set", "q", "--retention", "1.5s"},
		{"queue", "set", "q", "--retention", "-1s"},
		{"serve", "--json"},
		{"serve", "--server", "http://127.0.0.1:1"},
		{"serve", "--timeout", "1s"},
		{"serve", "--raft-timing", "nats"},
		{"serve", "--cluster-name", "c", "--peers", "127.0.0.1:1", "--raft-timing", "slow"},
	}
	for _, args := range cases {
		r := spoolCmd(t, "", args...)
		if r.code != 2 {
			t.Errorf("spool %s: exit %d, want 2 (stderr %q)", strings.Join(args, " "), r.code, r.stderr)
		}
		if !strings.HasPrefix(r.stderr, "error: ") || !strings.Contains(r.stderr, "usage: ") {
			t.Errorf("spool %s: stderr %q lacks the error and usage lines", strings.Join(args, " "), r.stderr)
		}
	}
}

func TestHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{}, {"--help"}, {"help", "enqueue"}, {"enqueue", "--help"}} {
		r := spoolCmd(t, "", args...)
		if r.code != 0 || !strings.Contains(r.stdout, "Usage:") {
			t.Errorf("spool %s: exit %d, stdout %q", strings.Join(args, " "), r.code, r.stdout)
		}
	}
	r := ok(t, "version")
	if !strings.HasPrefix(r.stdout, "spool ") {
		t.Errorf("version: %q", r.stdout)
	}
	var v map[string]any
	okJSON(t, &v, "version")
	if v["version"] == "" || !strings.HasPrefix(fmt.Sprint(v["go"]), "go") {
		t.Errorf("version --json: %v", v)
	}
	if r2 := ok(t, "--version"); r2.stdout != r.stdout {
		t.Errorf("--version %q, version %q", r2.stdout, r.stdout)
	}
}

func TestServerUnreachableExits1(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	r := spoolCmd(t, "", "stats", "--server", "http://"+addr, "--retry-for", "0")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "error: spool: stats: ") {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestServerFromEnvironment(t *testing.T) {
	var out, errOut bytes.Buffer
	env := func(k string) string {
		if k == "SPOOL_SERVER" {
			return "http://127.0.0.1:1"
		}
		return ""
	}
	code := run(context.Background(), []string{"stats", "--retry-for", "0"}, strings.NewReader(""), &out, &errOut, env)
	if code != 1 || !strings.Contains(errOut.String(), "127.0.0.1:1") {
		t.Errorf("exit %d, stderr %q: $SPOOL_SERVER not used", code, errOut.String())
	}
}

// TestCommandsAgainstServer drives every client command against a real server.
func TestCommandsAgainstServer(t *testing.T) {
	srv := spooltest.Start(t, nil)
	s := "--server=" + srv.URL

	// enqueue: human and JSON output, payload, options.
	r := ok(t, "enqueue", "email", s, "--type", "email.send", "--payload", `{"to":"a@example.com"}`,
		"--priority", "7", "--meta", "tenant=acme", "--meta", "plan=pro", "--max-attempts", "3", "--lease", "45s")
	m := regexp.MustCompile(`^enqueued job (\d+) \(ready\)\n$`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("enqueue output %q", r.stdout)
	}
	first := m[1]

	var job map[string]any
	okJSON(t, &job, "job", first, s)
	if job["id"] != first || job["state"] != "ready" || job["type"] != "email.send" || job["priority"] != 7.0 ||
		job["max_attempts"] != 3.0 || job["lease"] != "45s" {
		t.Errorf("job --json = %v", job)
	}
	if p, _ := job["payload"].(map[string]any); p["to"] != "a@example.com" {
		t.Errorf("payload = %v", job["payload"])
	}
	if md, _ := job["metadata"].(map[string]any); md["tenant"] != "acme" || md["plan"] != "pro" {
		t.Errorf("metadata = %v", job["metadata"])
	}
	r = ok(t, "job", first, s)
	for _, want := range []string{"state:", "ready", "email.send", "tenant=acme", `{"to":"a@example.com"}`} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("job output lacks %q:\n%s", want, r.stdout)
		}
	}

	// Payload from standard input; a binary payload file.
	r = spoolCmd(t, `{"n": 1}`, "enqueue", "email", s, "--type", "t", "--payload", "-", "--json")
	if r.code != 0 {
		t.Fatalf("enqueue --payload -: %+v", r)
	}
	var stdinJob spool.Job
	if err := json.Unmarshal([]byte(r.stdout), &stdinJob); err != nil {
		t.Fatal(err)
	}
	var p struct{ N int }
	if err := stdinJob.DecodePayload(&p); err != nil || p.N != 1 {
		t.Errorf("payload from stdin = %s (%v)", stdinJob.Payload, err)
	}
	bin := []byte{0xff, 0xfe, 0, 1}
	r = spoolCmd(t, string(bin), "enqueue", "bin", s, "--payload-file", "-", "--json")
	var binJob spool.Job
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &binJob) != nil {
		t.Fatalf("enqueue binary: %+v", r)
	}
	cl, err := spool.NewClient(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if got, err := cl.Job(ctx, binJob.ID); err != nil || !bytes.Equal(got.Payload, bin) {
		t.Errorf("binary payload stored as %q (%v)", got.Payload, err)
	}

	// Unique key: the second enqueue is a duplicate of the first.
	ok(t, "enqueue", "uniq", s, "--unique-key", "k1")
	r = ok(t, "enqueue", "uniq", s, "--unique-key", "k1")
	if !strings.HasPrefix(r.stdout, "duplicate of job ") {
		t.Errorf("duplicate enqueue output %q", r.stdout)
	}

	// Delayed jobs and peek.
	var delayed spool.Job
	okJSON(t, &delayed, "enqueue", "email", s, "--type", "later", "--delay", "1h")
	if delayed.State != spool.StateDelayed {
		t.Errorf("delayed job state %s", delayed.State)
	}
	var page struct {
		Jobs []spool.Job `json:"jobs"`
	}
	okJSON(t, &page, "peek", "email", s, "--state", "delayed")
	if len(page.Jobs) != 1 || page.Jobs[0].ID != delayed.ID {
		t.Errorf("peek delayed = %+v", page.Jobs)
	}
	r = ok(t, "peek", "email", s)
	if !strings.Contains(r.stdout, "ID") || !strings.Contains(r.stdout, first) || strings.Contains(r.stdout, "later") {
		t.Errorf("peek ready:\n%s", r.stdout)
	}
	r = ok(t, "peek", "email", s, "--limit", "1")
	if !strings.Contains(r.stderr, "--cursor") {
		t.Errorf("peek --limit 1 over 2 ready jobs gives no cursor hint: stderr %q", r.stderr)
	}

	// kick --job makes the delayed job ready.
	r = ok(t, "kick", "--job", strconvU(delayed.ID), s)
	if !strings.Contains(r.stdout, "(ready)") {
		t.Errorf("kick --job: %q", r.stdout)
	}

	// Queues, queue, queue set.
	var qs struct {
		Queues []spool.Queue `json:"queues"`
	}
	okJSON(t, &qs, "queues", s)
	names := map[string]bool{}
	for _, q := range qs.Queues {
		names[q.Name] = true
	}
	if !names["email"] || !names["bin"] || !names["uniq"] {
		t.Errorf("queues = %v", names)
	}
	r = ok(t, "queues", s)
	if !strings.Contains(r.stdout, "QUEUE") || !strings.Contains(r.stdout, "email") {
		t.Errorf("queues table:\n%s", r.stdout)
	}
	var q spool.Queue
	okJSON(t, &q, "queue", "set", "email", s, "--lease", "2m", "--max-attempts", "4", "--backoff-base", "2s", "--backoff-max", "10m", "--replicas", "1")
	if q.Lease != 2*time.Minute || q.MaxAttempts != 4 || q.BackoffBase != 2*time.Second || q.BackoffMax != 10*time.Minute || q.Replicas != 1 {
		t.Errorf("queue set = %+v", q)
	}
	r = ok(t, "queue", "email", s)
	if !strings.Contains(r.stdout, "max attempts:") || !strings.Contains(r.stdout, "2m") || !strings.Contains(r.stdout, "replicas:") {
		t.Errorf("queue email:\n%s", r.stdout)
	}
	// Retention: shown as "none" at 0, sent only when given.
	if r := ok(t, "queue", "email", s); !regexp.MustCompile(`(?m)^retention: +1h$`).MatchString(r.stdout) ||
		!regexp.MustCompile(`(?m)^events: +on$`).MatchString(r.stdout) {
		t.Errorf("queue email, the server's retention and events on:\n%s", r.stdout)
	}
	okJSON(t, &q, "queue", "set", "email", s, "--retention", "0")
	if q.Retention != 0 || q.Lease != 2*time.Minute {
		t.Errorf("queue set --retention 0 = %+v", q)
	}
	if r := ok(t, "queue", "set", "email", s, "--lease", "3m"); !regexp.MustCompile(`(?m)^retention: +none$`).MatchString(r.stdout) {
		t.Errorf("queue set without --retention changed it:\n%s", r.stdout)
	}
	okJSON(t, &q, "queue", "set", "email", s, "--retention", "36h")
	if q.Retention != 36*time.Hour || q.Lease != 3*time.Minute {
		t.Errorf("queue set --retention 36h = %+v", q)
	}
	if r := spoolCmd(t, "", "queue", "set", "email", "--retention", "2161h", s); r.code != 1 || !strings.Contains(r.stderr, "retention") {
		t.Errorf("queue set --retention over 90 days: %+v", r)
	}
	// A server alone keeps one copy: a new queue of 3 is refused, and not made.
	if r := spoolCmd(t, "", "queue", "set", "triple", "--replicas", "3", s); r.code != 1 || !strings.Contains(r.stderr, "replicas_unavailable") {
		t.Errorf("queue set --replicas 3 on a server alone: %+v", r)
	}
	if r := spoolCmd(t, "", "queue", "triple", s); r.code != 1 || !strings.Contains(r.stderr, "queue not found") {
		t.Errorf("queue refused for its replicas: %+v", r)
	}
	if r := spoolCmd(t, "", "queue", "nosuchqueue", s); r.code != 1 || !strings.Contains(r.stderr, "queue not found") {
		t.Errorf("unknown queue: %+v", r)
	}

	// Pause and resume.
	okJSON(t, &q, "pause", "email", s, "--for", "10m")
	if !q.Paused || q.PausedUntil.IsZero() {
		t.Errorf("pause --for: %+v", q)
	}
	if res, err := cl.Reserve(ctx, spool.ReserveOptions{Queues: []string{"email"}}); err != nil || len(res.Jobs) != 0 {
		t.Errorf("reserve from a paused queue: %v jobs, %v", res, err)
	}
	r = ok(t, "resume", "email", s)
	if r.stdout != "resumed email\n" {
		t.Errorf("resume: %q", r.stdout)
	}

	// Bury a job through the client, then kick the queue.
	res, err := cl.Reserve(ctx, spool.ReserveOptions{Queues: []string{"email"}})
	if err != nil || len(res.Jobs) != 1 {
		t.Fatalf("reserve: %+v, %v", res, err)
	}
	if _, err := cl.Bury(ctx, res.Jobs[0].ID, res.Jobs[0].LeaseToken, "test"); err != nil {
		t.Fatal(err)
	}
	okJSON(t, &page, "peek", "email", s, "--state", "buried")
	if len(page.Jobs) != 1 || page.Jobs[0].ID != res.Jobs[0].ID {
		t.Errorf("peek buried = %+v", page.Jobs)
	}
	r = ok(t, "kick", "email", s, "--max", "5")
	if r.stdout != "kicked 1 job in email\n" {
		t.Errorf("kick queue: %q", r.stdout)
	}

	// Delete: one job, then an unknown one among others.
	ok(t, "delete", first, s)
	okJSON(t, &job, "job", first, s)
	if job["state"] != "cancelled" {
		t.Errorf("deleted job state %v", job["state"])
	}
	r = spoolCmd(t, "", "delete", strconvU(stdinJob.ID), "12345", s)
	if r.code != 1 || !strings.Contains(r.stderr, "job not found") || !strings.Contains(r.stdout, "cancelled job "+strconvU(stdinJob.ID)) {
		t.Errorf("delete with an unknown id: %+v", r)
	}
	// The progress counts what was cancelled, not what was tried.
	if !strings.Contains(r.stderr, "cancelled 1/2, 1 failed\n") || strings.Contains(r.stderr, "cancelled 2/2") ||
		!strings.Contains(r.stderr, "error: 1 of 2 jobs were not cancelled") {
		t.Errorf("delete progress: %q", r.stderr)
	}
	if r := spoolCmd(t, "", "job", "12345", s); r.code != 1 || r.stderr != "error: spool: job 12345: job not found (job_not_found)\n" {
		t.Errorf("job 12345: %+v", r)
	}

	// Bulk enqueue with progress, then purge.
	var bulk struct {
		Enqueued int      `json:"enqueued"`
		IDs      []string `json:"ids"`
	}
	r = ok(t, "enqueue", "bulk", s, "--count", "2500", "--payload", `{"i":1}`, "--json")
	if err := json.Unmarshal([]byte(r.stdout), &bulk); err != nil {
		t.Fatal(err)
	}
	distinct := map[string]bool{}
	for _, id := range bulk.IDs {
		distinct[id] = true
	}
	if bulk.Enqueued != 2500 || len(distinct) != 2500 {
		t.Errorf("bulk enqueue: %d enqueued, %d distinct ids", bulk.Enqueued, len(distinct))
	}
	if !strings.Contains(r.stderr, "enqueued 2500/2500") {
		t.Errorf("bulk enqueue progress: %q", r.stderr)
	}
	r = spoolCmd(t, "n\n", "purge", "bulk", s)
	if r.code != 1 || !strings.Contains(r.stderr, "[y/N]") {
		t.Errorf("purge not confirmed: %+v", r)
	}
	r = spoolCmd(t, "y\n", "purge", "bulk", "--state", "ready", s)
	if r.code != 0 || r.stdout != "purged 2500 jobs from bulk\n" {
		t.Errorf("purge confirmed: %+v", r)
	}

	// Queue delete.
	ok(t, "queue", "delete", "uniq", "--yes", s)
	if _, err := cl.Queue(ctx, "uniq"); err == nil {
		t.Error("queue uniq still exists after delete")
	}

	// Stats.
	// Totals are flushed every second: poll.
	var st spool.ServerStats
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		okJSON(t, &st, "stats", s)
		if st.Totals.Enqueued >= 2500 || time.Now().After(deadline) {
			break
		}
	}
	if st.Version != "test" || st.Queues < 2 || st.Totals.Enqueued < 2500 {
		t.Errorf("stats = %+v", st)
	}
	r = ok(t, "stats", s)
	if !strings.Contains(r.stdout, "version:") || !strings.Contains(r.stdout, "test") {
		t.Errorf("stats:\n%s", r.stdout)
	}

	// Cluster: a single node leads itself; every queue's stream is listed.
	var ci spool.ClusterInfo
	okJSON(t, &ci, "cluster", "email", s)
	if ci.Name != "" || ci.MetaLeader == "" || !slices.ContainsFunc(ci.Streams, func(st spool.ClusterStream) bool {
		return st.Name == ci.QueueStreams["email"] && st.Replicas == 1 && st.Leader == ci.MetaLeader
	}) {
		t.Errorf("cluster = %+v", ci)
	}
	if r = ok(t, "cluster", s); !strings.Contains(r.stdout, "single node") || !strings.Contains(r.stdout, "SPOOL_JOBS") {
		t.Errorf("cluster:\n%s", r.stdout)
	}
	// A named queue's row: its stream, replicas and leader.
	if r = ok(t, "cluster", "email", s); !regexp.MustCompile(`(?m)^email +SPOOL_QS\d +1 +\S+$`).MatchString(r.stdout) {
		t.Errorf("cluster email:\n%s", r.stdout)
	}
}

func TestFailoverToSecondServer(t *testing.T) {
	srv := spooltest.Start(t, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	r := ok(t, "enqueue", "fo", "--server", dead+","+srv.URL)
	if !strings.HasPrefix(r.stdout, "enqueued job ") {
		t.Errorf("enqueue with failover: %q", r.stdout)
	}
}

// TestServe runs 'spool serve', uses it, and stops it as a signal would.
func TestServe(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String() // free a moment ago: the server listens on it next
	l.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr testlog.Buffer
	done := make(chan int, 1)
	args := []string{"serve", "--data", t.TempDir(), "--http", addr, "--log-format", "json", "--retention", "1h"}
	go func() {
		done <- run(ctx, args, strings.NewReader(""), &stdout, &stderr, func(string) string { return "" })
	}()

	cl, err := spool.NewClient(addr)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(60 * time.Second); ; {
		if _, err := cl.Stats(ctx); err == nil {
			break
		}
		select {
		case code := <-done:
			t.Fatalf("serve exited %d before it was ready:\n%s", code, stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve not ready after 60s:\n%s", stderr.String())
		}
	}
	r := ok(t, "enqueue", "served", "--server", "http://"+addr, "--type", "x")
	if !strings.HasPrefix(r.stdout, "enqueued job ") {
		t.Errorf("enqueue to spool serve: %q", r.stdout)
	}
	if !strings.Contains(stderr.String(), `"level":"INFO"`) {
		t.Errorf("serve --log-format json did not log JSON:\n%s", stderr.String())
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("serve exited %d after the interrupt:\n%s", code, stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("serve did not stop within 60s of the interrupt")
	}
}

func strconvU(id uint64) string { return strconv.FormatUint(id, 10) }
