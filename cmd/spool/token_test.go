package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/spoolq/spool/internal/spooltest"
	"github.com/spoolq/spool/internal/testcert"
	"github.com/spoolq/spool/server"
)

const testAdminToken = "cli-admin-token-0123456789abcdef"

// spoolEnv runs the program with environment variables.
func spoolEnv(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(""), &out, &errOut, func(k string) string { return env[k] })
	return result{out.String(), errOut.String(), code}
}

// TestTokenCommands: over TLS, the admin token from $SPOOL_TOKEN creates, lists and revokes a
// token that a producer then uses with --token.
func TestTokenCommands(t *testing.T) {
	t.Parallel()
	ca := testcert.NewCA(t, "cli CA")
	dir := t.TempDir()
	cert, key := ca.Issue(t, "node").Write(t, dir, "node")
	caFile := ca.WriteCA(t, dir, "ca")
	srv := spooltest.Start(t, func(c *server.Config) {
		c.TLSCert, c.TLSKey, c.AdminToken = cert, key, testAdminToken
	})
	url := srv.URL
	admin := map[string]string{"SPOOL_SERVER": url, "SPOOL_TOKEN": testAdminToken, "SPOOL_CA_FILE": caFile}
	anon := map[string]string{"SPOOL_SERVER": url, "SPOOL_CA_FILE": caFile}

	r := spoolEnv(t, admin, "token", "create", "--name", "mailer", "--grant", "mail*=enqueue", "--grant", "mail=read")
	secret := strings.TrimSpace(r.stdout)
	if r.code != 0 || !strings.HasPrefix(secret, "spool_") || !strings.Contains(r.stderr, "shown this once") {
		t.Fatalf("token create: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r = spoolEnv(t, admin, "token", "list", "--json")
	var list struct {
		Tokens []struct {
			ID, Name string
			Token    string
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list.Tokens) != 1 || list.Tokens[0].Name != "mailer" || list.Tokens[0].Token != "" {
		t.Fatalf("token list --json: %q (%v)", r.stdout, err)
	}
	id := list.Tokens[0].ID
	if r := spoolEnv(t, admin, "token", "list"); r.code != 0 || !strings.Contains(r.stdout, "mail*=enqueue mail=read") || strings.Contains(r.stdout, secret) {
		t.Errorf("token list: %q", r.stdout)
	}

	if r := spoolEnv(t, anon, "enqueue", "mail", "--type", "t", "--token", secret); r.code != 0 {
		t.Errorf("enqueue with the token: exit %d, %s", r.code, r.stderr)
	}
	if r := spoolEnv(t, anon, "enqueue", "billing", "--type", "t", "--token", secret, "--json"); r.code != 1 || !strings.Contains(r.stderr, `"forbidden"`) {
		t.Errorf("enqueue outside the grant: exit %d, %s", r.code, r.stderr)
	}
	if r := spoolEnv(t, anon, "stats", "--json"); r.code != 1 || !strings.Contains(r.stderr, `"unauthenticated"`) {
		t.Errorf("stats without a token: exit %d, %s", r.code, r.stderr)
	}
	if r := spoolEnv(t, map[string]string{"SPOOL_SERVER": url}, "stats", "--token", secret); r.code != 1 || !strings.Contains(r.stderr, "certificate") {
		t.Errorf("without the CA file: exit %d, %s", r.code, r.stderr)
	}
	if r := spoolEnv(t, admin, "token", "revoke", id); r.code != 0 {
		t.Fatalf("token revoke: exit %d, %s", r.code, r.stderr)
	}
	if r := spoolEnv(t, anon, "enqueue", "mail", "--type", "t", "--token", secret, "--json"); r.code != 1 || !strings.Contains(r.stderr, `"unauthenticated"`) {
		t.Errorf("enqueue with a revoked token: exit %d, %s", r.code, r.stderr)
	}
	if r := spoolEnv(t, admin, "token", "revoke", id, "--json"); r.code != 1 || !strings.Contains(r.stderr, `"token_not_found"`) {
		t.Errorf("revoke twice: exit %d, %s", r.code, r.stderr)
	}

	// Usage errors, and no secret in help.
	for _, args := range [][]string{
		{"token", "create"}, {"token", "create", "--grant", "mail"}, {"token", "create", "--grant", "mail=write"}, {"token", "revoke"},
		{"serve", "--admin-token-file", dir + "/missing"}, {"serve", "--token", "x"}, {"stats", "--client-cert", cert},
	} {
		if r := spoolEnv(t, admin, args...); r.code != 2 {
			t.Errorf("spool %s: exit %d, want 2 (%s)", strings.Join(args, " "), r.code, r.stderr)
		}
	}
	for _, args := range [][]string{{"--help"}, {"serve", "--help"}, {"token", "create", "--help"}} {
		if r := spoolEnv(t, map[string]string{"SPOOL_TOKEN": testAdminToken, "SPOOL_ADMIN_TOKEN": testAdminToken}, args...); strings.Contains(r.stdout+r.stderr, testAdminToken) {
			t.Errorf("spool %s shows the token", strings.Join(args, " "))
		}
	}
}
