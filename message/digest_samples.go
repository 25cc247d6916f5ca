package message

import (
	"time"

	"github.com/promemoria/promemoria/events"
)

// digestSamples are the built-in data the digest templates must render;
// Load executes them, and the golden-file tests keep their e-mails
// (message/testdata/golden/digest.<name>.txt and .html).
var digestSamples = []sample{
	// The RUP of a tender with three lots published without a CIG during
	// the outage, reminded when Smart CIG came back.
	{"three_lots", Digest{
		Recipient: sampleRUP,
		Items: []DigestItem{
			digestCIG("1", 1), digestCIG("2", 1), digestCIG("3", 2),
		},
	}},
	// The RUP gets a reminder, an escalation and an advice at once.
	{"mixed", Digest{
		Recipient: sampleRUP,
		Items: []DigestItem{
			digestCIG("1", 1),
			{
				Type: events.TypeReminderEscalation, TenderID: tenderSchool.ID, TenderTitle: tenderSchool.Title,
				Authority: tenderSchool.Authority, LotID: "1", Operator: sampleCompany,
				Deadline: romeTime(2021, time.May, 21, 12, 0),
				Text:     events.Message{IT: "Termine in scadenza\n\n(testo della segnalazione)", EN: "Deadline approaching\n\n(text of the escalation)"},
			},
			{
				Type: events.TypeAdviceExtension, TenderID: tenderSmartCIG.ID, TenderTitle: tenderSmartCIG.Title,
				Authority: tenderSmartCIG.Authority, Deadline: tenderSmartCIG.OfferDeadline,
				Text: events.Message{IT: "Proposta di proroga del termine per la presentazione delle offerte\n\n(testo della proposta)", EN: "Proposed extension of the deadline for submitting offers\n\n(text of the proposal)"},
			},
		},
	}},
	// A bidder reminded for two lots of a tender, the RUP in copy.
	{"bidder", Digest{
		Recipient: events.Person{Name: sampleCompany.Name, Email: sampleCompany.Email},
		Operator:  sampleCompany,
		Items: []DigestItem{
			digestPaid("2", "918052266A"), digestPaid("3", "B00012EADB"),
		},
	}},
	// Two reminders of a tender known only by its id, to a RUP without a
	// name.
	{"minimal", Digest{
		Recipient: events.Person{Email: "rup@example.org"},
		Items: []DigestItem{
			{Type: events.TypeReminderCIG, TenderID: "T-0001", LotID: "1", Sequence: 1, Text: events.Message{IT: "Promemoria", EN: "Reminder"}},
			{Type: events.TypeReminderResolved, TenderID: "T-0001", LotID: "2", Text: events.Message{IT: "CIG acquisito", EN: "CIG acquired"}},
		},
	}},
}

// digestCIG is a CIG reminder of a lot of the 2021 supply.
func digestCIG(lot string, seq int) DigestItem {
	head, headEN := "Promemoria", "Reminder"
	if seq > 1 {
		head, headEN = "Sollecito n. 2", "Reminder no. 2"
	}
	return DigestItem{
		Type: events.TypeReminderCIG, TenderID: tenderSmartCIG.ID, TenderTitle: tenderSmartCIG.Title,
		Authority: tenderSmartCIG.Authority, LotID: lot, Sequence: seq, Deadline: tenderSmartCIG.OfferDeadline,
		Text: events.Message{
			IT: head + " – acquisizione del CIG\n\nLotto: " + lot + "\n\n(testo del promemoria)",
			EN: headEN + " – CIG to be acquired\n\nLot: " + lot + "\n\n(text of the reminder)",
		},
	}
}

// digestPaid is a contribution reminder of a lot of the 2021 works.
func digestPaid(lot, cig string) DigestItem {
	return DigestItem{
		Type: events.TypeReminderContribution, TenderID: tenderWorks.ID, TenderTitle: tenderWorks.Title,
		Authority: tenderWorks.Authority, LotID: lot, CIG: cig, Operator: sampleCompany, Sequence: 1,
		Deadline: romeTime(2021, time.May, 12, 12, 0),
		Text: events.Message{
			IT: "Promemoria – versamento del contributo ANAC\n\nLotto: " + lot + "\n\n(testo del promemoria)",
			EN: "Reminder – ANAC contribution to be paid\n\nLot: " + lot + "\n\n(text of the reminder)",
		},
	}
}
