package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spoolq/spool/engine"
	"github.com/spoolq/spool/schedule"
)

type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spool_http_requests_total", Help: "HTTP API requests by route and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "spool_http_request_duration_seconds", Help: "HTTP API request latency by route (long polls included).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5, 30, 60},
		}, []string{"route"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

// Unwrap lets http.ResponseController reach the connection (its deadlines, flushes of an
// event feed).
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (m *httpMetrics) wrap(route string, next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next(sw, r)
		m.requests.WithLabelValues(route, strconv.Itoa(sw.status)).Inc()
		m.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}

// queueCollector exports queues' depth and totals at scrape time, of the first max queues
// by name. Totals are cluster-wide: every node reports the same value, so aggregate them
// with max, not sum.
type queueCollector struct {
	eng *engine.Engine
	log *slog.Logger
	max int
}

var (
	descDepth = prometheus.NewDesc("spool_queue_jobs", "Jobs in a queue by state.", []string{"queue", "state"}, nil)
	descTotal = prometheus.NewDesc("spool_queue_events_total", "Cluster-wide job events by queue: enqueued, reserved, succeeded, failed, buried, cancelled, timeouts.", []string{"queue", "event"}, nil)
	descPause = prometheus.NewDesc("spool_queue_paused", "1 when the queue is paused.", []string{"queue"}, nil)
	descAge   = prometheus.NewDesc("spool_queue_oldest_ready_age_seconds", "Age of the oldest ready job.", []string{"queue"}, nil)
	descUp    = prometheus.NewDesc("spool_engine_up", "1 when the engine answered the last scrape.", nil, nil)
	descCount = prometheus.NewDesc("spool_queues", "Queues known to this node.", nil, nil)
	descShown = prometheus.NewDesc("spool_metrics_queues", "Queues with series here: at most the server's --metrics-queues, the first by name.", nil, nil)
	// The autoscaling signal (docs/events.md): an HPA with an AverageValue target of
	// targetMessagesPerWorker on spool_queue_backlog scales as GET /v1/scale does from zero.
	descBacklog = prometheus.NewDesc("spool_queue_backlog", "Jobs waiting or running (ready + reserved): the autoscaling signal.", []string{"queue"}, nil)
	descArrival = prometheus.NewDesc("spool_queue_enqueue_rate", "Jobs enqueued per second over the last minute.", []string{"queue"}, nil)
	descDone    = prometheus.NewDesc("spool_queue_complete_rate", "Jobs succeeded per second over the last minute.", []string{"queue"}, nil)
	// Over all queues, however many: an alert on them holds beyond --metrics-queues.
	descAllDepth = prometheus.NewDesc("spool_jobs", "Jobs of all queues by state.", []string{"state"}, nil)
	descAllTotal = prometheus.NewDesc("spool_events_total", "Cluster-wide job events of all queues, deleted ones included: enqueued, reserved, succeeded, failed, buried, cancelled, timeouts.", []string{"event"}, nil)
)

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descDepth, descTotal, descPause, descAge, descUp, descCount, descShown, descBacklog, descArrival, descDone, descAllDepth, descAllTotal} {
		ch <- d
	}
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ch <- prometheus.MustNewConstMetric(descCount, prometheus.GaugeValue, float64(len(c.eng.QueueNames())))
	// Over all queues; a failure leaves out these series only.
	sum, serr := c.eng.Summarize(ctx, engine.SummaryRequest{})
	if serr == nil {
		for st, n := range map[string]int64{"ready": sum.Ready, "reserved": sum.Reserved, "delayed": sum.Delayed, "buried": sum.Buried} {
			ch <- prometheus.MustNewConstMetric(descAllDepth, prometheus.GaugeValue, float64(n), st)
		}
		for ev, n := range map[string]int64{"enqueued": sum.Enqueued, "reserved": sum.Reserves, "succeeded": sum.Succeeded,
			"failed": sum.Failed, "buried": sum.BuriedTot, "cancelled": sum.Cancelled, "timeouts": sum.Timeouts} {
			ch <- prometheus.MustNewConstMetric(descAllTotal, prometheus.CounterValue, float64(n), ev)
		}
	} else {
		c.log.Warn("metrics: summary", "err", serr)
	}
	var qs []*engine.QueueInfo
	var err error
	for after := ""; len(qs) < c.max && err == nil; {
		var page []*engine.QueueInfo
		page, after, err = c.eng.QueuesPage(ctx, after, min(c.max-len(qs), engine.MaxQueuePage))
		qs = append(qs, page...)
		if after == "" {
			break
		}
	}
	ch <- prometheus.MustNewConstMetric(descShown, prometheus.GaugeValue, float64(len(qs)))
	if err != nil {
		c.log.Warn("metrics: read queues", "err", err)
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 0)
		return
	}
	up := 1.0
	if serr != nil {
		up = 0
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up)
	for _, q := range qs {
		s := q.Stats
		for st, n := range map[string]int64{"ready": s.Ready, "reserved": s.Reserved, "delayed": s.Delayed, "buried": s.Buried} {
			ch <- prometheus.MustNewConstMetric(descDepth, prometheus.GaugeValue, float64(n), q.Name, st)
		}
		for ev, n := range map[string]int64{"enqueued": s.Enqueued, "reserved": s.Reserves, "succeeded": s.Succeeded,
			"failed": s.Failed, "buried": s.BuriedTot, "cancelled": s.Cancelled, "timeouts": s.Timeouts} {
			ch <- prometheus.MustNewConstMetric(descTotal, prometheus.CounterValue, float64(n), q.Name, ev)
		}
		paused := 0.0
		if q.Paused {
			paused = 1
		}
		ch <- prometheus.MustNewConstMetric(descPause, prometheus.GaugeValue, paused, q.Name)
		ch <- prometheus.MustNewConstMetric(descAge, prometheus.GaugeValue, s.OldestReadyAge.Seconds(), q.Name)
		ch <- prometheus.MustNewConstMetric(descBacklog, prometheus.GaugeValue, float64(s.Ready+s.Reserved), q.Name)
		ch <- prometheus.MustNewConstMetric(descArrival, prometheus.GaugeValue, s.EnqueueRate, q.Name)
		ch <- prometheus.MustNewConstMetric(descDone, prometheus.GaugeValue, s.CompleteRate, q.Name)
	}
}

// scheduleCollector exports this node's scheduler counters.
type scheduleCollector struct{ svc *schedule.Service }

var descTicks = prometheus.NewDesc("spool_schedule_ticks_total",
	"Schedule ticks handled by this node, by outcome: fired (enqueued the tick's job), duplicate "+
		"(another node had), skipped (the template's unique key was held), missed (catch_up skip), "+
		"coalesced (several due ticks fired once), failed (the enqueue failed and was retried).",
	[]string{"outcome"}, nil)

func (c scheduleCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descTicks }

func (c scheduleCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.svc.Stats()
	for outcome, n := range map[string]int64{"fired": st.Fired, "duplicate": st.Duplicates, "skipped": st.Skipped,
		"missed": st.Missed, "coalesced": st.Coalesced, "failed": st.Failed} {
		ch <- prometheus.MustNewConstMetric(descTicks, prometheus.CounterValue, float64(n), outcome)
	}
}
