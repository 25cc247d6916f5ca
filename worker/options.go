package worker

import (
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/promemoria/promemoria/calendar"
	"github.com/promemoria/promemoria/contribution"
	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/gap"
	"github.com/promemoria/promemoria/lease"
	"github.com/promemoria/promemoria/message"
)

// Options configure a Worker. Zero values take the documented defaults.
type Options struct {
	// Subjects names the input and output subjects.
	Subjects events.Subjects
	// Policy holds settle, repeat interval and escalation rules.
	Policy gap.Policy
	// DefaultCIGService is the service that issues a lot's CIG when the
	// tender does not say (default "pcp").
	DefaultCIGService string
	// ContributionService is the service contribution gaps wait for
	// (default "payments").
	ContributionService string
	// Services is what an empty services list in a portal event means.
	Services []string
	// Concurrency is how many lanes take input events at once: each
	// lane takes the events of its share of the tenders in batches, so
	// one lane plans while another waits for the broker (default 4).
	Concurrency int
	// BatchSize is how many input events are taken, planned and committed
	// together at most (default 500).
	BatchSize int
	// FanOut is how many records a scan (a restoration pass, a due
	// bucket, the advice sweep) reads and flushes at once (default 500).
	FanOut int
	// TimerResolution is the width of the time buckets gaps fall due in:
	// the gaps of one service due within a bucket are woken together by
	// one timer, at its end (default 1m; at most a tenth of the repeat
	// interval, at least 1s).
	TimerResolution time.Duration
	// LeaseTTL is how long the workers' lease lasts unless renewed: a
	// replica that stops renewing it is replaced about that long after
	// (default 10s).
	LeaseTTL time.Duration
	// CacheSize bounds how many state records the leader keeps in memory
	// (default 8192).
	CacheSize int
	// MaxAttempts is how many times a failing message is tried before it is
	// dead-lettered (default 10).
	MaxAttempts int
	// AckWait is how long the broker waits for an ack before redelivering.
	AckWait time.Duration
	// DrainTimeout bounds how long Run waits, once stopped, for the
	// messages in flight (default AckWait).
	DrainTimeout time.Duration
	// DedupWindow is the duplicate window of the output stream: a reminder
	// retried within it is published once (default 24h).
	DedupWindow time.Duration
	// SeenTTL is how long an event's id is remembered to recognise a reused
	// id with different content (default 7 days).
	SeenTTL time.Duration
	// SweepGrace is when, after a restoration's fan-out, a second pass runs
	// to catch gaps written concurrently with the first (default 30s).
	SweepGrace time.Duration
	// OutputMaxAge bounds how long reminders stay on the output stream
	// (default 30 days).
	OutputMaxAge time.Duration
	// Replicas is the replication factor of streams and buckets (default 1).
	Replicas int
	// Contribution is the contribution table (default: the documented
	// schedules of package contribution).
	Contribution *contribution.Table
	// Calendar knows holidays and closure days (default: Italian national
	// holidays in Europe/Rome). Office hours are Policy.Office.
	Calendar *calendar.Calendar
	// Texts writes the human texts (default: the embedded templates).
	Texts *message.Texts
	// BidderServices are the services bidders need during an offer period;
	// their outages lead to an art. 25 advice (nil: payments, fvoe; an
	// empty list: none, only the lots' CIG services count).
	BidderServices []string
	// AdviceMinOverlap is the least overlap of outages with an offer
	// period that gives an advice (default 0: any).
	AdviceMinOverlap time.Duration
	// Limits bound the input accepted.
	Limits events.Limits
	// Now is the clock (default time.Now).
	Now func() time.Time
	// ToServer maps a time of Now's clock to the broker's clock, for the
	// timers the broker fires (default: the identity). Only a clock that is
	// not the wall clock (the demo's) needs it.
	ToServer func(time.Time) time.Time
	// Logger receives structured logs.
	Logger zerolog.Logger
	// Name names the worker in logs (default the host name).
	Name string
}

