package server_test

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spoolq/spool"
	"github.com/spoolq/spool/schedule"
)

// tickJobs lists the jobs a schedule put in its queue, by tick.
func tickJobs(t *testing.T, cl *spool.Client, queue string) map[time.Time][]*spool.Job {
	t.Helper()
	out := map[time.Time][]*spool.Job{}
	for _, j := range allJobs(t, cl, queue, spool.StateReady) {
		tick, err := time.Parse(time.RFC3339Nano, j.Metadata[schedule.MetaTick])
		if err != nil {
			t.Fatalf("job %d has no tick: %v", j.ID, j.Metadata)
		}
		out[tick.UTC()] = append(out[tick.UTC()], j)
	}
	return out
}

// Three nodes, a schedule firing every second (every node fires every tick; the tick's job
// id makes one job of them). SIGKILL of the node leading the stream of the schedule's queue,
// then its restart on its data; then two nodes stopped (SIGSTOP) until the fires on the one
// left have failed, and resumed. Through it all every tick enqueues exactly one job, none
// lost (late at most, while the cluster cannot take writes), none twice.
func TestClusterScheduleFiresOncePerTickThroughNodeLoss(t *testing.T) {
	c := startTestCluster(t)
	ctx := context.Background()
	const queue, name = "ticks", "tick"
	cl := c.client(c.nodes)
	if _, err := cl.UpdateQueue(ctx, queue, spool.QueueSettings{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.PutSchedule(ctx, name, spool.ScheduleDefinition{Spec: "@every 1s", Queue: queue, Job: spool.ScheduleJob{Type: "tick"}}); err != nil {
		t.Fatal(err)
	}
	// waitTick waits until a job for a tick at or after at is in the queue.
	waitTick := func(cl *spool.Client, at time.Time) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			for tick := range tickJobs(t, cl, queue) {
				if !tick.Before(at) {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("no job for a tick at or after %s", at.Format(time.StampMilli))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitTick(cl, time.Now().Add(2*time.Second))

	victim := c.leaderOf(queue, c.nodes)
	c.kill(victim)
	killed := time.Now()
	waitTick(c.client(others(c.nodes, victim)), killed.Add(2*time.Second))
	t.Logf("SIGKILL of %s, leader of the queue's stream; a tick after it fired %s later", victim.name, time.Since(killed).Round(10*time.Millisecond))
	c.start(victim)
	c.waitHealthy(victim)
	end := time.Now().Add(3 * time.Second).Truncate(time.Second)
	waitTick(cl, end)

	// Two nodes stopped: the one left has no majority, every fire fails on it and is
	// retried. Once the two come back, the ticks of the outage (shorter than the grace
	// period) fire, one job each.
	alone := c.nodes[0]
	failed := ticksFailed(t, alone)
	for _, n := range c.nodes[1:] {
		c.signal(n, syscall.SIGSTOP)
	}
	stopped := time.Now()
	deadline := time.Now().Add(60 * time.Second)
	for ticksFailed(t, alone) <= failed {
		if time.Now().After(deadline) {
			t.Fatalf("no failed fire on the minority node %s in 60s", alone.name)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, n := range c.nodes[1:] {
		c.signal(n, syscall.SIGCONT)
	}
	t.Logf("two nodes stopped for %s: the fires on %s failed", time.Since(stopped).Round(100*time.Millisecond), alone.name)
	for _, n := range c.nodes {
		c.waitHealthy(n)
	}
	end = time.Now().Add(3 * time.Second).Truncate(time.Second)
	waitTick(cl, end)

	// Every tick from the first to end has exactly one job, whose id is the tick's. A tick
	// still missing may be late (its enqueue retried): wait for it, within a bound. (A job
	// record whose write timed out without a majority can be stored once the majority is
	// back, with no message: the tick's retry then meets the record and stores the message
	// again; such a tick's job is late, not lost.)
	deadline = time.Now().Add(60 * time.Second)
	for {
		jobs := tickJobs(t, cl, queue)
		first := end
		for tick := range jobs {
			if tick.Before(first) {
				first = tick
			}
		}
		var missing []string
		for tick := first; !tick.After(end); tick = tick.Add(time.Second) {
			js := jobs[tick]
			if len(js) == 0 {
				missing = append(missing, tick.Format(time.TimeOnly))
				continue
			}
			if len(js) > 1 {
				t.Errorf("tick %s has %d jobs", tick.Format(time.TimeOnly), len(js))
			}
			for _, j := range js {
				if want := schedule.TickID(name, tick); j.ID != want {
					t.Errorf("job %d for tick %s, want id %d", j.ID, tick.Format(time.TimeOnly), want)
				}
			}
		}
		if t.Failed() {
			t.FailNow()
		}
		if len(missing) == 0 {
			t.Logf("%d ticks from %s to %s, one job each",
				int(end.Sub(first)/time.Second)+1, first.Format(time.TimeOnly), end.Format(time.TimeOnly))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ticks with no job (killed at %s, two stopped at %s): %v", killed.Format(time.TimeOnly), stopped.Format(time.TimeOnly), missing)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// ticksFailed reads the node's count of schedule fires that failed (and were retried).
func ticksFailed(t *testing.T, n *node) int {
	t.Helper()
	resp, err := http.Get("http://" + n.http + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), `spool_schedule_ticks_total{outcome="failed"} `); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return int(f)
		}
	}
	return 0
}
