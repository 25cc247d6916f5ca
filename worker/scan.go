package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/promemoria/promemoria/gap"
	"github.com/promemoria/promemoria/tender"
)

// A timer that concerns many records (a due bucket, a restoration pass,
// the advice sweep) walks the state bucket with a scan: the records that
// match a filter, read chunk by chunk from the bucket's stream, each chunk
// planned and flushed like a batch of events, between batches of events.
// Memory holds one chunk, however many gaps there are.

// scan is a timer's walk through the records of the state bucket.
type scan struct {
	in     *input
	t      timer
	cur    *cursor
	chunk  func(ctx context.Context, recs []record) error
	finish func(ctx context.Context) error
	n      int
	start  time.Time
	beat   time.Time
}

// cursor reads the latest record of every key that matches a filter, in
// bounded fetches, from one ephemeral consumer on the bucket's stream
// (deliver the last message per subject, no acks). It reads the bucket as
// it was when the consumer was created: it stops at the first record
// written after (the scan's own writes among them), so a scan does not
// read back what it wrote.
type cursor struct {
	cons    jetstream.Consumer
	stream  jetstream.Stream
	prefix  string
	cutoff  uint64 // the stream's last sequence once the consumer existed
	pending uint64 // messages left for the consumer, by the last one read
	done    bool
	empty   int
}

func (w *Worker) openCursor(ctx context.Context, filter string) (*cursor, error) {
	prefix := "$KV." + BucketState + "."
	st, err := w.js.Stream(ctx, "KV_"+BucketState)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", filter, err)
	}
	cons, err := st.CreateConsumer(ctx, jetstream.ConsumerConfig{
		FilterSubject:     prefix + filter,
		DeliverPolicy:     jetstream.DeliverLastPerSubjectPolicy,
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: time.Minute,
		MemoryStorage:     true,
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", filter, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", filter, err)
	}
	cinfo, err := cons.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", filter, err)
	}
	return &cursor{cons: cons, stream: st, prefix: prefix, cutoff: info.State.LastSeq, pending: cinfo.NumPending}, nil
}

// close deletes the cursor's consumer (it would expire by itself).
func (c *cursor) close(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_ = c.stream.DeleteConsumer(ctx, c.cons.CachedInfo().Name)
}

// next returns up to n records; none once the scan is done. A scan that
// cannot read what remains fails, rather than end early.
func (c *cursor) next(n int) ([]record, error) {
	for !c.done && c.pending > 0 {
		batch, err := c.cons.Fetch(int(min(uint64(n), c.pending)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, err
		}
		var out []record
		got := 0
		for m := range batch.Messages() {
			got++
			meta, err := m.Metadata()
			if err != nil {
				return nil, fmt.Errorf("scan: %w", err)
			}
			c.pending = meta.NumPending
			if meta.Sequence.Stream > c.cutoff {
				c.done = true // written after the scan began
				continue
			}
			r := recordOf(strings.TrimPrefix(m.Subject(), c.prefix), m.Headers(), m.Data(), meta.Sequence.Stream)
			if r.exists() {
				out = append(out, r)
			}
		}
		if err := batch.Error(); err != nil {
			return nil, err
		}
		if len(out) > 0 {
			return out, nil
		}
		if got == 0 {
			if c.empty++; c.empty > 3 {
				return nil, fmt.Errorf("scan: %d records announced, none delivered in %d fetches", c.pending, c.empty)
			}
		}
	}
	return nil, nil
}

// errLeaseLost stops a scan whose leader lost the lease: the next leader
// runs its timer again.
var errLeaseLost = errors.New("lease lost")

// run runs scan s to its end and settles its timer. One goroutine reads
// the chunks ahead while two plan and flush them: the records of two
// chunks are different keys, so one chunk can be planned while the other
// waits for the broker. held says whether the lease is still held.
func (w *Worker) run(ctx context.Context, s *scan, held func() bool) {
	defer s.cur.close(context.WithoutCancel(ctx))
	chunks := make(chan []record, 2)
	var (
		mu       sync.Mutex
		firstErr error
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
		}
	}
	failed := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return firstErr != nil
	}
	go func() {
		defer close(chunks)
		for !failed() {
			if ctx.Err() != nil || !held() {
				fail(errLeaseLost)
				return
			}
			if time.Since(s.beat) > w.opts.AckWait/3 {
				_ = s.in.msg.InProgress()
				s.beat = time.Now()
			}
			recs, err := s.cur.next(w.opts.FanOut)
			if err != nil {
				fail(err)
				return
			}
			if len(recs) == 0 {
				return
			}
			chunks <- recs
		}
	}()
	var wg sync.WaitGroup
	var n atomic.Int64
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for recs := range chunks {
				if failed() {
					continue
				}
				if err := s.chunk(ctx, recs); err != nil {
					fail(err)
				}
				n.Add(int64(len(recs)))
			}
		}()
	}
	wg.Wait()
	s.n = int(n.Load())
	err := firstErr
	if err == nil && s.finish != nil {
		err = s.finish(ctx)
	}
	switch {
	case errors.Is(err, errLeaseLost):
		// Given back at once: the next leader runs it again, and what this
		// one committed is known by the timer's key.
		_ = s.in.msg.Nak()
	case err != nil:
		w.retryLater([]*input{s.in}, fmt.Errorf("timer %s: %w", s.t.key(), err))
	default:
		w.log.Info().Str("timer", s.t.key()).Str("service", s.t.Service).Int("records", s.n).
			Int64("took_ms", time.Since(s.start).Milliseconds()).Msg("timer done")
		w.done([]*input{s.in})
	}
}

