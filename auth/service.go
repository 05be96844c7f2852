package auth

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/spoolq/spool/internal/jsasset"
)

// Bucket is the KV bucket of the tokens: token id -> Token (JSON, secret hashed).
const Bucket = "spool_tokens"

// requiredKey marks, in the bucket, that authentication was turned on: a node started after
// the last token was revoked still requires one. Token ids are hex, so no token has this key.
const requiredKey = "_required"

// MinBootstrapLen is the shortest bootstrap token accepted.
const MinBootstrapLen = 16

// Errors of the Service.
var (
	// ErrUnauthenticated: no token, or one that is not (or no longer) valid.
	ErrUnauthenticated = errors.New("auth: missing, unknown or revoked token")
	// ErrTokenNotFound: no token with that id.
	ErrTokenNotFound = errors.New("auth: no such token")
)

// Config configures a Service.
type Config struct {
	// Bootstrap is a secret that acts as an admin of everything, kept in memory only (from
	// SPOOL_ADMIN_TOKEN or a file). At least MinBootstrapLen bytes. Empty: none.
	Bootstrap string
	// Replicas of the bucket. Default 1.
	Replicas int
	Logger   *slog.Logger
}

// Service checks and manages tokens. It is safe for concurrent use.
type Service struct {
	kv        jetstream.KeyValue
	log       *slog.Logger
	bootstrap *[32]byte

	mu     sync.RWMutex
	tokens map[string]*Token
	// revoked ids: a late watch event of a revoked token must not bring it back (ids are
	// random and never reused).
	revoked map[string]bool

	// enabled: authentication is required. It turns on with a bootstrap token or the first
	// token, and stays on: revoking the last token must not open the server.
	enabled atomic.Bool

	cancel context.CancelFunc
	watch  jetstream.KeyWatcher
	done   chan struct{}
}

