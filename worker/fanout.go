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
// has stayed up for settle. Pass 1 runs at the end of the settle window;
// pass 2 runs SweepGrace later to catch gaps that were being written while
// pass 1 listed them. Gaps already reminded are left alone, so a pass that
// is redelivered after a crash resumes where it stopped.
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
	// The gaps are read in batches from the bucket's stream (the last
	// value of each key), so memory stays bounded however many there are.
	cons, err := w.js.OrderedConsumer(ctx, "KV_"+BucketState, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"$KV." + BucketState + "." + gap.ServicePrefix(service)},
		DeliverPolicy:  jetstream.DeliverLastPerSubjectPolicy,
	})
	if err != nil {
		return fmt.Errorf("list gaps of %s: %w", service, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return fmt.Errorf("list gaps of %s: %w", service, err)
	}
	var (
		wg       sync.WaitGroup
		sem      = make(chan struct{}, w.opts.FanOut)
		firstErr atomic.Pointer[error]
		count    atomic.Int64
		lastBeat = time.Now()
		pending  = info.NumPending
		kvPrefix = "$KV." + BucketState + "."
		empty    int
	)
	for pending > 0 && firstErr.Load() == nil {
		batch, err := cons.FetchNoWait(w.opts.FanOut * 2)
		if err != nil {
			return fmt.Errorf("list gaps of %s: %w", service, err)
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
			var g gap.Gap
			if err := json.Unmarshal(m.Data(), &g); err != nil {
				w.log.Error().Err(err).Str("gap", m.Subject()).Msg("gap record undecodable: skipped")
				continue
			}
			if time.Since(lastBeat) > w.opts.AckWait/3 {
				_ = msg.InProgress()
				lastBeat = time.Now()
			}
			sem <- struct{}{}
			wg.Add(1)
			go func(key string, g *gap.Gap, rev uint64) {
				defer func() { <-sem; wg.Done() }()
				if err := w.syncGapFrom(ctx, key, nil, 0, svc, g, rev); err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
				count.Add(1)
			}(strings.TrimPrefix(m.Subject(), kvPrefix), &g, rev)
		}
		if err := batch.Error(); err != nil {
			return fmt.Errorf("list gaps of %s: %w", service, err)
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
	wg.Wait()
	if errp := firstErr.Load(); errp != nil {
		return fmt.Errorf("restoration pass %d of %s: %w", n, service, *errp)
	}
	w.log.Info().Str("service", service).Int("pass", n).Int64("gaps", count.Load()).
		Dur("took", time.Since(start)).Time("up_since", svc.UpSince()).Msg("restoration pass done")
	if n == 1 {
		return w.schedule(ctx, passKey(service, 2), now.Add(w.opts.SweepGrace))
	}
	return nil
}