// Names of what the worker provisions on JetStream.
const (
	StreamEvents  = "PROMEMORIA_EVENTS"
	StreamOutput  = "PROMEMORIA_OUTPUT"
	StreamTimers  = "PROMEMORIA_TIMERS"
	BucketState   = "promemoria_state"
	BucketSeen    = "promemoria_seen"
	BucketLease   = "promemoria_worker_lease"
	ConsumerEvent = "promemoria-events"
	ConsumerTimer = "promemoria-timers"
)

func (o *Options) setDefaults() error {
	if o.Subjects.Prefix == "" {
		o.Subjects = events.Subjects{Prefix: events.DefaultPrefix}
	}
	if o.Policy.Settle == 0 && o.Policy.RepeatInterval == 0 && o.Policy.EscalateBefore == 0 {
		office := o.Policy.Office
		o.Policy = gap.DefaultPolicy()
		o.Policy.Office = office
	}
	if o.DefaultCIGService == "" {
		o.DefaultCIGService = "pcp"
	}
	if o.ContributionService == "" {
		o.ContributionService = "payments"
	}
	if len(o.Services) == 0 {
		o.Services = DefaultServices()
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 500
	}
	if o.FanOut <= 0 {
		o.FanOut = 500
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = 10 * time.Second
	}
	if o.LeaseTTL < lease.MinTTL {
		return fmt.Errorf("lease TTL %s: write at least %s", o.LeaseTTL, lease.MinTTL)
	}
	if o.CacheSize == 0 {
		o.CacheSize = 8192
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 10
	}
	if o.AckWait <= 0 {
		o.AckWait = 30 * time.Second
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = o.AckWait
	}
	if o.DedupWindow <= 0 {
		o.DedupWindow = 24 * time.Hour
	}
	if o.SeenTTL <= 0 {
		o.SeenTTL = 7 * 24 * time.Hour
	}
	if o.SweepGrace <= 0 {
		o.SweepGrace = 30 * time.Second
	}
	if o.OutputMaxAge <= 0 {
		o.OutputMaxAge = 30 * 24 * time.Hour
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.Limits.MaxBytes == 0 {
		o.Limits = events.DefaultLimits()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ToServer == nil {
		o.ToServer = func(t time.Time) time.Time { return t }
	}
	if o.Contribution == nil {
		table, err := contribution.NewTable(contribution.DefaultSchedules())
		if err != nil {
			return fmt.Errorf("default contribution schedules: %w", err)
		}
		o.Contribution = &table
	}
	if o.Calendar == nil {
		o.Calendar = o.Policy.Office.Cal
	}
	if o.Calendar == nil {
		o.Calendar = calendar.New(nil)
	}
	if o.Policy.Office.Cal == nil {
		o.Policy.Office.Cal = o.Calendar
	}
	if o.Texts == nil {
		texts, err := message.Load("", o.Calendar.Location())
		if err != nil {
			return fmt.Errorf("embedded texts: %w", err)
		}
		o.Texts = texts
	}
	if o.BidderServices == nil { // an empty list: none
		o.BidderServices = []string{"payments", "fvoe"}
	}
	o.Limits.Now = o.Now
	if o.Policy.RepeatInterval < time.Second {
		return errors.New("repeat interval must be at least 1s")
	}
	if o.TimerResolution <= 0 {
		o.TimerResolution = time.Minute
	}
	if o.TimerResolution < time.Second {
		return fmt.Errorf("timer resolution %s: write at least 1s", o.TimerResolution)
	}
	// A repeat must not wait a large part of its interval for its bucket.
	o.TimerResolution = min(o.TimerResolution, max(time.Second, (o.Policy.RepeatInterval/10).Truncate(time.Second)))
	if o.Policy.Settle < 0 || o.Policy.EscalateBefore < 0 {
		return fmt.Errorf("settle and escalate-before must not be negative")
	}
	return nil
}

// DefaultServices returns the ANAC services a portal event with no services
// list applies to.
func DefaultServices() []string {
	return []string{"smartcig", "simog", "pcp", "payments", "fvoe", "bdncp", "ausa"}
}
