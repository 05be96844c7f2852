package spool_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/spoolq/spool/internal/spooltest"
)

// serverURL is the address of a real spool server that TestMain starts for the tests; the
// examples read it from $SPOOL_SERVER, as a user's program would.
var serverURL string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	if os.Getenv(helperWorkerEnv) != "" {
		return m.Run() // a child process of TestWorkerKilledMidJob: it needs no server of its own
	}
	stop, err := startSecureServer()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer stop()
	return spooltest.Main(m, &serverURL)
}
