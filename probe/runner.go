package probe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/lease"
	"github.com/promemoria/promemoria/worker"
)

// The probe's key-value buckets.
const (
	// BucketState holds the last published state of each service, one key
	// per service.
	BucketState = "promemoria_probe_state"
	// BucketLease holds the lease of the replica that probes; its TTL is
	// the lease's.
	BucketLease = "promemoria_probe_lease"
	// DefaultSource is the CloudEvents source of the probe's events.
	DefaultSource = "promemoria-probe"
	// MinLeaseTTL is the shortest lease accepted.
	MinLeaseTTL = lease.MinTTL

	leaseKey = "lease"
)

// Options configure a Runner.
type Options struct {
	// Specs are the probes, validated; service names must be unique.
	Specs []Spec
	// Failures and Successes are the runs that make a service down and up
	// again: defaults 3 and 2.
	Failures, Successes int
	// Subjects is where to publish (events.Subjects{Prefix: "procurement"}
	// by default).
	Subjects events.Subjects
	// Source is the CloudEvents source, default "promemoria-probe".
	Source string
	// Name names this replica, for the lease and logs (default the host
	// name).
	Name string
	// LeaseTTL is how long the lease lasts unless renewed; default 3/4 of
	// the shortest probe interval, at least MinLeaseTTL.
	LeaseTTL time.Duration
	// Replicas is the replication of the probe's buckets (default 1).
	Replicas int
	// Checker performs the checks (default NewChecker("")).
	Checker *Checker
	// Now is the clock of the checks' times (default time.Now).
	Now    func() time.Time
	Logger zerolog.Logger
	// Registerer is where the metrics go (nil: not registered).
	Registerer prometheus.Registerer

	// fast lifts the rules of the schedule (Spec.validate): set only by
	// the tests, through export_test.go.
	fast bool
}

