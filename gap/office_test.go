package gap

import (
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/promemoria/promemoria/calendar"
	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/outage"
)

var romeLoc = func() *time.Location {
	l, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		panic(err)
	}
	return l
}()

// rt returns the Europe/Rome instant written as "2006-01-02 15:04:05".
func rt(s string) time.Time {
	t, err := time.ParseInLocation(time.DateTime, s, romeLoc)
	if err != nil {
		panic(err)
	}
	return t
}

func mustHours(s string) calendar.Hours {
	h, err := calendar.ParseHours(s)
	if err != nil {
		panic(err)
	}
	return h
}

// withOffice returns policy with the given office.
func withOffice(o calendar.Office) Policy {
	p := policy
	p.Office = o
	return p
}

var (
	// officePolicy sends Monday to Friday 09:00-18:00, Italian holidays off.
	officePolicy = withOffice(calendar.Office{Cal: calendar.New(romeLoc), Hours: mustHours("Mon-Fri 09:00-18:00")})
	// alwaysPolicy knows the holidays but sends at any time: like the zero Office.
	alwaysPolicy = withOffice(calendar.Office{Cal: calendar.New(romeLoc), Hours: mustHours("always")})
)

// cigGapAt is an open CIG gap reminded seq times, the last at last, with
// the given deadline (zero: none).
func cigGapAt(seq int, last, deadline time.Time) *Gap {
	g := &Gap{Kind: events.KindCIG, Service: "pcp", TenderID: "T1", LotID: "1", RUP: testRUP, OpenedAt: rt("2026-03-02 10:00:00"), Open: true, Sequence: seq, Deadline: deadline}
	if seq > 0 {
		g.LastRemindedAt = last
	}
	return g
}

// downUp is a service down at from and up at to (zero: still down).
func downUp(from, to time.Time) *outage.Service {
	s := &outage.Service{Name: "pcp"}
	s.Apply(outage.Transition{At: from})
	if !to.IsZero() {
		s.Apply(outage.Transition{At: to, Up: true})
	}
	return s
}

// planCase is one call of Plan and what it must decide.
type planCase struct {
	name string
	p    Policy
	g    *Gap
	svc  *outage.Service
	now  time.Time
	want Decision
}

func runPlanCases(t *testing.T, tests []planCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := *tt.g
			got := Plan(tt.g, tt.svc, tt.now, tt.p)
			if !reflect.DeepEqual(got.Actions, tt.want.Actions) {
				t.Errorf("Actions = %v, want %v", got.Actions, tt.want.Actions)
			}
			if !got.WakeAt.Equal(tt.want.WakeAt) {
				t.Errorf("WakeAt = %v, want %v", got.WakeAt.In(romeLoc), tt.want.WakeAt.In(romeLoc))
			}
			if !reflect.DeepEqual(*tt.g, before) {
				t.Errorf("Plan modified the gap: %+v", *tt.g)
			}
		})
	}
}

