package worker

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/promemoria/promemoria/events"
)

// deadLetter publishes msg, byte for byte with its subject and headers, to
// the dead-letter subject with the reason it could not be processed. Its id
// derives from the input's stream sequence, so a dead letter retried after a
// crash is published once.
func (w *Worker) deadLetter(ctx context.Context, msg jetstream.Msg, cause error, deliveries uint64) error {
	reason := events.ReasonOf(cause)
	dl := &events.DeadLetter{
		Reason: reason, Error: cause.Error(), Subject: msg.Subject(),
		Headers: msg.Headers(), Data: msg.Data(), Deliveries: deliveries, At: w.now().UTC(),
	}
	id := "dl-" + msg.Subject()
	if meta, err := msg.Metadata(); err == nil {
		dl.Stream, dl.Sequence = meta.Stream, meta.Sequence.Stream
		id = fmt.Sprintf("dl-%s-%d", meta.Stream, meta.Sequence.Stream)
	}
	if err := w.publishEvent(ctx, events.TypeDeadLetter, id, w.now(), dl); err != nil {
		return fmt.Errorf("dead-letter: %w", err)
	}
	w.metrics.deadLettered.Add(1)
	w.metrics.deadLetters.WithLabelValues(string(reason)).Inc()
	w.log.Warn().Str("reason", string(reason)).Str("subject", msg.Subject()).Uint64("stream_sequence", dl.Sequence).
		Str("error", cause.Error()).Msg("input dead-lettered")
	return nil
}
