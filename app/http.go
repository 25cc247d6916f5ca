package app

import (
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func (a *App) startHTTP() error {
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
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.metrics, promhttp.HandlerOpts{}))
	a.http = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	a.httpLn = ln
	go func() {
		if err := a.http.Serve(ln); err != nil && err != http.ErrServerClosed {
			a.log.Error().Err(err).Msg("HTTP server stopped")
		}
	}()
	a.log.Info().Str("addr", ln.Addr().String()).Msg("HTTP endpoints listening")
	return nil
}
