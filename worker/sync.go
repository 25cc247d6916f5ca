package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/promemoria/promemoria/cig"
	"github.com/promemoria/promemoria/gap"
	"github.com/promemoria/promemoria/outage"
	"github.com/promemoria/promemoria/tender"
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
	return w.syncGapFrom(ctx, key, spec, rev, svc, nil, 0)
}

// syncGapNew is syncGap for a gap known not to be stored yet (absent): it
// skips the read. If the gap exists after all, the create fails and the
// usual path takes over.
func (w *Worker) syncGapNew(ctx context.Context, key string, spec *gap.Gap, rev uint64, absent bool) error {
	if !absent {
		return w.syncGap(ctx, key, spec, rev, nil)
	}
	return w.syncGapFrom(ctx, key, spec, rev, nil, &gap.Gap{}, 0)
}

// syncGapFrom is syncGap starting from a stored gap already read (pre at
// revision preRev), as a restoration pass has it from its listing.
func (w *Worker) syncGapFrom(ctx context.Context, key string, spec *gap.Gap, rev uint64, svc *outage.Service, pre *gap.Gap, preRev uint64) error {
	return w.syncGapOpts(ctx, key, spec, rev, svc, pre, preRev, false)
}

// syncGapOpts is the body of syncGap. fired is true when the gap's own
// timer fired: the timer is then always set again if a wake time remains,
// since the schedule that fired is gone.
//
// Resolved gaps are kept as closed records (never deleted), so a stale
// derivation racing with the event that closed a gap finds it closed and
// cannot open it again. Messages published by an attempt that then loses
// the compare-and-set are carried into the next attempt, so a gap closed
// concurrently still gets the reminder.resolved it owes.
func (w *Worker) syncGapOpts(ctx context.Context, key string, spec *gap.Gap, rev uint64, svc *outage.Service, pre *gap.Gap, preRev uint64, fired bool) error {
	timerTouched := fired
	for range maxCASRetries {
		var g gap.Gap
		var grev uint64
		var err error
		if pre != nil {
			if preRev != 0 {
				g = *pre
			}
			grev, pre = preRev, nil
		} else if grev, err = getJSON(ctx, w.res.state, key, &g); err != nil {
			return err
		}
		var before []byte
		if grev == 0 {
			if spec == nil {
				// A timer for a gap that was never stored: nothing to do.
				return w.cancelTimer(ctx, key)
			}
			g = *spec
			g.Key = key
			g.TenderRevision = rev
		} else {
			before, _ = json.Marshal(&g)
		}

		s := svc
		if s == nil || s.Name != g.Service {
			if s, err = w.service(ctx, g.Service); err != nil {
				return err
			}
		}
		now := w.now()

		// Messages committed by an earlier writer that may have stopped
		// before publishing them go out first, in their order.
		if len(g.Pending) > 0 {
			if err := w.publishActions(ctx, &g, s, g.Pending, now); err != nil {
				return err
			}
			g.Pending = nil
		}
		if spec == nil && grev != 0 && g.Open && g.NeedsCIG() {
			// A contribution gap waiting for its lot's CIG (or stored by a
			// version that did not record it) is brought in line with its
			// tender, so a CIG merged meanwhile is not missed.
			if spec, rev, err = w.derive(ctx, key); err != nil {
				return err
			}
		}
		if spec != nil && grev != 0 {
			g.Merge(spec, rev)
		}

		d := gap.Plan(&g, s, now, w.opts.Policy)
		for _, a := range d.Actions {
			g.Record(a, now)
		}
		g.Pending = d.Actions
		wake := ceilSecond(d.WakeAt)
		if fired && len(d.Actions) == 0 && !wake.IsZero() && wake.Equal(g.WakeAt) && now.Before(wake) {
			// The timer fired before its time by this worker's clock: the
			// broker's clock is ahead. Look again that much later.
			wake = ceilSecond(wake.Add(max(wake.Sub(now), time.Second)))
		}
		setTimer := !wake.Equal(g.WakeAt) || timerTouched
		// The timer is set before the record says so: a crash in between
		// leaves a timer too many, which finds nothing to do, never one
		// too few.
		if setTimer {
			if wake.IsZero() {
				err = w.cancelTimer(ctx, key)
			} else {
				_, err = w.js.PublishMsg(ctx, w.scheduleMsg(key, wake))
				w.metrics.timersSet.Add(1)
			}
			if err != nil {
				return fmt.Errorf("gap %s timer: %w", key, err)
			}
			g.WakeAt = wake
			timerTouched = true
		}
		after, _ := json.Marshal(&g)
		if grev != 0 && string(before) == string(after) {
			return nil
		}
		g.UpdatedAt = now
		// Commit first, publish after: a concurrent writer that loses this
		// compare-and-set has published nothing, and one that wins sees
		// these messages pending and sends them before its own.
		nrev, err := putJSON(ctx, w.res.state, key, &g, grev)
		if isConflict(err) || errors.Is(err, errConflict) {
			w.metrics.conflict()
			continue
		}
		if err != nil {
			return fmt.Errorf("commit %s: %w", key, err)
		}
		switch {
		case g.Exempt && (before == nil || !exemptIn(before)):
			if before != nil && !closedIn(before) {
				w.metrics.gapsClosed.Add(1) // opened before its tender was known
			}
			w.metrics.exemptBid()
			w.log.Info().Str("gap", key).Str("tender_id", g.TenderID).Str("lot_id", g.LotID).Str("operator_fiscal_code", g.OperatorFiscalCode()).
				Str("contribution_table", g.ContributionTable).Msg("bid admitted with reserve on a lot exempt from the contribution: no contribution gap")
		case grev == 0 && g.Open:
			w.metrics.gapsOpened.Add(1)
			w.log.Info().Str("gap", key).Str("tender_id", g.TenderID).Str("lot_id", g.LotID).Str("kind", string(g.Kind)).Str("service", g.Service).Msg("gap opened")
		case !g.Open && (before == nil || !closedIn(before)):
			w.metrics.gapsClosed.Add(1)
			w.log.Info().Str("gap", key).Str("tender_id", g.TenderID).Str("lot_id", g.LotID).Str("kind", string(g.Kind)).Int("reminders", g.Sequence).Msg("gap resolved")
		}
		if len(g.Pending) == 0 {
			return nil
		}
		if err := w.publishActions(ctx, &g, s, g.Pending, now); err != nil {
			return err
		}
		// Mark them published. If another writer got there first it has
		// published them again (deduplicated) and cleared them itself.
		g.Pending = nil
		if _, err := putJSON(ctx, w.res.state, key, &g, nrev); err != nil && !isConflict(err) && !errors.Is(err, errConflict) {
			return fmt.Errorf("commit %s: %w", key, err)
		}
		return nil
	}
	return fmt.Errorf("gap %s: %w after %d attempts", key, errConflict, maxCASRetries)
}

