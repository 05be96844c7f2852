package engine

import (
	"testing"
	"time"
)

// FuzzEscapeName checks that every valid queue name maps to a token of [A-Za-z0-9_-] only
// (safe in subjects, stream names and KV keys) and that the mapping is reversible, so two
// queue names never share a stream.
func FuzzEscapeName(f *testing.F) {
	for _, s := range []string{"default", "email", "a/b", "x.y", "_", "(a)$b;c+d", "A-Z_09"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if ValidateQueueName(name) != nil {
			return
		}
		esc := escapeName(name)
		for i := 0; i < len(esc); i++ {
			c := esc[i]
			if !(c == '-' || c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
				t.Fatalf("escapeName(%q) = %q has %q", name, esc, c)
			}
		}
		back, err := unescapeName(esc)
		if err != nil || back != name {
			t.Fatalf("unescapeName(escapeName(%q)) = %q, %v", name, back, err)
		}
	})
}

func TestValidateQueueName(t *testing.T) {
	t.Parallel()
	good := []string{"a", "default", "a/b", "(x)", "$t;+._-z", string(make([]byte, 0)) + "q"}
	for _, n := range good {
		if err := ValidateQueueName(n); err != nil {
			t.Errorf("%q: %v", n, err)
		}
	}
	long := make([]byte, MaxQueueName+1)
	for i := range long {
		long[i] = 'a'
	}
	for _, n := range []string{"", "-a", "a b", "a\x00", "é", "a*", "a>", string(long)} {
		if ValidateQueueName(n) == nil {
			t.Errorf("%q accepted", n)
		}
	}
}

func TestIDsIncreaseAndBorrowUnderBursts(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	g := newIDGen(func() time.Time { return now })
	var last uint64
	for i := 0; i < 10000; i++ { // more than 4096 in one millisecond
		id := g.next()
		if id <= last {
			t.Fatalf("id %d after %d", id, last)
		}
		if id>>63 != 0 {
			t.Fatalf("id %d has the top bit set", id)
		}
		last = id
	}
}

func TestLevels(t *testing.T) {
	t.Parallel()
	var c queueConfig
	if _, ok := c.level(7); ok {
		t.Fatal("a new priority has a level before one is made")
	}
	for i := range maxLevels {
		c.Levels = append(c.Levels, uint32(10*i+10)) // 10, 20, ... 640
	}
	// Full: an existing priority keeps its level; a new one shares the nearest lower
	// level, or the lowest when none is lower.
	for pri, want := range map[uint32]int{10: 10, 640: 640, 15: 10, 1 << 31: 640, 3: 10} {
		if got, ok := c.level(pri); !ok || got != want {
			t.Errorf("level(%d) = %d %v, want %d", pri, got, ok, want)
		}
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	for attempt, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 5: 16 * time.Second, 20: time.Minute} {
		got := backoff(attempt, time.Second, time.Minute)
		if got < want*8/10 || got > want*12/10 {
			t.Errorf("backoff(%d) = %v, want %v ±20%%", attempt, got, want)
		}
	}
}

func TestLongQueueNamesFitStreamNames(t *testing.T) {
	t.Parallel()
	long := make([]byte, MaxQueueName)
	for i := range long {
		long[i] = '$'
	}
	other := append([]byte(nil), long...)
	other[len(other)-1] = '('
	a, b := queueNames(string(long)).stream(), queueNames(string(other)).stream()
	if len(a) > 255 || len(b) > 255 {
		t.Fatalf("stream names of %d and %d bytes", len(a), len(b))
	}
	if a == b {
		t.Fatal("two queue names share a stream")
	}
	if s := queueNames("email").stream(); s != "SPOOL_Q_email" {
		t.Fatalf("short name: %s", s)
	}
	// In a shard, the consumers carry the queue's name, within JetStream's limit.
	ca, cb := shardNames(string(long), 1, 0).consumer(7), shardNames(string(other), 1, 0).consumer(7)
	if len(ca) > 255 || ca == cb {
		t.Fatalf("consumer names %q and %q", ca, cb)
	}
	if c := shardNames("email", 3, 0).counter(StateBuried); c != "email_cburied" {
		t.Fatalf("counter name: %s", c)
	}
}

// No two queues in a shard share a consumer: the name's suffix cannot be part of an
// escaped queue name.
func TestShardConsumerNamesDistinct(t *testing.T) {
	t.Parallel()
	queues := []string{"a", "a-r1", "a_r1", "a_c", "a.r1", "a_cdelayed", "a-cdelayed", "r1"}
	seen := map[string]string{}
	for _, q := range queues {
		n := shardNames(q, 0, 0)
		for _, c := range []string{n.consumer(0), n.consumer(1), n.consumer(10), n.counter(StateDelayed), n.counter(StateBuried)} {
			if prev, ok := seen[c]; ok {
				t.Fatalf("queues %q and %q share consumer %q", prev, q, c)
			}
			seen[c] = q
		}
	}
}
