package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/worker"
)

// Options are common to every measurement.
type Options struct {
	// Dir is where data directories are created (default os.TempDir()).
	Dir string
	// Keep leaves the data directories in place.
	Keep bool
	// TCP connects every client over loopback TCP instead of in-process.
	TCP bool
	// Seed makes the generated inputs reproducible.
	Seed uint64
	// Timeout bounds one measurement; Stall fails it when nothing moves
	// for that long.
	Timeout, Stall time.Duration
	// CPUProfile, if set, receives a CPU profile of the measured phase.
	CPUProfile io.Writer
	// Measure, if set, is called when the measured phase starts; the
	// function it returns, when it ends (Go benchmarks start and stop
	// their timer with it).
	Measure func() (stop func())
	// Log, if set, receives progress lines.
	Log func(format string, args ...any)
}

func (o *Options) defaults() {
	if o.Dir == "" {
		o.Dir = os.TempDir()
	}
	if o.Timeout == 0 {
		o.Timeout = 30 * time.Minute
	}
	if o.Stall == 0 {
		o.Stall = 60 * time.Second
	}
	if o.Log == nil {
		o.Log = func(string, ...any) {}
	}
	if o.Seed == 0 {
		o.Seed = 20210503
	}
}

func (o *Options) env(name string, overrides ...string) (*Env, func(), error) {
	dir, err := os.MkdirTemp(o.Dir, "promemoria-bench-"+name+"-")
	if err != nil {
		return nil, nil, err
	}
	env, err := StartEnv(dir, o.TCP, overrides...)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, nil, err
	}
	return env, func() {
		env.Stop()
		if !o.Keep {
			_ = os.RemoveAll(dir)
		}
	}, nil
}

// measure marks the start of the measured phase and returns what marks its
// end.
func (o *Options) measure() func() {
	stopProfile := func() {}
	if o.CPUProfile != nil {
		if err := pprof.StartCPUProfile(o.CPUProfile); err != nil {
			o.Log("cpu profile: %v", err)
		} else {
			stopProfile = pprof.StopCPUProfile
		}
	}
	stop := func() {}
	if o.Measure != nil {
		stop = o.Measure()
	}
	var once sync.Once
	return func() { once.Do(func() { stop(); stopProfile() }) }
}

// SteadyResult is one throughput run of a system on the steady stream.
type SteadyResult struct {
	System System
	// Events is how many messages the input stream held (late duplicates
	// included); Unique how many distinct events.
	Events, Unique int
	// Publish is how long the raw asynchronous publish of the inputs took
	// (Nats-Msg-Id on each, all acked): the bus's publish ceiling.
	Publish time.Duration
	// Elapsed is from the start of consumption to every input acked and
	// every expected output stored.
	Elapsed time.Duration
	// Outputs counts the messages the system stored on the output stream.
	Outputs int
	// Load is what the consumption cost the server (the harness's polling,
	// ten requests a second, included).
	Load Load
	// CPU is the CPU time the whole process (server, system, harness) used
	// during the consumption.
	CPU time.Duration
	// Check is the verification of the outputs.
	Check Check
}

// Rate is the system's events per second.
func (r *SteadyResult) Rate() float64 { return float64(r.Events) / r.Elapsed.Seconds() }

// PublishRate is the raw publish rate, messages per second.
func (r *SteadyResult) PublishRate() float64 { return float64(r.Events) / r.Publish.Seconds() }

// publisher publishes asynchronously with deduplication ids.
type publisher struct {
	js   jetstream.JetStream
	mu   sync.Mutex
	errs []error
}

// connector opens JetStream contexts on a server: the embedded one (Env)
// or an external process (NATSProcess).
type connector interface {
	JetStream(name string, opts ...jetstream.JetStreamOpt) (jetstream.JetStream, error)
}

func newPublisher(env connector, name string) (*publisher, error) {
	p := &publisher{}
	js, err := env.JetStream(name, jetstream.WithPublishAsyncMaxPending(4096),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, m *nats.Msg, err error) {
			p.mu.Lock()
			if len(p.errs) < 10 {
				p.errs = append(p.errs, fmt.Errorf("publish %s: %w", m.Subject, err))
			}
			p.mu.Unlock()
		}))
	if err != nil {
		return nil, err
	}
	p.js = js
	return p, nil
}

