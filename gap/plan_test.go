package gap

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/outage"
)

var policy = Policy{Settle: 5 * time.Minute, RepeatInterval: 24 * time.Hour, EscalateBefore: 48 * time.Hour, Tolerance: time.Second}

// p0 is when the ANAC portal went down in May 2021.
var p0 = time.Date(2021, 5, 3, 9, 0, 0, 0, time.UTC)

const (
	day   = 24 * time.Hour
	never = time.Duration(-1 << 63)
)

func pt(d time.Duration) time.Time { return p0.Add(d) }

// svc builds a service from its transitions.
func svc(trs ...outage.Transition) *outage.Service {
	s := &outage.Service{Name: "smartcig"}
	for _, t := range trs {
		s.Apply(t)
	}
	return s
}

func dn(d time.Duration) outage.Transition { return outage.Transition{At: pt(d)} }
func upAt(d time.Duration) outage.Transition {
	return outage.Transition{At: pt(d), Up: true}
}

func remind(seq int) Action   { return Action{Type: ActRemind, Sequence: seq} }
func escalate(seq int) Action { return Action{Type: ActEscalate, Sequence: seq} }
func resolved(seq int) Action { return Action{Type: ActResolved, Sequence: seq} }

// openGap is a CIG gap opened during the outage, reminded seq times, the
// last at last (ignored if seq is 0), with the given deadline (never: none).
// testRUP is the RUP of the tests' gaps: escalations go to the RUP.
var testRUP = events.Person{Name: "Maria Rossi", Email: "rup@comune.example.it"}

func openGap(seq int, last, deadline time.Duration) *Gap {
	g := &Gap{Kind: events.KindCIG, Service: "smartcig", TenderID: "T1", LotID: "1", RUP: testRUP, OpenedAt: pt(time.Hour), Open: true, Sequence: seq}
	if seq > 0 {
		g.LastRemindedAt = pt(last)
	}
	if deadline != never {
		g.Deadline = pt(deadline)
	}
	return g
}

