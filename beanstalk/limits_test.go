package beanstalk_test

// Limits and bad clients: bad input never affects other connections or stored jobs; slow
// and silent clients are cut; the connection count is bounded; shutdown is graceful.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spoolq/spool/beanstalk"
	"github.com/spoolq/spool/engine"
	"github.com/spoolq/spool/internal/spooltest"
)

func TestBadClientsDoNotHurtOthers(t *testing.T) {
	e := start(t, beanstalk.Options{MaxJobSize: 1000, ReadTimeout: 2 * time.Second})
	good := e.dial(t)
	id := good.put(0, 0, 60, "precious")

	var wg sync.WaitGroup
	// Binary garbage, over-long lines, wrong counts, huge declared bodies, NULs.
	for i := range 4 {
		wg.Go(func() {
			nc, err := net.Dial("tcp", e.addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer nc.Close()
			r := rand.New(rand.NewPCG(uint64(i), 7))
			buf := make([]byte, 64<<10)
			for range 20 {
				for j := range buf {
					buf[j] = byte(r.Uint32())
				}
				nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
				if _, err := nc.Write(buf[:r.IntN(len(buf))]); err != nil {
					return // the server may close a connection it cannot make sense of
				}
			}
		})
	}
	wg.Go(func() {
		nc, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Error(err)
			return
		}
		defer nc.Close()
		fmt.Fprintf(nc, "put 0 0 1 4294967295\r\n%s", strings.Repeat("z", 1<<20))
		fmt.Fprintf(nc, "delete %d\r\n", id) // swallowed as part of the declared body
	})
	wg.Go(func() {
		nc, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Error(err)
			return
		}
		defer nc.Close()
		fmt.Fprintf(nc, "put 0 0 1 5\r\nabc\r\n")        // short body: waits for 2 more bytes
		fmt.Fprintf(nc, "%s", strings.Repeat("\r", 500)) // ... gets CRs, EXPECTED_CRLF
		fmt.Fprintf(nc, "%s\r\n", strings.Repeat("use x", 1000))
		fmt.Fprintf(nc, "ignore default\r\nwatch \x00\r\nkick -1\r\nbury %d 0\r\nrelease %d 0 0\r\ntouch %d\r\n", id, id, id)
	})
	// Meanwhile the good client works normally.
	for i := range 20 {
		good.expectJob(fmt.Sprintf("peek %d", id), "FOUND", id, "precious")
		good.put(5, 0, 60, fmt.Sprint(i))
	}
	wg.Wait()
	good.expectJob(fmt.Sprintf("peek %d", id), "FOUND", id, "precious")
	good.expectJob("reserve", "RESERVED", id, "precious")
	j, err := e.eng.Job(ctxT(t), id)
	if err != nil || j.State != engine.StateReserved || string(j.Payload) != "precious" || j.Kicks != 0 || j.Buries != 0 {
		t.Fatalf("stored job after the garbage: %+v %v", j, err)
	}
	good.expect(fmt.Sprintf("delete %d", id), "DELETED")
}

func TestSlowClientIsCut(t *testing.T) {
	e := start(t, beanstalk.Options{ReadTimeout: 500 * time.Millisecond})
	// A command line that never ends.
	slow := e.dial(t)
	slow.send("stats-tu")
	start := time.Now()
	slow.closed()
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("cut after %v", el)
	}
	// A body that never comes.
	body := e.dial(t)
	body.send("put 0 0 10 100\r\nabc")
	body.closed()
	// A quiet connection between commands stays open (beanstalkd has no idle timeout).
	idle := e.dial(t)
	time.Sleep(time.Second)
	idle.expect("list-tube-used", "USING default")
}

func TestIdleTimeout(t *testing.T) {
	e := start(t, beanstalk.Options{IdleTimeout: 300 * time.Millisecond})
	c := e.dial(t)
	c.expect("use x", "USING x")
	start := time.Now()
	c.closed()
	if el := time.Since(start); el < 250*time.Millisecond || el > 5*time.Second {
		t.Fatalf("closed after %v, want about 300ms", el)
	}
	// A waiting reserve is not idle.
	w := e.dial(t)
	start = time.Now()
	w.expect("reserve-with-timeout 1", "TIMED_OUT")
	if time.Since(start) < 900*time.Millisecond {
		t.Fatal("reserve cut short")
	}
}

