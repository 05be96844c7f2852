package httpapi

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/spoolq/spool/autoscale"
	"github.com/spoolq/spool/engine"
)

type scaleQueueOut struct {
	Queue            string  `json:"queue"`
	Exists           bool    `json:"exists"`
	Ready            int64   `json:"ready"`
	Reserved         int64   `json:"reserved"`
	Messages         int64   `json:"messages"`
	ArrivalPerMinute float64 `json:"arrival_per_minute"`
	CompletePerMin   float64 `json:"complete_per_minute"`
	OldestReadyAge   float64 `json:"oldest_ready_age_seconds"`
}

type scaleOut struct {
	Desired        int64           `json:"desired"`
	Messages       int64           `json:"messages"`
	Needed         int64           `json:"needed"`
	MinByRate      int64           `json:"min_by_rate"`
	Idle           int64           `json:"idle"`
	MaxDisruptable int64           `json:"max_disruptable"`
	Queues         []scaleQueueOut `json:"queues"`
}

// scaleParams reads the Worker Pod Autoscaler's parameters from the query.
func scaleParams(r *http.Request) ([]string, autoscale.Params, error) {
	q := r.URL.Query()
	p := autoscale.Params{TargetMessagesPerWorker: 1, Max: 100, Current: -1, MaxDisruption: q.Get("maxDisruption")}
	var queues []string
	for _, v := range q["queues"] {
		for s := range strings.SplitSeq(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				queues = append(queues, s)
			}
		}
	}
	if len(queues) == 0 || len(queues) > maxFeedQueues {
		return nil, p, fieldErr("queues", fmt.Sprintf("1 to %d queue names, comma-separated", maxFeedQueues))
	}
	for _, name := range queues {
		if err := engine.ValidateQueueName(name); err != nil {
			return nil, p, err
		}
	}
	for _, f := range []struct {
		name string
		dst  *int64
		min  int64
	}{{"targetMessagesPerWorker", &p.TargetMessagesPerWorker, 1}, {"min", &p.Min, 0}, {"max", &p.Max, 0}, {"current", &p.Current, 0}} {
		v := q.Get(f.name)
		if v == "" {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < f.min || n > math.MaxInt32 {
			return nil, p, fieldErr(f.name, fmt.Sprintf("must be an integer from %d to %d", f.min, math.MaxInt32))
		}
		*f.dst = n
	}
	if v := q.Get("secondsToProcessOneJob"); v != "" {
		s, err := strconv.ParseFloat(v, 64)
		if err != nil || s < 0 || s > 1e6 || math.IsNaN(s) {
			return nil, p, fieldErr("secondsToProcessOneJob", "must be a number from 0 to 1000000")
		}
		p.SecondsToProcessOneJob = s
	}
	if err := p.Validate(); err != nil {
		return nil, p, fieldErr("query", err.Error())
	}
	return queues, p, nil
}

// scale serves GET /v1/scale: the workers the named queues need (docs/events.md,
// "Autoscaling"). A queue that does not exist counts as empty: a deployment may start
// before its queue.
func (h *Handler) scale(w http.ResponseWriter, r *http.Request) error {
	names, p, err := scaleParams(r)
	if err != nil {
		return err
	}
	qis, err := h.eng.QueuesNamed(r.Context(), names)
	if err != nil {
		return err
	}
	found := make(map[string]*engine.QueueInfo, len(qis))
	for _, qi := range qis {
		found[qi.Name] = qi
	}
	out := scaleOut{Queues: make([]scaleQueueOut, 0, len(names))}
	sigs := make([]autoscale.Signal, 0, len(names))
	for _, name := range names {
		qo := scaleQueueOut{Queue: name}
		if qi := found[name]; qi != nil {
			s := qi.Stats
			qo.Exists, qo.Ready, qo.Reserved, qo.Messages = true, s.Ready, s.Reserved, s.Ready+s.Reserved
			qo.ArrivalPerMinute, qo.CompletePerMin = round2(s.EnqueueRate*60), round2(s.CompleteRate*60)
			qo.OldestReadyAge = s.OldestReadyAge.Seconds()
		}
		out.Queues = append(out.Queues, qo)
		sigs = append(sigs, autoscale.Signal{Messages: qo.Messages, Reserved: qo.Reserved, ArrivalPerMinute: qo.ArrivalPerMinute})
	}
	res, err := autoscale.Desired(sigs, p)
	if err != nil {
		return fieldErr("query", err.Error())
	}
	out.Desired, out.Messages, out.Needed, out.MinByRate = res.Desired, res.Messages, res.Needed, res.MinByRate
	out.Idle, out.MaxDisruptable = res.Idle, res.MaxDisruptable
	writeJSON(w, http.StatusOK, out)
	return nil
}
