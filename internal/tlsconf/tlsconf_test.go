package tlsconf_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spoolq/spool/internal/spooltest"
	"github.com/spoolq/spool/internal/testcert"
	"github.com/spoolq/spool/internal/tlsconf"

	"github.com/spoolq/spool/internal/testdep"
)

// fixture is an echo server behind tlsconf.Listener with certificates in a temporary folder.
type fixture struct {
	ca                *testcert.CA
	dir               string
	addr              string
	certFile, keyFile string
	caFile            string
	r                 *tlsconf.Reloader
}

func start(t *testing.T, mutual bool, timeout time.Duration) *fixture {
	t.Helper()
	f := &fixture{ca: testcert.NewCA(t, "test CA"), dir: t.TempDir()}
	f.certFile, f.keyFile = f.ca.Issue(t, "server").Write(t, f.dir, "server")
	o := tlsconf.Options{CertFile: f.certFile, KeyFile: f.keyFile, PollInterval: 20 * time.Millisecond}
	if mutual {
		f.caFile = f.ca.WriteCA(t, f.dir, "ca")
		o.ClientCAFile = f.caFile
	}
	r, err := tlsconf.New(o)
	if err != nil {
		t.Fatal(err)
	}
	f.r = r
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go r.Run(ctx)
	f.addr = echo(t, r.ServerConfig(), timeout)
	return f
}

