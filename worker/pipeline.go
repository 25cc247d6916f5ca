package worker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/promemoria/promemoria/cig"
	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/gap"
	"github.com/promemoria/promemoria/outage"
	"github.com/promemoria/promemoria/tender"
)

// A batch of input events goes through these stages, each a method below:
//
//	seen    one pipelined create per event in the seen bucket: first sight,
//	        duplicate (applied again, idempotently) or an id reused for other
//	        content (dead-lettered)
//	plan    load the batch's tenders, then their gaps, with batched reads;
//	        apply the events in memory; sync each gap (see gapsync.go); no
//	        round trip
//	flush   set the timers the plan needs, publish what goes before the
//	        commit, commit every changed record in one pipelined flush under
//	        compare-and-set, publish what the committed records say was sent
//	settle  ack what is done; a unit that lost a compare-and-set is planned
//	        again from fresh reads; a failure naks with backoff
//
// The work of one tender (or one service, or one gap in a scan) is a unit:
// its writes are retried together.

// input is one message taken from a consumer, on its way through a batch.
type input struct {
	msg        jetstream.Msg
	ev         *events.Event
	kind       kind
	invalid    error // why it is dead-lettered
	first      bool  // seen for the first time
	deliveries uint64
	start      time.Time
}

// newInput decodes msg.
func (w *Worker) newInput(msg jetstream.Msg) *input {
	in := &input{msg: msg, start: time.Now(), deliveries: 1}
	if meta, err := msg.Metadata(); err == nil {
		in.deliveries = meta.NumDelivered
	}
	if in.deliveries > 1 {
		w.metrics.redelivery()
	}
	ev, err := events.Decode(msg.Data(), w.opts.Subjects.TypeOf(msg.Subject()), w.opts.Limits)
	if err != nil {
		in.invalid = err
		return in
	}
	k, ok := kinds[ev.Type]
	if !ok {
		in.invalid = &events.InvalidError{Reason: events.ReasonUnknownType, Field: "type", Msg: string(ev.Type)}
		return in
	}
	in.ev, in.kind = ev, k
	return in
}

// portal reports whether the input changes services: it is applied alone,
// after what came before it and before what comes after.
func (in *input) portal() bool { return in.ev != nil && in.kind.tender(in.ev.Payload) == "" }

// typ names the input in metrics.
func (in *input) typ() string {
	if in.ev == nil {
		return "invalid"
	}
	return string(in.ev.Type)
}

// unit is the work of one tender, one service or one gap: its writes stand
// or fall together.
type unit struct {
	inputs []*input
	// before is published before the commit: advices (the tender records
	// them once published) and dead letters.
	before []outMsg
	writes []*write
	// after is published after the commit whatever its outcome: messages
	// that stored records already say were sent, published again in case
	// their first publication was interrupted.
	after  []outMsg
	timers []timer
	// err is a failure of this unit alone.
	err error
}

// conflict reports whether a write of the unit lost a compare-and-set.
func (u *unit) conflict() bool {
	for _, w := range u.writes {
		if errors.Is(w.err, errConflict) {
			return true
		}
	}
	return false
}

// flush carries the units out: it sets their timers, publishes what goes
// before the commit, commits every write in one pipelined flush, then
// publishes what the committed records say was sent, and waits for it.
//
// Why this order: a timer is stored before the record that counts on it,
// so a crash leaves a timer too many (it finds nothing to do), never one
// too few. A reminder is committed as pending in its gap before it is
// published, so a crash in between leaves a record that says what to
// publish: whoever handles the gap next (the redelivered input or timer)
// publishes it again under the same id, and the output stream keeps one.
// An advice is published first and recorded after: its id is
// deterministic, so a crash in between publishes it again, once.
//
// It returns an error only for what is not one unit's failure (the broker
// not answering): nothing is known to be done then.
func (w *Worker) flush(ctx context.Context, units []*unit) error {
	// Each step waits at most publishTimeout per message; the whole flush
	// is bounded too, so a broker that stops answering fails the batch.
	ctx, cancel := context.WithTimeout(ctx, 3*publishTimeout)
	defer cancel()
	var (
		tms    []timer
		before []outMsg
		ws     []*write
	)
	for _, u := range units {
		if u.err != nil {
			continue
		}
		tms = append(tms, u.timers...)
		before = append(before, u.before...)
		ws = append(ws, u.writes...)
	}
	if err := w.timers.set(ctx, tms); err != nil {
		return err
	}
	if err := w.publish(ctx, before); err != nil {
		return err
	}
	if err := w.store.commit(ctx, ws); err != nil {
		return err
	}
	var after []outMsg
	for _, u := range units {
		if u.err != nil {
			continue
		}
		// What the records already said was sent goes before what this
		// batch decided: a reminder replayed after a crash precedes the
		// resolution decided now.
		after = append(after, u.after...)
		for _, wr := range u.writes {
			if wr.err != nil {
				continue
			}
			after = append(after, wr.then...)
			if wr.committed != nil {
				wr.committed()
			}
		}
	}
	return w.publish(ctx, after)
}

