// Command bench measures promemoria against the limits of the bus it runs
// on, on a real embedded nats-server in this process, and prints one table:
// the ceiling (raw JetStream consume + ack, raw async publish), a naive
// worker, and promemoria's real worker, on a steady stream of events, the
// restoration fan-out of N gaps, memory, and restart with open gaps.
//
//	go run ./cmd/bench                       # quick: fan-out 10k and 100k
//	go run ./cmd/bench -gaps 10000,100000,1000000 -out docs/bench.txt
//
// Each figure is the median of -runs runs. Fan-out, memory and restart
// runs each happen in a fresh subprocess (the binary re-executes itself),
// so that peak RSS readings do not mix.
//
// -only process runs promemoria as it is deployed instead: its own process
// (`promemoria serve --nats-url`) against a nats-server process, over
// loopback TCP, both built with `go build` (or given with -promemoria-bin
// and -nats-server-bin):
//
//	go run ./cmd/bench -only process                          # steady 200k + fan-out/restart 20k
//	go run ./cmd/bench -only process -process-gaps 20000,1000000
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/promemoria/promemoria/bench"
)

type flags struct {
	events, latencyEvents, restartGaps, runs, naiveMax int
	latencyRate                                        float64
	gaps, processGaps                                  []int
	promemoriaBin, natsServerBin                       string
	idle                                               time.Duration
	out, jsonOut, cpuprofile, memprofile, dir, only    string
	tcp, keep                                          bool
	seed                                               uint64
	// child mode
	child    string
	childN   int
	childDir string
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	var f flags
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.IntVar(&f.events, "events", 200_000, "events of the steady stream")
	gaps := fs.String("gaps", "10000,100000", "open gaps of each restoration fan-out, comma-separated (1000000 allowed)")
	processGaps := fs.String("process-gaps", "20000", "-only process: open gaps of each fan-out and restart of promemoria's own process, comma-separated (add 1000000 for the 1M figures)")
	fs.StringVar(&f.promemoriaBin, "promemoria-bin", "", "-only process: the promemoria executable to run (default: go build ./cmd/promemoria)")
	fs.StringVar(&f.natsServerBin, "nats-server-bin", "", "-only process: the nats-server executable to run (default: go build github.com/nats-io/nats-server/v2, the go.mod version)")
	fs.IntVar(&f.runs, "runs", 3, "runs of each measurement; the table shows the median")
	fs.StringVar(&f.out, "out", "", "also write the table to this file")
	fs.StringVar(&f.jsonOut, "json", "", "write every run's raw results to this file (JSON)")
	fs.IntVar(&f.latencyEvents, "latency-events", 10_000, "events published at -latency-rate for the latency figures")
	fs.Float64Var(&f.latencyRate, "latency-rate", 1000, "events per second of the latency measurement")
	fs.IntVar(&f.restartGaps, "restart-gaps", 100_000, "open gaps on disk for the restart measurement")
	fs.DurationVar(&f.idle, "idle", 5*time.Second, "how long the service idles before its idle RSS is read")
	fs.IntVar(&f.naiveMax, "naive-fanout-max", 100_000, "largest fan-out the naive baseline runs (it is slow)")
	fs.StringVar(&f.cpuprofile, "cpuprofile", "", "write CPU profiles of promemoria's first steady run and first fan-out of each size to PREFIX-steady.pprof and PREFIX-fanout-N.pprof")
	fs.StringVar(&f.memprofile, "memprofile", "", "write heap profiles of promemoria's first fan-out of each size, taken when every first reminder is stored, to PREFIX-fanout-N.heap.pprof")
	fs.StringVar(&f.dir, "dir", os.TempDir(), "where the data directories go")
	fs.StringVar(&f.only, "only", "steady,latency,fanout,restart,idle", "measurements to run (and process: promemoria as its own process against a nats-server process over TCP)")
	fs.BoolVar(&f.tcp, "tcp", false, "connect every client over loopback TCP (default in-process, as the app connects its worker)")
	fs.BoolVar(&f.keep, "keep", false, "keep the data directories")
	fs.Uint64Var(&f.seed, "seed", 20210503, "seed of the generated inputs")
	fs.StringVar(&f.child, "child", "", "internal: run one measurement in this process and print it as JSON")
	fs.IntVar(&f.childN, "child-n", 0, "internal")
	fs.StringVar(&f.childDir, "child-dir", "", "internal")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: go run ./cmd/bench [flags]\n\nFlags:\n")
		fs.VisitAll(func(fl *flag.Flag) {
			if fl.Usage != "internal" && fl.Name != "child" {
				fmt.Fprintf(fs.Output(), "  -%s\t%s (default %q)\n", fl.Name, fl.Usage, fl.DefValue)
			}
		})
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	for _, l := range []struct {
		name string
		list *string
		into *[]int
	}{{"gaps", gaps, &f.gaps}, {"process-gaps", processGaps, &f.processGaps}} {
		for _, s := range strings.Split(*l.list, ",") {
			if s = strings.TrimSpace(s); s == "" {
				continue
			}
			n, err := strconv.Atoi(strings.ReplaceAll(s, "_", ""))
			if err != nil || n <= 0 {
				fmt.Fprintf(os.Stderr, "bench: -%s: %q is not a positive number\n", l.name, s)
				return 2
			}
			*l.into = append(*l.into, n)
		}
	}
	if f.runs < 1 || f.events < 1 || f.latencyEvents < 1 || f.latencyRate <= 0 {
		fmt.Fprintln(os.Stderr, "bench: -runs, -events, -latency-events and -latency-rate must be positive")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if f.child != "" {
		return child(ctx, &f)
	}
	return parent(ctx, &f, args)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func (f *flags) options() bench.Options {
	return bench.Options{Dir: f.dir, Keep: f.keep, TCP: f.tcp, Seed: f.seed, Log: logf}
}

// child runs one measurement and prints its result as JSON on stdout.
func child(ctx context.Context, f *flags) int {
	o := f.options()
	var (
		res any
		err error
	)
	switch f.child {
	case "fanout":
		fo := bench.FanOutOptions{Options: o, NaiveMax: f.naiveMax, Ceiling: true, Verify: true}
		if f.cpuprofile != "" {
			pf, err := os.Create(f.cpuprofile)
			if err != nil {
				logf("%v", err)
				return 1
			}
			defer pf.Close()
			fo.CPUProfile = pf
		}
		if f.memprofile != "" {
			pf, err := os.Create(f.memprofile)
			if err != nil {
				logf("%v", err)
				return 1
			}
			defer pf.Close()
			fo.HeapProfile = pf
		}
		res, err = bench.RunFanOut(ctx, f.childN, fo)
	case "restart-prep":
		var load time.Duration
		load, err = bench.PrepareRestart(ctx, f.childDir, f.childN, o)
		res = map[string]any{"Load": load}
	case "restart":
		res, err = bench.MeasureRestart(ctx, f.childDir, f.idle, o)
	case "idle":
		res, err = bench.RunIdle(ctx, f.idle, o)
	default:
		err = fmt.Errorf("unknown child %q", f.child)
	}
	if err != nil {
		logf("%s: %v", f.child, err)
		return 1
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		logf("%v", err)
		return 1
	}
	return 0
}

// spawn runs this binary as a child and decodes its result into v.
func spawn(ctx context.Context, f *flags, v any, args ...string) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	base := []string{"-dir", f.dir, "-seed", strconv.FormatUint(f.seed, 10), "-naive-fanout-max", strconv.Itoa(f.naiveMax), "-idle", f.idle.String()}
	if f.tcp {
		base = append(base, "-tcp")
	}
	if f.keep {
		base = append(base, "-keep")
	}
	cmd := exec.CommandContext(ctx, exe, append(base, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("child %v: %w", args, err)
	}
	return json.Unmarshal(out.Bytes(), v)
}

// results holds every run.
type results struct {
	Machine machine
	Command string
	Runs    int
	Events  int
	Steady  map[bench.System][]*bench.SteadyResult
	Latency map[bench.System][]*bench.LatencyResult
	FanOut  map[int][]*bench.FanOutResult
	Restart []*bench.RestartResult
	Prepare time.Duration
	Idle    []*bench.IdleResult
	// -only process: the executables, how long building them took, and
	// the runs.
	ProcessBin    bench.Binaries
	ProcessBuild  time.Duration
	ProcessSteady map[bench.System][]*bench.ProcessSteadyResult
	ProcessFanOut map[int][]*bench.ProcessFanOutResult
	Errors        []string
	Duration      time.Duration
	Started       time.Time
}

type machine struct {
	Code       string
	CPUs       int
	CPU        string
	Go         string
	OS         string
	NATSServer string
	Transport  string
}

func describeMachine(tcp bool) machine {
	m := machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH, NATSServer: server.VERSION, Transport: "in-process"}
	if tcp {
		m.Transport = "loopback TCP"
	}
	m.Code = "unknown (no git)"
	if head, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		m.Code = "git " + strings.TrimSpace(string(head))
		if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
			m.Code += " with uncommitted changes"
		}
	}
	if fh, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		fh.Close()
	}
	return m
}

