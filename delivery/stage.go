// Package delivery is the stage that takes promemoria's reminders and
// advices from the output stream to people and platforms: e-mail or PEC
// through an SMTP server, grouped per recipient into digests, and signed
// webhooks. It keeps its own durable consumer, records every delivery in
// a key-value bucket before it acknowledges the message, retries
// temporary failures with a bounded backoff, and publishes
// delivery.sent and delivery.failed as an audit trail.
package delivery

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/promemoria/promemoria/events"
	"github.com/promemoria/promemoria/probe"
)

// Stage delivers reminders and advices. Create it with New and start it
// with Run.
type Stage struct {
	opts      Options
	nc        *nats.Conn
	js        jetstream.JetStream
	kv        jetstream.KeyValue
	cons      jetstream.Consumer
	log       zerolog.Logger
	metrics   *Metrics
	smtp      *smtpTarget
	http      *http.Client
	receivers []events.Receiver
	bound     atomic.Bool

	// sendCtx bounds the deliveries in flight; it ends once Run has
	// drained them.
	sendCtx    context.Context
	sendCancel context.CancelFunc
	sends      sync.WaitGroup
	mailSem    chan struct{}
	hookSem    chan struct{}

	mu     sync.Mutex
	held   map[string]*item  // by reminder id
	groups map[string]*group // e-mails waiting for their digest, by groupKey
}

// group is an e-mail waiting for more reminders to the same recipient.
type group struct {
	items []*item
	first time.Time
}

// New checks the options, waits for the output stream (provisioned by
// the worker) until ctx ends, and provisions the stage's bucket and
// durable consumer.
func New(ctx context.Context, nc *nats.Conn, opts Options) (*Stage, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, fmt.Errorf("delivery options: %w", err)
	}
	s := &Stage{
		opts: opts, nc: nc, http: newHTTPClient(),
		log:     opts.Logger.With().Str("component", "delivery").Logger(),
		held:    map[string]*item{},
		groups:  map[string]*group{},
		mailSem: make(chan struct{}, 4),
		hookSem: make(chan struct{}, 8),
	}
	if opts.SMTP != nil {
		t, err := parseSMTP(opts.SMTP)
		if err != nil {
			return nil, err
		}
		s.smtp = t
		s.receivers = append(s.receivers, events.ReceiverEmail)
	}
	if opts.Webhook != nil {
		s.receivers = append(s.receivers, events.ReceiverWebhook)
	}
	var err error
	if s.metrics, err = newMetrics(opts.Registerer); err != nil {
		return nil, fmt.Errorf("delivery metrics: %w", err)
	}
	if s.js, err = jetstream.New(nc); err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	if err := s.awaitStream(ctx); err != nil {
		return nil, err
	}
	if s.kv, err = s.ensureBucket(ctx); err != nil {
		return nil, fmt.Errorf("provision bucket %s: %w", Bucket, err)
	}
	if s.cons, err = s.ensureConsumer(ctx); err != nil {
		return nil, fmt.Errorf("provision consumer %s: %w", Consumer, err)
	}
	return s, nil
}

// Metrics returns the stage's counters.
func (s *Stage) Metrics() *Metrics { return s.metrics }

// Ready reports whether the stage is connected and its consumer bound.
func (s *Stage) Ready() bool { return s.bound.Load() && s.nc.IsConnected() }

// awaitStream waits for the output stream and checks that it takes the
// delivery events.
func (s *Stage) awaitStream(ctx context.Context) error {
	logged := false
	for {
		st, err := s.js.Stream(ctx, OutputStream)
		if err == nil {
			sent := s.opts.Subjects.Of(events.TypeDeliverySent)
			for _, f := range st.CachedInfo().Config.Subjects {
				if subjectMatches(f, sent) {
					return nil
				}
			}
			return fmt.Errorf("stream %s does not take %s (its subjects: %s): start promemoria serve of this version once, which adds the delivery subjects to it",
				OutputStream, sent, strings.Join(st.CachedInfo().Config.Subjects, ", "))
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, nats.ErrNoResponders) {
			return fmt.Errorf("stream %s: %w", OutputStream, err)
		}
		if !logged {
			s.log.Info().Str("stream", OutputStream).Msg("waiting for the output stream: is promemoria serve running on this NATS?")
			logged = true
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stream %s: %w (last error: %v)", OutputStream, ctx.Err(), err)
		case <-time.After(time.Second):
		}
	}
}

