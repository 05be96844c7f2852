package schedule

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/spoolq/spool/engine"
)

func mustPlan(t *testing.T, spec, zone string, anchor time.Time) *plan {
	t.Helper()
	var z zones
	loc, err := z.load(zone)
	if err != nil {
		t.Fatal(err)
	}
	tk, err := parseSpec(spec, loc, anchor)
	if err != nil {
		t.Fatalf("parse %q: %v", spec, err)
	}
	return &plan{tk: tk}
}

// ticks lists the first n ticks after from.
func ticks(p *plan, from time.Time, n int) []time.Time {
	var out []time.Time
	for cur := from; len(out) < n; {
		cur = p.after(cur)
		if cur.IsZero() {
			break
		}
		out = append(out, cur)
	}
	return out
}

func wantTicks(t *testing.T, got []time.Time, want ...string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d ticks %v, want %d %v", len(got), got, len(want), want)
	}
	for i := range want {
		w, err := time.Parse(time.RFC3339, want[i])
		if err != nil {
			t.Fatal(err)
		}
		if !got[i].Equal(w) {
			t.Errorf("tick %d: got %s, want %s", i, got[i].Format(time.RFC3339), want[i])
		}
	}
}

func TestSpecTicks(t *testing.T) {
	from := time.Date(2026, 1, 5, 9, 59, 30, 0, time.UTC) // a Monday
	cases := []struct {
		spec, zone string
		want       []string
	}{
		{"*/15 * * * *", "", []string{"2026-01-05T10:00:00Z", "2026-01-05T10:15:00Z", "2026-01-05T10:30:00Z"}},
		{"*/20 * * * * *", "", []string{"2026-01-05T09:59:40Z", "2026-01-05T10:00:00Z", "2026-01-05T10:00:20Z"}},
		{"0 9 * * MON-FRI", "Europe/Paris", []string{"2026-01-06T08:00:00Z", "2026-01-07T08:00:00Z", "2026-01-08T08:00:00Z"}},
		{"@hourly", "", []string{"2026-01-05T10:00:00Z", "2026-01-05T11:00:00Z", "2026-01-05T12:00:00Z"}},
		{"@daily", "America/New_York", []string{"2026-01-06T05:00:00Z", "2026-01-07T05:00:00Z", "2026-01-08T05:00:00Z"}},
		{"@at 2026-01-05T12:00:00", "Asia/Tokyo", nil}, // 12:00 in Tokyo is 03:00Z: past
		{"@at 2026-01-06T12:00:00", "Asia/Tokyo", []string{"2026-01-06T03:00:00Z"}},
		{"@at 2026-01-06T12:00:00+02:00", "", []string{"2026-01-06T10:00:00Z"}},
	}
	for _, c := range cases {
		p := mustPlan(t, c.spec, c.zone, time.Time{})
		t.Run(c.spec, func(t *testing.T) { wantTicks(t, ticks(p, from, 3), c.want...) })
	}
}

// @every ticks count from the anchor, whatever time they are computed from: two nodes
// asking at different moments agree.
func TestEveryAnchored(t *testing.T) {
	anchor := time.Date(2026, 1, 5, 10, 0, 7, 0, time.UTC)
	p := mustPlan(t, "@every 30s", "", anchor)
	wantTicks(t, ticks(p, anchor.Add(-time.Hour), 3), "2026-01-05T10:00:07Z", "2026-01-05T10:00:37Z", "2026-01-05T10:01:07Z")
	wantTicks(t, ticks(p, anchor.Add(41*time.Second+123), 1), "2026-01-05T10:01:07Z")
	wantTicks(t, ticks(p, anchor.Add(30*time.Second), 1), "2026-01-05T10:01:07Z")
}

func TestStartEndBounds(t *testing.T) {
	p := mustPlan(t, "0 * * * *", "", time.Time{})
	p.start = time.Date(2026, 1, 5, 12, 0, 0, 0, time.UTC)
	p.end = time.Date(2026, 1, 5, 14, 0, 0, 0, time.UTC)
	wantTicks(t, ticks(p, time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC), 5),
		"2026-01-05T12:00:00Z", "2026-01-05T13:00:00Z", "2026-01-05T14:00:00Z")
}