// setDefaults validates o and fills in its defaults.
func (o *Options) setDefaults() error {
	if len(o.Specs) == 0 {
		return errors.New("probe: no probes configured: give at least one {service, url}")
	}
	specs := make([]Spec, len(o.Specs))
	seen := map[string]bool{}
	minInterval := time.Duration(0)
	for i, s := range o.Specs {
		v, err := s.validate(DefaultInterval, DefaultTimeout, !o.fast)
		if err != nil {
			return err
		}
		if seen[v.Service] {
			return fmt.Errorf("probe %s: service probed twice: give one probe per service", v.Service)
		}
		seen[v.Service] = true
		specs[i] = v
		if minInterval == 0 || v.Interval < minInterval {
			minInterval = v.Interval
		}
	}
	o.Specs = specs
	switch {
	case o.Failures < 0:
		return fmt.Errorf("probe: failures %d: write a positive number of consecutive failures (default 3)", o.Failures)
	case o.Failures == 0:
		o.Failures = 3
	}
	switch {
	case o.Successes < 0:
		return fmt.Errorf("probe: successes %d: write a positive number of consecutive successes (default 2)", o.Successes)
	case o.Successes == 0:
		o.Successes = 2
	}
	if o.Subjects.Prefix == "" {
		o.Subjects = events.Subjects{Prefix: events.DefaultPrefix}
	}
	if _, err := events.NewSubjects(o.Subjects.Prefix); err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	if o.Source == "" {
		o.Source = DefaultSource
	}
	if o.Name == "" {
		o.Name, _ = os.Hostname()
		if o.Name == "" {
			o.Name = DefaultSource
		}
	}
	switch {
	case o.LeaseTTL == 0:
		o.LeaseTTL = max(minInterval*3/4, MinLeaseTTL)
	case o.LeaseTTL < MinLeaseTTL:
		return fmt.Errorf("probe: lease TTL %s: write at least %s (default: 3/4 of the shortest probe interval, at least %s)", o.LeaseTTL, MinLeaseTTL, MinLeaseTTL)
	}
	switch {
	case o.Replicas < 0:
		return fmt.Errorf("probe: replicas %d: write 1, 3 or 5", o.Replicas)
	case o.Replicas == 0:
		o.Replicas = 1
	}
	if o.Checker == nil {
		o.Checker = NewChecker("")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return nil
}

// Runner probes every spec at its interval while it holds the probe lease,
// and publishes transitions as CloudEvents input events (portal.down /
// portal.up, data {"services":[service],"at":transition time,"notice":…})
// on the input subjects, with the deterministic id EventID, used as
// CloudEvents id and Nats-Msg-Id, so a republish is a duplicate.
//
// Before publishing a transition it records the new published state in
// BucketState (key = service), marked unpublished, and marks it published
// once JetStream has acknowledged the event. A (re)started runner, and a
// replica that takes the lease over, loads that state into its Tracker and
// republishes a transition left unpublished, so a restart neither repeats
// nor loses a transition. Writes to BucketState are compare-and-set on the
// revision the runner last saw. A service BucketState has no record of
// starts from the worker's view of it (worker.ServiceState), and
// from up if the worker has none either.
//
// The probe's state is its own: a portal.down or portal.up that another
// source (an operator, by hand) publishes for a probed service does not
// change it. The worker's state and the probe's can then disagree until
// the probe's next transition of that service: after a manual portal.up of
// a service the probe sees down, the probe publishes no portal.down until
// it has seen the service come back (and published that portal.up); after
// a manual portal.down of a service it sees up, it publishes no portal.up
// until it has seen the service fail (and published that portal.down).
//
// One replica probes at a time: the one that holds the lease (package
// lease) of key "lease" in BucketLease (bucket TTL = LeaseTTL, by default
// 3/4 of the shortest interval), created with Create (fails if held) and
// renewed with Update every LeaseTTL/3. The lease is valid for two thirds
// of LeaseTTL after the renewal was sent, a third before the server can
// expire it; every write to BucketState and every publish is bounded by
// that validity (a context deadline), so a holder that cannot renew does
// not wait on a write past it. A replica that loses the lease, or cannot
// renew it before its validity ends, stops publishing at once, and probing
// at the next renewal; the others retry Create every LeaseTTL/3, so a dead
// holder is replaced within about one LeaseTTL after its lease expires.
type Runner struct {
	o       Options
	js      jetstream.JetStream
	stateKV jetstream.KeyValue
	lease   *lease.Lease
	m       *metrics
	log     zerolog.Logger
	urls    map[string]string // service -> RedactURL(URL), for logs
	period  time.Duration     // of the lease's renewal

	running atomic.Bool
	// runCtx is Run's context, and sess the probing under way: used by
	// onLease, which the lease calls from Run's goroutine only.
	runCtx context.Context
	sess   *session

	wmu    sync.Mutex
	warned map[string]string // warn's key -> the error last logged
}

// NewRunner validates o, applies its defaults and provisions the probe's two
// buckets idempotently (create or update).
func NewRunner(ctx context.Context, js jetstream.JetStream, o Options) (*Runner, error) {
	if err := o.setDefaults(); err != nil {
		return nil, err
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}
	r := &Runner{
		o: o, js: js, m: m,
		log:    o.Logger.With().Str("component", "probe").Str("replica", o.Name).Logger(),
		period: o.LeaseTTL / 3,
		warned: map[string]string{},
		urls:   map[string]string{},
	}
	for _, s := range o.Specs {
		r.urls[s.Service] = RedactURL(s.URL)
	}
	r.stateKV, err = worker.EnsureBucket(ctx, js, jetstream.KeyValueConfig{
		Bucket:      BucketState,
		Description: "promemoria probe: last published state of each ANAC service",
		History:     5,
		Storage:     jetstream.FileStorage,
		Replicas:    o.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("provision bucket %s: %w", BucketState, err)
	}
	leaseKV, err := worker.EnsureBucket(ctx, js, jetstream.KeyValueConfig{
		Bucket:      BucketLease,
		Description: "promemoria probe: the lease of the replica that probes",
		History:     1,
		TTL:         o.LeaseTTL,
		Storage:     jetstream.MemoryStorage,
		Replicas:    o.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("provision bucket %s: %w", BucketLease, err)
	}
	r.lease, err = lease.New(lease.Options{
		KV: leaseKV, Key: leaseKey, Name: o.Name, TTL: o.LeaseTTL,
		Logger: r.log, OnChange: r.onLease,
	})
	if err != nil {
		return nil, fmt.Errorf("probe: %w", err)
	}
	return r, nil
}

// Leader reports whether this runner holds the probe lease: it acquired or
// renewed it less than two thirds of LeaseTTL ago.
func (r *Runner) Leader() bool {
	return r.lease.Held()
}

// Run probes while it holds the lease, and competes for it otherwise, until
// ctx ends; it then stops probing and releases the lease (delete) if it
// holds it. Errors of NATS are logged and retried; Run returns nil. Call
// Run once.
func (r *Runner) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("probe: Run called twice: call it once")
	}
	// The lease calls onLease from this goroutine: with true once acquired,
	// with false once lost, or, as ctx ends, before it is released, so
	// that probing has stopped before another replica can take over.
	r.runCtx = ctx
	return r.lease.Run(ctx)
}

// onLease starts probing when the lease is acquired, and stops it (waiting
// until it has stopped) when the lease is lost or about to be released.
func (r *Runner) onLease(held bool) {
	if held {
		r.log.Info().Msg("probing")
		r.sess = r.startSession(r.runCtx)
		return
	}
	r.sess.stop()
	r.sess = nil
	r.log.Info().Msg("probing stopped")
}

// warn logs err once per streak of the same error for what (and service,
// if not empty: each service has streaks of its own), at debug level for
// the rest of the streak. A warning about a service names it and its URL
// (redacted).
func (r *Runner) warn(what, service string, err error, msg string) {
	key := what + "\x00" + service
	r.wmu.Lock()
	repeated := r.warned[key] == err.Error()
	r.warned[key] = err.Error()
	r.wmu.Unlock()
	ev := r.log.Warn()
	if repeated {
		ev = r.log.Debug()
	}
	if service != "" {
		ev = ev.Str("service", service).Str("url", r.urls[service])
	}
	ev.Err(err).Msg(msg)
}

// clearWarn ends the streak of what (and service) that warn logs.
func (r *Runner) clearWarn(what, service string) {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	delete(r.warned, what+"\x00"+service)
}

// session is one term of probing, while the lease is held.
type session struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func (s *session) stop() {
	if s == nil {
		return
	}
	s.cancel()
	<-s.done
}

// startSession probes until ctx ends or the session is stopped. When
// probe finds the stored state changed by someone else, it probes again
// from the stored state after a renewal period.
func (r *Runner) startSession(ctx context.Context) *session {
	sctx, cancel := context.WithCancel(ctx)
	s := &session{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			err := r.probe(sctx)
			// Once probe returns no check is under way: a standby exports
			// no stale promemoria_probe_up.
			r.m.forget(r.o.Specs)
			if sctx.Err() != nil {
				return
			}
			if err != nil {
				r.log.Warn().Err(err).Msg("probing restarts from the stored state")
			}
			select {
			case <-sctx.Done():
				return
			case <-time.After(r.period):
			}
		}
	}()
	return s
}

