package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/rs/zerolog"

	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/gap"
	"github.com/promemoria/promemoria/outage"
	"github.com/promemoria/promemoria/tender"
)

// apply changes state for one valid event and sends what follows from it.
// Every step is idempotent, so a redelivered event is applied again safely.
// first is true the first time the event is seen: what looks wrong in it
// without being a reason to reject it is logged and counted then only.
func (w *Worker) apply(ctx context.Context, ev *events.Event, first bool) error {
	switch p := ev.Payload.(type) {
	case *events.PortalChange:
		return w.portalChange(ctx, ev, p)
	case *events.TenderPublished:
		if first {
			w.warnTender(ev, p)
		}
		return w.tenderChange(ctx, ev, p.TenderID, nil, func(t *tender.Tender) {
			t.Published(ev, p, w.opts.DefaultCIGService, validCIG)
		})
	case *events.CIGAssigned:
		// Decode has already normalised the CIG and checked its check
		// digits. The lot's CIG gap closes, and its bidders' contribution
		// gaps can now be reminded: the CIG identifies their payment.
		if first {
			w.checkUnverified(p.TenderID, p.LotID, p.CIG)
		}
		return w.tenderChange(ctx, ev, p.TenderID, func(g *gap.Gap) bool {
			return g.LotID == p.LotID
		}, func(t *tender.Tender) { t.CIGAssigned(ev, p) })
	case *events.TenderCancelled:
		return w.tenderChange(ctx, ev, p.TenderID, nil, func(t *tender.Tender) { t.Cancel(ev, p) })
	case *events.AdmittedWithReserve:
		return w.tenderChange(ctx, ev, p.TenderID, func(g *gap.Gap) bool {
			return g.Kind == events.KindContribution && g.LotID == p.LotID && g.OperatorFiscalCode() == p.Operator.FiscalCode
		}, func(t *tender.Tender) { t.Admitted(ev, p) })
	case *events.ContributionPaid:
		return w.tenderChange(ctx, ev, p.TenderID, func(g *gap.Gap) bool {
			return g.Kind == events.KindContribution && g.LotID == p.LotID && g.OperatorFiscalCode() == p.OperatorFiscalCode
		}, func(t *tender.Tender) { t.Paid(ev, p) })
	}
	return &events.InvalidError{Reason: events.ReasonUnknownType, Field: "type", Msg: string(ev.Type)}
}

// tenderChange merges an event into its tender record, then brings the
// gaps it affects (those matching only, or all if only is nil) in line.
func (w *Worker) tenderChange(ctx context.Context, ev *events.Event, tenderID string, only func(*gap.Gap) bool, fn func(*tender.Tender)) error {
	t, rev, created, err := w.updateTender(ctx, tenderID, fn)
	if err != nil {
		return err
	}
	specs := t.Gaps(w.tenderServices())
	todo := specs[:0:0]
	for _, spec := range specs {
		if only == nil || only(&spec) {
			todo = append(todo, spec)
		}
	}
	// A tender this call created has no gaps stored yet: they are created
	// without being read first.
	absent := created
	if len(todo) == 1 {
		if err := w.syncGapNew(ctx, todo[0].Key, &todo[0], rev, absent); err != nil {
			return err
		}
		return w.advise(ctx, t, w.service)
	}
	// Gaps are independent records: bring them in line concurrently.
	var (
		wg       sync.WaitGroup
		sem      = make(chan struct{}, 8)
		firstErr error
		mu       sync.Mutex
	)
	for i := range todo {
		sem <- struct{}{}
		wg.Add(1)
		go func(spec *gap.Gap) {
			defer func() { <-sem; wg.Done() }()
			if err := w.syncGapNew(ctx, spec.Key, spec, rev, absent); err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = fmt.Errorf("gap %s: %w", spec.Key, err)
				}
				mu.Unlock()
			}
		}(&todo[i])
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	w.logEvent(zerolog.DebugLevel, ev).Int("gaps", len(todo)).Msg("event applied")
	return w.advise(ctx, t, w.service)
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
	if unverified(code) {
		w.metrics.cigUnverified()
		w.log.Warn().Str("tender_id", tenderID).Str("lot_id", lotID).Str("cig", code).
			Msg("CIG accepted without checking its check digit: ANAC publishes none for the V and W families")
	}
}

// portalChange records a service going down or up and, once it is up,
// schedules the restoration's fan-out after settle.
func (w *Worker) portalChange(ctx context.Context, ev *events.Event, p *events.PortalChange) error {
	services := p.Services
	if len(services) == 0 {
		services = w.opts.Services
	}
	at := p.At
	if at.IsZero() {
		at = ev.Time
	}
	up := ev.Type == events.TypePortalUp
	for _, name := range services {
		svc, err := w.updateService(ctx, name, outage.Transition{At: at, Up: up, Notice: p.Notice})
		if err != nil {
			return err
		}
		log := w.log.Info().Str("service", name).Bool("up", svc.Up()).Time("at", at)
		if svc.Up() {
			ready, _ := svc.ReadyAt(w.opts.Policy.Settle)
			when := later(ready, w.now())
			if err := w.schedule(ctx, passKey(name, 1), when); err != nil {
				return err
			}
			log = log.Time("up_since", svc.UpSince()).Time("reminders_from", when)
		}
		log.Msg("service state")
	}
	return nil
}

func (w *Worker) updateService(ctx context.Context, name string, tr outage.Transition) (*outage.Service, error) {
	for range maxCASRetries {
		svc, rev, err := w.loadService(ctx, name)
		if err != nil {
			return nil, err
		}
		if !svc.Apply(tr) {
			w.svcs.put(svc, rev)
			return svc, nil
		}
		nrev, err := putJSON(ctx, w.res.state, serviceKey(name), svc, rev)
		if errors.Is(err, errConflict) {
			w.metrics.conflict()
			continue
		}
		if err == nil {
			w.svcs.put(svc, nrev)
		}
		return svc, err
	}
	return nil, fmt.Errorf("service %s: %w after %d attempts", name, errConflict, maxCASRetries)
}
