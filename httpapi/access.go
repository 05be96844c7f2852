package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/spoolq/spool/auth"
	"github.com/spoolq/spool/engine"
)

// access is what a route needs: a permission, and where the queue it applies to is found.
// Every route is registered with one (routes()); ServeHTTP refuses a route without, so a new
// route cannot skip authorization by accident (TestEveryRouteHasAccess).
type access struct {
	perm  auth.Perm
	scope scope
}

type scope int

const (
	// open: no token needed (health, metrics, the API document), unless
	// Options.ProtectMetrics.
	open scope = iota + 1
	// anyToken: any valid token.
	anyToken
	// onQueue: perm on the queue of the path's {queue}.
	onQueue
	// onJob: perm on the queue of the path's {id} job; a job outside the token's queues is
	// not found, as if it did not exist.
	onJob
	// someQueues: perm on some queue at the door; the handler checks each queue the request
	// names (a reservation's queues, a batch's jobs) and filters listings.
	someQueues
	// allQueues: perm on every queue (a grant "*"): schedules and tokens.
	allQueues
)

func (a access) valid() bool {
	return a.scope >= open && a.scope <= allQueues && (a.scope <= anyToken || a.perm != "")
}

// Errors of authentication and authorization. Neither names a queue the caller did not name.
var (
	errUnauthenticated = &apiError{Status: http.StatusUnauthorized, Code: "unauthenticated",
		Message: "a valid API token is required: send Authorization: Bearer <token>"}
	errNoRule = &apiError{Status: http.StatusForbidden, Code: "forbidden", Message: "this route has no access rule"}
)

func forbidden(perm auth.Perm, what string) error {
	return &apiError{Status: http.StatusForbidden, Code: "forbidden",
		Message: "the token lacks the " + string(perm) + " permission" + what}
}

// authorize authenticates r and checks what ServeHTTP can check before routing: everything
// but the queue, which only the handler's path values (or body) name. It returns r with the
// principal in its context, also with an error once the token is known (for the log).
func (h *Handler) authorize(r *http.Request, a access) (*http.Request, error) {
	if a.scope == open && !h.opts.ProtectMetrics {
		return r, nil
	}
	p, err := h.opts.Auth.Check(r)
	if errors.Is(err, auth.ErrUnauthenticated) {
		return r, errUnauthenticated
	}
	if err != nil {
		return r, err
	}
	if p != nil {
		r = r.WithContext(auth.NewContext(r.Context(), p))
	}
	switch a.scope {
	case open, anyToken:
	case allQueues:
		if !p.CanAll(a.perm) {
			return r, forbidden(a.perm, " on every queue (a grant on \"*\")")
		}
	default:
		if !p.CanSome(a.perm) {
			return r, forbidden(a.perm, "")
		}
	}
	return r, nil
}

// logRefusal records a refused request for the audit trail: by token id, never by secret.
// A request without a valid token is logged at debug level only (scanners would flood it).
func (h *Handler) logRefusal(r *http.Request, status int) {
	switch status {
	case http.StatusUnauthorized:
		h.log.Debug("request refused: no valid token", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
	case http.StatusForbidden:
		h.log.Info("request forbidden", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr,
			"token", auth.FromContext(r.Context()).Describe())
	}
}

// checkRoute does the queue part of a route's check, once the path values are known.
func (h *Handler) checkRoute(r *http.Request, a access) error {
	p := auth.FromContext(r.Context())
	switch a.scope {
	case onQueue:
		if q := r.PathValue("queue"); !p.Can(a.perm, q) {
			return forbidden(a.perm, " on queue "+strconv.Quote(q))
		}
	case onJob:
		if p.CanAll(a.perm) {
			return nil
		}
		id, err := jobID(r)
		if err != nil {
			return err
		}
		return h.checkJob(r.Context(), p, a.perm, id)
	}
	return nil
}

// checkJob refuses a job outside p's queues as not found: its existence is not the caller's
// to know.
func (h *Handler) checkJob(ctx context.Context, p *auth.Principal, perm auth.Perm, id uint64) error {
	if p.CanAll(perm) {
		return nil
	}
	q, err := h.eng.JobQueue(ctx, id)
	if err != nil {
		return err
	}
	if !p.Can(perm, q) {
		return engine.ErrJobNotFound
	}
	return nil
}
