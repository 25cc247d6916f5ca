package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/promemoria/promemoria/worker"
)

// ProcessOptions configure the measurements of promemoria as a process of
// its own, connected over loopback TCP to a nats-server process.
type ProcessOptions struct {
	Options
	// Bin are the executables (see BuildBinaries).
	Bin Binaries
}

// ProcessSteadyResult is one run of the steady stream against an external
// nats-server over TCP: the ceiling (raw consume + ack from this process)
// or promemoria's process.
type ProcessSteadyResult struct {
	// SteadyResult's Elapsed runs, for promemoria, from the start of its
	// process until every input is acked and every expected output
	// stored; its CPU is the promemoria process's (from its start), or,
	// for the ceiling, this process's (which consumes).
	SteadyResult
	// Ready is from the start of promemoria's process until /readyz
	// answered 200 (zero for the ceiling).
	Ready time.Duration
	// ServerCPU is the CPU time the nats-server process used during the
	// consumption.
	ServerCPU time.Duration
	// Mem is promemoria's process memory at the end (Peak: over its whole
	// life); ServerMem the nats-server's (Peak: since it started, the
	// load included).
	Mem, ServerMem Mem
}

// procEnv is a data directory with a nats-server process on it.
type procEnv struct {
	dir  string
	nats *NATSProcess
	n    int // promemoria processes started
}

// procEnv starts a nats-server process on a fresh data directory. The
// context it returns is cancelled if the server exits.
func (o *ProcessOptions) procEnv(ctx context.Context, name string) (*procEnv, context.Context, func(), error) {
	if o.Bin.Promemoria == "" || o.Bin.NATSServer == "" {
		return nil, nil, nil, errors.New("process measurements need the promemoria and nats-server binaries (bench.BuildBinaries)")
	}
	dir, err := os.MkdirTemp(o.Dir, "promemoria-bench-"+name+"-")
	if err != nil {
		return nil, nil, nil, err
	}
	ns, err := StartNATSProcess(ctx, o.Bin.NATSServer, dir)
	if err != nil {
		if !o.Keep {
			_ = os.RemoveAll(dir)
		}
		return nil, nil, nil, err
	}
	e := &procEnv{dir: dir, nats: ns}
	ctx, stop := ns.exitContext(ctx)
	return e, ctx, func() {
		stop()
		if err := ns.Stop(); err != nil {
			o.Log("%s: %v", name, err)
		}
		if !o.Keep {
			_ = os.RemoveAll(dir)
		}
	}, nil
}

// promemoria starts a promemoria process on e's server; its log is
// promemoria-N.log in e's directory.
func (e *procEnv) promemoria(bin string, overrides ...string) (*PromemoriaProcess, error) {
	e.n++
	return StartPromemoria(bin, e.nats.URL, filepath.Join(e.dir, "promemoria-"+strconv.Itoa(e.n)+".log"), overrides...)
}

// provision starts promemoria once and stops it as soon as it is ready:
// it creates its streams, buckets and consumers as it does in production.
func (e *procEnv) provision(ctx context.Context, bin string, overrides ...string) error {
	p, err := e.promemoria(bin, overrides...)
	if err != nil {
		return err
	}
	defer p.kill()
	if _, err := p.WaitReady(ctx, 90*time.Second); err != nil {
		return fmt.Errorf("provisioning: %w", err)
	}
	return p.Stop()
}

