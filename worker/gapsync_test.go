package worker

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/gap"
	"github.com/promemoria/promemoria/outage"
)

// These tests take the sync of one gap through its steps with no broker:
// the steps decide, the flush (tested with a real server elsewhere) does
// the round trips.

func pureWorker(t *testing.T) *Worker {
	t.Helper()
	o := Options{Policy: gap.Policy{Settle: time.Minute, RepeatInterval: time.Hour, EscalateBefore: 48 * time.Hour, Tolerance: time.Second}}
	if err := o.setDefaults(); err != nil {
		t.Fatal(err)
	}
	return &Worker{opts: o, svcs: newServices(), metrics: newMetrics(), log: zerolog.Nop(), store: newStore(nil, BucketState, 0)}
}

var syncNow = time.Date(2026, 12, 2, 10, 0, 30, 0, time.UTC)

func cigSpec(open bool) *gap.Gap {
	g := &gap.Gap{
		Kind: events.KindCIG, Service: "pcp", TenderID: "T-1", LotID: "1", Open: open,
		RUP: events.Person{Name: "Maria Rossi", Email: "rup@comune.example.it"}, OpenedAt: syncNow.Add(-time.Hour),
		Deadline: syncNow.Add(30 * 24 * time.Hour),
	}
	if !open {
		g.Resolution = &events.Resolution{By: events.TypeCIGAssigned, CIG: "9876543210", At: syncNow}
	}
	g.Key = gap.Key(g.Service, g.Identity())
	return g
}

func stored(t *testing.T, g *gap.Gap, rev uint64) record {
	t.Helper()
	raw, err := json.Marshal(g)
	if err != nil {
		t.Fatal(err)
	}
	return record{key: g.Key, raw: raw, rev: rev}
}

func TestSyncNewGapRemindsAndArms(t *testing.T) {
	w := pureWorker(t)
	spec := cigSpec(true)
	u := &unit{}
	if err := w.syncGap(u, gapSync{cur: record{key: spec.Key}, spec: spec, derived: 1, now: syncNow}); err != nil {
		t.Fatal(err)
	}
	if len(u.writes) != 1 || u.writes[0].rev != 0 || len(u.writes[0].then) != 1 {
		t.Fatalf("writes %+v: want one create carrying one reminder", u.writes)
	}
	if m := u.writes[0].then[0]; m.typ != events.TypeReminderCIG || m.seq != 1 {
		t.Errorf("message %s #%d, want %s #1", m.typ, m.seq, events.TypeReminderCIG)
	}
	var g gap.Gap
	if err := json.Unmarshal(u.writes[0].val, &g); err != nil {
		t.Fatal(err)
	}
	if g.Sequence != 1 || len(g.Pending) != 1 || !g.Pending[0].At.Equal(syncNow) {
		t.Errorf("record: sequence %d, pending %+v; want 1 and the reminder pending since now", g.Sequence, g.Pending)
	}
	wantWake := syncNow.Add(time.Hour)
	if !g.WakeAt.Equal(wantWake) {
		t.Errorf("wake at %s, want %s", g.WakeAt, wantWake)
	}
	// The repeat falls in the 1-minute bucket that ends at 11:01:00.
	if len(u.timers) != 1 || u.timers[0].Kind != timerDue || !u.timers[0].At.Equal(time.Date(2026, 12, 2, 11, 1, 0, 0, time.UTC)) {
		t.Errorf("timers %+v, want the due bucket of pcp at 11:01:00", u.timers)
	}
}

