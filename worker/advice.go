package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/promemoria/promemoria/advice"
	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/message"
	"github.com/promemoria/promemoria/outage"
	"github.com/promemoria/promemoria/tender"
)

// advise publishes the art. 25 advice that t calls for, if any, then
// records it in the tender. The advice's id is deterministic, so a crash
// between the two publishes it again within the output stream's duplicate
// window and the stream keeps one.
func (w *Worker) advise(ctx context.Context, t *tender.Tender) error {
	svcs := map[string]*outage.Service{}
	names := append([]string(nil), w.opts.BidderServices...)
	for _, l := range t.Lots {
		names = append(names, l.CIGService)
	}
	for _, name := range names {
		if _, ok := svcs[name]; ok || name == "" {
			continue
		}
		s, err := w.service(ctx, name)
		if err != nil {
			return err
		}
		svcs[name] = s
	}
	p := advice.Policy{
		BidderServices: w.opts.BidderServices, Calendar: w.opts.Calendar, MinOverlap: w.opts.AdviceMinOverlap,
		// A restoration pass may run up to Tolerance early.
		Settle: max(0, w.opts.Policy.Settle-w.opts.Policy.Tolerance),
	}
	now := w.now()
	a := advice.Decide(t, func(name string) *outage.Service { return svcs[name] }, p, now)
	if a == nil {
		return nil
	}
	text, err := w.adviceText(a, message.Tender{
		ID: t.TenderID, Title: t.Title, Authority: t.Authority.Name, RUP: t.RUP,
		PublishedAt: t.PublishedAt, OfferDeadline: t.OfferDeadline,
	})
	if err != nil {
		return err
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
	if err := w.publishEvent(ctx, events.TypeAdviceExtension, a.ID, now, data); err != nil {
		if inProcess(err) {
			// Another worker is publishing the same advice right now; it
			// records it, or fails and is retried.
			return nil
		}
		return fmt.Errorf("advice %s: %w", a.ID, err)
	}
	w.metrics.advice()
	w.log.Info().Str("reminder_id", a.ID).Str("type", string(events.TypeAdviceExtension)).Str("tender_id", t.TenderID).
		Int64("overlap_seconds", data.OverlapSeconds).Time("proposed_deadline", a.Proposed).Str("recipient", t.RUP.Email).
		Msg("advice emitted")
	_, _, _, err = w.updateTender(ctx, t.TenderID, func(t *tender.Tender) {
		if t.Advised == nil || t.Advised.OverlapSeconds < data.OverlapSeconds {
			t.Advised = &tender.Advised{ID: a.ID, OverlapSeconds: data.OverlapSeconds}
		}
	})
	return err
}

// adviseAll looks at every tender for an advice: a restoration that has
// settled may end an outage that overlapped offer periods. It returns how
// many tenders were looked at with an offer period still open.
func (w *Worker) adviseAll(ctx context.Context, msg jetstream.Msg) (int, error) {
	var (
		now      = w.now()
		n        int
		wg       sync.WaitGroup
		sem      = make(chan struct{}, w.opts.FanOut)
		firstErr atomic.Pointer[error]
	)
	err := w.scanState(ctx, msg, "tender.>", func(key string, data []byte, _ uint64) error {
		if errp := firstErr.Load(); errp != nil {
			return *errp
		}
		t := &tender.Tender{}
		if err := json.Unmarshal(data, t); err != nil {
			w.log.Error().Err(err).Str("key", key).Msg("tender record undecodable: skipped")
			return nil
		}
		if t.Cancelled || !now.Before(t.OfferDeadline) {
			return nil
		}
		n++
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := w.advise(ctx, t); err != nil {
				firstErr.CompareAndSwap(nil, &err)
			}
		}()
		return nil
	})
	wg.Wait()
	if errp := firstErr.Load(); errp != nil && err == nil {
		err = *errp
	}
	return n, err
}

// errCodeMsgIDInProcess is the JetStream error for a publish whose
// Nats-Msg-Id another publish is storing at the same moment.
const errCodeMsgIDInProcess jetstream.ErrorCode = 10158

func inProcess(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeMsgIDInProcess
}
