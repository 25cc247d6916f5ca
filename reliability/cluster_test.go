package reliability

import (
	"strings"
	"testing"
	"time"

	"github.com/promemoria/promemoria/worker"
)

// TestCluster runs promemoria against a three-node NATS cluster with every
// stream and bucket replicated three times (--replicas 3), the way a user
// who outgrows one machine runs it (docs/guarantees.md). During the
// restoration's fan-out the node leading most of the streams is killed with
// SIGKILL: the streams elect new leaders, the worker carries on through the
// two remaining nodes, and the invariants hold. The killed node then
// rejoins, and the tenders are cancelled.
func TestCluster(t *testing.T) {
	const tenders = 200
	start := time.Now()
	nodes := startCluster(t, "n1", "n2", "n3")
	var urls []string
	for _, n := range nodes {
		urls = append(urls, n.URL())
	}
	all := strings.Join(urls, ",")
	c := dial(t, all)
	w := startWorker(t, "worker", all, "--replicas", "3")
	col := c.collect()
	now := time.Now()
	wd := genWorld("K0", worldSpec{Tenders: tenders, Lag: 25}, now)
	open := len(wd.open())

	c.publish(portal(wd.Source, "K0-down", false, now.Add(-time.Hour)))
	c.publishAll(wd.Ingest)
	waitFor(t, 60*time.Second, "every input applied", c.inputsDone)
	for s, replicas := range c.streamReplicas() {
		if replicas != 3 {
			t.Errorf("stream %s has %d replicas, want 3", s, replicas)
		}
	}

	c.publish(portal(wd.Source, "K0-up", true, time.Now()))
	waitFor(t, 60*time.Second, "fan-out in progress", func() bool {
		return col.count(func(o out) bool { return o.Reminder != nil }) > 0
	})
	leaders := c.streamLeaders()
	// The victim is the node leading the most of promemoria's streams and
	// buckets; among equals, the one leading the output stream.
	led := map[string]int{}
	for _, l := range leaders {
		led[l]++
	}
	victim := leaders[worker.StreamOutput]
	for n, k := range led {
		if k > led[victim] {
			victim = n
		}
	}
	var killed *natsNode
	for _, n := range nodes {
		if n.Name == victim {
			killed = n
		}
	}
	if killed == nil {
		t.Fatalf("no node leads %s: leaders %v", worker.StreamOutput, leaders)
	}
	atKill := col.count(func(o out) bool { return o.Reminder != nil })
	killed.Kill()
	killedAt := time.Now()

	c.waitSettled(t, col, 120*time.Second, "the restoration with "+victim+" down")
	recovered := time.Since(killedAt)
	newLeaders := c.streamLeaders()
	for s, l := range newLeaders {
		if l == victim {
			t.Errorf("stream %s still led by the killed node %s", s, victim)
		}
	}
	col.waitCaughtUp(t)
	l := analyse(col.all())
	checkOutputs(t, l, true)
	checkAgainstWorld(t, wd, l, false)
	checkState(t, c, wd, col)
	restored := l.summary()

	killed.Start()
	c.publishAll(wd.cancellations(time.Now()))
	c.waitSettled(t, col, 120*time.Second, "the cancellations")
	l = analyse(col.all())
	checkOutputs(t, l, true)
	checkClosed(t, c, wd, l)
	stable(t, c, col, 4*time.Second)

	t.Logf("%d tenders, %d input events, %d gaps (%d left open by the inputs); 3 nodes, every stream and bucket R3", tenders, len(wd.Ingest)+2+len(wd.Tenders), len(wd.Gaps), open)
	t.Logf("leaders before %v; SIGKILLed %s with %d reminders out; every first reminder out %s later; leaders after %v",
		leaders, victim, atKill, recovered.Round(100*time.Millisecond), newLeaders)
	t.Logf("worker: %d disconnections, %d reconnections, %d retried failures", w.countLog("NATS disconnected"), w.countLog("NATS reconnected"), w.countLog("processing failed, will retry"))
	t.Logf("after the restoration: %s", restored)
	t.Logf("after %s rejoined and every tender was cancelled: %s; %s; took %s", victim, l.summary(), c.stateSummary(), time.Since(start).Round(time.Second))
}
