// Package autoscale computes how many workers a set of queues needs, with the formula of
// the Worker Pod Autoscaler (github.com/practo/k8s-worker-pod-autoscaler), so that a
// controller (KEDA, an HPA, a script) can scale a worker deployment from spool's own
// numbers. It is pure arithmetic over a Signal: the fronts read the queues and call Desired.
package autoscale

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Signal is what the formula reads of one queue.
type Signal struct {
	// Messages are the jobs waiting or running: ready + reserved.
	Messages int64
	// Reserved are the running jobs (busy workers).
	Reserved int64
	// ArrivalPerMinute is the enqueue rate.
	ArrivalPerMinute float64
}

// Params are the Worker Pod Autoscaler's settings.
type Params struct {
	TargetMessagesPerWorker int64   // > 0
	SecondsToProcessOneJob  float64 // 0: the arrival rate is not used
	Min, Max                int64   // 0 <= Min <= Max
	// MaxDisruption bounds a scale-down: a number of workers ("2") or a percentage of the
	// current ones ("10%", rounded up). Default "100%".
	MaxDisruption string
	// Current is the number of workers running now; -1 when unknown (then Desired is the
	// workers needed from scratch: ceil(messages / target), within min and max).
	Current int64
}

// Result is Desired's answer and the numbers behind it.
type Result struct {
	Desired int64
	// Messages is the queues' ready + reserved jobs.
	Messages int64
	// Needed is Σ ceil(messages / targetMessagesPerWorker) over the queues: the workers the
	// backlog asks for before the rules below.
	Needed int64
	// MinByRate is min raised to the workers the arrival rate needs:
	// Σ ceil(secondsToProcessOneJob · arrivalPerMinute / 60) over the queues.
	MinByRate int64
	// Idle is the estimate of idle workers: current − reserved jobs (0 when current is unknown).
	Idle int64
	// MaxDisruptable is how many workers one scale-down may remove.
	MaxDisruptable int64
}

// Validate checks p.
func (p *Params) Validate() error {
	switch {
	case p.TargetMessagesPerWorker <= 0:
		return errors.New("targetMessagesPerWorker must be at least 1")
	case p.SecondsToProcessOneJob < 0 || math.IsNaN(p.SecondsToProcessOneJob) || math.IsInf(p.SecondsToProcessOneJob, 0):
		return errors.New("secondsToProcessOneJob must be a number >= 0")
	case p.Min < 0 || p.Max < p.Min:
		return errors.New("min and max must satisfy 0 <= min <= max")
	case p.Current < -1:
		return errors.New("current must be >= 0")
	}
	_, err := disruptable(p.MaxDisruption, 0)
	return err
}

// Desired returns the worker count for the queues qs, served by one deployment, as the
// Worker Pod Autoscaler computes it (its multi-queue form; one queue is the same):
//
//	needed = Σ ceil(messages_q / targetMessagesPerWorker)
//	min'   = max(min, Σ ceil(secondsToProcessOneJob · arrivalPerMinute_q / 60))
//	current 0 or unknown:      desired = needed
//	messages > 0:              desired = current when |needed − current| / current <= 0.1,
//	                                     else needed
//	no messages, arrivals > 0: desired = min'
//	every worker idle:         desired = 0, with no disruption bound
//	otherwise:                 desired = min'
//
// then bounded: one scale-down removes at most maxDisruption workers, and the result is
// clamped to [min', max] (max when min' >= max).
func Desired(qs []Signal, p Params) (Result, error) {
	if err := p.Validate(); err != nil {
		return Result{}, err
	}
	var r Result
	var reserved int64
	var arrivals float64
	for _, q := range qs {
		r.Messages += q.Messages
		reserved += q.Reserved
		arrivals += q.ArrivalPerMinute
		r.Needed += ceilDiv(q.Messages, p.TargetMessagesPerWorker)
		r.MinByRate += int64(math.Ceil(p.SecondsToProcessOneJob * q.ArrivalPerMinute / 60))
	}
	r.MinByRate = max(r.MinByRate, p.Min)
	cur := max(p.Current, 0)
	r.MaxDisruptable, _ = disruptable(p.MaxDisruption, cur)
	if p.Current > 0 {
		r.Idle = max(cur-reserved, 0)
	}
	rule := func(desired, maxDisruptable int64) int64 {
		if r.MinByRate >= p.Max {
			return p.Max
		}
		if cur-desired > maxDisruptable {
			desired = cur - maxDisruptable
		}
		return min(max(desired, r.MinByRate), p.Max)
	}
	switch {
	case cur == 0:
		r.Desired = rule(r.Needed, r.MaxDisruptable)
	case r.Messages > 0:
		if math.Abs(float64(r.Needed-cur))/float64(cur) <= 0.1 {
			r.Desired = rule(cur, r.MaxDisruptable)
		} else {
			r.Desired = rule(r.Needed, r.MaxDisruptable)
		}
	case arrivals > 0:
		r.Desired = rule(r.MinByRate, r.MaxDisruptable)
	case r.Idle == cur:
		r.Desired = rule(0, cur)
	default:
		r.Desired = rule(r.MinByRate, r.MaxDisruptable)
	}
	return r, nil
}

func ceilDiv(a, b int64) int64 {
	if a <= 0 {
		return 0
	}
	return (a + b - 1) / b
}

// disruptable reads maxDisruption ("" is 100%) for cur workers; a percentage rounds up.
func disruptable(s string, cur int64) (int64, error) {
	if s == "" {
		s = "100%"
	}
	if p, ok := strings.CutSuffix(s, "%"); ok {
		v, err := strconv.ParseFloat(p, 64)
		if err != nil || v < 0 || v > 100 || math.IsNaN(v) {
			return 0, fmt.Errorf("maxDisruption %q: want a number of workers or a percentage from 0%% to 100%%", s)
		}
		return int64(math.Ceil(v * float64(cur) / 100)), nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("maxDisruption %q: want a number of workers or a percentage from 0%% to 100%%", s)
	}
	return v, nil
}
