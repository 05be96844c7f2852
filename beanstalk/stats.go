package beanstalk

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spoolq/spool/engine"
)

// urgentPriority: beanstalkd counts jobs of a priority below 1024 as urgent.
const urgentPriority = 1024

// jobCounts are a tube's (or the server's) jobs by state.
type jobCounts struct {
	urgent, ready, reserved, delayed, buried int64
	total, timeouts                          int64 // engine totals: enqueued, lease expiries
}

// queueCounts reads one queue's counts from the engine. The engine's counts come from
// JetStream consumer state and may lag a fresh write by a moment.
func (s *Server) queueCounts(ctx context.Context, name string) (jobCounts, *engine.QueueInfo, error) {
	qi, err := s.eng.Queue(ctx, name)
	if err != nil {
		return jobCounts{}, nil, err
	}
	bc, err := s.eng.QueueDetailCounts(ctx, name, urgentPriority)
	if err != nil {
		return jobCounts{}, nil, err
	}
	st := qi.Stats
	return jobCounts{
		urgent: bc.Urgent, ready: st.Ready, reserved: st.Reserved + bc.ReservedByID,
		delayed: st.Delayed, buried: st.Buried, total: st.Enqueued, timeouts: st.Timeouts,
	}, qi, nil
}

// tubeNames lists the tubes that exist for beanstalkd: the engine's queues, the tubes
// this server's connections use or watch, and "default". Sorted.
func (s *Server) tubeNames() []string {
	names := s.eng.QueueNames()
	s.mu.Lock()
	for n := range s.tubes {
		names = append(names, n)
	}
	s.mu.Unlock()
	names = append(names, defaultTube)
	slices.Sort(names)
	return slices.Compact(names)
}

func (c *conn) listTubes() bool { return c.yamlList(c.s.tubeNames()) }

// yamlList answers with a YAML list of names.
func (c *conn) yamlList(names []string) bool {
	var b strings.Builder
	b.WriteString("---\n")
	for _, n := range names {
		b.WriteString("- ")
		b.WriteString(n)
		b.WriteByte('\n')
	}
	return c.chunk("OK", 0, false, []byte(b.String()))
}

// yaml builds a YAML dictionary in beanstalkd's layout.
type yaml struct{ b strings.Builder }

func newYAML() *yaml {
	y := &yaml{}
	y.b.WriteString("---\n")
	return y
}

func (y *yaml) str(k, v string) {
	y.b.WriteString(k)
	y.b.WriteString(": ")
	y.b.WriteString(v)
	y.b.WriteByte('\n')
}

func (y *yaml) int(k string, v int64)   { y.str(k, strconv.FormatInt(v, 10)) }
func (y *yaml) uint(k string, v uint64) { y.str(k, strconv.FormatUint(v, 10)) }

func (y *yaml) bytes() []byte { return []byte(y.b.String()) }

func (c *conn) statsJob(id uint64) bool {
	ctx, cancel := c.s.opCtx()
	defer cancel()
	j, err := c.s.eng.Job(ctx, id)
	switch {
	case err == nil && !j.State.Final():
		return c.chunk("OK", 0, false, formatJobStats(j, time.Now()))
	case err == nil || notFound(err):
		return c.word(msgNotFound)
	default:
		return c.fail("stats-job", err)
	}
}