func parent(ctx context.Context, f *flags, args []string) int {
	only := map[string]bool{}
	for _, s := range strings.Split(f.only, ",") {
		only[strings.TrimSpace(s)] = true
	}
	r := &results{
		Machine: describeMachine(f.tcp), Command: strings.TrimSpace("go run ./cmd/bench " + strings.Join(args, " ")),
		Runs: f.runs, Events: f.events, Started: time.Now(),
		Steady: map[bench.System][]*bench.SteadyResult{}, Latency: map[bench.System][]*bench.LatencyResult{},
		FanOut:        map[int][]*bench.FanOutResult{},
		ProcessSteady: map[bench.System][]*bench.ProcessSteadyResult{}, ProcessFanOut: map[int][]*bench.ProcessFanOutResult{},
	}
	fail := func(what string, err error) {
		logf("%s: %v", what, err)
		r.Errors = append(r.Errors, what+": "+err.Error())
	}
	o := f.options()

	if only["steady"] {
		for run := 1; run <= f.runs && ctx.Err() == nil; run++ {
			for _, sys := range bench.Systems {
				logf("steady %s, run %d of %d: %d events", sys, run, f.runs, f.events)
				ro := o
				if sys == bench.Promemoria && run == 1 && f.cpuprofile != "" {
					pf, err := os.Create(f.cpuprofile + "-steady.pprof")
					if err != nil {
						fail("cpuprofile", err)
					} else {
						defer pf.Close()
						ro.CPUProfile = pf
					}
				}
				res, err := bench.RunSteady(ctx, sys, f.events, ro)
				if err != nil {
					fail(fmt.Sprintf("steady %s run %d", sys, run), err)
					continue
				}
				r.Steady[sys] = append(r.Steady[sys], res)
			}
		}
	}
	if only["latency"] {
		for run := 1; run <= f.runs && ctx.Err() == nil; run++ {
			for _, sys := range bench.Systems {
				logf("latency %s, run %d of %d: %d events at %.0f/s", sys, run, f.runs, f.latencyEvents, f.latencyRate)
				res, err := bench.RunLatency(ctx, sys, f.latencyEvents, f.latencyRate, o)
				if err != nil {
					fail(fmt.Sprintf("latency %s run %d", sys, run), err)
					continue
				}
				r.Latency[sys] = append(r.Latency[sys], res)
			}
		}
	}
	if only["fanout"] {
		for _, n := range f.gaps {
			for run := 1; run <= f.runs && ctx.Err() == nil; run++ {
				logf("fan-out %d gaps, run %d of %d (subprocess)", n, run, f.runs)
				a := []string{"-child", "fanout", "-child-n", strconv.Itoa(n)}
				if run == 1 && f.cpuprofile != "" {
					a = append(a, "-cpuprofile", fmt.Sprintf("%s-fanout-%d.pprof", f.cpuprofile, n))
				}
				if run == 1 && f.memprofile != "" {
					a = append(a, "-memprofile", fmt.Sprintf("%s-fanout-%d.heap.pprof", f.memprofile, n))
				}
				var res bench.FanOutResult
				if err := spawn(ctx, f, &res, a...); err != nil {
					fail(fmt.Sprintf("fan-out %d run %d", n, run), err)
					continue
				}
				r.FanOut[n] = append(r.FanOut[n], &res)
			}
		}
	}
	if only["restart"] && ctx.Err() == nil {
		dir, err := os.MkdirTemp(f.dir, "promemoria-bench-restart-")
		if err == nil {
			if !f.keep {
				defer os.RemoveAll(dir)
			}
			logf("restart: preparing %d open gaps on disk (subprocess)", f.restartGaps)
			var prep struct{ Load time.Duration }
			err = spawn(ctx, f, &prep, "-child", "restart-prep", "-child-n", strconv.Itoa(f.restartGaps), "-child-dir", dir)
			r.Prepare = prep.Load
		}
		if err != nil {
			fail("restart: prepare", err)
		} else {
			for run := 1; run <= f.runs && ctx.Err() == nil; run++ {
				logf("restart with %d gaps, run %d of %d (subprocess)", f.restartGaps, run, f.runs)
				var res bench.RestartResult
				if err := spawn(ctx, f, &res, "-child", "restart", "-child-dir", dir); err != nil {
					fail(fmt.Sprintf("restart run %d", run), err)
					continue
				}
				r.Restart = append(r.Restart, &res)
			}
		}
	}
	if only["idle"] {
		for run := 1; run <= f.runs && ctx.Err() == nil; run++ {
			logf("idle, run %d of %d (subprocess)", run, f.runs)
			var res bench.IdleResult
			if err := spawn(ctx, f, &res, "-child", "idle"); err != nil {
				fail(fmt.Sprintf("idle run %d", run), err)
				continue
			}
			r.Idle = append(r.Idle, &res)
		}
	}
	if only["process"] && ctx.Err() == nil {
		runProcess(ctx, f, r, fail)
	}
	r.Duration = time.Since(r.Started)

	var table bytes.Buffer
	writeTable(&table, r, f)
	os.Stdout.Write(table.Bytes())
	if f.out != "" {
		if err := os.MkdirAll(filepath.Dir(f.out), 0o755); err == nil {
			err = os.WriteFile(f.out, table.Bytes(), 0o644)
		}
	}
	if f.jsonOut != "" {
		b, _ := json.MarshalIndent(r, "", "  ")
		if err := os.WriteFile(f.jsonOut, b, 0o644); err != nil {
			logf("%v", err)
		}
	}
	if len(r.Errors) > 0 || ctx.Err() != nil {
		return 1
	}
	return 0
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func med[T any](xs []T, f func(T) float64) (float64, bool) {
	if len(xs) == 0 {
		return 0, false
	}
	v := make([]float64, len(xs))
	for i, x := range xs {
		v[i] = f(x)
	}
	return median(v), true
}

// num formats a count with thousands separators.
func num(v float64) string {
	s := strconv.FormatInt(int64(v+0.5), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func secs(v float64) string {
	switch {
	case v >= 10:
		return fmt.Sprintf("%.1f s", v)
	case v >= 1:
		return fmt.Sprintf("%.2f s", v)
	default:
		return fmt.Sprintf("%.0f ms", v*1000)
	}
}

func ms(v float64) string {
	if v >= 100 {
		return fmt.Sprintf("%.0f ms", v)
	}
	return fmt.Sprintf("%.1f ms", v)
}

func mb(v float64) string { return fmt.Sprintf("%.0f MB", v/(1<<20)) }

type row struct {
	figure, ceiling, naive, prom, pc, pn, target, met string
}

func ratio(p, other float64, okP, okO bool) string {
	if !okP || !okO || other == 0 {
		return "-"
	}
	r := p / other
	if r >= 10 {
		return fmt.Sprintf("%.0f×", r)
	}
	return fmt.Sprintf("%.2f×", r)
}

func yesno(ok bool) string {
	if ok {
		return "yes"
	}
	return "NO"
}

func writeTable(w io.Writer, r *results, f *flags) {
	var rows []row
	add := func(x row) { rows = append(rows, x) }
	na := "-"
	pick := func(v float64, ok bool, format func(float64) string) string {
		if !ok {
			return na
		}
		return format(v)
	}

	// Steady stream throughput.
	rate := func(x *bench.SteadyResult) float64 { return x.Rate() }
	cR, cOK := med(r.Steady[bench.Ceiling], rate)
	nR, nOK := med(r.Steady[bench.Naive], rate)
	pR, pOK := med(r.Steady[bench.Promemoria], rate)
	if cOK || nOK || pOK {
		met := na
		if pOK && nOK {
			met = yesno(pR >= 30_000 && pR >= 3*nR)
		}
		add(row{fmt.Sprintf("steady, %s events: events/s", num(float64(f.events))), pick(cR, cOK, num), pick(nR, nOK, num), pick(pR, pOK, num),
			ratio(pR, cR, pOK, cOK), ratio(pR, nR, pOK, nOK), "≥30,000 and ≥3× naive", met})
		var all []*bench.SteadyResult
		for _, s := range bench.Systems {
			all = append(all, r.Steady[s]...)
		}
		pubR, pubOK := med(all, func(x *bench.SteadyResult) float64 { return x.PublishRate() })
		add(row{"  raw async publish of the inputs, msgs/s", pick(pubR, pubOK, num), na, na, na, na, "", ""})
		if s := r.Steady[bench.Promemoria]; len(s) > 0 {
			outs, _ := med(s, func(x *bench.SteadyResult) float64 { return float64(x.Outputs) })
			add(row{"  promemoria outputs per run (checked)", na, na, num(outs), na, na, "", ""})
		}
		perEvent := func(get func(*bench.SteadyResult) float64) (cs, ns, ps, pc, pn string) {
			c, cok := med(r.Steady[bench.Ceiling], get)
			n, nok := med(r.Steady[bench.Naive], get)
			p, pok := med(r.Steady[bench.Promemoria], get)
			f := func(v float64) string { return fmt.Sprintf("%.2f", v) }
			return pick(c, cok, f), pick(n, nok, f), pick(p, pok, f), ratio(p, c, pok, cok), ratio(p, n, pok, nok)
		}
		c, n, p, pc, pn := perEvent(func(x *bench.SteadyResult) float64 { return float64(x.Load.MsgsIn) / float64(x.Events) })
		add(row{"  server: client messages in per event", c, n, p, pc, pn, "", ""})
		c, n, p, pc, pn = perEvent(func(x *bench.SteadyResult) float64 { return float64(x.Load.TotalWrites()) / float64(x.Events) })
		add(row{"  server: messages stored per event", c, n, p, pc, pn, "", ""})
		c, n, p, pc, pn = perEvent(func(x *bench.SteadyResult) float64 { return float64(x.CPU.Microseconds()) / float64(x.Events) })
		add(row{"  CPU µs per event (whole process)", c, n, p, pc, pn, "", ""})
		c, n, p, pc, pn = perEvent(func(x *bench.SteadyResult) float64 { return x.CPU.Seconds() / x.Elapsed.Seconds() })
		add(row{"  CPUs busy (of " + strconv.Itoa(r.Machine.CPUs) + ")", c, n, p, pc, pn, "", ""})
	}
	// Latency.
	for _, q := range []struct {
		name   string
		get    func(*bench.LatencyResult) float64
		target string
	}{
		{"p50", func(x *bench.LatencyResult) float64 { return float64(x.P50) / 1e6 }, ""},
		{"p99", func(x *bench.LatencyResult) float64 { return float64(x.P99) / 1e6 }, "< 10 ms"},
	} {
		c, cok := med(r.Latency[bench.Ceiling], q.get)
		n, nok := med(r.Latency[bench.Naive], q.get)
		p, pok := med(r.Latency[bench.Promemoria], q.get)
		if !cok && !nok && !pok {
			continue
		}
		met := ""
		if q.target != "" {
			met = na
			if pok {
				met = yesno(p < 10)
			}
		}
		add(row{fmt.Sprintf("steady at %.0f ev/s: %s publish→reminder", f.latencyRate, q.name), pick(c, cok, ms), pick(n, nok, ms), pick(p, pok, ms),
			ratio(p, c, pok, cok), ratio(p, n, pok, nok), q.target, met})
	}
	// Fan-out.
	for _, n := range f.gaps {
		rs := r.FanOut[n]
		if len(rs) == 0 {
			continue
		}
		p, pok := med(rs, func(x *bench.FanOutResult) float64 { return x.Elapsed.Seconds() })
		c, cok := med(rs, func(x *bench.FanOutResult) float64 { return x.Ceiling.Seconds() })
		var naive []*bench.FanOutResult
		for _, x := range rs {
			if x.Naive > 0 {
				naive = append(naive, x)
			}
		}
		nv, nok := med(naive, func(x *bench.FanOutResult) float64 { return x.Naive.Seconds() })
		target, met := "", ""
		switch n {
		case 100_000:
			target, met = "< 3 s", yesno(p < 3)
		case 1_000_000:
			target, met = "< 30 s", yesno(p < 30)
		}
		add(row{fmt.Sprintf("fan-out %s gaps: all first reminders", num(float64(n))), pick(c, cok, secs), pick(nv, nok, secs), pick(p, pok, secs),
			ratio(p, c, pok, cok), ratio(p, nv, pok, nok), target, met})
		first, _ := med(rs, func(x *bench.FanOutResult) float64 { return x.First.Seconds() })
		load, _ := med(rs, func(x *bench.FanOutResult) float64 { return float64(x.N) / x.Load.Seconds() })
		add(row{"  first reminder after ready", na, na, secs(first), na, na, "", ""})
		in, _ := med(rs, func(x *bench.FanOutResult) float64 { return float64(x.LoadFanOut.MsgsIn) / float64(x.N) })
		st, _ := med(rs, func(x *bench.FanOutResult) float64 { return float64(x.LoadFanOut.TotalWrites()) / float64(x.N) })
		add(row{"  server: client messages in / stored per gap", "1 / 1", na, fmt.Sprintf("%.2f / %.2f", in, st), na, na, "", ""})
		cpu, _ := med(rs, func(x *bench.FanOutResult) float64 { return float64(x.CPU.Microseconds()) / float64(x.N) })
		busy, _ := med(rs, func(x *bench.FanOutResult) float64 { return x.CPU.Seconds() / x.Elapsed.Seconds() })
		add(row{"  CPU µs per gap (whole process) / CPUs busy", na, na, fmt.Sprintf("%.0f / %.2f", cpu, busy), na, na, "", ""})
		add(row{"  gaps opened per second while down", na, na, num(load), na, na, "", ""})
		peak, _ := med(rs, func(x *bench.FanOutResult) float64 { return float64(x.MemFanOut.Peak) })
		loadPeak, _ := med(rs, func(x *bench.FanOutResult) float64 { return float64(x.MemLoad.Peak) })
		target, met = "", ""
		if n == 1_000_000 {
			target, met = "< 512 MB", yesno(max(peak, loadPeak) < 512<<20)
		}
		add(row{fmt.Sprintf("peak RSS, fan-out %s gaps", num(float64(n))), na, na, mb(peak), na, na, target, met})
		add(row{"  peak RSS while opening them", na, na, mb(loadPeak), na, na, "", ""})
	}
	if len(r.Idle) > 0 {
		v, _ := med(r.Idle, func(x *bench.IdleResult) float64 { return float64(x.Mem.RSS) })
		add(row{"idle RSS, empty store", na, na, mb(v), na, na, "< 64 MB", yesno(v < 64<<20)})
	}
	if len(r.Restart) > 0 {
		idle, _ := med(r.Restart, func(x *bench.RestartResult) float64 { return float64(x.Idle.RSS) })
		add(row{fmt.Sprintf("idle RSS, %s gaps on disk", num(float64(f.restartGaps))), na, na, mb(idle), na, na, "", ""})
		ready, _ := med(r.Restart, func(x *bench.RestartResult) float64 { return x.Ready.Seconds() })
		srv, _ := med(r.Restart, func(x *bench.RestartResult) float64 { return x.Server.Seconds() })
		first, _ := med(r.Restart, func(x *bench.RestartResult) float64 { return x.FirstEvent.Seconds() })
		add(row{fmt.Sprintf("restart, %s gaps on disk: start to ready", num(float64(f.restartGaps))), na, na, secs(ready), na, na, "< 2 s", yesno(ready < 2)})
		add(row{"  of which the embedded server's start", na, na, secs(srv), na, na, "", ""})
		add(row{"  start to first event processed", na, na, secs(first), na, na, "", ""})
	}
	processRows(r, f, add)

	m := r.Machine
	fmt.Fprintf(w, "promemoria benchmark, %s (took %s)\n", r.Started.UTC().Format("2006-01-02 15:04 UTC"), r.Duration.Round(time.Second))
	transport := "embedded nats-server " + m.NATSServer + ", clients " + m.Transport
	if len(r.ProcessSteady)+len(r.ProcessFanOut) > 0 {
		// The nats-server binary is built from the same go.mod.
		transport = "nats-server " + m.NATSServer + "; in-process rows: embedded, clients " + m.Transport + "; process rows: separate processes over loopback TCP"
	}
	fmt.Fprintf(w, "machine: %d CPUs, %s, %s, %s, %s\n", m.CPUs, m.CPU, m.OS, m.Go, transport)
	fmt.Fprintf(w, "code: %s\ncommand: %s\n", m.Code, r.Command)
	fmt.Fprintf(w, "each figure: median of %d runs; ratios are promemoria's figure divided by the other's\n\n", r.Runs)
	head := row{"figure", "ceiling", "naive", "promemoria", "p/ceiling", "p/naive", "target", "met"}
	widths := make([]int, 8)
	cols := func(x row) []string {
		return []string{x.figure, x.ceiling, x.naive, x.prom, x.pc, x.pn, x.target, x.met}
	}
	for _, x := range append([]row{head}, rows...) {
		for i, c := range cols(x) {
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	line := func(x row) {
		var b strings.Builder
		for i, c := range cols(x) {
			pad := widths[i] - len([]rune(c))
			if i == 0 || i >= 6 {
				b.WriteString(c + strings.Repeat(" ", pad))
			} else {
				b.WriteString(strings.Repeat(" ", pad) + c)
			}
			b.WriteString("  ")
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
	line(head)
	for _, x := range rows {
		line(x)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "ceiling: raw JetStream consume+ack of the same inputs (latency: publish to the consumer's receipt); for fan-out, raw async")
	fmt.Fprintln(w, "  publish with dedup ids of N messages the size of a reminder. naive: decode, one KV compare-and-set, one synchronous")
	fmt.Fprintln(w, "  publish, ack, one message at a time (fan-out: list the gaps, then get, publish, compare-and-set each).")
	fmt.Fprintln(w, "events/s: higher is better (ratio > 1 is faster); times, latencies, RSS: lower is better (ratio > 1 is slower).")
	if s := r.Steady[bench.Promemoria]; len(s) > 0 {
		fmt.Fprintf(w, "promemoria, steady: messages stored per event by stream:%s\n", perStream(s[len(s)-1].Load.Writes, s[len(s)-1].Events))
	}
	for _, n := range f.gaps {
		if rs := r.FanOut[n]; len(rs) > 0 {
			fmt.Fprintf(w, "promemoria, fan-out %s: messages stored per gap by stream:%s\n", num(float64(n)), perStream(rs[len(rs)-1].LoadFanOut.Writes, n))
		}
	}
	for _, l := range processNotes(r, f) {
		fmt.Fprintln(w, l)
	}
	if r.Prepare > 0 {
		fmt.Fprintf(w, "restart data: %s gaps opened in %s.\n", num(float64(f.restartGaps)), r.Prepare.Round(time.Millisecond))
	}
	for _, e := range r.Errors {
		fmt.Fprintf(w, "ERROR %s\n", e)
	}
}

func perStream(writes map[string]uint64, per int) string {
	names := make([]string, 0, len(writes))
	for name := range writes {
		names = append(names, name)
	}
	slices.Sort(names)
	var b strings.Builder
	for _, name := range names {
		fmt.Fprintf(&b, " %s %.2f", name, float64(writes[name])/float64(per))
	}
	return b.String()
}
