package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/pprof"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/gap"
	"github.com/promemoria/promemoria/worker"
)

// FanOutOptions configure a restoration fan-out.
type FanOutOptions struct {
	Options
	// Settle is promemoria's settle (default 0: the service is ready the
	// moment portal.up says it is up).
	Settle time.Duration
	// NaiveMax is the largest N the naive fan-out runs for (it is slow);
	// 0 never runs it.
	NaiveMax int
	// Ceiling runs the raw publish of N reminders for comparison.
	Ceiling bool
	// Verify reads the whole output stream and checks every reminder
	// (otherwise the counts per subject are checked).
	Verify bool
	// HeapProfile, if set, receives a heap profile taken the moment every
	// first reminder is stored (in-use figures are as of a GC run then).
	HeapProfile io.Writer
}

// FanOutResult is one restoration fan-out of N gaps.
type FanOutResult struct {
	// N gaps: CIG and Contribution of each kind; Advices is one art. 25
	// advice per tender, whose offer period the outage overlapped.
	N, CIG, Contribution, Advices int
	// LoadEvents were published while every service was down; Load is how
	// long promemoria took to open the N gaps from them.
	LoadEvents int
	Load       time.Duration
	// Elapsed is from the moment the services are ready (portal.up's time
	// plus settle) until every first reminder is on the output stream;
	// First until the first one is.
	Elapsed, First time.Duration
	// MemLoad is the process's memory after the load (Peak: since start);
	// MemFanOut during the fan-out (Peak: since the load).
	MemLoad, MemFanOut Mem
	// Ceiling is the raw asynchronous publish of N messages of the
	// reminders' average size, with deduplication ids, to a stream
	// configured like the output stream.
	Ceiling time.Duration
	// Naive is the obvious fan-out: list the gaps, then for each one get,
	// publish synchronously, compare-and-set; zero if not run.
	Naive     time.Duration
	NaiveGaps int
	// AvgBytes is the average size of a reminder.
	AvgBytes int
	// LoadFanOut is what the fan-out cost the server (until the worker
	// stopped, its second pass included if it ran).
	LoadFanOut Load
	// CPU is the CPU time the whole process used from portal.up until
	// every first reminder was stored.
	CPU   time.Duration
	Check Check
}

// Rate is the fan-out's reminders per second.
func (r *FanOutResult) Rate() float64 { return float64(r.N) / r.Elapsed.Seconds() }

