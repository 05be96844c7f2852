// Package testdep ends tests whose external dependency (a program, a client library, a
// mount right) is missing: the rule "skip, except under CI=true, where it fails" in one place,
// so that a broken install step cannot turn a test off unnoticed.
package testdep

import (
	"os"
	"strconv"
	"testing"
)

// Missing skips the test with why, or fails it when CI=true.
func Missing(tb testing.TB, why string) {
	tb.Helper()
	if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
		tb.Fatalf("CI=true and %s", why)
	}
	tb.Skip(why)
}
