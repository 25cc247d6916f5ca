package message

import (
	"time"

	"github.com/promemoria/promemoria/advice"
	"github.com/promemoria/promemoria/cig"
	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/gap"
	"github.com/promemoria/promemoria/outage"
)

// This file turns gaps, services and advices into the data of the
// templates: what each message says about them.

// ForGap returns what the texts say about g.
func ForGap(g *gap.Gap) Gap {
	return Gap{
		Tender: Tender{
			ID: g.TenderID, Title: g.Title, Authority: g.Authority.Name, RUP: g.RUP, PublishedAt: g.PublishedAt,
		},
		Kind: g.Kind, LotID: g.LotID, CIG: g.CIG, Operator: g.Operator, Service: g.Service, Deadline: g.Deadline,
		AmountCents: g.ContributionCents, AmountKnown: g.ContributionKnown, ContributionTable: g.ContributionTable,
	}
}

// restoredAt returns when svc came back from an outage that the gap lived
// through; zero if the gap opened while the service was up (or it was
// never down), so that no text says "available again" when it was not.
func restoredAt(g *gap.Gap, svc *outage.Service) time.Time {
	o, ok := svc.LastOutage()
	if !ok || o.To.IsZero() || !svc.Up() || !o.To.After(g.OpenedAt) {
		return time.Time{}
	}
	return o.To
}

// ReminderOf returns the kind and data of reminder seq about g, whose
// service is svc.
func ReminderOf(g *gap.Gap, svc *outage.Service, seq int) (Kind, Reminder) {
	kind := KindReminderCIG
	if g.Kind == events.KindContribution {
		kind = KindReminderContribution
	}
	r := Reminder{Gap: ForGap(g), Sequence: seq, Restored: restoredAt(g, svc)}
	if !r.Restored.IsZero() {
		// ANAC's notice is about the outage the gap lived through; an older
		// outage's notice would mislead.
		r.Notice = svc.Notice()
	}
	return kind, r
}

// EscalationOf returns the data of the escalation about g to the RUP at
// now.
func EscalationOf(g *gap.Gap, svc *outage.Service, now time.Time) Escalation {
	e := Escalation{
		Gap: ForGap(g), Now: now, Passed: !now.Before(g.Deadline), RemindersSent: g.Sequence,
		ServiceDown: !svc.Up(), DownSince: svc.DownSince(), WaitingForCIG: g.NeedsCIG(),
		LegalBasis: advice.LegalBasis(g.PublishedAt),
	}
	if e.ServiceDown {
		e.Notice = svc.Notice()
	}
	return e
}

// ResolvedOf returns the data of the notice that g is resolved.
func ResolvedOf(g *gap.Gap) Resolved {
	r := Resolved{Gap: ForGap(g), RemindersSent: g.Sequence, ToRUP: g.Sequence == 0}
	if g.Resolution != nil {
		r.Resolution = *g.Resolution
		r.CIGUnverified = cig.Unverified(g.Resolution.CIG)
	}
	return r
}

// AdviceOf returns the data of the art. 25 advice a about tender t.
func AdviceOf(a *advice.Advice, t Tender) Advice {
	return Advice{
		Tender: t, Deadline: a.Deadline, Proposed: a.Proposed, Overlap: a.Overlap, Outages: a.Outages, LegalBasis: a.LegalBasis,
	}
}