func (p *publisher) async(subject, msgID string, body []byte) error {
	m := nats.NewMsg(subject)
	m.Data = body
	m.Header.Set(events.HeaderMsgID, msgID)
	for {
		_, err := p.js.PublishMsgAsync(m)
		if errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			continue
		}
		return err
	}
}

func (p *publisher) sync(ctx context.Context, in Input) error {
	m := nats.NewMsg(in.Subject)
	m.Data = in.Body
	m.Header.Set(events.HeaderMsgID, in.MsgID)
	_, err := p.js.PublishMsg(ctx, m)
	return err
}

func (p *publisher) wait(ctx context.Context) error {
	select {
	case <-p.js.PublishAsyncComplete():
	case <-ctx.Done():
		return fmt.Errorf("waiting for publish acks: %w", ctx.Err())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return errors.Join(p.errs...)
}

// RunSteady measures sys on a fresh server: n inputs of the steady stream
// are published first (timed: the raw publish ceiling), then sys consumes
// them all (timed), then its outputs are checked.
func RunSteady(ctx context.Context, sys System, n int, o Options) (*SteadyResult, error) {
	o.defaults()
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	env, cleanup, err := o.env("steady-" + string(sys))
	if err != nil {
		return nil, err
	}
	defer cleanup()
	inst, err := setup(ctx, env, sys)
	if err != nil {
		return nil, fmt.Errorf("%s: setup: %w", sys, err)
	}
	obs, err := env.JetStream("observer")
	if err != nil {
		return nil, err
	}
	pub, err := newPublisher(env, "publisher")
	if err != nil {
		return nil, err
	}

	res := &SteadyResult{System: sys}
	load, err := loadSteady(ctx, pub, obs, n, sys == Promemoria, o)
	if err != nil {
		return nil, err
	}
	expect := load.expect
	res.Publish, res.Events, res.Unique = load.publish, load.stats.Events, load.stats.Unique
	o.Log("%s: %d inputs published in %s (%.0f/s); consuming", sys, n, res.Publish.Round(time.Millisecond), res.PublishRate())

	want := map[string]uint64{}
	switch sys {
	case Promemoria:
		want = load.want
	case Naive:
		want[NaiveSubject] = uint64(res.Unique)
	}
	before, err := env.ReadTraffic(ctx, obs)
	if err != nil {
		return nil, err
	}
	stopProfile := o.measure()
	cpu := CPUTime()
	start := time.Now()
	if err := inst.start(ctx); err != nil {
		stopProfile()
		return nil, err
	}
	done, err := waitDone(ctx, obs, sys.Consumer(), want, o)
	res.CPU = CPUTime() - cpu
	stopProfile()
	res.Elapsed = done.Sub(start)
	if err == nil {
		var after Traffic
		after, err = env.ReadTraffic(ctx, obs)
		res.Load = after.Since(before)
	}
	if stopErr := inst.stop(); err == nil {
		err = stopErr
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", sys, err)
	}
	o.Log("%s: %d inputs consumed in %s (%.0f/s)", sys, n, res.Elapsed.Round(time.Millisecond), res.Rate())

	switch sys {
	case Promemoria:
		res.Check, err = CheckOutputs(ctx, obs, expect)
		res.Outputs = res.Check.Got
	case Naive:
		if errs := inst.naive.errors(); len(errs) > 0 {
			return nil, fmt.Errorf("naive: %d messages failed, first: %w", len(errs), errs[0])
		}
		var counts map[string]uint64
		counts, err = SubjectCounts(ctx, obs, worker.StreamOutput, Prefix+".>")
		res.Outputs = int(counts[NaiveSubject])
		res.Check = Check{Expected: res.Unique, Got: res.Outputs}
		if res.Outputs != res.Unique {
			res.Check.Problems = append(res.Check.Problems, fmt.Sprintf("naive stored %d outputs for %d events", res.Outputs, res.Unique))
		}
	case Ceiling:
		got := int(inst.consumed.Load())
		res.Check = Check{Expected: n, Got: got}
		if got != n {
			res.Check.Problems = append(res.Check.Problems, fmt.Sprintf("ceiling acked %d deliveries of %d messages", got, n))
		}
	}
	if err != nil {
		return nil, err
	}
	if !res.Check.OK() {
		return res, fmt.Errorf("%s: wrong outputs: %s", sys, res.Check)
	}
	return res, nil
}

// steadyLoad is the steady stream, published.
type steadyLoad struct {
	// expect counts promemoria's expected outputs by Output.Key (if asked
	// for); want by subject.
	expect map[string]int
	want   map[string]uint64
	stats  StreamStats
	// publish is how long the raw asynchronous publish took.
	publish time.Duration
}

// loadSteady publishes n inputs of the steady stream with pub, waits until
// every one is acked and checks that the input stream holds them.
func loadSteady(ctx context.Context, pub *publisher, obs jetstream.JetStream, n int, expect bool, o Options) (*steadyLoad, error) {
	l := &steadyLoad{expect: map[string]int{}, want: map[string]uint64{}}
	gen := NewStream(o.Seed, time.Now().Add(-time.Hour), time.Microsecond, DefaultMix())
	start := time.Now()
	for range n {
		in := gen.Next()
		if err := pub.async(in.Subject, in.MsgID, in.Body); err != nil {
			return nil, err
		}
		if expect {
			for _, out := range in.Expect {
				l.expect[out.Key()]++
			}
		}
	}
	if err := pub.wait(ctx); err != nil {
		return nil, err
	}
	l.publish = time.Since(start)
	l.stats = gen.Stats
	for t, c := range gen.Stats.Expected {
		l.want[Subjects.Of(t)] = uint64(c)
	}
	return l, streamHolds(ctx, obs, worker.StreamEvents, uint64(n))
}

// streamHolds checks that stream stores exactly n messages.
func streamHolds(ctx context.Context, js jetstream.JetStream, stream string, n uint64) error {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return err
	}
	if info.State.Msgs != n {
		return fmt.Errorf("stream %s holds %d messages, want %d", stream, info.State.Msgs, n)
	}
	return nil
}

