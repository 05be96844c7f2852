package spool

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/spoolq/spool/internal/testdep"
)

// TestNoServerDependency keeps the client free of the server: a Go program that uses
// package spool must not link nats-server or spool's server packages.
func TestNoServerDependency(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		testdep.Missing(t, "no go command to list the dependencies")
	}
	out, err := exec.Command(gobin, "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "github.com/nats-io/") ||
			strings.HasPrefix(dep, "github.com/spoolq/spool/") {
			t.Errorf("package spool depends on %s", dep)
		}
	}
}
