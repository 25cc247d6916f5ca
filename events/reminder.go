package events

import "time"

// Kind is the kind of gap a reminder is about.
type Kind string

// The kinds of gap promemoria remembers.
const (
	// KindCIG is a lot published without its CIG.
	KindCIG Kind = "cig"
	// KindContribution is a bid admitted "con riserva di regolarizzazione"
	// whose ANAC contribution is unpaid.
	KindContribution Kind = "contribution"
)

// Outage is a period during which an ANAC service was down.
type Outage struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to,omitzero"`
}

// Message is a human text in Italian and English.
type Message struct {
	IT string `json:"it"`
	EN string `json:"en"`
}

// Reminder is the data of reminder.cig, reminder.contribution and
// reminder.escalation.
type Reminder struct {
	ReminderID  string `json:"reminder_id"`
	Kind        Kind   `json:"kind"`
	TenderID    string `json:"tender_id"`
	TenderTitle string `json:"tender_title,omitempty"`
	// Authority is the contracting authority, when the tender is known.
	Authority *Authority `json:"authority,omitempty"`
	LotID     string     `json:"lot_id"`
	// CIG is the lot's CIG, when it has one: a contribution reminder is
	// only sent once it has.
	CIG                string    `json:"cig,omitempty"`
	OperatorFiscalCode string    `json:"operator_fiscal_code,omitempty"`
	Operator           *Operator `json:"operator,omitempty"`
	Recipient          Person    `json:"recipient"`
	// CC lists who is informed in copy (the RUP, for contribution reminders).
	CC []Person `json:"cc,omitempty"`
	// Sequence is 1 for a gap's first reminder, then 2, 3 …; an escalation
	// carries the sequence of the reminders sent before it.
	Sequence       int       `json:"sequence"`
	Escalation     bool      `json:"escalation,omitempty"`
	Service        string    `json:"service"`
	ServiceUp      bool      `json:"service_up"`
	ServiceUpSince time.Time `json:"service_up_since,omitzero"`
	Outage         *Outage   `json:"outage,omitempty"`
	Deadline       time.Time `json:"deadline,omitzero"`
	// ContributionCents is the contribution owed, absent when no
	// configured schedule covers the tender's publication date;
	// ContributionTable names the schedule it comes from.
	ContributionCents int64     `json:"contribution_cents,omitempty"`
	ContributionTable string    `json:"contribution_table,omitempty"`
	GapOpenedAt       time.Time `json:"gap_opened_at"`
	Message           Message   `json:"message"`
}

// Resolution says what closed a gap.
type Resolution struct {
	// By is the event type that closed the gap.
	By      Type      `json:"by"`
	At      time.Time `json:"at"`
	CIG     string    `json:"cig,omitempty"`
	Receipt string    `json:"receipt,omitempty"`
	Reason  string    `json:"reason,omitempty"`
	// EventSource and EventID identify the closing event.
	EventSource string `json:"event_source,omitempty"`
	EventID     string `json:"event_id,omitempty"`
}

// Resolved is the data of reminder.resolved.
type Resolved struct {
	ReminderID         string     `json:"reminder_id"`
	Kind               Kind       `json:"kind"`
	TenderID           string     `json:"tender_id"`
	LotID              string     `json:"lot_id"`
	OperatorFiscalCode string     `json:"operator_fiscal_code,omitempty"`
	Recipient          Person     `json:"recipient"`
	CC                 []Person   `json:"cc,omitempty"`
	RemindersSent      int        `json:"reminders_sent"`
	Resolution         Resolution `json:"resolution"`
	// CIGUnverified is true when the CIG that closed the gap belongs to a
	// family (V, W) whose check digit ANAC does not publish: it was
	// accepted on its format alone.
	CIGUnverified bool    `json:"cig_unverified,omitempty"`
	Message       Message `json:"message"`
}

// OutageSpan is one outage of an ANAC service named in an advice.
type OutageSpan struct {
	Service string    `json:"service"`
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
}

// Advice is the data of advice.deadline_extension: the offer period of a
// tender overlapped outages of services its bidders need, and the RUP may
// suspend or extend the offer deadline.
type Advice struct {
	// AdviceID is deterministic (the tender and the outages it counts) and
	// is also the CloudEvents id.
	AdviceID    string     `json:"advice_id"`
	TenderID    string     `json:"tender_id"`
	TenderTitle string     `json:"tender_title,omitempty"`
	Authority   *Authority `json:"authority,omitempty"`
	Recipient   Person     `json:"recipient"`
	PublishedAt time.Time  `json:"published_at"`
	Deadline    time.Time  `json:"deadline"`
	// OverlapSeconds is the union of the outages' overlaps with the offer
	// period, in whole seconds.
	OverlapSeconds int64        `json:"overlap_seconds"`
	Outages        []OutageSpan `json:"outages"`
	// ProposedDeadline is Deadline plus the overlap, moved to the same time
	// of the next working day if it falls on a Saturday, Sunday, holiday or
	// closure day.
	ProposedDeadline time.Time `json:"proposed_deadline"`
	// LegalBasis cites the rule: art. 25, comma 2, d.lgs. 36/2023 for
	// tenders published from 1 July 2023, art. 79, comma 5-bis, d.lgs.
	// 50/2016 before.
	LegalBasis string  `json:"legal_basis"`
	Message    Message `json:"message"`
}

// DeadLetter is the data of a deadletter event: the input that could not be
// processed, byte for byte, and why.
type DeadLetter struct {
	Reason  Reason              `json:"reason"`
	Error   string              `json:"error"`
	Subject string              `json:"subject"`
	Headers map[string][]string `json:"headers,omitempty"`
	Data    []byte              `json:"data"` // base64 in JSON
	// Size is the input's size in bytes. Truncated is true if Data holds
	// only its first bytes (an input too large to fit in a dead letter);
	// SHA256 is then the hex digest of the whole input.
	Size      int    `json:"size"`
	Truncated bool   `json:"truncated,omitempty"`
	SHA256    string `json:"sha256,omitempty"`
	Stream    string `json:"stream,omitempty"`
	Sequence  uint64 `json:"stream_sequence,omitempty"`
	// Deliveries is how many times the message had been delivered.
	Deliveries uint64    `json:"deliveries,omitempty"`
	At         time.Time `json:"at"`
}