// startTimer acts on a fired timer: it returns the scan to run, or nil
// if the timer was settled at once.
func (w *Worker) startTimer(ctx context.Context, msg jetstream.Msg) *scan {
	in := &input{msg: msg, start: time.Now(), deliveries: 1}
	if meta, err := msg.Metadata(); err == nil {
		in.deliveries = meta.NumDelivered
	}
	w.metrics.timersFired.Add(1)
	t, err := parseTimer(msg.Data())
	if err != nil {
		w.log.Warn().Err(err).Str("subject", msg.Subject()).Msg("unknown timer ignored")
		w.done([]*input{in})
		return nil
	}
	now := w.now()
	s := &scan{in: in, t: t, start: time.Now(), beat: time.Now()}
	var filter string
	switch t.Kind {
	case timerDue:
		w.timers.fired(t)
		if _, err := w.freshService(ctx, t.Service); err != nil {
			w.settleTimer(ctx, in, err)
			return nil
		}
		filter = gap.ServicePrefix(t.Service)
		s.chunk = func(ctx context.Context, recs []record) error { return w.gapChunk(ctx, recs, t, now, false) }
	case timerPass:
		// The service's state is read from the bucket, not the leader's
		// view: a leader whose lease lapsed may have committed a portal
		// event after this one took over.
		svc, err := w.freshService(ctx, t.Service)
		if err != nil {
			w.settleTimer(ctx, in, err)
			return nil
		}
		ready, ok := svc.ReadyAt(w.opts.Policy.Settle)
		if !ok {
			// Down again: no reminder now, but what an interrupted run of
			// this pass committed is still published.
			w.log.Info().Str("service", t.Service).Int("pass", t.Pass).Msg("restoration pass skipped: service is down again")
			filter = gap.ServicePrefix(t.Service)
			t.Kind = timerPass
			s.t = t
			s.chunk = func(ctx context.Context, recs []record) error { return w.gapChunk(ctx, recs, t, now, true) }
			break
		}
		if now.Before(ready.Add(-w.opts.Policy.Tolerance)) {
			// Fired early (a flap moved the restoration): again when due.
			t.At = ready
			w.settleTimer(ctx, in, w.timers.set(ctx, []timer{t}))
			return nil
		}
		filter = gap.ServicePrefix(t.Service)
		s.chunk = func(ctx context.Context, recs []record) error { return w.gapChunk(ctx, recs, t, now, false) }
		s.finish = func(ctx context.Context) error {
			w.log.Info().Str("service", t.Service).Int("pass", t.Pass).Int("gaps", s.n).
				Int64("took_ms", time.Since(s.start).Milliseconds()).Time("up_since", svc.UpSince()).Msg("restoration pass done")
			if t.Pass != 1 {
				return nil
			}
			// The outage may have overlapped offer periods: one advice
			// sweep looks at every tender; the services restored together
			// share it. A second pass catches gaps written meanwhile.
			return w.timers.set(ctx, []timer{
				{Kind: timerAdvise, At: now},
				{Kind: timerPass, Service: t.Service, Pass: 2, At: now.Add(w.opts.SweepGrace)},
			})
		}
	case timerAdvise:
		if office := w.opts.Policy.Office; !office.Open(now) {
			t.At = office.Next(now)
			w.settleTimer(ctx, in, w.timers.set(ctx, []timer{t}))
			return nil
		}
		filter = "tender.>"
		s.chunk = func(ctx context.Context, recs []record) error { return w.adviseChunk(ctx, recs, now) }
	case timerGap:
		if _, ok := gap.ParseKey(t.GapKey); !ok {
			w.done([]*input{in})
			return nil
		}
		recs, err := w.store.load(ctx, []string{t.GapKey}, false)
		if err == nil {
			err = w.gapChunk(ctx, []record{recs[t.GapKey]}, t, now, false)
		}
		w.settleTimer(ctx, in, err)
		return nil
	}
	cur, err := w.openCursor(ctx, filter)
	if err != nil {
		w.settleTimer(ctx, in, err)
		return nil
	}
	s.cur = cur
	return s
}

