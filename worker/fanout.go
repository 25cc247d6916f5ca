package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/promemoria/promemoria/gap"
)

// restorationPass reminds every gap that waits for service, once the service
// has stayed up for settle, then looks for tenders whose offer period the
// outage overlapped (art. 25 advice). Pass 1 runs at the end of the settle
// window; pass 2 runs SweepGrace later to catch gaps that were being written
// while pass 1 listed them. Gaps already reminded are left alone, so a pass
// that is redelivered after a crash resumes where it stopped.
func (w *Worker) restorationPass(ctx context.Context, msg jetstream.Msg, service string, n int) error {
	svc, _, err := w.loadService(ctx, service)
	if err != nil {
		return err
	}
	ready, ok := svc.ReadyAt(w.opts.Policy.Settle)
	if !ok {
		w.log.Info().Str("service", service).Int("pass", n).Msg("restoration pass skipped: service is down again")
		return nil
	}
	now := w.now()
	if now.Before(ready.Add(-w.opts.Policy.Tolerance)) {
		// Fired early (a flap moved the restoration): try again when due.
		return w.schedule(ctx, passKey(service, n), ready)
	}
	start := time.Now()
	var count atomic.Int64
	err = w.fanOut(ctx, msg, gap.ServicePrefix(service), func(key string, data []byte, rev uint64) (func() error, bool) {
		var g gap.Gap
		if err := json.Unmarshal(data, &g); err != nil {
			w.log.Error().Err(err).Str("gap", key).Msg("gap record undecodable: skipped")
			return nil, false
		}
		return func() error {
			if err := w.syncGapFrom(ctx, key, nil, 0, svc, &g, rev); err != nil {
				return err
			}
			count.Add(1)
			return nil
		}, true
	})
	if err != nil {
		return fmt.Errorf("restoration pass %d of %s: %w", n, service, err)
	}
	// The outage may have overlapped offer periods: one advice sweep looks
	// at every tender. Its timer has one key, so the first passes of the
	// services restored together (one portal.up) share one sweep.
	if n == 1 {
		if err := w.schedule(ctx, adviceSweepKey, now); err != nil {
			return fmt.Errorf("restoration pass %d of %s: %w", n, service, err)
		}
	}
	w.log.Info().Str("service", service).Int("pass", n).Int64("gaps", count.Load()).
		Dur("took", time.Since(start)).Time("up_since", svc.UpSince()).Msg("restoration pass done")
	if n == 1 {
		return w.schedule(ctx, passKey(service, 2), now.Add(w.opts.SweepGrace))
	}
	return nil
}

// fanOut scans the records of the state bucket that match filter (see
// scanState); prepare, called for each in turn, returns the work to do
// about it, which runs concurrently with the others, FanOut at a time. It
// returns the first error, after the work already started has finished.
func (w *Worker) fanOut(ctx context.Context, msg jetstream.Msg, filter string, prepare func(key string, data []byte, rev uint64) (func() error, bool)) error {
	var (
		wg       sync.WaitGroup
		sem      = make(chan struct{}, w.opts.FanOut)
		firstErr atomic.Pointer[error]
	)
	err := w.scanState(ctx, msg, filter, func(key string, data []byte, rev uint64) error {
		if errp := firstErr.Load(); errp != nil {
			return *errp
		}
		task, ok := prepare(key, data, rev)
		if !ok {
			return nil
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := task(); err != nil {
				firstErr.CompareAndSwap(nil, &err)
			}
		}()
		return nil
	})
	wg.Wait()
	if errp := firstErr.Load(); errp != nil {
		return *errp
	}
	return err
}

// scanState calls fn with the latest value of every key of the state
// bucket that matches filter, read in batches from the bucket's stream, so
// memory stays bounded however many there are. Deleted keys are skipped.
// msg, the message that asked for the scan, is kept in progress.
func (w *Worker) scanState(ctx context.Context, msg jetstream.Msg, filter string, fn func(key string, data []byte, rev uint64) error) error {
	kvPrefix := "$KV." + BucketState + "."
	cons, err := w.js.OrderedConsumer(ctx, "KV_"+BucketState, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{kvPrefix + filter},
		DeliverPolicy:  jetstream.DeliverLastPerSubjectPolicy,
	})
	if err != nil {
		return fmt.Errorf("list %s: %w", filter, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return fmt.Errorf("list %s: %w", filter, err)
	}
	pending, lastBeat, empty := info.NumPending, time.Now(), 0
	for pending > 0 {
		batch, err := cons.FetchNoWait(w.opts.FanOut * 2)
		if err != nil {
			return fmt.Errorf("list %s: %w", filter, err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			rev := uint64(0)
			if meta, err := m.Metadata(); err == nil {
				pending, rev = meta.NumPending, meta.Sequence.Stream
			}
			if op := m.Headers().Get("KV-Operation"); op == "DEL" || op == "PURGE" {
				continue
			}
			if time.Since(lastBeat) > w.opts.AckWait/3 {
				_ = msg.InProgress()
				lastBeat = time.Now()
			}
			if err := fn(strings.TrimPrefix(m.Subject(), kvPrefix), m.Data(), rev); err != nil {
				return err
			}
		}
		if err := batch.Error(); err != nil {
			return fmt.Errorf("list %s: %w", filter, err)
		}
		if got == 0 {
			if empty++; empty > 20 {
				break // the stream holds nothing more for us
			}
			time.Sleep(50 * time.Millisecond)
			continue
		}
		empty = 0
	}
	return nil
}
