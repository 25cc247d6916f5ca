package message

import (
	"time"

	"github.com/promemoria/promemoria/calendar"
	"github.com/promemoria/promemoria/events"
)

// sample is one built-in datum a template must render; Load executes every
// template on every sample of its kind, and the golden-file tests keep
// their texts (message/testdata/golden/<kind>.<name>.<lang>.txt).
type sample struct {
	name string
	data any
}

// rome is Europe/Rome: the zone texts are written in by default and the
// zone of the samples' times.
var rome = calendar.Rome()

// romeTime is a time in Rome.
func romeTime(year int, month time.Month, day, hour, minute int) time.Time {
	return time.Date(year, month, day, hour, minute, 0, 0, rome)
}

// The samples' cast: the May 2021 story of the seed article (a tender
// published with its CIG "in fase di acquisizione" while Smart CIG was
// down, bidders admitted "con riserva di regolarizzazione" while payments
// were down) and the PCP suspension of November 2025.
var (
	sampleRUP     = events.Person{Name: "Anna Bianchi", Email: "anna.bianchi@comune.borgoalto.example"}
	sampleRUP2025 = events.Person{Name: "Marco Ferri", Email: "marco.ferri@valleserena.example"}

	sampleCompany = &events.Operator{FiscalCode: "01234567890", Name: "Edilstrade S.r.l.", Email: "edilstrade@pec.example"}
	samplePerson  = &events.Operator{FiscalCode: "VRDGLI80A41H501S", Name: "Giulia Verdi", Email: "giulia.verdi@pec.example"}

	// tenderSmartCIG: an urgent supply under 40,000 €, published during
	// the outage without its CIG.
	tenderSmartCIG = Tender{
		ID: "2021/045", Title: "Fornitura urgente di materiale sanitario per il centro vaccinale",
		Authority: "Comune di Borgoalto", RUP: sampleRUP,
		PublishedAt: romeTime(2021, time.May, 4, 10, 0), OfferDeadline: romeTime(2021, time.May, 14, 12, 0),
	}
	// tenderWorks: works whose offer deadline fell during the outage; lot
	// 2 (450,000 €) owes 35 € under the 2021 schedule.
	tenderWorks = Tender{
		ID: "2021/031", Title: "Lavori di manutenzione straordinaria delle strade comunali",
		Authority: "Comune di Borgoalto", RUP: sampleRUP,
		PublishedAt: romeTime(2021, time.April, 19, 9, 0), OfferDeadline: romeTime(2021, time.May, 4, 12, 0),
	}
	// tenderSchool: works whose lot still lacks its CIG.
	tenderSchool = Tender{
		ID: "2021/052", Title: "Lavori di adeguamento sismico della scuola secondaria di primo grado",
		Authority: "Comune di Borgoalto", RUP: sampleRUP,
		PublishedAt: romeTime(2021, time.May, 6, 9, 0), OfferDeadline: romeTime(2021, time.May, 13, 12, 0),
	}
	// tenderCanteen: a 2025 tender whose offer period overlapped the PCP
	// suspension of 21-25 November 2025.
	tenderCanteen = Tender{
		ID: "BR-2025-118", Title: "Servizio di refezione scolastica 2026-2028",
		Authority: "Unione dei Comuni della Valle Serena", RUP: sampleRUP2025,
		PublishedAt: romeTime(2025, time.November, 10, 9, 0), OfferDeadline: romeTime(2025, time.November, 26, 12, 0),
	}
	// tenderUnknown: what is known of a tender with neither title nor
	// authority, and a RUP without a name.
	tenderUnknown = Tender{ID: "T-0001"}

	basis2023 = "art. 25, comma 2, d.lgs. 36/2023"
	basis2016 = "art. 79, comma 5-bis, d.lgs. 50/2016"

	noticeDown2021 = "A causa di un guasto al sistema di alimentazione elettrica della sede dell'Autorità, i servizi online sono temporaneamente non disponibili."
	noticeUp2021   = "I servizi dell'Autorità sono stati ripristinati; permangono difficoltà nella generazione dello Smart CIG."
	noticeSmartCIG = "Tutti i servizi dell'Autorità, compresa la generazione dello Smart CIG, sono nuovamente disponibili."
	noticePCP      = "Sospensione dei servizi di interoperabilità della PCP dalle ore 8:00 di venerdì 21 novembre alle ore 8:00 di martedì 25 novembre 2025 per la migrazione in cloud."
)

// gapCIG is the Smart CIG lot of the 2021 supply.
var gapCIG = Gap{
	Tender: tenderSmartCIG, Kind: events.KindCIG, LotID: "1", Service: "smartcig",
	Deadline: tenderSmartCIG.OfferDeadline,
}

