package spool

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// Permissions of an API token's grant.
const (
	PermEnqueue = "enqueue" // add jobs
	PermWork    = "work"    // reserve jobs, and ack, fail, touch, release or bury them
	PermRead    = "read"    // peek, job status, queue and server statistics
	PermAdmin   = "admin"   // pause, resume, kick, purge, delete, queue settings; on "*" also schedules and tokens
)

// Grant gives an API token permissions on the queues a pattern matches: a queue name, or a
// prefix followed by "*" ("email*"; "*" is every queue).
type Grant struct {
	Queues string   `json:"queues"`
	Perms  []string `json:"perms"`
}

// Token is an API token as the server describes it. Secret is set only in the answer of
// CreateToken: the server keeps a hash and cannot show it again. Its JSON form is the wire
// format of the token routes.
type Token struct {
	ID        string    `json:"id"`
	Name      string    `json:"name,omitempty"`
	Grants    []Grant   `json:"grants"`
	CreatedAt time.Time `json:"created_at"`
	Secret    string    `json:"token,omitempty"`
}

// CreateToken makes an API token with grants (admin on "*" needed). Keep the returned
// Token.Secret: it is shown this once.
func (c *Client) CreateToken(ctx context.Context, name string, grants []Grant) (*Token, error) {
	var t Token
	body := map[string]any{"name": name, "grants": grants}
	if err := c.do(ctx, request{method: http.MethodPost, path: "/v1/tokens", body: body, out: &t}); err != nil {
		return nil, fmt.Errorf("spool: create token: %w", err)
	}
	return &t, nil
}

// Tokens lists the API tokens, without their secrets (admin on "*" needed).
func (c *Client) Tokens(ctx context.Context) ([]*Token, error) {
	var out struct {
		Tokens []*Token `json:"tokens"`
	}
	if err := c.do(ctx, request{method: http.MethodGet, path: "/v1/tokens", out: &out}); err != nil {
		return nil, fmt.Errorf("spool: tokens: %w", err)
	}
	return out.Tokens, nil
}

// RevokeToken deletes the API token with id: every server refuses it from then on.
func (c *Client) RevokeToken(ctx context.Context, id string) error {
	if err := c.do(ctx, request{method: http.MethodDelete, path: "/v1/tokens/" + url.PathEscape(id)}); err != nil {
		return fmt.Errorf("spool: revoke token %s: %w", id, err)
	}
	return nil
}
