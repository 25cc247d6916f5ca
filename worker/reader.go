package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// reader pulls from one durable consumer into a channel while the worker
// leads. It survives what a long-lived service meets: missed heartbeats
// while a cluster elects a new leader, reconnections, and a consumer
// deleted by an operator (it is provisioned again).
type reader struct {
	w      *Worker
	name   string
	stream string
	cfg    jetstream.ConsumerConfig
	ch     chan<- jetstream.Msg
	max    int // messages fetched ahead
}

// run hands every message to the channel until ctx ends; a message that
// cannot be handed over then is given back at once.
func (r *reader) run(ctx context.Context) {
	log := r.w.log.With().Str("consumer", r.name).Logger()
	for attempt := 0; ctx.Err() == nil; attempt++ {
		if attempt > 0 {
			sleep(ctx, min(time.Duration(attempt)*250*time.Millisecond, 5*time.Second))
		}
		octx, cancel := context.WithTimeout(ctx, provisionAttempt)
		it, err := r.open(octx)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				log.Warn().Err(err).Int("attempt", attempt).Msg("consumer open failed")
			}
			continue
		}
		if attempt > 0 {
			log.Info().Msg("consumer reopened")
		}
		attempt = 0
		stop := context.AfterFunc(ctx, it.Stop)
		for {
			msg, err := it.Next()
			if err == nil {
				select {
				case r.ch <- msg:
				case <-ctx.Done():
					_ = msg.Nak()
				}
				continue
			}
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				break
			}
			if errors.Is(err, jetstream.ErrNoHeartbeat) || errors.Is(err, nats.ErrTimeout) ||
				errors.Is(err, jetstream.ErrConsumerLeadershipChanged) {
				log.Warn().Err(err).Msg("consumer interrupted, still pulling")
				continue
			}
			log.Error().Err(err).Msg("consumer failed, reopening")
			it.Stop()
			break
		}
		stop()
	}
}

func (r *reader) open(ctx context.Context) (jetstream.MessagesContext, error) {
	cons, err := ensureConsumer(ctx, r.w.js, r.stream, r.cfg)
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", r.name, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(r.max), jetstream.PullExpiry(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("consume %s: %w", r.name, err)
	}
	return it, nil
}
