package delivery

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/promemoria/promemoria/events"
)

// Metrics counts what the stage does. The atomic counters are for tests;
// Registry (when the stage has its own) exposes the same in Prometheus
// format.
type Metrics struct {
	// Registry is the stage's own registry, nil when the metrics go to an
	// Options.Registerer.
	Registry *prometheus.Registry

	deliveries  *prometheus.CounterVec
	retriesC    *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	queue       prometheus.Gauge
	undecodable prometheus.Counter

	sent       atomic.Int64
	failed     atomic.Int64
	duplicates atomic.Int64
	retries    atomic.Int64
	held       atomic.Int64
	bad        atomic.Int64
}

func newMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{}
	if reg == nil {
		m.Registry = prometheus.NewRegistry()
		reg = m.Registry
	}
	m.deliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "promemoria_deliveries_total",
		Help: "Reminders and advices delivered, by receiver (email, webhook) and outcome (sent, failed, duplicate: already delivered before a restart).",
	}, []string{"receiver", "outcome"})
	m.retriesC = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "promemoria_delivery_retries_total", Help: "Tries of a delivery that failed temporarily and were retried, by receiver.",
	}, []string{"receiver"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "promemoria_delivery_latency_seconds",
		Help:    "Time from a reminder's publication on the output stream to its acceptance by the receiver (digest wait and retries included), by receiver.",
		Buckets: prometheus.ExponentialBuckets(0.01, 2.5, 14),
	}, []string{"receiver"})
	m.queue = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "promemoria_delivery_queue_depth", Help: "Reminders and advices held by the delivery stage: waiting for their digest, being sent or waiting to be retried.",
	})
	m.undecodable = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "promemoria_delivery_undecodable_total", Help: "Output messages the delivery stage could not read: reported as delivery.failed and skipped.",
	})
	for _, c := range []prometheus.Collector{m.deliveries, m.retriesC, m.latency, m.queue, m.undecodable} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, r := range []events.Receiver{events.ReceiverEmail, events.ReceiverWebhook} {
		for _, o := range []string{"sent", "failed", "duplicate"} {
			m.deliveries.WithLabelValues(string(r), o)
		}
	}
	return m, nil
}

// Sent returns how many deliveries (e-mails, webhook calls) succeeded
// since the stage started.
func (m *Metrics) Sent() int64 { return m.sent.Load() }

// Failed returns how many deliveries were reported delivery.failed.
func (m *Metrics) Failed() int64 { return m.failed.Load() }

// Duplicates returns how many reminders came back already delivered
// (after a restart) and were not sent again.
func (m *Metrics) Duplicates() int64 { return m.duplicates.Load() }

// Retries returns how many tries failed temporarily and were retried.
func (m *Metrics) Retries() int64 { return m.retries.Load() }

// Held returns how many reminders and advices the stage holds now:
// waiting for their digest, being sent or waiting for a retry.
func (m *Metrics) Held() int64 { return m.held.Load() }

// Undecodable returns how many output messages could not be read.
func (m *Metrics) Undecodable() int64 { return m.bad.Load() }