// processEvents takes a batch of input events through the stages, until
// every one is acked or given back to the broker.
func (w *Worker) processEvents(ctx context.Context, ins []*input) {
	if err := w.seen(ctx, ins); err != nil {
		w.retryLater(ins, err)
		return
	}
	todo := ins
	for attempt := 0; len(todo) > 0; attempt++ {
		units, err := w.plan(ctx, todo, attempt > 0)
		if err == nil {
			err = w.flush(ctx, units)
		}
		if err != nil {
			w.retryLater(todo, err)
			return
		}
		todo = nil
		for _, u := range units {
			switch {
			case u.err != nil:
				w.failed(ctx, u.inputs, u.err)
			case u.conflict() && attempt+1 < maxCASRetries:
				w.metrics.conflict()
				todo = append(todo, u.inputs...)
			case u.conflict():
				w.failed(ctx, u.inputs, fmt.Errorf("%w after %d attempts", errConflict, maxCASRetries))
			default:
				w.done(u.inputs)
			}
		}
	}
}

// seen records each event's source+id with the digest of its content, one
// pipelined create each. A create that finds the key is a duplicate (or
// the redelivery of an event whose processing was interrupted): it is
// applied again, which is safe since every step is idempotent, unless the
// stored digest differs: then the id was reused for other content.
func (w *Worker) seen(ctx context.Context, ins []*input) error {
	var (
		ws      []*write
		of      []*input
		digests = map[*input]string{}
	)
	for _, in := range ins {
		if in.ev == nil {
			continue
		}
		key, digest := seenKeys(in.ev)
		ws = append(ws, &write{key: key, val: []byte(digest)})
		of = append(of, in)
		digests[in] = digest
	}
	if len(ws) == 0 {
		return nil
	}
	if err := w.seenStore.commit(ctx, ws); err != nil {
		return fmt.Errorf("seen: %w", err)
	}
	var again []string
	for i, wr := range ws {
		if wr.err == nil {
			of[i].first = true
		} else {
			again = append(again, wr.key)
		}
	}
	if len(again) == 0 {
		return nil
	}
	recs, err := w.seenStore.load(ctx, again, true)
	if err != nil {
		return fmt.Errorf("seen: %w", err)
	}
	for i, wr := range ws {
		if wr.err == nil {
			continue
		}
		in := of[i]
		if r := recs[wr.key]; r.exists() && string(r.raw) != digests[in] {
			in.invalid = &events.InvalidError{Reason: events.ReasonIDReused, Field: "id",
				Msg: fmt.Sprintf("source %q id %q was already used for an event with different content", in.ev.Source, in.ev.ID)}
			continue
		}
		w.metrics.duplicate()
		w.logEvent(zerolog.DebugLevel, in.ev).Msg("event seen before: applied again, idempotently")
	}
	return nil
}

// seenKeys returns the key that names an event (source+id) and the digest
// of its content: its type and its data as canonical JSON (keys sorted, no
// spaces), so that the same event serialised by another library is the
// same event.
func seenKeys(ev *events.Event) (key, digest string) {
	k := sha256.Sum256([]byte(ev.Source + "\x00" + ev.ID))
	d := sha256.Sum256(append([]byte(string(ev.Type)+"\x00"), canonicalJSON(ev.Data)...))
	return "e." + hex.EncodeToString(k[:16]), hex.EncodeToString(d[:16])
}

