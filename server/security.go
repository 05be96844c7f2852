package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/spoolq/spool/auth"
	"github.com/spoolq/spool/internal/tlsconf"
)

// openTLS loads the node's TLS files, if any, and follows their changes until ctx ends.
func openTLS(ctx context.Context, cfg Config) (*tlsconf.Reloader, error) {
	if cfg.TLSCert == "" && cfg.TLSKey == "" {
		if cfg.TLSClientCA != "" || cfg.BeanstalkTLSAddr != "" {
			return nil, fmt.Errorf("--tls-client-ca and --beanstalkd-tls need --tls-cert and --tls-key")
		}
		return nil, nil
	}
	r, err := tlsconf.New(tlsconf.Options{CertFile: cfg.TLSCert, KeyFile: cfg.TLSKey, ClientCAFile: cfg.TLSClientCA,
		PollInterval: cfg.TLSReloadInterval, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	go r.Run(ctx)
	return r, nil
}

// openAuth opens the token service. The bootstrap admin token comes from the configuration;
// it is never logged.
func openAuth(ctx context.Context, nc *nats.Conn, cfg Config) (*auth.Service, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return auth.Open(ctx, nc, auth.Config{Bootstrap: cfg.AdminToken, Replicas: cfg.Replicas, Logger: cfg.Logger})
}

// ReadAdminToken returns the bootstrap admin token of a file (its first line, trimmed), for
// --admin-token-file.
func ReadAdminToken(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("admin token file: %w", err)
	}
	tok, _, _ := strings.Cut(string(b), "\n")
	tok = strings.TrimSpace(tok)
	if len(tok) < auth.MinBootstrapLen {
		return "", fmt.Errorf("admin token file %s: the token is shorter than %d bytes", file, auth.MinBootstrapLen)
	}
	return tok, nil
}

// parseAllow reads an IP allow-list: addresses and CIDR prefixes.
func parseAllow(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("beanstalkd allow-list: %q is no IP address or CIDR prefix", s)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// allowListener accepts the connections from the allowed addresses only; the others are
// closed at once, before they can send a command.
type allowListener struct {
	net.Listener
	allow []netip.Prefix
	log   *slog.Logger
}

func (l *allowListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.allowed(c.RemoteAddr()) {
			return c, nil
		}
		l.log.Warn("beanstalkd connection refused: address not in the allow-list", "remote", c.RemoteAddr().String())
		c.Close()
	}
}

func (l *allowListener) allowed(a net.Addr) bool {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return false
	}
	ip := ap.Addr().Unmap()
	for _, p := range l.allow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// loopback tells whether a listen address reaches this machine only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// warnExposure logs, at start, each listener that other machines can reach without the
// protection it should have. spool does not refuse to start (TLS may end at a proxy in front
// of it): it says what is exposed, once, loudly (docs/security.md).
func warnExposure(log *slog.Logger, cfg Config, tlsOn, authOn bool) {
	if !loopback(cfg.HTTPAddr) {
		if !tlsOn {
			log.Warn("INSECURE: the HTTP API listens beyond this machine without TLS: tokens and payloads cross the network in clear (--tls-cert, --tls-key)", "http", cfg.HTTPAddr)
		}
		if !authOn {
			log.Warn("INSECURE: the HTTP API listens beyond this machine without authentication: whoever reaches it may do anything (SPOOL_ADMIN_TOKEN or --admin-token-file, then spool token create)", "http", cfg.HTTPAddr)
		}
	}
	if cfg.BeanstalkAddr != "" && !loopback(cfg.BeanstalkAddr) && len(cfg.BeanstalkAllow) == 0 {
		log.Warn("INSECURE: the beanstalkd port listens beyond this machine in clear without an allow-list: whoever reaches it may do anything (--beanstalkd-allow, or --beanstalkd-tls with --tls-client-ca)", "beanstalkd", cfg.BeanstalkAddr)
	}
	if cfg.BeanstalkTLSAddr != "" && !loopback(cfg.BeanstalkTLSAddr) && len(cfg.BeanstalkAllow) == 0 && cfg.TLSClientCA == "" {
		log.Warn("INSECURE: the beanstalkd TLS port listens beyond this machine without client certificates or an allow-list: whoever reaches it may do anything (--tls-client-ca, --beanstalkd-allow)", "beanstalkd-tls", cfg.BeanstalkTLSAddr)
	}
	if cfg.NATSListen != "" && !loopback(cfg.NATSListen) && !(tlsOn && cfg.TLSClientCA != "") {
		log.Warn("INSECURE: the embedded NATS port listens beyond this machine without mutual TLS: whoever reaches it may read and change every job (--tls-cert, --tls-key, --tls-client-ca)", "nats", cfg.NATSListen)
	}
}
