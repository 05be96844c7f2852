package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/spoolq/spool/engine"
)

// eventOut is a lifecycle event on the wire.
type eventOut struct {
	Pos      string           `json:"pos"`
	Time     time.Time        `json:"time"`
	Kind     engine.EventKind `json:"kind"`
	JobID    string           `json:"job_id"`
	Queue    string           `json:"queue"`
	Type     string           `json:"type"`
	Node     string           `json:"node,omitempty"`
	Worker   string           `json:"worker,omitempty"`
	Attempt  int              `json:"attempt"`
	State    engine.State     `json:"state"`
	Error    string           `json:"error,omitempty"`
	RunAt    *time.Time       `json:"run_at,omitempty"`
	Callback string           `json:"callback_url,omitempty"`
}

func toEvent(ev *engine.Event) eventOut {
	return eventOut{Pos: strconv.FormatUint(ev.Pos, 10), Time: ev.Time.UTC(), Kind: ev.Kind,
		JobID: strconv.FormatUint(ev.JobID, 10), Queue: ev.Queue, Type: ev.Type, Node: ev.Node, Worker: ev.Worker,
		Attempt: ev.Attempt, State: ev.State, Error: ev.Error, RunAt: timeOut(ev.RunAt), Callback: ev.Callback}
}

func (h *Handler) jobEvents(w http.ResponseWriter, r *http.Request) error {
	id, err := jobID(r)
	if err != nil {
		return err
	}
	evs, err := h.eng.JobEvents(r.Context(), id)
	if err != nil {
		return err
	}
	out := make([]eventOut, len(evs))
	for i := range evs {
		out[i] = toEvent(&evs[i])
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": out})
	return nil
}

// maxFeedQueues bounds the queues one feed names.
const maxFeedQueues = 100

// eventFilter reads a feed's filter: queue and type (repeated or comma-separated), kinds.
func eventFilter(r *http.Request) (engine.EventFilter, error) {
	var f engine.EventFilter
	q := r.URL.Query()
	list := func(name string) []string {
		var out []string
		for _, v := range q[name] {
			for s := range strings.SplitSeq(v, ",") {
				if s = strings.TrimSpace(s); s != "" {
					out = append(out, s)
				}
			}
		}
		return out
	}
	f.Queues = list("queue")
	if len(f.Queues) > maxFeedQueues {
		return f, fieldErr("queue", fmt.Sprintf("at most %d queues", maxFeedQueues))
	}
	for _, name := range f.Queues {
		if err := engine.ValidateQueueName(name); err != nil {
			return f, err
		}
	}
	f.Types = list("type")
	kinds, err := engine.ParseEventKinds(strings.Join(list("kinds"), ","))
	if err != nil {
		return f, err
	}
	f.Kinds = kinds
	return f, nil
}

// feedStart is where a feed resumes: after the Last-Event-ID header's position, or the
// after parameter's (0: from the oldest event kept); absent, from now.
func feedStart(r *http.Request) (uint64, error) {
	v, field := r.Header.Get("Last-Event-ID"), "Last-Event-ID"
	if v == "" {
		v, field = r.URL.Query().Get("after"), "after"
	}
	if v == "" {
		return 0, nil
	}
	pos, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fieldErr(field, "must be an event position (a decimal number)")
	}
	return max(pos, 1), nil // engine: 0 is "from now"; no event has position 0 or 1 below 1000
}

// feedPing is how often an idle feed sends a comment, so that proxies keep it open.
const feedPing = 15 * time.Second

// events serves GET /v1/events: a server-sent events feed of lifecycle events.
func (h *Handler) events(w http.ResponseWriter, r *http.Request) error {
	f, err := eventFilter(r)
	if err != nil {
		return err
	}
	after, err := feedStart(r)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	feed, err := h.eng.FollowEvents(ctx, f, after)
	if err != nil {
		return err
	}
	defer feed.Close()
	rc := http.NewResponseController(w)
	rc.SetWriteDeadline(time.Time{}) // a feed outlives any write timeout
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprint(w, ": spool events\n\n"); err != nil {
		return nil
	}
	rc.Flush()

	evs := make(chan engine.Event)
	go func() {
		defer close(evs)
		for {
			ev, err := feed.Next(ctx)
			if err != nil {
				if ctx.Err() == nil {
					h.log.Warn("event feed", "err", err)
				}
				return
			}
			select {
			case evs <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	ping := time.NewTicker(feedPing)
	defer ping.Stop()
	for {
		var err error
		select {
		case ev, ok := <-evs:
			if !ok {
				return nil
			}
			b, _ := json.Marshal(toEvent(&ev))
			_, err = fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", ev.Pos, ev.Kind, b)
		case <-ping.C:
			_, err = fmt.Fprint(w, ": ping\n\n")
		case <-h.draining:
			return nil
		case <-ctx.Done():
			return nil
		}
		if err == nil {
			err = rc.Flush()
		}
		if err != nil {
			return nil // the client left
		}
	}
}