// subjectMatches reports whether subject is within filter (with * and >).
func subjectMatches(filter, subject string) bool {
	f, t := strings.Split(filter, "."), strings.Split(subject, ".")
	for i, tok := range f {
		switch {
		case tok == ">":
			return len(t) > i
		case i >= len(t):
			return false
		case tok != "*" && tok != t[i]:
			return false
		}
	}
	return len(f) == len(t)
}

func (s *Stage) ensureBucket(ctx context.Context) (jetstream.KeyValue, error) {
	cfg := jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "promemoria: reminders and advices delivered, per receiver",
		History:     1,
		TTL:         s.opts.RecordTTL,
		Storage:     jetstream.FileStorage,
		Replicas:    s.opts.Replicas,
	}
	kv, err := s.js.CreateKeyValue(ctx, cfg)
	if errors.Is(err, jetstream.ErrBucketExists) || errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return s.js.UpdateKeyValue(ctx, cfg)
	}
	return kv, err
}

// consumerConfig is the stage's durable consumer: reminders and advices,
// acknowledged one by one. Created the first time, it starts with what the
// output stream received in the last 24 hours.
func (s *Stage) consumerConfig() jetstream.ConsumerConfig {
	start := time.Now().Add(-24 * time.Hour)
	return jetstream.ConsumerConfig{
		Durable:        Consumer,
		Description:    "promemoria delivery (e-mail, webhook)",
		FilterSubjects: s.opts.Subjects.Deliverables(),
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        s.opts.AckWait,
		MaxDeliver:     -1,
		MaxAckPending:  10000,
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &start,
	}
}

// ensureConsumer creates the consumer, or updates the one that exists
// (keeping where it started).
func (s *Stage) ensureConsumer(ctx context.Context) (jetstream.Consumer, error) {
	var lastErr error
	for range 5 {
		cfg := s.consumerConfig()
		c, err := s.js.Consumer(ctx, OutputStream, Consumer)
		switch {
		case err == nil:
			old := c.CachedInfo().Config
			cfg.DeliverPolicy, cfg.OptStartTime, cfg.OptStartSeq = old.DeliverPolicy, old.OptStartTime, old.OptStartSeq
			c, err = s.js.UpdateConsumer(ctx, OutputStream, cfg)
		case errors.Is(err, jetstream.ErrConsumerNotFound):
			c, err = s.js.CreateConsumer(ctx, OutputStream, cfg)
		}
		if err == nil {
			return c, nil
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	return nil, lastErr
}

// Run delivers until ctx is cancelled; then it stops fetching, lets the
// deliveries in flight finish (bounded by the drain timeout) and hands
// back, unacknowledged, what it still held, for the next instance.
func (s *Stage) Run(ctx context.Context) error {
	s.sendCtx, s.sendCancel = context.WithCancel(context.Background())
	defer s.sendCancel()
	cc, err := s.consume()
	if err != nil {
		return err
	}
	s.bound.Store(true)
	s.log.Info().Strs("receivers", receiverNames(s.receivers)).Str("digest_wait", s.opts.DigestWait.String()).Msg("delivery started")
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	keep := time.NewTicker(s.opts.AckWait / 3)
	defer keep.Stop()
	var lastRebind time.Time
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-tick.C:
			s.flushDue(false)
			if !s.bound.Load() && time.Since(lastRebind) > time.Second {
				lastRebind = time.Now()
				if c := s.rebind(ctx, cc); c != nil {
					cc = c
				}
			}
		case <-keep.C:
			s.keepAlive()
		}
	}
	cc.Stop()
	s.bound.Store(false)
	drained := make(chan struct{})
	go func() { s.sends.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(s.opts.DrainTimeout):
		s.log.Warn().Str("drain_timeout", s.opts.DrainTimeout.String()).Msg("deliveries still in flight at shutdown: they will be tried again")
	}
	s.sendCancel()
	<-drained
	s.handBack()
	s.log.Info().Msg("delivery stopped")
	return nil
}

