// Package beanstalkdtest runs the real beanstalkd (Debian package "beanstalkd", 1.12) as a
// child process for tests. It is imported by tests only.
package beanstalkdtest

import (
	"bufio"
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
	// The port is free when picked, not when beanstalkd binds it: a test running beside
	// may have taken it meanwhile, and then beanstalkd exits while the other answers. The
	// answer's pid tells: try another port.
	for try := 1; ; try++ {
		s, err := start(bin, dir, args)
		if err == nil {
			tb.Cleanup(s.Kill)
			return s
		}
		if try == 5 {
			tb.Fatalf("beanstalkd did not start: %v", err)
		}
		tb.Logf("beanstalkd did not start, trying another port: %v", err)
	}
}

func start(bin, dir string, args []string) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	cmd := exec.Command(bin, append([]string{"-l", "127.0.0.1", "-p", port, "-b", dir}, args...)...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &Server{Addr: net.JoinHostPort("127.0.0.1", port), cmd: cmd}
	for deadline := time.Now().Add(10 * time.Second); ; {
		pid, err := pidAt(s.Addr)
		switch {
		case err == nil && pid == cmd.Process.Pid:
			return s, nil
		case err == nil:
			s.Kill()
			return nil, fmt.Errorf("port %s is another process's (pid %d)", port, pid)
		case time.Now().After(deadline):
			s.Kill()
			return nil, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pidAt asks the beanstalkd at addr for its pid.
func pidAt(addr string) (int, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "stats\r\n"); err != nil {
		return 0, err
	}
	r := bufio.NewReader(c)
	head, err := r.ReadString('\n')
	if err != nil {
		return 0, err
	}
	var size int
	if _, err := fmt.Sscanf(head, "OK %d\r\n", &size); err != nil {
		return 0, fmt.Errorf("stats: %q: %w", head, err)
	}
	body := make([]byte, size+2)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, err
	}
	_, rest, ok := strings.Cut(string(body), "\npid: ")
	if !ok {
		return 0, fmt.Errorf("no pid in the stats of %s", addr)
	}
	pid, _, _ := strings.Cut(rest, "\n")
	return strconv.Atoi(pid)
}

// Kill stops beanstalkd with SIGKILL and waits for it to exit; it may be called again,
// from any goroutine.
func (s *Server) Kill() {
	s.once.Do(func() {
		s.cmd.Process.Kill()
		s.cmd.Wait()
	})
}
