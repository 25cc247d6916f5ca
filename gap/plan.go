package gap

import (
	"time"

	"github.com/promemoria/promemoria/calendar"
	"github.com/promemoria/promemoria/outage"
)

// Policy holds the timing rules of reminders.
type Policy struct {
	// Settle is how long a service must stay up before its gaps are reminded.
	Settle time.Duration
	// RepeatInterval separates two reminders of the same open gap.
	RepeatInterval time.Duration
	// EscalateBefore is how long before the deadline the escalation goes.
	EscalateBefore time.Duration
	// Tolerance is how early a timer may fire and still count as due: the
	// broker's schedules have one-second resolution.
	Tolerance time.Duration
	// Office says when messages may go out: reminders and repeats that fall
	// due outside office hours or on a closed day wait for the next
	// opening, and escalations go at the opening of the last working day
	// at least EscalateBefore before the deadline. The zero Office sends
	// at any time.
	Office calendar.Office
}

// lateGrace is how late after its due time a message may still go while
// the office has just closed: a timer that fires a moment after closing
// time is not put off to the next morning.
const lateGrace = time.Minute

// DefaultPolicy returns the documented defaults.
func DefaultPolicy() Policy {
	return Policy{Settle: 5 * time.Minute, RepeatInterval: 24 * time.Hour, EscalateBefore: 48 * time.Hour, Tolerance: time.Second}
}

// ActionType is what Plan asks to send.
type ActionType int

// The actions Plan can ask for, in the order they are sent.
const (
	ActRemind ActionType = iota + 1
	ActEscalate
	ActResolved
)

// String returns the action's name.
func (a ActionType) String() string {
	switch a {
	case ActRemind:
		return "remind"
	case ActEscalate:
		return "escalate"
	case ActResolved:
		return "resolved"
	}
	return "unknown"
}

// Action is one message to send; Sequence is the reminder's sequence.
type Action struct {
	Type     ActionType `json:"type"`
	Sequence int        `json:"sequence"`
	// At is when the action was decided and By the timer that decided it
	// ("" for an input event): a pending action is published again, in case
	// its first publication was interrupted, only while the output stream
	// still remembers its id.
	At time.Time `json:"at,omitzero"`
	By string    `json:"by,omitempty"`
}

// Decision is the outcome of Plan: the messages to send now, in order, and
// when the gap must be looked at again (zero: never, unless an event or the
// service's restoration changes something).
type Decision struct {
	Actions []Action
	WakeAt  time.Time
}

// Plan decides what to send about g at now, given svc, the state of the
// service g depends on (nil means never reported down). It is a pure
// function: the same inputs always give the same decision.
//
// An open gap is reminded once its service is ready (up for Settle) and,
// for a contribution, once its lot has a CIG; then every RepeatInterval.
// Each reminder waits for office hours. The escalation to the RUP goes
// whatever the service's state, when the deadline is near.
func Plan(g *Gap, svc *outage.Service, now time.Time, p Policy) Decision {
	var d Decision
	if !g.Open {
		// Whoever was told about the gap (a reminder or an escalation)
		// hears that it is resolved.
		if (g.Sequence > 0 || g.Escalated) && !g.ResolvedSent {
			d.Actions = append(d.Actions, Action{Type: ActResolved, Sequence: g.Sequence})
		}
		return d
	}
	if svc == nil {
		svc = &outage.Service{}
	}
	seq := g.Sequence
	if ready, ok := svc.ReadyAt(p.Settle); ok && !g.NeedsCIG() {
		due := ready
		if seq > 0 {
			// A last reminder "in the future" means the clock went back:
			// count the interval from now rather than wait for the clock to
			// catch up.
			last := g.LastRemindedAt
			if last.After(now) {
				last = now
			}
			due = later(due, last.Add(p.RepeatInterval))
		}
		due = p.Office.Next(due)
		if p.sendable(due, now) {
			seq++
			d.Actions = append(d.Actions, Action{Type: ActRemind, Sequence: seq})
			due = p.Office.Next(now.Add(p.RepeatInterval))
		} else if !now.Before(due.Add(-p.Tolerance)) {
			due = p.Office.Next(now) // due while the office is closed
		}
		d.WakeAt = due
	}
	// The escalation goes to the RUP: it waits until the tender, which
	// names the RUP, is known.
	if !g.Deadline.IsZero() && !g.Escalated && g.RUP.Email != "" {
		at := p.Office.EscalationAt(g.Deadline, p.EscalateBefore)
		switch {
		case p.sendable(at, now):
			d.Actions = append(d.Actions, Action{Type: ActEscalate, Sequence: seq})
		case !now.Before(at.Add(-p.Tolerance)):
			d.WakeAt = earlier(d.WakeAt, p.Office.Next(now))
		default:
			d.WakeAt = earlier(d.WakeAt, at)
		}
	}
	return d
}

// sendable reports whether a message due at due may go at now: it is due
// (within the tolerance) and the office is open, or closed only just.
func (p Policy) sendable(due, now time.Time) bool {
	if now.Before(due.Add(-p.Tolerance)) {
		return false
	}
	return p.Office.Open(now) || now.Sub(due) < lateGrace
}

// Record applies a sent action to g.
func (g *Gap) Record(a Action, now time.Time) {
	switch a.Type {
	case ActRemind:
		g.Sequence = a.Sequence
		g.LastRemindedAt = now
	case ActEscalate:
		g.Escalated = true
		g.EscalatedAt = now
	case ActResolved:
		g.ResolvedSent = true
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}
