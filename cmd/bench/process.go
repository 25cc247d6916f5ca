package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/promemoria/promemoria/bench"
)

// runProcess runs the measurements of promemoria as its own process
// against a nats-server process, over loopback TCP: the steady stream
// (ceiling and promemoria), then for each -process-gaps size the opening
// of the gaps, the restart with them on disk and the fan-out.
func runProcess(ctx context.Context, f *flags, r *results, fail func(string, error)) {
	o := bench.ProcessOptions{Options: f.options()}
	o.Bin = bench.Binaries{Promemoria: f.promemoriaBin, NATSServer: f.natsServerBin}
	if o.Bin.Promemoria == "" || o.Bin.NATSServer == "" {
		dir, err := os.MkdirTemp(f.dir, "promemoria-bench-bin-")
		if err != nil {
			fail("process: build", err)
			return
		}
		if !f.keep {
			defer os.RemoveAll(dir)
		}
		logf("process: building promemoria and nats-server into %s", dir)
		start := time.Now()
		built, err := bench.BuildBinaries(ctx, dir)
		if err != nil {
			fail("process: build", err)
			return
		}
		r.ProcessBuild = time.Since(start)
		if o.Bin.Promemoria == "" {
			o.Bin.Promemoria = built.Promemoria
		}
		if o.Bin.NATSServer == "" {
			o.Bin.NATSServer = built.NATSServer
		}
	}
	for _, p := range []*string{&o.Bin.Promemoria, &o.Bin.NATSServer} {
		if abs, err := filepath.Abs(*p); err == nil {
			*p = abs
		}
	}
	r.ProcessBin = o.Bin
	for run := 1; run <= f.runs && ctx.Err() == nil; run++ {
		for _, sys := range []bench.System{bench.Ceiling, bench.Promemoria} {
			logf("process steady %s, run %d of %d: %d events", sys, run, f.runs, f.events)
			res, err := bench.RunProcessSteady(ctx, sys, f.events, o)
			if err != nil {
				fail(fmt.Sprintf("process steady %s run %d", sys, run), err)
				continue
			}
			r.ProcessSteady[sys] = append(r.ProcessSteady[sys], res)
		}
	}
	for _, n := range f.processGaps {
		for run := 1; run <= f.runs && ctx.Err() == nil; run++ {
			logf("process fan-out %d gaps, run %d of %d", n, run, f.runs)
			res, err := bench.RunProcessFanOut(ctx, n, o)
			if err != nil {
				fail(fmt.Sprintf("process fan-out %d run %d", n, run), err)
				continue
			}
			r.ProcessFanOut[n] = append(r.ProcessFanOut[n], res)
		}
	}
}

