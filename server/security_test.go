package server_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/spoolq/spool"
	"github.com/spoolq/spool/internal/spooltest"
	"github.com/spoolq/spool/internal/testcert"
	"github.com/spoolq/spool/internal/testlog"
	"github.com/spoolq/spool/server"
)

const adminToken = "admin-token-for-tests-0123456789"

// secureNode is a node with TLS everywhere (mutual TLS), a bootstrap admin token and the
// beanstalkd TLS listener, logging at debug level into logs.
type secureNode struct {
	*spooltest.Server
	ca                *testcert.CA
	dir               string
	certFile, keyFile string
	client            tls.Certificate // signed by ca
	logs              *testlog.Buffer
}

func startSecure(t *testing.T, configure func(*server.Config)) *secureNode {
	t.Helper()
	n := &secureNode{ca: testcert.NewCA(t, "spool test CA"), dir: t.TempDir(), logs: &testlog.Buffer{}}
	n.certFile, n.keyFile = n.ca.Issue(t, "node").Write(t, n.dir, "node")
	caFile := n.ca.WriteCA(t, n.dir, "ca")
	n.client = n.ca.Issue(t, "worker").TLS(t)
	n.Server = spooltest.Start(t, func(c *server.Config) {
		c.TLSCert, c.TLSKey, c.TLSClientCA = n.certFile, n.keyFile, caFile
		c.TLSReloadInterval = 20 * time.Millisecond
		c.BeanstalkTLSAddr = "127.0.0.1:0"
		c.NATSListen = "127.0.0.1:0"
		c.AdminToken = adminToken
		c.Logger = slog.New(slog.NewTextHandler(n.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		if configure != nil {
			configure(c)
		}
	})
	return n
}

func (n *secureNode) url() string { return n.URL }

// tlsConf is a client configuration trusting the node, with the client certificate.
func (n *secureNode) tlsConf(version uint16) *tls.Config {
	return &tls.Config{RootCAs: n.ca.Pool(), Certificates: []tls.Certificate{n.client}, MinVersion: version, MaxVersion: version}
}

func TestSecureNode(t *testing.T) {
	t.Parallel()
	n := startSecure(t, nil)
	ctx := context.Background()

	// The Go SDK, over mutual TLS, with the bootstrap token, then with a token it made.
	conf, err := spool.TLSConfig(n.dir+"/ca.crt", "", "")
	if err != nil {
		t.Fatal(err)
	}
	conf.Certificates = []tls.Certificate{n.client}
	admin, err := spool.NewClient(n.url(), spool.WithTLSConfig(conf), spool.WithToken(adminToken))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := admin.CreateToken(ctx, "producer", []spool.Grant{{Queues: "mail*", Perms: []string{spool.PermEnqueue}}})
	if err != nil {
		t.Fatal(err)
	}
	producer, _ := spool.NewClient(n.url(), spool.WithTLSConfig(conf), spool.WithToken(tok.Secret))
	if _, err := producer.Enqueue(ctx, "mail", "send", 1); err != nil {
		t.Fatalf("enqueue with an enqueue token: %v", err)
	}
	var apiErr *spool.APIError
	if _, err := producer.Enqueue(ctx, "billing", "send", 1); !errors.As(err, &apiErr) || apiErr.Code != spool.CodeForbidden {
		t.Errorf("enqueue outside the grant: %v, want forbidden", err)
	}
	anon, _ := spool.NewClient(n.url(), spool.WithTLSConfig(conf))
	if _, err := anon.Stats(ctx); !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnauthorized {
		t.Errorf("no token: %v, want 401", err)
	}
	if _, err := admin.Tokens(ctx); err != nil {
		t.Fatal(err)
	}

	// Every TLS port: TLS 1.0 and 1.1 refused, 1.2 and 1.3 accepted; no client certificate,
	// or one of another CA, refused.
	stranger := testcert.NewCA(t, "stranger").Issue(t, "intruder").TLS(t)
	for _, port := range []struct{ name, addr, probe, want string }{
		{"http", n.Addrs.HTTP, "GET /healthz HTTP/1.0\r\n\r\n", "HTTP/1.0 200"},
		{"beanstalkd", n.Addrs.BeanstalkTLS, "list-tubes\r\n", "OK "},
		{"nats", n.Addrs.NATS[strings.Index(n.Addrs.NATS, "://")+3:], "", ""},
	} {
		for _, tc := range []struct {
			name string
			conf *tls.Config
			ok   bool
		}{
			{"TLS 1.0", n.tlsConf(tls.VersionTLS10), false},
			{"TLS 1.1", n.tlsConf(tls.VersionTLS11), false},
			{"TLS 1.2", n.tlsConf(tls.VersionTLS12), true},
			{"TLS 1.3", n.tlsConf(tls.VersionTLS13), true},
			{"no client certificate", &tls.Config{RootCAs: n.ca.Pool()}, false},
			{"untrusted client certificate", &tls.Config{RootCAs: n.ca.Pool(), Certificates: []tls.Certificate{stranger}}, false},
		} {
			var err error
			if port.name == "nats" {
				err = natsPing(port.addr, tc.conf)
			} else {
				err = exchange(port.addr, tc.conf, port.probe, port.want)
			}
			if (err == nil) != tc.ok {
				t.Errorf("%s, %s: %v, want success %v", port.name, tc.name, err, tc.ok)
			}
		}
	}

	// No secret in the logs.
	logs := n.logs.String()
	if strings.Contains(logs, adminToken) || strings.Contains(logs, tok.Secret) {
		t.Errorf("a secret is in the server log:\n%s", logs)
	}
	if !strings.Contains(logs, "API token created") {
		t.Errorf("the token creation is not logged:\n%s", logs)
	}
}

// exchange handshakes with addr, sends probe and reads want back.
func exchange(addr string, conf *tls.Config, probe, want string) error {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, conf)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, probe); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, want) {
		return errors.New("answer " + line)
	}
	return nil
}

