// Package worker consumes promemoria's input events and durable timers from
// NATS JetStream, keeps the state of services, tenders and gaps in a
// JetStream key-value bucket, and publishes reminders with deterministic
// ids, so that any number of replicas can be killed and restarted at any
// instant without losing or repeating a reminder.
//
// One replica at a time does the work: the holder of a lease in the
// bucket promemoria_worker_lease. It takes events in batches, reads the
// records a batch needs in a few batched requests, decides everything in
// memory, writes the changed records in one pipelined flush under
// compare-and-set, publishes what follows, and acks (pipeline.go). The
// other replicas stand by and take the lease over when it expires.
package worker

import (
	"context"
	"fmt"
	"hash/fnv"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/promemoria/promemoria/lease"
)

// Worker processes events and timers. Create it with New and start it with
// Run; several Workers (in one process or many) may share one JetStream:
// one leads, the others stand by.
type Worker struct {
	opts      Options
	nc        *nats.Conn
	js        jetstream.JetStream
	res       *resources
	log       zerolog.Logger
	metrics   *Metrics
	bound     atomic.Bool
	leading   atomic.Bool
	now       func() time.Time
	store     *store
	seenStore *store
	timers    *timers
	svcs      *services
}

// New provisions what the worker needs on JetStream (idempotently) and
// returns a worker ready to Run.
func New(ctx context.Context, nc *nats.Conn, opts Options) (*Worker, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, fmt.Errorf("worker options: %w", err)
	}
	if opts.Name == "" {
		opts.Name, _ = os.Hostname()
	}
	if err := checkServer(nc); err != nil {
		return nil, err
	}
	// An asynchronous publish whose acknowledgement is lost (the broker
	// died after receiving it) would be waited for forever: it fails after
	// publishTimeout, and the batch is retried.
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(2*opts.BatchSize+4*opts.FanOut+1024),
		jetstream.WithPublishAsyncTimeout(publishTimeout))
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	res, err := provision(ctx, js, &opts)
	if err != nil {
		return nil, err
	}
	w := &Worker{
		opts: opts, nc: nc, js: js, res: res, now: opts.Now,
		log:       opts.Logger.With().Str("component", "worker").Str("worker", opts.Name).Logger(),
		metrics:   newMetrics(),
		store:     newStore(js, BucketState, opts.CacheSize),
		seenStore: newStore(js, BucketSeen, 0),
		svcs:      newServices(),
	}
	w.timers = newTimers(js, &w.opts, w.metrics)
	return w, nil
}

// Metrics returns the worker's counters.
func (w *Worker) Metrics() *Metrics { return w.metrics }

// Ready reports whether the worker is connected and running: leading, or
// standing by to take over.
func (w *Worker) Ready() bool { return w.bound.Load() && w.nc.IsConnected() }

// Leading reports whether this worker holds the lease and does the work.
func (w *Worker) Leading() bool { return w.leading.Load() }

// publishTimeout bounds how long an asynchronous publish waits for its
// acknowledgement.
const publishTimeout = 10 * time.Second

// leaseKey is the key of the workers' lease.
const leaseKey = "worker"

// Run works until ctx is cancelled: it competes for the lease and, while
// it holds it, consumes. Once ctx is cancelled it finishes the batch in
// flight (bounded by DrainTimeout), gives back what it fetched and did not
// start, releases the lease and returns.
func (w *Worker) Run(ctx context.Context) error {
	l, err := lease.New(lease.Options{KV: w.res.lease, Key: leaseKey, Name: w.opts.Name, TTL: w.opts.LeaseTTL, Logger: w.log})
	if err != nil {
		return fmt.Errorf("worker lease: %w", err)
	}
	leaseCtx, stopLease := context.WithCancel(context.WithoutCancel(ctx))
	leaseDone := make(chan struct{})
	go func() { defer close(leaseDone); _ = l.Run(leaseCtx) }()
	defer func() { stopLease(); <-leaseDone }()

	w.bound.Store(true)
	defer w.bound.Store(false)
	w.log.Info().Str("prefix", w.opts.Subjects.Prefix).Int("batch_size", w.opts.BatchSize).Int("lanes", w.opts.Concurrency).
		Int64("lease_ttl_ms", w.opts.LeaseTTL.Milliseconds()).Msg("worker started")
	for ctx.Err() == nil {
		if err := l.Wait(ctx); err != nil {
			break
		}
		w.lead(ctx, l)
	}
	w.log.Info().Msg("worker stopped")
	return nil
}

