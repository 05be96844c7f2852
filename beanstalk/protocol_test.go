package beanstalk_test

// Protocol tests written from beanstalkd 1.12's protocol.txt: a real engine, the front on a
// loopback port, and exact reply lines.

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spoolq/spool/beanstalk"
	"github.com/spoolq/spool/engine"
	"github.com/spoolq/spool/internal/spooltest"
)

func TestPutReserveDelete(t *testing.T) {
	t.Parallel()
	e := start(t, beanstalk.Options{})
	c := e.dial(t)
	id := c.put(0, 0, 60, "hello")
	c.expectJob("reserve", "RESERVED", id, "hello")
	c.expect("delete "+strconv.FormatUint(id, 10), "DELETED")
	c.expect("delete "+strconv.FormatUint(id, 10), "NOT_FOUND")
	c.expect("reserve-with-timeout 0", "TIMED_OUT")

	// An empty body and a body holding CRLF and binary bytes come back verbatim.
	id = c.put(1, 0, 60, "")
	c.expectJob("reserve", "RESERVED", id, "")
	c.expect(fmt.Sprintf("delete %d", id), "DELETED")
	bin := "a\r\nb\x00\xff\r\n"
	id = c.put(1, 0, 60, bin)
	c.expectJob(fmt.Sprintf("peek %d", id), "FOUND", id, bin)
	c.expectJob("reserve", "RESERVED", id, bin)

	// The job is the engine's: visible there with its priority and lease (ttr).
	j, err := e.eng.Job(ctxT(t), id)
	if err != nil {
		t.Fatal(err)
	}
	if j.Queue != "default" || j.State != engine.StateReserved || string(j.Payload) != bin || j.Lease != time.Minute || j.Priority != 1 {
		t.Fatalf("engine job: %+v", j)
	}
}

func TestTubes(t *testing.T) {
	t.Parallel()
	e := start(t, beanstalk.Options{})
	c := e.dial(t)
	c.expect("list-tube-used", "USING default")
	c.expect("use jobs.email", "USING jobs.email")
	c.expect("list-tube-used", "USING jobs.email")
	if got := c.yaml("list-tubes-watched"); got != "---\n- default\n" {
		t.Fatalf("list-tubes-watched: %q", got)
	}
	c.expect("watch a", "WATCHING 2")
	c.expect("watch a", "WATCHING 2")
	c.expect("watch b", "WATCHING 3")
	c.expect("watch c", "WATCHING 4")
	// beanstalkd moves the last tube into the place of an ignored one.
	c.expect("ignore a", "WATCHING 3")
	if got := c.yaml("list-tubes-watched"); got != "---\n- default\n- c\n- b\n" {
		t.Fatalf("list-tubes-watched: %q", got)
	}
	c.expect("ignore nosuch", "WATCHING 3")
	c.expect("ignore default", "WATCHING 2")
	c.expect("ignore b", "WATCHING 1")
	c.expect("ignore c", "NOT_IGNORED")
	// Tubes in use or watched exist, as do the engine's queues.
	if _, err := e.eng.PutQueue(ctxT(t), "from-http", engine.QueueSettings{}); err != nil {
		t.Fatal(err)
	}
	if got := c.yaml("list-tubes"); got != "---\n- c\n- default\n- from-http\n- jobs.email\n" {
		t.Fatalf("list-tubes: %q", got)
	}
	// A job goes to the used tube and comes from the watched ones only.
	id := c.put(5, 0, 10, "x")
	c.expect("reserve-with-timeout 0", "TIMED_OUT")
	c.expect("watch jobs.email", "WATCHING 2")
	c.expectJob("reserve-with-timeout 0", "RESERVED", id, "x")
	j, err := e.eng.Job(ctxT(t), id)
	if err != nil || j.Queue != "jobs.email" {
		t.Fatalf("engine job: %+v, %v", j, err)
	}
	// Names: 200 bytes at most, beanstalkd's alphabet, not starting with '-'.
	long := strings.Repeat("x", 200)
	c.expect("use "+long, "USING "+long)
	c.expect("use "+long+"x", "BAD_FORMAT")
	c.expect("use -a", "BAD_FORMAT")
	c.expect("use a b", "BAD_FORMAT")
	c.expect("use a*", "BAD_FORMAT")
	c.expect("watch ", "BAD_FORMAT")
	c.expect("use A-Za-z0-9+/;.$_()", "USING A-Za-z0-9+/;.$_()")
}

