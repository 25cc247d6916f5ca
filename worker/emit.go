package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/promemoria/promemoria/cig"
	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/gap"
	"github.com/promemoria/promemoria/message"
	"github.com/promemoria/promemoria/outage"
)

// Source is the CloudEvents source of everything promemoria publishes. It
// is the same for every replica, so source+id of a reminder is
// deterministic.
const Source = "promemoria"

// outMsg is a message about to be published and what to log once it is.
type outMsg struct {
	msg *nats.Msg
	typ events.Type
	id  string
	seq int
	// tenderID, lotID, service and recipient are for the log line.
	tenderID, lotID, service, recipient string
}

// reminderMsg builds the message an action asks for. Its id is
// gap.ReminderID, so a retry after a crash is dropped by the output
// stream's duplicate window.
func (w *Worker) reminderMsg(g *gap.Gap, svc *outage.Service, a gap.Action, now time.Time) (outMsg, error) {
	var (
		typ  events.Type
		data any
	)
	id := g.Identity()
	switch a.Type {
	case gap.ActRemind, gap.ActEscalate:
		r, err := w.reminder(g, svc, a, now)
		if err != nil {
			return outMsg{}, err
		}
		typ, data = events.TypeReminderCIG, r
		if g.Kind == events.KindContribution {
			typ = events.TypeReminderContribution
		}
		seq := a.Sequence
		if a.Type == gap.ActEscalate {
			typ, seq = events.TypeReminderEscalation, 1
		}
		r.ReminderID = gap.ReminderID(id, typ, seq)
	case gap.ActResolved:
		typ = events.TypeReminderResolved
		text, err := w.render(message.KindResolved, message.ResolvedOf(g))
		if err != nil {
			return outMsg{}, err
		}
		res := &events.Resolved{
			ReminderID: gap.ReminderID(id, typ, 1), Kind: g.Kind, TenderID: g.TenderID, LotID: g.LotID,
			OperatorFiscalCode: g.OperatorFiscalCode(), Recipient: g.Recipient(), CC: g.CC(),
			RemindersSent: g.Sequence, Message: text,
		}
		if g.Sequence == 0 {
			// Only the RUP was told (an escalation): only the RUP hears of
			// the resolution.
			res.Recipient, res.CC = g.RUP, nil
		}
		if g.Resolution != nil {
			res.Resolution = *g.Resolution
			res.CIGUnverified = cig.Unverified(g.Resolution.CIG)
		}
		data = res
	default:
		return outMsg{}, fmt.Errorf("unknown action %v", a.Type)
	}
	rid := reminderIDOf(data)
	msg, err := w.eventMsg(typ, rid, now, data)
	if err != nil {
		return outMsg{}, err
	}
	return outMsg{msg: msg, typ: typ, id: rid, seq: a.Sequence, tenderID: g.TenderID, lotID: g.LotID,
		service: g.Service, recipient: g.Recipient().Email}, nil
}

// sent logs and counts a message the output stream stored (not a
// duplicate of one it had).
func (w *Worker) sent(m outMsg) {
	switch m.typ {
	case events.TypeDeadLetter:
		return // counted and logged where it is built
	case events.TypeAdviceExtension:
		w.metrics.advice()
		w.log.Info().Str("reminder_id", m.id).Str("type", string(m.typ)).Str("tender_id", m.tenderID).
			Str("recipient", m.recipient).Msg("advice emitted")
		return
	}
	w.metrics.emitted.Add(1)
	w.metrics.reminders.WithLabelValues(string(m.typ[len("reminder."):])).Inc()
	w.log.Info().Str("reminder_id", m.id).Str("type", string(m.typ)).Str("tender_id", m.tenderID).Str("lot_id", m.lotID).
		Str("service", m.service).Int("sequence", m.seq).Str("recipient", m.recipient).Msg("reminder emitted")
}

// publish publishes msgs in one pipelined flush and waits until the
// output stream has acknowledged every one.
func (w *Worker) publish(ctx context.Context, msgs []outMsg) error {
	if len(msgs) == 0 {
		return nil
	}
	raw := make([]*nats.Msg, len(msgs))
	for i, m := range msgs {
		raw[i] = m.msg
	}
	acks, err := publishAll(ctx, w.js, raw)
	if err != nil {
		return err
	}
	for i, ack := range acks {
		if !ack.Duplicate {
			w.sent(msgs[i])
		}
	}
	return nil
}

