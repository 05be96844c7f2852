package server

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/spoolq/spool"
	"github.com/spoolq/spool/httpapi"
	"github.com/spoolq/spool/internal/natsd"
)

// clusterView describes the JetStream under the node for GET /v1/cluster, /healthz and
// /metrics: the nodes from the embedded server (none with an external NATS), the streams
// from JetStream's stream info (both).
type clusterView struct {
	name string             // cluster name; "" alone or external
	ns   *natsserver.Server // nil with an external NATS
	js   jetstream.JetStream
}

var _ httpapi.Cluster = (*clusterView)(nil)

// Health is this node's view of the cluster, from the embedded server's memory.
func (c *clusterView) Health() httpapi.ClusterHealth {
	if c.ns == nil {
		return httpapi.ClusterHealth{External: true}
	}
	nodes, leader := c.view()
	h := httpapi.ClusterHealth{Name: c.name, Node: c.ns.Name(), MetaLeader: leader}
	for _, n := range nodes {
		h.Nodes++
		if n.Up {
			h.NodesUp++
		}
	}
	return h
}

// view lists the nodes this node knows (itself, the meta group's peers and the nodes it has
// routes to) and names the meta leader, from one read of the server's JetStream state: that
// read walks every stream and consumer, and /healthz and every scrape ask.
func (c *clusterView) view() (nodes []spool.ClusterNode, leader string) {
	self := c.ns.Name()
	nodes = []spool.ClusterNode{{Name: self, Up: true, Current: true}}
	if !c.ns.JetStreamIsClustered() {
		return nodes, natsd.MetaLeader(c.ns) // no read of the state when alone
	}
	up := map[string]bool{self: true}
	if rz, err := c.ns.Routez(nil); err == nil {
		for _, r := range rz.Routes {
			up[r.RemoteName] = true
		}
	}
	add := func(n spool.ClusterNode) {
		if i := slices.IndexFunc(nodes, func(x spool.ClusterNode) bool { return x.Name == n.Name }); i >= 0 {
			nodes[i].Current = nodes[i].Current || n.Current
			return
		}
		n.Up = up[n.Name]
		nodes = append(nodes, n)
	}
	if jsi, err := c.ns.Jsz(&natsserver.JSzOptions{}); err == nil && jsi.Meta != nil {
		leader = jsi.Meta.Leader
		if jsi.Meta.Leader != "" {
			add(spool.ClusterNode{Name: jsi.Meta.Leader, Current: true})
		}
		for _, p := range jsi.Meta.Replicas {
			add(spool.ClusterNode{Name: p.Name, Current: p.Current && !p.Offline, LastSeenMS: p.Active.Milliseconds()})
		}
	}
	for name := range up {
		add(spool.ClusterNode{Name: name})
	}
	slices.SortFunc(nodes, func(a, b spool.ClusterNode) int { return strings.Compare(a.Name, b.Name) })
	return nodes, leader
}

// Info describes the cluster in full; it asks JetStream for every stream's info.
func (c *clusterView) Info(ctx context.Context) (*spool.ClusterInfo, error) {
	ci := &spool.ClusterInfo{Streams: []spool.ClusterStream{}}
	if c.ns != nil {
		var nodes []spool.ClusterNode
		nodes, ci.MetaLeader = c.view()
		ci.Name, ci.Node = c.name, c.ns.Name()
		if c.ns.JetStreamIsClustered() {
			ci.Nodes = nodes
		}
	}
	l := c.js.ListStreams(ctx)
	for si := range l.Info() {
		if !spoolStream(si.Config.Name) {
			continue
		}
		cs := spool.ClusterStream{
			Name: si.Config.Name, Replicas: si.Config.Replicas,
			Messages: si.State.Msgs, Bytes: si.State.Bytes,
		}
		if q, ok := strings.CutPrefix(si.Config.Description, "spool queue "); ok {
			cs.Queue = q
		}
		if si.Cluster != nil {
			cs.Leader = si.Cluster.Leader
			for _, p := range si.Cluster.Replicas {
				cs.Followers = append(cs.Followers, spool.ClusterPeer{
					Name: p.Name, Current: p.Current, Offline: p.Offline, Lag: p.Lag, ActiveMS: p.Active.Milliseconds(),
				})
			}
		} else if c.ns != nil && !c.ns.JetStreamIsClustered() {
			cs.Leader = c.ns.Name()
		}
		ci.Streams = append(ci.Streams, cs)
	}
	if err := l.Err(); err != nil {
		return nil, fmt.Errorf("list streams: %w", err)
	}
	ci.External = c.ns == nil
	return ci, nil
}

// spoolStream reports whether a stream is one of spool's: its queues' and shared streams,
// and the KV bucket's.
func spoolStream(name string) bool {
	return strings.HasPrefix(name, "SPOOL_") || strings.HasPrefix(name, "KV_spool_")
}

// peerCount returns how many JetStream servers the embedded server's cluster has, for the
// engine's refusal of a queue of more replicas (engine.Config.Peers); nil with an external
// NATS, whose size spool does not know.
func peerCount(ns *natsserver.Server) func() int {
	if ns == nil {
		return nil
	}
	return func() int { return natsd.ClusterSize(ns) }
}

// clusterAddr is the address the embedded server accepts routes on.
func clusterAddr(ns *natsserver.Server) string {
	if a := ns.ClusterAddr(); a != nil {
		return a.String()
	}
	return ""
}

// handOff asks JetStream to move the leadership of every spool stream and consumer this
// node leads to another node, ahead of a graceful shutdown: their writes then go on after
// a stepdown (milliseconds) rather than wait for an election once the node is gone
// (seconds). A no-op unless the node is one of a cluster.
func (c *clusterView) handOff(ctx context.Context, nc *nats.Conn, log *slog.Logger) {
	if c.ns == nil || !c.ns.JetStreamIsClustered() {
		return
	}
	self := c.ns.Name()
	moved := 0
	stepDown := func(subject string) {
		if _, err := nc.RequestWithContext(ctx, subject, nil); err != nil {
			log.Debug("leader stepdown", "subject", subject, "err", err)
			return
		}
		moved++
	}
	var streams []string
	l := c.js.ListStreams(ctx)
	for si := range l.Info() {
		if !spoolStream(si.Config.Name) || si.Config.Replicas < 2 {
			continue // a stream of one replica, and its consumers, have no leadership to move
		}
		streams = append(streams, si.Config.Name)
		if si.Cluster != nil && si.Cluster.Leader == self {
			stepDown("$JS.API.STREAM.LEADER.STEPDOWN." + si.Config.Name)
		}
	}
	for _, name := range streams {
		st, err := c.js.Stream(ctx, name)
		if err != nil {
			continue
		}
		cl := st.ListConsumers(ctx)
		for ci := range cl.Info() {
			if ci.Cluster != nil && ci.Cluster.Leader == self && len(ci.Cluster.Replicas) > 0 {
				stepDown("$JS.API.CONSUMER.LEADER.STEPDOWN." + name + "." + ci.Name)
			}
		}
	}
	log.Info("leaderships handed to other nodes before shutdown", "moved", moved)
}
