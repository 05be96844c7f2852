// Command spool-bench drives a job server with producers and consumers and reports completed
// jobs/s, enqueue→start and end-to-end latency percentiles, and the server's CPU and memory.
//
// It speaks spool's HTTP API (batched or one job per request), the beanstalkd protocol and
// plain JetStream, so the same load runs against spool's HTTP API, spool's beanstalkd port,
// beanstalkd itself and the raw JetStream ceiling (through a node's --nats-listen port):
//
//	spool-bench -mode http-batch -target http://127.0.0.1:7420 -p 4 -c 4 -jobs 200000
//	spool-bench -mode beanstalkd -target 127.0.0.1:11300 -p 4 -c 4 -jobs 200000 -pid $(pgrep beanstalkd)
//	spool-bench -mode http-single -rate 1000 -duration 30s        # latency at a fixed arrival rate
//	spool-bench -mode queues -queues 5000 -p 8                     # what queues cost the server
//
// Every job carries its enqueue time, so latencies are measured on this machine's clock.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type config struct {
	mode      string
	target    string
	producers int
	consumers int
	jobs      int64
	duration  time.Duration
	rate      float64
	size      int
	batch     int
	queues    int
	queue     string
	pid       int
	quiet     bool
	delay     time.Duration
	settle    time.Duration
	slow      int
}

// driver is one protocol's way of enqueuing and completing jobs.
type driver interface {
	// producer enqueues up to n jobs (at most cfg.batch at once), calling stamp for each
	// payload's send time. It returns the number stored.
	produce(ctx context.Context, queue string, payloads [][]byte) (int, error)
	// consume reserves up to max jobs (waiting up to wait), completes them and returns their
	// payloads with the time each was received.
	consume(ctx context.Context, queues []string, max int, wait time.Duration, got func(payload []byte, received time.Time)) (int, error)
	close()
}

func main() {
	var c config
	flag.StringVar(&c.mode, "mode", "http-batch", "http-batch, http-single, beanstalkd, nats (raw JetStream: the ceiling), or queues (the cost of -queues queues)")
	flag.StringVar(&c.target, "target", "", "server: an http:// URL, or host:port for beanstalkd (default per mode)")
	flag.IntVar(&c.producers, "p", 4, "producers (connections)")
	flag.IntVar(&c.consumers, "c", 4, "consumers (connections); 0 only enqueues")
	flag.Int64Var(&c.jobs, "jobs", 100000, "jobs to run (0: until -duration)")
	flag.DurationVar(&c.duration, "duration", 0, "run for this long (0: until -jobs are done)")
	flag.Float64Var(&c.rate, "rate", 0, "fixed arrival rate in jobs/s over all producers (0: as fast as possible)")
	flag.IntVar(&c.size, "size", 128, "payload bytes")
	flag.IntVar(&c.batch, "batch", 100, "jobs per request in http-batch mode (enqueue, reserve and ack)")
	flag.IntVar(&c.queues, "queues", 1, "spread the jobs over this many queues")
	flag.StringVar(&c.queue, "queue", "bench", "queue name (prefix when -queues > 1)")
	flag.IntVar(&c.pid, "pid", 0, "server process id, to report its CPU and memory (spool over HTTP: read from /metrics when 0)")
	flag.BoolVar(&c.quiet, "quiet", false, "no progress line")
	flag.DurationVar(&c.delay, "delay", 0, "enqueue delayed jobs (e.g. 1h: to measure the cost of pending schedules)")
	flag.DurationVar(&c.settle, "settle", 0, "-mode queues: measure again after the queues were idle this long")
	flag.IntVar(&c.slow, "slow", 0, "hold this many slowloris connections (a header sent a byte a second) to the HTTP target during the run")
	flag.Parse()
	if c.target == "" {
		c.target = map[string]string{"beanstalkd": "127.0.0.1:11300", "nats": "nats://127.0.0.1:4222"}[c.mode]
		if strings.HasPrefix(c.mode, "http") {
			c.target = "http://127.0.0.1:7420"
		}
	}
	if c.jobs == 0 && c.duration == 0 {
		fmt.Fprintln(os.Stderr, "spool-bench: set -jobs or -duration")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var slow *slowClients
	if c.slow > 0 {
		slow = startSlowClients(ctx, c.target, c.slow)
	}
	if c.mode == "queues" {
		if err := runQueues(ctx, c); err != nil {
			fmt.Fprintln(os.Stderr, "spool-bench:", err)
			os.Exit(1)
		}
		return
	}
	r, err := run(ctx, c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "spool-bench:", err)
		os.Exit(1)
	}
	r.print(os.Stdout, c)
	if slow != nil {
		fmt.Printf("slow connections: %d held, %d cut by the server\n", c.slow, slow.stop())
	}
}

