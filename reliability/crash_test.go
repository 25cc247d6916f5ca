package reliability

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// TestWorkerCrash kills the promemoria process with SIGKILL at random
// points while it ingests thousands of events published during an outage,
// and while it emits the fan-out of the restoration, restarting it each
// time; then cancels every tender. Every gap gets exactly one first
// reminder, none is lost, none is sent twice, and the state bucket agrees.
//
// The repeat interval is an hour here, so that "exactly the reminders it
// should" is exactly one per open gap; repeats across faults are
// TestBrokerRestart's and TestReplicas'.
func TestWorkerCrash(t *testing.T) {
	rounds(t, func(t *testing.T, r int, soak bool) {
		sz := crashSize{tenders: 1200, ingestKills: 3, fanoutKills: 1}
		if soak {
			sz = crashSize{tenders: 2000 + 500*(r%5), ingestKills: 6, fanoutKills: 2, closeKills: 2}
		}
		crashRound(t, r, sz)
	})
}

type crashSize struct {
	tenders                              int
	ingestKills, fanoutKills, closeKills int
}

func crashRound(t *testing.T, r int, sz crashSize) {
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, uint64(r)))
	round := fmt.Sprintf("C%d", r)
	start := time.Now()

	srv := startNATS(t, "n1")
	c := dial(t, srv.URL())
	w := startWorker(t, "worker", srv.URL(), "--repeat-interval", "1h")
	col := c.collect()
	now := time.Now()
	wd := genWorld(round, worldSpec{Tenders: sz.tenders, Lag: 25}, now)
	open := len(wd.open())

	var kills []string
	kill := func(phase string) {
		reminded := col.count(func(o out) bool { return o.Reminder != nil })
		w.Kill()
		kills = append(kills, fmt.Sprintf("%s@%s(%d out)", phase, time.Since(start).Round(10*time.Millisecond), reminded))
		// Half the time the next kill may come before the new process has
		// even provisioned and bound its consumers.
		w.Start(rng.IntN(2) == 0)
	}

	// The portal goes down for every service; then thousands of events.
	c.publish(portal(wd.Source, round+"-down", false, now.Add(-time.Hour)))
	waitFor(t, 30*time.Second, "portal.down applied", c.inputsDone)
	published := make(chan struct{})
	go func() { c.publishAll(wd.Ingest); close(published) }()
	for range sz.ingestKills {
		time.Sleep(time.Duration(100+rng.IntN(900)) * time.Millisecond)
		kill("ingest")
	}
	<-published
	w.WaitStarted(60 * time.Second)
	// What a killed process held comes back after the 30s ack wait: the
	// restoration starts once every input is applied, so each first
	// reminder can be checked against the whole tender (a reminder sent
	// while its tender.published is still in flight rightly has no RUP).
	waitFor(t, 90*time.Second, "every input applied", c.inputsDone)

	// Every service is back: the fan-out starts after settle (1s). Kill
	// the worker as soon as it has emitted its first reminders. Meanwhile
	// one tender in seven is cancelled, racing the fan-out.
	upAt := time.Now()
	c.publish(portal(wd.Source, round+"-up", true, upAt))
	midCancels := wd.cancelSome(7, 3, upAt.Add(time.Second))
	midDone := make(chan struct{})
	go func() {
		defer close(midDone)
		for len(col.all()) == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		c.publishAll(midCancels)
	}()
	open = len(wd.open())
	for range sz.fanoutKills {
		before := col.count(func(o out) bool { return o.Reminder != nil })
		waitFor(t, 90*time.Second, "fan-out in progress", func() bool {
			return col.count(func(o out) bool { return o.Reminder != nil }) > before
		})
		time.Sleep(time.Duration(rng.IntN(40)) * time.Millisecond)
		kill("fanout")
		w.WaitStarted(60 * time.Second)
	}

	// Wait (bounded by the 30s ack wait of what the killed processes held)
	// until nothing is in flight and nothing more comes out.
	<-midDone
	c.waitSettled(t, col, 150*time.Second, "the restoration")
	l := analyse(col.all())
	checkOutputs(t, l, true)
	checkAgainstWorld(t, wd, l, true)
	checkState(t, c, wd, col)
	restored := l.summary()

	// Close everything: every reminded gap is resolved once, the state
	// bucket empties and no gap timer is left.
	cancelled := make(chan struct{})
	go func() { c.publishAll(wd.cancellations(time.Now())); close(cancelled) }()
	for range sz.closeKills {
		time.Sleep(time.Duration(100+rng.IntN(900)) * time.Millisecond)
		kill("close")
	}
	<-cancelled
	w.WaitStarted(60 * time.Second)
	c.waitSettled(t, col, 150*time.Second, "the cancellations")
	l = analyse(col.all())
	checkOutputs(t, l, true)
	checkClosed(t, c, wd, l)
	stable(t, c, col, 4*time.Second) // longer than the 3s repeat interval

	t.Logf("round %d (seed %d): %d tenders, %d input events %v (+%d cancellations racing the fan-out), %d gaps (%d left open by the inputs)",
		r, seed, sz.tenders, len(wd.Ingest)+2+len(wd.Tenders), wd.Events, len(midCancels), len(wd.Gaps), open)
	t.Logf("round %d: %d SIGKILLs %v; the worker started %d times; %d \"reminder emitted\" logged, %d messages stored (a publish retried after a kill is dropped by the output stream; a killed process may publish without logging)",
		r, len(kills), kills, w.starts, w.countLog("reminder emitted"), len(l.All))
	t.Logf("round %d after the restoration: %s", r, restored)
	t.Logf("round %d after cancelling every tender: %s; %s; took %s", r, l.summary(), c.stateSummary(), time.Since(start).Round(time.Second))
}