// consume starts pulling from the consumer.
func (s *Stage) consume() (jetstream.ConsumeContext, error) {
	cc, err := s.cons.Consume(s.onMsg,
		jetstream.PullMaxMessages(256),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
				s.bound.Store(false)
			}
			s.log.Warn().Err(err).Msg("delivery consumer")
		}))
	if err != nil {
		return nil, fmt.Errorf("consume %s: %w", Consumer, err)
	}
	return cc, nil
}

// rebind re-creates the consumer after it was deleted and pulls from it
// again; nil if it cannot yet.
func (s *Stage) rebind(ctx context.Context, old jetstream.ConsumeContext) jetstream.ConsumeContext {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := s.ensureConsumer(cctx)
	if err != nil {
		return nil
	}
	old.Stop()
	s.cons = c
	cc, err := s.consume()
	if err != nil {
		return nil
	}
	s.bound.Store(true)
	s.log.Warn().Msg("delivery consumer re-created")
	return cc
}

func receiverNames(rs []events.Receiver) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r)
	}
	return out
}

// onMsg takes one message of the output stream.
func (s *Stage) onMsg(m jetstream.Msg) {
	it, err := decodeItem(s.opts.Subjects, m.Subject(), m.Data())
	if err != nil {
		s.undecodable(m, err)
		return
	}
	if meta, err := m.Metadata(); err == nil {
		it.published = meta.Timestamp
	}
	it.msgs = []jetstream.Msg{m}
	s.mu.Lock()
	if h := s.held[it.id]; h != nil {
		h.msgs = append(h.msgs, m)
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(s.sendCtx, 10*time.Second)
	defer cancel()
	for _, r := range s.receivers {
		rec, err := s.lookup(ctx, r, it.id)
		if err != nil {
			s.log.Warn().Err(err).Str("reminder_id", it.id).Msg("delivery record unreadable: the message will come back")
			_ = m.NakWithDelay(time.Second)
			return
		}
		if rec == nil {
			it.pending[r] = true
			continue
		}
		// Delivered before a restart: report it again (the same id, which
		// the output stream drops) and do not deliver it twice.
		if err := s.publish(ctx, rec.Type, rec.Delivery); err != nil {
			s.log.Warn().Err(err).Str("reminder_id", it.id).Msg("delivery event not republished: the message will come back")
			_ = m.NakWithDelay(time.Second)
			return
		}
		s.metrics.duplicates.Add(1)
		s.metrics.deliveries.WithLabelValues(string(r), "duplicate").Inc()
		s.log.Info().Str("reminder_id", it.id).Str("tender_id", it.tender).Str("receiver", string(r)).
			Str("message_id", rec.Delivery.MessageID).Msg("already delivered: not sent again")
	}
	if len(it.pending) == 0 {
		_ = m.Ack()
		return
	}
	s.mu.Lock()
	s.held[it.id] = it
	s.metrics.held.Add(1)
	s.metrics.queue.Inc()
	if it.pending[events.ReceiverEmail] {
		key := it.groupKey()
		g := s.groups[key]
		if g == nil {
			g = &group{first: s.opts.Now()}
			s.groups[key] = g
		}
		g.items = append(g.items, it)
	}
	s.mu.Unlock()
	if it.pending[events.ReceiverWebhook] {
		s.sends.Add(1)
		go s.deliverWebhook(it)
	}
	if s.opts.DigestWait == 0 {
		s.flushDue(false)
	}
}

// flushDue sends the e-mails whose digest wait is over (all of them if
// all), and those that are full.
func (s *Stage) flushDue(all bool) {
	now := s.opts.Now()
	s.mu.Lock()
	var due [][]*item
	for key, g := range s.groups {
		if all || len(g.items) >= maxDigest || now.Sub(g.first) >= s.opts.DigestWait {
			due = append(due, g.items)
			delete(s.groups, key)
		}
	}
	s.mu.Unlock()
	for _, items := range due {
		s.sends.Add(1)
		go s.deliverMail(items)
	}
}

// keepAlive tells the broker that the messages held are being worked on,
// so that it does not deliver them again while they wait for their digest
// or a retry.
func (s *Stage) keepAlive() {
	s.mu.Lock()
	var msgs []jetstream.Msg
	for _, it := range s.held {
		msgs = append(msgs, it.msgs...)
	}
	s.mu.Unlock()
	for _, m := range msgs {
		_ = m.InProgress()
	}
}

// handBack gives the messages still held back to the broker at shutdown,
// for the next instance to deliver at once.
func (s *Stage) handBack() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, it := range s.held {
		for _, m := range it.msgs {
			_ = m.Nak()
		}
		delete(s.held, id)
		s.metrics.held.Add(-1)
		s.metrics.queue.Dec()
	}
	clear(s.groups)
}