// RunFanOut opens n gaps while every ANAC service is down, then publishes
// portal.up for all of them and measures the time until every gap's first
// reminder is on the output stream.
func RunFanOut(ctx context.Context, n int, o FanOutOptions) (*FanOutResult, error) {
	o.defaults()
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	env, cleanup, err := o.env("fanout-"+strconv.Itoa(n), "--settle", o.Settle.String())
	if err != nil {
		return nil, err
	}
	defer cleanup()
	w, err := env.NewWorker(ctx)
	if err != nil {
		return nil, err
	}
	w.Run()
	defer func() { _ = w.Stop() }()
	if err := w.WaitReady(ctx); err != nil {
		return nil, err
	}
	obs, err := env.JetStream("observer")
	if err != nil {
		return nil, err
	}
	pub, err := newPublisher(env, "publisher")
	if err != nil {
		return nil, err
	}

	// The outage: every service down, then the tenders and bids.
	res := &FanOutResult{N: n}
	start := time.Now()
	gen, events, err := publishOutage(ctx, pub, n)
	if err != nil {
		return nil, err
	}
	res.LoadEvents = events
	if _, err := waitDone(ctx, obs, worker.ConsumerEvent, nil, o.Options); err != nil {
		return nil, fmt.Errorf("opening %d gaps: %w", n, err)
	}
	res.Load = time.Since(start)
	res.CIG, res.Contribution, res.Advices = gen.CIG, gen.Contribution, gen.Tenders()
	if counts, err := SubjectCounts(ctx, obs, worker.StreamOutput, Prefix+".>"); err != nil {
		return nil, err
	} else if len(counts) > 0 {
		return nil, fmt.Errorf("output while every service is down: %v", counts)
	}
	o.Log("fan-out %d: %d gaps opened from %d events in %s", n, n, res.LoadEvents, res.Load.Round(time.Millisecond))
	if res.MemLoad, err = ReadMem(); err != nil {
		return nil, err
	}
	_ = ResetPeak()

	// The restoration.
	want := outageWant(res.CIG, res.Contribution, res.Advices)
	before, err := env.ReadTraffic(ctx, obs)
	if err != nil {
		return nil, err
	}
	stopProfile := o.measure()
	cpu := CPUTime()
	upAt := time.Now()
	if err := pub.sync(ctx, Portal(true, "outage-up", upAt)); err != nil {
		stopProfile()
		return nil, err
	}
	res.Elapsed, res.First, err = awaitRestoration(ctx, obs, n, want, upAt.Add(o.Settle), o.Stall+o.Settle, func() { res.CPU = CPUTime() - cpu })
	stopProfile()
	if err != nil {
		return nil, err
	}
	if res.MemFanOut, err = ReadMem(); err != nil {
		return nil, err
	}
	if o.HeapProfile != nil {
		runtime.GC()
		if err := pprof.WriteHeapProfile(o.HeapProfile); err != nil {
			o.Log("heap profile: %v", err)
		}
	}
	o.Log("fan-out %d: every first reminder stored %s after ready (first after %s); peak RSS %d MB", n, res.Elapsed.Round(time.Millisecond), res.First.Round(time.Millisecond), res.MemFanOut.Peak>>20)
	if err := w.Stop(); err != nil {
		return nil, err
	}
	after, err := env.ReadTraffic(ctx, obs)
	if err != nil {
		return nil, err
	}
	res.LoadFanOut = after.Since(before)

	s, err := obs.Stream(ctx, worker.StreamOutput)
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, err
	}
	res.AvgBytes = int(info.State.Bytes / max(info.State.Msgs, 1))
	if o.Verify {
		if res.Check, err = CheckOutputs(ctx, obs, outageExpect(n, gen.base)); err != nil {
			return nil, err
		}
	} else {
		counts, err := SubjectCounts(ctx, obs, worker.StreamOutput, Prefix+".>")
		if err != nil {
			return nil, err
		}
		res.Check = Check{Expected: n + res.Advices}
		for subj, c := range counts {
			res.Check.Got += int(c)
			if c != want[subj] {
				res.Check.problem("%d messages on %s, want %d", c, subj, want[subj])
			}
		}
	}
	if !res.Check.OK() {
		return res, fmt.Errorf("fan-out %d: wrong outputs: %s", n, res.Check)
	}

	if o.Ceiling {
		if res.Ceiling, err = ceilingPublish(ctx, env, env.Cfg.DedupWindow, n, res.AvgBytes); err != nil {
			return nil, fmt.Errorf("ceiling: %w", err)
		}
		o.Log("fan-out %d: ceiling (raw async publish of %d × %d bytes) %s", n, n, res.AvgBytes, res.Ceiling.Round(time.Millisecond))
	}
	if n <= o.NaiveMax {
		if res.Naive, res.NaiveGaps, err = naiveFanOut(ctx, env); err != nil {
			return nil, fmt.Errorf("naive fan-out: %w", err)
		}
		if res.NaiveGaps != n {
			return nil, fmt.Errorf("naive fan-out reminded %d gaps, want %d", res.NaiveGaps, n)
		}
		o.Log("fan-out %d: naive %s", n, res.Naive.Round(time.Millisecond))
	}
	return res, nil
}

// outageWant counts the outputs of the restoration of NewOutage's gaps by
// subject.
func outageWant(cig, contribution, advices int) map[string]uint64 {
	return map[string]uint64{
		Subjects.Of(events.TypeReminderCIG): uint64(cig), Subjects.Of(events.TypeReminderContribution): uint64(contribution),
		Subjects.Of(events.TypeAdviceExtension): uint64(advices),
	}
}