// processRows are the table's rows of -only process.
func processRows(r *results, f *flags, add func(row)) {
	na := "-"
	pick := func(v float64, ok bool, format func(float64) string) string {
		if !ok {
			return na
		}
		return format(v)
	}
	two := func(v float64) string { return fmt.Sprintf("%.2f", v) }
	us := func(v float64) string { return fmt.Sprintf("%.0f", v) }
	type steady = *bench.ProcessSteadyResult
	cs, ps := r.ProcessSteady[bench.Ceiling], r.ProcessSteady[bench.Promemoria]
	both := func(get func(steady) float64, format func(float64) string) (string, string, string) {
		c, cok := med(cs, get)
		p, pok := med(ps, get)
		return pick(c, cok, format), pick(p, pok, format), ratio(p, c, pok, cok)
	}
	if len(cs)+len(ps) > 0 {
		rate := func(x steady) float64 { return x.Rate() }
		c, cok := med(cs, rate)
		p, pok := med(ps, rate)
		met := na
		if cok && pok {
			met = yesno(p >= 0.15*c)
		}
		add(row{fmt.Sprintf("process, steady %s events: events/s", num(float64(f.events))), pick(c, cok, num), na, pick(p, pok, num),
			ratio(p, c, pok, cok), na, "≥ 0.15× ceiling", met})
		pub, pubOK := med(append(append([]steady(nil), cs...), ps...), func(x steady) float64 { return x.PublishRate() })
		add(row{"  raw async publish of the inputs over TCP, msgs/s", pick(pub, pubOK, num), na, na, na, na, "", ""})
		if v, ok := med(ps, func(x steady) float64 { return float64(x.Outputs) }); ok {
			add(row{"  promemoria outputs per run (checked)", na, na, num(v), na, na, "", ""})
		}
		if v, ok := med(ps, func(x steady) float64 { return x.Ready.Seconds() }); ok {
			add(row{"  promemoria process start to /readyz 200", na, na, secs(v), na, na, "", ""})
		}
		c1, p1, pc := both(func(x steady) float64 { return float64(x.Load.MsgsIn) / float64(x.Events) }, two)
		add(row{"  server: client messages in per event", c1, na, p1, pc, na, "", ""})
		c1, p1, pc = both(func(x steady) float64 { return float64(x.Load.TotalWrites()) / float64(x.Events) }, two)
		add(row{"  server: messages stored per event", c1, na, p1, pc, na, "", ""})
		c1, p1, pc = both(func(x steady) float64 { return float64(x.CPU.Microseconds()) / float64(x.Events) }, us)
		add(row{"  CPU µs per event, consumer's process", c1, na, p1, pc, na, "", ""})
		c1, p1, pc = both(func(x steady) float64 { return float64(x.ServerCPU.Microseconds()) / float64(x.Events) }, us)
		add(row{"  CPU µs per event, nats-server process", c1, na, p1, pc, na, "", ""})
		if v, ok := med(ps, func(x steady) float64 { return float64(x.Mem.Peak) }); ok {
			add(row{"  peak RSS, promemoria process", na, na, mb(v), na, na, "", ""})
		}
		c1, p1, pc = both(func(x steady) float64 { return float64(x.ServerMem.Peak) }, mb)
		add(row{"  peak RSS, nats-server process (load included)", c1, na, p1, pc, na, "", ""})
	}

	type fan = *bench.ProcessFanOutResult
	var peaks []float64
	for _, n := range f.processGaps {
		rs := r.ProcessFanOut[n]
		if len(rs) == 0 {
			continue
		}
		p, _ := med(rs, func(x fan) float64 { return x.Elapsed.Seconds() })
		c, _ := med(rs, func(x fan) float64 { return x.Ceiling.Seconds() })
		target, met := "", ""
		switch {
		case n <= 20_000:
			target, met = "≤ 2 s", yesno(p <= 2)
		case n == 100_000:
			target, met = "< 3 s", yesno(p < 3)
		case n == 1_000_000:
			target, met = "< 30 s", yesno(p < 30)
		}
		add(row{fmt.Sprintf("process, fan-out %s gaps: all first reminders", num(float64(n))), secs(c), na, secs(p), ratio(p, c, true, true), na, target, met})
		first, _ := med(rs, func(x fan) float64 { return x.First.Seconds() })
		add(row{"  first reminder after ready", na, na, secs(first), na, na, "", ""})
		in, _ := med(rs, func(x fan) float64 { return float64(x.LoadFanOut.MsgsIn) / float64(x.N) })
		st, _ := med(rs, func(x fan) float64 { return float64(x.LoadFanOut.TotalWrites()) / float64(x.N) })
		add(row{"  server: client messages in / stored per gap", "1 / 1", na, fmt.Sprintf("%.2f / %.2f", in, st), na, na, "", ""})
		cpu, _ := med(rs, func(x fan) float64 { return float64(x.CPU.Microseconds()) / float64(x.N) })
		scpu, _ := med(rs, func(x fan) float64 { return float64(x.ServerCPU.Microseconds()) / float64(x.N) })
		add(row{"  CPU µs per gap, promemoria / nats-server", na, na, fmt.Sprintf("%.0f / %.0f", cpu, scpu), na, na, "", ""})
		load, _ := med(rs, func(x fan) float64 { return float64(x.N) / x.Load.Seconds() })
		add(row{"  gaps opened per second while down", na, na, num(load), na, na, "", ""})
		peak, _ := med(rs, func(x fan) float64 { return float64(x.MemFanOut.Peak) })
		peaks = append(peaks, peak)
		add(row{fmt.Sprintf("process, fan-out %s gaps: peak RSS of promemoria", num(float64(n))), na, na, mb(peak), na, na, "< 128 MB", yesno(peak < 128<<20)})
		srv, _ := med(rs, func(x fan) float64 { return float64(x.ServerMemFanOut.Peak) })
		add(row{"  peak RSS of the nats-server, same time", na, na, mb(srv), na, na, "", ""})
		loadPeak, _ := med(rs, func(x fan) float64 { return float64(x.MemLoad.Peak) })
		add(row{"  peak RSS of promemoria while opening them", na, na, mb(loadPeak), na, na, "", ""})
		ready, _ := med(rs, func(x fan) float64 { return x.Restart.Seconds() })
		add(row{fmt.Sprintf("process, restart with %s gaps: start to /readyz 200", num(float64(n))), na, na, secs(ready), na, na, "< 3 s", yesno(ready < 3)})
		rss, _ := med(rs, func(x fan) float64 { return float64(x.MemReady.RSS) })
		add(row{"  RSS of promemoria once ready", na, na, mb(rss), na, na, "", ""})
	}
	if len(peaks) > 1 {
		lo, hi := peaks[0], peaks[0]
		for _, p := range peaks {
			lo, hi = min(lo, p), max(hi, p)
		}
		add(row{"process, fan-out peak RSS of promemoria, smallest to largest N", na, na, mb(lo) + " → " + mb(hi), na, na, "flat, < 128 MB", yesno(hi < 128<<20)})
	}
}