// formatJobStats is the stats-job body. Fields the engine does not keep as beanstalkd does
// are derived (see docs/beanstalkd.md):
//   - delay: the delay of the job's last delayed period, from its run time and the time the
//     period began (the put, or the start of the reservation it was released from); 0 once
//     the job has been reserved since;
//   - reserves: the engine counts attempts (reservations, less releases, reset by a kick of
//     a buried job), releases, buries and timeouts; every reservation ends in a release, a
//     bury, a timeout, a delete or is current, so the larger of attempts + releases and
//     releases + buries + timeouts (+1 while reserved) is exact for jobs worked over
//     beanstalkd, and a lower bound otherwise;
//   - file: always 0 (there is no binlog: JetStream stores the jobs).
func formatJobStats(j *engine.Job, now time.Time) []byte {
	y := newYAML()
	y.uint("id", j.ID)
	y.str("tube", j.Queue)
	y.str("state", string(j.State))
	y.uint("pri", uint64(j.Priority))
	y.int("age", int64(now.Sub(j.CreatedAt)/time.Second))
	y.int("delay", jobDelay(j))
	y.int("ttr", int64(j.Lease/time.Second))
	var left time.Duration
	switch j.State {
	case engine.StateReserved:
		left = j.LeaseExpiresAt.Sub(now)
	case engine.StateDelayed:
		left = j.RunAt.Sub(now)
	}
	y.int("time-left", int64(left/time.Second))
	y.int("file", 0)
	reserves := j.Releases + j.Buries + j.Timeouts
	if j.State == engine.StateReserved {
		reserves++
	}
	y.int("reserves", int64(max(j.Attempts+j.Releases, reserves)))
	y.int("timeouts", int64(j.Timeouts))
	y.int("releases", int64(j.Releases))
	y.int("buries", int64(j.Buries))
	y.int("kicks", int64(j.Kicks))
	return y.bytes()
}

// jobDelay is beanstalkd's "delay" of a job, in whole seconds.
func jobDelay(j *engine.Job) int64 {
	if j.RunAt.IsZero() {
		return 0
	}
	from := j.CreatedAt
	if j.ReservedAt.After(from) {
		from = j.ReservedAt
	}
	d := j.RunAt.Sub(from)
	if d <= 0 {
		return 0
	}
	return int64(d / time.Second)
}

func (c *conn) statsTube(name string) bool {
	ctx, cancel := c.s.opCtx()
	defer cancel()
	counts, qi, err := c.s.queueCounts(ctx, name)
	if errors.Is(err, engine.ErrQueueNotFound) {
		if !c.s.tubeReferenced(name) {
			return c.word(msgNotFound)
		}
		err = nil // a tube without jobs yet: all zero
	}
	if err != nil {
		return c.fail("stats-tube", err)
	}
	return c.chunk("OK", 0, false, c.s.formatTubeStats(name, counts, qi, time.Now()))
}

// formatTubeStats is the stats-tube body. The job counts are cluster-wide; total-jobs counts
// every job enqueued into the queue since it was created, by any front; the connection and
// command counts are this server's since it started.
func (s *Server) formatTubeStats(name string, n jobCounts, qi *engine.QueueInfo, now time.Time) []byte {
	s.mu.Lock()
	var refs tubeRefs
	if r := s.tubes[name]; r != nil {
		refs = *r
	}
	var tot tubeTotal
	if t := s.counters[name]; t != nil {
		tot = *t
	}
	s.mu.Unlock()
	var pause, left int64
	if qi != nil && qi.Paused {
		pause = int64(tot.pause)
		if !qi.PausedUntil.IsZero() {
			left = int64(qi.PausedUntil.Sub(now) / time.Second)
			if pause == 0 {
				// Paused by other means (the HTTP API, another node): the time left is
				// the best guess of the pause.
				pause = left
			}
		}
	}
	y := newYAML()
	y.str("name", name)
	y.int("current-jobs-urgent", n.urgent)
	y.int("current-jobs-ready", n.ready)
	y.int("current-jobs-reserved", n.reserved)
	y.int("current-jobs-delayed", n.delayed)
	y.int("current-jobs-buried", n.buried)
	y.int("total-jobs", n.total)
	y.int("current-using", int64(refs.using))
	y.int("current-watching", int64(refs.watching))
	y.int("current-waiting", int64(refs.waiting))
	y.uint("cmd-delete", tot.deletes)
	y.uint("cmd-pause-tube", tot.pauses)
	y.int("pause", pause)
	y.int("pause-time-left", left)
	return y.bytes()
}

func (c *conn) stats() bool {
	ctx, cancel := c.s.opCtx()
	defer cancel()
	// One summary of every queue: its cost follows the jobs in use, not the tubes.
	sum, err := c.s.eng.Summarize(ctx, engine.SummaryRequest{UrgentBelow: urgentPriority})
	if err != nil {
		return c.fail("stats", err)
	}
	all := jobCounts{
		urgent: sum.Urgent, ready: sum.Ready, reserved: sum.Reserved + sum.ReservedByID,
		delayed: sum.Delayed, buried: sum.Buried, total: sum.Enqueued, timeouts: sum.Timeouts,
	}
	return c.chunk("OK", 0, false, c.s.formatStats(all, len(c.s.tubeNames()), time.Now()))
}

