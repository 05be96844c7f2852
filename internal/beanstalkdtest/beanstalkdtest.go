// Package beanstalkdtest runs the real beanstalkd (Debian package "beanstalkd", 1.12) as a
// child process for tests. It is imported by tests only.
package beanstalkdtest

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spoolq/spool/internal/testdep"
)

// Binary returns the beanstalkd binary ($BEANSTALKD, else the one on PATH). When it is
// missing the test is skipped, or failed under CI=true (.ci/run installs it).
func Binary(tb testing.TB) string {
	tb.Helper()
	path := os.Getenv("BEANSTALKD")
	if path == "" {
		p, err := exec.LookPath("beanstalkd")
		if err != nil {
			testdep.Missing(tb, "beanstalkd is not installed (apt-get install beanstalkd)")
		}
		path = p
	}
	out, err := exec.Command(path, "-v").CombinedOutput()
	if err != nil {
		testdep.Missing(tb, fmt.Sprintf("%s -v: %v", path, err))
	}
	if v := strings.TrimSpace(string(out)); v != "beanstalkd 1.12" {
		tb.Logf("testing with %q, not beanstalkd 1.12", v)
	}
	return path
}

// Server is a running beanstalkd.
type Server struct {
	Addr string // host:port
	cmd  *exec.Cmd
	once sync.Once
}

// Start runs bin on a free loopback port with its binlog in dir (a new temporary
// directory when ""), and returns once it accepts connections. The test's cleanup kills it.
func Start(tb testing.TB, bin, dir string, args ...string) *Server {
	tb.Helper()
	if dir == "" {
		dir = tb.TempDir()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	cmd := exec.Command(bin, append([]string{"-l", "127.0.0.1", "-p", port, "-b", dir}, args...)...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	s := &Server{Addr: net.JoinHostPort("127.0.0.1", port), cmd: cmd}
	tb.Cleanup(s.Kill)
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.Dial("tcp", s.Addr)
		if err == nil {
			c.Close()
			return s
		}
		if time.Now().After(deadline) {
			tb.Fatalf("beanstalkd did not start: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill stops beanstalkd with SIGKILL and waits for it to exit; it may be called again,
// from any goroutine.
func (s *Server) Kill() {
	s.once.Do(func() {
		s.cmd.Process.Kill()
		s.cmd.Wait()
	})
}