// awaitRestoration polls the output stream after portal.up until it holds
// want (the first reminders of n gaps and the advices) and returns the
// time from ready until every first reminder was stored, and until the
// first one was. reminded is called the moment every first reminder is
// seen. The advices, which the same pass sends after the reminders, are
// waited for but not timed. A count above want is an error.
func awaitRestoration(ctx context.Context, obs jetstream.JetStream, n int, want map[string]uint64, ready time.Time, stall time.Duration, reminded func()) (elapsed, first time.Duration, err error) {
	var all uint64
	for _, c := range want {
		all += c
	}
	var firstAt time.Time
	lastTotal, lastMove := uint64(0), time.Now()
	for {
		counts, err := SubjectCounts(ctx, obs, worker.StreamOutput, Prefix+".>")
		if err != nil {
			return 0, 0, err
		}
		now := time.Now()
		var total uint64
		for subj, c := range counts {
			total += c
			if c > want[subj] {
				return 0, 0, fmt.Errorf("fan-out %d: %d messages on %s, want %d (all: %v)", n, c, subj, want[subj], counts)
			}
		}
		reminders := counts[Subjects.Of(events.TypeReminderCIG)] + counts[Subjects.Of(events.TypeReminderContribution)]
		if reminders > 0 && firstAt.IsZero() {
			firstAt = now
		}
		if reminders == uint64(n) && elapsed == 0 {
			elapsed, first = now.Sub(ready), firstAt.Sub(ready)
			if reminded != nil {
				reminded()
			}
		}
		if total == all {
			return elapsed, first, nil
		}
		if total != lastTotal {
			lastTotal, lastMove = total, now
		} else if now.Sub(lastMove) > stall {
			return 0, 0, fmt.Errorf("fan-out %d stalled for %s at %d of %d outputs", n, stall, total, all)
		}
		if err := sleep(ctx, 10*time.Millisecond); err != nil {
			return 0, 0, fmt.Errorf("fan-out %d: %w at %d of %d outputs", n, err, total, all)
		}
	}
}

// outageExpect returns the outputs the restoration of NewOutage(n, base)'s
// gaps must store, by Output.Key: each gap's first reminder and one
// advice per tender.
func outageExpect(n int, base time.Time) map[string]int {
	expect := make(map[string]int, n)
	gen := NewOutage(n, base)
	for {
		in, ok := gen.Next()
		if !ok {
			return expect
		}
		var env events.Envelope
		_ = json.Unmarshal(in.Body, &env)
		switch env.Type {
		case events.TypeTenderPublished:
			var p events.TenderPublished
			_ = json.Unmarshal(env.Data, &p)
			for _, l := range p.Lots {
				if l.CIG == "" {
					expect[Output{Type: events.TypeReminderCIG, TenderID: p.TenderID, LotID: l.LotID}.Key()]++
				}
			}
			expect[Output{Type: events.TypeAdviceExtension, TenderID: p.TenderID}.Key()]++
		case events.TypeAdmittedWithReserve:
			var p events.AdmittedWithReserve
			_ = json.Unmarshal(env.Data, &p)
			expect[Output{Type: events.TypeReminderContribution, TenderID: p.TenderID, LotID: p.LotID, OperatorFiscalCode: p.Operator.FiscalCode}.Key()]++
		}
	}
}

// ceilingPublish publishes n messages of size bytes with distinct
// deduplication ids (window dedup) to a fresh stream configured like the
// output stream, asynchronously, and returns how long until all were
// acked.
func ceilingPublish(ctx context.Context, env connector, dedup time.Duration, n, size int) (time.Duration, error) {
	js, err := env.JetStream("ceiling-setup")
	if err != nil {
		return 0, err
	}
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: "BENCH_CEILING", Subjects: []string{"bench.ceiling.>"}, Storage: jetstream.FileStorage,
		Duplicates: dedup, MaxAge: 30 * 24 * time.Hour,
	}); err != nil {
		return 0, err
	}
	pub, err := newPublisher(env, "ceiling")
	if err != nil {
		return 0, err
	}
	body := make([]byte, size)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	subjects := []string{"bench.ceiling.cig", "bench.ceiling.contribution"}
	start := time.Now()
	for i := range n {
		if err := pub.async(subjects[i%2], "ceiling-"+strconv.Itoa(i), body); err != nil {
			return 0, err
		}
	}
	if err := pub.wait(ctx); err != nil {
		return 0, err
	}
	elapsed := time.Since(start)
	return elapsed, streamHolds(ctx, js, "BENCH_CEILING", uint64(n))
}