// record is the value of a service's key in BucketState.
type record struct {
	Service   string    `json:"service"`
	Up        bool      `json:"up"`
	At        time.Time `json:"at"`
	Notice    string    `json:"notice,omitempty"`
	ID        string    `json:"id"`
	Published bool      `json:"published"`
}

// pending is a transition on its way out.
type pending struct {
	rec   record
	stage int // stageStore, stagePublish or stageMark
}

const (
	stageStore = iota
	stagePublish
	stageMark
)

// errStale means another writer changed BucketState: the session restarts
// from what is stored.
var errStale = errors.New("probe state changed by another replica")

// outbox publishes transitions in order, through BucketState, in a
// goroutine of its own (run), so that a slow or failing NATS does not hold
// the checks up.
type outbox struct {
	r    *Runner
	revs map[string]uint64 // used by run only
	wake chan struct{}

	mu    sync.Mutex
	queue []pending
}

// add queues a transition and wakes run up.
func (ob *outbox) add(p pending) {
	ob.mu.Lock()
	ob.queue = append(ob.queue, p)
	ob.mu.Unlock()
	select {
	case ob.wake <- struct{}{}:
	default:
	}
}

// run flushes the queue when woken up, and every retry (a failed write is
// retried that soon), until ctx ends (nil) or flush finds BucketState
// changed by someone else (errStale).
func (ob *outbox) run(ctx context.Context, retryEvery time.Duration) error {
	retry := time.NewTicker(retryEvery)
	defer retry.Stop()
	for {
		if err := ob.flush(ctx); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ob.wake:
		case <-retry.C:
		}
	}
}

