package natsd

import "github.com/nats-io/nats-server/v2/server"

// ClusterSize returns how many JetStream servers the embedded server's cluster has: 1 when
// it runs alone; for a cluster node, the size of the JetStream meta group (the configured
// peers, those down included: JetStream may place a replica on a node that is down for
// now); 0 when the server does not know it yet.
func ClusterSize(ns *server.Server) int {
	if !ns.JetStreamEnabled() {
		return 0
	}
	if !ns.JetStreamIsClustered() {
		return 1
	}
	jsi, err := ns.Jsz(&server.JSzOptions{})
	if err != nil || jsi.Meta == nil {
		return 0
	}
	return jsi.Meta.Size
}
