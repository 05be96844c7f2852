package httpapi_test

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/spoolq/spool/auth"
	"github.com/spoolq/spool/httpapi"
)

const bootstrapSecret = "bootstrap-admin-secret-0123456789"

// newAuthServer is a server with authentication: a bootstrap admin token, debug logs.
func newAuthServer(t *testing.T, protectMetrics bool) *testServer {
	t.Helper()
	return newServerWith(t, 0, slog.LevelDebug, func(o *httpapi.Options, nc *nats.Conn) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		svc, err := auth.Open(ctx, nc, auth.Config{Bootstrap: bootstrapSecret, Logger: o.Logger})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(svc.Close)
		o.Auth, o.ProtectMetrics = svc, protectMetrics
	})
}

func bearer(token string) reqOpt {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }
}

// createToken makes a token through the API with the bootstrap token; it returns the secret
// and the id.
func (s *testServer) createToken(t *testing.T, grants ...map[string]any) (secret, id string) {
	t.Helper()
	a := s.must(t, http.StatusCreated, "POST", "/v1/tokens", map[string]any{"name": "test", "grants": grants}, bearer(bootstrapSecret))
	var out struct{ ID, Token string }
	a.into(t, &out)
	if out.Token == "" || out.ID == "" {
		t.Fatalf("%v: no token or id", a)
	}
	return out.Token, out.ID
}

func grant(queues string, perms ...string) map[string]any {
	return map[string]any{"queues": queues, "perms": perms}
}

// TestEveryRouteHasAccess: every route registered in routes() answers 401 without a token,
// but the open ones (health, metrics, the document); and they too with ProtectMetrics.
func TestEveryRouteHasAccess(t *testing.T) {
	t.Parallel()
	for _, protect := range []bool{false, true} {
		s := newAuthServer(t, protect)
		for _, route := range sourceRoutes(t) {
			method, path, _ := strings.Cut(route, " ")
			a, _ := s.send(t, method, probePath(path), nil)
			open := !protect && (path == "/healthz" || path == "/metrics" || path == "/v1/openapi.yaml")
			code, _ := a.apiErr()
			if open && a.status == http.StatusUnauthorized {
				t.Errorf("protect %v: %v: open route asks for a token", protect, a)
			}
			if !open && (a.status != http.StatusUnauthorized || code != "unauthenticated" || a.header.Get("WWW-Authenticate") == "") {
				t.Errorf("protect %v: %v: want 401 unauthenticated with WWW-Authenticate", protect, a)
			}
		}
	}
}

