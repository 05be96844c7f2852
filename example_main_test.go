package spool_test

import (
	"os"
	"testing"

	"github.com/spoolq/spool/internal/spooltest"
)

// serverURL is the address of a real spool server that TestMain starts for the examples,
// as "spool serve" would listen on http://127.0.0.1:7420.
var serverURL string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	if os.Getenv(helperWorkerEnv) != "" {
		return m.Run() // a child process of TestWorkerKilledMidJob: it needs no server of its own
	}
	return spooltest.Main(m, &serverURL)
}
