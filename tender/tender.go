// Package tender keeps what promemoria knows of a tender: its lots and their
// CIGs, the bids admitted with reserve and their payments, and whether it was
// cancelled. Each input event is merged into the record in a way that does
// not depend on the order events arrive in, and Gaps derives from the record
// the gaps that must be remembered.
package tender

import (
	"fmt"
	"slices"
	"time"

	"github.com/promemoria/promemoria/contribution"
	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/gap"
)

// Ref identifies the event that set a field.
type Ref struct {
	Source string    `json:"source,omitempty"`
	ID     string    `json:"id,omitempty"`
	Time   time.Time `json:"time,omitzero"`
}

// Lot is a lot of the tender.
type Lot struct {
	LotID string `json:"lot_id"`
	// Published is true once tender.published listed the lot.
	Published       bool   `json:"published,omitempty"`
	CIGService      string `json:"cig_service,omitempty"`
	BaseAmountCents int64  `json:"base_amount_cents,omitempty"`
	// MissingAtPublication is true if the lot was published without a CIG.
	MissingAtPublication bool   `json:"missing_at_publication,omitempty"`
	CIG                  string `json:"cig,omitempty"`
	CIGRef               Ref    `json:"cig_ref,omitzero"`
}

// Bid is an operator's bid on a lot admitted with reserve, or paid.
type Bid struct {
	LotID        string          `json:"lot_id"`
	Operator     events.Operator `json:"operator"`
	Admitted     bool            `json:"admitted,omitempty"`
	AdmittedAt   time.Time       `json:"admitted_at,omitzero"`
	AdmittedRef  Ref             `json:"admitted_ref,omitzero"`
	RegulariseBy time.Time       `json:"regularise_by,omitzero"`
	Paid         bool            `json:"paid,omitempty"`
	Receipt      string          `json:"receipt,omitempty"`
	PaidRef      Ref             `json:"paid_ref,omitzero"`
}

// Tender is the record of one tender.
type Tender struct {
	TenderID      string           `json:"tender_id"`
	Title         string           `json:"title,omitempty"`
	Authority     events.Authority `json:"authority,omitzero"`
	RUP           events.Person    `json:"rup,omitzero"`
	PublishedAt   time.Time        `json:"published_at,omitzero"`
	OfferDeadline time.Time        `json:"offer_deadline,omitzero"`
	// PublishedRef is the newest tender.published merged: its metadata wins.
	PublishedRef Ref    `json:"published_ref,omitzero"`
	Lots         []*Lot `json:"lots,omitempty"`
	Bids         []*Bid `json:"bids,omitempty"`
	Cancelled    bool   `json:"cancelled,omitempty"`
	CancelReason string `json:"cancel_reason,omitempty"`
	CancelRef    Ref    `json:"cancel_ref,omitzero"`
	// Advised is the latest art. 25 advice sent about the tender.
	Advised *Advised `json:"advised,omitempty"`
}

// Advised records an advice.deadline_extension that was published.
type Advised struct {
	ID             string `json:"id"`
	OverlapSeconds int64  `json:"overlap_seconds"`
}

func refOf(ev *events.Event) Ref {
	return Ref{Source: ev.Source, ID: ev.ID, Time: ev.Time.UTC()}
}

// Before orders events totally: by time, then source, then id, so that
// two events with the same time merge the same way in any order.
func (r Ref) Before(o Ref) bool {
	if c := r.Time.Compare(o.Time); c != 0 {
		return c < 0
	}
	if r.Source != o.Source {
		return r.Source < o.Source
	}
	return r.ID < o.ID
}

// IsZero reports whether no event set the field.
func (r Ref) IsZero() bool { return r.Time.IsZero() && r.Source == "" && r.ID == "" }

// Lot returns the lot with the given id, creating it if asked.
func (t *Tender) Lot(id string, create bool) *Lot {
	for _, l := range t.Lots {
		if l.LotID == id {
			return l
		}
	}
	if !create {
		return nil
	}
	l := &Lot{LotID: id}
	t.Lots = append(t.Lots, l)
	return l
}

// Bid returns the bid of the operator on the lot, creating it if asked.
func (t *Tender) Bid(lotID, fiscalCode string, create bool) *Bid {
	for _, b := range t.Bids {
		if b.LotID == lotID && b.Operator.FiscalCode == fiscalCode {
			return b
		}
	}
	if !create {
		return nil
	}
	b := &Bid{LotID: lotID, Operator: events.Operator{FiscalCode: fiscalCode}}
	t.Bids = append(t.Bids, b)
	return b
}

