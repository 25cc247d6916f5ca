package events

import "time"

// Type is a CloudEvents type: the NATS subject without the configured prefix.
type Type string

// The input event types promemoria consumes.
const (
	TypePortalDown           Type = "portal.down"
	TypePortalUp             Type = "portal.up"
	TypeTenderPublished      Type = "tender.published"
	TypeCIGAssigned          Type = "tender.cig_assigned"
	TypeTenderCancelled      Type = "tender.cancelled"
	TypeAdmittedWithReserve  Type = "bid.admitted_with_reserve"
	TypeContributionPaid     Type = "bid.contribution_paid"
	TypeReminderCIG          Type = "reminder.cig"
	TypeReminderContribution Type = "reminder.contribution"
	TypeReminderEscalation   Type = "reminder.escalation"
	TypeReminderResolved     Type = "reminder.resolved"
	TypeAdviceExtension      Type = "advice.deadline_extension"
	TypeDeadLetter           Type = "deadletter"
)

// InputTypes lists the types the worker consumes, in contract order.
var InputTypes = []Type{
	TypePortalDown, TypePortalUp, TypeTenderPublished, TypeCIGAssigned,
	TypeTenderCancelled, TypeAdmittedWithReserve, TypeContributionPaid,
}

// IsInput reports whether t is a type the worker consumes.
func IsInput(t Type) bool {
	for _, it := range InputTypes {
		if it == t {
			return true
		}
	}
	return false
}

// PortalChange is the data of portal.down and portal.up.
type PortalChange struct {
	// Services lists the ANAC services concerned; empty means all of them.
	Services []string `json:"services,omitempty"`
	// At is when the change happened; zero means the event's time.
	At time.Time `json:"at,omitzero"`
	// Notice is an optional text or URL of ANAC's announcement.
	Notice string `json:"notice,omitempty"`
}

// Authority is a contracting authority (stazione appaltante).
type Authority struct {
	FiscalCode string `json:"fiscal_code"`
	Name       string `json:"name"`
}

// Person is a named recipient with an e-mail (or PEC) address.
type Person struct {
	Name  string `json:"name"`
	Email string `json:"email"`
}

// Lot is one lot of a tender; each lot has its own CIG.
type Lot struct {
	LotID string `json:"lot_id"`
	// CIG is empty while the code is "in fase di acquisizione".
	CIG string `json:"cig,omitempty"`
	// CIGService is the ANAC service that issues this lot's CIG; empty
	// means the configured default.
	CIGService      string `json:"cig_service,omitempty"`
	BaseAmountCents int64  `json:"base_amount_cents"`
}

// TenderPublished is the data of tender.published.
type TenderPublished struct {
	TenderID      string    `json:"tender_id"`
	Title         string    `json:"title"`
	Authority     Authority `json:"authority"`
	RUP           Person    `json:"rup"`
	PublishedAt   time.Time `json:"published_at"`
	OfferDeadline time.Time `json:"offer_deadline"`
	Lots          []Lot     `json:"lots"`
}

// CIGAssigned is the data of tender.cig_assigned.
type CIGAssigned struct {
	TenderID string `json:"tender_id"`
	LotID    string `json:"lot_id"`
	CIG      string `json:"cig"`
}

// TenderCancelled is the data of tender.cancelled.
type TenderCancelled struct {
	TenderID string `json:"tender_id"`
	Reason   string `json:"reason"`
}

// Operator is an economic operator (operatore economico), the bidder.
type Operator struct {
	FiscalCode string `json:"fiscal_code"`
	Name       string `json:"name"`
	Email      string `json:"email"`
}

// AdmittedWithReserve is the data of bid.admitted_with_reserve.
type AdmittedWithReserve struct {
	TenderID string   `json:"tender_id"`
	LotID    string   `json:"lot_id"`
	Operator Operator `json:"operator"`
	// RegulariseBy is the term for the payment, if the authority set one.
	RegulariseBy time.Time `json:"regularise_by,omitzero"`
}

// ContributionPaid is the data of bid.contribution_paid.
type ContributionPaid struct {
	TenderID           string `json:"tender_id"`
	LotID              string `json:"lot_id"`
	OperatorFiscalCode string `json:"operator_fiscal_code"`
	// Receipt is the payment proof: a pagoPA IUV or an FVOE document id.
	Receipt string `json:"receipt"`
}