// settleTimer acks a timer carried out, or gives it back: a timer is
// state the service owns, retried until the failure passes.
func (w *Worker) settleTimer(_ context.Context, in *input, err error) {
	if err != nil {
		w.retryLater([]*input{in}, err)
		return
	}
	w.done([]*input{in})
}

// gapChunk syncs the gaps of recs that timer t concerns: for a due
// bucket, the open gaps due by now (and those whose messages its
// interrupted run committed); for a restoration pass, every open gap; with
// replayOnly, only those whose messages an interrupted run of t committed.
// A gap due later than the bucket that fired (the broker's clock is ahead
// of this worker's) sets a later bucket. A gap that cannot be synced is
// logged and skipped: one bad record does not hold up the others.
func (w *Worker) gapChunk(ctx context.Context, recs []record, t timer, now time.Time, replayOnly bool) error {
	by := t.key()
	var (
		jobs  []*gapState
		early []timer
		tkeys []string
	)
	due := now.Add(w.opts.Policy.Tolerance)
	for _, r := range recs {
		if c, ok := w.store.cache.get(r.key); ok && c.rev > r.rev {
			r = c
		}
		if !r.exists() {
			continue
		}
		gs, err := loadGap(r)
		if err != nil {
			w.log.Error().Err(err).Str("gap", r.key).Msg("gap record undecodable: skipped")
			continue
		}
		g := &gs.g
		_, replay := w.replayable(g.Pending, now, by)
		switch {
		case len(replay) > 0:
		case replayOnly || !g.Open:
			continue
		case t.Kind == timerDue && g.WakeAt.IsZero():
			continue
		case t.Kind == timerDue && g.WakeAt.After(due) && w.opts.dueTimer(g.Service, g.WakeAt).key() != by:
			// Due in a later bucket: make sure that bucket is set.
			early = append(early, w.opts.dueTimer(g.Service, g.WakeAt))
			continue
		}
		if g.Open && g.NeedsCIG() {
			// A contribution gap waiting for its lot's CIG is brought in
			// line with its tender, so a CIG merged meanwhile is not missed.
			tkeys = append(tkeys, tenderKey(g.TenderID))
		}
		jobs = append(jobs, gs)
	}
	if err := w.timers.set(ctx, early); err != nil {
		return err
	}
	for attempt := 0; len(jobs) > 0; attempt++ {
		if attempt == maxCASRetries {
			return fmt.Errorf("%d gaps: %w after %d attempts", len(jobs), errConflict, maxCASRetries)
		}
		if attempt > 0 {
			keys := make([]string, len(jobs))
			for i, gs := range jobs {
				keys[i] = gs.cur.key
			}
			fresh, err := w.store.load(ctx, keys, true)
			if err != nil {
				return err
			}
			for i, gs := range jobs {
				if jobs[i], err = loadGap(fresh[gs.cur.key]); err != nil {
					return err
				}
			}
		}
		tenders, err := w.store.load(ctx, tkeys, attempt > 0)
		if err != nil {
			return err
		}
		units := make([]*unit, len(jobs))
		parallel(len(jobs), func(i int) {
			gs := jobs[i]
			u := &unit{}
			units[i] = u
			s := gapSync{cur: gs.cur, now: now, by: by}
			if gs.exists && gs.g.Open && gs.g.NeedsCIG() {
				s.spec, s.derived = deriveGap(tenders[tenderKey(gs.g.TenderID)], gs.cur.key, w.tenderServices())
			}
			if u.err = w.stepGap(u, gs, s); u.err == nil {
				u.err = w.commitGap(u, gs, now)
			}
		})
		if t.Kind == timerDue {
			// A gap of this bucket that is not due yet by this worker's
			// clock (the broker's is ahead, or this one went back) was
			// planned again; if it still falls in this bucket, the bucket
			// is set again that much later rather than at once.
			for _, u := range units {
				for i, tm := range u.timers {
					if tm.key() == by {
						u.timers[i] = w.opts.dueTimer(tm.Service, tm.At.Add(max(tm.At.Sub(now), time.Second)))
					}
				}
			}
		}
		if err := w.flush(ctx, units); err != nil {
			return err
		}
		var retry []*gapState
		for i, u := range units {
			switch {
			case u.err != nil:
				w.log.Error().Err(u.err).Str("gap", jobs[i].cur.key).Str("timer", by).Msg("gap cannot be synced: skipped")
			case u.conflict():
				w.metrics.conflict()
				retry = append(retry, jobs[i])
			}
		}
		jobs = retry
	}
	return nil
}

