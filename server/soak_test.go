package server_test

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/spoolq/spool"
)

// TestClusterSoak runs the guarantees of TestClusterSurvivesNodeLoss for as long as
// $SPOOL_SOAK says (e.g. 10m): under a steady load across three nodes, one node after the
// other is killed (SIGKILL), stopped (SIGTERM) or frozen (SIGSTOP for a few seconds), and
// started again, round after round. At the end: no acknowledged enqueue lost, no
// acknowledged ack turned back, no job handed out while a lease on it was valid. Without
// $SPOOL_SOAK it does not run: the suite has the short form (docs/cluster.md has the last
// long result).
func TestClusterSoak(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("SPOOL_SOAK"))
	if err != nil || d <= 0 {
		t.Skip("set SPOOL_SOAK to a duration (e.g. 10m) to run the soak test")
	}
	c := startTestCluster(t)
	const queue, lease = "soak", 2 * time.Second
	if _, err := c.client(c.nodes).UpdateQueue(context.Background(), queue, spool.QueueSettings{Lease: lease, MaxAttempts: 1000}); err != nil {
		t.Fatal(err)
	}
	probeQueue := c.probeQueue(queue)
	l := startLoad(c, queue, lease)
	l.waitAcked(t, 300, 60*time.Second)
	end := time.Now().Add(d)
	var worst [3]time.Duration
	kinds := [3]string{"SIGKILL", "SIGTERM", "SIGSTOP"}
	for round := 0; time.Now().Before(end); round++ {
		n := c.nodes[round%3]
		kind := (round / 3) % 3
		p := startProbe(c, others(c.nodes, n), probeQueue)
		switch kind {
		case 0:
			c.kill(n)
		case 1:
			c.stopGracefully(n)
		case 2:
			c.signal(n, syscall.SIGSTOP)
		}
		l.waitAcked(t, 100, 90*time.Second) // the two others go on
		gap := p.window()
		worst[kind] = max(worst[kind], gap)
		if kind == 2 {
			c.signal(n, syscall.SIGCONT)
		} else {
			c.start(n)
		}
		c.waitHealthy(n)
		l.waitAcked(t, 100, 90*time.Second)
		t.Logf("round %d: %s of %s, writes stopped for at most %s; %d acks so far", round+1, kinds[kind], n.name, gap.Round(10*time.Millisecond), l.nAcked.Load())
	}
	l.finish(t, c, queue)
	t.Logf("soak of %s: longest write gap after SIGKILL %s, SIGTERM %s, SIGSTOP %s", d,
		worst[0].Round(10*time.Millisecond), worst[1].Round(10*time.Millisecond), worst[2].Round(10*time.Millisecond))
}
