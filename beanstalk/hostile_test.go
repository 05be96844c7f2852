package beanstalk_test

// Hostile clients: one that pipelines reserves and never reads its replies, one that
// vanishes, puts over the memory budget. Each holds bounded resources, is cut, and loses
// no stored job; the process's goroutines and descriptors return to their baseline.

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/spoolq/spool/beanstalk"
	"github.com/spoolq/spool/internal/budget"
	"github.com/spoolq/spool/internal/spooltest"
)

// putMany puts n jobs of body in one pipelined write and returns their ids.
func putMany(t *testing.T, c *client, n int, body string) []uint64 {
	t.Helper()
	var b strings.Builder
	for range n {
		fmt.Fprintf(&b, "put 0 0 600 %d\r\n%s\r\n", len(body), body)
	}
	go func() { c.nc.Write([]byte(b.String())) }() // the replies are read meanwhile
	ids := make([]uint64, n)
	for i := range ids {
		l := c.line()
		if _, err := fmt.Sscanf(l, "INSERTED %d", &ids[i]); err != nil {
			t.Fatalf("put %d: %q", i, l)
		}
	}
	return ids
}

// hog dials and sends cmd n times in the background, never reading a byte.
func hog(t *testing.T, addr, cmd string, n int) net.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	go nc.Write([]byte(strings.Repeat(cmd, n))) // blocks once the server stops reading; ends at Close
	return nc
}

// readyAll reserves every job of the default tube at once with c and checks the ids.
func readyAll(t *testing.T, c *client, ids []uint64) {
	t.Helper()
	want := make(map[uint64]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	for range ids {
		id, _ := c.reserve("reserve-with-timeout 0")
		if !want[id] {
			t.Fatalf("reserved %d: not one of the jobs, or twice", id)
		}
		delete(want, id)
	}
	c.expect("reserve-with-timeout 0", "TIMED_OUT")
}

func TestClientThatNeverReadsIsCut(t *testing.T) {
	e := start(t, beanstalk.Options{MaxJobSize: 64 << 10, WriteTimeout: 300 * time.Millisecond})
	p := e.dial(t)
	// More replies than the socket buffers hold: the server's writes to the hog block.
	const n = 400
	ids := putMany(t, p, n, strings.Repeat("x", 60<<10))
	base := spooltest.TakeResources()

	h := hog(t, e.addr, "reserve\r\n", n)
	// The hog holds jobs while the server writes to it, then is cut after the write
	// timeout: its connection ends and every job it held is back in ready.
	spooltest.Eventually(t, 30*time.Second, func() error {
		st := p.dict("stats")
		if st["current-connections"] != "1" || st["current-jobs-ready"] != fmt.Sprint(n) {
			return fmt.Errorf("connections %s, ready %s of %d", st["current-connections"], st["current-jobs-ready"], n)
		}
		return nil
	})
	h.Close()
	spooltest.SettleTo(t, base, 5, 10*time.Second)
	readyAll(t, p, ids)
}

// A client gone without a word (its socket left open, never read) holds its jobs until their
// lease ends, and its connection until a write to it times out.
func TestVanishedClientHoldsOnlyItsLeases(t *testing.T) {
	e := start(t, beanstalk.Options{WriteTimeout: 300 * time.Millisecond})
	p := e.dial(t)
	var ids []uint64
	for range 3 {
		ids = append(ids, p.put(0, 0, 1, "short lease"))
	}
	h := hog(t, e.addr, "reserve\r\n", 3)
	spooltest.Eventually(t, 10*time.Second, func() error {
		if r := p.dict("stats")["current-jobs-reserved"]; r != "3" {
			return fmt.Errorf("%s reserved, want 3", r)
		}
		return nil
	})
	// Its leases (ttr 1s) end: the jobs are offered again while its connection is open.
	got := map[uint64]bool{}
	for range 3 {
		id, _ := p.reserve("reserve-with-timeout 10")
		got[id] = true
	}
	for _, id := range ids {
		if !got[id] {
			t.Fatalf("job %d was not offered again after its lease ended", id)
		}
	}
	h.Close()
}

// Shutdown does not wait for a client that does not read its replies.
func TestShutdownCutsClientThatNeverReads(t *testing.T) {
	eng := startEngine(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// The write timeout is longer than the shutdown's grace: only the stop's cut ends it.
	s := beanstalk.New(eng, beanstalk.Options{MaxJobSize: 64 << 10, WriteTimeout: time.Hour, Logger: testLogger()})
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background(), ln) }()
	e := &env{eng: eng, srv: s, addr: ln.Addr().String()}
	p := e.dial(t)
	const n = 400
	ids := putMany(t, p, n, strings.Repeat("y", 60<<10))
	hog(t, e.addr, "reserve\r\n", n)
	spooltest.Eventually(t, 30*time.Second, func() error {
		if r := p.dict("stats")["current-jobs-reserved"]; r == "0" {
			return fmt.Errorf("the hog holds nothing yet")
		}
		return nil
	})
	p.nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown waited for the client that does not read: %v", err)
	}
	<-done
	// Every job the hog held went back to ready on the way out.
	for _, id := range ids {
		j, err := eng.Job(ctxT(t), id)
		if err != nil || j.State != "ready" {
			t.Fatalf("job %d after shutdown: %+v %v", id, j, err)
		}
	}
}

func TestPutOverBudget(t *testing.T) {
	b := budget.New(100 << 10)
	e := start(t, beanstalk.Options{MaxJobSize: 64 << 10, Budget: b})
	c := e.dial(t)
	big := strings.Repeat("b", 60<<10) // costs twice its size: over the budget
	c.send(fmt.Sprintf("put 0 0 60 %d\r\n%s\r\n", len(big), big))
	if l := c.line(); l != "OUT_OF_MEMORY" {
		t.Fatalf("put over the budget: %q, want OUT_OF_MEMORY", l)
	}
	// The body was read away: the connection goes on, and a put that fits is stored.
	id := c.put(0, 0, 60, strings.Repeat("s", 10<<10))
	c.expectJob(fmt.Sprintf("peek %d", id), "FOUND", id, strings.Repeat("s", 10<<10))
	if b.Used() != 0 {
		t.Fatalf("budget holds %d bytes after the puts", b.Used())
	}
}