// echo serves, behind tlsconf.Listener with conf, a line echo on a loopback port.
func echo(t *testing.T, conf *tls.Config, timeout time.Duration) (addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	tln := tlsconf.Listener(ln, conf, timeout)
	go func() {
		for {
			c, err := tln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				line, err := bufio.NewReader(c).ReadString('\n')
				if err == nil {
					io.WriteString(c, line)
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// dial handshakes with conf and exchanges one line; it returns the server's certificate.
func (f *fixture) dial(conf *tls.Config) (*x509.Certificate, error) {
	if conf.RootCAs == nil {
		conf.RootCAs = f.ca.Pool()
	}
	d := &net.Dialer{Timeout: 10 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", f.addr, conf)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "ping\n"); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return nil, err // TLS 1.3: a refused client certificate shows on the first read
	}
	if line != "ping\n" {
		return nil, errors.New("echo: got " + line)
	}
	return c.ConnectionState().PeerCertificates[0], nil
}

func TestVersions(t *testing.T) {
	t.Parallel()
	f := start(t, false, 0)
	for _, v := range []struct {
		version uint16
		ok      bool
	}{{tls.VersionTLS10, false}, {tls.VersionTLS11, false}, {tls.VersionTLS12, true}, {tls.VersionTLS13, true}} {
		_, err := f.dial(&tls.Config{MinVersion: v.version, MaxVersion: v.version})
		if (err == nil) != v.ok {
			t.Errorf("%s: handshake error %v, want success %v", tls.VersionName(v.version), err, v.ok)
		}
	}
}

func TestMutualTLS(t *testing.T) {
	t.Parallel()
	f := start(t, true, 0)
	good := f.ca.Issue(t, "worker").TLS(t)
	other := testcert.NewCA(t, "other CA").Issue(t, "intruder").TLS(t)
	for _, tc := range []struct {
		name  string
		certs []tls.Certificate
		ok    bool
	}{{"no certificate", nil, false}, {"untrusted certificate", []tls.Certificate{other}, false}, {"trusted", []tls.Certificate{good}, true}} {
		for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
			_, err := f.dial(&tls.Config{Certificates: tc.certs, MaxVersion: v})
			if (err == nil) != tc.ok {
				t.Errorf("%s over %s: error %v, want success %v", tc.name, tls.VersionName(v), err, tc.ok)
			}
		}
	}
}

// TestOpenSSL makes the handshakes with Debian's openssl s_client, a client that is not Go.
func TestOpenSSL(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("openssl"); err != nil {
		testdep.Missing(t, "openssl is not installed (apt-get install openssl; .ci/run installs it)")
	}
	f := start(t, true, 0)
	client := f.ca.Issue(t, "worker")
	cert, key := client.Write(t, f.dir, "client")
	other := testcert.NewCA(t, "other CA").Issue(t, "intruder")
	ocert, okey := other.Write(t, f.dir, "intruder")
	sclient := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// SECLEVEL=0 lets openssl itself offer TLS 1.0 and 1.1: the refusal must be the server's.
		args = append([]string{"s_client", "-connect", f.addr, "-CAfile", f.caFile, "-verify_return_error", "-quiet",
			"-cipher", "DEFAULT@SECLEVEL=0"}, args...)
		cmd := exec.CommandContext(ctx, "openssl", args...)
		cmd.Stdin = strings.NewReader("ping\n")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, tc := range []struct {
		name string
		args []string
		ok   bool
	}{
		{"TLS 1.0", []string{"-tls1", "-cert", cert, "-key", key}, false},
		{"TLS 1.1", []string{"-tls1_1", "-cert", cert, "-key", key}, false},
		{"TLS 1.2 without a client certificate", []string{"-tls1_2"}, false},
		{"TLS 1.2 with an untrusted client certificate", []string{"-tls1_2", "-cert", ocert, "-key", okey}, false},
		{"TLS 1.3 with an untrusted client certificate", []string{"-tls1_3", "-cert", ocert, "-key", okey}, false},
		{"TLS 1.2", []string{"-tls1_2", "-cert", cert, "-key", key}, true},
		{"TLS 1.3", []string{"-tls1_3", "-cert", cert, "-key", key}, true},
	} {
		out, err := sclient(tc.args...)
		// The echo of "ping" proves a working session (s_client exits 0 on some failures).
		ok := err == nil && strings.Contains(out, "ping")
		if ok != tc.ok {
			t.Errorf("%s: session %v, want %v; openssl said:\n%s", tc.name, ok, tc.ok, out)
		}
	}
}

func TestReloadOnChange(t *testing.T) {
	t.Parallel()
	f := start(t, false, 0)
	before, err := f.dial(&tls.Config{})
	if err != nil {
		t.Fatal(err)
	}
	// A renewal: a new certificate and key, from a new CA (so that the old one can tell).
	ca2 := testcert.NewCA(t, "renewed CA")
	p := ca2.Issue(t, "server")
	testcert.WriteFile(t, f.keyFile, p.KeyPEM)
	testcert.WriteFile(t, f.certFile, p.CertPEM)
	spooltest.Eventually(t, 10*time.Second, func() error {
		got, err := f.dial(&tls.Config{RootCAs: ca2.Pool()})
		if err != nil {
			return err
		}
		if got.SerialNumber.Cmp(before.SerialNumber) == 0 {
			return errors.New("still the old certificate")
		}
		return nil
	})
}

func TestReloadKeepsOldOnBadFiles(t *testing.T) {
	t.Parallel()
	f := start(t, false, 0)
	if err := os.WriteFile(f.certFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := f.r.Reload(); err == nil {
		t.Fatal("Reload of a broken certificate: no error")
	}
	if _, err := f.dial(&tls.Config{}); err != nil {
		t.Fatalf("after a failed reload: %v", err)
	}
}

func TestReloadOnSIGHUP(t *testing.T) {
	// Not parallel: the signal goes to the whole test process. The test's own Notify keeps the
	// process alive whatever the order of registrations.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	ca := testcert.NewCA(t, "CA")
	dir := t.TempDir()
	cert, key := ca.Issue(t, "one").Write(t, dir, "server")
	r, err := tlsconf.New(tlsconf.Options{CertFile: cert, KeyFile: key, PollInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	p := ca.Issue(t, "two")
	testcert.WriteFile(t, key, p.KeyPEM)
	testcert.WriteFile(t, cert, p.CertPEM)
	conf := r.ServerConfig()
	spooltest.Eventually(t, 10*time.Second, func() error {
		c, err := conf.GetCertificate(nil)
		if err != nil {
			return err
		}
		if !bytes.Contains(c.Leaf.RawSubject, []byte("two")) {
			syscall.Kill(os.Getpid(), syscall.SIGHUP)
			return errors.New("certificate not reloaded after SIGHUP")
		}
		return nil
	})
}

// TestSlowHandshakes: clients that connect and send nothing, or stop half-way through a
// handshake, neither delay other clients nor hold their connection past the timeout.
func TestSlowHandshakes(t *testing.T) {
	t.Parallel()
	f := start(t, false, 300*time.Millisecond)
	var idle []net.Conn
	for range 20 {
		c, err := net.Dial("tcp", f.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle = append(idle, c)
	}
	// Half a ClientHello: a record header announcing more bytes than sent.
	if _, err := idle[0].Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.dial(&tls.Config{}); err != nil {
		t.Fatalf("a client behind stalled handshakes: %v", err)
	}
	for i, c := range idle {
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		if _, err := io.ReadAll(c); err != nil {
			t.Fatalf("stalled connection %d: not closed by the server: %v", i, err)
		}
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := testcert.NewCA(t, "CA")
	cert, key := ca.Issue(t, "a").Write(t, dir, "a")
	_, otherKey := ca.Issue(t, "b").Write(t, dir, "b")
	bad := filepath.Join(dir, "bad.pem")
	testcert.WriteFile(t, bad, []byte("junk"))
	for _, o := range []tlsconf.Options{
		{CertFile: cert},
		{CertFile: cert, KeyFile: filepath.Join(dir, "missing")},
		{CertFile: cert, KeyFile: otherKey},
		{CertFile: cert, KeyFile: key, ClientCAFile: bad},
	} {
		if _, err := tlsconf.New(o); err == nil {
			t.Errorf("New(%+v): no error", o)
		}
	}
	r, err := tlsconf.New(tlsconf.Options{CertFile: cert, KeyFile: key})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.RouteConfig(); err == nil {
		t.Error("RouteConfig without a client CA: no error")
	}
}

// TestRouteConfig: a cluster route's two ends both present and verify: a node with a
// certificate of the cluster's CA connects, one of another CA is refused at either end.
func TestRouteConfig(t *testing.T) {
	t.Parallel()
	ca := testcert.NewCA(t, "cluster CA")
	other := testcert.NewCA(t, "other CA")
	node := func(ca *testcert.CA, name string) *tlsconf.Reloader {
		dir := t.TempDir()
		cert, key := ca.Issue(t, name).Write(t, dir, name)
		r, err := tlsconf.New(tlsconf.Options{CertFile: cert, KeyFile: key, ClientCAFile: ca.WriteCA(t, dir, "ca")})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	a, b, stranger := node(ca, "a"), node(ca, "b"), node(other, "x")
	listen := func(r *tlsconf.Reloader) string {
		conf, err := r.RouteConfig()
		if err != nil {
			t.Fatal(err)
		}
		return echo(t, conf, 0)
	}
	dial := func(from *tlsconf.Reloader, addr string) error {
		conf, err := from.RouteConfig()
		if err != nil {
			return err
		}
		conf.ServerName = "127.0.0.1"
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, conf)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, "route\n")
		_, err = bufio.NewReader(c).ReadString('\n')
		return err
	}
	aAddr, strangerAddr := listen(a), listen(stranger)
	if err := dial(b, aAddr); err != nil {
		t.Errorf("a node of the cluster: %v", err)
	}
	if err := dial(stranger, aAddr); err == nil {
		t.Error("a node of another CA was accepted by the cluster")
	}
	if err := dial(b, strangerAddr); err == nil {
		t.Error("a cluster node accepted a route to a node of another CA")
	}
}