func TestMaxConns(t *testing.T) {
	e := start(t, beanstalk.Options{MaxConns: 2})
	a, b := e.dial(t), e.dial(t)
	a.expect("use a", "USING a")
	b.expect("use b", "USING b")
	// Over the cap: a reply the client can read, then the end of the connection.
	c := e.dial(t)
	if l := c.line(); l != "OUT_OF_MEMORY" {
		t.Fatalf("connection over the cap: got %q, want OUT_OF_MEMORY", l)
	}
	c.closed()
	// The connections under the cap still work.
	a.expect("list-tube-used", "USING a")
	b.expect("list-tube-used", "USING b")
	a.nc.Close()
	spooltest.Eventually(t, 5*time.Second, func() error {
		nc, err := net.Dial("tcp", e.addr)
		if err != nil {
			return err
		}
		defer nc.Close()
		fmt.Fprint(nc, "list-tube-used\r\n")
		nc.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 64)
		n, err := nc.Read(buf)
		if err != nil || string(buf[:n]) != "USING default\r\n" {
			return fmt.Errorf("third connection after one closed: %q %v", buf[:n], err)
		}
		return nil
	})
}

func TestWatchAndHoldBounds(t *testing.T) {
	e := start(t, beanstalk.Options{MaxWatched: 3, MaxHeld: 2})
	c := e.dial(t)
	c.expect("watch a", "WATCHING 2")
	c.expect("watch b", "WATCHING 3")
	c.expect("watch c", "OUT_OF_MEMORY")
	c.expect("watch b", "WATCHING 3")
	for range 3 {
		c.put(0, 0, 60, "j")
	}
	c.reserve("reserve")
	c.reserve("reserve")
	c.expect("reserve", "OUT_OF_MEMORY")
}

// TestManyWatchedTubes watches more tubes than one engine reservation takes.
func TestManyWatchedTubes(t *testing.T) {
	e := start(t, beanstalk.Options{})
	c := e.dial(t)
	for i := range engine.MaxReserveQueues + 20 {
		c.expect(fmt.Sprintf("watch t%d", i), fmt.Sprintf("WATCHING %d", i+2))
	}
	p := e.dial(t)
	p.expect(fmt.Sprintf("use t%d", engine.MaxReserveQueues+10), fmt.Sprintf("USING t%d", engine.MaxReserveQueues+10))
	id := p.put(0, 0, 60, "far")
	c.expectJob("reserve-with-timeout 0", "RESERVED", id, "far")
	go func() {
		time.Sleep(500 * time.Millisecond)
		p.put(0, 0, 60, "later")
	}()
	_, body := c.reserve("reserve-with-timeout 10")
	if body != "later" {
		t.Fatalf("got %q", body)
	}
}

func TestShutdown(t *testing.T) {
	eng := startEngine(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := beanstalk.New(eng, beanstalk.Options{Logger: testLogger()})
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background(), ln) }()
	e := &env{eng: eng, srv: s, addr: ln.Addr().String()}

	holder, waiter := e.dial(t), e.dial(t)
	id := holder.put(0, 0, 600, "held")
	holder.expectJob("reserve", "RESERVED", id, "held")
	waiter.expect("watch nothing-here", "WATCHING 2")
	waiter.send("reserve\r\n")
	time.Sleep(200 * time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("shutdown took %v: the waiting reserve was not ended", el)
	}
	if err := <-done; err != beanstalk.ErrServerClosed {
		t.Fatalf("Serve returned %v", err)
	}
	waiter.closed()
	holder.closed()
	// The held job went back to ready before Shutdown returned.
	j, err := eng.Job(ctxT(t), id)
	if err != nil || j.State != engine.StateReady {
		t.Fatalf("held job after shutdown: %+v %v", j, err)
	}
	if _, err := net.DialTimeout("tcp", e.addr, time.Second); err == nil {
		t.Fatal("still accepting connections")
	}
}