// naiveFanOut is the obvious restoration: list the gaps of every service,
// then for each one, one at a time, read it, publish its reminder with a
// synchronous publish, and record it with a compare-and-set. It publishes
// to a stream of its own, configured like the output stream.
func naiveFanOut(ctx context.Context, env *Env) (time.Duration, int, error) {
	js, err := env.JetStream("naive")
	if err != nil {
		return 0, 0, err
	}
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: "BENCH_NAIVE", Subjects: []string{"bench.naive.>"}, Storage: jetstream.FileStorage,
		Duplicates: env.Cfg.DedupWindow, MaxAge: 30 * 24 * time.Hour,
	}); err != nil {
		return 0, 0, err
	}
	kv, err := js.KeyValue(ctx, worker.BucketState)
	if err != nil {
		return 0, 0, err
	}
	start := time.Now()
	count := 0
	for _, svc := range env.Cfg.Services {
		lister, err := kv.ListKeysFiltered(ctx, gap.ServicePrefix(svc))
		if err != nil {
			return 0, 0, err
		}
		seen := map[string]bool{}
		var keys []string
		for k := range lister.Keys() {
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
		for _, key := range keys {
			e, err := kv.Get(ctx, key)
			if errors.Is(err, jetstream.ErrKeyNotFound) {
				continue
			}
			if err != nil {
				return 0, 0, err
			}
			// If promemoria stores gaps in some other encoding, the
			// reminder carries the key and the record goes back as read.
			var g gap.Gap
			decoded := json.Unmarshal(e.Value(), &g) == nil
			r := events.Reminder{
				ReminderID: "naive-" + key, Kind: g.Kind, TenderID: g.TenderID, TenderTitle: g.Title, LotID: g.LotID,
				OperatorFiscalCode: g.OperatorFiscalCode(), Operator: g.Operator, Recipient: g.Recipient(), CC: g.CC(),
				Sequence: 1, Service: g.Service, ServiceUp: true, Deadline: g.Deadline, GapOpenedAt: g.OpenedAt,
				Message: events.Message{IT: "Il servizio ANAC è di nuovo disponibile: completare quanto sospeso.", EN: "The ANAC service is available again: please complete what was pending."},
			}
			raw, _ := json.Marshal(&r)
			body, _ := json.Marshal(events.Envelope{
				SpecVersion: events.SpecVersion, ID: r.ReminderID, Source: "bench-naive", Type: "reminder.naive",
				Time: time.Now().UTC(), DataContentType: events.ContentType, Data: raw,
			})
			m := nats.NewMsg("bench.naive." + string(g.Kind))
			m.Data = body
			m.Header.Set(events.HeaderMsgID, r.ReminderID)
			if _, err := js.PublishMsg(ctx, m); err != nil {
				return 0, 0, err
			}
			value := e.Value()
			if decoded {
				g.Sequence, g.LastRemindedAt = 1, time.Now()
				value, _ = json.Marshal(&g)
			}
			if _, err := kv.Update(ctx, key, value, e.Revision()); err != nil {
				return 0, 0, fmt.Errorf("gap %s: %w", key, err)
			}
			count++
		}
	}
	return time.Since(start), count, nil
}

// publishOutage publishes what opens n gaps: every service down, then the
// tenders and bids of an outage. It returns the generator (which knows
// what is expected) and how many events it published.
func publishOutage(ctx context.Context, pub *publisher, n int) (*Outage, int, error) {
	base := time.Now().Add(-time.Hour)
	if err := pub.sync(ctx, Portal(false, "outage-down", base.Add(-time.Minute))); err != nil {
		return nil, 0, err
	}
	gen := NewOutage(n, base)
	events := 0
	for {
		in, ok := gen.Next()
		if !ok {
			break
		}
		events++
		if err := pub.async(in.Subject, in.MsgID, in.Body); err != nil {
			return nil, 0, err
		}
	}
	return gen, events, pub.wait(ctx)
}
