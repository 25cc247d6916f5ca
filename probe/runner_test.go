package probe_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/gap"
	"github.com/promemoria/promemoria/outage"
	"github.com/promemoria/promemoria/probe"
	"github.com/promemoria/promemoria/worker"
)

// leaseTTL is the tests' lease: long enough that a busy machine renews it
// in time, short enough for TestLeaseFailover to wait for its expiry.
const leaseTTL = 3 * time.Second

// checkEvent checks that ev publishes a transition of pcp to up (or down)
// with notice, and that its time is that of the first check of the run:
// after the request before it, and at most the run's first request.
func checkEvent(t *testing.T, ev published, up bool, notice string, before, first time.Time) {
	t.Helper()
	typ := events.TypePortalDown
	if up {
		typ = events.TypePortalUp
	}
	tr := probe.Transition{Service: "pcp", Up: up, At: ev.Time, Notice: notice}
	switch {
	case ev.Type != typ:
		t.Fatalf("event type %s, want %s", ev.Type, typ)
	case ev.Source != probe.DefaultSource:
		t.Errorf("source %q, want %q", ev.Source, probe.DefaultSource)
	case len(ev.change.Services) != 1 || ev.change.Services[0] != "pcp":
		t.Errorf("services %q, want [pcp]", ev.change.Services)
	case ev.change.Notice != notice:
		t.Errorf("notice %q, want %q", ev.change.Notice, notice)
	case !ev.change.At.Equal(ev.Time):
		t.Errorf("data.at %s differs from time %s", ev.change.At, ev.Time)
	case ev.ID != probe.EventID(tr) || ev.msgID != ev.ID:
		t.Errorf("id %q, Nats-Msg-Id %q; want both %q", ev.ID, ev.msgID, probe.EventID(tr))
	case !ev.Time.After(before) || ev.Time.After(first):
		t.Errorf("time %s is not that of the run's first check: between %s and %s",
			ev.Time.Format(time.RFC3339Nano), before.Format(time.RFC3339Nano), first.Format(time.RFC3339Nano))
	}
	if want := "probe-pcp-" + map[bool]string{true: "up", false: "down"}[up] + "-" + ev.Time.UTC().Format(time.RFC3339Nano); ev.ID != want {
		t.Errorf("id %q, want %q", ev.ID, want)
	}
}

// metric returns the value of the metric name with labels in reg (the
// count of a histogram).
func metric(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	return gather(t, reg).value(t, name, labels)
}

// snapshot is the metrics of a registry at one time: lookup returns the
// value of the metric name with labels (the count of a histogram), if any.
type snapshot struct {
	lookup func(name string, labels map[string]string) (float64, bool)
}

// gather takes a snapshot of reg.
func gather(t *testing.T, reg *prometheus.Registry) snapshot {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return snapshot{lookup: func(name string, labels map[string]string) (float64, bool) {
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
		next:
			for _, m := range mf.GetMetric() {
				for _, lp := range m.GetLabel() {
					if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
						continue next
					}
				}
				switch {
				case m.GetGauge() != nil:
					return m.GetGauge().GetValue(), true
				case m.GetCounter() != nil:
					return m.GetCounter().GetValue(), true
				case m.GetHistogram() != nil:
					return float64(m.GetHistogram().GetSampleCount()), true
				}
			}
		}
		return 0, false
	}}
}

// value is lookup, failing the test if there is no such metric.
func (s snapshot) value(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	v, ok := s.lookup(name, labels)
	if !ok {
		t.Fatalf("no metric %s%v", name, labels)
	}
	return v
}

