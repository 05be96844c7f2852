// Package natsd runs the embedded NATS JetStream server of a spool node, alone or as one
// node of a JetStream cluster of spool nodes (routes between the embedded servers), and
// connects clients to it.
package natsd

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/url"
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
	// Guard, when set, watches the store and recovers it from a full disk (see Guard). It
	// starts with the server; the caller closes it before shutting the server down.
	Guard *Guard
	// Cluster, when set, makes the server a node of a JetStream cluster.
	Cluster *Cluster
}

// Cluster makes the embedded server one node of a JetStream cluster: the nodes route to
// each other and replicate streams with RAFT.
type Cluster struct {
	// Name is the cluster's name, the same on every node.
	Name string
	// Node is this node's name: unique in the cluster and the same across restarts (RAFT
	// knows a node by it; a node renamed is a new node).
	Node string
	// Listen is the route listen address ("host:port") the other nodes connect to.
	Listen string
	// Advertise, when set ("host:port"), is the route address told to the other nodes
	// instead of Listen (behind NAT, in containers).
	Advertise string
	// Peers are the route addresses ("host:port" or "nats://host:port") of the other
	// nodes; listing this node too is harmless, so every node may get the same list.
	Peers []string
	// TLS, when set, secures the routes (both directions).
	TLS *tls.Config
	// RaftTiming is "fast" (or empty): RAFT heartbeats every 250 ms and an election after
	// 1.0–1.6 s without one, so writes resume ~1.2 s after a leader dies; or "nats":
	// nats-server's own (1 s, 4–9 s), a quarter of the heartbeats for many replicated
	// queues in use, failover in 5–10 s. The timing is the process's: its first cluster node
	// sets it.
	RaftTiming string
}

// routes checks c and returns the route URLs of its peers.
func (c *Cluster) routes() ([]*url.URL, error) {
	if c.Name == "" || strings.ContainsAny(c.Name, " \t.*>") {
		return nil, fmt.Errorf("cluster name %q: want a non-empty name without spaces, '.', '*' or '>'", c.Name)
	}
	if c.RaftTiming != "" && c.RaftTiming != RaftFast && c.RaftTiming != RaftNATS {
		return nil, fmt.Errorf("raft timing %q: want %q or %q", c.RaftTiming, RaftFast, RaftNATS)
	}
	if c.Node == "" || strings.ContainsAny(c.Node, " \t.*>") {
		return nil, fmt.Errorf("node name %q: want a non-empty name without spaces, '.', '*' or '>'", c.Node)
	}
	var urls []*url.URL
	for _, p := range c.Peers {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if !strings.Contains(p, "://") {
			p = "nats://" + p
		}
		u, err := url.Parse(p)
		if err != nil || u.Host == "" || u.Port() == "" || u.Scheme != "nats" && u.Scheme != "tls" {
			return nil, fmt.Errorf("peer %q: want host:port", p)
		}
		urls = append(urls, u)
	}
	return urls, nil
}

func splitPort(field, addr string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%s: %w", field, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return "", 0, fmt.Errorf("%s: bad port %q", field, port)
	}
	return host, p, nil
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
		// nats-server caps a stream at 1,000 consumers unless told otherwise; queues share
		// eight shard streams and each level in use has a consumer, so the cap would stop
		// reservations past ~8,000 queues in use at once.
		JetStreamLimits: server.JSLimitOpts{DefaultMaxConsumers: -1},
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
	if c := o.Cluster; c != nil {
		if err := clusterOptions(opts, c); err != nil {
			return nil, err
		}
		if c.RaftTiming != RaftNATS {
			setRaftTiming()
		}
		if o.Listen == "" {
			// nats-server starts its routes only once its client listener is up: a cluster
			// node listens for clients on loopback, on a port of the system's choosing.
			o.Listen = "127.0.0.1:0"
			opts.DontListen = false
		}
	}
	if o.Listen != "" {
		host, p, err := splitPort("nats listen address", o.Listen)
		if err != nil {
			return nil, err
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
	if o.Logger != nil || o.Guard != nil {
		l := o.Logger
		if l == nil {
			l = slog.New(slog.DiscardHandler)
		}
		ns.SetLoggerV2(&logger{l: l, guard: o.Guard}, false, false, false)
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
	if o.Guard != nil {
		o.Guard.start(ns)
	}
	return ns, nil
}

// clusterOptions makes opts a node of the cluster c.
func clusterOptions(opts *server.Options, c *Cluster) error {
	routes, err := c.routes()
	if err != nil {
		return err
	}
	host, port, err := splitPort("cluster listen address", c.Listen)
	if err != nil {
		return err
	}
	if port != 0 {
		// As for the client port: a busy route port fails at once.
		ln, err := net.Listen("tcp", c.Listen)
		if err != nil {
			return fmt.Errorf("cluster listen address: %w", err)
		}
		ln.Close()
	} else {
		port = server.RANDOM_PORT
	}
	opts.ServerName = c.Node
	opts.Cluster = server.ClusterOpts{
		// The peers are explicit routes: nats-server retries them for ever, so a node may
		// start long before the others.
		Name: c.Name, Host: host, Port: port, Advertise: c.Advertise, TLSConfig: c.TLS,
	}
	if c.TLS != nil {
		opts.Cluster.TLSTimeout = 2
	}
	opts.Routes = routes
	return nil
}

// WaitJetStream waits until the server's JetStream can take writes: on a cluster node,
// until the cluster has a meta leader (a quorum of the nodes is up), logging progress
// every readyCheck, until ctx is done.
func WaitJetStream(ctx context.Context, ns *server.Server, log *slog.Logger) error {
	start := time.Now()
	next := start.Add(readyCheck)
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if MetaLeader(ns) != "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("embedded nats: no JetStream meta leader after %s (is a majority of the nodes up?): %w", time.Since(start).Round(time.Second), ctx.Err())
		case now := <-t.C:
			if now.After(next) && log != nil {
				log.Info("waiting for a majority of the cluster's nodes (no JetStream meta leader yet)", "for", time.Since(start).Round(time.Second))
				next = now.Add(readyCheck)
			}
		}
	}
}

// MetaLeader returns the name of the JetStream meta leader as this server knows it: its
// own name when it runs alone, "" when a cluster node knows of no leader (no quorum).
func MetaLeader(ns *server.Server) string {
	if !ns.JetStreamEnabled() {
		return ""
	}
	if !ns.JetStreamIsClustered() {
		return ns.Name()
	}
	jsi, err := ns.Jsz(&server.JSzOptions{})
	if err != nil || jsi.Meta == nil {
		return ""
	}
	return jsi.Meta.Leader
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
type logger struct {
	l     *slog.Logger
	guard *Guard
}

func (l *logger) Noticef(format string, v ...any) { l.l.Debug(msg(format, v), "component", "nats") }
func (l *logger) Warnf(format string, v ...any)   { l.l.Warn(msg(format, v), "component", "nats") }
func (l *logger) Fatalf(format string, v ...any)  { l.l.Error(msg(format, v), "component", "nats") }
func (l *logger) Errorf(format string, v ...any) {
	m := msg(format, v)
	if l.guard != nil {
		l.guard.noteLog(m)
	}
	l.l.Error(m, "component", "nats")
}
func (l *logger) Debugf(format string, v ...any) { l.l.Debug(msg(format, v), "component", "nats") }
func (l *logger) Tracef(format string, v ...any) {}

func msg(format string, v []any) string { return strings.TrimSpace(fmt.Sprintf(format, v...)) }