func TestPriorityOrder(t *testing.T) {
	t.Parallel()
	e := start(t, beanstalk.Options{})
	c := e.dial(t)
	var ids []uint64
	for _, p := range []int{100, 0, 4294967295, 2, 100, 1} {
		ids = append(ids, c.put(p, 0, 10, strconv.Itoa(p)))
	}
	// Most urgent first; equal priorities in order of arrival.
	for _, i := range []int{1, 5, 3, 0, 4, 2} {
		c.expectJob("peek-ready", "FOUND", ids[i], c.peekBody(ids[i]))
		c.expectJob("reserve", "RESERVED", ids[i], c.peekBody(ids[i]))
	}
}

// peekBody returns a job's body with peek.
func (c *client) peekBody(id uint64) string {
	c.t.Helper()
	_, body := c.job(c.do(fmt.Sprintf("peek %d", id)), "FOUND")
	return body
}

func TestReleaseBuryKick(t *testing.T) {
	t.Parallel()
	e := start(t, beanstalk.Options{})
	c := e.dial(t)
	id := c.put(10, 0, 30, "job")
	c.expectJob("reserve", "RESERVED", id, "job")
	c.expect(fmt.Sprintf("release %d 7 0", id), "RELEASED")
	c.expect(fmt.Sprintf("release %d 7 0", id), "NOT_FOUND") // no longer reserved
	st := c.dict(fmt.Sprintf("stats-job %d", id))
	if st["state"] != "ready" || st["pri"] != "7" || st["releases"] != "1" || st["reserves"] != "1" {
		t.Fatalf("stats-job after release: %v", st)
	}
	c.expectJob("reserve", "RESERVED", id, "job")
	c.expect(fmt.Sprintf("bury %d 3", id), "BURIED")
	c.expect(fmt.Sprintf("bury %d 3", id), "NOT_FOUND")
	c.expectJob("peek-buried", "FOUND", id, "job")
	st = c.dict(fmt.Sprintf("stats-job %d", id))
	if st["state"] != "buried" || st["pri"] != "3" || st["buries"] != "1" {
		t.Fatalf("stats-job after bury: %v", st)
	}
	c.expect("reserve-with-timeout 0", "TIMED_OUT")

	// kick takes buried jobs first, delayed ones only when none is buried.
	d := c.put(1, 3600, 30, "later")
	c.expect("kick 10", "KICKED 1")
	c.expect("peek-buried", "NOT_FOUND")
	c.expectJob("peek-delayed", "FOUND", d, "later")
	c.expect("kick 10", "KICKED 1")
	c.expect("peek-delayed", "NOT_FOUND")
	c.expect("kick 10", "KICKED 0")
	st = c.dict(fmt.Sprintf("stats-job %d", d))
	if st["state"] != "ready" || st["kicks"] != "1" {
		t.Fatalf("stats-job after kick: %v", st)
	}
	st = c.dict(fmt.Sprintf("stats-job %d", id))
	if st["state"] != "ready" || st["kicks"] != "1" {
		t.Fatalf("stats-job after kick: %v", st)
	}

	// kick-job: a buried or delayed job, nothing else.
	c.expect(fmt.Sprintf("kick-job %d", id), "NOT_FOUND") // ready
	x := c.put(1, 3600, 30, "x")
	c.expect(fmt.Sprintf("kick-job %d", x), "KICKED")
	c.expect(fmt.Sprintf("kick-job %d", x), "NOT_FOUND")
	c.expect("kick-job 12345", "NOT_FOUND")
	// kick 0 kicks nothing; kick counts only up to its bound.
	for range 3 {
		c.put(1, 3600, 30, "y")
	}
	c.expect("kick 0", "KICKED 0")
	c.expect("kick 2", "KICKED 2")
	c.expect("kick 2", "KICKED 1")
	// kick works on the used tube only.
	c.expect("use other", "USING other")
	c.put(1, 3600, 30, "z")
	c.expect("use default", "USING default")
	c.expect("kick 5", "KICKED 0")
}

func TestReleaseWithDelay(t *testing.T) {
	t.Parallel()
	e := start(t, beanstalk.Options{})
	c := e.dial(t)
	id := c.put(0, 0, 30, "d")
	c.expectJob("reserve", "RESERVED", id, "d")
	c.expect(fmt.Sprintf("release %d 0 1", id), "RELEASED")
	st := c.dict(fmt.Sprintf("stats-job %d", id))
	if st["state"] != "delayed" || st["delay"] != "1" {
		t.Fatalf("stats-job: %v", st)
	}
	c.expect("reserve-with-timeout 0", "TIMED_OUT")
	start := time.Now()
	c.expectJob("reserve-with-timeout 5", "RESERVED", id, "d")
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("delayed job came after %v, want about 1s", el)
	}
}

