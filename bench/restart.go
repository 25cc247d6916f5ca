package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/worker"
)

// PrepareRestart leaves in dir the data of a promemoria that holds n open
// gaps (every service down) and has one input waiting in its stream, shut
// down cleanly. It returns how long opening the gaps took.
func PrepareRestart(ctx context.Context, dir string, n int, o Options) (time.Duration, error) {
	o.defaults()
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	env, err := StartEnv(dir, o.TCP)
	if err != nil {
		return 0, err
	}
	defer env.Stop()
	w, err := env.NewWorker(ctx)
	if err != nil {
		return 0, err
	}
	w.Run()
	defer func() { _ = w.Stop() }()
	if err := w.WaitReady(ctx); err != nil {
		return 0, err
	}
	obs, err := env.JetStream("observer")
	if err != nil {
		return 0, err
	}
	pub, err := newPublisher(env, "publisher")
	if err != nil {
		return 0, err
	}
	base := time.Now().Add(-time.Hour)
	if err := pub.sync(ctx, Portal(false, "outage-down", base.Add(-time.Minute))); err != nil {
		return 0, err
	}
	start := time.Now()
	gen := NewOutage(n, base)
	for {
		in, ok := gen.Next()
		if !ok {
			break
		}
		if err := pub.async(in.Subject, in.MsgID, in.Body); err != nil {
			return 0, err
		}
	}
	if err := pub.wait(ctx); err != nil {
		return 0, err
	}
	if _, err := waitDone(ctx, obs, worker.ConsumerEvent, nil, o); err != nil {
		return 0, fmt.Errorf("opening %d gaps: %w", n, err)
	}
	load := time.Since(start)
	if err := w.Stop(); err != nil {
		return 0, err
	}
	return load, pub.sync(ctx, waiting())
}

// waiting is the input left in the stream for the next start to process:
// a tender published during the outage with one lot without CIG.
func waiting() Input {
	id := "restart-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	at := time.Now()
	return Input{Subject: Subjects.Of(events.TypeTenderPublished), MsgID: id, ID: id, Body: envelope(events.TypeTenderPublished, id, at, events.TenderPublished{
		TenderID: id, Title: "Gara pubblicata prima del riavvio", RUP: events.Person{Name: "RUP", Email: "rup@ente.example.it"},
		PublishedAt: at, OfferDeadline: at.Add(30 * 24 * time.Hour), Lots: []events.Lot{{LotID: "L1", BaseAmountCents: 20_000_000}},
	})}
}

// RestartResult is one start of promemoria on existing data.
type RestartResult struct {
	// Server is how long the embedded server took to start (JetStream
	// recovered from disk); Ready from before the server's start until
	// the worker was ready; FirstEvent until the input waiting in the
	// stream was processed.
	Server, Ready, FirstEvent time.Duration
	// Idle is the process's memory after it stayed idle for a while.
	Idle Mem
}

// MeasureRestart starts the embedded server and the worker on dir (data
// left by PrepareRestart or by a previous MeasureRestart), measures the
// time to ready and to the first processed event, stays idle for idle, reads
// the memory, then leaves a new input waiting and shuts down cleanly.
func MeasureRestart(ctx context.Context, dir string, idle time.Duration, o Options) (*RestartResult, error) {
	o.defaults()
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	if _, err := os.Stat(dir); err != nil {
		return nil, err
	}
	res := &RestartResult{}
	start := time.Now()
	env, err := StartEnv(dir, o.TCP)
	if err != nil {
		return nil, err
	}
	defer env.Stop()
	res.Server = time.Since(start)
	w, err := env.NewWorker(ctx)
	if err != nil {
		return nil, err
	}
	w.Run()
	defer func() { _ = w.Stop() }()
	if err := w.WaitReady(ctx); err != nil {
		return nil, err
	}
	res.Ready = time.Since(start)
	for w.W.Metrics().Snapshot().EventsAcked < 1 {
		if time.Since(start) > o.Stall {
			return nil, fmt.Errorf("the waiting input was not processed within %s", o.Stall)
		}
		if err := sleep(ctx, time.Millisecond); err != nil {
			return nil, err
		}
	}
	res.FirstEvent = time.Since(start)
	o.Log("restart: server %s, ready %s, first event %s", res.Server.Round(time.Millisecond), res.Ready.Round(time.Millisecond), res.FirstEvent.Round(time.Millisecond))
	if err := sleep(ctx, idle); err != nil {
		return nil, err
	}
	if res.Idle, err = ReadMem(); err != nil {
		return nil, err
	}
	if err := w.Stop(); err != nil {
		return nil, err
	}
	pub, err := newPublisher(env, "publisher")
	if err != nil {
		return nil, err
	}
	return res, pub.sync(ctx, waiting())
}

// IdleResult is promemoria started on an empty data directory and left
// idle.
type IdleResult struct {
	Ready time.Duration
	Mem   Mem
}

// RunIdle starts promemoria on a fresh data directory, waits until it is
// ready, leaves it idle for idle and reads the process's memory.
func RunIdle(ctx context.Context, idle time.Duration, o Options) (*IdleResult, error) {
	o.defaults()
	dir, err := os.MkdirTemp(o.Dir, "promemoria-bench-idle-")
	if err != nil {
		return nil, err
	}
	if !o.Keep {
		defer os.RemoveAll(dir)
	}
	start := time.Now()
	env, err := StartEnv(dir, o.TCP)
	if err != nil {
		return nil, err
	}
	defer env.Stop()
	w, err := env.NewWorker(ctx)
	if err != nil {
		return nil, err
	}
	w.Run()
	defer func() { _ = w.Stop() }()
	if err := w.WaitReady(ctx); err != nil {
		return nil, err
	}
	res := &IdleResult{Ready: time.Since(start)}
	if err := sleep(ctx, idle); err != nil {
		return nil, err
	}
	res.Mem, err = ReadMem()
	return res, err
}