func TestRunnerTransitions(t *testing.T) {
	tests := []struct {
		name       string
		fail       mode
		spec       probe.Spec // URL set by the test
		wantNotice string
	}{
		{name: "HTTP 503", fail: answer503, wantNotice: "HTTP 503 on 3 checks"},
		{name: "timeout", fail: answerSlow, spec: probe.Spec{Timeout: 100 * time.Millisecond}, wantNotice: "timeout after 100ms on 3 checks"},
		{name: "expect_body mismatch", fail: answerMaintenance, spec: probe.Spec{ExpectBody: "Servizio attivo"}, wantNotice: `body lacks "Servizio attivo" on 3 checks`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, tg, reg := newBus(t), newTarget(t), prometheus.NewRegistry()
			s := tt.spec
			s.Service, s.URL, s.Interval = "pcp", tg.URL+"/status", 50*time.Millisecond
			r := b.start(t, probe.Options{Specs: []probe.Spec{s}, Failures: 3, Successes: 2, LeaseTTL: leaseTTL, Name: "a", Registerer: reg})
			eventually(t, "the only runner does not take the lease", r.Leader)

			// Healthy, then a flap of 2 failures (one short of 3), then
			// healthy again: nothing is published.
			tg.waitHits(t, tg.count(), 3)
			from := tg.count()
			tg.flap(tt.fail, 2)
			tg.waitHits(t, from, 2+4)
			if evs := b.events(t); len(evs) != 0 {
				t.Fatalf("a flap shorter than 3 failures published %d events: %+v", len(evs), evs)
			}

			// Down after 3 failures, with the time of the first.
			from = tg.count()
			tg.set(tt.fail)
			evs := b.waitEvents(t, 1)
			before, first := tg.firstRun(t, from, false)
			checkEvent(t, evs[0], false, tt.wantNotice, before, first)

			// Still failing: nothing more.
			tg.waitHits(t, tg.count(), 4)
			b.waitEvents(t, 1)
			if v := metric(t, reg, "promemoria_probe_up", map[string]string{"service": "pcp"}); v != 0 {
				t.Errorf("promemoria_probe_up = %v while failing, want 0", v)
			}
			// The target counts a request before the runner counts its check.
			eventually(t, "promemoria_probe_checks_total{outcome=fail} does not reach 2+3+4", func() bool {
				return metric(t, reg, "promemoria_probe_checks_total", map[string]string{"service": "pcp", "outcome": "fail"}) >= 2+3+4
			})

			// Up after 2 successes, with the time of the first.
			from = tg.count()
			tg.set(answerOK)
			evs = b.waitEvents(t, 2)
			before, first = tg.firstRun(t, from, true)
			checkEvent(t, evs[1], true, "up again: HTTP 200 on 2 checks", before, first)

			tg.waitHits(t, tg.count(), 2)
			b.waitEvents(t, 2)
			if v := metric(t, reg, "promemoria_probe_up", map[string]string{"service": "pcp"}); v != 1 {
				t.Errorf("promemoria_probe_up = %v while passing, want 1", v)
			}

			// Stopped, the runner checks no more: the counts hold still,
			// and it exports no promemoria_probe_up, as a standby.
			r.stop(t)
			m := gather(t, reg)
			ok := m.value(t, "promemoria_probe_checks_total", map[string]string{"service": "pcp", "outcome": "ok"})
			fail := m.value(t, "promemoria_probe_checks_total", map[string]string{"service": "pcp", "outcome": "fail"})
			if n := m.value(t, "promemoria_probe_duration_seconds", map[string]string{"service": "pcp"}); n != ok+fail || ok < 3+4+2 {
				t.Errorf("%v durations observed for %v ok and %v failed checks", n, ok, fail)
			}
			if v, found := m.lookup("promemoria_probe_up", map[string]string{"service": "pcp"}); found {
				t.Errorf("a stopped runner exports promemoria_probe_up = %v", v)
			}
		})
	}
}