// canonicalJSON re-encodes raw with object keys sorted and no spaces,
// numbers kept as written; raw that is not JSON is returned as it is.
func canonicalJSON(raw []byte) []byte {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return raw
	}
	b, err := json.Marshal(v)
	if err != nil {
		return raw
	}
	return b
}

// tenderWork is what the plan stage knows about one tender of a batch.
type tenderWork struct {
	id      string
	ins     []*input
	rec     record
	t       *tender.Tender
	keys    []string // of the gaps its events touch
	derived uint64   // the derivation number of its gaps (see plan)
	u       *unit
}

// plan loads what a batch needs and decides everything in memory: it
// returns one unit per tender (and per invalid or portal input). fresh
// reads the records from the bucket rather than the cache: after a lost
// compare-and-set.
//
// A gap records which version of its tender it was derived from, so that
// an older derivation never overwrites a newer one (gap.Merge). The
// version is the tender record's revision as loaded, plus one: a
// derivation from a later version always has a larger number, without
// waiting for the new revision the commit will give.
func (w *Worker) plan(ctx context.Context, ins []*input, fresh bool) ([]*unit, error) {
	var units []*unit
	works := map[string]*tenderWork{}
	var order []*tenderWork
	for _, in := range ins {
		switch {
		case in.invalid != nil:
			dl, err := w.deadLetterMsg(in.msg, in.invalid, in.deliveries)
			units = append(units, &unit{inputs: []*input{in}, before: []outMsg{dl}, err: err})
		case in.portal():
			u, err := w.planPortal(ctx, in, fresh)
			if err != nil {
				return nil, err
			}
			units = append(units, u)
		default:
			id := in.kind.tender(in.ev.Payload)
			tw := works[id]
			if tw == nil {
				tw = &tenderWork{id: id, u: &unit{}}
				works[id] = tw
				order = append(order, tw)
			}
			tw.ins = append(tw.ins, in)
			tw.u.inputs = append(tw.u.inputs, in)
		}
	}
	if len(order) == 0 {
		return units, nil
	}
	now := w.now()

	// Load the tenders.
	keys := make([]string, len(order))
	for i, tw := range order {
		keys[i] = tenderKey(tw.id)
	}
	trecs, err := w.store.load(ctx, keys, fresh)
	if err != nil {
		return nil, err
	}
	// Apply the events; find the gaps they touch.
	for _, tw := range order {
		tw.rec = trecs[tenderKey(tw.id)]
		tw.u.err = w.applyTender(tw)
	}
	// Load the gaps. A tender that is not stored has no gap stored either
	// (its gaps are written with it): they are not read. Should one exist
	// after all, its create fails the compare-and-set and the tender is
	// planned again from fresh reads.
	var gkeys []string
	for _, tw := range order {
		if tw.u.err == nil && tw.rec.exists() {
			gkeys = append(gkeys, tw.keys...)
		}
	}
	grecs, err := w.store.load(ctx, gkeys, fresh)
	if err != nil {
		return nil, err
	}
	for _, tw := range order {
		if tw.u.err == nil {
			tw.u.err = w.planTender(tw, grecs, now)
		}
	}
	for _, tw := range order {
		units = append(units, tw.u)
	}
	return units, nil
}

// applyTender merges the events of tw into a scratch copy of its tender
// to find the gaps they can touch: their records are loaded before
// planTender applies the events for good.
func (w *Worker) applyTender(tw *tenderWork) error {
	t, err := w.decodeTender(tw)
	if err != nil {
		return err
	}
	keys := map[string]bool{}
	for _, in := range tw.ins {
		in.kind.apply(w, t, in.ev, false)
		for _, spec := range w.touched(t, in) {
			if !keys[spec.Key] {
				keys[spec.Key] = true
				tw.keys = append(tw.keys, spec.Key)
			}
		}
	}
	tw.derived = tw.rec.rev + 1
	return nil
}

// decodeTender returns the stored tender of tw, or a new one.
func (w *Worker) decodeTender(tw *tenderWork) (*tender.Tender, error) {
	t := &tender.Tender{TenderID: tw.id}
	if tw.rec.exists() {
		if err := json.Unmarshal(tw.rec.raw, t); err != nil {
			return nil, fmt.Errorf("decode %s (revision %d): %w", tw.rec.key, tw.rec.rev, err)
		}
	}
	return t, nil
}