// Open prepares the bucket, loads the tokens and follows their changes until Close.
func Open(ctx context.Context, nc *nats.Conn, cfg Config) (*Service, error) {
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Service{log: cfg.Logger, tokens: make(map[string]*Token), revoked: make(map[string]bool), done: make(chan struct{})}
	if cfg.Bootstrap != "" {
		if len(cfg.Bootstrap) < MinBootstrapLen {
			return nil, fmt.Errorf("auth: the bootstrap admin token is shorter than %d bytes", MinBootstrapLen)
		}
		h := hashSecret(cfg.Bootstrap)
		s.bootstrap = &h
		s.enabled.Store(true)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("auth: jetstream: %w", err)
	}
	// Retried and race-free across nodes, never lowering replicas (jsasset).
	s.kv, err = jsasset.KeyValue(ctx, js, cfg.Logger, jetstream.KeyValueConfig{
		Bucket: Bucket, Description: "spool API tokens (hashed)", History: 1,
		Storage: jetstream.FileStorage, Replicas: cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("auth: create %s bucket: %w", Bucket, err)
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	if s.watch, err = s.kv.WatchAll(wctx); err != nil {
		cancel()
		return nil, fmt.Errorf("auth: watch %s: %w", Bucket, err)
	}
	// The initial values end with a nil entry; later ones are changes.
	for loaded := false; !loaded; {
		select {
		case ent, ok := <-s.watch.Updates():
			if !ok {
				cancel()
				return nil, errors.New("auth: token watch closed")
			}
			if ent == nil {
				loaded = true
				continue
			}
			s.apply(ent)
		case <-ctx.Done():
			s.watch.Stop()
			cancel()
			return nil, fmt.Errorf("auth: load tokens: %w", ctx.Err())
		}
	}
	go s.follow()
	return s, nil
}

func (s *Service) follow() {
	defer close(s.done)
	for ent := range s.watch.Updates() {
		if ent != nil {
			s.apply(ent)
		}
	}
}

func (s *Service) apply(ent jetstream.KeyValueEntry) {
	if ent.Key() == requiredKey {
		s.enabled.Store(true)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ent.Operation() != jetstream.KeyValuePut {
		delete(s.tokens, ent.Key())
		s.revoked[ent.Key()] = true
		return
	}
	if s.revoked[ent.Key()] {
		return
	}
	t := new(Token)
	if err := json.Unmarshal(ent.Value(), t); err != nil || t.ID != ent.Key() {
		s.log.Error("malformed token entry ignored", "id", ent.Key(), "err", err)
		return
	}
	s.tokens[t.ID] = t
	s.enabled.Store(true)
}

// Close stops following changes.
func (s *Service) Close() {
	s.cancel()
	s.watch.Stop()
	<-s.done
}

// Enabled tells whether requests must carry a token: once a bootstrap token is configured or
// a token exists.
func (s *Service) Enabled() bool { return s.enabled.Load() }

// Authenticate returns the principal of a secret, ErrUnauthenticated if it is no valid
// token. It compares hashes in constant time, and reads memory only.
func (s *Service) Authenticate(secret string) (*Principal, error) {
	h := hashSecret(secret)
	if s.bootstrap != nil && equalHash(h, *s.bootstrap) {
		return &Principal{ID: "bootstrap", Name: "bootstrap admin token", grants: []Grant{{Queues: AllQueues, Perms: Perms}}}, nil
	}
	id, ok := ParseSecret(secret)
	if !ok {
		return nil, ErrUnauthenticated
	}
	s.mu.RLock()
	t := s.tokens[id]
	s.mu.RUnlock()
	if t == nil {
		return nil, ErrUnauthenticated
	}
	var stored [32]byte
	if b, err := hex.DecodeString(t.Hash); err != nil || len(b) != len(stored) {
		return nil, ErrUnauthenticated
	} else {
		copy(stored[:], b)
	}
	if !equalHash(h, stored) {
		return nil, ErrUnauthenticated
	}
	return &Principal{ID: t.ID, Name: t.Name, grants: t.Grants}, nil
}

// ValidationError is a token request that cannot be honoured as given.
type ValidationError struct{ Field, Reason string }

func (e *ValidationError) Error() string { return e.Field + ": " + e.Reason }

// Create stores a new token with grants and returns it with its secret, which is shown this
// once. Authentication is required from then on.
func (s *Service) Create(ctx context.Context, name string, grants []Grant) (*Token, string, error) {
	if len(name) > MaxName {
		return nil, "", &ValidationError{"name", fmt.Sprintf("longer than %d bytes", MaxName)}
	}
	if strings.ContainsFunc(name, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return nil, "", &ValidationError{"name", "control characters not allowed"}
	}
	if len(grants) == 0 || len(grants) > MaxGrants {
		return nil, "", &ValidationError{"grants", fmt.Sprintf("a token holds 1 to %d grants", MaxGrants)}
	}
	for i, g := range grants {
		if err := g.Validate(); err != nil {
			return nil, "", &ValidationError{fmt.Sprintf("grants[%d]", i), err.Error()}
		}
	}
	id, secret, err := newSecret()
	if err != nil {
		return nil, "", err
	}
	if !s.enabled.Load() {
		if _, err := s.kv.Put(ctx, requiredKey, []byte("1")); err != nil {
			return nil, "", fmt.Errorf("auth: mark authentication required: %w", err)
		}
	}
	h := hashSecret(secret)
	t := &Token{ID: id, Name: name, Grants: slices.Clone(grants), CreatedAt: time.Now().UTC().Truncate(time.Second), Hash: hex.EncodeToString(h[:])}
	b, err := json.Marshal(t)
	if err != nil {
		return nil, "", err
	}
	if _, err := s.kv.Create(ctx, id, b); err != nil {
		return nil, "", fmt.Errorf("auth: store token: %w", err)
	}
	// Known here at once, whatever the watch's delay.
	s.mu.Lock()
	s.tokens[id] = t
	s.mu.Unlock()
	s.enabled.Store(true)
	return t, secret, nil
}

// List returns the tokens (without secrets), oldest first.
func (s *Service) List() []*Token {
	s.mu.RLock()
	out := make([]*Token, 0, len(s.tokens))
	for _, t := range s.tokens {
		out = append(out, t)
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b *Token) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// Revoke deletes a token: it is refused from then on, on this node at once and on the others
// as soon as their watch delivers the change (milliseconds).
func (s *Service) Revoke(ctx context.Context, id string) error {
	s.mu.RLock()
	_, ok := s.tokens[id]
	s.mu.RUnlock()
	if !ok {
		return ErrTokenNotFound
	}
	if err := s.kv.Purge(ctx, id); err != nil {
		return fmt.Errorf("auth: revoke token: %w", err)
	}
	s.mu.Lock()
	delete(s.tokens, id)
	s.revoked[id] = true
	s.mu.Unlock()
	return nil
}