// probe loads the stored state, then checks every spec at its interval and
// publishes the transitions, until ctx ends or the stored state is found
// changed by someone else.
func (r *Runner) probe(ctx context.Context) error {
	ob, published, err := r.load(ctx)
	if err != nil {
		return err
	}
	tracker := NewTracker(r.o.Failures, r.o.Successes, published)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan Result)
	var wg sync.WaitGroup
	var stale error
	wg.Go(func() {
		// Retry a failed record or publish soon, not a whole interval
		// later: the transition is late already.
		if stale = ob.run(ctx, min(r.period, 2*time.Second)); stale != nil {
			cancel()
		}
	})
	for _, s := range r.o.Specs {
		wg.Go(func() { r.loop(ctx, s, results) })
	}
	for {
		select {
		case <-ctx.Done():
			cancel()
			wg.Wait()
			return stale
		case res := <-results:
			tr, ok := tracker.Observe(res)
			if !ok {
				continue
			}
			r.log.Info().Str("service", tr.Service).Str("url", r.urls[tr.Service]).Bool("up", tr.Up).
				Time("at", tr.At).Str("notice", tr.Notice).Msg("service state changed")
			ob.add(pending{rec: record{Service: tr.Service, Up: tr.Up, At: tr.At, Notice: tr.Notice, ID: EventID(tr)}})
		}
	}
}

// load reads the stored state of every probed service, retrying until it
// succeeds or ctx ends. Transitions stored but not marked published are
// queued for publishing again. A service without stored state starts from
// the worker's view of it (workerView).
func (r *Runner) load(ctx context.Context) (*outbox, map[string]bool, error) {
	for {
		ob := &outbox{r: r, revs: map[string]uint64{}, wake: make(chan struct{}, 1)}
		published := map[string]bool{}
		err := func() error {
			var unknown []Spec
			for _, s := range r.o.Specs {
				gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				e, err := r.stateKV.Get(gctx, s.Service)
				cancel()
				if errors.Is(err, jetstream.ErrKeyNotFound) {
					unknown = append(unknown, s)
					continue
				}
				if err != nil {
					return fmt.Errorf("read state of %s: %w", s.Service, err)
				}
				var rec record
				if err := json.Unmarshal(e.Value(), &rec); err != nil {
					r.log.Error().Err(err).Str("service", s.Service).Str("url", r.urls[s.Service]).Msg("stored probe state unreadable: starting from up")
				} else {
					rec.Service = s.Service
					published[s.Service] = rec.Up
					if !rec.Published {
						ob.queue = append(ob.queue, pending{rec: rec, stage: stagePublish})
					}
				}
				ob.revs[s.Service] = e.Revision()
			}
			return r.workerView(ctx, unknown, published)
		}()
		if err == nil {
			r.clearWarn("load", "")
			return ob, published, nil
		}
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		r.warn("load", "", err, "cannot load the probe state, retrying")
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(r.period):
		}
	}
}