// gapPaid is lot 2 of the 2021 works: its bidders could not pay.
var gapPaid = Gap{
	Tender: tenderWorks, Kind: events.KindContribution, LotID: "2", CIG: "918052266A",
	Operator: sampleCompany, Service: "payments", Deadline: romeTime(2021, time.May, 12, 12, 0),
	AmountCents: 3500, AmountKnown: true, ContributionTable: "anac-2021",
}

// samples lists the built-in data of every kind: every branch of the
// embedded templates is taken by at least one of them.
var samples = map[Kind][]sample{
	KindReminderCIG: {
		{"first", Reminder{
			Gap: gapCIG, Sequence: 1, Restored: romeTime(2021, time.May, 7, 18, 0), Notice: noticeSmartCIG,
		}},
		{"repeat_never_down", Reminder{Gap: gapCIG, Sequence: 2}},
		{"minimal", Reminder{
			Gap: Gap{Tender: tenderUnknown, Kind: events.KindCIG, LotID: "1", Service: "pcp"}, Sequence: 3,
		}},
	},
	KindReminderContribution: {
		{"first_company", Reminder{
			Gap: gapPaid, Sequence: 1, Restored: romeTime(2021, time.May, 5, 9, 0), Notice: noticeUp2021,
		}},
		{"repeat_person_amount_unknown", Reminder{
			Gap: with(gapPaid, func(g *Gap) {
				g.Operator, g.AmountCents, g.AmountKnown, g.ContributionTable = samplePerson, 0, false, ""
			}),
			Sequence: 2,
		}},
		{"no_term", Reminder{
			Gap: Gap{
				Tender: tenderUnknown, Kind: events.KindContribution, LotID: "3", CIG: "B00012EADB",
				Operator: sampleCompany, Service: "payments", AmountCents: 16500, AmountKnown: true,
				ContributionTable: "anac-2023",
			},
			Sequence: 1,
		}},
	},
	KindEscalation: {
		{"cig_down", Escalation{
			Gap: Gap{
				Tender: tenderCanteen, Kind: events.KindCIG, LotID: "1", Service: "pcp",
				Deadline: tenderCanteen.OfferDeadline,
			},
			Now: romeTime(2025, time.November, 24, 9, 0), RemindersSent: 2,
			ServiceDown: true, DownSince: romeTime(2025, time.November, 21, 8, 0), Notice: noticePCP,
			LegalBasis: basis2023,
		}},
		{"cig_passed_down_2021", Escalation{
			Gap: gapCIG, Now: romeTime(2021, time.May, 14, 12, 0), Passed: true, RemindersSent: 1,
			ServiceDown: true, DownSince: romeTime(2021, time.May, 13, 9, 30), LegalBasis: basis2016,
		}},
		{"cig_passed_down_2025", Escalation{
			Gap: Gap{
				Tender: tenderUnknown, Kind: events.KindCIG, LotID: "2", Service: "pcp",
				Deadline: romeTime(2025, time.November, 24, 12, 0),
			},
			Now: romeTime(2025, time.November, 24, 12, 0), Passed: true, RemindersSent: 1,
			ServiceDown: true, DownSince: romeTime(2025, time.November, 21, 8, 0), Notice: noticePCP,
			LegalBasis: basis2023,
		}},
		{"cig_minimal", Escalation{
			Gap: Gap{
				Tender: tenderUnknown, Kind: events.KindCIG, LotID: "1", Service: "pcp",
				Deadline: romeTime(2025, time.December, 1, 12, 0),
			},
			Now: romeTime(2025, time.November, 28, 9, 0),
		}},
		{"contribution_waiting_for_cig", Escalation{
			Gap: Gap{
				Tender: tenderSchool, Kind: events.KindContribution, LotID: "1", Operator: sampleCompany,
				Service: "payments", Deadline: romeTime(2021, time.May, 21, 12, 0), AmountCents: 14000, AmountKnown: true,
				ContributionTable: "anac-2021",
			},
			Now: romeTime(2021, time.May, 19, 9, 0), WaitingForCIG: true, LegalBasis: basis2016,
		}},
		{"contribution_passed_down", Escalation{
			Gap: with(gapPaid, func(g *Gap) { g.Operator = samplePerson }),
			Now: romeTime(2021, time.May, 12, 12, 0), Passed: true, RemindersSent: 2,
			ServiceDown: true, DownSince: romeTime(2021, time.May, 11, 16, 0), Notice: noticeDown2021,
			LegalBasis: basis2016,
		}},
		{"contribution_waiting_for_cig_down", Escalation{
			Gap: Gap{
				Tender: tenderSchool, Kind: events.KindContribution, LotID: "1", Operator: samplePerson,
				Service: "payments", Deadline: romeTime(2021, time.May, 21, 12, 0),
			},
			Now: romeTime(2021, time.May, 19, 9, 0), WaitingForCIG: true, ServiceDown: true, LegalBasis: basis2016,
		}},
	},
	KindResolved: {
		{"cig_assigned", Resolved{
			Gap: with(gapCIG, func(g *Gap) { g.CIG = "Z3B3885F48" }), RemindersSent: 2,
			Resolution: events.Resolution{By: events.TypeCIGAssigned, At: romeTime(2021, time.May, 10, 11, 20), CIG: "Z3B3885F48"},
		}},
		{"cig_unverified", Resolved{
			Gap:           Gap{Tender: tenderCanteen, Kind: events.KindCIG, LotID: "1", Service: "pcp", Deadline: tenderCanteen.OfferDeadline},
			RemindersSent: 1,
			Resolution:    events.Resolution{By: events.TypeCIGAssigned, At: romeTime(2025, time.November, 25, 10, 5), CIG: "V00A1B2C3D"},
			CIGUnverified: true,
		}},
		{"contribution_paid", Resolved{
			Gap: gapPaid, RemindersSent: 2,
			Resolution: events.Resolution{By: events.TypeContributionPaid, At: romeTime(2021, time.May, 10, 15, 45), Receipt: "01210000001234567"},
		}},
		{"cig_cancelled", Resolved{
			Gap: gapCIG, RemindersSent: 1,
			Resolution: events.Resolution{
				By: events.TypeTenderCancelled, At: romeTime(2021, time.May, 11, 9, 0),
				Reason: "errore materiale negli atti di gara",
			},
		}},
		{"contribution_paid_rup", Resolved{
			Gap: gapPaid, ToRUP: true,
			Resolution: events.Resolution{By: events.TypeContributionPaid, At: romeTime(2021, time.May, 10, 15, 45), Receipt: "01210000001234567"},
		}},
		{"contribution_cancelled", Resolved{
			Gap: with(gapPaid, func(g *Gap) { g.Operator = samplePerson }), RemindersSent: 1,
			Resolution: events.Resolution{By: events.TypeTenderCancelled, At: romeTime(2021, time.May, 11, 9, 0)},
		}},
		{"exempt", Resolved{
			Gap: Gap{
				Tender: tenderSchool, Kind: events.KindContribution, LotID: "2", CIG: "876543274F",
				Operator: sampleCompany, Service: "payments",
			},
			Resolution: events.Resolution{By: events.TypeTenderPublished, At: tenderSchool.PublishedAt},
		}},
		{"unknown_resolution", Resolved{
			Gap: Gap{Tender: tenderUnknown, Kind: events.KindCIG, LotID: "1", Service: "pcp"},
		}},
	},
	KindAdvice: {
		{"two_outages", Advice{
			Tender: tenderCanteen, Deadline: tenderCanteen.OfferDeadline,
			// 26/11 12:00 + 4 days 2 hours is Sunday 30/11: moved to Monday.
			Proposed: romeTime(2025, time.December, 1, 14, 0), Overlap: 4*24*time.Hour + 2*time.Hour,
			Outages: []Outage{
				{Service: "payments", From: romeTime(2025, time.November, 20, 16, 0), To: romeTime(2025, time.November, 20, 18, 0)},
				{Service: "pcp", From: romeTime(2025, time.November, 21, 8, 0), To: romeTime(2025, time.November, 25, 8, 0)},
			},
			LegalBasis: basis2023,
		}},
		{"overlapping_outages_2021", Advice{
			Tender: tenderSmartCIG, Deadline: tenderSmartCIG.OfferDeadline,
			// The offer period opened on 04/05 10:00; Smart CIG came back
			// on 07/05 18:00: 3 days 8 hours.
			Proposed: romeTime(2021, time.May, 17, 20, 0), Overlap: 3*24*time.Hour + 8*time.Hour,
			Outages: []Outage{
				{Service: "smartcig", From: romeTime(2021, time.May, 3, 8, 30), To: romeTime(2021, time.May, 7, 18, 0)},
				{Service: "payments", From: romeTime(2021, time.May, 3, 8, 30), To: romeTime(2021, time.May, 5, 9, 0)},
			},
			LegalBasis: basis2016,
		}},
		{"minimal", Advice{
			Tender: tenderUnknown, Deadline: romeTime(2025, time.December, 1, 12, 0),
			Proposed: romeTime(2025, time.December, 1, 13, 30), Overlap: 90 * time.Minute,
			Outages: []Outage{{Service: "fvoe", From: romeTime(2025, time.November, 27, 10, 0), To: romeTime(2025, time.November, 27, 11, 30)}},
		}},
	},
}

// with returns a copy of g changed by f.
func with(g Gap, f func(*Gap)) Gap {
	f(&g)
	return g
}
