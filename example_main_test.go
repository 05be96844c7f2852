package spool_test

import (
	"fmt"
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
	dir, err := os.MkdirTemp("", "spool-example-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	srv, err := spooltest.Run(dir, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	serverURL = srv.URL
	code := m.Run()
	if err := srv.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop server:", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}
