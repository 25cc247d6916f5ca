package reliability

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/gap"
	"github.com/promemoria/promemoria/worker"
)

// TestTimersAcrossRestart checks the durable timers: a timer that comes due
// while the worker (or the worker and the broker) is down fires once after
// the restart, and a clock that jumps neither fires a gap twice nor
// forgets it.
func TestTimersAcrossRestart(t *testing.T) {
	t.Run("due while down", timersDueWhileDown)
	t.Run("clock jumps forward", clockJumpsForward)
	t.Run("clock jumps backward", clockJumpsBackward)
	t.Run("worker clock behind the broker", workerClockBehind)
}

// timerGap is the one gap of the timer tests.
var timerGap = gapKey{Kind: events.KindCIG, Tender: "T-TIMER", Lot: "1"}

func timerTender(now, deadline time.Time) events.TenderPublished {
	return events.TenderPublished{
		TenderID: timerGap.Tender, Title: "Gara a tempo", RUP: events.Person{Name: "Maria Rossi", Email: "rup@comune.example.it"},
		PublishedAt: now.Add(-time.Hour), OfferDeadline: deadline, Lots: []events.Lot{{LotID: "1", CIGService: "pcp"}},
	}
}

func (col *collector) reminders(k gapKey) (seqs []int, escalations int) {
	for _, o := range col.all() {
		if kk, ok := o.key(); ok && kk == k && o.Reminder != nil {
			if o.Reminder.Escalation {
				escalations++
			} else {
				seqs = append(seqs, o.Reminder.Sequence)
			}
		}
	}
	return seqs, escalations
}

// firedWaiting reports whether a timer of key has fired into the timer
// stream and waits there to be processed.
func (c *client) firedWaiting(key string) bool {
	n, ok := c.subjectCount(worker.StreamTimers, "_promemoria."+prefix+".fire."+key)
	return ok && n > 0
}

