// Package worker consumes promemoria's input events and durable timers from
// NATS JetStream, keeps the state of services, tenders and gaps in a
// JetStream key-value bucket under compare-and-set, and publishes reminders
// with deterministic ids, so that any number of replicas can be killed and
// restarted at any instant without losing or repeating a reminder.
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

	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/gap"
)

// Worker processes events and timers. Create it with New and start it with
// Run; several Workers (in one process or many) may share one JetStream.
type Worker struct {
	opts    Options
	nc      *nats.Conn
	js      jetstream.JetStream
	res     *resources
	log     zerolog.Logger
	metrics *Metrics
	bound   atomic.Bool
	now     func() time.Time
	svcs    *serviceCache
	docs    *docCache
	readers []*reader
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
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	res, err := provision(ctx, js, &opts)
	if err != nil {
		return nil, err
	}
	return &Worker{
		opts: opts, nc: nc, js: js, res: res, now: opts.Now,
		log:     opts.Logger.With().Str("component", "worker").Str("worker", opts.Name).Logger(),
		metrics: newMetrics(),
		svcs:    newServiceCache(),
		docs:    newDocCache(8192),
	}, nil
}

// Metrics returns the worker's counters.
func (w *Worker) Metrics() *Metrics { return w.metrics }

// Ready reports whether the worker is connected and its consumers bound.
func (w *Worker) Ready() bool {
	if !w.bound.Load() || !w.nc.IsConnected() {
		return false
	}
	for _, r := range w.readers {
		if !r.up.Load() {
			return false
		}
	}
	return true
}

// job is one message routed to a shard.
type job struct {
	msg  jetstream.Msg
	kind jobKind
	ev   *events.Event
	err  error  // why an input is invalid
	key  string // timer key
	done func() // called once processed
}

type jobKind int

const (
	jobEvent jobKind = iota + 1
	jobTimer
	jobInvalid
)

// Run consumes until ctx is cancelled, then stops fetching, finishes the
// messages in flight (bounded by drainTimeout) and returns.
func (w *Worker) Run(ctx context.Context) error {
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	if err := w.svcs.watch(watchCtx, w.res.state, func(err error) {
		w.log.Error().Err(err).Msg("service state undecodable")
	}); err != nil {
		return fmt.Errorf("watch services: %w", err)
	}
	evReader := &reader{w: w, name: ConsumerEvent, stream: StreamEvents, cfg: w.opts.eventConsumer()}
	tmReader := &reader{w: w, name: ConsumerTimer, stream: StreamTimers, cfg: w.opts.timerConsumer()}
	if err := evReader.open(ctx); err != nil {
		return err
	}
	if err := tmReader.open(ctx); err != nil {
		evReader.stop()
		return err
	}
	w.readers = []*reader{evReader, tmReader}
	w.bound.Store(true)
	defer w.bound.Store(false)
	w.log.Info().Str("prefix", w.opts.Subjects.Prefix).Int("concurrency", w.opts.Concurrency).Msg("worker started")

	// Work runs on its own context so that in-flight messages complete
	// after ctx is cancelled; it is cancelled if draining takes too long.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()

	shards := make([]chan job, w.opts.Concurrency)
	var wg sync.WaitGroup
	for i := range shards {
		shards[i] = make(chan job, 8)
		wg.Add(1)
		go func(ch chan job) {
			defer wg.Done()
			for j := range ch {
				w.process(workCtx, j)
				if j.done != nil {
					j.done()
				}
			}
		}(shards[i])
	}
	route := func(j job, key string) {
		h := fnv.New32a()
		h.Write([]byte(key))
		shards[h.Sum32()%uint32(len(shards))] <- j
	}

	var readers, passes, evInflight sync.WaitGroup
	readers.Add(2)
	go func() {
		defer readers.Done()
		evReader.loop(ctx, func(msg jetstream.Msg) {
			j, key := w.classifyEvent(msg)
			if key == "svc" {
				// A service change is a barrier: what was received before it
				// is applied before it, what comes after sees it. Portal
				// events are rare, so the pause costs nothing.
				evInflight.Wait()
				w.process(workCtx, j)
				return
			}
			evInflight.Add(1)
			j.done = evInflight.Done
			route(j, key)
		})
	}()
	go func() {
		defer readers.Done()
		tmReader.loop(ctx, func(msg jetstream.Msg) {
			key := w.timerKey(msg.Subject())
			j := job{msg: msg, kind: jobTimer, key: key}
			if isServiceTimer(key) {
				// A restoration's fan-out runs for a while: it gets its own
				// goroutine rather than blocking a shard.
				passes.Add(1)
				go func() { defer passes.Done(); w.process(workCtx, j) }()
				return
			}
			route(j, timerRoute(key))
		})
	}()

	<-ctx.Done()
	w.log.Info().Msg("worker draining")
	w.bound.Store(false)
	evReader.drain()
	tmReader.drain()
	readers.Wait()
	for _, ch := range shards {
		close(ch)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); passes.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(w.opts.DrainTimeout):
		w.log.Warn().Msg("drain timed out: unfinished messages will be redelivered")
		cancelWork()
		<-done
	}
	w.log.Info().Msg("worker stopped")
	return nil
}

// classifyEvent decodes an input message and returns its job and the key
// that orders it: messages about one tender (or one service) are processed
// one at a time, in the order received.
func (w *Worker) classifyEvent(msg jetstream.Msg) (job, string) {
	ev, err := events.Decode(msg.Data(), w.opts.Subjects.TypeOf(msg.Subject()), w.opts.Limits)
	if err != nil {
		return job{msg: msg, kind: jobInvalid, err: err}, msg.Subject()
	}
	return job{msg: msg, kind: jobEvent, ev: ev}, routeKey(ev)
}

func routeKey(ev *events.Event) string {
	switch p := ev.Payload.(type) {
	case *events.TenderPublished:
		return "t:" + gap.Token(p.TenderID)
	case *events.CIGAssigned:
		return "t:" + gap.Token(p.TenderID)
	case *events.TenderCancelled:
		return "t:" + gap.Token(p.TenderID)
	case *events.AdmittedWithReserve:
		return "t:" + gap.Token(p.TenderID)
	case *events.ContributionPaid:
		return "t:" + gap.Token(p.TenderID)
	}
	return "svc"
}