// Published merges a tender.published event. validCIG reports whether a
// CIG given in the event passes the check digits; a lot whose CIG fails is
// treated as published without one.
func (t *Tender) Published(ev *events.Event, p *events.TenderPublished, defaultService string, validCIG func(string) bool) {
	ref := refOf(ev)
	newest := t.PublishedRef.IsZero() || !ref.Before(t.PublishedRef)
	if newest {
		t.Title, t.Authority, t.RUP = p.Title, p.Authority, p.RUP
		t.PublishedAt, t.OfferDeadline = p.PublishedAt.UTC(), p.OfferDeadline.UTC()
		t.PublishedRef = ref
	}
	for _, pl := range p.Lots {
		l := t.Lot(pl.LotID, true)
		if !l.Published {
			l.Published = true
			// The issuing service is fixed by the first publication merged:
			// gaps are stored under it.
			l.CIGService = pl.CIGService
			if l.CIGService == "" {
				l.CIGService = defaultService
			}
		}
		if newest || l.BaseAmountCents == 0 {
			l.BaseAmountCents = pl.BaseAmountCents
		}
		if pl.CIG != "" && validCIG(pl.CIG) {
			// The earliest CIG wins, whichever event carried it.
			if l.CIG == "" || ref.Before(l.CIGRef) {
				l.CIG, l.CIGRef = pl.CIG, ref
			}
		} else {
			// Published at least once without a (valid) CIG: the gap exists,
			// already resolved if the CIG is known.
			l.MissingAtPublication = true
		}
	}
	slices.SortFunc(t.Lots, func(a, b *Lot) int { return compare(a.LotID, b.LotID) })
}

// CIGAssigned merges a tender.cig_assigned event with a valid CIG.
func (t *Tender) CIGAssigned(ev *events.Event, p *events.CIGAssigned) {
	l := t.Lot(p.LotID, true)
	ref := refOf(ev)
	if l.CIG == "" || ref.Before(l.CIGRef) {
		l.CIG, l.CIGRef = p.CIG, ref
	}
}

// Cancel merges a tender.cancelled event.
func (t *Tender) Cancel(ev *events.Event, p *events.TenderCancelled) {
	ref := refOf(ev)
	if !t.Cancelled || ref.Before(t.CancelRef) {
		t.Cancelled, t.CancelReason, t.CancelRef = true, p.Reason, ref
	}
}

// Admitted merges a bid.admitted_with_reserve event.
func (t *Tender) Admitted(ev *events.Event, p *events.AdmittedWithReserve) {
	b := t.Bid(p.LotID, p.Operator.FiscalCode, true)
	ref := refOf(ev)
	if !b.Admitted || !ref.Before(b.AdmittedRef) {
		// The newest admission says who the operator is and the term.
		b.Operator = p.Operator
		b.RegulariseBy = p.RegulariseBy.UTC()
		b.AdmittedRef = ref
	}
	if !b.Admitted || ref.Time.Before(b.AdmittedAt) {
		// The gap opened with the first admission.
		b.AdmittedAt = ref.Time
	}
	b.Admitted = true
	slices.SortFunc(t.Bids, func(a, b *Bid) int {
		if c := compare(a.LotID, b.LotID); c != 0 {
			return c
		}
		return compare(a.Operator.FiscalCode, b.Operator.FiscalCode)
	})
}