func TestPutDelay(t *testing.T) {
	t.Parallel()
	e := start(t, beanstalk.Options{})
	c := e.dial(t)
	put := time.Now()
	id := c.put(0, 2, 30, "later")
	st := c.dict(fmt.Sprintf("stats-job %d", id))
	if st["state"] != "delayed" || st["delay"] != "2" || !secondsLeft(st["time-left"], 2, put) {
		t.Fatalf("stats-job: %v", st)
	}
	c.expect("peek-ready", "NOT_FOUND")
	c.expect("reserve-with-timeout 0", "TIMED_OUT")
	c.expectJob("reserve-with-timeout 10", "RESERVED", id, "later")
}

func TestPeekDelayedSoonestFirst(t *testing.T) {
	t.Parallel()
	e := start(t, beanstalk.Options{})
	c := e.dial(t)
	c.put(0, 300, 30, "a")
	b := c.put(0, 100, 30, "b")
	c.put(0, 200, 30, "c")
	c.expectJob("peek-delayed", "FOUND", b, "b")
	c.expect("peek-ready", "NOT_FOUND")
	c.expect("peek-buried", "NOT_FOUND")
	// Peeks look at the used tube only.
	c.expect("use elsewhere", "USING elsewhere")
	c.expect("peek-delayed", "NOT_FOUND")
	c.expectJob(fmt.Sprintf("peek %d", b), "FOUND", b, "b") // peek <id> is not per tube
	c.expect("peek 999", "NOT_FOUND")
}

func TestOnlyHolderActsOnReservedJob(t *testing.T) {
	t.Parallel()
	e := start(t, beanstalk.Options{})
	a, b := e.dial(t), e.dial(t)
	id := a.put(0, 0, 60, "mine")
	a.expectJob("reserve", "RESERVED", id, "mine")
	for _, cmd := range []string{"delete %d", "release %d 0 0", "bury %d 0", "touch %d", "kick-job %d", "reserve-job %d"} {
		b.expect(fmt.Sprintf(cmd, id), "NOT_FOUND")
	}
	b.expectJob(fmt.Sprintf("peek %d", id), "FOUND", id, "mine")
	if st := b.dict(fmt.Sprintf("stats-job %d", id)); st["state"] != "reserved" {
		t.Fatalf("stats-job: %v", st)
	}
	a.expect(fmt.Sprintf("touch %d", id), "TOUCHED")
	a.expect(fmt.Sprintf("delete %d", id), "DELETED")

	// Anyone may delete a ready, delayed or buried job.
	r := a.put(0, 0, 60, "r")
	d := a.put(0, 100, 60, "d")
	x := a.put(0, 0, 60, "x")
	a.expect("watch default", "WATCHING 1")
	a.expectJob(fmt.Sprintf("reserve-job %d", x), "RESERVED", x, "x")
	a.expect(fmt.Sprintf("bury %d 0", x), "BURIED")
	b.expect(fmt.Sprintf("delete %d", r), "DELETED")
	b.expect(fmt.Sprintf("delete %d", d), "DELETED")
	b.expect(fmt.Sprintf("delete %d", x), "DELETED")
	for _, id := range []uint64{r, d, x} {
		j, err := e.eng.Job(ctxT(t), id)
		if err != nil || j.State != engine.StateCancelled {
			t.Fatalf("job %d after delete: %+v, %v", id, j, err)
		}
	}
}

func TestDisconnectReleasesJobs(t *testing.T) {
	t.Parallel()
	e := start(t, beanstalk.Options{})
	a, b := e.dial(t), e.dial(t)
	id1 := a.put(0, 0, 600, "one")
	id2 := a.put(0, 0, 600, "two")
	a.expectJob("reserve", "RESERVED", id1, "one")
	a.expectJob(fmt.Sprintf("reserve-job %d", id2), "RESERVED", id2, "two")
	b.expect("reserve-with-timeout 0", "TIMED_OUT")
	a.nc.Close()
	// Back to ready at once, not after the 600s ttr.
	got := map[uint64]bool{}
	for range 2 {
		id, _ := b.reserve("reserve-with-timeout 10")
		got[id] = true
	}
	if !got[id1] || !got[id2] {
		t.Fatalf("reserved %v after disconnect, want %d and %d", got, id1, id2)
	}
}

