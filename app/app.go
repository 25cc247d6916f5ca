// Package app wires promemoria together: the embedded or external NATS
// server, the worker and the HTTP endpoints. main parses flags into a
// config.Config and calls Run; tests call Start to run the whole service in
// process.
package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/promemoria/promemoria/calendar"
	"github.com/promemoria/promemoria/config"
	"github.com/promemoria/promemoria/contribution"
	"github.com/promemoria/promemoria/delivery"
	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/gap"
	"github.com/promemoria/promemoria/message"
	"github.com/promemoria/promemoria/natsserver"
	"github.com/promemoria/promemoria/probe"
	"github.com/promemoria/promemoria/worker"
)

// App is a running promemoria.
type App struct {
	cfg    *config.Config
	log    zerolog.Logger
	server *natsserver.Server
	nc     *nats.Conn
	worker *worker.Worker
	// stage is the delivery stage, when a receiver is configured; the only
	// part running under notify, where it starts once the output stream
	// exists.
	stage atomic.Pointer[delivery.Stage]
	// closeOnce makes close idempotent.
	closeOnce sync.Once
	// metrics is where /metrics reads: the worker's registry under serve,
	// the delivery stage's own under notify.
	metrics *prometheus.Registry
	http    *http.Server
	httpLn  net.Listener
	done    chan error
	cancel  context.CancelFunc
}

// Options are what tests may override beyond the config.
type Options struct {
	// Now is the worker's clock (default time.Now).
	Now func() time.Time
	// Name names this replica in logs.
	Name string
	// ToServer maps a time of Now's clock to the broker's, for timers
	// (default: the identity). The demo runs a clock of its own.
	ToServer func(time.Time) time.Time
}

// WorkerOptions turns the settings about what promemoria sends and when
// into worker options: timing, calendar, contribution table and texts. A
// template that does not parse or execute stops start-up here, naming the
// file.
func WorkerOptions(cfg *config.Config) (worker.Options, error) {
	table, err := contribution.NewTable(cfg.ContributionSchedules)
	if err != nil {
		return worker.Options{}, fmt.Errorf("config contribution_schedules: %w", err)
	}
	cal := calendar.New(cfg.Location, cfg.ClosureDays...)
	texts, err := message.Load(cfg.TemplatesDir, cal.Location())
	if err != nil && cfg.TemplatesDir != "" {
		return worker.Options{}, fmt.Errorf("config templates_dir: %w", err)
	}
	if err != nil {
		return worker.Options{}, fmt.Errorf("embedded message templates: %w", err)
	}
	return worker.Options{
		Policy: gap.Policy{
			Settle: cfg.Settle, RepeatInterval: cfg.RepeatInterval, EscalateBefore: cfg.EscalateBefore, Tolerance: time.Second,
			Office: calendar.Office{Cal: cal, Hours: cfg.Hours},
		},
		DefaultCIGService: cfg.DefaultCIGService, ContributionService: cfg.ContributionService,
		Services: cfg.Services, BidderServices: cfg.BidderServices, AdviceMinOverlap: cfg.AdviceMinOverlap, Concurrency: cfg.Concurrency, MaxAttempts: cfg.MaxAttempts,
		BatchSize: cfg.BatchSize, TimerResolution: cfg.TimerResolution, LeaseTTL: cfg.LeaseTTL,
		DedupWindow: cfg.DedupWindow, SweepGrace: cfg.SweepGrace, Replicas: cfg.Replicas, DrainTimeout: cfg.DrainTimeout,
		Contribution: &table, Calendar: cal, Texts: texts,
		Subjects: events.Subjects{Prefix: cfg.SubjectPrefix}, Limits: limits(cfg),
	}, nil
}

// DeliveryOptions turns the settings of the delivery stage into its
// options; texts are the loaded message templates.
func DeliveryOptions(cfg *config.Config, texts *message.Texts) delivery.Options {
	o := delivery.Options{
		Subjects:   events.Subjects{Prefix: cfg.SubjectPrefix},
		DigestWait: cfg.DigestWait, MaxAttempts: cfg.DeliveryMaxAttempts,
		Backoff: cfg.DeliveryBackoff, BackoffMax: cfg.DeliveryBackoffMax, Timeout: cfg.DeliveryTimeout,
		DrainTimeout: cfg.DrainTimeout, Replicas: cfg.Replicas, Texts: texts,
		UserAgent: "promemoria/" + Version,
	}
	if cfg.SMTPURL != "" {
		o.SMTP = &delivery.SMTPOptions{URL: cfg.SMTPURL, From: cfg.SMTPFrom, ReplyTo: cfg.SMTPReplyTo, TLSInsecure: cfg.SMTPTLSInsecure}
	}
	if cfg.WebhookURL != "" {
		o.Webhook = &delivery.WebhookOptions{URL: cfg.WebhookURL, Secret: cfg.WebhookSecret}
	}
	return o
}

