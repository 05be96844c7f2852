// Command spool-bench-beanstalk runs the same beanstalkd load (put, reserve, delete; several
// producer and consumer connections, the reference Go client) against beanstalkd 1.12 with
// its binlog on and against spool's beanstalkd port, one after the other in one run, and
// reports the jobs/s of each and their ratio.
//
//	go run ./cmd/spool-bench-beanstalk -duration 15s -p 4 -c 4
//
// By default it starts both servers itself: beanstalkd (-beanstalkd, found on PATH) with
// -b in a temporary directory, and a spool node in this process (the embedded engine in a
// temporary directory, the beanstalkd front on a loopback port). -beanstalkd-addr and
// -spool-addr use running servers instead (the spool node must run with --beanstalkd).
//
// A job counts when its delete is answered. Producers put as fast as they can; consumers
// reserve (with a 1s timeout) and delete. The first -warmup of each run is not counted.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	gobeanstalk "github.com/beanstalkd/go-beanstalk"

	"github.com/spoolq/spool/server"
)

type config struct {
	duration, warmup    time.Duration
	producers, consumer int
	size                int
	tube                string
	beanstalkd          string
	beanstalkdAddr      string
	beanstalkdArgs      string
	spoolAddr           string
	spoolFsync          string
	only                string
	cpuProfile          string
}

type result struct {
	name           string
	puts, deletes  int64
	elapsed        time.Duration
	putErr, resErr error
}

func (r result) rate() float64 { return float64(r.deletes) / r.elapsed.Seconds() }

func main() {
	var c config
	flag.DurationVar(&c.duration, "duration", 15*time.Second, "measured time per server")
	flag.DurationVar(&c.warmup, "warmup", 2*time.Second, "time per server before measuring")
	flag.IntVar(&c.producers, "p", 4, "producer connections")
	flag.IntVar(&c.consumer, "c", 4, "consumer connections")
	flag.IntVar(&c.size, "size", 128, "job body bytes")
	flag.StringVar(&c.tube, "tube", "bench", "tube")
	flag.StringVar(&c.beanstalkd, "beanstalkd", "beanstalkd", "beanstalkd binary to start")
	flag.StringVar(&c.beanstalkdAddr, "beanstalkd-addr", "", "use the beanstalkd at host:port instead of starting one")
	flag.StringVar(&c.beanstalkdArgs, "beanstalkd-fsync", "", "beanstalkd fsync flag: \"\" (default: -f 50ms), \"-F\" (never) or \"-f0\" (always)")
	flag.StringVar(&c.spoolAddr, "spool-addr", "", "use spool's beanstalkd port at host:port instead of starting a node")
	flag.StringVar(&c.spoolFsync, "spool-fsync", "", "embedded engine sync policy (spool serve --fsync): \"\" (JetStream's default) or \"always\"")
	flag.StringVar(&c.only, "only", "", "run against one server only: beanstalkd or spool")
	flag.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the measured spool run (in-process node and client) to this file")
	flag.Parse()
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "spool-bench-beanstalk:", err)
		os.Exit(1)
	}
}

func run(c config) error {
	fmt.Printf("load: %d producers, %d consumers, %d-byte jobs, %s warmup + %s measured per server\n",
		c.producers, c.consumer, c.size, c.warmup, c.duration)
	var results []result
	if c.only == "" || c.only == "beanstalkd" {
		addr, stop, err := beanstalkd(c)
		if err != nil {
			return err
		}
		r := load(c, "beanstalkd", addr, nil)
		stop()
		results = append(results, r)
		report(r)
	}
	if c.only == "" || c.only == "spool" {
		addr, stop, err := spool(c)
		if err != nil {
			return err
		}
		var prof func()
		if c.cpuProfile != "" {
			f, err := os.Create(c.cpuProfile)
			if err != nil {
				return err
			}
			prof = func() {
				time.Sleep(c.warmup)
				pprof.StartCPUProfile(f)
			}
			defer func() { pprof.StopCPUProfile(); f.Close() }()
		}
		r := load(c, "spool", addr, prof)
		pprof.StopCPUProfile()
		stop()
		results = append(results, r)
		report(r)
	}
	if len(results) == 2 && results[0].rate() > 0 {
		fmt.Printf("ratio spool/beanstalkd: %.3f\n", results[1].rate()/results[0].rate())
	}
	for _, r := range results {
		if r.putErr != nil || r.resErr != nil {
			return fmt.Errorf("%s: put: %v, reserve/delete: %v", r.name, r.putErr, r.resErr)
		}
	}
	return nil
}

