package probe

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the probe's Prometheus metrics.
type metrics struct {
	up       *prometheus.GaugeVec
	duration *prometheus.HistogramVec
	checks   *prometheus.CounterVec
}

// newMetrics creates the metrics and registers them with reg (if not nil).
// Metrics already registered there by another Runner are shared.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "promemoria_probe_up", Help: "1 if the last check of the service passed, 0 if it failed.",
		}, []string{"service"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "promemoria_probe_duration_seconds", Help: "Time one check of the service took, body included.",
			Buckets: prometheus.DefBuckets,
		}, []string{"service"}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "promemoria_probe_checks_total", Help: "Checks of the service, by outcome (ok, fail).",
		}, []string{"service", "outcome"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.up, err = register(reg, m.up); err != nil {
		return nil, err
	}
	if m.duration, err = register(reg, m.duration); err != nil {
		return nil, err
	}
	if m.checks, err = register(reg, m.checks); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c, or returns the collector of the same name already
// registered.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	if err != nil {
		return c, fmt.Errorf("register probe metrics: %w", err)
	}
	return c, nil
}

func (m *metrics) observe(r Result) {
	up, outcome := 0.0, "fail"
	if r.OK {
		up, outcome = 1, "ok"
	}
	m.up.WithLabelValues(r.Service).Set(up)
	m.duration.WithLabelValues(r.Service).Observe(r.Latency.Seconds())
	m.checks.WithLabelValues(r.Service, outcome).Inc()
}

// forget deletes the promemoria_probe_up series of the specs' services, when this
// replica stops probing them (lease lost, or stopped): a standby exports
// no last-known up or down that nobody updates. The counter and the
// histogram stay: they count this replica's checks, true even on standby,
// and deleting them would fake a counter reset.
func (m *metrics) forget(specs []Spec) {
	for _, s := range specs {
		m.up.DeleteLabelValues(s.Service)
	}
}
