package worker

import (
	"errors"

	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/message"
)

// render writes the message of kind from data (package message says what
// each message says about a gap). An overriding template that fails on
// this data gives way to the embedded one: the message goes out, and the
// failure is logged and counted for the operator to fix.
func (w *Worker) render(kind message.Kind, data any) (events.Message, error) {
	m, err := w.opts.Texts.Render(kind, data)
	if errors.Is(err, message.ErrFallback) {
		w.metrics.templateFallback()
		w.log.Error().Err(err).Str("kind", string(kind)).Msg("template failed on this message: the embedded text was sent instead")
		return m, nil
	}
	return m, err
}
