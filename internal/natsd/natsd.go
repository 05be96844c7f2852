// Package natsd runs the embedded NATS JetStream server that a single spool node uses by
// default, and connects clients to it.
package natsd

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// readyCheck is how often Start reports that the server is not ready yet.
const readyCheck = 10 * time.Second

// Options configures the embedded server.
type Options struct {
	// StoreDir holds the JetStream files.
	StoreDir string
	// Listen, when set ("host:port"), accepts NATS clients on that address; otherwise the
	// server is reachable in-process only.
	Listen string
	// Fsync is "always" (fsync every write) or a duration between periodic syncs ("" keeps
	// JetStream's default of 2m).
	Fsync string
	// Logger receives the server's own logs (notices at Info, warnings and errors).
	Logger *slog.Logger
	// TLS, when set, makes the client port (Listen) require TLS with this configuration; a
	// client CA in it (ClientAuth) requires client certificates too. In-process connections
	// are not affected.
	TLS *tls.Config
}

// tlsTimeout bounds a NATS client's TLS handshake, in seconds.
const tlsTimeout = 5

// Start starts an embedded JetStream server and waits until it serves clients, however
// long it takes to recover its data (thousands of streams take a while; giving up would
// leave them unserved for good), logging its progress, until ctx is done.
func Start(ctx context.Context, o Options) (*server.Server, error) {
	opts := &server.Options{
		ServerName:         "spool",
		JetStream:          true,
		StoreDir:           o.StoreDir,
		DontListen:         o.Listen == "",
		NoSigs:             true,
		MaxPayload:         8 << 20,
		JetStreamMaxMemory: -1,
		JetStreamMaxStore:  -1,
	}
	switch o.Fsync {
	case "":
	case "always":
		opts.SyncAlways = true
	default:
		d, err := time.ParseDuration(o.Fsync)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("fsync: want \"always\" or a positive duration, got %q", o.Fsync)
		}
		opts.SyncInterval = d
	}
	if o.Listen != "" {
		host, port, err := net.SplitHostPort(o.Listen)
		if err != nil {
			return nil, fmt.Errorf("nats listen address: %w", err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("nats listen port: %w", err)
		}
		opts.Host, opts.Port = host, p
		if p == 0 {
			opts.Port = server.RANDOM_PORT
		} else {
			// A busy port fails here, at once: the server would only log it and never be
			// ready, and Start waits for readiness without a limit.
			ln, err := net.Listen("tcp", o.Listen)
			if err != nil {
				return nil, fmt.Errorf("nats listen address: %w", err)
			}
			ln.Close()
		}
	}
	if o.TLS != nil {
		opts.TLS, opts.TLSConfig, opts.TLSTimeout = true, o.TLS, tlsTimeout
		opts.TLSVerify = o.TLS.ClientAuth == tls.RequireAndVerifyClientCert
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	if o.Logger != nil {
		ns.SetLoggerV2(&logger{o.Logger}, false, false, false)
	}
	go ns.Start()
	start := time.Now()
	for !ns.ReadyForConnections(readyCheck) {
		if err := ctx.Err(); err != nil {
			ns.Shutdown()
			return nil, fmt.Errorf("embedded nats: not ready after %s: %w", time.Since(start).Round(time.Second), err)
		}
		if o.Logger != nil {
			o.Logger.Info("embedded JetStream is recovering its data", "dir", o.StoreDir, "for", time.Since(start).Round(time.Second))
		}
	}
	return ns, nil
}

// Connect opens a client connection to the embedded server, in-process.
func Connect(ns *server.Server, name string) (*nats.Conn, error) {
	nc, err := nats.Connect("", nats.InProcessServer(ns), nats.Name(name), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("connect to embedded nats: %w", err)
	}
	return nc, nil
}

// logger adapts slog to nats-server's logger.
type logger struct{ l *slog.Logger }

func (l *logger) Noticef(format string, v ...any) { l.l.Debug(msg(format, v), "component", "nats") }
func (l *logger) Warnf(format string, v ...any)   { l.l.Warn(msg(format, v), "component", "nats") }
func (l *logger) Fatalf(format string, v ...any)  { l.l.Error(msg(format, v), "component", "nats") }
func (l *logger) Errorf(format string, v ...any)  { l.l.Error(msg(format, v), "component", "nats") }
func (l *logger) Debugf(format string, v ...any)  { l.l.Debug(msg(format, v), "component", "nats") }
func (l *logger) Tracef(format string, v ...any)  {}

func msg(format string, v []any) string { return strings.TrimSpace(fmt.Sprintf(format, v...)) }
