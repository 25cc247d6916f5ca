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
// retried after a crash is published once. It is logged and counted once
// it is published and its input acked (deadLettered).
func (w *Worker) deadLetterMsg(msg jetstream.Msg, cause error, deliveries uint64) (outMsg, error) {
	reason := events.ReasonOf(cause)
	data := msg.Data()
	if len(data) == 0 {
		data = nil // an empty input: "data": null, as events/README.md says
	}
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
	return outMsg{msg: out, typ: events.TypeDeadLetter, id: id}, nil
}

// deadLettered logs and counts an input whose dead letter is published,
// as it is acked: promemoria_dead_letters_total and the dead_letter
// outcome of promemoria_events_consumed_total count the same inputs.
func (w *Worker) deadLettered(in *input, cause error) {
	reason := events.ReasonOf(cause)
	w.metrics.deadLettered.Add(1)
	w.metrics.deadLetters.WithLabelValues(string(reason)).Inc()
	var seq uint64
	if meta, err := in.msg.Metadata(); err == nil {
		seq = meta.Sequence.Stream
	}
	w.log.Warn().Str("reason", string(reason)).Str("subject", in.msg.Subject()).Uint64("stream_sequence", seq).
		Str("error", cause.Error()).Msg("input dead-lettered")
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
