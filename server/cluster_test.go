package server_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/spoolq/spool"
	"github.com/spoolq/spool/internal/testlog"
)

// node is one `spool serve` child process of a test cluster.
type node struct {
	name, data, http, route string
	cmd                     *exec.Cmd
	logs                    *testlog.Buffer
}

// testCluster is three spool nodes, child processes on 127.0.0.1, forming one cluster.
type testCluster struct {
	t     *testing.T
	bin   string
	nodes []*node
}

// startTestCluster starts three nodes and waits until each is healthy. The test runs in
// parallel with others, and is skipped with -short.
func startTestCluster(t *testing.T) *testCluster {
	t.Helper()
	t.Parallel()
	if testing.Short() {
		t.Skip("runs a cluster of three child processes")
	}
	c := &testCluster{t: t, bin: buildSpool(t)}
	for i := range 3 {
		c.nodes = append(c.nodes, &node{name: fmt.Sprintf("n%d", i+1), data: t.TempDir(), http: freeAddr(t), route: freeAddr(t)})
	}
	for _, n := range c.nodes {
		c.start(n)
	}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			if n.cmd != nil {
				n.cmd.Process.Signal(syscall.SIGCONT)
				n.cmd.Process.Kill()
				n.cmd.Wait()
			}
		}
		if t.Failed() {
			for _, n := range c.nodes {
				t.Logf("log of %s:\n%s", n.name, tail(n.logs.String(), 60))
			}
		}
	})
	for _, n := range c.nodes {
		c.waitHealthy(n)
	}
	return c
}

func tail(s string, lines int) string {
	l := strings.Split(s, "\n")
	return strings.Join(l[max(0, len(l)-lines):], "\n")
}

// start runs the node's process (again, on the same data after a kill) without waiting.
func (c *testCluster) start(n *node) {
	c.t.Helper()
	var peers []string
	for _, p := range c.nodes {
		peers = append(peers, p.route)
	}
	n.cmd = exec.Command(c.bin, "serve", "--data", n.data, "--http", n.http,
		"--cluster-name", "test", "--node", n.name, "--cluster", n.route, "--peers", strings.Join(peers, ","))
	if n.logs == nil {
		n.logs = &testlog.Buffer{}
	}
	fmt.Fprintf(n.logs, "--- start %s\n", time.Now().Format(time.StampMilli))
	n.cmd.Stdout, n.cmd.Stderr = n.logs, n.logs
	if err := n.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
}

// waitHealthy waits until the node's /healthz answers 200: it knows a meta leader.
func (c *testCluster) waitHealthy(n *node) {
	c.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := http.Get("http://" + n.http + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("node %s not healthy after 90s: %v\n%s", n.name, err, tail(n.logs.String(), 40))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *testCluster) kill(n *node) {
	c.t.Helper()
	if err := n.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		c.t.Fatal(err)
	}
	n.cmd.Wait()
	fmt.Fprintf(n.logs, "--- killed %s\n", time.Now().Format(time.StampMilli))
}

// stopGracefully sends SIGTERM and waits for the process to exit.
func (c *testCluster) stopGracefully(n *node) {
	c.t.Helper()
	if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		c.t.Fatal(err)
	}
	if err := n.cmd.Wait(); err != nil {
		c.t.Fatalf("node %s after SIGTERM: %v\n%s", n.name, err, tail(n.logs.String(), 40))
	}
}

func (c *testCluster) signal(n *node, s os.Signal) {
	c.t.Helper()
	if err := n.cmd.Process.Signal(s); err != nil {
		c.t.Fatal(err)
	}
}

func (c *testCluster) client(nodes []*node, opts ...spool.ClientOption) *spool.Client {
	c.t.Helper()
	var urls []string
	for _, n := range nodes {
		urls = append(urls, "http://"+n.http)
	}
	cl, err := spool.NewClient(strings.Join(urls, ","), opts...)
	if err != nil {
		c.t.Fatal(err)
	}
	return cl
}

