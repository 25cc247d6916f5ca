package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
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
// bounded fetches, from an ordered consumer on the bucket's stream.
type cursor struct {
	cons    jetstream.Consumer
	prefix  string
	pending uint64
	empty   int
}

func (w *Worker) openCursor(ctx context.Context, filter string) (*cursor, error) {
	prefix := "$KV." + BucketState + "."
	cons, err := w.js.OrderedConsumer(ctx, "KV_"+BucketState, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{prefix + filter},
		DeliverPolicy:  jetstream.DeliverLastPerSubjectPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", filter, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", filter, err)
	}
	return &cursor{cons: cons, prefix: prefix, pending: info.NumPending}, nil
}

// next returns up to n records; none once the scan is done.
func (c *cursor) next(n int) ([]record, error) {
	for c.pending > 0 {
		batch, err := c.cons.FetchNoWait(n)
		if err != nil {
			return nil, err
		}
		var out []record
		for m := range batch.Messages() {
			meta, err := m.Metadata()
			if err != nil {
				continue
			}
			c.pending = meta.NumPending
			r := recordOf(strings.TrimPrefix(m.Subject(), c.prefix), m.Headers(), m.Data(), meta.Sequence.Stream)
			if r.exists() {
				out = append(out, r)
			}
		}
		if err := batch.Error(); err != nil {
			return nil, err
		}
		if len(out) > 0 {
			c.empty = 0
			return out, nil
		}
		if c.empty++; c.empty > 20 {
			break // the stream holds nothing more for us
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil, nil
}

// step runs the next chunk of s; done is true once s has finished (its
// timer is then acked) or failed (given back).
func (w *Worker) step(ctx context.Context, s *scan) (done bool) {
	if time.Since(s.beat) > w.opts.AckWait/3 {
		_ = s.in.msg.InProgress()
		s.beat = time.Now()
	}
	recs, err := s.cur.next(w.opts.FanOut)
	if err == nil && len(recs) > 0 {
		s.n += len(recs)
		if err = s.chunk(ctx, recs); err == nil {
			return false
		}
	}
	if err == nil && s.finish != nil {
		err = s.finish(ctx)
	}
	if err != nil {
		err = fmt.Errorf("timer %s: %w", s.t.key(), err)
		w.retryLater([]*input{s.in}, err)
		return true
	}
	w.log.Info().Str("timer", s.t.key()).Str("service", s.t.Service).Int("records", s.n).
		Int64("took_ms", time.Since(s.start).Milliseconds()).Msg("timer done")
	w.done([]*input{s.in})
	return true
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
		filter = gap.ServicePrefix(t.Service)
		s.chunk = func(ctx context.Context, recs []record) error { return w.gapChunk(ctx, recs, t, now) }
	case timerPass:
		svc := w.svcs.get(t.Service)
		ready, ok := svc.ReadyAt(w.opts.Policy.Settle)
		if !ok {
			w.log.Info().Str("service", t.Service).Int("pass", t.Pass).Msg("restoration pass skipped: service is down again")
			w.done([]*input{in})
			return nil
		}
		if now.Before(ready.Add(-w.opts.Policy.Tolerance)) {
			// Fired early (a flap moved the restoration): again when due.
			t.At = ready
			w.settleTimer(ctx, in, w.timers.set(ctx, []timer{t}))
			return nil
		}
		filter = gap.ServicePrefix(t.Service)
		s.chunk = func(ctx context.Context, recs []record) error { return w.gapChunk(ctx, recs, t, now) }
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
			err = w.gapChunk(ctx, []record{recs[t.GapKey]}, t, now)
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
// interrupted run committed); for a restoration pass, every open gap.
// A gap due later than the bucket that fired (the broker's clock is ahead
// of this worker's) sets a later bucket.
func (w *Worker) gapChunk(ctx context.Context, recs []record, t timer, now time.Time) error {
	by := t.key()
	type job struct {
		cur  record
		g    gap.Gap
		spec *gap.Gap
		der  uint64
	}
	var jobs []*job
	var early []timer
	var tkeys []string
	due := now.Add(w.opts.Policy.Tolerance)
	for _, r := range recs {
		if c, ok := w.store.cache.get(r.key); ok && c.rev > r.rev {
			r = c
		}
		if !r.exists() {
			continue
		}
		var g gap.Gap
		if err := json.Unmarshal(r.raw, &g); err != nil {
			w.log.Error().Err(err).Str("gap", r.key).Msg("gap record undecodable: skipped")
			continue
		}
		_, replay := w.replayable(g.Pending, now, by)
		switch {
		case len(replay) > 0:
		case !g.Open:
			continue
		case t.Kind == timerDue && (g.WakeAt.IsZero() || g.WakeAt.After(due)):
			if !g.WakeAt.IsZero() {
				next := w.opts.dueTimer(g.Service, g.WakeAt)
				if next.key() == t.key() {
					next = w.opts.dueTimer(g.Service, g.WakeAt.Add(max(g.WakeAt.Sub(now), time.Second)))
				}
				early = append(early, next)
			}
			continue
		}
		j := &job{cur: r, g: g}
		if g.Open && g.NeedsCIG() {
			// A contribution gap waiting for its lot's CIG is brought in
			// line with its tender, so a CIG merged meanwhile is not missed.
			tkeys = append(tkeys, tenderKey(g.TenderID))
		}
		jobs = append(jobs, j)
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
			for i, j := range jobs {
				keys[i] = j.cur.key
			}
			fresh, err := w.store.load(ctx, keys, true)
			if err != nil {
				return err
			}
			for _, j := range jobs {
				j.cur = fresh[j.cur.key]
			}
		}
		tenders, err := w.store.load(ctx, tkeys, attempt > 0)
		if err != nil {
			return err
		}
		units := make([]*unit, len(jobs))
		parallel(len(jobs), func(i int) {
			j := jobs[i]
			u := &unit{}
			units[i] = u
			var g gap.Gap
			if j.cur.exists() && json.Unmarshal(j.cur.raw, &g) == nil && g.Open && g.NeedsCIG() {
				j.spec, j.der = deriveGap(tenders[tenderKey(g.TenderID)], j.cur.key, w.tenderServices())
			}
			u.err = w.syncGap(u, gapSync{cur: j.cur, spec: j.spec, derived: j.der, now: now, by: by})
		})
		if err := w.flush(ctx, units); err != nil {
			return err
		}
		var retry []*job
		for i, u := range units {
			switch {
			case u.err != nil:
				return u.err
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