// TestCurrentConnectionsDropAtClose: a connection leaves the stats as soon as the server has
// seen it close, before the engine calls that give its jobs back.
func TestCurrentConnectionsDropAtClose(t *testing.T) {
	t.Parallel()
	e := start(t, beanstalk.Options{})
	b := e.dial(t)
	b.expect("list-tube-used", "USING default")

	// A connection without jobs: the server sees its close some time after the client's,
	// so this one waits on the count.
	a := e.dial(t)
	a.expect("use t", "USING t")
	if got := b.dict("stats")["current-connections"]; got != "2" {
		t.Fatalf("current-connections with two clients: %s", got)
	}
	a.nc.Close()
	spooltest.Eventually(t, 10*time.Second, func() error {
		if got := b.dict("stats")["current-connections"]; got != "1" {
			return fmt.Errorf("current-connections after a close: %s, want 1", got)
		}
		return nil
	})
	// Nothing else names tube t, which has no queue: it is gone.
	b.expect("stats-tube t", "NOT_FOUND")

	// A connection holding jobs: once b has one of them, the server has seen the close and
	// is still giving the others back (8 at a time), so the count must be down already.
	a = e.dial(t)
	const held = 200
	for i := range held {
		a.put(0, 0, 600, strconv.Itoa(i))
	}
	for range held {
		a.reserve("reserve-with-timeout 0")
	}
	if got := b.dict("stats")["current-connections"]; got != "2" {
		t.Fatalf("current-connections with two clients: %s", got)
	}
	a.nc.Close()
	b.reserve("reserve-with-timeout 10")
	st := b.dict("stats")
	if st["current-connections"] != "1" || st["current-producers"] != "0" || st["current-workers"] != "1" || st["total-connections"] != "3" {
		t.Fatalf("stats once a job of the closed connection came back: current-connections %s, current-producers %s, current-workers %s, total-connections %s; want 1, 0, 1, 3",
			st["current-connections"], st["current-producers"], st["current-workers"], st["total-connections"])
	}
}

func TestTTRAndDeadlineSoon(t *testing.T) {
	t.Parallel()
	e := start(t, beanstalk.Options{})
	a, b := e.dial(t), e.dial(t)
	id := a.put(0, 0, 2, "short")
	a.expectJob("reserve", "RESERVED", id, "short")
	// Within the last second of the ttr, a reserve that would wait says DEADLINE_SOON.
	start := time.Now()
	a.expect("reserve", "DEADLINE_SOON")
	if el := time.Since(start); el < 500*time.Millisecond || el > 2*time.Second {
		t.Fatalf("DEADLINE_SOON after %v, want about 1s", el)
	}
	a.expect("reserve-with-timeout 5", "DEADLINE_SOON") // at once: already in the margin
	// The holder may still touch it: the ttr starts again.
	a.expect(fmt.Sprintf("touch %d", id), "TOUCHED")
	a.expect("reserve-with-timeout 0", "TIMED_OUT")
	// Past the ttr, the job times out and goes to another client; the first holder has lost it.
	b.expectJob("reserve-with-timeout 10", "RESERVED", id, "short")
	a.expect(fmt.Sprintf("release %d 0 0", id), "NOT_FOUND")
	a.expect(fmt.Sprintf("touch %d", id), "NOT_FOUND")
	st := b.dict(fmt.Sprintf("stats-job %d", id))
	if st["timeouts"] != "1" || st["reserves"] != "2" || st["ttr"] != "2" || st["state"] != "reserved" {
		t.Fatalf("stats-job: %v", st)
	}
	// ttr 0 means 1 second.
	z := b.put(0, 0, 0, "zero")
	if st := b.dict(fmt.Sprintf("stats-job %d", z)); st["ttr"] != "1" {
		t.Fatalf("ttr 0: stats-job %v", st)
	}
}

func TestReserveWaitsForPut(t *testing.T) {
	t.Parallel()
	e := start(t, beanstalk.Options{})
	a, b := e.dial(t), e.dial(t)
	a.expect("watch w", "WATCHING 2")
	a.send("reserve\r\n")
	time.Sleep(300 * time.Millisecond)
	spooltest.Eventually(t, 5*time.Second, func() error {
		st := b.dict("stats")
		if st["current-waiting"] != "1" {
			return fmt.Errorf("current-waiting %s, want 1", st["current-waiting"])
		}
		return nil
	})
	b.expect("use w", "USING w")
	id := b.put(0, 0, 10, "wake")
	start := time.Now()
	a.recvJob("RESERVED", id, "wake")
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("reserve answered %v after the put", el)
	}

	// reserve-with-timeout waits about its timeout.
	start = time.Now()
	a.expect("reserve-with-timeout 1", "TIMED_OUT")
	if el := time.Since(start); el < 900*time.Millisecond || el > 3*time.Second {
		t.Fatalf("TIMED_OUT after %v, want 1s", el)
	}
}

