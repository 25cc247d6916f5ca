package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/promemoria/promemoria/calendar"
	"github.com/promemoria/promemoria/config"
	"github.com/promemoria/promemoria/delivery"
	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/message"
)

// RunNotify runs the delivery stage alone (promemoria notify) until ctx
// is cancelled.
func RunNotify(ctx context.Context, cfg *config.Config, log zerolog.Logger) error {
	a, err := StartNotify(ctx, cfg, log, Options{})
	if err != nil {
		return err
	}
	return a.Wait()
}

// StartNotify starts the delivery stage alone, against the NATS of a
// running promemoria serve (nats_url; empty: the embedded server of a
// serve on this host, at listen). It serves /healthz, /readyz and
// /metrics on http_listen; /readyz answers 503 until the output stream
// exists and the stage consumes. It returns once the HTTP endpoints are
// up; the stage starts as soon as the output stream is there.
func StartNotify(ctx context.Context, cfg *config.Config, log zerolog.Logger, o Options) (_ *App, err error) {
	if !cfg.DeliveryEnabled() {
		return nil, errors.New("notify needs a receiver: set smtp_url (with smtp_from) or webhook_url (with webhook_secret)")
	}
	ctx, cancel := context.WithCancel(ctx)
	log = log.With().Str("command", "notify").Logger()
	a := &App{cfg: cfg, log: log, done: make(chan error, 1), cancel: cancel, metrics: prometheus.NewRegistry()}
	defer func() {
		if err != nil {
			cancel()
			a.close()
		}
	}()
	texts, err := message.Load(cfg.TemplatesDir, calendar.New(cfg.Location).Location())
	if err != nil {
		return nil, fmt.Errorf("config templates_dir: %w", err)
	}
	subjects, err := events.NewSubjects(cfg.SubjectPrefix)
	if err != nil {
		return nil, err
	}
	ncfg := *cfg
	if ncfg.NATSURL == "" {
		if cfg.Listen == "" {
			return nil, errors.New("notify needs a NATS server: set nats_url to the one promemoria serve uses")
		}
		ncfg.NATSURL = "nats://" + cfg.Listen
	}
	a.cfg = &ncfg
	if a.nc, err = a.connect(); err != nil {
		return nil, err
	}
	dopts := DeliveryOptions(cfg, texts)
	dopts.Subjects, dopts.Logger, dopts.Registerer, dopts.Now = subjects, log, a.metrics, o.Now
	if cfg.HTTPListen != "" {
		if err := a.startHTTP(); err != nil {
			return nil, err
		}
	}
	failed := make(chan error, 1)
	go func() {
		// New waits for the output stream until ctx ends.
		stage, err := delivery.New(ctx, a.nc, dopts)
		if err != nil {
			if ctx.Err() != nil {
				err = nil // stopped while waiting
			}
			failed <- err
			a.close()
			a.done <- err
			return
		}
		a.stage.Store(stage)
		err = stage.Run(ctx)
		a.close()
		a.done <- err
	}()
	// A stage that cannot start (a stream without the delivery subjects)
	// stops notify at once; one waiting for the stream does not.
	deadline := time.After(2 * time.Second)
	for !a.ready() {
		select {
		case err := <-failed:
			if err == nil {
				err = ctx.Err()
			}
			return nil, err
		case <-deadline:
			return a, nil
		case <-time.After(10 * time.Millisecond):
		}
	}
	return a, nil
}
