package worker

import (
	"context"
	"encoding/json"
	"fmt"
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
		return w.schedule(ctx, passKey(service, n), ready, nil)
	}
	start := time.Now()
	watcher, err := w.res.state.WatchFiltered(ctx, []string{gap.ServicePrefix(service)}, jetstream.IgnoreDeletes())
	if err != nil {
		return fmt.Errorf("list gaps of %s: %w", service, err)
	}
	defer func() { _ = watcher.Stop() }()
	var (
		wg       sync.WaitGroup
		sem      = make(chan struct{}, w.opts.FanOut)
		firstErr atomic.Pointer[error]
		count    atomic.Int64
		lastBeat = time.Now()
	)
	for e := range watcher.Updates() {
		if e == nil {
			break // every gap stored when the pass began has been listed
		}
		if firstErr.Load() != nil {
			break
		}
		if time.Since(lastBeat) > w.opts.AckWait/3 {
			_ = msg.InProgress()
			lastBeat = time.Now()
		}
		var g gap.Gap
		if err := json.Unmarshal(e.Value(), &g); err != nil {
			w.log.Error().Err(err).Str("gap", e.Key()).Msg("gap record undecodable: skipped")
			continue
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
		}(e.Key(), &g, e.Revision())
	}
	wg.Wait()
	if errp := firstErr.Load(); errp != nil {
		return fmt.Errorf("restoration pass %d of %s: %w", n, service, *errp)
	}
	w.log.Info().Str("service", service).Int("pass", n).Int64("gaps", count.Load()).
		Dur("took", time.Since(start)).Time("up_since", svc.UpSince()).Msg("restoration pass done")
	if n == 1 {
		return w.schedule(ctx, passKey(service, 2), now.Add(w.opts.SweepGrace), nil)
	}
	return nil
}