func TestHalfClosedReserveTimesOut(t *testing.T) {
	t.Parallel()
	e := start(t, beanstalk.Options{})
	c := e.dial(t)
	c.send("reserve\r\n")
	time.Sleep(200 * time.Millisecond)
	if err := c.nc.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if got := c.line(); got != "TIMED_OUT" {
		t.Fatalf("got %q, want TIMED_OUT", got)
	}
	c.closed()
}

func TestPauseTube(t *testing.T) {
	t.Parallel()
	e := start(t, beanstalk.Options{})
	c := e.dial(t)
	c.expect("pause-tube nosuch 1", "NOT_FOUND")
	id := c.put(0, 0, 10, "p")
	paused := time.Now()
	c.expect("pause-tube default 2", "PAUSED")
	st := c.dict("stats-tube default")
	if st["pause"] != "2" || !secondsLeft(st["pause-time-left"], 2, paused) || st["cmd-pause-tube"] != "1" {
		t.Fatalf("stats-tube: %v", st)
	}
	c.expect("reserve-with-timeout 0", "TIMED_OUT")
	start := time.Now()
	c.expectJob("reserve-with-timeout 10", "RESERVED", id, "p")
	if el := time.Since(start); el < time.Second {
		t.Fatalf("reserved after %v from a tube paused for 2s", el)
	}
	// pause-tube 0 unpauses; a tube that is only watched can be paused.
	c.expect("watch idle", "WATCHING 2")
	c.expect("pause-tube idle 100", "PAUSED")
	c.expect("pause-tube idle 0", "PAUSED")
	if st := c.dict("stats-tube idle"); st["pause"] != "0" || st["pause-time-left"] != "0" {
		t.Fatalf("stats-tube after unpause: %v", st)
	}
	c.expect("pause-tube idle", "BAD_FORMAT")
	c.expect("pause-tube idle x", "BAD_FORMAT")
}

func TestReserveJob(t *testing.T) {
	t.Parallel()
	e := start(t, beanstalk.Options{})
	a, b := e.dial(t), e.dial(t)
	a.expect("use other", "USING other") // reserve-job needs no watch
	r := a.put(0, 0, 60, "ready")
	d := a.put(0, 3600, 60, "delayed")
	x := a.put(0, 0, 60, "buried")
	a.expectJob(fmt.Sprintf("reserve-job %d", x), "RESERVED", x, "buried")
	a.expect(fmt.Sprintf("bury %d 9", x), "BURIED")
	for _, j := range []struct {
		id   uint64
		body string
	}{{r, "ready"}, {d, "delayed"}, {x, "buried"}} {
		reserved := time.Now()
		a.expectJob(fmt.Sprintf("reserve-job %d", j.id), "RESERVED", j.id, j.body)
		a.expect(fmt.Sprintf("reserve-job %d", j.id), "NOT_FOUND")
		b.expect(fmt.Sprintf("reserve-job %d", j.id), "NOT_FOUND")
		if st := a.dict(fmt.Sprintf("stats-job %d", j.id)); st["state"] != "reserved" || !secondsLeft(st["time-left"], 60, reserved) {
			t.Fatalf("stats-job: %v", st)
		}
	}
	if st := a.dict("stats-tube other"); st["current-jobs-reserved"] != "3" {
		t.Fatalf("stats-tube: %v", st)
	}
	a.expect(fmt.Sprintf("touch %d", r), "TOUCHED")
	a.expect(fmt.Sprintf("delete %d", r), "DELETED")
	a.expect(fmt.Sprintf("release %d 5 0", d), "RELEASED")
	a.expect(fmt.Sprintf("bury %d 5", x), "BURIED")
	a.expectJob("peek-ready", "FOUND", d, "delayed")
	a.expectJob("peek-buried", "FOUND", x, "buried")
	// Nothing is left behind: the tube holds one ready and one buried job.
	spooltest.Eventually(t, 5*time.Second, func() error {
		st := a.dict("stats-tube other")
		if st["current-jobs-ready"] != "1" || st["current-jobs-buried"] != "1" || st["current-jobs-reserved"] != "0" || st["current-jobs-delayed"] != "0" {
			return fmt.Errorf("stats-tube: %v", st)
		}
		return nil
	})
	a.expect("reserve-job 4242", "NOT_FOUND")
}