// RunProcessSteady measures sys (Ceiling or Promemoria) on the steady
// stream against a fresh nats-server process, over TCP. promemoria's
// process is started once to provision its streams and stopped; n inputs
// are published (timed: the raw publish figure); then the ceiling's
// consumer, or a new promemoria process, consumes them all (timed), and the
// outputs are checked as in RunSteady.
func RunProcessSteady(ctx context.Context, sys System, n int, o ProcessOptions) (_ *ProcessSteadyResult, err error) {
	if sys != Ceiling && sys != Promemoria {
		return nil, fmt.Errorf("process steady: no %s", sys)
	}
	o.defaults()
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	defer func() { err = withCause(ctx, err) }() // the nats-server's exit, if it did
	e, ctx, cleanup, err := o.procEnv(ctx, "process-steady-"+string(sys))
	if err != nil {
		return nil, err
	}
	defer cleanup()
	if err := e.provision(ctx, o.Bin.Promemoria); err != nil {
		return nil, err
	}
	obs, err := e.nats.JetStream("observer")
	if err != nil {
		return nil, err
	}
	var inst *instance
	if sys == Ceiling {
		// promemoria's consumers are not used: the ceiling reads the same
		// input stream with its own.
		for _, stream := range []string{worker.StreamEvents, worker.StreamTimers} {
			st, err := obs.Stream(ctx, stream)
			if err != nil {
				return nil, err
			}
			names := st.ConsumerNames(ctx)
			var del []string
			for c := range names.Name() {
				del = append(del, c)
			}
			if err := names.Err(); err != nil {
				return nil, err
			}
			for _, c := range del {
				if err := obs.DeleteConsumer(ctx, stream, c); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
					return nil, err
				}
			}
		}
		js, err := e.nats.JetStream("ceiling")
		if err != nil {
			return nil, err
		}
		cons, err := js.CreateOrUpdateConsumer(ctx, worker.StreamEvents, consumerConfig(Ceiling))
		if err != nil {
			return nil, err
		}
		inst = &instance{sys: Ceiling, js: js, cons: cons}
	}
	pub, err := newPublisher(e.nats, "publisher")
	if err != nil {
		return nil, err
	}
	res := &ProcessSteadyResult{SteadyResult: SteadyResult{System: sys}}
	load, err := loadSteady(ctx, pub, obs, n, sys == Promemoria, o.Options)
	if err != nil {
		return nil, err
	}
	res.Publish, res.Events, res.Unique = load.publish, load.stats.Events, load.stats.Unique
	o.Log("process %s: %d inputs published over TCP in %s (%.0f/s); consuming", sys, n, res.Publish.Round(time.Millisecond), res.PublishRate())

	want := map[string]uint64{}
	if sys == Promemoria {
		want = load.want
	}
	before, err := e.nats.ReadTraffic(ctx, obs)
	if err != nil {
		return nil, err
	}
	srvCPU := e.nats.CPU()
	var (
		p     *PromemoriaProcess
		wctx  = ctx
		start time.Time
		cpu   time.Duration
		ready = make(chan time.Duration, 1)
	)
	if sys == Ceiling {
		cpu = CPUTime()
		start = time.Now()
		if err := inst.start(ctx); err != nil {
			return nil, err
		}
	} else {
		if p, err = e.promemoria(o.Bin.Promemoria); err != nil {
			return nil, err
		}
		defer p.kill()
		start = p.started
		var stop func()
		wctx, stop = p.exitContext(ctx)
		defer stop()
		go func() {
			d, err := p.WaitReady(wctx, o.Stall)
			if err != nil {
				d = -1
			}
			ready <- d
		}()
	}
	done, err := waitDone(wctx, obs, sys.Consumer(), want, o.Options)
	err = withCause(wctx, err)
	res.ServerCPU = e.nats.CPU() - srvCPU
	res.Elapsed = done.Sub(start)
	if p == nil {
		res.CPU = CPUTime() - cpu
	}
	if err == nil && p != nil {
		res.CPU = p.CPU()
		res.Mem, err = p.Mem()
		if res.Ready = <-ready; res.Ready < 0 {
			err = errors.New("promemoria's /readyz never answered 200")
		}
	}
	if err == nil {
		res.ServerMem, err = e.nats.Mem()
	}
	if err == nil {
		var after Traffic
		after, err = e.nats.ReadTraffic(ctx, obs)
		res.Load = after.Since(before)
	}
	var stopErr error
	if p != nil {
		stopErr = p.Stop()
	} else {
		stopErr = inst.stop()
	}
	if err == nil {
		err = stopErr
	}
	if err != nil {
		return nil, fmt.Errorf("process %s: %w", sys, err)
	}
	o.Log("process %s: %d inputs consumed in %s (%.0f/s)", sys, n, res.Elapsed.Round(time.Millisecond), res.Rate())

	if sys == Promemoria {
		if res.Check, err = CheckOutputs(ctx, obs, load.expect); err != nil {
			return nil, err
		}
		res.Outputs = res.Check.Got
	} else {
		got := int(inst.consumed.Load())
		res.Check = Check{Expected: n, Got: got}
		if got != n {
			res.Check.problem("ceiling acked %d deliveries of %d messages", got, n)
		}
	}
	if !res.Check.OK() {
		return res, fmt.Errorf("process %s: wrong outputs: %s", sys, res.Check)
	}
	return res, nil
}

