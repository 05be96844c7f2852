package schedule

import (
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // IANA zones even on hosts without a zoneinfo database

	"github.com/robfig/cron/v3"
)

// MaxSpecLen bounds the length of a spec.
const MaxSpecLen = 256

// cronParser reads 5-field specs (minute hour day-of-month month day-of-week), 6-field
// specs with a leading seconds field, and the descriptors @yearly, @annually, @monthly,
// @weekly, @daily, @midnight and @hourly. @every and @at are handled by parseSpec.
var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ticker is a set of tick times.
type ticker interface {
	// next returns the first tick strictly after t, or the zero time when there is none.
	next(t time.Time) time.Time
}

// cronTicker is a cron spec evaluated in its time zone: the library walks the fields in
// local time, so a daily 09:00 stays 09:00 across DST changes.
//
// On top of the library, a spec with a fixed hour field (not "*": a daily 02:30, @daily)
// follows the rule of the classic crons for the local times a DST change skips or repeats:
// a time skipped by a jump forward fires at the jump (02:30 fires at 03:00 on that day),
// and a time repeated by a jump back fires once, the first time. Specs whose hour is "*"
// (every 15 minutes, @hourly) keep the library's meaning, elapsed time: nothing fires in
// a skipped hour, a repeated hour fires again.
type cronTicker struct {
	s   *cron.SpecSchedule
	loc *time.Location
}

// starBit marks a field given as "*" in a cron.SpecSchedule.
const starBit = 1 << 63

func (c cronTicker) next(t time.Time) time.Time {
	n := c.s.Next(t)
	if c.s.Hour&starBit != 0 {
		return n
	}
	for {
		if j := c.skippedBefore(t, n); !j.IsZero() {
			return j
		}
		if n.IsZero() || !repeated(n.In(c.loc)) {
			return n
		}
		t, n = n, c.s.Next(n)
	}
}

// skippedBefore returns the first jump forward in (t, n) during which the spec matched a
// local time the jump skipped, or the zero time. n zero: no bound (five years).
func (c cronTicker) skippedBefore(t, n time.Time) time.Time {
	limit := n
	if limit.IsZero() {
		limit = t.AddDate(5, 0, 0)
	}
	cur := t.In(c.loc)
	for range 20 {
		_, end := cur.ZoneBounds()
		if end.IsZero() || !end.Before(limit) {
			return time.Time{}
		}
		_, before := cur.Zone()
		_, after := end.Zone()
		if gap := time.Duration(after-before) * time.Second; gap > 0 {
			// The skipped local times, read at the old offset, are the instants [end, end+gap).
			old := *c.s
			old.Location = time.FixedZone("", before)
			if m := old.Next(end.Add(-time.Nanosecond)); !m.IsZero() && m.Before(end.Add(gap)) {
				return end
			}
		}
		cur = end
	}
	return time.Time{}
}

// repeated reports whether t's local time was already shown before, in the hour (or so)
// that a jump back of the clock repeats.
func repeated(t time.Time) bool {
	start, _ := t.ZoneBounds()
	if start.IsZero() {
		return false
	}
	_, off := t.Zone()
	_, prev := start.Add(-time.Nanosecond).Zone()
	return prev > off && t.Sub(start) < time.Duration(prev-off)*time.Second
}

// everyTicker fires at anchor + k·every (k ≥ 0). The anchor is part of the stored schedule,
// so every node computes the same ticks (the library's own @every counts from the time it
// is asked, which differs between nodes).
type everyTicker struct {
	anchor time.Time
	every  time.Duration
}

func (e everyTicker) next(t time.Time) time.Time {
	if t.Before(e.anchor) {
		return e.anchor
	}
	k := t.Sub(e.anchor) / e.every
	return e.anchor.Add((k + 1) * e.every)
}

// atTicker fires once.
type atTicker struct{ at time.Time }

func (a atTicker) next(t time.Time) time.Time {
	if t.Before(a.at) {
		return a.at
	}
	return time.Time{}
}