// publishActions publishes the messages of actions about g and waits for
// the acks.
func (w *Worker) publishActions(ctx context.Context, g *gap.Gap, s *outage.Service, actions []gap.Action, now time.Time) error {
	out := make([]outMsg, 0, len(actions))
	msgs := make([]*nats.Msg, 0, len(actions))
	for _, a := range actions {
		m, err := w.reminderMsg(g, s, a, now)
		if err != nil {
			return err
		}
		out = append(out, m)
		msgs = append(msgs, m.msg)
	}
	if err := w.publishAll(ctx, msgs...); err != nil {
		return fmt.Errorf("gap %s: %w", g.Key, err)
	}
	for _, m := range out {
		w.sent(g, m)
	}
	return nil
}

// exemptIn reports whether a stored gap record was already exempt.
func exemptIn(raw []byte) bool {
	var g struct {
		Exempt bool `json:"exempt"`
	}
	return json.Unmarshal(raw, &g) == nil && g.Exempt
}

// closedIn reports whether a stored gap record was already closed.
func closedIn(raw []byte) bool {
	var g struct {
		Open bool `json:"open"`
	}
	return json.Unmarshal(raw, &g) == nil && !g.Open
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

// derive returns the gap at key as its tender's record describes it now,
// and the record's revision; nil if the tender or the gap is not there.
func (w *Worker) derive(ctx context.Context, key string) (*gap.Gap, uint64, error) {
	id, ok := gap.ParseKey(key)
	if !ok {
		return nil, 0, nil
	}
	t := &tender.Tender{TenderID: id.TenderID}
	rev, err := getJSON(ctx, w.res.state, tenderKey(id.TenderID), t)
	if err != nil || rev == 0 {
		return nil, 0, err
	}
	for _, spec := range t.Gaps(w.tenderServices()) {
		if spec.Key == key {
			return &spec, rev, nil
		}
	}
	return nil, 0, nil
}
