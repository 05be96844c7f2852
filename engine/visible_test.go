package engine_test

import (
	"testing"

	"github.com/spoolq/spool/engine"
)

// A job whose enqueue was answered is handed to the next reservation of its queue, even one
// that does not wait (beanstalkd's reserve-with-timeout 0 right after INSERTED), on the node
// that took the enqueue and on another.
func TestVisibleOnceAcknowledged(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	a := openEngine(t, ns, engine.Config{})
	b := openEngine(t, ns, engine.Config{})
	for i := range 300 {
		on := a
		if i%2 == 1 {
			on = b
		}
		j := enqueue(t, a, engine.EnqueueRequest{Queue: "visible", Priority: uint32(i % 5)})
		got := reserve(t, on, 1, 0, "visible")
		if len(got) != 1 || got[0].Job.ID != j.ID {
			t.Fatalf("round %d: reservation right after the enqueue got %d jobs, want job %d", i, len(got), j.ID)
		}
		if _, err := on.Ack(ctxT(t), j.ID, got[0].Token, nil); err != nil {
			t.Fatal(err)
		}
	}
}
