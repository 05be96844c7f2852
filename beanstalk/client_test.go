package beanstalk_test

// End-to-end tests with the reference Go client, github.com/beanstalkd/go-beanstalk,
// against a real engine and the front on a loopback port.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	gobeanstalk "github.com/beanstalkd/go-beanstalk"

	spool "github.com/spoolq/spool/beanstalk"
	"github.com/spoolq/spool/engine"
	"github.com/spoolq/spool/internal/spooltest"
	"github.com/spoolq/spool/server"
)

func dialClient(t *testing.T, addr string) *gobeanstalk.Conn {
	t.Helper()
	c, err := gobeanstalk.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func isErr(err, want error) bool {
	var ce gobeanstalk.ConnError
	return errors.As(err, &ce) && ce.Err == want
}

func TestGoClientLifecycle(t *testing.T) {
	t.Parallel()
	e := start(t, spool.Options{})
	c := dialClient(t, e.addr)
	emails := gobeanstalk.NewTube(c, "emails")
	id, err := emails.Put([]byte("to: a@b"), 10, 0, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// peek, stats-job
	body, err := c.Peek(id)
	if err != nil || string(body) != "to: a@b" {
		t.Fatalf("peek: %q, %v", body, err)
	}
	pid, pbody, err := emails.PeekReady()
	if err != nil || pid != id || string(pbody) != "to: a@b" {
		t.Fatalf("peek-ready: %d %q %v", pid, pbody, err)
	}
	st, err := c.StatsJob(id)
	if err != nil || st["tube"] != "emails" || st["state"] != "ready" || st["pri"] != "10" || st["ttr"] != "30" {
		t.Fatalf("stats-job: %v, %v", st, err)
	}

	// reserve from a tube set, release, reserve again, touch, bury, kick, delete
	ts := gobeanstalk.NewTubeSet(c, "emails", "other")
	rid, rbody, err := ts.Reserve(5 * time.Second)
	if err != nil || rid != id || string(rbody) != "to: a@b" {
		t.Fatalf("reserve: %d %q %v", rid, rbody, err)
	}
	if err := c.Release(id, 3, 0); err != nil {
		t.Fatal(err)
	}
	if rid, _, err = ts.Reserve(5 * time.Second); err != nil || rid != id {
		t.Fatalf("reserve after release: %d %v", rid, err)
	}
	if err := c.Touch(id); err != nil {
		t.Fatal(err)
	}
	if err := c.Bury(id, 4); err != nil {
		t.Fatal(err)
	}
	bid, _, err := emails.PeekBuried()
	if err != nil || bid != id {
		t.Fatalf("peek-buried: %d %v", bid, err)
	}
	if n, err := emails.Kick(10); err != nil || n != 1 {
		t.Fatalf("kick: %d %v", n, err)
	}
	st, _ = c.StatsJob(id)
	if st["state"] != "ready" || st["pri"] != "4" || st["releases"] != "1" || st["buries"] != "1" || st["kicks"] != "1" {
		t.Fatalf("stats-job: %v", st)
	}
	if err := c.Delete(id); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(id); !isErr(err, gobeanstalk.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if _, _, err := ts.Reserve(0); !isErr(err, gobeanstalk.ErrTimeout) {
		t.Fatalf("reserve of nothing: %v", err)
	}

	// delayed job, kick-job, reserve-job
	did, err := emails.Put([]byte("later"), 0, time.Hour, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if pid, _, err := emails.PeekDelayed(); err != nil || pid != did {
		t.Fatalf("peek-delayed: %d %v", pid, err)
	}
	if err := c.KickJob(did); err != nil {
		t.Fatal(err)
	}
	if body, err := c.ReserveJob(did); err != nil || string(body) != "later" {
		t.Fatalf("reserve-job: %q %v", body, err)
	}
	if err := c.Delete(did); err != nil {
		t.Fatal(err)
	}

	// tube lists and stats
	tubes, err := c.ListTubes()
	if err != nil || !slices.Contains(tubes, "emails") || !slices.Contains(tubes, "default") {
		t.Fatalf("list-tubes: %v %v", tubes, err)
	}
	if err := emails.Pause(time.Hour); err != nil {
		t.Fatal(err)
	}
	spooltest.Eventually(t, 5*time.Second, func() error {
		ts, err := emails.Stats()
		if err != nil {
			return err
		}
		if ts["name"] != "emails" || ts["pause"] != "3600" || ts["total-jobs"] != "2" || ts["cmd-delete"] != "2" || ts["current-jobs-ready"] != "0" {
			return fmt.Errorf("stats-tube: %v", ts)
		}
		return nil
	})
	s, err := c.Stats()
	if err != nil || s["cmd-put"] != "2" || s["cmd-delete"] != "3" || s["current-connections"] != "1" {
		t.Fatalf("stats: %v %v", s, err)
	}
}

func TestGoClientErrors(t *testing.T) {
	t.Parallel()
	e := start(t, spool.Options{MaxJobSize: 100})
	c := dialClient(t, e.addr)
	if _, err := c.Put(make([]byte, 101), 0, 0, time.Second); !isErr(err, gobeanstalk.ErrJobTooBig) {
		t.Fatalf("put too big: %v", err)
	}
	if _, err := c.Put(make([]byte, 100), 0, 0, time.Second); err != nil {
		t.Fatalf("put of the maximum size: %v", err)
	}
	if err := c.Touch(12345); !isErr(err, gobeanstalk.ErrNotFound) {
		t.Fatalf("touch: %v", err)
	}
	if _, err := c.Peek(12345); !isErr(err, gobeanstalk.ErrNotFound) {
		t.Fatalf("peek: %v", err)
	}
	if _, err := c.StatsJob(12345); !isErr(err, gobeanstalk.ErrNotFound) {
		t.Fatalf("stats-job: %v", err)
	}
	if _, err := gobeanstalk.NewTube(c, "nosuch").Stats(); !isErr(err, gobeanstalk.ErrNotFound) {
		t.Fatalf("stats-tube: %v", err)
	}
	// A job whose ttr is 1s: DEADLINE_SOON while the client holds it.
	id, err := c.Put([]byte("x"), 0, 0, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for {
		rid, _, err := c.Reserve(time.Second)
		if err != nil {
			t.Fatalf("reserve: %v", err)
		}
		if rid == id {
			break
		}
		c.Delete(rid)
	}
	if _, _, err := c.Reserve(5 * time.Second); !isErr(err, gobeanstalk.ErrDeadline) {
		t.Fatalf("reserve while holding a job in its last second: %v", err)
	}
}

func TestGoClientManyWorkers(t *testing.T) {
	t.Parallel()
	e := start(t, spool.Options{})
	const jobs, workers = 200, 4
	p := dialClient(t, e.addr)
	tube := gobeanstalk.NewTube(p, "work")
	want := make(map[string]bool)
	for i := range jobs {
		b := strconv.Itoa(i)
		if _, err := tube.Put([]byte(b), uint32(i%3), 0, time.Minute); err != nil {
			t.Fatal(err)
		}
		want[b] = true
	}
	got := make(chan string, jobs)
	errc := make(chan error, workers)
	for range workers {
		c := dialClient(t, e.addr)
		go func() {
			ts := gobeanstalk.NewTubeSet(c, "work")
			for {
				id, body, err := ts.Reserve(time.Second)
				if isErr(err, gobeanstalk.ErrTimeout) {
					errc <- nil
					return
				}
				if err != nil {
					errc <- err
					return
				}
				if err := c.Delete(id); err != nil {
					errc <- err
					return
				}
				got <- string(body)
			}
		}()
	}
	for range workers {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	close(got)
	for b := range got {
		if !want[b] {
			t.Fatalf("job %q reserved twice or unknown", b)
		}
		delete(want, b)
	}
	if len(want) != 0 {
		t.Fatalf("%d jobs never reserved", len(want))
	}
}

// TestVisibleAcrossFronts runs a spool server with both fronts: a job put over beanstalkd is
// seen and worked over HTTP, and a job enqueued over HTTP is reserved over beanstalkd.
func TestVisibleAcrossFronts(t *testing.T) {
	t.Parallel()
	srv, err := spooltest.Run(t.TempDir(), func(c *server.Config) { c.BeanstalkAddr = "127.0.0.1:0" })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })
	if srv.Addrs.Beanstalk == "" {
		t.Fatal("server.Run did not report the beanstalkd address")
	}
	c := dialClient(t, srv.Addrs.Beanstalk)

	// beanstalkd -> HTTP
	tube := gobeanstalk.NewTube(c, "bridge")
	id, err := tube.Put([]byte(`{"n":1}`), 7, 0, 45*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var job struct {
		ID       string          `json:"id"`
		Queue    string          `json:"queue"`
		State    string          `json:"state"`
		Priority uint32          `json:"priority"`
		Payload  json.RawMessage `json:"payload"`
	}
	getJSON(t, fmt.Sprintf("%s/v1/jobs/%d", srv.URL, id), &job)
	if job.ID != strconv.FormatUint(id, 10) || job.Queue != "bridge" || job.State != "ready" || job.Priority != 7 || string(job.Payload) != `{"n":1}` {
		t.Fatalf("HTTP view of a beanstalkd job: %+v", job)
	}
	var reserved struct {
		Jobs []struct {
			ID         string `json:"id"`
			LeaseToken string `json:"lease_token"`
		} `json:"jobs"`
	}
	postJSON(t, srv.URL+"/v1/reserve", `{"queues":["bridge"],"max":1}`, &reserved)
	if len(reserved.Jobs) != 1 || reserved.Jobs[0].ID != job.ID {
		t.Fatalf("HTTP reserve: %+v", reserved)
	}
	// Reserved over HTTP: the beanstalkd client may look but not take it.
	if st, err := c.StatsJob(id); err != nil || st["state"] != "reserved" {
		t.Fatalf("stats-job: %v %v", st, err)
	}
	if err := c.Delete(id); !isErr(err, gobeanstalk.ErrNotFound) {
		t.Fatalf("delete of a job reserved over HTTP: %v", err)
	}
	postJSON(t, fmt.Sprintf("%s/v1/jobs/%s/ack", srv.URL, job.ID), fmt.Sprintf(`{"lease_token":%q}`, reserved.Jobs[0].LeaseToken), nil)
	if _, err := c.Peek(id); !isErr(err, gobeanstalk.ErrNotFound) {
		t.Fatalf("peek of a finished job: %v", err)
	}

	// HTTP -> beanstalkd
	var enq struct {
		ID string `json:"id"`
	}
	postJSON(t, srv.URL+"/v1/queues/bridge/jobs", `{"type":"t","payload":{"hello":"world"},"priority":3}`, &enq)
	ts := gobeanstalk.NewTubeSet(c, "bridge")
	rid, body, err := ts.Reserve(5 * time.Second)
	if err != nil || strconv.FormatUint(rid, 10) != enq.ID || string(body) != `{"hello":"world"}` {
		t.Fatalf("beanstalkd reserve of an HTTP job: %d %q %v", rid, body, err)
	}
	if err := c.Delete(rid); err != nil {
		t.Fatal(err)
	}
	getJSON(t, fmt.Sprintf("%s/v1/jobs/%d", srv.URL, rid), &job)
	if job.State != "succeeded" {
		t.Fatalf("HTTP view after delete: %+v", job)
	}
}

func getJSON(t *testing.T, url string, out any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	decodeResp(t, resp, out)
}

func postJSON(t *testing.T, url, body string, out any) {
	t.Helper()
	resp, err := http.Post(url, "application/json", bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	decodeResp(t, resp, out)
}

func decodeResp(t *testing.T, resp *http.Response, out any) {
	t.Helper()
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %s %s", resp.Request.Method, resp.Request.URL, resp.Status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s: %v in %s", resp.Request.URL, err, b)
		}
	}
}

// TestEngineToBeanstalk checks the engine view directly: a job enqueued in the engine with
// a priority is reserved over beanstalkd in priority order with its payload.
func TestEngineToBeanstalk(t *testing.T) {
	t.Parallel()
	e := start(t, spool.Options{})
	ctx := ctxT(t)
	res, err := e.eng.Enqueue(ctx, []engine.EnqueueRequest{
		{Queue: "default", Payload: []byte("low"), Priority: 100},
		{Queue: "default", Payload: []byte("high"), Priority: 1},
	})
	if err != nil || res[0].Err != nil || res[1].Err != nil {
		t.Fatalf("enqueue: %v %+v", err, res)
	}
	c := dialClient(t, e.addr)
	for _, want := range []string{"high", "low"} {
		id, body, err := c.Reserve(5 * time.Second)
		if err != nil || string(body) != want {
			t.Fatalf("reserve: %d %q %v, want %q", id, body, err, want)
		}
		if err := c.Delete(id); err != nil {
			t.Fatal(err)
		}
		j, err := e.eng.Job(ctx, id)
		if err != nil || j.State != engine.StateSucceeded {
			t.Fatalf("engine job after delete: %+v %v", j, err)
		}
	}
}
