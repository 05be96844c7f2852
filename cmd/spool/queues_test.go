package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/spoolq/spool"
	"github.com/spoolq/spool/internal/spooltest"
)

// spool queues --prefix, --paused and --limit list what they select, in name order.
func TestQueuesSelected(t *testing.T) {
	t.Parallel()
	srv := spooltest.Start(t, nil)
	s := "--server=" + srv.URL
	for _, q := range []string{"a1", "a2", "a3", "b1"} {
		ok(t, "enqueue", q, s)
	}
	ok(t, "pause", "a2", s)
	ok(t, "pause", "b1", s)
	list := func(args ...string) []string {
		t.Helper()
		var out struct {
			Queues []spool.Queue `json:"queues"`
		}
		okJSON(t, &out, append([]string{"queues", s}, args...)...)
		var names []string
		for _, q := range out.Queues {
			names = append(names, q.Name)
		}
		return names
	}
	for _, c := range []struct {
		args []string
		want []string
	}{
		{nil, []string{"a1", "a2", "a3", "b1"}},
		{[]string{"--prefix", "a"}, []string{"a1", "a2", "a3"}},
		{[]string{"--paused"}, []string{"a2", "b1"}},
		{[]string{"--prefix", "a", "--paused"}, []string{"a2"}},
		{[]string{"--limit", "2"}, []string{"a1", "a2"}},
		{[]string{"--prefix", "a", "--limit", "5"}, []string{"a1", "a2", "a3"}},
		{[]string{"--prefix", "c"}, nil},
	} {
		if got := list(c.args...); !slices.Equal(got, c.want) {
			t.Errorf("queues %s: %v, want %v", strings.Join(c.args, " "), got, c.want)
		}
	}
	if r := spoolCmd(t, "", "queues", s, "--limit", "-1"); r.code != 2 {
		t.Errorf("--limit -1: exit %d, want 2 (usage)", r.code)
	}
	if r := spoolCmd(t, "", "queues", s, "--prefix", "bad name"); r.code == 0 || !strings.Contains(r.stderr, "prefix") {
		t.Errorf("--prefix 'bad name': exit %d, stderr %q", r.code, r.stderr)
	}
}
