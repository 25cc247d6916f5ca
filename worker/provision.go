package worker

import (
	"context"
	"fmt"
	"time"

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
	state, seen            jetstream.KeyValue
	eventCons, timerCons   jetstream.Consumer
}

func provision(ctx context.Context, js jetstream.JetStream, o *Options) (*resources, error) {
	var r resources
	var err error
	r.events, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
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
	r.output, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
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
	r.timers, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
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
	r.state, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      BucketState,
		Description: "promemoria state: services, tenders, gaps",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    o.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("provision bucket %s: %w", BucketState, err)
	}
	r.seen, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
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
	r.eventCons, err = js.CreateOrUpdateConsumer(ctx, StreamEvents, jetstream.ConsumerConfig{
		Durable:       ConsumerEvent,
		Description:   "promemoria workers",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       o.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: 4 * o.Concurrency * 8,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("provision consumer %s: %w", ConsumerEvent, err)
	}
	r.timerCons, err = js.CreateOrUpdateConsumer(ctx, StreamTimers, jetstream.ConsumerConfig{
		Durable:       ConsumerTimer,
		Description:   "promemoria timers",
		FilterSubject: o.timerSubject("fire", ">"),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       o.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: 4 * o.Concurrency * 8,
	})
	if err != nil {
		return nil, fmt.Errorf("provision consumer %s: %w", ConsumerTimer, err)
	}
	return &r, nil
}

// timerSubject returns the internal subject of a timer: kind is "sched"
// (the schedule, replaced on every reset) or "fire" (where it fires).
func (o *Options) timerSubject(kind, key string) string {
	return "_promemoria." + o.Subjects.Prefix + "." + kind + "." + key
}
