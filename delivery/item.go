package delivery

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/message"
)

// item is one reminder or advice read from the output stream, held until
// every receiver has delivered it (or given up).
type item struct {
	id     string
	typ    events.Type
	raw    []byte // the CloudEvent as stored: the webhook's body
	to     events.Person
	cc     []events.Person
	tender string
	entry  message.DigestItem
	// operator is the bidder when the recipient is the bidder.
	operator  *events.Operator
	published time.Time
	// msgs are the stream messages that carried it: more than one if the
	// broker delivered it again while it was held.
	msgs []jetstream.Msg
	// pending lists the receivers that have not finished with it.
	pending map[events.Receiver]bool
}

// deliverable are the types the stage delivers.
var deliverable = []events.Type{
	events.TypeReminderCIG, events.TypeReminderContribution, events.TypeReminderEscalation,
	events.TypeReminderResolved, events.TypeAdviceExtension,
}

// decodeItem reads an output message: a CloudEvent of a deliverable type,
// on its subject, with an id and a recipient with a valid address.
func decodeItem(subjects events.Subjects, subject string, raw []byte) (*item, error) {
	var env events.Envelope
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&env); err != nil {
		return nil, fmt.Errorf("not a CloudEvent in JSON: %w", err)
	}
	typ := subjects.TypeOf(subject)
	switch {
	case !slices.Contains(deliverable, typ):
		return nil, fmt.Errorf("subject %s is not a reminder or an advice", subject)
	case env.Type != typ:
		return nil, fmt.Errorf("envelope type %q does not match subject %s", env.Type, subject)
	case strings.TrimSpace(env.ID) == "":
		return nil, errors.New("the CloudEvent has no id")
	case len(env.Data) == 0 || string(env.Data) == "null":
		return nil, errors.New("the CloudEvent has no data")
	}
	it := &item{id: env.ID, typ: typ, raw: raw, pending: map[events.Receiver]bool{}}
	it.entry.Type = typ
	strict := func(v any) error {
		d := json.NewDecoder(bytes.NewReader(env.Data))
		if err := d.Decode(v); err != nil {
			return fmt.Errorf("data of %s: %w", typ, err)
		}
		return nil
	}
	switch typ {
	case events.TypeAdviceExtension:
		var a events.Advice
		if err := strict(&a); err != nil {
			return nil, err
		}
		it.to, it.tender, it.entry.Text = a.Recipient, a.TenderID, a.Message
		it.entry.TenderTitle, it.entry.Deadline = a.TenderTitle, a.Deadline
		if a.Authority != nil {
			it.entry.Authority = a.Authority.Name
		}
	case events.TypeReminderResolved:
		var r events.Resolved
		if err := strict(&r); err != nil {
			return nil, err
		}
		it.to, it.cc, it.tender, it.entry.Text = r.Recipient, r.CC, r.TenderID, r.Message
		it.entry.LotID, it.entry.CIG = r.LotID, r.Resolution.CIG
		if r.Kind == events.KindContribution && len(r.CC) > 0 {
			// The bidder hears of the resolution, the RUP in copy.
			it.operator = &events.Operator{FiscalCode: r.OperatorFiscalCode, Name: r.Recipient.Name, Email: r.Recipient.Email}
		}
	default:
		var r events.Reminder
		if err := strict(&r); err != nil {
			return nil, err
		}
		it.to, it.cc, it.tender, it.entry.Text = r.Recipient, r.CC, r.TenderID, r.Message
		it.entry.TenderTitle, it.entry.LotID, it.entry.CIG, it.entry.Deadline = r.TenderTitle, r.LotID, r.CIG, r.Deadline
		it.entry.Operator = r.Operator
		if r.Authority != nil {
			it.entry.Authority = r.Authority.Name
		}
		if typ != events.TypeReminderEscalation {
			it.entry.Sequence = r.Sequence
		}
		if r.Operator != nil && strings.EqualFold(r.Operator.Email, r.Recipient.Email) {
			it.operator = r.Operator
		}
	}
	it.entry.TenderID = it.tender
	if strings.TrimSpace(it.entry.Text.IT) == "" && strings.TrimSpace(it.entry.Text.EN) == "" {
		return nil, fmt.Errorf("%s %s has no text", typ, it.id)
	}
	if err := checkAddress(it.to.Email); err != nil {
		return nil, fmt.Errorf("recipient: %w", err)
	}
	for _, c := range it.cc {
		if err := checkAddress(c.Email); err != nil {
			return nil, fmt.Errorf("cc: %w", err)
		}
	}
	return it, nil
}

// checkAddress accepts a bare e-mail address.
func checkAddress(s string) error {
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s {
		return fmt.Errorf("%q is not an e-mail address", s)
	}
	return nil
}

// groupKey is what a digest groups on: the recipient and the people in
// copy, so that nobody in copy reads about another authority's tender.
func (it *item) groupKey() string {
	cc := make([]string, len(it.cc))
	for i, c := range it.cc {
		cc[i] = strings.ToLower(c.Email)
	}
	slices.Sort(cc)
	return strings.ToLower(it.to.Email) + "|" + strings.Join(slices.Compact(cc), ",")
}
