// Package server assembles a spool node: the JetStream engine (embedded or remote), the job
// engine on top of it and the fronts (HTTP API, metrics), with graceful shutdown.
package server

import (
	"crypto/tls"
	"log/slog"
	"os"
	"time"

	"github.com/spoolq/spool/beanstalk"
	"github.com/spoolq/spool/engine"
	"github.com/spoolq/spool/internal/natsd"
)

// DefaultMaxInflight is Config.MaxInflight's default: 512 MiB, two of the largest HTTP
// batches (64 MiB, charged 4 times their size) at once.
const DefaultMaxInflight = 512 << 20

// Defaults of the fronts' limits (docs/limits.md), the free space kept on the data folder's
// disk, and a cluster node's route address: the zero values of Config take them, and
// spool serve's flags show them.
const (
	DefaultHTTPReadHeaderTimeout = 10 * time.Second
	DefaultHTTPReadTimeout       = time.Minute
	DefaultHTTPWriteTimeout      = time.Minute
	DefaultHTTPIdleTimeout       = 2 * time.Minute
	DefaultHTTPMaxConns          = 4096
	DefaultBeanstalkMaxConns     = beanstalk.DefaultMaxConns
	DefaultBeanstalkTimeout      = beanstalk.DefaultReadTimeout
	DefaultMinFree               = natsd.DefaultMinFree
	DefaultClusterListen         = "0.0.0.0:6222"
)

// NoRetention, as Config.Retention, keeps no record of a finished job.
const NoRetention = engine.NoRetention

// Config configures a spool node. The zero value of a field takes the default noted.
type Config struct {
	// DataDir holds the embedded engine's JetStream files. Default "./spool-data".
	DataDir string
	// HTTPAddr is the HTTP API listen address. Default "127.0.0.1:7420". Port 0 picks one.
	HTTPAddr string
	// BeanstalkAddr is the beanstalkd protocol listen address; empty disables it.
	BeanstalkAddr string
	// BeanstalkMaxJobSize is the beanstalkd front's job size limit (beanstalkd -z). Default 65535.
	BeanstalkMaxJobSize int
	// SQSAddr is the SQS-compatible API's listen address; empty disables it.
	SQSAddr string
	// SQSCredentials, when set, are the access keys whose SigV4 signatures the SQS front
	// accepts (access key id -> secret); when empty, it accepts requests unverified.
	SQSCredentials map[string]string

	// NATSURL connects to an existing NATS JetStream server or cluster instead of starting
	// the embedded one.
	NATSURL string
	// NATSListen makes the embedded engine accept NATS clients (other spool nodes, the nats
	// CLI) on this address, e.g. "127.0.0.1:4222". Empty: in-process only.
	NATSListen string
	// Fsync is the embedded engine's sync policy: "always" (fsync every write) or a
	// duration such as "2m" (periodic; the default is JetStream's 2m). An acknowledged
	// write is in the OS page cache either way, so it survives a crash of the process.
	Fsync string
	// Replicas of each stream spool creates. Default 1 alone, 3 in a cluster (ClusterName
	// set). Existing streams are never lowered: a node asked for fewer replicas than the
	// shared streams have refuses to start.
	Replicas int

	// ClusterName, when set, makes the embedded engine one node of a JetStream cluster of
	// spool nodes with that name (docs/cluster.md). Ignored with NATSURL.
	ClusterName string
	// Node is this node's name in the cluster (unique, and the same across restarts) and in
	// lifecycle events. Default: the host name.
	Node string
	// ClusterListen is the address the other nodes' routes connect to. Default "0.0.0.0:6222".
	ClusterListen string
	// ClusterAdvertise, when set, is the route address told to the other nodes instead of
	// ClusterListen (containers, NAT).
	ClusterAdvertise string
	// Peers are the route addresses ("host:port") of the cluster's nodes; this node's own
	// may be among them.
	Peers []string
	// RaftTiming is the cluster's RAFT timing: "fast" (default; writes resume ~1.2 s after
	// a leader dies) or "nats" (nats-server's: 5–10 s, a quarter of the heartbeats).
	RaftTiming string
	// RouteTLS, when set, secures the routes between the nodes. Default with TLSCert: the
	// node's certificate on both ends, verified against TLSClientCA (required then).
	RouteTLS *tls.Config

	// MinFree is the free space of the data folder's filesystem under which the embedded
	// engine's store counts as failing: /healthz answers 503 and new jobs are refused
	// before the disk is full. Default 64 MiB (docs/limits.md).
	MinFree int64

	// MaxPayload limits a job's payload in bytes. Default 1 MiB.
	MaxPayload int
	// Retention is how long a finished job's record stays queryable, in queues that set no
	// retention of their own. Default 1h: each record costs memory in JetStream while kept
	// (see docs/architecture.md). NoRetention keeps none.
	Retention time.Duration
	// EventsMaxAge and EventsMaxBytes bound the lifecycle events stream. Default 24h and
	// 1 GiB (docs/events.md).
	EventsMaxAge   time.Duration
	EventsMaxBytes int64
	// WebhookDenyPrivate refuses webhook deliveries to loopback and private addresses, not
	// only link-local ones (webhook.Config.DenyPrivate).
	WebhookDenyPrivate bool

	// ShutdownTimeout bounds the graceful shutdown. Default 30s.
	ShutdownTimeout time.Duration

	// Security (docs/security.md).
	//
	// TLSCert and TLSKey (PEM files) turn on TLS on the HTTP API, the beanstalkd TLS
	// listener and the embedded NATS port; TLSClientCA makes each of them require a client
	// certificate signed by it (mutual TLS). The files are read again on SIGHUP and when they
	// change (checked every TLSReloadInterval, default 10s).
	TLSCert, TLSKey, TLSClientCA string
	TLSReloadInterval            time.Duration
	// BeanstalkTLSAddr is the beanstalkd protocol's TLS listen address (beside or instead of
	// the plain BeanstalkAddr); empty disables it.
	BeanstalkTLSAddr string
	// BeanstalkAllow, when not empty, limits both beanstalkd listeners to these client
	// addresses and CIDR prefixes: the protocol has no authentication command.
	BeanstalkAllow []string
	// AdminToken is the bootstrap admin token (SPOOL_ADMIN_TOKEN, --admin-token-file): admin
	// of everything, kept in memory only. With it, or once an API token exists, every HTTP
	// request needs a token.
	AdminToken string
	// AuthMetrics makes /metrics, /healthz and /v1/openapi.yaml take a token too.
	AuthMetrics bool

	// Limits of the fronts (docs/limits.md).

	// HTTPReadHeaderTimeout bounds the reading of a request's header. Default 10s.
	HTTPReadHeaderTimeout time.Duration
	// HTTPReadTimeout bounds the reading of a whole request, header and body. Default 1m.
	HTTPReadTimeout time.Duration
	// HTTPWriteTimeout bounds a request's handling and answer, from the end of its header;
	// a long-polling reservation gets its wait on top. Default 1m.
	HTTPWriteTimeout time.Duration
	// HTTPIdleTimeout closes a kept-alive connection that sends no request for this long.
	// Default 2m.
	HTTPIdleTimeout time.Duration
	// HTTPMaxConns bounds the HTTP front's open connections; over it a new connection is
	// answered 503 too_many_connections and closed. Default 4096.
	HTTPMaxConns int
	// BeanstalkMaxConns bounds the beanstalkd front's open connections; over it a new
	// connection is sent OUT_OF_MEMORY and closed. Default 4096.
	BeanstalkMaxConns int
	// BeanstalkTimeout bounds the reading of one beanstalkd command (from its first byte)
	// and each write of replies to a client that does not read them. Default 1m.
	BeanstalkTimeout time.Duration
	// MaxInflight is the memory budget of request bodies in flight, all fronts together,
	// in bytes: over it a request is refused (HTTP 503 overloaded, beanstalkd
	// OUT_OF_MEMORY) rather than held. Default DefaultMaxInflight; negative: no budget.
	MaxInflight int64

	// SchedulesFile names a YAML (or JSON) file of schedules created or updated at start.
	SchedulesFile string

	// NoUI turns off the web dashboard, served at /ui/ on the HTTP address by default.
	NoUI bool
	// MetricsQueues caps the queues with series on /metrics (httpapi.Options).
	MetricsQueues int

	// PprofAddr, when set, serves Go's profiles (net/http/pprof) on this address.
	PprofAddr string

	// Logger receives the server's logs. Default slog.Default().
	Logger *slog.Logger
	// Version is reported by /v1/stats, /healthz and the beanstalkd stats command (as
	// spool-version; its version field is the protocol level, beanstalk.ProtocolVersion).
	Version string
	// Ready, if set, is called with the bound addresses once the node serves requests.
	Ready func(Addrs)
}