func TestSyncUnchangedGapWritesNothing(t *testing.T) {
	w := pureWorker(t)
	spec := cigSpec(true)
	u := &unit{}
	_ = w.syncGap(u, gapSync{cur: record{key: spec.Key}, spec: spec, derived: 1, now: syncNow})
	var g gap.Gap
	_ = json.Unmarshal(u.writes[0].val, &g)
	// The same derivation a minute later: nothing due, nothing to write,
	// and the pending reminder published again (the stream drops it).
	u2 := &unit{}
	if err := w.syncGap(u2, gapSync{cur: stored(t, &g, 7), spec: spec, derived: 1, now: syncNow.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if len(u2.writes) != 0 {
		t.Errorf("%d writes for an unchanged gap", len(u2.writes))
	}
	if len(u2.after) != 1 || u2.after[0].seq != 1 {
		t.Errorf("replayed %+v, want the pending reminder #1", u2.after)
	}
}

func TestReplayOnlyWhileTheStreamRemembers(t *testing.T) {
	w := pureWorker(t) // DedupWindow 24h: pending actions are kept 12h
	pending := []gap.Action{
		{Type: gap.ActRemind, Sequence: 1, At: syncNow.Add(-13 * time.Hour)},
		{Type: gap.ActRemind, Sequence: 2, At: syncNow.Add(-time.Minute), By: "due.pcp.1"},
		{Type: gap.ActEscalate, Sequence: 2, At: syncNow.Add(-time.Minute)},
	}
	keep, replay := w.replayable(pending, syncNow, "")
	if len(keep) != 2 || len(replay) != 2 {
		t.Errorf("event: keep %d, replay %d; want 2 and 2 (the 13-hour-old one dropped)", len(keep), len(replay))
	}
	_, replay = w.replayable(pending, syncNow, "due.pcp.1")
	if len(replay) != 1 || replay[0].Sequence != 2 || replay[0].Type != gap.ActRemind {
		t.Errorf("timer due.pcp.1 replays %+v, want only what it decided", replay)
	}
	_, replay = w.replayable(pending, syncNow, "pass.pcp.2")
	if len(replay) != 0 {
		t.Errorf("another timer replays %+v, want nothing", replay)
	}
}

func TestStepsOfOneBatchGiveEachEventsOutcome(t *testing.T) {
	w := pureWorker(t)
	u := &unit{}
	gs, err := loadGap(record{key: cigSpec(true).Key})
	if err != nil {
		t.Fatal(err)
	}
	// The publication, then the CIG, in one batch: reminded, then resolved.
	for _, spec := range []*gap.Gap{cigSpec(true), cigSpec(false)} {
		if err := w.stepGap(u, gs, gapSync{cur: gs.cur, spec: spec, derived: 1, now: syncNow}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.commitGap(u, gs, syncNow); err != nil {
		t.Fatal(err)
	}
	if len(u.writes) != 1 {
		t.Fatalf("%d writes, want 1", len(u.writes))
	}
	then := u.writes[0].then
	if len(then) != 2 || then[0].typ != events.TypeReminderCIG || then[1].typ != events.TypeReminderResolved {
		t.Errorf("messages %+v, want the reminder then the resolution", then)
	}
	if len(u.timers) != 0 {
		t.Errorf("timers %+v for a resolved gap", u.timers)
	}
}

func TestSyncWaitsForTheService(t *testing.T) {
	w := pureWorker(t)
	svc := &outage.Service{Name: "pcp"}
	svc.Apply(outage.Transition{At: syncNow.Add(-2 * time.Hour), Up: false})
	w.svcs.put(svc)
	spec := cigSpec(true)
	u := &unit{}
	if err := w.syncGap(u, gapSync{cur: record{key: spec.Key}, spec: spec, derived: 1, now: syncNow}); err != nil {
		t.Fatal(err)
	}
	if len(u.writes) != 1 || len(u.writes[0].then) != 0 {
		t.Fatalf("writes %+v: want the gap stored, nothing sent while pcp is down", u.writes)
	}
	// Only the escalation, 48h before the deadline, is timed: a service
	// down wakes nobody; its restoration pass does.
	if len(u.timers) != 1 || !u.timers[0].At.After(syncNow.Add(27*24*time.Hour)) {
		t.Errorf("timers %+v, want only the escalation's bucket", u.timers)
	}
}

func TestDueTimerBuckets(t *testing.T) {
	o := Options{TimerResolution: time.Minute}
	for _, tt := range []struct{ wake, want string }{
		{"10:00:01", "10:01:00"}, {"10:01:00", "10:01:00"}, {"10:59:59.5", "11:00:00"},
	} {
		wake, _ := time.Parse("15:04:05.999", tt.wake)
		want, _ := time.Parse("15:04:05", tt.want)
		got := o.dueTimer("pcp", wake)
		if !got.At.Equal(want) || got.key() != "due.pcp."+itoa(want.Unix()) {
			t.Errorf("wake %s: timer %s at %s, want the bucket ending %s", tt.wake, got.key(), got.At.Format("15:04:05"), tt.want)
		}
	}
}

func TestParseTimer(t *testing.T) {
	at := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		body string
		want timer
	}{
		{`{"kind":"due","service":"pcp","at":"2026-12-02T10:00:00Z"}`, timer{Kind: timerDue, Service: "pcp", At: at}},
		{`{"key":"pass.smartcig.2","at":"2026-12-02T10:00:00Z"}`, timer{Kind: timerPass, Service: "smartcig", Pass: 2, At: at}},
		{`{"key":"advise","at":"2026-12-02T10:00:00Z"}`, timer{Kind: timerAdvise, At: at}},
		{`{"key":"gap.pcp.cig.T-1.1","at":"2026-12-02T10:00:00Z"}`, timer{Kind: timerGap, GapKey: "gap.pcp.cig.T-1.1", At: at}},
	} {
		got, err := parseTimer([]byte(tt.body))
		if err != nil || got != tt.want {
			t.Errorf("parseTimer(%s) = %+v, %v; want %+v", tt.body, got, err, tt.want)
		}
	}
	if _, err := parseTimer([]byte(`{"key":"mystery"}`)); err == nil {
		t.Error("an unknown timer parsed")
	}
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// TestInterruptedReminderGoesFirst: a pass committed reminder #1 and was
// interrupted before publishing it; a due timer that decides #2 publishes
// #1 again first, so the stream never has #2 before #1.
func TestInterruptedReminderGoesFirst(t *testing.T) {
	w := pureWorker(t)
	g := cigSpec(true)
	g.Sequence, g.LastRemindedAt = 1, syncNow.Add(-2*time.Hour)
	g.Pending = []gap.Action{{Type: gap.ActRemind, Sequence: 1, At: syncNow.Add(-2 * time.Hour), By: "pass.pcp.1"}}
	u := &unit{}
	if err := w.syncGap(u, gapSync{cur: stored(t, g, 9), now: syncNow, by: "due.pcp.1"}); err != nil {
		t.Fatal(err)
	}
	if len(u.after) != 1 || u.after[0].seq != 1 {
		t.Fatalf("published before the commit's messages: %+v, want the pending #1", u.after)
	}
	if len(u.writes) != 1 || len(u.writes[0].then) != 1 || u.writes[0].then[0].seq != 2 {
		t.Fatalf("writes %+v, want one carrying #2", u.writes)
	}
	// With nothing new to send, another timer leaves #1 to its own.
	u2 := &unit{}
	g.Sequence, g.LastRemindedAt = 1, syncNow
	if err := w.syncGap(u2, gapSync{cur: stored(t, g, 9), now: syncNow, by: "due.pcp.2"}); err != nil {
		t.Fatal(err)
	}
	if len(u2.after) != 0 {
		t.Errorf("another timer with nothing to send republished %+v", u2.after)
	}
}
