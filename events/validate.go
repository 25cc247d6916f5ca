package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/promemoria/promemoria/cig"
)

// maxLots bounds the lots of one tender and maxServices the services of one
// portal change: far above real cases, low enough to bound the work one
// event can cause.
const (
	maxLots     = 1000
	maxServices = 64
	maxText     = 4096
)

var (
	serviceRe = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)
	// idRe bounds identifiers: printable, no spaces at the ends.
	idRe = regexp.MustCompile(`^[^\s\x00-\x1f][^\x00-\x1f]{0,199}$`)
)

func decodeData(t Type, data json.RawMessage) (any, error) {
	var p any
	switch t {
	case TypePortalDown, TypePortalUp:
		p = &PortalChange{}
	case TypeTenderPublished:
		p = &TenderPublished{}
	case TypeCIGAssigned:
		p = &CIGAssigned{}
	case TypeTenderCancelled:
		p = &TenderCancelled{}
	case TypeAdmittedWithReserve:
		p = &AdmittedWithReserve{}
	case TypeContributionPaid:
		p = &ContributionPaid{}
	default:
		return nil, invalid(ReasonUnknownType, "type", "%q", t)
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, invalid(ReasonInvalidField, "data", "must be a JSON object")
	}
	if err := json.Unmarshal(trimmed, p); err != nil {
		return nil, jsonError(err, "data")
	}
	// CIGs are accepted as people type them: spaces around, lower case.
	switch d := p.(type) {
	case *CIGAssigned:
		d.CIG = cig.Normalize(d.CIG)
	case *TenderPublished:
		for i := range d.Lots {
			d.Lots[i].CIG = cig.Normalize(d.Lots[i].CIG)
		}
	}
	return p, nil
}

func (e *Event) validate(lim Limits) error {
	switch p := e.Payload.(type) {
	case *PortalChange:
		return p.validate(lim)
	case *TenderPublished:
		return p.validate(lim)
	case *CIGAssigned:
		err := firstErr(
			requireID("data.tender_id", p.TenderID),
			requireID("data.lot_id", p.LotID),
			requireID("data.cig", p.CIG),
		)
		if err != nil {
			return err
		}
		if _, err := cig.Validate(p.CIG); err != nil {
			return &InvalidError{Reason: ReasonInvalidCIG, Field: "data.cig", Err: err}
		}
		return nil
	case *TenderCancelled:
		return firstErr(requireID("data.tender_id", p.TenderID), maxLen("data.reason", p.Reason))
	case *AdmittedWithReserve:
		err := firstErr(
			requireID("data.tender_id", p.TenderID),
			requireID("data.lot_id", p.LotID),
			requireID("data.operator.fiscal_code", p.Operator.FiscalCode),
			maxLen("data.operator.name", p.Operator.Name),
			requireEmail("data.operator.email", p.Operator.Email),
		)
		if err != nil {
			return err
		}
		if !p.RegulariseBy.IsZero() {
			return checkTime("data.regularise_by", p.RegulariseBy, lim, false)
		}
		return nil
	case *ContributionPaid:
		return firstErr(
			requireID("data.tender_id", p.TenderID),
			requireID("data.lot_id", p.LotID),
			requireID("data.operator_fiscal_code", p.OperatorFiscalCode),
			requireID("data.receipt", p.Receipt),
		)
	}
	return invalid(ReasonUnknownType, "type", "%q", e.Type)
}

func (p *PortalChange) validate(lim Limits) error {
	if len(p.Services) > maxServices {
		return invalid(ReasonInvalidField, "data.services", "more than %d services", maxServices)
	}
	for i, s := range p.Services {
		if !serviceRe.MatchString(s) {
			return invalid(ReasonInvalidField, fmt.Sprintf("data.services[%d]", i), "%q is not a service name (lower-case letters, digits, _ and -)", s)
		}
	}
	if !p.At.IsZero() {
		if err := checkTime("data.at", p.At, lim, true); err != nil {
			return err
		}
	}
	return maxLen("data.notice", p.Notice)
}

func (p *TenderPublished) validate(lim Limits) error {
	err := firstErr(
		requireID("data.tender_id", p.TenderID),
		maxLen("data.title", p.Title),
		maxLen("data.authority.name", p.Authority.Name),
		maxLen("data.authority.fiscal_code", p.Authority.FiscalCode),
		requireText("data.rup.name", p.RUP.Name),
		requireEmail("data.rup.email", p.RUP.Email),
		checkTime("data.published_at", p.PublishedAt, lim, true),
		checkTime("data.offer_deadline", p.OfferDeadline, lim, false),
	)
	if err != nil {
		return err
	}
	if len(p.Lots) == 0 {
		return invalid(ReasonMissingField, "data.lots", "a tender has at least one lot")
	}
	if len(p.Lots) > maxLots {
		return invalid(ReasonInvalidField, "data.lots", "more than %d lots", maxLots)
	}
	seen := make(map[string]bool, len(p.Lots))
	for i, l := range p.Lots {
		f := fmt.Sprintf("data.lots[%d]", i)
		if err := requireID(f+".lot_id", l.LotID); err != nil {
			return err
		}
		if seen[l.LotID] {
			return invalid(ReasonInvalidField, f+".lot_id", "lot %q appears twice", l.LotID)
		}
		seen[l.LotID] = true
		if l.CIGService != "" && !serviceRe.MatchString(l.CIGService) {
			return invalid(ReasonInvalidField, f+".cig_service", "%q is not a service name", l.CIGService)
		}
		if l.BaseAmountCents < 0 {
			return invalid(ReasonInvalidField, f+".base_amount_cents", "must not be negative")
		}
		if len(l.CIG) > 64 {
			return invalid(ReasonInvalidField, f+".cig", "longer than 64 bytes")
		}
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func requireID(field, v string) error {
	if v == "" {
		return invalid(ReasonMissingField, field, "required")
	}
	if !idRe.MatchString(v) {
		return invalid(ReasonInvalidField, field, "must be 1 to 200 printable characters without leading space")
	}
	return nil
}

func requireText(field, v string) error {
	if strings.TrimSpace(v) == "" {
		return invalid(ReasonMissingField, field, "required")
	}
	return maxLen(field, v)
}

func maxLen(field, v string) error {
	if len(v) > maxText {
		return invalid(ReasonInvalidField, field, "longer than %d bytes", maxText)
	}
	return nil
}

func requireEmail(field, v string) error {
	if v == "" {
		return invalid(ReasonMissingField, field, "required")
	}
	at := strings.LastIndexByte(v, '@')
	if at < 1 || at == len(v)-1 || strings.ContainsAny(v, " \t\r\n<>") || len(v) > 254 {
		return invalid(ReasonInvalidField, field, "%q is not an e-mail address", v)
	}
	return nil
}