// ProcessFanOutResult is one restoration fan-out of N gaps by promemoria's
// process against an external nats-server over TCP, and a restart after it
// with the N gaps open on disk.
type ProcessFanOutResult struct {
	// N gaps: CIG and Contribution of each kind; Advices is one advice per
	// tender.
	N, CIG, Contribution, Advices int
	// LoadEvents were published while every service was down; Load is how
	// long the promemoria process took to open the N gaps.
	LoadEvents int
	Load       time.Duration
	// Elapsed is from the moment the services are ready (portal.up's time;
	// settle 0) until every first reminder is on the output stream; First
	// until the first one is.
	Elapsed, First time.Duration
	// Restart is from the start of a second promemoria process (the first
	// one stopped after the fan-out, the server running with the N gaps
	// open) until its /readyz answered 200.
	Restart time.Duration
	// MemLoad is the promemoria process's memory after opening the gaps
	// (Peak: since its start); MemFanOut at the end of the fan-out (Peak:
	// since portal.up, unless PeakReset is false: then since its start);
	// MemReady the second process's once ready.
	MemLoad, MemFanOut, MemReady Mem
	// ServerMemLoad and ServerMemFanOut are the nats-server's, after the
	// load (Peak: since its start) and at the end of the fan-out (Peak:
	// since portal.up, if PeakReset).
	ServerMemLoad, ServerMemFanOut Mem
	PeakReset                      bool
	// CPU and ServerCPU are the CPU time promemoria's and the server's
	// processes used from portal.up until every first reminder was stored.
	CPU, ServerCPU time.Duration
	// Ceiling is the raw asynchronous publish, from this process over TCP,
	// of N messages of the reminders' average size (AvgBytes), with
	// deduplication ids, to a stream configured like the output stream.
	Ceiling  time.Duration
	AvgBytes int
	// LoadFanOut is what the fan-out cost the server, until promemoria
	// stopped.
	LoadFanOut Load
	Check      Check
}

// Rate is the fan-out's reminders per second.
func (r *ProcessFanOutResult) Rate() float64 { return float64(r.N) / r.Elapsed.Seconds() }