func newDriver(c config) (func() (driver, error), error) {
	switch c.mode {
	case "http-batch", "http-single":
		return func() (driver, error) { return newHTTPDriver(c.target, c.mode == "http-batch", c.delay), nil }, nil
	case "beanstalkd":
		return func() (driver, error) { return newBeanstalkDriver(c.target, c.delay) }, nil
	case "nats":
		return func() (driver, error) { return newNATSDriver(c.target) }, nil
	}
	return nil, fmt.Errorf("unknown -mode %q", c.mode)
}

// stallTimeout is how long a run goes on with every request failing.
const stallTimeout = 10 * time.Second

type result struct {
	enqueued, completed int64
	elapsed             time.Duration
	startLat, e2eLat    []time.Duration
	cpu                 time.Duration // server CPU time during the run
	rss                 int64         // server resident memory at the end, bytes
	errors              int64
}

func run(ctx context.Context, c config) (*result, error) {
	mk, err := newDriver(c)
	if err != nil {
		return nil, err
	}
	queues := []string{c.queue}
	if c.queues > 1 {
		queues = queues[:0]
		for i := 0; i < c.queues; i++ {
			queues = append(queues, fmt.Sprintf("%s-%d", c.queue, i))
		}
	}
	batch := 1
	if c.mode == "http-batch" || c.mode == "nats" {
		batch = c.batch
	}
	probe := newProbe(c)
	cpu0, _ := probe.cpu()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if c.duration > 0 {
		var cancelT context.CancelFunc
		ctx, cancelT = context.WithTimeout(ctx, c.duration)
		defer cancelT()
	}
	res := &result{}
	var enqueued, completed, errs atomic.Int64
	var mu sync.Mutex
	var pwg, cwg sync.WaitGroup
	start := time.Now()

	// Producers claim jobs from a shared budget so that -jobs is exact.
	var budget atomic.Int64
	budget.Store(c.jobs)
	take := func(n int) int {
		if c.jobs == 0 {
			return n
		}
		left := budget.Add(-int64(n))
		if left >= 0 {
			return n
		}
		return max(0, n+int(left))
	}
	var tick <-chan time.Time
	if c.rate > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) * float64(batch) / c.rate))
		defer t.Stop()
		tick = t.C
	}
	for p := 0; p < c.producers; p++ {
		d, err := mk()
		if err != nil {
			return nil, err
		}
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			defer d.close()
			pad := strings.Repeat("x", max(0, c.size-20))
			for i := p; ; i++ {
				if tick != nil {
					select {
					case <-tick:
					case <-ctx.Done():
						return
					}
				}
				n := take(batch)
				if n == 0 || ctx.Err() != nil {
					return
				}
				now := time.Now().UnixNano()
				payloads := make([][]byte, n)
				for k := range payloads {
					payloads[k] = fmt.Appendf(nil, "%019d%s", now, pad)
				}
				stored, err := d.produce(ctx, queues[i%len(queues)], payloads)
				enqueued.Add(int64(stored))
				if stored < n && c.jobs > 0 {
					// Jobs not stored (the server unavailable for a moment: a leader
					// election) go back to the budget to be sent again: consumers wait
					// for exactly -jobs completions.
					budget.Add(int64(n - stored))
				}
				if err != nil && ctx.Err() == nil {
					errs.Add(1)
					select { // not a busy loop while the server is unavailable
					case <-time.After(50 * time.Millisecond):
					case <-ctx.Done():
					}
				}
			}
		}()
	}
	for k := 0; k < c.consumers; k++ {
		d, err := mk()
		if err != nil {
			return nil, err
		}
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			defer d.close()
			var starts, ends []time.Duration
			defer func() {
				mu.Lock()
				res.startLat = append(res.startLat, starts...)
				res.e2eLat = append(res.e2eLat, ends...)
				mu.Unlock()
			}()
			for ctx.Err() == nil && (c.jobs == 0 || completed.Load() < c.jobs) {
				var received []int64
				n, err := d.consume(ctx, queues, batch, time.Second, func(p []byte, at time.Time) {
					if sent, ok := stamp(p); ok {
						starts = append(starts, at.Sub(time.Unix(0, sent)))
						received = append(received, sent)
					}
				})
				done := time.Now()
				for _, sent := range received {
					ends = append(ends, done.Sub(time.Unix(0, sent)))
				}
				completed.Add(int64(n))
				if err != nil && ctx.Err() == nil {
					errs.Add(1)
				}
			}
		}()
	}
	stopProgress := make(chan struct{})
	var stalled atomic.Bool
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		var last int64
		lastMoved := start
		var lastEnq, lastDone, lastErrs int64
		for {
			select {
			case <-stopProgress:
				return
			case <-t.C:
				// Every request failing and nothing moving for a while: the server is gone
				// or refuses the load; stop rather than spin.
				enq, dn, er := enqueued.Load(), completed.Load(), errs.Load()
				if enq != lastEnq || dn != lastDone || er == lastErrs {
					lastMoved = time.Now()
				}
				lastEnq, lastDone, lastErrs = enq, dn, er
				if time.Since(lastMoved) > stallTimeout {
					stalled.Store(true)
					cancel()
				}
				if c.quiet {
					continue
				}
				done := completed.Load()
				fmt.Fprintf(os.Stderr, "\r%6.0fs  enqueued %9d  completed %9d  %8.0f jobs/s  errors %d   ",
					time.Since(start).Seconds(), enqueued.Load(), done, float64(done-last), errs.Load())
				last = done
			}
		}
	}()
	pwg.Wait()
	if c.consumers > 0 {
		cwg.Wait()
	}
	res.elapsed = time.Since(start)
	close(stopProgress)
	<-progressDone
	if !c.quiet {
		fmt.Fprintln(os.Stderr)
	}
	res.enqueued, res.completed, res.errors = enqueued.Load(), completed.Load(), errs.Load()
	if stalled.Load() {
		return nil, fmt.Errorf("no progress for %s while every request failed (%d errors): is the server up?", stallTimeout, res.errors)
	}
	if cpu1, ok := probe.cpu(); ok {
		res.cpu = cpu1 - cpu0
	}
	res.rss, _ = probe.rss()
	return res, nil
}