func TestLeaseFailover(t *testing.T) {
	t.Parallel()
	b, tg, reg := newBus(t), newTarget(t), prometheus.NewRegistry()
	opts := func(name string) probe.Options {
		return probe.Options{
			Specs:    []probe.Spec{{Service: "pcp", URL: tg.URL + "/", Interval: 100 * time.Millisecond}},
			LeaseTTL: leaseTTL, Name: name, Registerer: reg, // one registry: the metrics are shared
		}
	}
	a, c := b.start(t, opts("a")), b.start(t, opts("b"))
	eventually(t, "no runner takes the lease", func() bool { return a.Leader() || c.Leader() })
	holder, standby := a, c
	if c.Leader() {
		holder, standby = c, a
	}

	// While the holder renews its lease, the other stays on standby, over
	// two lease times.
	for end := time.Now().Add(2 * leaseTTL); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if standby.Leader() {
			t.Fatal("both runners hold the lease")
		}
	}

	from := tg.count()
	tg.set(answer503)
	evs := b.waitEvents(t, 1)
	before, first := tg.firstRun(t, from, false)
	checkEvent(t, evs[0], false, "HTTP 503 on 3 checks", before, first)

	// The holder dies: its connection goes. The other takes over.
	killed := time.Now()
	holder.nc.Close()
	eventually(t, "the standby does not take the lease over", standby.Leader)
	// The lease expires at most leaseTTL after the holder's last renewal,
	// and the standby tries every leaseTTL/3: twice leaseTTL is generous.
	if took := time.Since(killed); took > 2*leaseTTL {
		t.Errorf("taken over %s after the holder died, want within %s (twice the lease TTL)", took.Round(time.Millisecond), 2*leaseTTL)
	} else {
		t.Logf("taken over %s after the holder died (lease TTL %s)", took.Round(time.Millisecond), leaseTTL)
	}
	eventually(t, "the dead holder still claims the lease", func() bool { return !holder.Leader() })

	// The new holder probes, starting from the published state: the
	// outage goes on without a second portal.down, and its end is published.
	tg.waitHits(t, tg.count(), 5)
	b.waitEvents(t, 1)
	from = tg.count()
	tg.set(answerOK)
	evs = b.waitEvents(t, 2)
	before, first = tg.firstRun(t, from, true)
	checkEvent(t, evs[1], true, "up again: HTTP 200 on 2 checks", before, first)
	if !standby.Leader() {
		t.Error("the new holder lost the lease")
	}
}

func TestRestartDoesNotRepublish(t *testing.T) {
	t.Parallel()
	b, tg := newBus(t), newTarget(t)
	o := probe.Options{
		Specs:    []probe.Spec{{Service: "pcp", URL: tg.URL + "/", Interval: 50 * time.Millisecond}},
		LeaseTTL: leaseTTL, Name: "a",
	}
	r1 := b.start(t, o)
	tg.set(answer503)
	evs := b.waitEvents(t, 1)
	down := evs[0]
	r1.stop(t)
	if r1.Leader() {
		t.Fatal("a stopped runner still holds the lease")
	}

	// The same replica again, the service still down: it checks, and
	// publishes nothing, as the down is already published.
	r2 := b.start(t, o)
	eventually(t, "the restarted runner does not take the released lease", r2.Leader)
	tg.waitHits(t, tg.count(), 6)
	if evs := b.events(t); len(evs) != 1 {
		t.Fatalf("after the restart the stream holds %d events, want the 1 portal.down: %+v", len(evs), evs)
	}

	// Were it published again, the stream would drop it: same id.
	tr := probe.Transition{Service: "pcp", Up: false, At: down.Time, Notice: down.change.Notice}
	msg, err := probe.Message(subjects, probe.DefaultSource, tr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	ack, err := b.js.PublishMsg(ctx, msg)
	if err != nil || !ack.Duplicate {
		t.Fatalf("republishing the portal.down: ack %+v, %v; want a duplicate", ack, err)
	}
	b.waitEvents(t, 1)

	// The restarted runner goes on from the stored state.
	from := tg.count()
	tg.set(answerOK)
	evs = b.waitEvents(t, 2)
	before, first := tg.firstRun(t, from, true)
	checkEvent(t, evs[1], true, "up again: HTTP 200 on 2 checks", before, first)
}

func TestRestartPublishesWhatWasStoredButNotPublished(t *testing.T) {
	t.Parallel()
	b, tg := newBus(t), newTarget(t)
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	// A runner recorded a portal.down and died before publishing it.
	kv, err := b.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: probe.BucketState})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(-time.Minute).UTC()
	tr := probe.Transition{Service: "pcp", Up: false, At: at, Notice: "HTTP 503 on 3 checks"}
	stored, _ := json.Marshal(map[string]any{
		"service": "pcp", "up": false, "at": at, "notice": tr.Notice, "id": probe.EventID(tr), "published": false,
	})
	if _, err := kv.Put(ctx, "pcp", stored); err != nil {
		t.Fatal(err)
	}

	from := tg.count()
	b.start(t, probe.Options{
		Specs:    []probe.Spec{{Service: "pcp", URL: tg.URL + "/", Interval: 50 * time.Millisecond}},
		LeaseTTL: leaseTTL, Name: "a",
	})
	evs := b.waitEvents(t, 2)
	checkEvent(t, evs[0], false, tr.Notice, at.Add(-time.Nanosecond), at)
	before, first := tg.firstRun(t, from, true)
	checkEvent(t, evs[1], true, "up again: HTTP 200 on 2 checks", before, first)

	var rec struct {
		Up        bool   `json:"up"`
		ID        string `json:"id"`
		Published bool   `json:"published"`
	}
	eventually(t, "the up is not marked published", func() bool {
		e, err := kv.Get(ctx, "pcp")
		return err == nil && json.Unmarshal(e.Value(), &rec) == nil && rec.Published
	})
	if !rec.Up || rec.ID != evs[1].ID {
		t.Errorf("stored state %+v, want up with id %s", rec, evs[1].ID)
	}
}