// Run runs promemoria until ctx is cancelled, then shuts down cleanly.
func Run(ctx context.Context, cfg *config.Config, log zerolog.Logger) error {
	a, err := Start(ctx, cfg, log, Options{})
	if err != nil {
		return err
	}
	return a.Wait()
}

// Start starts promemoria and returns once its worker consumes. Stop it by
// cancelling ctx (then Wait) or with Stop.
func Start(ctx context.Context, cfg *config.Config, log zerolog.Logger, o Options) (_ *App, err error) {
	ctx, cancel := context.WithCancel(ctx)
	a := &App{cfg: cfg, log: log, done: make(chan error, 1), cancel: cancel}
	defer func() {
		if err != nil {
			cancel()
			a.close()
		}
	}()
	// What promemoria will say is checked before anything starts.
	wopts, err := WorkerOptions(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.NATSURL == "" {
		a.server, err = natsserver.Start(natsserver.Options{
			Listen: cfg.Listen, DataDir: cfg.DataDir, ConfigFile: cfg.EmbeddedConfig,
			MaxMemory: cfg.JetStreamMaxMemory, MaxStore: cfg.JetStreamMaxStore, SyncAlways: cfg.SyncAlways,
			ServerName: "promemoria",
		})
		if err != nil {
			return nil, err
		}
		log.Info().Str("url", a.server.ClientURL()).Str("data_dir", cfg.DataDir).Bool("sync_always", cfg.SyncAlways).Msg("embedded NATS server started")
	}
	a.nc, err = a.connect()
	if err != nil {
		return nil, err
	}
	subjects, err := events.NewSubjects(cfg.SubjectPrefix)
	if err != nil {
		return nil, err
	}
	wopts.Subjects, wopts.Now, wopts.Logger, wopts.Name = subjects, o.Now, log, o.Name
	wopts.ToServer = o.ToServer
	pctx, pcancel := context.WithTimeout(ctx, 90*time.Second)
	defer pcancel()
	a.worker, err = worker.New(pctx, a.nc, wopts)
	if err != nil {
		return nil, err
	}
	a.metrics = a.worker.Metrics().Registry
	if cfg.DeliveryEnabled() {
		dopts := DeliveryOptions(cfg, wopts.Texts)
		dopts.Subjects, dopts.Logger, dopts.Registerer, dopts.Now = subjects, log, a.metrics, o.Now
		stage, err := delivery.New(pctx, a.nc, dopts)
		if err != nil {
			return nil, err
		}
		a.stage.Store(stage)
	}
	var probes *probe.Runner
	if len(cfg.Probes) > 0 {
		if probes, err = a.newProbes(pctx, subjects, o); err != nil {
			return nil, err
		}
	}
	if cfg.HTTPListen != "" {
		if err := a.startHTTP(); err != nil {
			return nil, err
		}
	}
	probesDone := make(chan struct{})
	go func() {
		defer close(probesDone)
		if probes != nil {
			if err := probes.Run(ctx); err != nil {
				log.Error().Err(err).Str("component", "probe").Msg("probes stopped")
			}
		}
	}()
	deliveryDone := make(chan struct{})
	go func() {
		defer close(deliveryDone)
		if stage := a.stage.Load(); stage != nil {
			if err := stage.Run(ctx); err != nil {
				log.Error().Err(err).Str("component", "delivery").Msg("delivery stopped")
			}
		}
	}()
	started := make(chan struct{})
	go func() {
		go func() {
			for !a.ready() && ctx.Err() == nil {
				time.Sleep(5 * time.Millisecond)
			}
			close(started)
		}()
		err := a.worker.Run(ctx)
		<-probesDone
		<-deliveryDone
		a.close()
		a.done <- err
	}()
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		return nil, errors.New("worker did not start within 30s")
	}
	return a, nil
}