// processNotes explains the process rows.
func processNotes(r *results, f *flags) []string {
	if len(r.ProcessSteady)+len(r.ProcessFanOut) == 0 {
		return nil
	}
	bins := "built from this tree with go build (" + r.ProcessBuild.Round(100*time.Millisecond).String() + ")"
	if f.promemoriaBin != "" || f.natsServerBin != "" {
		bins = r.ProcessBin.Promemoria + ", " + r.ProcessBin.NATSServer
	}
	notes := []string{
		"process: promemoria as its own process (`promemoria serve --nats-url`, office hours always, settle 0 for the fan-out) and a",
		"  nats-server process (JetStream, file storage, the embedded server's limits), both over loopback TCP; the ceiling consumes",
		"  and acks from the benchmark's process over TCP. CPU and peak RSS (VmHWM) are per process, from /proc/<pid>; the fan-out's",
		"  peaks are reset (clear_refs) at portal.up. Fan-out: the promemoria process that opened the N gaps (services down) gets",
		"  portal.up; restart: then it stops, and a new one starts on the N open gaps (its start to /readyz 200).",
		"  binaries: " + bins,
	}
	if s := r.ProcessSteady[bench.Promemoria]; len(s) > 0 {
		notes = append(notes, "process, steady: messages stored per event by stream:"+perStream(s[len(s)-1].Load.Writes, s[len(s)-1].Events))
	}
	for _, n := range f.processGaps {
		if rs := r.ProcessFanOut[n]; len(rs) > 0 {
			notes = append(notes, fmt.Sprintf("process, fan-out %s: messages stored per gap by stream:%s", num(float64(n)), perStream(rs[len(rs)-1].LoadFanOut.Writes, n)))
		}
	}
	for _, rs := range r.ProcessFanOut {
		for _, x := range rs {
			if !x.PeakReset {
				notes = append(notes, "  the peak RSS could not be reset at portal.up in some runs: those fan-out peaks are since the process started")
				return notes
			}
		}
	}
	return notes
}
