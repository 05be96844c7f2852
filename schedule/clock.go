package schedule

import "time"

// Clock is the scheduler's source of time. The real one is the system clock; tests inject
// one they move by hand, so that they drive ticks without sleeping.
//
// Timers take an absolute deadline, not a duration: the scheduler computes "the next tick
// is at T" and a clock moved between reading Now and arming the timer must not delay the
// wake-up.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// NewTimer returns a timer that delivers on its channel once the clock reaches at
	// (at once when at is not in the future).
	NewTimer(at time.Time) Timer
}

// Timer is a one-shot timer of a Clock.
type Timer interface {
	// C delivers the time when the timer fires.
	C() <-chan time.Time
	// Reset re-arms the timer for a new deadline. No value of the previous deadline is
	// delivered after Reset returns.
	Reset(at time.Time)
	// Stop disarms the timer.
	Stop()
}

// SystemClock is the real clock: time.Now and time.Timer.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// NewTimer returns a time.Timer firing at at.
func (SystemClock) NewTimer(at time.Time) Timer {
	return &systemTimer{t: time.NewTimer(time.Until(at))}
}

type systemTimer struct{ t *time.Timer }

func (s *systemTimer) C() <-chan time.Time { return s.t.C }

// Reset relies on Go 1.23+ timer semantics: Reset discards a value not yet received.
func (s *systemTimer) Reset(at time.Time) { s.t.Reset(time.Until(at)) }
func (s *systemTimer) Stop()              { s.t.Stop() }