// Paid merges a bid.contribution_paid event.
func (t *Tender) Paid(ev *events.Event, p *events.ContributionPaid) {
	b := t.Bid(p.LotID, p.OperatorFiscalCode, true)
	ref := refOf(ev)
	if !b.Paid || ref.Before(b.PaidRef) {
		b.Paid, b.Receipt, b.PaidRef = true, p.Receipt, ref
	}
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Services say which ANAC service each kind of gap waits for.
type Services struct {
	// Contribution is the service contribution gaps wait for ("payments").
	Contribution string
	// Owed returns the contribution for a lot of baseCents of a tender
	// published at publishedAt.
	Owed func(baseCents int64, publishedAt time.Time) contribution.Amount
}

// Gaps derives the gaps the tender implies: one per lot published without a
// CIG, one per bid admitted with reserve. Open is false for a gap that has
// been resolved (with Resolution saying how). Only descriptive fields and
// Open/Resolution are set; progress (sequence, timers) is the stored gap's.
func (t *Tender) Gaps(s Services) []gap.Gap {
	var out []gap.Gap
	for _, l := range t.Lots {
		if !l.Published || !l.MissingAtPublication {
			continue
		}
		g := gap.Gap{
			Kind: events.KindCIG, Service: l.CIGService, TenderID: t.TenderID, Title: t.Title,
			Authority: t.Authority, PublishedAt: t.PublishedAt, LotID: l.LotID, CIG: l.CIG,
			RUP: t.RUP, Deadline: t.OfferDeadline, OpenedAt: t.PublishedAt, Open: true,
		}
		switch {
		case t.Cancelled:
			g.Open, g.Resolution = false, t.cancelResolution()
		case l.CIG != "":
			g.Open = false
			g.Resolution = &events.Resolution{By: events.TypeCIGAssigned, At: l.CIGRef.Time, CIG: l.CIG, EventSource: l.CIGRef.Source, EventID: l.CIGRef.ID}
		}
		g.Key = gap.Key(g.Service, g.Identity())
		out = append(out, g)
	}
	for _, b := range t.Bids {
		if !b.Admitted {
			continue
		}
		op := b.Operator
		g := gap.Gap{
			Kind: events.KindContribution, Service: s.Contribution, TenderID: t.TenderID, Title: t.Title,
			Authority: t.Authority, PublishedAt: t.PublishedAt, LotID: b.LotID, Operator: &op, RUP: t.RUP,
			Deadline: b.RegulariseBy, OpenedAt: b.AdmittedAt, Open: true,
		}
		l := t.Lot(b.LotID, false)
		if l != nil {
			g.CIG = l.CIG
		}
		// The amount, and whether anything is owed, is known once the lot
		// has been published with its base amount: the schedule is the one
		// in force on the tender's publication date. A lot without a base
		// amount (0) is not taken as exempt: its amount is unknown.
		if l != nil && l.Published && l.BaseAmountCents > 0 && !t.PublishedAt.IsZero() && s.Owed != nil {
			a := s.Owed(l.BaseAmountCents, t.PublishedAt)
			g.ContributionCents, g.ContributionKnown, g.ContributionTable = a.Cents, a.Known, a.Table
			g.Exempt = a.Exempt
		}
		switch {
		case t.Cancelled:
			g.Open, g.Resolution = false, t.cancelResolution()
		case g.Exempt:
			g.Open = false
			g.Resolution = &events.Resolution{By: events.TypeTenderPublished, At: t.PublishedRef.Time, Reason: ReasonExempt,
				EventSource: t.PublishedRef.Source, EventID: t.PublishedRef.ID}
		case b.Paid:
			g.Open = false
			g.Resolution = &events.Resolution{By: events.TypeContributionPaid, At: b.PaidRef.Time, Receipt: b.Receipt, EventSource: b.PaidRef.Source, EventID: b.PaidRef.ID}
		}
		g.Key = gap.Key(g.Service, g.Identity())
		out = append(out, g)
	}
	return out
}

// ReasonExempt is the resolution reason of a contribution gap whose lot is
// below the contribution threshold.
const ReasonExempt = "exempt: the lot's base amount is below the contribution threshold"

func (t *Tender) cancelResolution() *events.Resolution {
	return &events.Resolution{By: events.TypeTenderCancelled, At: t.CancelRef.Time, Reason: t.CancelReason, EventSource: t.CancelRef.Source, EventID: t.CancelRef.ID}
}

// The limits of the CIG services' scope, for the sanity warnings.
var (
	smartCIGEnd   = time.Date(2024, time.January, 1, 0, 0, 0, 0, rome)
	pcpStart      = smartCIGEnd
	smartCIGLimit = int64(40_000_00)
)

// Warnings returns what looks wrong in a tender.published without being a
// reason to reject it, for the lots published without a CIG whose
// cig_service the publisher named: a Smart CIG for a lot of 40,000 € or
// more, or after Smart CIGs stopped being issued (31 December 2023); a PCP
// CIG for a tender published before PCP issued CIGs (1 January 2024). A
// lot that names no service takes the configured default, which is the
// operator's choice, not the publisher's.
func Warnings(p *events.TenderPublished) []string {
	var out []string
	for _, l := range p.Lots {
		if l.CIG != "" {
			continue
		}
		switch l.CIGService {
		case "smartcig":
			if l.BaseAmountCents >= smartCIGLimit {
				out = append(out, fmt.Sprintf("lot %s: a Smart CIG is for contracts under 40,000 €, this lot is %d.%02d €", l.LotID, l.BaseAmountCents/100, l.BaseAmountCents%100))
			}
			if !p.PublishedAt.Before(smartCIGEnd) {
				out = append(out, fmt.Sprintf("lot %s: Smart CIGs are not issued since 1 January 2024, the tender was published on %s", l.LotID, p.PublishedAt.In(rome).Format("2006-01-02")))
			}
		case "pcp":
			if p.PublishedAt.Before(pcpStart) {
				out = append(out, fmt.Sprintf("lot %s: PCP issues CIGs since 1 January 2024, the tender was published on %s", l.LotID, p.PublishedAt.In(rome).Format("2006-01-02")))
			}
		}
	}
	return out
}