func natsPing(addr string, conf *tls.Config) error {
	nc, err := nats.Connect("tls://"+addr, nats.Secure(conf), nats.Timeout(10*time.Second), nats.NoReconnect())
	if err != nil {
		return err
	}
	defer nc.Close()
	return nc.FlushTimeout(10 * time.Second)
}

// TestCertificateReload: a renewed certificate is served without a restart.
func TestCertificateReload(t *testing.T) {
	t.Parallel()
	n := startSecure(t, nil)
	renewed := testcert.NewCA(t, "renewed CA")
	p := renewed.Issue(t, "node")
	testcert.WriteFile(t, n.keyFile, p.KeyPEM)
	testcert.WriteFile(t, n.certFile, p.CertPEM)
	pool := x509.NewCertPool()
	pool.AddCert(renewed.Cert)
	spooltest.Eventually(t, 10*time.Second, func() error {
		conf := &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{n.client}}
		if err := exchange(n.Addrs.HTTP, conf, "GET /healthz HTTP/1.0\r\n\r\n", "HTTP/1.0 200"); err != nil {
			return err
		}
		return exchange(n.Addrs.BeanstalkTLS, conf, "list-tubes\r\n", "OK ")
	})
}

// TestStalledHandshakes: connections that open and send nothing, or half a ClientHello, on
// the TLS ports delay no other client.
func TestStalledHandshakes(t *testing.T) {
	t.Parallel()
	n := startSecure(t, nil)
	for _, addr := range []string{n.Addrs.HTTP, n.Addrs.BeanstalkTLS} {
		for i := range 50 {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if i%2 == 0 {
				c.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01})
			}
		}
	}
	conf := n.tlsConf(0)
	if err := exchange(n.Addrs.HTTP, conf, "GET /healthz HTTP/1.0\r\n\r\n", "HTTP/1.0 200"); err != nil {
		t.Errorf("http behind stalled handshakes: %v", err)
	}
	if err := exchange(n.Addrs.BeanstalkTLS, conf, "list-tubes\r\n", "OK "); err != nil {
		t.Errorf("beanstalkd behind stalled handshakes: %v", err)
	}
}

// TestBeanstalkAllowList: the beanstalkd port closes connections from other addresses at
// once.
func TestBeanstalkAllowList(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		allow []string
		ok    bool
	}{{[]string{"10.0.0.0/8", "::1"}, false}, {[]string{"10.0.0.0/8", "127.0.0.1"}, true}, {[]string{"127.0.0.0/8"}, true}} {
		s := spooltest.Start(t, func(c *server.Config) {
			c.BeanstalkAddr = "127.0.0.1:0"
			c.BeanstalkAllow = tc.allow
		})
		c, err := net.Dial("tcp", s.Addrs.Beanstalk)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, "list-tubes\r\n")
		line, err := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if got := err == nil && strings.HasPrefix(line, "OK "); got != tc.ok {
			t.Errorf("allow %v: answer %q, %v; want served %v", tc.allow, line, err, tc.ok)
		}
	}
	_, err := spooltest.Run(t.TempDir(), func(c *server.Config) { c.BeanstalkAllow = []string{"not-an-ip"} })
	if err == nil || !strings.Contains(err.Error(), "not-an-ip") {
		t.Errorf("a bad allow-list: %v", err)
	}
}