// publishAll publishes msgs asynchronously and waits for every
// acknowledgement: one round trip for the lot. A publish whose
// Nats-Msg-Id another publish is storing at that moment counts as a
// duplicate.
func publishAll(ctx context.Context, js jetstream.JetStream, msgs []*nats.Msg) ([]*jetstream.PubAck, error) {
	futures := make([]jetstream.PubAckFuture, len(msgs))
	for i, m := range msgs {
		f, err := js.PublishMsgAsync(m)
		if err != nil {
			return nil, fmt.Errorf("publish %s: %w", m.Subject, err)
		}
		futures[i] = f
	}
	acks := make([]*jetstream.PubAck, len(msgs))
	for i, f := range futures {
		select {
		case ack := <-f.Ok():
			acks[i] = ack
		case err := <-f.Err():
			if inProcess(err) {
				acks[i] = &jetstream.PubAck{Duplicate: true}
				continue
			}
			return nil, fmt.Errorf("publish %s: %w", f.Msg().Subject, err)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return acks, nil
}

func reminderIDOf(data any) string {
	switch d := data.(type) {
	case *events.Reminder:
		return d.ReminderID
	case *events.Resolved:
		return d.ReminderID
	case *events.Advice:
		return d.AdviceID
	}
	return ""
}

// reminder builds the data of a reminder or escalation.
func (w *Worker) reminder(g *gap.Gap, svc *outage.Service, a gap.Action, now time.Time) (*events.Reminder, error) {
	r := &events.Reminder{
		Kind: g.Kind, TenderID: g.TenderID, TenderTitle: g.Title, LotID: g.LotID, CIG: g.CIG,
		OperatorFiscalCode: g.OperatorFiscalCode(), Operator: g.Operator,
		Recipient: g.Recipient(), CC: g.CC(), Sequence: a.Sequence,
		Service: g.Service, ServiceUp: svc.Up(), ServiceUpSince: svc.UpSince(),
		Deadline: g.Deadline, GapOpenedAt: g.OpenedAt,
	}
	if g.Authority != (events.Authority{}) {
		auth := g.Authority
		r.Authority = &auth
	}
	if g.Kind == events.KindContribution && g.ContributionKnown {
		r.ContributionCents, r.ContributionTable = g.ContributionCents, g.ContributionTable
	}
	if o, ok := svc.LastOutage(); ok {
		r.Outage = &o
	}
	if a.Type == gap.ActEscalate {
		r.Escalation = true
		r.Recipient, r.CC = g.RUP, nil
		msg, err := w.render(message.KindEscalation, message.EscalationOf(g, svc, now))
		if err != nil {
			return nil, err
		}
		r.Message = msg
		return r, nil
	}
	msg, err := w.render(message.ReminderOf(g, svc, a.Sequence))
	if err != nil {
		return nil, err
	}
	r.Message = msg
	return r, nil
}

// eventMsg wraps data in a CloudEvents envelope on the subject of typ,
// with id as Nats-Msg-Id.
func (w *Worker) eventMsg(typ events.Type, id string, now time.Time, data any) (*nats.Msg, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return nil, err
	}
	// The envelope is written around the data rather than marshalled
	// with it as a json.RawMessage, which encoding/json would validate and
	// compact again: a tenth of the worker's time went there.
	env, err := json.Marshal(events.Envelope{
		SpecVersion: events.SpecVersion, ID: id, Source: Source, Type: typ,
		Time: now.UTC(), DataContentType: events.ContentType, Data: json.RawMessage("null"),
	})
	if err != nil {
		return nil, err
	}
	body := make([]byte, 0, len(env)+len(raw))
	body = append(body, env[:len(env)-len(`null}`)]...)
	body = append(body, raw...)
	body = append(body, '}')
	msg := nats.NewMsg(w.opts.Subjects.Of(typ))
	msg.Data = body
	msg.Header.Set(events.HeaderMsgID, id)
	msg.Header.Set("Ce-Type", string(typ))
	return msg, nil
}
