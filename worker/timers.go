package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/promemoria/promemoria/gap"
)

// Timers are JetStream message schedules: a message on
// _promemoria.<prefix>.sched.<key> with "Nats-Schedule: @at <time>" makes
// the server publish, at that time, a message on
// _promemoria.<prefix>.fire.<key>, which the timer consumer receives. A new
// schedule for a key replaces the old one; purging the schedule's subject
// cancels it. The schedule lives in a stream, so it survives restarts.
//
// Keys are gap keys (gap.<service>.<kind>.<tender>.<lot>[.<operator>]),
// restoration passes (pass.<service>.<n>) and the advice sweep (advise).

// timerPayload is the body of a timer message.
type timerPayload struct {
	Key string    `json:"key"`
	At  time.Time `json:"at"`
}

// schedule sets the durable timer of key to fire at at.
func (w *Worker) schedule(ctx context.Context, key string, at time.Time) error {
	msg := w.scheduleMsg(key, at)
	if _, err := w.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("schedule %s at %s: %w", key, at.Format(time.RFC3339), err)
	}
	w.metrics.timersSet.Add(1)
	return nil
}

// scheduleMsg builds the message that sets key's timer to at.
func (w *Worker) scheduleMsg(key string, at time.Time) *nats.Msg {
	at = ceilSecond(at)
	body, _ := json.Marshal(timerPayload{Key: key, At: at})
	msg := nats.NewMsg(w.opts.timerSubject("sched", key))
	msg.Data = body
	msg.Header.Set("Nats-Schedule", "@at "+ceilSecond(w.opts.ToServer(at)).UTC().Format(time.RFC3339))
	msg.Header.Set("Nats-Schedule-Target", w.opts.timerSubject("fire", key))
	return msg
}

// cancelTimer removes the pending timer of key, if any.
func (w *Worker) cancelTimer(ctx context.Context, key string) error {
	if err := w.res.timers.Purge(ctx, jetstream.WithPurgeSubject(w.opts.timerSubject("sched", key))); err != nil {
		return fmt.Errorf("cancel timer %s: %w", key, err)
	}
	return nil
}

// timerKey returns the key of a fired timer's subject.
func (w *Worker) timerKey(subject string) string {
	return strings.TrimPrefix(subject, w.opts.timerSubject("fire", ""))
}

// passKey names the n-th fan-out pass of a restoration of service.
func passKey(service string, n int) string {
	return "pass." + gap.Token(service) + "." + strconv.Itoa(n)
}

// adviceSweepKey names the timer of the sweep that looks at every tender
// for an art. 25 advice after a restoration.
const adviceSweepKey = "advise"

// isServiceTimer reports whether key is a timer that looks at many records
// (a restoration pass or the advice sweep) rather than one gap.
func isServiceTimer(key string) bool { return strings.HasPrefix(key, "pass.") || key == adviceSweepKey }

// timerRoute orders a gap's timer with the events of its tender.
func timerRoute(key string) string {
	// gap.<service>.<kind>.<tender>.…
	parts := strings.SplitN(key, ".", 5)
	if len(parts) >= 4 && parts[0] == "gap" {
		return "t:" + parts[3]
	}
	return key
}

// handleTimer acts on a fired timer.
func (w *Worker) handleTimer(ctx context.Context, msg jetstream.Msg, key string) error {
	w.metrics.timersFired.Add(1)
	switch {
	case strings.HasPrefix(key, "gap."):
		return w.syncGapOpts(ctx, key, nil, 0, nil, nil, 0, true)
	case key == adviceSweepKey:
		n, err := w.adviseAll(ctx, msg)
		if err != nil {
			return fmt.Errorf("advice sweep: %w", err)
		}
		w.log.Info().Int("tenders", n).Msg("advice sweep done")
		return nil
	case isServiceTimer(key):
		parts := strings.Split(key, ".")
		if len(parts) != 3 {
			return fmt.Errorf("timer %q: malformed pass key", key)
		}
		n, _ := strconv.Atoi(parts[2])
		return w.restorationPass(ctx, msg, gap.Untoken(parts[1]), n)
	}
	w.log.Warn().Str("timer", key).Msg("unknown timer ignored")
	return nil
}
