// Package webhook tells HTTP endpoints about job outcomes: subscriptions (hooks) per queue,
// job type and event kinds, and the callback URL a job was enqueued with. Every node runs
// the same Service: a dispatcher reads the lifecycle events through one durable consumer
// shared by the nodes and turns each matching event into a delivery, which is itself a
// spool job in the internal queue "_webhooks"; workers on every node POST the deliveries,
// signed (spool.SignWebhook), and retry them with the queue's backoff until their attempts
// are used up: the delivery is then buried (dead), listed and redelivered by a kick. So
// deliveries survive the loss of a node, and a slow or failing endpoint holds up only its
// own deliveries, never job processing.
package webhook

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/spoolq/spool/engine"
	"github.com/spoolq/spool/internal/jsasset"
)

// Queue is the internal queue of deliveries. Its lifecycle events are off.
const Queue = "_webhooks"

// Bucket is the KV bucket of hooks (and the callback secret).
const Bucket = "spool_hooks"

const (
	callbackSecretKey = "_callback_secret"
	consumerName      = "spool-webhooks"
	// MaxHooks bounds the hooks of a cluster.
	MaxHooks = 1000
)

// CallbackKinds are the events sent to a job's callback URL: its outcomes.
var CallbackKinds = []engine.EventKind{engine.EventSucceeded, engine.EventFailed, engine.EventBuried, engine.EventCancelled}

// Hook is a subscription: events of Kinds, of jobs in Queue (all when empty) of Type (all
// when empty), POSTed to URL.
type Hook struct {
	ID        string             `json:"id"`
	URL       string             `json:"url"`
	Queue     string             `json:"queue,omitempty"`
	Type      string             `json:"type,omitempty"`
	Kinds     []engine.EventKind `json:"kinds"`
	Secret    string             `json:"secret,omitempty"` // signs deliveries; shown at creation only
	CreatedAt time.Time          `json:"created_at"`
}

func (h *Hook) matches(ev *engine.Event) bool {
	return (h.Queue == "" || h.Queue == ev.Queue) && (h.Type == "" || h.Type == ev.Type) && slices.Contains(h.Kinds, ev.Kind)
}

// Config configures a Service. Zero values take the defaults noted.
type Config struct {
	Replicas int
	Logger   *slog.Logger
	// Workers POST deliveries at once on this node. Default 8.
	Workers int
	// Timeout bounds one POST. Default 10s.
	Timeout time.Duration
	// MaxAttempts of a delivery before it is dead, and the backoff between them, doubling
	// from BackoffBase up to an hour (with ±20% jitter). Default 12 and 10s: a delivery
	// is retried for about 5 hours.
	MaxAttempts int
	BackoffBase time.Duration
	// Client sends the POSTs. Default an http.Client that follows no redirect, uses no
	// proxy and never dials a link-local address (nor, with DenyPrivate, a loopback or
	// private one).
	Client *http.Client
	// DenyPrivate refuses deliveries to loopback and private addresses too: for a server
	// whose enqueuers are not trusted with its network. Only for the default Client.
	DenyPrivate bool
	// Node names this node's delivery workers.
	Node string
}

func (c *Config) setDefaults() {
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Workers <= 0 {
		c.Workers = 8
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 12
	}
	if c.BackoffBase <= 0 {
		c.BackoffBase = 10 * time.Second
	}
	if c.Client == nil {
		c.Client = guardedClient(c.Timeout, c.DenyPrivate)
	}
}

// Service manages hooks and runs this node's dispatcher and delivery workers.
type Service struct {
	cfg Config
	log *slog.Logger
	eng *engine.Engine
	kv  jetstream.KeyValue

	wake       chan struct{} // a delivery was enqueued here, or one finished
	queueReady atomic.Bool   // the deliveries' queue has its settings (ensureQueue)

	mu       sync.RWMutex
	hooks    map[string]*Hook
	changed  chan struct{} // closed and replaced when the hooks change
	cbSecret []byte

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// Open starts the webhook service of a node.
func Open(ctx context.Context, nc *nats.Conn, eng *engine.Engine, cfg Config) (*Service, error) {
	cfg.setDefaults()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("webhook: jetstream: %w", err)
	}
	s := &Service{cfg: cfg, log: cfg.Logger, eng: eng, hooks: make(map[string]*Hook), changed: make(chan struct{}), wake: make(chan struct{}, 1)}
	// Retried and race-free across nodes, never lowering replicas (jsasset).
	s.kv, err = jsasset.KeyValue(ctx, js, s.log, jetstream.KeyValueConfig{
		Bucket: Bucket, Description: "spool webhooks", History: 1, Storage: jetstream.FileStorage, Replicas: cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("webhook: create %s bucket: %w", Bucket, err)
	}
	if s.cbSecret, err = s.callbackSecret(ctx); err != nil {
		return nil, err
	}
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	w, err := s.kv.WatchAll(s.ctx)
	if err != nil {
		s.cancel()
		return nil, fmt.Errorf("webhook: watch %s: %w", Bucket, err)
	}
	ready := make(chan struct{})
	s.wg.Go(func() { s.watch(w, ready) })
	select {
	case <-ready:
	case <-ctx.Done():
		s.Close()
		return nil, ctx.Err()
	}
	// The consumer exists before Open returns: events of jobs enqueued from now on are
	// kept for the dispatchers, even those stored before the dispatcher's first fetch.
	if err := s.prepare(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("webhook: %w", err)
	}
	s.wg.Go(s.dispatch)
	s.wg.Go(s.work)
	return s, nil
}

// Close stops the dispatcher and the workers, after the POSTs in flight.
func (s *Service) Close() error {
	s.once.Do(func() {
		s.cancel()
		s.wg.Wait()
	})
	return nil
}

// ensureQueue gives the deliveries' queue its settings, once per process, before the first
// delivery: made on first need, the queue does not appear on servers that deliver nothing.
func (s *Service) ensureQueue(ctx context.Context) error {
	if s.queueReady.Load() {
		return nil
	}
	off := false
	if _, err := s.eng.PutQueue(ctx, Queue, engine.QueueSettings{
		Lease: s.cfg.Timeout + 20*time.Second, MaxAttempts: s.cfg.MaxAttempts,
		BackoffBase: s.cfg.BackoffBase, BackoffMax: time.Hour, Events: &off,
	}); err != nil {
		return fmt.Errorf("webhook: queue %s: %w", Queue, err)
	}
	s.queueReady.Store(true)
	return nil
}

// callbackSecret reads the cluster's secret for callback deliveries, made at first start.
func (s *Service) callbackSecret(ctx context.Context) ([]byte, error) {
	if _, err := s.kv.Create(ctx, callbackSecretKey, []byte(newSecret())); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		return nil, fmt.Errorf("webhook: callback secret: %w", err)
	}
	e, err := s.kv.Get(ctx, callbackSecretKey)
	if err != nil {
		return nil, fmt.Errorf("webhook: callback secret: %w", err)
	}
	return e.Value(), nil
}