// RunProcessFanOut runs, against a fresh nats-server process, a promemoria
// process (settle 0) that opens n gaps while every ANAC service is down;
// then portal.up for every service, timed until every gap's first reminder
// is on the output stream, with the peak RSS of each process during it;
// then promemoria stops and a second process starts on the n open gaps,
// timed from its start to /readyz 200, and stops; then every output is
// checked, and the raw publish of n reminder-sized messages is timed.
func RunProcessFanOut(ctx context.Context, n int, o ProcessOptions) (_ *ProcessFanOutResult, err error) {
	o.defaults()
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	defer func() { err = withCause(ctx, err) }() // the nats-server's exit, if it did
	e, ctx, cleanup, err := o.procEnv(ctx, "process-fanout-"+strconv.Itoa(n))
	if err != nil {
		return nil, err
	}
	defer cleanup()
	settle := []string{"--settle", "0s"}
	p1, err := e.promemoria(o.Bin.Promemoria, settle...)
	if err != nil {
		return nil, err
	}
	defer p1.kill()
	if _, err := p1.WaitReady(ctx, 90*time.Second); err != nil {
		return nil, err
	}
	obs, err := e.nats.JetStream("observer")
	if err != nil {
		return nil, err
	}
	pub, err := newPublisher(e.nats, "publisher")
	if err != nil {
		return nil, err
	}

	// The outage: every service down, then the tenders and bids.
	res := &ProcessFanOutResult{N: n}
	start := time.Now()
	gen, events, err := publishOutage(ctx, pub, n)
	if err != nil {
		return nil, err
	}
	res.LoadEvents = events
	wctx, stop := p1.exitContext(ctx)
	_, err = waitDone(wctx, obs, worker.ConsumerEvent, nil, o.Options)
	err = withCause(wctx, err)
	stop()
	if err != nil {
		return nil, fmt.Errorf("opening %d gaps: %w", n, err)
	}
	res.Load = time.Since(start)
	res.CIG, res.Contribution, res.Advices = gen.CIG, gen.Contribution, gen.Tenders()
	if counts, err := SubjectCounts(ctx, obs, worker.StreamOutput, Prefix+".>"); err != nil {
		return nil, err
	} else if len(counts) > 0 {
		return nil, fmt.Errorf("output while every service is down: %v", counts)
	}
	if res.MemLoad, err = p1.Mem(); err != nil {
		return nil, err
	}
	if res.ServerMemLoad, err = e.nats.Mem(); err != nil {
		return nil, err
	}
	o.Log("process fan-out %d: %d gaps opened from %d events in %s; promemoria peak RSS %d MB", n, n, res.LoadEvents, res.Load.Round(time.Millisecond), res.MemLoad.Peak>>20)

	// The restoration, by the process that opened the gaps (as in
	// production: promemoria runs through the outage).
	res.PeakReset = p1.ResetPeak() == nil && e.nats.ResetPeak() == nil
	if !res.PeakReset {
		o.Log("process fan-out %d: cannot reset the peak RSS of the processes (clear_refs): peaks are since their start", n)
	}
	want := outageWant(res.CIG, res.Contribution, res.Advices)
	before, err := e.nats.ReadTraffic(ctx, obs)
	if err != nil {
		return nil, err
	}
	cpu, srvCPU := p1.CPU(), e.nats.CPU()
	wctx, stop = p1.exitContext(ctx)
	defer stop()
	upAt := time.Now()
	if err := pub.sync(wctx, Portal(true, "outage-up", upAt)); err != nil {
		return nil, withCause(wctx, err)
	}
	res.Elapsed, res.First, err = awaitRestoration(wctx, obs, n, want, upAt, o.Stall, func() {
		res.CPU, res.ServerCPU = p1.CPU()-cpu, e.nats.CPU()-srvCPU
	})
	if err = withCause(wctx, err); err != nil {
		return nil, err
	}
	if res.MemFanOut, err = p1.Mem(); err != nil {
		return nil, err
	}
	if res.ServerMemFanOut, err = e.nats.Mem(); err != nil {
		return nil, err
	}
	o.Log("process fan-out %d: every first reminder stored %s after ready (first after %s); promemoria peak RSS %d MB, nats-server %d MB",
		n, res.Elapsed.Round(time.Millisecond), res.First.Round(time.Millisecond), res.MemFanOut.Peak>>20, res.ServerMemFanOut.Peak>>20)
	stop()
	if err := p1.Stop(); err != nil {
		return nil, err
	}
	after, err := e.nats.ReadTraffic(ctx, obs)
	if err != nil {
		return nil, err
	}
	res.LoadFanOut = after.Since(before)

	// The restart, with the n gaps still open on disk (each reminded once,
	// its repeat scheduled). The outputs are checked after it: a restart
	// that sent anything again fails the check.
	p2, err := e.promemoria(o.Bin.Promemoria, settle...)
	if err != nil {
		return nil, err
	}
	defer p2.kill()
	if res.Restart, err = p2.WaitReady(ctx, 10*time.Minute); err != nil {
		return nil, fmt.Errorf("restart with %d gaps: %w", n, err)
	}
	if res.MemReady, err = p2.Mem(); err != nil {
		return nil, err
	}
	o.Log("process fan-out %d: restarted with %d open gaps, ready in %s", n, n, res.Restart.Round(time.Millisecond))
	if err := p2.Stop(); err != nil {
		return nil, err
	}

	s, err := obs.Stream(ctx, worker.StreamOutput)
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, err
	}
	res.AvgBytes = int(info.State.Bytes / max(info.State.Msgs, 1))
	if res.Check, err = CheckOutputs(ctx, obs, outageExpect(n, gen.base)); err != nil {
		return nil, err
	}
	if !res.Check.OK() {
		return res, fmt.Errorf("process fan-out %d: wrong outputs: %s", n, res.Check)
	}
	if res.Ceiling, err = ceilingPublish(ctx, e.nats, e.nats.Cfg.DedupWindow, n, res.AvgBytes); err != nil {
		return nil, fmt.Errorf("ceiling: %w", err)
	}
	o.Log("process fan-out %d: ceiling (raw async publish of %d × %d bytes over TCP) %s", n, n, res.AvgBytes, res.Ceiling.Round(time.Millisecond))
	return res, nil
}