// Addrs are the addresses a running node listens on.
type Addrs struct {
	HTTP         string
	Beanstalk    string
	BeanstalkTLS string
	SQS          string // empty when the SQS front is off
	NATS         string // empty when the embedded engine does not listen
	Cluster      string // route listen address; empty when not a cluster node
}

func (c *Config) setDefaults() {
	if c.DataDir == "" {
		c.DataDir = "./spool-data"
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = "127.0.0.1:7420"
	}
	if c.BeanstalkMaxJobSize == 0 {
		c.BeanstalkMaxJobSize = 65535
	}
	if c.ClusterName != "" && c.NATSURL == "" {
		if c.Node == "" {
			c.Node, _ = os.Hostname()
		}
		if c.ClusterListen == "" {
			c.ClusterListen = DefaultClusterListen
		}
		if c.Replicas == 0 {
			c.Replicas = 3
		}
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.MaxPayload == 0 {
		c.MaxPayload = 1 << 20
	}
	if c.Retention == 0 {
		c.Retention = time.Hour
	}
	if c.HTTPReadHeaderTimeout == 0 {
		c.HTTPReadHeaderTimeout = DefaultHTTPReadHeaderTimeout
	}
	if c.HTTPReadTimeout == 0 {
		c.HTTPReadTimeout = DefaultHTTPReadTimeout
	}
	if c.HTTPWriteTimeout == 0 {
		c.HTTPWriteTimeout = DefaultHTTPWriteTimeout
	}
	if c.HTTPIdleTimeout == 0 {
		c.HTTPIdleTimeout = DefaultHTTPIdleTimeout
	}
	if c.HTTPMaxConns == 0 {
		c.HTTPMaxConns = DefaultHTTPMaxConns
	}
	if c.BeanstalkMaxConns == 0 {
		c.BeanstalkMaxConns = DefaultBeanstalkMaxConns
	}
	if c.BeanstalkTimeout == 0 {
		c.BeanstalkTimeout = DefaultBeanstalkTimeout
	}
	if c.MaxInflight == 0 {
		c.MaxInflight = DefaultMaxInflight
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}
