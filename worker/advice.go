package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/promemoria/promemoria/advice"
	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/message"
	"github.com/promemoria/promemoria/outage"
	"github.com/promemoria/promemoria/tender"
)

// serviceLookup returns the state of an ANAC service.
type serviceLookup func(ctx context.Context, name string) (*outage.Service, error)

// advise publishes the art. 25 advice that t calls for, if any, then
// records it in the tender. The advice's id is deterministic, so a crash
// between the two publishes it again within the output stream's duplicate
// window and the stream keeps one. Outside office hours the advice waits
// for the sweep at the next opening. services returns the services'
// states: the cache for a tender's event, fresh reads for a sweep.
func (w *Worker) advise(ctx context.Context, t *tender.Tender, services serviceLookup) error {
	svcs := map[string]*outage.Service{}
	names := append([]string(nil), w.opts.BidderServices...)
	for _, l := range t.Lots {
		names = append(names, l.CIGService)
	}
	for _, name := range names {
		if _, ok := svcs[name]; ok || name == "" {
			continue
		}
		s, err := services(ctx, name)
		if err != nil {
			return err
		}
		svcs[name] = s
	}
	now := w.now()
	a := advice.Decide(t, func(name string) *outage.Service { return svcs[name] }, w.advicePolicy(), now)
	if a == nil {
		return nil
	}
	if office := w.opts.Policy.Office; !office.Open(now) {
		return w.schedule(ctx, adviceSweepKey, office.Next(now))
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
	ack, err := w.publishEvent(ctx, events.TypeAdviceExtension, a.ID, now, data)
	switch {
	case inProcess(err):
		// Another worker is publishing the same advice right now; it
		// records it, or fails and is retried.
		return nil
	case err != nil:
		return fmt.Errorf("advice %s: %w", a.ID, err)
	case !ack.Duplicate:
		w.metrics.advice()
		w.log.Info().Str("reminder_id", a.ID).Str("type", string(events.TypeAdviceExtension)).Str("tender_id", t.TenderID).
			Int64("overlap_seconds", data.OverlapSeconds).Time("proposed_deadline", a.Proposed).Str("recipient", t.RUP.Email).
			Msg("advice emitted")
	}
	_, _, _, err = w.updateTender(ctx, t.TenderID, func(t *tender.Tender) {
		if t.Advised == nil || t.Advised.OverlapSeconds < data.OverlapSeconds {
			t.Advised = &tender.Advised{ID: a.ID, OverlapSeconds: data.OverlapSeconds}
		}
	})
	return err
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

// adviseAll looks at every tender for an advice: a restoration that has
// settled may end an outage that overlapped offer periods. The services'
// states are read fresh, once each. It returns how many tenders were
// looked at with an offer period still open.
func (w *Worker) adviseAll(ctx context.Context, msg jetstream.Msg) (int, error) {
	now := w.now()
	if office := w.opts.Policy.Office; !office.Open(now) {
		return 0, w.schedule(ctx, adviceSweepKey, office.Next(now))
	}
	var (
		mu    sync.Mutex
		fresh = map[string]*outage.Service{}
		n     int
	)
	services := func(ctx context.Context, name string) (*outage.Service, error) {
		mu.Lock()
		defer mu.Unlock()
		if s, ok := fresh[name]; ok {
			return s, nil
		}
		s, _, err := w.loadService(ctx, name)
		if err == nil {
			fresh[name] = s
		}
		return s, err
	}
	err := w.fanOut(ctx, msg, "tender.>", func(key string, data []byte, _ uint64) (func() error, bool) {
		t := &tender.Tender{}
		if err := json.Unmarshal(data, t); err != nil {
			w.log.Error().Err(err).Str("key", key).Msg("tender record undecodable: skipped")
			return nil, false
		}
		if t.Cancelled || !now.Before(t.OfferDeadline) {
			return nil, false
		}
		n++
		return func() error { return w.advise(ctx, t, services) }, true
	})
	return n, err
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