// lead consumes while this worker holds the lease and ctx lasts.
func (w *Worker) lead(ctx context.Context, l *lease.Lease) {
	w.leading.Store(true)
	defer w.leading.Store(false)
	w.log.Info().Msg("lease held: leading")
	// A batch in flight completes after ctx is cancelled, on its own
	// context, cancelled if it takes longer than DrainTimeout.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	go func() {
		select {
		case <-ctx.Done():
			select {
			case <-time.After(w.opts.DrainTimeout):
				w.log.Warn().Msg("drain timed out: unfinished messages will be redelivered")
				cancelWork()
			case <-workCtx.Done():
			}
		case <-workCtx.Done():
		}
	}()
	// A new leader trusts nothing it remembers from an earlier lead.
	w.store.cache.clear()
	w.timers.reset()
	if err := w.loadServices(workCtx); err != nil {
		w.log.Error().Err(err).Msg("cannot load the services' states: trying again")
		sleep(ctx, time.Second)
		return
	}

	readCtx, stopRead := context.WithCancel(workCtx)
	evCh := make(chan jetstream.Msg, w.opts.BatchSize)
	tmCh := make(chan jetstream.Msg, 64)
	readers := []*reader{
		{w: w, name: ConsumerEvent, stream: StreamEvents, cfg: w.opts.eventConsumer(), ch: evCh, max: 2 * w.opts.BatchSize},
		{w: w, name: ConsumerTimer, stream: StreamTimers, cfg: w.opts.timerConsumer(), ch: tmCh, max: 64},
	}
	var rwg sync.WaitGroup
	for _, r := range readers {
		rwg.Add(1)
		go func() { defer rwg.Done(); r.run(readCtx) }()
	}

	// Events go to lanes by tender: each lane takes its events in
	// batches, in the order received, so the events of one tender are
	// applied in order while the lanes overlap (one plans while another
	// waits for the broker). A portal event is a barrier: what was received
	// before it is applied before it, what comes after sees it.
	// held says whether this worker still leads: the lanes stop taking
	// batches, and give them back, as soon as it does not.
	leading, stopLeading := context.WithCancel(ctx)
	defer stopLeading()
	held := func() bool { return leading.Err() == nil && l.Held() }
	lanes := make([]chan *input, w.opts.Concurrency)
	var inflight, lwg sync.WaitGroup
	for i := range lanes {
		lanes[i] = make(chan *input, w.opts.BatchSize)
		lwg.Add(1)
		go func(ch chan *input) { defer lwg.Done(); w.lane(workCtx, ch, &inflight, held) }(lanes[i])
	}
	// Timers run beside the lanes.
	twg := sync.WaitGroup{}
	twg.Add(1)
	// leading ends when this loop does: the lease lost (even for a moment:
	// a late renewal), or ctx cancelled. The timers stop with it.
	go func() { defer twg.Done(); w.runTimers(leading, workCtx, l, tmCh) }()

	check := time.NewTicker(w.opts.LeaseTTL / 6) // to notice a lost lease while idle
	defer check.Stop()
	for ctx.Err() == nil && l.Held() {
		select {
		case m := <-evCh:
			in := w.newInput(m)
			if in.portal() {
				inflight.Wait()
				if !l.Held() {
					_ = m.Nak() // the next leader applies it
					continue
				}
				w.processEvents(workCtx, []*input{in})
				continue
			}
			inflight.Add(1)
			lanes[laneOf(in, len(lanes))] <- in
		case <-ctx.Done():
		case <-check.C:
		}
	}
	if !l.Held() && ctx.Err() == nil {
		w.log.Warn().Msg("lease lost: standing by")
	}
	// Give back what was fetched and not started, so the next leader (or
	// this one, restarted) has it at once rather than after the ack wait.
	stopLeading()
	stopRead()
	rwg.Wait()
	for _, ch := range lanes {
		close(ch)
	}
	lwg.Wait()
	twg.Wait()
	for _, ch := range []chan jetstream.Msg{evCh, tmCh} {
		for len(ch) > 0 {
			_ = (<-ch).Nak()
		}
	}
}

// laneOf returns the lane of an input: by tender, so that one tender's
// events stay in order.
func laneOf(in *input, n int) int {
	key := in.msg.Subject()
	if in.ev != nil {
		key = in.kind.tender(in.ev.Payload)
	}
	h := fnv.New32a()
	h.Write([]byte(key))
	return int(h.Sum32() % uint32(n))
}

// lane processes the inputs of ch in batches of what is waiting, up to
// BatchSize, until ch is closed.
func (w *Worker) lane(ctx context.Context, ch <-chan *input, inflight *sync.WaitGroup, held func() bool) {
	for first := range ch {
		batch := []*input{first}
	gather:
		for len(batch) < w.opts.BatchSize {
			select {
			case in, ok := <-ch:
				if !ok {
					break gather
				}
				batch = append(batch, in)
			default:
				break gather
			}
		}
		if held() {
			w.processEvents(ctx, batch)
		} else {
			for _, in := range batch {
				_ = in.msg.Nak() // the next leader applies it
			}
		}
		for range batch {
			inflight.Done()
		}
	}
}

// maxTimers is how many fired timers run at once: the restoration passes
// of several services, a due bucket, the advice sweep.
const maxTimers = 2

// runTimers handles fired timers until ctx ends, which is when the leader
// stops leading (lead decides, so that the lanes and the timers stop
// together), up to maxTimers at once: a timer that concerns many records
// runs as a scan. A timer received while the lease has lapsed is given
// back.
func (w *Worker) runTimers(ctx, workCtx context.Context, l *lease.Lease, ch <-chan jetstream.Msg) {
	var wg sync.WaitGroup
	defer wg.Wait()
	sem := make(chan struct{}, maxTimers)
	held := func() bool { return ctx.Err() == nil && l.Held() }
	for ctx.Err() == nil {
		select {
		case m := <-ch:
			if !held() {
				_ = m.Nak() // the next leader handles it
				continue
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				_ = m.Nak()
				continue
			}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				if s := w.startTimer(workCtx, m); s != nil {
					w.run(workCtx, s, held)
				}
			}()
		case <-ctx.Done():
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
