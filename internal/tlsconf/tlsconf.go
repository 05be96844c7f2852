// Package tlsconf loads a server's TLS certificate, key and optional client CA from files
// and keeps them current: the files are read again on SIGHUP and when they change on disk, so
// a renewed certificate takes effect without a restart. Every listener of a node (HTTP API,
// beanstalkd, NATS clients and cluster routes) takes its configuration from one Reloader.
package tlsconf

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Defaults of Options.
const (
	DefaultPollInterval     = 10 * time.Second
	DefaultHandshakeTimeout = 10 * time.Second
)

// Options names the files of a Reloader.
type Options struct {
	// CertFile and KeyFile hold the PEM certificate chain and private key. Both required.
	CertFile, KeyFile string
	// ClientCAFile, when set, holds the PEM certificates of the CAs that sign client
	// certificates: listeners then require and verify one (mutual TLS).
	ClientCAFile string
	// PollInterval is how often the files are checked for a change. Default 10s.
	PollInterval time.Duration
	// Logger receives reloads and their failures. Default slog.Default().
	Logger *slog.Logger
}

// Reloader holds the current TLS configuration built from its files. Create it with New,
// run Run to follow file changes and SIGHUP.
type Reloader struct {
	o   Options
	log *slog.Logger

	mu  sync.Mutex // serialises loads
	sum [32]byte   // hash of the files' contents last loaded
	cur atomic.Pointer[state]
}

type state struct {
	cert *tls.Certificate
	cas  *x509.CertPool // nil without a client CA
	conf *tls.Config    // the server configuration handed out per connection
}

// New loads the files; an unreadable or mismatched certificate and key is an error.
func New(o Options) (*Reloader, error) {
	if o.CertFile == "" || o.KeyFile == "" {
		return nil, errors.New("tls: both a certificate file and a key file are required")
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	r := &Reloader{o: o, log: o.Logger}
	if _, err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// MutualTLS tells whether listeners require client certificates.
func (r *Reloader) MutualTLS() bool { return r.o.ClientCAFile != "" }

// Reload reads the files again and switches to them if they changed. A failed load keeps the
// configuration in use (a half-written renewal must not take the node down). It reports
// whether the configuration changed.
func (r *Reloader) Reload() (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	certPEM, err := os.ReadFile(r.o.CertFile)
	if err != nil {
		return false, fmt.Errorf("tls: read certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(r.o.KeyFile)
	if err != nil {
		return false, fmt.Errorf("tls: read key: %w", err)
	}
	var caPEM []byte
	if r.o.ClientCAFile != "" {
		if caPEM, err = os.ReadFile(r.o.ClientCAFile); err != nil {
			return false, fmt.Errorf("tls: read client CA: %w", err)
		}
	}
	sum := sha256.Sum256(bytes.Join([][]byte{certPEM, keyPEM, caPEM}, []byte{0}))
	if r.cur.Load() != nil && sum == r.sum {
		return false, nil
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return false, fmt.Errorf("tls: certificate %s and key %s: %w", r.o.CertFile, r.o.KeyFile, err)
	}
	st := &state{cert: &cert}
	if caPEM != nil {
		st.cas = x509.NewCertPool()
		if !st.cas.AppendCertsFromPEM(caPEM) {
			return false, fmt.Errorf("tls: client CA %s: no PEM certificate", r.o.ClientCAFile)
		}
	}
	st.conf = baseConfig()
	st.conf.Certificates = []tls.Certificate{cert}
	if st.cas != nil {
		st.conf.ClientCAs = st.cas
		st.conf.ClientAuth = tls.RequireAndVerifyClientCert
	}
	r.sum = sum
	r.cur.Store(st)
	return true, nil
}

// baseConfig is the policy of every listener: TLS 1.2 at least and, for 1.2, only AEAD
// ciphers with forward secrecy (TLS 1.3's suites are all of that kind and not configurable).
func baseConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
	}
}

// ServerConfig returns the configuration of a listener. Each connection gets the files'
// current contents (GetConfigForClient), so a reload applies to the next handshake.
func (r *Reloader) ServerConfig() *tls.Config {
	c := baseConfig()
	c.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) { return r.cur.Load().conf, nil }
	// Some servers (nats-server) look at these fields before a handshake.
	if st := r.cur.Load(); st.cas != nil {
		c.ClientCAs, c.ClientAuth = st.cas, tls.RequireAndVerifyClientCert
	}
	c.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return r.cur.Load().cert, nil }
	return c
}

// RouteConfig returns the configuration of a cluster's routes, where each node is a server
// and a client of the others: both ends present the node's certificate and verify the
// other's against the client CA, which must be the cluster's CA. A node without a
// certificate signed by it is refused. Without a client CA it returns an error: routes
// without peer verification would accept any node.
func (r *Reloader) RouteConfig() (*tls.Config, error) {
	st := r.cur.Load()
	if st.cas == nil {
		return nil, errors.New("tls: cluster routes need a client CA (the cluster's CA) to verify the other nodes")
	}
	c := r.ServerConfig()
	c.RootCAs = st.cas
	c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return r.cur.Load().cert, nil }
	return c, nil
}

// ClientConfig returns the configuration with which this node connects to another (an
// external NATS server given with --nats): it presents the node's certificate and, with a
// client CA, trusts that CA instead of the system's roots.
func (r *Reloader) ClientConfig() *tls.Config {
	c := baseConfig()
	c.RootCAs = r.cur.Load().cas
	c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return r.cur.Load().cert, nil }
	return c
}

// Run reloads the files on SIGHUP and when their contents change (checked every
// PollInterval), until ctx is done. Failures are logged; the configuration in use stays.
func (r *Reloader) Run(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	t := time.NewTicker(r.o.PollInterval)
	defer t.Stop()
	for {
		var why string
		select {
		case <-ctx.Done():
			return
		case <-hup:
			why = "SIGHUP"
		case <-t.C:
			why = "file change"
		}
		changed, err := r.Reload()
		switch {
		case err != nil:
			r.log.Error("TLS files not reloaded; the previous certificate stays in use", "err", err, "trigger", why)
		case changed:
			r.log.Info("TLS certificate reloaded", "cert", r.o.CertFile, "trigger", why)
		}
	}
}

// Listener returns a TLS listener over ln whose connections finish their handshake within
// timeout (default DefaultHandshakeTimeout) or are closed. The handshake runs in the
// connection's own goroutine on its first read or write, never in Accept, so a slow or
// half-open client holds up nobody else.
func Listener(ln net.Listener, conf *tls.Config, timeout time.Duration) net.Listener {
	if timeout <= 0 {
		timeout = DefaultHandshakeTimeout
	}
	return &listener{Listener: ln, conf: conf, timeout: timeout}
}

type listener struct {
	net.Listener
	conf    *tls.Config
	timeout time.Duration
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &conn{Conn: tls.Server(c, l.conf), timeout: l.timeout}, nil
}

// conn is a server TLS connection whose handshake is bounded by a timeout.
type conn struct {
	*tls.Conn
	timeout time.Duration
	once    sync.Once
	err     error
}

func (c *conn) handshake() error {
	c.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
		defer cancel()
		if c.err = c.Conn.HandshakeContext(ctx); c.err != nil {
			c.Conn.Close()
		}
	})
	return c.err
}

func (c *conn) Read(b []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

func (c *conn) Write(b []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}
