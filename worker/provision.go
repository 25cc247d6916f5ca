package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Provision creates or updates the streams, buckets and consumers the worker
// needs. It is idempotent: every replica calls it at start-up.
func Provision(ctx context.Context, js jetstream.JetStream, o Options) error {
	if err := o.setDefaults(); err != nil {
		return err
	}
	_, err := provision(ctx, js, &o)
	return err
}

type resources struct {
	events, output, timers jetstream.Stream
	state, seen, lease     jetstream.KeyValue
	eventCons, timerCons   jetstream.Consumer
}

func provision(ctx context.Context, js jetstream.JetStream, o *Options) (*resources, error) {
	var r resources
	var err error
	r.events, err = ensureStream(ctx, js, jetstream.StreamConfig{
		Name:        StreamEvents,
		Description: "promemoria input events (CloudEvents)",
		Subjects:    o.Subjects.Inputs(),
		Storage:     jetstream.FileStorage,
		Replicas:    o.Replicas,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      o.OutputMaxAge,
		Duplicates:  2 * time.Minute,
		AllowDirect: true,
	})
	if err != nil {
		return nil, fmt.Errorf("provision stream %s: %w", StreamEvents, err)
	}
	r.output, err = ensureStream(ctx, js, jetstream.StreamConfig{
		Name:        StreamOutput,
		Description: "promemoria reminders and dead letters (CloudEvents)",
		Subjects:    o.Subjects.Outputs(),
		Storage:     jetstream.FileStorage,
		Replicas:    o.Replicas,
		MaxAge:      o.OutputMaxAge,
		Duplicates:  o.DedupWindow,
		AllowDirect: true,
	})
	if err != nil {
		return nil, fmt.Errorf("provision stream %s: %w", StreamOutput, err)
	}
	r.timers, err = ensureStream(ctx, js, jetstream.StreamConfig{
		Name:              StreamTimers,
		Description:       "promemoria durable timers (message schedules)",
		Subjects:          []string{o.timerSubject("sched", ">"), o.timerSubject("fire", ">")},
		Storage:           jetstream.FileStorage,
		Replicas:          o.Replicas,
		Retention:         jetstream.WorkQueuePolicy,
		AllowMsgSchedules: true,
	})
	if err != nil {
		return nil, fmt.Errorf("provision stream %s (needs nats-server 2.12 or later): %w", StreamTimers, err)
	}
	r.state, err = EnsureBucket(ctx, js, jetstream.KeyValueConfig{
		Bucket:      BucketState,
		Description: "promemoria state: services, tenders, gaps",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    o.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("provision bucket %s: %w", BucketState, err)
	}
	r.seen, err = EnsureBucket(ctx, js, jetstream.KeyValueConfig{
		Bucket:      BucketSeen,
		Description: "promemoria: ids of processed events",
		History:     1,
		TTL:         o.SeenTTL,
		Storage:     jetstream.FileStorage,
		Replicas:    o.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("provision bucket %s: %w", BucketSeen, err)
	}
	r.lease, err = EnsureBucket(ctx, js, jetstream.KeyValueConfig{
		Bucket:      BucketLease,
		Description: "promemoria: the lease of the worker that leads",
		History:     1,
		TTL:         o.LeaseTTL,
		// On file, so that a broker restarted from its disk still has
		// the bucket the replicas compete in.
		Storage:  jetstream.FileStorage,
		Replicas: o.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("provision bucket %s: %w", BucketLease, err)
	}
	if r.eventCons, err = ensureConsumer(ctx, js, StreamEvents, o.eventConsumer()); err != nil {
		return nil, fmt.Errorf("provision consumer %s: %w", ConsumerEvent, err)
	}
	if r.timerCons, err = ensureConsumer(ctx, js, StreamTimers, o.timerConsumer()); err != nil {
		return nil, fmt.Errorf("provision consumer %s: %w", ConsumerTimer, err)
	}
	return &r, nil
}

func (o *Options) eventConsumer() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       ConsumerEvent,
		Description:   "promemoria workers",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       o.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: max(4*o.BatchSize, 1024),
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
}

func (o *Options) timerConsumer() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       ConsumerTimer,
		Description:   "promemoria timers",
		FilterSubject: o.timerSubject("fire", ">"),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       o.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: 1024,
	}
}

// timerSubject returns the internal subject of a timer: kind is "sched"
// (the schedule, replaced on every reset) or "fire" (where it fires).
func (o *Options) timerSubject(kind, key string) string {
	return "_promemoria." + o.Subjects.Prefix + "." + kind + "." + key
}

// provisionAttempt bounds one provisioning call: on a cluster that is still
// electing leaders, or with replicas provisioning at the same time, a call
// can stall; a fresh attempt then goes through.
const provisionAttempt = 10 * time.Second

// retry runs fn with a per-attempt timeout until it succeeds, fails with an
// error that retrying cannot fix, or ctx ends.
func retry[T any](ctx context.Context, fn func(context.Context) (T, error)) (T, error) {
	var zero T
	var lastErr error
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, provisionAttempt)
		v, err := fn(actx)
		cancel()
		if err == nil {
			return v, nil
		}
		lastErr = err
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout) &&
			!errors.Is(err, jetstream.ErrNoStreamResponse) && !errors.Is(err, nats.ErrNoResponders) {
			return zero, err
		}
		select {
		case <-ctx.Done():
			return zero, fmt.Errorf("%w (last error: %v)", ctx.Err(), lastErr)
		case <-time.After(time.Duration(attempt+1) * 250 * time.Millisecond):
		}
	}
}

// ensureStream creates the stream, or updates it if it exists. Unlike
// CreateOrUpdateStream, replicas racing to create a replicated stream do
// not stall each other.
func ensureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	return retry(ctx, func(ctx context.Context) (jetstream.Stream, error) {
		s, err := js.CreateStream(ctx, cfg)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return js.UpdateStream(ctx, cfg)
		}
		return s, err
	})
}

// EnsureBucket creates the key-value bucket, or updates it if it exists,
// retrying while the server is not ready to answer. Every part of
// promemoria that owns a bucket provisions it this way.
func EnsureBucket(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	return retry(ctx, func(ctx context.Context) (jetstream.KeyValue, error) {
		kv, err := js.CreateKeyValue(ctx, cfg)
		if errors.Is(err, jetstream.ErrBucketExists) || errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return js.UpdateKeyValue(ctx, cfg)
		}
		return kv, err
	})
}

// ensureConsumer creates or updates a durable consumer.
func ensureConsumer(ctx context.Context, js jetstream.JetStream, stream string, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	return retry(ctx, func(ctx context.Context) (jetstream.Consumer, error) {
		return js.CreateOrUpdateConsumer(ctx, stream, cfg)
	})
}
