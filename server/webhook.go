package server

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/spoolq/spool/engine"
	"github.com/spoolq/spool/webhook"
)

// startWebhooks opens the node's webhook service: its dispatcher and delivery workers.
func startWebhooks(ctx context.Context, nc *nats.Conn, eng *engine.Engine, cfg Config) (*webhook.Service, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return webhook.Open(ctx, nc, eng, webhook.Config{Replicas: cfg.Replicas, Logger: cfg.Logger, Node: cfg.Node, DenyPrivate: cfg.WebhookDenyPrivate})
}
