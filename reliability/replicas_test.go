package reliability

import (
	"fmt"
	"testing"
	"time"

	"github.com/promemoria/promemoria/events"
)

// TestReplicas runs three promemoria processes on one stream and one set of
// buckets. Events for the same tender (its publication, its bids, a second
// publication and the inputs that close some of its gaps) are published
// back to back, so that they are pulled by different replicas and applied
// concurrently; later, while the repeat timers fire on any replica, every
// tender is published a third time and cancelled. No update may be lost
// (compare-and-set conflicts are retried): the state bucket holds exactly
// the gaps the inputs left open, each reminded once per repeat without
// holes or duplicates, and every reminded gap is resolved once.
func TestReplicas(t *testing.T) {
	const tenders = 300
	start := time.Now()
	srv := startNATS(t, "n1")
	c := dial(t, srv.URL())
	var ws []*workerProc
	for i := range 3 {
		ws = append(ws, startWorker(t, fmt.Sprintf("replica-%d", i+1), srv.URL(), "--concurrency", "8"))
	}
	col := c.collect()
	now := time.Now()
	wd := genWorld("R0", worldSpec{Tenders: tenders, Lag: 0, Republish: true, ExtraBids: 2, ExtraLots: 6, BidDeadline: true}, now)
	open := len(wd.open())

	c.publish(portal(wd.Source, "R0-down", false, now.Add(-time.Hour)))
	waitFor(t, 30*time.Second, "portal.down applied", c.inputsDone)
	c.publishAll(wd.Ingest)
	waitFor(t, 60*time.Second, "every input applied", c.inputsDone)
	if n := len(col.all()); n != 0 {
		t.Errorf("%d outputs while every service is down", n)
	}
	// No lost update: the gaps in the bucket are exactly those left open.
	checkState(t, c, wd, nil)

	c.publish(portal(wd.Source, "R0-up", true, time.Now()))
	c.waitSettled(t, col, 90*time.Second, "the restoration")
	// Let the repeats run on every replica, then publish each tender a
	// third time and cancel it while they do.
	c.waitUntil(t, col, 30*time.Second, "second reminders", func() bool {
		return col.count(func(o out) bool { return o.Reminder != nil && o.Reminder.Sequence == 2 }) >= open/2
	})
	col.waitCaughtUp(t)
	l := analyse(col.all())
	checkOutputs(t, l, true)
	checkAgainstWorld(t, wd, l, false)
	checkState(t, c, wd, col)
	restored := l.summary()

	var final []input
	for i, cancel := range wd.cancellations(time.Now()) {
		tid := wd.Tenders[i]
		final = append(final, event(events.TypeTenderPublished, wd.Source, fmt.Sprintf("R0-pub3-%05d", i), now.Add(-40*time.Minute),
			events.TenderPublished{TenderID: tid, Title: "Gara " + tid, RUP: events.Person{Name: "RUP", Email: fmt.Sprintf("rup.r0.%d@ente.example.it", i)},
				PublishedAt: now.Add(-50 * time.Minute), OfferDeadline: now.Add(30 * 24 * time.Hour), Lots: []events.Lot{{LotID: "1", CIGService: cigServices[i%4]}}}),
			cancel)
	}
	c.publishAll(final)
	c.waitSettled(t, col, 90*time.Second, "the cancellations")
	l = analyse(col.all())
	checkOutputs(t, l, true)
	checkClosed(t, c, wd, l)
	stable(t, c, col, 4*time.Second) // longer than the 3s repeat interval

	var share []string
	var conflicts float64
	for _, w := range ws {
		share = append(share, fmt.Sprintf("%s: %.0f events, %.0f timers", w.name,
			w.metric("promemoria_events_consumed_total")-w.metric("promemoria_events_consumed_total", `type="timer"`),
			w.metric("promemoria_events_consumed_total", `type="timer"`)))
		conflicts += w.metric("promemoria_cas_conflicts_total")
	}
	t.Logf("%d tenders, %d input events, %d gaps (%d left open by the inputs)", tenders, len(wd.Ingest)+2+len(final), len(wd.Gaps), open)
	t.Logf("work shared %v; %.0f compare-and-set conflicts retried", share, conflicts)
	t.Logf("after the restoration: %s", restored)
	t.Logf("after publishing and cancelling every tender: %s; %s; took %s", l.summary(), c.stateSummary(), time.Since(start).Round(time.Second))
}