func TestPlanOfficeHours(t *testing.T) {
	// Monday 9 March 2026 22:00 to Tuesday 02:00 in Rome: ready at 02:05.
	night := downUp(rt("2026-03-09 22:00:00"), rt("2026-03-10 02:00:00"))
	stillDown := downUp(rt("2026-03-09 22:00:00"), time.Time{})
	none := time.Time{}
	op := officePolicy
	runPlanCases(t, []planCase{
		// First reminder.
		{name: "due at 02:05 Tuesday: wait for 09:00", p: op, g: cigGapAt(0, none, none), svc: night, now: rt("2026-03-10 02:05:00"),
			want: Decision{WakeAt: rt("2026-03-10 09:00:00")}},
		{name: "never down, 02:05 Tuesday: wait for 09:00", p: op, g: cigGapAt(0, none, none), svc: nil, now: rt("2026-03-10 02:05:00"),
			want: Decision{WakeAt: rt("2026-03-10 09:00:00")}},
		{name: "just beyond tolerance before opening: wait", p: op, g: cigGapAt(0, none, none), svc: night, now: rt("2026-03-10 08:59:59").Add(-time.Nanosecond),
			want: Decision{WakeAt: rt("2026-03-10 09:00:00")}},
		{name: "a tolerance before opening: remind", p: op, g: cigGapAt(0, none, none), svc: night, now: rt("2026-03-10 08:59:59"),
			want: Decision{Actions: []Action{remind(1)}, WakeAt: rt("2026-03-11 09:00:00")}},
		{name: "09:00 Tuesday: remind, repeat Wednesday 09:00", p: op, g: cigGapAt(0, none, none), svc: night, now: rt("2026-03-10 09:00:00"),
			want: Decision{Actions: []Action{remind(1)}, WakeAt: rt("2026-03-11 09:00:00")}},
		{name: "timer fired at 20:00 (worker stopped): next opening", p: op, g: cigGapAt(0, none, none), svc: night, now: rt("2026-03-10 20:00:00"),
			want: Decision{WakeAt: rt("2026-03-11 09:00:00")}},
		{name: "Saturday: Monday 09:00", p: op, g: cigGapAt(0, none, none), svc: night, now: rt("2026-03-14 10:00:00"),
			want: Decision{WakeAt: rt("2026-03-16 09:00:00")}},

		// Repeats.
		{name: "Friday 09:00: repeat on Monday 09:00", p: op, g: cigGapAt(0, none, none), svc: night, now: rt("2026-03-13 09:00:00"),
			want: Decision{Actions: []Action{remind(1)}, WakeAt: rt("2026-03-16 09:00:00")}},
		{name: "repeat due Saturday waits for Monday", p: op, g: cigGapAt(1, rt("2026-03-13 09:00:00"), none), svc: night, now: rt("2026-03-14 09:00:00"),
			want: Decision{WakeAt: rt("2026-03-16 09:00:00")}},
		{name: "repeat on Monday 09:00", p: op, g: cigGapAt(1, rt("2026-03-13 09:00:00"), none), svc: night, now: rt("2026-03-16 09:00:00"),
			want: Decision{Actions: []Action{remind(2)}, WakeAt: rt("2026-03-17 09:00:00")}},
		{name: "Friday before Easter Monday: repeat on Tuesday", p: op, g: cigGapAt(0, none, none), svc: night, now: rt("2026-04-03 09:00:00"),
			want: Decision{Actions: []Action{remind(1)}, WakeAt: rt("2026-04-07 09:00:00")}},
		{name: "Easter Monday: nothing, Tuesday 09:00", p: op, g: cigGapAt(1, rt("2026-04-03 09:00:00"), none), svc: night, now: rt("2026-04-06 09:00:00"),
			want: Decision{WakeAt: rt("2026-04-07 09:00:00")}},
		{name: "2 June: nothing, 3 June 09:00", p: op, g: cigGapAt(1, rt("2026-06-01 10:00:00"), none), svc: night, now: rt("2026-06-02 10:00:00"),
			want: Decision{WakeAt: rt("2026-06-03 09:00:00")}},
		{name: "repeat inside office hours keeps its time", p: op, g: cigGapAt(1, rt("2026-03-09 17:30:00"), none), svc: night, now: rt("2026-03-10 17:30:00"),
			want: Decision{Actions: []Action{remind(2)}, WakeAt: rt("2026-03-11 17:30:00")}},
		{name: "timer 59s late after closing: still goes", p: op, g: cigGapAt(1, rt("2026-03-09 17:59:30"), none), svc: night, now: rt("2026-03-10 18:00:29"),
			want: Decision{Actions: []Action{remind(2)}, WakeAt: rt("2026-03-12 09:00:00")}},
		{name: "timer a minute late after closing: next morning", p: op, g: cigGapAt(1, rt("2026-03-09 17:59:30"), none), svc: night, now: rt("2026-03-10 18:00:30"),
			want: Decision{WakeAt: rt("2026-03-11 09:00:00")}},
		{name: "next morning: the late repeat goes", p: op, g: cigGapAt(1, rt("2026-03-09 17:59:30"), none), svc: night, now: rt("2026-03-11 09:00:00"),
			want: Decision{Actions: []Action{remind(2)}, WakeAt: rt("2026-03-12 09:00:00")}},

		// Escalation: at the opening of the last working day at least
		// EscalateBefore (48h) before the deadline.
		{name: "deadline Monday 12:00: escalation timer Friday 09:00", p: op, g: cigGapAt(0, none, rt("2026-03-16 12:00:00")), svc: stillDown, now: rt("2026-03-12 10:00:00"),
			want: Decision{WakeAt: rt("2026-03-13 09:00:00")}},
		{name: "deadline Monday 12:00: escalate Friday 09:00", p: op, g: cigGapAt(0, none, rt("2026-03-16 12:00:00")), svc: stillDown, now: rt("2026-03-13 09:00:00"),
			want: Decision{Actions: []Action{escalate(0)}}},
		{name: "deadline Monday 12:00: escalate a tolerance early", p: op, g: cigGapAt(0, none, rt("2026-03-16 12:00:00")), svc: stillDown, now: rt("2026-03-13 08:59:59"),
			want: Decision{Actions: []Action{escalate(0)}}},
		{name: "deadline Monday 12:00: not on Saturday 12:00", p: op, g: cigGapAt(0, none, rt("2026-03-16 12:00:00")), svc: stillDown, now: rt("2026-03-14 12:00:00"),
			want: Decision{WakeAt: rt("2026-03-16 09:00:00")}},
		{name: "escalation due while closed: next opening", p: op, g: cigGapAt(0, none, rt("2026-03-16 12:00:00")), svc: stillDown, now: rt("2026-03-13 19:00:00"),
			want: Decision{WakeAt: rt("2026-03-16 09:00:00")}},
		{name: "deadline Thursday 15:00: escalate Tuesday 09:00", p: op, g: cigGapAt(0, none, rt("2026-03-12 15:00:00")), svc: stillDown, now: rt("2026-03-10 09:00:00"),
			want: Decision{Actions: []Action{escalate(0)}}},
		{name: "deadline Wednesday 08:30: Monday opens too late, Friday 09:00", p: op, g: cigGapAt(0, none, rt("2026-03-18 08:30:00")), svc: stillDown, now: rt("2026-03-12 10:00:00"),
			want: Decision{WakeAt: rt("2026-03-13 09:00:00")}},
		{name: "deadline after Easter Monday: Friday before", p: op, g: cigGapAt(0, none, rt("2026-04-08 10:00:00")), svc: stillDown, now: rt("2026-04-02 12:00:00"),
			want: Decision{WakeAt: rt("2026-04-03 09:00:00")}},
		{name: "remind and escalate together on Friday 09:00", p: op, g: cigGapAt(0, none, rt("2026-03-16 12:00:00")), svc: night, now: rt("2026-03-13 09:00:00"),
			want: Decision{Actions: []Action{remind(1), escalate(1)}, WakeAt: rt("2026-03-16 09:00:00")}},
		{name: "escalation timer sooner than the repeat", p: op, g: cigGapAt(1, rt("2026-03-12 10:00:00"), rt("2026-03-15 09:30:00")), svc: night, now: rt("2026-03-12 20:00:00"),
			want: Decision{WakeAt: rt("2026-03-13 09:00:00")}},
		{name: "escalated: only the repeat timer", p: op, g: func() *Gap {
			g := cigGapAt(1, rt("2026-03-12 10:00:00"), rt("2026-03-15 09:30:00"))
			g.Escalated = true
			return g
		}(), svc: night, now: rt("2026-03-12 20:00:00"),
			want: Decision{WakeAt: rt("2026-03-13 10:00:00")}},

		// Closed gaps: the resolved notice is not held back.
		{name: "closed at night: resolved at once", p: op, g: func() *Gap { g := cigGapAt(2, rt("2026-03-12 10:00:00"), none); g.Open = false; return g }(), svc: night, now: rt("2026-03-14 03:00:00"),
			want: Decision{Actions: []Action{resolved(2)}}},
	})
}