// workerView sets published[service] for each spec from the worker's state
// of its service (worker.ServiceState), where the worker has one: the probe
// then starts from what the worker believes, down included. A service the
// worker has no state of (no bucket, no key) is left out: up. An
// unreadable state is logged and left out too.
func (r *Runner) workerView(ctx context.Context, specs []Spec, published map[string]bool) error {
	if len(specs) == 0 {
		return nil
	}
	gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	kv, err := r.js.KeyValue(gctx, worker.BucketState)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open the worker's state %s: %w", worker.BucketState, err)
	}
	for _, s := range specs {
		svc, rev, err := worker.ServiceState(gctx, kv, s.Service)
		var bad *json.SyntaxError
		var badType *json.UnmarshalTypeError
		switch {
		case errors.As(err, &bad) || errors.As(err, &badType):
			r.log.Error().Err(err).Str("service", s.Service).Str("url", r.urls[s.Service]).
				Msg("the worker's state of the service is unreadable: starting from up")
			continue
		case err != nil:
			return fmt.Errorf("read the worker's state of %s: %w", s.Service, err)
		case rev == 0:
			continue
		}
		published[s.Service] = svc.Up()
		r.log.Info().Str("service", s.Service).Str("url", r.urls[s.Service]).Bool("up", svc.Up()).
			Msg("no probe state of the service: starting from the worker's")
	}
	return nil
}

// loop checks s now and then every s.Interval, sending the results to out.
func (r *Runner) loop(ctx context.Context, s Spec, out chan<- Result) {
	t := time.NewTicker(s.Interval)
	defer t.Stop()
	for {
		res := r.o.Checker.Check(ctx, s, r.o.Now())
		if ctx.Err() != nil {
			return
		}
		r.m.observe(res)
		r.log.Debug().Str("service", s.Service).Str("url", r.urls[s.Service]).Bool("ok", res.OK).Int("status", res.Status).
			Int64("latency_ms", res.Latency.Milliseconds()).Str("problem", res.Problem).Msg("checked")
		select {
		case out <- res:
		case <-ctx.Done():
			return
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// errNoLease means a write was not attempted: the lease is not held, or
// its validity is over.
var errNoLease = errors.New("probe lease not held")

// fenced returns ctx bounded by limit and by the lease's validity, for a
// write while the lease is held: a request that has not completed when the
// validity ends is abandoned, so that nothing a replica started while it
// held the lease is still pending once another may hold it. The validity
// ends a third of LeaseTTL before the server can expire the lease, so a
// request sent before it reaches the server before another replica can
// take over. It returns errNoLease if the lease is not valid now.
func (r *Runner) fenced(ctx context.Context, limit time.Duration) (context.Context, context.CancelFunc, error) {
	return fence(ctx, r.lease.ValidUntil(), limit)
}

// fence returns ctx bounded by limit and by validUntil, the lease's
// validity (zero if it is not held), or errNoLease if that is not after now.
func fence(ctx context.Context, validUntil time.Time, limit time.Duration) (context.Context, context.CancelFunc, error) {
	now := time.Now()
	if validUntil.IsZero() || !now.Before(validUntil) {
		return nil, nil, errNoLease
	}
	if end := now.Add(limit); end.Before(validUntil) {
		validUntil = end
	}
	fctx, cancel := context.WithDeadline(ctx, validUntil)
	return fctx, cancel, nil
}

// flush moves the queued transitions out, in order: store the state, publish
// the event, mark the state published. It stops at the first step that
// fails, to retry it later, and returns errStale if BucketState changed
// under it. Nothing is written while the lease is not valid, and no write
// outlasts its validity (fenced).
func (ob *outbox) flush(ctx context.Context) error {
	r := ob.r
	for {
		ob.mu.Lock()
		if len(ob.queue) == 0 {
			ob.mu.Unlock()
			return nil
		}
		p := ob.queue[0]
		ob.mu.Unlock()
		if !r.Leader() || ctx.Err() != nil {
			return nil
		}
		svc := p.rec.Service
		switch p.stage {
		case stageStore, stageMark:
			rec := p.rec
			rec.Published = p.stage == stageMark
			if err := ob.put(ctx, svc, rec); err != nil {
				switch {
				case errors.Is(err, errStale):
					return err
				case errors.Is(err, errNoLease), ctx.Err() != nil:
				default:
					r.warn("state", svc, err, "cannot record the probe state, retrying")
				}
				return nil
			}
			r.clearWarn("state", svc)
		case stagePublish:
			ack, err := r.publish(ctx, p.rec)
			if err != nil {
				if !errors.Is(err, errNoLease) && ctx.Err() == nil {
					r.warn("publish", svc, err, "cannot publish the transition, retrying")
				}
				return nil
			}
			r.clearWarn("publish", svc)
			r.log.Info().Str("service", svc).Str("url", r.urls[svc]).Str("id", p.rec.ID).Bool("up", p.rec.Up).
				Str("notice", p.rec.Notice).Uint64("stream_sequence", ack.Sequence).Bool("duplicate", ack.Duplicate).
				Msg("transition published")
		}
		// The head is only ever changed here: move it to its next stage.
		ob.mu.Lock()
		if p.stage == stageMark {
			ob.queue = ob.queue[1:]
		} else {
			ob.queue[0].stage++
		}
		ob.mu.Unlock()
	}
}

// put writes rec as the state of svc, compare-and-set on the last revision
// seen, within the lease's validity.
func (ob *outbox) put(ctx context.Context, svc string, rec record) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode state of %s: %w", svc, err)
	}
	pctx, cancel, err := ob.r.fenced(ctx, 5*time.Second)
	if err != nil {
		return err
	}
	defer cancel()
	var rev uint64
	if last := ob.revs[svc]; last == 0 {
		rev, err = ob.r.stateKV.Create(pctx, svc, b)
	} else {
		rev, err = ob.r.stateKV.Update(pctx, svc, b, last)
	}
	switch {
	case errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, jetstream.ErrKeyRevisionMismatch):
		return fmt.Errorf("%w: %s: %w", errStale, svc, err)
	case err != nil:
		return fmt.Errorf("write state of %s: %w", svc, err)
	}
	ob.revs[svc] = rev
	return nil
}