// deliverMail sends one e-mail carrying items, with retries, then records
// and reports the outcome.
func (s *Stage) deliverMail(items []*item) {
	defer s.sends.Done()
	s.mailSem <- struct{}{}
	defer func() { <-s.mailSem }()
	ids := sortedIDs(items)
	c, err := s.compose(items)
	if err != nil {
		s.finish(items, events.ReceiverEmail, events.TypeDeliveryFailed, events.Delivery{
			ReminderIDs: ids, Address: items[0].to.Email, Attempts: 0,
			Reason: events.FailUndecodable, Error: "cannot write the e-mail: " + err.Error(),
		})
		return
	}
	d := events.Delivery{ReminderIDs: ids, Address: c.to, CC: c.cc, MessageID: c.messageID}
	typ, ok := s.try(events.ReceiverEmail, &d, items, func() outcome { return s.sendMail(s.sendCtx, c) })
	if !ok {
		return
	}
	s.finish(items, events.ReceiverEmail, typ, d)
}

// deliverWebhook POSTs one reminder or advice, with retries, then records
// and reports the outcome.
func (s *Stage) deliverWebhook(it *item) {
	defer s.sends.Done()
	s.hookSem <- struct{}{}
	defer func() { <-s.hookSem }()
	d := events.Delivery{ReminderIDs: []string{it.id}, Address: probe.RedactURL(s.opts.Webhook.URL)}
	typ, ok := s.try(events.ReceiverWebhook, &d, []*item{it}, func() outcome { return s.post(s.sendCtx, it) })
	if !ok {
		return
	}
	s.finish([]*item{it}, events.ReceiverWebhook, typ, d)
}

// try runs send until it succeeds, fails for good or has been tried
// MaxAttempts times, and fills d with the outcome; ok is false if the
// stage stopped first.
func (s *Stage) try(r events.Receiver, d *events.Delivery, items []*item, send func() outcome) (typ events.Type, ok bool) {
	for attempt := 1; ; attempt++ {
		o := send()
		if o.err != nil && s.sendCtx.Err() != nil {
			return "", false // stopped mid-try: the next instance tries again
		}
		d.Attempts, d.HTTPStatus = attempt, o.status
		switch {
		case o.err == nil:
			d.At = s.opts.Now().UTC()
			return events.TypeDeliverySent, true
		case o.permanent:
			d.Reason, d.Error, d.At = events.FailRejected, o.err.Error(), s.opts.Now().UTC()
			return events.TypeDeliveryFailed, true
		case attempt >= s.opts.MaxAttempts:
			d.Reason, d.Error, d.At = events.FailExhausted, o.err.Error(), s.opts.Now().UTC()
			return events.TypeDeliveryFailed, true
		}
		wait := s.opts.backoff(attempt)
		s.metrics.retries.Add(1)
		s.metrics.retriesC.WithLabelValues(string(r)).Inc()
		s.log.Warn().Err(o.err).Str("receiver", string(r)).Str("reminder_id", strings.Join(d.ReminderIDs, ",")).
			Int("attempt", attempt).Str("retry_in", wait.Round(time.Millisecond).String()).Msg("delivery failed; will retry")
		select {
		case <-s.sendCtx.Done():
			return "", false
		case <-time.After(wait):
		}
	}
}

