package message

import (
	"time"

	"github.com/promemoria/promemoria/events"
)

// Kind names a message kind; each kind has one template file per language,
// <lang>/<kind>.tmpl (it/reminder.cig.tmpl, en/reminder.cig.tmpl…).
type Kind string

// The message kinds promemoria writes.
const (
	KindReminderCIG          Kind = "reminder.cig"
	KindReminderContribution Kind = "reminder.contribution"
	KindEscalation           Kind = "reminder.escalation"
	KindResolved             Kind = "reminder.resolved"
	KindAdvice               Kind = "advice.deadline_extension"
)

// Kinds lists every kind, in the order documentation lists them.
var Kinds = []Kind{KindReminderCIG, KindReminderContribution, KindEscalation, KindResolved, KindAdvice}

// Tender is what every message says about the tender.
type Tender struct {
	ID    string
	Title string
	// Authority is the contracting authority's name; empty if unknown.
	Authority string
	RUP       events.Person
	// PublishedAt and OfferDeadline are zero if the tender is not known
	// yet (a bid can arrive before its tender).
	PublishedAt   time.Time
	OfferDeadline time.Time
}

// Gap is what a gap's messages say about it.
type Gap struct {
	Tender
	// Kind is events.KindCIG or events.KindContribution.
	Kind  events.Kind
	LotID string
	// CIG is the lot's CIG, empty while it is missing.
	CIG string
	// Operator is the bidder, for contribution gaps.
	Operator *events.Operator
	// Service is the id of the ANAC service the gap waits for (pcp,
	// smartcig, simog, payments…); the template function "service" gives
	// its public name.
	Service string
	// Deadline is the offer deadline (CIG gap) or the payment term set by
	// the authority (contribution gap); zero if none.
	Deadline time.Time
	// AmountCents is the contribution owed (contribution gaps), valid only
	// if AmountKnown; ContributionTable names the schedule it comes from.
	AmountCents       int64
	AmountKnown       bool
	ContributionTable string
}

// Reminder is the data of reminder.cig and reminder.contribution.
type Reminder struct {
	Gap
	// Sequence is 1 for the first reminder, 2 for the first repeat…
	Sequence int
	// Restored is when the service came back after its latest outage;
	// zero if it was never reported down (then the text must not say it is
	// "available again").
	Restored time.Time
	// Notice is ANAC's announcement carried by the outage's events, if any.
	Notice string
}

// Escalation is the data of reminder.escalation: a gap still open close to
// (or past) its deadline, sent to the RUP.
type Escalation struct {
	Gap
	// Now is when the escalation is written; Passed is true if the
	// deadline is already past.
	Now    time.Time
	Passed bool
	// RemindersSent counts the reminders sent before.
	RemindersSent int
	// ServiceDown is true while the service the gap waits for is still
	// down (since DownSince); Notice is ANAC's announcement, if any.
	ServiceDown bool
	DownSince   time.Time
	Notice      string
	// WaitingForCIG is true for a contribution gap whose lot has no CIG
	// yet: the bidder cannot pay until the RUP acquires it.
	WaitingForCIG bool
	// LegalBasis is the Italian citation of the rule that lets the
	// authority suspend or extend the offer deadline for a platform
	// malfunction ("art. 25, comma 2, d.lgs. 36/2023" or "art. 79, comma
	// 5-bis, d.lgs. 50/2016"); the templates quote the rule of the old
	// code for the latter and the new code's for anything else, an empty
	// citation included. The template function "basis" renders it in the
	// template's language, the new code's by its third sentence ("art. 25,
	// comma 2, terzo periodo, d.lgs. 36/2023").
	LegalBasis string
}

// Resolved is the data of reminder.resolved.
type Resolved struct {
	Gap
	RemindersSent int
	// Resolution says what closed the gap: By is events.TypeCIGAssigned
	// (CIG in Resolution.CIG), events.TypeContributionPaid (receipt in
	// Resolution.Receipt), events.TypeTenderCancelled (reason in
	// Resolution.Reason) or events.TypeTenderPublished (the lot turned out
	// to be exempt from the contribution).
	Resolution events.Resolution
	// CIGUnverified is true when the CIG belongs to a family (V, W) whose
	// check digit ANAC does not publish: accepted on format alone.
	CIGUnverified bool
	// ToRUP is true when a contribution gap's notice goes to the RUP rather
	// than to the bidder: the bidder was never reminded (the gap waited for
	// the lot's CIG), only the RUP was warned. A CIG gap's notice always
	// goes to the RUP.
	ToRUP bool
}

// Outage is one outage of an ANAC service, as the advice lists it.
type Outage = events.OutageSpan

// Advice is the data of advice.deadline_extension: the offer period of a
// tender overlapped outages of services that bidders need; the RUP may
// suspend or extend the offer deadline.
type Advice struct {
	Tender
	// Deadline is the current offer deadline; Proposed is Deadline plus
	// Overlap, moved to the next working day at the same time if it falls
	// on a Saturday, Sunday, holiday or closure day.
	Deadline time.Time
	Proposed time.Time
	// Overlap is the union of the outages' overlaps with the offer period.
	Overlap time.Duration
	Outages []Outage
	// LegalBasis is the Italian citation (see Escalation.LegalBasis);
	// empty, the advice quotes the rule of d.lgs. 36/2023.
	LegalBasis string
}
