package auth

import (
	"context"
	"net/http"
	"strings"
)

// The pieces every HTTP front (the native API, and later the SQS API and the dashboard)
// shares: where a request carries its token, and how the principal travels with it.

// FromRequest returns the token of a request: "Authorization: Bearer <token>", "" without.
func FromRequest(r *http.Request) string {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// Check authenticates a request: a nil principal and no error when authentication is off
// (s nil, or no token configured yet), ErrUnauthenticated for a missing or invalid token.
func (s *Service) Check(r *http.Request) (*Principal, error) {
	if s == nil || !s.Enabled() {
		return nil, nil
	}
	tok := FromRequest(r)
	if tok == "" {
		return nil, ErrUnauthenticated
	}
	return s.Authenticate(tok)
}

type principalKey struct{}

// NewContext returns ctx carrying p.
func NewContext(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the principal of ctx: nil (everything allowed) when none was set.
func FromContext(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}
