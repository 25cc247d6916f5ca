package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// reader pulls from one durable consumer for as long as the worker runs. It
// survives what a long-lived service meets: missed heartbeats while a
// cluster elects a new leader, reconnections, and a consumer deleted by an
// operator (it is provisioned again).
type reader struct {
	w      *Worker
	name   string
	stream string
	cfg    jetstream.ConsumerConfig

	mu sync.Mutex
	it jetstream.MessagesContext
	up atomic.Bool
}

func (r *reader) open(ctx context.Context) error {
	cons, err := ensureConsumer(ctx, r.w.js, r.stream, r.cfg)
	if err != nil {
		return fmt.Errorf("consumer %s: %w", r.name, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(4*r.w.opts.Concurrency), jetstream.PullExpiry(5*time.Second))
	if err != nil {
		return fmt.Errorf("consume %s: %w", r.name, err)
	}
	r.mu.Lock()
	r.it = it
	r.mu.Unlock()
	r.up.Store(true)
	return nil
}

// loop hands every message to handle until ctx ends and the iterator has
// been drained, reopening the iterator after a terminal error.
func (r *reader) loop(ctx context.Context, handle func(jetstream.Msg)) {
	log := r.w.log.With().Str("consumer", r.name).Logger()
	for {
		r.mu.Lock()
		it := r.it
		r.mu.Unlock()
		for it != nil {
			msg, err := it.Next()
			if err == nil {
				r.up.Store(true)
				handle(msg)
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
		r.up.Store(false)
		if ctx.Err() != nil {
			return
		}
		// Reopen (provisioning the consumer again if it was deleted) with
		// a growing pause until it works or the worker stops.
		for attempt := 1; ctx.Err() == nil; attempt++ {
			select {
			case <-ctx.Done():
				return
			case <-time.After(min(time.Duration(attempt)*250*time.Millisecond, 5*time.Second)):
			}
			octx, cancel := context.WithTimeout(ctx, provisionAttempt)
			err := r.open(octx)
			cancel()
			if err == nil {
				log.Info().Msg("consumer reopened")
				if ctx.Err() != nil {
					r.drain() // Run drained the old iterator before this one existed
				}
				break
			}
			log.Warn().Err(err).Int("attempt", attempt).Msg("consumer reopen failed")
		}
	}
}

// drain stops fetching; what was fetched is still delivered.
func (r *reader) drain() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.it != nil {
		r.it.Drain()
	}
}

func (r *reader) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.it != nil {
		r.it.Stop()
	}
}
