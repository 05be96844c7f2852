package spool

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"
)

// emptyHold is how long the picker skips probing a queue on its own after it came back
// empty. A skipped queue is still part of the long poll made when the others are empty.
const emptyHold = 250 * time.Millisecond

// fetchLoop reserves jobs while the worker has free slots, until ctx is done.
// fetchLoop reserves jobs for the free slots until ctx is done. The requests themselves run on
// reqCtx, so that a stop lets the one in flight answer (its long poll is ended on the server).
func (w *Worker) fetchLoop(ctx, reqCtx context.Context) {
	defer close(w.fetchDone)
	var failures int
	for {
		// Wait for a free slot, then take every free slot: one request reserves for all.
		select {
		case w.slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		n := 1
	fill:
		for n < MaxBatch {
			select {
			case w.slots <- struct{}{}:
				n++
			default:
				break fill
			}
		}
		jobs, err := w.picker.fetch(reqCtx, n)
		for range n - len(jobs) {
			<-w.slots
		}
		if ctx.Err() != nil {
			// Stopping: what was reserved meanwhile goes back at once.
			w.releaseUnstarted(jobs)
			return
		}
		for _, rj := range jobs {
			w.jobs.Add(1)
			go w.execute(rj)
		}
		if err == nil {
			failures = 0
			continue
		}
		if fatalReserveError(err) {
			w.stopWithError(err)
			<-ctx.Done()
			return
		}
		failures++
		d := retryDelay(failures)
		w.log.Warn("reserve failed; retrying", "err", err, "in", d)
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return
		}
	}
}

// fatalReserveError reports whether a reservation error will not go away by retrying:
// the server refused the request itself.
func fatalReserveError(err error) bool {
	var ae *APIError
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.Status {
	case http.StatusBadRequest, http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusUnsupportedMediaType:
		return true
	}
	return false
}

// retryDelay is an exponential backoff with jitter for the n-th consecutive failure:
// 100ms, 200ms, ... capped at 5s.
func retryDelay(n int) time.Duration {
	d := 100 * time.Millisecond << min(n-1, 6)
	d = min(d, 5*time.Second)
	return d/2 + rand.N(d/2+1)
}

// releaseUnstarted gives jobs reserved during the shutdown back to their queues.
func (w *Worker) releaseUnstarted(jobs []*ReservedJob) {
	for _, rj := range jobs {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if _, err := w.client.Release(ctx, rj.ID, rj.LeaseToken, ReleaseOptions{}); err != nil {
			w.log.Warn("release of a job reserved during the shutdown failed; it is offered again when its lease ends",
				"job", rj.ID, "queue", rj.Queue, "err", err)
		}
		cancel()
	}
}

// picker chooses the queues each reservation asks, so that the worker's capacity is
// shared by weight (or in strict order), and follows which queues the server says paused.
//
// Weighted mode is a smooth weighted round-robin counted in jobs: every job taken adds
// each eligible queue's weight to its credit and takes the total weight from the credit of
// the queue that gave it; the queue with the most credit is asked first, on its own, so
// that the server's priority bands across queues cannot starve a queue.
type picker struct {
	w       *Worker
	queues  []string
	weights []int
	strict  bool
	bound   int64 // credits stay within ±bound: an idle queue cannot bank a long burst

	mu     sync.Mutex
	credit []int64
	paused []bool
	empty  []time.Time // probe the queue on its own again after this time
	now    func() time.Time
}

func newPicker(w *Worker, queues []string, weights []int, strict bool) *picker {
	total := 0
	for _, wt := range weights {
		total += wt
	}
	return &picker{
		w:       w,
		queues:  queues,
		weights: weights,
		strict:  strict,
		bound:   int64(total) * int64(max(w.opts.Concurrency, 1)),
		credit:  make([]int64, len(queues)),
		paused:  make([]bool, len(queues)),
		empty:   make([]time.Time, len(queues)),
		now:     time.Now,
	}
}