// statNames are the cmd-* counters of the stats command, in beanstalkd's order.
var statNames = []struct {
	name string
	op   op
}{
	{"cmd-put", opPut}, {"cmd-peek", opPeekJob}, {"cmd-peek-ready", opPeekReady},
	{"cmd-peek-delayed", opPeekDelayed}, {"cmd-peek-buried", opPeekBuried},
	{"cmd-reserve", opReserve}, {"cmd-reserve-with-timeout", opReserveTimeout},
	{"cmd-delete", opDelete}, {"cmd-release", opRelease}, {"cmd-use", opUse},
	{"cmd-watch", opWatch}, {"cmd-ignore", opIgnore}, {"cmd-bury", opBury},
	{"cmd-kick", opKick}, {"cmd-touch", opTouch}, {"cmd-stats", opStats},
	{"cmd-stats-job", opStatsJob}, {"cmd-stats-tube", opStatsTube},
	{"cmd-list-tubes", opListTubes}, {"cmd-list-tube-used", opListTubeUsed},
	{"cmd-list-tubes-watched", opListTubesWatched}, {"cmd-pause-tube", opPauseTube},
}

var hostname, unameVersion, unameMachine = func() (string, string, string) {
	h, _ := os.Hostname()
	v, m := uname()
	return h, v, m
}()

// formatStats is the stats body, with beanstalkd 1.12's fields in its order. Job counts are
// cluster-wide sums over the tubes; total-jobs and job-timeouts are the cluster's totals,
// deleted tubes' jobs included (beanstalkd's count since it started); the command and
// connection counts are this server's since it started. There is no binlog: the binlog-* fields are 0. version is the protocol level
// (ProtocolVersion); spool's own version follows beanstalkd's fields as spool-version.
func (s *Server) formatStats(n jobCounts, tubes int, now time.Time) []byte {
	s.mu.Lock()
	conns, producers, workers, waiting := s.open, s.producers, s.workers, s.waiting
	s.mu.Unlock()
	y := newYAML()
	y.int("current-jobs-urgent", n.urgent)
	y.int("current-jobs-ready", n.ready)
	y.int("current-jobs-reserved", n.reserved)
	y.int("current-jobs-delayed", n.delayed)
	y.int("current-jobs-buried", n.buried)
	for _, st := range statNames {
		y.uint(st.name, s.ops[st.op].Load())
	}
	y.int("job-timeouts", n.timeouts)
	y.int("total-jobs", n.total)
	y.int("max-job-size", int64(s.opt.MaxJobSize))
	y.int("current-tubes", int64(tubes))
	y.int("current-connections", int64(conns))
	y.int("current-producers", int64(producers))
	y.int("current-workers", int64(workers))
	y.int("current-waiting", int64(waiting))
	y.uint("total-connections", s.totalConns.Load())
	y.int("pid", int64(os.Getpid()))
	y.str("version", strconv.Quote(ProtocolVersion))
	user, sys := rusage()
	y.str("rusage-utime", cpuTime(user))
	y.str("rusage-stime", cpuTime(sys))
	y.int("uptime", int64(now.Sub(s.started)/time.Second))
	y.int("binlog-oldest-index", 0)
	y.int("binlog-current-index", 0)
	y.int("binlog-records-migrated", 0)
	y.int("binlog-records-written", 0)
	y.int("binlog-max-size", 0)
	y.str("draining", strconv.FormatBool(s.draining.Load()))
	y.str("id", s.instance)
	y.str("hostname", hostname)
	y.str("os", unameVersion)
	y.str("platform", unameMachine)
	// Not a beanstalkd field. Clients read stats as a dictionary, and beanstalkd releases add
	// fields too (draining in 1.12).
	y.str("spool-version", strconv.Quote(s.opt.Version))
	return y.bytes()
}

// cpuTime formats a CPU time as beanstalkd's "%d.%06d" seconds and microseconds.
func cpuTime(d time.Duration) string {
	us := d.Microseconds()
	return fmt.Sprintf("%d.%06d", us/1e6, us%1e6)
}
