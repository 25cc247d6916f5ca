package reliability

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"
)

// TestBrokerRestart stops the nats-server (SIGTERM) and freezes it
// (SIGSTOP for 8s, connections open: a stalled broker) while the worker
// ingests, and kills it (SIGKILL) while the worker emits a restoration's
// fan-out, restarting it on the same port and data directory each time.
// The worker reconnects on its own, reports 503 on /readyz while the broker
// is away and 200 once it is back, keeps consuming after the stall, and the
// invariants hold: every open gap reminded, repeats (every 3s) numbered
// without holes, no id twice, state consistent, every reminded gap resolved
// once after the final cancellation.
func TestBrokerRestart(t *testing.T) {
	rounds(t, func(t *testing.T, r int, soak bool) {
		sz := brokerSize{tenders: 250, stops: 1, pauses: 1, kills: 1, repeat: "3s"}
		if soak {
			// Repeats every 10s: on two cores a worker reminding 2,000 gaps
			// every 3s has no time left to settle.
			sz = brokerSize{tenders: 600 + 200*(r%4), stops: 2, pauses: 1, kills: 2, repeat: "10s"}
		}
		brokerRound(t, r, sz)
	})
}

type brokerSize struct {
	tenders              int
	stops, pauses, kills int
	repeat               string
}

func brokerRound(t *testing.T, r int, sz brokerSize) {
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, uint64(r)))
	round := fmt.Sprintf("B%d", r)
	start := time.Now()

	srv := startNATS(t, "n1")
	c := dial(t, srv.URL())
	w := startWorker(t, "worker", srv.URL(), "--repeat-interval", sz.repeat)
	col := c.collect()
	now := time.Now()
	wd := genWorld(round, worldSpec{Tenders: sz.tenders, Lag: 25}, now)
	open := len(wd.open())

	var faults []string
	outage := func(how string) {
		t.Helper()
		if got := w.Readyz(); got != http.StatusOK {
			t.Errorf("/readyz = %d before the broker %s, want 200", got, how)
		}
		at := time.Since(start)
		if how == "SIGTERM" {
			srv.Stop()
		} else {
			srv.Kill()
		}
		waitFor(t, 15*time.Second, "/readyz 503 while the broker is down", func() bool { return w.Readyz() == http.StatusServiceUnavailable })
		down := time.Now()
		// Stay down a little: the worker's requests fail and retry.
		time.Sleep(time.Duration(500+rng.IntN(1500)) * time.Millisecond)
		srv.Start()
		waitFor(t, 30*time.Second, "/readyz 200 once the broker is back", func() bool { return w.Readyz() == http.StatusOK })
		faults = append(faults, fmt.Sprintf("%s@%s(down %s)", how, at.Round(10*time.Millisecond), time.Since(down).Round(10*time.Millisecond)))
		if !w.Running() {
			t.Fatalf("the worker exited during the broker outage")
		}
	}

	c.publish(portal(wd.Source, round+"-down", false, now.Add(-time.Hour)))
	waitFor(t, 30*time.Second, "portal.down applied", c.inputsDone)
	published := make(chan struct{})
	go func() { c.publishAll(wd.Ingest); close(published) }()
	for range sz.stops {
		time.Sleep(time.Duration(200+rng.IntN(600)) * time.Millisecond)
		outage("SIGTERM")
	}
	for range sz.pauses {
		// A stall longer than the pull consumers' heartbeats (2.5s, twice):
		// the TCP connections stay up, the broker says nothing.
		at := time.Since(start)
		srv.Pause(8 * time.Second)
		faults = append(faults, fmt.Sprintf("SIGSTOP@%s(8s)", at.Round(10*time.Millisecond)))
		if l := w.grepLog("consumer stopped"); l != "" {
			t.Errorf("the worker stopped consuming after the broker stalled, and /readyz says %d: %s", w.Readyz(), l)
		}
	}
	<-published
	// Inputs that failed while the broker was away are retried with
	// backoff: the restoration starts once every input is applied, so each
	// first reminder can be checked against its whole tender (one sent
	// while its tender.published is still being retried rightly has no RUP).
	waitFor(t, 120*time.Second, "every input applied", c.inputsDone)

	c.publish(portal(wd.Source, round+"-up", true, time.Now()))
	for range sz.kills {
		before := col.count(func(o out) bool { return o.Reminder != nil })
		waitFor(t, 90*time.Second, "fan-out in progress", func() bool {
			return col.count(func(o out) bool { return o.Reminder != nil }) > before
		})
		time.Sleep(time.Duration(rng.IntN(40)) * time.Millisecond)
		outage("SIGKILL")
	}

	c.waitSettled(t, col, 150*time.Second, "the restoration")
	l := analyse(col.all())
	checkOutputs(t, l, true)
	checkAgainstWorld(t, wd, l, false)
	checkState(t, c, wd, col)
	restored := l.summary()

	c.publishAll(wd.cancellations(time.Now()))
	c.waitSettled(t, col, 150*time.Second, "the cancellations")
	l = analyse(col.all())
	checkOutputs(t, l, true)
	checkClosed(t, c, wd, l)
	stable(t, c, col, 4*time.Second) // longer than the 3s repeat interval

	t.Logf("round %d (seed %d): %d tenders, %d input events, %d gaps (%d left open by the inputs)",
		r, seed, sz.tenders, len(wd.Ingest)+2+len(wd.Tenders), len(wd.Gaps), open)
	t.Logf("round %d: broker faults %v; worker logged %d disconnections, %d reconnections, %d retried failures; /readyz 503 during each, 200 after",
		r, faults, w.countLog("NATS disconnected"), w.countLog("NATS reconnected"), w.countLog("processing failed, will retry"))
	t.Logf("round %d after the restoration: %s", r, restored)
	t.Logf("round %d after cancelling every tender: %s; %s; took %s", r, l.summary(), c.stateSummary(), time.Since(start).Round(time.Second))
}
