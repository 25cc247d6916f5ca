package worker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/promemoria/promemoria/events"
)

// process handles one message and settles it: ack on success or on a
// dead-letter, nak with backoff on a failure that may pass.
func (w *Worker) process(ctx context.Context, j job) {
	start := time.Now()
	meta, _ := j.msg.Metadata()
	var deliveries uint64 = 1
	if meta != nil {
		deliveries = meta.NumDelivered
	}
	if deliveries > 1 {
		w.metrics.redelivery()
	}
	var err error
	typ := "timer"
	switch j.kind {
	case jobInvalid:
		typ = "invalid"
		err = w.deadLetter(ctx, j.msg, j.err, deliveries)
		if err == nil {
			w.settle(j.msg, true, 0)
			return
		}
	case jobEvent:
		typ = string(j.ev.Type)
		err = w.handleEvent(ctx, j.msg, j.ev)
	case jobTimer:
		err = w.handleTimer(ctx, j.msg, j.key)
	}
	w.metrics.observe(typ, err, time.Since(start))
	if err == nil {
		w.settle(j.msg, true, 0)
		return
	}
	var ie *events.InvalidError
	if errors.As(err, &ie) {
		if dlErr := w.deadLetter(ctx, j.msg, err, deliveries); dlErr == nil {
			w.settle(j.msg, true, 0)
			return
		}
	} else if int(deliveries) >= w.opts.MaxAttempts && j.kind != jobTimer {
		// An input that keeps failing is dead-lettered; a timer is state the
		// service owns, not input: it is retried (with backoff) until the
		// failure passes, never dropped.
		final := &events.InvalidError{Reason: events.ReasonProcessFailed, Msg: fmt.Sprintf("failed %d times", deliveries), Err: err}
		if dlErr := w.deadLetter(ctx, j.msg, final, deliveries); dlErr == nil {
			w.settle(j.msg, true, 0)
			return
		}
	}
	w.log.Warn().Err(err).Str("subject", j.msg.Subject()).Uint64("deliveries", deliveries).Msg("processing failed, will retry")
	w.settle(j.msg, false, backoff(deliveries))
}

// backoff returns the redelivery delay after the given number of attempts:
// 250ms doubling up to 30s.
func backoff(deliveries uint64) time.Duration {
	d := 250 * time.Millisecond
	for i := uint64(1); i < deliveries && d < 30*time.Second; i++ {
		d *= 2
	}
	return min(d, 30*time.Second)
}

func (w *Worker) settle(msg jetstream.Msg, ok bool, delay time.Duration) {
	var err error
	if ok {
		err = msg.Ack()
		if err == nil && !strings.HasPrefix(msg.Subject(), "_promemoria.") {
			w.metrics.eventsAcked.Add(1)
		}
	} else {
		err = msg.NakWithDelay(delay)
	}
	if err != nil {
		w.log.Warn().Err(err).Str("subject", msg.Subject()).Msg("settle failed: the message will be redelivered")
	}
}

// handleEvent applies one valid input event, at most once per source+id
// and content.
func (w *Worker) handleEvent(ctx context.Context, msg jetstream.Msg, ev *events.Event) error {
	// The event's id is recorded first, in one round trip. If it was
	// already there with the same content, this is a duplicate or the
	// redelivery of an event whose processing was interrupted: applying it
	// again is safe, since every step is idempotent.
	seenKey, digest := seenKeys(ev)
	_, err := w.res.seen.Create(ctx, seenKey, []byte(digest))
	first := err == nil
	switch {
	case errors.Is(err, jetstream.ErrKeyExists):
		e, gerr := w.res.seen.Get(ctx, seenKey)
		if gerr != nil && !errors.Is(gerr, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("seen %s: %w", seenKey, gerr)
		}
		if gerr == nil && string(e.Value()) != digest {
			return &events.InvalidError{Reason: events.ReasonIDReused, Field: "id",
				Msg: fmt.Sprintf("source %q id %q was already used for an event with different content", ev.Source, ev.ID)}
		}
		w.metrics.duplicate()
		w.logEvent(zerolog.DebugLevel, ev).Msg("event seen before: applied again, idempotently")
	case err != nil:
		return fmt.Errorf("seen %s: %w", seenKey, err)
	}
	return w.apply(ctx, ev, first)
}

// seenKeys returns the key that names an event (source+id) and the digest
// of its content (type and data).
func seenKeys(ev *events.Event) (key, digest string) {
	k := sha256.Sum256([]byte(ev.Source + "\x00" + ev.ID))
	var data bytes.Buffer
	if err := json.Compact(&data, ev.Data); err != nil {
		data.Write(ev.Data)
	}
	d := sha256.Sum256(append([]byte(string(ev.Type)+"\x00"), data.Bytes()...))
	return "e." + hex.EncodeToString(k[:16]), hex.EncodeToString(d[:16])
}

func (w *Worker) logEvent(level zerolog.Level, ev *events.Event) *zerolog.Event {
	l := w.log.WithLevel(level).Str("event_id", ev.ID).Str("event_source", ev.Source).Str("type", string(ev.Type))
	switch p := ev.Payload.(type) {
	case *events.TenderPublished:
		l = l.Str("tender_id", p.TenderID)
	case *events.CIGAssigned:
		l = l.Str("tender_id", p.TenderID).Str("lot_id", p.LotID).Str("cig", p.CIG)
	case *events.TenderCancelled:
		l = l.Str("tender_id", p.TenderID)
	case *events.AdmittedWithReserve:
		l = l.Str("tender_id", p.TenderID).Str("lot_id", p.LotID).Str("operator_fiscal_code", p.Operator.FiscalCode)
	case *events.ContributionPaid:
		l = l.Str("tender_id", p.TenderID).Str("lot_id", p.LotID).Str("operator_fiscal_code", p.OperatorFiscalCode)
	case *events.PortalChange:
		l = l.Strs("services", p.Services)
	}
	return l
}