func TestReserveJobLeaseExpires(t *testing.T) {
	t.Parallel()
	e := start(t, beanstalk.Options{})
	a, b := e.dial(t), e.dial(t)
	id := a.put(0, 0, 1, "brief")
	a.expectJob(fmt.Sprintf("reserve-job %d", id), "RESERVED", id, "brief")
	// The lease ends after the 1s ttr: the job is ready again for anyone.
	b.expectJob("reserve-with-timeout 10", "RESERVED", id, "brief")
	a.expect(fmt.Sprintf("bury %d 0", id), "NOT_FOUND")
	b.expect(fmt.Sprintf("delete %d", id), "DELETED")
}

func TestStats(t *testing.T) {
	t.Parallel()
	e := start(t, beanstalk.Options{MaxJobSize: 1000, Version: "test-1"})
	c := e.dial(t)
	c.expect("use s", "USING s")
	c.put(5, 0, 10, "a")
	c.put(2000, 0, 10, "b")
	c.put(0, 100, 10, "c")
	begun := time.Now()
	id := c.put(0, 0, 10, "d")
	c.expect("watch s", "WATCHING 2")
	c.expectJob(fmt.Sprintf("reserve-job %d", id), "RESERVED", id, "d")
	c.expect(fmt.Sprintf("bury %d 0", id), "BURIED")
	spooltest.Eventually(t, 5*time.Second, func() error {
		st := c.dict("stats-tube s")
		want := map[string]string{
			"name": "s", "current-jobs-urgent": "1", "current-jobs-ready": "2", "current-jobs-reserved": "0",
			"current-jobs-delayed": "1", "current-jobs-buried": "1", "total-jobs": "4", "current-using": "1",
			"current-watching": "1", "current-waiting": "0", "cmd-delete": "0", "cmd-pause-tube": "0",
			"pause": "0", "pause-time-left": "0",
		}
		if fmt.Sprint(st) != fmt.Sprint(want) {
			return fmt.Errorf("stats-tube s:\n got %v\nwant %v", st, want)
		}
		return nil
	})
	body := c.yaml("stats-tube s")
	keys := yamlKeys(body)
	if want := "name current-jobs-urgent current-jobs-ready current-jobs-reserved current-jobs-delayed current-jobs-buried total-jobs current-using current-watching current-waiting cmd-delete cmd-pause-tube pause pause-time-left"; keys != want {
		t.Fatalf("stats-tube keys:\n got %s\nwant %s", keys, want)
	}
	c.expect("stats-tube nosuch", "NOT_FOUND")
	c.expect("stats-tube -x", "BAD_FORMAT")

	body = c.yaml("stats")
	if want := "current-jobs-urgent current-jobs-ready current-jobs-reserved current-jobs-delayed current-jobs-buried cmd-put cmd-peek cmd-peek-ready cmd-peek-delayed cmd-peek-buried cmd-reserve cmd-reserve-with-timeout cmd-delete cmd-release cmd-use cmd-watch cmd-ignore cmd-bury cmd-kick cmd-touch cmd-stats cmd-stats-job cmd-stats-tube cmd-list-tubes cmd-list-tube-used cmd-list-tubes-watched cmd-pause-tube job-timeouts total-jobs max-job-size current-tubes current-connections current-producers current-workers current-waiting total-connections pid version rusage-utime rusage-stime uptime binlog-oldest-index binlog-current-index binlog-records-migrated binlog-records-written binlog-max-size draining id hostname os platform spool-version"; yamlKeys(body) != want {
		t.Fatalf("stats keys:\n got %s\nwant %s", yamlKeys(body), want)
	}
	st := c.dict("stats")
	for k, v := range map[string]string{
		"current-jobs-ready": "2", "current-jobs-urgent": "1", "current-jobs-buried": "1", "current-jobs-delayed": "1",
		"cmd-put": "4", "cmd-use": "1", "cmd-watch": "1", "cmd-bury": "1", "cmd-reserve": "0",
		"max-job-size": "1000", "current-connections": "1", "current-producers": "1", "current-workers": "1",
		"total-connections": "1", "version": `"1.12"`, "spool-version": `"test-1"`, "draining": "false", "current-tubes": "2",
	} {
		if st[k] != v {
			t.Errorf("stats %s: %q, want %q", k, st[k], v)
		}
	}
	if len(st["id"]) != 16 || !strings.Contains(st["rusage-utime"], ".") {
		t.Errorf("stats: %v", st)
	}
	js := c.dict(fmt.Sprintf("stats-job %d", id))
	if want := "id tube state pri age delay ttr time-left file reserves timeouts releases buries kicks"; yamlKeys(c.yaml(fmt.Sprintf("stats-job %d", id))) != want {
		t.Fatalf("stats-job keys: want %s", want)
	}
	if js["id"] != strconv.FormatUint(id, 10) || js["tube"] != "s" || js["state"] != "buried" || js["pri"] != "0" ||
		!secondsOld(js["age"], begun) || js["ttr"] != "10" || js["time-left"] != "0" || js["file"] != "0" || js["reserves"] != "1" || js["buries"] != "1" {
		t.Fatalf("stats-job: %v", js)
	}
	c.expect("stats-job 1", "NOT_FOUND")
	c.expect(fmt.Sprintf("delete %d", id), "DELETED")
	c.expect(fmt.Sprintf("stats-job %d", id), "NOT_FOUND")
	c.expect(fmt.Sprintf("peek %d", id), "NOT_FOUND")
	if st := c.dict("stats-tube s"); st["cmd-delete"] != "1" {
		t.Fatalf("cmd-delete: %v", st)
	}
}