// TestPlanZeroOffice: without office hours, messages go at any time of any
// day, holidays included, and escalations exactly EscalateBefore before the
// deadline; "always" with a holiday calendar is the same.
func TestPlanZeroOffice(t *testing.T) {
	night := downUp(rt("2026-03-09 22:00:00"), rt("2026-03-10 02:00:00"))
	stillDown := downUp(rt("2026-03-09 22:00:00"), time.Time{})
	none := time.Time{}
	for _, pc := range []struct {
		name string
		p    Policy
	}{{"zero", policy}, {"always", alwaysPolicy}} {
		t.Run(pc.name, func(t *testing.T) {
			p := pc.p
			runPlanCases(t, []planCase{
				{name: "02:05 Tuesday: remind at once", p: p, g: cigGapAt(0, none, none), svc: night, now: rt("2026-03-10 02:05:00"),
					want: Decision{Actions: []Action{remind(1)}, WakeAt: rt("2026-03-11 02:05:00")}},
				{name: "within settle: wait for 02:05", p: p, g: cigGapAt(0, none, none), svc: night, now: rt("2026-03-10 02:01:00"),
					want: Decision{WakeAt: rt("2026-03-10 02:05:00")}},
				{name: "Friday 09:00: repeat Saturday 09:00", p: p, g: cigGapAt(0, none, none), svc: night, now: rt("2026-03-13 09:00:00"),
					want: Decision{Actions: []Action{remind(1)}, WakeAt: rt("2026-03-14 09:00:00")}},
				{name: "repeat on Saturday", p: p, g: cigGapAt(1, rt("2026-03-13 09:00:00"), none), svc: night, now: rt("2026-03-14 09:00:00"),
					want: Decision{Actions: []Action{remind(2)}, WakeAt: rt("2026-03-15 09:00:00")}},
				{name: "repeat on Easter Monday", p: p, g: cigGapAt(1, rt("2026-04-05 09:00:00"), none), svc: night, now: rt("2026-04-06 09:00:00"),
					want: Decision{Actions: []Action{remind(2)}, WakeAt: rt("2026-04-07 09:00:00")}},
				{name: "timer at 20:00 sends", p: p, g: cigGapAt(0, none, none), svc: night, now: rt("2026-03-10 20:00:00"),
					want: Decision{Actions: []Action{remind(1)}, WakeAt: rt("2026-03-11 20:00:00")}},
				{name: "deadline Monday 12:00: escalation timer Saturday 12:00", p: p, g: cigGapAt(0, none, rt("2026-03-16 12:00:00")), svc: stillDown, now: rt("2026-03-13 09:00:00"),
					want: Decision{WakeAt: rt("2026-03-14 12:00:00")}},
				{name: "deadline Monday 12:00: escalate Saturday 12:00", p: p, g: cigGapAt(0, none, rt("2026-03-16 12:00:00")), svc: stillDown, now: rt("2026-03-14 12:00:00"),
					want: Decision{Actions: []Action{escalate(0)}}},
			})
		})
	}
}