// deriveGap returns the gap at key as the tender record rec describes it,
// and its derivation number; nil if the tender or the gap is not there.
func deriveGap(rec record, key string, s tender.Services) (*gap.Gap, uint64) {
	if !rec.exists() {
		return nil, 0
	}
	t := &tender.Tender{}
	if json.Unmarshal(rec.raw, t) != nil {
		return nil, 0
	}
	for _, spec := range t.Gaps(s) {
		if spec.Key == key {
			return &spec, rec.rev + 1
		}
	}
	return nil, 0
}

// adviseChunk looks at each tender of recs for an art. 25 advice.
func (w *Worker) adviseChunk(ctx context.Context, recs []record, now time.Time) error {
	for attempt := 0; len(recs) > 0; attempt++ {
		if attempt == maxCASRetries {
			return fmt.Errorf("%d tenders: %w after %d attempts", len(recs), errConflict, maxCASRetries)
		}
		if attempt > 0 {
			keys := make([]string, len(recs))
			for i, r := range recs {
				keys[i] = r.key
			}
			fresh, err := w.store.load(ctx, keys, true)
			if err != nil {
				return err
			}
			for i := range recs {
				recs[i] = fresh[recs[i].key]
			}
		}
		var units []*unit
		var of []record
		for _, r := range recs {
			if c, ok := w.store.cache.get(r.key); ok && c.rev > r.rev {
				r = c
			}
			if !r.exists() {
				continue
			}
			t := &tender.Tender{}
			if err := json.Unmarshal(r.raw, t); err != nil {
				w.log.Error().Err(err).Str("key", r.key).Msg("tender record undecodable: skipped")
				continue
			}
			if t.Cancelled || !now.Before(t.OfferDeadline) {
				continue
			}
			u := &unit{}
			if err := w.advise(u, t, now); err != nil {
				return err
			}
			if len(u.before) == 0 {
				continue
			}
			raw, err := json.Marshal(t)
			if err != nil {
				return err
			}
			u.writes = append(u.writes, &write{key: r.key, rev: r.rev, val: raw})
			units = append(units, u)
			of = append(of, r)
		}
		if err := w.flush(ctx, units); err != nil {
			return err
		}
		recs = recs[:0:0]
		for i, u := range units {
			if u.conflict() {
				w.metrics.conflict()
				recs = append(recs, of[i])
			}
		}
	}
	return nil
}
