// Package httpapi is spool's native HTTP/JSON front over the job engine. It translates
// requests to engine calls and engine errors to HTTP statuses with stable JSON error codes;
// it holds no job state. The API is described in openapi.yaml, served at /v1/openapi.yaml.
package httpapi

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/spoolq/spool"
	"github.com/spoolq/spool/auth"
	"github.com/spoolq/spool/engine"
	"github.com/spoolq/spool/internal/budget"
	"github.com/spoolq/spool/schedule"
	"github.com/spoolq/spool/webhook"
)

//go:embed openapi.yaml
var openAPI []byte

// MaxWait is the longest long-poll a reservation may ask for.
const MaxWait = 60 * time.Second

// Options configures the HTTP front.
type Options struct {
	// MaxPayload is the engine's payload limit, used to size request body limits.
	MaxPayload int
	Logger     *slog.Logger
	Version    string
	// Schedules serves the schedule routes (/v1/schedules...); without it they answer
	// 503 unavailable.
	Schedules *schedule.Service
	// MetricsQueues caps the queues /metrics has series of (the first by name): reading
	// a queue's numbers costs JetStream requests, and a scrape must stay bounded at any
	// queue count. spool_queues says how many there are. 0: DefaultMetricsQueues;
	// negative: none.
	MetricsQueues int
	// Auth checks the requests' tokens and serves the token routes (/v1/tokens...). Nil:
	// every request is allowed and the token routes answer 503 unavailable.
	Auth *auth.Service
	// ProtectMetrics makes /metrics, /healthz and /v1/openapi.yaml take a token too
	// (read on every queue for /metrics, any token for the others).
	ProtectMetrics bool
	// Cluster, when set, serves GET /v1/cluster and the cluster metrics, and makes
	// /healthz ready only while the node knows a JetStream meta leader.
	Cluster Cluster
	// Budget bounds the memory that request bodies hold at once, shared with the other
	// fronts: a body that would go over it is answered 503 overloaded with Retry-After.
	// Nil: no bound but the per-request body limits.
	Budget *budget.Budget
	// StoreErr, when set, reports the store's health (a full or failing disk): /healthz
	// answers 503 while it returns an error.
	StoreErr func() error
	// WriteTimeout is the server's http.Server.WriteTimeout, if any. A long-polling
	// reservation moves its connection's write deadline to its wait plus this.
	WriteTimeout time.Duration
	// Webhooks serves the webhook routes (/v1/webhooks...); without it they answer 503.
	Webhooks *webhook.Service
}

// DefaultMetricsQueues is the default cap of the queues with series on /metrics.
const DefaultMetricsQueues = 1000

// bodyCost is what one byte of a request body costs in memory until the request is
// answered: the decoder's buffer (grown by doubling) and the decoded copies (raw items,
// payloads, the engine's messages). A valid 58 MiB batch took the heap 231 MiB up at its
// peak, garbage included (docs/limits.md).
const bodyCost = 4

// Handler serves the HTTP API. Create it with New.
type Handler struct {
	eng     *engine.Engine
	log     *slog.Logger
	opts    Options
	mux     *http.ServeMux
	reg     *prometheus.Registry
	metrics *httpMetrics
	started time.Time

	drainOnce sync.Once
	draining  chan struct{}

	// access holds each route's rule, by its mux pattern.
	access map[string]access
}

// New returns the HTTP API over eng.
func New(eng *engine.Engine, o Options) *Handler {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxPayload == 0 {
		o.MaxPayload = 1 << 20
	}
	h := &Handler{eng: eng, log: o.Logger, opts: o, mux: http.NewServeMux(), started: time.Now(), draining: make(chan struct{}),
		access: make(map[string]access)}
	h.reg = prometheus.NewRegistry()
	h.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{Namespace: "spool"}))
	h.metrics = newHTTPMetrics(h.reg)
	if o.MetricsQueues == 0 {
		o.MetricsQueues = DefaultMetricsQueues
	}
	h.reg.MustRegister(&queueCollector{eng: eng, log: o.Logger, max: o.MetricsQueues}, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "spool_reservations_waiting",
		Help: "Reservations of this node waiting for jobs (long polls that found none): idle workers.",
	}, func() float64 { return float64(eng.Waiting()) }), prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "spool_events_lost_total",
		Help: "Lifecycle events this node could not store (its buffer was full, or JetStream failed).",
	}, func() float64 { d, f := eng.EventStats(); return float64(d + f) }))
	if o.Schedules != nil {
		h.reg.MustRegister(scheduleCollector{o.Schedules})
	}
	if o.Cluster != nil {
		h.reg.MustRegister(clusterCollector{o.Cluster})
	}
	if o.Budget != nil {
		h.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "spool_inflight_bytes",
			Help: "Memory charged to request bodies in flight, of every front (the --max-inflight budget).",
		}, func() float64 { return float64(o.Budget.Used()) }))
	}
	h.routes()
	return h
}

