package spool

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
)

// ClusterInfo describes the JetStream cluster under a spool server, as the answering
// node sees it. It is the wire format of GET /v1/cluster.
type ClusterInfo struct {
	// Name is the cluster's name; empty when the server runs alone.
	Name string `json:"name,omitempty"`
	// Node is the answering node's name.
	Node string `json:"node,omitempty"`
	// MetaLeader is the node leading JetStream's metadata; empty when the answering node
	// knows of none (no majority of the nodes reachable): it then takes no writes.
	MetaLeader string `json:"meta_leader"`
	// Nodes are the cluster's nodes known to the answering node (empty with an external
	// NATS server, whose nodes spool cannot list).
	Nodes []ClusterNode `json:"nodes,omitempty"`
	// External: the server uses an external NATS server or cluster (--nats); its nodes and
	// meta leader are not known to spool.
	External bool `json:"external,omitempty"`
	// QueueStreams names the stream of each queue asked for (Cluster's queues): queues
	// share shard streams, so a queue's leader is its stream's.
	QueueStreams map[string]string `json:"queue_streams,omitempty"`
	// Streams are spool's JetStream streams: one per queue and the shared ones.
	Streams []ClusterStream `json:"streams"`
}

// ClusterNode is one node of the cluster.
type ClusterNode struct {
	Name string `json:"name"`
	// Up: the answering node is this node or has a route to it.
	Up bool `json:"up"`
	// Current: the node has all of the metadata log (known to the meta leader only).
	Current bool `json:"current"`
	// LastSeenMS is how long ago the meta leader last heard from the node.
	LastSeenMS int64 `json:"last_seen_ms,omitempty"`
}

// ClusterStream is one JetStream stream: its replicas, leader and followers.
type ClusterStream struct {
	Name string `json:"name"`
	// Queue is the queue the stream holds, empty for the shared streams.
	Queue    string `json:"queue,omitempty"`
	Replicas int    `json:"replicas"`
	// Leader is the node the stream's writes go through; empty during an election.
	Leader    string        `json:"leader"`
	Followers []ClusterPeer `json:"followers,omitempty"`
	Messages  uint64        `json:"messages"`
	Bytes     uint64        `json:"bytes"`
}

// ClusterPeer is a follower replica of a stream.
type ClusterPeer struct {
	Name    string `json:"name"`
	Current bool   `json:"current"` // caught up with the leader
	Offline bool   `json:"offline,omitempty"`
	Lag     uint64 `json:"lag,omitempty"` // operations behind the leader
	// ActiveMS is how long ago the leader last heard from it.
	ActiveMS int64 `json:"active_ms"`
}

// Cluster describes the JetStream cluster under the server: its nodes, meta leader, and
// each stream's replicas, leader and followers' lag; with queues, also which stream holds
// each of them (ClusterInfo.QueueStreams).
func (c *Client) Cluster(ctx context.Context, queues ...string) (*ClusterInfo, error) {
	var ci ClusterInfo
	q := url.Values{}
	for _, name := range queues {
		q.Add("queue", name)
	}
	if err := c.do(ctx, request{method: http.MethodGet, path: "/v1/cluster", query: q, out: &ci}); err != nil {
		return nil, fmt.Errorf("spool: cluster: %w", err)
	}
	return &ci, nil
}
