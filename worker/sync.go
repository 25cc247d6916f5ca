package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/promemoria/promemoria/cig"
	"github.com/promemoria/promemoria/gap"
	"github.com/promemoria/promemoria/outage"
)

func validCIG(code string) bool {
	_, err := cig.Validate(code)
	return err == nil
}

// syncGap brings the stored gap at key in line with spec (a fresh
// derivation from tender revision rev; nil keeps the stored description),
// sends what gap.Plan asks for, sets or cancels the gap's durable timer and
// commits the gap under compare-and-set. svc, if not nil, is the state of
// the gap's service already loaded by the caller.
//
// The order makes it crash-safe: messages are published (with deterministic
// ids, so a retry is deduplicated by the output stream) and the timer set
// before the gap records them; a crash in between repeats the work, never
// skips it.
func (w *Worker) syncGap(ctx context.Context, key string, spec *gap.Gap, rev uint64, svc *outage.Service) error {
	timerTouched := false
	for range maxCASRetries {
		var g gap.Gap
		grev, err := getJSON(ctx, w.res.state, key, &g)
		if err != nil {
			return err
		}
		if grev == 0 {
			if spec == nil || !spec.Open {
				// Nothing to remember: never opened, or already forgotten.
				if timerTouched || spec == nil {
					return w.cancelTimer(ctx, key)
				}
				return nil
			}
			g = *spec
			g.Key = key
			g.TenderRevision = rev
		} else if spec != nil {
			g.Merge(spec, rev)
		}
		before, _ := json.Marshal(&g)

		s := svc
		if s == nil || s.Name != g.Service {
			if s, _, err = w.loadService(ctx, g.Service); err != nil {
				return err
			}
		}
		now := w.now()
		d := gap.Plan(&g, s, now, w.opts.Policy)
		for _, a := range d.Actions {
			if err := w.emit(ctx, &g, s, a, now); err != nil {
				return err
			}
			g.Record(a, now)
		}
		wake := ceilSecond(d.WakeAt)
		if !wake.Equal(g.WakeAt) || timerTouched {
			if wake.IsZero() {
				err = w.cancelTimer(ctx, key)
			} else {
				err = w.schedule(ctx, key, wake, nil)
			}
			if err != nil {
				return err
			}
			g.WakeAt = wake
			timerTouched = true
		}
		after, _ := json.Marshal(&g)
		if grev != 0 && string(before) == string(after) {
			return nil
		}
		g.UpdatedAt = now
		if !g.Open && (g.ResolvedSent || g.Sequence == 0) {
			// Done: the tender record remembers the resolution, so the gap
			// itself can go.
			err = w.res.state.Purge(ctx, key, jetstream.LastRevision(grev))
			if err == nil {
				w.metrics.gapsClosed.Add(1)
				w.log.Info().Str("gap", key).Str("tender_id", g.TenderID).Str("lot_id", g.LotID).Str("kind", string(g.Kind)).Int("reminders", g.Sequence).Msg("gap resolved")
				return nil
			}
		} else {
			_, err = putJSON(ctx, w.res.state, key, &g, grev)
			if err == nil {
				if grev == 0 {
					w.metrics.gapsOpened.Add(1)
					w.log.Info().Str("gap", key).Str("tender_id", g.TenderID).Str("lot_id", g.LotID).Str("kind", string(g.Kind)).Str("service", g.Service).Msg("gap opened")
				}
				return nil
			}
		}
		if isConflict(err) || errors.Is(err, errConflict) {
			w.metrics.conflict()
			continue
		}
		return fmt.Errorf("commit %s: %w", key, err)
	}
	return fmt.Errorf("gap %s: %w after %d attempts", key, errConflict, maxCASRetries)
}

// ceilSecond rounds t up to a whole second: schedules have one-second
// resolution, and firing late is safe where firing early is not.
func ceilSecond(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	if tr := t.Truncate(time.Second); !tr.Equal(t) {
		return tr.Add(time.Second)
	}
	return t
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
