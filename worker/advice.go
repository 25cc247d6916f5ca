package worker

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/promemoria/promemoria/advice"
	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/message"
	"github.com/promemoria/promemoria/tender"
)

// advise decides the art. 25 advice that t calls for, if any, and adds
// it to u: published before the commit, and recorded in t, which the
// caller writes. The advice's id is deterministic, so a crash between the
// two publishes it again within the output stream's duplicate window and
// the stream keeps one. Outside office hours the advice waits for the
// sweep at the next opening.
func (w *Worker) advise(u *unit, t *tender.Tender, now time.Time) error {
	a := advice.Decide(t, w.svcs.get, w.advicePolicy(), now)
	if a == nil {
		return nil
	}
	if office := w.opts.Policy.Office; !office.Open(now) {
		u.timers = append(u.timers, timer{Kind: timerAdvise, At: office.Next(now)})
		return nil
	}
	text, err := w.render(message.KindAdvice, message.AdviceOf(a, message.Tender{
		ID: t.TenderID, Title: t.Title, Authority: t.Authority.Name, RUP: t.RUP,
		PublishedAt: t.PublishedAt, OfferDeadline: t.OfferDeadline,
	}))
	if err != nil {
		return fmt.Errorf("advice %s: %w", a.ID, err)
	}
	data := &events.Advice{
		AdviceID: a.ID, TenderID: t.TenderID, TenderTitle: t.Title, Recipient: t.RUP,
		PublishedAt: t.PublishedAt, Deadline: a.Deadline, OverlapSeconds: int64(a.Overlap.Seconds()),
		Outages: a.Outages, ProposedDeadline: a.Proposed, LegalBasis: a.LegalBasis, Message: text,
	}
	if t.Authority != (events.Authority{}) {
		auth := t.Authority
		data.Authority = &auth
	}
	msg, err := w.eventMsg(events.TypeAdviceExtension, a.ID, now, data)
	if err != nil {
		return fmt.Errorf("advice %s: %w", a.ID, err)
	}
	u.before = append(u.before, outMsg{msg: msg, typ: events.TypeAdviceExtension, id: a.ID, tenderID: t.TenderID, recipient: t.RUP.Email})
	if t.Advised == nil || t.Advised.OverlapSeconds < data.OverlapSeconds {
		t.Advised = &tender.Advised{ID: a.ID, OverlapSeconds: data.OverlapSeconds}
	}
	return nil
}

// advicePolicy returns the rules of the art. 25 advice.
func (w *Worker) advicePolicy() advice.Policy {
	table := w.opts.Contribution
	return advice.Policy{
		BidderServices: w.opts.BidderServices, Calendar: w.opts.Calendar, MinOverlap: w.opts.AdviceMinOverlap,
		// A restoration pass may run up to Tolerance early.
		Settle:              max(0, w.opts.Policy.Settle-w.opts.Policy.Tolerance),
		ContributionService: w.opts.ContributionService,
		Owes: func(baseCents int64, publishedAt time.Time) bool {
			a := table.Owed(baseCents, publishedAt)
			return !a.Exempt
		},
	}
}

// errCodeMsgIDInProcess is the JetStream error for a publish whose
// Nats-Msg-Id another publish is storing at the same moment.
const errCodeMsgIDInProcess jetstream.ErrorCode = 10158

// inProcess reports whether err says that another publish of the same
// Nats-Msg-Id is being stored.
func inProcess(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeMsgIDInProcess
}