// parseSpec reads a spec in loc. anchor is the origin of @every ticks.
func parseSpec(spec string, loc *time.Location, anchor time.Time) (ticker, error) {
	spec = strings.TrimSpace(spec)
	switch {
	case spec == "":
		return nil, invalid("spec", "required: a cron expression such as \"0 2 * * *\", or @every 30s, @hourly, @daily, @at 2027-01-01T09:00:00")
	case len(spec) > MaxSpecLen:
		return nil, invalid("spec", "longer than %d bytes", MaxSpecLen)
	case strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ="):
		return nil, invalid("spec", "give the time zone in time_zone, not as a TZ= prefix")
	case strings.HasPrefix(spec, "@every"):
		arg := strings.TrimSpace(strings.TrimPrefix(spec, "@every"))
		d, err := time.ParseDuration(arg)
		if err != nil {
			return nil, invalid("spec", "@every %q: want a duration such as 30s, 5m or 1h30m", arg)
		}
		if d < time.Second || d%time.Second != 0 {
			return nil, invalid("spec", "@every %s: must be a whole number of seconds, at least 1s", arg)
		}
		return everyTicker{anchor: anchor, every: d}, nil
	case strings.HasPrefix(spec, "@at"):
		arg := strings.TrimSpace(strings.TrimPrefix(spec, "@at"))
		at, err := parseAt(arg, loc)
		if err != nil {
			return nil, err
		}
		return atTicker{at: at}, nil
	}
	s, err := parseCron(spec)
	if err != nil {
		return nil, err
	}
	ss, ok := s.(*cron.SpecSchedule)
	if !ok {
		return nil, invalid("spec", "unsupported spec %q", spec)
	}
	c := *ss
	c.Location = loc
	return cronTicker{s: &c, loc: loc}, nil
}

// parseCron calls the cron library, turning a panic on a malformed spec into an error.
func parseCron(spec string) (s cron.Schedule, err error) {
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, invalid("spec", "malformed spec %q", spec)
		}
	}()
	s, err = cronParser.Parse(spec)
	if err != nil {
		return nil, invalid("spec", "%v", err)
	}
	return s, nil
}

// atLayouts are the forms of an @at time without a UTC offset, read in the time zone.
var atLayouts = []string{"2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04:05", "2006-01-02 15:04"}

func parseAt(s string, loc *time.Location) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range atLayouts {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, invalid("spec", "@at %q: want a time such as 2027-01-01T09:00:00 (in time_zone) or 2027-01-01T09:00:00Z", s)
}

// plan is a schedule's tick set: the spec's ticks within [start, end].
type plan struct {
	tk    ticker
	start time.Time // zero: no bound
	end   time.Time // zero: no bound
}

// after returns the first tick strictly after t, or the zero time when there is none.
func (p *plan) after(t time.Time) time.Time {
	if !p.start.IsZero() && t.Before(p.start) {
		t = p.start.Add(-time.Nanosecond)
	}
	n := p.tk.next(t)
	if n.IsZero() || !p.end.IsZero() && n.After(p.end) {
		return time.Time{}
	}
	return n
}

// latestScan bounds the ticks latest walks through. Only a catch-up after a long stop on a
// spec that ticks every second in bursts gets near it.
const latestScan = 100_000

// latest returns the last tick at or before now, given a tick t ≤ now. It looks back from
// now in growing windows, so that the cost does not depend on how long ago t is.
func (p *plan) latest(t, now time.Time) time.Time {
	if n := p.after(t); n.IsZero() || n.After(now) {
		return t // the usual case: t is the only tick due
	}
	for _, w := range []time.Duration{time.Minute, time.Hour, 24 * time.Hour, 32 * 24 * time.Hour, 367 * 24 * time.Hour, 0} {
		from := t
		if w > 0 && now.Add(-w).After(t) {
			from = now.Add(-w)
		}
		last := time.Time{}
		if from.Equal(t) {
			last = t
		}
		cur := from
		for range latestScan {
			n := p.after(cur)
			if n.IsZero() || n.After(now) {
				break
			}
			last, cur = n, n
		}
		if !last.IsZero() {
			return last
		}
	}
	return t
}

// zones caches loaded time zones: a *time.Location holds the zone's whole transition
// table, so thousands of schedules in one zone share one.
type zones struct {
	mu sync.Mutex
	m  map[string]*time.Location
}

// load returns the zone named name: an IANA name such as "Europe/Paris", or "" and "UTC"
// for UTC. "Local" is refused: it would differ between the nodes of a cluster.
func (z *zones) load(name string) (*time.Location, error) {
	if name == "" || name == "UTC" {
		return time.UTC, nil
	}
	if name == "Local" {
		return nil, invalid("time_zone", "\"Local\" depends on each server's settings: give an IANA name such as Europe/Paris")
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	if loc, ok := z.m[name]; ok {
		return loc, nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, invalid("time_zone", "unknown time zone %q: want an IANA name such as Europe/Paris or America/New_York", name)
	}
	if z.m == nil {
		z.m = make(map[string]*time.Location)
	}
	z.m[name] = loc
	return loc, nil
}

// fmtTick formats a tick for job metadata.
func fmtTick(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