// finish records the outcome of receiver r for items, publishes it, and
// acknowledges the items every receiver has finished with. If NATS stays
// away until the stage stops, the items are left unacknowledged and come
// back.
func (s *Stage) finish(items []*item, r events.Receiver, typ events.Type, d events.Delivery) {
	d.Receiver = r
	d.TenderIDs = tenderIDs(items)
	d.DeliveryID = deliveryID(typ, r, d.Address, d.ReminderIDs)
	if d.At.IsZero() {
		d.At = s.opts.Now().UTC()
	}
	rec := record{Type: typ, Delivery: d}
	if err := s.persist(s.sendCtx, "recording a delivery", func(ctx context.Context) error {
		return s.store(ctx, r, d.ReminderIDs, rec)
	}); err != nil {
		s.log.Error().Err(err).Str("receiver", string(r)).Msg("delivery not recorded: it will be tried again")
		return
	}
	if err := s.persist(s.sendCtx, "publishing "+string(typ), func(ctx context.Context) error {
		return s.publish(ctx, typ, d)
	}); err != nil {
		s.log.Error().Err(err).Str("receiver", string(r)).Msg("delivery event not published: it will be published again")
		return
	}
	outcome := "sent"
	if typ == events.TypeDeliveryFailed {
		outcome = "failed"
		s.metrics.failed.Add(1)
	} else {
		s.metrics.sent.Add(1)
	}
	s.metrics.deliveries.WithLabelValues(string(r), outcome).Inc()
	now := time.Now()
	for _, it := range items {
		ev := s.log.Info()
		if typ == events.TypeDeliveryFailed {
			ev = s.log.Error().Str("reason", string(d.Reason)).Str("error", d.Error)
		} else if !it.published.IsZero() {
			s.metrics.latency.WithLabelValues(string(r)).Observe(now.Sub(it.published).Seconds())
		}
		ev = ev.Str("reminder_id", it.id).Str("tender_id", it.tender).Str("receiver", string(r)).
			Str("address", d.Address).Int("attempts", d.Attempts)
		if d.MessageID != "" {
			ev = ev.Str("message_id", d.MessageID)
		}
		if d.HTTPStatus != 0 {
			ev = ev.Int("http_status", d.HTTPStatus)
		}
		if typ == events.TypeDeliveryFailed {
			ev.Msg("delivery failed")
		} else {
			ev.Msg("delivered")
		}
		s.done(it, r)
	}
}

// done marks receiver r finished with it, and acknowledges it once every
// receiver is.
func (s *Stage) done(it *item, r events.Receiver) {
	s.mu.Lock()
	delete(it.pending, r)
	if len(it.pending) > 0 {
		s.mu.Unlock()
		return
	}
	msgs := it.msgs
	delete(s.held, it.id)
	s.metrics.held.Add(-1)
	s.metrics.queue.Dec()
	s.mu.Unlock()
	for _, m := range msgs {
		_ = m.Ack()
	}
}

// undecodable reports an output message the stage cannot read as
// delivery.failed, counts and logs it, and acknowledges it: the stage
// goes on.
func (s *Stage) undecodable(m jetstream.Msg, cause error) {
	d := events.Delivery{ReminderIDs: []string{}, Reason: events.FailUndecodable, Error: cause.Error(), Stream: OutputStream, At: s.opts.Now().UTC()}
	if meta, err := m.Metadata(); err == nil {
		d.Sequence = meta.Sequence.Stream
	}
	d.DeliveryID = "dlv-undecodable-" + OutputStream + "-" + strconv.FormatUint(d.Sequence, 10)
	ctx, cancel := context.WithTimeout(s.sendCtx, 10*time.Second)
	defer cancel()
	if err := s.publish(ctx, events.TypeDeliveryFailed, d); err != nil {
		s.log.Warn().Err(err).Msg("delivery.failed of an undecodable message not published: it will come back")
		_ = m.NakWithDelay(time.Second)
		return
	}
	s.metrics.bad.Add(1)
	s.metrics.undecodable.Inc()
	s.log.Error().Err(cause).Str("subject", m.Subject()).Uint64("stream_sequence", d.Sequence).Msg("output message cannot be delivered: skipped")
	_ = m.Ack()
}

// redactErr rewrites err without the credentials and query of raw.
func redactErr(err error, raw string) error {
	return errors.New(strings.ReplaceAll(err.Error(), raw, probe.RedactURL(raw)))
}