func TestNewRunnerRejects(t *testing.T) {
	b := newBus(t)
	ok := probe.Spec{Service: "pcp", URL: "https://pcp.anac.example/"}
	tests := []struct {
		name    string
		o       probe.Options
		wantErr string
	}{
		{name: "no specs", o: probe.Options{}, wantErr: "no probes configured"},
		{name: "a bad spec", o: probe.Options{Specs: []probe.Spec{{Service: "pcp", URL: "pcp.anac.example"}}}, wantErr: "probe pcp: url"},
		{name: "a service twice", o: probe.Options{Specs: []probe.Spec{ok, ok}}, wantErr: "probe pcp: service probed twice"},
		{name: "lease too short", o: probe.Options{Specs: []probe.Spec{ok}, LeaseTTL: 100 * time.Millisecond}, wantErr: "lease TTL 100ms: write at least 500ms"},
		{name: "negative failures", o: probe.Options{Specs: []probe.Spec{ok}, Failures: -1}, wantErr: "failures -1"},
		{name: "negative successes", o: probe.Options{Specs: []probe.Spec{ok}, Successes: -1}, wantErr: "successes -1"},
		{name: "bad prefix", o: probe.Options{Specs: []probe.Spec{ok}, Subjects: events.Subjects{Prefix: "a b"}}, wantErr: "subject prefix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			_, err := probe.NewRunner(ctx, b.js, tt.o)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("NewRunner: %v, want an error with %q", err, tt.wantErr)
			}
		})
	}
}

func TestNewRunnerProvisionsIdempotently(t *testing.T) {
	b := newBus(t)
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	for _, ttl := range []time.Duration{leaseTTL, 2 * leaseTTL, 0} {
		o := probe.Options{Specs: []probe.Spec{{Service: "pcp", URL: "https://pcp.anac.example/", Interval: time.Minute}}, LeaseTTL: ttl}
		if _, err := probe.NewRunner(ctx, b.js, o); err != nil {
			t.Fatalf("NewRunner with lease TTL %s: %v", ttl, err)
		}
		kv, err := b.js.KeyValue(ctx, probe.BucketLease)
		if err != nil {
			t.Fatal(err)
		}
		st, err := kv.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := ttl
		if ttl == 0 {
			want = 45 * time.Second // 3/4 of the shortest interval
		}
		if st.TTL() != want {
			t.Errorf("lease bucket TTL %s, want %s", st.TTL(), want)
		}
	}
	if _, err := b.js.KeyValue(ctx, probe.BucketState); err != nil {
		t.Errorf("state bucket: %v", err)
	}
}

func TestPublishRetriedUntilTheStreamTakesIt(t *testing.T) {
	t.Parallel()
	b, tg := newBus(t), newTarget(t)
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	cfg := jetstream.StreamConfig{Name: worker.StreamEvents, Subjects: []string{subjects.Prefix + ".portal.>"}, Duplicates: 2 * time.Minute}
	if err := b.js.DeleteStream(ctx, worker.StreamEvents); err != nil {
		t.Fatal(err)
	}
	b.start(t, probe.Options{
		Specs:    []probe.Spec{{Service: "pcp", URL: tg.URL + "/", Interval: 50 * time.Millisecond}},
		LeaseTTL: leaseTTL, Name: "a",
	})
	from := tg.count()
	tg.set(answer503)
	tg.waitHits(t, from, 3+5) // down detected, its publication failing
	if _, err := b.js.CreateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	evs := b.waitEvents(t, 1)
	before, first := tg.firstRun(t, from, false)
	checkEvent(t, evs[0], false, "HTTP 503 on 3 checks", before, first)
}

