package worker

import (
	"fmt"
	"time"

	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/gap"
	"github.com/promemoria/promemoria/outage"
)

// rome is where the deadlines are read; if the time zone database is
// missing the messages fall back to UTC.
var rome = func() *time.Location {
	if l, err := time.LoadLocation("Europe/Rome"); err == nil {
		return l
	}
	return time.UTC
}()

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.In(rome).Format("02/01/2006 15:04")
}

func euro(cents int64) string { return fmt.Sprintf("%d,%02d €", cents/100, cents%100) }

func reminderMessage(g *gap.Gap, seq int) events.Message {
	nth := ""
	if seq > 1 {
		nth = fmt.Sprintf(" (sollecito n. %d)", seq)
	}
	nthEN := ""
	if seq > 1 {
		nthEN = fmt.Sprintf(" (reminder no. %d)", seq)
	}
	switch g.Kind {
	case events.KindCIG:
		return events.Message{
			IT: fmt.Sprintf("Gentile %s, il servizio ANAC %s è di nuovo disponibile: acquisisca il CIG del lotto %s della gara %s%s, pubblicata con CIG \"in fase di acquisizione\", e integri la pubblicazione trasmettendo i dati ad ANAC%s. Termine offerte: %s.",
				g.RUP.Name, g.Service, g.LotID, g.TenderID, quotedTitle(g), nth, fmtTime(g.Deadline)),
			EN: fmt.Sprintf("Dear %s, the ANAC service %s is available again: acquire the CIG of lot %s of tender %s%s, published with the CIG \"being acquired\", and complete the publication by sending its data to ANAC%s. Offer deadline: %s.",
				g.RUP.Name, g.Service, g.LotID, g.TenderID, quotedTitle(g), nthEN, fmtTime(g.Deadline)),
		}
	default:
		amount, amountEN := "", ""
		if g.ContributionCents > 0 {
			amount = " di " + euro(g.ContributionCents)
			amountEN = " of " + euro(g.ContributionCents)
		}
		by, byEN := "", ""
		if !g.Deadline.IsZero() {
			by = " entro il " + fmtTime(g.Deadline)
			byEN = " by " + fmtTime(g.Deadline)
		}
		name := ""
		if g.Operator != nil {
			name = g.Operator.Name
		}
		return events.Message{
			IT: fmt.Sprintf("Gentile %s, la piattaforma dei pagamenti ANAC (%s) è di nuovo disponibile: regolarizzi il pagamento del contributo ANAC%s per il lotto %s della gara %s%s, a cui è stato ammesso con riserva%s%s. Conservi la ricevuta pagoPA.",
				name, g.Service, amount, g.LotID, g.TenderID, quotedTitle(g), by, nth),
			EN: fmt.Sprintf("Dear %s, the ANAC payments platform (%s) is available again: pay the ANAC contribution%s for lot %s of tender %s%s, to which you were admitted with reserve%s%s. Keep the pagoPA receipt.",
				name, g.Service, amountEN, g.LotID, g.TenderID, quotedTitle(g), byEN, nthEN),
		}
	}
}

func escalationMessage(g *gap.Gap, svc *outage.Service, now time.Time) events.Message {
	what, whatEN := fmt.Sprintf("il CIG del lotto %s", g.LotID), fmt.Sprintf("the CIG of lot %s", g.LotID)
	if g.Kind == events.KindContribution {
		op := g.OperatorFiscalCode()
		if g.Operator != nil && g.Operator.Name != "" {
			op = g.Operator.Name + " (" + op + ")"
		}
		what = fmt.Sprintf("il contributo ANAC dell'operatore %s ammesso con riserva al lotto %s", op, g.LotID)
		whatEN = fmt.Sprintf("the ANAC contribution of operator %s, admitted with reserve to lot %s,", op, g.LotID)
	}
	when, whenEN := "scade il "+fmtTime(g.Deadline), "falls on "+fmtTime(g.Deadline)
	if !now.Before(g.Deadline) {
		when, whenEN = "è scaduto il "+fmtTime(g.Deadline), "passed on "+fmtTime(g.Deadline)
	}
	down, downEN := "", ""
	if !svc.Up() {
		down = fmt.Sprintf(" Il servizio ANAC %s è ancora non disponibile: valuti la sospensione o la proroga del termine (art. 25, c. 2, d.lgs. 36/2023).", g.Service)
		downEN = fmt.Sprintf(" The ANAC service %s is still unavailable: consider suspending or extending the term (art. 25(2) Legislative Decree 36/2023).", g.Service)
	}
	return events.Message{
		IT: fmt.Sprintf("Attenzione: per la gara %s%s manca ancora %s e il termine %s.%s", g.TenderID, quotedTitle(g), what, when, down),
		EN: fmt.Sprintf("Warning: for tender %s%s, %s is still missing and the term %s.%s", g.TenderID, quotedTitle(g), whatEN, whenEN, downEN),
	}
}

func resolvedMessage(g *gap.Gap) events.Message {
	how, howEN := "risolto", "resolved"
	if r := g.Resolution; r != nil {
		switch r.By {
		case events.TypeCIGAssigned:
			how, howEN = "CIG "+r.CIG+" acquisito", "CIG "+r.CIG+" assigned"
		case events.TypeContributionPaid:
			how, howEN = "contributo pagato, ricevuta "+r.Receipt, "contribution paid, receipt "+r.Receipt
		case events.TypeTenderCancelled:
			how, howEN = "gara annullata", "tender cancelled"
		}
	}
	subject, subjectEN := "CIG del lotto "+g.LotID, "CIG of lot "+g.LotID
	if g.Kind == events.KindContribution {
		subject = fmt.Sprintf("contributo ANAC di %s per il lotto %s", g.OperatorFiscalCode(), g.LotID)
		subjectEN = fmt.Sprintf("ANAC contribution of %s for lot %s", g.OperatorFiscalCode(), g.LotID)
	}
	return events.Message{
		IT: fmt.Sprintf("Gara %s%s: %s regolarizzato (%s). Nessun altro sollecito sarà inviato.", g.TenderID, quotedTitle(g), subject, how),
		EN: fmt.Sprintf("Tender %s%s: %s regularised (%s). No further reminders will be sent.", g.TenderID, quotedTitle(g), subjectEN, howEN),
	}
}

func quotedTitle(g *gap.Gap) string {
	if g.Title == "" {
		return ""
	}
	return " (\"" + g.Title + "\")"
}
