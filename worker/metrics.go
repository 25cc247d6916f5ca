package worker

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/promemoria/promemoria/events"
)

// Metrics counts what the worker does. The atomic counters are for tests
// and the CLI; Registry exposes the same in Prometheus format.
type Metrics struct {
	Registry *prometheus.Registry

	consumed     *prometheus.CounterVec
	deadLetters  *prometheus.CounterVec
	reminders    *prometheus.CounterVec
	latency      prometheus.Histogram
	redelivered  prometheus.Counter
	duplicatesC  prometheus.Counter
	casConflictC prometheus.Counter
	exemptC      prometheus.Counter
	unverifiedC  prometheus.Counter
	advicesC     prometheus.Counter
	warningsC    prometheus.Counter
	fallbackC    prometheus.Counter

	redeliveries atomic.Int64
	duplicates   atomic.Int64
	casConflicts atomic.Int64
	gapsOpened   atomic.Int64
	gapsClosed   atomic.Int64
	timersSet    atomic.Int64
	timersFired  atomic.Int64
	emitted      atomic.Int64
	deadLettered atomic.Int64
	eventsAcked  atomic.Int64
	exempt       atomic.Int64
	unverified   atomic.Int64
	advices      atomic.Int64
}

func newMetrics() *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry()}
	m.consumed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "promemoria_events_consumed_total", Help: "Messages consumed, by type and outcome (ok, retry, dead_letter).",
	}, []string{"type", "outcome"})
	m.deadLetters = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "promemoria_dead_letters_total", Help: "Inputs dead-lettered, by reason.",
	}, []string{"reason"})
	m.reminders = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "promemoria_reminders_emitted_total", Help: "Reminders published, by type (cig, contribution, escalation, resolved).",
	}, []string{"kind"})
	m.latency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "promemoria_processing_seconds", Help: "Time to process one message.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	})
	m.redelivered = prometheus.NewCounter(prometheus.CounterOpts{Name: "promemoria_redeliveries_total", Help: "Messages received more than once."})
	m.duplicatesC = prometheus.NewCounter(prometheus.CounterOpts{Name: "promemoria_duplicate_events_total", Help: "Events skipped because their source+id was already processed."})
	m.casConflictC = prometheus.NewCounter(prometheus.CounterOpts{Name: "promemoria_cas_conflicts_total", Help: "Compare-and-set conflicts retried."})
	m.exemptC = prometheus.NewCounter(prometheus.CounterOpts{Name: "promemoria_contribution_exempt_total", Help: "Bids admitted with reserve on lots below the contribution threshold: no contribution gap."})
	m.unverifiedC = prometheus.NewCounter(prometheus.CounterOpts{Name: "promemoria_cig_unverified_total", Help: "CIGs accepted on format alone (V and W families: no published check digit)."})
	m.advicesC = prometheus.NewCounter(prometheus.CounterOpts{Name: "promemoria_advices_emitted_total", Help: "Art. 25 deadline-extension advices published."})
	m.warningsC = prometheus.NewCounter(prometheus.CounterOpts{Name: "promemoria_tender_warnings_total", Help: "Tenders published with an unlikely CIG service for their amount or date (logged, not rejected)."})
	m.fallbackC = prometheus.NewCounter(prometheus.CounterOpts{Name: "promemoria_template_fallbacks_total", Help: "Messages written by the embedded template because an overriding one (templates_dir) failed on their data."})
	m.Registry.MustRegister(m.consumed, m.deadLetters, m.reminders, m.latency, m.redelivered, m.duplicatesC, m.casConflictC,
		m.exemptC, m.unverifiedC, m.advicesC, m.warningsC, m.fallbackC)
	return m
}

func (m *Metrics) observe(typ string, err error, d time.Duration) {
	outcome := "ok"
	var ie *events.InvalidError
	switch {
	case errors.As(err, &ie):
		outcome = "dead_letter"
	case err != nil:
		outcome = "retry"
	}
	m.consumed.WithLabelValues(typ, outcome).Inc()
	m.latency.Observe(d.Seconds())
}

// Snapshot is a point-in-time copy of the worker's counters.
type Snapshot struct {
	Redeliveries, Duplicates, CASConflicts int64
	GapsOpened, GapsClosed                 int64
	TimersSet, TimersFired                 int64
	Emitted, DeadLettered                  int64
	// EventsAcked counts input events settled for good: applied, skipped
	// as duplicates or dead-lettered.
	EventsAcked int64
	// Exempt counts bids on exempt lots, CIGUnverified CIGs accepted on
	// format alone, Advices the art. 25 advices published.
	Exempt, CIGUnverified, Advices int64
}

// Snapshot returns the counters.
func (m *Metrics) Snapshot() Snapshot {
	return Snapshot{
		Redeliveries: m.redeliveries.Load(), Duplicates: m.duplicates.Load(), CASConflicts: m.casConflicts.Load(),
		GapsOpened: m.gapsOpened.Load(), GapsClosed: m.gapsClosed.Load(),
		TimersSet: m.timersSet.Load(), TimersFired: m.timersFired.Load(),
		Emitted: m.emitted.Load(), DeadLettered: m.deadLettered.Load(),
		EventsAcked: m.eventsAcked.Load(),
		Exempt:      m.exempt.Load(), CIGUnverified: m.unverified.Load(), Advices: m.advices.Load(),
	}
}

func (m *Metrics) conflict()         { m.casConflicts.Add(1); m.casConflictC.Inc() }
func (m *Metrics) duplicate()        { m.duplicates.Add(1); m.duplicatesC.Inc() }
func (m *Metrics) redelivery()       { m.redeliveries.Add(1); m.redelivered.Inc() }
func (m *Metrics) exemptBid()        { m.exempt.Add(1); m.exemptC.Inc() }
func (m *Metrics) cigUnverified()    { m.unverified.Add(1); m.unverifiedC.Inc() }
func (m *Metrics) advice()           { m.advices.Add(1); m.advicesC.Inc() }
func (m *Metrics) tenderWarning()    { m.warningsC.Inc() }
func (m *Metrics) templateFallback() { m.fallbackC.Inc() }
