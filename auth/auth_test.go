package auth

import (
	"strings"
	"testing"
)

func TestGrantMatches(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pattern, queue string
		want           bool
	}{
		{"*", "anything", true},
		{"email", "email", true},
		{"email", "email2", false},
		{"email*", "email", true},
		{"email*", "email.low", true},
		{"email*", "emai", false},
		{"a/b*", "a/b/c", true},
	} {
		if got := (Grant{Queues: tc.pattern}).Matches(tc.queue); got != tc.want {
			t.Errorf("%q matches %q: %v, want %v", tc.pattern, tc.queue, got, tc.want)
		}
	}
}

func TestParseGrant(t *testing.T) {
	t.Parallel()
	g, err := ParseGrant("email*=enqueue, read,read")
	if err != nil || g.Queues != "email*" || len(g.Perms) != 2 || g.Perms[0] != Enqueue || g.Perms[1] != Read {
		t.Errorf("ParseGrant: %+v, %v", g, err)
	}
	for _, bad := range []string{"", "email", "=read", "email=", "email=write", "e*x=read", "-a=read", "a b=read"} {
		if _, err := ParseGrant(bad); err == nil {
			t.Errorf("ParseGrant(%q): no error", bad)
		}
	}
}

func TestPrincipal(t *testing.T) {
	t.Parallel()
	var anon *Principal
	if !anon.Can(Admin, "x") || !anon.CanAll(Admin) || !anon.CanSome(Work) {
		t.Error("a nil principal (no authentication) must be allowed everything")
	}
	p := &Principal{grants: []Grant{{Queues: "a*", Perms: []Perm{Read}}, {Queues: "*", Perms: []Perm{Enqueue}}}}
	checks := []struct {
		got, want bool
		what      string
	}{
		{p.Can(Read, "ab"), true, "read ab"},
		{p.Can(Read, "b"), false, "read b"},
		{p.Can(Enqueue, "b"), true, "enqueue b"},
		{p.Can(Work, "ab"), false, "work ab"},
		{p.CanSome(Read), true, "read some"},
		{p.CanSome(Admin), false, "admin some"},
		{p.CanAll(Read), false, "read all"},
		{p.CanAll(Enqueue), true, "enqueue all"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.what, c.got, c.want)
		}
	}
}

func TestSecrets(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 100 {
		id, secret, err := newSecret()
		if err != nil {
			t.Fatal(err)
		}
		got, ok := ParseSecret(secret)
		if !ok || got != id || seen[secret] {
			t.Fatalf("secret %q: id %q %v, want %q, unique", secret, got, ok, id)
		}
		seen[secret] = true
		if parseOK(secret[:len(secret)-1]) || parseOK(strings.ToUpper(secret)) {
			t.Fatalf("altered secret %q parsed", secret)
		}
	}
}

func parseOK(s string) bool { _, ok := ParseSecret(s); return ok }

func FuzzParseSecret(f *testing.F) {
	_, s, _ := newSecret()
	f.Add(s)
	f.Add("spool_")
	f.Add("spool_0123456789ab_")
	f.Fuzz(func(t *testing.T, s string) {
		id, ok := ParseSecret(s)
		if ok && (!strings.HasPrefix(s, secretPrefix+id+"_") || len(s) != len(secretPrefix)+12+1+43) {
			t.Fatalf("ParseSecret(%q) = %q, accepted a malformed secret", s, id)
		}
	})
}

func FuzzParseGrant(f *testing.F) {
	for _, s := range []string{"email*=enqueue,read", "*=admin", "a=", "=", "a/b$c=work"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		g, err := ParseGrant(s)
		if err != nil {
			return
		}
		if g.Validate() != nil || len(g.Perms) == 0 {
			t.Fatalf("ParseGrant(%q) = %+v: invalid grant accepted", s, g)
		}
		if !strings.HasPrefix(s, g.Queues+"=") {
			t.Fatalf("ParseGrant(%q) = %+v: pattern not the text before '='", s, g)
		}
	})
}