// touched returns the gaps of t that the input can change.
func (w *Worker) touched(t *tender.Tender, in *input) []gap.Gap {
	specs := t.Gaps(w.tenderServices())
	if in.kind.only == nil {
		return specs
	}
	only := in.kind.only(in.ev.Payload)
	out := specs[:0]
	for _, s := range specs {
		if only(&s) {
			out = append(out, s)
		}
	}
	return out
}

// planTender applies the events of tw to its tender one by one, in the
// order received, and after each brings the gaps it touches in line: the
// outcome is that of applying each event alone, with one write per
// changed record. It then decides the tender's advice and writes the
// tender record if it changed.
func (w *Worker) planTender(tw *tenderWork, grecs map[string]record, now time.Time) error {
	u := tw.u
	t, err := w.decodeTender(tw)
	if err != nil {
		return err
	}
	states := map[string]*gapState{}
	var order []*gapState
	for _, in := range tw.ins {
		in.kind.apply(w, t, in.ev, in.first)
		for _, spec := range w.touched(t, in) {
			gs := states[spec.Key]
			if gs == nil {
				cur := record{key: spec.Key}
				if r, ok := grecs[spec.Key]; ok {
					cur = r
				} else if r, ok := w.store.cache.get(spec.Key); ok {
					cur = r
				}
				if gs, err = loadGap(cur); err != nil {
					return err
				}
				states[spec.Key] = gs
				order = append(order, gs)
			}
			if err := w.stepGap(u, gs, gapSync{cur: gs.cur, spec: &spec, derived: tw.derived, now: now}); err != nil {
				return fmt.Errorf("gap %s: %w", spec.Key, err)
			}
		}
	}
	for _, gs := range order {
		if err := w.commitGap(u, gs, now); err != nil {
			return err
		}
	}
	tw.t = t
	if err := w.advise(u, t, now); err != nil {
		return err
	}
	after, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("encode %s: %w", tw.rec.key, err)
	}
	if !tw.rec.exists() || !bytes.Equal(tw.rec.raw, after) {
		u.writes = append(u.writes, &write{key: tw.rec.key, rev: tw.rec.rev, val: after})
	}
	w.logEvent(zerolog.DebugLevel, tw.ins[0].ev).Int("events", len(tw.ins)).Int("gaps", len(order)).Msg("events planned")
	return nil
}

// tenderServices says which service each kind of gap waits for and what
// a bid owes.
func (w *Worker) tenderServices() tender.Services {
	return tender.Services{Contribution: w.opts.ContributionService, Owed: w.opts.Contribution.Owed}
}

// warnTender logs and counts what looks unusual in a tender.published.
func (w *Worker) warnTender(ev *events.Event, p *events.TenderPublished) {
	if warnings := tender.Warnings(p); len(warnings) > 0 {
		w.metrics.tenderWarning()
		w.log.Warn().Str("tender_id", p.TenderID).Str("event_id", ev.ID).Strs("warnings", warnings).
			Msg("tender published with an unlikely CIG service for its amount or date: applied as given")
	}
	for _, l := range p.Lots {
		w.checkUnverified(p.TenderID, l.LotID, l.CIG)
	}
}

// checkUnverified warns about a CIG accepted on its format alone.
func (w *Worker) checkUnverified(tenderID, lotID, code string) {
	if cig.Unverified(code) {
		w.metrics.cigUnverified()
		w.log.Warn().Str("tender_id", tenderID).Str("lot_id", lotID).Str("cig", code).
			Msg("CIG accepted without checking its check digit: ANAC publishes none for the V and W families")
	}
}