func TestPlan(t *testing.T) {
	restored := svc(dn(0), upAt(2*day)) // down 48h, up at p0+2d
	ready := pt(2*day + policy.Settle)  // first moment gaps may be reminded
	tests := []struct {
		name string
		g    *Gap
		svc  *outage.Service
		now  time.Time
		want Decision
	}{
		// Service never down.
		{name: "never down (nil): remind at once", g: openGap(0, 0, never), svc: nil, now: pt(time.Hour),
			want: Decision{Actions: []Action{remind(1)}, WakeAt: pt(time.Hour + day)}},
		{name: "never down (no history): remind at once", g: openGap(0, 0, never), svc: &outage.Service{}, now: pt(time.Hour),
			want: Decision{Actions: []Action{remind(1)}, WakeAt: pt(time.Hour + day)}},

		// Service down.
		{name: "down: nothing, no timer", g: openGap(0, 0, never), svc: svc(dn(0)), now: pt(time.Hour),
			want: Decision{}},
		{name: "down, reminded before: nothing, no timer", g: openGap(3, -3*day, never), svc: svc(dn(0)), now: pt(5 * day),
			want: Decision{}},
		{name: "down: timer only for escalation", g: openGap(0, 0, 10*day), svc: svc(dn(0)), now: pt(time.Hour),
			want: Decision{WakeAt: pt(8 * day)}},
		{name: "down: escalation still goes", g: openGap(0, 0, 10*day), svc: svc(dn(0)), now: pt(8 * day),
			want: Decision{Actions: []Action{escalate(0)}}},
		{name: "down: escalation with deadline passed", g: openGap(0, 0, 10*day), svc: svc(dn(0)), now: pt(11 * day),
			want: Decision{Actions: []Action{escalate(0)}}},
		{name: "down: escalated, nothing more", g: func() *Gap { g := openGap(0, 0, 10*day); g.Escalated = true; return g }(), svc: svc(dn(0)), now: pt(11 * day),
			want: Decision{}},

		// Restored, within settle.
		{name: "up within settle: wait for settle", g: openGap(0, 0, never), svc: restored, now: pt(2*day + 2*time.Minute),
			want: Decision{WakeAt: ready}},
		{name: "up at restoration instant: wait for settle", g: openGap(0, 0, never), svc: restored, now: pt(2 * day),
			want: Decision{WakeAt: ready}},
		{name: "up just before tolerance: wait", g: openGap(0, 0, never), svc: restored, now: ready.Add(-time.Second - time.Nanosecond),
			want: Decision{WakeAt: ready}},
		{name: "up within settle, deadline near: escalate now", g: openGap(0, 0, 2*day+time.Hour), svc: restored, now: pt(2 * day),
			want: Decision{Actions: []Action{escalate(0)}, WakeAt: ready}},
		{name: "flap inside settle restarts it", g: openGap(0, 0, never), svc: svc(dn(0), upAt(2*day), dn(2*day+time.Minute), upAt(2*day+3*time.Minute)), now: ready,
			want: Decision{WakeAt: pt(2*day + 3*time.Minute + policy.Settle)}},

		// Restored, settled.
		{name: "settled: first reminder", g: openGap(0, 0, never), svc: restored, now: ready,
			want: Decision{Actions: []Action{remind(1)}, WakeAt: ready.Add(day)}},
		{name: "settled, timer a tolerance early: first reminder", g: openGap(0, 0, never), svc: restored, now: ready.Add(-time.Second),
			want: Decision{Actions: []Action{remind(1)}, WakeAt: ready.Add(-time.Second + day)}},
		{name: "settled long ago: first reminder now", g: openGap(0, 0, never), svc: restored, now: pt(4 * day),
			want: Decision{Actions: []Action{remind(1)}, WakeAt: pt(5 * day)}},

		// Repeats.
		{name: "repeat not yet due", g: openGap(1, 3*day, never), svc: restored, now: pt(3*day + 23*time.Hour),
			want: Decision{WakeAt: pt(4 * day)}},
		{name: "repeat due exactly", g: openGap(1, 3*day, never), svc: restored, now: pt(4 * day),
			want: Decision{Actions: []Action{remind(2)}, WakeAt: pt(5 * day)}},
		{name: "repeat a tolerance early", g: openGap(1, 3*day, never), svc: restored, now: pt(4*day - time.Second),
			want: Decision{Actions: []Action{remind(2)}, WakeAt: pt(5*day - time.Second)}},
		{name: "repeat beyond tolerance early", g: openGap(1, 3*day, never), svc: restored, now: pt(4*day - time.Second - time.Nanosecond),
			want: Decision{WakeAt: pt(4 * day)}},
		{name: "clock jumps forward days: one reminder", g: openGap(4, 3*day, never), svc: restored, now: pt(9*day + 7*time.Hour),
			want: Decision{Actions: []Action{remind(5)}, WakeAt: pt(10*day + 7*time.Hour)}},
		// The interval then counts from the clock's now, not from a last
		// reminder in its future.
		{name: "clock jumps backward: none", g: openGap(2, 3*day, never), svc: restored, now: pt(day),
			want: Decision{WakeAt: pt(2*day + policy.Settle)}},
		{name: "clock jumps backward before restoration: none", g: openGap(2, 3*day, never), svc: restored, now: pt(2*day + time.Minute),
			want: Decision{WakeAt: pt(3*day + time.Minute)}},
		{name: "reminded before a new outage: repeat waits for settle", g: openGap(1, 2*day+10*time.Minute, never),
			svc: svc(dn(0), upAt(2*day), dn(2*day+time.Hour), upAt(4*day)), now: pt(4*day + time.Minute),
			want: Decision{WakeAt: pt(4*day + policy.Settle)}},
		{name: "reminded before a new outage: repeat after settle", g: openGap(1, 2*day+10*time.Minute, never),
			svc: svc(dn(0), upAt(2*day), dn(2*day+time.Hour), upAt(4*day)), now: pt(4*day + policy.Settle),
			want: Decision{Actions: []Action{remind(2)}, WakeAt: pt(5*day + policy.Settle)}},
		{name: "short outage: repeat still waits the interval", g: openGap(1, 2*day+10*time.Minute, never),
			svc: svc(dn(0), upAt(2*day), dn(2*day+time.Hour), upAt(2*day+2*time.Hour)), now: pt(2*day + 2*time.Hour + policy.Settle),
			want: Decision{WakeAt: pt(3*day + 10*time.Minute)}},

		// Escalation.
		{name: "escalation not yet: timer at deadline-48h", g: openGap(1, 3*day, 7*day), svc: restored, now: pt(3*day + time.Hour),
			want: Decision{WakeAt: pt(4 * day)}},
		{name: "escalation timer sooner than repeat", g: openGap(1, 3*day, 5*day+2*time.Hour), svc: restored, now: pt(3*day + time.Hour),
			want: Decision{WakeAt: pt(3*day + 2*time.Hour)}},
		{name: "escalation exactly at deadline-48h", g: openGap(1, 3*day, 5*day+2*time.Hour), svc: restored, now: pt(3*day + 2*time.Hour),
			want: Decision{Actions: []Action{escalate(1)}, WakeAt: pt(4 * day)}},
		{name: "escalation a tolerance early", g: openGap(1, 3*day, 5*day+2*time.Hour), svc: restored, now: pt(3*day + 2*time.Hour - time.Second),
			want: Decision{Actions: []Action{escalate(1)}, WakeAt: pt(4 * day)}},
		{name: "escalation beyond tolerance early", g: openGap(1, 3*day, 5*day+2*time.Hour), svc: restored, now: pt(3*day + 2*time.Hour - time.Second - time.Nanosecond),
			want: Decision{WakeAt: pt(3*day + 2*time.Hour)}},
		{name: "escalated: never again", g: func() *Gap { g := openGap(1, 3*day, 4*day); g.Escalated = true; return g }(), svc: restored, now: pt(3*day + time.Hour),
			want: Decision{WakeAt: pt(4 * day)}},
		{name: "escalated, deadline passed: only repeats", g: func() *Gap { g := openGap(1, 3*day, 4*day); g.Escalated = true; return g }(), svc: restored, now: pt(6 * day),
			want: Decision{Actions: []Action{remind(2)}, WakeAt: pt(7 * day)}},
		{name: "deadline already passed at first plan", g: openGap(0, 0, -day), svc: nil, now: pt(time.Hour),
			want: Decision{Actions: []Action{remind(1), escalate(1)}, WakeAt: pt(time.Hour + day)}},
		{name: "remind then escalate in one decision", g: openGap(2, 3*day, 5*day+time.Hour), svc: restored, now: pt(4 * day),
			want: Decision{Actions: []Action{remind(3), escalate(3)}, WakeAt: pt(5 * day)}},
		{name: "remind and escalate when settled", g: openGap(0, 0, 3*day), svc: restored, now: ready,
			want: Decision{Actions: []Action{remind(1), escalate(1)}, WakeAt: ready.Add(day)}},

		// Closed gaps.
		{name: "closed after reminders: resolved once", g: func() *Gap { g := openGap(3, 3*day, 10*day); g.Open = false; return g }(), svc: restored, now: pt(5 * day),
			want: Decision{Actions: []Action{resolved(3)}}},
		{name: "closed while service down: resolved", g: func() *Gap { g := openGap(2, 3*day, 10*day); g.Open = false; return g }(), svc: svc(dn(0)), now: pt(5 * day),
			want: Decision{Actions: []Action{resolved(2)}}},
		{name: "closed, resolved sent: nothing", g: func() *Gap { g := openGap(3, 3*day, 10*day); g.Open, g.ResolvedSent = false, true; return g }(), svc: restored, now: pt(5 * day),
			want: Decision{}},
		{name: "closed never reminded: nothing", g: func() *Gap { g := openGap(0, 0, 10*day); g.Open = false; return g }(), svc: restored, now: pt(5 * day),
			want: Decision{}},
		{name: "closed, deadline passed: no escalation", g: func() *Gap { g := openGap(1, 3*day, 4*day); g.Open = false; return g }(), svc: restored, now: pt(5 * day),
			want: Decision{Actions: []Action{resolved(1)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := *tt.g
			got := Plan(tt.g, tt.svc, tt.now, policy)
			if !reflect.DeepEqual(got.Actions, tt.want.Actions) {
				t.Errorf("Actions = %v, want %v", got.Actions, tt.want.Actions)
			}
			if !got.WakeAt.Equal(tt.want.WakeAt) {
				t.Errorf("WakeAt = %v, want %v", got.WakeAt, tt.want.WakeAt)
			}
			if !reflect.DeepEqual(*tt.g, before) {
				t.Errorf("Plan modified the gap: %+v", *tt.g)
			}
			if again := Plan(tt.g, tt.svc, tt.now, policy); !reflect.DeepEqual(again, got) {
				t.Errorf("Plan not deterministic: %+v then %+v", got, again)
			}
		})
	}
}

func TestRecord(t *testing.T) {
	now := pt(4 * day)
	tests := []struct {
		name   string
		action Action
		check  func(t *testing.T, g *Gap)
	}{
		{"remind", remind(3), func(t *testing.T, g *Gap) {
			if g.Sequence != 3 || !g.LastRemindedAt.Equal(now) {
				t.Errorf("Sequence %d LastRemindedAt %v; want 3 %v", g.Sequence, g.LastRemindedAt, now)
			}
			if g.Escalated || g.ResolvedSent {
				t.Errorf("remind set escalated %v / resolved %v", g.Escalated, g.ResolvedSent)
			}
		}},
		{"escalate", escalate(2), func(t *testing.T, g *Gap) {
			if !g.Escalated || !g.EscalatedAt.Equal(now) {
				t.Errorf("Escalated %v at %v; want true %v", g.Escalated, g.EscalatedAt, now)
			}
			if g.Sequence != 2 || !g.LastRemindedAt.Equal(pt(3*day)) {
				t.Errorf("escalate changed the sequence: %d %v", g.Sequence, g.LastRemindedAt)
			}
		}},
		{"resolved", resolved(2), func(t *testing.T, g *Gap) {
			if !g.ResolvedSent {
				t.Error("ResolvedSent = false")
			}
			if g.Sequence != 2 || g.Escalated {
				t.Errorf("resolved changed progress: %d %v", g.Sequence, g.Escalated)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := openGap(2, 3*day, 10*day)
			g.Record(tt.action, now)
			tt.check(t, g)
		})
	}
}

func TestRecordThenPlan(t *testing.T) {
	t.Run("resolved goes once", func(t *testing.T) {
		g := openGap(2, 3*day, never)
		g.Open = false
		d := Plan(g, nil, pt(5*day), policy)
		if !reflect.DeepEqual(d.Actions, []Action{resolved(2)}) {
			t.Fatalf("Actions = %v", d.Actions)
		}
		g.Record(d.Actions[0], pt(5*day))
		if d := Plan(g, nil, pt(6*day), policy); len(d.Actions) != 0 || !d.WakeAt.IsZero() {
			t.Errorf("after Record: %+v, want nothing", d)
		}
	})
	t.Run("escalation goes once", func(t *testing.T) {
		g := openGap(0, 0, 3*day)
		down := svc(dn(0))
		d := Plan(g, down, pt(day), policy)
		if !reflect.DeepEqual(d.Actions, []Action{escalate(0)}) {
			t.Fatalf("Actions = %v", d.Actions)
		}
		g.Record(d.Actions[0], pt(day))
		for _, now := range []time.Time{pt(day), pt(2 * day), pt(3 * day), pt(30 * day)} {
			if d := Plan(g, down, now, policy); len(d.Actions) != 0 || !d.WakeAt.IsZero() {
				t.Errorf("at %v after Record: %+v, want nothing", now, d)
			}
		}
	})
	t.Run("repeat follows the recorded time", func(t *testing.T) {
		g := openGap(0, 0, never)
		d := Plan(g, nil, pt(time.Hour), policy)
		for _, a := range d.Actions {
			g.Record(a, pt(time.Hour))
		}
		if g.Sequence != 1 {
			t.Fatalf("Sequence = %d", g.Sequence)
		}
		if d := Plan(g, nil, pt(2*time.Hour), policy); len(d.Actions) != 0 || !d.WakeAt.Equal(pt(time.Hour+day)) {
			t.Errorf("an hour later: %+v, want nothing until %v", d, pt(time.Hour+day))
		}
	})
}

type sent struct {
	at     time.Time
	action Action
}

func (s sent) String() string {
	return fmt.Sprintf("%s#%d@%s", s.action.Type, s.action.Sequence, s.at.Sub(p0))
}

// simulate drives the gap as the worker does: Plan when the gap is opened,
// at each transition of the service (which only knows the transitions whose
// time has come) and each time its timer fires, skew after WakeAt; it
// returns what was sent up to end.
func simulate(t *testing.T, g *Gap, opened time.Time, trs []outage.Transition, end time.Time, skew time.Duration) []sent {
	t.Helper()
	return simulateWith(t, g, opened, trs, end, skew, policy)
}

// simulateWith is simulate under the policy p.
func simulateWith(t *testing.T, g *Gap, opened time.Time, trs []outage.Transition, end time.Time, skew time.Duration, p Policy) []sent {
	t.Helper()
	evs := []time.Time{opened}
	for _, tr := range trs {
		evs = append(evs, tr.At)
	}
	var out []sent
	var wake time.Time
	for steps := 0; ; steps++ {
		if steps > 1000 {
			t.Fatal("simulation does not converge")
		}
		var now time.Time
		switch {
		case len(evs) > 0 && (wake.IsZero() || !evs[0].After(wake.Add(skew))):
			now, evs = evs[0], evs[1:]
		case !wake.IsZero():
			now = wake.Add(skew)
		default:
			return out
		}
		if now.After(end) {
			return out
		}
		service := &outage.Service{Name: g.Service}
		for _, tr := range trs {
			if !tr.At.After(now) {
				service.Apply(tr)
			}
		}
		d := Plan(g, service, now, p)
		for _, a := range d.Actions {
			g.Record(a, now)
			out = append(out, sent{now, a})
		}
		wake = d.WakeAt
	}
}

func TestPlanStory(t *testing.T) {
	// Portal down at p0, a lot published without CIG an hour later, the
	// service restored after 48h; the offer deadline is 10 days on.
	trs := []outage.Transition{dn(0), upAt(2 * day)}
	tests := []struct {
		name string
		skew time.Duration
		want []string
	}{
		{"timers on time", 0, []string{
			"remind#1@48h5m0s", "remind#2@72h5m0s", "remind#3@96h5m0s", "remind#4@120h5m0s",
			"remind#5@144h5m0s", "remind#6@168h5m0s", "escalate#6@192h0m0s", "remind#7@192h5m0s", "remind#8@216h5m0s",
		}},
		{"timers a tolerance early", -time.Second, []string{
			"remind#1@48h4m59s", "remind#2@72h4m58s", "remind#3@96h4m57s", "remind#4@120h4m56s",
			"remind#5@144h4m55s", "remind#6@168h4m54s", "escalate#6@191h59m59s", "remind#7@192h4m53s", "remind#8@216h4m52s",
		}},
		{"timers an hour late", time.Hour, []string{
			"remind#1@49h5m0s", "remind#2@74h5m0s", "remind#3@99h5m0s", "remind#4@124h5m0s",
			"remind#5@149h5m0s", "remind#6@174h5m0s", "escalate#6@193h0m0s", "remind#7@199h5m0s", "remind#8@224h5m0s",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := openGap(0, 0, 10*day)
			got := simulate(t, g, pt(time.Hour), trs, pt(10*day), tt.skew)
			var names []string
			for _, s := range got {
				names = append(names, s.String())
			}
			if !reflect.DeepEqual(names, tt.want) {
				t.Errorf("sent %v\nwant %v", names, tt.want)
			}
		})
	}
	t.Run("flap inside settle sends nothing early", func(t *testing.T) {
		g := openGap(0, 0, never)
		flap := []outage.Transition{dn(0), upAt(2 * day), dn(2*day + 2*time.Minute), upAt(2*day + 3*time.Minute)}
		got := simulate(t, g, pt(time.Hour), flap, pt(2*day+time.Hour), 0)
		want := []sent{{pt(2*day + 8*time.Minute), remind(1)}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("sent %v, want %v", got, want)
		}
	})
	t.Run("clock jump forward sends one reminder", func(t *testing.T) {
		g := openGap(0, 0, never)
		// The worker is stopped from day 3 to day 9: its timer fires once, late.
		got := simulate(t, g, pt(time.Hour), trs, pt(3*day), 0)
		if len(got) != 1 {
			t.Fatalf("before the stop: sent %v", got)
		}
		d := Plan(g, svc(trs...), pt(9*day), policy)
		if !reflect.DeepEqual(d.Actions, []Action{remind(2)}) || !d.WakeAt.Equal(pt(10*day)) {
			t.Errorf("after the stop: %+v, want one remind#2 and a timer at day 10", d)
		}
	})
}

func TestActionTypeString(t *testing.T) {
	for a, want := range map[ActionType]string{ActRemind: "remind", ActEscalate: "escalate", ActResolved: "resolved", 0: "unknown", 9: "unknown"} {
		if got := a.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(a), got, want)
		}
	}
}

func TestDefaultPolicy(t *testing.T) {
	got := DefaultPolicy()
	if !reflect.DeepEqual(got, policy) {
		t.Errorf("DefaultPolicy = %+v, want %+v", got, policy)
	}
	// The default sends at any time: office hours are configuration.
	if got.Office.Cal != nil || !got.Office.Hours.Always() {
		t.Errorf("DefaultPolicy().Office = %+v, want the zero Office", got.Office)
	}
}

// TestEscalationWaitsForTheRUP checks that a gap whose tender is not known
// yet (no RUP) is not escalated, and is once the RUP is known.
func TestEscalationWaitsForTheRUP(t *testing.T) {
	g := openGap(0, 0, 2*time.Hour)
	g.Kind, g.Service, g.CIG, g.RUP = events.KindContribution, "payments", "", events.Person{}
	now := pt(2 * time.Hour)
	if d := Plan(g, nil, now, policy); len(d.Actions) != 0 {
		t.Fatalf("no RUP: actions %v, want none", d.Actions)
	}
	g.RUP = testRUP
	if d := Plan(g, nil, now, policy); len(d.Actions) != 1 || d.Actions[0].Type != ActEscalate {
		t.Errorf("RUP known: actions %v, want one escalation", d.Actions)
	}
}
