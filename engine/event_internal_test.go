package engine

import (
	"encoding/json"
	"testing"
	"time"
)

// The hand-written encoding is the JSON of wireEvent, escapes included.
func TestAppendEventIsJSON(t *testing.T) {
	ev := Event{Time: time.Unix(0, 1765000000123456789), Kind: EventFailed, JobID: 1<<52 | 7, Queue: "a.b",
		Type: `t"1\`, Node: "n", Worker: "w\n\x01é", Attempt: 3, State: StateDelayed, Error: "boom",
		RunAt: time.Unix(5, 0), Callback: "https://x/y?z=1&w=2"}
	b := appendEvent(nil, &ev)
	var w wireEvent
	if err := json.Unmarshal(b, &w); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	got, err := decodeEvent(0, b)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Time.Equal(ev.Time) || !got.RunAt.Equal(ev.RunAt) {
		t.Fatalf("times %v %v", got.Time, got.RunAt)
	}
	got.Time, got.RunAt, ev.Time, ev.RunAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if got != ev {
		t.Fatalf("round trip\n got %+v\nwant %+v", got, ev)
	}
	if b := appendEvent(nil, &Event{Time: time.Unix(0, 1), Kind: EventEnqueued, Queue: "q", State: StateReady}); string(b) != `{"t":1,"k":"enqueued","id":0,"q":"q","s":"ready"}` {
		t.Fatalf("minimal event %s", b)
	}
}

func FuzzDecodeBatch(f *testing.F) {
	f.Add([]byte(`{"t":1,"k":"enqueued","id":5,"q":"q","s":"ready"}` + "\n" + `{"t":2,"k":"reserved","id":5,"q":"q","s":"reserved"}`))
	f.Add([]byte("\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, _ := decodeBatch(3, b)
		for i, ev := range evs {
			if ev.Pos != 3*EventsPerBatch+uint64(i) {
				t.Fatalf("pos %d at %d", ev.Pos, i)
			}
			again, err := decodeEvent(ev.Pos, appendEvent(nil, &ev))
			if err != nil {
				t.Fatal(err)
			}
			if again.JobID != ev.JobID || again.Kind != ev.Kind || again.Error != ev.Error || again.Worker != ev.Worker {
				t.Fatalf("re-encoded %+v, was %+v", again, ev)
			}
		}
	})
}