// planPortal records a service going down or up and, once it is up,
// sets the restoration's first pass for the end of settle.
func (w *Worker) planPortal(ctx context.Context, in *input, fresh bool) (*unit, error) {
	ev, p := in.ev, in.ev.Payload.(*events.PortalChange)
	services := p.Services
	if len(services) == 0 {
		services = w.opts.Services
	}
	at := p.At
	if at.IsZero() {
		at = ev.Time
	}
	up := ev.Type == events.TypePortalUp
	keys := make([]string, len(services))
	for i, name := range services {
		keys[i] = serviceKey(name)
	}
	recs, err := w.store.load(ctx, keys, fresh)
	if err != nil {
		return nil, err
	}
	u := &unit{inputs: []*input{in}}
	now := w.now()
	for _, name := range services {
		rec := recs[serviceKey(name)]
		svc := &outage.Service{Name: name}
		if rec.exists() {
			if err := json.Unmarshal(rec.raw, svc); err != nil {
				u.err = fmt.Errorf("decode %s (revision %d): %w", rec.key, rec.rev, err)
				return u, nil
			}
		}
		changed := svc.Apply(outage.Transition{At: at, Up: up, Notice: p.Notice})
		var when time.Time
		if svc.Up() {
			ready, _ := svc.ReadyAt(w.opts.Policy.Settle)
			when = later(ready, now)
			u.timers = append(u.timers, timer{Kind: timerPass, Service: name, Pass: 1, At: when})
		}
		logState := func() {
			log := w.log.Info().Str("service", name).Bool("up", svc.Up()).Time("at", at)
			if svc.Up() {
				log = log.Time("up_since", svc.UpSince()).Time("reminders_from", when)
			}
			log.Msg("service state")
		}
		if !changed {
			w.svcs.put(svc)
			logState()
			continue
		}
		raw, err := json.Marshal(svc)
		if err != nil {
			return nil, err
		}
		u.writes = append(u.writes, &write{key: rec.key, rev: rec.rev, val: raw, committed: func() {
			w.svcs.put(svc)
			logState()
		}})
	}
	return u, nil
}

// done acks inputs carried out.
func (w *Worker) done(ins []*input) {
	for _, in := range ins {
		if in.invalid != nil {
			w.deadLettered(in, in.invalid)
		}
		w.metrics.observe(in.typ(), in.invalid, time.Since(in.start))
		w.ack(in.msg)
	}
}

// failed settles inputs whose unit failed: an invalid one is
// dead-lettered, one that keeps failing too, the others are given back
// with backoff.
func (w *Worker) failed(ctx context.Context, ins []*input, err error) {
	for _, in := range ins {
		var ie *events.InvalidError
		cause := err
		if !errors.As(err, &ie) && int(in.deliveries) >= w.opts.MaxAttempts {
			cause = &events.InvalidError{Reason: events.ReasonProcessFailed, Msg: fmt.Sprintf("failed %d times", in.deliveries), Err: err}
		}
		if errors.As(cause, &ie) {
			if dl, derr := w.deadLetterMsg(in.msg, cause, in.deliveries); derr == nil && w.publish(ctx, []outMsg{dl}) == nil {
				w.deadLettered(in, cause)
				w.metrics.observe(in.typ(), cause, time.Since(in.start))
				w.ack(in.msg)
				continue
			}
		}
		w.retryLater([]*input{in}, err)
	}
}

// retryLater gives inputs back to the broker, to be redelivered after a
// backoff that grows with their deliveries.
func (w *Worker) retryLater(ins []*input, err error) {
	for _, in := range ins {
		w.metrics.observe(in.typ(), errors.New("retry"), time.Since(in.start))
		w.log.Warn().Err(err).Str("subject", in.msg.Subject()).Uint64("deliveries", in.deliveries).Msg("processing failed, will retry")
		if nerr := in.msg.NakWithDelay(backoff(in.deliveries)); nerr != nil {
			w.log.Warn().Err(nerr).Str("subject", in.msg.Subject()).Msg("nak failed: the message will be redelivered")
		}
	}
}

func (w *Worker) ack(msg jetstream.Msg) {
	if err := msg.Ack(); err != nil {
		w.log.Warn().Err(err).Str("subject", msg.Subject()).Msg("ack failed: the message will be redelivered")
		return
	}
	if msg.Subject() != "" && msg.Subject()[0] != '_' {
		w.metrics.eventsAcked.Add(1)
	}
}

// backoff returns the redelivery delay after the given number of attempts:
// 250ms doubling up to 30s.
func backoff(deliveries uint64) time.Duration {
	d := 250 * time.Millisecond
	for i := uint64(1); i < deliveries && d < 30*time.Second; i++ {
		d *= 2
	}
	return min(d, 30*time.Second)
}

// parallel calls fn(0..n-1) on up to GOMAXPROCS goroutines.
func parallel(n int, fn func(i int)) {
	procs := min(n, runtime.GOMAXPROCS(0))
	if procs <= 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	var wg sync.WaitGroup
	next := make(chan int)
	for range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fn(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}