// Drain makes long-polling reservations return at once and /healthz answer 503, ahead of a
// graceful shutdown.
func (h *Handler) Drain() { h.drainOnce.Do(func() { close(h.draining) }) }

// routes registers every route with its access rule (access.go): what permission it needs,
// and on which queue.
func (h *Handler) routes() {
	var (
		openRoute = access{scope: open}
		metrics   = access{perm: auth.Read, scope: allQueues} // every queue's counts
		enqueue   = access{perm: auth.Enqueue, scope: onQueue}
		work      = access{perm: auth.Work, scope: onQueue}
		workJob   = access{perm: auth.Work, scope: onJob}
		workSome  = access{perm: auth.Work, scope: someQueues}
		read      = access{perm: auth.Read, scope: onQueue}
		readJob   = access{perm: auth.Read, scope: onJob}
		readSome  = access{perm: auth.Read, scope: someQueues}
		readAll   = access{perm: auth.Read, scope: allQueues}
		admin     = access{perm: auth.Admin, scope: onQueue}
		adminJob  = access{perm: auth.Admin, scope: onJob}
		adminAll  = access{perm: auth.Admin, scope: allQueues}
	)
	raw := func(pattern string, a access, hf http.Handler) {
		if !a.valid() {
			panic("httpapi: route " + pattern + " without a valid access rule")
		}
		h.access[pattern] = a
		h.mux.Handle(pattern, hf)
	}
	handle := func(pattern string, a access, f func(http.ResponseWriter, *http.Request) error) {
		raw(pattern, a, h.metrics.wrap(pattern, func(w http.ResponseWriter, r *http.Request) {
			restoreSlashSegments(r)
			if r.Body == nil || r.Body == http.NoBody {
				bodyRead(w) // nothing to read: the read timeout must not cut the handling
			} else if h.opts.Budget != nil {
				// The body's bytes are charged as they arrive, not its declared length up
				// front: a client holds only what it has sent, and a slow one is cut by the
				// server's read timeout. They are given back once the request is answered.
				defer budget.ChargeBody(h.opts.Budget, r, bodyCost)()
			}
			err := h.checkRoute(r, a)
			if err == nil {
				err = f(w, r)
			}
			if err != nil {
				h.writeErr(w, r, err)
			}
		}))
	}
	healthz := openRoute
	if h.opts.ProtectMetrics {
		healthz = access{scope: anyToken}
	} else {
		metrics = openRoute
	}
	raw("GET /healthz", healthz, http.HandlerFunc(h.healthz))
	raw("GET /metrics", metrics, promhttp.HandlerFor(h.reg, promhttp.HandlerOpts{}))
	raw("GET /v1/openapi.yaml", healthz, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		w.Write(openAPI)
	}))
	handle("GET /v1/stats", readSome, h.stats) // counts of the token's queues only
	handle("GET /v1/cluster", readAll, h.cluster)

	handle("POST /v1/queues/{queue}/jobs", enqueue, h.enqueue)
	handle("GET /v1/queues/{queue}/jobs", read, h.listJobs)
	handle("POST /v1/reserve", workSome, h.reserve) // each queue of the body checked
	handle("DELETE /v1/reserve/{poll_id}", workSome, h.endPoll)
	handle("POST /v1/queues/{queue}/reserve", work, h.reserve)

	handle("POST /v1/ack", workSome, h.ackBatch) // each job checked
	handle("GET /v1/jobs/{id}", readJob, h.getJob)
	handle("DELETE /v1/jobs/{id}", adminJob, h.deleteJob)
	handle("POST /v1/jobs/{id}/ack", workJob, h.ack)
	handle("POST /v1/jobs/{id}/fail", workJob, h.fail)
	handle("POST /v1/jobs/{id}/touch", workJob, h.touch)
	handle("POST /v1/jobs/{id}/release", workJob, h.release)
	handle("POST /v1/jobs/{id}/bury", workJob, h.bury)
	handle("POST /v1/jobs/{id}/kick", adminJob, h.kickJob)
	// Events and the autoscaling signal (events.go, scale.go). A feed and the scale
	// signal may name any queue: they need read on every queue.
	handle("GET /v1/jobs/{id}/events", readJob, h.jobEvents)
	handle("GET /v1/events", readAll, h.events)
	handle("GET /v1/scale", readAll, h.scale)

	handle("GET /v1/queues", readSome, h.listQueues) // the token's queues only
	handle("GET /v1/queues/{queue}", read, h.getQueue)
	handle("PUT /v1/queues/{queue}", admin, h.putQueue)
	handle("DELETE /v1/queues/{queue}", admin, h.deleteQueue)
	handle("POST /v1/queues/{queue}/pause", admin, h.pause)
	handle("POST /v1/queues/{queue}/resume", admin, h.resume)
	handle("POST /v1/queues/{queue}/kick", admin, h.kickQueue)
	handle("POST /v1/queues/{queue}/purge", admin, h.purge)

	// Webhooks (webhook.go): 503 unavailable when the server runs none. A hook may cover
	// any queue, and the list shows the callback secret: admin on every queue.
	handle("POST /v1/webhooks", adminAll, h.createHook)
	handle("GET /v1/webhooks", adminAll, h.listHooks)
	handle("DELETE /v1/webhooks/{id}", adminAll, h.deleteHook)
	handle("GET /v1/webhook-deliveries", adminAll, h.listDeliveries)
	handle("POST /v1/webhook-deliveries/{id}/redeliver", adminAll, h.redeliver)

	// Schedules (schedule.go): 503 unavailable when the server runs no scheduler. A schedule
	// may enqueue into any queue: they are every queue's business.
	handle("GET /v1/schedules", readAll, h.listSchedules)
	handle("GET /v1/schedules/{name}", readAll, h.getSchedule)
	handle("PUT /v1/schedules/{name}", adminAll, h.putSchedule)
	handle("DELETE /v1/schedules/{name}", adminAll, h.deleteSchedule)
	handle("POST /v1/schedules/{name}/pause", adminAll, h.pauseSchedule)
	handle("POST /v1/schedules/{name}/resume", adminAll, h.resumeSchedule)
	handle("POST /v1/schedules/{name}/trigger", adminAll, h.triggerSchedule)

	// Tokens (token.go): 503 unavailable when the server keeps none.
	handle("GET /v1/tokens", adminAll, h.listTokens)
	handle("POST /v1/tokens", adminAll, h.createToken)
	handle("DELETE /v1/tokens/{token_id}", adminAll, h.revokeToken)
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r = rerouteSlashSegments(r)
	_, pattern := h.mux.Handler(r)
	if pattern == "" {
		// No route: the mux would answer 404 or 405 in plain text; answer in JSON.
		h.mux.ServeHTTP(&jsonErrorWriter{ResponseWriter: w}, r)
		return
	}
	a, ok := h.access[pattern]
	if !ok {
		h.writeErr(w, r, errNoRule) // fail closed; routes() gives every route a rule
		return
	}
	r, err := h.authorize(r, a)
	if err != nil {
		if errors.Is(err, errUnauthenticated) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="spool"`)
		}
		h.writeErr(w, r, err)
		return
	}
	h.mux.ServeHTTP(w, r)
}

// slashSegment is what a path segment %2F (a queue named "/") is routed as. ServeMux unescapes
// the segment to "/" and takes it for a trailing slash, which no {wildcard} matches: the
// route answered 404. NUL is in no valid name, and the segment is restored only on requests
// marked by rerouteSlashSegments, so a client sending %00 itself gets no "/".
const slashSegment = "\x00"

type reroutedKey struct{}

// rerouteSlashSegments returns r with its %2F segments written %00, marked for
// restoreSlashSegments, or r itself when it has none.
func rerouteSlashSegments(r *http.Request) *http.Request {
	p := r.URL.EscapedPath()
	if !strings.Contains(p, "/%2F") && !strings.Contains(p, "/%2f") {
		return r
	}
	segs := strings.Split(p, "/")
	changed := false
	for i, s := range segs {
		if strings.EqualFold(s, "%2F") {
			segs[i] = "%00"
			changed = true
		}
	}
	if !changed {
		return r
	}
	u := *r.URL
	u.RawPath = strings.Join(segs, "/")
	path, err := url.PathUnescape(u.RawPath)
	if err != nil {
		return r
	}
	u.Path = path
	r = r.WithContext(context.WithValue(r.Context(), reroutedKey{}, true))
	r.URL = &u
	return r
}

// restoreSlashSegments gives back "/" to the path values rerouteSlashSegments replaced.
func restoreSlashSegments(r *http.Request) {
	if r.Context().Value(reroutedKey{}) == nil {
		return
	}
	for _, name := range []string{"queue", "name", "id", "poll_id"} {
		if r.PathValue(name) == slashSegment {
			r.SetPathValue(name, "/")
		}
	}
}

// jsonErrorWriter turns the mux's plain-text 404 and 405 into the API's JSON errors.
type jsonErrorWriter struct {
	http.ResponseWriter
	wrote bool
}

func (j *jsonErrorWriter) WriteHeader(status int) {
	if status != http.StatusNotFound && status != http.StatusMethodNotAllowed {
		j.ResponseWriter.WriteHeader(status) // e.g. the mux's redirect of an unclean path
		return
	}
	code, msg := "not_found", "no such route"
	if status == http.StatusMethodNotAllowed {
		code, msg = "method_not_allowed", "method not allowed for this route"
	}
	j.ResponseWriter.Header().Del("X-Content-Type-Options")
	writeJSON(j.ResponseWriter, status, errorBody{errorOut{Code: code, Message: msg}})
	j.wrote = true
}

func (j *jsonErrorWriter) Write(b []byte) (int, error) {
	if j.wrote {
		return len(b), nil // the mux's text body, replaced
	}
	return j.ResponseWriter.Write(b)
}

func (h *Handler) healthz(w http.ResponseWriter, r *http.Request) {
	select {
	case <-h.draining:
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "draining"})
		return
	default:
	}
	if c := h.opts.Cluster; c != nil {
		if ch := c.Health(); !ch.External && ch.MetaLeader == "" {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "no_quorum",
				"error": "this node knows no JetStream meta leader: a majority of the cluster's nodes is not reachable"})
			return
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	err := h.eng.Ping(ctx)
	if err == nil && h.opts.StoreErr != nil {
		err = h.opts.StoreErr()
	}
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "version": h.opts.Version})
}

// readable returns what selects the queues the request's token may read: nil (all of them)
// for a token that reads every queue.
func readable(r *http.Request) func(queue string) bool {
	p := auth.FromContext(r.Context())
	if p.CanAll(auth.Read) {
		return nil
	}
	return func(q string) bool { return p.Can(auth.Read, q) }
}

func (h *Handler) stats(w http.ResponseWriter, r *http.Request) error {
	sum, err := h.eng.Summarize(r.Context(), engine.SummaryRequest{Keep: readable(r)})
	if err != nil {
		return err
	}
	// The client's type is the wire format: one definition for both ends.
	writeJSON(w, http.StatusOK, spool.ServerStats{
		Version: h.opts.Version, Uptime: time.Since(h.started).Round(time.Second),
		Queues: sum.Queues, Paused: sum.Paused,
		Jobs: spool.StateCounts{Ready: sum.Ready, Reserved: sum.Reserved, Delayed: sum.Delayed, Buried: sum.Buried},
		Totals: spool.Totals{Enqueued: sum.Enqueued, Reserves: sum.Reserves, Succeeded: sum.Succeeded, Failed: sum.Failed,
			BuriedTotal: sum.BuriedTot, Cancelled: sum.Cancelled, Timeouts: sum.Timeouts},
		EnqueueRate: sum.EnqueueRate, CompleteRate: sum.CompleteRate,
	})
	return nil
}

// Body limits: a single request carries at most one payload (possibly base64, 4/3 larger);
// a batch up to MaxBatch of them, capped.
func (h *Handler) bodyLimit(batch bool) int64 {
	single := int64(h.opts.MaxPayload)*2 + 64<<10
	if batch {
		return 64 << 20
	}
	return single
}

func (h *Handler) enqueue(w http.ResponseWriter, r *http.Request) error {
	queue := r.PathValue("queue")
	var in enqueueIn
	if err := decode(w, r, &in, h.bodyLimit(true)); err != nil {
		return err
	}
	if in.Jobs == nil {
		req, err := in.request(queue)
		if err != nil {
			return err
		}
		if err := h.checkPayload(req.Payload, "payload"); err != nil {
			return err
		}
		res, err := h.eng.Enqueue(r.Context(), []engine.EnqueueRequest{req})
		if err != nil {
			return err
		}
		if res[0].Err != nil {
			return res[0].Err
		}
		out := toJob(res[0].Job)
		status := http.StatusCreated
		if res[0].Duplicate {
			out.Duplicate, status = true, http.StatusOK
		}
		writeJSON(w, status, out)
		return nil
	}
	if in.Type != "" || in.Payload != nil || in.PayloadBase64 != nil || in.Priority != nil || in.Delay != nil ||
		in.RunAt != nil || in.Lease != nil || in.MaxAttempts != nil || in.Timeout != nil || in.UniqueKey != "" || in.Metadata != nil {
		return fieldErr("jobs", "a batch carries its fields in each job, not beside \"jobs\"")
	}
	if len(in.Jobs) == 0 || len(in.Jobs) > engine.MaxBatch {
		return fieldErr("jobs", "a batch holds 1 to "+strconv.Itoa(engine.MaxBatch)+" jobs")
	}
	reqs := make([]engine.EnqueueRequest, len(in.Jobs))
	for i, raw := range in.Jobs {
		prefix := "jobs[" + strconv.Itoa(i) + "]."
		var item enqueueIn
		if err := decodeStrict(raw, &item); err != nil {
			return prefixField(err, prefix)
		}
		if item.Jobs != nil {
			return fieldErr(prefix+"jobs", "batches do not nest")
		}
		req, err := item.request(queue)
		if err != nil {
			return prefixField(err, prefix)
		}
		if err := h.checkPayload(req.Payload, prefix+"payload"); err != nil {
			return err
		}
		reqs[i] = req
	}
	res, err := h.eng.Enqueue(r.Context(), reqs)
	if err != nil {
		return err
	}
	type itemOut struct {
		ID        string       `json:"id,omitempty"`
		State     engine.State `json:"state,omitempty"`
		Duplicate bool         `json:"duplicate,omitempty"`
		Error     *errorOut    `json:"error,omitempty"`
	}
	out := make([]itemOut, len(res))
	var worst batchOutcome
	for i, r := range res {
		if r.Err != nil {
			out[i].Error = worst.add(h, r.Err)
			continue
		}
		out[i] = itemOut{ID: strconv.FormatUint(r.Job.ID, 10), State: r.Job.State, Duplicate: r.Duplicate}
	}
	worst.write(w, "jobs", out, len(out))
	return nil
}

// endPoll ends the long-polling reservations made with a poll id, on every node.
func (h *Handler) endPoll(w http.ResponseWriter, r *http.Request) error {
	if err := h.eng.EndPoll(r.Context(), r.PathValue("poll_id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// checkPayload refuses a payload over the limit, naming the field.
func (h *Handler) checkPayload(p []byte, field string) error {
	if len(p) > h.opts.MaxPayload {
		return &apiError{Status: http.StatusRequestEntityTooLarge, Code: "payload_too_large", Field: field,
			Message: field + ": " + (&engine.PayloadTooLargeError{Size: len(p), Limit: h.opts.MaxPayload}).Error()}
	}
	return nil
}

func (h *Handler) reserve(w http.ResponseWriter, r *http.Request) error {
	var in reserveIn
	if err := decode(w, r, &in, 64<<10); err != nil {
		return err
	}
	if q := r.PathValue("queue"); q != "" {
		if in.Queues != nil {
			return fieldErr("queues", "the queue is in the path")
		}
		in.Queues = []string{q}
	}
	p := auth.FromContext(r.Context())
	for i, q := range in.Queues {
		if err := engine.ValidateQueueName(q); err != nil {
			var ve *engine.ValidationError
			if errors.As(err, &ve) && r.PathValue("queue") == "" {
				return fieldErr("queues["+strconv.Itoa(i)+"]", ve.Reason)
			}
			return err
		}
		if !p.Can(auth.Work, q) {
			return forbidden(auth.Work, " on queue "+strconv.Quote(q))
		}
	}
	req := engine.ReserveRequest{Queues: in.Queues, Max: 1, Worker: in.Worker, PollID: in.PollID}
	if in.Max != nil {
		if *in.Max < 1 || *in.Max > engine.MaxBatch {
			return fieldErr("max", "must be between 1 and "+strconv.Itoa(engine.MaxBatch))
		}
		req.Max = int(*in.Max)
	}
	if in.Wait != nil {
		if in.Wait.value() < 0 || in.Wait.value() > MaxWait {
			return fieldErr("wait", "must be between 0s and "+MaxWait.String())
		}
		req.Wait = in.Wait.value()
	}
	if len(in.Worker) > 256 {
		return fieldErr("worker", "longer than 256 bytes")
	}
	if req.Wait > 0 && h.opts.WriteTimeout > 0 {
		// The server's write timeout counts from the request's header: a long poll gets
		// its wait on top.
		http.NewResponseController(w).SetWriteDeadline(time.Now().Add(req.Wait + h.opts.WriteTimeout))
	}
	// A long poll ends early when the server starts draining.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() {
		select {
		case <-h.draining:
			cancel()
		case <-ctx.Done():
		}
	}()
	res, err := h.eng.Reserve(ctx, req)
	if err != nil && ctx.Err() != nil && r.Context().Err() == nil {
		res, err = &engine.ReserveResult{}, nil // drained: an empty answer
	}
	if err != nil {
		return err
	}
	if r.Context().Err() != nil && len(res.Jobs) > 0 {
		// The client left while jobs were being reserved for it: give them back now rather
		// than at the end of their leases.
		h.eng.GiveBack(res.Jobs)
		return r.Context().Err()
	}
	// The answer holds the jobs' payloads, encoded: it is charged to the memory budget
	// until written. The jobs that do not fit go back to ready at once; if not even one
	// does, the caller is told to come back.
	if h.opts.Budget != nil && len(res.Jobs) > 0 {
		var charged int64
		fit := 0
		for _, rj := range res.Jobs {
			c := answerCost * int64(len(rj.Job.Payload)+answerOverhead)
			if !h.opts.Budget.TryAcquire(c) {
				break
			}
			charged += c
			fit++
		}
		defer h.opts.Budget.Release(charged)
		if fit < len(res.Jobs) {
			h.eng.GiveBack(res.Jobs[fit:])
			res.Jobs = res.Jobs[:fit]
		}
		if fit == 0 {
			return decodeErr(budget.ErrExceeded)
		}
	}
	jobs := make([]*jobOut, len(res.Jobs))
	for i, rj := range res.Jobs {
		jobs[i] = toJob(rj.Job)
		jobs[i].LeaseToken = rj.Token
	}
	paused := res.Paused
	if paused == nil {
		paused = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"jobs": jobs, "paused": paused})
	return nil
}

// What a reserved job costs the memory budget until its answer is written: its payload,
// its encoded copy and the answer's buffer (answerCost times), and its other fields.
const (
	answerCost     = 3
	answerOverhead = 1 << 10
)

func jobID(r *http.Request) (uint64, error) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil || id == 0 {
		return 0, fieldErr("id", "must be a job id: a decimal unsigned 64-bit integer")
	}
	return id, nil
}

func (h *Handler) getJob(w http.ResponseWriter, r *http.Request) error {
	id, err := jobID(r)
	if err != nil {
		return err
	}
	j, err := h.eng.Job(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toJob(j))
	return nil
}

func (h *Handler) deleteJob(w http.ResponseWriter, r *http.Request) error {
	id, err := jobID(r)
	if err != nil {
		return err
	}
	j, err := h.eng.Delete(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toJob(j))
	return nil
}

func (h *Handler) kickJob(w http.ResponseWriter, r *http.Request) error {
	id, err := jobID(r)
	if err != nil {
		return err
	}
	j, err := h.eng.Kick(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toJob(j))
	return nil
}

// leaseOp decodes a lease operation's id and body; the token is required.
func (h *Handler) leaseOp(w http.ResponseWriter, r *http.Request) (uint64, *leaseIn, error) {
	id, err := jobID(r)
	if err != nil {
		return 0, nil, err
	}
	in := new(leaseIn)
	if err := decode(w, r, in, int64(engine.MaxResultLen)+64<<10); err != nil {
		return 0, nil, err
	}
	if in.LeaseToken == "" {
		return 0, nil, fieldErr("lease_token", "required: the token from the reservation")
	}
	return id, in, nil
}

// only rejects the fields of other lease operations, so that a typo is not silently ignored.
func only(in *leaseIn, allowed ...string) error {
	set := map[string]bool{
		"result": in.Result != nil, "error": in.Error != "", "retry_in": in.RetryIn != nil, "bury": in.Bury,
		"lease": in.Lease != nil, "priority": in.Priority != nil, "delay": in.Delay != nil, "reason": in.Reason != "",
	}
	for _, a := range allowed {
		delete(set, a)
	}
	for f, isSet := range set {
		if isSet {
			return fieldErr(f, "not a field of this operation")
		}
	}
	return nil
}

func (h *Handler) ack(w http.ResponseWriter, r *http.Request) error {
	id, in, err := h.leaseOp(w, r)
	if err != nil {
		return err
	}
	if err := only(in, "result"); err != nil {
		return err
	}
	var result []byte
	if in.Result != nil && string(in.Result) != "null" {
		result = compactJSON(in.Result)
	}
	j, err := h.eng.Ack(r.Context(), id, in.LeaseToken, result)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toJob(j))
	return nil
}

// ackBatch completes many reserved jobs in one request, each with its own outcome.
func (h *Handler) ackBatch(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Acks []struct {
			ID         string          `json:"id"`
			LeaseToken string          `json:"lease_token"`
			Result     json.RawMessage `json:"result"`
		} `json:"acks"`
	}
	if err := decode(w, r, &in, 64<<20); err != nil {
		return err
	}
	if len(in.Acks) == 0 || len(in.Acks) > engine.MaxBatch {
		return fieldErr("acks", "a batch holds 1 to "+strconv.Itoa(engine.MaxBatch)+" acks")
	}
	reqs := make([]engine.AckRequest, len(in.Acks))
	p := auth.FromContext(r.Context())
	// denied[i]: job i is outside the token's queues; it is answered not found, unacked.
	var denied map[int]error
	for i, a := range in.Acks {
		id, err := strconv.ParseUint(a.ID, 10, 64)
		if err != nil || id == 0 {
			return fieldErr("acks["+strconv.Itoa(i)+"].id", "must be a job id: a decimal unsigned 64-bit integer")
		}
		if err := h.checkJob(r.Context(), p, auth.Work, id); err != nil {
			if denied == nil {
				denied = make(map[int]error)
			}
			denied[i] = err
		}
		if a.LeaseToken == "" {
			return fieldErr("acks["+strconv.Itoa(i)+"].lease_token", "required: the token from the reservation")
		}
		reqs[i] = engine.AckRequest{ID: id, Token: a.LeaseToken}
		if a.Result != nil && string(a.Result) != "null" {
			reqs[i].Result = compactJSON(a.Result)
		}
	}
	allowed := reqs
	if denied != nil {
		allowed = nil
		for i, rq := range reqs {
			if denied[i] == nil {
				allowed = append(allowed, rq)
			}
		}
	}
	var res []engine.AckResult
	if len(allowed) > 0 {
		var err error
		if res, err = h.eng.AckBatch(r.Context(), allowed); err != nil {
			return err
		}
	}
	if denied != nil {
		merged := make([]engine.AckResult, len(reqs))
		for i := range reqs {
			if denied[i] != nil {
				merged[i].Err = denied[i]
			} else {
				merged[i], res = res[0], res[1:]
			}
		}
		res = merged
	}
	type resultOut struct {
		ID    string       `json:"id"`
		State engine.State `json:"state,omitempty"`
		Error *errorOut    `json:"error,omitempty"`
	}
	out := make([]resultOut, len(res))
	var worst batchOutcome
	for i, a := range res {
		out[i].ID = in.Acks[i].ID
		if a.Err != nil {
			out[i].Error = worst.add(h, a.Err)
			continue
		}
		out[i].State = a.Job.State
	}
	worst.write(w, "results", out, len(out))
	return nil
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request) error {
	id, in, err := h.leaseOp(w, r)
	if err != nil {
		return err
	}
	if err := only(in, "error", "retry_in", "bury"); err != nil {
		return err
	}
	if len(in.Error) > engine.MaxErrorLen {
		return fieldErr("error", "longer than "+strconv.Itoa(engine.MaxErrorLen)+" bytes")
	}
	req := engine.FailRequest{Error: in.Error, Bury: in.Bury}
	if in.RetryIn != nil {
		d := in.RetryIn.value()
		if d < 0 || d > engine.MaxDelay {
			return fieldErr("retry_in", "must be between 0s and "+engine.MaxDelay.String())
		}
		req.RetryIn = &d
	}
	j, err := h.eng.Fail(r.Context(), id, in.LeaseToken, req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toJob(j))
	return nil
}

func (h *Handler) touch(w http.ResponseWriter, r *http.Request) error {
	id, in, err := h.leaseOp(w, r)
	if err != nil {
		return err
	}
	if err := only(in, "lease"); err != nil {
		return err
	}
	j, err := h.eng.Touch(r.Context(), id, in.LeaseToken, in.Lease.value())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"lease_expires_at": timeOut(j.LeaseExpiresAt)})
	return nil
}

func (h *Handler) release(w http.ResponseWriter, r *http.Request) error {
	id, in, err := h.leaseOp(w, r)
	if err != nil {
		return err
	}
	if err := only(in, "priority", "delay"); err != nil {
		return err
	}
	req := engine.ReleaseRequest{Delay: in.Delay.value()}
	if in.Priority != nil {
		if *in.Priority < 0 || *in.Priority > 1<<32-1 {
			return fieldErr("priority", "must be between 0 and 4294967295")
		}
		p := uint32(*in.Priority)
		req.Priority = &p
	}
	j, err := h.eng.Release(r.Context(), id, in.LeaseToken, req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toJob(j))
	return nil
}

func (h *Handler) bury(w http.ResponseWriter, r *http.Request) error {
	id, in, err := h.leaseOp(w, r)
	if err != nil {
		return err
	}
	if err := only(in, "reason"); err != nil {
		return err
	}
	if len(in.Reason) > engine.MaxErrorLen {
		return fieldErr("reason", "longer than "+strconv.Itoa(engine.MaxErrorLen)+" bytes")
	}
	j, err := h.eng.Bury(r.Context(), id, in.LeaseToken, engine.BuryRequest{Reason: in.Reason})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toJob(j))
	return nil
}

// defaultQueuePage is how many queues GET /v1/queues lists when the request names no limit.
const defaultQueuePage = 100

func (h *Handler) listQueues(w http.ResponseWriter, r *http.Request) error {
	limit := defaultQueuePage
	query := r.URL.Query()
	if v := query.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > engine.MaxQueuePage {
			return fieldErr("limit", "must be a whole number between 1 and "+strconv.Itoa(engine.MaxQueuePage))
		}
		limit = n
	}
	f := engine.QueueFilter{Prefix: query.Get("prefix")} // checked by the engine
	if query.Has("paused") {
		if query.Get("paused") != "true" {
			return fieldErr("paused", "must be true (only the paused queues), or absent")
		}
		f.Paused = true
	}
	f.Keep = readable(r)
	qs, next, err := h.eng.QueuesPageOf(r.Context(), query.Get("after"), limit, f)
	if err != nil {
		return err
	}
	out := make([]*queueOut, len(qs))
	for i, q := range qs {
		out[i] = toQueue(q)
	}
	body := map[string]any{"queues": out}
	if next != "" {
		body["next"] = next
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}

func (h *Handler) getQueue(w http.ResponseWriter, r *http.Request) error {
	qi, err := h.eng.Queue(r.Context(), r.PathValue("queue"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toQueue(qi))
	return nil
}

func (h *Handler) putQueue(w http.ResponseWriter, r *http.Request) error {
	var in queueSettingsIn
	if err := decode(w, r, &in, 64<<10); err != nil {
		return err
	}
	s := engine.QueueSettings{Lease: in.Lease.value(), BackoffBase: in.BackoffBase.value(), BackoffMax: in.BackoffMax.value(), Events: in.Events,
		Retention: (*time.Duration)(in.Retention)} // checked by the engine: whole seconds, 0 keeps none
	for _, d := range []struct {
		field string
		set   bool
		v     time.Duration
	}{{"lease", in.Lease != nil, s.Lease}, {"backoff_base", in.BackoffBase != nil, s.BackoffBase}, {"backoff_max", in.BackoffMax != nil, s.BackoffMax}} {
		if d.set && d.v <= 0 {
			return fieldErr(d.field, "must be a positive duration")
		}
	}
	if in.MaxAttempts != nil {
		if *in.MaxAttempts < 1 || *in.MaxAttempts > engine.MaxMaxAttempts {
			return fieldErr("max_attempts", "must be between 1 and "+strconv.Itoa(engine.MaxMaxAttempts))
		}
		s.MaxAttempts = int(*in.MaxAttempts)
	}
	if in.Replicas != nil {
		if r := *in.Replicas; r != 1 && r != 3 && r != 5 {
			return fieldErr("replicas", "must be 1, 3 or 5")
		}
		s.Replicas = int(*in.Replicas)
	}
	qi, err := h.eng.PutQueue(r.Context(), r.PathValue("queue"), s)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toQueue(qi))
	return nil
}

func (h *Handler) deleteQueue(w http.ResponseWriter, r *http.Request) error {
	if err := h.eng.DeleteQueue(r.Context(), r.PathValue("queue")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) pause(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		For *duration `json:"for"`
	}
	if err := decode(w, r, &in, 64<<10); err != nil {
		return err
	}
	var until time.Time
	if in.For != nil {
		if in.For.value() <= 0 || in.For.value() > engine.MaxDelay {
			return fieldErr("for", "must be a positive duration")
		}
		until = time.Now().Add(in.For.value())
	}
	qi, err := h.eng.Pause(r.Context(), r.PathValue("queue"), until)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toQueue(qi))
	return nil
}

func (h *Handler) resume(w http.ResponseWriter, r *http.Request) error {
	qi, err := h.eng.Resume(r.Context(), r.PathValue("queue"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toQueue(qi))
	return nil
}

func (h *Handler) kickQueue(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Max   *int64       `json:"max"`
		State engine.State `json:"state"`
	}
	if err := decode(w, r, &in, 64<<10); err != nil {
		return err
	}
	max := 0
	if in.Max != nil {
		if *in.Max < 1 || *in.Max > 1<<31 {
			return fieldErr("max", "must be positive")
		}
		max = int(*in.Max)
	}
	st := engine.StateBuried
	if in.State != "" {
		st = in.State
	}
	n, err := h.eng.KickQueue(r.Context(), r.PathValue("queue"), st, max)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]int{"kicked": n})
	return nil
}

func (h *Handler) purge(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		State engine.State `json:"state"`
	}
	if err := decode(w, r, &in, 64<<10); err != nil {
		return err
	}
	n, err := h.eng.Purge(r.Context(), r.PathValue("queue"), in.State)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]int{"purged": n})
	return nil
}

func (h *Handler) listJobs(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	req := engine.PeekRequest{Queue: r.PathValue("queue"), State: engine.State(q.Get("state")), Limit: 50}
	if req.State == "" {
		req.State = engine.StateReady
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > engine.MaxBatch {
			return fieldErr("limit", "must be between 1 and "+strconv.Itoa(engine.MaxBatch))
		}
		req.Limit = n
	}
	if s := q.Get("cursor"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return fieldErr("cursor", "malformed: use next_cursor from the previous page")
		}
		req.After = n
	}
	page, err := h.eng.Peek(r.Context(), req)
	if err != nil {
		return err
	}
	jobs := make([]*jobOut, len(page.Jobs))
	for i, j := range page.Jobs {
		jobs[i] = toJob(j)
	}
	out := map[string]any{"jobs": jobs}
	if page.Next != 0 {
		out["next_cursor"] = strconv.FormatUint(page.Next, 10)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // payloads go back as they came
	enc.Encode(v)
}

// ctxErr tells whether err is the request's own cancellation.
func ctxErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