// TestPlanAlwaysIsZero runs the original table with an "always" office
// that knows the holidays: it must decide exactly as the zero Office.
func TestPlanAlwaysIsZero(t *testing.T) {
	restored := svc(dn(0), upAt(2*day))
	for _, now := range []time.Time{pt(time.Hour), pt(2*day + time.Minute), pt(2*day + policy.Settle), pt(4*day - time.Second), pt(8 * day), pt(11 * day)} {
		for _, g := range []*Gap{openGap(0, 0, never), openGap(1, 3*day, never), openGap(2, 3*day, 5*day+time.Hour), openGap(0, 0, 10*day)} {
			for _, s := range []*outage.Service{nil, restored, svc(dn(0))} {
				want := Plan(g, s, now, policy)
				if got := Plan(g, s, now, alwaysPolicy); !reflect.DeepEqual(got, want) {
					t.Errorf("at %v gap %+v: always %+v, zero %+v", now, *g, got, want)
				}
			}
		}
	}
}

// contributionGapAt is an open contribution gap of a lot whose CIG is cig
// ("" while it has none), with the given deadline (never: none).
func contributionGapAt(cig string, seq int, deadline time.Duration) *Gap {
	op := &events.Operator{FiscalCode: "IT01234567890", Name: "Edil Srl", Email: "edil@pec.example.it"}
	g := &Gap{Kind: events.KindContribution, Service: "payments", TenderID: "T1", LotID: "1", CIG: cig, Operator: op, RUP: testRUP,
		OpenedAt: pt(time.Hour), Open: true, Sequence: seq, ContributionCents: 3500, ContributionKnown: true, ContributionTable: "anac-2021"}
	if deadline != never {
		g.Deadline = pt(deadline)
	}
	return g
}

