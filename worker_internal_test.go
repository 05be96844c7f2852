package spool

import (
	"log/slog"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// testPicker returns a picker over queues with weights, as a Worker of the given
// concurrency makes it, with a clock the test moves.
func testPicker(t *testing.T, queues []string, weights []int, strict bool, concurrency int) (*picker, *time.Time) {
	t.Helper()
	w := &Worker{opts: WorkerOptions{Concurrency: concurrency}, log: slog.New(slog.DiscardHandler)}
	p := newPicker(w, queues, weights, strict)
	now := time.Unix(1_800_000_000, 0)
	p.now = func() time.Time { return now }
	return p, &now
}

// take simulates one reservation of n jobs, all from the first queue of the probe order
// (every queue is busy).
func take(p *picker, n int) string {
	order := p.probeOrder()
	q := p.queues[order[0]]
	res := &ReserveResult{}
	for range n {
		res.Jobs = append(res.Jobs, &ReservedJob{Job: Job{Queue: q}})
	}
	p.observe([]string{q}, res)
	return q
}

func TestPickerSharesByWeight(t *testing.T) {
	for _, batch := range []int{1, 3, 10} {
		p, _ := testPicker(t, []string{"a", "b", "c"}, []int{6, 3, 1}, false, 10)
		got := map[string]int{}
		for range 1000 {
			got[take(p, batch)] += batch
		}
		total := 1000 * batch
		for q, wt := range map[string]int{"a": 6, "b": 3, "c": 1} {
			want := total * wt / 10
			if d := got[q] - want; d < -2*batch*10 || d > 2*batch*10 {
				t.Errorf("batch %d: queue %s gave %d of %d jobs, want about %d", batch, q, got[q], total, want)
			}
		}
	}
}

func TestPickerStrictOrder(t *testing.T) {
	p, _ := testPicker(t, []string{"a", "b", "c"}, []int{1, 1, 1}, true, 10)
	for range 10 {
		if q := take(p, 5); q != "a" {
			t.Fatalf("strict order asked %s first, want a", q)
		}
	}
}

// A queue found empty is not probed on its own for a moment, and earns no credit
// meanwhile; a paused one is not probed until a reservation says it was resumed.
func TestPickerSkipsEmptyAndPausedQueues(t *testing.T) {
	p, now := testPicker(t, []string{"a", "b", "c"}, []int{1, 1, 1}, false, 10)
	p.observe([]string{"a", "b", "c"}, &ReserveResult{Paused: []string{"c"}})
	p.empty[0] = now.Add(emptyHold) // a came back empty
	if order := p.probeOrder(); len(order) != 1 || p.queues[order[0]] != "b" {
		t.Fatalf("probe order %v, want only b", order)
	}
	for range 50 {
		take(p, 1)
	}
	if p.credit[0] != 0 || p.credit[2] != 0 {
		t.Errorf("credits %v: an empty or paused queue earned credit", p.credit)
	}
	*now = now.Add(emptyHold + time.Millisecond)
	if order := p.probeOrder(); len(order) != 2 {
		t.Errorf("probe order %v after the hold, want a and b", order)
	}
	if got := p.pollOrder(p.probeOrder()); len(got) != 3 || got[2] != "c" {
		t.Errorf("poll order %v: want every queue, the paused one last", got)
	}
	p.observe([]string{"c"}, &ReserveResult{})
	if order := p.probeOrder(); len(order) != 3 {
		t.Errorf("probe order %v after c's resume, want all three", order)
	}
}

// Credits are bounded: a queue served alone for a long time does not then starve.
func TestPickerCreditIsBounded(t *testing.T) {
	p, now := testPicker(t, []string{"a", "b"}, []int{1, 1}, false, 4)
	p.empty[0] = now.Add(time.Hour) // a is empty for a long time: b serves alone
	for range 10000 {
		take(p, 4)
	}
	p.empty[0] = time.Time{}
	// Both busy now: b must get its turn within a few reservations.
	for range 10 {
		if take(p, 4) == "b" {
			return
		}
	}
	t.Errorf("b was not asked first in 10 reservations after a long run alone; credits %v", p.credit)
}

func TestTruncateText(t *testing.T) {
	got := truncateText(strings.Repeat("é", 50), 21) // 2 bytes each: the cut falls inside one
	if len(got) > 21 || !utf8.ValidString(got) || !strings.HasSuffix(got, "[truncated]") {
		t.Errorf("truncateText = %q (%d bytes), want at most 21 valid bytes marked as cut", got, len(got))
	}
	if truncateText("short", 20) != "short" {
		t.Error("a short text was changed")
	}
}