// newProbes prepares the outage probes: they check ANAC's services and
// publish portal.down and portal.up as any other source would, one replica
// at a time.
func (a *App) newProbes(ctx context.Context, subjects events.Subjects, o Options) (*probe.Runner, error) {
	js, err := jetstream.New(a.nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	r, err := probe.NewRunner(ctx, js, probe.Options{
		Specs: a.cfg.Probes, Failures: a.cfg.ProbeFailures, Successes: a.cfg.ProbeSuccesses,
		Subjects: subjects, Name: o.Name, Replicas: a.cfg.Replicas, Now: o.Now,
		Checker: probe.NewChecker(probe.UserAgent(Version)),
		Logger:  a.log, Registerer: a.worker.Metrics().Registry,
	})
	if err != nil {
		return nil, fmt.Errorf("probes: %w", err)
	}
	a.log.Info().Int("probes", len(a.cfg.Probes)).Msg("outage probes configured")
	return r, nil
}

// Wait blocks until the app has stopped and returns why.
func (a *App) Wait() error { return <-a.done }

// Stop stops the app and waits for it.
func (a *App) Stop() error {
	a.cancel()
	return a.Wait()
}

// ClientURL returns the URL clients use to reach the NATS server.
func (a *App) ClientURL() string {
	if a.server != nil {
		return a.server.ClientURL()
	}
	return a.nc.ConnectedUrlRedacted()
}

// ready reports whether the parts that run are connected and consuming.
func (a *App) ready() bool {
	stage := a.stage.Load()
	if a.worker == nil && stage == nil {
		return false
	}
	return (a.worker == nil || a.worker.Ready()) && (stage == nil || stage.Ready())
}

// Delivery returns the app's delivery stage, nil if none runs (yet).
func (a *App) Delivery() *delivery.Stage { return a.stage.Load() }

// Worker returns the app's worker.
func (a *App) Worker() *worker.Worker { return a.worker }

// HTTPAddr returns the address the HTTP endpoints listen on, or "".
func (a *App) HTTPAddr() string {
	if a.httpLn == nil {
		return ""
	}
	return a.httpLn.Addr().String()
}

func (a *App) close() { a.closeOnce.Do(a.closeAll) }

func (a *App) closeAll() {
	if a.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = a.http.Shutdown(ctx)
		cancel()
	}
	if a.nc != nil {
		_ = a.nc.Drain()
		for i := 0; i < 500 && !a.nc.IsClosed(); i++ {
			time.Sleep(10 * time.Millisecond)
		}
		a.nc.Close()
	}
	if a.server != nil {
		a.server.Stop()
		a.log.Info().Msg("embedded NATS server stopped")
	}
}

func (a *App) connect() (*nats.Conn, error) {
	cfg := a.cfg
	opts := []nats.Option{
		nats.Name("promemoria"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.RetryOnFailedConnect(false),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				a.log.Warn().Err(err).Msg("NATS disconnected")
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			a.log.Info().Str("url", nc.ConnectedUrlRedacted()).Msg("NATS reconnected")
		}),
	}
	url := cfg.NATSURL
	if a.server != nil {
		opts = append(opts, nats.InProcessServer(a.server.Server))
		url = ""
	}
	auth, err := authOptions(cfg)
	if err != nil {
		return nil, err
	}
	opts = append(opts, auth...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS %s: %w", config.RedactURL(url), err)
	}
	return nc, nil
}

func authOptions(cfg *config.Config) ([]nats.Option, error) {
	var opts []nats.Option
	if cfg.NATSUser != "" {
		opts = append(opts, nats.UserInfo(cfg.NATSUser, cfg.NATSPassword))
	}
	if cfg.NATSToken != "" {
		opts = append(opts, nats.Token(cfg.NATSToken))
	}
	if cfg.NATSCreds != "" {
		opts = append(opts, nats.UserCredentials(cfg.NATSCreds))
	}
	if cfg.NATSNKey != "" {
		o, err := nats.NkeyOptionFromSeed(cfg.NATSNKey)
		if err != nil {
			return nil, fmt.Errorf("config nats_nkey %s: %w", cfg.NATSNKey, err)
		}
		opts = append(opts, o)
	}
	if cfg.NATSCA != "" {
		opts = append(opts, nats.RootCAs(cfg.NATSCA))
	}
	if cfg.NATSCert != "" {
		opts = append(opts, nats.ClientCert(cfg.NATSCert, cfg.NATSKey))
	}
	return opts, nil
}

// limits returns the input limits the settings ask for.
func limits(cfg *config.Config) events.Limits {
	l := events.DefaultLimits()
	l.MaxBytes = cfg.MaxEventBytes
	return l
}
