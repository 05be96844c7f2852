// Package auth holds spool's API tokens and answers what a token may do: each token carries
// permissions (enqueue, work, read, admin) per queue pattern. Tokens are kept hashed in a
// JetStream KV bucket shared by every node, and in memory on each node (a watch keeps the copy
// current), so a check costs no round trip. Every front asks the same questions through
// Principal; httpapi's middleware is one user.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spoolq/spool/engine"
)

// Perm is a permission on the queues of a grant.
type Perm string

// The permissions. Each allows exactly the operations listed.
const (
	// Enqueue: add jobs (POST /v1/queues/{queue}/jobs).
	Enqueue Perm = "enqueue"
	// Work: reserve jobs and answer them (ack, fail, touch, release, bury).
	Work Perm = "work"
	// Read: look at jobs and queues (peek, job status, queue and server statistics).
	Read Perm = "read"
	// Admin: change queues and their jobs (pause, resume, kick, purge, delete, queue
	// settings). Admin on every queue ("*") also manages schedules and tokens.
	Admin Perm = "admin"
)

// Perms lists every permission.
var Perms = []Perm{Enqueue, Work, Read, Admin}

func (p Perm) valid() bool { return slices.Contains(Perms, p) }

// AllQueues is the pattern that matches every queue.
const AllQueues = "*"

// Grant gives permissions on the queues its pattern matches: a queue name, or a prefix
// followed by "*" ("email*" matches "email" and "email.low"; "*" matches every queue). "*"
// is in no queue name, so a pattern is never ambiguous.
type Grant struct {
	Queues string `json:"queues"`
	Perms  []Perm `json:"perms"`
}

// Matches tells whether the grant's pattern matches queue.
func (g Grant) Matches(queue string) bool {
	if prefix, ok := strings.CutSuffix(g.Queues, "*"); ok {
		return strings.HasPrefix(queue, prefix)
	}
	return g.Queues == queue
}

// Validate checks the pattern and the permissions.
func (g Grant) Validate() error {
	if g.Queues != AllQueues {
		name := strings.TrimSuffix(g.Queues, "*")
		if err := engine.ValidateQueueName(name); err != nil {
			var ve *engine.ValidationError
			if errors.As(err, &ve) {
				return fmt.Errorf("queue pattern %q: %s (a queue name, or a prefix followed by *)", g.Queues, ve.Reason)
			}
			return err
		}
	}
	if len(g.Perms) == 0 {
		return fmt.Errorf("queue pattern %q: no permission (want some of enqueue, work, read, admin)", g.Queues)
	}
	for _, p := range g.Perms {
		if !p.valid() {
			return fmt.Errorf("permission %q: want enqueue, work, read or admin", p)
		}
	}
	return nil
}

// ParseGrant reads a grant written PATTERN=PERM[,PERM...], e.g. "email*=enqueue,read".
func ParseGrant(s string) (Grant, error) {
	pattern, perms, ok := strings.Cut(s, "=")
	if !ok {
		return Grant{}, fmt.Errorf("grant %q: want QUEUE_PATTERN=PERM[,PERM...], e.g. email*=enqueue,read", s)
	}
	g := Grant{Queues: pattern}
	for _, p := range strings.Split(perms, ",") {
		if p = strings.TrimSpace(p); p != "" && !slices.Contains(g.Perms, Perm(p)) {
			g.Perms = append(g.Perms, Perm(p))
		}
	}
	if err := g.Validate(); err != nil {
		return Grant{}, err
	}
	return g, nil
}

// Token is a stored API token: its public id, a name, its grants and the SHA-256 of its
// secret. The secret itself is shown once, at creation, and never stored.
type Token struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Grants    []Grant   `json:"grants"`
	CreatedAt time.Time `json:"created_at"`
	// Hash is the hex SHA-256 of the secret. A plain hash suffices: the secret is 256
	// random bits, so guessing it from its hash is as hopeless as guessing it; a slow
	// password hash would only add its cost to every request.
	Hash string `json:"hash"`
}

// Limits of a token's fields.
const (
	MaxName   = 200
	MaxGrants = 100
)

// secretPrefix starts every token secret: it makes a leaked token easy to recognise (secret
// scanners) and tells it apart from other bearer tokens.
const secretPrefix = "spool_"

// newSecret returns a fresh token id and secret "spool_<id>_<random>": the id (public, 12
// hex digits) finds the stored token; the random part is 32 bytes from crypto/rand.
func newSecret() (id, secret string, err error) {
	b := make([]byte, 6+32)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("auth: random: %w", err)
	}
	id = hex.EncodeToString(b[:6])
	return id, secretPrefix + id + "_" + base64.RawURLEncoding.EncodeToString(b[6:]), nil
}

// ParseSecret returns the token id of a secret made by spool, ok false for anything else.
func ParseSecret(secret string) (id string, ok bool) {
	rest, ok := strings.CutPrefix(secret, secretPrefix)
	if !ok {
		return "", false
	}
	id, random, ok := strings.Cut(rest, "_")
	if !ok || len(id) != 12 || len(random) != 43 {
		return "", false
	}
	if _, err := hex.DecodeString(id); err != nil || strings.ToLower(id) != id {
		return "", false
	}
	if _, err := base64.RawURLEncoding.DecodeString(random); err != nil {
		return "", false
	}
	return id, true
}

func hashSecret(secret string) [32]byte { return sha256.Sum256([]byte(secret)) }

// equalHash compares two hashes in constant time.
func equalHash(a, b [32]byte) bool { return subtle.ConstantTimeCompare(a[:], b[:]) == 1 }

// Principal is who a request acts as: a token's grants. A nil *Principal stands for a
// server without authentication, and may do everything.
type Principal struct {
	// ID is the token's id ("bootstrap" for the bootstrap admin token); Name its name.
	ID, Name string
	grants   []Grant
}

// Can tells whether p has perm on queue.
func (p *Principal) Can(perm Perm, queue string) bool {
	return p.anyGrant(perm, func(g Grant) bool { return g.Matches(queue) })
}

// CanSome tells whether p has perm on at least one queue pattern: what a request that
// names its queues later (in its body, or by job id) needs to go further.
func (p *Principal) CanSome(perm Perm) bool {
	return p.anyGrant(perm, func(Grant) bool { return true })
}

// CanAll tells whether p has perm on every queue (a grant "*"): what the operations that are
// not about one queue (schedules, tokens) need.
func (p *Principal) CanAll(perm Perm) bool {
	return p.anyGrant(perm, func(g Grant) bool { return g.Queues == AllQueues })
}

// anyGrant tells whether a grant of p with perm satisfies ok; a nil p may do everything.
func (p *Principal) anyGrant(perm Perm, ok func(Grant) bool) bool {
	if p == nil {
		return true
	}
	for _, g := range p.grants {
		if slices.Contains(g.Perms, perm) && ok(g) {
			return true
		}
	}
	return false
}

// Describe names p for logs (its id and name, never a secret); "anonymous" for nil.
func (p *Principal) Describe() string {
	if p == nil {
		return "anonymous"
	}
	return p.ID + " (" + p.Name + ")"
}