func yamlKeys(body string) string {
	var keys []string
	for _, l := range strings.Split(body, "\n")[1:] {
		if k, _, ok := strings.Cut(l, ":"); ok {
			keys = append(keys, k)
		}
	}
	return strings.Join(keys, " ")
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	e := start(t, beanstalk.Options{MaxJobSize: 10})
	c := e.dial(t)
	for _, tc := range []struct{ in, want string }{
		{"", "UNKNOWN_COMMAND"},
		{"foo", "UNKNOWN_COMMAND"},
		{"PUT 0 0 1 1", "UNKNOWN_COMMAND"},
		{"delete", "UNKNOWN_COMMAND"},
		{"delete x", "BAD_FORMAT"},
		{"delete 1 2", "BAD_FORMAT"},
		{"delete -1", "BAD_FORMAT"},
		{"delete 18446744073709551616", "BAD_FORMAT"},
		{"delete 18446744073709551615", "NOT_FOUND"},
		{"delete  7", "NOT_FOUND"},
		{"release 1 2", "BAD_FORMAT"},
		{"release 1 4294967296 0", "BAD_FORMAT"},
		{"bury 1", "BAD_FORMAT"},
		{"put 1 2 3", "BAD_FORMAT"},
		{"put -1 0 0 1", "BAD_FORMAT"},
		{"put 4294967296 0 0 1", "BAD_FORMAT"},
		{"stats x", "BAD_FORMAT"},
		{"stats-job", "BAD_FORMAT"},
		{"reservex", "BAD_FORMAT"},
		{"peek-ready ", "BAD_FORMAT"},
		{"kick", "UNKNOWN_COMMAND"},
		{"kick x", "BAD_FORMAT"},
		{"kick 99999999999999999999", "BAD_FORMAT"},
		{"reserve-with-timeout 99999999999999999999", "BAD_FORMAT"},
		{"reserve-with-timeout x", "TIMED_OUT"},
		{"list-tubes x", "BAD_FORMAT"},
		{"a\x00b", "BAD_FORMAT"},
		{"use de\x00fault", "BAD_FORMAT"},
		{strings.Repeat("x", 222), "UNKNOWN_COMMAND"}, // 224 bytes with CRLF: fits
		{"use " + strings.Repeat("x", 220), "BAD_FORMAT"},
		{strings.Repeat("x", 224), "BAD_FORMAT"}, // 226 bytes: too long
		{strings.Repeat("x", 5000), "BAD_FORMAT"},
	} {
		if got := c.do(tc.in); got != tc.want {
			t.Errorf("%.40q: got %q, want %q", tc.in, got, tc.want)
		}
	}
	// The body must end in CRLF.
	c.send("put 0 0 10 3\r\nabcXY")
	if got := c.line(); got != "EXPECTED_CRLF" {
		t.Fatalf("got %q, want EXPECTED_CRLF", got)
	}
	// Too big: the body is read away, then JOB_TOO_BIG; the connection goes on.
	c.send("put 0 0 10 11\r\nhello world\r\n")
	if got := c.line(); got != "JOB_TOO_BIG" {
		t.Fatalf("got %q, want JOB_TOO_BIG", got)
	}
	c.send("put 0 0 10 100000 garbage\r\n" + strings.Repeat("z", 100000) + "\r\n")
	if got := c.line(); got != "JOB_TOO_BIG" {
		t.Fatalf("got %q, want JOB_TOO_BIG", got)
	}
	c.expect("put 0 0 10 1 garbage", "BAD_FORMAT")
	id := c.put(0, 0, 10, "0123456789")
	c.expectJob("peek-ready", "FOUND", id, "0123456789")
	c.send("quitting\r\n") // quit by prefix, as beanstalkd
	c.closed()
}

