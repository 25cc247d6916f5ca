package worker

import (
	"github.com/rs/zerolog"

	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/gap"
	"github.com/promemoria/promemoria/tender"
)

// kind is how the worker handles one type of input event: the one table
// that says which record an event belongs to, what it changes and how it is
// logged. A new event type is one entry here.
type kind struct {
	// tender returns the tender the event is about; "" for an event about
	// services.
	tender func(p any) string
	// apply merges the event into its tender record. first is true the
	// first time the event is seen: what looks wrong in it without being
	// a reason to reject it is logged and counted then only.
	apply func(w *Worker, t *tender.Tender, ev *events.Event, first bool)
	// only selects the tender's gaps the event can change; nil: all.
	only func(p any) func(*gap.Gap) bool
	// log adds the event's fields to a log line.
	log func(l *zerolog.Event, p any) *zerolog.Event
}

// tenderKind builds the kind of an event about a tender, whose payload is
// a *P.
func tenderKind[P any](id func(*P) string, apply func(w *Worker, t *tender.Tender, ev *events.Event, p *P, first bool),
	only func(*P) func(*gap.Gap) bool, log func(*zerolog.Event, *P) *zerolog.Event) kind {
	k := kind{
		tender: func(p any) string { return id(p.(*P)) },
		apply: func(w *Worker, t *tender.Tender, ev *events.Event, first bool) {
			apply(w, t, ev, ev.Payload.(*P), first)
		},
		log: func(l *zerolog.Event, p any) *zerolog.Event { return log(l.Str("tender_id", id(p.(*P))), p.(*P)) },
	}
	if only != nil {
		k.only = func(p any) func(*gap.Gap) bool { return only(p.(*P)) }
	}
	return k
}

// kinds is the table of input events.
var kinds = map[events.Type]kind{
	events.TypeTenderPublished: tenderKind(
		func(p *events.TenderPublished) string { return p.TenderID },
		func(w *Worker, t *tender.Tender, ev *events.Event, p *events.TenderPublished, first bool) {
			if first {
				w.warnTender(ev, p)
			}
			t.Published(ev, p, w.opts.DefaultCIGService, validCIG)
		},
		nil,
		func(l *zerolog.Event, p *events.TenderPublished) *zerolog.Event { return l.Int("lots", len(p.Lots)) },
	),
	events.TypeCIGAssigned: tenderKind(
		func(p *events.CIGAssigned) string { return p.TenderID },
		func(w *Worker, t *tender.Tender, ev *events.Event, p *events.CIGAssigned, first bool) {
			// Decode has already normalised the CIG and checked its check
			// digits. The lot's CIG gap closes, and its bidders'
			// contribution gaps can now be reminded: the CIG identifies
			// their payment.
			if first {
				w.checkUnverified(p.TenderID, p.LotID, p.CIG)
			}
			t.CIGAssigned(ev, p)
		},
		func(p *events.CIGAssigned) func(*gap.Gap) bool {
			return func(g *gap.Gap) bool { return g.LotID == p.LotID }
		},
		func(l *zerolog.Event, p *events.CIGAssigned) *zerolog.Event {
			return l.Str("lot_id", p.LotID).Str("cig", p.CIG)
		},
	),
	events.TypeTenderCancelled: tenderKind(
		func(p *events.TenderCancelled) string { return p.TenderID },
		func(_ *Worker, t *tender.Tender, ev *events.Event, p *events.TenderCancelled, _ bool) {
			t.Cancel(ev, p)
		},
		nil,
		func(l *zerolog.Event, _ *events.TenderCancelled) *zerolog.Event { return l },
	),
	events.TypeAdmittedWithReserve: tenderKind(
		func(p *events.AdmittedWithReserve) string { return p.TenderID },
		func(_ *Worker, t *tender.Tender, ev *events.Event, p *events.AdmittedWithReserve, _ bool) {
			t.Admitted(ev, p)
		},
		func(p *events.AdmittedWithReserve) func(*gap.Gap) bool {
			return func(g *gap.Gap) bool {
				return g.Kind == events.KindContribution && g.LotID == p.LotID && g.OperatorFiscalCode() == p.Operator.FiscalCode
			}
		},
		func(l *zerolog.Event, p *events.AdmittedWithReserve) *zerolog.Event {
			return l.Str("lot_id", p.LotID).Str("operator_fiscal_code", p.Operator.FiscalCode)
		},
	),
	events.TypeContributionPaid: tenderKind(
		func(p *events.ContributionPaid) string { return p.TenderID },
		func(_ *Worker, t *tender.Tender, ev *events.Event, p *events.ContributionPaid, _ bool) { t.Paid(ev, p) },
		func(p *events.ContributionPaid) func(*gap.Gap) bool {
			return func(g *gap.Gap) bool {
				return g.Kind == events.KindContribution && g.LotID == p.LotID && g.OperatorFiscalCode() == p.OperatorFiscalCode
			}
		},
		func(l *zerolog.Event, p *events.ContributionPaid) *zerolog.Event {
			return l.Str("lot_id", p.LotID).Str("operator_fiscal_code", p.OperatorFiscalCode)
		},
	),
	events.TypePortalDown: portalKind,
	events.TypePortalUp:   portalKind,
}

// portalKind is the kind of portal.down and portal.up: they change
// services, not tenders (see portal.go).
var portalKind = kind{
	tender: func(any) string { return "" },
	log: func(l *zerolog.Event, p any) *zerolog.Event {
		return l.Strs("services", p.(*events.PortalChange).Services)
	},
}

// logEvent starts a log line about ev with its stable fields.
func (w *Worker) logEvent(level zerolog.Level, ev *events.Event) *zerolog.Event {
	l := w.log.WithLevel(level).Str("event_id", ev.ID).Str("event_source", ev.Source).Str("type", string(ev.Type))
	if k, ok := kinds[ev.Type]; ok {
		l = k.log(l, ev.Payload)
	}
	return l
}