// DST in America/New_York, 2026: clocks jump from 02:00 to 03:00 on March 8 and from
// 02:00 back to 01:00 on November 1.
func TestDST(t *testing.T) {
	ny, _ := time.LoadLocation("America/New_York")
	march := time.Date(2026, 3, 7, 12, 0, 0, 0, ny)
	november := time.Date(2026, 10, 31, 12, 0, 0, 0, ny)
	t.Run("daily time skipped fires at the jump", func(t *testing.T) {
		p := mustPlan(t, "30 2 * * *", "America/New_York", time.Time{})
		wantTicks(t, ticks(p, march, 3), "2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00", "2026-03-10T02:30:00-04:00")
	})
	t.Run("daily time repeated fires once", func(t *testing.T) {
		p := mustPlan(t, "30 1 * * *", "America/New_York", time.Time{})
		wantTicks(t, ticks(p, november, 3), "2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00", "2026-11-03T01:30:00-05:00")
	})
	t.Run("daily time stays local", func(t *testing.T) {
		p := mustPlan(t, "0 9 * * *", "America/New_York", time.Time{})
		wantTicks(t, ticks(p, march, 2), "2026-03-08T09:00:00-04:00", "2026-03-09T09:00:00-04:00")
		wantTicks(t, ticks(p, november, 2), "2026-11-01T09:00:00-05:00", "2026-11-02T09:00:00-05:00")
	})
	t.Run("hourly follows elapsed time", func(t *testing.T) {
		p := mustPlan(t, "@hourly", "America/New_York", time.Time{})
		// Spring: 01:00 EST then 03:00 EDT, one hour later. Fall: 01:00 EDT and 01:00 EST.
		wantTicks(t, ticks(p, time.Date(2026, 3, 8, 0, 30, 0, 0, ny), 3), "2026-03-08T01:00:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T04:00:00-04:00")
		wantTicks(t, ticks(p, time.Date(2026, 11, 1, 0, 30, 0, 0, ny), 3), "2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00", "2026-11-01T02:00:00-05:00")
	})
	t.Run("30 minute shift", func(t *testing.T) {
		// Lord Howe Island moves by 30 minutes: 02:00 -> 02:30 on 2026-10-04.
		lh, _ := time.LoadLocation("Australia/Lord_Howe")
		p := mustPlan(t, "15 2 * * *", "Australia/Lord_Howe", time.Time{})
		got := ticks(p, time.Date(2026, 10, 3, 12, 0, 0, 0, lh), 2)
		wantTicks(t, got, "2026-10-04T02:30:00+11:00", "2026-10-05T02:15:00+11:00")
	})
}

func TestLatest(t *testing.T) {
	p := mustPlan(t, "*/5 * * * *", "", time.Time{})
	first := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		now  time.Time
		want time.Time
	}{
		{first, first},
		{first.Add(4 * time.Minute), first},
		{first.Add(17 * time.Minute), first.Add(15 * time.Minute)},
		{first.Add(3*24*time.Hour + 2*time.Minute), first.Add(3 * 24 * time.Hour)},
		{first.Add(400 * 24 * time.Hour), first.Add(400 * 24 * time.Hour)},
	} {
		if got := p.latest(first, c.now); !got.Equal(c.want) {
			t.Errorf("latest at %s: got %s, want %s", c.now, got, c.want)
		}
	}
	// A spec ticking every second during one hour a day, long after: bounded work.
	p = mustPlan(t, "* * 3 * * *", "", time.Time{})
	start := time.Now()
	got := p.latest(first.Add(-7*time.Hour), first.Add(30*24*time.Hour))
	if want := time.Date(2026, 2, 4, 3, 59, 59, 0, time.UTC); !got.Equal(want) {
		t.Errorf("latest: got %s, want %s", got, want)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("latest took %s", d)
	}
}

func TestParseSpecErrors(t *testing.T) {
	for _, c := range []struct{ spec, want string }{
		{"", "required"},
		{"* * *", "expected 5 to 6 fields"},
		{"61 * * * *", "above maximum"},
		{"*/0 * * * *", "step of range"},
		{"0 0 * * MOO", "failed to parse"},
		{"@every 500ms", "whole number of seconds"},
		{"@every 1.5s", "whole number of seconds"},
		{"@every soon", "want a duration"},
		{"@sometimes", "unrecognized descriptor"},
		{"@at tomorrow", "want a time"},
		{"TZ=Europe/Paris 0 9 * * *", "time_zone"},
		{"CRON_TZ=UTC", "time_zone"},
		{strings.Repeat("1", 300), "longer than"},
	} {
		_, err := parseSpec(c.spec, time.UTC, time.Time{})
		var ve *engine.ValidationError
		if !errors.As(err, &ve) || ve.Field != "spec" || !strings.Contains(ve.Reason, c.want) {
			t.Errorf("parse %q: got %v, want a spec error with %q", c.spec, err, c.want)
		}
	}
}

func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{"0 2 * * *", "*/5 * * * * *", "@every 1m", "@at 2027-01-01T00:00:00Z", "@daily", "TZ=x", "1-2/3,4 * ? JAN-MAR SUN"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		p, err := parseSpec(spec, time.UTC, time.Unix(1e9, 0))
		if err != nil {
			return
		}
		(&plan{tk: p}).after(time.Unix(1.7e9, 0))
	})
}

func TestZones(t *testing.T) {
	var z zones
	a, err := z.load("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := z.load("Europe/Paris"); a != b {
		t.Error("zone not shared")
	}
	for _, bad := range []string{"Local", "Mars/Olympus", "../etc"} {
		if _, err := z.load(bad); err == nil {
			t.Errorf("zone %q accepted", bad)
		}
	}
}

func TestTickID(t *testing.T) {
	tick := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	a := TickID("nightly", tick)
	if a>>62 != 0 || a == 0 { // below 2^62: larger ids are the engine's own
		t.Fatalf("id %d out of range", a)
	}
	if TickID("nightly", tick.In(time.FixedZone("x", 3600))) != a {
		t.Error("id depends on the time's location")
	}
	if TickID("nightly", tick.Add(time.Second)) == a || TickID("nightly2", tick) == a {
		t.Error("ids collide")
	}
}
