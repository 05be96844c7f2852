package httpapi

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/spoolq/spool/engine"
	"github.com/spoolq/spool/webhook"
)

func (h *Handler) webhooks() (*webhook.Service, error) {
	if h.opts.Webhooks == nil {
		return nil, &apiError{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "webhooks are not enabled on this server"}
	}
	return h.opts.Webhooks, nil
}

// webhookErr gives webhook errors their API form.
func webhookErr(err error) error {
	var ve *webhook.ValidationError
	switch {
	case errors.Is(err, webhook.ErrNotFound):
		return &apiError{Status: http.StatusNotFound, Code: "webhook_not_found", Message: err.Error()}
	case errors.As(err, &ve):
		return fieldErr(ve.Field, ve.Reason)
	}
	return err
}

type hookIn struct {
	URL    string   `json:"url"`
	Queue  string   `json:"queue"`
	Type   string   `json:"type"`
	Kinds  []string `json:"kinds"`
	Secret string   `json:"secret"`
}

type hookOut struct {
	ID        string             `json:"id"`
	URL       string             `json:"url"`
	Queue     string             `json:"queue,omitempty"`
	Type      string             `json:"type,omitempty"`
	Kinds     []engine.EventKind `json:"kinds"`
	Secret    string             `json:"secret,omitempty"`
	CreatedAt time.Time          `json:"created_at"`
}

func toHook(hk *webhook.Hook) hookOut {
	return hookOut{ID: hk.ID, URL: hk.URL, Queue: hk.Queue, Type: hk.Type, Kinds: hk.Kinds, Secret: hk.Secret, CreatedAt: hk.CreatedAt}
}

func (h *Handler) createHook(w http.ResponseWriter, r *http.Request) error {
	svc, err := h.webhooks()
	if err != nil {
		return err
	}
	var in hookIn
	if err := decode(w, r, &in, 16<<10); err != nil {
		return err
	}
	hk := webhook.Hook{URL: in.URL, Queue: in.Queue, Type: in.Type, Secret: in.Secret}
	for _, k := range in.Kinds {
		hk.Kinds = append(hk.Kinds, engine.EventKind(k))
	}
	out, err := svc.Create(r.Context(), hk)
	if err != nil {
		return webhookErr(err)
	}
	writeJSON(w, http.StatusCreated, toHook(out))
	return nil
}

func (h *Handler) listHooks(w http.ResponseWriter, r *http.Request) error {
	svc, err := h.webhooks()
	if err != nil {
		return err
	}
	list := svc.List()
	out := make([]hookOut, len(list))
	for i := range list {
		out[i] = toHook(&list[i])
	}
	writeJSON(w, http.StatusOK, map[string]any{"webhooks": out, "callback_secret": svc.CallbackSecret()})
	return nil
}

func (h *Handler) deleteHook(w http.ResponseWriter, r *http.Request) error {
	svc, err := h.webhooks()
	if err != nil {
		return err
	}
	if err := svc.Delete(r.Context(), r.PathValue("id")); err != nil {
		return webhookErr(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type deliveryOut struct {
	ID        string     `json:"id"`
	Key       string     `json:"key"`
	Hook      string     `json:"hook,omitempty"`
	URL       string     `json:"url"`
	Event     eventOut   `json:"event"`
	State     string     `json:"state"`
	Attempts  int        `json:"attempts"`
	LastError string     `json:"last_error,omitempty"`
	RunAt     *time.Time `json:"run_at,omitempty"`
}

// listDeliveries serves GET /v1/webhook-deliveries?state=buried|delayed|ready: dead
// deliveries by default.
func (h *Handler) listDeliveries(w http.ResponseWriter, r *http.Request) error {
	svc, err := h.webhooks()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	st := engine.State(q.Get("state"))
	switch st {
	case "":
		st = engine.StateBuried
	case engine.StateBuried, engine.StateDelayed, engine.StateReady:
	default:
		return fieldErr("state", "must be buried, delayed or ready")
	}
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return fieldErr("limit", "must be between 1 and 1000")
		}
		limit = n
	}
	var after uint64
	if v := q.Get("cursor"); v != "" {
		if after, err = strconv.ParseUint(v, 10, 64); err != nil {
			return fieldErr("cursor", "not a cursor from a previous page")
		}
	}
	list, next, err := svc.Deliveries(r.Context(), st, limit, after)
	if err != nil {
		return err
	}
	out := make([]deliveryOut, len(list))
	for i, d := range list {
		out[i] = deliveryOut{ID: strconv.FormatUint(d.ID, 10), Key: d.Key, Hook: d.Hook, URL: d.URL, Event: toEvent(&d.Event),
			State: string(d.State), Attempts: d.Attempts, LastError: d.LastError, RunAt: timeOut(d.RunAt)}
		if d.State != engine.StateDelayed {
			out[i].RunAt = nil
		}
	}
	body := map[string]any{"deliveries": out}
	if next != 0 {
		body["next_cursor"] = strconv.FormatUint(next, 10)
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}

func (h *Handler) redeliver(w http.ResponseWriter, r *http.Request) error {
	svc, err := h.webhooks()
	if err != nil {
		return err
	}
	id, err := jobID(r)
	if err != nil {
		return err
	}
	if err := svc.Redeliver(r.Context(), id); err != nil {
		return webhookErr(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
