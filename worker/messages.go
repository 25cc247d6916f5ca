package worker

import (
	"errors"
	"fmt"
	"time"

	"github.com/promemoria/promemoria/advice"
	"github.com/promemoria/promemoria/cig"
	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/gap"
	"github.com/promemoria/promemoria/message"
	"github.com/promemoria/promemoria/outage"
)

// This file turns gaps into the data of the message templates; the words
// themselves are in package message.

// render writes the message of kind from data. An overriding template
// that fails on this data gives way to the embedded one: the message goes
// out, and the failure is logged and counted for the operator to fix.
func (w *Worker) render(kind message.Kind, data any) (events.Message, error) {
	m, err := w.opts.Texts.Render(kind, data)
	if errors.Is(err, message.ErrFallback) {
		w.metrics.templateFallback()
		w.log.Error().Err(err).Str("kind", string(kind)).Msg("template failed on this message: the embedded text was sent instead")
		return m, nil
	}
	return m, err
}

// messageGap returns what the texts say about g.
func messageGap(g *gap.Gap) message.Gap {
	return message.Gap{
		Tender: message.Tender{
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

// reminderText writes the reminder with sequence seq about g.
func (w *Worker) reminderText(g *gap.Gap, svc *outage.Service, seq int) (events.Message, error) {
	kind := message.KindReminderCIG
	if g.Kind == events.KindContribution {
		kind = message.KindReminderContribution
	}
	r := message.Reminder{Gap: messageGap(g), Sequence: seq, Restored: restoredAt(g, svc)}
	if !r.Restored.IsZero() {
		// ANAC's notice is about the outage the gap lived through; an older
		// outage's notice would mislead.
		r.Notice = svc.Notice()
	}
	return w.render(kind, r)
}

// escalationText writes the escalation about g to the RUP.
func (w *Worker) escalationText(g *gap.Gap, svc *outage.Service, now time.Time) (events.Message, error) {
	e := message.Escalation{
		Gap: messageGap(g), Now: now, Passed: !now.Before(g.Deadline), RemindersSent: g.Sequence,
		ServiceDown: !svc.Up(), DownSince: svc.DownSince(), WaitingForCIG: g.NeedsCIG(),
		LegalBasis: advice.LegalBasis(g.PublishedAt),
	}
	if e.ServiceDown {
		e.Notice = svc.Notice()
	}
	return w.render(message.KindEscalation, e)
}

// resolvedText writes the notice that g is resolved.
func (w *Worker) resolvedText(g *gap.Gap) (events.Message, error) {
	r := message.Resolved{Gap: messageGap(g), RemindersSent: g.Sequence, ToRUP: g.Sequence == 0}
	if g.Resolution != nil {
		r.Resolution = *g.Resolution
		r.CIGUnverified = unverified(g.Resolution.CIG)
	}
	return w.render(message.KindResolved, r)
}

// adviceText writes the art. 25 advice a about tender t.
func (w *Worker) adviceText(a *advice.Advice, t message.Tender) (events.Message, error) {
	m, err := w.render(message.KindAdvice, message.Advice{
		Tender: t, Deadline: a.Deadline, Proposed: a.Proposed, Overlap: a.Overlap, Outages: a.Outages, LegalBasis: a.LegalBasis,
	})
	if err != nil {
		return m, fmt.Errorf("advice %s: %w", a.ID, err)
	}
	return m, nil
}

// unverified reports whether code is a CIG of a family whose check digit
// ANAC does not publish.
func unverified(code string) bool {
	if code == "" {
		return false
	}
	k, err := cig.Validate(code)
	return err == nil && k == cig.KindUnverified
}
