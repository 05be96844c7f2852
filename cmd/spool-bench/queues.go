package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// runQueues measures what queues cost a spool server (-mode queues): it makes -queues
// queues, each by the enqueue of one job (-p at a time), then takes every job (the queues
// are idle again), reading the server's memory and goroutines after each step, then times
// a page of the queue listing and /metrics. With -settle it measures again after the queues
// have been idle that long.
func runQueues(ctx context.Context, c config) error {
	d := newHTTPDriver(c.target, true, 0)
	defer d.close()
	p := probe{pid: c.pid, metrics: c.target + "/metrics"}
	n := c.queues
	name := func(i int) string { return fmt.Sprintf("%s-%d", c.queue, i) }
	measure := func(step string, took time.Duration) {
		rss, _ := p.rss()
		g, _ := probe{metrics: p.metrics}.metric("go_goroutines")
		fmt.Printf("%-34s %8.1f s %10.1f ms/queue   RSS %7.1f MiB   goroutines %7.0f\n",
			step, took.Seconds(), float64(took.Microseconds())/1000/float64(max(n, 1)), float64(rss)/(1<<20), g)
	}
	measure("before", 0)
	each := func(what string, do func(i int) error) (time.Duration, error) {
		start := time.Now()
		var next, done atomic.Int64
		var wg sync.WaitGroup
		errc := make(chan error, c.producers)
		stopProgress := progress(&done, int64(n), what, c.quiet)
		for range c.producers {
			wg.Go(func() {
				for {
					i := int(next.Add(1)) - 1
					if i >= n || ctx.Err() != nil {
						return
					}
					if err := do(i); err != nil {
						errc <- err
						return
					}
					done.Add(1)
				}
			})
		}
		wg.Wait()
		stopProgress()
		close(errc)
		return time.Since(start), <-errc
	}
	payload := [][]byte{make([]byte, c.size)}
	took, err := each("queues made", func(i int) error {
		_, err := d.produce(ctx, name(i), payload)
		return err
	})
	if err != nil {
		return err
	}
	measure("made, one ready job each", took)
	took, err = each("queues drained", func(i int) error {
		got, err := d.consume(ctx, []string{name(i)}, 1, 0, func([]byte, time.Time) {})
		if err == nil && got != 1 {
			err = fmt.Errorf("queue %s: %d jobs taken, want 1", name(i), got)
		}
		return err
	})
	if err != nil {
		return err
	}
	measure("drained (idle)", took)
	if c.settle > 0 {
		// Idle priority levels lose their consumers after the server's ConsumerIdle.
		select {
		case <-time.After(c.settle):
		case <-ctx.Done():
			return ctx.Err()
		}
		measure(fmt.Sprintf("idle for %s", c.settle), 0)
	}
	for _, path := range []string{"/v1/queues?limit=100", fmt.Sprintf("/v1/queues?limit=100&after=%s", name(n/2)), "/metrics"} {
		start := time.Now()
		resp, err := http.Get(c.target + path)
		if err != nil {
			return err
		}
		resp.Body.Close()
		fmt.Printf("GET %-40s %8.1f ms (%s)\n", path, float64(time.Since(start).Microseconds())/1000, resp.Status)
	}
	return nil
}

// progress prints done/total on stderr every second until stopped.
func progress(done *atomic.Int64, total int64, what string, quiet bool) (stop func()) {
	if quiet {
		return func() {}
	}
	t := time.NewTicker(time.Second)
	end := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-t.C:
				fmt.Fprintf(os.Stderr, "\r%s: %d/%d", what, done.Load(), total)
			case <-end:
				fmt.Fprintf(os.Stderr, "\r%s: %d/%d\n", what, done.Load(), total)
				return
			}
		}
	})
	return func() { t.Stop(); close(end); wg.Wait() }
}