// TestLongLines checks beanstalkd's 224-byte command buffer, window by window.
func TestLongLines(t *testing.T) {
	t.Parallel()
	e := start(t, beanstalk.Options{})
	c := e.dial(t)
	// A lone CR hides the line end until the buffer is full; the next window then finds it.
	c.send("use a\rb" + strings.Repeat("x", 224-7) + "\r\n")
	if got := c.line(); got != "BAD_FORMAT" {
		t.Fatalf("got %q, want BAD_FORMAT", got)
	}
	// 225 bytes: the CR is the buffer's last byte and its LF starts the next window, so the
	// line end is missed and the following command is thrown away with the long line.
	c.send(strings.Repeat("x", 223) + "\r\nlist-tube-used\r\n")
	if got := c.line(); got != "BAD_FORMAT" {
		t.Fatalf("got %q, want BAD_FORMAT", got)
	}
	c.expect("list-tube-used", "USING default")
	c.expect("stats-tube "+strings.Repeat("a", 201), "BAD_FORMAT")
}

func TestQuit(t *testing.T) {
	t.Parallel()
	e := start(t, beanstalk.Options{})
	c := e.dial(t)
	c.send("use q\r\nquit\r\nlist-tube-used\r\n")
	if got := c.line(); got != "USING q" {
		t.Fatalf("got %q", got)
	}
	c.closed()
}

func TestPipelining(t *testing.T) {
	t.Parallel()
	e := start(t, beanstalk.Options{})
	c := e.dial(t)
	var b strings.Builder
	for i := range 50 {
		fmt.Fprintf(&b, "put %d 0 10 %d\r\n%s\r\n", i, len(strconv.Itoa(i)), strconv.Itoa(i))
	}
	b.WriteString("list-tube-used\r\n")
	c.send(b.String())
	var ids []uint64
	for range 50 {
		l := c.line()
		id, err := strconv.ParseUint(strings.TrimPrefix(l, "INSERTED "), 10, 64)
		if err != nil {
			t.Fatalf("reply %q", l)
		}
		ids = append(ids, id)
	}
	if got := c.line(); got != "USING default" {
		t.Fatalf("got %q", got)
	}
	b.Reset()
	for range 50 {
		b.WriteString("reserve\r\n")
	}
	c.send(b.String())
	for i := range 50 {
		c.recvJob("RESERVED", ids[i], strconv.Itoa(i))
	}
}

// TestLongPunctuationTube: the longest tube names, all punctuation, are queues too (the
// engine hashes a stream name that would be too long for JetStream once escaped).
func TestLongPunctuationTube(t *testing.T) {
	t.Parallel()
	e := start(t, beanstalk.Options{})
	c := e.dial(t)
	name := strings.Repeat("$", 199) + "."
	c.expect("use "+name, "USING "+name)
	id := c.put(0, 0, 10, "x")
	c.expect("watch "+name, "WATCHING 2")
	c.expectJob("reserve-with-timeout 0", "RESERVED", id, "x")
	if st := c.dict("stats-job " + strconv.FormatUint(id, 10)); st["tube"] != name {
		t.Fatalf("stats-job: %v", st)
	}
	if got := c.yaml("list-tubes"); !strings.Contains(got, "- "+name+"\n") {
		t.Fatalf("list-tubes: %q", got)
	}
}

// secondsLeft reports whether got, a count of whole seconds left that stood at full when
// since was taken, is what beanstalkd would say now: full, or less by up to the whole
// seconds elapsed since (one more for the truncation), never below 0. A loaded machine
// may take seconds between two commands.
func secondsLeft(got string, full int, since time.Time) bool {
	n, err := strconv.Atoi(got)
	return err == nil && n <= full && n >= max(0, full-1-int(time.Since(since)/time.Second))
}

// secondsOld reports whether got, an age in whole seconds of something made after since,
// is at most the whole seconds elapsed since (one more for the truncation).
func secondsOld(got string, since time.Time) bool {
	n, err := strconv.Atoi(got)
	return err == nil && n >= 0 && n <= 1+int(time.Since(since)/time.Second)
}