func timersDueWhileDown(t *testing.T) {
	srv := startNATS(t, "n1")
	c := dial(t, srv.URL())
	w := startWorker(t, "worker", srv.URL(), "--settle", "2s")
	col := c.collect()
	src := "https://eproc.example.it/timers"
	now := time.Now()
	deadline := now.Add(30 * 24 * time.Hour)

	c.publish(event(events.TypePortalDown, src, "down", now.Add(-time.Hour), events.PortalChange{Services: []string{"pcp"}}))
	c.publish(event(events.TypeTenderPublished, src, "pub", now, timerTender(now, deadline)))
	waitFor(t, 30*time.Second, "tender applied", c.inputsDone)

	// 1. The restoration's pass is due 2s after portal.up; the worker is
	// killed before, and restarted only after the pass has fired.
	up := time.Now()
	c.publish(event(events.TypePortalUp, src, "up", up, events.PortalChange{Services: []string{"pcp"}}))
	waitFor(t, 10*time.Second, "portal.up applied", c.inputsDone)
	w.Kill()
	if n := len(col.all()); n != 0 {
		t.Fatalf("%d outputs before the restoration's pass was due", n)
	}
	waitFor(t, 15*time.Second, "the pass timer fired with the worker down", func() bool { return c.firedWaiting("pass.pcp.1") })
	w.Start(true)
	waitFor(t, 15*time.Second, "first reminder after the restart", func() bool { s, _ := col.reminders(timerGap); return len(s) >= 1 })
	if first := col.all()[0]; first.Env.Time.Before(up.Add(2 * time.Second).Add(-time.Second)) {
		t.Errorf("first reminder at %s, before the end of settle", first.Env.Time)
	}

	// 2. The repeat (3s later) comes due while the worker is stopped
	// (SIGTERM): it fires once after the restart.
	w.Stop()
	waitFor(t, 15*time.Second, "the repeat timer fired with the worker down", func() bool { return c.firedWaiting("due.pcp.*") })
	w.Start(true)
	waitFor(t, 15*time.Second, "second reminder after the restart", func() bool { s, _ := col.reminders(timerGap); return len(s) >= 2 })

	// 3. The tender is published again with an offer deadline 7s away, so
	// the escalation is due 2s from now; worker and broker are stopped
	// together before it comes due, and restarted after.
	deadline = time.Now().Add(7 * time.Second)
	c.publish(event(events.TypeTenderPublished, src, "pub-2", time.Now(), timerTender(now, deadline)))
	waitFor(t, 10*time.Second, "new deadline applied", c.inputsDone)
	w.Stop()
	srv.Stop()
	if _, e := col.reminders(timerGap); e != 0 {
		t.Fatalf("escalated before the broker and the worker stopped")
	}
	escAt := deadline.Add(-5 * time.Second)
	waitFor(t, time.Until(escAt)+15*time.Second, "the escalation's due time to pass", func() bool { return time.Now().After(escAt.Add(time.Second)) })
	srv.Start()
	w.Start(true)
	waitFor(t, 15*time.Second, "escalation after the restart of broker and worker", func() bool { _, e := col.reminders(timerGap); return e >= 1 })
	// The repeats go on from there.
	seqsAt, _ := col.reminders(timerGap)
	waitFor(t, 15*time.Second, "a repeat after the restarts", func() bool { s, _ := col.reminders(timerGap); return len(s) > len(seqsAt) })

	// 4. Close the gap: resolved once, nothing after.
	c.publish(event(events.TypeCIGAssigned, src, "cig", time.Now(), events.CIGAssigned{TenderID: timerGap.Tender, LotID: "1", CIG: "B00012EADB"}))
	waitFor(t, 15*time.Second, "resolution", func() bool { return col.count(func(o out) bool { return o.Resolved != nil }) == 1 })
	c.waitUntil(t, col, 30*time.Second, "nothing in flight", func() bool { return quiet(c) })
	stable(t, c, col, 4*time.Second)
	col.waitCaughtUp(t)
	l := analyse(col.all())
	checkOutputs(t, l, true)
	seqs, esc := col.reminders(timerGap)
	if esc != 1 {
		t.Errorf("%d escalations, want 1", esc)
	}
	t.Logf("pass, repeat and escalation each came due while down and fired once after the restart: reminders %v, %d escalation, %d resolved; worker started %d times, broker %d times; %s",
		seqs, esc, len(l.Resolved), w.starts, srv.starts, l.summary())
}

// clock is a worker clock the test can move.
type clock struct{ off atomic.Int64 }

func (c *clock) Now() time.Time        { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *clock) set(off time.Duration) { c.off.Store(int64(off)) }

// inProcess runs a worker in this process against url with the given
// clock (worker.Options.Now) and stops it when the test ends.
func inProcess(t *testing.T, url string, clk *clock) *worker.Worker {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w, err := worker.New(ctx, nc, worker.Options{
		Policy:     gap.Policy{Settle: time.Second, RepeatInterval: 3 * time.Second, EscalateBefore: 5 * time.Second, Tolerance: time.Second},
		SweepGrace: 2 * time.Second, AckWait: 10 * time.Second, Now: clk.Now, Name: "in-process",
		Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; nc.Close() })
	waitFor(t, 10*time.Second, "in-process worker ready", w.Ready)
	return w
}

// clockJumpsForward: after the first reminder the worker's clock jumps 12
// days ahead. The next timer sees the repeat and the escalation due: it
// sends one reminder and one escalation, not the thousands of repeats the
// jump spans; when the clock comes back nothing fires twice.
func clockJumpsForward(t *testing.T) {
	srv := startNATS(t, "n1")
	c := dial(t, srv.URL())
	clk := &clock{}
	w := inProcess(t, srv.URL(), clk)
	col := c.collect()
	src := "https://eproc.example.it/clock"
	now := time.Now()
	c.publish(event(events.TypeTenderPublished, src, "pub", now, timerTender(now, now.Add(10*24*time.Hour))))
	waitFor(t, 10*time.Second, "first reminder", func() bool { s, _ := col.reminders(timerGap); return len(s) == 1 })
	clk.set(12 * 24 * time.Hour)
	waitFor(t, 15*time.Second, "second reminder and escalation", func() bool {
		s, e := col.reminders(timerGap)
		return len(s) == 2 && e == 1
	})
	clk.set(0)
	// Touch the gap with the clock back: a re-publication re-plans it.
	c.publish(event(events.TypeTenderPublished, src, "pub-again", time.Now(), timerTender(now, now.Add(10*24*time.Hour))))
	waitFor(t, 10*time.Second, "re-publication applied", c.inputsDone)
	stable2(t, col, 7*time.Second)
	l := analyse(col.all())
	checkOutputs(t, l, true)
	seqs, esc := col.reminders(timerGap)
	if len(seqs) != 2 || esc != 1 {
		t.Errorf("reminders %v and %d escalations, want [1 2] and 1", seqs, esc)
	}
	t.Logf("clock +12 days: reminders %v, %d escalation, nothing more over 7s once it came back (timers fired %d); %s",
		seqs, esc, w.Metrics().Snapshot().TimersFired, l.summary())
}

