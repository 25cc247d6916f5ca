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
	ReminderID         string    `json:"reminder_id"`
	Kind               Kind      `json:"kind"`
	TenderID           string    `json:"tender_id"`
	TenderTitle        string    `json:"tender_title,omitempty"`
	LotID              string    `json:"lot_id"`
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
	// ContributionCents is the contribution owed, where the table knows it.
	ContributionCents int64     `json:"contribution_cents,omitempty"`
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
	Message            Message    `json:"message"`
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
