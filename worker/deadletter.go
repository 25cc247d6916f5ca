package worker

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/promemoria/promemoria/events"
)

// deadLetterMsg builds the dead letter of msg: the input, byte for byte
// with its subject and headers, and the reason it could not be processed.
// Its id derives from the input's stream sequence, so a dead letter
// retried after a crash is published once. It logs and counts it.
func (w *Worker) deadLetterMsg(msg jetstream.Msg, cause error, deliveries uint64) (outMsg, error) {
	reason := events.ReasonOf(cause)
	data := msg.Data()
	dl := &events.DeadLetter{
		Reason: reason, Error: cause.Error(), Subject: msg.Subject(),
		Headers: msg.Headers(), Data: data, Size: len(data), Deliveries: deliveries, At: w.now().UTC(),
	}
	// The dead letter carries the input base64-encoded: an input close to
	// the broker's payload limit would not fit. It then carries the first
	// bytes, the size and a SHA-256 of the whole, and the input stays on
	// the events stream at its sequence.
	if limit := w.deadLetterLimit(); len(data) > limit {
		sum := sha256.Sum256(data)
		dl.Data, dl.Truncated, dl.SHA256 = data[:limit], true, hex.EncodeToString(sum[:])
	}
	id := "dl-" + msg.Subject()
	if meta, err := msg.Metadata(); err == nil {
		dl.Stream, dl.Sequence = meta.Stream, meta.Sequence.Stream
		id = fmt.Sprintf("dl-%s-%d", meta.Stream, meta.Sequence.Stream)
	}
	out, err := w.eventMsg(events.TypeDeadLetter, id, w.now(), dl)
	if err != nil {
		return outMsg{}, fmt.Errorf("dead-letter: %w", err)
	}
	w.metrics.deadLettered.Add(1)
	w.metrics.deadLetters.WithLabelValues(string(reason)).Inc()
	w.log.Warn().Str("reason", string(reason)).Str("subject", msg.Subject()).Uint64("stream_sequence", dl.Sequence).
		Str("error", cause.Error()).Msg("input dead-lettered")
	return outMsg{msg: out, typ: events.TypeDeadLetter, id: id}, nil
}

// deadLetterLimit is how many input bytes a dead letter carries at most:
// base64 grows them by a third, and headers and metadata need room.
func (w *Worker) deadLetterLimit() int {
	maxPayload := int(w.nc.MaxPayload())
	if maxPayload <= 0 {
		maxPayload = 1 << 20
	}
	return max((maxPayload-64<<10)*3/4, 4<<10)
}