func TestStateWrittenByAnotherReplicaWins(t *testing.T) {
	t.Parallel()
	b, tg := newBus(t), newTarget(t)
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	r := b.start(t, probe.Options{
		Specs:    []probe.Spec{{Service: "pcp", URL: tg.URL + "/", Interval: 50 * time.Millisecond}},
		LeaseTTL: leaseTTL, Name: "a",
	})
	eventually(t, "the runner does not take the lease", r.Leader)
	tg.waitHits(t, tg.count(), 2)

	// Behind the runner's back (as a replica that held the lease a moment
	// ago would), the down is recorded and published.
	kv, err := b.js.KeyValue(ctx, probe.BucketState)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC()
	tr := probe.Transition{Service: "pcp", Up: false, At: at, Notice: "HTTP 503 on 3 checks"}
	stored, _ := json.Marshal(map[string]any{"service": "pcp", "up": false, "at": at, "notice": tr.Notice, "id": probe.EventID(tr), "published": true})
	if _, err := kv.Put(ctx, "pcp", stored); err != nil {
		t.Fatal(err)
	}

	// The runner sees the service fail too: its write of the down finds the
	// state changed, and it starts again from the stored state, with no
	// second portal.down.
	from := tg.count()
	tg.set(answer503)
	tg.waitHits(t, from, 3+6)
	if evs := b.events(t); len(evs) != 0 {
		t.Fatalf("the runner published %d events over the stored state: %+v", len(evs), evs)
	}
	from = tg.count()
	tg.set(answerOK)
	evs := b.waitEvents(t, 1)
	before, first := tg.firstRun(t, from, true)
	checkEvent(t, evs[0], true, "up again: HTTP 200 on 2 checks", before, first)
}

// TestStartsFromTheWorkersState: a service the probe has no state of starts
// from the worker's (down: the probe publishes its end), or from up if the
// worker has none; the probe's own state, where it has one, wins.
func TestStartsFromTheWorkersState(t *testing.T) {
	t.Parallel()
	b, tg := newBus(t), newTarget(t)
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	wkv, err := b.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: worker.BucketState})
	if err != nil {
		t.Fatal(err)
	}
	down := time.Now().Add(-time.Hour).UTC()
	for _, svc := range []string{"pcp", "smartcig"} { // down for the worker
		v, _ := json.Marshal(outage.Service{Name: svc, Transitions: []outage.Transition{{At: down, Up: false, Notice: "a portal.down by hand"}}})
		if _, err := wkv.Put(ctx, "svc."+gap.Token(svc), v); err != nil {
			t.Fatal(err)
		}
	}
	// The probe published smartcig's end: its state wins over the worker's.
	pkv, err := b.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: probe.BucketState})
	if err != nil {
		t.Fatal(err)
	}
	tr := probe.Transition{Service: "smartcig", Up: true, At: down.Add(time.Minute), Notice: "up again: HTTP 200 on 2 checks"}
	stored, _ := json.Marshal(map[string]any{"service": "smartcig", "up": true, "at": tr.At, "notice": tr.Notice, "id": probe.EventID(tr), "published": true})
	if _, err := pkv.Put(ctx, "smartcig", stored); err != nil {
		t.Fatal(err)
	}

	started := time.Now()
	b.start(t, probe.Options{
		Specs: []probe.Spec{
			{Service: "pcp", URL: tg.URL + "/pcp", Interval: 50 * time.Millisecond},
			{Service: "smartcig", URL: tg.URL + "/smartcig", Interval: 50 * time.Millisecond},
			{Service: "payments", URL: tg.URL + "/payments", Interval: 50 * time.Millisecond}, // unknown to both
		},
		LeaseTTL: leaseTTL, Name: "a",
	})
	ev := b.waitEvents(t, 1)[0]
	if ev.Type != events.TypePortalUp || len(ev.change.Services) != 1 || ev.change.Services[0] != "pcp" ||
		ev.change.Notice != "up again: HTTP 200 on 2 checks" || ev.Time.Before(started) {
		t.Fatalf("event %s %q %q at %s, want pcp's portal.up after the runner started (%s)",
			ev.Type, ev.change.Services, ev.change.Notice, ev.Time, started)
	}

	// Nothing for smartcig (up for the probe) nor payments (up: unknown).
	tg.waitHits(t, tg.count(), 3*4)
	if evs := b.events(t); len(evs) != 1 {
		t.Fatalf("the stream holds %d events, want only pcp's portal.up: %+v", len(evs), evs)
	}
}
