package server

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/spoolq/spool/engine"
	"github.com/spoolq/spool/schedule"
)

// startSchedules opens the node's scheduler and applies the schedules file, if any: its
// schedules are created, or updated when they differ from the stored ones. A bad file
// stops the start with the schedule and field at fault.
func startSchedules(ctx context.Context, nc *nats.Conn, eng *engine.Engine, cfg Config) (*schedule.Service, error) {
	var defs []schedule.Definition
	if cfg.SchedulesFile != "" {
		var err error
		if defs, err = schedule.LoadFile(cfg.SchedulesFile); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	s, err := schedule.Open(ctx, nc, eng, schedule.Config{Replicas: cfg.Replicas, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	if cfg.SchedulesFile != "" {
		if err := s.Apply(ctx, defs); err != nil {
			s.Close()
			return nil, fmt.Errorf("schedules file %s: %w", cfg.SchedulesFile, err)
		}
		cfg.Logger.Info("schedules file applied", "file", cfg.SchedulesFile, "schedules", len(defs))
	}
	return s, nil
}
