package httpapi

import (
	"context"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spoolq/spool"
)

// Cluster describes the JetStream cluster under the node.
type Cluster interface {
	// Info describes the cluster in full: nodes, meta leader, every stream's replicas
	// (it costs JetStream requests).
	Info(ctx context.Context) (*spool.ClusterInfo, error)
	// Health is the node's current view, from memory.
	Health() ClusterHealth
}

// ClusterHealth is a node's view of its cluster.
type ClusterHealth struct {
	Name, Node string
	// MetaLeader is empty when the node knows of no JetStream meta leader: it cannot
	// take writes.
	MetaLeader string
	// Nodes known, and those up (this one, or routed to).
	Nodes, NodesUp int
	// External: an external NATS; nothing else is known.
	External bool
}

func (h *Handler) cluster(w http.ResponseWriter, r *http.Request) error {
	if h.opts.Cluster == nil {
		return &apiError{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "this server does not describe its cluster"}
	}
	queues := r.URL.Query()["queue"]
	if len(queues) > 100 {
		return fieldErr("queue", "at most 100 queues")
	}
	ci, err := h.opts.Cluster.Info(r.Context())
	if err != nil {
		return err
	}
	for _, q := range queues {
		stream, err := h.eng.QueueStream(r.Context(), q)
		if err != nil {
			return err
		}
		if ci.QueueStreams == nil {
			ci.QueueStreams = map[string]string{}
		}
		ci.QueueStreams[q] = stream
	}
	writeJSON(w, http.StatusOK, ci)
	return nil
}

// clusterCollector exports the node's view of its cluster.
type clusterCollector struct{ c Cluster }

var (
	clusterNodesDesc = prometheus.NewDesc("spool_cluster_nodes",
		"Nodes of the JetStream cluster known to this node, by whether they are up (this node, or routed to).", []string{"up"}, nil)
	clusterLeaderDesc = prometheus.NewDesc("spool_cluster_meta_leader",
		"1 when this node knows a JetStream meta leader (a majority of the nodes is reachable: it can take writes), else 0.", nil, nil)
	clusterIsLeaderDesc = prometheus.NewDesc("spool_cluster_is_meta_leader",
		"1 when this node is the JetStream meta leader.", nil, nil)
)

func (c clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- clusterNodesDesc
	ch <- clusterLeaderDesc
	ch <- clusterIsLeaderDesc
}

func (c clusterCollector) Collect(ch chan<- prometheus.Metric) {
	h := c.c.Health()
	if h.External {
		return
	}
	ch <- prometheus.MustNewConstMetric(clusterNodesDesc, prometheus.GaugeValue, float64(h.NodesUp), "true")
	ch <- prometheus.MustNewConstMetric(clusterNodesDesc, prometheus.GaugeValue, float64(h.Nodes-h.NodesUp), "false")
	ch <- prometheus.MustNewConstMetric(clusterLeaderDesc, prometheus.GaugeValue, b2f(h.MetaLeader != ""))
	ch <- prometheus.MustNewConstMetric(clusterIsLeaderDesc, prometheus.GaugeValue, b2f(h.MetaLeader != "" && h.MetaLeader == h.Node))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