// publish sends the event of rec to the input stream and waits for the
// ack, within the lease's validity.
func (r *Runner) publish(ctx context.Context, rec record) (*jetstream.PubAck, error) {
	tr := Transition{Service: rec.Service, Up: rec.Up, At: rec.At, Notice: rec.Notice}
	msg, err := Message(r.o.Subjects, r.o.Source, tr)
	if err != nil {
		return nil, err
	}
	pctx, cancel, err := r.fenced(ctx, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer cancel()
	ack, err := r.js.PublishMsg(pctx, msg, jetstream.WithExpectStream(worker.StreamEvents))
	if err != nil {
		return nil, fmt.Errorf("publish %s to %s: %w", msg.Header.Get(events.HeaderMsgID), msg.Subject, err)
	}
	return ack, nil
}

// EventID is the deterministic CloudEvents id of a transition:
// "probe-<service>-<down|up>-<At as UTC RFC 3339 with nanoseconds>".
func EventID(tr Transition) string {
	dir := "down"
	if tr.Up {
		dir = "up"
	}
	return "probe-" + tr.Service + "-" + dir + "-" + tr.At.UTC().Format(time.RFC3339Nano)
}

// Message returns the NATS message that publishes tr: a portal.down or
// portal.up CloudEvent from source, with data {"services":[service],
// "at":tr.At,"notice":tr.Notice}, time tr.At, id EventID(tr), and the
// Nats-Msg-Id header set to the id.
func Message(subjects events.Subjects, source string, tr Transition) (*nats.Msg, error) {
	typ := events.TypePortalDown
	if tr.Up {
		typ = events.TypePortalUp
	}
	at := tr.At.UTC()
	data, err := json.Marshal(events.PortalChange{Services: []string{tr.Service}, At: at, Notice: tr.Notice})
	if err != nil {
		return nil, fmt.Errorf("encode %s data: %w", typ, err)
	}
	id := EventID(tr)
	body, err := json.Marshal(events.Envelope{
		SpecVersion: events.SpecVersion, ID: id, Source: source, Type: typ,
		Time: at, DataContentType: events.ContentType, Data: data,
	})
	if err != nil {
		return nil, fmt.Errorf("encode %s event: %w", typ, err)
	}
	msg := nats.NewMsg(subjects.Of(typ))
	msg.Header.Set(events.HeaderMsgID, id)
	msg.Data = body
	return msg, nil
}