// probeOrder returns the queues to ask one by one, most entitled first: not paused and
// not found empty a moment ago.
func (p *picker) probeOrder() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	var order []int
	for i := range p.queues {
		if !p.paused[i] && now.After(p.empty[i]) {
			order = append(order, i)
		}
	}
	if !p.strict {
		slices.SortStableFunc(order, func(a, b int) int {
			switch {
			case p.credit[a] != p.credit[b]:
				if p.credit[a] > p.credit[b] {
					return -1
				}
				return 1
			default:
				return p.weights[b] - p.weights[a]
			}
		})
	}
	return order
}

// pollOrder returns every queue, for the long poll: the probe order first (so that a
// job is taken from the most entitled queue when several become ready), then the others.
func (p *picker) pollOrder(probe []int) []string {
	names := make([]string, 0, len(p.queues))
	in := make([]bool, len(p.queues))
	for _, i := range probe {
		names = append(names, p.queues[i])
		in[i] = true
	}
	for i, q := range p.queues {
		if !in[i] {
			names = append(names, q)
		}
	}
	return names
}

// fetch reserves up to n jobs.
func (p *picker) fetch(ctx context.Context, n int) ([]*ReservedJob, error) {
	w := p.w
	if len(p.queues) == 1 {
		return p.reserve(ctx, p.queues, n, w.opts.PollWait)
	}
	probe := p.probeOrder()
	var got []*ReservedJob
	for _, i := range probe {
		need := n - len(got)
		jobs, err := p.reserve(ctx, p.queues[i:i+1], need, 0)
		got = append(got, jobs...)
		if err != nil {
			return got, err
		}
		if len(jobs) < need {
			p.mu.Lock()
			p.empty[i] = p.now().Add(emptyHold)
			p.mu.Unlock()
		}
		if len(got) == n {
			return got, nil
		}
	}
	if len(got) > 0 {
		return got, nil
	}
	return p.reserve(ctx, p.pollOrder(probe), n, w.opts.PollWait)
}

// reserve makes one reservation request and accounts for its answer.
func (p *picker) reserve(ctx context.Context, queues []string, n int, wait time.Duration) ([]*ReservedJob, error) {
	res, err := p.w.client.Reserve(ctx, ReserveOptions{Queues: queues, Max: n, Wait: wait, Worker: p.w.opts.Name, PollID: p.w.pollID})
	if err != nil {
		return nil, err
	}
	p.observe(queues, res)
	return res.Jobs, nil
}

// observe records which of the queues asked are paused, and charges the jobs taken.
func (p *picker) observe(asked []string, res *ReserveResult) {
	p.mu.Lock()
	defer p.mu.Unlock()
	index := func(q string) int { return slices.Index(p.queues, q) }
	for _, q := range asked {
		i := index(q)
		if i < 0 {
			continue
		}
		paused := slices.Contains(res.Paused, q)
		if paused != p.paused[i] {
			if paused {
				p.w.log.Info("queue paused on the server: taking no job from it until it is resumed", "queue", q)
			} else {
				p.w.log.Info("queue resumed", "queue", q)
			}
			p.paused[i] = paused
		}
	}
	if len(res.Jobs) == 0 {
		return
	}
	counts := make([]int64, len(p.queues))
	for _, j := range res.Jobs {
		if i := index(j.Queue); i >= 0 {
			counts[i]++
			p.empty[i] = time.Time{}
		}
	}
	if p.strict {
		return
	}
	now := p.now()
	var eligible []int
	var total int64
	for i := range p.queues {
		if !p.paused[i] && (now.After(p.empty[i]) || counts[i] > 0) {
			eligible = append(eligible, i)
			total += int64(p.weights[i])
		}
	}
	taken := int64(len(res.Jobs))
	for _, i := range eligible {
		p.credit[i] += taken * int64(p.weights[i])
	}
	for i, c := range counts {
		p.credit[i] -= c * total
	}
	for i := range p.credit {
		p.credit[i] = max(-p.bound, min(p.bound, p.credit[i]))
	}
}
