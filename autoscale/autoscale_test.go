package autoscale

import "testing"

// Each case is computed by hand from the formula in Desired's documentation.
func TestDesired(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		qs   []Signal
		p    Params
		want Result
	}{
		{
			// The Worker Pod Autoscaler's own test (TestScaleDownWhenQueueMessagesLessThanTarget):
			// needed ceil(10/200) = 1, min' ceil(0.3·10/60) = 1; |1−20|/20 > 0.1, so 1, but one
			// scale-down removes at most ceil(10% of 20) = 2: 18.
			name: "scale down bounded by maxDisruption",
			qs:   []Signal{{Messages: 10, ArrivalPerMinute: 10}},
			p:    Params{TargetMessagesPerWorker: 200, SecondsToProcessOneJob: 0.3, Max: 20, MaxDisruption: "10%", Current: 20},
			want: Result{Desired: 18, Messages: 10, Needed: 1, MinByRate: 1, Idle: 20, MaxDisruptable: 2},
		},
		{
			name: "from zero: ceil(25/10)",
			qs:   []Signal{{Messages: 25}},
			p:    Params{TargetMessagesPerWorker: 10, Max: 10, Current: -1},
			want: Result{Desired: 3, Messages: 25, Needed: 3},
		},
		{
			name: "change within 10% keeps current: needed 11, current 10",
			qs:   []Signal{{Messages: 105, Reserved: 10}},
			p:    Params{TargetMessagesPerWorker: 10, Max: 50, Current: 10},
			want: Result{Desired: 10, Messages: 105, Needed: 11, MaxDisruptable: 10},
		},
		{
			name: "scale up capped by max: needed 30, max 20",
			qs:   []Signal{{Messages: 300, Reserved: 5}},
			p:    Params{TargetMessagesPerWorker: 10, Max: 20, Current: 5},
			want: Result{Desired: 20, Messages: 300, Needed: 30, MaxDisruptable: 5},
		},
		{
			// No backlog but 600 jobs/min of 2 s each: ceil(2·600/60) = 20 workers; from 30,
			// at most 5 go at once: 25.
			name: "no backlog, arrivals: min from the rate, disruption 5",
			qs:   []Signal{{ArrivalPerMinute: 600}},
			p:    Params{TargetMessagesPerWorker: 10, SecondsToProcessOneJob: 2, Max: 40, MaxDisruption: "5", Current: 30},
			want: Result{Desired: 25, MinByRate: 20, Idle: 30, MaxDisruptable: 5},
		},
		{
			name: "all idle: down to min at once, whatever maxDisruption",
			qs:   []Signal{{}},
			p:    Params{TargetMessagesPerWorker: 10, Min: 2, Max: 40, MaxDisruption: "10%", Current: 8},
			want: Result{Desired: 2, MinByRate: 2, Idle: 8, MaxDisruptable: 1},
		},
		{
			// Per-queue ceilings: ceil(15/10) + ceil(1/10) = 3 (not ceil(16/10) = 2); min'
			// ceil(1·30/60) + ceil(1·30/60) = 2.
			name: "several queues add up per queue",
			qs:   []Signal{{Messages: 15, ArrivalPerMinute: 30}, {Messages: 1, ArrivalPerMinute: 30}},
			p:    Params{TargetMessagesPerWorker: 10, SecondsToProcessOneJob: 1, Max: 10, Current: 0},
			want: Result{Desired: 3, Messages: 16, Needed: 3, MinByRate: 2},
		},
		{
			name: "min equal to max is max",
			qs:   []Signal{{Messages: 1000, Reserved: 3}},
			p:    Params{TargetMessagesPerWorker: 1, Min: 5, Max: 5, Current: 3},
			want: Result{Desired: 5, Messages: 1000, Needed: 1000, MinByRate: 5, MaxDisruptable: 3},
		},
	}
	for _, c := range cases {
		got, err := Desired(c.qs, c.p)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if got != c.want {
			t.Errorf("%s:\n got %+v\nwant %+v", c.name, got, c.want)
		}
	}
}

func TestParamsValidate(t *testing.T) {
	t.Parallel()
	for _, p := range []Params{
		{TargetMessagesPerWorker: 0, Max: 1},
		{TargetMessagesPerWorker: 1, Min: 3, Max: 2},
		{TargetMessagesPerWorker: 1, Max: 1, SecondsToProcessOneJob: -1},
		{TargetMessagesPerWorker: 1, Max: 1, MaxDisruption: "abc"},
		{TargetMessagesPerWorker: 1, Max: 1, MaxDisruption: "150%"},
		{TargetMessagesPerWorker: 1, Max: 1, MaxDisruption: "-1"},
		{TargetMessagesPerWorker: 1, Max: 1, Current: -2},
	} {
		if _, err := Desired(nil, p); err == nil {
			t.Errorf("%+v: no error", p)
		}
	}
}

func TestDisruptableRoundsUp(t *testing.T) {
	t.Parallel()
	if n, _ := disruptable("10%", 7); n != 1 {
		t.Fatalf("10%% of 7: %d, want 1", n)
	}
	if n, _ := disruptable("", 7); n != 7 {
		t.Fatalf("default of 7: %d, want 7", n)
	}
}
