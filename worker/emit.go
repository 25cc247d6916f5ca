package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/gap"
	"github.com/promemoria/promemoria/outage"
)

// Source is the CloudEvents source of everything promemoria publishes. It
// is the same for every replica, so source+id of a reminder is
// deterministic.
const Source = "promemoria"

// emit publishes the message an action asks for and waits for the output
// stream's ack. Its id is gap.ReminderID, so a retry after a crash is
// dropped by the stream's duplicate window.
func (w *Worker) emit(ctx context.Context, g *gap.Gap, svc *outage.Service, a gap.Action, now time.Time) error {
	var (
		typ  events.Type
		data any
	)
	id := g.Identity()
	switch a.Type {
	case gap.ActRemind, gap.ActEscalate:
		r := w.reminder(g, svc, a, now)
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
		res := &events.Resolved{
			ReminderID: gap.ReminderID(id, typ, 1), Kind: g.Kind, TenderID: g.TenderID, LotID: g.LotID,
			OperatorFiscalCode: g.OperatorFiscalCode(), Recipient: g.Recipient(), CC: g.CC(),
			RemindersSent: g.Sequence, Message: resolvedMessage(g),
		}
		if g.Resolution != nil {
			res.Resolution = *g.Resolution
		}
		data = res
	default:
		return fmt.Errorf("unknown action %v", a.Type)
	}
	rid := reminderIDOf(data)
	if err := w.publishEvent(ctx, typ, rid, now, data); err != nil {
		return fmt.Errorf("emit %s %s for %s: %w", typ, rid, g.Key, err)
	}
	w.metrics.emitted.Add(1)
	w.metrics.reminders.WithLabelValues(string(typ[len("reminder."):])).Inc()
	w.log.Info().Str("reminder_id", rid).Str("type", string(typ)).Str("tender_id", g.TenderID).Str("lot_id", g.LotID).
		Str("service", g.Service).Int("sequence", a.Sequence).Str("recipient", g.Recipient().Email).Msg("reminder emitted")
	return nil
}

func reminderIDOf(data any) string {
	switch d := data.(type) {
	case *events.Reminder:
		return d.ReminderID
	case *events.Resolved:
		return d.ReminderID
	}
	return ""
}

// reminder builds the data of a reminder or escalation.
func (w *Worker) reminder(g *gap.Gap, svc *outage.Service, a gap.Action, now time.Time) *events.Reminder {
	r := &events.Reminder{
		Kind: g.Kind, TenderID: g.TenderID, TenderTitle: g.Title, LotID: g.LotID,
		OperatorFiscalCode: g.OperatorFiscalCode(), Operator: g.Operator,
		Recipient: g.Recipient(), CC: g.CC(), Sequence: a.Sequence,
		Service: g.Service, ServiceUp: svc.Up(), ServiceUpSince: svc.UpSince(),
		Deadline: g.Deadline, ContributionCents: g.ContributionCents, GapOpenedAt: g.OpenedAt,
	}
	if o, ok := svc.LastOutage(); ok {
		r.Outage = &o
	}
	if a.Type == gap.ActEscalate {
		r.Escalation = true
		r.Recipient, r.CC = g.RUP, nil
		if g.RUP.Email == "" { // the tender is not known yet: tell whoever we can
			r.Recipient = g.Recipient()
		}
		r.Message = escalationMessage(g, svc, now)
	} else {
		r.Message = reminderMessage(g, a.Sequence)
	}
	return r
}

// publishEvent wraps data in a CloudEvents envelope and publishes it with
// id as Nats-Msg-Id, waiting for the ack.
func (w *Worker) publishEvent(ctx context.Context, typ events.Type, id string, now time.Time, data any) error {
	raw, err := json.Marshal(data)
	if err != nil {
		return err
	}
	env := events.Envelope{
		SpecVersion: events.SpecVersion, ID: id, Source: Source, Type: typ,
		Time: now.UTC(), DataContentType: events.ContentType, Data: raw,
	}
	body, err := json.Marshal(env)
	if err != nil {
		return err
	}
	msg := nats.NewMsg(w.opts.Subjects.Of(typ))
	msg.Data = body
	msg.Header.Set(events.HeaderMsgID, id)
	msg.Header.Set("Ce-Type", string(typ))
	_, err = w.js.PublishMsg(ctx, msg)
	return err
}