// CallbackSecret is the secret that signs deliveries to callback URLs.
func (s *Service) CallbackSecret() string { return string(s.cbSecret) }

func newSecret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// watch keeps s.hooks current with the bucket.
func (s *Service) watch(w jetstream.KeyWatcher, ready chan struct{}) {
	jsasset.Follow(s.ctx.Done(), w, ready, func(ent jetstream.KeyValueEntry, _ bool) {
		if ent.Key() == callbackSecretKey {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if ent.Operation() != jetstream.KeyValuePut {
			delete(s.hooks, ent.Key())
		} else {
			var h Hook
			if err := json.Unmarshal(ent.Value(), &h); err != nil {
				s.log.Warn("bad webhook entry", "key", ent.Key(), "err", err)
			} else {
				s.hooks[h.ID] = &h
			}
		}
		close(s.changed)
		s.changed = make(chan struct{})
	})
}

// ValidationError is a hook refused for one of its fields.
type ValidationError struct{ Field, Reason string }

func (e *ValidationError) Error() string { return e.Field + ": " + e.Reason }

// ErrNotFound: no such hook, or no such delivery.
var ErrNotFound = errors.New("webhook: not found")

// Create stores a new hook and returns it with its id and secret (given, or made).
// Kinds default to CallbackKinds.
func (s *Service) Create(ctx context.Context, h Hook) (*Hook, error) {
	if err := engine.ValidateURL(h.URL); err != nil {
		return nil, &ValidationError{"url", err.Error()}
	}
	if h.Queue != "" {
		if err := engine.ValidateQueueName(h.Queue); err != nil {
			return nil, &ValidationError{"queue", err.Error()}
		}
	}
	if len(h.Type) > engine.MaxTypeLen {
		return nil, &ValidationError{"type", fmt.Sprintf("longer than %d bytes", engine.MaxTypeLen)}
	}
	if len(h.Secret) > 256 {
		return nil, &ValidationError{"secret", "longer than 256 bytes"}
	}
	if len(h.Kinds) == 0 {
		h.Kinds = slices.Clone(CallbackKinds)
	}
	for _, k := range h.Kinds {
		if !k.Valid() {
			return nil, &ValidationError{"kinds", fmt.Sprintf("unknown event kind %q", k)}
		}
	}
	s.mu.RLock()
	n := len(s.hooks)
	s.mu.RUnlock()
	if n >= MaxHooks {
		return nil, &ValidationError{"hooks", fmt.Sprintf("at most %d hooks", MaxHooks)}
	}
	h.ID = newSecret()[:16]
	if h.Secret == "" {
		h.Secret = newSecret()
	}
	h.CreatedAt = time.Now().UTC()
	b, err := json.Marshal(&h)
	if err != nil {
		return nil, err
	}
	if _, err := s.kv.Create(ctx, h.ID, b); err != nil {
		return nil, fmt.Errorf("webhook: store hook: %w", err)
	}
	s.mu.Lock() // seen at once here; the watch brings it to the other nodes
	s.hooks[h.ID] = &h
	s.mu.Unlock()
	if err := s.prepare(ctx); err != nil {
		return nil, err
	}
	return &h, nil
}

// List returns the hooks, without their secrets, oldest first.
func (s *Service) List() []Hook {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Hook, 0, len(s.hooks))
	for _, h := range s.hooks {
		c := *h
		c.Secret = ""
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Delete removes a hook; its deliveries still queued are dropped when their turn comes.
func (s *Service) Delete(ctx context.Context, id string) error {
	s.mu.RLock()
	_, ok := s.hooks[id]
	s.mu.RUnlock()
	if !ok || id == callbackSecretKey {
		return ErrNotFound
	}
	if err := s.kv.Delete(ctx, id); err != nil {
		return fmt.Errorf("webhook: delete hook: %w", err)
	}
	s.mu.Lock()
	delete(s.hooks, id)
	s.mu.Unlock()
	return nil
}

func (s *Service) hook(id string) *Hook {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.hooks[id]
}
