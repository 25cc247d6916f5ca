package worker

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/promemoria/promemoria/cig"
	"github.com/promemoria/promemoria/gap"
	"github.com/promemoria/promemoria/outage"
)

func validCIG(code string) bool {
	_, err := cig.Validate(code)
	return err == nil
}

// gapSync is what the sync of one gap starts from.
type gapSync struct {
	// cur is the stored gap; rev 0 if absent.
	cur record
	// spec is a fresh derivation of the gap from its tender, derived its
	// derivation number (see plan); nil keeps the stored description.
	spec    *gap.Gap
	derived uint64
	// svc is the state of the gap's service; nil: the leader's view.
	svc *outage.Service
	now time.Time
	// by names the timer that asked ("" for an input event).
	by string
}

// syncGap brings one gap in line, in named steps, and adds to u what it
// decides: no round trip happens here.
//
//	load    decode the stored record, or start from the derivation
//	replay  the actions the record says were sent lately, published again
//	merge   fold in the fresh derivation (gap.Merge)
//	plan    what to send now and when to look again (gap.Plan)
//	arm     the due timer of the bucket of that time
//	commit  a write of the record, if it changed, that carries the new
//	        messages to publish once it is committed
//
// Resolved gaps are kept as closed records (never deleted), so a stale
// derivation racing with the event that closed a gap finds it closed and
// cannot open it again.
func (w *Worker) syncGap(u *unit, s gapSync) error {
	// load
	var g gap.Gap
	exists := s.cur.exists()
	if exists {
		if err := json.Unmarshal(s.cur.raw, &g); err != nil {
			return fmt.Errorf("decode %s (revision %d): %w", s.cur.key, s.cur.rev, err)
		}
	} else {
		if s.spec == nil {
			return nil // a gap that was never stored: nothing to do
		}
		g = *s.spec
		g.TenderRevision = s.derived
	}
	g.Key = s.cur.key
	wasOpen, wasExempt := exists && g.Open, exists && g.Exempt
	svc := s.svc
	if svc == nil || svc.Name != g.Service {
		svc = w.svcs.get(g.Service)
	}

	// replay
	keep, replay := w.replayable(g.Pending, s.now, s.by)
	for _, a := range replay {
		m, err := w.reminderMsg(&g, svc, a, a.At)
		if err != nil {
			return err
		}
		u.after = append(u.after, m)
	}

	// merge
	if s.spec != nil && exists {
		g.Merge(s.spec, s.derived)
	}

	// plan
	d := gap.Plan(&g, svc, s.now, w.opts.Policy)
	var then []outMsg
	for _, a := range d.Actions {
		g.Record(a, s.now)
		a.At, a.By = s.now, s.by
		keep = append(keep, a)
		m, err := w.reminderMsg(&g, svc, a, s.now)
		if err != nil {
			return err
		}
		then = append(then, m)
	}
	g.Pending = keep
	g.WakeAt = ceilSecond(d.WakeAt)

	// arm
	if !g.WakeAt.IsZero() {
		u.timers = append(u.timers, w.opts.dueTimer(g.Service, g.WakeAt))
	}

	// commit
	val, err := json.Marshal(&g)
	if err != nil {
		return fmt.Errorf("encode %s: %w", g.Key, err)
	}
	if exists && bytes.Equal(val, s.cur.raw) {
		return nil
	}
	g.UpdatedAt = s.now
	if val, err = json.Marshal(&g); err != nil {
		return fmt.Errorf("encode %s: %w", g.Key, err)
	}
	u.writes = append(u.writes, &write{key: g.Key, rev: s.cur.rev, val: val, then: then,
		committed: func() { w.gapChanged(&g, exists, wasOpen, wasExempt) }})
	return nil
}

// replayable splits the pending actions of a record: keep are those the
// output stream still remembers (decided less than half its duplicate
// window ago); replay are those of keep to publish again now: all of them
// for an input event, those decided by the same timer for a timer (its
// redelivery after an interruption).
func (w *Worker) replayable(pending []gap.Action, now time.Time, by string) (keep, replay []gap.Action) {
	horizon := now.Add(-w.opts.DedupWindow / 2)
	for _, a := range pending {
		if a.At.IsZero() {
			a.At = now // left by an earlier version, which cleared them once published
		}
		if a.At.Before(horizon) {
			continue
		}
		keep = append(keep, a)
		if by == "" || a.By == by {
			replay = append(replay, a)
		}
	}
	return keep, replay
}

// gapChanged logs and counts a gap's change once it is committed.
func (w *Worker) gapChanged(g *gap.Gap, existed, wasOpen, wasExempt bool) {
	switch {
	case g.Exempt && !wasExempt:
		if existed && wasOpen {
			w.metrics.gapsClosed.Add(1) // opened before its tender was known
		}
		w.metrics.exemptBid()
		w.log.Info().Str("gap", g.Key).Str("tender_id", g.TenderID).Str("lot_id", g.LotID).Str("operator_fiscal_code", g.OperatorFiscalCode()).
			Str("contribution_table", g.ContributionTable).Msg("bid admitted with reserve on a lot exempt from the contribution: no contribution gap")
	case !existed && g.Open:
		w.metrics.gapsOpened.Add(1)
		w.log.Info().Str("gap", g.Key).Str("tender_id", g.TenderID).Str("lot_id", g.LotID).Str("kind", string(g.Kind)).Str("service", g.Service).Msg("gap opened")
	case !g.Open && (!existed || wasOpen):
		w.metrics.gapsClosed.Add(1)
		w.log.Info().Str("gap", g.Key).Str("tender_id", g.TenderID).Str("lot_id", g.LotID).Str("kind", string(g.Kind)).Int("reminders", g.Sequence).Msg("gap resolved")
	}
}