// waitDone polls until the consumer has had every input acked and the
// output stream holds want (subject → count), and returns when that was
// first seen. A count above want is an error.
func waitDone(ctx context.Context, js jetstream.JetStream, consumer string, want map[string]uint64, o Options) (time.Time, error) {
	lastLeft, lastMove := ^uint64(0), time.Now()
	var lastOut uint64
	for {
		drained, left, err := Drained(ctx, js, worker.StreamEvents, consumer)
		if err != nil {
			return time.Time{}, err
		}
		now := time.Now()
		outputsOK := true
		var total uint64
		if len(want) > 0 {
			counts, err := SubjectCounts(ctx, js, worker.StreamOutput, Prefix+".>")
			if err != nil {
				return time.Time{}, err
			}
			for subj, c := range counts {
				total += c
				if c > want[subj] {
					return time.Time{}, fmt.Errorf("output stream holds %d messages on %s, want %d (all: %v)", c, subj, want[subj], counts)
				}
			}
			for subj, w := range want {
				if counts[subj] < w {
					outputsOK = false
				}
			}
		}
		if drained && outputsOK {
			return now, nil
		}
		if left != lastLeft || total != lastOut {
			lastLeft, lastOut, lastMove = left, total, now
		} else if now.Sub(lastMove) > o.Stall {
			return time.Time{}, fmt.Errorf("stalled for %s: %d inputs unacked, %d outputs stored (want %v)", o.Stall, left, total, want)
		}
		if err := sleep(ctx, 10*time.Millisecond); err != nil {
			return time.Time{}, fmt.Errorf("%w: %d inputs unacked, %d outputs stored (want %v)", err, left, total, want)
		}
	}
}

