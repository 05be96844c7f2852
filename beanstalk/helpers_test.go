package beanstalk_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spoolq/spool/beanstalk"
	"github.com/spoolq/spool/engine"
	"github.com/spoolq/spool/internal/natsd"
)

func testLogger() *slog.Logger {
	if os.Getenv("SPOOL_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// env is a real spool engine on an embedded JetStream server, with the beanstalkd front
// listening on a loopback port.
type env struct {
	eng  *engine.Engine
	srv  *beanstalk.Server
	addr string
}

func startEngine(t testing.TB) *engine.Engine {
	t.Helper()
	ns, err := natsd.Start(context.Background(), natsd.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	nc, err := natsd.Connect(ns, "test")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := engine.Open(ctx, nc, engine.Config{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(); nc.Close() })
	return e
}

func start(t testing.TB, opt beanstalk.Options) *env {
	t.Helper()
	e := startEngine(t)
	return serve(t, e, opt)
}

// serve starts a front over e.
func serve(t testing.TB, e *engine.Engine, opt beanstalk.Options) *env {
	t.Helper()
	if opt.Logger == nil {
		opt.Logger = testLogger()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := beanstalk.New(e, opt)
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background(), ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		<-done
	})
	return &env{eng: e, srv: s, addr: ln.Addr().String()}
}

// client is a raw protocol client: it sends bytes and reads the exact replies.
type client struct {
	t  testing.TB
	nc net.Conn
	r  *bufio.Reader
}

func (e *env) dial(t testing.TB) *client {
	t.Helper()
	nc, err := net.DialTimeout("tcp", e.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &client{t: t, nc: nc, r: bufio.NewReader(nc)}
}

func (c *client) send(s string) {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c.nc, s); err != nil {
		c.t.Fatalf("send %q: %v", s, err)
	}
}

// line reads one reply line, without its "\r\n".
func (c *client) line() string {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	l, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read reply: %v (got %q)", err, l)
	}
	if !strings.HasSuffix(l, "\r\n") {
		c.t.Fatalf("reply %q does not end in CRLF", l)
	}
	return strings.TrimSuffix(l, "\r\n")
}

// data reads a chunk of n bytes and its "\r\n".
func (c *client) data(n int) string {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	b := make([]byte, n+2)
	if _, err := io.ReadFull(c.r, b); err != nil {
		c.t.Fatalf("read %d bytes of data: %v", n, err)
	}
	if string(b[n:]) != "\r\n" {
		c.t.Fatalf("data %q does not end in CRLF", b)
	}
	return string(b[:n])
}

// do sends one command and returns the reply line.
func (c *client) do(cmd string) string {
	c.t.Helper()
	c.send(cmd + "\r\n")
	return c.line()
}

// expect sends a command and checks the reply line.
func (c *client) expect(cmd, want string) {
	c.t.Helper()
	if got := c.do(cmd); got != want {
		c.t.Fatalf("%q: got %q, want %q", cmd, got, want)
	}
}

// put puts a job and returns its id.
func (c *client) put(pri, delay, ttr int, body string) uint64 {
	c.t.Helper()
	got := c.do(fmt.Sprintf("put %d %d %d %d\r\n%s", pri, delay, ttr, len(body), body))
	id, ok := strings.CutPrefix(got, "INSERTED ")
	if !ok {
		c.t.Fatalf("put: got %q, want INSERTED <id>", got)
	}
	n, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		c.t.Fatalf("put: bad id in %q", got)
	}
	return n
}

// job reads the rest of a "<word> <id> <bytes>" reply: it checks the word and returns the id
// and body.
func (c *client) job(reply, word string) (uint64, string) {
	c.t.Helper()
	f := strings.Fields(reply)
	if len(f) != 3 || f[0] != word {
		c.t.Fatalf("got %q, want %s <id> <bytes>", reply, word)
	}
	id, err1 := strconv.ParseUint(f[1], 10, 64)
	n, err2 := strconv.Atoi(f[2])
	if err1 != nil || err2 != nil {
		c.t.Fatalf("malformed reply %q", reply)
	}
	return id, c.data(n)
}

// reserve sends cmd (reserve, reserve-with-timeout, reserve-job) and expects a job.
func (c *client) reserve(cmd string) (uint64, string) {
	c.t.Helper()
	return c.job(c.do(cmd), "RESERVED")
}

// recvJob reads a "<word> <id> <bytes>" reply with that id and body.
func (c *client) recvJob(word string, id uint64, body string) {
	c.t.Helper()
	gid, gbody := c.job(c.line(), word)
	if gid != id || gbody != body {
		c.t.Fatalf("got %s %d %q, want %s %d %q", word, gid, gbody, word, id, body)
	}
}

// expectJob sends cmd and expects "<word> <id> <bytes>" with that id and body.
func (c *client) expectJob(cmd, word string, id uint64, body string) {
	c.t.Helper()
	gid, gbody := c.job(c.do(cmd), word)
	if gid != id || gbody != body {
		c.t.Fatalf("%q: got %s %d %q, want %s %d %q", cmd, word, gid, gbody, word, id, body)
	}
}

// yaml sends cmd and returns the YAML body of its OK reply.
func (c *client) yaml(cmd string) string {
	c.t.Helper()
	reply := c.do(cmd)
	n, ok := strings.CutPrefix(reply, "OK ")
	if !ok {
		c.t.Fatalf("%q: got %q, want OK <bytes>", cmd, reply)
	}
	size, err := strconv.Atoi(n)
	if err != nil {
		c.t.Fatalf("%q: malformed reply %q", cmd, reply)
	}
	return c.data(size)
}

// dict sends cmd and parses its YAML dictionary, checking beanstalkd's layout.
func (c *client) dict(cmd string) map[string]string {
	c.t.Helper()
	body := c.yaml(cmd)
	lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
	if lines[0] != "---" {
		c.t.Fatalf("%q: YAML %q does not start with ---", cmd, body)
	}
	m := make(map[string]string)
	for _, l := range lines[1:] {
		k, v, ok := strings.Cut(l, ": ")
		if !ok {
			c.t.Fatalf("%q: bad YAML line %q", cmd, l)
		}
		m[k] = v
	}
	return m
}

// closed checks that the server closes the connection without sending anything more.
func (c *client) closed() {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := c.r.ReadByte()
	if err == nil {
		c.t.Fatalf("connection open: read %q", b)
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		c.t.Fatal("connection still open after 10s")
	}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}
