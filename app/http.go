package app

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/promemoria/promemoria/console"
	"github.com/promemoria/promemoria/events"
)

// startHTTP serves /healthz, /readyz and /metrics, and under serve the
// console and /v1, behind the guard of http_auth.
func (a *App) startHTTP() error {
	var creds *credentials
	if a.cfg.HTTPAuth != "" {
		var err error
		if creds, err = loadCredentials(a.cfg.HTTPAuth); err != nil {
			return err
		}
	}
	public := !isLoopback(a.cfg.HTTPListen)
	unauthorized := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "promemoria_http_unauthorized_total",
		Help: "HTTP requests refused with 401 for missing or wrong credentials, by the scheme tried (none, basic, bearer).",
	}, []string{"scheme"})
	if err := a.metrics.Register(unauthorized); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return fmt.Errorf("metrics: %w", err)
		}
		unauthorized = are.ExistingCollector.(*prometheus.CounterVec)
	}
	ln, err := net.Listen("tcp", a.cfg.HTTPListen)
	if err != nil {
		return fmt.Errorf("config http_listen %s: %w", a.cfg.HTTPListen, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		if !a.ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "not ready: NATS disconnected or consumers (worker, delivery) not bound")
			return
		}
		fmt.Fprintln(w, "ready")
	})
	if a.worker != nil {
		a.registerV1(mux)
		if err := a.registerConsole(mux); err != nil {
			_ = ln.Close()
			return err
		}
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.metrics, promhttp.HandlerOpts{}))
	handler := a.guard(mux, creds, public, func(scheme string) { unauthorized.WithLabelValues(scheme).Inc() })
	a.http = &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	a.httpLn = ln
	go func() {
		if err := a.http.Serve(ln); err != nil && err != http.ErrServerClosed {
			a.log.Error().Err(err).Msg("HTTP server stopped")
		}
	}()
	ev := a.log.Info().Str("addr", ln.Addr().String()).Bool("auth", creds != nil).Bool("auth_all", a.cfg.HTTPAuthAll)
	if a.worker != nil {
		ev = ev.Str("console", "http://"+ln.Addr().String()+"/")
	}
	ev.Msg("HTTP endpoints listening")
	if public && creds == nil && a.worker != nil {
		a.log.Warn().Str("http_listen", a.cfg.HTTPListen).Msg(errNoAuth.Error() + "; set http_auth (PROMEMORIA_HTTP_AUTH) to a credentials file")
	}
	return nil
}

// registerConsole adds the web console at /.
func (a *App) registerConsole(mux *http.ServeMux) error {
	js, err := jetstream.New(a.nc)
	if err != nil {
		return fmt.Errorf("console: jetstream: %w", err)
	}
	c, err := console.New(console.Options{
		JS: js, State: a.worker.State(), Subjects: events.Subjects{Prefix: a.cfg.SubjectPrefix}, Services: a.cfg.Services,
		Settle: a.worker.Settle(), Now: a.worker.Now, Location: a.cfg.Location, Version: Version, Logger: a.log,
	})
	if err != nil {
		return err
	}
	c.Register(mux)
	return nil
}