// clockJumpsBackward: right after the first reminder the worker's clock
// jumps an hour back, so the repeat timer fires "early" by the worker's
// clock. Nothing may be sent then, and once the clock is right again the
// gap must be reminded again: it must not be forgotten.
func clockJumpsBackward(t *testing.T) {
	clockSkewed(t, -time.Hour, true)
}

// workerClockBehind: the worker's clock is 2s behind the broker's (two
// hosts, NTP skew beyond the 1s tolerance). The repeats must still come.
func workerClockBehind(t *testing.T) {
	clockSkewed(t, -2*time.Second, false)
}

func clockSkewed(t *testing.T, off time.Duration, restore bool) {
	srv := startNATS(t, "n1")
	c := dial(t, srv.URL())
	clk := &clock{}
	if !restore {
		clk.set(off)
	}
	w := inProcess(t, srv.URL(), clk)
	col := c.collect()
	src := "https://eproc.example.it/clock"
	now := time.Now()
	gk := gap.Key("pcp", gap.Identity{Kind: timerGap.Kind, TenderID: timerGap.Tender, LotID: timerGap.Lot})
	c.publish(event(events.TypeTenderPublished, src, "pub", now, timerTender(now, now.Add(30*24*time.Hour))))
	waitFor(t, 10*time.Second, "first reminder", func() bool { s, _ := col.reminders(timerGap); return len(s) == 1 })
	if restore {
		clk.set(off)
		fired := w.Metrics().Snapshot().TimersFired
		waitFor(t, 15*time.Second, "the repeat timer to fire while the clock is behind", func() bool {
			return w.Metrics().Snapshot().TimersFired > fired && c.timersDone()
		})
		if s, _ := col.reminders(timerGap); len(s) != 1 {
			t.Errorf("reminders %v while the clock is an hour behind, want only [1]", s)
		}
		clk.set(0)
	}
	if !poll(10*time.Second, func() bool { s, _ := col.reminders(timerGap); return len(s) >= 2 }) {
		recs, _ := c.gapRecords()
		g := recs[gk]
		pending, _ := c.subjectCount(worker.StreamTimers, "_promemoria."+prefix+".sched.due.pcp.*")
		t.Errorf("clock offset %s: the gap was never reminded again within 10s (repeat interval 3s): its timer fired while the worker's clock "+
			"was behind, found nothing due, and was not re-armed; the gap record says sequence %d, wake_at %s, open %v; due timers of pcp pending: %d; timers fired %d",
			off, g.Sequence, g.WakeAt.Format(time.RFC3339), g.Open, pending, w.Metrics().Snapshot().TimersFired)
		return
	}
	l := analyse(col.all())
	checkOutputs(t, l, true)
	seqs, _ := col.reminders(timerGap)
	t.Logf("clock offset %s: reminders %v; %s", off, seqs, l.summary())
}

// stable2 watches the output stream for d and fails on any new message.
func stable2(t *testing.T, col *collector, d time.Duration) {
	t.Helper()
	n := len(col.all())
	if !poll(d, func() bool { return len(col.all()) != n }) {
		return
	}
	t.Errorf("unexpected output: %s", col.all()[n])
}
