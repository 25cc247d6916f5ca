package bench

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// TestBenchSmoke runs every measurement of the benchmark at a small size and
// checks that it completes and that its counts are right: every expected
// reminder stored exactly once, nothing else. It never checks speed.
func TestBenchSmoke(t *testing.T) {
	// It takes about 5 s, 12 s under -race; the timeouts only stop a hang.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	o := Options{Dir: t.TempDir(), Log: t.Logf, Stall: 30 * time.Second, Timeout: time.Minute}
	const events, gaps = 2000, 1000

	for _, sys := range Systems {
		r, err := RunSteady(ctx, sys, events, o)
		if err != nil {
			t.Fatalf("steady %s: %v", sys, err)
		}
		if r.Events != events || r.Unique >= events || r.Unique < events*9/10 {
			t.Errorf("steady %s: %d events, %d unique: want %d events with a few late duplicates", sys, r.Events, r.Unique, events)
		}
		if !r.Check.OK() || r.Check.Got == 0 {
			t.Errorf("steady %s: %s", sys, r.Check)
		}
		if sys == Promemoria && r.Check.Got != r.Check.Expected {
			t.Errorf("steady: %d outputs stored, %d expected", r.Check.Got, r.Check.Expected)
		}
	}

	lat, err := RunLatency(ctx, Promemoria, 200, 1000, o)
	if err != nil {
		t.Fatalf("latency: %v", err)
	}
	if lat.Samples == 0 || lat.P99 <= 0 || lat.P50 > lat.P99 {
		t.Errorf("latency: %+v", lat)
	}

	f, err := RunFanOut(ctx, gaps, FanOutOptions{Options: o, Verify: true, Ceiling: true, NaiveMax: gaps})
	if err != nil {
		t.Fatalf("fan-out: %v", err)
	}
	if f.CIG+f.Contribution != gaps || f.CIG == 0 || f.Contribution == 0 || f.Advices == 0 || !f.Check.OK() || f.Check.Got != gaps+f.Advices {
		t.Errorf("fan-out: %d CIG + %d contribution gaps, %d advices, check %s", f.CIG, f.Contribution, f.Advices, f.Check)
	}
	if f.Elapsed <= 0 || f.Ceiling <= 0 || f.Naive <= 0 || f.NaiveGaps != gaps || f.MemFanOut.Peak <= 0 {
		t.Errorf("fan-out: %+v", f)
	}

	dir := filepath.Join(o.Dir, "restart")
	if _, err := PrepareRestart(ctx, dir, gaps/2, o); err != nil {
		t.Fatalf("prepare restart: %v", err)
	}
	for range 2 { // the second start finds the input the first one left
		r, err := MeasureRestart(ctx, dir, 0, o)
		if err != nil {
			t.Fatalf("restart: %v", err)
		}
		if r.Ready <= 0 || r.FirstEvent < r.Ready || r.Idle.RSS <= 0 {
			t.Errorf("restart: %+v", r)
		}
	}
}

// TestProcessSmoke runs the process measurements (-only process) at a
// small size: it builds promemoria and the nats-server, runs the steady
// stream's ceiling and promemoria's process against a nats-server process
// over TCP, and a fan-out with a restart, and checks the counts, never
// speed. It adds about 10 s to the smoke (the build is mostly cached: go vet
// and the reliability tests build the same).
func TestProcessSmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	bin, err := BuildBinaries(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("binaries built in %s", time.Since(start).Round(time.Millisecond))
	o := ProcessOptions{Options: Options{Dir: t.TempDir(), Log: t.Logf, Stall: 30 * time.Second, Timeout: 2 * time.Minute}, Bin: bin}
	const events, gaps = 2000, 1000

	for _, sys := range []System{Ceiling, Promemoria} {
		r, err := RunProcessSteady(ctx, sys, events, o)
		if err != nil {
			t.Fatalf("process steady %s: %v", sys, err)
		}
		if r.Events != events || !r.Check.OK() || r.Check.Got == 0 || r.Elapsed <= 0 || r.ServerCPU <= 0 {
			t.Errorf("process steady %s: %d events, check %s, elapsed %s, server CPU %s", sys, r.Events, r.Check, r.Elapsed, r.ServerCPU)
		}
		if sys == Promemoria && (r.Check.Got != r.Check.Expected || r.Ready <= 0 || r.Mem.Peak <= 0 || r.Load.TotalWrites() == 0) {
			t.Errorf("process steady: %d outputs stored, %d expected; ready %s, peak RSS %d, writes %v", r.Check.Got, r.Check.Expected, r.Ready, r.Mem.Peak, r.Load.Writes)
		}
	}

	f, err := RunProcessFanOut(ctx, gaps, o)
	if err != nil {
		t.Fatalf("process fan-out: %v", err)
	}
	if f.CIG+f.Contribution != gaps || f.Advices == 0 || !f.Check.OK() || f.Check.Got != gaps+f.Advices {
		t.Errorf("process fan-out: %d CIG + %d contribution gaps, %d advices, check %s", f.CIG, f.Contribution, f.Advices, f.Check)
	}
	if f.Elapsed <= 0 || f.Restart <= 0 || f.Ceiling <= 0 || f.MemLoad.Peak <= 0 || f.MemFanOut.Peak <= 0 || f.ServerMemFanOut.Peak <= 0 {
		t.Errorf("process fan-out: %+v", f)
	}
	t.Logf("process smoke took %s", time.Since(start).Round(time.Millisecond))
}

// The Go benchmarks run one measurement of b.N events (or gaps) on a fresh
// embedded server; the timer runs only during the measured phase, so ns/op
// is the time per event (or per gap). Run them on their own, for example:
//
//	go test -run '^$' -bench . -benchtime 20000x ./bench
func benchOptions(b *testing.B) Options {
	b.StopTimer()
	return Options{Dir: b.TempDir(), Measure: func() func() { b.StartTimer(); return b.StopTimer }}
}

func benchSteady(b *testing.B, sys System) {
	r, err := RunSteady(context.Background(), sys, max(b.N, 1), benchOptions(b))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(r.Rate(), "events/s")
	b.ReportMetric(r.PublishRate(), "publish/s")
}

// BenchmarkSteady measures promemoria's worker on the steady stream.
func BenchmarkSteady(b *testing.B) { benchSteady(b, Promemoria) }

// BenchmarkNaive measures the naive worker on the steady stream.
func BenchmarkNaive(b *testing.B) { benchSteady(b, Naive) }

// BenchmarkCeiling measures raw consume + ack of the steady stream (and,
// as publish/s, the raw asynchronous publish of its inputs).
func BenchmarkCeiling(b *testing.B) { benchSteady(b, Ceiling) }

// BenchmarkFanOut measures the restoration fan-out of b.N gaps: from the
// moment the services are ready until every first reminder is stored. The
// restoration runs on a durable timer with one-second resolution, so even
// one gap takes up to a second: give it a count, like -benchtime 20000x.
func BenchmarkFanOut(b *testing.B) {
	r, err := RunFanOut(context.Background(), max(b.N, 1), FanOutOptions{Options: benchOptions(b)})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(r.Rate(), "gaps/s")
	b.ReportMetric(float64(r.MemFanOut.Peak>>20), "peak-MB")
}
