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

// gapState is one gap on its way through a unit: the record as stored
// and the gap as it is being brought in line.
type gapState struct {
	cur                record
	g                  gap.Gap
	exists             bool // stored
	started            bool // g holds the gap (stored, or created from a derivation)
	wasOpen, wasExempt bool
	replayed           bool
	then               []outMsg
}

// loadGap decodes a stored gap (the load step).
func loadGap(cur record) (*gapState, error) {
	gs := &gapState{cur: cur, exists: cur.exists()}
	if gs.exists {
		if err := json.Unmarshal(cur.raw, &gs.g); err != nil {
			return nil, fmt.Errorf("decode %s (revision %d): %w", cur.key, cur.rev, err)
		}
		gs.started, gs.wasOpen, gs.wasExempt = true, gs.g.Open, gs.g.Exempt
	}
	gs.g.Key = cur.key
	return gs, nil
}

// syncGap brings one gap in line once: load, then one step, then commit.
func (w *Worker) syncGap(u *unit, s gapSync) error {
	gs, err := loadGap(s.cur)
	if err != nil {
		return err
	}
	if err := w.stepGap(u, gs, s); err != nil {
		return err
	}
	return w.commitGap(u, gs, s.now)
}

// stepGap brings the gap of gs in line with one derivation (s.spec; nil
// keeps the description), in named steps; several steps (one per event of
// a batch about its tender) give the outcome of applying each event
// alone. No round trip happens here.
//
//	replay  the actions the record says were sent lately, published again
//	        (once per unit)
//	merge   fold in the fresh derivation (gap.Merge), or start from it
//	plan    what to send now and when to look again (gap.Plan)
//
// Resolved gaps are kept as closed records (never deleted), so a stale
// derivation racing with the event that closed a gap finds it closed and
// cannot open it again.
func (w *Worker) stepGap(u *unit, gs *gapState, s gapSync) error {
	g := &gs.g
	if !gs.started {
		if s.spec == nil {
			return nil // a gap that was never stored: nothing to do
		}
		*g = *s.spec
		g.Key = gs.cur.key
		g.TenderRevision = s.derived
		gs.started = true
	}
	svc := s.svc
	if svc == nil || svc.Name != g.Service {
		svc = w.svcs.get(g.Service)
	}

	// replay
	var others []gap.Action // recent pending actions of other timers, not replayed yet
	if !gs.replayed {
		gs.replayed = true
		keep, replay := w.replayable(g.Pending, s.now, s.by)
		g.Pending = keep
		if err := w.replay(u, g, svc, replay); err != nil {
			return err
		}
		if s.by != "" {
			for _, a := range keep {
				if a.By != s.by {
					others = append(others, a)
				}
			}
		}
	}

	// merge
	if s.spec != nil && gs.exists {
		g.Merge(s.spec, s.derived)
	}

	// plan
	d := gap.Plan(g, svc, s.now, w.opts.Policy)
	if len(d.Actions) > 0 {
		// Whatever else the record says was sent lately goes out again
		// first, so that a reminder interrupted by a crash is never
		// published after the ones that follow it.
		if err := w.replay(u, g, svc, others); err != nil {
			return err
		}
	}
	for _, a := range d.Actions {
		g.Record(a, s.now)
		a.At, a.By = s.now, s.by
		g.Pending = append(g.Pending, a)
		m, err := w.reminderMsg(g, svc, a, s.now)
		if err != nil {
			return err
		}
		gs.then = append(gs.then, m)
	}
	g.WakeAt = ceilSecond(d.WakeAt)
	// A gap created by this step counts as stored for the next steps: a
	// later derivation merges into it.
	gs.exists = true
	return nil
}

// commitGap ends the sync of gs:
//
//	arm     the due timer of the bucket of the gap's next look
//	commit  a write of the record, if it changed, that carries the new
//	        messages to publish once it is committed
func (w *Worker) commitGap(u *unit, gs *gapState, now time.Time) error {
	if !gs.started {
		return nil
	}
	g := &gs.g
	if !g.WakeAt.IsZero() {
		u.timers = append(u.timers, w.opts.dueTimer(g.Service, g.WakeAt))
	}
	val, err := json.Marshal(g)
	if err != nil {
		return fmt.Errorf("encode %s: %w", g.Key, err)
	}
	stored := gs.cur.exists()
	if stored && bytes.Equal(val, gs.cur.raw) {
		return nil
	}
	g.UpdatedAt = now
	if val, err = json.Marshal(g); err != nil {
		return fmt.Errorf("encode %s: %w", g.Key, err)
	}
	wasOpen, wasExempt := gs.wasOpen, gs.wasExempt
	snapshot := *g
	u.writes = append(u.writes, &write{key: g.Key, rev: gs.cur.rev, val: val, then: gs.then,
		committed: func() { w.gapChanged(&snapshot, stored, wasOpen, wasExempt) }})
	return nil
}

// replay adds the messages of pending actions to those published after
// the commit.
func (w *Worker) replay(u *unit, g *gap.Gap, svc *outage.Service, actions []gap.Action) error {
	for _, a := range actions {
		m, err := w.reminderMsg(g, svc, a, a.At)
		if err != nil {
			return err
		}
		u.after = append(u.after, m)
	}
	return nil
}

// replayable splits the pending actions of a record: keep are those the
// output stream still remembers (decided less than half its duplicate
// window ago); replay are those of keep to publish again now: all of them
// for an input event, those decided by the same timer for a timer (its
// redelivery after an interruption).
func (w *Worker) replayable(pending []gap.Action, now time.Time, by string) (keep, replay []gap.Action) {
	horizon := now.Add(-w.opts.DedupWindow / 2)
	// Only the latest few can be unpublished: a crash leaves the actions of
	// its last commits, and anything older was published by whoever
	// handled the gap since (a repeat every few seconds would otherwise
	// keep hours of them).
	if len(pending) > maxPending {
		pending = pending[len(pending)-maxPending:]
	}
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

// maxPending bounds the pending actions a gap record keeps.
const maxPending = 16

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
