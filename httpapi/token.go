package httpapi

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/spoolq/spool"
	"github.com/spoolq/spool/auth"
)

var errNoTokens = &apiError{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "this server keeps no API tokens"}

func toToken(t *auth.Token) *spool.Token {
	out := &spool.Token{ID: t.ID, Name: t.Name, CreatedAt: t.CreatedAt, Grants: make([]spool.Grant, len(t.Grants))}
	for i, g := range t.Grants {
		out.Grants[i].Queues = g.Queues
		for _, p := range g.Perms {
			out.Grants[i].Perms = append(out.Grants[i].Perms, string(p))
		}
	}
	return out
}

func (h *Handler) listTokens(w http.ResponseWriter, r *http.Request) error {
	if h.opts.Auth == nil {
		return errNoTokens
	}
	ts := h.opts.Auth.List()
	out := make([]*spool.Token, len(ts))
	for i, t := range ts {
		out[i] = toToken(t)
	}
	writeJSON(w, http.StatusOK, map[string]any{"tokens": out})
	return nil
}

func (h *Handler) createToken(w http.ResponseWriter, r *http.Request) error {
	if h.opts.Auth == nil {
		return errNoTokens
	}
	var in struct {
		Name   string       `json:"name"`
		Grants []auth.Grant `json:"grants"`
	}
	if err := decode(w, r, &in, 64<<10); err != nil {
		return err
	}
	t, secret, err := h.opts.Auth.Create(r.Context(), in.Name, in.Grants)
	var ve *auth.ValidationError
	if errors.As(err, &ve) {
		return fieldErr(ve.Field, ve.Reason)
	}
	if err != nil {
		return err
	}
	out := toToken(t)
	out.Secret = secret
	h.log.Info("API token created", "id", t.ID, "name", strconv.Quote(t.Name), "by", auth.FromContext(r.Context()).Describe())
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func (h *Handler) revokeToken(w http.ResponseWriter, r *http.Request) error {
	if h.opts.Auth == nil {
		return errNoTokens
	}
	id := r.PathValue("token_id")
	err := h.opts.Auth.Revoke(r.Context(), id)
	if errors.Is(err, auth.ErrTokenNotFound) {
		return &apiError{Status: http.StatusNotFound, Code: "token_not_found", Message: "no token with id " + strconv.Quote(id)}
	}
	if err != nil {
		return err
	}
	h.log.Info("API token revoked", "id", id, "by", auth.FromContext(r.Context()).Describe())
	w.WriteHeader(http.StatusNoContent)
	return nil
}