// stamp reads the send time at the start of a payload.
func stamp(p []byte) (int64, bool) {
	if len(p) > 0 && p[0] == '"' { // a JSON string payload
		p = p[1:]
	}
	if len(p) < 19 {
		return 0, false
	}
	var n int64
	for _, c := range p[:19] {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func (r *result) print(w *os.File, c config) {
	secs := r.elapsed.Seconds()
	fmt.Fprintf(w, "mode=%s target=%s producers=%d consumers=%d size=%dB batch=%d queues=%d rate=%.0f\n",
		c.mode, c.target, c.producers, c.consumers, c.size, c.batch, c.queues, c.rate)
	fmt.Fprintf(w, "enqueued %d, completed %d in %.2fs, errors %d\n", r.enqueued, r.completed, secs, r.errors)
	if c.consumers > 0 {
		fmt.Fprintf(w, "throughput: %.0f jobs/s completed\n", float64(r.completed)/secs)
	} else {
		fmt.Fprintf(w, "throughput: %.0f jobs/s enqueued\n", float64(r.enqueued)/secs)
	}
	if len(r.startLat) > 0 {
		fmt.Fprintf(w, "enqueue→start: %s\n", percentiles(r.startLat))
		fmt.Fprintf(w, "end to end:    %s\n", percentiles(r.e2eLat))
	}
	if r.cpu > 0 {
		fmt.Fprintf(w, "server CPU: %.2fs (%.0f%% of one core)\n", r.cpu.Seconds(), 100*r.cpu.Seconds()/secs)
	}
	if r.rss > 0 {
		fmt.Fprintf(w, "server RSS: %.1f MiB\n", float64(r.rss)/(1<<20))
	}
}

func percentiles(d []time.Duration) string {
	slices.Sort(d)
	at := func(p float64) time.Duration { return d[min(len(d)-1, int(p*float64(len(d))))] }
	r := func(x time.Duration) string { return x.Round(10 * time.Microsecond).String() }
	return fmt.Sprintf("p50 %s  p99 %s  p99.9 %s  max %s", r(at(.50)), r(at(.99)), r(at(.999)), r(d[len(d)-1]))
}