func report(r result) {
	fmt.Printf("%-10s %8.0f jobs/s completed (put+reserve+delete), %8.0f puts/s, %d jobs in %s\n",
		r.name, r.rate(), float64(r.puts)/r.elapsed.Seconds(), r.deletes, r.elapsed.Round(time.Millisecond))
}

// beanstalkd starts beanstalkd with its binlog in a temporary directory.
func beanstalkd(c config) (string, func(), error) {
	if c.beanstalkdAddr != "" {
		return c.beanstalkdAddr, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "bench-beanstalkd-")
	if err != nil {
		return "", nil, err
	}
	port, err := freePort()
	if err != nil {
		return "", nil, err
	}
	args := []string{"-l", "127.0.0.1", "-p", strconv.Itoa(port), "-b", dir}
	if c.beanstalkdArgs != "" {
		args = append(args, c.beanstalkdArgs)
	}
	cmd := exec.Command(c.beanstalkd, args...)
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("start beanstalkd: %w", err)
	}
	fmt.Printf("beanstalkd: %s %v\n", c.beanstalkd, args)
	stop := func() {
		cmd.Process.Kill()
		cmd.Wait()
		os.RemoveAll(dir)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if err := waitUp(addr); err != nil {
		stop()
		return "", nil, err
	}
	return addr, stop, nil
}

// spool starts a spool node in this process, the beanstalkd front on a loopback port.
func spool(c config) (string, func(), error) {
	if c.spoolAddr != "" {
		return c.spoolAddr, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "bench-spool-")
	if err != nil {
		return "", nil, err
	}
	ready := make(chan server.Addrs, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- server.Run(ctx, server.Config{
			DataDir: dir, HTTPAddr: "127.0.0.1:0", BeanstalkAddr: "127.0.0.1:0", Fsync: c.spoolFsync,
			Logger: slog.New(slog.DiscardHandler), Version: "bench",
			Ready: func(a server.Addrs) { ready <- a },
		})
	}()
	stop := func() {
		cancel()
		<-done
		os.RemoveAll(dir)
	}
	select {
	case a := <-ready:
		fmt.Printf("spool: in-process node, data in %s, fsync %q, beanstalkd front on %s\n", dir, c.spoolFsync, a.Beanstalk)
		return a.Beanstalk, stop, nil
	case err := <-done:
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("start spool: %v", err)
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func waitUp(addr string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not up: %w", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// load runs the producers and consumers against addr for warmup + duration.
func load(c config, name, addr string, atStart func()) result {
	var puts, deletes atomic.Int64
	var counting atomic.Bool
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	r := result{name: name}
	fail := func(p *error, err error) {
		mu.Lock()
		if *p == nil {
			*p = err
		}
		mu.Unlock()
	}
	body := make([]byte, c.size)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	for range c.producers {
		wg.Go(func() {
			conn, err := gobeanstalk.Dial("tcp", addr)
			if err != nil {
				fail(&r.putErr, err)
				return
			}
			defer conn.Close()
			tube := gobeanstalk.NewTube(conn, c.tube)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := tube.Put(body, 1024, 0, time.Minute); err != nil {
					fail(&r.putErr, err)
					return
				}
				if counting.Load() {
					puts.Add(1)
				}
			}
		})
	}
	for range c.consumer {
		wg.Go(func() {
			conn, err := gobeanstalk.Dial("tcp", addr)
			if err != nil {
				fail(&r.resErr, err)
				return
			}
			defer conn.Close()
			ts := gobeanstalk.NewTubeSet(conn, c.tube)
			for {
				select {
				case <-stop:
					return
				default:
				}
				id, _, err := ts.Reserve(time.Second)
				var ce gobeanstalk.ConnError
				if errors.As(err, &ce) && (ce.Err == gobeanstalk.ErrTimeout || ce.Err == gobeanstalk.ErrDeadline) {
					continue
				}
				if err != nil {
					fail(&r.resErr, err)
					return
				}
				if err := conn.Delete(id); err != nil {
					fail(&r.resErr, err)
					return
				}
				if counting.Load() {
					deletes.Add(1)
				}
			}
		})
	}
	if atStart != nil {
		atStart() // sleeps the warmup
	} else {
		time.Sleep(c.warmup)
	}
	counting.Store(true)
	start := time.Now()
	time.Sleep(c.duration)
	counting.Store(false)
	r.elapsed = time.Since(start)
	close(stop)
	wg.Wait()
	r.puts, r.deletes = puts.Load(), deletes.Load()
	return r
}