// TestPermissions is the table of requests × tokens: each permission allows exactly what it
// names; a request without a token, with a garbage or a revoked one is 401; a token without
// the permission is 403 forbidden; nothing of a queue outside the token's grants shows.
func TestPermissions(t *testing.T) {
	t.Parallel()
	s := newAuthServer(t, false)
	boot := bearer(bootstrapSecret)
	// a1 is the tokens' queue; zsecret is another, whose name must never show.
	job := func(queue string) string {
		var j struct{ ID string }
		s.must(t, http.StatusCreated, "POST", "/v1/queues/"+queue+"/jobs", map[string]any{"type": "t", "payload": 1}, boot).into(t, &j)
		return j.ID
	}
	j1, j2, hidden := job("a1"), job("a1"), job("zsecret")

	tokens := map[string]string{}
	for _, p := range []string{"enqueue", "work", "read", "admin"} {
		tokens[p], _ = s.createToken(t, grant("a*", p))
	}
	type req struct {
		perm         string // "" : needs a grant on "*"
		method, path string
		body         any
	}
	lease := map[string]any{"lease_token": "1"}
	reqs := []req{
		{"enqueue", "POST", "/v1/queues/a1/jobs", map[string]any{"type": "t"}},
		{"work", "POST", "/v1/queues/a1/reserve", map[string]any{"wait": 0}},
		{"work", "POST", "/v1/reserve", map[string]any{"queues": []string{"a1"}, "wait": 0}},
		{"work", "DELETE", "/v1/reserve/p1", nil},
		{"work", "POST", "/v1/ack", map[string]any{"acks": []map[string]any{{"id": j1, "lease_token": "1"}}}},
		{"work", "POST", "/v1/jobs/" + j1 + "/ack", lease},
		{"work", "POST", "/v1/jobs/" + j1 + "/fail", lease},
		{"work", "POST", "/v1/jobs/" + j1 + "/touch", lease},
		{"work", "POST", "/v1/jobs/" + j1 + "/release", lease},
		{"work", "POST", "/v1/jobs/" + j1 + "/bury", lease},
		{"read", "GET", "/v1/jobs/" + j1, nil},
		{"read", "GET", "/v1/queues/a1/jobs", nil},
		{"read", "GET", "/v1/queues/a1", nil},
		{"read", "GET", "/v1/queues", nil},
		{"read", "GET", "/v1/stats", nil},
		{"admin", "PUT", "/v1/queues/a1", map[string]any{"max_attempts": 5}},
		{"admin", "POST", "/v1/queues/a1/pause", nil},
		{"admin", "POST", "/v1/queues/a1/resume", nil},
		{"admin", "POST", "/v1/queues/a1/kick", nil},
		{"admin", "POST", "/v1/queues/a2/purge", nil},
		{"admin", "DELETE", "/v1/queues/a2", nil},
		{"admin", "POST", "/v1/jobs/" + j2 + "/kick", nil},
		{"admin", "DELETE", "/v1/jobs/" + j2, nil},
		{"", "GET", "/v1/schedules", nil},
		{"", "GET", "/v1/schedules/nightly", nil},
		{"", "POST", "/v1/schedules/nightly/pause", nil},
		{"", "GET", "/v1/tokens", nil},
		{"", "POST", "/v1/tokens", map[string]any{"grants": []any{grant("a1", "read")}}},
		{"", "DELETE", "/v1/tokens/000000000000", nil},
	}
	for _, r := range reqs {
		for perm, tok := range tokens {
			a := s.do(t, r.method, r.path, r.body, bearer(tok))
			code, _ := a.apiErr()
			denied := a.status == http.StatusForbidden
			if denied && code != "forbidden" {
				t.Errorf("%v: 403 with code %q", a, code)
			}
			if want := perm == r.perm; denied == want || a.status == http.StatusUnauthorized {
				t.Errorf("token with %s: %v; want allowed %v", perm, a, want)
			}
			if strings.Contains(string(a.raw), "zsecret") {
				t.Errorf("token with %s: %v: names a queue outside its grants", perm, a)
			}
		}
		for name, opt := range map[string]reqOpt{"no token": func(*http.Request) {}, "garbage": bearer("spool_000000000000_x"),
			"wrong scheme": func(r *http.Request) { r.Header.Set("Authorization", "Basic "+bootstrapSecret) }} {
			if code, _ := s.do(t, r.method, r.path, r.body, opt).apiErr(); code != "unauthenticated" {
				t.Errorf("%s: %s %s: code %q, want unauthenticated", name, r.method, r.path, code)
			}
		}
	}

	// Out of scope: a job of zsecret is not found, exactly as a job that does not exist.
	read := bearer(tokens["read"])
	missing := s.do(t, "GET", "/v1/jobs/4503599627370497", nil, read)
	got := s.do(t, "GET", "/v1/jobs/"+hidden, nil, read)
	if got.status != http.StatusNotFound || string(got.raw) != string(missing.raw) {
		t.Errorf("a job of another queue: %v; want the answer of a missing job: %v", got, missing)
	}
	s.wantErr(t, http.StatusNotFound, "job_not_found", "", "DELETE", "/v1/jobs/"+hidden, nil, bearer(tokens["admin"]))
	s.wantErr(t, http.StatusNotFound, "job_not_found", "", "POST", "/v1/jobs/"+hidden+"/ack", lease, bearer(tokens["work"]))
	var batch struct {
		Results []struct{ Error *struct{ Code string } }
	}
	s.must(t, http.StatusOK, "POST", "/v1/ack", map[string]any{"acks": []map[string]any{
		{"id": hidden, "lease_token": "1"}, {"id": j1, "lease_token": "1"}}}, bearer(tokens["work"])).into(t, &batch)
	if len(batch.Results) != 2 || batch.Results[0].Error == nil || batch.Results[0].Error.Code != "job_not_found" ||
		batch.Results[1].Error == nil || batch.Results[1].Error.Code != "lease_lost" {
		t.Errorf("ack batch across scopes: %+v; want job_not_found then lease_lost", batch.Results)
	}
	s.wantErr(t, http.StatusForbidden, "forbidden", "", "POST", "/v1/reserve", map[string]any{"queues": []string{"a1", "zsecret"}}, bearer(tokens["work"]))
	s.wantErr(t, http.StatusForbidden, "forbidden", "", "GET", "/v1/queues/zsecret", nil, read)
	var list struct{ Queues []struct{ Name string } }
	s.must(t, http.StatusOK, "GET", "/v1/queues?limit=1", nil, read).into(t, &list)
	if len(list.Queues) != 1 || list.Queues[0].Name != "a1" {
		t.Errorf("queues of the read token: %+v, want a1 only", list.Queues)
	}
	list.Queues = nil
	s.must(t, http.StatusOK, "GET", "/v1/queues?prefix=z", nil, read).into(t, &list)
	if len(list.Queues) != 0 {
		t.Errorf("queues of the read token starting with z: %+v, want none (zsecret is not its)", list.Queues)
	}
	var stats struct{ Queues int }
	s.must(t, http.StatusOK, "GET", "/v1/stats", nil, read).into(t, &stats)
	if stats.Queues != 1 {
		t.Errorf("stats of the read token count %d queues, want 1", stats.Queues)
	}
	// The bootstrap token sees everything.
	if a := s.must(t, http.StatusOK, "GET", "/v1/queues", nil, boot); !strings.Contains(string(a.raw), "zsecret") {
		t.Errorf("the bootstrap token does not see zsecret: %v", a)
	}

	// Revoked: 401 at once.
	sec, id := s.createToken(t, grant("*", "read"))
	s.must(t, http.StatusOK, "GET", "/v1/stats", nil, bearer(sec))
	s.must(t, http.StatusNoContent, "DELETE", "/v1/tokens/"+id, nil, boot)
	s.wantErr(t, http.StatusUnauthorized, "unauthenticated", "", "GET", "/v1/stats", nil, bearer(sec))
	s.wantErr(t, http.StatusNotFound, "token_not_found", "", "DELETE", "/v1/tokens/"+id, nil, boot)

	// No secret in the logs, whatever was logged at debug level.
	logs := s.logs.String()
	for _, secret := range append([]string{bootstrapSecret, sec}, tokens["enqueue"], tokens["work"], tokens["read"], tokens["admin"]) {
		if strings.Contains(logs, secret) || strings.Contains(logs, secret[len(secret)-20:]) {
			t.Errorf("a token's secret is in the server log")
		}
	}
	if !strings.Contains(logs, "request forbidden") || !strings.Contains(logs, "request refused: no valid token") {
		t.Errorf("refusals are not logged:\n%s", logs)
	}
	if !strings.Contains(logs, "API token revoked") {
		t.Errorf("no log of the revocation:\n%s", logs)
	}
}

// TestTokenValidation: bad grants are 400 invalid_argument naming the field.
func TestTokenValidation(t *testing.T) {
	t.Parallel()
	s := newAuthServer(t, false)
	boot := bearer(bootstrapSecret)
	for _, tc := range []struct {
		body  any
		field string
	}{
		{map[string]any{"grants": []any{}}, "grants"},
		{map[string]any{"grants": []any{grant("a*b", "read")}}, "grants[0]"},
		{map[string]any{"grants": []any{grant("a", "delete")}}, "grants[0]"},
		{map[string]any{"grants": []any{grant("a")}}, "grants[0]"},
		{map[string]any{"name": strings.Repeat("n", 201), "grants": []any{grant("a", "read")}}, "name"},
	} {
		s.wantErr(t, http.StatusBadRequest, "invalid_argument", tc.field, "POST", "/v1/tokens", tc.body, boot)
	}
	var list struct{ Tokens []map[string]any }
	s.must(t, http.StatusOK, "GET", "/v1/tokens", nil, boot).into(t, &list)
	if len(list.Tokens) != 0 {
		t.Errorf("tokens after refused creations: %v", list.Tokens)
	}
}