func TestPlanContributionWaitsForCIG(t *testing.T) {
	restored := svc(dn(0), upAt(2*day))
	ready := pt(2*day + policy.Settle)
	escalated := func(g *Gap) *Gap { g.Escalated, g.EscalatedAt = true, pt(8*day); return g }
	// Tuesday 10 March 2026 at 02:05 in Rome, for the office case.
	tue0205 := rt("2026-03-10 02:05:00")
	runPlanCases(t, []planCase{
		{name: "payments up, no CIG, no deadline: nothing, no timer", p: policy, g: contributionGapAt("", 0, never), svc: nil, now: pt(time.Hour),
			want: Decision{}},
		{name: "payments up, no CIG: only the escalation timer", p: policy, g: contributionGapAt("", 0, 10*day), svc: nil, now: pt(time.Hour),
			want: Decision{WakeAt: pt(8 * day)}},
		{name: "payments up, no CIG, deadline near: escalate", p: policy, g: contributionGapAt("", 0, 10*day), svc: nil, now: pt(8 * day),
			want: Decision{Actions: []Action{escalate(0)}}},
		{name: "payments settled, no CIG: nothing", p: policy, g: contributionGapAt("", 0, never), svc: restored, now: pt(4 * day),
			want: Decision{}},
		{name: "payments down, no CIG: nothing", p: policy, g: contributionGapAt("", 0, never), svc: svc(dn(0)), now: pt(time.Hour),
			want: Decision{}},
		{name: "CIG arrived, payments up: remind at once", p: policy, g: contributionGapAt("B00012EADB", 0, 10*day), svc: nil, now: pt(3 * day),
			want: Decision{Actions: []Action{remind(1)}, WakeAt: pt(4 * day)}},
		{name: "CIG arrived after the escalation: remind", p: policy, g: escalated(contributionGapAt("B00012EADB", 0, 10*day)), svc: nil, now: pt(9 * day),
			want: Decision{Actions: []Action{remind(1)}, WakeAt: pt(10 * day)}},
		{name: "CIG, payments within settle: wait for settle", p: policy, g: contributionGapAt("B00012EADB", 0, never), svc: restored, now: pt(2*day + time.Minute),
			want: Decision{WakeAt: ready}},
		{name: "CIG, payments down: nothing", p: policy, g: contributionGapAt("B00012EADB", 0, never), svc: svc(dn(0)), now: pt(time.Hour),
			want: Decision{}},
		{name: "CIG arrived at night: office opening", p: officePolicy, g: contributionGapAt("B00012EADB", 0, never), svc: nil, now: tue0205,
			want: Decision{WakeAt: rt("2026-03-10 09:00:00")}},
		{name: "a CIG gap needs no CIG", p: policy, g: openGap(0, 0, never), svc: nil, now: pt(time.Hour),
			want: Decision{Actions: []Action{remind(1)}, WakeAt: pt(time.Hour + day)}},
	})

	t.Run("reminded as soon as the CIG arrives", func(t *testing.T) {
		g := contributionGapAt("", 0, 10*day)
		d := Plan(g, restored, pt(3*day), policy)
		if len(d.Actions) != 0 || !d.WakeAt.Equal(pt(8*day)) {
			t.Fatalf("without CIG: %+v, want nothing until the escalation", d)
		}
		g.CIG = "B00012EADB" // tender.cig_assigned merged into the gap
		d = Plan(g, restored, pt(3*day+time.Hour), policy)
		if !reflect.DeepEqual(d.Actions, []Action{remind(1)}) || !d.WakeAt.Equal(pt(4*day+time.Hour)) {
			t.Errorf("with CIG: %+v, want remind#1 now and a repeat a day later", d)
		}
	})
}

func TestNeedsCIG(t *testing.T) {
	tests := []struct {
		name string
		g    Gap
		want bool
	}{
		{"contribution without CIG", Gap{Kind: events.KindContribution}, true},
		{"contribution with CIG", Gap{Kind: events.KindContribution, CIG: "B00012EADB"}, false},
		{"CIG gap without CIG", Gap{Kind: events.KindCIG}, false},
		{"CIG gap with CIG", Gap{Kind: events.KindCIG, CIG: "B00012EADB"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.g.NeedsCIG(); got != tt.want {
				t.Errorf("NeedsCIG = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestPlanStoryOfficeHours drives a gap through a week with office hours:
// every message goes while the office is open.
func TestPlanStoryOfficeHours(t *testing.T) {
	// Down Monday 9 March 2026 22:00, up Tuesday 02:00; a lot published
	// without CIG on Monday; offer deadline Monday 16 March 12:00.
	trs := []outage.Transition{{At: rt("2026-03-09 22:00:00")}, {At: rt("2026-03-10 02:00:00"), Up: true}}
	tests := []struct {
		name string
		skew time.Duration
		want []string
	}{
		{"timers on time", 0, []string{
			"remind#1 Tue 09:00", "remind#2 Wed 09:00", "remind#3 Thu 09:00", "remind#4 Fri 09:00", "escalate#4 Fri 09:00", "remind#5 Mon 09:00",
		}},
		{"timers an hour late", time.Hour, []string{
			"remind#1 Tue 10:00", "remind#2 Wed 11:00", "remind#3 Thu 12:00", "escalate#3 Fri 10:00", "remind#4 Fri 13:00", "remind#5 Mon 10:00",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := cigGapAt(0, time.Time{}, rt("2026-03-16 12:00:00"))
			got := simulateWith(t, g, rt("2026-03-09 23:00:00"), trs, rt("2026-03-16 12:00:00"), tt.skew, officePolicy)
			var names []string
			for _, s := range got {
				names = append(names, s.action.Type.String()+"#"+strconv.Itoa(s.action.Sequence)+" "+s.at.In(romeLoc).Format("Mon 15:04"))
				if !officePolicy.Office.Open(s.at) {
					t.Errorf("%v sent at %v, office closed", s.action, s.at.In(romeLoc))
				}
			}
			if !reflect.DeepEqual(names, tt.want) {
				t.Errorf("sent %q\nwant %q", names, tt.want)
			}
		})
	}
}