// LatencyResult is the publish-to-output latency of a system at a paced
// input rate.
type LatencyResult struct {
	System System
	// Rate is the target input rate and Achieved the rate published.
	Rate, Achieved float64
	// Events were published; Samples latencies measured (one per expected
	// output for promemoria; one per input that has one for the others).
	Events, Samples    int
	P50, P90, P99, Max time.Duration
}

// RunLatency publishes n inputs of the steady stream at rate per second to
// sys, already running on a fresh server, and measures, for every input
// that makes promemoria emit something, the time from its publication to
// the arrival of the output on the output stream (for promemoria: each
// first reminder and resolution, matched by type, tender, lot and
// operator; for the naive worker: its one output; for the ceiling: the
// consumer's receipt).
func RunLatency(ctx context.Context, sys System, n int, rate float64, o Options) (*LatencyResult, error) {
	o.defaults()
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	env, cleanup, err := o.env("latency-" + string(sys))
	if err != nil {
		return nil, err
	}
	defer cleanup()
	inst, err := setup(ctx, env, sys)
	if err != nil {
		return nil, fmt.Errorf("%s: setup: %w", sys, err)
	}
	var (
		mu      sync.Mutex
		sent    = map[string]time.Time{}
		arrived = map[string]time.Time{}
	)
	record := func(key string, at time.Time) {
		mu.Lock()
		if _, ok := arrived[key]; !ok {
			arrived[key] = at
		}
		mu.Unlock()
	}
	if sys == Ceiling {
		inst.seen = func(id string, at time.Time) { record("in|"+id, at) }
	} else {
		obs, err := env.JetStream("observer")
		if err != nil {
			return nil, err
		}
		stop, err := watchOutputs(ctx, obs, func(m jetstream.Msg, at time.Time) {
			if sys == Naive {
				record("in|"+m.Headers().Get("Bench-Input"), at)
				return
			}
			if o, ok := parseOutput(m.Data()); ok && (o.seq == 1 || o.Type == events.TypeReminderResolved) {
				record(o.Key(), at)
			}
		})
		if err != nil {
			return nil, err
		}
		defer stop()
	}
	if err := inst.start(ctx); err != nil {
		return nil, err
	}
	defer func() { _ = inst.stop() }()
	if inst.w != nil {
		if err := inst.w.WaitReady(ctx); err != nil {
			return nil, err
		}
	}
	pub, err := newPublisher(env, "publisher")
	if err != nil {
		return nil, err
	}

	period := time.Duration(float64(time.Second) / rate)
	start := time.Now().Add(10 * time.Millisecond)
	gen := NewStream(o.Seed, start, period, DefaultMix())
	for i := range n {
		due := start.Add(time.Duration(i) * period)
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		in := gen.Next()
		now := time.Now()
		if len(in.Expect) > 0 {
			mu.Lock()
			if sys == Promemoria {
				for _, out := range in.Expect {
					sent[out.Key()] = now
				}
			} else {
				sent["in|"+in.ID] = now
			}
			mu.Unlock()
		}
		if err := pub.async(in.Subject, in.MsgID, in.Body); err != nil {
			return nil, err
		}
	}
	res := &LatencyResult{System: sys, Rate: rate, Events: n, Achieved: float64(n) / time.Since(start).Seconds()}
	if err := pub.wait(ctx); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(o.Stall)
	for {
		mu.Lock()
		missing := 0
		for k := range sent {
			if _, ok := arrived[k]; !ok {
				missing++
			}
		}
		mu.Unlock()
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s: %d of %d outputs did not arrive within %s", sys, missing, len(sent), o.Stall)
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return nil, err
		}
	}
	mu.Lock()
	lat := make([]time.Duration, 0, len(sent))
	for k, t := range sent {
		lat = append(lat, arrived[k].Sub(t))
	}
	mu.Unlock()
	slices.Sort(lat)
	res.Samples = len(lat)
	if len(lat) > 0 {
		q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
		res.P50, res.P90, res.P99, res.Max = q(0.50), q(0.90), q(0.99), lat[len(lat)-1]
	}
	o.Log("%s: latency at %.0f/s over %d samples: p50 %s p99 %s max %s", sys, rate, res.Samples, res.P50, res.P99, res.Max)
	return res, nil
}