// leaderOf returns the node leading the queue's stream, as one of the live nodes says.
func (c *testCluster) leaderOf(queue string, live []*node) *node {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ci, err := c.client(live, spool.WithRetryFor(0)).Cluster(context.Background(), queue)
		if err == nil {
			for _, s := range ci.Streams {
				if s.Name != ci.QueueStreams[queue] {
					continue
				}
				for _, n := range c.nodes {
					if n.name == s.Leader {
						return n
					}
				}
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no leader for queue %s: %+v %v", queue, ci, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitCurrent waits, for up to d, until every stream that match selects has a leader and
// all its replicas, each current with no lag, as node ask sees it (GET /v1/cluster asked
// about queues).
func (c *testCluster) waitCurrent(ask *node, d time.Duration, match func(*spool.ClusterInfo, spool.ClusterStream) bool, queues ...string) *spool.ClusterInfo {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		ci, err := c.client([]*node{ask}, spool.WithRetryFor(0)).Cluster(context.Background(), queues...)
		current := err == nil
		var behind []string
		for _, s := range streamsOf(ci) {
			if !match(ci, s) {
				continue
			}
			ok := s.Leader != "" && len(s.Followers) == s.Replicas-1
			for _, f := range s.Followers {
				ok = ok && f.Current && f.Lag == 0
			}
			if !ok {
				current = false
				behind = append(behind, fmt.Sprintf("%s (leader %q, followers %+v)", s.Name, s.Leader, s.Followers))
			}
		}
		if current {
			return ci
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("streams not current after %s: %v %v", d, behind, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func streamsOf(ci *spool.ClusterInfo) []spool.ClusterStream {
	if ci == nil {
		return nil
	}
	return ci.Streams
}

func others(all []*node, not ...*node) []*node {
	var out []*node
	for _, n := range all {
		skip := false
		for _, x := range not {
			skip = skip || n == x
		}
		if !skip {
			out = append(out, n)
		}
	}
	return out
}

// load runs producers and workers across the nodes and keeps what the guarantees are
// checked against: what was acknowledged, and when each job was handed out.
type load struct {
	lease    time.Duration
	mu       sync.Mutex
	enqueued map[uint64]bool
	acked    map[uint64]time.Time // ack answered
	// lastSent is when the request of a job's latest reservation was sent.
	lastSent   map[uint64]time.Time
	violations []string
	nAcked     atomic.Int64
	notStored  atomic.Int64 // items whose enqueue failed for good (not acknowledged)
	stop       context.CancelFunc
	wg         sync.WaitGroup
}

func startLoad(c *testCluster, queue string, lease time.Duration) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{lease: lease, enqueued: map[uint64]bool{}, acked: map[uint64]time.Time{}, lastSent: map[uint64]time.Time{}, stop: cancel}
	for i := range 3 {
		// Each client starts at another node and fails over to the others.
		order := []*node{c.nodes[i], c.nodes[(i+1)%3], c.nodes[(i+2)%3]}
		cl := c.client(order, spool.WithTimeout(10*time.Second))
		l.wg.Go(func() { l.produce(ctx, cl, queue) })
		l.wg.Go(func() { l.work(ctx, cl, queue) })
	}
	return l
}

func (l *load) produce(ctx context.Context, cl *spool.Client, queue string) {
	for ctx.Err() == nil {
		jobs := make([]spool.BatchJob, 10)
		for i := range jobs {
			jobs[i] = spool.BatchJob{Type: "t", Payload: i}
		}
		res, err := cl.EnqueueBatch(ctx, queue, jobs)
		if err != nil {
			continue // not acknowledged: nothing to check
		}
		l.mu.Lock()
		for _, r := range res {
			if r.Err == nil {
				l.enqueued[r.ID] = true
			} else {
				l.notStored.Add(1)
			}
		}
		l.mu.Unlock()
		// ~100 jobs/s in all: a steady load the workers keep up with, not a flood of the
		// machine's cores (three nodes share them).
		time.Sleep(300 * time.Millisecond)
	}
}

func (l *load) work(ctx context.Context, cl *spool.Client, queue string) {
	for ctx.Err() == nil {
		sent := time.Now()
		res, err := cl.Reserve(ctx, spool.ReserveOptions{Queues: []string{queue}, Max: 20, Wait: time.Second})
		if err != nil || len(res.Jobs) == 0 {
			continue
		}
		got := time.Now()
		acks := make([]spool.BatchAck, len(res.Jobs))
		l.mu.Lock()
		for i, j := range res.Jobs {
			if at, ok := l.acked[j.ID]; ok {
				l.violations = append(l.violations, fmt.Sprintf("job %d, acked at %s, handed out again at %s", j.ID, at.Format(time.StampMilli), got.Format(time.StampMilli)))
			}
			if prev, ok := l.lastSent[j.ID]; ok && got.Before(prev.Add(l.lease)) {
				l.violations = append(l.violations, fmt.Sprintf("job %d handed out at %s while its lease from a request sent at %s was valid",
					j.ID, got.Format(time.StampMilli), prev.Format(time.StampMilli)))
			}
			l.lastSent[j.ID] = sent
			acks[i] = spool.BatchAck{ID: j.ID, LeaseToken: j.LeaseToken}
		}
		l.mu.Unlock()
		ar, err := cl.AckBatch(ctx, acks)
		if err != nil {
			continue
		}
		now := time.Now()
		l.mu.Lock()
		for _, a := range ar {
			if a.Err == nil && a.State == spool.StateSucceeded {
				l.acked[a.ID] = now
				l.nAcked.Add(1)
			}
		}
		l.mu.Unlock()
	}
}

// waitAcked waits until n more acks were answered than at the call, for up to d.
func (l *load) waitAcked(t *testing.T, n int64, d time.Duration) {
	t.Helper()
	want := l.nAcked.Load() + n
	deadline := time.Now().Add(d)
	for l.nAcked.Load() < want {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d acks after %s", l.nAcked.Load(), want, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// finish stops the load, drains the queue through every node and checks the guarantees:
// no acknowledged enqueue lost, no acknowledged ack turned back, no job handed out twice
// while a lease on it was valid.
func (l *load) finish(t *testing.T, c *testCluster, queue string) {
	t.Helper()
	l.stop()
	l.wg.Wait()
	cl := c.client(c.nodes)
	// Leases that died with a node come back when they end: drain until two empty
	// long polls in a row.
	drained := map[uint64]bool{}
	for empty := 0; empty < 2; {
		res, err := cl.Reserve(context.Background(), spool.ReserveOptions{Queues: []string{queue}, Max: 200, Wait: l.lease + time.Second})
		if err != nil {
			t.Fatalf("drain: %v", err)
		}
		if len(res.Jobs) == 0 {
			empty++
			continue
		}
		empty = 0
		acks := make([]spool.BatchAck, len(res.Jobs))
		for i, j := range res.Jobs {
			if _, ok := l.acked[j.ID]; ok {
				l.violations = append(l.violations, fmt.Sprintf("job %d, acked, handed out again in the drain", j.ID))
			}
			drained[j.ID] = true
			acks[i] = spool.BatchAck{ID: j.ID, LeaseToken: j.LeaseToken}
		}
		if _, err := cl.AckBatch(context.Background(), acks); err != nil {
			t.Fatalf("drain ack: %v", err)
		}
	}
	lost := 0
	for id := range l.enqueued {
		if _, ok := l.acked[id]; ok || drained[id] {
			continue
		}
		// An ack stored whose answer was cut off by a kill: succeeded, not lost.
		if j, err := cl.Job(context.Background(), id); err == nil && j.State == spool.StateSucceeded {
			continue
		}
		lost++
		if lost <= 5 {
			t.Errorf("job %d was enqueued (acknowledged) and is neither succeeded nor offered again", id)
		}
	}
	for id := range l.acked {
		if j, err := cl.Job(context.Background(), id); err != nil || j.State != spool.StateSucceeded {
			t.Errorf("job %d, acked, is now %v (%v)", id, j, err)
			break
		}
	}
	for i, v := range l.violations {
		if i == 5 {
			break
		}
		t.Error(v)
	}
	if lost > 0 || len(l.violations) > 0 {
		t.Fatalf("%d of %d acknowledged enqueues lost; %d violations", lost, len(l.enqueued), len(l.violations))
	}
	t.Logf("%d jobs enqueued (acknowledged), %d acked under load, %d drained, %d items not stored (answered as such)",
		len(l.enqueued), len(l.acked), len(drained), l.notStored.Load())
}

// probe starts an enqueue every 20ms through the given nodes, without waiting for the ones
// before (an enqueue caught by a node's death waits for its timeout, which would hide when
// writes resumed), and reports the longest time between two stored enqueues: the
// unavailability window.
type probe struct {
	mu      sync.Mutex
	last    time.Time
	longest time.Duration
	stop    context.CancelFunc
	done    chan struct{}
}

func startProbe(c *testCluster, nodes []*node, queue string) *probe {
	ctx, cancel := context.WithCancel(context.Background())
	p := &probe{last: time.Now(), stop: cancel, done: make(chan struct{})}
	cl := c.client(nodes, spool.WithRetryFor(0), spool.WithTimeout(5*time.Second))
	go func() {
		defer close(p.done)
		var wg sync.WaitGroup
		defer wg.Wait()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			wg.Go(func() {
				if _, err := cl.Enqueue(ctx, queue, "t", nil); err == nil {
					now := time.Now()
					p.mu.Lock()
					p.longest = max(p.longest, now.Sub(p.last))
					p.last = now
					p.mu.Unlock()
				}
			})
		}
	}()
	return p
}

// probeQueue makes a queue held by the same stream as queue (queues share shard streams)
// and returns its name, so that a probe measures the writes of that stream.
func (c *testCluster) probeQueue(queue string) string {
	c.t.Helper()
	cl := c.client(c.nodes)
	for i := range 64 {
		name := fmt.Sprintf("probe%d", i)
		if _, err := cl.UpdateQueue(context.Background(), name, spool.QueueSettings{}); err != nil {
			c.t.Fatal(err)
		}
		ci, err := cl.Cluster(context.Background(), queue, name)
		if err != nil {
			c.t.Fatal(err)
		}
		if ci.QueueStreams[name] == ci.QueueStreams[queue] {
			return name
		}
	}
	c.t.Fatalf("no queue of 64 shares the stream of %s", queue)
	return ""
}

// window stops the probe and returns the longest gap between stored enqueues.
func (p *probe) window() time.Duration {
	p.mu.Lock()
	longest := max(p.longest, time.Since(p.last))
	p.mu.Unlock()
	p.stop()
	<-p.done
	return longest
}

// Three nodes under a load of producers and workers spread over them: SIGKILL of the
// leader of the busy queue's stream, then of a follower, each restarted on its data; a
// rolling restart of all three (SIGTERM); one node stopped (SIGSTOP) while the majority goes
// on. Through all of it: no acknowledged enqueue lost, no acknowledged ack turned back,
// no job handed out while a lease on it was valid. Then two nodes stopped: the one left is a
// minority and refuses writes with 503 unavailable, /healthz 503, until they come back.
func TestClusterSurvivesNodeLoss(t *testing.T) {
	c := startTestCluster(t)
	const queue, lease = "load", 2 * time.Second
	admin := c.client(c.nodes)
	if _, err := admin.UpdateQueue(context.Background(), queue, spool.QueueSettings{Lease: lease, MaxAttempts: 1000}); err != nil {
		t.Fatal(err)
	}
	// Replicas per queue: a node knows its cluster's size (three), refuses five at once, and
	// places a queue of one replica in a stream of one.
	if _, err := admin.UpdateQueue(context.Background(), "five", spool.QueueSettings{Replicas: 5}); !errors.Is(err, spool.ErrReplicasUnavailable) || !strings.Contains(err.Error(), "this one has 3") {
		t.Fatalf("queue of 5 replicas on three nodes: %v", err)
	}
	if q, err := admin.UpdateQueue(context.Background(), "single", spool.QueueSettings{Replicas: 1}); err != nil || q.Replicas != 1 {
		t.Fatalf("queue of 1 replica: %+v %v", q, err)
	}
	if ci, err := admin.Cluster(context.Background(), "single"); err != nil || !slices.ContainsFunc(ci.Streams, func(s spool.ClusterStream) bool {
		return s.Name == ci.QueueStreams["single"] && s.Replicas == 1 && strings.HasSuffix(s.Name, "_R1")
	}) {
		t.Fatalf("cluster of the queue of 1 replica: %+v %v", ci, err)
	}
	probeQueue := c.probeQueue(queue)
	l := startLoad(c, queue, lease)
	l.waitAcked(t, 300, 60*time.Second)

	// The leader of the busy queue's stream.
	leader := c.leaderOf(queue, c.nodes)
	p := startProbe(c, others(c.nodes, leader), probeQueue)
	c.kill(leader)
	l.waitAcked(t, 300, 90*time.Second)
	t.Logf("SIGKILL of %s, leader of the queue's stream: writes stopped for at most %s", leader.name, p.window().Round(10*time.Millisecond))
	c.start(leader)
	c.waitHealthy(leader)

	// A follower.
	follower := others(c.nodes, c.leaderOf(queue, c.nodes))[0]
	p = startProbe(c, others(c.nodes, follower), probeQueue)
	c.kill(follower)
	l.waitAcked(t, 300, 90*time.Second)
	t.Logf("SIGKILL of %s, a follower: writes stopped for at most %s", follower.name, p.window().Round(10*time.Millisecond))
	c.start(follower)
	c.waitHealthy(follower)

	// Rolling restart.
	for _, n := range c.nodes {
		p = startProbe(c, others(c.nodes, n), probeQueue)
		c.stopGracefully(n)
		l.waitAcked(t, 100, 90*time.Second)
		c.start(n)
		c.waitHealthy(n)
		t.Logf("rolling restart of %s: writes stopped for at most %s", n.name, p.window().Round(10*time.Millisecond))
	}

	// One node cut off: the majority goes on.
	cut := c.nodes[2]
	c.signal(cut, syscall.SIGSTOP)
	l.waitAcked(t, 300, 90*time.Second)
	c.signal(cut, syscall.SIGCONT)
	c.waitHealthy(cut)
	l.finish(t, c, queue)

	// The restarted nodes caught up: every replica of the queue is current.
	c.waitCurrent(c.nodes[0], 30*time.Second, func(ci *spool.ClusterInfo, s spool.ClusterStream) bool {
		return s.Name == ci.QueueStreams[queue]
	}, queue)

	// Two nodes stopped: the one left cannot reach a majority.
	alone := c.nodes[0]
	for _, n := range c.nodes[1:] {
		c.signal(n, syscall.SIGSTOP)
	}
	cl := c.client([]*node{alone}, spool.WithRetryFor(0), spool.WithTimeout(30*time.Second))
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := cl.Enqueue(context.Background(), queue, "t", nil)
		var ae *spool.APIError
		if errors.As(err, &ae) && ae.Status == http.StatusServiceUnavailable && ae.Code == spool.CodeUnavailable {
			t.Logf("minority node refuses a write: %v", err)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the minority node still answers an enqueue with %v", err)
		}
	}
	deadline = time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + alone.http + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusServiceUnavailable {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the minority node's /healthz: %v %v", resp, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, n := range c.nodes[1:] {
		c.signal(n, syscall.SIGCONT)
	}
	for _, n := range c.nodes {
		c.waitHealthy(n)
	}
	if _, err := c.client([]*node{alone}).Enqueue(context.Background(), queue, "t", nil); err != nil {
		t.Fatalf("after the partition healed: %v", err)
	}
}
